"""The sweep: every method x language x seed x setting of a profile, one recorded run per cell.

Cells already recorded with status "ok" are skipped (the skip rule of ``runs.RunDir.recorded``);
a cell that fails is recorded with status "failed" and its error, and the sweep goes on, so a
leaderboard can list what is missing and a later sweep retries exactly the failed cells.
With ``workers > 1`` cells run in separate processes (spawned: CUDA and forking do not mix); with
``launcher="submitit"`` or ``"ray"`` they run as jobs of a cluster (``harness.launchers``), under the
same rules.
"""
from __future__ import annotations

import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from harness.config import load_config, run_config
from harness.device import cpu_count
from harness.runs import RunDir, record_failure
from harness.util import HarnessError, exit_on_sigterm

Echo = Callable[[str], None]


@dataclass
class Cell:
    """One grid cell; ``run`` is None when it could not even be planned (``error`` says why)."""

    method: str
    lang: str
    seed: int
    setting: str
    run: dict[str, Any] | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.method}/{self.lang}/{self.setting}/s{self.seed}"


@dataclass
class SweepSummary:
    total: int = 0
    ran: list[str] = field(default_factory=list)  # run ids executed now
    skipped: list[str] = field(default_factory=list)  # run ids already recorded
    failed: list[dict[str, str]] = field(default_factory=list)  # {run_id, cell, error}
    stopped_early: bool = False
    draining: bool = False  # SIGUSR1: the cells in flight finish, no other cell starts
    not_started: int = 0  # cells left when a drain ended the sweep

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        stop = " (stopped at the first failure)" if self.stopped_early else ""
        drained = f" (drained on SIGUSR1: {self.not_started} cells not started)" if self.draining else ""
        return (f"{self.total} cells: {len(self.ran)} ran, {len(self.skipped)} already recorded, "
                f"{len(self.failed)} failed{stop}{drained}")


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def method_variant(entry: str) -> tuple[str, list[str]]:
    """A ``methods`` entry: a method name, or a variant ``name(key=value, ...)`` of it (ablations):
    (name, its overrides). A key that is a config key (``bridge_model``, ``bridge_prefix``, ...) sets
    that key for the variant's cells; any other key is a method parameter (``method.key=value``), on top
    of the profile's ``method_params`` for that name. The record is the method's own, with those values."""
    from harness.config import SCHEMA

    name, sep, rest = entry.partition("(")
    if not sep:
        return entry.strip(), []
    if not rest.rstrip().endswith(")"):
        raise HarnessError(f"methods entry {entry!r}: a variant is written name(param=value, ...)")
    items = [item.strip() for item in rest.rstrip()[:-1].split(",") if item.strip()]
    bad = [item for item in items if "=" not in item]
    if bad or not items:
        raise HarnessError(f"methods entry {entry!r}: a variant is written name(param=value, ...)")
    return name.strip(), [item if item.partition("=")[0].strip() in SCHEMA else f"method.{item}" for item in items]


def plan_cells(profile: str, overrides: Sequence[str] = ()) -> list[Cell]:
    """Every grid cell, planned; a method that cannot be planned gives cells carrying the error."""
    from harness.method_specs import MethodLoadError
    from harness.pipeline import plan_runs
    from harness.registry import UnknownNameError

    config = load_config(profile, list(overrides))
    settings = list(config["settings"])
    model_overrides = [[f"source_model={m}"] for m in config["source_models"]] or [[]]
    cells = []
    for extra in model_overrides:
        cell_config = load_config(profile, [*overrides, *extra])
        for method in config["methods"]:
            for lang in config["languages"]:
                for seed in config["seeds"]:
                    # a deterministic method's zero-shot plan is the same for every seed: run the first only
                    wanted = [s for s in settings if s != "zero-shot" or seed == config["seeds"][0]
                              or not _deterministic(method)]
                    wanted = [s for s in wanted if not excluded(config["exclude"], method=method, lang=lang,
                                                                seed=seed, setting=s)]
                    if not wanted:
                        continue
                    try:
                        name, params = method_variant(method)
                        runs = plan_runs(profile, [*overrides, *extra, *params], method=name, lang=lang, seed=seed,
                                         settings=wanted)
                        cells += [Cell(method, lang, seed, r["setting"], run=r) for r in runs]
                    except MethodLoadError:
                        raise  # a broken install fails every cell alike: stop before any (ids would be wrong too)
                    except (HarnessError, UnknownNameError, ValueError) as err:
                        cells += [Cell(method, lang, seed, s, run=fallback_run(cell_config, method, lang, seed, s),
                                       error=f"planning failed: {err}") for s in wanted]
    return distinct(cells)


