"""GNOME help test collection (Debian ``gnome-user-docs``): query = page description, doc = page body.

Pages are Mallard XML under ``usr/share/help/<dir>/<guide>/*.page`` for the guides ``gnome-help``
(293 pages) and ``system-admin-guide`` (55 pages; shipped in C, ko and ru only). The query is the
text of the page's ``<info><desc>``; the relevant (and only judged) document is the page's body:
all text except ``<info>`` blocks (page and section metadata), the page ``<title>`` and editorial
``<comment>``s. Pages whose desc is empty or identical to the English (C) desc are untranslated and
dropped. Navigation pages (23 in C, ko and ru) have no body text of their own: they stay, as in the
reference measurements of REFERENCE.md (348 queries for en/ko/ru), and their queries are
unanswerable by design — dropping them raises every system's score alike. Translations are generated from .po files by itstool, so
untranslated strings are English copies — hence the desc comparison.
"""
from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

from harness.data.base import Collection

PACKAGE = "gnome-user-docs"
LANG_DIRS = {"en": "C", "ko": "ko", "ja": "ja", "zh": "zh_CN", "ru": "ru"}
GUIDES = ("gnome-help", "system-admin-guide")
LICENCE = "CC-BY-SA-3.0"
SOURCE = "Debian gnome-user-docs: usr/share/help/{dir}/{{gnome-help,system-admin-guide}}/*.page"

DROPPED = {"info", "comment"}
# elements that start a new line in the flattened text
BLOCKS = {"p", "title", "subtitle", "item", "td", "th", "tr", "code", "screen", "synopsis", "note",
          "section", "list", "steps", "terms", "tree", "table", "example", "quote", "figure", "desc",
          "media", "listing", "cite", "links"}
_SPACE = re.compile(r"[ \t\r\f\v\n]+")


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _flatten(node: ElementTree.Element, out: list[str]) -> None:
    """Append the text of ``node``'s children to ``out``; "\0" marks block boundaries (source
    newlines are just wrapping)."""
    if node.text:
        out.append(node.text)
    for child in node:
        name = _local(child.tag)
        if name not in DROPPED:
            block = name in BLOCKS
            out.append("\0" if block else "")
            _flatten(child, out)
            out.append("\0" if block else "")
        if child.tail:
            out.append(child.tail)


def clean(parts: list[str]) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in "".join(parts).split("\0"))
    return "\n".join(line for line in lines if line)


def parse_page(path: Path) -> tuple[str, str]:
    """(desc text, body text) of one Mallard page."""
    root = ElementTree.parse(path).getroot()
    desc = ""
    info = next((c for c in root if _local(c.tag) == "info"), None)
    if info is not None:
        node = next((c for c in info if _local(c.tag) == "desc"), None)
        if node is not None:
            desc = clean(["".join(node.itertext())])
    body: list[str] = []
    title_seen = False
    for child in root:
        name = _local(child.tag)
        if name == "title" and not title_seen:  # the page title is not part of the document
            title_seen = True
        elif name not in DROPPED:
            body.append("\0")
            _flatten(child, body)
            body.append("\0")
            if child.tail:
                body.append(child.tail)
    return desc, clean(body)


def read_guide(root: Path, lang: str, guide: str) -> dict[str, tuple[str, str]]:
    base = root / "usr/share/help" / LANG_DIRS[lang] / guide
    return {p.stem: parse_page(p) for p in sorted(base.glob("*.page"))}


PageKey = tuple[str, str]  # (guide, page stem)


def translated_pages(root: Path, lang: str) -> dict[PageKey, tuple[str, str]]:
    """(desc, body) of every page with a description of its own in ``lang`` (English: every page with one)."""
    out = {}
    for guide in GUIDES:
        english = read_guide(root, "en", guide)
        pages = read_guide(root, lang, guide) if lang != "en" else english
        for stem, (desc, body) in pages.items():
            untranslated = lang != "en" and desc == english.get(stem, ("", ""))[0]
            if desc and not untranslated:
                out[(guide, stem)] = (desc, body)
    return out


def page_ids(keys: list[PageKey]) -> dict[PageKey, str]:
    """Doc ids: the stem, qualified by its guide when an earlier guide has that stem ("index" is in both)."""
    ids: dict[PageKey, str] = {}
    for guide, stem in keys:
        ids[(guide, stem)] = stem if stem not in ids.values() else f"{guide}/{stem}"
    return ids


def build(lang: str, root: Path) -> Collection:
    pages = translated_pages(root, lang)
    ids = page_ids(list(pages))
    corpus = {ids[k]: body for k, (_, body) in pages.items()}
    queries = {ids[k]: desc for k, (desc, _) in pages.items()}
    qrels = {qid: {qid: 1} for qid in queries}
    return Collection(name=f"gnome-help-{lang}", lang=lang, corpus=corpus, queries=queries, qrels=qrels,
                      source=SOURCE.format(dir=LANG_DIRS[lang]), licence=LICENCE)


def build_cross(query_lang: str, doc_lang: str, root: Path) -> Collection:
    """``gnome-help-{q}-x-{d}``: descriptions in ``query_lang`` -> page bodies in ``doc_lang`` (every page
    that has a ``doc_lang`` text); a query's relevant document is the same page in the other language.
    Queries exist for pages translated in both languages. Doc ids follow the English page order, so a page
    has one id in every collection."""
    queries_of, docs_of = translated_pages(root, query_lang), translated_pages(root, doc_lang)
    ids = page_ids(list(translated_pages(root, "en")))
    target = doc_lang if query_lang == "en" else query_lang
    corpus = {ids[k]: body for k, (_, body) in docs_of.items() if k in ids}
    queries = {ids[k]: desc for k, (desc, _) in queries_of.items() if k in docs_of and k in ids}
    return Collection(name=f"gnome-help-{query_lang}-x-{doc_lang}", lang=target, corpus=corpus, queries=queries,
                      qrels={qid: {qid: 1} for qid in queries},
                      source=f"{SOURCE.format(dir=LANG_DIRS[query_lang])} (desc) -> "
                             f"{SOURCE.format(dir=LANG_DIRS[doc_lang])} (body)", licence=LICENCE)
