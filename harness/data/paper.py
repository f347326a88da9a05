"""Paper-profile test collections (MIRACL, WebFAQ, Mr.TyDi), read offline from local caches.

Nothing here downloads. Each dataset knows the files it needs in the caches other tools fill on a
machine with internet, and reads them in their published on-disk formats:

* ``miracl-{lang}`` (dev split as test) and ``miracl-{lang}-train`` (query -> positive passage):
  the raw MIRACL files, either in the ir_datasets home (``$IR_DATASETS_HOME/miracl/v1.0/...``,
  layout from ``ir_datasets/etc/downloads.json``) or in the Hugging Face hub cache
  (``macavaney/miracl-noauth`` or the gated ``miracl/miracl`` for topics/qrels,
  ``miracl/miracl-corpus`` for the ``docs-N.jsonl.gz`` passages). Topics: ``qid<TAB>text``;
  qrels: TREC ``qid Q0 docid rel``; docs: JSON lines ``{"docid", "title", "text"}``.
  Falls back to mteb's parquet copy ``mteb/MIRACLRetrieval`` for the test collection.
* ``miracl-{lang}-lite``: mteb's ``MIRACLRetrievalHardNegatives`` (250 pooled candidates per query).
* ``webfaq-{lang}``: mteb's ``WebFAQRetrieval`` (``mteb/WebFAQRetrieval``; or
  ``PaDaS-Lab/webfaq-retrieval``, same config names), test split.
* ``mr-tydi-{lang}``: ir_datasets ``mr-tydi/<lang>/test``: ``$IR_DATASETS_HOME/mr-tydi/<lang>.data/``
  (the extracted tarball) or the tarball itself in ``$IR_DATASETS_HOME/downloads/<md5>``.
  Mr.TyDi has no Chinese or Hindi.

mteb-layout repositories (``{subset}-corpus`` / ``-queries`` / ``-qrels`` configs) are resolved the
way ``datasets`` does it: the ``configs:`` block of the snapshot's README.md maps each config and
split to data-file globs (parquet or JSON lines, optionally gzipped).

``missing_data(name)`` lists what is absent, one line per dataset with the commands that fetch it;
``load_collection(name)`` raises a HarnessError with the same text, before reading anything.
"""
from __future__ import annotations

import gzip
import json
import os
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from harness.data.base import Collection
from harness.util import HarnessError

PAPER_LANGS = ("ar", "zh", "hi", "ko", "ru")
ISO3 = {"ar": "ara", "zh": "zho", "hi": "hin", "ko": "kor", "ru": "rus"}  # WebFAQ subset names
MRTYDI_DIRS = {"ar": "mrtydi-v1.0-arabic", "ko": "mrtydi-v1.0-korean", "ru": "mrtydi-v1.0-russian"}

# Pinned as in mteb's task metadata (mteb/tasks/retrieval/multilingual/*.py); a test checks them.
MTEB_MIRACL = ("mteb/MIRACLRetrieval", "9c09abc13478308c27598f350e31d8f06b9b5481")
MTEB_MIRACL_HN = ("mteb/MIRACLRetrievalHardNegatives", "d7d94fa4b946cec4a27c84653aa0cf6b33f74a3c")
MTEB_WEBFAQ = ("mteb/WebFAQRetrieval", "f64f483ad0f31d2e78209d524c14a4a867965959")
WEBFAQ_ORIGINAL = "PaDaS-Lab/webfaq-retrieval"
MIRACL_TOPIC_REPOS = ("macavaney/miracl-noauth", "miracl/miracl")  # same paths; the second is gated
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"

MIRACL_LICENCE = "Apache-2.0 (MIRACL topics/qrels); CC-BY-SA-3.0 (Wikipedia passages)"
WEBFAQ_LICENCE = "CC-BY-4.0 (WebFAQ)"
MRTYDI_LICENCE = "Apache-2.0 (Mr. TyDi); CC-BY-SA-3.0 (Wikipedia passages)"


