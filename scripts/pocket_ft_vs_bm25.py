"""Per language, from records/: fine-tuned SemBridge vs random, vs Lucene BM25, and the RRF fusion of
SemBridge with BM25 vs BM25 (nDCG@10 on gnome-help-{lang}). Paired randomization tests (harness.stats,
10,000 resamples, per-query scores averaged over the seeds recorded), Holm over all comparisons printed.

    python scripts/pocket_ft_vs_bm25.py            # the numbers README's "Results so far" quotes
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness.stats import adjust, average_over_seeds, run_test  # noqa: E402
from harness.tables import load_records  # noqa: E402

LANGS = ("ko", "ja", "zh", "ru")


def scores(entries, lang: str, method: str, setting: str, **params) -> dict[str, float] | None:
    """Per-query nDCG@10 of one system on gnome-help-{lang}, averaged over its seeds (None: no record)."""
    chosen = [e for e in entries if e.record["method"] == method and e.record["lang"] == lang
              and e.record["setting"] == setting and e.record["dataset"] == f"gnome-help-{lang}"
              and all(e.record["method_params"].get(k) == v for k, v in params.items())]
    return average_over_seeds([e.per_query["ndcg@10"] for e in chosen]) if chosen else None


def main() -> None:
    entries = load_records(ROOT / "records", profile="pocket").entries
    tests = []
    for lang in LANGS:
        systems = {"sembridge": scores(entries, lang, "sembridge", "fine-tuned"),
                   "random": scores(entries, lang, "random", "fine-tuned"),
                   "bm25": scores(entries, lang, "bm25", "zero-shot", analyzer="lucene"),
                   "fusion": scores(entries, lang, "fusion", "fine-tuned", systems=["sembridge", "bm25"])}
        print(lang, {name: round(sum(s.values()) / len(s), 4) for name, s in systems.items() if s})
        for a, b in (("sembridge", "random"), ("sembridge", "bm25"), ("fusion", "bm25")):
            if systems[a] and systems[b]:
                tests.append((f"{lang} {a} vs {b}", run_test(systems[a], systems[b])))
    for (name, p), adjusted in zip(tests, adjust([p for _, p in tests], "holm")):
        print(f"{name}: p {p:.4f}, Holm {adjusted:.4f}")


if __name__ == "__main__":
    main()