def distinct(cells: list[Cell]) -> list[Cell]:
    """The first cell of each run config: variants that differ only in training keys (an objective) share
    their zero-shot run, which must run once, not once per variant (and never twice at the same time)."""
    from harness.runs import run_id

    seen: set[str] = set()
    out = []
    for cell in cells:
        key = run_id(cell.run) if cell.run is not None else cell.label
        if key not in seen:
            seen.add(key)
            out.append(cell)
    return out


EXCLUDE_FIELDS = ("method", "lang", "seed", "setting")


def excluded(patterns: list[Any], **cell: Any) -> bool:
    """Whether a cell matches one of the profile's ``exclude`` patterns (every field a pattern names)."""
    for pattern in patterns:
        if not isinstance(pattern, dict) or not pattern or set(pattern) - set(EXCLUDE_FIELDS):
            raise HarnessError(f"exclude: {pattern!r} is not a mapping of {', '.join(EXCLUDE_FIELDS)}; "
                               f"e.g. {{lang: en, setting: fine-tuned}}")
        if all(cell[k] == v for k, v in pattern.items()):
            return True
    return False


def _deterministic(entry: str) -> bool:
    """Whether a methods entry names a method registered as deterministic (unknown names: False)."""
    from harness.method_specs import get_method
    from harness.registry import UnknownNameError

    try:
        return bool(get_method(method_variant(entry)[0]).deterministic)
    except (HarnessError, UnknownNameError):
        return False


def fallback_run(config: dict[str, Any], method: str, lang: str, seed: int, setting: str) -> dict[str, Any]:
    """A run config for a cell whose planning failed, so the failure gets a record (and a run id)."""
    from harness.config import method_overrides

    try:
        name, variant = method_variant(method)
    except HarnessError:
        name, variant = method, []
    params = {**config["method_params"].get(name, {}), **method_overrides(variant)}
    return run_config(config, method=name if variant else method, method_params=params, lang=lang, seed=seed,
                      setting=setting)


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------
def run_cell(run: dict[str, Any], runs_dir: str, echo: Echo | None = None,
             save_model: bool = False) -> tuple[str, str, str | None]:
    """Execute one cell, recording a failure instead of raising: (run id, "ran"|"skipped"|"failed", error).
    ``save_model``: keep the cell's adapted model in its run folder (``pipeline.execute``)."""
    from harness import pipeline

    echo = echo or _quiet
    folder = RunDir.for_config(runs_dir, run)
    if folder.recorded() is not None:
        return folder.id, "skipped", None
    try:
        pipeline.execute(run, runs_dir=runs_dir, echo=echo, save_model=save_model)  # a failed record is retried (runs.RunDir.recorded)
    except Exception as err:  # one broken cell must not stop the sweep
        message = f"{type(err).__name__}: {err}"
        record_failure(folder, run, message, traceback.format_exc())
        return folder.id, "failed", message
    return folder.id, "ran", None


def _quiet(message: str) -> None:
    pass


def sweep(config: str, *, runs_dir: str, overrides: Sequence[str] = (), workers: int | None = None,
          echo: Echo = print, fail_fast: bool = False, save_model: bool = True, launcher: str = "local",
          launcher_options: dict[str, Any] | None = None) -> SweepSummary:
    """Run every cell of ``config`` (a profile name or YAML path), skipping recorded ones; each cell keeps
    its adapted model unless ``save_model`` is False."""
    launcher_options = check_launcher(launcher, launcher_options)
    return run_cells(plan_cells(config, overrides), runs_dir=runs_dir, workers=workers, echo=echo,
                     fail_fast=fail_fast, save_model=save_model, launcher=launcher,
                     launcher_options=launcher_options)


def check_launcher(launcher: str, options: dict[str, Any] | None) -> dict[str, Any]:
    from harness.launchers import LAUNCHERS, check_installed

    if launcher not in LAUNCHERS:
        raise HarnessError(f"unknown launcher '{launcher}'; launchers: {', '.join(LAUNCHERS)}")
    if launcher == "local" and options:
        raise HarnessError(f"--launcher-opt {', '.join(sorted(options))}: the local launcher takes no options "
                           f"(--workers sets its processes)")
    check_installed(launcher)
    return dict(options or {})


