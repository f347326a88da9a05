"""The benches run through the harness code in their quick modes (CPU here; CI has no GPU): gpu.py, train.py."""
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


@pytest.mark.slow
def test_train_bench_quick_prints_every_variant():
    out = subprocess.run([sys.executable, "bench/train.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.stdout.splitlines()
            if line.startswith("| ") and "---" not in line]
    table = {cells[0]: cells for cells in rows[1:]}
    matmul = [name for name in table if name.startswith("fp32 matmul")]
    assert len(matmul) == 1 and set(table) - set(matmul) == {"sentence-transformers", "harness before", "harness now"}
    for name in ("sentence-transformers", "harness before", "harness now"):
        ms, tokens, gflops, of_matmul, vs_st, loss = table[name][1:]
        assert float(ms) > 0 and float(tokens.replace(",", "")) > 0 and float(gflops) > 0
        assert of_matmul.endswith("%") and vs_st.endswith("x") and float(vs_st[:-1]) > 0
    # the two harness steps start from the same weights, batch and dropout masks: the same first loss
    assert abs(float(table["harness before"][6]) - float(table["harness now"][6])) < 1e-4
    assert "torch.get_num_threads() = 2" in out.stdout and "fused head on" in out.stdout


@pytest.mark.slow
def test_init_bench_quick_prints_speed_up_and_distance_to_the_product_floor():
    out = subprocess.run([sys.executable, "bench/init.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("alpha") and "speed-up" in line)
    for line in lines[header + 2: header + 4]:  # alpha 4 and 2
        alpha, _, loop_s, fast_s, speed_up, floor_s, of_floor, *_ = line.split()
        assert speed_up.endswith("x") and float(speed_up[:-1]) > 1
        # the fast path does the product and more: never below its floor, by the clock's noise at most
        assert float(fast_s) > 0 and float(floor_s) > 0 and float(of_floor) > 0.8
    accuracy = lines[header + 4: header + 8]
    assert any("max|fast-exact|" in line for line in accuracy)
