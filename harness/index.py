"""A sparse document index encoded in shards on disk, resumable after an interruption.

Layout of an index folder::

    manifest.json      format, encoder signature, shard size, vocab size, n_docs, completed shards
    doc_ids.json       the document ids, in row order (written once, before the first shard)
    shard-00000.npz    scipy CSR of rows [0, shard_size), written atomically
    ...

A shard counts as done only once its file is in place *and* the manifest lists it (the manifest is
rewritten atomically after each shard), so a run killed at any point resumes at the first shard not
listed. Re-running with another corpus, encoder or shard size is refused instead of mixing shards.

Several processes (``rank`` of ``world``, by default torchrun's RANK / WORLD_SIZE; one GPU each)
share a build: rank r encodes shards r, r + world, ...; each shard's entry goes to a small
``shard-NNNNN.json`` written before the shard file, nobody rewrites the manifest per shard, and
the process that finds every shard on disk writes the complete manifest. No process group is
needed, so any launcher works, and a killed rank's shards are picked up by the next build.

    build_index(encoder, texts, doc_ids, "idx/")   # resumes if idx/ holds a partial build
    docs, doc_ids = load_index("idx/")
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from harness.device import rank_and_world
from harness.util import HarnessError, atomic_path, content_hash, read_json, write_json_atomic

if TYPE_CHECKING:
    import scipy.sparse

FORMAT = 1
MANIFEST = "manifest.json"
DOC_IDS = "doc_ids.json"
DEFAULT_SHARD_SIZE = 10_000

OnShard = Callable[[int, int], None]  # (shard index, number of shards), after the shard is on disk


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def encoder_signature(encoder: Any, **settings: Any) -> str:
    """Hash of the encoder's weights and text settings: a changed model must not reuse old shards."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(encoder.model.state_dict().items()):
        h.update(name.encode())  # raw bytes via a uint8 view: works for bf16, which numpy lacks
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return content_hash(h.hexdigest(), type(encoder.model).__name__, encoder.doc_max_length,
                        encoder.max_chars, settings)


def build_index(encoder: Any, texts: Sequence[str], doc_ids: Sequence[str], directory: str | Path, *,
                shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 32, max_active_dims: int | None = None,
                on_shard: OnShard | None = None, show_progress: bool = False, rank: int | None = None,
                world: int | None = None) -> Path:
    """Encode ``texts`` as documents into ``directory`` shard by shard; completed shards are kept.

    ``on_shard`` is called after each newly written shard (progress, or a test's interruption).
    ``rank`` / ``world``: this process's part of a shared build (default: RANK / WORLD_SIZE, else 0 / 1).
    """
    rank, world = rank_and_world(rank, world)
    if len(texts) != len(doc_ids):
        raise HarnessError(f"{len(texts)} texts but {len(doc_ids)} doc ids: pass one id per text")
    if shard_size <= 0:
        raise HarnessError(f"shard_size must be positive, got {shard_size}")
    directory = Path(directory)
    header = {"format": FORMAT, "n_docs": len(doc_ids), "shard_size": shard_size,
              "vocab_size": encoder.vocab_size, "doc_ids_hash": content_hash(list(map(str, doc_ids))),
              "encoder": encoder_signature(encoder, max_active_dims=max_active_dims)}
    manifest = _start(directory, header, doc_ids)
    n_shards = -(-len(doc_ids) // shard_size)
    _adopt_rank_shards(directory, manifest, n_shards)
    for i in _progress(range(rank, n_shards, world), show_progress):
        if _shard_done(directory, manifest, i) or (world > 1 and (directory / shard_name(i)).is_file()):
            continue
        start, stop = i * shard_size, min((i + 1) * shard_size, len(doc_ids))
        matrix = encoder.encode(list(texts[start:stop]), kind="document", batch_size=batch_size,
                                max_active_dims=max_active_dims)
        entry = {"file": shard_name(i), "start": start, "stop": stop, "nnz": int(matrix.nnz)}
        if world > 1:
            write_json_atomic(directory / _entry_name(i), entry)  # before the shard: a shard file implies it
            _write_shard(directory / shard_name(i), matrix)
        else:
            _write_shard(directory / shard_name(i), matrix)
            manifest["shards"][str(i)] = entry
            manifest["complete"] = len(manifest["shards"]) == n_shards
            write_json_atomic(directory / MANIFEST, manifest)
        if on_shard is not None:
            on_shard(i, n_shards)
    if world > 1:
        _complete_if_all_there(directory, n_shards)
    elif not manifest.get("complete"):  # an empty corpus, or every shard was already there
        manifest["complete"] = len(manifest["shards"]) == n_shards
        write_json_atomic(directory / MANIFEST, manifest)
    return directory


def _entry_name(index: int) -> str:
    return f"shard-{index:05d}.json"


def _adopt_rank_shards(directory: Path, manifest: dict[str, Any], n_shards: int) -> None:
    """List (in memory) the shards that ranks of a shared build finished: file and entry on disk."""
    for i in range(n_shards):
        if str(i) not in manifest["shards"] and (directory / shard_name(i)).is_file() \
                and (directory / _entry_name(i)).is_file():
            manifest["shards"][str(i)] = read_json(directory / _entry_name(i))


def _complete_if_all_there(directory: Path, n_shards: int) -> None:
    """Write the complete manifest once every shard is on disk (any rank may; the content is the same)."""
    manifest = read_json(directory / MANIFEST)
    _adopt_rank_shards(directory, manifest, n_shards)
    if all(_shard_done(directory, manifest, i) for i in range(n_shards)):
        manifest["shards"] = {str(i): manifest["shards"][str(i)] for i in range(n_shards)}
        manifest["complete"] = True
        write_json_atomic(directory / MANIFEST, manifest)


def _start(directory: Path, header: dict[str, Any], doc_ids: Sequence[str]) -> dict[str, Any]:
    """The manifest to continue from: the existing one if it matches ``header``, else a new one."""
    path = directory / MANIFEST
    if path.exists():
        manifest = read_json(path)
        changed = [k for k, v in header.items() if manifest.get(k) != v]
        if changed:
            raise HarnessError(f"index {directory} was built with a different {', '.join(changed)}: "
                               f"delete the folder or choose another one")
        return manifest
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / DOC_IDS, [str(d) for d in doc_ids])
    manifest = {**header, "shards": {}, "complete": False}
    write_json_atomic(path, manifest)
    return manifest


