"""Leaderboards from run records: Markdown, LaTeX, CSV and PNG plots, with significance marks.

Everything is read from ``runs/*/result.json`` and the files it names (reporting never sees live
objects). The table model and the significance tests are ``harness.tables``; this module renders
them, with one average column per setting.

A rebuild from the same records is byte-identical: everything is sorted, floats have fixed formats,
and PNGs are written without software/date metadata.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from harness.evaluate import DEFAULT_METRICS
from harness.tables import (FRACTIONS, MARK, SETTING_ORDER, WORSE_MARK, Cell, Column, Entry, Records, Table,
                            add_significance, assign_labels, build_table, convergence, curve_groups, entry_has, load_records,
                            mean_curve, row_average, settings_of)
from harness.util import write_text_atomic

SETTING_SHORT = {"zero-shot": "ZS", "fine-tuned": "FT"}
METRIC_NAMES = {"ndcg@10": "nDCG@10", "recall@100": "R@100", "mrr@10": "MRR@10", "recall@10": "R@10",
                "map@100": "MAP@100", "precision@10": "P@10"}
TEST_NAMES = {"randomization": "paired randomization test", "t-test": "paired t-test"}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}
DASH = "–"


# --------------------------------------------------------------------------------------------
# Formatting helpers (fixed precision: the files must be identical on rebuild)
# --------------------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 3) -> str:
    return DASH if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def fmt_p(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def column_title(column: Column, columns: list[Column]) -> str:
    """``ko ZS``; the dataset name instead of the language when a language has several datasets."""
    datasets = {c.dataset for c in columns if c.lang == column.lang}
    where = column.lang if len(datasets) == 1 and column.lang != "und" else short_dataset(column.dataset)
    return f"{where} {SETTING_SHORT.get(column.setting, column.setting)}"


def short_dataset(name: str) -> str:
    """``beir:/long/path/scifact:test`` -> ``scifact:test``; registered names stay as they are."""
    if not name.startswith("beir:"):
        return name
    body = name[len("beir:"):].rstrip("/")
    return body.rsplit("/", 1)[-1]


def best_means(table: Table) -> dict[Column, str]:
    """The best formatted mean of a method per column (ties in print are all best); reference systems
    are not candidates, so the bold answers "which initialization", not "BM25 or not"."""
    out = {}
    for column in table.columns:
        means = [table.cells[(r, column)].mean for r in table.rows
                 if (r, column) in table.cells and r not in table.references]
        out[column] = fmt(max(means)) if means else None
    return out


def header_names(table: Table) -> list[str]:
    names = ["system"]
    for setting in settings_of(table):
        names += [column_title(c, table.columns) for c in table.columns if c.setting == setting]
        names.append(f"avg {SETTING_SHORT.get(setting, setting)}")
    return names


def row_cells(table: Table, row: str, render: Any) -> list[str]:
    """Formatted cells of one row in header order; ``render(cell, is_best, is_baseline)``."""
    best = best_means(table)
    out = [row]
    for setting in settings_of(table):
        for column in (c for c in table.columns if c.setting == setting):
            cell = table.cells.get((row, column))
            is_best = row not in table.references and fmt(cell.mean) == best[column] if cell else False
            out.append(DASH if cell is None else render(cell, is_best, table.is_baseline(row)))
        out.append(fmt(row_average(table, row, setting)))
    return out


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
def md_cell(cell: Cell, best: bool, is_baseline: bool) -> str:
    text = fmt(cell.mean) + (f" ± {fmt(cell.sd)}" if cell.sd is not None else "")
    text = f"**{text}**" if best else text
    return text + cell.mark()


def caption(table: Table, test: str, correction: str) -> str:
    seeds = ("mean ± sd over seeds (sd only with two or more seeds, and not for a method that draws nothing "
             "at random when its seeds agree)")
    against = (f"the {table.baseline_where} row of the same method" if table.baseline_where else table.baseline)
    if against is None:
        sig = f"no significance tests (baseline method '{table.baseline_method}' has no single row in this table)"
    else:
        sig = (f"{MARK} / {WORSE_MARK}: significantly better / worse than {against}, adjusted p < 0.05 "
               f"({TEST_NAMES.get(test, test)} on per-query "
               f"scores averaged over seeds, {CORRECTION_NAMES.get(correction, correction)} correction over "
               f"the {table.n_comparisons} comparisons in this table)")
    controls = sorted({c.lang for c in table.columns if table.is_control(c)})
    avg = (f"; avg = mean over the target languages' test collections (dev columns are not averaged), "
           f"without the control {'/'.join(controls)} (the source language through a freshly trained "
           f"tokenizer)" if controls else "")
    return f"{metric_name(table.metric)}, {seeds}; best method per column in bold; {sig}{avg}."


def seed_coverage(table: Table) -> str:
    """How many seeds the cells hold, per setting: ``zero-shot: 3 seeds (60 cells); fine-tuned: ...``."""
    parts = []
    for setting in settings_of(table):
        counts: dict[int, int] = defaultdict(int)
        for (row, column), cell in table.cells.items():
            if column.setting == setting and row not in table.references:
                counts[len(cell.values)] += 1
        spread = ", ".join(f"{n} seed{'s' if n > 1 else ''} ({k} cell{'s' if k > 1 else ''})"
                           for n, k in sorted(counts.items(), reverse=True))
        if spread:
            parts.append(f"{setting}: {spread}")
    references = " (reference systems: one run each, they have no seed)" if table.references else ""
    return "Seeds per cell of the methods: " + "; ".join(parts) + references + "."


def markdown(tables: list[Table], records: Records, notes: list[str], header: dict[str, Any], test: str,
             correction: str, plots: list[Path], grid: GridCells | None = None) -> str:
    from tabulate import tabulate

    lines = ["# Leaderboard", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(header.items())]
    lines += [f"- records: {len(records.entries)} ok, {len(records.failed)} failed"]
    lines += [grid_line(grid, records)] if grid else []
    commits = record_commits(records.entries)
    lines += [f"- records produced at commit(s): {', '.join(f'`{c}`' for c in commits)}"] if commits else []
    lines.append("")
    for table in tables:
        rows = [row_cells(table, r, md_cell) for r in table.rows]
        lines += [f"## {metric_name(table.metric)}", "",
                  tabulate(rows, headers=header_names(table), tablefmt="github", disable_numparse=True), "",
                  caption(table, test, correction), "", seed_coverage(table), ""]
    lines += convergence_markdown(records.entries, tables[0].metric, tables[0].baseline_method) if tables else []
    lines += [f"![{p.stem}]({p.name})" for p in plots] + ([""] if plots else [])
    lines += missing_markdown(grid, records) if grid else []
    lines += footer_markdown(records, notes)
    return "\n".join(lines).rstrip("\n") + "\n"


@dataclass
class GridCells:
    """The cells a sweep of ``name`` plans: run id -> (method, lang, setting, seed)."""

    name: str
    cells: dict[str, tuple[str, str, str, int]]


def _missing(grid: GridCells, records: Records) -> list[tuple[str, str, str, int]]:
    ok = {e.record["run_id"] for e in records.entries}
    return sorted((cell for rid, cell in grid.cells.items() if rid not in ok), key=lambda c: (c[2], c[3], c[0], c[1]))


def grid_line(grid: GridCells, records: Records) -> str:
    done = len(grid.cells) - len(_missing(grid, records))
    return f"- grid: `harness sweep {grid.name}`: {done} of {len(grid.cells)} cells recorded"


def missing_markdown(grid: GridCells, records: Records) -> list[str]:
    """Cells of the grid without an ok record, grouped by setting and seed."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for method, lang, setting, seed in _missing(grid, records):
        groups[(setting, seed)].append(f"{method}/{lang}")
    if not groups:
        return []
    lines = ["## Cells not recorded yet", "", f"`harness sweep {grid.name}` runs exactly these (recorded cells are skipped):", ""]
    lines += [f"- {setting}, seed {seed} ({len(cells)}): {', '.join(cells)}"
              for (setting, seed), cells in sorted(groups.items(), key=lambda kv: (SETTING_ORDER.get(kv[0][0], 9), kv[0]))]
    return lines + [""]


