"""Tokenizer recipes on the pocket profile: zero-shot runs per recipe, then the table of
leaderboards/pocket-tokenizers.md.

    python bench/pocket_tokenizers.py run --phase dev --langs zh ja ko        # the choice: dev collections
    python bench/pocket_tokenizers.py run --phase test --langs zh ja ko       # after the choice
    python bench/pocket_tokenizers.py run --phase dev --langs zh --recipes unigram --set tokenizer.vocab_size=8000
    python bench/pocket_tokenizers.py table > leaderboards/pocket-tokenizers-table.md

``run`` calls ``harness run`` (zero-shot, seed 0) for each language x recipe x method, one at a time
under ``nice``, plus ``harness reference --system bm25-lite`` per recipe (the lexical reference with the
recipe's analysis). Dev: ``libreoffice-help-{lang}-dev``; test: ``gnome-help-{lang}``. Tokenizers are
trained on the training pages only (``training_text=train-pages``). Records that exist are reused
(the harness's skip rule). ``table`` reads the records only.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

RECIPES = ("wordpiece-bert", "unigram", "wordpiece-seg")
METHODS = ("sembridge", "random", "overlap")
PHASES = {"dev": "libreoffice-help-{lang}-dev", "test": "gnome-help-{lang}"}
RUNS_DIR = "runs/pocket-tokenizers"


def recipe_sets(recipe: str) -> list[str]:
    return ["--set", f"tokenizer.recipe={recipe}"]  # explicit: the profile may map languages to other recipes


def commands(phase: str, langs: list[str], recipes: list[str], methods: list[str], runs_dir: str,
             extra: list[str] = ()) -> list[list[str]]:
    out = []
    sets = [a for kv in extra for a in ("--set", kv)]
    for lang in langs:
        dataset = PHASES[phase].format(lang=lang)
        for recipe in recipes:
            for method in methods:
                out.append(["harness", "run", "--method", method, "--lang", lang, "--setting", "zero-shot",
                            "--set", f"dataset={dataset}", *recipe_sets(recipe), *sets, "--runs-dir", runs_dir])
            out.append(["harness", "reference", "--system", "bm25-lite", "--dataset", dataset, *recipe_sets(recipe), *sets,
                        "--runs-dir", runs_dir])
    return out


def run(args: argparse.Namespace) -> None:
    for cmd in commands(args.phase, args.langs, args.recipes, args.methods, args.runs_dir, args.set):
        print("$ " + shlex.join(cmd), flush=True)
        done = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "harness.cli", *cmd[1:]])
        if done.returncode != 0:
            print(f"(exit {done.returncode})", flush=True)


def records(runs_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(runs_dir.glob("*/result.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        config = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        if record.get("status") != "ok" or config.get("setting") != "zero-shot":
            continue
        rows.append({"record": record, "config": config, "id": path.parent.name})
    return rows


def label(config: dict) -> str:
    """The recipe, with the vocabulary size when it is not the profile's 30,000."""
    recipe = config.get("tokenizer.recipe") or "wordpiece-bert"
    size = config.get("tokenizer.vocab_size", 30000)
    return recipe if size == 30000 else f"{recipe} ({size:,} tokens)"


def command_of(config: dict, runs_dir: str) -> str:
    recipe = config.get("tokenizer.recipe")
    sets = f" --set tokenizer.recipe={recipe}" if recipe else ""
    if config.get("tokenizer.vocab_size", 30000) != 30000:
        sets += f" --set tokenizer.vocab_size={config['tokenizer.vocab_size']}"
    if config["method"] == "bm25":
        return f"harness reference --system bm25-lite --dataset {config['dataset']}{sets} --runs-dir {runs_dir}"
    return (f"harness run --method {config['method']} --lang {config['lang']} --setting zero-shot "
            f"--set dataset={config['dataset']}{sets} --runs-dir {runs_dir}")


def per_query(row: dict, runs_dir: Path, metric: str) -> dict[str, float]:
    return json.loads((runs_dir / row["id"] / "per_query.json").read_text(encoding="utf-8"))[metric]