def run_cells(cells: list[Cell], *, runs_dir: str, workers: int | None = 1, echo: Echo = print,
              fail_fast: bool = False, save_model: bool = False, launcher: str = "local",
              launcher_options: dict[str, Any] | None = None) -> SweepSummary:
    """Run planned cells (a sweep's, or a tuning grid's) with the sweep's skip, failure and worker rules.

    ``workers``: processes of the local pool (None: 1), or the cap on cells in flight under submitit
    and ray (None: no cap). ``save_model`` is off by default: tuning trials (``harness tune``) keep no
    models; a sweep turns it on."""
    summary = SweepSummary(total=len(cells))
    for cell in [c for c in cells if c.error]:
        folder = RunDir.for_config(runs_dir, cell.run)
        record_failure(folder, cell.run, cell.error)
        _note(summary, cell, (folder.id, "failed", cell.error), echo)
    todo = cheap_first([c for c in cells if not c.error])
    pending = [c.run for c in todo if RunDir.for_config(runs_dir, c.run).recorded() is None]
    _preflight(pending)
    if summary.failed and fail_fast:
        summary.stopped_early = True
        return summary
    todo = [c for c in todo if not _skip_recorded(summary, c, runs_dir, echo)] if launcher != "local" else todo
    with _progress(len(cells), initial=len(cells) - len(todo)) as bar:
        if launcher != "local":
            _run_launcher(launcher, launcher_options or {}, todo, runs_dir, workers, echo, fail_fast, summary,
                          bar, save_model)
        else:
            runner = _run_serial if (workers or 1) <= 1 else _run_parallel
            if runner is _run_parallel:
                prepare_teachers(pending, echo)
            with _drain_on_sigusr1(summary, echo):
                runner(todo, runs_dir, workers or 1, echo, fail_fast, summary, bar, save_model)
    echo(summary.line())
    return summary


@contextmanager
def _drain_on_sigusr1(summary: SweepSummary, echo: Echo) -> Iterator[None]:
    """``kill -USR1 <sweep>``: the cells in flight finish and are recorded, no other cell starts, so a sweep
    can be stopped between cells without losing work (Ctrl-C or SIGTERM stop at once)."""
    import signal
    import threading

    if not hasattr(signal, "SIGUSR1") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def drain(signum: int, frame: Any) -> None:
        if not summary.draining:
            summary.draining = True
            echo("SIGUSR1: the cells in flight finish; no other cell starts")

    previous = signal.signal(signal.SIGUSR1, drain)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _preflight(runs: list[dict[str, Any]]) -> None:
    """Missing models or data, bad metric names or unreadable local inputs fail the whole sweep at once
    (one line), not cell by cell. (The CLI checks the runs folder before planning.)"""
    from harness.pipeline import preflight

    if runs:
        preflight(runs)


def prepare_teachers(runs: list[dict[str, Any]], echo: Echo) -> None:
    """Train the pocket query generators that qg-distill cells will need, here, with every core, before the
    pool starts: in a cell it would train on that worker's share of the cores while the cells of the
    same language on other workers wait for it."""
    from harness.teacher import pocket_teacher_dir, uses_pocket_teacher

    for lang in dict.fromkeys(r["lang"] for r in runs if uses_pocket_teacher(r)):
        echo(f"pocket query generator ({lang}): {pocket_teacher_dir(lang)}")


def cheap_first(cells: list[Cell]) -> list[Cell]:
    """Zero-shot cells first, then one seed at a time: an interrupted sweep leaves complete tables behind."""
    seeds = {s: i for i, s in enumerate(dict.fromkeys(c.seed for c in cells))}
    return sorted(cells, key=lambda c: (c.setting != "zero-shot", seeds[c.seed]))


def _note(summary: SweepSummary, cell: Cell, outcome: tuple[str, str, str | None], echo: Echo) -> None:
    rid, status, error = outcome
    if status == "failed":
        summary.failed.append({"run_id": rid, "cell": cell.label, "error": error or ""})
        echo(f"FAILED {cell.label} ({rid}): {error}")
    else:
        (summary.ran if status == "ran" else summary.skipped).append(rid)


def _run_serial(cells: list[Cell], runs_dir: str, workers: int, echo: Echo, fail_fast: bool,
                summary: SweepSummary, bar: Any, save_model: bool) -> None:
    for i, cell in enumerate(cells):
        if summary.draining:
            summary.not_started = len(cells) - i
            return
        _note(summary, cell, run_cell(cell.run, runs_dir, echo, save_model), echo)
        bar.update(1)
        if fail_fast and summary.failed:
            summary.stopped_early = True
            return


