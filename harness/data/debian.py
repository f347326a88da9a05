"""Fetch Debian packages for their files only: ``apt-get download`` + ``dpkg-deb -x`` into the cache.

Installing the packages would drag in yelp / LibreOffice; unpacking them needs neither root nor
dependencies. Each package is unpacked once into ``cache/debian/root/<name>``; a marker file holds the
.deb version, so later calls (and offline machines) reuse it without touching apt.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.util import HarnessError, atomic_dir, cache_dir, read_entry

MARKER = ".harness-deb-version"


def package_root(name: str) -> Path:
    """Where package ``name`` is (or will be) unpacked."""
    return cache_dir("debian", "root") / name


def installed_version(name: str) -> str | None:
    """The version of the unpacked package, or None when it has not been fetched."""
    marker = package_root(name) / MARKER
    return marker.read_text().strip() if marker.exists() else None


def package_available(name: str) -> bool:
    """True when apt knows a candidate version of ``name`` (needs a prior ``apt-get update``)."""
    if shutil.which("apt-cache") is None:
        return False
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip() not in ("", "(none)")
    return False


def _download(name: str) -> Path:
    debs = cache_dir("debian", "debs")
    existing = sorted(debs.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    if existing:
        return existing[-1]
    if shutil.which("apt-get") is None:
        raise HarnessError(f"Debian package '{name}' is not in the cache and apt-get is missing: "
                           f"run on a Debian/Ubuntu machine or copy {package_root(name)} here")
    proc = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
    found = sorted(debs.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not found:
        reason = (proc.stderr.strip().splitlines() or ["no .deb produced"])[-1]
        raise HarnessError(f"could not download Debian package '{name}' ({reason}): "
                           f"run `apt-get update` (as root) and retry")
    return found[-1]


def _deb_version(deb: Path) -> str:
    proc = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"{deb} is not a readable .deb ({proc.stderr.strip()}): delete it and retry")
    return proc.stdout.strip()


def _extract(name: str, deb: Path) -> None:
    """Unpack into a temp dir beside the target, then seal it and rename it into place (atomic)."""
    with atomic_dir(package_root(name), sealed=True) as tmp:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise HarnessError(f"could not unpack {deb} ({proc.stderr.strip()}): delete it and retry")
        (tmp / MARKER).write_text(_deb_version(deb) + "\n")


def ensure_package(name: str, *, verify: bool = True) -> Path:
    """Unpacked root of Debian package ``name``, downloading and extracting it on first use.

    ``verify``: check the unpacked files against their seal (once per process) and unpack again
    when they differ; False when only the version is needed, not the files.
    """
    root = package_root(name)
    if installed_version(name) is None or (verify and not _intact(root)):
        _extract(name, _download(name))
        _VERIFIED.add(root)
    return root


_VERIFIED: set[Path] = set()


def _intact(root: Path) -> bool:
    if root not in _VERIFIED and read_entry(root, lambda path: path, check=_marker_problem) is None:
        return False
    _VERIFIED.add(root)
    return True


def _marker_problem(root: Path) -> str | None:
    return None if (root / MARKER).is_file() else f"{MARKER}: missing"


def ensure_packages(names: list[str], *, verify: bool = True) -> dict[str, Path]:
    """``{name: unpacked root}`` for every package, fetching the missing ones."""
    return {name: ensure_package(name, verify=verify) for name in names}
