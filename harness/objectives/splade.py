"""`splade`: contrastive ranking loss over in-batch + hard negatives, plus FLOPS on queries and documents.

Scores are SPLADE dot products used directly as logits (temperature 1), as in the SPLADE papers and
sentence-transformers' SparseMultipleNegativesRankingLoss. Query i is scored against every positive
and every hard negative of the batch; column i is its positive. A column holding the same passage
text as row i's positive is masked (duplicates in the pool would otherwise be false negatives).
Hard negatives: ``train.hard_negatives`` per query, mined once before training by lexical overlap
(see ``base.lexical_negatives``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from harness.objectives.base import Objective, Range, duplicate_mask, info_nce, lexical_negatives

if TYPE_CHECKING:
    import torch


class SpladeObjective(Objective):
    """In-batch + lexically mined hard-negative contrastive loss with FLOPS regularisation."""

    name = "splade"
    description = "in-batch + hard-negative contrastive ranking loss (dot product) + FLOPS on queries and documents"
    roles = {"query": "query", "pos": "document", "neg": "document"}

    def setup(self, *, hard_negatives: Annotated[int, Range(ge=0)] = 1) -> None:
        """
        Parameters:
            hard_negatives: hard negatives per query, mined by lexical overlap (0: in-batch only)
        """
        self.hard_negatives = hard_negatives

    def examples(self, pairs: list[tuple[str, str]], extra: dict[str, Any]) -> list[dict[str, Any]]:
        queries = [q for q, _ in pairs]
        passages = [p for _, p in pairs]
        negs = lexical_negatives(queries, passages, self.tokenizer, k=self.hard_negatives,
                                 max_length=self.run["train.doc_max_length"], seed=self.run["seed"])
        return [{"query": q, "pos": p, "neg": [passages[j] for j in n]} for q, p, n in zip(queries, passages, negs)]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        k = min(len(x["neg"]) for x in items)  # a query with fewer mined negatives caps the batch
        texts = {"query": [x["query"] for x in items], "pos": [x["pos"] for x in items],
                 "neg": [n for x in items for n in x["neg"][:k]]}
        return {"texts": texts if k else {r: t for r, t in texts.items() if r != "neg"}}

    def loss(self, batch: dict[str, Any], reps: dict[str, "torch.Tensor"], step: int) -> tuple["torch.Tensor", dict[str, float]]:
        import torch

        texts = batch["texts"]
        docs = torch.cat([reps["pos"], reps["neg"]]) if "neg" in reps else reps["pos"]
        cols = texts["pos"] + texts.get("neg", [])
        scores = reps["query"] @ docs.T
        rank = info_nce(scores, duplicate_mask(texts["pos"], cols, scores.device))
        reg, logs = self.regularise(reps, step)
        return rank + reg, {"rank_loss": rank.item(), **logs}
