"""Run records: ``runs/<run-id>/`` with the resolved config, environment, plan and results.

This module owns the record: its id, its folder, the typed ``RunRecord`` behind ``result.json``,
writing a complete record (``write_record``) or a failure (``record_failure``), and the one rule for
what counts as already recorded (``RunDir.recorded``: an ok record; a failed one runs again). Every
runner (run, eval, reference, sweep) goes through these.

The run id is a content hash of the resolved run config (which holds method, parameters,
language, seed and setting), so an identical run is found again instead of duplicated.
Reporting reads these files only.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.device import device_name
from harness.util import HarnessError, content_hash, read_json, write_json_atomic, write_text_atomic

SCHEMA_VERSION = 1
RESULT = "result.json"
PACKAGES = ("torch", "transformers", "sentence-transformers", "tokenizers", "ranx", "entmax", "numpy", "scipy")


def run_id(run_config: dict[str, Any]) -> str:
    """``<method>-<lang>-<setting>-s<seed>-<hash>``: readable, and unique per resolved config."""
    digest = content_hash(run_config, length=12)
    return f"{run_config['method']}-{run_config['lang']}-{run_config['setting']}-s{run_config['seed']}-{digest}"


LOCAL_INPUT_KEYS = ("source_model", "bridge_model", "target_tokenizer")


def local_input_hashes(run: dict[str, Any]) -> dict[str, str]:
    """``{<key>_hash: content hash}`` for each input of ``run`` that is a local path (a beir: folder, a
    model or tokenizer directory): the run id then follows their content, not their path, so an
    edited qrels file is a new run. Registry names, hub ids and pocket: assets add nothing, so
    their run ids stay as they were."""
    from harness.config import DATASET_KEYS
    from harness.data.beir import PREFIX, parse_reference
    from harness.util import path_hash

    named = {key: run.get(key, "") for key in DATASET_KEYS}
    named.update({f"eval.also.{i}": name for i, name in enumerate(run.get("eval.also", ()))})
    paths = {key: parse_reference(name)[0] for key, name in named.items() if str(name).startswith(PREFIX)}
    paths.update({key: Path(run[key]).expanduser() for key in LOCAL_INPUT_KEYS
                  if key in run and not run[key].startswith("pocket:") and Path(run[key]).expanduser().exists()})
    return {f"{key}_hash": path_hash(path) for key, path in paths.items() if path.exists()}


def environment() -> dict[str, Any]:
    """Package versions, git commit and device of this process."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git": git_commit(),
        "device": device_name(),
        "threads": torch_threads(),  # float sums (and so the last digits of scores) depend on it
        "deterministic_algorithms": torch_deterministic(),
    }


