"""Paper datasets (MIRACL, WebFAQ, Mr.TyDi) read from temporary caches in their real on-disk formats.

Fixture texts live in tests/fixtures/paper/; each test writes them the way the real tools store them:
ir_datasets' home (gzipped docs, TSV topics, TREC qrels), and the Hugging Face hub cache (blobs +
snapshot symlinks + refs/main; parquet or gzipped JSON lines behind a README card). The hub itself
cannot be reached here: the pin check runs against stand-ins raising huggingface_hub's own errors.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest

from harness.data import load_collection, paper
from harness.data.paper import (
    MRTYDI,
    MRTYDI_CORPUS,
    MTEB_MIRACL,
    MTEB_MIRACL_HN,
    MTEB_WEBFAQ,
    check_pins,
    missing_data,
)
from harness.registry import datasets
from harness.util import HarnessError

FIX = Path(__file__).parent / "fixtures" / "paper"
KO_DOCS = 3  # MIRACL ko ships docs-0..2.jsonl.gz (ir_datasets/etc/downloads.json)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty ir_datasets home and hub cache, selected the way the real tools read them."""
    irds, hf_home = tmp_path / "irds", tmp_path / "hf"
    monkeypatch.setenv("IR_DATASETS_HOME", str(irds))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    for entry in datasets:  # specs keep a built collection in memory: start from none
        if isinstance(entry.load(), paper.PaperSpec):
            monkeypatch.setattr(entry.load(), "_built", None)
    return irds, hf_home / "hub"