# --------------------------------------------------------------------------------------------
# Cache locations (read at call time so env vars set later are honoured)
# --------------------------------------------------------------------------------------------
def irds_home() -> Path:
    return Path(os.environ.get("IR_DATASETS_HOME", Path.home() / ".ir_datasets"))


def hub_cache() -> Path:
    from harness.assets import _hub_cache_dir

    return Path(_hub_cache_dir())


def hub_snapshots(repo: str, revision: str | None = None) -> list[Path]:
    """Cached snapshot folders of a hub dataset repo, best first: ``revision``, then main, then any."""
    root = hub_cache() / f"datasets--{repo.replace('/', '--')}"
    found: list[Path] = []
    for ref in (revision, "main"):
        if not ref:
            continue
        ref_file = root / "refs" / ref
        sha = ref_file.read_text().strip() if ref_file.is_file() else ref
        if (root / "snapshots" / sha).is_dir():
            found.append(root / "snapshots" / sha)
    found += sorted(p for p in (root / "snapshots").glob("*") if p.is_dir())
    return list(dict.fromkeys(found))


def hub_file(repo: str, path: str) -> Path | None:
    """``path`` inside any cached snapshot of ``repo`` (a dangling blob link counts as absent)."""
    for snap in hub_snapshots(repo):
        if (snap / path).is_file():
            return snap / path
    return None


# --------------------------------------------------------------------------------------------
# Readers of the published formats
# --------------------------------------------------------------------------------------------
def _open_text(path: Path) -> Any:
    if path.name.endswith(".gz") or _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _is_gzip(path: Path) -> bool:
    """ir_datasets' downloads/<md5> files have no extension: sniff the gzip magic."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a parquet or JSON-lines (optionally gzipped) data file."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
            yield from batch.to_pylist()
        return
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise HarnessError(f"{path} line {number}: not JSON: the cached file is damaged, "
                                       f"delete it and fetch it again") from None


def read_topics(lines: Iterable[str]) -> dict[str, str]:
    """``qid<TAB>text`` lines (ir_datasets TsvQueries)."""
    topics = {}
    for line in lines:
        qid, _, text = line.rstrip("\n").partition("\t")
        if qid:
            topics[qid] = text
    return topics


def read_trec_qrels(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """``qid Q0 docid rel`` lines, whitespace separated (ir_datasets TrecQrels)."""
    qrels: dict[str, dict[str, int]] = {}
    for line in lines:
        cols = line.split()
        if len(cols) == 4:
            qrels.setdefault(cols[0], {})[cols[2]] = int(cols[3])
    return qrels


def passage(title: str | None, text: str) -> str:
    """BEIR convention (as beir.py): title and text on separate lines."""
    title = (title or "").strip()
    return f"{title}\n{text}" if title else text


# --------------------------------------------------------------------------------------------
# Sources: one way of getting a dataset from a cache. A spec tries its sources in order.
# --------------------------------------------------------------------------------------------
class Source:
    def missing(self) -> list[str]:
        """Pieces of this source absent from the local caches (empty: it can be loaded)."""
        raise NotImplementedError

    def fix(self) -> str:
        """How to fill the cache on a machine with internet."""
        raise NotImplementedError

    def load(self, spec: "PaperSpec") -> Collection:
        raise NotImplementedError


@dataclass
class FileRef:
    """One file that may lie at several places; ``label`` names it in messages."""

    label: str
    candidates: Callable[[], list[Path]]

    def find(self) -> Path | None:
        return next((p for p in self.candidates() if p.is_file()), None)


def _irds_table(name: str) -> dict[str, Any]:
    """ir_datasets' etc/downloads.json entries of ``name``, read without importing ir_datasets (slow)."""
    import importlib.util

    if name not in _DOWNLOADS:
        spec = importlib.util.find_spec("ir_datasets")
        if spec is None or not spec.submodule_search_locations:
            raise HarnessError("the paper datasets need the ir_datasets package for their file layout: "
                               "pip install ir_datasets")
        path = Path(list(spec.submodule_search_locations)[0]) / "etc" / "downloads.json"
        _DOWNLOADS[name] = json.loads(path.read_text(encoding="utf-8"))[name]
    return _DOWNLOADS[name]