def torch_threads() -> int | None:
    """Intra-op threads of this process's torch, when torch is already imported (no import for it)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def torch_deterministic() -> bool | None:
    """Whether torch runs with deterministic algorithms only (``torch.use_deterministic_algorithms``)."""
    torch = sys.modules.get("torch")
    return bool(torch.are_deterministic_algorithms_enabled()) if torch is not None else None


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@dataclass
class RunDir:
    """One run's folder."""

    path: Path

    @classmethod
    def for_config(cls, runs_dir: Path | str, run_config: dict[str, Any]) -> "RunDir":
        return cls(Path(runs_dir) / run_id(run_config))

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def result_path(self) -> Path:
        return self.path / RESULT

    def done(self) -> bool:
        """A record exists (ok or failed)."""
        return self.result_path.exists()

    def result(self) -> dict[str, Any]:
        """The record in ``result.json``; HarnessError when the file is not one (damaged, edited)."""
        try:
            record = read_json(self.result_path)
        except ValueError as err:  # not JSON, not UTF-8
            raise HarnessError(f"{self.result_path} is not a run record ({type(err).__name__})") from None
        if not isinstance(record, dict):
            raise HarnessError(f"{self.result_path} is not a run record (a JSON {type(record).__name__})")
        return record

    def recorded(self) -> dict[str, Any] | None:
        """The skip rule of every runner: the ok record of this run, or None (none yet, a failed one to retry,
        or a damaged one, which is run again like a failed one)."""
        if not self.done():
            return None
        try:
            record = self.result()
        except HarnessError as err:
            print(f"warning: {err}: running it again", file=sys.stderr, flush=True)
            return None
        return record if record.get("status", "ok") == "ok" else None

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        write_json_atomic(path, obj)
        return path

    def file(self, name: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name


@dataclass
class RunRecord:
    """The schema-versioned content of ``result.json``.

    The fields below are in every record; ``details`` holds what a kind of run adds (``counts``,
    ``plan``, ``curve``, ``reference``, ``error``, ...) and is written flat beside them.
    """

    run_id: str
    method: str
    method_params: dict[str, Any]
    lang: str
    dataset: str
    profile: str
    setting: str
    seed: int
    status: str = "ok"
    metrics: dict[str, float] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    CORE = ("run_id", "method", "method_params", "lang", "dataset", "profile", "setting", "seed")

    @classmethod
    def of(cls, run_config: dict[str, Any], **fields: Any) -> "RunRecord":
        """The record of a resolved run config; ``fields`` are the other dataclass fields."""
        core = {k: run_config[k] for k in cls.CORE if k != "run_id"}
        return cls(run_id=run_id(run_config), **core, **fields)

    def to_json(self) -> dict[str, Any]:
        core = {k: getattr(self, k) for k in self.CORE}
        timing = {k: round(v, 3) for k, v in self.timing.items()}
        return {"schema_version": SCHEMA_VERSION, **core, "status": self.status, "metrics": self.metrics,
                "timing": timing, "files": self.files, **self.details}


def write_record(folder: RunDir, run: dict[str, Any], evaluation: Any, ranking: dict, timing: dict[str, float],
                 *, qrels: dict[str, dict[str, int]], extra: dict[str, Any] | None = None,
                 files: dict[str, str] | None = None) -> dict[str, Any]:
    """All files of an evaluated run; ``result.json`` last, so its presence means the record is complete.

    ``qrels``: the collection's judgements, written as ``qrels.trec`` beside ``run.trec`` (so
    ``trec_eval qrels.trec run.trec`` works on the folder alone). ``files``: what the caller already
    wrote into the folder (name -> relative path, e.g. the saved ``model``), listed in the record.
    """
    from harness.evaluate import write_per_query, write_trec_qrels, write_trec_run

    folder.write_json("config.json", run)
    folder.write_json("env.json", environment())
    write_trec_run(folder.file("run.trec"), ranking, tag=folder.id)
    write_trec_qrels(folder.file("qrels.trec"), qrels)
    write_per_query(folder.file("per_query.json"), evaluation.per_query)
    listed = {"config": "config.json", "env": "env.json", "run": "run.trec", "qrels": "qrels.trec",
              "per_query": "per_query.json"}
    if (folder.path / "curve.json").exists():
        listed["curve"] = "curve.json"
    listed.update(files or {})
    counts = {"queries": evaluation.n_queries, "missing_in_run": evaluation.missing_in_run,
              "missing_in_qrels": evaluation.missing_in_qrels}
    record = RunRecord.of(run, metrics=evaluation.mean, timing=timing, files=listed,
                          details={"counts": counts, **(extra or {})})
    folder.write_json(RESULT, record.to_json())
    return folder.result()  # what a later skip returns and reporting reads


def record_failure(folder: RunDir, run: dict[str, Any], error: str, detail: str = "") -> dict[str, Any]:
    """``result.json`` with status "failed", no metrics, and the error (its traceback in ``error.txt``)."""
    folder.write_json("config.json", run)
    files = {"config": "config.json"}
    if detail:
        write_text_atomic(folder.file("error.txt"), detail)
        files["error"] = "error.txt"
    record = RunRecord.of(run, status="failed", files=files, details={"error": error})
    folder.write_json(RESULT, record.to_json())
    return record.to_json()
