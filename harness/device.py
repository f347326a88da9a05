"""The device and the process: which device a run uses, this process's rank, autocast, model inputs.

One owner for what every stage asks about the hardware: ``resolve_device`` (the config's ``device``
key), ``rank_and_world`` (torchrun's RANK / WORLD_SIZE / LOCAL_RANK), ``autocast`` (bf16 on CUDA,
nothing on CPU), ``accepted_inputs`` (the tokenizer outputs a model's forward takes) and
``device_name`` (what the run record says the run ran on).
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys
from typing import Any, Iterator

from harness.util import HarnessError

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def resolve_device(device: str | None = "auto") -> str:
    """'auto' (or None) is cuda when torch sees a GPU, else cpu; a device that cannot be used is a clear error."""
    import torch

    device = "auto" if device is None else str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise HarnessError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"device={device}, but torch {torch.__version__} sees no CUDA GPU here: "
                           f"use --set device=auto (or cpu)")
    return device


def rank_and_world(rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """This process's (rank, world size): the arguments, else torchrun's RANK / WORLD_SIZE, else (0, 1)."""
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    if world < 1 or not 0 <= rank < world:
        raise HarnessError(f"rank {rank} of world {world}: need 0 <= rank < world (check RANK / WORLD_SIZE)")
    return rank, world


def process_rank() -> int:
    """0 outside torchrun; only rank 0 evaluates and records."""
    return rank_and_world()[0]


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def autocast(device: Any, bf16: bool = True) -> Iterator[None]:
    """bf16 autocast on a CUDA device (when ``bf16``); a no-op on the CPU."""
    import torch

    if str(device).startswith("cuda") and bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def accepted_inputs(model: Any) -> set[str]:
    """Tokenizer outputs the model's forward declares (DistilBERT takes no token_type_ids)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return {name for name in MODEL_INPUTS if name in params}


def device_name() -> str:
    """What a run record names as its machine: the GPU when torch (already imported) sees one, else the CPU."""
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu ({cpu_model()}, {cpu_count()} cores{cpu_kernels()})"


def cpu_kernels() -> str:
    """``, AVX2`` / ``, AVX512``: the vector kernels torch (already imported) dispatches to. Two CPUs
    with one model name ("AMD EPYC") differ here, and with it the rounding of every float sum."""
    torch = sys.modules.get("torch")
    return f", {torch.backends.cpu.get_cpu_capability()}" if torch is not None else ""


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
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
