"""Writing a test collection out for other tools (`harness data export NAME --format F DIR`).

- ``beir``: ``corpus.jsonl`` (``_id``, ``title`` "", ``text``), ``queries.jsonl`` (``_id``, ``text``),
  ``qrels/test.tsv`` (``query-id corpus-id score`` with a header) and a ``lang`` file: the layout
  ``harness.data.beir`` reads, so ``beir:DIR`` loads it back unchanged.
- ``trec``: ``topics.tsv`` (``qid<TAB>query``, whitespace runs in a query folded to one space; the
  TSV topic format of Anserini/Pyserini), ``qrels.trec`` (``qid 0 docid rel``) and ``corpus.jsonl``
  (``id``, ``contents``: Pyserini's JsonCollection).
- ``mteb``: the BEIR layout plus ``qrels/test.jsonl`` and a ``README.md`` whose YAML ``configs``
  (``corpus``, ``queries``, ``default`` = qrels, split ``test``) are what ``datasets.load_dataset(DIR,
  config)`` and so mteb's ``RetrievalDatasetLoader`` (``AbsTaskRetrieval.load_data``) read: a custom
  retrieval task points its ``dataset={"path": DIR, "revision": ...}`` at the folder.

Every export is written into a temporary folder and swapped into place whole.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from harness.data.base import Collection
from harness.data.beir import LANG_FILE
from harness.util import HarnessError, atomic_dir

SPLIT = "test"


def export_collection(collection: Collection, directory: Path | str, fmt: str, *, force: bool = False) -> list[Path]:
    """Write ``collection`` to ``directory`` in format ``fmt``; the files written (relative paths)."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown export format '{fmt}': use one of {', '.join(FORMATS)}")
    if not collection.queries or not collection.qrels:
        raise HarnessError(f"dataset '{collection.name}' is not a test collection (no queries or qrels): "
                           f"export a dataset whose kind is 'test collection' in `harness data list`")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not force:
        raise HarnessError(f"{directory} exists and is not empty: choose another folder or pass --force to replace it")
    with atomic_dir(directory) as tmp:
        FORMATS[fmt](collection, tmp)
        written = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
    return written


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_beir(collection: Collection, root: Path) -> None:
    _jsonl(root / "corpus.jsonl", [{"_id": d, "title": "", "text": t} for d, t in collection.corpus.items()])
    _jsonl(root / "queries.jsonl", [{"_id": q, "text": t} for q, t in collection.queries.items()])
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{int(r)}" for q, docs in collection.qrels.items() for d, r in docs.items()]
    bad = [x for q, docs in collection.qrels.items() for x in (q, *docs) if "\t" in x or "\n" in x]
    if bad:
        raise HarnessError(f"ids with tabs or newlines cannot go into qrels/{SPLIT}.tsv: {bad[:3]!r}")
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "qrels" / f"{SPLIT}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if collection.lang and collection.lang != "und":
        (root / LANG_FILE).write_text(collection.lang + "\n", encoding="utf-8")


def write_trec(collection: Collection, root: Path) -> None:
    ids = [x for q, docs in collection.qrels.items() for x in (q, *docs)] + list(collection.queries)
    bad = [x for x in ids if not x or any(c.isspace() for c in x)]
    if bad:
        raise HarnessError(f"dataset '{collection.name}': TREC files need ids without whitespace, got {bad[:3]!r}")
    # the lines of harness.evaluate.write_trec_qrels (a later layer than data/, so not imported here)
    qrels = [f"{q} 0 {d} {int(r)}" for q, docs in collection.qrels.items() for d, r in docs.items()]
    (root / "qrels.trec").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    topics = [f"{q}\t{' '.join(t.split())}" for q, t in collection.queries.items()]
    (root / "topics.tsv").write_text("\n".join(topics) + "\n", encoding="utf-8")
    _jsonl(root / "corpus.jsonl", [{"id": d, "contents": t} for d, t in collection.corpus.items()])


MTEB_CARD = f"""---
configs:
- config_name: corpus
  data_files:
  - split: {SPLIT}
    path: corpus.jsonl
- config_name: queries
  data_files:
  - split: {SPLIT}
    path: queries.jsonl
- config_name: default
  data_files:
  - split: {SPLIT}
    path: qrels/{SPLIT}.jsonl
---
"""


def write_mteb(collection: Collection, root: Path) -> None:
    write_beir(collection, root)
    _jsonl(root / "qrels" / f"{SPLIT}.jsonl", [{"query-id": q, "corpus-id": d, "score": int(r)}
                                               for q, docs in collection.qrels.items() for d, r in docs.items()])
    body = (f"# {collection.name}\n\nExported by sparse-transfer-harness (`harness data export`). "
            f"Language: {collection.lang}. Source: {collection.source}. Licence: {collection.licence}.\n")
    (root / "README.md").write_text(MTEB_CARD + "\n" + body, encoding="utf-8")


FORMATS: dict[str, Callable[[Collection, Path], None]] = {"beir": write_beir, "trec": write_trec, "mteb": write_mteb}
