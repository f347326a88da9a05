"""Benchmark the accelerator path: sharded corpus encoding, fine-tuning, SemBridge init at 250k tokens.

    python bench/gpu.py                      # bert-base size, on CUDA when available
    python bench/gpu.py --quick --device cpu # tiny sizes: a smoke run of every stage (CI runs it)

Models are random-weight BERT masked LMs of the configured size (bert-base by default: 12 layers,
hidden 768), with a synthetic word-level tokenizer: throughput does not depend on trained weights.
Every stage runs through the harness's own code, as a user's run does:

* **encode**: ``harness.index.build_index`` (SpladeEncoder, bf16 autocast on CUDA, shards written
  to disk) over synthetic documents of ``--doc-words`` words; documents/s.
* **train**: ``harness.train.fine_tune`` with the splade objective (query, positive, one mined
  negative), bf16 autocast and fp32 on the device; samples/s over the steps after ``--warmup``
  (from the curve's step-time clock, so evaluation and checkpoint writes are not counted).
* **init**: ``methods.sembridge.bridge_weights`` for a ``--init-target`` x ``--init-source`` bridge
  (d = ``--dim``, clustered unit vectors as in bench/init.py) plus the mixing of the embedding
  matrix (sparse weights x source embeddings); seconds.

The baseline column runs the same stages on the CPU in the same process, on fewer items
(``--cpu-docs``, ``--cpu-steps``, ``--cpu-init-target``), and the ratio is device rate / CPU rate.
On a CPU-only run the ratio compares two CPU measurements of different sizes: about 1x, and
how far it is from 1 shows the noise (and fixed costs) of the smaller baseline.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from bench.init import clustered_vectors, device_name, load  # noqa: E402
from harness.device import resolve_device  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cuda:1 or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes: every stage in well under a minute on a CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--vocab", type=int, default=30_522)
    p.add_argument("--docs", type=int, default=8_192, help="documents encoded on the device")
    p.add_argument("--doc-words", type=int, default=180, help="words per synthetic document (one token each)")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--encode-batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=60, help="training steps on the device")
    p.add_argument("--warmup", type=int, default=10, help="first steps left out of the training rate")
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--init-target", type=int, default=250_000)
    p.add_argument("--init-source", type=int, default=30_522)
    p.add_argument("--dim", type=int, default=1024, help="bridge vector size (bge-m3: 1024)")
    p.add_argument("--cpu-docs", type=int, default=128)
    p.add_argument("--cpu-steps", type=int, default=4)
    p.add_argument("--cpu-init-target", type=int, default=25_000)
    args = p.parse_args(argv)
    if args.quick:
        args.layers, args.hidden, args.vocab, args.docs, args.doc_words = 2, 64, 2_000, 256, 60
        args.max_length, args.encode_batch, args.steps, args.warmup, args.train_batch = 64, 32, 6, 2, 8
        args.init_target, args.init_source, args.dim = 5_000, 2_000, 64
        args.cpu_docs, args.cpu_steps, args.cpu_init_target = 64, 4, 2_000
    if args.device == "auto":
        args.device = resolve_device("auto")
    return args


# -------------------------------------------------------------------------------------------
# Synthetic model, tokenizer and text
# -------------------------------------------------------------------------------------------
def words(vocab: int) -> list[str]:
    return [f"t{i}" for i in range(vocab - len(SPECIALS))]


def word_tokenizer(vocab: int):
    """A fast BERT-style tokenizer whose every word ``t<i>`` is one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {w: i for i, w in enumerate(SPECIALS + words(vocab))}
    tok = Tokenizer(models.WordLevel(ids, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)


def random_mlm(args: argparse.Namespace):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(args.seed)
    heads = max(1, args.hidden // 64)
    config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=heads, intermediate_size=4 * args.hidden,
                        max_position_embeddings=max(512, args.max_length), pad_token_id=0)
    return BertForMaskedLM(config)


def synthetic_texts(n: int, length: int, vocab_words: list[str], rng: random.Random) -> list[str]:
    """Zipf-like word draws (a few words everywhere, most rare), like real text."""
    weights = [1.0 / (i + 20) for i in range(len(vocab_words))]
    return [" ".join(rng.choices(vocab_words, weights, k=length)) for _ in range(n)]


def training_pairs(n: int, args: argparse.Namespace, rng: random.Random) -> list[tuple[str, str]]:
    """(query, passage): the query's words occur in its passage, among filler."""
    vocab_words = words(args.vocab)
    pairs = []
    for body in synthetic_texts(n, args.doc_words, vocab_words, rng):
        query = rng.sample(body.split(), 6)
        pairs.append((" ".join(query), body))
    return pairs


# -------------------------------------------------------------------------------------------
# Stages
# -------------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def encode_rate(args: argparse.Namespace, device: str, n_docs: int) -> float:
    """Documents/s of the sharded, resumable corpus encoding (a fresh index directory)."""
    from harness.encoder import SpladeEncoder
    from harness.index import build_index

    texts = synthetic_texts(n_docs, args.doc_words, words(args.vocab), random.Random(args.seed))
    encoder = SpladeEncoder(random_mlm(args), word_tokenizer(args.vocab), device=device,
                            doc_max_length=args.max_length, max_chars=None)
    warm = texts[: min(len(texts), args.encode_batch)]
    encoder.encode(warm, kind="document", batch_size=args.encode_batch)  # kernels and allocator warm-up
    with tempfile.TemporaryDirectory() as tmp:
        sync(device)
        start = time.perf_counter()
        build_index(encoder, texts, [f"d{i}" for i in range(n_docs)], tmp, shard_size=max(1, n_docs // 4),
                    batch_size=args.encode_batch, max_active_dims=256)
        sync(device)
        return n_docs / (time.perf_counter() - start)


def train_rate(args: argparse.Namespace, device: str, steps: int, bf16: bool) -> float:
    """Samples/s of ``fine_tune`` between the curve points at ``warmup`` and ``steps``."""
    from harness.config import load_config, run_config
    from harness.train import fine_tune

    warmup = min(args.warmup, steps - 1)
    overrides = [f"train.steps={steps}", f"train.eval_every={warmup}", f"train.checkpoint_every={steps}",
                 f"train.batch_size={args.train_batch}", f"train.bf16={str(bf16).lower()}", f"device={device}",
                 f"train.doc_max_length={args.max_length}"]
    run = run_config(load_config("pocket", overrides), method="bench", method_params={}, lang="xx", seed=args.seed,
                     setting="fine-tuned")
    pairs = training_pairs(steps * args.train_batch, args, random.Random(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        result = fine_tune(run, random_mlm(args), word_tokenizer(args.vocab), pairs=pairs,
                           evaluate=lambda model, tokenizer: {}, work_dir=tmp, echo=lambda _: None)
    clock = {p["step"]: p["wall_seconds"] for p in result["curve"]}
    return (steps - warmup) * args.train_batch / (clock[steps] - clock[warmup])


def init_seconds(args: argparse.Namespace, device: str, n_target: int) -> float:
    """Seconds for the SemBridge weights plus the mixed embedding matrix of ``n_target`` rows."""
    from methods.sembridge import bridge_weights

    gen = torch.Generator().manual_seed(args.seed)
    centers = torch.nn.functional.normalize(torch.randn(2000, args.dim, generator=gen), dim=1)
    common = torch.nn.functional.normalize(torch.randn(args.dim, generator=gen), dim=0)
    source = clustered_vectors(args.init_source, centers, common, gen)
    target = clustered_vectors(n_target, centers, common, gen)
    embeddings = torch.randn(args.init_source, args.hidden, generator=gen)
    sync(device)
    start = time.perf_counter()
    weights = bridge_weights(target, source, 4.0, device=device)
    mixed = (weights.to(device) @ embeddings.to(device)) if device != "cpu" else weights @ embeddings
    sync(device)
    seconds = time.perf_counter() - start
    assert mixed.shape == (n_target, args.hidden)
    return seconds


# -------------------------------------------------------------------------------------------
# Table
# -------------------------------------------------------------------------------------------
def measure(args: argparse.Namespace) -> list[list[str]]:
    """One row per stage: the device's number, the CPU baseline's, and how many times faster the device is."""
    device, rows = args.device, []

    def row(stage: str, unit: str, value: float, baseline: float, higher_is_better: bool = True) -> None:
        ratio = value / baseline if higher_is_better else baseline / value
        rows.append([stage, unit, f"{value:,.1f}", f"{baseline:,.1f}", f"{ratio:.1f}x"])
        print(f"  {stage}: {value:,.1f} {unit} (CPU baseline {baseline:,.1f})", flush=True)

    row(f"encode {args.docs:,} docs x {args.doc_words} words, sharded to disk", "docs/s",
        encode_rate(args, device, args.docs), encode_rate(args, "cpu", args.cpu_docs))
    cpu_train = train_rate(args, "cpu", args.cpu_steps, bf16=False)
    if device.startswith("cuda"):  # autocast is CUDA-only in the harness: on a CPU bf16 = fp32
        row(f"fine-tune bf16, batch {args.train_batch}, {args.steps} steps", "samples/s",
            train_rate(args, device, args.steps, bf16=True), cpu_train)
    row(f"fine-tune fp32, batch {args.train_batch}, {args.steps} steps", "samples/s",
        train_rate(args, device, args.steps, bf16=False), cpu_train)
    cpu_init = init_seconds(args, "cpu", args.cpu_init_target) * args.init_target / args.cpu_init_target
    row(f"SemBridge init {args.init_target:,} x {args.init_source:,} (d {args.dim}) + mixing", "s",
        init_seconds(args, device, args.init_target), cpu_init, higher_is_better=False)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch_device = torch.device(args.device)
    print(f"device: {device_name(torch_device)}; torch {torch.__version__}; load {load()}")
    print(f"model: random BERT MLM, {args.layers} layers, hidden {args.hidden}, vocab {args.vocab:,}; "
          f"max length {args.max_length}; seed {args.seed}")
    rows = measure(args)
    baseline = (f"CPU, {torch.get_num_threads()} threads: {args.cpu_docs} docs, {args.cpu_steps} steps, "
                f"init {args.cpu_init_target:,} rows scaled linearly")
    print(tabulate(rows, headers=["stage", "unit", args.device, "CPU baseline", "device / CPU"], disable_numparse=True,
                   tablefmt="github"))
    print(f"baseline: {baseline}; device / CPU = how many times faster the device is. load at end: {load()}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
