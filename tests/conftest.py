"""Shared fixtures: tiny tokenizers of the three styles, built in memory with `tokenizers`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.checks import make_bytebpe, make_sentencepiece, make_wordpiece  # noqa: F401  (used by tests)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


SOURCE_WORDS = ["the", "city", "capital", "paris", "##s", "##ing", "run", "7", ".", ",", "!", "Paris"]


@pytest.fixture
def tiny_context():
    """A MethodContext: WordPiece source (d=8) and a SentencePiece target sharing some tokens."""
    import torch

    from harness.api import MethodContext

    source = make_wordpiece(SOURCE_WORDS)
    target = make_sentencepiece(["▁the", "▁city", "s", "ing", "▁서울", "▁도시", "▁7", ".", "▁PARIS", "수도"])
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(len(source), 8, generator=gen)
    bias = torch.randn(len(source), generator=gen)
    return MethodContext(source_tokenizer=source, target_tokenizer=target, source_embeddings=emb,
                         source_bias=bias, lang="ko", seed=0)


def fake_pipeline(monkeypatch, outcome):
    """Replace ``pipeline.execute`` by a model-free stand-in that writes real records.

    ``outcome(run)`` returns (per-query scores {metric: {qid: score}}, extra record fields) or raises;
    an ok record is reported instead of run again, as the real ``execute`` does. Returns the list of
    runs executed.
    """
    from harness import pipeline
    from harness.evaluate import EvalResult
    from harness.runs import RunDir, write_record

    calls = []

    def execute(run, *, runs_dir, force=False, echo=print, save_model=True):
        calls.append(run)
        folder = RunDir.for_config(runs_dir, run)
        if not force and folder.recorded() is not None:
            return folder.result()
        per_query, extra = outcome(run)
        mean = {m: sum(v.values()) / len(v) for m, v in per_query.items()}
        evaluation = EvalResult(mean=mean, per_query=per_query, n_queries=len(next(iter(per_query.values()))),
                                metrics=tuple(per_query))
        ranking = {q: {"d1": 1.0} for q in next(iter(per_query.values()))}
        return write_record(folder, run, evaluation, ranking, {"train": 2.0, "evaluate": 1.0},
                            qrels={q: {"d1": 1} for q in ranking}, extra=extra)

    monkeypatch.setattr(pipeline, "execute", execute)
    return calls


@pytest.fixture
def write_profile(tmp_path):
    """``write_profile(yaml_text, name)`` -> the path of a profile file ``<name>.yaml`` in tmp_path."""
    def write(text: str, name: str) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return str(path)

    return write


def write_beir(root: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, list[str]],
               lang: str | None = None) -> Path:
    """A BEIR folder as published (corpus.jsonl, queries.jsonl, qrels/test.tsv with its header), plus
    the harness's optional ``lang`` file; qrels: query id -> its relevant doc ids."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        (root / name).write_text("".join(json.dumps({"_id": i, "text": t}, ensure_ascii=False) + "\n"
                                         for i, t in rows.items()), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, docs in qrels.items() for d in docs), encoding="utf-8")
    if lang:
        (root / "lang").write_text(lang + "\n")
    return root
