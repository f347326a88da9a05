"""Fine-tuning a transplanted sparse encoder, with a convergence curve and exact resume.

``fine_tune(run, model, tokenizer, pairs=..., evaluate=..., work_dir=...)`` trains the masked LM in
place with the run's objective (``harness.objectives``) and returns the curve.

Why an own loop and not sentence-transformers' SparseEncoderTrainer: the harness needs (1) bitwise
identical results after a kill -9 and resume, including the curve and the FLOPS warm-up position,
(2) evaluation with the harness's own retrieval evaluator at step 0 and every N steps, timed
separately from training, and (3) objectives whose batches are not (anchor, positive, negative)
columns (CLEAR's reverse direction, a teacher's scores). The HF Trainer can resume, but skipping
already seen batches, RNG restoration and callback state are approximate across versions, and each
objective would have to be squeezed into its loss/collator interface. The loop below is short:
seeded data order that is a pure function of the step, AdamW + linear warm-up/decay, bf16 autocast
on CUDA, DDP under torchrun, and a checkpoint holding everything that determines the future.

Speed: the SPLADE vectors come from ``harness.splade_head`` (the MLM decoder fused with max pooling,
whose backward multiplies only the arg-max rows) for the architectures it recognises, each training
text is tokenized once (``TokenCache``), and AdamW is the fused kernel; ``bench/train.py`` measures it.

Data order: epoch e is a permutation of the examples drawn from ``default_rng([seed, e])``; step s
takes global positions ``s*B .. s*B+B-1`` of the concatenated epochs. ``train.batch_size`` is the
global batch; under DDP each rank takes its contiguous slice (in-batch negatives are per rank).

Checkpoint (``work_dir/checkpoint/``, written to a temp dir and renamed into place): model,
optimizer, scheduler, torch RNG states of every rank, step, training wall time, the running loss of
the current curve interval and the curve so far. Calling ``fine_tune`` again with the same
``work_dir`` resumes from it and ends with the same curve (except wall times) and weights as an
uninterrupted run; after completion it returns the stored result without training.

Curve points (step 0 = zero-shot, every ``train.eval_every`` steps, and the last step): the
evaluator's metrics, ``wall_seconds`` (training time so far, evaluation excluded), ``loss`` (mean
training loss since the previous point; at step 0 the loss of the first batch, no update) and
``query_active_dims`` / ``doc_active_dims`` (mean non-zeros per vector on a fixed probe batch, the
first batch of the data order, encoded in eval mode).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.device import accepted_inputs, autocast, local_rank, rank_and_world, resolve_device
from harness.util import (HarnessError, atomic_dir, content_hash, is_sealed, previous_dir, read_entry, read_json,
                          sweep_stale, write_json_atomic)

CHECKPOINT = "checkpoint"
EXAMPLES = "examples.json"
RESULT = "train_result.json"

Evaluate = Callable[[Any, Any], dict[str, float]]


@dataclass
class TrainState:
    """Everything besides tensors that decides how training continues."""

    step: int = 0
    elapsed: float = 0.0  # training wall seconds, evaluation excluded, summed over sessions
    loss_sum: float = 0.0  # training loss since the last curve point
    loss_n: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: list[int] = field(default_factory=list)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------
def fine_tune(run: dict[str, Any], model: Any, tokenizer: Any, *, pairs: list[tuple[str, str]],
              evaluate: Evaluate, work_dir: Path | str, echo: Callable[[str], None] = print,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` in place; returns {curve, final_metrics, steps_to_95, train_seconds, ...}."""
    import torch

    from harness.objectives import get_objective

    work_dir = Path(work_dir)
    _check_run(run)
    dist = _distributed(run)
    objective = get_objective(run["train.objective"])(run, tokenizer, device=dist.device)
    examples, data_hash = _examples(objective, run, pairs, extra or {}, work_dir, dist)
    fingerprint = content_hash(run, data_hash)
    model.to(dist.device)
    optimizer, scheduler = _optimizer(run, model)
    finished = _finished_result(work_dir, fingerprint)
    state = _resume(work_dir, fingerprint, model, optimizer, scheduler, dist)
    if finished is not None and state is not None and state.step == run["train.steps"]:
        echo(f"training already finished in {work_dir}; loaded the final weights")
        return finished
    if state is None:
        torch.manual_seed(run["seed"] + dist.rank)
        state = TrainState()
    else:
        echo(f"resuming from step {state.step} ({work_dir / CHECKPOINT})")
    loop = Loop(run, model, tokenizer, objective, examples, evaluate, work_dir, fingerprint, dist, echo)
    loop.train(state, optimizer, scheduler)
    result = _result(run, state, objective, len(examples))
    if dist.main:
        write_json_atomic(work_dir / RESULT, {"fingerprint": fingerprint, "result": result})
    return result


