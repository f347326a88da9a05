"""Paper-profile test collections (MIRACL, WebFAQ, Mr.TyDi), read offline from local caches.

Nothing here downloads. Each dataset knows the files it needs in the
caches other tools fill on a machine with internet, and reads them in their published on-disk formats:

* ``miracl-{lang}`` (dev split as test) and ``miracl-{lang}-train`` (query -> positive passage):
  the raw MIRACL files, either in the ir_datasets home (``$IR_DATASETS_HOME/miracl/v1.0/...``,
  layout from ``ir_datasets/etc/downloads.json``) or in the Hugging Face hub cache
  (``macavaney/miracl-noauth`` or the gated ``miracl/miracl`` for topics/qrels,
  ``miracl/miracl-corpus`` for the ``docs-N.jsonl.gz`` passages). Topics: ``qid<TAB>text``;
  qrels: TREC ``qid Q0 docid rel``; docs: JSON lines ``{"docid", "title", "text"}``.
  Falls back to mteb's parquet copy ``mteb/MIRACLRetrieval`` for the test collection.
* ``miracl-{lang}-lite``: mteb's ``MIRACLRetrievalHardNegatives`` (250 pooled candidates per query).
* ``webfaq-{lang}``: mteb's ``WebFAQRetrieval`` (``mteb/WebFAQRetrieval``: parquet under
  ``{iso3}-corpus/test-*``, ids in an ``id`` column); else the authors' ``PaDaS-Lab/webfaq-retrieval``
  (same config names, JSON lines under ``{iso3}/``, ids in ``_id``), test split.
* ``mr-tydi-{lang}``: Mr. TyDi v1.1 from the hub: ``castorini/mr-tydi`` (``mrtydi-v1.1-{language}/test.jsonl.gz``,
  rows ``{"query_id", "query", "positive_passages": [{"docid", ...}], "negative_passages"}``) and
  ``castorini/mr-tydi-corpus`` (``mrtydi-v1.1-{language}/corpus.jsonl.gz``, rows ``{"docid", "title", "text"}``),
  ``{language}`` being castorini's config name (``arabic``, ``korean``, ``russian``). Mr.TyDi has no
  Chinese or Hindi. (ir_datasets' ``mr-tydi/*`` is the older v1.0 release and is not read.)

mteb-layout repositories (``{subset}-corpus`` / ``-queries`` / ``-qrels`` configs) are resolved the
way ``datasets`` does it: the ``configs:`` block of the snapshot's README.md maps each config and
split to data-file globs (parquet or JSON lines, optionally gzipped).

``missing_data(name)`` lists what is absent, one line per dataset with the commands that fetch it;
``load_collection(name)`` raises a HarnessError with the same text, before reading anything. Both stay
offline. ``check_pins()`` is the one call that asks the hub: whether every pinned revision below still
exists (one line per pin that does not, naming its data sets and the constant to update here).
"""
from __future__ import annotations

import gzip
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from harness.data.base import Collection
from harness.util import HarnessError

PAPER_LANGS = ("ar", "zh", "hi", "ko", "ru")
# WebFAQ subset names (ISO 639-3): mteb's WebFAQRetrieval configs and the authors' folders both use
# them (a test checks them against mteb's task metadata).
ISO3 = {"ar": "ara", "zh": "zho", "hi": "hin", "ko": "kor", "ru": "rus"}
MRTYDI_LANGS = {"ar": "arabic", "ko": "korean", "ru": "russian"}  # castorini/mr-tydi config names