def _irds_download(name: str, key: str) -> dict[str, Any]:
    return _irds_table(name)[key]


_DOWNLOADS: dict[str, Any] = {}


def _hub_path(url: str) -> tuple[str, str]:
    """``https://huggingface.co/datasets/ORG/NAME/resolve/main/PATH`` -> (ORG/NAME, PATH)."""
    tail = url.split("/datasets/", 1)[1]
    repo, _, rest = tail.partition("/resolve/")
    return repo, rest.partition("/")[2]


@dataclass
class MiraclFiles(Source):
    """The raw MIRACL files of one language and split, from ir_datasets' home or the hub cache."""

    lang: str
    split: str

    def _ref(self, key: str) -> FileRef:
        entry = _irds_download("miracl", key)
        repo, path = _hub_path(entry["url"])
        repos = MIRACL_TOPIC_REPOS if repo in MIRACL_TOPIC_REPOS else (repo,)

        def candidates() -> list[Path]:
            paths = [irds_home() / "miracl" / entry["cache_path"]]
            if entry.get("expected_md5"):
                paths.append(irds_home() / "downloads" / entry["expected_md5"])
            return paths + [p for r in repos if (p := hub_file(r, path)) is not None]

        return FileRef(f"{repo}:{path}", candidates)

    def doc_refs(self) -> list[FileRef]:
        n = sum(1 for k in _irds_table("miracl") if k.startswith(f"v1.0/{self.lang}/corpus/"))
        return [self._ref(f"v1.0/{self.lang}/corpus/{i}") for i in range(n)]

    def refs(self) -> list[FileRef]:
        base = f"v1.0/{self.lang}/{self.split}"
        return [self._ref(f"{base}/topics"), self._ref(f"{base}/qrels"), *self.doc_refs()]

    def missing(self) -> list[str]:
        return _compact([r.label for r in self.refs() if r.find() is None])

    def fix(self) -> str:
        ds = f"miracl/{self.lang}/{self.split}"
        return (f"either `for x in docs queries qrels; do ir_datasets export {ds} $x >/dev/null; done` and copy "
                f"that machine's ~/.ir_datasets/miracl to {irds_home() / 'miracl'}, or `hf download --repo-type dataset "
                f"{MIRACL_CORPUS_REPO} --include 'miracl-corpus-v1.0-{self.lang}/*'` plus `hf download "
                f"--repo-type dataset {MIRACL_TOPIC_REPOS[0]} --include 'miracl-v1.0-{self.lang}/*'` and copy "
                f"the hub cache to {hub_cache()}")

    def topics_qrels(self) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        topics_ref, qrels_ref, *_ = self.refs()
        with _open_text(_found(topics_ref)) as f:
            topics = read_topics(f)
        with _open_text(_found(qrels_ref)) as f:
            qrels = read_trec_qrels(f)
        return topics, qrels

    def docs(self, keep: set[str] | None = None) -> Iterator[tuple[str, str]]:
        for ref in self.doc_refs():
            for row in read_rows(_found(ref)):
                if keep is None or row["docid"] in keep:
                    yield row["docid"], passage(row.get("title"), row["text"])

    def load(self, spec: "PaperSpec") -> Collection:
        topics, qrels = self.topics_qrels()
        corpus = dict(self.docs())
        return _collection(spec, corpus, topics, qrels, f"MIRACL v1.0 {self.lang} {self.split} (raw files)")


def _found(ref: FileRef) -> Path:
    path = ref.find()
    if path is None:  # removed between the check and the read
        raise HarnessError(f"{ref.label} disappeared from the local cache: fetch it again")
    return path


def _compact(labels: list[str], limit: int = 6) -> list[str]:
    """Long file lists stay readable: the first few, then a count."""
    return labels if len(labels) <= limit else labels[:limit] + [f"... and {len(labels) - limit} more"]


