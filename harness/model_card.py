"""The model card (``model/README.md``) of a run's saved SparseEncoder directory.

One function, ``model_card``: the run config, its metrics, plan diagnostics and target tokenizer
provenance in, markdown out: YAML front matter the Hugging Face hub reads (language, library,
pipeline tag, tags, ``base_model`` when the source model is a hub id), then what the model is, how it
was made, how it scored, what to cite and how to load it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_UNDETERMINED = ("und", "")


def is_hub_id(ref: str) -> bool:
    """``owner/name`` that is not a local path (``pocket:NAME`` and directories are not hub ids)."""
    return bool(_HUB_ID.fullmatch(ref)) and not Path(ref).expanduser().exists()


def model_card(run: dict[str, Any], metrics: dict[str, float], *, run_id: str, plan: dict[str, Any] | None = None,
               target_tokenizer: str | None = None, segmenter: str | None = None) -> str:
    """Markdown of the card. ``segmenter``: the word segmenter of a segmented (``wordpiece-seg``)
    tokenizer, whose class loads only with ``trust_remote_code=True``; None for a plain tokenizer."""
    import yaml

    from harness.method_specs import get_method

    source = run["source_model"]
    front: dict[str, Any] = {}
    if run["lang"] not in _UNDETERMINED:
        front["language"] = [run["lang"]]
    front.update({"library_name": "sentence-transformers", "pipeline_tag": "feature-extraction",
                  "tags": ["sentence-transformers", "sparse-encoder", "splade", "language-transfer",
                           f"init-{run['method']}", run["setting"]]})
    if is_hub_id(source):
        front["base_model"] = source
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# SPLADE transferred to `{run['lang']}` by `{run['method']}` ({run['setting']})", "",
             "A sparse (SPLADE) encoder adapted from an English model by swapping in a target-language "
             "vocabulary and initializing the new token embeddings, MLM decoder weight and decoder bias with "
             "an initialization method; written by sparse-transfer-harness.", ""]
    if is_hub_id(source):
        origin = f"[`{source}`](https://huggingface.co/{source})"
    elif source.startswith("pocket:"):
        origin = f"`{source}` (a pocket asset of the harness, from a package registry; not a Hugging Face hub id)"
    else:
        origin = f"`{source}` (a local directory, not a Hugging Face hub id)"
    provenance = target_tokenizer or run.get("target_tokenizer", "?")
    lines += [f"- source model: {origin}",
              f"- target tokenizer: `{provenance}`"
              + (f" (word segmenter {segmenter})" if segmenter and segmenter not in provenance else ""),
              f"- initialization method: `{run['method']}` with parameters `{_compact(run['method_params'])}`",
              f"- setting: {run['setting']}", f"- run id: `{run_id}` (profile `{run.get('profile', '?')}`, "
              f"seed {run['seed']})"]
    citations = []
    spec = get_method(run["method"])
    if spec.citation:
        citations.append(f"- method `{run['method']}`: {spec.citation}")
    if run["setting"] == "fine-tuned":
        objective = run.get("train.objective", "splade")
        lines += [f"- objective: `{objective}` on `{run.get('train_dataset', '?')}`",
                  "- training: " + ", ".join(f"`{k}={_compact(v)}`" for k, v in sorted(run.items())
                                             if k.startswith("train.") and k != "train.objective")]
        if cite := _objective_citation(objective):
            citations.append(f"- objective `{objective}`: {cite}")
    if plan:
        kinds = {k: plan[k] for k in ("n_target", "n_source", "copied", "mixed", "explicit",
                                      "mean_support_mixed") if k in plan}
        lines.append("- plan: " + ", ".join(f"{k} {_number(v)}" for k, v in kinds.items()))
    lines += ["", f"## Evaluation on `{run['dataset']}`", "", "| metric | value |", "|---|---|"]
    lines += [f"| {m} | {v:.4f} |" for m, v in metrics.items()]
    lines += ["", "Exact sparse search over the whole collection, scored with ranx.", ""]
    remote = ", trust_remote_code=True" if segmenter else ""
    lines += ["## Usage", "", "```python", "from sentence_transformers import SparseEncoder", "",
              f'model = SparseEncoder("path/to/this/model"{remote})',
              f'queries = model.encode_query(["..."])',
              f'documents = model.encode_document(["...", "..."])',
              "scores = model.similarity(queries, documents)", "```", ""]
    if segmenter:
        lines += [f"The tokenizer segments words with {segmenter} before WordPiece (a `SegmentedTokenizerFast` "
                  f"whose code is in this directory): loading needs `trust_remote_code=True` and the "
                  f"segmenter package installed.", ""]
    lines += ["The harness encoder cuts documents to `encode.doc_max_chars` characters before tokenizing "
              f"({run.get('encode.doc_max_chars')}); sentence-transformers does not, so very long documents "
              "can encode differently.", ""]
    lines += ["## Citation", ""]
    lines += citations or ["No citation declared for this method."]
    return "\n".join(lines) + "\n"


def _objective_citation(name: str) -> str:
    """The objective class's ``citation`` attribute ('' when it declares none or does not load here)."""
    from harness.objectives import get_objective

    try:
        cls = get_objective(name)
    except Exception:  # a plugin objective missing here must not stop the card
        return ""
    return str(getattr(cls, "citation", "") or "")


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
