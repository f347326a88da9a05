"""A fast WordPiece tokenizer that word-segments text (jieba, fugashi, kiwipiepy) before the Rust pipeline.

A ``tokenizers`` pre-tokenizer cannot call a Python segmenter once saved to tokenizer.json, so the
segmentation is a text pre-pass in the tokenizer class: every encoding entry point (``__call__``,
``encode``, ``tokenize``, batches, pairs) goes through ``_encode_plus`` (transformers 5) or
``_batch_encode_plus`` (transformers 4), where each text becomes its words joined by single spaces;
the saved tokenizer.json (BERT normaliser without CJK isolation, BERT pre-tokenizer) then splits on
those spaces. ``decode``, the vocabulary and ``backend_tokenizer`` are the ordinary fast tokenizer's
(the backend alone does not segment: call ``segment(text)`` first). Offsets refer to the segmented
text.

This file is self-contained on purpose (transformers and the segmenters only, no harness import):
``save_pretrained`` copies it next to the tokenizer files and writes ``auto_map``, so a saved model
loads elsewhere with ``AutoTokenizer.from_pretrained(dir, trust_remote_code=True)``
(sentence-transformers: ``SparseEncoder(dir, trust_remote_code=True)``) when the segmenter package
is installed. Importing this module registers the class with AutoTokenizer, so in a process that
imported it the plain ``AutoTokenizer.from_pretrained(dir)`` finds it too. Without either, loading
fails (the backend is saved as segmented_tokenizer.json, so there is no tokenizer.json to fall back on).
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Any, Callable

from transformers import AutoTokenizer, PretrainedConfig, PreTrainedTokenizerFast

# language -> (segmenter name, Python packages whose versions identify it, pip requirement)
SEGMENTERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "zh": ("jieba", ("jieba",), "jieba"),
    "ja": ("fugashi", ("fugashi", "unidic-lite"), "fugashi unidic-lite"),
    "ko": ("kiwipiepy", ("kiwipiepy", "kiwipiepy_model"), "kiwipiepy"),
}
_MODULES = {"jieba": "jieba", "fugashi": "fugashi", "kiwipiepy": "kiwipiepy"}


class SegmenterMissingError(ImportError):
    """The segmenter package of a segmented tokenizer is not installed."""


def segmenter_for(lang: str) -> str | None:
    """The segmenter used for ``lang`` (None: whitespace and punctuation only)."""
    return SEGMENTERS[lang][0] if lang in SEGMENTERS else None


def segmenter_versions(name: str) -> dict[str, str]:
    """Installed versions of the packages behind segmenter ``name`` (raises SegmenterMissingError)."""
    packages, pip = next((p, r) for n, p, r in SEGMENTERS.values() if n == name)
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            raise SegmenterMissingError(
                f"word segmenter '{name}' needs the Python package '{package}': pip install {pip} "
                f"(or pip install -e '.[segmenters]')") from None
    return versions


_LOADED: dict[str, Callable[[str], list[str]]] = {}


def load_segmenter(name: str) -> Callable[[str], list[str]]:
    """text -> surface words (whitespace dropped), for segmenter ``name``; loaded once per process."""
    if name in _LOADED:
        return _LOADED[name]
    if name not in _MODULES:
        known = ", ".join(sorted(_MODULES))
        raise ValueError(f"unknown word segmenter '{name}'; segmenters: {known}")
    segmenter_versions(name)  # a clear error when a package is missing
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as err:
        raise SegmenterMissingError(f"word segmenter '{name}' fails to import ({err}): reinstall it") from None
    if name == "jieba":
        import logging

        module.setLogLevel(logging.WARNING)  # no "Building prefix dict" lines on stderr
        engine = module.Tokenizer()

        def segment(text: str) -> list[str]:
            return [w for w in engine.lcut(text, HMM=True) if w.strip()]
    elif name == "fugashi":
        tagger = module.Tagger()  # unidic-lite's dictionary when installed

        def segment(text: str) -> list[str]:
            return [word.surface for word in tagger(text) if word.surface.strip()]
    else:
        kiwi = module.Kiwi()

        def segment(text: str) -> list[str]:
            return _surface_spans(text, [(t.start, t.start + t.len) for t in kiwi.tokenize(text)])
    _LOADED[name] = segment
    return segment


def _surface_spans(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The text's surface words from morpheme spans: overlapping spans (했 = 하 + 었) merge; any
    uncovered non-space text is kept as its own words."""
    words, end = [], 0
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    for start, stop in merged:
        words.extend(text[end:start].split())
        words.append(text[start:stop])
        end = max(end, stop)
    words.extend(text[end:].split())
    return [w for w in words if w.strip()]


