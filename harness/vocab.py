"""Vocabulary canonicalisation and overlap between two tokenizers (FOCUS / SemBridge logic).

Tokens are put in a common form per tokenizer style so that "##ing" (WordPiece continuation),
"ing" (SentencePiece continuation) and "ing" (byte-BPE continuation) compare equal, and
"▁the" / "the" (WordPiece word start) / "Ġthe" (byte-BPE) compare equal.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

WORD_START = "▁"
Style = Literal["wordpiece", "sentencepiece", "bytebpe"]
SPECIAL_ROLES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")


@dataclass(frozen=True)
class OverlapOptions:
    """Which overlap tests to apply. Order (first match wins): special tokens by role
    (``match_symbols``), identical canonical form (``exact_match_all``), numbers / punctuation /
    whitespace ignoring the word-start marker (``match_symbols``), then the fuzzy form
    (``fuzzy_match_all``). Exact before symbol is the authors' (FOCUS / SemBridge) order."""

    match_symbols: bool = True
    exact_match_all: bool = True
    fuzzy_match_all: bool = True


@dataclass
class Overlap:
    """Target id -> source id for overlapping tokens, and why each matched."""

    pairs: dict[int, int] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)


def detect_style(tokens: list[str]) -> Style:
    """The tokenizer style whose marker is most common in the vocabulary."""
    counts = {
        "sentencepiece": sum(t.startswith(WORD_START) for t in tokens),
        "wordpiece": sum(t.startswith("##") for t in tokens),
        "bytebpe": sum(t.startswith("Ġ") for t in tokens),
    }
    return max(counts, key=lambda k: counts[k])  # type: ignore[return-value]


def tokenizer_style(tokenizer: Any, tokens: list[str]) -> Style:
    """The style from a fast tokenizer's model type, else from the vocabulary's markers."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        model = type(backend.model).__name__
        if model == "WordPiece":
            return "wordpiece"
        if model == "Unigram":
            return "sentencepiece"
        if model == "BPE":
            return "bytebpe" if "ByteLevel" in repr(backend.pre_tokenizer) else "sentencepiece"
    return detect_style(tokens)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table (printable stand-ins for raw bytes)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, codes)}


def _decode_bytebpe(token: str) -> str:
    table = _byte_decoder()
    if not all(ch in table for ch in token):
        return token
    try:
        return bytes(table[ch] for ch in token).decode("utf-8")
    except UnicodeDecodeError:
        return token  # a partial UTF-8 sequence stays in its byte-level spelling


def canonical(token: str, style: Style, special: bool = False) -> str:
    """The style-independent form: word-initial pieces start with "▁", continuations do not."""
    if special:
        return token
    if style == "wordpiece":
        return token[2:] if token.startswith("##") and len(token) > 2 else WORD_START + token
    if style == "bytebpe":
        text = _decode_bytebpe(token)
        return WORD_START + text[1:] if text.startswith(" ") else text
    return token


def fuzzy(form: str) -> str:
    """Canonical form without the word-start marker, lower-cased."""
    return form.replace(WORD_START, "").lower()


def is_symbol(form: str) -> bool:
    """Numbers, punctuation and whitespace (after dropping the word-start marker)."""
    text = form.replace(WORD_START, "")
    if not text:
        return True
    return all(ch.isspace() or ch.isdigit() or unicodedata.category(ch)[0] in "PSN" for ch in text)


@dataclass
class VocabForms:
    """Per-id canonical forms of one tokenizer's vocabulary."""

    tokens: list[str]
    style: Style
    special_ids: dict[str, int]  # role -> id
    forms: list[str]

    @classmethod
    def of(cls, tokenizer: Any) -> "VocabForms":
        vocab = tokenizer.get_vocab()
        tokens = [""] * (max(vocab.values()) + 1)
        for tok, idx in vocab.items():
            tokens[idx] = tok
        style = tokenizer_style(tokenizer, tokens)
        special_ids = {}
        for role in SPECIAL_ROLES:
            tok = getattr(tokenizer, role, None)
            if isinstance(tok, str) and tok in vocab:
                special_ids[role] = vocab[tok]
        specials = set(getattr(tokenizer, "all_special_ids", [])) | set(special_ids.values())
        forms = [canonical(t, style, special=i in specials) for i, t in enumerate(tokens)]
        return cls(tokens, style, special_ids, forms)


def _first_ids(keys: list[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for idx, key in enumerate(keys):
        first.setdefault(key, idx)  # the lowest source id wins
    return first


def find_overlap(source_tokenizer: Any, target_tokenizer: Any, options: OverlapOptions = OverlapOptions()) -> Overlap:
    """Target tokens that exist in the source vocabulary, by the tests ``options`` enables."""
    src, tgt = VocabForms.of(source_tokenizer), VocabForms.of(target_tokenizer)
    overlap = Overlap()

    def take(t: int, s: int | None, reason: str) -> None:
        if s is not None and t not in overlap.pairs and src.tokens[s]:
            overlap.pairs[t], overlap.reasons[t] = s, reason

    if options.match_symbols:
        for role, t in tgt.special_ids.items():  # special tokens match by role ([CLS] <-> <s>)
            take(t, src.special_ids.get(role), f"special:{role}")
    if options.exact_match_all:  # before the symbol test, as the authors' code: "##9" copies "##9", not "9"
        exact_ids = _first_ids(src.forms)
        for t, form in enumerate(tgt.forms):
            if tgt.tokens[t]:
                take(t, exact_ids.get(form), "exact")
    if options.match_symbols:
        # numbers and punctuation match whether or not they start a word
        symbol_ids = _first_ids([fuzzy(f) if f and is_symbol(f) else "\0" for f in src.forms])
        for t, form in enumerate(tgt.forms):
            if tgt.tokens[t] and is_symbol(form):
                take(t, symbol_ids.get(fuzzy(form)), "symbol")
    if options.fuzzy_match_all:
        fuzzy_ids = _first_ids([fuzzy(f) if f else "\0" for f in src.forms])
        for t, form in enumerate(tgt.forms):
            if tgt.tokens[t] and fuzzy(form):
                take(t, fuzzy_ids.get(fuzzy(form)), "fuzzy")
    return overlap
