"""Bilingual English -> target word lists for WECHSEL-style alignment.

Sources: FreeDict dictd files (Debian ``dict-freedict-eng-{ara,hin,jpn,rus}``: ``.index`` with
base64 offsets into the gzip-compatible ``.dict.dz``), EDICT (Debian ``edict``: EUC-JP lines
``KANJI [KANA] /(pos) gloss/gloss/.../``, Japanese -> English, read in reverse) and CEDICT
(PyPI ``cedict``: ``EnWords.csv`` English word -> free-form Chinese gloss). All pairs are
(english, target), lower-cased, deduplicated. No en-ko dictionary exists in the registries.
"""
from __future__ import annotations

import csv
import gzip
import re
from pathlib import Path

from harness.data.base import pypi_file

FREEDICT = {"ar": "dict-freedict-eng-ara", "hi": "dict-freedict-eng-hin", "ja": "dict-freedict-eng-jpn",
            "ru": "dict-freedict-eng-rus"}
# a target word must contain a character of its script (drops English glosses and examples)
SCRIPTS = {"ar": "\u0600-\u06ff", "hi": "\u0900-\u097f", "ru": "\u0400-\u04ff",
           "ja": "\u3040-\u30ff\u3400-\u9fff", "zh": "\u3400-\u9fff"}
MAX_ENGLISH_WORDS = 3  # dictionary entries, not definitions
MAX_TARGET_CHARS = 40

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}|<[^>]*>|（[^）]*）")
_SPLIT = re.compile(r"[,;、，；/]")
# cedict glosses start with part-of-speech tags ("n.", "vt.", "adj.")
_POS_TAG = re.compile(r"\b(?:n|v|vt|vi|adj|adv|art|prep|conj|pron|int|interj|num|abbr|aux|pl)\.", re.I)
_NUMBERING = re.compile(r"^\s*\d+\.\s*")


def _b64_number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def _target_words(line: str, lang: str) -> list[str]:
    script = re.compile(f"[{SCRIPTS[lang]}]")
    line = _BRACKETS.sub(" ", _NUMBERING.sub("", line)).replace("~", " ")
    words = [" ".join(w.split()).strip(" .-") for w in _SPLIT.split(line)]
    if lang == "zh":  # Chinese words carry no spaces: what is left around them is tags and English
        words = [t for w in words for t in _POS_TAG.sub(" ", w).split() if re.fullmatch(f"[{SCRIPTS[lang]}·]+", t)]
    return [w for w in words if w and len(w) <= MAX_TARGET_CHARS and script.search(w)]


def _keep_english(word: str) -> bool:
    return 0 < len(word.split()) <= MAX_ENGLISH_WORDS and not word.startswith("00database")


def freedict_pairs(root: Path, lang: str) -> list[tuple[str, str]]:
    """(english headword, target word) pairs of a FreeDict eng-X dictd dictionary."""
    base = root / "usr/share/dictd" / FREEDICT[lang].removeprefix("dict-")
    text = gzip.decompress(Path(f"{base}.dict.dz").read_bytes())  # dictzip is valid gzip
    pairs = []
    for line in Path(f"{base}.index").read_text(encoding="utf-8").splitlines():
        head, offset, length = line.rsplit("\t", 2)
        head = head.strip().lower()
        if not _keep_english(head):
            continue
        start = _b64_number(offset)
        entry = text[start: start + _b64_number(length)].decode("utf-8", "replace").splitlines()
        for body_line in entry[1:]:  # line 0 repeats the headword with pronunciation
            if body_line.strip().startswith(('"', "Note:", "see:", "Synonym")):
                continue  # usage examples and cross-references
            pairs.extend((head, w) for w in _target_words(body_line, lang))
    return pairs


def edict_pairs(root: Path) -> list[tuple[str, str]]:
    """(english gloss, japanese headword) pairs from EDICT's common ("(P)") entries; first written form.

    The full file gives ~460k mostly rare or phrasal pairs; alignment wants frequent words.
    """
    pairs = []
    japanese_script = re.compile(f"[{SCRIPTS['ja']}]")
    raw = (root / "usr/share/edict/edict").read_bytes().decode("euc_jp", "replace")
    for line in raw.splitlines()[1:]:  # line 0 is the file header
        if "/(P)/" not in line:
            continue
        head, _, glosses = line.partition(" /")
        japanese = head.split(" [")[0].split(";")[0]
        japanese = re.sub(r"\(.*?\)", "", japanese).strip()
        if not japanese_script.search(japanese):
            continue  # full-width digits, symbols
        for gloss in glosses.split("/"):
            gloss = " ".join(re.sub(r"\([^)]*\)|\{[^}]*\}", " ", gloss).split()).lower()
            if gloss.startswith("to ") and len(gloss.split()) > 1:
                gloss = gloss[3:]  # "to eat" -> "eat", as in word lists
            if _keep_english(gloss) and not gloss.startswith("entl"):
                pairs.append((gloss, japanese))
    return pairs


def cedict_pairs() -> list[tuple[str, str]]:
    """(english word, chinese word) pairs from the cedict package's EnWords.csv."""
    pairs = []
    with open(pypi_file("cedict", "cedict/csv/EnWords.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            english = " ".join(row["word"].lower().split())
            if _keep_english(english):
                pairs.extend((english, w) for w in _target_words(row["translation"], "zh"))
    return pairs


def normalise(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lower-cased, stripped, deduplicated (order kept)."""
    seen: dict[tuple[str, str], None] = {}
    for en, tgt in pairs:
        en, tgt = en.strip().lower(), tgt.strip().lower()
        if en and tgt:
            seen.setdefault((en, tgt), None)
    return list(seen)
