"""Small shared helpers: atomic writes, content hashes, the cache directory and its sealed entries."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
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


def cached_file_hash(path: Path | str) -> str:
    """sha256 of a file's content, memoised per (real path, size, mtime) in ``cache/file-hashes`` and in
    memory, so big weights hash once."""
    real = Path(path).resolve()
    st = real.stat()
    stamp = (str(real), st.st_size, st.st_mtime_ns)
    if stamp in _FILE_HASHES:
        return _FILE_HASHES[stamp]
    memo = cache_dir("file-hashes") / f"{content_hash(*stamp)}.txt"
    try:
        digest = memo.read_text().strip()
    except OSError:
        digest = ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):  # absent, or a damaged memo: hash again
        digest = file_hash(real, length=64)
        write_text_atomic(memo, digest)
    _FILE_HASHES[stamp] = digest
    return digest


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def tree_hash(directory: Path | str) -> str:
    """Content hash of a directory: the relative name and sha256 of every file under it (hidden
    entries skipped: temporaries, seals, ``.git``). Each file's hash is memoised (``cached_file_hash``)."""
    root = Path(directory)
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = Path(folder, name)
            if path.is_file():
                files[path.relative_to(root).as_posix()] = cached_file_hash(path)
    return content_hash(files)


def path_hash(path: Path | str) -> str:
    """Content hash of a local input: a file's sha256, or a directory's ``tree_hash``."""
    path = Path(path)
    return tree_hash(path) if path.is_dir() else cached_file_hash(path)[:16]


# --------------------------------------------------------------------------------------------
# Atomic writes. Temporaries are named after their owner (".<name>.pid<N>@<host>.<random>.tmp"),
# so a later process can tell a dead writer's debris (kill -9, power loss) from a live write.
# --------------------------------------------------------------------------------------------
def owned_prefix(name: str) -> str:
    """Prefix of a temporary made by this process: ``sweep_stale`` removes it once the process is dead."""
    return f".{name}.pid{os.getpid()}@{_HOST}."


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
_OWNED = re.compile(r"\.pid(\d+)@([A-Za-z0-9_-]+)\.")
# Temporaries named before owners were recorded (mkstemp's 8 random characters): removed when old.
_UNOWNED = re.compile(r"^\.(train\.[a-z0-9_]{8}\.(txt|bin)|.+\.[a-z0-9_]{8}\.tmp)$")
UNOWNED_MAX_AGE = 24 * 3600  # seconds; no write of the harness takes that long
_SWEPT: set[str] = set()


def sweep_stale(directory: Path | str) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writer is gone; returns what was removed.

    Owned ones (``owned_prefix``) go when their process on this host is dead; unowned ones (written
    by older versions) when older than ``UNOWNED_MAX_AGE``. Live writes, ``.old`` swaps and seals stay.
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and _is_stale(entry):
            _remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry) -> bool:
    owner = _OWNED.search(entry.name)
    if owner:
        return owner.group(2) == _HOST and not _alive(int(owner.group(1)))
    try:
        return bool(_UNOWNED.match(entry.name)) and time.time() - entry.stat(follow_symlinks=False).st_mtime > UNOWNED_MAX_AGE
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # a killed process nobody has reaped yet is a zombie: dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sweep_once(directory: Path) -> None:
    """``sweep_stale`` on the first write into ``directory`` of this process (not on every write)."""
    key = str(directory)
    if key not in _SWEPT:
        _SWEPT.add(key)
        sweep_stale(directory)


def _read_umask() -> int:
    mask = os.umask(0o022)  # the umask can only be read by setting it
    os.umask(mask)
    return mask