def _skip_recorded(summary: SweepSummary, cell: Cell, runs_dir: str, echo: Echo) -> bool:
    """A cell recorded ok is not submitted to a cluster at all: counted as skipped here."""
    folder = RunDir.for_config(runs_dir, cell.run)
    if folder.recorded() is None:
        return False
    _note(summary, cell, (folder.id, "skipped", None), echo)
    return True


def _run_launcher(launcher: str, options: dict[str, Any], cells: list[Cell], runs_dir: str, workers: int | None,
                  echo: Echo, fail_fast: bool, summary: SweepSummary, bar: Any, save_model: bool) -> None:
    """Cells as submitit jobs or Ray tasks (``harness.launchers``)."""
    from harness.launchers import run_remote

    def note(cell: Cell, outcome: tuple[str, str, str | None]) -> bool:
        _note(summary, cell, outcome, echo)
        bar.update(1)
        summary.stopped_early = fail_fast and bool(summary.failed)
        return summary.stopped_early

    if cells:
        run_remote(launcher, cells, runs_dir, in_flight=workers, save_model=save_model, options=options, note=note)


def _run_parallel(cells: list[Cell], runs_dir: str, workers: int, echo: Echo, fail_fast: bool,
                  summary: SweepSummary, bar: Any, save_model: bool) -> None:
    """Cells on spawned worker processes, at most one queued per worker.

    A worker that dies (killed, out of memory) breaks its pool and every cell in flight with it:
    those cells run again one at a time, so only the cell that kills its worker is recorded as
    failed, and the sweep goes on with a fresh pool.
    """
    def note(cell: Cell, outcome: tuple[str, str, str | None]) -> bool:
        _note(summary, cell, outcome, echo)
        bar.update(1)
        summary.stopped_early = fail_fast and bool(summary.failed)
        return summary.stopped_early

    queue = list(cells)
    while queue and not summary.stopped_early:
        if summary.draining:
            summary.not_started = len(queue)
            return
        suspects, queue = _pool_round(queue, runs_dir, workers, note, save_model, lambda: summary.draining)
        for cell in suspects:
            alone = _pool_round([cell], runs_dir, 1, note, save_model, lambda: False)
            if alone[0]:  # it killed a worker on its own too
                message = "worker crashed: the process running this cell died (killed, e.g. out of memory)"
                folder = RunDir.for_config(runs_dir, cell.run)
                record_failure(folder, cell.run, message)
                note(cell, (folder.id, "failed", message))
            if summary.stopped_early:
                return


def _pool_round(cells: list[Cell], runs_dir: str, workers: int,
                note: Callable[[Cell, tuple[str, str, str | None]], bool], save_model: bool,
                draining: Callable[[], bool]) -> tuple[list[Cell], list[Cell]]:
    """Run ``cells`` until done, stopped, drained (no new cell once ``draining()``), or a worker dies:
    (cells in flight at the crash, cells not started)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, cpu_count() // workers)  # the workers share the cores instead of each taking all
    waiting = list(reversed(cells))
    running: dict[Any, Cell] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        try:
            while waiting or running:
                while waiting and len(running) < workers and not draining():
                    cell = waiting.pop()
                    running[pool.submit(_run_cell_in_worker, cell.run, runs_dir, save_model)] = cell
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        return [cell, *running.values()], waiting[::-1]
                    except Exception as err:  # the cell's result could not come back
                        message = f"worker failed: {type(err).__name__}: {err}"
                        folder = RunDir.for_config(runs_dir, cell.run)
                        record_failure(folder, cell.run, message)
                        outcome = (folder.id, "failed", message)
                    if note(cell, outcome):
                        return [], []
                if draining() and not running:
                    return [], waiting[::-1]
        except BaseException:  # interrupted or killed: stop the cells in flight too (they clean up)
            for process in (getattr(pool, "_processes", None) or {}).values():
                process.terminate()
            raise
    return [], []


def _run_cell_in_worker(run: dict[str, Any], runs_dir: str, save_model: bool) -> tuple[str, str, str | None]:
    try:
        return run_cell(run, runs_dir, save_model=save_model)
    except SystemExit as stop:  # terminated: the cell has cleaned up; leave instead of taking the next cell
        os._exit(stop.code if isinstance(stop.code, int) else 1)


def _init_worker(threads: int) -> None:
    import signal

    import torch

    exit_on_sigterm()
    if hasattr(signal, "SIGUSR1"):  # meant for the sweep (a kill of the process group must not end a cell)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _progress(total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="sweep", unit="cell")
