"""SPLADE pooling fused with the MLM decoder, for training: the tokens x vocabulary logits never exist whole.

``max over tokens of log(1 + relu(h W^T + b))`` (padding masked) is what ``harness.encoder.splade_pool``
computes from a model's full logits. In training, that block (tokens x |V|, e.g. 864 x 14,737 for
the pocket batch, 8k x 250k for XLM-R) dominates: the decoder matmul forward, a dense backward
matmul of the same size for each of grad-h and grad-W, and several elementwise passes over it. But
max pooling has a sparse gradient: only the arg-max token of each (sequence, vocabulary entry)
receives one. ``MaskedMax`` therefore

* forward: computes the decoder product one vocabulary chunk at a time (a cache-sized (B, T, rows)
  block), adds -inf at padding and keeps the max over tokens per (sequence, vocabulary entry). The
  decoder bias is added to these maxima afterwards (``max_t (x_t + b) == max_t x_t + b`` exactly in
  floating point: rounding is monotone);
* backward, given ``g[b, v]``: ``grad W[v] = sum_b g[b, v] h[b, argmax]`` and
  ``grad h[b, t] = sum_{v: argmax = t} g[b, v] W[v]``. On the CPU (``sparse``) the forward also
  records the arg-max token of each entry, and the backward is two sparse-dense products over the
  non-zero ``g`` (relu zeroes most of a trained encoder's entries). Elsewhere (CUDA) the backward
  recomputes each chunk's logits with the forward's dtype, marks its maxima and multiplies dense
  blocks: no atomics, so deterministic, and GPUs have the FLOPs.

Ties follow autograd's ``amax`` exactly: a gradient is split evenly among equal maxima. They are not
rare: a zero decoder row (BERT's and RoBERTa's padding row at initialisation) ties every token.

``mlm_parts(model)`` splits a Hugging Face masked LM into (base model, head transform, decoder) for
the architectures the harness supports (BERT family, DistilBERT, RoBERTa / XLM-R / CamemBERT) and
checks on a probe input that ``decoder(transform(base(x)))`` reproduces ``model(x).logits``; for
anything else it returns None and the caller uses the plain path. The model itself is untouched:
it stays an ordinary ``AutoModelForMaskedLM``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    import torch

# Vocabulary rows per chunk: the (tokens x rows) logits block of one chunk fits in this many bytes.
# CPU: about an L2 cache, so the max passes read it from cache (on the bench batch 1-2 MiB timed
# best, 4-8 MiB ~7% slower); CUDA: large, few launches.
CHUNK_BYTES = {"cpu": 2 << 20, "cuda": 256 << 20}
MIN_CHUNK = 64
# The CPU backward keeps every (sequence, vocabulary) pair, zeros included, when more than this
# fraction of the gradient is non-zero; below it, only the non-zero pairs.
DENSE_FRACTION = 0.25


def chunk_rows(device_type: str, tokens: int, element_size: int = 4) -> int:
    budget = CHUNK_BYTES.get(device_type, CHUNK_BYTES["cuda"])
    return max(MIN_CHUNK, budget // max(1, tokens * element_size))


class Ties(NamedTuple):
    """Every maximum of the (sequence, vocabulary entry) pairs with more than one: sequence, vocabulary
    entry, token, and how many maxima the pair has."""

    seq: "torch.Tensor"
    vocab: "torch.Tensor"
    token: "torch.Tensor"
    count: "torch.Tensor"


def _masked_max_class() -> type:
    import torch

    class MaskedMax(torch.autograd.Function):
        """(B, T, H) hidden, (V, H) weight, (B, T) mask -> (B, V) max over the unmasked tokens of
        ``hidden @ weight.T``, float32 (float64 for float64 inputs); the backward uses only the maxima."""

        @staticmethod
        def forward(ctx: Any, hidden: "torch.Tensor", weight: "torch.Tensor", mask: "torch.Tensor", chunk: int,
                    sparse: bool) -> "torch.Tensor":
            values, first, ties, dtype = _chunked_max(hidden, weight, mask, chunk, track=sparse)
            ctx.save_for_backward(hidden, weight, mask, first, *(ties or ()))
            ctx.chunk, ctx.sparse, ctx.dtype = chunk, sparse, dtype
            return values

        @staticmethod
        def backward(ctx: Any, grad: "torch.Tensor") -> tuple:
            hidden, weight, mask, first, *ties = ctx.saved_tensors
            wide = torch.promote_types(hidden.dtype, torch.float32)  # float32, or float64 for float64 inputs
            with torch.autocast(hidden.device.type, enabled=False):
                if ctx.sparse:
                    grad_h, grad_w = _sparse_backward(grad.to(wide), hidden.to(wide), weight.to(wide), first,
                                                      Ties(*ties) if ties else None)
                else:
                    grad_h, grad_w = _dense_backward(grad.to(wide), hidden, weight, mask, ctx.chunk, ctx.dtype)
            want_h, want_w = ctx.needs_input_grad[:2]
            return (grad_h.to(hidden.dtype) if want_h else None, grad_w.to(weight.dtype) if want_w else None,
                    None, None, None)

    return MaskedMax


def _logits_block(flat: "torch.Tensor", weight: "torch.Tensor", padding: "torch.Tensor | None", start: int,
                  stop: int, n_seq: int, dtype: "torch.dtype | None" = None) -> "torch.Tensor":
    """(B, T, rows) logits of vocabulary rows start..stop, -inf at padding. ``dtype``: compute in it
    (the backward's recomputation), else in whatever autocast gives (the forward)."""
    import torch

    w = weight[start:stop]
    if dtype is not None:
        flat, w = flat.to(dtype), w.to(dtype)
    block = torch.mm(flat, w.t()).view(n_seq, -1, stop - start)
    if padding is not None:
        block += padding.to(block.dtype)
    return block


def _padding(mask: "torch.Tensor", device: Any) -> "torch.Tensor | None":
    """(B, T, 1): 0 at tokens, -inf at padding; None for a CPU batch without padding (on a GPU the
    check would cost a sync, so the mask is always added there)."""
    import torch

    if device.type == "cpu" and bool(mask.all()):
        return None
    padding = torch.zeros(*mask.shape, 1, dtype=torch.float32, device=device)
    return padding.masked_fill_(~mask.bool()[:, :, None], float("-inf"))


def _chunked_max(hidden: "torch.Tensor", weight: "torch.Tensor", mask: "torch.Tensor", chunk: int, *,
                 track: bool) -> tuple["torch.Tensor", "torch.Tensor | None", "Ties | None", "torch.dtype"]:
    """(B, V) max over unmasked tokens of ``hidden @ weight.T``; with ``track``, also the first token
    reaching it (B, V) and the ties, else None, None; and the dtype the logits were computed in.

    ``amax`` over tokens is vectorised along the vocabulary. The arg-max comes without
    ``torch.max(dim)``'s index tracking, several times slower on CPUs: ``sign(x_t - max) + 1`` is 1
    exactly where ``x_t == max`` (IEEE subtraction of unequal numbers never gives 0) and 0 elsewhere;
    its sum over tokens counts the maxima, and ``T - amax_t(indicator * (T - t))`` is the first one.
    """
    import torch

    n_seq, seq_len, dim = hidden.shape
    vocab = weight.shape[0]
    flat = hidden.reshape(n_seq * seq_len, dim)
    padding = _padding(mask, hidden.device)
    values = top = rank = dtype = None
    ties: list[tuple[Any, ...]] = []
    for start in range(0, vocab, chunk):
        stop = min(start + chunk, vocab)
        block = _logits_block(flat, weight, padding, start, stop, n_seq)
        best = block.amax(dim=1)  # (B, rows)
        if values is None:  # float32 (float64 for float64 inputs), also under bf16 autocast
            dtype = block.dtype
            values = best.new_empty((n_seq, vocab), dtype=torch.promote_types(dtype, torch.float32))
            if track:
                top = torch.empty((n_seq, vocab), dtype=torch.float32, device=hidden.device)
                rank = torch.arange(seq_len, 0, -1, device=hidden.device).view(1, seq_len, 1).to(dtype)
        values[:, start:stop] = best
        if not track:
            continue
        block.sub_(best[:, None, :]).sign_().add_(1)  # 1 at maxima, 0 elsewhere (NaN for NaN logits)
        count = block.sum(dim=1)
        top[:, start:stop] = block.mul_(rank).amax(dim=1)  # T - (first maximum's token)
        if bool((count > 1).any()):
            seq, col = (count > 1).nonzero(as_tuple=True)
            k, token = (block[seq, :, col] > 0).nonzero(as_tuple=True)
            ties.append((seq[k], col[k] + start, token, count[seq, col][k].float()))
    first = None
    if track:  # NaN logits: token 0
        first = top.nan_to_num_(nan=float(seq_len)).clamp_(1, seq_len).neg_().add_(seq_len).long()
    found = Ties(*(torch.cat(parts) for parts in zip(*ties))) if ties else None
    return values, first, found, dtype


def _sparse_backward(g: "torch.Tensor", h: "torch.Tensor", w: "torch.Tensor", first: "torch.Tensor",
                     ties: "Ties | None") -> tuple["torch.Tensor", "torch.Tensor"]:
    """``S^T h`` and ``S W`` for S (B*T x V) holding ``g[b, v] / count`` at row (b, each maximum's token),
    column v. Two CSR products cover the first maximum of every pair, index_add_ the rest of the ties
    (if any). Deterministic: the CSR layouts come from stable orderings, index_add_ runs in order."""
    import torch

    n_seq, seq_len, dim = h.shape
    vocab = w.shape[0]
    tokens = n_seq * seq_len
    flat = h.reshape(tokens, dim)
    if ties is not None:  # the first maximum keeps 1/count of the gradient; the others get theirs below
        share = torch.ones_like(g)
        share[ties.seq, ties.vocab] = 1.0 / ties.count.to(g.dtype)
        g_first = g * share
    else:
        g_first = g
    rows = first + torch.arange(n_seq, device=g.device)[:, None] * seq_len  # (B, V) token row of each pair
    # Mostly non-zero (a fresh encoder): every pair, zeros included, skips the filtering; a trained
    # encoder's relu leaves few non-zeros, and only those are kept.
    dense = int(torch.count_nonzero(g_first)) > DENSE_FRACTION * g.numel()

    def product(row_of: "torch.Tensor", cols: "torch.Tensor", vals: "torch.Tensor", shape: tuple[int, int],
                dense_operand: "torch.Tensor") -> "torch.Tensor":
        """CSR (rows sorted, int32 indices: what MKL takes without a copy) @ dense, into a fresh output."""
        crow = torch.zeros(shape[0] + 1, dtype=torch.int32, device=g.device)
        torch.cumsum(torch.bincount(row_of, minlength=shape[0]), 0, out=crow[1:])
        matrix = torch.sparse_csr_tensor(crow, cols.to(torch.int32), vals, shape, check_invariants=False)
        out = dense_operand.new_empty(shape[0], dense_operand.shape[1])
        return torch.addmm(out, matrix, dense_operand, beta=0, out=out)  # beta 0: out is not read

    # grad W = S^T h: entries in (v, b) order, so S^T's rows are v and each row's columns ascend with b
    g_vb, rows_vb = g_first.t().contiguous().view(-1), rows.t().contiguous().view(-1)
    v_of = torch.arange(vocab, device=g.device).repeat_interleave(n_seq)
    if not dense:
        keep = g_vb.nonzero().squeeze(1)
        g_vb, rows_vb, v_of = g_vb[keep], rows_vb[keep], v_of[keep]
    grad_w = product(v_of, rows_vb, g_vb, (vocab, tokens), flat)
    # grad h = S W: entries stably sorted by token row (a radix sort of int32 keys), so columns ascend
    entries = None if dense else g_first.view(-1).nonzero().squeeze(1)  # (b, v) order: b * V + v
    keys = rows.view(-1) if entries is None else rows.view(-1)[entries]
    sorted_rows, order = torch.sort(keys.to(torch.int32), stable=True)
    if entries is not None:
        order = entries[order]
    grad_h = product(sorted_rows.long(), order % vocab, g_first.view(-1)[order], (tokens, vocab), w)
    if ties is not None:
        rest = (ties.token != first[ties.seq, ties.vocab]) & (g[ties.seq, ties.vocab] != 0)
        seq, col, token = ties.seq[rest], ties.vocab[rest], ties.token[rest]
        vals = g[seq, col] / ties.count[rest].to(g.dtype)
        row = seq * seq_len + token
        grad_w.index_add_(0, col, flat[row] * vals[:, None])
        grad_h.index_add_(0, row, w[col] * vals[:, None])
    return grad_h.view_as(h), grad_w


def _dense_backward(g: "torch.Tensor", hidden: "torch.Tensor", weight: "torch.Tensor", mask: "torch.Tensor",
                    chunk: int, dtype: "torch.dtype") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per vocabulary chunk: the forward's logits again (same dtype, so the same maxima; the maxima are
    taken anew, so the gradient always lands on a maximum of what is recomputed), ``g / count`` at
    every maximum as a dense block, then two float32 matmuls (deterministic; float64 for float64
    inputs)."""
    import torch

    n_seq, seq_len, dim = hidden.shape
    vocab = weight.shape[0]
    flat = hidden.reshape(n_seq * seq_len, dim)
    flat32, w32 = flat.to(g.dtype), weight.to(g.dtype)  # float32 (float64 for float64 inputs)
    padding = _padding(mask, hidden.device)
    grad_h = torch.zeros_like(flat32)
    grad_w = torch.empty_like(w32)
    for start in range(0, vocab, chunk):
        stop = min(start + chunk, vocab)
        block = _logits_block(flat, weight, padding, start, stop, n_seq, dtype)
        hit = (block == block.amax(dim=1, keepdim=True)).to(g.dtype)  # (B, T, rows): 1 at the maxima
        share = g[:, None, start:stop] / hit.sum(dim=1, keepdim=True).clamp_(min=1)
        block = (hit * share).view(n_seq * seq_len, stop - start)
        grad_h.addmm_(block, w32[start:stop])
        torch.mm(block.t(), flat32, out=grad_w[start:stop])
    return grad_h.view_as(hidden), grad_w


_FUNCTION: list[type] = []


def masked_max_logits(hidden: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None",
                      mask: "torch.Tensor", *, chunk: int | None = None, sparse: bool | None = None) -> "torch.Tensor":
    """(B, V) max over the unmasked tokens of ``hidden @ weight.T + bias``, float32 (float64 for float64
    inputs), with the maxima-only backward. ``sparse``: sparse backward products (default on the CPU);
    ``chunk``: vocabulary rows per block (default from ``CHUNK_BYTES``)."""
    if not _FUNCTION:
        _FUNCTION.append(_masked_max_class())
    device_type = hidden.device.type
    if chunk is None:
        chunk = chunk_rows(device_type, hidden.shape[0] * hidden.shape[1])
    if sparse is None:
        sparse = device_type == "cpu"
    values = _FUNCTION[0].apply(hidden, weight, mask, int(chunk), bool(sparse))
    return values if bias is None else values + bias.to(values.dtype)


def fused_splade_pool(hidden: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None",
                      mask: "torch.Tensor", **kwargs: Any) -> "torch.Tensor":
    """``splade_pool(hidden @ weight.T + bias, mask)`` without the full logits block: float32 (float64 for
    float64 inputs)."""
    import torch

    return torch.log1p(torch.relu(masked_max_logits(hidden, weight, bias, mask, **kwargs)))


# ----------------------------------------------------------------------------------------------
# Splitting a masked LM into base model, head transform and decoder
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLMParts:
    """``model(**x).logits == decoder(transform(base(**x)[0]))``; the modules are the model's own."""

    base: Any
    transform: Callable[[Any], Any]
    decoder: Any
    architecture: str

    def hidden(self, features: dict[str, Any]) -> "torch.Tensor":
        """(B, T, H) head-transformed hidden states: the decoder's input."""
        return self.transform(self.base(**features)[0])

    def pool(self, features: dict[str, Any], **kwargs: Any) -> "torch.Tensor":
        """SPLADE vectors (B, V) of ``features``, as ``splade_pool(model(**features).logits, mask)``."""
        return fused_splade_pool(self.hidden(features), self.decoder.weight, self.decoder.bias,
                                 features["attention_mask"], **kwargs)


