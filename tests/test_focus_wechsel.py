"""FOCUS and WECHSEL-style methods end to end on tiny tokenizers and a synthetic bilingual corpus.

The "target language" is English under a ROT13 cipher: the same sentences, so the two fastText
spaces are (nearly) isomorphic and a correct alignment maps each cipher word to its plain word.
Names and numbers stay identical in both languages (the overlap, and the identical-string seeds).
"""
import codecs
import random

import numpy as np
import pytest
import torch
from conftest import make_wordpiece

from harness.api import HarnessError, MethodContext, tokenizer_signature, train_static_vectors
from harness.method_specs import get_method
from harness.api import sparsemax
from methods.wechsel import procrustes

TOPICS = [["water", "river", "boat", "fish", "lake", "rain"], ["fire", "smoke", "heat", "flame", "burn", "coal"],
          ["code", "file", "menu", "click", "save", "print"]]
NAMES = [["nile", "volga", "1"], ["etna", "vesuv", "2"], ["linux", "calc", "3"]]
CONTENT = [w for ws in TOPICS for w in ws]
SHARED = [n for ns in NAMES for n in ns]
# a tiny corpus needs more epochs and a larger learning rate than the defaults
SMALL = dict(dim=16, epochs=20, min_count=3, bucket=20_000, fasttext_model="cbow")


def rot(word: str) -> str:
    return codecs.encode(word, "rot13")


def topic_of(word: str) -> int:
    return next(i for i in range(3) if word in TOPICS[i] + NAMES[i])


def corpus(translate, n: int = 600) -> list[str]:
    """Each line draws 10 words from one topic's content words (twice as likely) and names."""
    rng = random.Random(0)
    lines = []
    for i in range(n):
        pool = TOPICS[i % 3] * 2 + NAMES[i % 3]
        lines.append(" ".join(translate(w) if w in CONTENT else w for w in (rng.choice(pool) for _ in range(10))))
    return lines


SOURCE_TEXT, TARGET_TEXT = corpus(lambda w: w), corpus(rot)
DICTIONARY = [(w, rot(w)) for w in CONTENT]


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    # one cache for the module: the methods reuse each other's fastText models, as in real runs
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path_factory.getbasetemp() / "focus-wechsel-cache"))


def make_context(**resources) -> MethodContext:
    source = make_wordpiece(CONTENT + SHARED + ["the", "##s"])
    target = make_wordpiece([rot(w) for w in CONTENT] + SHARED + ["qqqq", "##f"])  # "qqqq" never occurs
    gen = torch.Generator().manual_seed(0)
    res = {"target_text": lambda: TARGET_TEXT, "source_text": lambda: SOURCE_TEXT, "dictionary": lambda: DICTIONARY}
    res.update(resources)
    return MethodContext(source, target, torch.randn(len(source), 8, generator=gen),
                         torch.randn(len(source), generator=gen), lang="xx", seed=0,
                         resources={k: v for k, v in res.items() if v is not None})


def names(tokenizer) -> dict[int, str]:
    return {i: w for w, i in tokenizer.get_vocab().items()}


def assert_convex_rows(plan, ids):
    for t in ids:
        weights = [w for _, w in plan.sources_of(t)]
        assert weights and min(weights) >= 0 and sum(weights) == pytest.approx(1, abs=1e-5)


# ------------------------------------------------------------------------------------------------
# sparsemax
# ------------------------------------------------------------------------------------------------
def test_sparsemax_matches_entmax():
    import entmax

    gen = torch.Generator().manual_seed(0)
    for shape, scale in [((50, 7), 1.0), ((20, 300), 0.05), ((30, 300), 5.0), ((5, 1), 1.0)]:
        z = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        ours, ref = sparsemax(z), entmax.sparsemax(z, dim=-1)
        assert torch.allclose(ours, ref, atol=1e-10)
        assert torch.allclose(ours.sum(-1), torch.ones(shape[0], dtype=torch.float64))
    z = torch.tensor([[1.0, 1.0, 0.0], [3.0, 0.5, 0.4]], dtype=torch.float64)  # ties, a one-hot row
    assert torch.allclose(sparsemax(z), torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64))
    z = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    assert torch.allclose(sparsemax(z, dim=0), entmax.sparsemax(z, dim=0), atol=1e-10)


