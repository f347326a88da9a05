"""LibreOffice help pages (Debian ``libreoffice-help-<lang>``): target-language text and training pairs.

Each language ships the same 2,560 HTML pages under ``usr/share/libreoffice/help/<dir>/text/``;
untranslated pages are English copies. A page's text is the content of ``div#DisplayArea`` without
navigation, scripts, icons, "Related Topics" link lists and hidden platform/module variants (the
default variant is kept). Pairs are (heading -> the text under it). Doc ids are paths relative to
``text/``, which align pages across languages.

Every language is split by page with `is_dev_page` (the same pages in every language):
``libreoffice-help-{lang}-dev`` (heading -> passages of the dev pages, to choose settings on) and
``libreoffice-help-{lang}-train`` (text and pairs of the other pages). ``libreoffice-help-{lang}``
keeps every page.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.data.base import Collection

LANG_DIRS = {"en": "en-US", "ko": "ko", "ja": "ja", "zh": "zh-CN", "ru": "ru"}
PACKAGES = {"en": "libreoffice-help-en-us", "ko": "libreoffice-help-ko", "ja": "libreoffice-help-ja",
            "zh": "libreoffice-help-zh-cn", "ru": "libreoffice-help-ru"}
SOURCE = "Debian {pkg}: usr/share/libreoffice/help/{dir}/text/**.html"
LICENCE = "MPL-2.0"
DEV_KIND = "dev collection"

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# blocks whose text is emitted as one unit (unless they contain another block)
BLOCKS = HEADINGS | {"p", "pre", "li", "td", "th", "dt", "dd", "caption"}
BOILERPLATE_XPATH = ("//script | //style | //meta | //noscript | //img | //nav"
                     " | //*[contains(@class, 'related')]"  # "Related Topics" label and link lists
                     " | //*[@hidden and not(starts-with(@id, 'default'))]")
_SPACE = re.compile(r"\s+")
DEV_MODULUS = 10  # one page in ten is dev


def is_dev_page(page: str) -> bool:
    """True when help page ``page`` belongs to the dev split: ``int(sha256(page)[:8], 16) % 10 == 0``.

    ``page`` is the file path relative to ``text/`` (e.g. ``shared/find_toolbar.html``), the doc id of
    ``libreoffice-help-{lang}``; it is the same in every language, so every language holds out the
    same pages (about 10%). Dev pages give ``libreoffice-help-{lang}-dev`` and never training text or
    pairs (``libreoffice-help-{lang}-train``); filter other page-aligned training data with it too.
    """
    return int(hashlib.sha256(page.encode("utf-8")).hexdigest()[:8], 16) % DEV_MODULUS == 0


def help_dir(root: Path, lang: str) -> Path:
    return root / "usr/share/libreoffice/help" / LANG_DIRS[lang] / "text"


def parse_page(html: bytes) -> tuple[str, list[tuple[bool, str]]]:
    """(title, [(is_heading, block text)]) of one help page's display area."""
    import lxml.html  # a dependency of ir-datasets; lazy so listing datasets stays cheap

    tree = lxml.html.fromstring(html)
    title = _SPACE.sub(" ", tree.findtext(".//title") or "").strip()
    area = tree.find(".//div[@id='DisplayArea']")
    if area is None:
        return title, []
    for node in area.xpath(BOILERPLATE_XPATH.replace("//", ".//")):
        node.drop_tree()  # keeps the node's tail text
    blocks: list[tuple[bool, str]] = []
    _collect_blocks(area, blocks)
    return title, blocks


def _collect_blocks(node, out: list[tuple[bool, str]]) -> None:
    for child in node:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in BLOCKS and not any(d.tag in BLOCKS for d in child.iterdescendants() if isinstance(d.tag, str)):
            text = _SPACE.sub(" ", child.text_content()).strip()
            if text:
                out.append((tag in HEADINGS, text))
        else:
            _collect_blocks(child, out)


