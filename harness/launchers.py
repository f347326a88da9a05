"""Where a sweep's cells run beyond this machine: submitit (SLURM, or its local executor) and Ray.

``harness sweep CONFIG --launcher submitit|ray`` plans the same cells as the local pool and applies
the same rules: a cell recorded "ok" is skipped (decided here, before anything is submitted), a cell
that fails records status "failed" itself (``sweep.run_cell`` runs inside the job), and a job that
dies without a record (killed, timed out, node lost) is recorded "failed" here with the launcher's
error, so the next sweep retries it. The records are written by the jobs into ``runs_dir``: on a
cluster it must be a folder every node sees (a shared file system), and the harness must be
installed on the nodes.

Options are ``--launcher-opt KEY=VALUE`` (values read as YAML):

- submitit: ``cluster`` (``slurm``, ``local`` or ``debug``; default: SLURM when ``sbatch`` is
  found, else submitit's local executor), ``folder`` (job logs and pickles; default
  ``<runs_dir>/.submitit``), and any parameter of ``submitit.AutoExecutor.update_parameters``:
  generic ones (``timeout_min``, default 1440; ``cpus_per_task``; ``gpus_per_node``; ``mem_gb``;
  ``nodes``) or ``slurm_*`` ones (``slurm_partition``, ``slurm_account``, ``slurm_qos``, ...);
  ``partition``, ``account``, ``qos`` and ``constraint`` are short for their ``slurm_`` names.
- ray: ``address`` (default ``$RAY_ADDRESS``; neither: a local Ray started for the sweep and shut
  down after it), ``num_cpus`` / ``num_gpus`` per cell (default 1 / 0), and ``init_num_cpus`` for
  a local Ray. A Ray already initialised in the process (``ray.init`` called before) is used as it is.

``--workers N`` caps the cells in flight at once (default: no cap, every cell is submitted).
Each cell's torch threads: ``cpus_per_task`` / ``num_cpus`` when given, else the machine's cores
shared by the cells in flight on it (the local executor), else 1 (Ray).

submitit and ray are imported only when their launcher runs; they are the ``scale`` extra.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.util import HarnessError

LAUNCHERS = ("local", "submitit", "ray")
INSTALL_HINT = "pip install 'sparse-transfer-harness[scale]' (from a checkout: pip install -e '.[scale]')"
SLURM_SHORT = {"partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
               "constraint": "slurm_constraint"}
Outcome = tuple[str, str, "str | None"]


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` launcher options, values read as YAML (``timeout_min=60`` is an int)."""
    from harness.config import parse_override

    options = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise HarnessError(f"--launcher-opt expects KEY=VALUE, got '{item}'")
        key, value = parse_override(item)
        options[key] = value
    return options


def require(module: str, launcher: str) -> Any:
    """Import a launcher's package, or one line naming the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise HarnessError(f"--launcher {launcher} needs the '{module}' package, which is not installed: "
                           f"{INSTALL_HINT}") from None


def remote_cell(run: dict[str, Any], runs_dir: str, save_model: bool, threads: int) -> Outcome:
    """What a job runs: one cell, recording its own failure (``sweep.run_cell``)."""
    import torch

    from harness.sweep import run_cell

    torch.set_num_threads(max(1, int(threads)))
    return run_cell(run, runs_dir, save_model=save_model)


# --------------------------------------------------------------------------------------------
# Backends: submit(run) -> handle; finished(handles) -> the done ones; outcome(handle) raises when
# the job died without an outcome
# --------------------------------------------------------------------------------------------
class SubmititBackend:
    POLL_SECONDS = 0.5

    def __init__(self, runs_dir: str, options: dict[str, Any], in_flight: int | None, save_model: bool):
        submitit = require("submitit", "submitit")
        options = {SLURM_SHORT.get(k, k): v for k, v in options.items()}
        folder = Path(options.pop("folder", Path(runs_dir) / ".submitit")) / "%j"
        self.executor = submitit.AutoExecutor(folder=folder, cluster=options.pop("cluster", None))
        options.setdefault("timeout_min", 24 * 60)  # submitit's default is 5 minutes
        try:
            self.executor.update_parameters(**options)
        except (ValueError, TypeError, NameError) as err:
            raise HarnessError(f"--launcher-opt: submitit does not take these options ({err})") from None
        local = self.executor.cluster in ("local", "debug")
        self.threads = int(options.get("cpus_per_task") or (_shared_cores(in_flight) if local else 1))
        self.runs_dir, self.save_model = runs_dir, save_model
        self.name = f"submitit ({self.executor.cluster})"

    def submit(self, run: dict[str, Any]) -> Any:
        return self.executor.submit(remote_cell, run, self.runs_dir, self.save_model, self.threads)

    def finished(self, handles: list[Any]) -> list[Any]:
        while True:
            done = [h for h in handles if h.done()]
            if done:
                return done
            time.sleep(self.POLL_SECONDS)

    def outcome(self, handle: Any) -> Outcome:
        return handle.result()

    def failure(self, handle: Any, err: Exception) -> str:
        """One line: the job's exception, or that it died without a result; then where its log is."""
        if type(err).__name__ == "UncompletedJobError":
            cause = "the process ended without a result (killed, e.g. out of memory, or timed out)"
        else:  # FailedJobError: the trace sits between two dashed lines; its last line is the exception
            trace = str(err).split("-" * 22)
            cause = _last_line(trace[1] if len(trace) > 2 else str(err)) or type(err).__name__
        return f"job {handle.job_id} ({handle.state}): {cause}; log: {handle.paths.stderr}"

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            handle.cancel(check=False)

    def close(self) -> None:
        pass


