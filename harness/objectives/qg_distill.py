"""`qg-distill`: a query generator as teacher (seed 003: Ren et al., EMNLP 2022).

Teacher: any seq2seq model (``train.teacher``: a local directory or a hub id; loaded from local files
only). For each query, its candidates are its positive passage plus ``train.qg_candidates - 1``
lexically mined hard negatives (``base.lexical_negatives``). The teacher scores each candidate by
``log P(q | p)`` averaged over the query's tokens (mean, not sum, so the temperature means the same
for short and long queries); ``softmax(score / train.teacher_temperature)`` is the teacher
distribution, and the loss is KL(teacher || student) with the student's SPLADE dot products over the
same candidates, plus the in-batch contrastive loss over all candidates of the batch (it keeps the
positive pinned while the teacher reshapes the negatives).

Query alignment across languages without parallel sentences: for every positive passage the teacher
generates a query (greedy) per language in ``train.qg_languages`` (one generation when empty), with
the prompt ``train.qg_prompt`` (``{passage}`` and ``{lang}`` are filled). An InfoNCE term pulls each
generated query towards the real target-language query of the same passage, against the batch's
other queries; weight ``train.qg_align_weight``. Teacher scores and generations are computed per
batch without gradients (deterministic, so resume is exact) — no cache of teacher outputs is kept.

Offline: no trained query generator is available from the package registries, so the pocket profile
trains its own. The default ``train.teacher`` is ``pocket:query-generator``: the pocket query generator
of the run's language (``harness.teacher``: an encoder-decoder warm-started from multilingual-e5-small,
trained on the language's LibreOffice help training pairs), trained on demand with one log line when it
is not cached yet (``harness teacher train --lang L`` trains it ahead, ``harness teacher eval --lang L``
measures it on the dev collection). ``train.teacher`` may also name a local directory (``{cache}`` = the
harness cache, ``$HARNESS_CACHE`` or ``~/.cache/harness``) holding any seq2seq query generator
(``model.save_pretrained(dir)`` and ``tokenizer.save_pretrained(dir)``, e.g. a doc2query (m)T5 copied
from a machine with hub access), or a hub id already in the local Hugging Face cache. When the teacher
is missing the objective fails before any training, saying so.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from harness.objectives.base import Objective, Range, duplicate_mask, info_nce, lexical_negatives
from harness.util import HarnessError

if TYPE_CHECKING:
    import torch

TEACHER_HELP = ("qg-distill needs a seq2seq query generator as teacher: use train.teacher=pocket:query-generator "
                "(trained offline on demand), put one (save_pretrained model + tokenizer) in that directory, or "
                "point train.teacher at a hub id already in the Hugging Face cache")
POCKET_TEACHER = "pocket:query-generator"  # = harness.teacher.POCKET_TEACHER
LEGACY_TEACHER = "{cache}/teachers/query-generator"  # the default before pocket:query-generator (run ids keep it)


class QGDistillObjective(Objective):
    """Query-generator teacher: KL-distil log P(q|p) over candidates + cross-language query alignment."""

    name = "qg-distill"
    description = ("query generator log P(q|p) over each query's candidates as teacher, KL-distilled; "
                   "+ in-batch contrastive + alignment of generated queries across languages; + FLOPS")
    roles = {"query": "query", "cand": "document", "gen": "query"}

    def setup(self, *, teacher: str = POCKET_TEACHER,
              teacher_temperature: Annotated[float, Range(gt=0)] = 1.0, qg_candidates: Annotated[int, Range(ge=1)] = 4,
              qg_prompt: str = "{passage}", qg_languages: list = [],  # noqa: B006
              qg_align_weight: Annotated[float, Range(ge=0)] = 1.0) -> None:
        """
        Parameters:
            teacher: qg-distill: seq2seq query generator: pocket:query-generator (trained on demand for the run's language), a local directory or a cached hub id ({cache} = harness cache)
            teacher_temperature: qg-distill: temperature of the teacher distribution
            qg_candidates: qg-distill: candidates per query scored by the teacher (positive + mined negatives); 1: no mined negatives, the teacher scores the batch's passages
            qg_prompt: qg-distill: teacher input template ({passage}, {lang})
            qg_languages: qg-distill: languages to generate queries in for alignment (empty: one, the run's)
            qg_align_weight: qg-distill: weight of the generated-query alignment term
        """
        if teacher_temperature <= 0:
            raise HarnessError(f"qg-distill: train.teacher_temperature must be > 0, got {teacher_temperature}")
        self.temperature, self.candidates, self.align_weight = teacher_temperature, max(1, qg_candidates), qg_align_weight
        self.languages = list(qg_languages) or [self.run.get("lang", "")]
        self.teacher = Teacher(teacher, device=self.device, max_length=self.run["train.doc_max_length"],
                               prompt=qg_prompt, lang=self.run.get("lang", ""))  # fails fast when missing

    def examples(self, pairs: list[tuple[str, str]], extra: dict[str, Any]) -> list[dict[str, Any]]:
        queries = [q for q, _ in pairs]
        passages = [p for _, p in pairs]
        k = self.candidates - 1
        negs = lexical_negatives(queries, passages, self.tokenizer, k=k,
                                 max_length=self.run["train.doc_max_length"], seed=self.run["seed"])
        return [{"query": q, "cands": [p] + [passages[j] for j in n]} for q, p, n in zip(queries, passages, negs)]

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        k = min(len(x["cands"]) for x in items)
        queries = [x["query"] for x in items]
        cands = [c for x in items for c in x["cands"][:k]]
        positives = [x["cands"][0] for x in items]
        if k == 1:  # no mined negatives: the teacher ranks every passage of the batch for every query
            n = len(items)
            scores = self.teacher.score([q for q in queries for _ in range(n)], positives * n).view(n, n)
        else:
            scores = self.teacher.score([q for q in queries for _ in range(k)], cands).view(len(items), k)
        langs = self.languages
        gen = [g for lang in langs for g in self.teacher.generate(positives, lang, self.run["train.query_max_length"])]
        return {"texts": {"query": queries, "cand": cands, "gen": gen}, "teacher": scores, "k": k,
                "langs": len(langs)}

    def loss(self, batch: dict[str, Any], reps: dict[str, "torch.Tensor"], step: int) -> tuple["torch.Tensor", dict[str, float]]:
        import torch
        import torch.nn.functional as F

        texts, k = batch["texts"], batch["k"]
        q, cands = reps["query"], reps["cand"]
        n = q.shape[0]
        student = q @ cands.T if k == 1 else torch.einsum("bv,bkv->bk", q, cands.view(n, k, -1))
        teacher = batch["teacher"].to(q.device) / self.temperature
        distil = F.kl_div(F.log_softmax(student, dim=1), F.log_softmax(teacher, dim=1), log_target=True,
                          reduction="batchmean")
        pos_cols = [i * k for i in range(n)]
        positives = [texts["cand"][c] for c in pos_cols]
        scores = q @ cands.T
        contrast = info_nce(scores, duplicate_mask(positives, texts["cand"], q.device, pos_cols),
                            torch.tensor(pos_cols, device=q.device))
        align = self.alignment(reps["gen"], q, texts["query"], batch["langs"])
        reg, logs = self.regularise(reps, step)
        loss = distil + contrast + self.align_weight * align + reg
        return loss, {"distil": distil.item(), "contrast": contrast.item(), "align": align.item(), **logs}

    @staticmethod
    def alignment(gen: "torch.Tensor", queries: "torch.Tensor", query_texts: list[str], langs: int) -> "torch.Tensor":
        """Mean over languages of InfoNCE: generated query i -> real query i among the batch's queries."""
        n = queries.shape[0]
        mask = duplicate_mask(query_texts, query_texts, queries.device)
        terms = [info_nce(gen[l * n:(l + 1) * n] @ queries.T, mask) for l in range(langs)]
        return sum(terms) / len(terms)


class Teacher:
    """A seq2seq query generator: scores log P(q|p) and generates queries, always without gradients."""

    def __init__(self, ref: str, *, device: str = "cpu", max_length: int = 256, prompt: str = "{passage}",
                 lang: str = "") -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        path = resolve_teacher(ref, lang)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(path), local_files_only=True).to(device).eval()
        self.device, self.max_length, self.prompt = device, max_length, prompt

    def inputs(self, passages: list[str], lang: str = "") -> dict[str, Any]:
        texts = [self.prompt.format(passage=p, lang=lang) for p in passages]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def score(self, queries: list[str], passages: list[str], lang: str = "") -> "torch.Tensor":
        """Mean per-token log P(query | passage) of each (query, passage) pair, on the CPU."""
        import torch

        labels = self.tokenizer(text_target=queries, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")["input_ids"].to(self.device)
        keep = labels != self.tokenizer.pad_token_id
        with torch.no_grad():
            logits = self.model(**self.inputs(passages, lang), labels=labels.masked_fill(~keep, -100)).logits
            logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        return ((logp * keep).sum(1) / keep.sum(1).clamp(min=1)).cpu()

    def generate(self, passages: list[str], lang: str, max_new_tokens: int) -> list[str]:
        import torch

        with torch.no_grad():
            out = self.model.generate(**self.inputs(passages, lang), max_new_tokens=max_new_tokens,
                                      do_sample=False, num_beams=1)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def resolve_teacher(ref: str, lang: str = "") -> Path:
    """Local directory of the teacher; ``pocket:query-generator`` is the pocket teacher of ``lang``
    (trained when not cached), ``{cache}`` expands to the harness cache. Fails fast, clearly."""
    import os

    from harness.util import cache_dir

    if ref == POCKET_TEACHER:
        from harness.teacher import check_lang, pocket_teacher_dir

        return pocket_teacher_dir(check_lang(lang))
    text = ref.replace("{cache}", str(cache_dir()))
    local = Path(os.path.expanduser(text))
    if local.is_dir() or text.startswith(("/", "~", ".")) or local.exists():
        if not (local / "config.json").exists():
            raise HarnessError(f"teacher '{ref}' -> {local} holds no model (config.json missing). {TEACHER_HELP}")
        return local
    from harness.assets import resolve_model

    try:
        return resolve_model(text)
    except HarnessError as err:
        raise HarnessError(f"teacher '{ref}' is not available offline ({err}). {TEACHER_HELP}") from None