# --------------------------------------------------------------------------------------------
# Writers of the real cache layouts
# --------------------------------------------------------------------------------------------
def hub_put(hub: Path, repo: str, revision: str, files: dict[str, bytes]) -> Path:
    """Files as huggingface_hub caches them: content-addressed blobs, relative snapshot symlinks."""
    root = hub / f"datasets--{repo.replace('/', '--')}"
    for rel, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / revision / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return root / "snapshots" / revision


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def doc_shards(path: Path, n: int) -> list[bytes]:
    """The fixture docs split round-robin into ``n`` gzipped JSON-lines files (docs-i.jsonl.gz)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [gz("".join(lines[i::n]).encode()) for i in range(n)]


def parquet(jsonl: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def miracl_irds(irds: Path, split: str = "dev", docs: bool = True, topics: bool = True) -> None:
    base = irds / "miracl" / "v1.0" / "ko"
    if topics:
        (base / split).mkdir(parents=True, exist_ok=True)
        (base / split / "topics.tsv").write_bytes((FIX / "miracl-ko" / f"topics.{split}.tsv").read_bytes())
        (base / split / "qrels.tsv").write_bytes((FIX / "miracl-ko" / f"qrels.{split}.tsv").read_bytes())
    if docs:
        (base / "docs").mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(doc_shards(FIX / "miracl-ko" / "docs.jsonl", KO_DOCS)):
            (base / "docs" / f"docs-{i}.jsonl.gz").write_bytes(data)


def miracl_hub(hub: Path) -> None:
    src = FIX / "miracl-ko"
    hub_put(hub, "macavaney/miracl-noauth", "a" * 40, {
        f"miracl-v1.0-ko/topics/topics.miracl-v1.0-ko-{s}.tsv": (src / f"topics.{s}.tsv").read_bytes()
        for s in ("dev", "train")} | {
        f"miracl-v1.0-ko/qrels/qrels.miracl-v1.0-ko-{s}.tsv": (src / f"qrels.{s}.tsv").read_bytes()
        for s in ("dev", "train")})
    hub_put(hub, "miracl/miracl-corpus", "b" * 40, {
        f"miracl-corpus-v1.0-ko/docs-{i}.jsonl.gz": data
        for i, data in enumerate(doc_shards(src / "docs.jsonl", KO_DOCS))})


EXPECTED_MIRACL_KO = {
    "queries": {"0": "서울은 어느 나라의 수도인가?", "1": "한강은 어디를 흐르는가?"},  # 2 is unjudged
    "qrels": {"0": {"10#0": 1, "10#1": 0}, "1": {"20#0": 1, "30#0": 1}},  # 99#9 is not in the corpus
}


def check_miracl_ko(col) -> None:
    assert len(col.corpus) == 6 and col.corpus["10#0"] == "서울\n서울은 대한민국의 수도이다."
    assert col.corpus["30#0"] == "강은 바다로 흐른다."  # empty title: text only
    assert col.queries == EXPECTED_MIRACL_KO["queries"]
    assert col.qrels == EXPECTED_MIRACL_KO["qrels"]
    assert col.lang == "ko" and col.kind == "test collection"


# --------------------------------------------------------------------------------------------
def test_registry_lists_paper_datasets():
    names = set(datasets.names())
    for lang in paper.PAPER_LANGS:
        assert {f"miracl-{lang}", f"miracl-{lang}-train", f"miracl-{lang}-lite", f"webfaq-{lang}"} <= names
    assert {"mr-tydi-ar", "mr-tydi-ko", "mr-tydi-ru"} <= names
    assert "mr-tydi-zh" not in names and "mr-tydi-hi" not in names  # Mr.TyDi has neither language


def test_nothing_cached_fails_fast_naming_every_piece(caches):
    start = time.perf_counter()
    with pytest.raises(HarnessError) as err:
        load_collection("miracl-ko")
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    assert "\n" not in msg
    for i in range(KO_DOCS):
        assert f"miracl-corpus-v1.0-ko/docs-{i}.jsonl.gz" in msg
    assert "topics.miracl-v1.0-ko-dev.tsv" in msg and "qrels.miracl-v1.0-ko-dev.tsv" in msg
    assert "ir_datasets export miracl/ko/dev" in msg
    assert "hf download --repo-type dataset miracl/miracl-corpus" in msg
    assert f"hf download --repo-type dataset {MTEB_MIRACL[0]} --revision {MTEB_MIRACL[1]}" in msg
    for name in [n for n in datasets.names() if n.startswith(("miracl-", "webfaq-", "mr-tydi-"))]:
        lines = missing_data(name)
        assert len(lines) == 1 and name in lines[0], name
        assert datasets.get(name).unavailable  # `harness data build` (all) skips it
    assert missing_data("gnome-help-ko") == [] and missing_data("beir:/nowhere") == []


def test_miracl_from_ir_datasets_home(caches):
    irds, _ = caches
    miracl_irds(irds)
    assert missing_data("miracl-ko") == []
    check_miracl_ko(load_collection("miracl-ko"))


def test_miracl_from_hub_cache(caches):
    _, hub = caches
    miracl_hub(hub)
    assert missing_data("miracl-ko") == []
    col = load_collection("miracl-ko")
    check_miracl_ko(col)
    assert "raw files" in col.source


def test_partial_cache_lists_only_what_is_missing(caches):
    irds, _ = caches
    miracl_irds(irds, docs=False)
    (line,) = missing_data("miracl-ko")
    assert "docs-0.jsonl.gz" in line and "docs-2.jsonl.gz" in line
    assert "ko-dev.tsv" not in line  # topics and qrels are there


def test_miracl_train_pairs(caches):
    irds, _ = caches
    miracl_irds(irds, split="train")
    col = load_collection("miracl-ko-train")
    assert col.kind == "pairs" and col.corpus == {}
    assert col.train_pairs == [("김치는 무엇인가?", "김치\n김치는 발효 음식이다."),
                               ("부산은 어디에 있는가?", "부산\n부산은 한국 남동쪽의 항구 도시이다.")]


def mteb_miracl_hn_files() -> dict[str, bytes]:
    src = FIX / "mteb-miracl-hn"
    return {"README.md": (src / "README.md").read_bytes(),
            "ko-corpus/dev-00000-of-00001.parquet": parquet(src / "ko-corpus.jsonl"),
            "ko-queries/dev-00000-of-00001.parquet": parquet(src / "ko-queries.jsonl"),
            "ko-qrels/dev-00000-of-00001.parquet": parquet(src / "ko-qrels.jsonl")}


def mteb_webfaq_files() -> dict[str, bytes]:
    """mteb/WebFAQRetrieval's layout: kor-corpus/test-00000-of-00001.parquet (its card, revision f64f483)."""
    src = FIX / "mteb-webfaq"
    return {"README.md": (src / "README.md").read_bytes(),
            "kor-corpus/test-00000-of-00001.parquet": parquet(src / "kor-corpus.jsonl"),
            "kor-queries/test-00000-of-00001.parquet": parquet(src / "kor-queries.jsonl"),
            "kor-qrels/test-00000-of-00001.parquet": parquet(src / "kor-qrels.jsonl")}


