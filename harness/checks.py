"""`harness check-method`: run a method on tiny built-in fixtures and validate its plan.

The fixtures are small real tokenizers of the three styles built in memory, random embeddings,
random unit bridge vectors, a few sentences of target text and a small dictionary: enough for a
plugin author to see in seconds, offline, whether a method returns a well-formed plan.
"""
from __future__ import annotations

import time
from typing import Any

SPECIALS_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIALS_SENTENCEPIECE = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

SOURCE_WORDS = ["the", "city", "capital", "paris", "##s", "##ing", "run", "7", ".", ",", "!", "file", "open",
                "save", "print", "page", "menu", "##ed", "new", "document", "help", "window", "text"]
TARGET_PIECES = ["▁the", "▁city", "s", "ing", "▁서울", "▁도시", "▁7", ".", "▁PARIS", "수도", "▁파일", "▁열기",
                 "▁저장", "▁인쇄", "▁페이지", "▁메뉴", "▁새", "▁문서", "▁도움말", "▁창", "▁텍스트", "을", "를", "▁file"]
TARGET_TEXT = ["파일 열기 메뉴 를 사용 합니다", "새 문서 를 저장 합니다", "도움말 창 을 엽니다",
               "텍스트 를 인쇄 합니다", "서울 은 수도 입니다", "페이지 를 인쇄 합니다"] * 20
SOURCE_TEXT = ["open the file menu", "save the new document", "open the help window", "print the text",
               "paris is the capital city", "print the page"] * 20
DICTIONARY = [("file", "파일"), ("open", "열기"), ("save", "저장"), ("print", "인쇄"), ("page", "페이지"),
              ("menu", "메뉴"), ("new", "새"), ("document", "문서"), ("help", "도움말"), ("window", "창"),
              ("text", "텍스트"), ("city", "도시"), ("capital", "수도")]


def make_wordpiece(tokens: list[str]) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS_WORDPIECE + [t for t in tokens if t not in SPECIALS_WORDPIECE])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _sentencepiece_like(model: Any, pre_tokenizer: Any) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizer
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>")


def make_sentencepiece(pieces: list[str]) -> Any:
    from tokenizers import models, pre_tokenizers

    vocab = [(p, 0.0) for p in SPECIALS_SENTENCEPIECE]
    vocab += [(p, -float(i)) for i, p in enumerate(pieces, 1) if p not in SPECIALS_SENTENCEPIECE]
    return _sentencepiece_like(models.Unigram(vocab, unk_id=3), pre_tokenizers.Metaspace())


def make_bytebpe(tokens: list[str]) -> Any:
    from tokenizers import models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIALS_SENTENCEPIECE + [t for t in tokens if t not in SPECIALS_SENTENCEPIECE])}
    return _sentencepiece_like(models.BPE(vocab, merges=[], unk_token="<unk>"),
                               pre_tokenizers.ByteLevel(add_prefix_space=False))


def fixture_context(seed: int = 0, d: int = 16, bridge_dim: int = 24) -> Any:
    """A MethodContext over the tiny fixtures, with every resource a method may ask for."""
    import torch

    from harness.api import MethodContext
    from harness.method_specs import provided_resources

    source, target = make_wordpiece(SOURCE_WORDS), make_sentencepiece(TARGET_PIECES)
    gen = torch.Generator().manual_seed(seed)
    emb, bias = torch.randn(len(source), d, generator=gen), torch.randn(len(source), generator=gen)
    bridge = [torch.nn.functional.normalize(torch.randn(n, bridge_dim, generator=gen), dim=1)
              for n in (len(target), len(source))]
    resources = provided_resources({"bridge_vectors": lambda: tuple(bridge), "target_text": lambda: list(TARGET_TEXT),
                                    "source_text": lambda: list(SOURCE_TEXT), "dictionary": lambda: list(DICTIONARY)})
    return MethodContext(source_tokenizer=source, target_tokenizer=target, source_embeddings=emb,
                         source_bias=bias, lang="ko", seed=seed, resources=resources)


def check_method(name: str, params: dict[str, Any] | None = None) -> tuple[list[str], dict[str, Any]]:
    """(problems, diagnostics) of ``name``'s plan on the fixtures; also checks determinism by seed,
    that the method asks only for the resources it declares, and that a method declared (or a plan
    marked) deterministic gives the same plan for another seed."""
    from harness.api import METHOD_RESOURCES
    from harness.method_specs import get_method

    spec = get_method(name)
    start = time.perf_counter()
    ctx = fixture_context()
    plan = spec(ctx, **(params or {}))
    seconds = time.perf_counter() - start
    n_source, d = (int(n) for n in ctx.source_embeddings.shape)
    problems = plan.validate(d=d, n_source=n_source)
    if problems:  # an invalid plan (NaN, out-of-range ids) would also fail the comparisons below, falsely
        return problems, {"convex": plan.convex, "seconds": round(seconds, 3)}
    used = sorted({key[0] for key in ctx._cache if isinstance(key, tuple) and key and key[0] in METHOD_RESOURCES})
    if spec.resources is not None and set(used) - set(spec.resources):
        problems.append(f"uses resources {sorted(set(used) - set(spec.resources))} it does not declare "
                        f"(register_method(..., resources={tuple(spec.resources)}))")
    again = spec(fixture_context(), **(params or {}))
    if not _same_plan(plan, again):
        problems.append("two runs with the same seed gave different plans")
    if plan.info.get("deterministic"):
        other = spec(_reseeded(fixture_context(), 1), **(params or {}))  # same fixtures, another ctx.seed
        if not _same_plan(plan, other):
            problems.append("marked deterministic, but another seed gives a different plan")
    return problems, {**plan.diagnostics(), "convex": plan.convex, "resources used": ", ".join(used) or "-",
                      "seconds": round(seconds, 3)}


def _reseeded(ctx: Any, seed: int) -> Any:
    """The same fixtures (drawn with seed 0) with another method seed."""
    ctx.seed = seed
    return ctx


def _same_plan(a: Any, b: Any) -> bool:
    import torch

    same_bias = (a.decoder_bias is None) == (b.decoder_bias is None) and (
        a.decoder_bias is None or torch.equal(a.decoder_bias, b.decoder_bias))
    return (torch.equal(a.mixing.to_dense(), b.mixing.to_dense()) and torch.equal(a.explicit_rows, b.explicit_rows)
            and torch.equal(a.explicit_bias, b.explicit_bias) and same_bias)
