"""fine_tune on a tiny random BERT: curve, determinism, and exact resume after kill -9 of a training process."""
from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

# ----------------------------------------------------------------------------------------------
# Tiny builders (also used by tests/test_objectives.py)
# ----------------------------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(60)]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)


def tiny_mlm(vocab_size, seed=0):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    model = BertForMaskedLM(config)
    with torch.no_grad():  # random init gives logits near 0; a bias makes the vectors non-trivially sparse
        model.cls.predictions.bias.normal_(0.0, 1.0)
    return model


def tiny_pairs(n, seed):
    """(query, passage): the query's two words occur in the passage among random filler."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a, b = rng.sample(WORDS, 2)
        body = rng.sample(WORDS, 8) + [a, b]
        rng.shuffle(body)
        pairs.append((f"{a} {b}", " ".join(body)))
    return pairs


def tiny_evaluate(pairs):
    """A real evaluator: encode with SpladeEncoder, rank all passages, MRR and recall@1 of the positive."""
    def evaluate(model, tokenizer):
        import numpy as np
        from harness.encoder import SpladeEncoder

        enc = SpladeEncoder(model, tokenizer, device="cpu", query_max_length=32, doc_max_length=32)
        q = enc.encode([p[0] for p in pairs], kind="query").toarray()
        d = enc.encode([p[1] for p in pairs], kind="document").toarray()
        scores = q @ d.T
        ranks = [(row > row[i]).sum() + 1 for i, row in enumerate(scores)]
        return {"mrr@10": float(np.mean([1.0 / r if r <= 10 else 0.0 for r in ranks])),
                "recall@1": float(np.mean([r == 1 for r in ranks]))}
    return evaluate


def tiny_run(**over):
    run = {"seed": 0, "lang": "xx", "device": "cpu", "eval.metrics": ["mrr@10", "recall@1"],
           "train.objective": "splade", "train.steps": 24, "train.batch_size": 8, "train.lr": 1e-3,
           "train.warmup_ratio": 0.1, "train.eval_every": 6, "train.checkpoint_every": 6,
           "train.query_max_length": 16, "train.doc_max_length": 32, "train.flops_query": 1e-3,
           "train.flops_doc": 1e-3, "train.flops_warmup_steps": 10, "train.bf16": True,
           "train.flops_warmup": "quadratic", "train.hard_negatives": 1, "train.weight_decay": 0.01,
           "train.max_grad_norm": 1.0}
    run.update(over)
    return run

def _train_tiny(work: Path, out: Path | None = None, slow: bool = False) -> dict:
    """The tiny training every resume test runs; ``slow`` leaves time to kill it between checkpoints."""
    import torch

    from harness.train import fine_tune

    tok = tiny_tokenizer()
    model = tiny_mlm(len(tok))
    fast = tiny_evaluate(tiny_pairs(16, seed=99))

    def evaluate(m, t):
        if slow:
            time.sleep(1.5)
        return fast(m, t)

    result = fine_tune(tiny_run(), model, tok, pairs=tiny_pairs(40, seed=1), evaluate=evaluate, work_dir=work,
                       echo=lambda s: None)
    if out is not None:
        torch.save(model.state_dict(), out)
    return result


def _fork_training(work: Path) -> int:
    """A child process (fork: no second torch import) running the slow tiny training; returns its pid."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            _train_tiny(work, slow=True)
            code = 0
        finally:
            os._exit(code)
    return pid


