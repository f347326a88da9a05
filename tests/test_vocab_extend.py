"""vocab_mode=extend: the source vocabulary keeps its ids and rows, the target tokens it lacks come after."""
from __future__ import annotations

import pytest
import torch

from harness.checks import make_wordpiece
from harness.util import HarnessError

SOURCE = ["the", "city", "capital", "##s", "is", "paris", "."]
KO_TEXT = ["서울은 한국의 수도이다.", "도시의 인구는 많다.", "서울 도시 수도"] * 20


def test_extended_tokenizer_keeps_source_ids_and_appends_target_tokens():
    from harness.target_tokenizer import extend_tokenizer, train_wordpiece

    source, target = make_wordpiece(SOURCE), train_wordpiece(KO_TEXT + ["the city"] * 5, vocab_size=60)
    extended = extend_tokenizer(source, target)
    vocab, source_vocab = extended.get_vocab(), source.get_vocab()
    assert {t: vocab[t] for t in source_vocab} == source_vocab  # every source token at its own id
    new = sorted(set(target.get_vocab()) - set(source_vocab), key=target.get_vocab().get)
    assert new and [vocab[t] for t in new] == list(range(len(source_vocab), len(source_vocab) + len(new)))
    assert len(extended) == len(source_vocab) + len(new)
    ids = extended("the city 서울")["input_ids"]
    assert ids[0] == source_vocab["[CLS]"] and ids[-1] == source_vocab["[SEP]"]  # specials at the source ids
    assert extended.tokenize("the city") == ["the", "city"] and extended.pad_token_id == source_vocab["[PAD]"]
    assert all(vocab[p] >= len(source_vocab) for p in extended.tokenize("서울") if p not in source_vocab)


def test_extend_keeps_the_segmenter():
    pytest.importorskip("jieba")
    from harness.segmented_tokenizer import SegmentedTokenizerFast
    from harness.target_tokenizer import extend_tokenizer, train_segmented_wordpiece

    target = train_segmented_wordpiece(["插入表格，然后保存文档。"] * 30, "jieba", vocab_size=80)
    extended = extend_tokenizer(make_wordpiece(SOURCE), target)
    assert isinstance(extended, SegmentedTokenizerFast) and extended.segmenter == "jieba"
    assert extended.tokenize("插入表格") == target.tokenize("插入表格") == ["插入", "表格"]


def test_extend_refuses_a_unigram_target():
    from harness.target_tokenizer import extend_tokenizer, train_unigram

    with pytest.raises(HarnessError, match="needs a WordPiece target tokenizer.*wordpiece-bert"):
        extend_tokenizer(make_wordpiece(SOURCE), train_unigram(KO_TEXT, vocab_size=40))


def test_keep_source_rows_copies_the_source_block_whatever_the_method_planned():
    from harness.api import build_plan
    from harness.transplant import keep_source_rows

    n_source, n_target, d = 5, 8, 3
    explicit = {t: (torch.full((d,), float(t)), 0.5) for t in (1, 6)}
    plan = build_plan(n_target, n_source, rows={0: ([1, 2], [0.5, 0.5]), 7: ([3], [1.0])},
                      copied={2: 4, 3: 3, 4: 0, 5: 1}, explicit=explicit)
    kept = keep_source_rows(plan, n_source)
    assert kept.validate(d=d, n_source=n_source) == []
    dense = kept.mixing.to_dense()
    assert torch.equal(dense[:n_source], torch.eye(n_source))  # token t < 5 is source token t
    assert torch.equal(dense[n_source:], plan.mixing.to_dense()[n_source:])  # appended tokens as planned
    assert kept.explicit_ids.tolist() == [6] and kept.explicit_rows[0].tolist() == [6.0] * d
    assert kept.kinds[:n_source].tolist() == [0] * n_source and kept.info["source_rows_kept"] == n_source


def test_vocab_mode_is_checked_and_replace_keeps_run_ids():
    from harness.config import load_config, run_config
    from harness.runs import run_id

    def run(*overrides):
        return run_config(load_config("pocket", list(overrides)), method="random", method_params={}, lang="ko",
                          seed=0, setting="zero-shot")

    assert run_id(run("vocab_mode=replace")) == run_id(run()) != run_id(run("vocab_mode=extend"))
    with pytest.raises(HarnessError, match="vocab_mode"):
        run("vocab_mode=append")