def _shard_done(directory: Path, manifest: dict[str, Any], index: int) -> bool:
    entry = manifest["shards"].get(str(index))
    return entry is not None and (directory / entry["file"]).is_file()


def _write_shard(path: Path, matrix: "scipy.sparse.csr_matrix") -> None:
    import scipy.sparse as sp

    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: save_npz adds no suffix
        sp.save_npz(f, matrix.tocsr(), compressed=False)


def wait_for_index(directory: str | Path, *, poll_seconds: float = 5.0, timeout: float | None = None,
                   echo: Callable[[str], None] | None = None) -> Path:
    """Return once the shared build in ``directory`` is complete (the other ranks' shards are on disk)."""
    import time

    directory = Path(directory)
    start, told = time.monotonic(), False
    while True:
        manifest = read_json(directory / MANIFEST)
        n_shards = -(-manifest["n_docs"] // manifest["shard_size"])
        if not manifest.get("complete"):
            _complete_if_all_there(directory, n_shards)
            manifest = read_json(directory / MANIFEST)
        if manifest.get("complete"):
            return directory
        if timeout is not None and time.monotonic() - start > timeout:
            raise HarnessError(f"index {directory} is still incomplete after {timeout:.0f} s: is every rank running?")
        if echo is not None and not told:
            echo(f"waiting for the other ranks' shards in {directory}")
            told = True
        time.sleep(poll_seconds)


def load_index(directory: str | Path) -> tuple["scipy.sparse.csr_matrix", list[str]]:
    """(documents x vocab CSR, doc ids in row order) of a complete index."""
    import numpy as np
    import scipy.sparse as sp

    directory = Path(directory)
    if not (directory / MANIFEST).exists():
        raise HarnessError(f"{directory} is not an index (no {MANIFEST}): build it with build_index")
    manifest = read_json(directory / MANIFEST)
    n_shards = -(-manifest["n_docs"] // manifest["shard_size"])
    missing = [i for i in range(n_shards) if not _shard_done(directory, manifest, i)]
    if missing:
        raise HarnessError(f"index {directory} is incomplete ({n_shards - len(missing)}/{n_shards} shards): "
                           f"run build_index again with the same corpus and encoder to resume")
    doc_ids = read_json(directory / DOC_IDS)
    blocks = [sp.load_npz(directory / shard_name(i)) for i in range(n_shards)]
    matrix = (sp.vstack(blocks, format="csr") if blocks
              else sp.csr_matrix((0, manifest["vocab_size"]), dtype=np.float32))
    if matrix.shape != (len(doc_ids), manifest["vocab_size"]):
        raise HarnessError(f"index {directory} is inconsistent ({matrix.shape} vs {len(doc_ids)} ids): rebuild it")
    return matrix, doc_ids


def _progress(items: Any, show: bool) -> Any:
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="index", unit="shard")
