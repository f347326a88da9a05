"""The objective contract and the pieces every objective shares.

Contract (what ``harness.train.fine_tune`` calls):

- ``Objective(run, tokenizer, device=...)``: ``run`` is the flat resolved config. The objective's
  typed parameters are the keyword-only parameters of its ``setup`` (plus the shared ones of
  ``Objective.shared``), documented under ``Parameters:`` as a method's are; parameter ``x`` is the
  config key ``train.x`` (``--set train.x=...``). The constructor resolves them from the run and
  calls ``shared(...)`` and ``setup(...)``, so an objective reads its settings as attributes.
- ``examples(pairs, extra) -> list[dict]``: JSON-serialisable training examples, built
  deterministically (hard negatives mined here). The trainer caches them in the work directory, so
  resuming never re-mines.
- ``roles``: ``{role: "query" | "document"}``; ``collate(items)`` returns ``{"texts": {role: [str]},
  ...}`` and the trainer encodes every role's texts into SPLADE vectors (queries and documents with
  their own token limits).
- ``loss(batch, reps, step) -> (scalar tensor, {name: float})`` with ``reps[role]`` a dense
  (n x vocab) float32 tensor of sparse activations.

FLOPS regularisation (``regularise``) is shared: ``sum_v (mean_i w_iv)^2`` over the query-role and
document-role vectors, weights ``train.flops_query`` / ``train.flops_doc`` ramped up over
``train.flops_warmup_steps`` (quadratically by default, as in SPLADE; or linearly).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Sequence

from harness.params import Param, Range, resolve, signature_params

if TYPE_CHECKING:
    import torch

KEY_PREFIX = "train."  # objective parameter ``x`` is the config key ``train.x``


class Objective:
    """Base class: subclasses set ``name``, ``description``, ``roles``, declare ``setup`` and implement
    the three hooks."""

    name = ""
    description = ""
    roles: dict[str, str] = {}

    def __init__(self, run: dict[str, Any], tokenizer: Any, *, device: str = "cpu") -> None:
        self.run = run
        self.tokenizer = tokenizer
        self.device = device
        values = resolve_params(type(self), run)
        shared = {p.name for p in signature_params("Objective.shared", Objective.shared)}
        self.shared(**{k: v for k, v in values.items() if k in shared})
        self.setup(**{k: v for k, v in values.items() if k not in shared})

    # -- parameters ---------------------------------------------------------------------------
    def shared(self, *, flops_query: Annotated[float, Range(ge=0)] = 5e-5,
               flops_doc: Annotated[float, Range(ge=0)] = 3e-5, flops_warmup_steps: Annotated[int, Range(ge=0)] = 50,
               flops_warmup: Literal["quadratic", "linear"] = "quadratic") -> None:
        """The FLOPS regulariser every objective shares.

        Parameters:
            flops_query: FLOPS regulariser weight on queries
            flops_doc: FLOPS regulariser weight on documents
            flops_warmup_steps: steps over which the FLOPS weights ramp up
            flops_warmup: FLOPS weight ramp over train.flops_warmup_steps: quadratic or linear
        """
        self.flops_query, self.flops_doc = flops_query, flops_doc
        self.flops_warmup_steps, self.flops_warmup = flops_warmup_steps, flops_warmup

    def setup(self) -> None:
        """The objective's own parameters: keyword-only, typed, with defaults (none here)."""

    # -- hooks --------------------------------------------------------------------------------
    def examples(self, pairs: list[tuple[str, str]], extra: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any], reps: dict[str, "torch.Tensor"], step: int) -> tuple["torch.Tensor", dict[str, float]]:
        raise NotImplementedError

    # -- shared pieces ------------------------------------------------------------------------
    def flops_weights(self, step: int) -> tuple[float, float]:
        """(query, document) FLOPS weights at optimisation step ``step`` (1-based)."""
        warm = self.flops_warmup_steps
        ramp = 1.0 if warm <= 0 else min(1.0, step / warm)
        if self.flops_warmup == "quadratic":
            ramp = ramp**2
        return self.flops_query * ramp, self.flops_doc * ramp

    def regularise(self, reps: dict[str, "torch.Tensor"], step: int) -> tuple["torch.Tensor", dict[str, float]]:
        """FLOPS on all query-role vectors and all document-role vectors."""
        import torch

        wq, wd = self.flops_weights(step)
        q = torch.cat([reps[r] for r, kind in self.roles.items() if kind == "query" and r in reps])
        d = torch.cat([reps[r] for r, kind in self.roles.items() if kind == "document" and r in reps])
        fq, fd = flops(q), flops(d)
        return wq * fq + wd * fd, {"flops_q": fq.item(), "flops_d": fd.item()}


def objective_params(cls: type) -> tuple[Param, ...]:
    """Every typed parameter of objective class ``cls``: the shared ones, then its ``setup``'s."""
    owner = f"objective '{getattr(cls, 'name', '') or cls.__name__}'"
    shared = signature_params(owner, Objective.shared)
    own = signature_params(owner, cls.setup)
    clash = {p.name for p in shared} & {p.name for p in own}
    if clash:
        raise TypeError(f"{owner}: setup() redeclares the shared parameter(s) {', '.join(sorted(clash))}")
    return shared + own


