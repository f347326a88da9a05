"""Benchmark: exact sparse search vs brute force, SPLADE encoding speed, and mteb agreement.

    python bench/retrieval.py                 # ~100k docs x 30,522 vocab, 1,000 queries (< 3 min)
    python bench/retrieval.py --docs 20000 --skip-mteb

All ratios are measured in the same run on the same data. Brute-force baselines run on a subset
of the queries (``--brute-queries``) and are checked to return the same top-k as our search.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from harness.retrieval import default_chunk_size, estimate_peak_bytes, search  # noqa: E402

GIB = 1 << 30


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--vocab", type=int, default=30_522)
    p.add_argument("--doc-nnz", type=int, default=120)
    p.add_argument("--query-nnz", type=int, default=20)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--brute-queries", type=int, default=100, help="queries for the brute-force baselines")
    p.add_argument("--encode-docs", type=int, default=128, help="texts for the encoding speed test (0: skip)")
    p.add_argument("--mteb-docs", type=int, default=200)
    p.add_argument("--mteb-queries", type=int, default=20)
    p.add_argument("--skip-mteb", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


# -------------------------------------------------------------------------------------------
# Synthetic SPLADE-like data
# -------------------------------------------------------------------------------------------
def term_probabilities(vocab: int) -> np.ndarray:
    """Zipf-like term popularity (SPLADE activations are skewed: a few terms fire very often)."""
    p = 1.0 / (np.arange(vocab) + 20.0)
    return p / p.sum()


def synthetic_matrix(rng: np.random.Generator, n: int, vocab: int, nnz: int, p: np.ndarray) -> sp.csr_matrix:
    """n rows with ~nnz distinct terms each, positive log1p-like weights, float32."""
    cdf = np.cumsum(p)
    cols = np.searchsorted(cdf, rng.random(n * nnz) * cdf[-1]).astype(np.int32)
    rows = np.repeat(np.arange(n, dtype=np.int32), nnz)
    weights = rng.gamma(2.0, 0.5, size=n * nnz).astype(np.float32)
    m = sp.coo_matrix((weights, (rows, cols)), shape=(n, vocab)).tocsr()
    m.sum_duplicates()  # a term drawn twice becomes one heavier weight
    return m


# -------------------------------------------------------------------------------------------
# Baselines
# -------------------------------------------------------------------------------------------
def brute_force_dense(queries: sp.csr_matrix, docs: sp.csr_matrix, k: int, block: int = 4096):
    """Dense torch matmul over document blocks; returns (top scores, top ids, matmul-only seconds)."""
    import torch

    q = torch.from_numpy(queries.toarray())
    scores = torch.empty(q.shape[0], docs.shape[0])
    matmul_s = 0.0
    for start in range(0, docs.shape[0], block):
        d = torch.from_numpy(docs[start : start + block].toarray())
        t = time.perf_counter()
        scores[:, start : start + block] = q @ d.T
        matmul_s += time.perf_counter() - t
    top = scores.topk(k, dim=1)
    return top.values.numpy(), top.indices.numpy(), matmul_s


def torch_sparse_all_docs(queries: sp.csr_matrix, docs: sp.csr_matrix, k: int):
    """torch CSR documents @ dense queries (scores every document)."""
    import torch

    d = torch.sparse_csr_tensor(
        torch.from_numpy(docs.indptr.astype(np.int64)), torch.from_numpy(docs.indices.astype(np.int64)),
        torch.from_numpy(docs.data), size=docs.shape,
    )
    scores = torch.sparse.mm(d, torch.from_numpy(queries.toarray()).T.contiguous()).T
    return scores.topk(k, dim=1).values.numpy()


def same_top_scores(run: dict, query_ids: list[str], top_scores: np.ndarray) -> bool:
    """Our top-k score lists equal the baseline's (ids may legitimately differ only within ties)."""
    for qid, want in zip(query_ids, top_scores):
        got = np.array(list(run[qid].values()), dtype=np.float64)
        want = want[want > 0][: len(got)]
        if len(got) != len(want) or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
            return False
    return True


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)  # Linux: KiB