def _head_transform(model: Any, decoder: Any) -> tuple[str, Callable[[Any], Any]] | None:
    import torch

    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if getattr(predictions, "decoder", None) is decoder and hasattr(predictions, "transform"):
        return "bert", predictions.transform  # BertForMaskedLM and its relatives (cls.predictions.transform)
    head = getattr(model, "lm_head", None)
    if getattr(head, "decoder", None) is decoder and hasattr(head, "dense") and hasattr(head, "layer_norm"):
        # RobertaLMHead / XLMRobertaLMHead / CamembertLMHead: dense -> gelu -> layer_norm -> decoder
        gelu = getattr(sys.modules.get(type(head).__module__), "gelu", None) or torch.nn.functional.gelu
        return "roberta", lambda x: head.layer_norm(gelu(head.dense(x)))
    if getattr(model, "vocab_projector", None) is decoder and all(
            hasattr(model, a) for a in ("vocab_transform", "activation", "vocab_layer_norm")):
        return "distilbert", lambda x: model.vocab_layer_norm(model.activation(model.vocab_transform(x)))
    return None


def mlm_parts(model: Any, inputs: set[str] | None = None) -> MLMParts | None:
    """The model's (base, transform, decoder) when recognised and verified on a probe input, else None."""
    import torch

    from harness.device import accepted_inputs

    decoder = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    base = getattr(model, "base_model", None)
    if not isinstance(decoder, torch.nn.Linear) or base is None or base is model:
        return None
    found = _head_transform(model, decoder)
    if found is None:
        return None
    parts = MLMParts(base, found[1], decoder, found[0])
    return parts if _reproduces_logits(model, parts, inputs or accepted_inputs(model)) else None


def _reproduces_logits(model: Any, parts: MLMParts, inputs: set[str]) -> bool:
    """Eval-mode check on a short probe: the split gives the model's own logits (no RNG is drawn)."""
    import torch

    vocab = parts.decoder.weight.shape[0]
    device = parts.decoder.weight.device
    ids = (torch.arange(2, 9, device=device) % vocab)[None]
    probe = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    probe = {k: v for k, v in probe.items() if k in inputs}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = model(**probe).logits.float()
            got = parts.decoder(parts.hidden(probe)).float()
    except Exception:  # noqa: BLE001 - an unexpected signature means: not recognised, use the plain path
        return False
    finally:
        model.train(was_training)
    return want.shape == got.shape and bool(torch.allclose(want, got, rtol=1e-4, atol=1e-5))
