"""The pocket query generator (harness.teacher): vocabulary trimming, the warm-started encoder-decoder,
its cache entry, the training data split, and the dev reranking scores (harness.teacher_eval).

Unit tests build a tiny XLM-R-like Unigram tokenizer and a tiny random BertModel "base" here; the
data tests read the real LibreOffice help collections (skipped when not unpacked)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

PIECES = ["▁the", "▁city", "▁capital", "▁of", "▁france", "▁is", "▁paris", "▁서울", "▁도시", "는", "▁수도", "s", "e",
          "a", "i", "t", "h", "c", "p", "r", "o", "f", "n", "l", "▁", "y", "▁a", "▁b", "b", "▁에", "서", "울", "도", "시"]
TEXTS = ["the city of paris", "서울 는 수도", "the capital is paris", "france"]


def base_tokenizer_json() -> dict:
    """An XLM-R-shaped Unigram tokenizer.json: <s> <pad> </s> <unk> first, <mask> last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [(s, 0.0) for s in ("<s>", "<pad>", "</s>", "<unk>")]
    vocab += [(p, -float(i)) for i, p in enumerate(PIECES, 1)] + [("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return json.loads(tok.to_str())


def test_trimmed_vocabulary_keeps_segmentation_and_round_trips(tmp_path: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from harness.teacher import fast_tokenizer, kept_piece_ids, trimmed_tokenizer_json

    base = base_tokenizer_json()
    original = Tokenizer.from_str(json.dumps(base))
    kept = kept_piece_ids(base, TEXTS[:2])
    assert len(kept) < len(base["model"]["vocab"]) and {0, 1, 2, 3, len(base["model"]["vocab"]) - 1} <= set(kept)
    tok = fast_tokenizer(trimmed_tokenizer_json(base, kept), 64)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS[:2]:
        old = original.encode(text, add_special_tokens=False).ids
        new = loaded(text)["input_ids"]
        assert [kept[i] for i in new[:-1]] == old and new[-1] == loaded.eos_token_id  # same pieces, then </s>
        assert loaded.decode(new, skip_special_tokens=True) == original.decode(old)
        assert new == tok(text)["input_ids"]
    assert loaded.pad_token_id == kept.index(1) and loaded.convert_tokens_to_ids("<s>") == kept.index(0)
    unseen = loaded("capital")["input_ids"]  # "▁capital" was not kept: other pieces or <unk>
    assert all(0 <= i < len(kept) for i in unseen)


# ----------------------------------------------------------------------------------------------
# A tiny random base model (the role me5-small plays) and teachers built from it
# ----------------------------------------------------------------------------------------------
def tiny_base(path: Path) -> Path:
    """A BertModel directory with an XLM-R-like tokenizer: what ``me5_small_dir()`` provides."""
    from transformers import BertConfig, BertModel

    base = base_tokenizer_json()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(base["model"]["vocab"]), hidden_size=16, num_hidden_layers=3,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64, type_vocab_size=1,
                        pad_token_id=1)
    BertModel(config).save_pretrained(path)
    (path / "tokenizer.json").write_text(json.dumps(base), encoding="utf-8")
    return path


def tiny_inputs(base: Path, **settings):
    from harness.teacher import TeacherInputs, TeacherSettings

    pairs = [("paris", "the capital of france is paris"), ("서울", "서울 는 수도"), ("city", "the city of paris"),
             ("france", "paris is the capital")]
    defaults = dict(encoder_layers=2, decoder_layers=1, steps=6, batch_size=2, lr=1e-3, warmup_steps=1,
                    doc_max_length=32, query_max_length=8)
    return TeacherInputs("ko", pairs, list(TEXTS), base, TeacherSettings(**{**defaults, **settings}).check())


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def teacher_dir(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.teacher import write_teacher

    out = tmp_path_factory.mktemp("teacher")
    write_teacher(out, tiny_inputs(base_dir), progress=False, echo=lambda line: None)
    return out


def test_model_is_warm_started_with_trimmed_vocabulary(base_dir: Path) -> None:
    from safetensors.torch import load_file

    from harness.teacher import build_model
    from harness.util import read_json

    inputs = tiny_inputs(base_dir)
    kept = [0, 1, 2, 3, 5, 9, 12, len(PIECES) + 4]
    state = load_file(str(base_dir / "model.safetensors"))
    model = build_model(read_json(base_dir / "config.json"), state, kept, inputs.settings,
                        {"<s>": 0, "</s>": 2, "<pad>": 1})
    word = state["embeddings.word_embeddings.weight"]
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight, word[kept])
    assert torch.equal(model.decoder.bert.embeddings.word_embeddings.weight, word[kept])
    assert len(model.encoder.encoder.layer) == 2 and len(model.decoder.bert.encoder.layer) == 1
    q = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.decoder.bert.encoder.layer[0].attention.self.query.weight, state[q])
    assert torch.equal(model.encoder.encoder.layer[1].output.dense.weight, state["encoder.layer.1.output.dense.weight"])
    assert model.decoder.bert.encoder.layer[0].crossattention is not None
    assert model.decoder.cls.predictions.decoder.weight.data_ptr() == model.decoder.bert.embeddings.word_embeddings.weight.data_ptr()
    out = model(input_ids=torch.tensor([[4, 5, 2]]), labels=torch.tensor([[6, 2]]))
    assert out.logits.shape == (1, 2, len(kept)) and torch.isfinite(out.loss)


def test_saved_teacher_loads_with_auto_classes_and_the_teacher_class(teacher_dir: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from harness.objectives.qg_distill import Teacher

    model = AutoModelForSeq2SeqLM.from_pretrained(teacher_dir)
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    assert type(model).__name__ == "EncoderDecoderModel" and model.config.decoder_start_token_id == tok.bos_token_id
    info = json.loads((teacher_dir / "teacher.json").read_text())
    assert info["vocab_size"] == len(tok) == model.config.decoder.vocab_size and len(info["loss_every_100"]) == 1
    teacher = Teacher(str(teacher_dir), max_length=32)
    scores = teacher.score(["paris", "paris"], ["the capital of france is paris", "서울 는 수도"])
    assert scores.shape == (2,) and bool(torch.all(scores < 0))
    generated = teacher.generate(["the city of paris"], "ko", max_new_tokens=4)
    assert len(generated) == 1 and generated == teacher.generate(["the city of paris"], "ko", max_new_tokens=4)


def test_fast_rerank_scores_equal_teacher_score(teacher_dir: Path) -> None:
    from harness.objectives.qg_distill import Teacher
    from harness.teacher_eval import encode_passages, score_query

    teacher = Teacher(str(teacher_dir), max_length=32)
    passages = ["the capital of france is paris", "서울 는 수도", "the city", "paris"]
    fast = score_query(teacher, "the city", encode_passages(teacher, passages, batch=3))
    assert torch.allclose(fast, teacher.score(["the city"] * 4, passages), atol=1e-5)


def test_training_is_deterministic_given_the_seed(base_dir: Path) -> None:
    from harness.teacher import batches

    settings = tiny_inputs(base_dir, steps=7).settings
    assert batches([3, 1, 2, 5, 4], settings) == batches([3, 1, 2, 5, 4], settings)
    assert len(batches([3, 1, 2, 5, 4], settings)) == 7
    other = tiny_inputs(base_dir, steps=7, seed=1).settings
    assert batches(list(range(40)), settings) != batches(list(range(40)), other)
    first, second = (_train_losses(base_dir) for _ in range(2))
    assert first == second


def _train_losses(base_dir: Path) -> list[float]:
    import tempfile

    from harness.teacher import write_teacher

    with tempfile.TemporaryDirectory() as out:
        write_teacher(Path(out), tiny_inputs(base_dir, steps=3), progress=False, echo=lambda line: None)
        return json.loads((Path(out) / "teacher.json").read_text())["loss_every_100"]


def test_cache_key_follows_data_settings_seed_and_base(base_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    inputs = tiny_inputs(base_dir)
    same = tiny_inputs(base_dir)
    assert inputs.directory() == same.directory()
    other = tmp_path / "other"
    other.mkdir()
    tiny_base(other)
    config = other / "config.json"
    config.write_text(config.read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    changed = [replace(inputs, pairs=inputs.pairs[:-1]), replace(inputs, vocab_text=TEXTS[:1]),
               replace(inputs, settings=replace(inputs.settings, seed=1)),
               replace(inputs, settings=replace(inputs.settings, steps=7)), replace(inputs, lang="ja"),
               replace(inputs, base_dir=other)]
    names = {c.directory().name for c in changed}
    assert inputs.directory().name not in names and len(names) == len(changed)


def test_teacher_is_cached_sealed_and_never_half_written(base_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from harness import teacher as teacher_module
    from harness.util import is_sealed

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    inputs = tiny_inputs(base_dir, steps=2)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real = teacher_module.train_model
    monkeypatch.setattr(teacher_module, "train_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        teacher_module.ensure_teacher(inputs, progress=False, echo=lambda line: None)
    teachers = tmp_path / "cache" / "teachers"
    assert not inputs.directory().exists() and not [p for p in teachers.iterdir()]  # no temporary left
    monkeypatch.setattr(teacher_module, "train_model", real)
    lines: list[str] = []
    path = teacher_module.ensure_teacher(inputs, progress=False, echo=lines.append)
    assert path == inputs.directory() and is_sealed(path) and (path / "config.json").exists()
    assert any("training the ko query generator" in line for line in lines)
    lines.clear()
    assert teacher_module.ensure_teacher(inputs, progress=False, echo=lines.append) == path and not lines


def test_bad_teacher_settings_and_languages_are_one_line_errors() -> None:
    from harness.teacher import TeacherSettings, check_lang, settings_from
    from harness.util import HarnessError

    assert settings_from({"steps": 10, "lr": 1}).lr == 1.0
    with pytest.raises(HarnessError, match="did you mean 'steps'"):
        settings_from({"stepz": 10})
    with pytest.raises(HarnessError, match="lr must be a number > 0"):
        TeacherSettings(lr=0).check()
    with pytest.raises(HarnessError, match="layers must be 1..12"):
        TeacherSettings(encoder_layers=13).check()
    with pytest.raises(HarnessError, match="languages: en, ko"):
        check_lang("ar")


# ----------------------------------------------------------------------------------------------
# qg-distill's default and the run ids of other objectives
# ----------------------------------------------------------------------------------------------
def test_pocket_teacher_is_the_default_and_other_runs_keep_their_config() -> None:
    from harness import teacher
    from harness.config import load_config, run_config
    from harness.objectives import qg_distill

    assert qg_distill.POCKET_TEACHER == teacher.POCKET_TEACHER
    for objective, want in (("splade", qg_distill.LEGACY_TEACHER), ("clear", qg_distill.LEGACY_TEACHER),
                            ("qg-distill", "pocket:query-generator")):
        config = load_config("pocket", [f"train.objective={objective}"])
        assert config["train.teacher"] == "pocket:query-generator"
        run = run_config(config, method="random", method_params={}, lang="ko", seed=0, setting="fine-tuned")
        assert run["train.teacher"] == want  # splade / clear runs record the earlier default: ids unchanged
    mine = run_config(load_config("pocket", ["train.teacher=/x"]), method="random", method_params={}, lang="ko",
                      seed=0, setting="fine-tuned")
    assert mine["train.teacher"] == "/x"


def test_pocket_teacher_of_an_unknown_language_fails_fast() -> None:
    from harness.objectives.qg_distill import resolve_teacher
    from harness.util import HarnessError

    with pytest.raises(HarnessError, match="no LibreOffice help training pairs for language 'ar'"):
        resolve_teacher("pocket:query-generator", "ar")


def test_cli_teacher_bad_input_exits_2() -> None:
    from click.testing import CliRunner

    from harness.cli import main

    for args, message in ((["teacher", "train", "--lang", "xx"], "language 'xx'"),
                          (["teacher", "train", "--lang", "ko", "--set", "stepz=3"], "did you mean 'steps'"),
                          (["teacher", "eval", "--lang", "ko", "--set", "lr"], "--set expects name=value")):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and message in result.output, result.output


# ----------------------------------------------------------------------------------------------
# The real training data: the training split only
# ----------------------------------------------------------------------------------------------
def _need_help(*langs: str) -> None:
    from harness.data import debian, libreoffice

    if any(debian.installed_version(libreoffice.PACKAGES[lang]) is None for lang in langs):
        pytest.skip("LibreOffice help packages not unpacked in the cache (run the pocket setup)")


def test_no_dev_page_in_the_teachers_training_data() -> None:
    _need_help("en", "ko")
    from harness.data import load_collection
    from harness.data.libreoffice import is_dev_page
    from harness.teacher import training_pairs, vocabulary_text

    def norm(text: str) -> str:
        return " ".join(text.split())

    pairs = training_pairs("ko")
    dev = load_collection("libreoffice-help-ko-dev")
    dev_passages = {norm(p) for p in dev.corpus.values()}
    assert len(pairs) > 1000 and not [p for _, p in pairs if norm(p) in dev_passages]
    every = {**load_collection("libreoffice-help-ko").corpus, **load_collection("libreoffice-help-en").corpus}
    dev_texts = {every[page] for page in every if is_dev_page(page)}
    assert dev_texts and not dev_texts & set(vocabulary_text("ko"))


@pytest.mark.slow
def test_teacher_cli_trains_and_evaluates_a_short_real_teacher(tmp_path: Path, monkeypatch) -> None:
    """Two steps on the real ko pairs from the real me5-small, then the dev reranking and its record
    (the two-step teacher is removed from the cache afterwards)."""
    _need_help("en", "ko")
    from click.testing import CliRunner

    from harness.cli import main
    from harness.util import discard

    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(name, "")  # -q sets them; restored after the test

    runner = CliRunner()
    overrides = ["--set", "steps=2", "--set", "encoder_layers=1", "--set", "decoder_layers=1"]
    result = runner.invoke(main, ["-q", "teacher", "train", "--lang", "ko", *overrides])
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert (path / "config.json").exists() and path.name.startswith("query-generator-ko-")
    monkeypatch.setattr("harness.teacher_eval.cache_dir", lambda *parts: tmp_path)  # no record beside it
    out = tmp_path / "eval.json"
    result = runner.invoke(main, ["-q", "teacher", "eval", "--lang", "ko", *overrides, "--samples", "2",
                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["queries"] > 100 and set(record["metrics"]) == {"bm25", "teacher_rerank"}
    assert record["metrics"]["bm25"]["recall@100"] == record["metrics"]["teacher_rerank"]["recall@100"]
    assert len(record["samples"]) == 2 and "mrr@10" not in result.output  # -q: nothing but errors
    discard(path)


def test_preflight_rejects_the_pocket_teacher_without_training_pairs() -> None:
    from harness.pipeline import check_pocket_teacher
    from harness.util import HarnessError

    run = {"train.objective": "qg-distill", "train.teacher": "pocket:query-generator", "lang": "ar"}
    with pytest.raises(HarnessError, match="train.teacher pocket:query-generator: no LibreOffice help"):
        check_pocket_teacher([run])
    check_pocket_teacher([{**run, "lang": "ko"}, {**run, "train.teacher": "/some/dir"}, {**run, "train.objective": "splade"}])


def test_rerank_orders_each_querys_candidates_by_teacher_score(teacher_dir: Path) -> None:
    from harness.data.base import Collection
    from harness.evaluate import evaluate
    from harness.objectives.qg_distill import Teacher
    from harness.teacher_eval import rerank

    teacher = Teacher(str(teacher_dir), max_length=32)
    corpus = {"a": "the capital of france is paris", "b": "서울 는 수도", "c": "the city", "d": "paris"}
    collection = Collection(name="toy", lang="ko", corpus=corpus, queries={"q": "the city", "r": "서울"},
                            qrels={"q": {"c": 1}, "r": {"b": 1}}, source="", licence="", train_pairs=None, kind="test")
    bm25 = {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}, "r": {"d": 1.0, "b": 0.5}}
    out = rerank(teacher, collection, bm25, progress=False)
    for qid, docs in out.items():
        scores = list(docs.values())
        assert set(docs) == set(bm25[qid]) and scores == sorted(scores, reverse=True)  # the order is the ranking
    want = 1 / (list(out["q"]).index("c") + 1)
    assert evaluate(collection.qrels, out, metrics=["mrr@10"]).per_query["mrr@10"]["q"] == pytest.approx(want)


def test_cli_teacher_settings_read_yaml_values() -> None:
    from harness.cli import teacher_settings

    settings = teacher_settings(("lr=5e-4", "steps=30", "seed=2"))
    assert (settings.lr, settings.steps, settings.seed) == (5e-4, 30, 2)
