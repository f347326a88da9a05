"""The pocket query generator: a seq2seq teacher for ``qg-distill``, trained offline on LibreOffice help.

Why this model. No trained query generator is in the package registries, and a 2-core CPU cannot
train an mT5 in minutes. What the pocket profile already has is multilingual-e5-small
(``pocket:me5-small``: XLM-R vocabulary, 12 layers, hidden 384). Warm-starting both halves of an
encoder-decoder from a pretrained encoder works well for generation (Rothe, Narayan & Severyn, TACL
2020, "BERT2BERT"), so the generator is a transformers ``EncoderDecoderModel``:

* encoder: the first ``encoder_layers`` (4) me5 layers, a ``BertModel``;
* decoder: a ``BertLMHeadModel`` whose ``decoder_layers`` (2) layers are me5's first layers (self
  attention and feed-forward warm-started), with new cross-attention and a new LM-head transform; its
  output softmax is tied to its input embeddings;
* vocabulary: only the XLM-R pieces that occur in the language's and English's *training* text (plus
  the five specials), remapped to new ids, so the softmax has ~10-30k rows instead of 250k. A Unigram
  model restricted to a subset of its pieces still finds the same best segmentation for any text
  whose original pieces are all kept (the argmax over a subset that holds it), so the training text
  tokenizes exactly as before, mapped; unseen pieces fall back to other pieces or ``<unk>``.
  The tokenizer appends ``</s>`` only (T5's convention): labels are ``query </s>``, the decoder
  starts from ``<s>``, so ``Teacher.score`` averages over the query's pieces and its end.

Training pairs are ``libreoffice-help-{lang}-train``'s (heading/title -> the text under it), the pairs
the harness fine-tunes on: the dev pages (``is_dev_page``) are never trained on, GNOME help never
used. Cross-entropy on the query given the passage, AdamW, linear warm-up then linear decay,
length-bucketed batches of 16. Measured on ko (5,884 pairs, 13,486 pieces, 22.9M parameters): 1,200
steps (about 3 epochs) took 30 minutes on one thread of a 2-core machine that other jobs kept busy
(two threads competing with them are slower); the training loss fell from 7.0 to 2.3 and was still
falling. The learning rate is the dev pick (``harness teacher eval --lang ko``, BM25's top 100
reranked): 2e-4 gives MRR@10 0.284, 1e-4 0.255, 5e-4 0.108 (its decoder ignores the passage and
generates one query for everything, though its training loss is lower). The teacher is weak: BM25 alone has
0.470; the headings of these help pages are short and often not inferable from the text.

The result is a directory that ``AutoModelForSeq2SeqLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load, cached at ``{cache}/teachers/query-generator-{lang}-{hash}``
where the hash covers everything that determines it (the training pairs, the vocabulary text, the
me5 build, the settings, the seed). It is built in a temporary folder and swapped in whole, sealed
(``pocket_models.built_dir``): an interrupted training leaves nothing half-written (it starts over).
``train.teacher = pocket:query-generator`` (the pocket default) resolves to it for the run's language,
training it on demand.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.util import FILE_MODE, HarnessError, cache_dir, content_hash, read_json

if TYPE_CHECKING:
    import torch

POCKET_TEACHER = "pocket:query-generator"
FORMAT_VERSION = 1  # bump when the directory's shape or the training code changes results
LANGS = ("en", "ko", "ja", "zh", "ru")
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@dataclass(frozen=True)
class TeacherSettings:
    """What, besides the data and the base weights, determines a pocket teacher."""

    encoder_layers: int = 4
    decoder_layers: int = 2
    steps: int = 1200
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    doc_max_length: int = 128
    query_max_length: int = 32
    seed: int = 0

    def check(self) -> "TeacherSettings":
        for name, value in asdict(self).items():
            low = 0 if name in ("warmup_steps", "weight_decay", "seed", "lr") else 1
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or \
                    (name == "lr" and value <= 0):
                raise HarnessError(f"teacher setting {name} must be a number {'> 0' if name == 'lr' else f'>= {low}'}, "
                                   f"got {value!r}")
        if not 1 <= self.encoder_layers <= 12 or not 1 <= self.decoder_layers <= 12:
            raise HarnessError(f"teacher layers must be 1..12 (me5-small has 12), got encoder {self.encoder_layers}, "
                               f"decoder {self.decoder_layers}")
        return self


def uses_pocket_teacher(run: dict[str, Any]) -> bool:
    """A run config that trains qg-distill with ``pocket:query-generator`` (trained on demand per language)."""
    return run.get("train.objective") == "qg-distill" and run.get("train.teacher") == POCKET_TEACHER


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise HarnessError(f"no LibreOffice help training pairs for language '{lang}'; languages: {', '.join(LANGS)}")
    return lang


# --------------------------------------------------------------------------------------------
# Data: training split only
# --------------------------------------------------------------------------------------------
def training_pairs(lang: str) -> list[tuple[str, str]]:
    """(heading, passage) pairs of ``libreoffice-help-{lang}-train``: no dev page, no GNOME help."""
    from harness.data import load_collection

    return [(q, p) for q, p in load_collection(f"libreoffice-help-{check_lang(lang)}-train").train_pairs or []]


def vocabulary_text(lang: str) -> list[str]:
    """Training-page texts of ``lang`` and English: the pieces that occur here make the vocabulary."""
    from harness.data import load_collection

    texts: list[str] = []
    for code in dict.fromkeys([check_lang(lang), "en"]):
        corpus = load_collection(f"libreoffice-help-{code}-train").corpus
        texts += [corpus[d] for d in sorted(corpus)]
    return texts


# --------------------------------------------------------------------------------------------
# Vocabulary trimming
# --------------------------------------------------------------------------------------------
def kept_piece_ids(tokenizer_json: dict[str, Any], texts: list[str]) -> list[int]:
    """Sorted old ids of the specials and of every piece that tokenizing ``texts`` produces."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    pieces = [p for p, _ in tokenizer_json["model"]["vocab"]]
    keep = {pieces.index(s) for s in SPECIALS if s in pieces}
    for start in range(0, len(texts), 256):
        for enc in tok.encode_batch(texts[start:start + 256], add_special_tokens=False):
            keep.update(enc.ids)
    return sorted(keep)