def record_commits(entries: list[Entry]) -> list[str]:
    """Distinct git commits (12-digit, '-dirty' kept) in the records' env.json files: provenance of the numbers."""
    return env_commits(e.env for e in entries)


def env_commits(envs: Iterable[dict[str, Any]]) -> list[str]:
    commits = {str(env.get("git")) for env in envs if env.get("git")}
    return sorted({c[:12] + ("-dirty" if c.endswith("-dirty") else "") for c in commits})


def convergence_markdown(entries: list[Entry], metric: str, baseline_method: str) -> list[str]:
    """Per language: each system's mean curve at 10/25/50/100% of the budget, its area under the curve
    (mean score over the budget) and the steps it needs to reach the baseline's final score."""
    from tabulate import tabulate

    rows = convergence(entries, metric, baseline_method)
    lines = []
    for (lang, dataset) in sorted({(r.lang, r.dataset) for r in rows}):
        group = [r for r in rows if (r.lang, r.dataset) == (lang, dataset)]
        body = [[r.label, str(r.seeds), str(r.budget), *(fmt(r.at[f]) for f in FRACTIONS), fmt(r.auc),
                 "never" if r.reaches_baseline is None else str(r.reaches_baseline)] for r in group]
        headers = ["system", "seeds", "budget", *(f"@{f:.0%}" for f in FRACTIONS), "AUC",
                   f"steps to {baseline_method}'s final"]
        lines += [f"## Convergence: {metric_name(metric)} on {dataset} during fine-tuning ({lang})", "",
                  tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), "",
                  f"Mean over seeds at 10/25/50/100% of the budget (interpolated between curve points); AUC = "
                  f"mean score over the budget; the last column is the first curve step at which the mean "
                  f"curve reaches {baseline_method}'s final score (\"never\" if it does not).", ""]
    return lines