# Pinned as in mteb's task metadata (mteb/tasks/retrieval/multilingual/*.py); a test checks them.
MTEB_MIRACL = ("mteb/MIRACLRetrieval", "9c09abc13478308c27598f350e31d8f06b9b5481")
MTEB_MIRACL_HN = ("mteb/MIRACLRetrievalHardNegatives", "d7d94fa4b946cec4a27c84653aa0cf6b33f74a3c")
MTEB_WEBFAQ = ("mteb/WebFAQRetrieval", "f64f483ad0f31d2e78209d524c14a4a867965959")
WEBFAQ_ORIGINAL = "PaDaS-Lab/webfaq-retrieval"  # not pinned: a fallback when mteb's copy is absent
# Mr. TyDi v1.1: castorini's commits that hold the test files (3506bca, after 1da9e10 "ir format", the
# last change to the mrtydi-v1.1-* folders) and the corpus files (704ef7b "init", unchanged since).
MRTYDI = ("castorini/mr-tydi", "3506bca8a88cdb49d8d35e954365ca6053e4346a")
MRTYDI_CORPUS = ("castorini/mr-tydi-corpus", "704ef7b26167691f4cfc1f7fcdbae4155933ea62")
MIRACL_TOPIC_REPOS = ("macavaney/miracl-noauth", "miracl/miracl")  # same paths; the second is gated
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
# Every pin by the name it has in this file: check_pins() names the one to update.
PINS = {"MTEB_MIRACL": MTEB_MIRACL, "MTEB_MIRACL_HN": MTEB_MIRACL_HN, "MTEB_WEBFAQ": MTEB_WEBFAQ,
        "MRTYDI": MRTYDI, "MRTYDI_CORPUS": MRTYDI_CORPUS}

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


def hub_file(repo: str, path: str, revision: str | None = None) -> Path | None:
    """``path`` inside a cached snapshot of ``repo``, ``revision``'s first (a dangling blob link is absent)."""
    for snap in hub_snapshots(repo, revision):
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


def row_id(row: dict[str, Any], path: Path | None = None) -> str:
    """The id of a corpus or queries row: ``_id`` (BEIR files; PaDaS-Lab/webfaq-retrieval, per its card) or
    ``id`` (the repositories mteb 2 pushes: mteb/WebFAQRetrieval, per its card; mteb/MIRACLRetrieval*)."""
    for key in ("_id", "id"):
        if row.get(key) is not None:
            return str(row[key])
    raise HarnessError(f"{path or 'a data file'}: a row has neither '_id' nor 'id' (columns: {', '.join(row)}): "
                       f"not a BEIR/mteb retrieval file, fetch it again or fix the source's layout")


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

    def pins(self) -> list[tuple[str, str]]:
        """(hub repo, pinned revision) pairs this source reads (check_pins asks the hub about them)."""
        return []


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
    """A retrieval task in mteb's hub layout: configs ``{subset}-corpus``/``-queries``/``-qrels``.

    ``include``: where the repository keeps a subset's files, as ``hf download --include`` globs
    (``{subset}`` filled in). mteb's push_to_hub writes ``{subset}-corpus/test-00000-of-00001.parquet``;
    PaDaS-Lab/webfaq-retrieval keeps ``{subset}/...``.
    """

    repo: str
    revision: str | None
    subset: str
    split: str
    include: tuple[str, ...] = ("{subset}-*/*",)

    def pins(self) -> list[tuple[str, str]]:
        return [(self.repo, self.revision)] if self.revision else []

    def include_patterns(self) -> list[str]:
        return ["README.md"] + [g.format(subset=self.subset) for g in self.include]

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
        return f"`{_hf_download(self.repo, self.revision, self.include_patterns())}` and copy the hub cache to {hub_cache()}"

    def load(self, spec: "PaperSpec") -> Collection:
        snap, files, problems = self._resolve()
        if problems or snap is None:
            raise HarnessError(f"{spec.name}: {'; '.join(problems)}: {self.fix()}")
        if self.revision and snap.name != self.revision:
            warnings.warn(f"{self.repo}: using cached revision {snap.name}, not the pinned {self.revision}")
        corpus = {row_id(r, p): passage(r.get("title"), r["text"]) for p, r in _rows(files["corpus"])}
        queries = {row_id(r, p): r["text"] for p, r in _rows(files["queries"])}
        qrels: dict[str, dict[str, int]] = {}
        for _, r in _rows(files["qrels"]):
            qrels.setdefault(str(r["query-id"]), {})[str(r["corpus-id"])] = int(r["score"])
        return _collection(spec, corpus, queries, qrels, f"{self.repo}@{snap.name[:12]} {self.subset}/{self.split}")