def heading_pairs(title: str, blocks: list[tuple[bool, str]],
                  untranslated: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(heading, text under it up to the next heading); the page title stands in for a missing heading.

    Blocks in ``untranslated`` (English copies) are left out of bodies, and never serve as headings.
    """
    pairs: list[tuple[str, str]] = []
    heading, body = title, []
    for is_heading, text in blocks + [(True, "")]:
        if is_heading:
            if heading and body and heading not in untranslated:
                pairs.append((heading, "\n".join(body)))
            heading, body = text, []
        elif text not in untranslated:
            body.append(text)
    return pairs


def read_pages(root: Path, lang: str) -> dict[str, tuple[str, list[tuple[bool, str]]]]:
    """{relative path: (title, blocks)} for every non-empty page of one language."""
    base = help_dir(root, lang)
    pages = {}
    for path in sorted(base.rglob("*.html")):
        title, blocks = parse_page(path.read_bytes())
        if blocks:
            pages[path.relative_to(base).as_posix()] = (title, blocks)
    return pages


@dataclass(frozen=True)
class Page:
    """One help page of one language: its text (translated blocks, one a line) and its pairs."""

    text: str
    pairs: tuple[tuple[str, str], ...]  # (heading, text under it), in page order
    title: str = ""  # the page's <title>


def read_help(lang: str, root: Path, english: dict[str, str] | None) -> dict[str, Page]:
    """{page: Page} of ``lang``, sorted by page. With ``english`` ({page: text}), blocks that are
    verbatim copies of the English page (untranslated paragraphs, code) are dropped, and so are pages
    left empty."""
    pages: dict[str, Page] = {}
    for page, (title, blocks) in read_pages(root, lang).items():
        copied = frozenset(english.get(page, "").split("\n")) if english is not None else frozenset()
        text = "\n".join(t for _, t in blocks if t not in copied)
        if text:
            pages[page] = Page(text, tuple(heading_pairs(title, blocks, copied)), title)
    return pages


def source(lang: str, split: str | None = None) -> str:
    """Where ``libreoffice-help-{lang}`` (split None), ``-dev`` or ``-train`` comes from."""
    text = SOURCE.format(pkg=PACKAGES[lang], dir=LANG_DIRS[lang])
    return text + {None: "", "dev": ", dev pages only (never in -train): heading -> text under it",
                   "train": ", minus the dev pages and pairs repeating a dev passage",
                   "x-en-train": f" + {PACKAGES['en']}, aligned by page, minus the dev pages: English title, "
                                 f"English text, {lang} title"}[split]


def build(lang: str, root: Path, english: dict[str, str] | None) -> Collection:
    """``libreoffice-help-{lang}``: every page (see `read_help`)."""
    return text_collection(lang, read_help(lang, root, english))


def text_collection(lang: str, pages: dict[str, Page], train_only: bool = False) -> Collection:
    """Page texts as the corpus and their pairs as ``train_pairs``; with ``train_only`` the dev pages
    are left out (``libreoffice-help-{lang}-train``), and so are the pairs of other pages whose passage
    is word for word a dev passage (boilerplate such as "Return value:" -> "Double" repeats across
    pages: trained on, it would be remembered, not retrieved, on dev)."""
    kept = {page: p for page, p in pages.items() if not (train_only and is_dev_page(page))}
    leaked = dev_passages(pages) if train_only else set()
    return Collection(name=f"libreoffice-help-{lang}{'-train' if train_only else ''}", lang=lang,
                      corpus={page: p.text for page, p in kept.items()}, queries={}, qrels={},
                      source=source(lang, "train" if train_only else None), licence=LICENCE,
                      train_pairs=[pair for p in kept.values() for pair in p.pairs if _norm(pair[1]) not in leaked],
                      kind="text")


def dev_passages(pages: dict[str, Page]) -> set[str]:
    """Whitespace-normalised passages of the dev pages' pairs."""
    return {_norm(body) for page, p in pages.items() if is_dev_page(page) for _, body in p.pairs}


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def dev_collection(lang: str, pages: dict[str, Page]) -> Collection:
    """``libreoffice-help-{lang}-dev``: the pairs of the dev pages as a test collection.

    Doc ``{page}#{i}`` is the text under the i-th pair's heading; a heading (whitespace-normalised)
    is one query, however many passages it heads (e.g. "Parameters:"), relevant to all of them;
    its id is the doc id of its first occurrence. No training pairs.
    """
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    query_of: dict[str, str] = {}  # normalised heading -> query id
    for page, p in pages.items():
        if not is_dev_page(page):
            continue
        for i, (heading, body) in enumerate(p.pairs):
            doc_id = f"{page}#{i}"
            corpus[doc_id] = body
            text = _SPACE.sub(" ", heading).strip()
            qid = query_of.setdefault(text, doc_id)
            queries.setdefault(qid, text)
            qrels.setdefault(qid, {})[doc_id] = 1
    return Collection(name=f"libreoffice-help-{lang}-dev", lang=lang, corpus=corpus, queries=queries,
                      qrels=qrels, source=source(lang, "dev"),
                      licence=LICENCE, train_pairs=None, kind=DEV_KIND)


ALIGNED_KIND = "aligned pairs"


def aligned_collection(lang: str, pages: dict[str, Page], english: dict[str, Page]) -> Collection:
    """``libreoffice-help-{lang}-x-en-train``: one row per training page translated into ``lang``:
    (page, English title, English page text without its title lines, target title), the data of
    CLEAR's reverse training. Dev pages are left out (never trained on), and so are pages whose title
    is missing or untranslated (the same string in both languages)."""
    rows = []
    for page in sorted(english.keys() & pages.keys()):
        en_title, tgt_title = english[page].title, pages[page].title
        if is_dev_page(page) or not en_title or not tgt_title or en_title == tgt_title:
            continue
        passage = drop_title(english[page].text, en_title)
        if passage:
            rows.append((page, en_title, passage, tgt_title))
    return Collection(name=f"libreoffice-help-{lang}-x-en-train", lang=lang, corpus={}, queries={}, qrels={},
                      source=source(lang, "x-en-train"), licence=LICENCE, aligned=rows, kind=ALIGNED_KIND)


def drop_title(text: str, title: str) -> str:
    """The page text without its first lines while they equal the title (the query must not be in the
    passage; some pages repeat the title as their first heading)."""
    while True:
        first, _, rest = text.partition("\n")
        if first.strip().lower() != title.lower():
            return text
        text = rest.strip()
