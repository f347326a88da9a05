"""bench/gpu.py runs every stage through the harness code (CPU here; CI has no GPU)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_quick_on_cpu_prints_every_stage():
    out = subprocess.run([sys.executable, "bench/gpu.py", "--quick", "--device", "cpu"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    table = {cells[0].strip().split(",")[0].split(" ")[0] + " " + cells[1].strip(): cells for cells in rows[1:]}
    assert set(table) == {"encode docs/s", "fine-tune samples/s", "SemBridge s"}
    for cells in table.values():
        value, baseline, ratio = (c.strip() for c in cells[2:5])
        assert float(value.replace(",", "")) > 0 and float(baseline.replace(",", "")) > 0
        assert ratio.endswith("x") and float(ratio[:-1]) > 0
    assert "device: " in out.stdout and "2 layers, hidden 64" in out.stdout
