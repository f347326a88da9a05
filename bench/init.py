"""Benchmark SemBridge initialisation: the exact batched path vs the authors' per-token loop.

    python bench/init.py [--quick] [--device cuda]

On identical random bridge vectors (clustered so that entmax supports look like real ones: about 3
entries at alpha 4, 15 at alpha 2), it times

* the authors' loop: a float64 cosine matrix (their ``fastdist`` returns float64), then one
  ``entmax.entmax_bisect`` per target token over its full row of n_source float64 scores (the
  package's default 50 iterations). It runs on a sample of target rows and is extrapolated linearly
  to all of them (it is row-by-row, so per-row time is constant). The mixing of embedding rows
  that the authors do inside the loop is left out, which favours the loop;
* ``methods.sembridge.bridge_weights`` on every target row;

and compares their weights on the sampled rows (max |difference|), plus both against the exact
entmax (float64 ``entmax_bisect``, 100 iterations) on some of them. Then it times the fast path alone on a
250,000-token target vocabulary. The float32 cosine product alone (same blocks and kernels) is timed
too: the fast path cannot go below it, so "fast / product" says how far from that floor it is.
Timings on a shared machine vary: the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import entmax
import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from methods.sembridge import bridge_weights  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run (< 1 min)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-source", type=int, default=30_522)
    p.add_argument("--n-target", type=int, default=30_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--sample", type=int, default=300, help="target rows run through the authors' loop")
    p.add_argument("--exact-rows", type=int, default=100, help="sampled rows also checked against float64 entmax")
    p.add_argument("--big", type=int, default=250_000, help="target vocabulary for the fast-path-only run (0: skip)")
    p.add_argument("--alphas", type=float, nargs="+", default=[4.0, 2.0])
    args = p.parse_args()
    if args.quick:
        args.n_target, args.sample, args.exact_rows, args.big = 3_000, 40, 20, 10_000
    return args


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                      if ln.startswith("model name")), model)
    return f"{model}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def clustered_vectors(n: int, centers: torch.Tensor, common: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Unit vectors = shared direction + one of many cluster centres + noise (like token embeddings:
    anisotropic, with groups of near neighbours), so entmax supports have realistic sizes."""
    d = centers.shape[1]
    which = torch.randint(0, centers.shape[0], (n,), generator=gen)
    v = 0.5 * common + centers[which] + torch.randn(n, d, generator=gen) / d**0.5
    return torch.nn.functional.normalize(v, dim=1)


