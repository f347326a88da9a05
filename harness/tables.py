"""The leaderboard's table model: run records -> labelled entries -> cells -> significance.

Rows are methods (split by parameter or config variants when a runs folder holds several) plus
reference systems (``unadapted <model>``, ``bm25``, ``dense-bridge``); columns are language x
setting. Cells are mean +- sd over seeds of the per-query mean. Significance: per column, each row
against the declared baseline on per-query scores averaged over seeds (``stats.compare``), one
correction (Holm by default) over all comparisons of the table. The renderers are in ``report``.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.evaluate import read_per_query
from harness.runs import RESULT
from harness.stats import adjust, compare
from harness.util import read_json

SETTING_ORDER = {"zero-shot": 0, "fine-tuned": 1}
# Config keys that never make two records different systems (they are the grid, or do not change results).
NOT_VARIANTS = {"method", "method_params", "lang", "seed", "setting", "dataset", "train_dataset", "device",
                "encode.batch_size", "train.eval_dataset", "eval.also", "fusion.inputs"}
REFERENCE_METHODS = ("eval", "bm25", "dense-bridge", "fusion")
MARK, WORSE_MARK = "†", "↓"  # significantly better / worse than the baseline


# --------------------------------------------------------------------------------------------
# Loading records
# --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One ok run record with what the report needs from its files."""

    record: dict[str, Any]
    config: dict[str, Any]
    per_query: dict[str, dict[str, float]]  # metric -> qid -> score
    env: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def column(self) -> "Column":
        r = self.record
        return Column(r["setting"], r["lang"] or "und", r["dataset"])

    def value(self, metric: str) -> float | None:
        scores = self.per_query.get(metric)
        return sum(scores.values()) / len(scores) if scores else None


@dataclass(frozen=True, order=True)
class Column:
    setting: str
    lang: str
    dataset: str

    def sort_key(self) -> tuple:
        return (SETTING_ORDER.get(self.setting, 9), self.setting, self.lang, self.dataset)


@dataclass
class Records:
    entries: list[Entry] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable records, duplicates


def load_records(runs_dir: Path | str, profile: str | None = None) -> Records:
    """Every record under ``runs_dir`` (sorted by run id), split into ok entries and failures."""
    out = Records()
    for path in sorted(Path(runs_dir).glob(f"*/{RESULT}")):
        try:
            record = read_json(path)
            if not isinstance(record, dict):
                raise TypeError(f"result.json holds a JSON {type(record).__name__}, not a record")
            if profile and record.get("profile") != profile:
                continue
            if record.get("status", "ok") != "ok":
                out.failed.append(record)
                continue
            files = record["files"]
            per_query = read_per_query(path.parent / files["per_query"])
            config, env = _optional_json(path.parent, files, "config"), _optional_json(path.parent, files, "env")
            out.entries.append(Entry(record, config, per_query, env))
            out.entries += also_entries(path.parent, record, config, env)
        except (OSError, ValueError, KeyError, TypeError) as err:
            out.problems.append(f"unreadable record {path.parent.name}: {type(err).__name__}: {err}")
    return out


def also_entries(folder: Path, record: dict[str, Any], config: dict[str, Any], env: dict[str, Any]) -> list[Entry]:
    """The same run on each collection of its ``eval.also`` (``pipeline.evaluate_also``): one entry per
    collection, in that collection's column; the curve stays with the run's own collection."""
    entries = []
    for name, also in (record.get("also") or {}).items():
        other = {k: v for k, v in record.items() if k not in ("also", "curve", "steps_to_95")}
        other.update(dataset=name, metrics=also["metrics"], files=also["files"], counts=also.get("counts", {}))
        entries.append(Entry(other, config, read_per_query(folder / also["files"]["per_query"]), env))
    return entries


def _optional_json(folder: Path, files: dict[str, str], key: str) -> dict[str, Any]:
    path = folder / files[key] if key in files else None
    return read_json(path) if path is not None and path.is_file() else {}


# --------------------------------------------------------------------------------------------
# Row labels: method, or the evaluated model, plus whatever distinguishes several variants
# --------------------------------------------------------------------------------------------
def base_label(record: dict[str, Any]) -> str:
    if record["method"] == "eval":
        return f"unadapted {record['method_params'].get('model', '?')}"
    if record["method"] == "fusion":  # harness.fusion: "sembridge + bm25 (rrf)"
        params = record["method_params"]
        return f"{' + '.join(params.get('systems', ['?']))} ({params.get('fusion', '?')})"
    return record["method"]


