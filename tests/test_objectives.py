"""Objectives: registry, hard-negative mining, the three losses, the query-generator teacher."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from test_train import tiny_evaluate, tiny_mlm, tiny_pairs, tiny_run, tiny_tokenizer

torch.set_num_threads(1)  # on a shared 2-core box, 2 OpenMP threads are many times slower


def test_registry_lists_builtins_and_suggests_names() -> None:
    from harness.objectives import get_objective, objective_rows
    from harness.util import HarnessError

    rows = {r["name"]: r for r in objective_rows()}
    assert {"splade", "clear", "qg-distill"} <= set(rows)
    assert all(rows[n]["origin"] == "builtin" and rows[n]["description"] for n in ("splade", "clear", "qg-distill"))
    assert get_objective("clear").name == "clear"
    with pytest.raises(HarnessError, match="did you mean 'splade'"):
        get_objective("spalde")


def test_lexical_negatives_pick_overlap_and_skip_false_negatives() -> None:
    from harness.objectives.base import lexical_negatives

    tok = tiny_tokenizer()
    queries = ["w1 w2", "w1 w2", "w7 w8", "w30 w31", "w40"]
    passages = ["w1 w2 w3", "w1 w2 w50 w51", "w1 w2 w3", "w1 w2 w30 w31 w32", "w40 w41"]
    negs = lexical_negatives(queries, passages, tok, k=1, max_length=32, seed=0)
    # query 0: passage 1 has the same query text and passage 2 the same passage text -> both excluded
    assert negs[0] == [3]
    assert all(i not in n for i, n in enumerate(negs))
    assert negs == lexical_negatives(queries, passages, tok, k=1, max_length=32, seed=0)
    assert [len(n) for n in lexical_negatives(queries, passages, tok, k=2, max_length=32, seed=0)] == [2, 2, 2, 2, 2]


def test_splade_loss_ranks_and_masks_duplicate_passages() -> None:
    from harness.objectives.splade import SpladeObjective

    obj = SpladeObjective(tiny_run(), tiny_tokenizer())
    eye = torch.eye(3, 6) * 5
    batch = {"texts": {"query": ["a", "b", "c"], "pos": ["pa", "pb", "pc"], "neg": ["x", "y", "z"]}}
    good, logs = obj.loss(batch, {"query": eye, "pos": eye, "neg": torch.zeros(3, 6)}, step=100)
    bad, _ = obj.loss(batch, {"query": eye, "pos": eye.roll(1, dims=0), "neg": torch.zeros(3, 6)}, step=100)
    assert good < bad and logs["rank_loss"] < 0.1
    # two items share one passage text: the other copy is not a negative for either of them
    same = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    dup = {"texts": {"query": ["a", "b"], "pos": ["p", "p"]}}
    masked, logs = obj.loss(dup, {"query": same, "pos": same}, step=0)
    assert logs["rank_loss"] == pytest.approx(0.0, abs=1e-6)
    unmasked = {"texts": {"query": ["a", "b"], "pos": ["p", "q"]}}
    _, logs = obj.loss(unmasked, {"query": same, "pos": same}, step=0)
    assert logs["rank_loss"] == pytest.approx(math.log(2), rel=1e-5)


def test_flops_term_is_added_with_its_weight() -> None:
    from harness.objectives.base import flops
    from harness.objectives.splade import SpladeObjective

    run = tiny_run(**{"train.flops_query": 0.5, "train.flops_doc": 0.25, "train.flops_warmup_steps": 0})
    obj = SpladeObjective(run, tiny_tokenizer())
    q, p = torch.rand(4, 7), torch.rand(4, 7)
    batch = {"texts": {"query": list("abcd"), "pos": list("efgh")}}
    loss, logs = obj.loss(batch, {"query": q, "pos": p}, step=1)
    assert float(loss) == pytest.approx(logs["rank_loss"] + 0.5 * float(flops(q)) + 0.25 * float(flops(p)), rel=1e-5)
    assert float(flops(q)) == pytest.approx(float((q.mean(0) ** 2).sum()))


def _clear_batch(items: int = 3, dim: int = 8):
    torch.manual_seed(0)
    pos, neg = torch.rand(items, dim), torch.rand(items, dim)
    texts = {"en_query": [f"q{i}" for i in range(items)], "tgt_query": [f"t{i}" for i in range(items)],
             "pos": [f"p{i}" for i in range(items)], "neg": [f"n{i}" for i in range(items)],
             "neg_tgt_query": [f"tn{i}" for i in range(items)]}
    return {"texts": texts}, pos, neg


def test_clear_kl_vanishes_when_directions_agree_and_weights_combine() -> None:
    from harness.objectives.clear import ClearObjective

    batch, pos, neg = _clear_batch()
    run = tiny_run(**{"train.flops_query": 0.0, "train.flops_doc": 0.0, "train.clear_alpha": 0.4, "train.clear_beta": 0.2})
    obj = ClearObjective(run, tiny_tokenizer())
    # English query = positive passage, target queries = passages: forward and reverse scores coincide
    agree = {"en_query": pos, "pos": pos, "neg": neg, "tgt_query": pos, "neg_tgt_query": neg}
    loss, logs = obj.loss(batch, agree, step=1)
    assert logs["kl"] == pytest.approx(0.0, abs=1e-6) and logs["forward"] == pytest.approx(logs["reverse"])
    assert float(loss) == pytest.approx((1 - 0.4 - 0.2) * logs["forward"] + 0.4 * logs["reverse"], rel=1e-5)
    # with disagreeing target queries the weighted sum holds and the KL is positive
    other = {**agree, "tgt_query": torch.rand(3, 8), "neg_tgt_query": torch.rand(3, 8)}
    loss, logs = obj.loss(batch, other, step=1)
    assert logs["kl"] > 0
    assert float(loss) == pytest.approx(0.4 * logs["forward"] + 0.4 * logs["reverse"] + 0.2 * logs["kl"], rel=1e-5)
    cosine = ClearObjective({**run, "train.clear_similarity": "cosine"}, None)
    assert float(cosine.similarity(pos, pos * 7).max()) == pytest.approx(20.0, rel=1e-5)


def test_clear_examples_keep_negative_passage_and_its_target_query_together() -> None:
    from harness.objectives.clear import ClearObjective

    rows = [(f"w{i} w{i + 1}", f"w{i} w{i + 1} w{i + 2} w{i + 3}", f"w{i + 30} w{i + 31}") for i in range(0, 20, 2)]
    obj = ClearObjective(tiny_run(), tiny_tokenizer())
    examples = obj.examples([], {"aligned": rows})
    by_passage = {r[1]: r[2] for r in rows}
    for ex, row in zip(examples, rows):
        assert (ex["en_query"], ex["pos"], ex["tgt_query"]) == row
        assert len(ex["neg"]) == 1 and ex["neg"][0] != row[1]
        assert ex["neg_tgt_query"] == [by_passage[ex["neg"][0]]]


def test_clear_reads_the_aligned_pairs_dataset() -> None:
    from harness.data import debian, libreoffice, load_collection
    from harness.objectives.clear import ClearObjective
    from harness.util import HarnessError

    if any(debian.installed_version(libreoffice.PACKAGES[lang]) is None for lang in ("en", "ko")):
        pytest.skip("LibreOffice help packages not unpacked in the cache")
    rows = load_collection("libreoffice-help-ko-x-en-train").aligned
    assert len(rows) > 100 and not any(libreoffice.is_dev_page(page) for page, *_ in rows)  # dev held out
    for _, en_title, en_text, ko_title in rows[:200]:
        assert en_title != ko_title and en_text and not en_text.lower().startswith(en_title.lower() + "\n")
    assert any(any("\uac00" <= ch <= "\ud7a3" for ch in r[3]) for r in rows)  # Hangul in target titles
    obj = ClearObjective(tiny_run(lang="ko", **{"train.hard_negatives": 0}), tiny_tokenizer())
    assert obj.aligned_dataset == "libreoffice-help-ko-x-en-train"
    assert [(e["en_query"], e["pos"], e["tgt_query"]) for e in obj.examples([], {})] == [r[1:] for r in rows]
    with pytest.raises(HarnessError, match="no aligned rows"):
        ClearObjective(tiny_run(lang="ko", **{"train.aligned_dataset": "libreoffice-help-ko-train"}),
                       tiny_tokenizer()).examples([], {})


# ----------------------------------------------------------------------------------------------
# qg-distill with a tiny random T5 teacher built here
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("teacher")
    T5ForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_teacher_scores_are_mean_token_log_likelihood(teacher_dir: Path) -> None:
    from transformers import T5ForConditionalGeneration

    from harness.objectives.qg_distill import Teacher

    teacher = Teacher(str(teacher_dir), max_length=32)
    queries, passages = ["w1 w2", "w3", "w4 w5 w6"], ["w1 w2 w9", "w3 w3", "w10 w11"]
    scores = teacher.score(queries, passages)
    reference = T5ForConditionalGeneration.from_pretrained(teacher_dir).eval()
    tok = tiny_tokenizer()
    for q, p, s in zip(queries, passages, scores):
        with torch.no_grad():
            nll = reference(**tok(p, return_tensors="pt"), labels=tok(q, return_tensors="pt")["input_ids"]).loss
        assert float(s) == pytest.approx(-float(nll), rel=1e-4)
    generated = teacher.generate(passages, "ko", max_new_tokens=5)
    assert len(generated) == 3 and generated == teacher.generate(passages, "ko", max_new_tokens=5)


def test_qg_distill_without_mined_negatives_distils_over_the_batch(teacher_dir: Path) -> None:
    """qg_candidates=1: the teacher scores each query against every passage of the batch (row i, column j)."""
    from harness.objectives.qg_distill import QGDistillObjective

    run = tiny_run(**{"train.objective": "qg-distill", "train.teacher": str(teacher_dir), "train.qg_candidates": 1})
    obj = QGDistillObjective(run, tiny_tokenizer())
    pairs = tiny_pairs(3, seed=2)
    batch = obj.collate(obj.examples(pairs, {}))
    assert batch["k"] == 1 and batch["teacher"].shape == (3, 3)
    expected = obj.teacher.score([pairs[1][0]], [pairs[2][1]])
    assert float(batch["teacher"][1, 2]) == pytest.approx(float(expected[0]), rel=1e-5)
    vocab = len(tiny_tokenizer())
    reps = {role: torch.rand(3 * (1 if role != "gen" else len(obj.languages)), vocab) for role in ("query", "cand", "gen")}
    loss, logs = obj.loss(batch, reps, step=1)
    assert math.isfinite(float(loss)) and logs["distil"] > 0  # a real distribution over 3 passages, not 1


def test_missing_teacher_fails_fast_with_clear_message(tmp_path: Path) -> None:
    from harness.objectives.qg_distill import QGDistillObjective
    from harness.util import HarnessError

    run = tiny_run(**{"train.objective": "qg-distill", "train.teacher": str(tmp_path / "nothing-here")})
    with pytest.raises(HarnessError, match="no.*query generator.*offline|offline.*query generator"):
        QGDistillObjective(run, tiny_tokenizer())
    with pytest.raises(HarnessError, match="teacher 'org/qg-model'"):
        QGDistillObjective({**run, "train.teacher": "org/qg-model"}, tiny_tokenizer())


def test_qg_distill_and_clear_train_end_to_end(tmp_path: Path, teacher_dir: Path) -> None:
    from harness.train import fine_tune

    tok = tiny_tokenizer()
    pairs = tiny_pairs(24, seed=1)
    common = dict(evaluate=tiny_evaluate(tiny_pairs(8, seed=99)), echo=lambda s: None)
    run = tiny_run(**{"train.objective": "qg-distill", "train.teacher": str(teacher_dir), "train.steps": 4,
                      "train.eval_every": 2, "train.qg_candidates": 3, "train.qg_languages": ["en", "ko"],
                      "train.qg_align_weight": 1.0, "train.teacher_temperature": 1.0, "train.qg_prompt": "{passage}"})
    result = fine_tune(run, tiny_mlm(len(tok)), tok, pairs=pairs, work_dir=tmp_path / "qg", **common)
    assert [p["step"] for p in result["curve"]] == [0, 2, 4] and result["objective"] == "qg-distill"
    assert all(math.isfinite(p["loss"]) for p in result["curve"])

    rows = [(q, p, f"w{50 + i % 9} {q}") for i, (q, p) in enumerate(pairs)]
    run = tiny_run(**{"train.objective": "clear", "train.steps": 4, "train.eval_every": 2, "train.clear_alpha": 0.4,
                      "train.clear_beta": 0.2, "train.clear_similarity": "dot"})
    result = fine_tune(run, tiny_mlm(len(tok)), tok, pairs=[], work_dir=tmp_path / "clear",
                       extra={"aligned": rows}, **common)
    assert result["objective"] == "clear" and result["examples"] == len(rows)
    assert all(math.isfinite(p["loss"]) for p in result["curve"])