def trimmed_tokenizer_json(tokenizer_json: dict[str, Any], kept: list[int]) -> dict[str, Any]:
    """The Unigram tokenizer restricted to the pieces ``kept`` (old ids), renumbered in that order;
    the post-processor appends ``</s>`` only."""
    vocab = tokenizer_json["model"]["vocab"]
    new_vocab = [vocab[i] for i in kept]
    new_id = {vocab[i][0]: n for n, i in enumerate(kept)}
    missing = [s for s in ("<pad>", "</s>", "<unk>") if s not in new_id]
    if missing:
        raise HarnessError(f"tokenizer to trim lacks the special pieces {missing}")
    out = json.loads(json.dumps(tokenizer_json))  # a deep copy
    out["model"] = {**out["model"], "vocab": new_vocab, "unk_id": new_id["<unk>"]}
    out["added_tokens"] = [{**t, "id": new_id[t["content"]]} for t in out.get("added_tokens", [])
                           if t["content"] in new_id]
    eos = {"id": "</s>", "ids": [new_id["</s>"]], "tokens": ["</s>"]}
    out["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "special_tokens": {"</s>": eos}}
    out["truncation"], out["padding"] = None, None
    return out


def fast_tokenizer(tokenizer_json: dict[str, Any], max_length: int) -> Any:
    """A transformers tokenizer over ``tokenizer_json`` with XLM-R's special tokens."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(tokenizer_json)),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   mask_token="<mask>" if any(p == "<mask>" for p, _ in tokenizer_json["model"]["vocab"])
                                   else None, model_max_length=max_length)


# --------------------------------------------------------------------------------------------
# The model: BERT2BERT warm-started from me5-small
# --------------------------------------------------------------------------------------------
def build_model(base_config: dict[str, Any], base_state: dict[str, "torch.Tensor"], kept: list[int],
                settings: TeacherSettings, special_ids: dict[str, int]) -> Any:
    """EncoderDecoderModel: encoder = the first layers of the base BertModel, decoder = its first
    layers with new cross-attention and LM head, both over the trimmed vocabulary (rows ``kept``)."""
    import torch
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderConfig, EncoderDecoderModel

    torch.manual_seed(settings.seed)
    common = {k: v for k, v in base_config.items() if k not in ("architectures", "model_type", "tokenizer_class",
                                                                "transformers_version")}
    common.update(vocab_size=len(kept), pad_token_id=special_ids["<pad>"])
    enc_cfg = BertConfig(**{**common, "num_hidden_layers": settings.encoder_layers})
    dec_cfg = BertConfig(**{**common, "num_hidden_layers": settings.decoder_layers, "is_decoder": True,
                            "add_cross_attention": True, "tie_word_embeddings": True})
    encoder, decoder = BertModel(enc_cfg), BertLMHeadModel(dec_cfg)  # the pooler (zeros, unused) loads back silently
    rows = torch.tensor(kept)
    _load_warm(encoder, base_state, rows, settings.encoder_layers)
    _load_warm(decoder.bert, base_state, rows, settings.decoder_layers)
    decoder.tie_weights()
    config = EncoderDecoderConfig.from_encoder_decoder_configs(enc_cfg, dec_cfg)
    model = EncoderDecoderModel(config=config, encoder=encoder, decoder=decoder)
    _set_special_ids(model, special_ids, settings.query_max_length)
    return model


def _load_warm(bert: Any, state: dict[str, "torch.Tensor"], rows: "torch.Tensor", layers: int) -> None:
    """Copy the base weights of the embeddings (rows ``rows``) and layers 0..layers-1 into ``bert``."""
    own = bert.state_dict()
    warm = {}
    for name, value in state.items():
        if name == "embeddings.word_embeddings.weight":
            value = value[rows]
        elif name.startswith("encoder.layer.") and int(name.split(".")[2]) >= layers:
            continue
        if name in own:
            warm[name] = value
    missing = [n for n in own if n not in warm and ".crossattention." not in n and "position_ids" not in n]
    if missing:
        raise HarnessError(f"base model lacks weights for the teacher: {missing[:3]}")
    bert.load_state_dict(warm, strict=False)


def _set_special_ids(model: Any, ids: dict[str, int], max_new_tokens: int) -> None:
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.bos_token_id = ids["<s>"], ids["<s>"]
        cfg.eos_token_id, cfg.pad_token_id = ids["</s>"], ids["<pad>"]
    model.generation_config.max_new_tokens = max_new_tokens
    model.generation_config.do_sample, model.generation_config.num_beams = False, 1


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def batches(lengths: list[int], settings: TeacherSettings) -> list[list[int]]:
    """``settings.steps`` batches of pair indices: per epoch a seeded shuffle, then groups of 50
    batches sorted by passage length (less padding), the batches of a group shuffled again."""
    import numpy as np

    rng = np.random.RandomState(settings.seed)
    size, out = settings.batch_size, []
    while len(out) < settings.steps:
        order = rng.permutation(len(lengths))
        group = size * 50
        epoch = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start:start + group].tolist(), key=lambda i: lengths[i])
            epoch += [chunk[j:j + size] for j in range(0, len(chunk), size)]
        out += [epoch[i] for i in rng.permutation(len(epoch))]
    return out[:settings.steps]


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str]], settings: TeacherSettings) -> tuple[list, list]:
    """Token ids of every passage (truncated, ending in ``</s>``) and query."""
    docs = tokenizer([p for _, p in pairs], truncation=True, max_length=settings.doc_max_length)["input_ids"]
    queries = tokenizer([q for q, _ in pairs], truncation=True, max_length=settings.query_max_length)["input_ids"]
    return docs, queries


def collate(ids: list[list[int]], pad: int, fill: int | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch

    width = max(len(x) for x in ids)
    tensor = torch.full((len(ids), width), pad if fill is None else fill, dtype=torch.long)
    for i, x in enumerate(ids):
        tensor[i, :len(x)] = torch.tensor(x)
    mask = torch.zeros_like(tensor)
    for i, x in enumerate(ids):
        mask[i, :len(x)] = 1
    return tensor, mask


def train_model(model: Any, docs: list, queries: list, settings: TeacherSettings, pad: int,
                progress: bool = True) -> list[float]:
    """Cross-entropy training of ``model`` in place; returns the loss of every step."""
    import warnings

    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way")  # EncoderDecoderModel's, each call
    torch.manual_seed(settings.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=settings.lr, fused=True)
    sched = get_linear_schedule_with_warmup(opt, settings.warmup_steps, settings.steps)
    model.train()
    losses = []
    bar = tqdm(batches([len(d) for d in docs], settings), desc="teacher", unit="step", disable=not progress)
    for step, batch in enumerate(bar):
        input_ids, mask = collate([docs[i] for i in batch], pad)
        labels, _ = collate([queries[i] for i in batch], pad, fill=-100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    return losses


# --------------------------------------------------------------------------------------------
# The cached teacher directory
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherInputs:
    """Everything a teacher is built from (``key`` hashes it)."""

    lang: str
    pairs: list[tuple[str, str]]
    vocab_text: list[str]
    base_dir: Path
    settings: TeacherSettings

    def key(self) -> dict[str, Any]:
        from harness.pocket_models import MARKER

        marker = self.base_dir / MARKER
        base = read_json(marker) if marker.exists() else {"tree": _tree_hash(self.base_dir)}
        return {"format_version": FORMAT_VERSION, "lang": self.lang, "base": base,
                "pairs": content_hash([list(p) for p in self.pairs]), "vocab_text": content_hash(self.vocab_text),
                "settings": asdict(self.settings)}

    def directory(self) -> Path:
        return cache_dir("teachers") / f"query-generator-{self.lang}-{content_hash(self.key(), length=12)}"


def _tree_hash(path: Path) -> str:
    from harness.util import tree_hash

    return tree_hash(path)


def pocket_inputs(lang: str, settings: TeacherSettings | None = None) -> TeacherInputs:
    from harness.pocket_models import me5_small_dir

    return TeacherInputs(check_lang(lang), training_pairs(lang), vocabulary_text(lang), me5_small_dir(),
                         (settings or TeacherSettings()).check())


def write_teacher(out: Path, inputs: TeacherInputs, progress: bool = True, echo: Callable[[str], None] = print) -> None:
    """Train the teacher of ``inputs`` and save model + tokenizer + ``teacher.json`` into ``out``."""
    import time

    import torch
    from safetensors.torch import load_file

    settings = inputs.settings
    base_json = read_json(inputs.base_dir / "tokenizer.json")
    kept = kept_piece_ids(base_json, inputs.vocab_text + [t for pair in inputs.pairs for t in pair])
    tok_json = trimmed_tokenizer_json(base_json, kept)
    tokenizer = fast_tokenizer(tok_json, settings.doc_max_length)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in ("<s>", "</s>", "<pad>")}
    state = load_file(str(inputs.base_dir / "model.safetensors"))
    model = build_model(read_json(inputs.base_dir / "config.json"), state, kept, settings, ids)
    del state
    docs, queries = encode_pairs(tokenizer, inputs.pairs, settings)
    n_params = sum(p.numel() for p in model.parameters())
    echo(f"teacher {inputs.lang}: {len(inputs.pairs)} training pairs, vocabulary {len(kept)} pieces, "
         f"{n_params / 1e6:.1f}M parameters, {settings.steps} steps on {torch.get_num_threads()} threads")
    start = time.perf_counter()
    losses = train_model(model, docs, queries, settings, ids["<pad>"], progress=progress)
    seconds = time.perf_counter() - start
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for path in out.iterdir():
        os.chmod(path, FILE_MODE)  # safetensors writes owner-only; the cache may be shared
    tail = losses[-100:]
    info = {"key": inputs.key(), "vocab_size": len(kept), "parameters": n_params, "train_seconds": round(seconds, 1),
            "threads": torch.get_num_threads(), "final_loss": sum(tail) / len(tail),
            "loss_every_100": [round(sum(losses[i:i + 100]) / len(losses[i:i + 100]), 4)
                               for i in range(0, len(losses), 100)],
            "base_ids": kept}
    (out / "teacher.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def ensure_teacher(inputs: TeacherInputs, *, progress: bool = True, echo: Callable[[str], None] | None = None) -> Path:
    """The cached teacher directory of ``inputs``, trained (with one log line) when absent."""
    from harness.pocket_models import built_dir

    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    target = inputs.directory()

    def write(tmp: Path) -> None:
        say(f"training the {inputs.lang} query generator (not cached yet) into {target}")
        write_teacher(tmp, inputs, progress=progress, echo=say)

    return built_dir(target, inputs.key(), write, check=lambda path: None)


def pocket_teacher_dir(lang: str, settings: TeacherSettings | None = None, **kwargs: Any) -> Path:
    """``pocket:query-generator`` for ``lang``: the cached directory, trained on demand."""
    return ensure_teacher(pocket_inputs(lang, settings), **kwargs)


def settings_from(overrides: dict[str, Any]) -> TeacherSettings:
    """TeacherSettings with ``overrides`` (``--set steps=500``); an unknown name is one error line."""
    import difflib

    base = TeacherSettings()
    names = list(asdict(base))
    for name in overrides:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise HarnessError(f"unknown teacher setting '{name}'{hint}; settings: {', '.join(names)}")
    typed = {k: float(v) if isinstance(getattr(base, k), float) and isinstance(v, int) and not isinstance(v, bool)
             else v for k, v in overrides.items()}
    return replace(base, **typed).check()
