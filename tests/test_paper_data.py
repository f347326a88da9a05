"""Paper datasets (MIRACL, WebFAQ, Mr.TyDi) read from temporary caches in their real on-disk formats.

Fixture texts live in tests/fixtures/paper/; each test writes them the way the real tools store them:
ir_datasets' home (gzipped docs, TSV topics, TREC qrels, Mr.TyDi's tarball), and the Hugging Face
hub cache (blobs + snapshot symlinks + refs/main; parquet or gzipped JSON lines behind a README card).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

import pytest

from harness.data import load_collection
from harness.data import paper
from harness.data.paper import MTEB_MIRACL, MTEB_MIRACL_HN, MTEB_WEBFAQ, missing_data
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


def test_miracl_lite_from_mteb_parquet_snapshot(caches):
    _, hub = caches
    src = FIX / "mteb-miracl-hn"
    hub_put(hub, MTEB_MIRACL_HN[0], MTEB_MIRACL_HN[1], {
        "README.md": (src / "README.md").read_bytes(),
        "ko-corpus/dev-00000-of-00001.parquet": parquet(src / "ko-corpus.jsonl"),
        "ko-queries/dev-00000-of-00001.parquet": parquet(src / "ko-queries.jsonl"),
        "ko-qrels/dev-00000-of-00001.parquet": parquet(src / "ko-qrels.jsonl")})
    col = load_collection("miracl-ko-lite")
    assert col.corpus == {"10#0": "서울\n서울은 대한민국의 수도이다.", "20#0": "한강\n한강은 서울을 가로질러 흐른다.",
                          "30#0": "강은 바다로 흐른다."}
    assert col.queries == EXPECTED_MIRACL_KO["queries"]  # "7" has no judgement
    assert col.qrels == {"0": {"10#0": 1}, "1": {"20#0": 1, "30#0": 1}}
    assert MTEB_MIRACL_HN[1][:12] in col.source
    (line,) = missing_data("miracl-ar-lite")  # declared in the card, files never fetched
    assert "ar-corpus (ar-corpus/dev-*)" in line and "ar-queries" in line


def test_webfaq_jsonl_gz_layout_takes_the_test_split(caches):
    _, hub = caches
    src = FIX / "webfaq"
    hub_put(hub, paper.WEBFAQ_ORIGINAL, "c" * 40, {
        "README.md": (src / "README.md").read_bytes(),
        "kor/corpus.jsonl.gz": gz((src / "kor-corpus.jsonl").read_bytes()),
        "kor/queries.jsonl.gz": gz((src / "kor-queries.jsonl").read_bytes()),
        "kor/test.jsonl.gz": gz((src / "kor-qrels-test.jsonl").read_bytes()),
        "kor/train.jsonl.gz": gz((src / "kor-qrels-train.jsonl").read_bytes())})
    col = load_collection("webfaq-ko")
    assert col.qrels == {"q1": {"a1": 1}, "q2": {"a2": 1}}  # float scores -> int; train split ignored
    assert set(col.queries) == {"q1", "q2"} and len(col.corpus) == 3
    assert col.corpus["a1"] == "배송은 보통 3일 걸립니다."
    assert missing_data("webfaq-ru") and "rus-*" in missing_data("webfaq-ru")[0]


def mrtydi_tarball() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in mrtydi_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def mrtydi_members() -> dict[str, bytes]:
    src, top = FIX / "mrtydi-v1.0-korean", "mrtydi-v1.0-korean"
    return {f"{top}/collection/docs.jsonl.gz": gz((src / "docs.jsonl").read_bytes()),
            f"{top}/topic.test.tsv": (src / "topic.test.tsv").read_bytes(),
            f"{top}/qrels.test.txt": (src / "qrels.test.txt").read_bytes()}


def check_mrtydi(col) -> None:
    assert col.queries == {"1": "대한민국의 수도는?", "2": "가장 긴 강은?"}
    assert col.qrels == {"1": {"100#0": 1}, "2": {"200#1": 1}}
    assert col.corpus == {"100#0": "서울\n서울은 대한민국의 수도이다.", "200#0": "낙동강\n낙동강은 남한에서 가장 길다.",
                          "200#1": "한강보다 낙동강이 길다."}


def test_mrtydi_extracted_folder(caches):
    irds, _ = caches
    for name, data in mrtydi_members().items():
        path = irds / "mr-tydi" / "ko.data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    check_mrtydi(load_collection("mr-tydi-ko"))


def test_mrtydi_tarball_in_downloads(caches):
    irds, _ = caches
    md5 = paper._irds_download("mr-tydi", "ko")["expected_md5"]
    (irds / "downloads").mkdir(parents=True)
    (irds / "downloads" / md5).write_bytes(mrtydi_tarball())
    assert missing_data("mr-tydi-ko") == []
    check_mrtydi(load_collection("mr-tydi-ko"))


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