def identity(entry: Entry) -> dict[str, str]:
    """What makes a record a distinct system: its parameters and its non-grid config values."""
    ident = {k: _short(v) for k, v in entry.record.get("method_params", {}).items()}
    ident.update({k: _short(v) for k, v in entry.config.items()
                  if k not in NOT_VARIANTS and not k.endswith("_hash")})  # a local input's content hash
    return ident


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def assign_labels(entries: list[Entry]) -> None:
    """Label = base label, plus ``(key=value, ...)`` for the keys that differ within that base in one
    column: a value that only changes with the column (a per-language tokenizer recipe) is no variant."""
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[base_label(entry.record)].append(entry)
    for base, members in groups.items():
        idents = [full_identity(e) for e in members]  # a key left out of one id at its legacy value still varies
        keys = sorted({k for i in idents for k in i})
        # a method parameter some records lack (left out at its default) varies too; a config key only
        # some records have (training keys of fine-tuned runs) does not
        params = {k for e in members for k in e.record.get("method_params", {})}
        by_column: dict[Column, list[dict[str, str]]] = defaultdict(list)
        for entry, ident in zip(members, idents):
            by_column[entry.column].append(ident)
        varying = [k for k in keys if any(len({i.get(k) for i in col} if k in params else
                                              {i[k] for i in col if k in i}) > 1 for col in by_column.values())]
        defaults = declared_defaults(base)
        usual = {k: defaults[k] if k in defaults else usual_value([i.get(k) for i in idents]) for k in varying}
        for entry, ident in zip(members, idents):
            # the method's usual value (its default in an ablation grid) goes unsaid: "sembridge" stays the default
            parts = [f"{k}={ident[k]}" for k in varying if k in ident and ident[k] != usual[k]]
            entry.label = f"{base} ({', '.join(parts)})" if parts else base


def declared_defaults(base: str) -> dict[str, str]:
    """What a row need not say: the method's declared parameter defaults and the config schema's defaults."""
    from harness.config import SCHEMA
    from harness.method_specs import get_method
    from harness.registry import UnknownNameError
    from harness.util import HarnessError

    defaults = {k: _short(spec.default) for k, spec in SCHEMA.items()}
    try:
        defaults.update({p.name: _short(p.default) for p in get_method(base).params})
    except (HarnessError, UnknownNameError):  # a reference system, an evaluated model, a broken plugin
        pass
    return defaults


def usual_value(values: list[Any]) -> Any:
    """Without a declared default: the value most records of a method hold (absent counts too); a tie has none."""
    counts = Counter(values).most_common(2)
    return counts[0][0] if len(counts) == 1 or counts[0][1] > counts[1][1] else _NO_USUAL_VALUE


_NO_USUAL_VALUE = object()


# --------------------------------------------------------------------------------------------
# The table model
# --------------------------------------------------------------------------------------------
@dataclass
class Cell:
    values: list[float]  # one per seed
    per_query: list[dict[str, float]]  # one per seed
    p: float | None = None
    p_adjusted: float | None = None
    diff: float | None = None
    deterministic: bool = True  # every record's plan says it did not depend on the seed

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def sd(self) -> float | None:
        """None with one seed, or for a method that draws nothing at random whose seeds agree
        (no "± 0.000"); fine-tuning still varies with the seed, and then the sd is shown."""
        if len(self.values) < 2 or (self.deterministic and len(set(self.values)) == 1):
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < alpha

    def mark(self) -> str:
        """``†`` significantly better than the baseline, ``↓`` significantly worse, else nothing."""
        if not self.significant() or not self.diff:
            return ""
        return MARK if self.diff > 0 else WORSE_MARK


@dataclass
class Table:
    metric: str
    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, Column], Cell]
    baseline: str | None
    baseline_method: str = ""
    n_comparisons: int = 0
    controls: frozenset[str] = frozenset()  # languages shown last and left out of the averages
    references: frozenset[str] = frozenset()  # rows of reference systems (one deterministic run each)
    # a baseline given as KEY=VALUE: each row is tested against the same system with that value (e.g.
    # train.objective=splade: every objective against splade with the same initialization and data)
    baseline_where: str = ""
    baseline_of: dict[tuple[str, Column], str] = field(default_factory=dict)  # (row, column) -> its baseline row

    def is_control(self, column: Column) -> bool:
        return column.lang in self.controls

    def is_baseline(self, row: str) -> bool:
        return row == self.baseline or row in self.baseline_of.values()

    def comparisons(self, column: Column) -> list[tuple[str, list[str]]]:
        """(baseline row, rows tested against it) in ``column``."""
        present = [row for row in self.rows if (row, column) in self.cells]
        if not self.baseline_where:
            return [(self.baseline, [r for r in present if r != self.baseline])] if self.baseline in present else []
        groups: dict[str, list[str]] = defaultdict(list)
        for row in present:
            baseline = self.baseline_of.get((row, column))
            if baseline in present:
                groups[baseline].append(row)
        return list(groups.items())


