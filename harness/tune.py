"""`harness tune`: choose the training recipe on the dev collections, never on a test collection.

The profile's ``tune.*`` keys name the grid (``tune.grid``: {config key: [values]}), the methods and
languages whose dev scores decide (``tune.methods``, ``tune.languages``), the seeds, and the dev
collection (``tune.dataset``, by default ``libreoffice-help-{lang}-dev``). Every combination x method x
language x seed is one fine-tuned run on that dev collection (its final score and its curve points are
dev scores), recorded like any other run, so an interrupted tune resumes where it stopped.

Fairness rule: one recipe for every method of the profile, the combination with the best mean dev score
over all tuned methods and languages. The report (``leaderboards/<name>.md``) gives the grid, each
combination's dev scores, the convergence check on each curve (gain over the last 25% of steps), the
pick, and what the search cost.
"""
from __future__ import annotations

import itertools
import json
from statistics import mean
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.config import check_value, load_config
from harness.runs import RunDir
from harness.util import Echo, HarnessError, write_text_atomic

CONVERGED_GAIN = 0.005  # a curve gaining less than this over its last 25% of steps has converged


@dataclass
class Trial:
    """One recipe (``combo``: config key -> value) for one method, language and seed."""

    combo: dict[str, Any]
    method: str
    lang: str
    seed: int
    run: dict[str, Any]

    @property
    def recipe(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.combo.items()) or "(profile defaults)"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value)


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, each checked against the config schema."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise HarnessError(f"tune.grid: '{key}' needs a non-empty list of values, got {values!r}")
        for value in values:
            check_value(key, value)
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def plan_trials(profile: str, overrides: Sequence[str] = ()) -> list[Trial]:
    """The fine-tuned dev runs of the profile's tuning grid."""
    from harness.pipeline import plan_runs

    config = load_config(profile, list(overrides))
    dataset = config["tune.dataset"]
    if "{lang}" in config["train_dataset"] and dataset.endswith("-dev") and \
            config["train_dataset"] == dataset[: -len("-dev")]:
        raise HarnessError(f"train_dataset '{config['train_dataset']}' holds the pages of the dev collection "
                           f"'{dataset}': set train_dataset={dataset[: -len('-dev')]}-train")
    trials = []
    for combo in combinations(config["tune.grid"]):
        extra = [*overrides, *(f"{k}={json.dumps(v)}" for k, v in combo.items()), f"dataset={dataset}"]
        for method in config["tune.methods"]:
            for lang in config["tune.languages"]:
                for seed in config["tune.seeds"]:
                    run = plan_runs(profile, extra, method=method, lang=lang, seed=seed, settings=["fine-tuned"])[0]
                    trials.append(Trial(combo, method, lang, seed, run))
    return trials


def tune(profile: str, *, runs_dir: str, out_dir: str, name: str, overrides: Sequence[str] = (),
         workers: int | None = 1, header: dict[str, Any] | None = None, echo: Echo = print, launcher: str = "local",
         launcher_options: dict[str, Any] | None = None) -> Path:
    """Run (or find) every trial, then write ``<out_dir>/<name>.md``; returns its path. The trials run as
    a sweep's cells do (``launcher``: the local pool, submitit or ray)."""
    from harness.sweep import Cell, check_launcher, run_cells

    launcher_options = check_launcher(launcher, launcher_options)
    config = load_config(profile, list(overrides))
    trials = plan_trials(profile, overrides)
    cells = [Cell(t.method, t.lang, t.seed, "fine-tuned", run=t.run) for t in trials]
    summary = run_cells(cells, runs_dir=runs_dir, workers=workers, echo=echo, launcher=launcher,
                        launcher_options=launcher_options)
    done = recorded_trials(trials, runs_dir)
    path = Path(out_dir) / f"{name}.md"
    write_text_atomic(path, tuning_markdown(trials, done, config, header or {}, failed=len(summary.failed),
                                            runs_dir=runs_dir))
    echo(f"{path}: {pick_line(trials, done, config['tune.metric'])}")
    return path


# --------------------------------------------------------------------------------------------
# Reading the trials back (each record once)
# --------------------------------------------------------------------------------------------
Recorded = list[tuple[Trial, dict[str, Any]]]


def recorded_trials(trials: list[Trial], runs_dir: str) -> Recorded:
    """(trial, its ok record) for every trial recorded so far."""
    found = ((t, RunDir.for_config(runs_dir, t.run).recorded()) for t in trials)
    return [(t, record) for t, record in found if record is not None]


def last_quarter_gain(curve: list[dict[str, Any]], metric: str) -> float | None:
    """Metric at the last point minus the metric at 75% of the steps (interpolated)."""
    from harness.tables import interpolate

    points = [(p["step"], p[metric]) for p in curve if metric in p]
    if len(points) < 2:
        return None
    return points[-1][1] - interpolate(points, 0.75 * points[-1][0])


