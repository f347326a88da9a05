"""SPLADE sparse encoding over any Hugging Face masked LM.

Representation: ``max over tokens of log(1 + relu(MLM logits))``, padding masked. Because
``log1p(relu(.))`` is monotone, we take the masked max of the raw logits first and transform only
the pooled (batch x vocab) row, which gives the same float32 values with far less work.

The model is saved as a sentence-transformers SparseEncoder directory (MLMTransformer +
SpladePooling), so ``sentence_transformers.SparseEncoder(dir)`` and mteb load it unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.device import accepted_inputs, autocast, resolve_device
from harness.util import HarnessError, atomic_dir, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    import scipy.sparse
    import torch

# Module type names as written in modules.json. The legacy ``sparse_encoder.models`` paths are
# understood by every sentence-transformers release with SparseEncoder (5.0 .. 6.x).
MLM_MODULE_TYPE = "sentence_transformers.sparse_encoder.models.MLMTransformer"
POOLING_MODULE_TYPE = "sentence_transformers.sparse_encoder.models.SpladePooling"
POOLING_DIR = "1_SpladePooling"
HARNESS_CONFIG = "harness_encoder.json"

# Upper bound on the (batch x seq x vocab) logits block per forward pass: large vocabularies
# (XLM-R: 250k) would otherwise need many GB for an ordinary batch.
LOGITS_BUDGET_BYTES = 1 << 30


class SpladeEncoder:
    """Encode texts into SPLADE sparse vectors (scipy CSR, n x vocab, float32)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | None = None,
        query_max_length: int = 256,
        doc_max_length: int = 256,
        max_chars: int | None = 2000,
    ) -> None:
        import torch

        self.device = torch.device(resolve_device(device))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.doc_max_length = doc_max_length
        self.max_chars = max_chars
        self._inputs = accepted_inputs(model)

    # ---------------------------------------------------------------------------------------
    # Construction and persistence
    # ---------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, **kwargs: Any) -> "SpladeEncoder":
        """Load a Hugging Face masked-LM directory or a SparseEncoder directory written by ``save``."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        path = Path(path)
        settings: dict[str, Any] = {}
        model_dir = path
        if (path / "modules.json").exists():
            model_dir, settings = _read_sparse_encoder_dir(path)
        settings.update(kwargs)
        model = AutoModelForMaskedLM.from_pretrained(model_dir)
        import harness.segmented_tokenizer  # noqa: F401  (registers the word-segmenting tokenizer class)

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(model, tokenizer, device=device, **settings)

    def save(self, directory: str | Path, files: dict[str, str] | None = None) -> Path:
        """Write a sentence-transformers SparseEncoder directory (atomically replacing ``directory``).

        ``files``: extra text files (relative name -> text, e.g. ``{"README.md": card}``) written into
        the same directory before it is swapped into place.
        """
        directory = Path(directory)
        extra = dict(files or {})
        for name in extra:
            if Path(name).is_absolute() or ".." in Path(name).parts or not Path(name).parts:
                raise ValueError(f"extra file names must be relative paths inside the directory, got {name!r}")
        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self._write_sparse_encoder_configs(tmp)
            for name, text in extra.items():
                write_text_atomic(tmp / name, text)
        return directory

    def _write_sparse_encoder_configs(self, root: Path) -> None:
        import sentence_transformers
        import torch
        import transformers

        vocab = self.vocab_size
        write_json_atomic(root / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": MLM_MODULE_TYPE},
            {"idx": 1, "name": "1", "path": POOLING_DIR, "type": POOLING_MODULE_TYPE},
        ])
        # query_length / document_length: per-task truncation read by sentence-transformers >= 6.
        write_json_atomic(root / "sentence_bert_config.json", {
            "max_seq_length": max(self.query_max_length, self.doc_max_length),
            "do_lower_case": False,
            "query_length": self.query_max_length,
            "document_length": self.doc_max_length,
        })
        write_json_atomic(root / POOLING_DIR / "config.json", {
            "pooling_strategy": "max", "activation_function": "relu", "embedding_dimension": vocab,
        })
        write_json_atomic(root / "config_sentence_transformers.json", {
            "model_type": "SparseEncoder",
            "__version__": {
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "dot",
        })
        write_json_atomic(root / HARNESS_CONFIG, {
            "query_max_length": self.query_max_length,
            "doc_max_length": self.doc_max_length,
            "max_chars": self.max_chars,
        })

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    # ---------------------------------------------------------------------------------------
    # Encoding
    # ---------------------------------------------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: str = "query",
        batch_size: int = 32,
        max_length: int | None = None,
        max_chars: int | None = -1,
        max_active_dims: int | None = None,
        show_progress: bool = False,
    ) -> "scipy.sparse.csr_matrix":
        """Sparse vectors for ``texts`` in input order.

        ``kind`` picks the default token limit (query/doc max length); document text is cut to
        ``max_chars`` characters before tokenizing (-1: the encoder's setting, None: no cut).
        ``max_active_dims`` keeps the k largest weights per vector.
        """
        import numpy as np
        import scipy.sparse as sp

        if kind not in ("query", "document"):
            raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
        texts = self._prepare_texts(texts, kind, max_chars)
        if max_length is None:
            max_length = self.query_max_length if kind == "query" else self.doc_max_length
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first: OOM shows early
        blocks = [
            self._encode_batch([texts[i] for i in idx], max_length, max_active_dims)
            for idx in _progress(self._batches(order, batch_size, max_length), show_progress)
        ]
        if not blocks:
            return sp.csr_matrix((0, self.vocab_size), dtype=np.float32)
        stacked = sp.vstack(blocks, format="csr")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out = stacked[inverse]
        out.sort_indices()
        return out

    def _prepare_texts(self, texts: Sequence[str], kind: str, max_chars: int | None) -> list[str]:
        limit = self.max_chars if max_chars == -1 else max_chars
        if kind == "document" and limit is not None:
            return [t[:limit] for t in texts]
        return list(texts)

    def _batches(self, order: Any, batch_size: int, max_length: int) -> list[Any]:
        """Index batches, capped so the logits block stays within LOGITS_BUDGET_BYTES."""
        rows_in_budget = max(1, LOGITS_BUDGET_BYTES // (max_length * self.vocab_size * 4))
        size = max(1, min(batch_size, rows_in_budget))
        return [order[i : i + size] for i in range(0, len(order), size)]

    def _encode_batch(self, texts: list[str], max_length: int, max_active_dims: int | None) -> Any:
        import torch

        features = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        features = {k: v.to(self.device) for k, v in features.items() if k in self._inputs}
        with torch.inference_mode(), autocast(self.device):
            logits = self.model(**features).logits
            pooled = splade_pool(logits, features["attention_mask"])
        if max_active_dims is not None:
            pooled = keep_top_k(pooled, max_active_dims)
        return _to_csr(pooled)


# -------------------------------------------------------------------------------------------
# Pure tensor helpers (shared with training code)
# -------------------------------------------------------------------------------------------
def splade_pool(logits: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
    """max_t log(1 + relu(logits[:, t])) over unmasked tokens, in float32."""
    import torch

    padding = ~attention_mask.unsqueeze(-1).bool()
    # Padding gets -inf; relu later maps it (and any negative max) to 0, as masking to 0 would.
    # In place when we may (inference): the logits block is the largest tensor of the batch.
    masked = logits.masked_fill_(padding, float("-inf")) if torch.is_inference(logits) else logits.masked_fill(
        padding, float("-inf")
    )
    return torch.log1p(torch.relu(masked.amax(dim=1).float()))


def keep_top_k(reps: "torch.Tensor", k: int) -> "torch.Tensor":
    """Zero all but the k largest entries of each row."""
    import torch

    if k <= 0:
        raise ValueError(f"max_active_dims must be positive, got {k}")
    if k >= reps.shape[1]:
        return reps
    values, indices = reps.topk(k, dim=1)
    return torch.zeros_like(reps).scatter_(1, indices, values)


def _to_csr(reps: "torch.Tensor") -> "scipy.sparse.csr_matrix":
    import numpy as np
    import scipy.sparse as sp

    dense = reps.detach().cpu().numpy().astype(np.float32, copy=False)
    return sp.csr_matrix(dense)


def _progress(items: list[Any], show: bool) -> Any:
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="encode", unit="batch")


# -------------------------------------------------------------------------------------------
# SparseEncoder directory format
# -------------------------------------------------------------------------------------------
def _read_sparse_encoder_dir(root: Path) -> tuple[Path, dict[str, Any]]:
    """(directory of the MLM weights, encoder settings) from a SparseEncoder directory."""
    modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    mlm = [m for m in modules if m["type"].endswith(("MLMTransformer", "Transformer"))]
    pooling = [m for m in modules if m["type"].endswith("SpladePooling")]
    if len(mlm) != 1 or len(pooling) != 1 or len(modules) != 2:
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        raise HarnessError(f"{root}: expected MLMTransformer + SpladePooling modules, found {kinds}")
    _check_pooling(root / pooling[0]["path"] / "config.json")
    model_dir = root / mlm[0]["path"]
    return model_dir, _encoder_settings(root, model_dir)


def _check_pooling(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
    strategy = config.get("pooling_strategy", "max")
    activation = config.get("activation_function", "relu")
    if (strategy, activation) != ("max", "relu"):
        raise HarnessError(f"{config_path}: only max pooling with relu is supported, got {strategy}/{activation}")


def _encoder_settings(root: Path, model_dir: Path) -> dict[str, Any]:
    """Our own settings file if present, else the token limits sentence-transformers stored."""
    ours = root / HARNESS_CONFIG
    if ours.exists():
        return json.loads(ours.read_text(encoding="utf-8"))
    st_path = model_dir / "sentence_bert_config.json"
    st = json.loads(st_path.read_text(encoding="utf-8")) if st_path.exists() else {}
    settings = {}
    default = st.get("max_seq_length")
    for ours_key, st_key in (("query_max_length", "query_length"), ("doc_max_length", "document_length")):
        value = st.get(st_key) or default
        if value:
            settings[ours_key] = int(value)
    return settings
