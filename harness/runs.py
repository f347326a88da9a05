"""Run records: ``runs/<run-id>/`` with the resolved config, environment, plan and results.

The run id is a content hash of the resolved run config (which holds method, parameters,
language, seed and setting), so an identical run is found again instead of duplicated.
Reporting reads these files only.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.util import content_hash, read_json, write_json_atomic

SCHEMA_VERSION = 1
RESULT = "result.json"
PACKAGES = ("torch", "transformers", "sentence-transformers", "tokenizers", "ranx", "entmax", "numpy", "scipy")


def run_id(run_config: dict[str, Any]) -> str:
    """``<method>-<lang>-<setting>-s<seed>-<hash>``: readable, and unique per resolved config."""
    digest = content_hash(run_config, length=12)
    return f"{run_config['method']}-{run_config['lang']}-{run_config['setting']}-s{run_config['seed']}-{digest}"


def environment() -> dict[str, Any]:
    """Package versions, git commit and device of this process."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git": git_commit(),
        "device": device_name(),
    }


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name() -> str:
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu ({cpu_model()}, {cpu_count()} cores)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass
class RunDir:
    """One run's folder."""

    path: Path

    @classmethod
    def for_config(cls, runs_dir: Path | str, run_config: dict[str, Any]) -> "RunDir":
        return cls(Path(runs_dir) / run_id(run_config))

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def result_path(self) -> Path:
        return self.path / RESULT

    def done(self) -> bool:
        return self.result_path.exists()

    def result(self) -> dict[str, Any]:
        return read_json(self.result_path)

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        write_json_atomic(path, obj)
        return path

    def file(self, name: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name


def result_record(run_config: dict[str, Any], *, metrics: dict[str, float] | None, timing: dict[str, float],
                  files: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema-versioned ``result.json`` content."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(run_config),
        "method": run_config["method"],
        "method_params": run_config["method_params"],
        "lang": run_config["lang"],
        "dataset": run_config["dataset"],
        "profile": run_config["profile"],
        "setting": run_config["setting"],
        "seed": run_config["seed"],
        "status": "ok",
        "metrics": metrics,
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "files": files,
    }
    record.update(extra or {})
    return record


def iter_results(runs_dir: Path | str) -> list[dict[str, Any]]:
    """Every ``result.json`` under ``runs_dir``, sorted by run id."""
    return [read_json(p) for p in sorted(Path(runs_dir).glob(f"*/{RESULT}"))]