class Loop:
    """One training session: the step loop, curve points and checkpoints."""

    def __init__(self, run: dict[str, Any], model: Any, tokenizer: Any, objective: Any, examples: list[dict],
                 evaluate: Evaluate, work_dir: Path, fingerprint: str, dist: Dist, echo: Callable[[str], None]):
        self.run, self.model, self.tokenizer, self.objective = run, model, tokenizer, objective
        self.examples, self.evaluate, self.work_dir, self.fingerprint = examples, evaluate, work_dir, fingerprint
        self.dist, self.echo = dist, echo
        self.module = _splade_module_class()(model, accepted_inputs(model))
        self.tokens = TokenCache(tokenizer, self.module.inputs)
        self.forward = self.module
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [int(dist.device.split(":")[1])] if dist.device.startswith("cuda") else None
            self.forward = DistributedDataParallel(self.module, device_ids=ids)

    def train(self, state: TrainState, optimizer: Any, scheduler: Any) -> None:
        total = self.run["train.steps"]
        if state.step == 0 and not state.curve:
            self.point(state, 0)
        bar = _progress(total, state.step, self.run["train.objective"], self.dist.main)
        for step in range(state.step + 1, total + 1):
            start = time.perf_counter()
            loss = self.optimise(step, optimizer, scheduler)
            state.step = step
            state.elapsed += time.perf_counter() - start
            state.loss_sum += float(loss)
            state.loss_n += 1
            bar.update(1)
            bar.set_postfix(loss=f"{state.loss_sum / state.loss_n:.3f}")
            if step % self.run["train.eval_every"] == 0 or step == total:
                self.point(state, step)
            if step % self.run["train.checkpoint_every"] == 0 or step == total:
                self.checkpoint(state, optimizer, scheduler)
        bar.close()

    def optimise(self, step: int, optimizer: Any, scheduler: Any) -> Any:
        """One update on the batch of ``step``: forward, backward, clipping, AdamW, schedule; the loss."""
        import torch

        self.model.train()
        loss, _ = self.batch_loss(step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.run["train.max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def batch_loss(self, step: int, global_batch: list[int] | None = None) -> tuple[Any, dict[str, Any]]:
        """Loss of the batch of ``step`` (1-based) on this rank; also returns the representations."""
        idx = global_batch if global_batch is not None else batch_indices(step - 1, len(self.examples),
                                                                          self.run["train.batch_size"], self.run["seed"])
        per_rank = len(idx) // self.dist.world
        mine = idx[self.dist.rank * per_rank:(self.dist.rank + 1) * per_rank]
        batch = self.objective.collate([self.examples[i] for i in mine])
        reps = self.encode(batch["texts"])
        loss, _ = self.objective.loss(batch, reps, step)
        return loss, reps

    def encode(self, texts: dict[str, list[str]]) -> dict[str, Any]:
        """SPLADE vectors per role: all query roles in one forward, all document roles in another."""
        roles = self.objective.roles
        groups = {kind: [r for r in texts if roles[r] == kind] for kind in ("query", "document")}
        limits = {"query": self.run["train.query_max_length"], "document": self.run["train.doc_max_length"]}
        features = {kind: self.features([t for r in rs for t in texts[r]], limits[kind])
                    for kind, rs in groups.items() if rs}
        with autocast(self.dist.device, self.run["train.bf16"]):
            pooled = self.forward(features)
        reps: dict[str, Any] = {}
        for kind, rs in groups.items():
            offset = 0
            for r in rs:
                reps[r] = pooled[kind][offset:offset + len(texts[r])]
                offset += len(texts[r])
        return reps

    def features(self, texts: list[str], max_length: int) -> dict[str, Any]:
        return {k: v.to(self.dist.device) for k, v in self.tokens(texts, max_length).items()}

    # -- curve and checkpoints ----------------------------------------------------------------
    def point(self, state: TrainState, step: int) -> None:
        """Evaluate (rank 0), probe, and append a curve point; RNG streams are left untouched."""
        import torch

        devices = [torch.device(self.dist.device)] if self.dist.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            metrics = _broadcast(self.dist, _metrics(self.evaluate(self.model, self.tokenizer)) if self.dist.main else None)
            probe = self.probe()
        self.model.train()
        loss = state.loss_sum / state.loss_n if state.loss_n else probe.pop("loss")
        probe.pop("loss", None)
        entry = {"step": step, "wall_seconds": round(state.elapsed, 3), **metrics, "loss": loss, **probe}
        state.curve.append(entry)
        state.loss_sum, state.loss_n = 0.0, 0
        if self.dist.main:
            self.echo(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items()
                                                   if isinstance(v, float) and k != "wall_seconds"))

    def probe(self) -> dict[str, float]:
        """Loss and active dimensions on the first batch of the data order, eval mode, no update."""
        import torch

        self.model.eval()
        first = batch_indices(0, len(self.examples), self.run["train.batch_size"], self.run["seed"])
        with torch.no_grad():
            loss, reps = self.batch_loss(0, first)
        roles = self.objective.roles
        dims = {kind: torch.cat([(v > 0).sum(dim=1).float() for r, v in reps.items() if roles[r] == kind])
                for kind in ("query", "document")}
        return {"loss": float(loss), "query_active_dims": float(dims["query"].mean()),
                "doc_active_dims": float(dims["document"].mean())}

    def checkpoint(self, state: TrainState, optimizer: Any, scheduler: Any) -> None:
        rng = _gather_rng(self.dist)
        if self.dist.main:
            save_checkpoint(self.work_dir / CHECKPOINT, {
                "fingerprint": self.fingerprint, "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": rng, "state": asdict(state)}, curve=state.curve)
        _barrier(self.dist)


class TokenCache:
    """``tokenizer(texts, padding=True, truncation=True, max_length=L, return_tensors="pt")`` with each
    (text, L) tokenized once: training revisits the same examples every epoch. Batches are padded to
    their longest sequence, on the tokenizer's padding side, with its pad id and pad token type id."""

    def __init__(self, tokenizer: Any, inputs: set[str]) -> None:
        self.tokenizer, self.inputs = tokenizer, inputs
        self.cached: dict[tuple[str, int], dict[str, Any]] = {}  # (text, max_length) -> {input: 1-d tensor}

    def __call__(self, texts: list[str], max_length: int) -> dict[str, Any]:
        import torch

        tok = self.tokenizer
        if tok.pad_token_id is None:  # the tokenizer's own call says what is wrong
            enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            return {k: v for k, v in enc.items() if k in self.inputs}
        missing = list(dict.fromkeys(t for t in texts if (t, max_length) not in self.cached))
        if missing:
            enc = tok(missing, truncation=True, max_length=max_length)
            for j, text in enumerate(missing):
                self.cached[(text, max_length)] = {k: torch.tensor(enc[k][j], dtype=torch.long) for k in enc.keys()
                                                   if k in self.inputs}
        rows = [self.cached[(t, max_length)] for t in texts]
        width = max((len(r["input_ids"]) for r in rows), default=0)
        pad = {"input_ids": tok.pad_token_id, "token_type_ids": tok.pad_token_type_id, "attention_mask": 0}
        out = {k: torch.full((len(rows), width), pad.get(k, 0), dtype=torch.long) for k in rows[0]} if rows else {}
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            at = slice(width - n, width) if tok.padding_side == "left" else slice(0, n)
            for k, ids in r.items():
                out[k][i, at] = ids
        return out


def _check_run(run: dict[str, Any]) -> None:
    for key in ("train.steps", "train.batch_size", "train.eval_every", "train.checkpoint_every"):
        if run[key] < 1:
            raise HarnessError(f"{key} must be at least 1, got {run[key]}")


# ----------------------------------------------------------------------------------------------
# Data order and examples
# ----------------------------------------------------------------------------------------------
def batch_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Example indices of global batch ``step`` (0-based): a pure function, so resuming needs only the step.
    A batch straddling two epochs may hold an example twice; objectives mask duplicate passages."""
    if n < batch_size:
        raise HarnessError(f"only {n} training examples for a batch of {batch_size}: lower train.batch_size")
    positions = range(step * batch_size, (step + 1) * batch_size)
    return [int(_permutation(seed, p // n, n)[p % n]) for p in positions]


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> Any:
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n)


def _examples(objective: Any, run: dict[str, Any], pairs: list[tuple[str, str]], extra: dict[str, Any],
              work_dir: Path, dist: Dist) -> tuple[list[dict[str, Any]], str]:
    """The objective's examples, built once (rank 0) and cached in ``work_dir``; plus their hash."""
    key = content_hash(run, [list(p) for p in pairs], extra)  # extra: JSON-like data (e.g. aligned rows)
    path = work_dir / EXAMPLES
    if dist.main and not (path.exists() and read_json(path).get("key") == key):
        built = objective.examples(pairs, extra)
        if not built:
            raise HarnessError(f"objective '{run['train.objective']}' found no training examples for "
                               f"language '{run.get('lang')}'")
        write_json_atomic(path, {"key": key, "examples": built})
    _barrier(dist)
    examples = read_json(path)["examples"]
    return examples, content_hash(key, len(examples))


# ----------------------------------------------------------------------------------------------
# Model pieces
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _splade_module_class() -> type:
    """nn.Module wrapping the MLM: one forward for queries and documents, so DDP sees one call.

    For a recognised architecture (``harness.splade_head.mlm_parts``) the SPLADE vectors come from the
    fused decoder + max pooling, whose backward touches only the arg-max tokens; any other masked LM
    takes the plain path, ``splade_pool(model(**x).logits)``. ``fused=False`` forces the plain path."""
    import torch

    from harness.encoder import splade_pool
    from harness.splade_head import mlm_parts

    class SpladeModule(torch.nn.Module):
        def __init__(self, mlm: Any, inputs: set[str], fused: bool = True) -> None:
            super().__init__()
            self.mlm = mlm
            self.inputs = inputs
            self.parts = mlm_parts(mlm, inputs) if fused else None  # a plain object: no second registration

        def forward(self, features: dict[str, dict[str, Any]]) -> dict[str, Any]:
            if self.parts is not None:
                return {kind: self.parts.pool(f) for kind, f in features.items()}
            return {kind: splade_pool(self.mlm(**f).logits, f["attention_mask"]) for kind, f in features.items()}

    return SpladeModule


def _optimizer(run: dict[str, Any], model: Any) -> tuple[Any, Any]:
    """AdamW (no decay on biases and LayerNorm) + linear warm-up, then ``train.schedule``: linear decay to 0
    (the default), constant, or cosine to 0."""
    import torch

    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (plain if p.ndim < 2 else decay).append(p)
    # fused: one kernel over all tensors (torch >= 2.4, CPU and CUDA); ~10x faster than the per-tensor loop
    # on splade-tiny's 2.4M parameters (2 CPU cores)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": run["train.weight_decay"]},
                                   {"params": plain, "weight_decay": 0.0}], lr=run["train.lr"], fused=True)
    total = run["train.steps"]
    warm = run.get("train.warmup_steps")
    warm = int(run["train.warmup_ratio"] * total) if warm is None else warm
    schedule = run.get("train.schedule") or "linear"

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if schedule == "constant":
            return 1.0
        left = max(0.0, (total - step) / max(1, total - warm))
        return left if schedule == "linear" else 0.5 * (1.0 - math.cos(math.pi * left))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _progress(total: int, initial: int, name: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"fine-tune ({name})", unit="step", disable=not show,
                dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any], *, curve: list[dict[str, Any]]) -> None:
    """Write into a temp dir beside ``path``, then swap it in (a crash leaves the old one or its ``.old``)."""
    import torch

    with atomic_dir(path, sealed=True) as tmp:
        torch.save(payload, tmp / "state.pt")
        write_json_atomic(tmp / "curve.json", curve)  # human-readable copy


