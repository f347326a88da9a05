"""tokenizer.recipe (wordpiece-bert, unigram, wordpiece-seg) on tiny corpora; BM25's analyzer per recipe;
the language of a BEIR folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from harness.util import HarnessError
from tests.conftest import write_beir

ZH = ["打开文档，然后选择格式菜单中的段落命令。", "在文档中插入表格，然后保存文档。", "选择格式菜单，打开段落对话框。",
      "LibreOffice Writer 可以打开 Word 文档。", "Open the file 7 times."] * 8
JA = ["ドキュメントを開いて、書式メニューを選択します。", "表を文書に挿入してから、文書を保存します。",
      "書式メニューから段落を選択します。", "Open the file 7 times."] * 8
KO = ["문서를 열고 서식 메뉴를 선택합니다.", "표를 문서에 삽입한 다음 문서를 저장합니다.", "서식 메뉴에서 단락을 선택했습니다.",
      "Open the file 7 times."] * 8
RU = ["Откройте документ и выберите меню формат.", "Вставьте таблицу в документ.", "Open the file 7 times."] * 8
CORPORA = {"zh": ZH, "ja": JA, "ko": KO, "ru": RU}
RECIPES = ["wordpiece-bert", "unigram", "wordpiece-seg"]
VOCAB = 300


@pytest.fixture(autouse=True)
def tiny_text(monkeypatch, tmp_path):
    """A private cache, and the tiny corpora as the languages' target text."""
    import harness.data

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(harness.data, "target_text", lambda lang, training_text="train-pages": CORPORA[lang])


def trained(recipe: str, lang: str = "zh"):
    from harness.target_tokenizer import cached_tokenizer

    return cached_tokenizer(lang, CORPORA[lang], recipe, VOCAB)


def cjk(token: str) -> str:
    return token.replace("▁", "").removeprefix("##")


def has_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_encodes_with_bert_specials_as_the_runner_calls_it(recipe):
    tok, path = trained(recipe)
    saved = "segmented_tokenizer.json" if recipe == "wordpiece-seg" else "tokenizer.json"
    assert (path / saved).exists() and len(tok) <= VOCAB
    batch = tok(["打开文档", "选择格式菜单中的段落命令"], padding=True, truncation=True, max_length=8, return_tensors="pt")
    ids = batch["input_ids"]
    assert ids.shape[0] == 2 and ids.shape[1] <= 8
    assert ids[0, 0].item() == tok.cls_token_id and tok.sep_token_id in ids[0].tolist()
    alone = tok("打开文档", truncation=True, max_length=8)["input_ids"]
    assert batch["attention_mask"][0].sum().item() == len(alone) and ids[0, :len(alone)].tolist() == alone
    assert ids[0, len(alone):].tolist() == [tok.pad_token_id] * (ids.shape[1] - len(alone))  # padded after
    assert [tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token] == \
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pair = tok("打开文档", "保存文档")["input_ids"]
    assert pair[0] == tok.cls_token_id and pair.count(tok.sep_token_id) == 2
    pieces = [tok.decode([i]).strip() for i in tok("打开文档")["input_ids"][1:-1]]  # the bridge's decode([i])
    assert "".join(p.removeprefix("##") for p in pieces) == "打开文档"


def test_only_wordpiece_bert_isolates_cjk_characters():
    bert, _ = trained("wordpiece-bert")
    unigram, _ = trained("unigram")
    seg, _ = trained("wordpiece-seg")
    assert all(len(cjk(t)) == 1 for t in bert.get_vocab() if has_cjk(t))
    assert any(len(cjk(t)) > 1 for t in unigram.get_vocab() if has_cjk(t))
    assert {"文档", "格式", "菜单"} <= set(seg.get_vocab())
    assert bert.tokenize("打开文档") == ["打", "开", "文", "档"]
    assert seg.tokenize("插入表格") == ["插入", "表格"]  # jieba's words, each a token
    assert unigram.backend_tokenizer.model.__class__.__name__ == "Unigram"


def test_segmented_tokenizer_segments_at_every_entry_point():
    import torch

    from harness.segmented_tokenizer import SegmentedTokenizerFast
    from harness.train import TokenCache

    tok, _ = trained("wordpiece-seg")
    assert isinstance(tok, SegmentedTokenizerFast) and tok.segmenter == "jieba"
    words = tok.convert_tokens_to_ids(["插入", "表格"])
    assert tok.encode("插入表格", add_special_tokens=False) == words
    assert tok("插入表格")["input_ids"][1:-1] == words
    assert tok(["打开文档", "插入表格"])["input_ids"][1][1:-1] == words
    assert tok("插入表格", "插入表格")["input_ids"].count(words[0]) == 2
    # the backend alone does not segment; segment() is the pre-pass
    assert tok.segment("插入表格") == "插入 表格"
    assert tok.backend_tokenizer.encode(tok.segment("插入表格"), add_special_tokens=False).ids == words
    cache = TokenCache(tok, {"input_ids", "attention_mask"})  # the training loop's tokenization
    out = cache(["插入表格", "选择格式菜单"], max_length=16)
    assert out["input_ids"][0, 1:3].tolist() == words and isinstance(out["input_ids"], torch.Tensor)


