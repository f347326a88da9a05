"""Training objectives: a second registry beside the initialization methods.

An objective turns the run's training data into examples, collates a batch of them into texts by
*role* (each role is encoded as a query or as a document by the trainer) and, given the sparse
representations of those texts, returns the loss and a few numbers to log. Built-ins are declared
lazily here; third-party packages add objectives through the entry-point group
``harness.objectives`` (an ``Objective`` subclass, see ``harness.objectives.base``: one file, whose
``setup`` declares the objective's typed parameters, set as ``train.<parameter>``).

    splade      in-batch + hard-negative contrastive loss, FLOPS on queries and documents
    clear       forward + reverse InfoNCE through an English passage, KL between them (CLEAR)
    qg-distill  a query generator's log P(q|p) as teacher distribution, KL-distilled (Ren et al.)
"""
from __future__ import annotations

from typing import Any

from harness.registry import objectives

objectives.add_lazy("splade", "harness.objectives.splade:SpladeObjective")
objectives.add_lazy("clear", "harness.objectives.clear:ClearObjective")
objectives.add_lazy("qg-distill", "harness.objectives.qg_distill:QGDistillObjective")


def get_objective(name: str) -> Any:
    """The objective class registered under ``name`` (unknown names fail with "did you mean")."""
    from harness.registry import UnknownNameError
    from harness.util import HarnessError

    try:
        return objectives.get(name)
    except UnknownNameError as err:
        raise HarnessError(str(err)) from None


def objective_rows() -> list[dict[str, str]]:
    """One row per registered objective for `harness objectives`: name, origin, description, parameters
    (as the config keys that set them, with their defaults)."""
    from harness.objectives.base import KEY_PREFIX, objective_params

    rows = []
    for entry in objectives:
        try:
            obj = entry.load()
            text = getattr(obj, "description", "") or (obj.__doc__ or "").strip().splitlines()[0]
            params = ", ".join(f"{KEY_PREFIX}{p.name}={p.default!r}" for p in objective_params(obj))
        except Exception as err:  # a broken plugin must not hide the others
            text, params = f"(fails to load: {err})", "-"
        rows.append({"name": entry.name, "origin": entry.origin, "description": text, "parameters": params})
    return rows