def build_table(entries: list[Entry], metric: str, baseline_method: str,
                controls: Iterable[str] = ()) -> tuple[Table, list[str]]:
    """Cells of one metric; returns the table and notes about ignored duplicate records."""
    cells: dict[tuple[str, Column], Cell] = {}
    seen: dict[tuple[str, Column, int], str] = {}
    notes = []
    for entry in sorted(entries, key=lambda e: e.record["run_id"]):
        value = entry.value(metric)
        if value is None:
            continue
        key = (entry.label, entry.column, entry.record["seed"])
        if key in seen:
            notes.append(f"{entry.record['run_id']} duplicates {seen[key]} (same row, column and seed): ignored")
            continue
        seen[key] = entry.record["run_id"]
        cell = cells.setdefault((entry.label, entry.column), Cell([], []))
        cell.deterministic = cell.deterministic and bool(entry.record.get("plan", {}).get("deterministic"))
        cell.values.append(value)
        cell.per_query.append(entry.per_query[metric])
    references = {e.label for e in entries if e.record["method"] in REFERENCE_METHODS}
    rows = sorted({r for r, _ in cells}, key=lambda r: (r in references, r))  # methods first, then references
    controls = frozenset(controls)
    columns = sorted({c for _, c in cells}, key=lambda c: (c.sort_key()[:2], c.lang in controls, c.sort_key()))
    if "=" in baseline_method:
        return Table(metric, rows, columns, cells, None, baseline_method, controls=controls,
                     references=frozenset(references), baseline_where=baseline_method,
                     baseline_of=same_system_with(entries, baseline_method)), notes
    baselines = sorted({e.label for e in entries if e.record["method"] == baseline_method})
    # several variants of the baseline method: the one without a variant suffix (its defaults) is the baseline
    baseline = baseline_method if baseline_method in baselines else (baselines[0] if len(baselines) == 1 else None)
    return Table(metric, rows, columns, cells, baseline, baseline_method, controls=controls,
                 references=frozenset(references)), notes


def same_system_with(entries: list[Entry], where: str) -> dict[tuple[str, Column], str]:
    """{(row, column): the row of the same method, in that column, whose records are the same system but
    with ``KEY=VALUE``} for the rows without that value; rows without such a partner are not tested."""
    from harness.config import parse_override

    key = parse_override(where)[0]
    rest: dict[tuple[str, Column], tuple] = {}
    matches: dict[tuple[str, Column], bool] = {}
    for entry in entries:
        ident = {k: v for k, v in full_identity(entry).items() if k != key}
        cell = (entry.label, entry.column)
        rest.setdefault(cell, (base_label(entry.record), entry.column, tuple(sorted(ident.items()))))
        matches[cell] = matches.get(cell, True) and entry_has(entry, where)
    baseline_of_system = {rest[cell]: cell[0] for cell, ok in matches.items() if ok}
    return {cell: baseline_of_system[rest[cell]] for cell, ok in matches.items()
            if not ok and rest[cell] in baseline_of_system}


def full_identity(entry: Entry) -> dict[str, str]:
    """``identity`` with the keys left out of run ids at their legacy values read back (LEGACY_VALUES)."""
    from harness.config import LEGACY_VALUES

    setting_keys = {k for k in LEGACY_VALUES if not k.startswith("train.") or entry.record["setting"] == "fine-tuned"}
    legacy = {k: _short(LEGACY_VALUES[k]) for k in setting_keys if k not in NOT_VARIANTS}
    return {**legacy, **identity(entry)}


def entry_has(entry: Entry, where: str) -> bool:
    """Whether the record has ``KEY=VALUE`` (the value read as YAML, as ``--set`` reads it)."""
    from harness.config import LEGACY_VALUES, parse_override

    key, value = parse_override(where)
    params = entry.record.get("method_params", {})
    return (params[key] if key in params else entry.config.get(key, LEGACY_VALUES.get(key))) == value


