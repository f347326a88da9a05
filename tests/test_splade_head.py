"""The fused SPLADE head (harness.splade_head): values, gradients, and equality with the plain path."""
from __future__ import annotations

import pytest
import torch

from harness.encoder import splade_pool
from harness.splade_head import fused_splade_pool, masked_max_logits, mlm_parts

MODES = [pytest.param(True, id="sparse-backward"), pytest.param(False, id="dense-backward")]


def plain(hidden, weight, bias, mask):
    """Today's path: the full logits, then harness.encoder.splade_pool (float32)."""
    return splade_pool(torch.nn.functional.linear(hidden, weight, bias), mask)


def plain64(hidden, weight, bias, mask):
    """splade_pool's expression without its float32 cast, for float64 comparisons."""
    logits = torch.nn.functional.linear(hidden, weight, bias).masked_fill(~mask.bool()[..., None], float("-inf"))
    return torch.log1p(torch.relu(logits.amax(dim=1)))


def inputs(dtype=torch.float32, *, n_seq=4, seq_len=7, dim=6, vocab=37, shift=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n_seq, seq_len, dim, generator=gen, dtype=dtype)
    weight = torch.randn(vocab, dim, generator=gen, dtype=dtype)
    bias = torch.randn(vocab, generator=gen, dtype=dtype) + shift
    mask = torch.ones(n_seq, seq_len, dtype=torch.long)
    mask[1, 4:] = 0
    mask[2, 1:] = 0  # a sequence of one token
    return hidden, weight, bias, mask


@pytest.mark.parametrize("sparse", MODES)
@pytest.mark.parametrize("chunk", [5, 37, 1000])  # uneven chunks, exactly |V|, one chunk
def test_values_equal_splade_pool(sparse, chunk):
    hidden, weight, bias, mask = inputs()
    want = plain(hidden, weight, bias, mask)
    got = fused_splade_pool(hidden, weight, bias, mask, chunk=chunk, sparse=sparse)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def integer_inputs(dtype=torch.float32):
    """Small integers make every logit exact, so ties are frequent and the answers unambiguous."""
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randint(-2, 3, (4, 7, 3), generator=gen).to(dtype)
    weight = torch.randint(-2, 3, (37, 3), generator=gen).to(dtype)
    weight[3] = 0  # a zero row (BERT's padding row at initialisation): every token ties
    bias = torch.randint(-3, 4, (37,), generator=gen).to(dtype)
    return hidden, weight, bias, inputs()[3]


@pytest.mark.parametrize("chunk", [3, 37])
def test_first_maximum_and_ties_of_unmasked_tokens(chunk):
    import numpy as np

    from harness.splade_head import _chunked_max

    hidden, weight, _, mask = integer_inputs()
    values, first, ties, _ = _chunked_max(hidden, weight, mask, chunk, track=True)
    logits = (hidden @ weight.T).masked_fill(~mask.bool()[..., None], float("-inf")).numpy()
    assert np.array_equal(values.numpy(), logits.max(axis=1))
    assert np.array_equal(first.numpy(), logits.argmax(axis=1))  # numpy: the first maximum
    assert (first[2] == 0).all() and (first[1] < 4).all()  # padding never wins
    hits = logits == logits.max(axis=1, keepdims=True)  # (B, T, V)
    counts = hits.sum(axis=1)
    want = sorted((b, v, t, counts[b, v]) for b, t, v in zip(*np.nonzero(hits)) if counts[b, v] > 1)
    got = sorted(zip(ties.seq.tolist(), ties.vocab.tolist(), ties.token.tolist(), ties.count.long().tolist()))
    assert got == want and len(got) > 0 and all(c == mask[b].sum() for b, v, t, c in got if v == 3)
    assert _chunked_max(hidden, weight, mask, chunk, track=False)[1:3] == (None, None)