def webfaq_original_files() -> dict[str, bytes]:
    """PaDaS-Lab/webfaq-retrieval's layout: files under kor/, gzipped JSON lines."""
    src = FIX / "webfaq"
    return {"README.md": (src / "README.md").read_bytes(),
            "kor/corpus.jsonl.gz": gz((src / "kor-corpus.jsonl").read_bytes()),
            "kor/queries.jsonl.gz": gz((src / "kor-queries.jsonl").read_bytes()),
            "kor/test.jsonl.gz": gz((src / "kor-qrels-test.jsonl").read_bytes()),
            "kor/train.jsonl.gz": gz((src / "kor-qrels-train.jsonl").read_bytes())}


def mrtydi_files() -> dict[tuple[str, str], dict[str, bytes]]:
    """castorini/mr-tydi and castorini/mr-tydi-corpus, v1.1 Korean."""
    src = FIX / "mrtydi-v1.1-korean"
    return {MRTYDI: {"mrtydi-v1.1-korean/test.jsonl.gz": gz((src / "test.jsonl").read_bytes())},
            MRTYDI_CORPUS: {"mrtydi-v1.1-korean/corpus.jsonl.gz": gz((src / "corpus.jsonl").read_bytes())}}


def test_miracl_lite_from_mteb_parquet_snapshot(caches):
    _, hub = caches
    hub_put(hub, MTEB_MIRACL_HN[0], MTEB_MIRACL_HN[1], mteb_miracl_hn_files())
    col = load_collection("miracl-ko-lite")
    assert col.corpus == {"10#0": "서울\n서울은 대한민국의 수도이다.", "20#0": "한강\n한강은 서울을 가로질러 흐른다.",
                          "30#0": "강은 바다로 흐른다."}
    assert col.queries == EXPECTED_MIRACL_KO["queries"]  # "7" has no judgement
    assert col.qrels == {"0": {"10#0": 1}, "1": {"20#0": 1, "30#0": 1}}
    assert MTEB_MIRACL_HN[1][:12] in col.source
    (line,) = missing_data("miracl-ar-lite")  # declared in the card, files never fetched
    assert "ar-corpus (ar-corpus/dev-*)" in line and "ar-queries" in line


EXPECTED_WEBFAQ_KO = {"queries": {"q1": "배송은 얼마나 걸리나요?", "q2": "환불이 되나요?"},  # q3 is train only
                      "qrels": {"q1": {"a1": 1}, "q2": {"a2": 1}}}


def test_webfaq_original_jsonl_gz_layout_takes_the_test_split(caches):
    _, hub = caches
    hub_put(hub, paper.WEBFAQ_ORIGINAL, "c" * 40, webfaq_original_files())
    col = load_collection("webfaq-ko")
    assert col.qrels == EXPECTED_WEBFAQ_KO["qrels"]  # float scores -> int; train split ignored
    assert col.queries == EXPECTED_WEBFAQ_KO["queries"] and len(col.corpus) == 3
    assert col.corpus["a1"] == "배송은 보통 3일 걸립니다."
    assert paper.WEBFAQ_ORIGINAL in col.source
    (line,) = missing_data("webfaq-ru")
    assert "--include 'rus-*/*'" in line and "--include 'rus/*'" in line  # mteb's folders, the authors' folder


def test_webfaq_from_mteb_parquet_with_id_columns(caches):
    """mteb/WebFAQRetrieval keeps ids in `id` (the authors' copy in `_id`): same collection either way."""
    _, hub = caches
    files = mteb_webfaq_files()
    assert "_id" not in files["kor-corpus/test-00000-of-00001.parquet"].decode("latin-1")  # the fixture is id-only
    hub_put(hub, MTEB_WEBFAQ[0], MTEB_WEBFAQ[1], files)
    col = load_collection("webfaq-ko")
    assert col.queries == EXPECTED_WEBFAQ_KO["queries"] and col.qrels == EXPECTED_WEBFAQ_KO["qrels"]
    assert col.corpus == {"a1": "배송은 보통 3일 걸립니다.", "a2": "환불은 30일 이내에 가능합니다.",
                          "a3": "매장은 오전 9시에 엽니다."}
    assert col.source.startswith(f"{MTEB_WEBFAQ[0]}@{MTEB_WEBFAQ[1][:12]}")  # mteb's copy wins when cached


