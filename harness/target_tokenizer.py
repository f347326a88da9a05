"""Target-language tokenizers trained on the language's text by a recipe, cached by content.

Recipes (config key ``tokenizer.recipe``; unset means ``wordpiece-bert``, the pocket default):

- ``wordpiece-bert``: BERT WordPiece (## continuations), BERT normaliser and pre-tokenizer, CJK
  ideographs isolated, so every Chinese token (and most kanji) is one character.
- ``unigram``: SentencePiece-style Unigram trained with ``tokenizers``: "▁" marks word starts
  (Metaspace), punctuation is isolated, CJK is not, so multi-character words can become tokens.
- ``wordpiece-seg``: WordPiece over a word segmenter's words: jieba (zh), fugashi + unidic-lite
  (ja), kiwipiepy (ko; morpheme surfaces). Other languages have no segmenter here and get BERT's
  whitespace + punctuation pre-tokenisation without CJK isolation (for ru/en that is the
  ``wordpiece-bert`` vocabulary again). The segmentation is a text pre-pass of the tokenizer
  class (``harness.segmented_tokenizer``), applied when training and at every encode.

All three share BERT's special tokens ([PAD] [UNK] [CLS] [SEP] [MASK], "[CLS] $A [SEP]"), so the
transplant matches them to the uncased BERT source by role, and the BERT normaliser (lower-cased
when ``tokenizer.lowercase``, accents kept). The vocabulary size is ``tokenizer.vocab_size``.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from harness.util import HarnessError, atomic_dir, cache_dir, content_hash, read_entry, read_or_build, write_json_atomic

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAINER_VERSION = 1  # bump when the training recipe changes, so caches are rebuilt
RECIPES = {
    "wordpiece-bert": "WordPiece, BERT pre-tokenizer, CJK characters isolated (default)",
    "unigram": "SentencePiece-style Unigram (Metaspace, punctuation isolated, no CJK isolation)",
    "wordpiece-seg": "WordPiece over a word segmenter (zh jieba, ja fugashi + unidic-lite, ko kiwipiepy; "
                     "other languages: whitespace + punctuation)",
}
DEFAULT_RECIPE = "wordpiece-bert"
RECIPE_FILE = "harness_recipe.json"
SEGMENTED_LAYOUT = 2  # wordpiece-seg folders hold segmented_tokenizer.json (not tokenizer.json) since layout 2


def check_recipe(recipe: str | None) -> str:
    """The recipe name (None -> the default); an unknown one is a HarnessError with "did you mean"."""
    recipe = DEFAULT_RECIPE if recipe is None else recipe
    if recipe not in RECIPES:
        close = difflib.get_close_matches(str(recipe), list(RECIPES), n=1, cutoff=0.4)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise HarnessError(f"unknown tokenizer.recipe '{recipe}'{hint}: set tokenizer.recipe to one of "
                           f"{', '.join(RECIPES)}")
    return recipe


def recipe_segmenter(recipe: str, lang: str) -> tuple[str | None, dict[str, str]]:
    """(segmenter name or None, its package versions) of ``recipe`` for ``lang``; a missing segmenter
    package is one HarnessError line naming the recipe and the pip command."""
    if recipe != "wordpiece-seg":
        return None, {}
    from harness.segmented_tokenizer import SegmenterMissingError, segmenter_for, segmenter_versions

    name = segmenter_for(lang)
    if name is None:
        return None, {}
    try:
        return name, segmenter_versions(name)
    except SegmenterMissingError as err:
        raise HarnessError(f"tokenizer.recipe 'wordpiece-seg' for '{lang}': {err}") from None


def _bert_normalizer(lowercase: bool, isolate_cjk: bool) -> Any:
    from tokenizers import normalizers

    # strip_accents would decompose Hangul and kana voicing marks; CJK ideographs split per character
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=isolate_cjk, strip_accents=False,
                                      lowercase=lowercase)


def _bert_template(tok: Any) -> Any:
    from tokenizers import processors

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])


def _special_kwargs() -> dict[str, Any]:
    return dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                model_max_length=512)


def _wordpiece_backend(texts: Any, vocab_size: int, min_frequency: int, lowercase: bool, isolate_cjk: bool,
                       length: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = _bert_normalizer(lowercase, isolate_cjk)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##",
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    tok.post_processor = _bert_template(tok)
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def train_wordpiece(texts: list[str], vocab_size: int = 30000, *, min_frequency: int = 2,
                    lowercase: bool = True) -> Any:
    """A BERT-style WordPiece (## continuations, [CLS]/[SEP] template) as a fast HF tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = _wordpiece_backend(texts, vocab_size, min_frequency, lowercase, True, len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=tok, **_special_kwargs())


def train_unigram(texts: list[str], vocab_size: int = 30000, *, lowercase: bool = True) -> Any:
    """A SentencePiece-style Unigram: "▁" word starts, punctuation isolated, CJK runs kept whole."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = _bert_normalizer(lowercase, False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
                                                 pre_tokenizers.Punctuation(behavior="isolated")])
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]",
                                      max_piece_length=16, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    pieces = json.loads(tok.to_str())["model"]["vocab"]
    n_special = len(SPECIAL_TOKENS)
    pieces = [(str(p), float(s)) for p, s in pieces[:n_special]] + _canonical_pieces(pieces[n_special:])
    trained = tok
    tok = Tokenizer(models.Unigram(pieces, unk_id=SPECIAL_TOKENS.index("[UNK]")))
    tok.normalizer, tok.pre_tokenizer = trained.normalizer, trained.pre_tokenizer
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.post_processor = _bert_template(tok)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=tok, **_special_kwargs())


_PENALTY_STEP = 1e-4  # tokenizers' UnigramTrainer: characters it must keep get min score - k * 1e-4


def _canonical_pieces(pieces: list[list[Any]]) -> list[tuple[str, float]]:
    """Unigram pieces in an order that depends on the text only.

    The trainer appends the characters it must keep but did not select with scores min - k * 1e-4,
    k following hash-set order, and orders equal scores by hash too: the same text then gives other
    ids (and other scores for those characters) from run to run. Here the characters of that band
    (single characters at the bottom, 1e-4 apart or tied) get its scores in code-point order, scores are rounded to 1e-8, and pieces are sorted by (score desc, piece).
    """
    pieces = [(str(p), float(s)) for p, s in pieces]
    singles = sorted(((s, p) for p, s in pieces if len(p) == 1), reverse=True)
    band = singles[-1:]
    for score, piece in reversed(singles[:-1]):  # upwards from the lowest, while 1e-4 apart (or tied)
        gap = score - band[-1][0]
        if abs(gap - _PENALTY_STEP) > 1e-7 and abs(gap) > 1e-9:
            break
        band.append((score, piece))
    if len(band) > 1:
        rescored = dict(zip(sorted(p for _, p in band), sorted((s for s, _ in band), reverse=True)))
        pieces = [(p, rescored.get(p, s) if len(p) == 1 else s) for p, s in pieces]
    pieces = [(p, round(s, 8)) for p, s in pieces]  # EM sums in parallel: the last bits vary between runs
    return sorted(pieces, key=lambda p: (-p[1], p[0]))


def train_segmented_wordpiece(texts: list[str], segmenter: str | None, vocab_size: int = 30000, *,
                              min_frequency: int = 2, lowercase: bool = True) -> Any:
    """WordPiece over ``segmenter``'s words (None: whitespace + punctuation), CJK not isolated; the
    returned tokenizer segments its input the same way at encode time."""
    from harness.segmented_tokenizer import SegmentedTokenizerFast, load_segmenter

    if segmenter is not None:
        segment = load_segmenter(segmenter)
        words = (" ".join(segment(text)) for text in texts)
    else:
        words = iter(texts)
    tok = _wordpiece_backend(words, vocab_size, min_frequency, lowercase, False, len(texts))
    return SegmentedTokenizerFast(tokenizer_object=tok, segmenter=segmenter, **_special_kwargs())


def train_tokenizer(texts: list[str], recipe: str | None = None, lang: str = "und", vocab_size: int = 30000, *,
                    min_frequency: int = 2, lowercase: bool = True) -> Any:
    """A target tokenizer made by ``recipe`` (see the module doc) from ``texts``, not cached."""
    recipe = check_recipe(recipe)
    if recipe == "wordpiece-bert":
        return train_wordpiece(texts, vocab_size, min_frequency=min_frequency, lowercase=lowercase)
    if recipe == "unigram":
        return train_unigram(texts, vocab_size, lowercase=lowercase)
    segmenter, _ = recipe_segmenter(recipe, lang)
    return train_segmented_wordpiece(texts, segmenter, vocab_size, min_frequency=min_frequency, lowercase=lowercase)


def cached_wordpiece(lang: str, texts: list[str], vocab_size: int = 30000, *, min_frequency: int = 2,
                     lowercase: bool = True) -> tuple[Any, Path]:
    """The ``wordpiece-bert`` recipe, trained once per (text, settings) and reused: (tokenizer, its directory)."""
    from transformers import AutoTokenizer

    key = content_hash(TRAINER_VERSION, lang, vocab_size, min_frequency, lowercase, texts)
    path = cache_dir("tokenizers") / f"wordpiece-{lang}-{vocab_size}-{key}"

    def build() -> Any:
        trained = train_wordpiece(texts, vocab_size, min_frequency=min_frequency, lowercase=lowercase)
        with atomic_dir(path, keep=lambda p: (p / "tokenizer.json").exists(), sealed=True) as tmp:
            trained.save_pretrained(tmp)
        return AutoTokenizer.from_pretrained(path)

    def read() -> Any:
        return read_entry(path, AutoTokenizer.from_pretrained, check=_file_problem("tokenizer.json"))

    return read_or_build(path, read, build), path


def cached_tokenizer(lang: str, texts: list[str], recipe: str | None = None, vocab_size: int = 30000, *,
                     min_frequency: int = 2, lowercase: bool = True) -> tuple[Any, Path]:
    """``recipe``'s tokenizer, trained once per (text, recipe, segmenter and its version, settings) and
    reused: (tokenizer, its directory). ``wordpiece-bert`` keeps the cache of ``cached_wordpiece``."""
    recipe = check_recipe(recipe)
    if recipe == "wordpiece-bert":
        return cached_wordpiece(lang, texts, vocab_size, min_frequency=min_frequency, lowercase=lowercase)
    segmenter, versions = recipe_segmenter(recipe, lang)
    layout = [SEGMENTED_LAYOUT] if recipe == "wordpiece-seg" else []
    key = content_hash(TRAINER_VERSION, recipe, segmenter, versions, lang, vocab_size, min_frequency, lowercase, texts,
                       *layout)
    path = cache_dir("tokenizers") / f"{recipe}-{lang}-{vocab_size}-{key}"

    def build() -> Any:
        trained = train_tokenizer(texts, recipe, lang, vocab_size, min_frequency=min_frequency, lowercase=lowercase)
        with atomic_dir(path, keep=lambda p: (p / RECIPE_FILE).exists(), sealed=True) as tmp:
            trained.save_pretrained(tmp)
            write_json_atomic(tmp / RECIPE_FILE, {"recipe": recipe, "lang": lang, "segmenter": segmenter,
                                           "segmenter_versions": versions, "vocab_size": vocab_size,
                                           "min_frequency": min_frequency, "lowercase": lowercase})
        return load_trained(path, recipe)

    def read() -> Any:
        return read_entry(path, lambda p: load_trained(p, recipe), check=_file_problem(RECIPE_FILE))

    return read_or_build(path, read, build), path


def _file_problem(name: str) -> Any:
    """A cache check: the folder holds ``name`` (the file that marks a finished build)."""
    return lambda path: None if (path / name).is_file() else f"{name}: missing"


def load_trained(path: Path, recipe: str) -> Any:
    """A tokenizer this module saved (a ``wordpiece-seg`` one as the segmenting class)."""
    if recipe == "wordpiece-seg":
        from harness.segmented_tokenizer import SegmentedTokenizerFast

        return SegmentedTokenizerFast.from_pretrained(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def describe(recipe: str, lang: str, path: Path | str) -> str:
    """Provenance of a trained tokenizer: its directory, plus the segmenter of ``wordpiece-seg``."""
    if recipe != "wordpiece-seg":
        return str(path)
    segmenter, _ = recipe_segmenter(recipe, lang)
    return f"{path} (segmenter {segmenter})" if segmenter else f"{path} (no segmenter for '{lang}': whitespace + punctuation)"


def target_tokenizer(ref: str, lang: str, *, vocab_size: int = 30000, min_frequency: int = 2,
                     lowercase: bool = True, recipe: str | None = None,
                     training_text: str = "train-pages") -> tuple[Any, str]:
    """The run's target tokenizer and a provenance string: 'auto' trains one by ``recipe`` on the
    language's ``training_text`` (see ``harness.data.target_text``)."""
    if ref != "auto":
        if recipe is not None:
            raise HarnessError(f"tokenizer.recipe '{recipe}' trains a tokenizer, but target_tokenizer is '{ref}': "
                               f"set target_tokenizer=auto or unset tokenizer.recipe")
        from harness.assets import load_tokenizer

        return load_tokenizer(ref), ref
    from harness.data import target_text

    recipe = check_recipe(recipe)
    recipe_segmenter(recipe, lang)  # a missing segmenter fails before the text is loaded
    tokenizer, path = cached_tokenizer(lang, target_text(lang, training_text), recipe, vocab_size,
                                       min_frequency=min_frequency, lowercase=lowercase)
    return tokenizer, describe(recipe, lang, path)


def run_target_tokenizer(run: dict[str, Any], source_tok: Any = None) -> tuple[Any, str]:
    """The target tokenizer of a resolved run config, and its provenance. Given the source tokenizer and
    ``vocab_mode=extend``: the source vocabulary followed by the new target tokens (the model's
    vocabulary); without it, the target tokenizer as trained (its analysis, e.g. for BM25)."""
    from harness.config import run_value

    tokenizer, ref = _run_tokenizer(run)
    if source_tok is not None and run_value(run, "vocab_mode") == "extend":
        tokenizer = extend_tokenizer(source_tok, tokenizer)
        ref = f"{ref} (extending the source vocabulary: {len(source_tok)} + {len(tokenizer) - len(source_tok)} tokens)"
    return tokenizer, ref


def _run_tokenizer(run: dict[str, Any]) -> tuple[Any, str]:
    from harness.config import run_value

    return target_tokenizer(run["target_tokenizer"], run["lang"], vocab_size=run["tokenizer.vocab_size"],
                            min_frequency=run["tokenizer.min_frequency"], lowercase=run["tokenizer.lowercase"],
                            recipe=run.get("tokenizer.recipe"), training_text=run_value(run, "training_text"))


# --------------------------------------------------------------------------------------------
# Vocabulary mode "extend": the source vocabulary, then the target tokens it lacks
# --------------------------------------------------------------------------------------------
def extend_tokenizer(source_tok: Any, target_tok: Any) -> Any:
    """A tokenizer with the target's analysis (normalizer, pre-tokenizer, segmenter) whose vocabulary is
    the source's, at the source's ids, followed by the target tokens the source lacks (as FOCUS's
    extension study and SemBridge's ``extend_tokenizer``): English keeps its tokens, so a transferred
    model reads both languages. WordPiece targets only: a Unigram cannot hold WordPiece's ``##`` pieces."""
    import json

    from tokenizers import Tokenizer

    spec = json.loads(target_tok.backend_tokenizer.to_str())
    if spec["model"]["type"] != "WordPiece":
        raise HarnessError(f"vocab_mode=extend needs a WordPiece target tokenizer, got {spec['model']['type']}: "
                           f"set tokenizer.recipe=wordpiece-bert or wordpiece-seg")
    source = source_tok.get_vocab()
    if sorted(source.values()) != list(range(len(source))):
        raise HarnessError("vocab_mode=extend needs a source vocabulary with contiguous ids")
    vocab = {token: i for token, i in sorted(source.items(), key=lambda item: item[1])}
    for token, _ in sorted(target_tok.get_vocab().items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    spec["model"]["vocab"] = vocab
    for added in spec.get("added_tokens", []):
        added["id"] = vocab[added["content"]]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [vocab[token] for token in special["tokens"]]
    backend = Tokenizer.from_str(json.dumps(spec))
    kwargs = {k: v for k, v in target_tok.init_kwargs.items() if k in ("segmenter",)}
    return type(target_tok)(tokenizer_object=backend, **kwargs, **_special_kwargs())
