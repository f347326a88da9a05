"""Target-language tokenizers: a WordPiece trained on the language's text, cached by content."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.util import atomic_dir, cache_dir, content_hash

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAINER_VERSION = 1  # bump when the training recipe changes, so caches are rebuilt


def train_wordpiece(texts: list[str], vocab_size: int = 30000, *, min_frequency: int = 2,
                    lowercase: bool = True) -> Any:
    """A BERT-style WordPiece (## continuations, [CLS]/[SEP] template) as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    # strip_accents would decompose Hangul and kana voicing marks; CJK ideographs split per character
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=False, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##",
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_max_length=512)


def cached_wordpiece(lang: str, texts: list[str], vocab_size: int = 30000, *, min_frequency: int = 2,
                     lowercase: bool = True) -> tuple[Any, Path]:
    """Train once per (text, recipe) and reuse: returns (tokenizer, its directory)."""
    from transformers import AutoTokenizer

    key = content_hash(TRAINER_VERSION, lang, vocab_size, min_frequency, lowercase, texts)
    path = cache_dir("tokenizers") / f"wordpiece-{lang}-{vocab_size}-{key}"
    if not (path / "tokenizer.json").exists():
        tokenizer = train_wordpiece(texts, vocab_size, min_frequency=min_frequency, lowercase=lowercase)
        with atomic_dir(path, keep=lambda p: (p / "tokenizer.json").exists()) as tmp:
            tokenizer.save_pretrained(tmp)
    return AutoTokenizer.from_pretrained(path), path


def target_tokenizer(ref: str, lang: str, *, vocab_size: int = 30000, min_frequency: int = 2,
                     lowercase: bool = True) -> tuple[Any, str]:
    """The run's target tokenizer and a provenance string: 'auto' trains on the language's text."""
    if ref != "auto":
        from harness.assets import load_tokenizer

        return load_tokenizer(ref), ref
    from harness.data import target_text

    tokenizer, path = cached_wordpiece(lang, target_text(lang), vocab_size,
                                       min_frequency=min_frequency, lowercase=lowercase)
    return tokenizer, str(path)


def run_target_tokenizer(run: dict[str, Any]) -> tuple[Any, str]:
    """The target tokenizer of a resolved run config, and its provenance."""
    return target_tokenizer(run["target_tokenizer"], run["lang"], vocab_size=run["tokenizer.vocab_size"],
                            min_frequency=run["tokenizer.min_frequency"], lowercase=run["tokenizer.lowercase"])