@pytest.mark.parametrize("sparse", MODES)
@pytest.mark.parametrize("chunk", [3, 37])
def test_ties_split_the_gradient_as_autograd_amax_does(sparse, chunk):
    hidden, weight, bias, mask = integer_inputs(torch.float64)
    target = torch.randn(4, 37, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        (fn(*leaves, mask) * target).sum().backward()
        return [t.grad for t in leaves]

    want = grads(plain64)
    got = grads(lambda h, w, b, m: fused_splade_pool(h, w, b, m, chunk=chunk, sparse=sparse))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert want[1][3].abs().sum() > 0  # the zero row's gradient is the tokens' mean, not one token's


@pytest.mark.parametrize("sparse", MODES)
@pytest.mark.parametrize("shift", [0.0, 30.0, -30.0])  # mixed, all active (dense gradient), none active
@pytest.mark.parametrize("with_bias", [True, False])
def test_gradcheck_float64(sparse, shift, with_bias):
    hidden, weight, bias, mask = inputs(torch.float64, n_seq=3, seq_len=5, dim=4, vocab=11, shift=shift)
    args = [hidden.requires_grad_(), weight.requires_grad_()] + ([bias.requires_grad_()] if with_bias else [])

    def f(h, w, b=None):
        return fused_splade_pool(h, w, b, mask, chunk=4, sparse=sparse)

    assert f(*args).dtype == torch.float64
    assert torch.autograd.gradcheck(f, tuple(args))


@pytest.mark.parametrize("sparse", MODES)
@pytest.mark.parametrize("shift", [0.0, 30.0])
def test_gradients_equal_autograd_of_plain_path(sparse, shift):
    hidden, weight, bias, mask = inputs(n_seq=5, seq_len=9, dim=8, vocab=53, shift=shift, seed=1)
    target = torch.randn(5, 53, generator=torch.Generator().manual_seed(2))

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        loss = (fn(*leaves, mask) * target).sum() + fn(*leaves, mask).pow(2).mean()
        loss.backward()
        return loss.detach(), [t.grad for t in leaves]

    want_loss, want = grads(plain)
    got_loss, got = grads(lambda h, w, b, m: fused_splade_pool(h, w, b, m, chunk=7, sparse=sparse))
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-6, atol=1e-6)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    assert got[0][~mask.bool()].abs().max() == 0  # padding gets no gradient


def test_backward_is_deterministic_and_modes_agree():
    hidden, weight, bias, mask = inputs(n_seq=6, seq_len=11, dim=16, vocab=301, seed=3)
    target = torch.randn(6, 301, generator=torch.Generator().manual_seed(4))

    def grads(sparse):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        (fused_splade_pool(*leaves, mask, chunk=64, sparse=sparse) * target).sum().backward()
        return [t.grad for t in leaves]

    first, again, dense = grads(True), grads(True), grads(False)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    for a, b in zip(first, dense):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sparse", MODES)
def test_bf16_autocast_as_on_cuda(sparse):
    """The harness autocasts to bf16 on CUDA only; CPU autocast runs the same code path here."""
    hidden, weight, bias, mask = inputs(n_seq=3, seq_len=6, dim=16, vocab=40, seed=7)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(*leaves, mask)
        out.sum().backward()
        return out, [t.grad for t in leaves]

    got, got_grads = run(lambda h, w, b, m: fused_splade_pool(h, w, b, m, chunk=16, sparse=sparse))
    want, want_grads = run(plain)
    assert got.dtype == torch.float32 and all(g.dtype == torch.float32 for g in got_grads)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)  # bf16 logits on both sides
    for g, w in zip(got_grads, want_grads):
        assert (g - w).abs().max() <= 5e-2 * w.abs().max()


def test_max_is_float32_under_lower_precision_and_no_grad():
    hidden, weight, bias, mask = inputs()
    with torch.no_grad():
        out = masked_max_logits(hidden.bfloat16(), weight.bfloat16(), bias.bfloat16(), mask)
    assert out.dtype == torch.float32 and not out.requires_grad