def _load_checkpoint(work_dir: Path, device: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest intact checkpoint (folder, payload); None when there is none.

    A damaged one (its seal or torch.load says so) is removed with a warning and training goes on
    from the parked older one or from step 0: a checkpoint only saves time, and the data order and
    RNG are pure functions of (seed, step), so starting over ends with the same weights and curve
    as resuming would have. An error would only make the user delete it by hand.
    """
    import torch

    def load(folder: Path) -> dict[str, Any]:
        return torch.load(folder / "state.pt", map_location=device, weights_only=True)

    sweep_stale(work_dir)  # the temp folder of a checkpoint write that a kill -9 interrupted
    for folder in (work_dir / CHECKPOINT, previous_dir(work_dir / CHECKPOINT)):  # crash mid-swap
        if (folder / "state.pt").exists() or is_sealed(folder):
            payload = read_entry(folder, load, action="training goes on without it (an older checkpoint or step 0)")
            if payload is not None:
                return folder, payload
    return None


def _resume(work_dir: Path, fingerprint: str, model: Any, optimizer: Any, scheduler: Any,
            dist: Dist) -> TrainState | None:
    """Load the checkpoint into model/optimizer/scheduler/RNG; None when there is none."""
    found = _load_checkpoint(work_dir, dist.device)
    if found is None:
        return None
    folder, payload = found
    if payload["fingerprint"] != fingerprint:
        raise HarnessError(f"{folder} holds a checkpoint of a different configuration or data; "
                           "delete it to start over")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng(payload["rng"][dist.rank], dist)
    state = TrainState(**payload["state"])
    state.resumed_from.append(state.step)
    return state


def _finished_result(work_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    path = work_dir / RESULT
    if not path.exists():
        return None
    stored = read_json(path)
    return stored["result"] if stored.get("fingerprint") == fingerprint else None


def _rng_state(dist: Dist) -> dict[str, Any]:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if dist.device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state(torch.device(dist.device)).cpu()
    return state


def _set_rng(state: dict[str, Any], dist: Dist) -> None:
    import torch

    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and dist.device.startswith("cuda"):
        torch.cuda.set_rng_state(state["cuda"].cpu(), torch.device(dist.device))


# ----------------------------------------------------------------------------------------------
# Distributed helpers (no-ops in a single process)
# ----------------------------------------------------------------------------------------------
def _distributed(run: dict[str, Any]) -> Dist:
    """Rank/world/device from torchrun's environment; initialises the process group when needed."""
    import torch

    device = resolve_device(run["device"])
    cuda = device.startswith("cuda")
    _, world = rank_and_world()
    if world == 1:
        return Dist(0, 1, device)
    import torch.distributed as td

    local = local_rank()
    if not td.is_initialized():
        td.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local)
    if run["train.batch_size"] % world:
        raise HarnessError(f"train.batch_size {run['train.batch_size']} is not divisible by {world} processes")
    return Dist(td.get_rank(), world, f"cuda:{local}" if cuda else "cpu")


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as td

        td.barrier()


