"""Apply a TransferPlan to every vocabulary-indexed tensor of a masked LM.

Input embeddings ``E_t = M E_s`` (explicit rows set directly), the MLM decoder weight (tied: it
shares the new input matrix; untied: ``D_t = M D_s``) and every decoder bias ``b_t = M b_s``
(explicit tokens take ``explicit_bias``) -- never zero-padded, unless the plan sets
``decoder_bias`` (an ablation: the whole target bias given explicitly). The MLM transform block is kept.
Works through ``get_input_embeddings`` / ``get_output_embeddings`` so BERT (cls.predictions),
DistilBERT (vocab_projector) and RoBERTa / XLM-R (lm_head) need no special cases.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from harness.api import TransferPlan

SPECIAL_TOKENS = ("pad", "cls", "sep", "mask", "unk", "bos", "eos")


def transplant(model: Any, source_tokenizer: Any, target_tokenizer: Any, plan: "TransferPlan") -> Any:
    """Re-vocabularise ``model`` (in place) for ``target_tokenizer``; returns the model."""
    import torch

    source_input = model.get_input_embeddings()
    output = model.get_output_embeddings()
    _check_plan(plan, source_input.weight, source_tokenizer, target_tokenizer)
    tied = output is not None and output.weight is source_input.weight
    old_pad = getattr(model.config, "pad_token_id", None)
    new_pad = target_tokenizer.pad_token_id

    with torch.no_grad():
        new_input = _remap_rows(plan, source_input.weight, plan.explicit_rows)
        model.set_input_embeddings(_embedding(new_input, new_pad, source_input))
        if output is not None:
            _replace_output(model, output, plan, tied)
    _update_config(model, target_tokenizer, plan.n_target)
    _update_padding_idx(model, old_pad, new_pad)
    return model


def _check_plan(plan: "TransferPlan", source_weight: "torch.Tensor", source_tok: Any, target_tok: Any) -> None:
    n_source, d = source_weight.shape
    if plan.n_source != n_source:
        raise ValueError(f"plan has {plan.n_source} source columns, the model has {n_source} embedding rows")
    if len(source_tok) > n_source:
        raise ValueError(f"source tokenizer has {len(source_tok)} tokens, the model only {n_source} rows")
    if plan.n_target != len(target_tok):
        raise ValueError(f"plan has {plan.n_target} target rows, the target tokenizer {len(target_tok)} tokens")
    problems = plan.validate(d=d, n_source=n_source)
    if problems:
        raise ValueError("invalid transfer plan: " + "; ".join(problems))


def _remap_rows(plan: "TransferPlan", source: "torch.Tensor", explicit: "torch.Tensor | None") -> "torch.Tensor":
    """``M @ source`` (rows or a bias vector) in float32, explicit tokens overwritten."""
    import torch

    vector = source.dim() == 1
    dense = source.detach().float().reshape(source.shape[0], -1).cpu()
    mixed = torch.sparse.mm(plan.mixing.float(), dense)
    if len(plan.explicit_ids):
        mixed[plan.explicit_ids] = explicit.float().reshape(len(plan.explicit_ids), -1)
    mixed = mixed.reshape(-1) if vector else mixed
    return mixed.to(dtype=source.dtype, device=source.device)


def _embedding(weight: "torch.Tensor", padding_idx: int | None, like: Any) -> Any:
    import torch

    emb = torch.nn.Embedding(weight.shape[0], weight.shape[1], padding_idx=padding_idx,
                             device=weight.device, dtype=weight.dtype)
    emb.weight = torch.nn.Parameter(weight, requires_grad=like.weight.requires_grad)
    return emb


def _replace_output(model: Any, output: Any, plan: "TransferPlan", tied: bool) -> None:
    """New decoder weight (shared or remapped) and every decoder bias remapped with the plan."""
    import torch

    owner = _owner_of(model, output)
    owner_bias = getattr(owner, "bias", None) if owner is not None else None
    n_source = output.weight.shape[0]
    new_bias = {}  # id(old bias parameter) -> new parameter, so shared biases stay shared
    for bias in (output.bias, owner_bias):
        if isinstance(bias, torch.nn.Parameter) and bias.shape == (n_source,) and id(bias) not in new_bias:
            if plan.decoder_bias is not None:
                value = plan.decoder_bias.to(dtype=bias.dtype, device=bias.device).clone()
            else:
                value = _remap_rows(plan, bias, plan.explicit_bias)
            new_bias[id(bias)] = torch.nn.Parameter(value)
    if tied:
        weight = model.get_input_embeddings().weight
    else:
        weight = torch.nn.Parameter(_remap_rows(plan, output.weight, plan.explicit_rows))
    output.weight = weight
    output.out_features = weight.shape[0]
    if output.bias is not None:
        output.bias = new_bias[id(output.bias)]
    if isinstance(owner_bias, torch.nn.Parameter) and id(owner_bias) in new_bias:
        owner.bias = new_bias[id(owner_bias)]


def _owner_of(model: Any, child: Any) -> Any:
    """The module holding ``child`` as a direct submodule (e.g. cls.predictions, lm_head)."""
    for module in model.modules():
        if any(sub is child for sub in module.children()):
            return module
    return None


def _update_config(model: Any, tokenizer: Any, vocab_size: int) -> None:
    config = model.config
    config.vocab_size = vocab_size
    for name in SPECIAL_TOKENS:
        attr = f"{name}_token_id"
        value = getattr(tokenizer, attr, None)
        if value is not None or getattr(config, attr, None) is not None:
            setattr(config, attr, value)


def _update_padding_idx(model: Any, old_pad: int | None, new_pad: int | None) -> None:
    """RoBERTa-style embeddings find padding *and* number positions from the pad id they store.

    Positions start at ``padding_idx + 1``, so a new pad id would silently shift every position
    embedding; the table is re-indexed so each real position keeps its vector.
    """
    import torch

    if old_pad is None or new_pad is None or old_pad == new_pad:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding) or getattr(module, "padding_idx", None) != old_pad:
            continue  # nn.Embedding padding_idx only affects gradients; positions are handled below
        module.padding_idx = new_pad
        positions = getattr(module, "position_embeddings", None)
        if isinstance(positions, torch.nn.Embedding):
            module.position_embeddings = _shift_positions(positions, old_pad, new_pad)
            model.config.max_position_embeddings = module.position_embeddings.num_embeddings
            _resize_position_buffer(module, module.position_embeddings.num_embeddings)


def _shift_positions(positions: Any, old_pad: int, new_pad: int) -> Any:
    """Row ``old_pad + 1 + k`` moves to ``new_pad + 1 + k``; rows up to ``new_pad`` copy the pad row."""
    import torch

    old = positions.weight.detach()
    n_real = old.shape[0] - old_pad - 1
    new = old[old_pad].expand(new_pad + 1 + n_real, -1).clone()
    new[new_pad + 1 :] = old[old_pad + 1 :]
    shifted = torch.nn.Embedding(new.shape[0], new.shape[1], padding_idx=new_pad, device=new.device, dtype=new.dtype)
    shifted.weight = torch.nn.Parameter(new, requires_grad=positions.weight.requires_grad)
    return shifted


def _resize_position_buffer(module: Any, size: int) -> None:
    import torch

    for name in ("position_ids", "token_type_ids"):
        buffer = getattr(module, name, None)
        if isinstance(buffer, torch.Tensor) and buffer.dim() == 2:
            grown = torch.arange(size, device=buffer.device).unsqueeze(0)
            module.register_buffer(name, grown if name == "position_ids" else torch.zeros_like(grown),
                                   persistent=False)


def keep_source_rows(plan: "TransferPlan", n_kept: int) -> "TransferPlan":
    """``plan`` with target tokens ``0..n_kept-1`` copied from the source rows of the same ids (vocab_mode
    extend: the source vocabulary comes first and keeps its rows, whatever the method planned for them)."""
    import dataclasses

    import torch

    coo = plan.mixing.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    keep = rows >= n_kept
    kept_ids = torch.arange(n_kept)
    indices = torch.cat([torch.stack([rows[keep], cols[keep]]), torch.stack([kept_ids, kept_ids])], dim=1)
    values = torch.cat([coo.values()[keep], torch.ones(n_kept, dtype=coo.values().dtype)])
    mixing = torch.sparse_coo_tensor(indices, values, size=tuple(plan.mixing.shape)).coalesce().to_sparse_csr()
    explicit = plan.explicit_ids >= n_kept
    kinds = plan.kinds.copy()
    kinds[:n_kept] = 0  # copied
    return dataclasses.replace(plan, mixing=mixing, explicit_ids=plan.explicit_ids[explicit],
                               explicit_rows=plan.explicit_rows[explicit], explicit_bias=plan.explicit_bias[explicit],
                               kinds=kinds, info={**plan.info, "source_rows_kept": n_kept})