def _strip_wall(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "wall_seconds"} for p in curve]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)  # before forking: no OpenMP pool in the parent, and identical arithmetic
    pid = _fork_training(tmp_path / "work-b")
    state = tmp_path / "work-b" / "checkpoint" / "state.pt"
    deadline = time.time() + 90
    while not state.exists() and time.time() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(0.02)
    assert state.exists(), "no checkpoint appeared"
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not (tmp_path / "work-b" / "train_result.json").exists()
    killed_at = torch.load(state, weights_only=True)["state"]["step"]
    assert 0 < killed_at < 24

    b = _train_tiny(tmp_path / "work-b", tmp_path / "b.pt")  # resumes from the checkpoint
    a = _train_tiny(tmp_path / "work-a", tmp_path / "a.pt")  # uninterrupted
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    assert b["resumed_from_steps"] == [killed_at] and a["resumed_from_steps"] == []
    assert _strip_wall(b["curve"]) == _strip_wall(a["curve"])
    assert b["final_metrics"] == a["final_metrics"]
    wa = torch.load(tmp_path / "a.pt", weights_only=True)
    wb = torch.load(tmp_path / "b.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the training moved the weights, so equality above is not trivially true
    fresh = tiny_mlm(len(tiny_tokenizer())).state_dict()
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(fresh[key], wa[key])


def test_curve_shape_and_training_effect(tmp_path: Path) -> None:
    from harness.train import fine_tune

    tok = tiny_tokenizer()
    model = tiny_mlm(len(tok))
    evaluate = tiny_evaluate(tiny_pairs(16, seed=99))
    run = tiny_run(**{"train.steps": 26})
    result = fine_tune(run, model, tok, pairs=tiny_pairs(40, seed=1), evaluate=evaluate,
                       work_dir=tmp_path / "w", echo=lambda s: None)
    curve = result["curve"]
    assert [p["step"] for p in curve] == [0, 6, 12, 18, 24, 26]  # zero-shot, every 6, and the last step
    for p in curve:
        assert {"step", "wall_seconds", "mrr@10", "recall@1", "loss", "query_active_dims", "doc_active_dims"} <= set(p)
        assert 0 < p["query_active_dims"] <= len(tok) and 0 < p["doc_active_dims"] <= len(tok)
    walls = [p["wall_seconds"] for p in curve]
    assert walls[0] == 0 and walls == sorted(walls)
    assert result["final_metrics"] == {"mrr@10": curve[-1]["mrr@10"], "recall@1": curve[-1]["recall@1"]}
    final = curve[-1]["mrr@10"]
    expect = next(p["step"] for p in curve if p["mrr@10"] >= 0.95 * final)
    assert result["steps_to_95"] == expect and result["primary_metric"] == "mrr@10"
    # training on pairs of the same kind must beat the zero-shot random model on held-out pairs
    assert curve[-1]["mrr@10"] > curve[0]["mrr@10"]
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert result["train_seconds"] > 0 and (tmp_path / "w" / "checkpoint" / "state.pt").exists()

    # calling again with a finished work dir returns the stored result and the final weights
    model2 = tiny_mlm(len(tok))
    again = fine_tune(run, model2, tok, pairs=tiny_pairs(40, seed=1), evaluate=evaluate,
                      work_dir=tmp_path / "w", echo=lambda s: None)
    assert again == json.loads(json.dumps(result))
    assert all(a.equal(b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_changed_config_refuses_foreign_checkpoint(tmp_path: Path) -> None:
    from harness.train import fine_tune
    from harness.util import HarnessError

    tok = tiny_tokenizer()
    common = dict(pairs=tiny_pairs(40, seed=1), evaluate=tiny_evaluate(tiny_pairs(8, seed=99)),
                  work_dir=tmp_path, echo=lambda s: None)
    fine_tune(tiny_run(**{"train.steps": 6}), tiny_mlm(len(tok)), tok, **common)
    with pytest.raises(HarnessError, match="different configuration"):
        fine_tune(tiny_run(**{"train.steps": 6, "train.lr": 5e-4}), tiny_mlm(len(tok)), tok, **common)


def test_batch_order_is_seeded_permutation_per_epoch() -> None:
    from harness.train import batch_indices

    n, b = 10, 4
    stream = [i for s in range(5) for i in batch_indices(s, n, b, seed=3)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]  # a new permutation every epoch
    assert stream == [i for s in range(5) for i in batch_indices(s, n, b, seed=3)]
    assert stream != [i for s in range(5) for i in batch_indices(s, n, b, seed=4)]


def test_flops_warmup_shapes() -> None:
    from harness.objectives.base import Objective

    run = tiny_run(**{"train.flops_query": 1.0, "train.flops_doc": 2.0, "train.flops_warmup_steps": 10})
    quad = Objective(run, None)
    assert quad.flops_weights(5) == (0.25, 0.5) and quad.flops_weights(20) == (1.0, 2.0)
    lin = Objective({**run, "train.flops_warmup": "linear"}, None)
    assert lin.flops_weights(5) == (0.5, 1.0) and lin.flops_weights(0) == (0.0, 0.0)