def _broadcast(dist: Dist, obj: Any) -> Any:
    if dist.world == 1:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def _gather_rng(dist: Dist) -> list[dict[str, Any]]:
    state = _rng_state(dist)
    if dist.world == 1:
        return [state]
    import torch.distributed as td

    states: list[Any] = [None] * dist.world
    td.all_gather_object(states, state)
    return states


def _metrics(value: Any) -> dict[str, float]:
    """The evaluator's answer as {name: float}; anything else is a wiring error, said plainly."""
    from collections.abc import Mapping

    if not isinstance(value, Mapping) or not all(isinstance(v, (int, float)) for v in value.values()):
        raise HarnessError(f"fine_tune's evaluate(model, tokenizer) must return {{metric: float}}, got {type(value).__name__}")
    return {str(k): float(v) for k, v in value.items()}


# ----------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------
def _result(run: dict[str, Any], state: TrainState, objective: Any, n_examples: int) -> dict[str, Any]:
    final = state.curve[-1]
    metric_names = [k for k in final if k not in ("step", "wall_seconds", "loss", "query_active_dims",
                                                  "doc_active_dims")]
    primary = next((m for m in run["eval.metrics"] if m in metric_names), metric_names[0] if metric_names else None)
    return {
        "curve": state.curve,
        "final_metrics": {k: final[k] for k in metric_names},
        "primary_metric": primary,
        "steps_to_95": steps_to_fraction(state.curve, primary, 0.95) if primary else None,
        "train_seconds": round(state.elapsed, 3),
        "objective": objective.name or run["train.objective"],
        "examples": n_examples,
        "resumed_from_steps": state.resumed_from,
    }


def steps_to_fraction(curve: list[dict[str, Any]], metric: str, fraction: float) -> int | None:
    """First step whose ``metric`` reaches ``fraction`` of its value at the last point."""
    target = fraction * curve[-1][metric]
    return next((p["step"] for p in curve if p[metric] >= target), None)
