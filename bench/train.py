"""Benchmark one fine-tuning step: sentence-transformers, the harness before, the harness now, vs fp32 matmul.

    python bench/train.py            # splade-tiny shape, |V| 14,737, 8 queries x 12 + 16 docs x 48 tokens
    python bench/train.py --quick    # |V| 2,000 and a few steps: a smoke run (tests/test_bench.py)

The model is built here: a random-weight (seeded) BertForMaskedLM shaped like splade-tiny (2 layers,
hidden 128, 2 heads, intermediate 512) with a synthetic word-level tokenizer (every word ``t<i>`` is
one token), so no assets are needed. The batch: 8 queries of 12 tokens, each with 1 positive and 1
hard negative of 48 tokens (16 documents): the splade objective's in-batch + hard-negative
contrastive loss plus FLOPS. Each variant does forward, log1p-relu-max pooling, loss, backward,
gradient clipping and AdamW on its own copy of the same initial model:

* **sentence-transformers**: the model saved as a SparseEncoder directory (MLMTransformer +
  SpladePooling, what ``harness.encoder.SpladeEncoder.save`` writes) and loaded with
  ``SparseEncoder``; ``SpladeLoss(SparseMultipleNegativesRankingLoss)``, columns tokenized every
  step by ``preprocess`` as the trainer's collator does, fused AdamW (the HF Trainer's default
  optimiser with torch >= 2.8);
* **harness before**: the step as ``harness.train`` did it before the fused head: tokenizer every
  step, ``model(**x).logits``, ``harness.encoder.splade_pool``, the objective's loss, per-tensor AdamW;
* **harness now**: ``harness.train.Loop.optimise`` itself (token cache, fused decoder + max pooling
  of ``harness.splade_head``, fused AdamW).

Timing: warm-up steps first, then rounds that run a few steps of every variant in turn, plus the
matmul, so that a change of load on a shared machine hits all of them alike; medians over the
rounds. The load average is printed before and after.

FLOPs (the same count for every variant: the work of the ordinary dense step, "model FLOPs"): a
multiply-add is 2 FLOPs forward and 4 backward (grad input and grad weight), so 6 x (weights touched
per token) x tokens for the encoder's linear layers and the head transform, 12 x T^2 x H per layer and sequence for the
attention products (QK^T and AV, forward and backward), and 6 x tokens x |V| x H for the MLM
decoder. Embedding lookups, layer norms, softmax and the other elementwise work are not counted.
The fused head skips most of the decoder's backward (it multiplies only the arg-max rows), so its
executed FLOPs are fewer than counted; both rates are printed.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from bench.gpu import word_tokenizer, words  # noqa: E402
from bench.init import load  # noqa: E402
from harness.device import device_name, resolve_device  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="|V| 2,000 and few steps: a smoke run in well under a minute")
    p.add_argument("--device", default="cpu", help="cpu (default), auto or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=14_737, help="target vocabulary |V|")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=512)
    p.add_argument("--queries", type=int, default=8, help="queries per batch, each with 1 positive + 1 negative")
    p.add_argument("--query-tokens", type=int, default=12)
    p.add_argument("--doc-tokens", type=int, default=48)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    p.add_argument("--variants", nargs="+", default=["st", "before", "now"], choices=["st", "before", "now"])
    args = p.parse_args(argv)
    if args.quick:
        args.vocab, args.warmup, args.rounds, args.steps = 2_000, 1, 2, 2
    args.device = resolve_device(args.device)
    return args


# -------------------------------------------------------------------------------------------
# Model, batch, FLOPs
# -------------------------------------------------------------------------------------------
def random_mlm(args: argparse.Namespace):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(args.seed)
    config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=args.intermediate,
                        max_position_embeddings=512, pad_token_id=0)
    return BertForMaskedLM(config)


def training_examples(args: argparse.Namespace) -> list[dict]:
    """The splade objective's examples: texts of exactly the requested token counts ([CLS] + words + [SEP])."""
    rng = random.Random(args.seed)
    vocab_words = words(args.vocab)

    def text(tokens: int) -> str:
        return " ".join(rng.choices(vocab_words, k=tokens - 2))

    return [{"query": text(args.query_tokens), "pos": text(args.doc_tokens), "neg": [text(args.doc_tokens)]}
            for _ in range(args.queries)]


def run_config(args: argparse.Namespace) -> dict:
    from harness.config import load_config, run_config as resolve

    overrides = [f"device={args.device}", f"train.batch_size={args.queries}", "train.steps=100000",
                 "train.warmup_ratio=0.0", "train.objective=splade", "train.hard_negatives=1"]
    return resolve(load_config("pocket", overrides), method="bench", method_params={}, lang="xx", seed=args.seed,
                   setting="fine-tuned")