def resolve_params(cls: type, run: dict[str, Any]) -> dict[str, Any]:
    """Parameter values of ``cls`` from the run's ``train.<name>`` keys (declared defaults where absent)."""
    from harness.util import HarnessError

    params = objective_params(cls)
    given = {p.name: run[KEY_PREFIX + p.name] for p in params if KEY_PREFIX + p.name in run}
    try:
        return resolve(f"objective '{cls.name}'", params, given)
    except ValueError as err:
        raise HarnessError(f"{err} (config key {KEY_PREFIX}<parameter>)") from None


def flops(reps: "torch.Tensor") -> "torch.Tensor":
    """SPLADE's FLOPS regulariser: squared batch-mean activation, summed over the vocabulary."""
    return (reps.mean(dim=0) ** 2).sum()


def info_nce(scores: "torch.Tensor", mask: "torch.Tensor | None" = None,
             targets: "torch.Tensor | None" = None) -> "torch.Tensor":
    """Cross-entropy with the positive of row i in column ``targets[i]`` (default i); masked columns
    (false negatives) drop out."""
    import torch
    import torch.nn.functional as F

    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    if targets is None:
        targets = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, targets)


def duplicate_mask(rows: Sequence[str], cols: Sequence[str], device: Any = None,
                   positives: Sequence[int] | None = None) -> "torch.Tensor":
    """True where column c holds the same text as row i's positive but is not its positive column
    (``positives[i]``, default i): such a column is not a real negative."""
    import torch

    pos = list(positives) if positives is not None else list(range(len(rows)))
    mask = torch.tensor([[c != pos[i] and col == row for c, col in enumerate(cols)] for i, row in enumerate(rows)],
                        dtype=torch.bool).reshape(len(rows), len(cols))
    return mask.to(device) if device is not None else mask


# ----------------------------------------------------------------------------------------------
# Hard negatives: lexical overlap in the model's own (target) vocabulary
# ----------------------------------------------------------------------------------------------
def lexical_negatives(queries: Sequence[str], passages: Sequence[str], tokenizer: Any, *, k: int,
                      max_length: int, seed: int, block: int = 256) -> list[list[int]]:
    """For query i, the indices of the ``k`` passages most similar to it that are not its positive.

    Similarity is the cosine of idf-weighted bag-of-token vectors (target tokenizer, passages cut to
    ``max_length`` tokens): cheap, deterministic, and in the vocabulary the encoder actually uses.
    Excluded: passage i itself, any passage with the same text as passage i, and any pair whose
    query has the same text as query i (e.g. repeated headings like "Parameters:"), because those
    would be false negatives. Ties are broken by a seeded random order, not by position.
    """
    import numpy as np

    if k <= 0:
        return [[] for _ in queries]
    qmat, dmat = _tfidf(queries, passages, tokenizer, max_length)
    p_group = _groups(passages)
    q_group = _groups(queries)
    tiebreak = np.random.default_rng(seed).random(len(passages))
    out: list[list[int]] = []
    for start in range(0, len(queries), block):
        rows = np.arange(start, min(start + block, len(queries)))
        scores = (qmat[rows] @ dmat.T).toarray()
        bad = (p_group[None, :] == p_group[rows, None]) | (q_group[None, :] == q_group[rows, None])
        scores[bad] = -np.inf
        for r, row in enumerate(scores):
            order = np.lexsort((tiebreak, -row))  # last key is primary: score desc, then tiebreak
            top = [int(j) for j in order[:k] if np.isfinite(row[j])]
            out.append(top)
    return out


def _groups(texts: Sequence[str]) -> Any:
    """Integer id per distinct (whitespace-normalised, lower-cased) text."""
    import numpy as np

    ids: dict[str, int] = {}
    return np.array([ids.setdefault(" ".join(t.lower().split()), len(ids)) for t in texts])


def _tfidf(queries: Sequence[str], passages: Sequence[str], tokenizer: Any, max_length: int) -> tuple[Any, Any]:
    """L2-normalised idf-weighted binary token vectors of queries and passages (scipy CSR)."""
    import numpy as np
    import scipy.sparse as sp

    vocab = len(tokenizer)

    def binary(texts: Sequence[str], limit: int) -> Any:
        ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=limit)["input_ids"]
        sets = [sorted(set(x)) for x in ids]
        indptr = np.cumsum([0] + [len(s) for s in sets])
        cols = np.fromiter((c for s in sets for c in s), dtype=np.int64, count=int(indptr[-1]))
        return sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(texts), vocab))

    d = binary(passages, max_length)
    q = binary(queries, max_length)
    df = np.asarray((d > 0).sum(axis=0)).ravel()
    idf = np.log(1.0 + (d.shape[0] - df + 0.5) / (df + 0.5)).astype(np.float32)
    return _l2(q @ sp.diags(idf)), _l2(d @ sp.diags(idf))


def _l2(m: Any) -> Any:
    import numpy as np
    import scipy.sparse as sp

    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m)