def test_rows_without_an_id_column_name_the_file(caches):
    _, hub = caches
    files = mteb_webfaq_files()
    rows = FIX / "mteb-webfaq" / "kor-queries.jsonl"
    renamed = rows.read_text(encoding="utf-8").replace('"id"', '"qid"')
    files["kor-queries/test-00000-of-00001.parquet"] = parquet_text(renamed)
    hub_put(hub, MTEB_WEBFAQ[0], MTEB_WEBFAQ[1], files)
    with pytest.raises(HarnessError, match=r"kor-queries/test-00000-of-00001\.parquet.*neither '_id' nor 'id' "
                                           r"\(columns: qid, text\)"):
        load_collection("webfaq-ko")


def parquet_text(jsonl: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([json.loads(line) for line in jsonl.splitlines() if line.strip()]), out)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Mr. TyDi v1.1
# --------------------------------------------------------------------------------------------
def test_mrtydi_v11_from_the_hub_cache(caches):
    _, hub = caches
    (line,) = missing_data("mr-tydi-ko")
    assert "castorini/mr-tydi:mrtydi-v1.1-korean/test.jsonl.gz" in line
    assert "castorini/mr-tydi-corpus:mrtydi-v1.1-korean/corpus.jsonl.gz" in line
    assert f"--revision {MRTYDI[1]}" in line and f"--revision {MRTYDI_CORPUS[1]}" in line
    assert "v1.0" not in line and "ir_datasets export" not in line
    for (repo, revision), files in mrtydi_files().items():
        hub_put(hub, repo, revision, files)
    assert missing_data("mr-tydi-ko") == []
    col = load_collection("mr-tydi-ko")
    assert col.queries == {"1": "대한민국의 수도는?", "2": "가장 긴 강은?"}  # 3 has no positive, 4's is not in the corpus
    assert col.qrels == {"1": {"100#0": 1}, "2": {"200#1": 1}}
    assert col.corpus == {"100#0": "서울\n서울은 대한민국의 수도이다.", "200#0": "낙동강\n낙동강은 남한에서 가장 길다.",
                          "200#1": "한강보다 낙동강이 길다."}
    assert "v1.1" in col.source and "mrtydi-v1.1-korean" in col.source


def test_mrtydi_other_cached_revision_is_used_with_a_warning(caches):
    _, hub = caches
    (repo, _), files = next(iter(mrtydi_files().items()))
    hub_put(hub, repo, "d" * 40, files)
    hub_put(hub, *MRTYDI_CORPUS, mrtydi_files()[MRTYDI_CORPUS])
    with pytest.warns(UserWarning, match=f"castorini/mr-tydi: using cached revision {'d' * 40}"):
        col = load_collection("mr-tydi-ko")
    assert col.qrels == {"1": {"100#0": 1}, "2": {"200#1": 1}}


# --------------------------------------------------------------------------------------------
# The `hf download` hints fetch the published files
# --------------------------------------------------------------------------------------------
def hinted_downloads(monkeypatch, line: str, repo: str) -> list[dict]:
    """Run each `hf download ... REPO ...` command of ``line`` through the real hf CLI (its downloads
    stubbed) and return what it would download with: repo, repo type, revision, allow-patterns."""
    import huggingface_hub.cli.download as cli_download
    from huggingface_hub.cli.hf import app

    calls: list[dict] = []
    monkeypatch.setattr(cli_download, "snapshot_download", lambda **kw: calls.append(kw) or "/x")
    monkeypatch.setattr(cli_download, "hf_hub_download",
                        lambda **kw: calls.append({**kw, "allow_patterns": [kw["filename"]]}) or "/x")
    commands = [c for c in re.findall(r"`(hf download [^`]*)`", line) if repo in shlex.split(c)]
    assert commands, f"no hf download command for {repo} in: {line}"
    for command in commands:
        app(args=shlex.split(command)[1:], standalone_mode=False)
    return calls


