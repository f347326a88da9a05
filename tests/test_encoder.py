"""SpladeEncoder on a tiny random BERT with a tiny WordPiece tokenizer (built here, no downloads)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.encoder import SpladeEncoder, keep_top_k, splade_pool

WORDS = "the a of is what capital city france paris berlin germany river house run ##s ##ing ##ed".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")
TEXTS = [
    "what is the capital of france",
    "paris",
    "berlin is the capital city of germany and a river runs through the city",
    "houses",
    "",
    "the river",
]


def tiny_wordpiece(vocab: list[str] | None = None):
    """A fast BERT-style tokenizer over a fixed tiny vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocab or list(dict.fromkeys(SPECIALS + WORDS + LETTERS + ["##" + c for c in LETTERS]))
    ids = {w: i for i, w in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
    )


def tiny_bert(vocab_size: int, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
    )
    model = BertForMaskedLM(config).eval()
    # Random init gives tiny logits around 0; a positive bias makes vectors non-trivially sparse.
    with torch.no_grad():
        model.cls.predictions.bias.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="module")
def encoder():
    tokenizer = tiny_wordpiece()
    return SpladeEncoder(tiny_bert(len(tokenizer)), tokenizer, device="cpu", query_max_length=16, doc_max_length=32)


def reference_vectors(model, tokenizer, texts, max_length):
    """Straight SPLADE formula, one text at a time (no padding, no batching)."""
    rows = []
    with torch.no_grad():
        for text in texts:
            features = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).logits
            rows.append(torch.log1p(torch.relu(logits[0])).max(dim=0).values)
    return torch.stack(rows).numpy()


def test_encode_matches_formula_and_keeps_order(encoder):
    got = encoder.encode(TEXTS, kind="document", batch_size=2)
    assert got.shape == (len(TEXTS), encoder.vocab_size) and got.dtype == np.float32
    want = reference_vectors(encoder.model, encoder.tokenizer, TEXTS, 32)
    np.testing.assert_allclose(got.toarray(), want, atol=1e-5)
    assert 0 < got.nnz < got.shape[0] * got.shape[1]  # sparse but not empty


def test_query_and_document_limits_differ(encoder):
    long_text = [" ".join(["capital city"] * 20)]
    as_query = encoder.encode(long_text, kind="query").toarray()
    as_doc = encoder.encode(long_text, kind="document").toarray()
    np.testing.assert_allclose(as_query, reference_vectors(encoder.model, encoder.tokenizer, long_text, 16), atol=1e-5)
    np.testing.assert_allclose(as_doc, reference_vectors(encoder.model, encoder.tokenizer, long_text, 32), atol=1e-5)


def test_max_chars_cuts_documents_only(encoder):
    text = ["paris " + "berlin " * 3]
    cut = encoder.encode(text, kind="document", max_chars=5).toarray()
    np.testing.assert_allclose(cut, encoder.encode(["paris"], kind="document").toarray(), atol=1e-6)
    query = encoder.encode(text, kind="query", max_chars=5).toarray()
    assert not np.allclose(query, cut)


def test_max_active_dims(encoder):
    full = encoder.encode(TEXTS, kind="query").toarray()
    capped = encoder.encode(TEXTS, kind="query", max_active_dims=3).toarray()
    assert ((capped > 0).sum(axis=1) <= 3).all()
    for row_full, row_capped in zip(full, capped):
        kept = np.flatnonzero(row_capped)
        np.testing.assert_allclose(row_capped[kept], row_full[kept])
        assert row_capped[kept].min(initial=np.inf) >= np.sort(row_full)[-3] - 1e-7


def test_pool_masks_padding():
    logits = torch.tensor([[[1.0, -2.0], [5.0, 7.0]]])
    assert splade_pool(logits, torch.tensor([[1, 0]]))[0].tolist() == pytest.approx([np.log(2.0), 0.0])
    assert keep_top_k(torch.tensor([[3.0, 1.0, 2.0]]), 2).tolist() == [[3.0, 0.0, 2.0]]


def test_empty_input(encoder):
    assert encoder.encode([], kind="query").shape == (0, encoder.vocab_size)


def test_save_round_trip_sentence_transformers(encoder, tmp_path):
    from sentence_transformers import SparseEncoder

    out = encoder.save(tmp_path / "model")
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["MLMTransformer", "SpladePooling"]
    queries, docs = TEXTS[:3], TEXTS[2:]
    ours_q = encoder.encode(queries, kind="query").toarray()
    ours_d = encoder.encode(docs, kind="document").toarray()

    st = SparseEncoder(str(out), device="cpu")
    st_q = st.encode_query(queries, convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
    st_d = st.encode_document(docs, convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
    np.testing.assert_allclose(st_q, ours_q, atol=1e-5)
    np.testing.assert_allclose(st_d, ours_d, atol=1e-5)

    reloaded = SpladeEncoder.from_pretrained(out, device="cpu")
    assert (reloaded.query_max_length, reloaded.doc_max_length) == (16, 32)
    np.testing.assert_allclose(reloaded.encode(queries, kind="query").toarray(), ours_q, atol=1e-5)
    np.testing.assert_allclose(reloaded.encode(docs, kind="document").toarray(), ours_d, atol=1e-5)


def test_sentence_transformers_truncates_like_us(encoder, tmp_path):
    """The saved per-task token limits reach sentence-transformers (and thus mteb)."""
    from sentence_transformers import SparseEncoder

    long_text = [" ".join(["capital city"] * 20)]
    st = SparseEncoder(str(encoder.save(tmp_path / "m")), device="cpu")
    st_q = st.encode_query(long_text, convert_to_tensor=True, convert_to_sparse_tensor=False).numpy()
    np.testing.assert_allclose(st_q, encoder.encode(long_text, kind="query").toarray(), atol=1e-5)


def test_save_overwrites_atomically(encoder, tmp_path):
    target = tmp_path / "model"
    encoder.save(target)
    (target / "stale.txt").write_text("old")
    encoder.save(target)
    assert not (target / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_from_plain_hf_directory(encoder, tmp_path):
    encoder.model.save_pretrained(tmp_path / "hf")
    encoder.tokenizer.save_pretrained(tmp_path / "hf")
    plain = SpladeEncoder.from_pretrained(tmp_path / "hf", device="cpu", doc_max_length=32)
    np.testing.assert_allclose(
        plain.encode(TEXTS, kind="document").toarray(), encoder.encode(TEXTS, kind="document").toarray(), atol=1e-5
    )
