"""Shared fixtures: tiny tokenizers of the three styles, built in memory with `tokenizers`."""
from __future__ import annotations

import os

import pytest

from harness.checks import make_bytebpe, make_sentencepiece, make_wordpiece  # noqa: F401  (used by tests)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