def table(args: argparse.Namespace) -> None:
    from harness.stats import holm, randomization_test

    runs_dir = Path(args.runs_dir)
    rows = records(runs_dir)
    cells: dict[tuple[str, str, str], dict[str, dict]] = {}
    for row in rows:
        c = row["config"]
        cells.setdefault((c["dataset"], c["lang"], label(c)), {})[c["method"]] = row
    metric = args.metric
    systems = (*METHODS, "bm25")
    for phase, pattern in PHASES.items():
        keys = sorted((k for k in cells if k[0] == pattern.format(lang=k[1])),
                      key=lambda k: (k[1], RECIPES.index(k[2].split(" ")[0]), k[2]))
        if not keys:
            continue
        tests = {}  # (dataset, recipe, system) -> p against wordpiece-bert, Holm over the whole table
        for dataset, lang, recipe in keys:
            base = cells.get((dataset, lang, "wordpiece-bert"), {})
            for system in systems:
                if recipe != "wordpiece-bert" and system in base and system in cells[(dataset, lang, recipe)]:
                    a = per_query(cells[(dataset, lang, recipe)][system], runs_dir, metric)
                    tests[(dataset, recipe, system)] = randomization_test(a, per_query(base[system], runs_dir, metric))
        adjusted = dict(zip(tests, holm(list(tests.values()))))
        print(f"\n### {phase}: {metric} (zero-shot, seed 0)\n")
        head = ["language", "recipe", "target vocab", "copied", *METHODS, "mean of the 3", "bm25 (recipe analysis)"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        best: dict[str, tuple[float, str]] = {}
        for dataset, lang, recipe in keys:
            got = cells[(dataset, lang, recipe)]
            plan = next((got[m]["record"].get("plan") or {} for m in METHODS if m in got), {})

            def score(system: str) -> str:
                if system not in got:
                    return "-"
                value = f"{got[system]['record']['metrics'][metric]:.3f}"
                p = adjusted.get((dataset, recipe, system))
                if p is not None and p < 0.05:
                    base = cells[(dataset, lang, "wordpiece-bert")][system]["record"]["metrics"][metric]
                    value += " ▲" if got[system]["record"]["metrics"][metric] > base else " ▼"
                return value

            have = [got[m]["record"]["metrics"][metric] for m in METHODS if m in got]
            mean = sum(have) / len(have) if len(have) == len(METHODS) else None
            if mean is not None and mean > best.get(lang, (-1.0, ""))[0]:
                best[lang] = (mean, recipe)
            print(f"| {lang} | {recipe} | {plan.get('n_target', '')} | {plan.get('copied', '')} | "
                  + " | ".join(score(m) for m in METHODS) + f" | {'-' if mean is None else f'{mean:.3f}'} | "
                  + f"{score('bm25')} |")
        print(f"\n▲ / ▼: better / worse than wordpiece-bert with the same method on the same queries (paired "
              f"randomization test, Holm-corrected over the {len(tests)} comparisons of this table, p < 0.05).")
        print("Highest mean of the 3 methods: " + ", ".join(f"{lang} {r} ({m:.3f})" for lang, (m, r) in sorted(best.items())))
    print("\n### Commands and records\n")
    for row in sorted(rows, key=lambda r: (r["config"]["dataset"], label(r["config"]), r["config"]["method"])):
        m = row["record"]["metrics"]
        analyzer = (row["record"].get("reference") or {}).get("analyzer") or ""
        note = f" (analyzer: {analyzer.split(' /')[0].split(' (')[0]})" if analyzer else ""
        print(f"- `{command_of(row['config'], args.runs_dir)}` -> {row['id']}: {metric} {m[metric]:.4f}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--phase", choices=list(PHASES), required=True)
    r.add_argument("--langs", nargs="+", default=["zh"])
    r.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    r.add_argument("--methods", nargs="+", default=list(METHODS))
    r.add_argument("--runs-dir", default=RUNS_DIR)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    t = sub.add_parser("table")
    t.add_argument("--runs-dir", default=RUNS_DIR)
    t.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()
    run(args) if args.cmd == "run" else table(args)


if __name__ == "__main__":
    main()