def footer_markdown(records: Records, notes: list[str]) -> list[str]:
    from tabulate import tabulate

    lines = []
    if records.failed:
        rows = [[r.get("run_id", "?"), r.get("method", "?"), r.get("lang", "?"), r.get("setting", "?"),
                 str(r.get("seed", "?")), _one_line(r.get("error", ""))]
                for r in sorted(records.failed, key=lambda r: str(r.get("run_id")))]
        lines += ["## Failed cells", "",
                  tabulate(rows, headers=["run", "method", "lang", "setting", "seed", "error"], tablefmt="github",
                           disable_numparse=True), ""]
    if records.problems or notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in sorted(records.problems + notes)] + [""]
    return lines


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# LaTeX (booktabs)
# --------------------------------------------------------------------------------------------
_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


# How papers write the systems; a variant keeps its parameters: "SemBridge (alpha=2.0)".
DISPLAY_NAMES = {"sembridge": "SemBridge", "focus": "FOCUS", "wechsel": "WECHSEL", "fvt": "FVT", "ramen": "RAMEN",
                 "bridge-knn": "bridge-kNN", "bridge-omp": "bridge-OMP", "random-mvn": "random (MVN)",
                 "bm25": "BM25", "bm25-lite": "BM25-lite", "dense-bridge": "dense bridge",
                 "unadapted": "unadapted"}


DISPLAY_LABELS = {"bm25 (analyzer=lucene)": "BM25 (Lucene)", "bm25 (analyzer=auto)": "BM25-lite"}


def display_name(label: str) -> str:
    if label in DISPLAY_LABELS:
        return DISPLAY_LABELS[label]
    systems, _, how = label.rpartition(" (")
    if " + " in systems:  # a fusion (harness.fusion): "sembridge + bm25-lite (rrf)"
        return " + ".join(display_name(s) for s in systems.split(" + ")) + f" ({how.rstrip(')').upper()})"
    head, sep, rest = label.partition(" ")
    return DISPLAY_NAMES.get(head, head) + sep + rest


def tex_number(value: float | None) -> str:
    """``.378``: three decimals without the leading zero, the tables' convention for scores in [0, 1]."""
    text = fmt(value)
    return text[1:] if text.startswith("0.") else text


