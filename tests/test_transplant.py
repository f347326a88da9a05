"""transplant() on tiny random masked LMs of each family, built here from configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.api import build_plan
from harness.encoder import SpladeEncoder
from harness.transplant import transplant

BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
ROBERTA_SPECIALS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
WORDS = "the a of is what capital city france paris berlin germany river house run ##s ##ing".split()
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
TEXTS = ["what is the capital of france", "paris", "berlin is a city in germany on a river", "runs houses"]
FAMILIES = ["bert", "distilbert", "roberta", "xlm-roberta"]


def family_specials(family: str) -> dict[str, str]:
    return ROBERTA_SPECIALS if "roberta" in family else BERT_SPECIALS


def base_vocab(family: str) -> list[str]:
    tokens = list(family_specials(family).values()) + WORDS + LETTERS + ["##" + c for c in LETTERS]
    return list(dict.fromkeys(tokens))  # "a", "##s" appear twice


def wordpiece(vocab: list[str], specials: dict[str, str]):
    """A fast WordPiece tokenizer over ``vocab`` (ids = list positions)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {w: i for i, w in enumerate(vocab)}
    cls, sep = specials["cls"], specials["sep"]
    tok = Tokenizer(models.WordPiece(ids, unk_token=specials["unk"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, ids[cls]), (sep, ids[sep])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=48,
        **{f"{name}_token": token for name, token in specials.items()},
    )


def tiny_model(family: str, tokenizer, tie: bool, seed: int = 0):
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=tie)
    bert_like = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    if family == "bert":
        model = tf.BertForMaskedLM(tf.BertConfig(max_position_embeddings=64, **bert_like, **common))
    elif family == "distilbert":
        config = tf.DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=64, **common)
        model = tf.DistilBertForMaskedLM(config)
    else:
        config_cls, model_cls = {
            "roberta": (tf.RobertaConfig, tf.RobertaForMaskedLM),
            "xlm-roberta": (tf.XLMRobertaConfig, tf.XLMRobertaForMaskedLM),
        }[family]
        ids = dict(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
        model = model_cls(config_cls(max_position_embeddings=64, **bert_like, **ids, **common))
    _randomise_vocab_tensors(model)
    return model.eval()


def _randomise_vocab_tensors(model) -> None:
    """Random init leaves biases at 0: give every vocabulary bias (and untied decoder) its own values."""
    output = model.get_output_embeddings()
    owner = next(m for m in model.modules() if any(c is output for c in m.children()))
    with torch.no_grad():
        for bias in {id(b): b for b in (output.bias, getattr(owner, "bias", None)) if b is not None}.values():
            bias.normal_(0.0, 1.0)
        if output.weight is not model.get_input_embeddings().weight:
            output.weight.normal_(0.0, 0.5)


def vectors(model, tokenizer) -> np.ndarray:
    return SpladeEncoder(model, tokenizer, device="cpu").encode(TEXTS, kind="document").toarray()


def vocab_biases(model) -> list[torch.Tensor]:
    output = model.get_output_embeddings()
    owner = next(m for m in model.modules() if any(c is output for c in m.children()))
    found = {id(b): b for b in (output.bias, getattr(owner, "bias", None)) if isinstance(b, torch.nn.Parameter)}
    return list(found.values())


def make(family: str, tie: bool = True):
    tokenizer = wordpiece(base_vocab(family), family_specials(family))
    return tiny_model(family, tokenizer, tie), tokenizer


# -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_identity_plan_reproduces_vectors_exactly(family, tie):
    model, tokenizer = make(family, tie)
    before = vectors(model, tokenizer)
    n = len(tokenizer)
    transplant(model, tokenizer, tokenizer, build_plan(n, n, copied={i: i for i in range(n)}))
    assert np.array_equal(vectors(model, tokenizer), before)
    assert before.any()


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_permuted_vocabulary_reproduces_permuted_vectors(family, tie, tmp_path):
    model, source_tok = make(family, tie)
    before = vectors(model, source_tok)
    vocab = base_vocab(family)
    perm = np.random.default_rng(1).permutation(len(vocab))  # target id t holds source token perm[t]
    target_tok = wordpiece([vocab[s] for s in perm], family_specials(family))
    assert target_tok.pad_token_id != source_tok.pad_token_id  # exercises RoBERTa position ids
    plan = build_plan(len(vocab), len(vocab), copied={t: int(s) for t, s in enumerate(perm)})

    transplant(model, source_tok, target_tok, plan)
    after = vectors(model, target_tok)
    np.testing.assert_allclose(after, before[:, perm], atol=1e-5)
    assert model.config.vocab_size == len(vocab)
    assert model.config.pad_token_id == target_tok.pad_token_id
    tied_now = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied_now == tie

    # The transplanted model survives a Hugging Face save / load unchanged.
    from transformers import AutoModelForMaskedLM

    model.save_pretrained(tmp_path / "m")
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "m").eval()
    np.testing.assert_allclose(vectors(reloaded, target_tok), after, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_bias_and_decoder_are_mixed_not_zero_padded(family, tie):
    model, source_tok = make(family, tie)
    vocab = base_vocab(family)
    src = {w: i for i, w in enumerate(vocab)}
    target_vocab = vocab + ["parisberlin", "newword"]  # one mixed token, one explicit token
    target_tok = wordpiece(target_vocab, family_specials(family))
    a, b = src["paris"], src["berlin"]
    d = model.get_input_embeddings().weight.shape[1]
    explicit_row = torch.full((d,), 0.25)
    plan = build_plan(
        len(target_vocab), len(vocab),
        rows={len(vocab): ([a, b], [0.3, 0.7])},
        copied={i: i for i in range(len(vocab))},
        explicit={len(vocab) + 1: (explicit_row, -3.0)},
    )
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    old_biases = [bias.detach().clone() for bias in vocab_biases(model)]

    transplant(model, source_tok, target_tok, plan)
    mixed, explicit = len(vocab), len(vocab) + 1
    new_in = model.get_input_embeddings().weight
    new_out = model.get_output_embeddings().weight
    torch.testing.assert_close(new_in[mixed], 0.3 * old_in[a] + 0.7 * old_in[b])
    torch.testing.assert_close(new_out[mixed], 0.3 * old_out[a] + 0.7 * old_out[b])
    torch.testing.assert_close(new_in[explicit], explicit_row)
    torch.testing.assert_close(new_out[explicit], explicit_row)
    new_biases = vocab_biases(model)
    assert len(new_biases) == len(old_biases)
    for old, new in zip(old_biases, new_biases):
        assert new.shape == (len(target_vocab),)
        torch.testing.assert_close(new[:mixed], old)
        torch.testing.assert_close(new[mixed], 0.3 * old[a] + 0.7 * old[b])
        assert float(new[mixed]) != 0.0
        assert float(new[explicit]) == -3.0
    logits = model(**target_tok(["parisberlin newword"], return_tensors="pt").data).logits
    assert logits.shape[-1] == len(target_vocab)


def test_plan_shape_mismatch_is_rejected():
    model, tokenizer = make("bert")
    n = len(tokenizer)
    with pytest.raises(ValueError, match="source columns"):
        transplant(model, tokenizer, tokenizer, build_plan(n, n + 1, copied={i: i for i in range(n)}))
    with pytest.raises(ValueError, match="neither"):
        transplant(model, tokenizer, tokenizer, build_plan(n, n, copied={i: i for i in range(n - 1)}))


def test_transform_block_is_kept():
    model, tokenizer = make("bert")
    transform = model.cls.predictions.transform.dense.weight.detach().clone()
    n = len(tokenizer)
    transplant(model, tokenizer, tokenizer, build_plan(n, n, copied={i: (i + 1) % n for i in range(n)}))
    torch.testing.assert_close(model.cls.predictions.transform.dense.weight, transform)
