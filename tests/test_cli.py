"""The command line as a user meets it: help, listings, exit codes for bad input."""
import subprocess
import sys
import time

import pytest


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys, harness.cli; sys.exit(any(m in sys.modules for m in ('torch', 'transformers', 'ranx', 'ray', 'submitit', 'seismic', 'jnius')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    start = time.perf_counter()
    out = harness("--help")
    assert out.returncode == 0 and "run" in out.stdout and time.perf_counter() - start < 5


def test_methods_lists_baselines_with_parameters():
    out = harness("methods")
    assert out.returncode == 0
    for name in ("random", "mean", "overlap"):
        line = next(line for line in out.stdout.splitlines() if line.startswith(f"| {name} "))
        assert "builtin" in line and "match_symbols=True" in line


@pytest.mark.parametrize("args, message", [
    (["run", "--method", "sembrige", "--lang", "ko"], "did you mean 'sembridge'?"),
    (["run", "--method", "mean", "--lang", "ko", "--set", "encode.batch_sise=3"], "did you mean 'encode.batch_size'?"),
    (["run", "--method", "mean", "--lang", "ko", "--set", "method.copy_overlp=false"], "did you mean 'copy_overlap'?"),
    (["run", "--method", "mean", "--lang", "ko", "--profile", "pockt"], "did you mean 'pocket'?"),
    (["run", "--method", "mean", "--lang", "ko", "--setting", "zero"], "Invalid value for '--setting'"),
    (["run", "--method", "mean", "--lang", "ko", "--set", "device=gpu"], "unknown device 'gpu': use auto, cpu"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    out = harness(*args)
    assert out.returncode == 2 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = harness("run", "--method", "mean", "--lang", "ko", "--set", "device=cuda")
    assert out.returncode == 2 and "sees no CUDA GPU here: use --set device=auto" in out.stderr


@pytest.mark.parametrize("name", ["mean", "random", "overlap"])
def test_check_method_passes_builtin(name):
    out = harness("check-method", name)
    assert out.returncode == 0, out.stderr
    assert f"ok: '{name}'" in out.stdout


def test_check_method_catches_a_broken_plugin(tmp_path):
    (tmp_path / "brokenplug.py").write_text('''
from harness.api import build_plan, register_method

@register_method("broken")
def broken(ctx, *, weight: float = 2.0):
    """Rows that do not sum to one."""
    return build_plan(ctx.n_target, ctx.n_source, rows={t: ([0], [weight]) for t in range(ctx.n_target)})
''')
    info = tmp_path / "brokenplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness.methods]\nbroken = brokenplug:broken\n")
    import os

    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "harness.cli", "check-method", "broken"], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 1 and "mixing rows do not sum to 1" in out.stderr
    ok = subprocess.run([sys.executable, "-m", "harness.cli", "check-method", "broken", "--set", "weight=1"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr


def test_paper_profile_offline_names_everything_missing(tmp_path):
    import os

    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
               IR_DATASETS_HOME=str(tmp_path / "ird"))
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profile", "paper", "--method", "sembridge",
                          "--lang", "ko"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    for name in ("naver/splade-v3", "BAAI/bge-m3", "'miracl-ko'", "'miracl-ko-train'"):
        assert name in out.stderr