def tex_cell(cell: Cell, best: bool, is_baseline: bool) -> str:
    number = tex_number(cell.mean)
    number = rf"\mathbf{{{number}}}" if best else number
    sd = rf"_{{\pm {tex_number(cell.sd)}}}" if cell.sd is not None else ""
    mark = {MARK: r"^{\dagger}", WORSE_MARK: r"^{\downarrow}"}.get(cell.mark(), "")
    return f"${number}{sd}{mark}$"


def tex_header(table: Table) -> list[str]:
    """Two header rows: the settings over their columns (with a rule under each), then the languages."""
    groups, titles, first = [], ["system"], 2
    for setting in settings_of(table):
        names = [column_title(c, table.columns).rsplit(" ", 1)[0] for c in table.columns if c.setting == setting]
        titles += [*names, "avg"]
        groups.append((setting, first, first + len(names)))
        first += len(names) + 1
    top = " & " + " & ".join(rf"\multicolumn{{{b - a + 1}}}{{c}}{{{tex_escape(name)}}}" for name, a, b in groups)
    rules = " ".join(rf"\cmidrule(lr){{{a}-{b}}}" for _, a, b in groups)
    return [top + r" \\", rules, " & ".join(tex_escape(t) for t in titles) + r" \\"]


def latex(tables: list[Table], header: dict[str, Any], test: str, correction: str) -> str:
    """One table per metric, scaled to the text width: needs booktabs and graphicx."""
    lines = ["% generated by harness leaderboard; needs \\usepackage{booktabs} and \\usepackage{graphicx}"]
    lines += [f"% {k}: {v}" for k, v in sorted(header.items())]
    for table in tables:
        n_columns = len(header_names(table))
        lines += ["\\begin{table}[t]", "\\centering", "\\resizebox{\\linewidth}{!}{%",
                  f"\\begin{{tabular}}{{l{'c' * (n_columns - 1)}}}", "\\toprule", *tex_header(table), "\\midrule"]
        for i, row in enumerate(table.rows):
            if row in table.references and (i == 0 or table.rows[i - 1] not in table.references):
                lines.append("\\midrule")  # methods above, reference systems below
            cells = row_cells(table, row, tex_cell)
            cells = [tex_escape(display_name(cells[0]))] + [  # averages come formatted as 0.xxx
                c if c.startswith("$") else (c[1:] if c.startswith("0.") else c).replace(DASH, "--") for c in cells[1:]]
            lines.append(" & ".join(cells) + " \\\\")
        text = caption(table, test, correction).replace(MARK, "$^{\\dagger}$").replace(WORSE_MARK, "$^{\\downarrow}$")
        text = text.replace("±", "$\\pm$").replace("p < 0.05", "$p < 0.05$")
        lines += ["\\bottomrule", "\\end{tabular}}", f"\\caption{{{_tex_caption(text)}}}",
                  f"\\label{{tab:{_slug(table.metric)}}}", "\\end{table}", ""]
    return "\n".join(lines)


def _tex_caption(text: str) -> str:
    """Escape a caption except its math segments."""
    parts = text.split("$")
    return "$".join(p if i % 2 else tex_escape(p) for i, p in enumerate(parts))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


# --------------------------------------------------------------------------------------------
# CSV (long format: one row per system x column x metric)
# --------------------------------------------------------------------------------------------
CSV_FIELDS = ["metric", "system", "setting", "lang", "dataset", "n_seeds", "mean", "sd", "diff_vs_baseline",
              "p", "p_adjusted", "significant"]


def csv_text(tables: list[Table]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for table in tables:
        for row in table.rows:
            for column in table.columns:
                cell = table.cells.get((row, column))
                if cell is not None:
                    writer.writerow([table.metric, row, column.setting, column.lang, column.dataset,
                                     len(cell.values), f"{cell.mean:.6f}",
                                     "" if cell.sd is None else f"{cell.sd:.6f}",
                                     "" if cell.diff is None else f"{cell.diff:.6f}", fmt_p(cell.p),
                                     fmt_p(cell.p_adjusted),
                                     "" if cell.p_adjusted is None else int(cell.significant())])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> list[Path]:
    """``path`` (.png) and the same figure as vector PDF beside it, without software/date metadata
    (so rebuilds are byte-identical)."""
    plt = _pyplot()
    from harness.util import atomic_path

    pdf = path.with_suffix(".pdf")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=200, bbox_inches="tight", metadata={"Software": None})
    with atomic_path(pdf) as tmp:  # bbox "tight": the legend outside the axes stays in the file
        fig.savefig(tmp, format="pdf", bbox_inches="tight",
                    metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)
    return [path, pdf]