@dataclass
class MiraclPairs(MiraclFiles):
    """Training pairs: every (query, positive passage) of the train split."""

    def load(self, spec: "PaperSpec") -> Collection:
        topics, qrels = self.topics_qrels()
        positives = {d for docs in qrels.values() for d, r in docs.items() if r > 0}
        texts = dict(self.docs(keep=positives))  # stream the corpus, keep only what is needed
        pairs = [(topics[q], texts[d]) for q in sorted(qrels) if q in topics
                 for d, r in sorted(qrels[q].items()) if r > 0 and d in texts]
        col = _collection(spec, {}, {}, {}, f"MIRACL v1.0 {self.lang} train (raw files)")
        col.train_pairs = pairs
        return col


# --------------------------------------------------------------------------------------------
# mteb-layout hub repositories: README configs -> data files
# --------------------------------------------------------------------------------------------
def card_configs(snapshot: Path) -> dict[str, dict[str, list[str]]] | None:
    """``{config: {split: [glob, ...]}}`` from README.md's YAML header; None without a README."""
    import yaml

    readme = snapshot / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    header = text.split("---", 2)[1] if text.startswith("---") else ""
    meta = yaml.safe_load(header) or {}
    return {c["config_name"]: _data_files(c.get("data_files", [])) for c in meta.get("configs", [])}


def _data_files(spec: Any) -> dict[str, list[str]]:
    """Normalise the forms ``data_files`` takes in a dataset card (str, list, list of splits, dict)."""
    if isinstance(spec, str):
        return {"train": [spec]}
    if isinstance(spec, dict):
        return {k: [v] if isinstance(v, str) else list(v) for k, v in spec.items()}
    out: dict[str, list[str]] = {}
    for item in spec:
        if isinstance(item, str):
            out.setdefault("train", []).append(item)
        else:
            path = item["path"]
            out.setdefault(item.get("split", "train"), []).extend([path] if isinstance(path, str) else path)
    return out


def _split_files(snapshot: Path, configs: dict | None, config: str, split: str) -> tuple[list[Path], str | None]:
    """Files of ``config``/``split`` (or the config's only split, as mteb's loader does), or a problem."""
    if configs is None:  # no card: the layout push_to_hub writes
        globs = {split: [f"{config}/{split}-*", f"{config}/{split}/*"], "*": [f"{config}/*"]}
    elif config not in configs:
        return [], f"config '{config}' is not declared in {snapshot.name}/README.md"
    else:
        globs = configs[config]
    patterns = globs.get(split) or (next(iter(globs.values())) if len(globs) == 1 else None)
    if patterns is None:
        return [], f"config '{config}' has no split '{split}' (splits: {', '.join(globs)})"
    files = sorted({p for g in patterns for p in snapshot.glob(g) if p.is_file()})
    return files, None if files else f"{config} ({' '.join(patterns)})"


@dataclass
class MtebRetrieval(Source):
    """A retrieval task in mteb's hub layout: configs ``{subset}-corpus``/``-queries``/``-qrels``."""

    repo: str
    revision: str | None
    subset: str
    split: str

    def _resolve(self) -> tuple[Path | None, dict[str, list[Path]], list[str]]:
        """(snapshot, files per kind, problems) for the best cached snapshot."""
        best: tuple[Path | None, dict[str, list[Path]], list[str]] = (None, {}, [f"hub dataset {self.repo}"])
        for snap in hub_snapshots(self.repo, self.revision):
            configs = card_configs(snap)
            files, problems = {}, []
            for kind in ("corpus", "queries", "qrels"):
                found, problem = _split_files(snap, configs, f"{self.subset}-{kind}", self.split)
                files[kind] = found
                problems += [f"{self.repo}:{problem}"] if problem else []
            if not problems:
                return snap, files, []
            if best[0] is None or len(problems) < len(best[2]):
                best = (snap, files, problems)
        return best

    def missing(self) -> list[str]:
        return self._resolve()[2]

    def fix(self) -> str:
        rev = f" --revision {self.revision}" if self.revision else ""
        return (f"`hf download --repo-type dataset {self.repo}{rev} --include README.md '{self.subset}-*/*' "
                f"'*/{self.subset}-*'` and copy the hub cache to {hub_cache()}")

    def load(self, spec: "PaperSpec") -> Collection:
        snap, files, problems = self._resolve()
        if problems or snap is None:
            raise HarnessError(f"{spec.name}: {'; '.join(problems)}: {self.fix()}")
        if self.revision and snap.name != self.revision:
            warnings.warn(f"{self.repo}: using cached revision {snap.name}, not the pinned {self.revision}")
        corpus = {str(r.get("_id", r.get("id"))): passage(r.get("title"), r["text"]) for r in _rows(files["corpus"])}
        queries = {str(r.get("_id", r.get("id"))): r["text"] for r in _rows(files["queries"])}
        qrels: dict[str, dict[str, int]] = {}
        for r in _rows(files["qrels"]):
            qrels.setdefault(str(r["query-id"]), {})[str(r["corpus-id"])] = int(r["score"])
        return _collection(spec, corpus, queries, qrels, f"{self.repo}@{snap.name[:12]} {self.subset}/{self.split}")