# mkstemp / mkdtemp create owner-only entries; a finished file or folder gets the mode open() / mkdir()
# would give it (0o666 / 0o777 less the umask), so a group can read shared records and caches.
_UMASK = _read_umask()
FILE_MODE, DIR_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=owned_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: Path | str, *, keep: Callable[[Path], bool] | None = None,
               sealed: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place only if the block succeeds.

    An existing ``path`` is moved to ``previous_dir(path)`` and removed after the swap, so a crash
    between the two renames leaves the old version there (a checkpoint resumes from it). ``keep``:
    when it says True of an existing ``path`` (another process finished the same build first), that
    copy stays and the new one is dropped. ``sealed``: record the finished folder's manifest in it
    (``seal``) before the swap, so a reader can verify it (``read_entry``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=owned_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it owner-only; a cache folder is read by others
        yield tmp
        if sealed:
            seal(tmp)
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


@contextmanager
def build_lock(entry: Path | str) -> Iterator[None]:
    """An exclusive lock across processes on building cache entry ``entry`` (a file in ``cache/locks``
    named by the entry's path, so that no listing of a cache folder meets it).

    Two sweep workers that need the same bridge vectors, tokenizer or fastText model then build it
    once: the second waits, then reads the first one's entry. Without ``fcntl`` (Windows) builds may
    race as before; the atomic writes keep each result whole.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock = cache_dir("locks") / f"{content_hash(str(Path(entry).resolve()), length=16)}.lock"
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish building {entry}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_or_build(entry: Path | str, read: Callable[[], Any], build: Callable[[], Any]) -> Any:
    """``read()`` of a cache entry, else ``build()`` under ``build_lock(entry)``; the entry is read once
    more after the lock is taken, since another process may have built it meanwhile. ``read`` returns
    None for an absent (or discarded, corrupt) entry."""
    value = read()
    if value is not None:
        return value
    with build_lock(entry):
        value = read()
        return build() if value is None else value


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


# --------------------------------------------------------------------------------------------
# Sealed cache entries: a manifest (file -> size, sha256) written when an entry is complete and
# verified when it is read, so a truncated or edited cache file is never used.
# --------------------------------------------------------------------------------------------
SEAL = ".harness-seal.json"  # inside a sealed folder; a sealed file's manifest is "<file>.seal.json"
_SHA256: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256 verified in this process


def seal_path(entry: Path | str) -> Path:
    entry = Path(entry)
    return entry / SEAL if entry.is_dir() else entry.with_name(f"{entry.name}.seal.json")


def is_sealed(entry: Path | str) -> bool:
    return seal_path(entry).exists()


def seal(entry: Path | str) -> None:
    """Record the manifest of a complete cache entry (a folder or a single file)."""
    entry = Path(entry)
    files = {rel: _describe(path) for rel, path in _listing(entry).items()}
    write_json_atomic(seal_path(entry), {"format": 1, "files": files})
    os.chmod(seal_path(entry), 0o644)  # written owner-only; readers of a shared cache verify with it


def _listing(entry: Path) -> dict[str, Path]:
    """Everything in the entry (files, folders, links not followed) by relative name; its seal and
    live temporaries left out."""
    if not entry.is_dir():
        return {entry.name: entry}
    out = {}
    for folder, dirs, names in os.walk(entry):  # symlinked folders are listed, not entered
        for name in [*names, *dirs]:
            path = Path(folder, name)
            rel = path.relative_to(entry).as_posix()
            if rel != SEAL and not _OWNED.search(name):
                out[rel] = path
    return out


def _kind(path: Path) -> list[Any]:
    if path.is_symlink():
        return ["link", os.readlink(path)]
    return ["folder"] if path.is_dir() else ["file"]


def _describe(path: Path) -> list[Any]:
    """A manifest row: [size, sha256] of a file, ["folder"], or ["link", its target]."""
    kind = _kind(path)
    return [path.stat().st_size, _sha256(path)] if kind == ["file"] else kind


def _show(row: list[Any]) -> str:
    return "file" if not isinstance(row[0], str) else " to ".join(map(str, row))


def _sha256(path: Path) -> str:
    st = path.stat()
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    if stamp not in _SHA256:
        _SHA256[stamp] = file_hash(path, length=64)
    return _SHA256[stamp]


def seal_problem(entry: Path | str) -> str | None:
    """Why a sealed entry does not match its manifest ("<file>: <why>"), or None when it does.
    Names, kinds and sizes are compared before any content is hashed: a truncation costs no reading."""
    entry = Path(entry)
    try:
        sealed = read_json(seal_path(entry))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{seal_path(entry).name}: unreadable"
    present = _listing(entry)
    for rel in sorted(sealed.keys() - present.keys()):
        return f"{rel}: missing"
    for rel in sorted(present.keys() - sealed.keys()):
        return f"{rel}: not in the seal"
    for rel, want in sorted(sealed.items()):
        kind = _kind(present[rel])
        if kind != (want if isinstance(want[0], str) else ["file"]):
            return f"{rel}: a {_show(kind)}, sealed as a {_show(want)}"
        if kind == ["file"] and present[rel].stat().st_size != want[0]:
            return f"{rel}: {present[rel].stat().st_size} bytes, sealed with {want[0]}"
    for rel, want in sorted(sealed.items()):
        if not isinstance(want[0], str) and _sha256(present[rel]) != want[1]:
            return f"{rel}: content differs from the seal (sha256)"
    return None


def read_entry(entry: Path | str, load: Callable[[Path], Any], *, check: Callable[[Path], str | None] | None = None,
               command: str | None = None, action: str = "rebuilding") -> Any:
    """``load(entry)`` of an intact cache entry; None when it is absent or was corrupt (the caller builds it).

    A sealed entry is verified against its seal; ``check(entry)`` (a cheap content test returning a
    problem or None) runs on every read. An entry written before seals existed is trusted if it
    passes ``check`` and loads, and is sealed then. A corrupt entry that can be derived again is
    removed with one line on stderr ("... : <action>"); with ``command`` (it cannot be derived) it
    raises HarnessError naming ``command``.
    """
    entry = Path(entry)
    if not entry.exists():
        return None
    was_sealed = is_sealed(entry)
    problem = (seal_problem(entry) if was_sealed else None) or (check(entry) if check else None)
    if problem is None:
        try:
            value = load(entry)
        except HarnessError:
            raise
        except Exception as err:  # an unsealed entry may be damaged in any way
            if was_sealed:
                raise  # verified bytes that fail to load: a bug, not a damaged cache
            problem = f"unreadable: {_first_line(err)}"
        else:
            if not was_sealed:
                _seal_quietly(entry)
            return value
    if command is not None:
        raise HarnessError(f"cache entry {entry} is corrupt ({problem}): delete it and re-run {command}")
    print(f"cache entry {entry} is corrupt ({problem}): {action}", file=sys.stderr, flush=True)
    discard(entry)
    return None


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _seal_quietly(entry: Path) -> None:
    try:
        seal(entry)
    except OSError:  # a read-only shared cache: it stays usable, only unprotected
        pass


def discard(entry: Path | str) -> None:
    """Remove a cache entry and its seal: renamed aside first, so no reader sees it half deleted."""
    entry = Path(entry)
    if not entry.is_dir():
        seal_path(entry).unlink(missing_ok=True)
    aside = entry.with_name(f"{owned_prefix(entry.name)}discarded.tmp")
    try:
        os.replace(entry, aside)
    except OSError:
        return
    _remove(aside)
