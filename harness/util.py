"""Small shared helpers: atomic writes, content hashes, the cache directory."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


Echo = Callable[[str], None]


@contextmanager
def stage(timing: dict[str, float], name: str, echo: Echo | None = None) -> Iterator[None]:
    """Time a pipeline stage into ``timing[name]`` (seconds; a run record's ``timing``)."""
    import time

    if echo:
        echo(f"[{name}] ...")
    start = time.perf_counter()
    yield
    timing[name] = timing.get(name, 0.0) + time.perf_counter() - start


class HarnessError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with code 2."""


def exit_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a scheduler's preemption, torchrun) raise SystemExit(143).

    Python's default is to die at once, which skips every ``finally``: temporary files stay and
    child processes (fastText training) are orphaned. As an exception the clean-up runs.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def cache_dir(*parts: str) -> Path:
    """The harness cache (``$HARNESS_CACHE`` or ``~/.cache/harness``), created on demand."""
    root = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def stable_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*objs: Any, length: int = 16) -> str:
    """Hash of JSON-serialisable objects (bytes are hashed raw)."""
    h = hashlib.sha256()
    for obj in objs:
        h.update(obj if isinstance(obj, bytes) else stable_json(obj).encode())
        h.update(b"\0")
    return h.hexdigest()[:length]


def file_hash(path: Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: Path | str, *, keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place only if the block succeeds.

    An existing ``path`` is moved to ``previous_dir(path)`` and removed after the swap, so a crash
    between the two renames leaves the old version there (a checkpoint resumes from it). ``keep``:
    when it says True of an existing ``path`` (another process finished the same build first), that
    copy stays and the new one is dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a cache folder is read by others
        yield tmp
        if keep is not None and path.exists() and keep(path):
            return
        old = previous_dir(path)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def previous_dir(path: Path | str) -> Path:
    """Where ``atomic_dir`` parks the old version of ``path`` during a swap."""
    path = Path(path)
    return path.with_name(f".{path.name}.old")


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path | str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