def _rows(paths: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for row in read_rows(path):
            yield path, row


def _hf_download(repo: str, revision: str | None, patterns: list[str]) -> str:
    """The `hf download` command for ``patterns``: one ``--include`` each (the CLI takes one value per
    flag; further words would be read as file names and the ``--include`` ignored)."""
    rev = f" --revision {revision}" if revision else ""
    return f"hf download --repo-type dataset {repo}{rev}" + "".join(f" --include '{g}'" for g in patterns)


# --------------------------------------------------------------------------------------------
# Mr. TyDi v1.1 (castorini's hub files)
# --------------------------------------------------------------------------------------------
@dataclass
class MrTydiFiles(Source):
    """``mrtydi-v1.1-{language}/{split}.jsonl.gz`` of castorini/mr-tydi (queries with their positive
    passages: the judgements) and ``mrtydi-v1.1-{language}/corpus.jsonl.gz`` of castorini/mr-tydi-corpus."""

    lang: str
    split: str = "test"

    @property
    def folder(self) -> str:
        return f"mrtydi-v1.1-{MRTYDI_LANGS[self.lang]}"

    def files(self) -> list[tuple[tuple[str, str], str]]:
        return [(MRTYDI, f"{self.folder}/{self.split}.jsonl.gz"), (MRTYDI_CORPUS, f"{self.folder}/corpus.jsonl.gz")]

    def pins(self) -> list[tuple[str, str]]:
        return [pin for pin, _ in self.files()]

    def _find(self, pin: tuple[str, str], path: str) -> Path | None:
        return hub_file(pin[0], path, pin[1])

    def missing(self) -> list[str]:
        return [f"{pin[0]}:{path}" for pin, path in self.files() if self._find(pin, path) is None]

    def fix(self) -> str:
        cmds = " plus ".join(f"`{_hf_download(repo, rev, [path])}`" for (repo, rev), path in self.files())
        return f"{cmds} and copy the hub cache to {hub_cache()}"

    def load(self, spec: "PaperSpec") -> Collection:
        paths = []
        for pin, path in self.files():
            found = self._find(pin, path)
            if found is None:  # removed between the check and the read
                raise HarnessError(f"{pin[0]}:{path} disappeared from the local cache: fetch it again")
            snapshot = found.parents[len(Path(path).parts) - 1].name  # snapshots/<commit>/<path>
            if snapshot != pin[1]:
                warnings.warn(f"{pin[0]}: using cached revision {snapshot} for {path}, not the pinned {pin[1]}")
            paths.append(found)
        topics_path, corpus_path = paths
        queries: dict[str, str] = {}
        qrels: dict[str, dict[str, int]] = {}
        for row in read_rows(topics_path):
            qid = str(row["query_id"])
            queries[qid] = row["query"]
            for hit in row.get("positive_passages") or []:  # Mr. TyDi judges positives only
                qrels.setdefault(qid, {})[str(hit["docid"])] = 1
        corpus = {str(r["docid"]): passage(r.get("title"), r["text"]) for r in read_rows(corpus_path)}
        return _collection(spec, corpus, queries, qrels, f"Mr. TyDi v1.1 {self.folder} {self.split}")


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
                             MtebRetrieval(WEBFAQ_ORIGINAL, None, subset=ISO3[lang], split="test",
                                           include=("{subset}/*",)))))
        if lang in MRTYDI_LANGS:
            specs.append(PaperSpec(
                f"mr-tydi-{lang}", lang, "test collection", f"Mr. TyDi v1.1 {lang} test (castorini/mr-tydi)",
                MRTYDI_LICENCE, (MrTydiFiles(lang),)))
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