TOKENIZER_FILE = "segmented_tokenizer.json"  # not tokenizer.json: a plain loader must fail, not skip segmenting


class SegmentedTokenizerFast(PreTrainedTokenizerFast):
    """A fast tokenizer whose input text is word-segmented by ``segmenter`` first (see module doc).

    Its backend is saved as ``segmented_tokenizer.json``: a loader that does not know this class
    (AutoTokenizer on a model directory without ``trust_remote_code``) then finds no tokenizer.json
    and fails, instead of loading a tokenizer that silently does not segment.
    """

    vocab_files_names = {"segmented_file": TOKENIZER_FILE}

    def __init__(self, *args: Any, segmented_file: str | None = None, **kwargs: Any) -> None:
        # the backend comes from segmented_tokenizer.json as saved (there is no tokenizer.json for
        # transformers 5 to rebuild a subclass's backend from); ``segmenter`` stays an init kwarg, so
        # tokenizer_config.json keeps it
        if segmented_file is not None and kwargs.get("tokenizer_object") is None:
            from tokenizers import Tokenizer

            kwargs["tokenizer_object"] = Tokenizer.from_file(segmented_file)
        super().__init__(*args, **kwargs)

    @property
    def segmenter(self) -> str | None:
        return self.init_kwargs.get("segmenter")

    def _save_pretrained(self, save_directory: Any, file_names: tuple[str, ...], legacy_format: bool | None = None,
                         filename_prefix: str | None = None) -> tuple[str, ...]:
        path = os.path.join(str(save_directory), (filename_prefix + "-" if filename_prefix else "") + TOKENIZER_FILE)
        self.backend_tokenizer.save(path)
        return (*file_names, path)

    def segment(self, text: str) -> str:
        """``text`` as its words joined by single spaces (unchanged without a segmenter)."""
        if self.segmenter is None or not text:
            return text
        return " ".join(load_segmenter(self.segmenter)(text))

    def _segment_input(self, value: Any, split_into_words: bool) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            return self.segment(value)
        if isinstance(value, tuple) and len(value) == 2 and not split_into_words:  # a (text, pair) item
            return tuple(self._segment_input(v, split_into_words) for v in value)
        if isinstance(value, (list, tuple)):
            if split_into_words and value and isinstance(value[0], str):
                return [w for word in value for w in (self.segment(word).split() or [word])]
            return type(value)(self._segment_input(v, split_into_words) for v in value)
        return value

    if hasattr(PreTrainedTokenizerFast, "_batch_encode_plus"):  # transformers 4: every path batches
        def _batch_encode_plus(self, batch_text_or_text_pairs: Any, *args: Any, **kwargs: Any) -> Any:
            split = bool(kwargs.get("is_split_into_words", False))
            batch = [self._segment_input(item, split) for item in batch_text_or_text_pairs]
            return super()._batch_encode_plus(batch, *args, **kwargs)
    else:  # transformers 5: tokenize, __call__, encode and batches all reach _encode_plus
        def _encode_plus(self, text: Any, text_pair: Any = None, *args: Any, **kwargs: Any) -> Any:
            split = bool(kwargs.get("is_split_into_words", False))
            return super()._encode_plus(self._segment_input(text, split), self._segment_input(text_pair, split),
                                        *args, **kwargs)


class _SegmentedTokenizerConfig(PretrainedConfig):
    """Only a key for AutoTokenizer's registry (it maps config classes to tokenizer classes)."""

    model_type = "harness-segmented-tokenizer"


SegmentedTokenizerFast.register_for_auto_class("AutoTokenizer")  # save_pretrained copies this file, writes auto_map
AutoTokenizer.register(_SegmentedTokenizerConfig, fast_tokenizer_class=SegmentedTokenizerFast, exist_ok=True)
