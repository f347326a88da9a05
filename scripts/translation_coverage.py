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

SCRIPTS = {"ko": "\uac00-\ud7af", "ja": "\u3040-\u30ff\u4e00-\u9fff", "zh": "\u4e00-\u9fff", "ru": "\u0400-\u04ff"}
MIN_LINE = 20  # shorter lines are mostly menu paths, key names and code


def translated_share(text: str, lang: str) -> float | None:
    """Share of the text's long lines holding at least one character of the language's script."""
    script = re.compile(f"[{SCRIPTS[lang]}]")
    lines = [line for line in text.split("\n") if len(line.strip()) > MIN_LINE]
    return sum(bool(script.search(line)) for line in lines) / len(lines) if lines else None


def coverage_table() -> dict[str, dict[str, float]]:
    """Per language: translated share of each test page (doc id -> share; None for a page without long lines)."""
    shares = {}
    for lang in SCRIPTS:
        collection = load_collection(f"gnome-help-{lang}")
        shares[lang] = {doc: translated_share(text, lang) for doc, text in collection.corpus.items()}
        known = [s for s in shares[lang].values() if s is not None]
        lines = [line for text in collection.corpus.values() for line in text.split("\n") if len(line.strip()) > MIN_LINE]
        untranslated = sum(translated_share(line, lang) == 0 for line in lines) / len(lines)
        print(f"gnome-help-{lang}: {len(collection.corpus)} pages, {untranslated:.2f} of long lines untranslated, "
              f"{sum(s == 1 for s in known) / len(known):.2f} of pages fully translated, "
              f"{sum(s >= 0.5 for s in known) / len(known):.2f} mostly translated, "
              f"{len(shares[lang]) - len(known)} without a line over {MIN_LINE} characters")
    return shares


def main() -> None:
    shares = coverage_table()
    entries = load_records(ROOT / "records", profile="pocket").entries
    tests = []
    for lang in SCRIPTS:
        relevant = {q: next(iter(docs)) for q, docs in load_collection(f"gnome-help-{lang}").qrels.items()}
        systems = {"bm25": scores(entries, lang, "bm25", "zero-shot", analyzer="lucene"),
                   "sembridge": scores(entries, lang, "sembridge", "fine-tuned"),
                   "random": scores(entries, lang, "random", "fine-tuned")}
        for part, keep in (("mostly translated", lambda s: s is not None and s >= 0.5),
                           ("mostly English", lambda s: s is not None and s < 0.5),
                           ("no body text", lambda s: s is None)):
            queries = [q for q, doc in relevant.items() if keep(shares[lang].get(doc))]
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