def test_segmenters_for_japanese_and_korean():
    from harness.segmented_tokenizer import load_segmenter

    assert load_segmenter("fugashi")("書式メニューを選択します") == ["書式", "メニュー", "を", "選択", "し", "ます"]
    # kiwipiepy's morphemes by surface: 했 (하 + 었) stays one span, no character is lost
    words = load_segmenter("kiwipiepy")("메뉴를 선택했습니다.")
    assert words[:2] == ["메뉴", "를"] and "".join(words) == "메뉴를선택했습니다."
    ja, _ = trained("wordpiece-seg", "ja")
    ko, _ = trained("wordpiece-seg", "ko")
    assert ja.segmenter == "fugashi" and "メニュー" in ja.tokenize("書式メニュー")
    assert ko.segmenter == "kiwipiepy" and ko.tokenize("문서를")[:1] == ["문서"]


def test_languages_without_a_segmenter_fall_back_to_whitespace_and_punctuation():
    from harness.target_tokenizer import target_tokenizer

    tok, ref = target_tokenizer("auto", "ru", vocab_size=VOCAB, recipe="wordpiece-seg")
    assert tok.segmenter is None and "no segmenter for 'ru'" in ref
    assert tok.tokenize("документ.") == ["документ", "."]


def test_saved_segmented_tokenizer_loads_back_registered_or_as_remote_code(tmp_path):
    from transformers import AutoTokenizer

    from harness.segmented_tokenizer import SegmentedTokenizerFast

    tok, path = trained("wordpiece-seg")
    config = json.loads((path / "tokenizer_config.json").read_text())
    assert config["segmenter"] == "jieba" and config["tokenizer_class"].startswith("SegmentedTokenizer")
    assert config["auto_map"]["AutoTokenizer"][1] == "segmented_tokenizer.SegmentedTokenizerFast"
    assert (path / "segmented_tokenizer.py").exists()
    again = AutoTokenizer.from_pretrained(path)  # this process imported the module: the class is registered
    assert isinstance(again, SegmentedTokenizerFast) and again.tokenize("插入表格") == ["插入", "表格"]
    # elsewhere (sentence-transformers, mteb): trust_remote_code=True runs the copied file, no harness import;
    # without it, a model directory fails to load rather than giving a tokenizer that does not segment
    model_dir = tmp_path / "model"
    shutil.copytree(path, model_dir)
    (model_dir / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": len(tok)}))
    code = ("import sys; from transformers import AutoTokenizer; "
            "t = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=sys.argv[2] == 'trust'); "
            "print(type(t).__name__, t.tokenize('插入表格'), any(m.startswith('harness') for m in sys.modules))")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}

    def load(*args):
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300, check=False)

    out = load(str(model_dir), "trust")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "SegmentedTokenizerFast ['插入', '表格'] False"
    assert load(str(model_dir), "plain").returncode != 0


def test_transplanted_model_encodes_and_saves_with_a_segmented_tokenizer(tmp_path):
    import numpy as np
    import torch
    import transformers as tf

    from harness.api import build_plan
    from harness.checks import make_wordpiece
    from harness.encoder import SpladeEncoder
    from harness.segmented_tokenizer import SegmentedTokenizerFast
    from harness.transplant import transplant
    from harness.vocab import find_overlap

    source = make_wordpiece(["文", "档", "the", "file", "7", "。"])
    target, _ = trained("wordpiece-seg")
    torch.manual_seed(0)
    model = tf.BertForMaskedLM(tf.BertConfig(vocab_size=len(source), hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32,
                                             max_position_embeddings=64))
    pairs = find_overlap(source, target).pairs
    copied = {t: pairs.get(t, source.unk_token_id) for t in range(len(target))}
    transplant(model, source, target, build_plan(len(target), len(source), copied=copied))
    encoder = SpladeEncoder(model, target, device="cpu", query_max_length=16, doc_max_length=16)
    vectors = encoder.encode(["打开文档", "Open the file"], kind="document")
    assert vectors.shape == (2, len(target))
    saved = encoder.save(tmp_path / "model")
    assert (saved / "segmented_tokenizer.py").exists()
    reloaded = SpladeEncoder.from_pretrained(saved, device="cpu")
    assert isinstance(reloaded.tokenizer, SegmentedTokenizerFast)
    again = reloaded.encode(["打开文档", "Open the file"], kind="document")
    np.testing.assert_allclose(again.toarray(), vectors.toarray(), atol=1e-6)
    # sentence-transformers loads the directory with trust_remote_code=True, segmenting, without harness
    code = ("import sys; from sentence_transformers import SparseEncoder; "
            "m = SparseEncoder(sys.argv[1], trust_remote_code=True, device='cpu'); "
            "print(m[0].tokenizer.tokenize('插入表格'), tuple(m.encode(['插入表格']).shape), "
            "any(k.startswith('harness') for k in sys.modules))")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"['插入', '表格'] (1, {len(target)}) False"


