"""How good a query generator is as a teacher: it reranks BM25's top 100 on a dev collection.

``harness teacher eval --lang L``: BM25 (the harness's own, ``bm25-lite``, analysing as the profile's
tokenizer recipe does) retrieves ``eval.top_k`` passages per query of ``libreoffice-help-{lang}-dev``
(dev pages only: never a training page, never a test collection); the teacher reorders them by
``log P(q | p)`` averaged over the query's tokens, the score ``qg-distill`` distils (``Teacher.score``).
MRR@10 (and nDCG@10, Recall@100) of both rankings, a few generated queries next to the real
headings, and the timing are printed and written atomically to ``<teacher dir>.eval.json`` beside the
cached teacher (or to ``--out``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.util import Echo, cache_dir, write_json_atomic

if TYPE_CHECKING:
    import torch

METRICS = ("mrr@10", "ndcg@10", "recall@100")


def encode_passages(teacher: Any, passages: list[str], batch: int = 32) -> list["torch.Tensor"]:
    """The teacher encoder's last hidden states of each passage (unpadded), as ``Teacher.inputs`` feeds it."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(passages), batch):
            enc = teacher.inputs(passages[start:start + batch])
            hidden = teacher.model.get_encoder()(**enc).last_hidden_state
            out += [h[m.bool()] for h, m in zip(hidden, enc["attention_mask"])]
    return out


def score_query(teacher: Any, query: str, states: list["torch.Tensor"]) -> "torch.Tensor":
    """Mean per-token log P(query | passage) for every passage of ``states`` (cached encoder outputs):
    the numbers ``Teacher.score`` gives, with each passage encoded once."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    n, width = len(states), max(s.shape[0] for s in states)
    hidden = torch.zeros(n, width, states[0].shape[1], dtype=states[0].dtype)
    mask = torch.zeros(n, width, dtype=torch.long)
    for i, s in enumerate(states):
        hidden[i, :s.shape[0]], mask[i, :s.shape[0]] = s, 1
    labels = teacher.tokenizer(text_target=[query], truncation=True, max_length=teacher.max_length,
                               return_tensors="pt")["input_ids"].repeat(n, 1)
    with torch.no_grad():
        logits = teacher.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden.to(teacher.device)),
                               attention_mask=mask.to(teacher.device), labels=labels.to(teacher.device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1).to(teacher.device))
    return logp.squeeze(-1).mean(1).cpu()


def rerank(teacher: Any, collection: Any, ranking: dict[str, dict[str, float]], progress: bool = True) -> dict:
    """``ranking``'s candidates of each query, rescored by the teacher, best first (the harness's runs
    are ordered dicts: the order is the ranking; ties keep the BM25 order)."""
    from tqdm.auto import tqdm

    doc_ids = sorted({d for docs in ranking.values() for d in docs})
    states = dict(zip(doc_ids, encode_passages(teacher, [collection.corpus[d] for d in doc_ids])))
    out = {}
    for qid in tqdm(sorted(ranking), desc="rerank", unit="query", disable=not progress):
        cands = list(ranking[qid])  # BM25's order
        if not cands:  # BM25 found nothing (no query term in the collection)
            out[qid] = {}
            continue
        scores = score_query(teacher, collection.queries[qid], [states[d] for d in cands]).tolist()
        order = sorted(range(len(cands)), key=lambda i: -scores[i])  # stable: ties keep BM25's order
        out[qid] = {cands[i]: scores[i] for i in order}
    return out


def samples(teacher: Any, collection: Any, n: int, max_new_tokens: int) -> list[dict[str, str]]:
    """``n`` dev passages spread evenly over the collection: their first words, heading and generated query."""
    queries_of = {d: collection.queries[q] for q, docs in collection.qrels.items() for d in docs}
    docs = sorted(queries_of)
    picked = [docs[i * len(docs) // n] for i in range(n)] if docs else []
    generated = teacher.generate([collection.corpus[d] for d in picked], collection.lang, max_new_tokens)
    return [{"doc": d, "passage": _first_words(collection.corpus[d]), "heading": queries_of[d], "generated": g}
            for d, g in zip(picked, generated)]


def _first_words(text: str, chars: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " ..."


def evaluate_teacher(lang: str, *, teacher_ref: str | None = None, profile: str = "pocket", settings: Any = None,
                     n_samples: int = 5, out: str | Path | None = None, progress: bool = True,
                     echo: Echo = print) -> dict[str, Any]:
    """BM25 vs BM25 reranked by the teacher on ``libreoffice-help-{lang}-dev``; the record, also written."""
    import time

    import torch

    from harness.config import load_config
    from harness.data import load_collection
    from harness.evaluate import evaluate
    from harness.objectives.qg_distill import Teacher
    from harness.references import bm25_retrieve, reference_run
    from harness.teacher import check_lang, pocket_teacher_dir

    config = load_config(profile)
    path = Path(teacher_ref) if teacher_ref else pocket_teacher_dir(check_lang(lang), settings, progress=progress)
    dataset = f"libreoffice-help-{lang}-dev"
    collection = load_collection(dataset)
    run = reference_run(config, "bm25-lite", dataset, lang)
    start = time.perf_counter()
    ranking, info = bm25_retrieve(run, collection)
    teacher = Teacher(str(path), max_length=config["train.doc_max_length"])
    reranked = rerank(teacher, collection, ranking, progress)
    seconds = time.perf_counter() - start
    scores = {name: evaluate(collection.qrels, r, metrics=METRICS).mean for name, r in
              (("bm25", ranking), ("teacher_rerank", reranked))}
    record = {"lang": lang, "dataset": dataset, "queries": len(collection.queries), "docs": len(collection.corpus),
              "teacher": str(path), "bm25": {**run["method_params"], **info}, "candidates": config["eval.top_k"],
              "metrics": scores, "seconds": round(seconds, 1), "threads": torch.get_num_threads(),
              "samples": samples(teacher, collection, n_samples, config["train.query_max_length"])}
    target = Path(out) if out else cache_dir("teachers") / f"{path.name}.eval.json"
    write_json_atomic(target, record)
    record["written"] = str(target)
    for line in report_lines(record):
        echo(line)
    return record


def report_lines(record: dict[str, Any]) -> list[str]:
    m = record["metrics"]
    lines = [f"{record['dataset']} ({record['queries']} queries, {record['docs']} passages; BM25 top "
             f"{record['candidates']} reranked by mean log P(q|p))"]
    for name in METRICS:
        lines.append(f"  {name:<10} bm25 {m['bm25'][name]:.4f}   teacher rerank {m['teacher_rerank'][name]:.4f}")
    lines.append("generated queries (passage -> heading | generated):")
    lines += [f"  {s['passage']}\n    -> {s['heading']} | {s['generated']}" for s in record["samples"]]
    lines.append(f"-> {record['written']}")
    return lines