class RayBackend:
    def __init__(self, runs_dir: str, options: dict[str, Any], in_flight: int | None, save_model: bool):
        ray = require("ray", "ray")
        options = dict(options)
        cpus, gpus = options.pop("num_cpus", 1), options.pop("num_gpus", 0)
        address = options.pop("address", None) or os.environ.get("RAY_ADDRESS")
        init_cpus = options.pop("init_num_cpus", None)
        if options:
            raise HarnessError(f"--launcher-opt: the ray launcher takes address, num_cpus, num_gpus and "
                               f"init_num_cpus, not {', '.join(sorted(options))}")
        self.started = not ray.is_initialized()
        if self.started:
            kwargs = {"address": address} if address else {"num_cpus": init_cpus,  # a local Ray: this checkout
                                                            "runtime_env": {"env_vars": _worker_env()}}
            ray.init(**kwargs, log_to_driver=False, include_dashboard=False)
        self.ray, self.runs_dir, self.save_model, self.threads = ray, runs_dir, save_model, max(1, int(cpus))
        self.task = ray.remote(max_retries=0, num_cpus=cpus, num_gpus=gpus)(remote_cell)
        self.name = f"ray ({address or 'local'})"

    def submit(self, run: dict[str, Any]) -> Any:
        return self.task.remote(run, self.runs_dir, self.save_model, self.threads)

    def finished(self, handles: list[Any]) -> list[Any]:
        done, _ = self.ray.wait(handles, num_returns=1)
        return done

    def outcome(self, handle: Any) -> Outcome:
        return self.ray.get(handle)

    def failure(self, handle: Any, err: Exception) -> str:
        return f"{type(err).__name__}: {_last_line(err)}"

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


BACKENDS = {"submitit": SubmititBackend, "ray": RayBackend}
MODULES = {"submitit": "submitit", "ray": "ray"}


def check_installed(launcher: str) -> None:
    """Before planning: a launcher whose package is missing stops the sweep at once, in one line."""
    if launcher in MODULES:
        require(MODULES[launcher], launcher)


def _shared_cores(in_flight: int | None) -> int:
    from harness.device import cpu_count

    return max(1, cpu_count() // max(1, in_flight or cpu_count()))


def _worker_env() -> dict[str, str]:
    """Environment of a local Ray's workers: this checkout importable (an installed harness is anyway)."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


# --------------------------------------------------------------------------------------------
# The driver loop
# --------------------------------------------------------------------------------------------
def run_remote(launcher: str, cells: list[Any], runs_dir: str, *, in_flight: int | None, save_model: bool,
               options: dict[str, Any], note: Callable[[Any, Outcome], bool]) -> None:
    """Submit ``cells`` (none recorded ok) to ``launcher``, at most ``in_flight`` at once, and hand each
    outcome to ``note`` (which returns True to stop: fail-fast). A job that died is recorded failed here."""
    from harness.runs import RunDir, record_failure

    backend = BACKENDS[launcher](runs_dir, dict(options), in_flight, save_model)
    waiting, running = list(reversed(cells)), {}
    try:
        while waiting or running:
            while waiting and (in_flight is None or len(running) < in_flight):
                cell = waiting.pop()
                running[backend.submit(cell.run)] = cell
            for handle in backend.finished(list(running)):
                cell = running.pop(handle)
                try:
                    outcome = backend.outcome(handle)
                except Exception as err:  # noqa: BLE001 - the job died without an outcome
                    message = f"{backend.name} job failed: {backend.failure(handle, err)}"
                    folder = RunDir.for_config(runs_dir, cell.run)
                    record_failure(folder, cell.run, message)
                    outcome = (folder.id, "failed", message)
                if note(cell, outcome):
                    backend.cancel(list(running))
                    return
    except BaseException:
        backend.cancel(list(running))
        raise
    finally:
        backend.close()


def _last_line(err: BaseException | str) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