def _rows(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        yield from read_rows(path)


# --------------------------------------------------------------------------------------------
# Mr.TyDi via ir_datasets
# --------------------------------------------------------------------------------------------
@dataclass
class MrTydiIrds(Source):
    """``mr-tydi/<lang>/test``: the extracted folder ``<lang>.data/`` or the tarball in downloads/."""

    lang: str
    split: str = "test"

    @property
    def members(self) -> tuple[str, str, str]:
        top = MRTYDI_DIRS[self.lang]
        return (f"{top}/collection/docs.jsonl.gz", f"{top}/topic.{self.split}.tsv", f"{top}/qrels.{self.split}.txt")

    def _extracted(self) -> Path:
        return irds_home() / "mr-tydi" / f"{self.lang}.data"

    def _tarball(self) -> Path:
        return irds_home() / "downloads" / _irds_download("mr-tydi", self.lang)["expected_md5"]

    def missing(self) -> list[str]:
        if all((self._extracted() / m).is_file() for m in self.members) or self._tarball().is_file():
            return []
        return [f"{self._extracted() / m}" for m in self.members if not (self._extracted() / m).is_file()]

    def fix(self) -> str:
        return (f"`for x in docs queries qrels; do ir_datasets export mr-tydi/{self.lang}/{self.split} $x >/dev/null; "
                f"done` and copy that machine's ~/.ir_datasets/mr-tydi to {irds_home() / 'mr-tydi'} (or put "
                f"{_irds_download('mr-tydi', self.lang)['url'].rsplit('/', 1)[1]} at {self._tarball()})")

    def load(self, spec: "PaperSpec") -> Collection:
        docs_m, topics_m, qrels_m = self.members
        if all((self._extracted() / m).is_file() for m in self.members):
            read = lambda m: (self._extracted() / m).read_bytes()  # noqa: E731
        else:
            read = _tar_reader(self._tarball(), self.members)
        topics = read_topics(read(topics_m).decode("utf-8").splitlines())
        qrels = read_trec_qrels(read(qrels_m).decode("utf-8").splitlines())
        corpus = {}
        for line in gzip.decompress(read(docs_m)).decode("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                corpus[row["id"]] = passage(row.get("title"), row["contents"])
        return _collection(spec, corpus, topics, qrels, f"Mr. TyDi v1.0 {MRTYDI_DIRS[self.lang]} {self.split}")


def _tar_reader(path: Path, members: tuple[str, ...]) -> Callable[[str], bytes]:
    """One pass over the tarball collecting the wanted members (tar.gz has no random access)."""
    found: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            name = info.name.lstrip("./")
            if name in members and info.isfile():
                found[name] = tar.extractfile(info).read()  # type: ignore[union-attr]

    def read(member: str) -> bytes:
        if member not in found:
            raise HarnessError(f"{path} lacks {member}: the tarball is damaged, delete it and fetch it again")
        return found[member]

    return read


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
def _collection(spec: "PaperSpec", corpus: dict, queries: dict, qrels: dict, source: str) -> Collection:
    """Judged queries only (as mteb and BEIR evaluate); judgements of unknown documents dropped."""
    qrels = {q: {d: r for d, r in docs.items() if d in corpus} for q, docs in qrels.items() if q in queries}
    qrels = {q: docs for q, docs in qrels.items() if docs}
    queries = {q: t for q, t in queries.items() if q in qrels}
    return Collection(name=spec.name, lang=spec.lang, corpus=corpus, queries=queries, qrels=qrels,
                      source=source, licence=spec.licence, kind=spec.kind)


@dataclass
class PaperSpec:
    """A registered paper dataset: the first of its sources that is fully cached is read."""

    name: str
    lang: str
    kind: str
    source: str
    licence: str
    sources: tuple[Source, ...]
    _built: Collection | None = field(default=None, repr=False, compare=False)  # as DatasetSpec: read once

    def missing(self) -> list[str]:
        """[] when some source is complete; else one line naming every missing piece and the fixes."""
        gaps = [(src, src.missing()) for src in self.sources]
        if any(not pieces for _, pieces in gaps):
            return []
        ways = " OR ".join(f"[{', '.join(pieces)}] -> {src.fix()}" for src, pieces in gaps)
        return [f"data set '{self.name}' is not in the local caches (ir_datasets home {irds_home()}, "
                f"hub cache {hub_cache()}); missing, with the fix to run on a machine with internet: {ways}"]

    @property
    def unavailable(self) -> str | None:
        """Set while not cached, so `harness data build` (all) skips it and `data list` says why."""
        return f"not cached: `harness data build {self.name}` lists what to fetch" if self.missing() else None

    def summary(self) -> dict[str, int] | None:
        return None  # counting means reading the whole corpus

    def build(self) -> Collection:
        if self._built is None:
            lines = self.missing()
            if lines:
                raise HarnessError(lines[0])
            source = next(src for src in self.sources if not src.missing())
            self._built = source.load(self)
        return self._built


def paper_specs() -> list[PaperSpec]:
    specs = []
    for lang in PAPER_LANGS:
        specs.append(PaperSpec(
            f"miracl-{lang}", lang, "test collection", f"MIRACL v1.0 {lang} dev (used as test)", MIRACL_LICENCE,
            (MiraclFiles(lang, "dev"), MtebRetrieval(*MTEB_MIRACL, subset=lang, split="dev"))))
        specs.append(PaperSpec(
            f"miracl-{lang}-train", lang, "pairs", f"MIRACL v1.0 {lang} train: query -> positive passage",
            MIRACL_LICENCE, (MiraclPairs(lang, "train"),)))
        specs.append(PaperSpec(
            f"miracl-{lang}-lite", lang, "test collection",
            f"mteb MIRACLRetrievalHardNegatives {lang} dev (top-250 pooled candidates per query)", MIRACL_LICENCE,
            (MtebRetrieval(*MTEB_MIRACL_HN, subset=lang, split="dev"),)))
        specs.append(PaperSpec(
            f"webfaq-{lang}", lang, "test collection", f"WebFAQ retrieval {ISO3[lang]} test (mteb WebFAQRetrieval)",
            WEBFAQ_LICENCE, (MtebRetrieval(*MTEB_WEBFAQ, subset=ISO3[lang], split="test"),
                             MtebRetrieval(WEBFAQ_ORIGINAL, None, subset=ISO3[lang], split="test"))))
        if lang in MRTYDI_DIRS:
            specs.append(PaperSpec(
                f"mr-tydi-{lang}", lang, "test collection", f"Mr. TyDi v1.0 {lang} test (ir_datasets)",
                MRTYDI_LICENCE, (MrTydiIrds(lang),)))
    return specs


def missing_data(name: str) -> list[str]:
    """Lines naming what dataset ``name`` lacks locally (empty when it can be loaded)."""
    import harness.data  # noqa: F401  (registers the built-in datasets)
    from harness.data.beir import PREFIX
    from harness.registry import datasets

    if name.startswith(PREFIX):
        return []  # local folders report their own problems when read
    obj = datasets.get(name)
    return obj.missing() if hasattr(obj, "missing") else []


def _register() -> None:
    from harness.registry import datasets

    for spec in paper_specs():
        datasets.add(spec.name, spec)


_register()