COLUMN_INCHES, PAGE_INCHES = 3.3, 6.9  # one column / the text width of a two-column paper


# Okabe & Ito's colour-blind-safe palette
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
HATCHES = ("", "////", "....", "xxxx")
LINES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))  # (line style, marker)


def color_map(labels: Iterable[str]) -> dict[str, str]:
    """One fixed colour per system across all plots (a colour-blind-safe palette, by sorted label)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def repeat_of(label: str, colors: dict[str, str]) -> int:
    """How many times the palette had gone round before ``label``'s colour: past 8 systems colours repeat,
    so bars add a hatch and lines a dash pattern and marker of this index."""
    return sorted(colors).index(label) // len(PALETTE)


def convergence_plots(entries: list[Entry], metric: str, out_dir: Path, name: str,
                      colors: dict[str, str]) -> list[Path]:
    """One PNG per (language, curve collection): metric vs step and vs wall time, one line per system
    (mean over seeds, with a mean +- sd band)."""
    paths = []
    for (lang, dataset), systems in sorted(curve_groups(entries).items()):
        plt = _pyplot()
        fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(PAGE_INCHES, 2.6))
        for label in sorted(systems):
            points = mean_curve(systems[label], metric)
            dash, marker = LINES[repeat_of(label, colors) % len(LINES)]
            style = dict(marker=marker, linestyle=dash, markersize=2, linewidth=1, label=display_name(label),
                         color=colors[label])
            low, high = [p[2] - p[3] for p in points], [p[2] + p[3] for p in points]
            for axis, x in ((by_step, [p[0] for p in points]), (by_time, [p[1] for p in points])):
                axis.plot(x, [p[2] for p in points], **style)
                if len(systems[label]) > 1:  # the band: mean +- sd over seeds
                    axis.fill_between(x, low, high, color=colors[label], alpha=0.15, linewidth=0)
        by_step.set(xlabel="step", ylabel=metric_name(metric), title=f"{dataset}: {metric_name(metric)} vs step")
        by_time.set(xlabel="wall time (s)", title="vs wall time")
        for axis in (by_step, by_time):
            axis.title.set_fontsize(8)
            axis.tick_params(labelsize=7)
            axis.xaxis.label.set_fontsize(8)
            axis.yaxis.label.set_fontsize(8)
        fig.tight_layout(rect=(0, 0, 0.78, 1))
        by_time.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))  # outside the data
        paths += save_figure(fig, out_dir / f"{name}-convergence-{_slug(lang)}-{_slug(dataset)}.png")
    return paths


def zero_shot_bars(table: Table, out_dir: Path, name: str, colors: dict[str, str]) -> list[Path]:
    """Grouped bars: zero-shot columns on the x axis, one bar per system, sd as error bars."""
    columns = [c for c in table.columns if c.setting == "zero-shot"]
    rows = [r for r in table.rows if any((r, c) in table.cells for c in columns)]
    if not columns or not rows:
        return []
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(PAGE_INCHES, 2.6))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        cells = [table.cells.get((row, c)) for c in columns]
        hatch = HATCHES[repeat_of(row, colors) % len(HATCHES)]
        ax.bar([j + i * width for j in range(len(columns))], [c.mean if c else 0.0 for c in cells], width,
               hatch=hatch,
               yerr=[(c.sd or 0.0) if c else 0.0 for c in cells], label=display_name(row), capsize=1.5,
               color=colors[row], error_kw={"linewidth": 0.6})
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))])
    ax.set_xticklabels([column_title(c, table.columns) for c in columns], fontsize=7, rotation=20, ha="right")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(metric_name(table.metric), fontsize=8)
    ax.set_title(f"Zero-shot {metric_name(table.metric)}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside the data
    return save_figure(fig, out_dir / f"{name}-zero-shot.png")


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def build_leaderboard(runs_dir: Path | str, out_dir: Path | str, name: str = "pocket", metric: str = "ndcg@10",
                      metrics: Sequence[str] = DEFAULT_METRICS, baseline: str = "random", test: str = "randomization",
                      correction: str = "holm", header: dict[str, Any] | None = None, *,
                      profile: str | None = None, n_resamples: int = 10000, seed: int = 0,
                      controls: Sequence[str] = ("en",), grid: GridCells | None = None,
                      warn: Callable[[str], None] | None = None, strict: bool = False,
                      require_baseline: bool = False) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex``, ``<name>.csv`` and PNG plots into ``out_dir``; return the paths.

    Unreadable records are left out, each with a ``warn`` line (default: stderr); ``strict`` makes them
    an error instead. A ``metric`` no record holds is an error; a ``baseline`` method without records
    is a warning (no significance tests), or an error with ``require_baseline`` (named by the user)."""
    from harness.stats import CORRECTIONS, TESTS
    from harness.util import HarnessError

    if test not in TESTS or correction not in CORRECTIONS:
        raise HarnessError(f"unknown test '{test}' or correction '{correction}': tests {', '.join(TESTS)}; "
                           f"corrections {', '.join(CORRECTIONS)}")
    out_dir = Path(out_dir)
    records = load_records(runs_dir, profile)
    if not records.entries and not records.failed:
        raise HarnessError(f"no run records under {runs_dir}: run `harness sweep` or `harness run` first")
    warn = warn or _warn_stderr
    for problem in records.problems:
        warn(f"{problem}: left out of the leaderboard")
    if strict and records.problems:
        raise HarnessError(f"{len(records.problems)} unreadable record(s) under {runs_dir} (--strict): "
                           f"repair or delete them, or leave out --strict")
    check_options(records.entries, metric, baseline, require_baseline, warn)
    assign_labels(records.entries)
    tables, notes = [], []
    for m in _ordered_metrics(metric, metrics):
        table, duplicate_notes = build_table(records.entries, m, baseline, controls)
        add_significance(table, test=test, correction=correction, n_resamples=n_resamples, seed=seed)
        tables.append(table)
        notes = sorted(set(notes) | set(duplicate_notes))
    tables = [t for t in tables if t.rows]
    colors = color_map(e.label for e in records.entries)
    plots = (zero_shot_bars(tables[0], out_dir, name, colors) if tables else []) + \
        convergence_plots(records.entries, metric, out_dir, name, colors)
    header = dict(header or {})
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.tex", out_dir / f"{name}.csv"]
    write_text_atomic(paths[0], markdown(tables, records, notes, header, test, correction, plots, grid))
    write_text_atomic(paths[1], latex(tables, header, test, correction))
    write_text_atomic(paths[2], csv_text(tables))
    return paths + plots


