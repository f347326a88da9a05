"""LibreOffice help dev/train split (issue #21): dev pages never train anything.

The integration tests read the real pocket assets (the shared cache; built on first use) and build
every collection once per module.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import pytest

LANGS = ("en", "ko", "ja", "zh", "ru")


def test_dev_rule_is_the_documented_hash() -> None:
    from harness.data.libreoffice import is_dev_page

    for page in ("shared/find_toolbar.html", "sbasic/shared/03010201.html", "scalc/01/12040300.html"):
        expected = int(hashlib.sha256(page.encode()).hexdigest()[:8], 16) % 10 == 0
        assert is_dev_page(page) is expected
    pages = [f"shared/{i:05d}.html" for i in range(2000)]
    assert 0.05 < sum(map(is_dev_page, pages)) / len(pages) < 0.15


def test_unknown_dev_language_is_an_unknown_dataset() -> None:
    from harness.data import load_collection
    from harness.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"did you mean 'libreoffice-help-\w\w-dev'"):
        load_collection("libreoffice-help-xx-dev")


def test_dev_collection_from_toy_pages() -> None:
    from harness.data.libreoffice import Page, dev_collection, is_dev_page, text_collection

    dev_pages = [p for p in (f"p{i}.html" for i in range(100)) if is_dev_page(p)][:2]
    train_page = next(p for p in (f"p{i}.html" for i in range(100)) if not is_dev_page(p))
    a, b = dev_pages
    pages = {a: Page("A", (("Parameters:", "x"), ("Title A", "body a"))),
             b: Page("B", (("Parameters:  ", "y"), ("Parameters:", "x"))),
             train_page: Page("T", (("Parameters:", "z"), ("Other", "body  a")))}  # "body a" is a dev passage
    dev = dev_collection("en", pages)
    assert dev.corpus == {f"{a}#0": "x", f"{a}#1": "body a", f"{b}#0": "y", f"{b}#1": "x"}
    assert dev.queries == {f"{a}#0": "Parameters:", f"{a}#1": "Title A"}
    assert dev.qrels == {f"{a}#0": {f"{a}#0": 1, f"{b}#0": 1, f"{b}#1": 1}, f"{a}#1": {f"{a}#1": 1}}
    assert dev.train_pairs is None and dev.kind == "dev collection"
    train = text_collection("en", pages, train_only=True)
    assert train.corpus == {train_page: "T"} and train.train_pairs == [("Parameters:", "z")]
    assert train.name == "libreoffice-help-en-train"


def test_aligned_rows_from_toy_pages_hold_out_dev_and_untranslated_pages(tmp_path) -> None:
    from harness.data.base import read_collection, save_collection
    from harness.data.libreoffice import Page, aligned_collection, is_dev_page

    names = [f"p{i}.html" for i in range(100)]
    dev = next(p for p in names if is_dev_page(p))
    kept, same, lone = [p for p in names if not is_dev_page(p)][:3]
    english = {dev: Page("Dev\ntext", (), "Dev"), kept: Page("Save\nsave\nClick Save.", (), "Save"),
               same: Page("API\ntext", (), "API"), lone: Page("Only\nEnglish", (), "Only")}
    target = {dev: Page("개발", (), "개발"), kept: Page("저장\n저장을 누릅니다", (), "저장"), same: Page("API", (), "API")}
    col = aligned_collection("ko", target, english)
    # the title lines leave the passage; dev, untranslated-title and untranslated pages are out
    assert col.aligned == [(kept, "Save", "Click Save.", "저장")]
    assert col.kind == "aligned pairs" and col.summary()["aligned"] == 1
    save_collection(col, tmp_path / "c")
    assert read_collection(tmp_path / "c").aligned == col.aligned  # the cache round-trips the rows


# --------------------------------------------------------------------------------------------
# Real pocket data (integration)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split():
    """{lang: (pages, full, dev, train)}: parsed pages and the three collections of each language."""
    from harness.data import catalog, debian, libreoffice, load_collection

    if any(debian.installed_version(libreoffice.PACKAGES[lang]) is None for lang in LANGS):
        pytest.skip("LibreOffice help packages not unpacked in the cache (run the pocket setup)")
    out = {}
    for lang in LANGS:
        out[lang] = (catalog.help_pages(lang), load_collection(f"libreoffice-help-{lang}"),
                     load_collection(f"libreoffice-help-{lang}-dev"),
                     load_collection(f"libreoffice-help-{lang}-train"))
    return out


def _dev_pages(full, train) -> set[str]:
    return set(full.corpus) - set(train.corpus)


def _page(doc_id: str) -> str:
    return doc_id.rpartition("#")[0]


@pytest.mark.slow
def test_full_collection_is_unchanged(split) -> None:
    from harness.data import libreoffice

    for lang, (pages, full, _, _) in split.items():
        assert full.name == f"libreoffice-help-{lang}" and full.kind == "text"
        assert full.source == libreoffice.SOURCE.format(pkg=libreoffice.PACKAGES[lang], dir=libreoffice.LANG_DIRS[lang])
        assert full.corpus == {page: p.text for page, p in pages.items()}
        assert full.train_pairs == [pair for p in pages.values() for pair in p.pairs]  # page order


@pytest.mark.slow
def test_no_page_in_train_and_dev(split) -> None:
    from harness.data.libreoffice import is_dev_page

    for lang, (pages, full, dev, train) in split.items():
        dev_pages = {page for page in full.corpus if is_dev_page(page)}
        assert _dev_pages(full, train) == dev_pages, lang
        assert not dev_pages & set(train.corpus)
        assert {page: full.corpus[page] for page in full.corpus if page not in dev_pages} == train.corpus
        assert {_page(d) for d in dev.corpus} <= dev_pages
        # the page behind every pair: train pairs are the pairs of the non-dev pages, minus dev passages
        dev_bodies = {" ".join(body.split()) for body in dev.corpus.values()}
        others = [pair for page, p in pages.items() if page not in dev_pages for pair in p.pairs]
        assert train.train_pairs == [pair for pair in others if " ".join(pair[1].split()) not in dev_bodies]
        assert 0 < len(others) - len(train.train_pairs) < 0.1 * len(others), lang  # boilerplate: about 6%
        assert dev.corpus == {f"{page}#{i}": body for page in sorted(dev_pages)
                              for i, (_, body) in enumerate(pages[page].pairs)}
        assert len(others) + len(dev.corpus) == len(full.train_pairs)


@pytest.mark.slow
def test_dev_pages_are_the_same_in_every_language(split) -> None:
    _, en_full, _, en_train = split["en"]
    en_pages, en_dev = set(en_full.corpus), _dev_pages(en_full, en_train)
    for lang in LANGS[1:]:
        _, full, _, train = split[lang]
        pages, dev = set(full.corpus), _dev_pages(full, train)
        shared = pages & en_pages
        assert len(shared) > 2000
        assert dev & shared == en_dev & shared, lang


@pytest.mark.slow
def test_dev_qrels_and_queries(split) -> None:
    for lang, (_, _, dev, _) in split.items():
        assert dev.kind == "dev collection" and dev.train_pairs is None
        assert set(dev.qrels) == set(dev.queries) and len(dev.queries) > 300, lang
        assert all(dev.qrels[q] and set(dev.qrels[q]) <= set(dev.corpus) for q in dev.queries)
        judged = Counter(d for docs in dev.qrels.values() for d in docs)
        assert set(judged) == set(dev.corpus) and max(judged.values()) == 1  # one heading per passage
        assert len(set(dev.queries.values())) == len(dev.queries)  # a heading is one query
        assert all(q in dev.corpus for q in dev.queries)  # id = the heading's first passage


@pytest.mark.slow
def test_repeated_heading_is_one_query(split) -> None:
    pages, _, dev, _ = split["en"]
    headed: dict[str, list[str]] = {}
    for doc_id in dev.corpus:
        page, _, i = doc_id.rpartition("#")
        headed.setdefault(pages[page].pairs[int(i)][0], []).append(doc_id)
    assert len(headed["Parameters:"]) > 5
    for heading, docs in headed.items():
        (qid,) = [q for q, text in dev.queries.items() if text == heading]
        assert qid == docs[0] and set(dev.qrels[qid]) == set(docs)


@pytest.mark.slow
def test_dev_is_about_ten_percent_of_pages(split) -> None:
    for lang, (_, full, _, train) in split.items():
        assert 0.05 <= len(_dev_pages(full, train)) / len(full.corpus) <= 0.15, lang


@pytest.mark.slow
def test_tokenizer_and_static_vector_text_leaves_the_dev_pages_out(split) -> None:
    from harness.data import target_text

    for lang, (_, full, dev, train) in split.items():
        assert target_text(lang) == list(train.corpus.values()), lang
        assert len(target_text(lang)) + len(_dev_pages(full, train)) == len(full.corpus), lang  # one text per page
        assert target_text(lang, "all-pages") == list(full.corpus.values())  # the records made before the split


def test_training_text_moves_run_ids_and_the_legacy_value_keeps_them() -> None:
    from harness.config import load_config, run_config, run_value
    from harness.runs import run_id

    def run(*overrides: str) -> dict:
        return run_config(load_config("pocket", list(overrides)), method="random", method_params={}, lang="ko",
                          seed=0, setting="zero-shot")

    new, legacy = run(), run("training_text=all-pages")
    assert new["training_text"] == "train-pages" and "training_text" not in legacy
    assert run_value(legacy, "training_text") == "all-pages" and run_id(new) != run_id(legacy)


def test_a_new_build_keeps_the_newest_older_builds_for_other_checkouts(tmp_path) -> None:
    import os

    from harness.data import base

    builds = [tmp_path / f"key{i}" for i in range(5)]
    for i, path in enumerate(builds):
        path.mkdir()
        os.utime(path, (1000 + i, 1000 + i))
    base._remove_stale_builds(builds[0])  # the current build is kept whatever its age
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key0", "key3", "key4"][:base.KEPT_BUILDS]


def test_the_low_resource_slice_is_the_same_pairs_for_a_seed_and_left_out_of_ids_when_whole() -> None:
    from harness.config import load_config, run_config
    from harness.pipeline import pairs_slice

    pairs = [(f"q{i}", f"p{i}") for i in range(200)]
    tenth = pairs_slice(pairs, 0.1, seed=1)
    assert len(tenth) == 20 and tenth == pairs_slice(pairs, 0.1, seed=1) and tenth != pairs_slice(pairs, 0.1, seed=2)
    assert tenth == sorted(tenth, key=pairs.index) and pairs_slice(pairs, 1.0, seed=1) is pairs
    assert len(pairs_slice(pairs[:3], 0.01, seed=0)) == 1  # never empty

    def config(*overrides: str) -> dict:
        return run_config(load_config("pocket", list(overrides)), method="random", method_params={}, lang="ko",
                          seed=0, setting="fine-tuned")

    assert "train.pairs_fraction" not in config() and config("train.pairs_fraction=0.1")["train.pairs_fraction"] == 0.1