# ------------------------------------------------------------------------------------------------
# FOCUS
# ------------------------------------------------------------------------------------------------
def test_focus_end_to_end():
    ctx = make_context()
    plan = get_method("focus")(ctx, lr=0.2, **SMALL)
    assert plan.validate(d=8) == []
    info, tv, sv = plan.diagnostics(), ctx.target_tokenizer.get_vocab(), ctx.source_tokenizer.get_vocab()
    assert info["copied"] == 9 + 5 and info["support_tokens"] == 9  # names/numbers + specials (no vector)
    assert info["mixed"] == len(CONTENT) and info["random_fallback"] == 2  # "qqqq", "##f" never occur
    assert info["copied"] + info["mixed"] + info["random_fallback"] == ctx.n_target
    assert plan.sources_of(tv["nile"]) == [(sv["nile"], 1.0)]
    qqqq = plan.explicit_ids.tolist().index(tv["qqqq"])  # never in the text: random row, mean bias
    assert plan.explicit_bias[qqqq] == pytest.approx(float(ctx.source_bias.mean()))

    # each mixed row is exactly sparsemax over cosines to the overlapping tokens' fastText vectors
    vectors = train_static_vectors(TARGET_TEXT, tokenize=ctx.target_tokenizer.tokenize,
                                   cache_key=tokenizer_signature(ctx.target_tokenizer), model="cbow", lr=0.2,
                                   **{k: v for k, v in SMALL.items() if k != "fasttext_model"})
    assert vectors.cached
    support = torch.from_numpy(vectors.matrix(SHARED))
    src_names = names(ctx.source_tokenizer)
    same_topic = 0
    for word in CONTENT:
        expected = sparsemax(torch.from_numpy(vectors.matrix([rot(word)])) @ support.T)[0]
        got = dict(plan.sources_of(tv[rot(word)]))
        assert torch.allclose(torch.tensor([got.get(sv[n], 0.0) for n in SHARED]), expected, atol=1e-5)
        same_topic += all(topic_of(src_names[s]) == topic_of(word) for s in got)
    assert_convex_rows(plan, [tv[rot(w)] for w in CONTENT])
    assert same_topic >= 15  # co-occurrence puts a word's weight on its own topic's names


def test_focus_without_overlap_falls_back_to_random():
    ctx = make_context()
    plan = get_method("focus")(ctx, lr=0.2, match_symbols=False, exact_match_all=False, fuzzy_match_all=False,
                               **SMALL)
    info = plan.diagnostics()
    assert plan.validate(d=8) == [] and info["copied"] == info["mixed"] == 0
    assert info["random_fallback"] == ctx.n_target


# ------------------------------------------------------------------------------------------------
# WECHSEL
# ------------------------------------------------------------------------------------------------
def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    w = procrustes(x, x @ q + rng.normal(scale=0.01, size=(300, 16)))
    assert np.allclose(w, q, atol=0.01) and np.allclose(w @ w.T, np.eye(16), atol=1e-5)
    assert not np.allclose(procrustes(x, x @ q.T), q, atol=0.1)


def test_wechsel_with_dictionary():
    ctx = make_context()
    plan = get_method("wechsel")(ctx, min_pairs=10, lr=0.05, **SMALL)
    assert plan.validate(d=8) == []
    info, tv = plan.diagnostics(), ctx.target_tokenizer.get_vocab()
    assert info["alignment"]["strategy"] == "dictionary" and info["alignment"]["pairs"] == len(DICTIONARY)
    assert info["copied"] == 5  # special tokens only: "nile" is mixed, not copied
    assert plan.kinds[tv["nile"]] == 1 and plan.kinds[tv["qqqq"]] == 2
    assert info["max_support"] == 10 and info["mixed"] + info["random_fallback"] + 5 == ctx.n_target
    assert_convex_rows(plan, [tv[rot(w)] for w in CONTENT])
    src_names = names(ctx.source_tokenizer)
    top = {w: src_names[plan.sources_of(tv[rot(w)])[0][0]] for w in CONTENT}
    assert sum(top[w] == w for w in CONTENT) >= 10, top  # the cipher word's heaviest source is its plain word
    assert sum(topic_of(top[w]) == topic_of(w) for w in CONTENT) >= 15, top

    narrow = get_method("wechsel")(ctx, min_pairs=10, lr=0.05, k=3, copy_overlap=True, **SMALL)
    assert narrow.validate(d=8) == [] and narrow.diagnostics()["max_support"] == 3
    assert narrow.sources_of(tv["nile"]) == [(ctx.source_tokenizer.get_vocab()["nile"], 1.0)]


def test_wechsel_falls_back_to_identical_strings():
    def no_dictionary():
        raise HarnessError("no en-xx dictionary exists in the package registries")

    for resources in ({"dictionary": no_dictionary}, {"dictionary": None}):
        plan = get_method("wechsel")(make_context(**resources), min_pairs=10, lr=0.05, **SMALL)
        alignment = plan.diagnostics()["alignment"]
        assert plan.validate(d=8) == [] and alignment["strategy"] == "identical-strings"
        assert alignment["pairs"] == len(SHARED) and alignment["dictionary_pairs"] == 0
    assert "no en-xx dictionary" in get_method("wechsel")(
        make_context(dictionary=no_dictionary), min_pairs=10, lr=0.05, **SMALL).info["alignment"]["reason"]
    # too few dictionary pairs: the identical strings are added to them
    few = get_method("wechsel")(make_context(), min_pairs=100, lr=0.05, **SMALL).info["alignment"]
    assert few["strategy"] == "identical-strings" and few["pairs"] == len(DICTIONARY) + len(SHARED)
    with pytest.raises(HarnessError, match="no en-xx dictionary"):
        get_method("wechsel")(make_context(dictionary=no_dictionary), require_dictionary=True, lr=0.05, **SMALL)