# -------------------------------------------------------------------------------------------
# Sections
# -------------------------------------------------------------------------------------------
def bench_search(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    p = term_probabilities(args.vocab)
    docs, t_gen = timed(synthetic_matrix, rng, args.docs, args.vocab, args.doc_nnz, p)
    queries = synthetic_matrix(rng, args.queries, args.vocab, args.query_nnz, p)
    doc_ids = [f"d{i}" for i in range(args.docs)]
    query_ids = [f"q{i}" for i in range(args.queries)]
    notes = [
        f"synthetic corpus: {args.docs:,} docs x {args.vocab:,} vocab, {docs.nnz / args.docs:.0f} nnz/doc; "
        f"{args.queries:,} queries, {queries.nnz / args.queries:.0f} nnz/query (built in {t_gen:.1f}s)"
    ]

    rss_before = peak_rss_gib()
    run, t_ours = timed(search, queries, docs, args.k, doc_ids=doc_ids, query_ids=query_ids, device="cpu")
    rss_after = peak_rss_gib()
    chunk = default_chunk_size(args.docs)

    n_b = min(args.brute_queries, args.queries)
    sub, sub_ids = queries[:n_b], query_ids[:n_b]
    sub_run, t_ours_sub = timed(search, sub, docs, args.k, doc_ids=doc_ids, query_ids=sub_ids, device="cpu")
    (dense_scores, _, matmul_s), t_dense = timed(brute_force_dense, sub, docs, args.k)
    sparse_scores, t_tsparse = timed(torch_sparse_all_docs, sub, docs, args.k)
    exact = same_top_scores(sub_run, sub_ids, dense_scores) and same_top_scores(sub_run, sub_ids, sparse_scores)

    rows = [
        ["ours: exact sparse search (scipy, CPU)", args.queries, args.queries / t_ours, 1.0],
        ["ours, same query subset", n_b, n_b / t_ours_sub, (n_b / t_ours_sub) / (args.queries / t_ours)],
        ["brute force: dense torch matmul incl. densify", n_b, n_b / t_dense, (n_b / t_dense) / (args.queries / t_ours)],
        ["brute force: dense torch matmul only", n_b, n_b / matmul_s, (n_b / matmul_s) / (args.queries / t_ours)],
        ["torch sparse CSR @ dense (all docs scored)", n_b, n_b / t_tsparse, (n_b / t_tsparse) / (args.queries / t_ours)],
    ]
    print_table(rows, ["method", "queries", "queries/s", "relative to ours"])
    est = estimate_peak_bytes(args.docs, docs.nnz, args.vocab, chunk)
    est_1m = estimate_peak_bytes(1_000_000, 1_000_000 * args.doc_nnz, args.vocab, default_chunk_size(1_000_000))
    notes += [
        f"exact top-{args.k} identical to both brute-force baselines on {n_b} queries: {exact}",
        f"query chunk: {chunk} (score block budget 1 GiB); estimated peak beyond inputs {est / GIB:.2f} GiB; "
        f"process peak RSS {rss_before:.2f} -> {rss_after:.2f} GiB during search",
        f"estimate for 1M docs x {args.doc_nnz} nnz: chunk {default_chunk_size(1_000_000)}, "
        f"peak beyond inputs {est_1m / GIB:.2f} GiB (inputs ~{1_000_000 * args.doc_nnz * 8 / GIB:.2f} GiB)",
    ]
    print("\n".join(notes))


def bench_encoding(args: argparse.Namespace) -> None:
    if args.encode_docs <= 0:
        return
    encoder, texts = tiny_encoder_and_texts(args.encode_docs, seed=args.seed)
    encoder.encode(texts[:8], kind="document")  # warm-up
    docs_csr, t_doc = timed(encoder.encode, texts, kind="document", batch_size=32)
    queries = [" ".join(t.split()[:6]) for t in texts]
    _, t_query = timed(encoder.encode, queries, kind="query", batch_size=64)
    rows = [
        ["documents (~60 words, <=256 tokens)", len(texts), len(texts) / t_doc, docs_csr.nnz / len(texts)],
        ["queries (6 words)", len(queries), len(queries) / t_query, float("nan")],
    ]
    print("\nSPLADE encoding, tiny random BERT (2 layers, hidden 128, vocab 30,522; splade-tiny's shape), CPU")
    print_table(rows, ["input", "texts", "texts/s", "nnz/vector"])


def tiny_encoder_and_texts(n_texts: int, seed: int = 0, vocab_size: int = 30_522):
    """A splade-tiny-shaped random BERT, a synthetic WordPiece vocabulary, texts over it."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    from harness.encoder import SpladeEncoder

    rng = np.random.default_rng(seed)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = sorted({"".join(rng.choice(list(letters), size=rng.integers(3, 9))) for _ in range(vocab_size * 2)})
    vocab = (specials + list(letters) + words)[:vocab_size]
    ids = {w: i for i, w in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
    )
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=512)
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.normal_(-2.0, 1.0)  # sparse-ish activations like a trained SPLADE
    word_list = vocab[31:]
    texts = [" ".join(rng.choice(word_list, size=rng.integers(30, 90))) for _ in range(n_texts)]
    return SpladeEncoder(model, tokenizer, device="cpu"), texts


def bench_mteb(args: argparse.Namespace) -> None:
    print("\nmteb agreement (same saved model, in-memory retrieval task)")
    if args.skip_mteb:
        print("skipped: --skip-mteb")
        return
    try:
        import mteb  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        print(f"skipped: mteb cannot be imported ({exc})")
        return
    import tempfile

    from harness.evaluate import evaluate

    encoder, texts = tiny_encoder_and_texts(args.mteb_docs + args.mteb_queries, seed=args.seed + 1)
    docs = {f"d{i}": t for i, t in enumerate(texts[: args.mteb_docs])}
    # query i = a few words of document i, so the task has learnable signal even for a random model
    queries = {f"q{i}": " ".join(docs[f"d{i}"].split()[:8]) for i in range(args.mteb_queries)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(args.mteb_queries)}

    def ours() -> dict:
        d = encoder.encode(list(docs.values()), kind="document")
        q = encoder.encode(list(queries.values()), kind="query")
        run = search(q, d, 100, doc_ids=list(docs), query_ids=list(queries), device="cpu")
        return evaluate(qrels, run, ("ndcg@10", "mrr@10")).mean

    with tempfile.TemporaryDirectory() as tmp:
        encoder.save(Path(tmp) / "model")
        (scores, t_mteb), error = run_mteb(Path(tmp) / "model", docs, queries, qrels)
    if error:
        print(f"skipped: mteb could not evaluate offline ({error})")
        return
    ours_scores, t_ours = timed(ours)
    rows = [
        ["ours: encode + exact search + ranx", ours_scores["ndcg@10"], ours_scores["mrr@10"], t_ours],
        ["mteb.evaluate(SparseEncoder(dir))", scores["ndcg_at_10"], scores["mrr_at_10"], t_mteb],
    ]
    print(f"{len(docs):,} docs, {len(queries)} queries")
    print_table(rows, ["pipeline", "nDCG@10", "MRR@10", "seconds"])


def run_mteb(model_dir: Path, docs: dict, queries: dict, qrels: dict):
    """mteb on an in-memory task; ((scores, seconds), None) or ((None, None), reason)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import mteb
        from datasets import Dataset
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
        from mteb.abstasks.task_metadata import TaskMetadata
        from sentence_transformers import SparseEncoder

        class InMemoryRetrieval(AbsTaskRetrieval):
            metadata = TaskMetadata(
                type="Retrieval", name="HarnessBenchInMemory", main_score="ndcg_at_10", description="bench",
                reference=None, dataset={"path": "NA", "revision": "NA"}, category="t2t", eval_splits=["test"],
                eval_langs=["eng-Latn"], date=None, dialect=None, domains=None, task_subtypes=None, license=None,
                annotations_creators=None, modalities=["text"], sample_creation=None, bibtex_citation=None,
            )

            def load_data(self, num_proc=None, **kwargs) -> None:
                split = RetrievalSplitData(
                    queries=Dataset.from_list([{"id": k, "text": v} for k, v in queries.items()]),
                    corpus=Dataset.from_list([{"id": k, "text": v, "title": ""} for k, v in docs.items()]),
                    relevant_docs=qrels,
                    top_ranked=None,
                )
                self.dataset = {"default": {"test": split}}
                self.data_loaded = True

        t = time.perf_counter()
        model = SparseEncoder(str(model_dir), device="cpu")
        result = mteb.evaluate(model, InMemoryRetrieval(), cache=None, show_progress_bar=False)
        return (result.task_results[0].scores["test"][0], time.perf_counter() - t), None
    except Exception as exc:  # report why instead of failing the whole benchmark
        return (None, None), f"{type(exc).__name__}: {exc}"


def print_table(rows: list[list], headers: list[str]) -> None:
    from tabulate import tabulate

    print(tabulate(rows, headers=headers, floatfmt=".4g"))


def main() -> None:
    args = parse_args()
    t = time.perf_counter()
    print(f"exact sparse search vs brute force (CPU, {os.cpu_count()} cores)")
    bench_search(args)
    bench_encoding(args)
    bench_mteb(args)
    print(f"\ntotal {time.perf_counter() - t:.0f}s")


if __name__ == "__main__":
    main()