def check_options(entries: list[Entry], metric: str, baseline: str, require_baseline: bool,
                  warn: Callable[[str], None]) -> None:
    """The main metric and the baseline method must be in the records (with "did you mean")."""
    from harness.util import HarnessError

    if not entries:
        return
    recorded = sorted({m for e in entries for m in e.per_query})
    if metric not in recorded:
        raise HarnessError(f"metric '{metric}' is in no record{_did_you_mean(metric, recorded)}; recorded metrics: "
                           f"{', '.join(recorded)} (--metric)")
    if "=" in baseline:  # KEY=VALUE: each method's own row with that value
        if not any(entry_has(e, baseline) for e in entries):
            message = f"baseline '{baseline}': no record has that value"
            if require_baseline:
                raise HarnessError(f"{message} (--baseline)")
            warn(f"{message}: no significance tests")
        return
    methods = sorted({e.record["method"] for e in entries})
    if baseline not in methods:
        message = (f"baseline method '{baseline}' has no records{_did_you_mean(baseline, methods)}; "
                   f"methods: {', '.join(methods)}")
        if require_baseline:
            raise HarnessError(f"{message} (--baseline)")
        warn(f"{message}: no significance tests (pass --baseline METHOD)")


def _did_you_mean(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _warn_stderr(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)


def _ordered_metrics(metric: str, metrics: Iterable[str]) -> list[str]:
    return [metric] + [m for m in metrics if m != metric]