# ----------------------------------------------------------------------------------------------
# Whole masked LMs: fused SpladeModule vs the plain path
# ----------------------------------------------------------------------------------------------
def tiny_models():
    from transformers import (BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM,
                              RobertaConfig, RobertaForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM)

    common = dict(vocab_size=97, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=40)
    return {
        "bert": lambda: BertForMaskedLM(BertConfig(**common, pad_token_id=0)),
        "distilbert": lambda: DistilBertForMaskedLM(DistilBertConfig(vocab_size=97, dim=16, n_layers=2, n_heads=2,
                                                                     hidden_dim=32, max_position_embeddings=40)),
        "roberta": lambda: RobertaForMaskedLM(RobertaConfig(**common, pad_token_id=1)),
        "xlm-roberta": lambda: XLMRobertaForMaskedLM(XLMRobertaConfig(**common, pad_token_id=1)),
    }


def features(model, seed=0):
    from harness.device import accepted_inputs

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 97, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    pad = getattr(model.config, "pad_token_id", 0) or 0
    ids = ids.masked_fill(mask == 0, pad)
    f = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {k: v for k, v in f.items() if k in accepted_inputs(model)}


@pytest.mark.parametrize("arch", list(tiny_models()))
def test_mlm_parts_reproduce_loss_and_gradients(arch):
    from harness.device import accepted_inputs
    from harness.train import _splade_module_class

    torch.manual_seed(0)
    model = tiny_models()[arch]()
    with torch.no_grad():  # a bias spread makes the vectors sparse, as in a trained encoder
        model.get_output_embeddings().bias.normal_(0.0, 1.0)
    model.eval()  # no dropout: both paths see the same network
    queries, docs = features(model, 0), features(model, 1)
    Module = _splade_module_class()
    fused, ref = Module(model, accepted_inputs(model)), Module(model, accepted_inputs(model), fused=False)
    assert fused.parts is not None and fused.parts.architecture == arch.replace("xlm-", "")
    assert ref.parts is None

    def loss_and_grads(module):
        model.zero_grad(set_to_none=True)
        out = module({"query": queries, "document": docs})
        loss = torch.nn.functional.cross_entropy(out["query"] @ out["document"].T, torch.arange(3)) \
            + 1e-2 * (out["document"].mean(0) ** 2).sum()
        loss.backward()
        return out, loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    out_f, loss_f, grads_f = loss_and_grads(fused)
    out_r, loss_r, grads_r = loss_and_grads(ref)
    for kind in out_r:
        torch.testing.assert_close(out_f[kind], out_r[kind], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-5)
    assert grads_f.keys() == grads_r.keys() and grads_r
    for name in grads_r:
        torch.testing.assert_close(grads_f[name], grads_r[name], rtol=1e-4, atol=1e-5, msg=name)


def test_unrecognised_or_mismatching_models_take_the_plain_path():
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    assert mlm_parts(BertForSequenceClassification(config)) is None  # no MLM decoder

    class Softcapped(BertForMaskedLM):  # a head that does more after the decoder: the probe sees it
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = 3.0 * torch.tanh(out.logits / 3.0)
            return out

    model = Softcapped(config)
    with torch.no_grad():
        model.get_output_embeddings().bias.fill_(2.0)
    model.train()
    assert mlm_parts(model) is None
    assert model.training  # the probe restores the mode
    assert mlm_parts(BertForMaskedLM(config)) is not None


def test_token_cache_equals_the_tokenizer():
    from harness.train import TokenCache
    from tests.test_train import tiny_tokenizer

    tok = tiny_tokenizer()
    texts = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11 w12", "w1 w2 w3", ""]
    for side in ("right", "left"):
        tok.padding_side = side
        cache = TokenCache(tok, {"input_ids", "attention_mask", "token_type_ids"})
        for limit in (4, 64):
            for batch in (texts, texts[1:2], texts[::-1]):
                want = tok(batch, padding=True, truncation=True, max_length=limit, return_tensors="pt")
                got = cache(batch, limit)
                assert got.keys() == {k for k in want if k in cache.inputs}
                assert all(torch.equal(got[k], want[k]) for k in got), (side, limit, batch)
    assert len(cache.cached) == 2 * 4  # each (distinct text, limit) tokenized once