def converged_budget(curves: list[list[dict[str, Any]]], metric: str) -> int | None:
    """The fewest steps B such that every curve, cut at any evaluated step from B on, gains less than
    CONVERGED_GAIN over its last 25% (a constant rate after warm-up makes a cut curve the curve of a
    shorter run); None when the curves have not converged by their end. Requiring it of every later
    cut keeps one lucky wobble of a noisy dev curve from choosing the budget."""
    if not curves:
        return None
    steps = sorted(set.intersection(*({p["step"] for p in c if metric in p} for c in curves)) - {0})
    budget = None
    for step in reversed(steps):
        gains = [last_quarter_gain([p for p in c if p["step"] <= step], metric) for c in curves]
        if any(g is None or g >= CONVERGED_GAIN for g in gains):
            break
        budget = step
    return budget


def scores(done: Recorded, metric: str) -> dict[str, dict[tuple[str, str], list[float]]]:
    """recipe -> (method, lang) -> the dev scores of its seeds."""
    out: dict[str, dict[tuple[str, str], list[float]]] = {}
    for t, record in done:
        out.setdefault(t.recipe, {}).setdefault((t.method, t.lang), []).append(record["metrics"][metric])
    return out


def pick(trials: list[Trial], done: Recorded, metric: str) -> tuple[str, float] | None:
    """The recipe with the best mean dev score over every tuned method and language (complete recipes only)."""
    wanted = {(t.method, t.lang) for t in trials}
    means = {recipe: mean([mean(v) for v in cells.values()])
             for recipe, cells in scores(done, metric).items() if set(cells) == wanted}
    if not means:
        return None
    best = max(sorted(means), key=means.__getitem__)
    return best, means[best]


def pick_line(trials: list[Trial], done: Recorded, metric: str) -> str:
    chosen = pick(trials, done, metric)
    if not chosen:
        return "pick: none (no recipe complete)"
    curves = [record.get("curve") or [] for t, record in done if t.recipe == chosen[0] and t.method == "random"]
    budget = converged_budget(curves, metric)
    steps = (f"budget train.steps={budget}: random's dev curves gain < {CONVERGED_GAIN} over their last 25% "
             f"when cut at any step from {budget} on" if budget else
             "budget: random's dev curves have not converged by their last step; lengthen train.steps")
    return f"pick: {chosen[0]} (mean dev {metric} {chosen[1]:.4f}); {steps}"


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def record_commits(done: Recorded, runs_dir: str | None) -> list[str]:
    """The git commits in the trials' env.json files (as the leaderboard reports them)."""
    from harness.report import env_commits
    from harness.util import read_json

    envs = (RunDir.for_config(runs_dir or ".", t.run).path / "env.json" for t, _ in done)
    return env_commits(read_json(env) for env in envs if env.exists())


def tuning_markdown(trials: list[Trial], done: Recorded, config: dict[str, Any], header: dict[str, Any],
                    failed: int = 0, runs_dir: str | None = None) -> str:
    from tabulate import tabulate

    metric = config["tune.metric"]
    cols = sorted({(t.method, t.lang) for t in trials})
    table = scores(done, metric)
    seconds = sum(sum(record.get("timing", {}).values()) for _, record in done)
    gains: dict[str, list[float]] = {}  # recipe -> last-25% gains of random's curves
    for t, record in done:
        gain = last_quarter_gain(record.get("curve") or [], metric)
        if t.method == "random" and gain is not None:
            gains.setdefault(t.recipe, []).append(gain)
    rows = []
    for recipe in dict.fromkeys(t.recipe for t in trials):
        cells = table.get(recipe, {})
        row = [recipe] + [f"{mean(cells[c]):.4f}" if c in cells else "–" for c in cols]
        row.append(f"{mean([mean(v) for v in cells.values()]):.4f}" if set(cells) == set(cols) else "–")
        row.append(f"{max(gains[recipe]):+.4f}" if recipe in gains else "–")
        rows.append(row)
    headers = ["recipe", *(f"{m} {lang}" for m, lang in cols), "mean", "random: gain in last 25%"]
    lines = ["# Tuning the training recipe on dev", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(header.items())]
    lines += [f"- dev collection: `{config['tune.dataset']}` (held out from `train_dataset` "
              f"`{config['train_dataset']}`); test collections are never looked at",
              f"- grid: {', '.join(f'`{k}` in {json.dumps(v)}' for k, v in sorted(config['tune.grid'].items()))}",
              f"- methods x languages x seeds: {', '.join(config['tune.methods'])} x "
              f"{', '.join(config['tune.languages'])} x seeds {', '.join(map(str, config['tune.seeds']))}",
              f"- trials: {len(trials)} ({len(done)} recorded, {failed} failed); "
              f"cost: {seconds / 3600:.2f} h of run time on this machine",
              f"- records produced at commit(s): {', '.join(f'`{c}`' for c in record_commits(done, runs_dir)) or '?'}",
              f"- fairness rule: one recipe for every method, the best mean dev {metric} over all tuned methods "
              f"and languages; a curve has converged when it gains < {CONVERGED_GAIN} over its last 25% of steps",
              "", f"## Dev {metric}", "",
              tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), "",
              pick_line(trials, done, metric), ""]
    return "\n".join(lines)
