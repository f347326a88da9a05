"""Local BEIR-format test collections: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Referenced as ``beir:/path/to/dir`` or ``beir:/path/to/dir:split`` (default split ``test``).
The folder's language (for BM25's analysis and the target tokenizer) is the config key
``dataset_lang`` when set, else the first line of a ``lang`` file in the folder (e.g. ``ko``), else
"und". Errors name the file and line of the problem.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Iterator

from harness.data.base import Collection
from harness.util import HarnessError

PREFIX = "beir:"
LANG_FILE = "lang"
_LANG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def parse_reference(ref: str) -> tuple[Path, str]:
    """``beir:/dir[:split]`` -> (dir, split). A trailing ``:name`` is a split unless the whole is a dir."""
    body = ref[len(PREFIX):] if ref.startswith(PREFIX) else ref
    head, sep, tail = body.rpartition(":")
    if sep and tail and "/" not in tail and not Path(body).is_dir():
        return Path(head).expanduser(), tail
    return Path(body).expanduser(), "test"


def folder_lang(directory: Path | str) -> str | None:
    """The language code in the folder's ``lang`` file (None without one)."""
    path = Path(directory) / LANG_FILE
    if not path.is_file():
        return None
    lines = _text(path, path.read_bytes(), 1).split()
    code = lines[0] if lines else ""
    if not _LANG.fullmatch(code):
        raise HarnessError(f"{path}: expected a language code such as 'ko' or 'zh', got {code!r}: fix the file")
    return code


def _text(path: Path, raw: bytes, number: int) -> str:
    """One line (or a whole small file) decoded as UTF-8; a BOM at the start of a file is dropped."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise HarnessError(f"{path.name} line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                           f"{err.start + 1}): save the file as UTF-8") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, decoded line by line so an error names its line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            yield number, _text(path, raw, number)


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise HarnessError(f"{path} not found: a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise HarnessError(f"{path.name} line {number}: invalid JSON ({err.msg}): fix or remove the line") from None
        if not isinstance(row, dict):
            raise HarnessError(f"{path.name} line {number}: expected a JSON object: fix or remove the line")
        yield number, row


def _field(path: Path, number: int, row: dict, key: str) -> str:
    if key not in row:
        raise HarnessError(f"{path.name} line {number}: missing '{key}': every row needs '_id' and 'text'")
    value = row[key]
    if not isinstance(value, (str, int)):
        raise HarnessError(f"{path.name} line {number}: '{key}' must be a string: fix the row")
    return str(value)


def read_texts(path: Path, with_title: bool) -> dict[str, str]:
    texts: dict[str, str] = {}
    for number, row in _jsonl(path):
        doc_id, text = _field(path, number, row, "_id"), _field(path, number, row, "text")
        if doc_id in texts:
            raise HarnessError(f"{path.name} line {number}: duplicate _id '{doc_id}': ids must be unique")
        title = str(row.get("title") or "").strip() if with_title else ""
        texts[doc_id] = f"{title}\n{text}" if title else text  # BEIR convention: title + text
    return texts


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        splits = sorted(p.stem for p in path.parent.glob("*.tsv"))
        raise HarnessError(f"{path} not found: choose a split with beir:DIR:SPLIT (available: {', '.join(splits) or 'none'})")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        cols = line.rstrip("\r\n").split("\t")
        if number == 1 and not cols[-1].strip().lstrip("-").isdigit():
            continue  # header line (query-id, corpus-id, score)
        if not line.strip():
            continue
        if len(cols) != 3 or not cols[2].strip().lstrip("-").isdigit():
            raise HarnessError(f"qrels/{path.name} line {number}: expected 'query-id<TAB>corpus-id<TAB>integer score'")
        qrels.setdefault(cols[0], {})[cols[1]] = int(cols[2])
    return qrels


def load_beir(directory: Path | str, split: str = "test", lang: str | None = None) -> Collection:
    """The folder's collection; ``lang`` None reads the folder's ``lang`` file ("und" without one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise HarnessError(f"BEIR folder {directory} does not exist: pass beir:/path/to/dir[:split]")
    lang = lang or folder_lang(directory) or "und"
    corpus = read_texts(directory / "corpus.jsonl", with_title=True)
    queries = read_texts(directory / "queries.jsonl", with_title=False)
    qrels_path = directory / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_path)
    for name, rows, what in (("corpus.jsonl", corpus, "documents"), ("queries.jsonl", queries, "queries"),
                             (f"qrels/{split}.tsv", qrels, "judgements")):
        if not rows:  # before the id check below, whose message would mislead
            raise HarnessError(f"{directory / name} holds no {what}: fill it, or point beir: at another folder")
    qrels = _drop_dangling(qrels_path, qrels, queries, corpus)
    queries = {q: t for q, t in queries.items() if q in qrels}  # BEIR evaluates judged queries only
    return Collection(name=f"beir:{directory.name}:{split}", lang=lang, corpus=corpus, queries=queries,
                      qrels=qrels, source=f"local BEIR folder {directory}", licence="see the folder")


def _drop_dangling(path: Path, qrels: dict, queries: dict, corpus: dict) -> dict[str, dict[str, int]]:
    """Judgements of unknown queries/documents are dropped with a warning (some public BEIR sets have them)."""
    kept = {q: {d: s for d, s in docs.items() if d in corpus} for q, docs in qrels.items() if q in queries}
    kept = {q: docs for q, docs in kept.items() if docs}
    dropped = sum(map(len, qrels.values())) - sum(map(len, kept.values()))
    if not kept:
        raise HarnessError(f"qrels/{path.name}: no judgement names a query of queries.jsonl and a document of "
                           f"corpus.jsonl: check that the ids match")
    if dropped:
        warnings.warn(f"qrels/{path.name}: dropped {dropped} judgements naming unknown query or corpus ids")
    return kept