def add_significance(table: Table, *, test: str, correction: str, n_resamples: int, seed: int) -> None:
    """Each row against the baseline in every column (``stats.compare``); one correction over the whole table."""
    tested = []
    for column in table.columns:
        for baseline, rows in table.comparisons(column):
            cells = {row: table.cells[(row, column)] for row in [baseline, *rows]}
            systems = {row: cell.per_query for row, cell in cells.items()}
            for comparison in compare(systems, baseline=baseline, test=test, correction="none",
                                      n_resamples=n_resamples, seed=seed):
                cell = cells[comparison.system]
                cell.diff = comparison.diff if comparison.n_queries else None
                cell.p = comparison.p
                tested.append(cell)
    for cell, p_adj in zip(tested, adjust([c.p for c in tested], correction)):
        cell.p_adjusted = p_adj
    table.n_comparisons = len(tested)


def row_average(table: Table, row: str, setting: str) -> float | None:
    """Mean of the row's cell means over the setting's non-control columns; None unless it has them all."""
    columns = [c for c in table.columns if c.setting == setting and not table.is_control(c) and not is_dev(c)]
    cells = [table.cells.get((row, c)) for c in columns]
    if not cells or any(c is None for c in cells):
        return None
    return sum(c.mean for c in cells) / len(cells)


def is_dev(column: Column) -> bool:
    """A column on a dev collection: shown, but never averaged with the test collections."""
    from harness.data.libreoffice import DEV_KIND
    from harness.registry import UnknownNameError, datasets

    try:
        return getattr(datasets.get(column.dataset), "kind", "") == DEV_KIND
    except (UnknownNameError, KeyError):  # a beir: folder, a plugin's unknown name
        return False


def settings_of(table: Table) -> list[str]:
    return sorted({c.setting for c in table.columns}, key=lambda s: (SETTING_ORDER.get(s, 9), s))


# --------------------------------------------------------------------------------------------
# Convergence of the fine-tuned curves
# --------------------------------------------------------------------------------------------
FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # points of the budget the convergence table reports


def mean_curve(curves: list[list[dict[str, Any]]], metric: str) -> list[tuple[float, float, float, float]]:
    """(step, mean wall seconds, mean metric, sd of the metric over seeds) at the steps every seed's curve reports."""
    by_step = [{int(p["step"]): p for p in c if p.get(metric) is not None} for c in curves]
    steps = sorted(set(by_step[0]).intersection(*by_step[1:])) if by_step else []
    n = len(by_step)
    out = []
    for s in steps:
        values = [float(b[s][metric]) for b in by_step]
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        out.append((s, sum(float(b[s].get("wall_seconds", 0.0)) for b in by_step) / n, mean, sd))
    return out


def interpolate(points: list[tuple[float, float]], step: float) -> float:
    """The curve's value at ``step``, linear between its points (its ends beyond them)."""
    for (s0, v0), (s1, v1) in zip(points, points[1:]):
        if s0 <= step <= s1:
            return v0 if s1 == s0 else v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return points[-1][1] if step > points[-1][0] else points[0][1]


@dataclass
class Convergence:
    """One system's mean fine-tuning curve on one collection, summarised."""

    label: str
    lang: str
    dataset: str
    seeds: int
    budget: int
    at: dict[float, float]  # fraction of the budget -> mean metric there
    auc: float  # mean metric over the budget (area under the curve / budget)
    reaches_baseline: int | None  # first curve step at which it reaches the baseline's final score


def curve_groups(entries: list[Entry]) -> dict[tuple[str, str], dict[str, list[list[dict[str, Any]]]]]:
    """(lang, dataset of the curve points) -> label -> one curve per seed, from fine-tuned records."""
    groups: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        if e.record.get("curve"):
            where = e.config.get("train.eval_dataset") or e.record["dataset"]
            groups[(e.record["lang"], where)][e.label].append(e.record["curve"])
    return groups


def convergence(entries: list[Entry], metric: str, baseline_method: str) -> list[Convergence]:
    """Per language and curve collection: each system's score at 10/25/50/100% of its budget, its area
    under the curve, and the first step at which it reaches the baseline method's final score."""
    baselines = {e.label for e in entries if e.record["method"] == baseline_method}
    out = []
    for (lang, dataset), systems in sorted(curve_groups(entries).items()):
        curves = {label: mean_curve(c, metric) for label, c in systems.items()}
        curves = {label: points for label, points in curves.items() if points}
        base = [curves[b][-1][2] for b in baselines if b in curves]
        target = base[0] if len(base) == 1 else None
        for label, points in sorted(curves.items()):
            xy = [(p[0], p[2]) for p in points]
            budget = xy[-1][0]
            area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(xy, xy[1:]))
            reach = next((int(s) for s, v in xy if target is not None and v >= target), None)
            out.append(Convergence(label, lang, dataset, len(systems[label]), int(budget),
                                   {f: interpolate(xy, f * budget) for f in FRACTIONS},
                                   area / budget if budget else xy[-1][1], reach))
    return out