def step_flops(args: argparse.Namespace) -> dict[str, float]:
    """FLOPs of one dense forward + backward step (see the module docstring), and what the fused head runs."""
    h, i, n_layers, v = args.hidden, args.intermediate, args.layers, args.vocab
    seqs = [(args.queries, args.query_tokens), (2 * args.queries, args.doc_tokens)]
    tokens = sum(n * t for n, t in seqs)
    linear = n_layers * (4 * h * h + 2 * h * i) + h * h  # Q, K, V, O + FFN per layer, and the head transform
    attention = sum(n * 12 * t * t * h for n, t in seqs) * n_layers
    decoder = 6 * tokens * v * h
    dense = 6 * linear * tokens + attention
    # fused: decoder forward (2 N V H) + sparse backward, at most one entry per (sequence, vocab): 2 x 2 x B V H
    fused_decoder = 2 * tokens * v * h + 4 * sum(n for n, _ in seqs) * v * h
    return {"tokens": tokens, "counted": dense + decoder, "fused_executed": dense + fused_decoder}


# -------------------------------------------------------------------------------------------
# The three steps
# -------------------------------------------------------------------------------------------
def st_step(args: argparse.Namespace, model, tokenizer, examples: list[dict]):
    """sentence-transformers: SparseEncoder from a saved directory, SpladeLoss(SparseMNRL), fused AdamW."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    from harness.encoder import SpladeEncoder

    with tempfile.TemporaryDirectory() as tmp:
        SpladeEncoder(model, tokenizer, device=args.device).save(tmp)
        encoder = SparseEncoder(tmp, device=args.device)
    loss_fn = SpladeLoss(encoder, SparseMultipleNegativesRankingLoss(encoder), document_regularizer_weight=3e-5,
                         query_regularizer_weight=5e-5)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=5e-5, weight_decay=0.0, fused=True)
    columns = [[x["query"] for x in examples], [x["pos"] for x in examples], [x["neg"][0] for x in examples]]

    def step(_: int) -> float:
        encoder.train()
        features = [{k: v.to(args.device) if hasattr(v, "to") else v for k, v in encoder.preprocess(c).items()}
                    for c in columns]
        loss = sum(loss_fn(features, None).values())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def before_step(args: argparse.Namespace, model, tokenizer, examples: list[dict]):
    """The harness step before the fused head (a minimal reproduction of the old Loop.batch_loss + train)."""
    from harness.device import accepted_inputs, autocast
    from harness.encoder import splade_pool
    from harness.objectives import get_objective
    from harness.train import _optimizer, batch_indices

    run = run_config(args)
    objective = get_objective("splade")(run, tokenizer, device=args.device)
    model.to(args.device)
    inputs = accepted_inputs(model)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": run["train.weight_decay"]},
                                   {"params": plain, "weight_decay": 0.0}], lr=run["train.lr"])  # per-tensor loop
    schedule = _optimizer(run, torch.nn.Linear(1, 1))[1].lr_lambdas[0]  # the harness's learning-rate factor
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    limits = {"query": run["train.query_max_length"], "document": run["train.doc_max_length"]}

    def step(number: int) -> float:
        model.train()
        idx = batch_indices(number - 1, len(examples), run["train.batch_size"], run["seed"])
        batch = objective.collate([examples[i] for i in idx])
        texts = batch["texts"]
        groups = {kind: [r for r in texts if objective.roles[r] == kind] for kind in ("query", "document")}
        reps = {}
        for kind, roles in groups.items():
            enc = tokenizer([t for r in roles for t in texts[r]], padding=True, truncation=True,
                            max_length=limits[kind], return_tensors="pt")
            features = {k: v.to(args.device) for k, v in enc.items() if k in inputs}
            with autocast(args.device, run["train.bf16"]):
                pooled = splade_pool(model(**features).logits, features["attention_mask"])
            offset = 0
            for r in roles:
                reps[r] = pooled[offset:offset + len(texts[r])]
                offset += len(texts[r])
        loss, _ = objective.loss(batch, reps, number)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), run["train.max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def now_step(args: argparse.Namespace, model, tokenizer, examples: list[dict]):
    """harness.train.Loop.optimise: the step fine_tune runs."""
    from harness.objectives import get_objective
    from harness.train import Dist, Loop, _optimizer

    run = run_config(args)
    objective = get_objective("splade")(run, tokenizer, device=args.device)
    model.to(args.device)
    optimizer, scheduler = _optimizer(run, model)
    loop = Loop(run, model, tokenizer, objective, examples, lambda m, t: {}, Path(tempfile.gettempdir()), "bench",
                Dist(device=args.device), lambda _: None)
    step = lambda number: float(loop.optimise(number, optimizer, scheduler))  # noqa: E731
    step.fused = loop.module.parts is not None
    return step


# -------------------------------------------------------------------------------------------
# Measurement
# -------------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def matmul_timer(args: argparse.Namespace, tokens: int):
    """A square fp32 matmul with the MLM decoder's multiply-adds (n^3 = tokens x |V| x H)."""
    n = round((tokens * args.vocab * args.hidden) ** (1 / 3))
    gen = torch.Generator().manual_seed(args.seed)
    a = torch.randn(n, n, generator=gen).to(args.device)
    b = torch.randn(n, n, generator=gen).to(args.device)

    def timed() -> float:
        sync(args.device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(args.device)
        return time.perf_counter() - start

    timed()
    return n, 2.0 * n**3, timed


VARIANTS = {"st": ("sentence-transformers", st_step), "before": ("harness before", before_step),
            "now": ("harness now", now_step)}


def measure(args: argparse.Namespace) -> dict:
    tokenizer = word_tokenizer(args.vocab)
    examples = training_examples(args)
    flops = step_flops(args)
    n, mm_flops, mm_timed = matmul_timer(args, flops["tokens"])
    steps, first_loss, times = {}, {}, {k: [] for k in args.variants}
    for key in args.variants:
        steps[key] = VARIANTS[key][1](args, random_mlm(args), tokenizer, examples)
        torch.manual_seed(args.seed)  # the same dropout masks at step 1: the two harness losses agree
        first_loss[key] = steps[key](1)
        for s in range(2, args.warmup + 1):
            steps[key](s)
    mm_times, counter = [], {k: args.warmup for k in args.variants}
    for _ in range(args.rounds):
        mm_times += [mm_timed() for _ in range(3)]
        for key in args.variants:
            for _ in range(args.steps):
                counter[key] += 1
                sync(args.device)
                start = time.perf_counter()
                steps[key](counter[key])
                sync(args.device)
                times[key].append(time.perf_counter() - start)
    return {"flops": flops, "matmul_n": n, "matmul_gflops": mm_flops / statistics.median(mm_times) / 1e9,
            "ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}, "first_loss": first_loss,
            "fused": getattr(steps.get("now"), "fused", None), "timed": len(next(iter(times.values())))}


def table(args: argparse.Namespace, m: dict) -> list[list[str]]:
    flops, mm = m["flops"], m["matmul_gflops"]
    base = m["ms"].get("st")
    rows = [[f"fp32 matmul {m['matmul_n']} x {m['matmul_n']} (= decoder multiply-adds)", "", "", f"{mm:.1f}",
             "100%", "", ""]]
    for key, ms in m["ms"].items():
        rate = flops["counted"] / (ms / 1e3) / 1e9
        rows.append([VARIANTS[key][0], f"{ms:.1f}", f"{flops['tokens'] / (ms / 1e3):,.0f}", f"{rate:.1f}",
                     f"{rate / mm:.0%}", f"{base / ms:.2f}x" if base else "", f"{m['first_loss'][key]:.6f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    import sentence_transformers
    import transformers

    print(f"machine: {device_name()}; torch.get_num_threads() = {torch.get_num_threads()}; load {load()}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"sentence-transformers {sentence_transformers.__version__}; device {args.device}")
    print(f"model: random BertForMaskedLM, {args.layers} layers, hidden {args.hidden}, {args.heads} heads, "
          f"intermediate {args.intermediate}, |V| {args.vocab:,}, seed {args.seed}")
    print(f"batch: {args.queries} queries x {args.query_tokens} tokens + {2 * args.queries} documents x "
          f"{args.doc_tokens} tokens (1 positive + 1 hard negative each)")
    m = measure(args)
    flops = m["flops"]
    print(tabulate(table(args, m), tablefmt="github", disable_numparse=True, headers=[
        "variant", "ms/step", "tokens/s", "GFLOP/s", "of matmul", "speed vs sentence-transformers", "loss at step 1"]))
    print(f"medians of {m['timed']} steps per variant ({args.rounds} rounds of {args.steps}, after {args.warmup} "
          f"warm-up steps); {flops['tokens']:,} tokens per step, {flops['counted'] / 1e9:.2f} GFLOP counted per step "
          f"(dense forward + backward: 6 x weights x tokens, attention, decoder 6 x tokens x |V| x H)")
    if "now" in m["ms"]:
        executed = flops["fused_executed"] / (m["ms"]["now"] / 1e3) / 1e9
        print(f"harness now: fused head {'on' if m['fused'] else 'OFF (plain path)'}; its decoder backward is "
              f"sparse, so it executes at most {flops['fused_executed'] / 1e9:.2f} GFLOP per step: "
              f"{executed:.1f} GFLOP/s executed ({executed / m['matmul_gflops']:.0%} of matmul)")
    print("loss at step 1: the harness rows share seed, batch and dropout masks (they agree to float rounding); "
          "sentence-transformers' SpladeLoss has no FLOPS warm-up, so its value differs")
    print(f"load at end: {load()}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