def make_vectors(args: argparse.Namespace, n_target: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(args.seed)
    centers = torch.nn.functional.normalize(torch.randn(2000, args.dim, generator=gen), dim=1)
    common = torch.nn.functional.normalize(torch.randn(args.dim, generator=gen), dim=0)
    source = clustered_vectors(args.n_source, centers, common, gen)
    return clustered_vectors(n_target, centers, common, gen), source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def authors_loop(target: torch.Tensor, source: torch.Tensor, alpha: float, device: torch.device,
                 n_iter: int = 50) -> tuple[torch.Tensor, float]:
    """The authors' loop: the float64 cosine matrix, then one entmax_bisect per token over its full row."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    cos = torch.nn.functional.normalize(target.double(), dim=1) @ torch.nn.functional.normalize(source.double(), dim=1).T
    rows = [entmax.entmax_bisect(cos[i], alpha=alpha, dim=0, n_iter=n_iter) for i in range(len(cos))]
    out = torch.stack(rows)
    sync(device)
    return out.float().cpu(), (time.perf_counter() - start, time.process_time() - cpu)


def timed_fast(target: torch.Tensor, source: torch.Tensor, alpha: float, device: torch.device):
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    weights, stats = bridge_weights(target, source, alpha, device=device, return_stats=True)
    sync(device)
    return weights, stats, (time.perf_counter() - start, time.process_time() - cpu)


def product_floor(target: torch.Tensor, source: torch.Tensor, device: torch.device, batch_size: int = 1024) -> float:
    """Wall seconds of the float32 cosine product alone, in the fast path's blocks and kernels (numpy's
    sgemm on the CPU, cuBLAS without TF32 on CUDA) into one reused buffer: the floor of the fast path,
    which must read every score at least once."""
    from methods.sembridge import _cosine_into

    t = torch.nn.functional.normalize(target.to(device, torch.float32), dim=1).contiguous()
    s = torch.nn.functional.normalize(source.to(device, torch.float32), dim=1).contiguous()
    buf = torch.zeros(min(batch_size, len(t)), len(s), device=device)  # touched: no page faults timed
    sync(device)
    start = time.perf_counter()
    for lo in range(0, len(t), batch_size):
        _cosine_into(buf[: len(t[lo:lo + batch_size])], t[lo:lo + batch_size], s)
    sync(device)
    return time.perf_counter() - start


def first_rows_dense(csr: torch.Tensor, n: int) -> torch.Tensor:
    crow = csr.crow_indices()[: n + 1]
    nnz = int(crow[-1])
    rows = torch.sparse_csr_tensor(crow, csr.col_indices()[:nnz], csr.values()[:nnz], (n, csr.shape[1]))
    return rows.to_dense()


def compare_row(args: argparse.Namespace, target: torch.Tensor, source: torch.Tensor, alpha: float,
                device: torch.device) -> tuple[list, list]:
    """A timing row (loop extrapolated from the sample, fast path on all rows) and an accuracy row."""
    sample_t = target[: args.sample].to(device)
    loop_w, (loop_s, loop_cpu) = authors_loop(sample_t, source.to(device), alpha, device)
    fast_w, stats, (fast_s, fast_cpu) = timed_fast(target, source, alpha, device)
    fast_sample = first_rows_dense(fast_w, args.sample)
    exact_w, _ = authors_loop(sample_t[: args.exact_rows], source.to(device), alpha, device, n_iter=100)
    floor_s = product_floor(target, source, device)
    scale = len(target) / args.sample
    timing = [alpha, f"{loop_s / args.sample * 1e3:.1f}", f"{loop_s * scale:.1f}", f"{fast_s:.2f}",
              f"{loop_s * scale / fast_s:.0f}x", f"{floor_s:.2f}", f"{fast_s / floor_s:.2f}",
              f"{loop_cpu * scale:.1f}", f"{fast_cpu:.2f}"]
    accuracy = [alpha, f"{(fast_sample - loop_w).abs().max():.1e}",
                f"{(fast_sample[: args.exact_rows] - exact_w).abs().max():.1e}",
                f"{(loop_w[: args.exact_rows] - exact_w).abs().max():.1e}",
                f"{stats['mean_support']:.1f}", stats["rows_grown"], stats["max_k"]]
    return timing, accuracy


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    print(f"device: {device_name(device)}; torch {torch.__version__}, entmax {entmax.__version__}; load {load()}")
    target, source = make_vectors(args, args.n_target)
    print(f"bridge vectors: {args.n_target:,} target x {args.n_source:,} source, d = {args.dim}, seed {args.seed}")
    rows = [compare_row(args, target, source, alpha, device) for alpha in args.alphas]
    n = f"{args.n_target:,}"
    print(tabulate([r[0] for r in rows], disable_numparse=True, headers=[
        "alpha", "loop ms/token", f"loop s, {n} (extrapolated from {args.sample})", f"fast s, {n}", "speed-up",
        "float32 product s", "fast / product", f"loop CPU s, {n}", f"fast CPU s, {n}"]))
    print(tabulate([r[1] for r in rows], disable_numparse=True, headers=[
        "alpha", f"max|fast-loop| ({args.sample} rows)", f"max|fast-exact| ({args.exact_rows} rows)",
        f"max|loop-exact| ({args.exact_rows} rows)", "mean support", "rows k-grown", "max k"]))
    print("s = wall seconds; CPU s = process CPU seconds (all threads). exact = float64 entmax_bisect, "
          "100 iterations; loop = the authors' float64 cosines + entmax_bisect (50 iterations)")
    if args.big:
        del target
        big_target, source = make_vectors(args, args.big)
        big = []
        for alpha in args.alphas[:1]:
            _, stats, (seconds, cpu) = timed_fast(big_target, source, alpha, device)
            big.append([alpha, f"{args.big:,}", f"{seconds:.1f}", f"{cpu:.1f}", f"{stats['mean_support']:.1f}",
                        stats["rows_grown"]])
        print(tabulate(big, headers=["alpha", "target tokens", "fast s", "fast CPU s", "mean support", "rows k-grown"],
                       disable_numparse=True))
    print(f"load at end: {load()}")


if __name__ == "__main__":
    main()