@pytest.mark.parametrize("recipe", RECIPES)
def test_overlap_rules_keep_working_for_each_recipe(recipe):
    from harness.checks import make_wordpiece
    from harness.vocab import VocabForms, find_overlap

    source = make_wordpiece(["文", "档", "文档", "the", "file", "##s", "7", "。", "，"])
    target, _ = trained(recipe)
    style = VocabForms.of(target).style
    assert style == ("sentencepiece" if recipe == "unigram" else "wordpiece")
    overlap = find_overlap(source, target)
    sv, tv = source.get_vocab(), target.get_vocab()
    for role in ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token"):
        assert overlap.pairs[tv[getattr(target, role)]] == sv[getattr(source, role)]
    bare = {t.removeprefix("##") for t in sv if not t.startswith("[")}
    for token, t in tv.items():  # every target token whose text is a source token's text is copied
        text = token.replace("▁", "").removeprefix("##").lower()
        if text in bare and not token.startswith("["):
            assert t in overlap.pairs, token
    assert any(cjk(target.convert_ids_to_tokens(t)) in ("文", "档", "文档") for t in overlap.pairs)


def test_cache_key_holds_recipe_and_segmenter_version(monkeypatch):
    import harness.segmented_tokenizer as seg
    import harness.target_tokenizer as tt

    paths = {recipe: trained(recipe)[1] for recipe in RECIPES}
    assert len(set(paths.values())) == 3
    assert paths["wordpiece-bert"].name.startswith("wordpiece-zh-")  # the cache of the default is unchanged
    assert paths["unigram"].name.startswith("unigram-zh-") and paths["wordpiece-seg"].name.startswith("wordpiece-seg-zh-")
    meta = json.loads((paths["wordpiece-seg"] / tt.RECIPE_FILE).read_text())
    assert meta["segmenter"] == "jieba" and "jieba" in meta["segmenter_versions"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(tt, "train_tokenizer", no_training)
    monkeypatch.setattr(tt, "train_wordpiece", no_training)
    assert {recipe: trained(recipe)[1] for recipe in RECIPES} == paths  # found in the cache
    monkeypatch.setattr(seg, "segmenter_versions", lambda name: {"jieba": "9.9"})
    with pytest.raises(AssertionError, match="trained again"):  # another segmenter version: another key
        trained("wordpiece-seg")


def test_unigram_ids_do_not_depend_on_the_run():
    from harness.target_tokenizer import train_unigram

    assert len({train_unigram(ZH, VOCAB).backend_tokenizer.to_str() for _ in range(4)}) == 1


def test_unknown_recipe_and_missing_segmenter_are_one_clear_error(monkeypatch):
    from importlib import metadata

    from click.testing import CliRunner

    import harness.segmented_tokenizer as seg
    from harness.cli import main
    from harness.target_tokenizer import check_recipe, target_tokenizer

    with pytest.raises(HarnessError, match=r"unknown tokenizer.recipe 'unigam' \(did you mean 'unigram'\?\)"):
        check_recipe("unigam")
    real = metadata.version

    def version(name):
        if name == "jieba":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(seg.metadata, "version", version)
    with pytest.raises(HarnessError, match=r"tokenizer.recipe 'wordpiece-seg' for 'zh'.*pip install jieba"):
        target_tokenizer("auto", "zh", vocab_size=VOCAB, recipe="wordpiece-seg")
    result = CliRunner().invoke(main, ["tokenizer", "train", "--lang", "zh", "--set", "tokenizer.recipe=wordpiece-seg"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "pip install jieba" in result.output
    result = CliRunner().invoke(main, ["tokenizer", "train", "--lang", "zh", "--set", "tokenizer.recipe=wordpeice-seg"])
    assert result.exit_code == 2 and "did you mean 'wordpiece-seg'" in result.output


@pytest.mark.parametrize("recipe", RECIPES)
def test_cli_tokenizer_train_each_recipe(recipe):
    from click.testing import CliRunner

    from harness.cli import main

    args = ["tokenizer", "train", "--lang", "zh", "--set", f"tokenizer.recipe={recipe}", "--vocab-size", str(VOCAB)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"recipe {recipe}" in result.output and " tokens" in result.output
    assert ("(segmenter jieba)" in result.output) == (recipe == "wordpiece-seg")


def test_recipe_and_dataset_lang_stay_out_of_the_run_id_while_unset():
    from harness.config import load_config, run_config
    from harness.runs import run_id

    def run(*overrides):
        return run_config(load_config("pocket", list(overrides)), method="random", method_params={}, lang="zh",
                          seed=0, setting="zero-shot")

    plain = run()
    assert "tokenizer.recipe" not in plain and "dataset_lang" not in plain
    ids = {run_id(plain), run_id(run("tokenizer.recipe=unigram")), run_id(run("tokenizer.recipe=wordpiece-seg")),
           run_id(run("dataset_lang=ko"))}
    assert len(ids) == 4


def zh_run(recipe, lang="zh"):
    from harness.config import load_config, run_config

    overrides = [f"tokenizer.vocab_size={VOCAB}"] + ([f"tokenizer.recipe={recipe}"] if recipe else [])
    return run_config(load_config("pocket", overrides), method="bm25", method_params={}, lang=lang, seed=0,
                      setting="zero-shot")


def test_bm25_auto_analyzer_follows_the_recipe():
    from harness.references import make_analyzer

    terms, name = make_analyzer("auto", zh_run(None))
    assert name.startswith("unicode words + CJK character bigrams") and terms("打开文档") == ["打开", "开文", "文档"]
    terms, name = make_analyzer("auto", zh_run("unigram"))
    assert name.startswith("target Unigram ") and terms("打开文档") == trained("unigram")[0].tokenize("打开文档")
    terms, name = make_analyzer("auto", zh_run("wordpiece-seg"))
    assert name.startswith("jieba words") and terms("插入表格，LibreOffice") == ["插入", "表格", "libreoffice"]
    terms, name = make_analyzer("auto", zh_run("wordpiece-seg", "ja"))
    assert name.startswith("fugashi words") and terms("書式メニュー") == ["書式", "メニュー"]
    terms, name = make_analyzer("auto", zh_run("wordpiece-seg", "ru"))  # no segmenter: the target tokenizer
    assert name.startswith("target WordPiece ") and "no segmenter for 'ru'" in name
    terms, name = make_analyzer("target", zh_run("wordpiece-seg"))  # the WordPiece units, segmented first
    assert terms("插入表格") == ["插入", "表格"]
    with pytest.raises(HarnessError, match="no word segmenter for 'ru'"):
        make_analyzer("segmented", zh_run(None, "ru"))


def beir_folder(root, lang=None):
    docs = {"d1": "打开文档的方法", "d2": "保存表格", "d3": "选择格式菜单"}
    return write_beir(root, docs, {"q1": "如何打开文档", "q2": "格式菜单"}, {"q1": ["d1"], "q2": ["d3"]}, lang=lang)


def test_beir_folder_language_from_its_lang_file_or_dataset_lang(tmp_path):
    from harness.data import load_collection
    from harness.data.base import dataset_lang

    plain, tagged = beir_folder(tmp_path / "plain"), beir_folder(tmp_path / "tagged", "zh")
    assert dataset_lang(f"beir:{plain}") == "und" and dataset_lang(f"beir:{plain}", "ko") == "ko"
    assert dataset_lang(f"beir:{tagged}") == "zh" and dataset_lang(f"beir:{tagged}:test") == "zh"
    assert load_collection(f"beir:{tagged}").lang == "zh" and load_collection(f"beir:{plain}").lang == "und"
    assert dataset_lang("gnome-help-ko", "ko") == "ko"
    with pytest.raises(HarnessError, match="dataset_lang 'ja' contradicts dataset 'gnome-help-ko'"):
        dataset_lang("gnome-help-ko", "ja")
    (plain / "lang").write_text("Korean!\n")
    with pytest.raises(HarnessError, match="expected a language code"):
        dataset_lang(f"beir:{plain}")


def test_bm25_on_a_beir_folder_uses_its_language_and_the_recipe_analyzer(tmp_path):
    from harness.references import evaluate_reference

    tagged, plain = beir_folder(tmp_path / "tagged", "zh"), beir_folder(tmp_path / "plain")
    quiet = dict(runs_dir=str(tmp_path / "runs"), echo=lambda _: None)
    record = evaluate_reference("bm25-lite", f"beir:{tagged}", overrides=["tokenizer.recipe=wordpiece-seg"], **quiet)
    assert record["lang"] == "zh" and record["reference"]["analyzer"].startswith("jieba words")
    assert record["metrics"]["ndcg@10"] == pytest.approx(1.0)
    record = evaluate_reference("bm25-lite", f"beir:{plain}", overrides=["dataset_lang=zh"], **quiet)
    assert record["lang"] == "zh" and record["reference"]["analyzer"].startswith("unicode words")
    record = evaluate_reference("bm25-lite", f"beir:{plain}", **quiet)
    assert record["lang"] == "und"
