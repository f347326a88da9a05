"""`clear`: CLEAR (seed 002) adapted to a sparse encoder.

Batch item: English query, English positive passage, English hard negative passage, the
target-language query of the positive and the target-language query of the hard negative.

- forward InfoNCE: English query -> all passages of the batch [positives | hard negatives];
- reverse InfoNCE: English positive passage -> all target queries [queries of positives | queries of
  hard negatives], so column c of both score matrices belongs to the same page;
- KL(P_reverse || P_forward) over those matched columns;
- loss = (1 - a - b) forward + a reverse + b KL (a = ``train.clear_alpha`` 0.4, b =
  ``train.clear_beta`` 0.2), plus the shared FLOPS regulariser (a sparse encoder without it drifts
  dense).

Scores: CLEAR uses cosine x 20. SPLADE vectors are non-negative with a magnitude that the FLOPS term
controls and that carries the ranking signal, so by default (``train.clear_similarity: dot``) the raw
dot product is the logit, exactly as in the `splade` objective; ``cosine`` restores CLEAR's
cosine x 20 (both vectors L2-normalised, so the FLOPS term no longer trades off against the logits).

Data: the rows of an aligned-pairs dataset (``train.aligned_dataset``, default
``libreoffice-help-{lang}-x-en-train``: LibreOffice help training pages aligned with English by file
name; English title = query, English page text without its title = passage, target title = target
query; dev pages and untranslated titles left out, see ``harness.data.libreoffice.aligned_collection``).
Hard negatives: the English passage with the highest lexical overlap with the English query
(``base.lexical_negatives``). A caller can pass its own rows as
``extra["aligned"] = [(english_query, english_passage, target_query), ...]``.
English text goes through the target tokenizer (the only vocabulary the model has after transfer).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from harness.objectives.base import Objective, Range, duplicate_mask, info_nce, lexical_negatives
from harness.util import HarnessError

if TYPE_CHECKING:
    import torch

COSINE_SCALE = 20.0
ALIGNED_DEFAULT = "libreoffice-help-{lang}-x-en-train"
MASKED = -1e4  # finite fill for masked columns in the KL term (-inf would give 0 * inf = nan)


class ClearObjective(Objective):
    """Forward + reverse InfoNCE through an English passage, KL between them (CLEAR)."""

    name = "clear"
    description = ("CLEAR: forward InfoNCE (English query -> passages) + reverse InfoNCE (English passage -> "
                   "target queries) + KL between them; a=0.4, b=0.2; + FLOPS")
    roles = {"en_query": "query", "tgt_query": "query", "neg_tgt_query": "query", "pos": "document",
             "neg": "document"}

    def setup(self, *, hard_negatives: Annotated[int, Range(ge=0)] = 1,
              clear_alpha: Annotated[float, Range(ge=0, le=1)] = 0.4,
              clear_beta: Annotated[float, Range(ge=0, le=1)] = 0.2,
              clear_similarity: Literal["dot", "cosine"] = "dot", aligned_dataset: str = ALIGNED_DEFAULT) -> None:
        """
        Parameters:
            aligned_dataset: clear: aligned-pairs dataset of (English query, English passage, target query) rows; {lang} is replaced
            hard_negatives: hard negatives per query, mined by lexical overlap (0: in-batch only)
            clear_alpha: clear: weight a of the reverse InfoNCE
            clear_beta: clear: weight b of the KL(reverse || forward) term
            clear_similarity: clear: 'dot' (SPLADE dot product) or 'cosine' (cosine x 20, as CLEAR)
        """
        if clear_alpha < 0 or clear_beta < 0 or clear_alpha + clear_beta > 1:
            raise HarnessError(f"clear: need train.clear_alpha, train.clear_beta >= 0 with a sum <= 1, "
                               f"got {clear_alpha} and {clear_beta}")
        self.hard_negatives, self.alpha, self.beta = hard_negatives, clear_alpha, clear_beta
        self.similarity_kind = clear_similarity
        self.aligned_dataset = aligned_dataset.replace("{lang}", self.run["lang"])

    def examples(self, pairs: list[tuple[str, str]], extra: dict[str, Any]) -> list[dict[str, Any]]:
        rows = extra.get("aligned") or aligned_rows(self.aligned_dataset)
        en_q = [r[0] for r in rows]
        en_p = [r[1] for r in rows]
        negs = lexical_negatives(en_q, en_p, self.tokenizer, k=self.hard_negatives,
                                 max_length=self.run["train.doc_max_length"], seed=self.run["seed"])
        return [{"en_query": q, "pos": p, "tgt_query": t, "neg": [en_p[j] for j in n],
                 "neg_tgt_query": [rows[j][2] for j in n]} for (q, p, t), n in zip(rows, negs)]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        k = min(len(x["neg"]) for x in items)
        texts = {"en_query": [x["en_query"] for x in items], "tgt_query": [x["tgt_query"] for x in items],
                 "pos": [x["pos"] for x in items]}
        if k:
            texts["neg"] = [n for x in items for n in x["neg"][:k]]
            texts["neg_tgt_query"] = [n for x in items for n in x["neg_tgt_query"][:k]]
        return {"texts": texts}

    def loss(self, batch: dict[str, Any], reps: dict[str, "torch.Tensor"], step: int) -> tuple["torch.Tensor", dict[str, float]]:
        import torch
        import torch.nn.functional as F

        texts = batch["texts"]
        passages = torch.cat([reps["pos"]] + ([reps["neg"]] if "neg" in reps else []))
        targets = torch.cat([reps["tgt_query"]] + ([reps["neg_tgt_query"]] if "neg_tgt_query" in reps else []))
        forward = self.similarity(reps["en_query"], passages)
        reverse = self.similarity(reps["pos"], targets)
        mask_f = duplicate_mask(texts["pos"], texts["pos"] + texts.get("neg", []), forward.device)
        mask_r = duplicate_mask(texts["tgt_query"], texts["tgt_query"] + texts.get("neg_tgt_query", []), forward.device)
        l_f, l_r = info_nce(forward, mask_f), info_nce(reverse, mask_r)
        both = mask_f | mask_r  # a column dropped in either direction is dropped from the KL too
        kl = F.kl_div(F.log_softmax(forward.masked_fill(both, MASKED), dim=1),
                      F.log_softmax(reverse.masked_fill(both, MASKED), dim=1), log_target=True, reduction="batchmean")
        a, b = self.alpha, self.beta
        reg, logs = self.regularise(reps, step)
        loss = (1 - a - b) * l_f + a * l_r + b * kl + reg
        return loss, {"forward": l_f.item(), "reverse": l_r.item(), "kl": kl.item(), **logs}

    def similarity(self, x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        import torch.nn.functional as F

        if self.similarity_kind == "cosine":
            return COSINE_SCALE * F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
        return x @ y.T


def aligned_rows(dataset: str) -> list[tuple[str, str, str]]:
    """(English query, English passage, target query) rows of an aligned-pairs dataset."""
    from harness.data import load_collection

    rows = load_collection(dataset).aligned
    if not rows:
        raise HarnessError(f"clear: dataset '{dataset}' has no aligned rows: set train.aligned_dataset to an "
                           f"'aligned pairs' dataset of `harness data list` (e.g. libreoffice-help-ko-x-en-train)")
    return [(en_query, en_passage, query) for _, en_query, en_passage, query in rows]