@pytest.mark.parametrize("name,repo,revision,files", [
    ("webfaq-ko", paper.WEBFAQ_ORIGINAL, None, webfaq_original_files),
    ("webfaq-ko", *MTEB_WEBFAQ, mteb_webfaq_files),
    ("miracl-ko-lite", *MTEB_MIRACL_HN, mteb_miracl_hn_files),
    ("mr-tydi-ko", *MRTYDI, lambda: mrtydi_files()[MRTYDI]),
    ("mr-tydi-ko", *MRTYDI_CORPUS, lambda: mrtydi_files()[MRTYDI_CORPUS]),
])
def test_download_hint_selects_every_published_file(caches, monkeypatch, name, repo, revision, files):
    from huggingface_hub.utils import filter_repo_objects

    (line,) = missing_data(name)
    calls = hinted_downloads(monkeypatch, line, repo)
    assert [(c["repo_id"], c["repo_type"], c["revision"]) for c in calls] == [(repo, "dataset", revision)]
    published = sorted(files())
    chosen = sorted(filter_repo_objects(published, allow_patterns=calls[0]["allow_patterns"]))
    assert chosen == published, calls[0]["allow_patterns"]


# --------------------------------------------------------------------------------------------
# Folder / config names the code uses, against what mteb publishes
# --------------------------------------------------------------------------------------------
def mteb_task_source(name: str) -> str:
    spec = importlib.util.find_spec("mteb")
    if spec is None:
        pytest.skip("mteb not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "retrieval" / "multilingual"
    return (root / name).read_text(encoding="utf-8")


def module_dict(text: str, variable: str) -> dict:
    """A module-level ``VARIABLE = {...}`` literal, read without importing mteb (slow)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{variable} not found")


def test_subset_names_are_those_mteb_publishes():
    webfaq = module_dict(mteb_task_source("web_faq_retrieval.py"), "_LANGUAGES")
    assert set(paper.ISO3.values()) <= set(webfaq)  # ara, zho, hin, kor, rus folders / configs
    miracl = module_dict(mteb_task_source("miracl_retrieval.py"), "_LANGUAGES")
    assert set(paper.PAPER_LANGS) <= set(miracl)
    mrtidy = module_dict(mteb_task_source("mr_tidy_retrieval.py"), "_EVAL_LANGS")  # castorini's config names
    assert set(paper.MRTYDI_LANGS.values()) <= set(mrtidy)
    assert not {"zh", "hi"} & set(paper.MRTYDI_LANGS)


def test_pinned_revisions_match_installed_mteb():
    """The repo/revision constants are mteb's task metadata (read from source: importing mteb takes ~9 s)."""
    spec = importlib.util.find_spec("mteb")
    if spec is None:
        pytest.skip("mteb not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "retrieval" / "multilingual"
    pairs = set()
    for name in ("miracl_retrieval.py", "web_faq_retrieval.py"):
        text = (root / name).read_text(encoding="utf-8")
        pairs |= set(re.findall(r'"path":\s*"([^"]+)",\s*"revision":\s*"([0-9a-f]{40})"', text))
    assert {MTEB_MIRACL, MTEB_MIRACL_HN, MTEB_WEBFAQ} <= pairs


# --------------------------------------------------------------------------------------------
# check_pins: the hub's answers for a pinned revision, from stand-ins raising huggingface_hub's errors
# --------------------------------------------------------------------------------------------
def hub_error(cls, status: int, url: str):
    from httpx2 import Request, Response

    return cls(f"{status} Client Error. for url: {url}", response=Response(status, request=Request("HEAD", url)))


def stand_in(monkeypatch, answer):
    """Replace huggingface_hub.get_hf_file_metadata (the HEAD of a file at a revision, which raises the
    hub's not-found errors); ``answer(repo, revision)`` returns None or the exception to raise."""
    import huggingface_hub

    calls = []

    def metadata(url, token=None, timeout=None, **kwargs):
        match = re.fullmatch(r"https?://[^/]+/datasets/(.+)/resolve/([0-9a-f]{40})/(.+)", url)
        assert match, url
        repo, revision, filename = match.groups()
        calls.append((repo, revision, filename))
        error = answer(repo, revision)
        if error is not None:
            raise error
        return object()

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    return calls


def test_check_pins_all_present(caches, monkeypatch):
    calls = stand_in(monkeypatch, lambda repo, revision: None)
    assert check_pins() == []
    assert sorted((repo, rev) for repo, rev, _ in calls) == sorted(paper.PINS.values())  # each pin once
    assert all(filename == "README.md" for _, _, filename in calls)


def test_check_pins_names_the_vanished_revision_and_its_fix(caches, monkeypatch):
    from huggingface_hub.errors import RevisionNotFoundError

    def answer(repo, revision):
        if (repo, revision) == MTEB_WEBFAQ:
            return hub_error(RevisionNotFoundError, 404, f"https://huggingface.co/datasets/{repo}/resolve/{revision}/README.md")
        return None

    stand_in(monkeypatch, answer)
    (line,) = check_pins()
    assert "\n" not in line
    assert f"pinned revision {MTEB_WEBFAQ[1]} of hub dataset {MTEB_WEBFAQ[0]}" in line
    assert "webfaq-ar, webfaq-zh, webfaq-hi, webfaq-ko, webfaq-ru" in line and "miracl" not in line
    assert "RevisionNotFound" in line and "update MTEB_WEBFAQ in harness/data/paper.py" in line
    assert "pip install -U mteb" in line  # where the current mteb pin is found
    (line,) = check_pins(["webfaq-ko"])
    assert "read by webfaq-ko," in line
    assert check_pins(["miracl-ko", "mr-tydi-ko"]) == []  # their pins are fine


def test_check_pins_missing_or_gated_repository(caches, monkeypatch):
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RemoteEntryNotFoundError,
    )

    def answer(repo, revision):
        url = f"https://huggingface.co/datasets/{repo}/resolve/{revision}/README.md"
        if repo == MRTYDI[0]:
            return hub_error(GatedRepoError, 403, url)
        if repo == MRTYDI_CORPUS[0]:  # the revision exists, it only has no card: fine
            assert issubclass(RemoteEntryNotFoundError, EntryNotFoundError)
            return hub_error(RemoteEntryNotFoundError, 404, url)
        return None

    stand_in(monkeypatch, answer)
    (line,) = check_pins()
    assert f"hub dataset {MRTYDI[0]}, read by mr-tydi-ar, mr-tydi-ko, mr-tydi-ru" in line
    assert f"pinned revision {MRTYDI[1]}" in line and "GatedRepoError" in line
    assert "update MRTYDI in harness/data/paper.py" in line
    assert f"https://huggingface.co/datasets/{MRTYDI[0]}/commits/main" in line


def test_check_pins_offline_fails_fast_with_what_is_missing(caches, monkeypatch):
    from httpx2 import ConnectError

    calls = stand_in(monkeypatch, lambda repo, revision: ConnectError("[Errno -2] Name or service not known"))
    start = time.perf_counter()
    first, *rest = check_pins(["miracl-ko", "webfaq-ko"])
    assert time.perf_counter() - start < 2.0 and len(calls) == 1  # the first failure ends the check
    assert first.startswith("cannot reach the Hugging Face hub to check the pinned revisions (ConnectError: "
                            "[Errno -2] Name or service not known)")
    assert "\n" not in first
    assert rest == missing_data("miracl-ko") + missing_data("webfaq-ko") and len(rest) == 2


def test_check_pins_offline_with_the_real_client(caches, monkeypatch):
    """No stand-in: huggingface_hub's own request in offline mode (HF_HUB_OFFLINE), answered at once."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    first, *rest = check_pins(["mr-tydi-ko"])
    assert time.perf_counter() - start < 2.0
    assert first.startswith("cannot reach the Hugging Face hub") and "OfflineModeIsEnabled" in first
    assert rest == missing_data("mr-tydi-ko")
    with pytest.raises(HarnessError, match="mrtydi-v1.1-korean/test.jsonl.gz"):  # loading still fails fast, offline
        load_collection("mr-tydi-ko")
