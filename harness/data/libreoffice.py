"""LibreOffice help pages (Debian ``libreoffice-help-<lang>``): target-language text and training pairs.

Each language ships the same 2,560 HTML pages under ``usr/share/libreoffice/help/<dir>/text/``;
untranslated pages are English copies. A page's text is the content of ``div#DisplayArea`` without
navigation, scripts, icons, "Related Topics" link lists and hidden platform/module variants (the
default variant is kept). Pairs are (heading -> the text under it). Doc ids are paths relative to
``text/``, which align pages across languages.
"""
from __future__ import annotations

import re
from pathlib import Path

from harness.data.base import Collection

LANG_DIRS = {"en": "en-US", "ko": "ko", "ja": "ja", "zh": "zh-CN", "ru": "ru"}
PACKAGES = {"en": "libreoffice-help-en-us", "ko": "libreoffice-help-ko", "ja": "libreoffice-help-ja",
            "zh": "libreoffice-help-zh-cn", "ru": "libreoffice-help-ru"}
SOURCE = "Debian {pkg}: usr/share/libreoffice/help/{dir}/text/**.html"
LICENCE = "MPL-2.0"

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# blocks whose text is emitted as one unit (unless they contain another block)
BLOCKS = HEADINGS | {"p", "pre", "li", "td", "th", "dt", "dd", "caption"}
BOILERPLATE_XPATH = ("//script | //style | //meta | //noscript | //img | //nav"
                     " | //*[contains(@class, 'related')]"  # "Related Topics" label and link lists
                     " | //*[@hidden and not(starts-with(@id, 'default'))]")
_SPACE = re.compile(r"\s+")


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


def page_text(blocks: list[tuple[bool, str]]) -> str:
    return "\n".join(text for _, text in blocks)


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


def build(lang: str, root: Path, english: dict[str, str] | None) -> Collection:
    """Pages of ``lang``. With ``english`` ({page: text}), blocks that are verbatim copies of the
    English page (untranslated paragraphs, code) are dropped, and so are pages left empty."""
    corpus: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    for page, (title, blocks) in read_pages(root, lang).items():
        copied = frozenset(english.get(page, "").split("\n")) if english is not None else frozenset()
        text = "\n".join(t for _, t in blocks if t not in copied)
        if text:
            corpus[page] = text
            pairs.extend(heading_pairs(title, blocks, copied))
    return Collection(name=f"libreoffice-help-{lang}", lang=lang, corpus=corpus, queries={}, qrels={},
                      source=SOURCE.format(pkg=PACKAGES[lang], dir=LANG_DIRS[lang]), licence=LICENCE,
                      train_pairs=pairs, kind="text")
