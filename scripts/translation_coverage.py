"""How much of each pocket test collection is in its target language, and how the fine-tuned systems
score on its translated and untranslated pages.

Debian's GNOME help for some languages is partly translated: a sentence whose English source changed
since the last translation falls back to English in the built page. So a "ja" page body can be mostly
English. Per collection this prints the share of body lines (over 20 characters) without a character
of the target script, and the share of pages whose every such line is translated. Then, per language,
queries are split by whether their relevant page is mostly translated (at least half of its lines),
mostly English, or has no body text (a topic page: an empty body or a few headings; no system finds it),
and each system's mean nDCG@10 (from records/, seeds averaged) is printed per part, with a paired
randomization test of SemBridge vs BM25 in each part (Holm over the parts printed).

    python scripts/translation_coverage.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness.data import load_collection  # noqa: E402
from harness.stats import adjust, run_test  # noqa: E402
from harness.tables import load_records  # noqa: E402
from scripts.pocket_ft_vs_bm25 import scores  # noqa: E402

SCRIPTS = {lang: re.compile(f"[{chars}]") for lang, chars in
           {"ko": "\uac00-\ud7af", "ja": "\u3040-\u30ff\u4e00-\u9fff", "zh": "\u4e00-\u9fff",
            "ru": "\u0400-\u04ff"}.items()}
MIN_LINE = 20  # shorter lines are mostly menu paths, key names and code


def long_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if len(line.strip()) > MIN_LINE]


def translated_share(text: str, lang: str) -> float | None:
    """Share of the text's long lines holding at least one character of the language's script."""
    lines = long_lines(text)
    return sum(bool(SCRIPTS[lang].search(line)) for line in lines) / len(lines) if lines else None


def coverage(lang: str) -> tuple[dict[str, float | None], dict[str, dict[str, int]]]:
    """Print the language's coverage line; return each page's translated share (None: no long line) and the qrels."""
    collection = load_collection(f"gnome-help-{lang}")
    shares = {doc: translated_share(text, lang) for doc, text in collection.corpus.items()}
    known = [s for s in shares.values() if s is not None]
    lines = [line for text in collection.corpus.values() for line in long_lines(text)]
    untranslated = sum(not SCRIPTS[lang].search(line) for line in lines) / len(lines)
    print(f"gnome-help-{lang}: {len(shares)} pages, {untranslated:.2f} of long lines untranslated, "
          f"{sum(s == 1 for s in known) / len(known):.2f} of pages fully translated, "
          f"{sum(s >= 0.5 for s in known) / len(known):.2f} mostly translated, "
          f"{len(shares) - len(known)} without a line over {MIN_LINE} characters")
    return shares, collection.qrels


def main() -> None:
    collections = {lang: coverage(lang) for lang in SCRIPTS}
    entries = load_records(ROOT / "records", profile="pocket").entries
    tests = []
    for lang, (shares, qrels) in collections.items():
        relevant = {q: next(iter(docs)) for q, docs in qrels.items()}
        systems = {"bm25": scores(entries, lang, "bm25", "zero-shot", analyzer="lucene"),
                   "sembridge": scores(entries, lang, "sembridge", "fine-tuned"),
                   "random": scores(entries, lang, "random", "fine-tuned")}
        for part, keep in (("mostly translated", lambda s: s is not None and s >= 0.5),
                           ("mostly English", lambda s: s is not None and s < 0.5),
                           ("no body text", lambda s: s is None)):
            queries = [q for q, doc in relevant.items() if keep(shares.get(doc))]
            if not queries:
                continue
            means = {name: sum(s[q] for q in queries) / len(queries) for name, s in systems.items() if s}
            print(f"{lang} {part} ({len(queries)} queries):", {k: round(v, 3) for k, v in means.items()})
            if systems["sembridge"] and systems["bm25"] and len(queries) > 1 and part != "no body text":
                pick = lambda s: {q: s[q] for q in queries}  # noqa: E731
                tests.append((f"{lang} {part}: sembridge vs bm25",
                              run_test(pick(systems["sembridge"]), pick(systems["bm25"]))))
    for (name, p), adjusted in zip(tests, adjust([p for _, p in tests], "holm")):
        print(f"{name}: p {p:.4f}, Holm-adjusted {adjusted:.4f}")


if __name__ == "__main__":
    main()