# --------------------------------------------------------------------------------------------
# Do the pinned revisions still exist? (the only code here that talks to the hub)
# --------------------------------------------------------------------------------------------
def pinned_revisions(names: Iterable[str] | None = None) -> dict[tuple[str, str], list[str]]:
    """(hub repo, pinned revision) -> the paper data sets that read it (all, or those in ``names``)."""
    wanted = None if names is None else set(names)
    pins: dict[tuple[str, str], list[str]] = {}
    for spec in paper_specs():
        if wanted is None or spec.name in wanted:
            for source in spec.sources:
                for pin in source.pins():
                    pins.setdefault(pin, []).append(spec.name)
    return pins


def _current_revision_hint(repo: str) -> str:
    if repo.startswith("mteb/"):
        return ("mteb's task metadata pins the current one: `pip install -U mteb` and read "
                "mteb/tasks/retrieval/multilingual/*.py")
    return f"see https://huggingface.co/datasets/{repo}/commits/main"


def _no_answer_errors() -> tuple[type[BaseException], ...]:
    """What the hub client raises when the hub gives no usable answer: offline mode, DNS, refused,
    timeout, or an HTTP error other than the not-found ones (5xx, a bad token)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError, HfHubHTTPError]
    for module in ("httpx2", "httpx", "requests"):  # the HTTP client of huggingface_hub 2.x / 1.x / 0.x
        try:
            lib = __import__(module)
        except ImportError:
            continue
        errors.append(getattr(lib, "TransportError", None) or lib.exceptions.ConnectionError)
    return tuple(errors)


def check_pins(names: Iterable[str] | None = None) -> list[str]:
    """Ask the hub whether every pinned revision of the paper data sets (or of ``names``) still exists.

    One metadata request (HEAD of the pin's README.md, no retries, nothing downloaded) per pin. Returns
    [] when all are there, else one line per pin the hub says is gone (RevisionNotFound, or the repository
    not found / gated): the hub dataset, the revision, the data sets that read it and the fix (the
    constant to update in this file). Unpinned sources (the raw MIRACL files,
    PaDaS-Lab/webfaq-retrieval) are not checked. When the hub gives no answer (offline,
    HF_HUB_OFFLINE=1) the first failure ends the check: one line saying so, then ``missing_data``'s
    lines for those data sets, as offline runs report them.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    selected = [s.name for s in paper_specs() if names is None or s.name in set(names)]
    by_pin = {pin: name for name, pin in PINS.items()}
    problems = []
    for (repo, revision), users in pinned_revisions(selected).items():
        where = f"hub dataset {repo}, read by {', '.join(users)}"
        fix = f"update {by_pin.get((repo, revision), 'its pin')} in harness/data/paper.py"
        try:
            get_hf_file_metadata(hf_hub_url(repo, "README.md", repo_type="dataset", revision=revision), timeout=10)
        except RevisionNotFoundError:
            problems.append(f"pinned revision {revision} of {where}, no longer exists on the hub (RevisionNotFound): "
                            f"{fix} to a current commit ({_current_revision_hint(repo)})")
        except RepositoryNotFoundError as err:  # GatedRepoError is one too
            problems.append(f"{where}, cannot be read at its pinned revision {revision} ({type(err).__name__}: "
                            f"removed, renamed, private or gated): {fix} to where it lives now "
                            f"({_current_revision_hint(repo)})")
        except EntryNotFoundError:
            continue  # the revision is there; it only has no README.md
        except _no_answer_errors() as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            offline = (f"cannot reach the Hugging Face hub to check the pinned revisions ({type(err).__name__}: "
                       f"{reason}): run check_pins() on a machine with internet")
            return [offline] + [line for name in selected for line in missing_data(name)]
    return problems


def _register() -> None:
    from harness.registry import datasets

    for spec in paper_specs():
        datasets.add(spec.name, spec)


_register()
