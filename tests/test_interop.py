"""Interoperability: the saved model loads in plain sentence-transformers, its card, `harness export`,
TREC qrels beside every run, `harness data export`, and the CLI habits (--json, -q, python -m harness).

The pocket tests share one real run (overlap, Korean, zero-shot, segmented WordPiece) on a 30-document
slice of gnome-help-ko written as a BEIR folder, so the whole module costs one model load and a few
seconds of encoding.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from harness.evaluate import read_trec_qrels, read_trec_run, write_trec_qrels


def harness(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True)
    if ok:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


# --------------------------------------------------------------------------------------------
# Unit: save(files=...) on a tiny random BERT, qrels files, the card of a fine-tuned hub model
# --------------------------------------------------------------------------------------------
def tiny_encoder():
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from harness.checks import make_wordpiece
    from harness.encoder import SpladeEncoder

    tokenizer = make_wordpiece(["the", "city", "capital", "paris", "##s", "run", "."])
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=32))
    with torch.no_grad():
        model.cls.predictions.bias.normal_(0.0, 1.0)
    return SpladeEncoder(model, tokenizer, device="cpu", query_max_length=16, doc_max_length=16)


def test_save_writes_extra_files_inside_the_atomic_dir(tmp_path):
    from sentence_transformers import SparseEncoder

    encoder = tiny_encoder()
    out = encoder.save(tmp_path / "model", files={"README.md": "# card\n", "notes/run.txt": "id\n"})
    assert (out / "README.md").read_text() == "# card\n" and (out / "notes" / "run.txt").read_text() == "id\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    texts = ["the city", "paris runs ."]
    st = SparseEncoder(str(out), device="cpu")
    got = st.encode_query(texts, convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
    np.testing.assert_allclose(got, encoder.encode(texts, kind="query").toarray(), atol=1e-5)
    for bad in ("../escape.txt", "/tmp/abs.txt"):
        with pytest.raises(ValueError, match="relative paths inside"):
            encoder.save(tmp_path / "other", files={bad: "x"})
    assert not (tmp_path / "other").exists()


def test_trec_qrels_round_trip_and_reject_whitespace(tmp_path):
    qrels = {"q1": {"d2": 1, "d1": 0}, "q2": {"d3": 2}}
    path = write_trec_qrels(tmp_path / "qrels.trec", qrels)
    assert path.read_text() == "q1 0 d2 1\nq1 0 d1 0\nq2 0 d3 2\n"
    assert read_trec_qrels(path) == qrels
    with pytest.raises(ValueError, match="no whitespace"):
        write_trec_qrels(tmp_path / "bad.trec", {"q 1": {"d1": 1}})


def test_card_of_a_fine_tuned_hub_model_names_base_model_objective_and_citation():
    from harness.config import load_config, run_config
    from harness.method_specs import get_method
    from harness.model_card import is_hub_id, model_card

    config = load_config("pocket", ["source_model=naver/splade-v3"])
    params = get_method("sembridge").resolve_params(config["method_params"].get("sembridge", {}))
    run = run_config(config, method="sembridge", method_params=params, lang="ja", seed=1, setting="fine-tuned")
    card = model_card(run, {"ndcg@10": 0.41234}, run_id="sembridge-ja-fine-tuned-s1-abc", plan={"copied": 3, "mixed": 5},
                      target_tokenizer="/cache/wordpiece-ja")
    meta, body = front_matter(card)
    assert meta["base_model"] == "naver/splade-v3" and meta["language"] == ["ja"]
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "feature-extraction"
    assert {"sentence-transformers", "sparse-encoder", "splade"} <= set(meta["tags"])
    assert "`sembridge-ja-fine-tuned-s1-abc`" in body and "| ndcg@10 | 0.4123 |" in body
    assert f"objective: `{run['train.objective']}` on `{run['train_dataset']}`" in body
    assert f"`train.lr={run['train.lr']}`" in body
    assert get_method("sembridge").citation in body
    assert "trust_remote_code" not in body  # a plain tokenizer
    assert not is_hub_id("pocket:splade-tiny") and not is_hub_id("/abs/dir")


def test_tuning_trials_keep_no_model_and_a_sweep_does(monkeypatch, tmp_path, write_profile):
    """The save flag is an execution option: run_cells (harness tune's path) defaults to off, sweep to on."""
    from harness import pipeline
    from harness.sweep import plan_cells, run_cells, sweep

    seen = []

    def execute(run, *, runs_dir, force=False, echo=print, save_model=True):
        seen.append(save_model)
        raise RuntimeError("stop here")  # recorded as a failed cell; nothing else needed

    monkeypatch.setattr(pipeline, "execute", execute)
    profile = write_profile("profile: one\nmethods: [random]\nlanguages: [ko]\nseeds: [0]\nsettings: [zero-shot]\n",
                            "one")
    monkeypatch.setattr("harness.sweep._preflight", lambda runs: None)
    run_cells(plan_cells(profile), runs_dir=str(tmp_path / "a"), echo=lambda _: None)
    sweep(profile, runs_dir=str(tmp_path / "b"), echo=lambda _: None)
    sweep(profile, runs_dir=str(tmp_path / "c"), echo=lambda _: None, save_model=False)
    assert seen == [False, True, False]


# --------------------------------------------------------------------------------------------
# Real pocket assets: one shared run
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_beir(tmp_path_factory):
    """30 short documents of gnome-help-ko (under the 2,000-character cut) with their queries, as a BEIR folder."""
    from harness.data import load_collection
    from harness.data.base import Collection
    from harness.data.export import export_collection

    full = load_collection("gnome-help-ko")
    qids = [q for q in full.queries if all(40 < len(full.corpus[d]) < 1500 for d in full.qrels.get(q, {}))][:30]
    docs = {d for q in qids for d in full.qrels[q]}
    part = Collection(name="gnome-ko-30", lang="ko", corpus={d: full.corpus[d] for d in full.corpus if d in docs},
                      queries={q: full.queries[q] for q in qids}, qrels={q: full.qrels[q] for q in qids},
                      source=full.source, licence=full.licence)
    root = tmp_path_factory.mktemp("beir") / "gnome-ko-30"
    export_collection(part, root, "beir")
    return root, part


@pytest.fixture(scope="module")
def pocket_run(small_beir, tmp_path_factory):
    """(record, run folder, runs dir) of `python -m harness run ... --json` on the small collection."""
    runs = tmp_path_factory.mktemp("runs")
    out = harness("run", "--method", "overlap", "--lang", "ko", "--setting", "zero-shot", "--runs-dir", str(runs),
                  "--set", f"dataset=beir:{small_beir[0]}", "--set", "tokenizer.recipe=wordpiece-seg", "--json")
    (record,) = json.loads(out.stdout)  # stdout is JSON only
    assert "[evaluate] ..." in out.stderr and "Loading weights" not in out.stderr
    return record, runs / record["run_id"], runs


@pytest.mark.slow
def test_saved_model_scores_like_the_run_in_plain_sentence_transformers(pocket_run, small_beir, tmp_path):
    """A clean process loads model/ with sentence-transformers alone; its dot products are run.trec's scores."""
    record, folder, _ = pocket_run
    _, collection = small_beir
    assert record["files"]["model"] == "model" and (folder / "model" / "modules.json").is_file()
    config = json.loads((folder / "model" / "tokenizer_config.json").read_text())
    remote = "auto_map" in config  # the segmented tokenizer's class travels as code in the folder
    assert remote
    qids, dids = list(collection.queries), list(collection.corpus)
    (tmp_path / "texts.json").write_text(json.dumps({"q": [collection.queries[q] for q in qids],
                                                     "d": [collection.corpus[d] for d in dids]}))
    script = f"""
import json, sys, numpy as np
from sentence_transformers import SparseEncoder
texts = json.load(open({str(tmp_path / 'texts.json')!r}))
model = SparseEncoder({str(folder / 'model')!r}, device="cpu", trust_remote_code={remote})
q = model.encode_query(texts["q"], convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
d = model.encode_document(texts["d"], convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
np.save({str(tmp_path / 'q.npy')!r}, q); np.save({str(tmp_path / 'd.npy')!r}, d)
assert "harness" not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    q, d = np.load(tmp_path / "q.npy"), np.load(tmp_path / "d.npy")

    from harness.encoder import SpladeEncoder

    ours = SpladeEncoder.from_pretrained(folder / "model", device="cpu")
    np.testing.assert_allclose(q, ours.encode([collection.queries[i] for i in qids], kind="query").toarray(), atol=1e-4)
    np.testing.assert_allclose(d, ours.encode([collection.corpus[i] for i in dids], kind="document").toarray(),
                               atol=1e-4)
    run = read_trec_run(folder / "run.trec")
    scores = q @ d.T
    pairs = [(qids.index(qid), dids.index(did), s) for qid, docs in run.items() for did, s in docs.items()]
    assert len(pairs) > 100
    np.testing.assert_allclose([scores[i, j] for i, j, _ in pairs], [s for *_, s in pairs], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_card_has_front_matter_run_id_and_remote_code_note(pocket_run):
    record, folder, _ = pocket_run
    meta, body = front_matter((folder / "model" / "README.md").read_text())
    assert meta["language"] == ["ko"] and meta["library_name"] == "sentence-transformers"
    assert "base_model" not in meta  # pocket:splade-tiny is not a hub id, and the body says so
    assert "`pocket:splade-tiny` (a pocket asset" in body and "not a Hugging Face hub id" in body
    assert f"`{record['run_id']}`" in body and f"{record['metrics']['ndcg@10']:.4f}" in body
    assert 'SparseEncoder("path/to/this/model", trust_remote_code=True)' in body and "kiwipiepy" in body
    assert record["target_tokenizer"] in body


@pytest.mark.slow
def test_record_has_qrels_beside_run_and_mrr_equals_recip_rank_at_10(pocket_run, small_beir):
    record, folder, _ = pocket_run
    assert record["files"]["qrels"] == "qrels.trec"
    qrels = read_trec_qrels(folder / "qrels.trec")
    assert qrels == small_beir[1].qrels
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run = read_trec_run(folder / "run.trec")
    cut = {q: dict(list(docs.items())[:10]) for q, docs in run.items()}
    recip = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    whole = np.mean([v["recip_rank"] for v in recip.evaluate(run).values()])
    at_10 = np.mean([v["recip_rank"] for v in recip.evaluate(cut).values()])
    assert at_10 == pytest.approx(record["metrics"]["mrr@10"], abs=1e-9)
    assert whole >= at_10


@pytest.mark.slow
def test_no_save_model_keeps_the_run_id_and_no_model(pocket_run, small_beir, tmp_path):
    record, _, _ = pocket_run
    out = harness("run", "--method", "overlap", "--lang", "ko", "--setting", "zero-shot", "--runs-dir", str(tmp_path),
                  "--set", f"dataset=beir:{small_beir[0]}", "--set", "tokenizer.recipe=wordpiece-seg",
                  "--no-save-model", "--json")
    (bare,) = json.loads(out.stdout)
    assert bare["run_id"] == record["run_id"] and bare["metrics"] == record["metrics"]
    assert "model" not in bare["files"] and not (tmp_path / bare["run_id"] / "model").exists()
    gone = harness("export", bare["run_id"], str(tmp_path / "out"), "--runs-dir", str(tmp_path), ok=False)
    assert gone.returncode == 2 and "has no saved model: re-run it with --force and without --no-save-model" in gone.stderr


@pytest.mark.slow
def test_export_copies_the_model_and_refuses_to_overwrite(pocket_run, tmp_path):
    record, folder, runs = pocket_run
    target = tmp_path / "exported"
    harness("export", record["run_id"], str(target), "--runs-dir", str(runs))
    files = sorted(p.relative_to(folder / "model") for p in (folder / "model").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert (target / "model.safetensors").read_bytes() == (folder / "model" / "model.safetensors").read_bytes()
    again = harness("export", str(folder), str(target), ok=False)  # a run folder path works too
    assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr
    harness("export", str(folder), str(target), "--force")
    typo = harness("export", record["run_id"][:-1] + "x", str(tmp_path / "t"), "--runs-dir", str(runs), ok=False)
    assert typo.returncode == 2 and f"did you mean '{record['run_id']}'?" in typo.stderr
    assert "Traceback" not in typo.stderr + again.stderr


@pytest.mark.slow
def test_reference_json_quiet_and_leaderboard_json(pocket_run, small_beir, tmp_path):
    _, _, runs = pocket_run
    args = ("reference", "--system", "bm25-lite", "--dataset", f"beir:{small_beir[0]}", "--runs-dir", str(runs))
    record = json.loads(harness(*args, "--json").stdout)
    assert record["method"] == "bm25" and record["files"]["qrels"] == "qrels.trec"
    quiet = harness("-q", *args, "--force")
    assert quiet.stdout.strip().splitlines() == [f"{record['run_id']}: " + ", ".join(
        f"{k} {v:.4f}" for k, v in record["metrics"].items())]
    assert "[evaluate]" not in quiet.stderr
    board = json.loads(harness("leaderboard", "--runs", str(runs), "--out", str(tmp_path), "--name", "t",
                               "--baseline", "overlap", "--json").stdout)
    assert str(tmp_path / "t.csv") in board["files"]
    cells = {(c["system"], c["metric"]): c for c in board["cells"]}
    assert cells[("overlap", "ndcg@10")]["n_seeds"] == 1 and isinstance(cells[("overlap", "ndcg@10")]["mean"], float)


# --------------------------------------------------------------------------------------------
# harness data export
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_data_export_beir_round_trip(tmp_path):
    from harness.data import load_collection

    harness("data", "export", "gnome-help-ko", "--format", "beir", str(tmp_path / "beir"))
    original, back = load_collection("gnome-help-ko"), load_collection(f"beir:{tmp_path / 'beir'}")
    judged = {q: t for q, t in original.queries.items() if original.qrels.get(q)}  # BEIR keeps judged queries
    assert back.corpus == original.corpus and back.queries == judged and back.qrels == original.qrels
    assert back.lang == "ko"
    busy = harness("data", "export", "gnome-help-ko", str(tmp_path / "beir"), ok=False)
    assert busy.returncode == 2 and "not empty" in busy.stderr


@pytest.mark.slow
def test_data_export_trec_and_mteb(small_beir, tmp_path):
    _, collection = small_beir
    source = f"beir:{small_beir[0]}"
    harness("data", "export", source, "--format", "trec", str(tmp_path / "trec"))
    assert read_trec_qrels(tmp_path / "trec" / "qrels.trec") == collection.qrels
    topics = dict(line.split("\t") for line in (tmp_path / "trec" / "topics.tsv").read_text().splitlines())
    assert topics == {q: " ".join(t.split()) for q, t in collection.queries.items()}
    corpus = [json.loads(line) for line in (tmp_path / "trec" / "corpus.jsonl").read_text().splitlines()]
    assert {row["id"]: row["contents"] for row in corpus} == collection.corpus

    harness("data", "export", source, "--format", "mteb", str(tmp_path / "mteb"))
    pytest.importorskip("mteb")
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalDatasetLoader

    data = RetrievalDatasetLoader(hf_repo=str(tmp_path / "mteb"), revision=None, split="test").load()
    assert dict(zip(data["corpus"]["id"], data["corpus"]["text"])) == collection.corpus
    assert dict(zip(data["queries"]["id"], data["queries"]["text"])) == collection.queries
    assert data["relevant_docs"] == collection.qrels


def test_python_dash_m_harness_and_unknown_dataset_export(tmp_path):
    assert "export" in harness("--help").stdout and "-q, --quiet" in harness("--help").stdout
    out = harness("data", "export", "gnome-help-kx", str(tmp_path / "x"), ok=False)
    assert out.returncode == 2 and "did you mean 'gnome-help-k" in out.stderr
