"""Shared fixtures: tiny tokenizers of the three styles, built in memory with `tokenizers`."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_wordpiece(tokens: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + [t for t in tokens if t not in specials])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def make_sentencepiece(pieces: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = [(p, 0.0) for p in specials] + [(p, -float(i)) for i, p in enumerate(pieces, 1) if p not in specials]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")


def make_bytebpe(tokens: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(specials + [t for t in tokens if t not in specials])}
    tok = Tokenizer(models.BPE(vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")


SOURCE_WORDS = ["the", "city", "capital", "paris", "##s", "##ing", "run", "7", ".", ",", "!", "Paris"]


@pytest.fixture
def tiny_context():
    """A MethodContext: WordPiece source (d=8) and a SentencePiece target sharing some tokens."""
    import torch

    from harness.api import MethodContext

    source = make_wordpiece(SOURCE_WORDS)
    target = make_sentencepiece(["▁the", "▁city", "s", "ing", "▁서울", "▁도시", "▁7", ".", "▁PARIS", "수도"])
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(len(source), 8, generator=gen)
    bias = torch.randn(len(source), generator=gen)
    return MethodContext(source_tokenizer=source, target_tokenizer=target, source_embeddings=emb,
                         source_bias=bias, lang="ko", seed=0)
