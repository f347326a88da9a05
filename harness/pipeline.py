"""One run, in one direction: config -> assets -> plan -> transplant -> [train] -> search -> evaluate -> record."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import load_config, method_overrides, run_config, run_datasets, run_value
from harness.data import load_collection
from harness.data.base import dataset_lang
from harness.device import process_rank, resolve_device
from harness.runs import RunDir, local_input_hashes, write_record
from harness.target_tokenizer import run_target_tokenizer
from harness.util import Echo, HarnessError, stage

# --------------------------------------------------------------------------------------------
# Planning: resolve everything cheap before any heavy work starts
# --------------------------------------------------------------------------------------------
def plan_runs(profile: str, overrides: tuple[str, ...] | list[str], *, method: str, lang: str, seed: int,
              settings: list[str]) -> list[dict[str, Any]]:
    """The resolved run configs of one method x language x seed, one per setting."""
    from harness.method_specs import get_method
    from harness.registry import datasets

    config = load_config(profile, overrides)
    spec = get_method(method)
    try:
        params = spec.resolve_params({**config["method_params"].get(method, {}), **method_overrides(overrides)})
    except ValueError as err:
        raise HarnessError(str(err)) from None
    runs = [run_config(config, method=method, method_params=params, lang=lang, seed=seed, setting=s)
            for s in settings]
    for run in runs:
        for name in run_datasets(run):
            if not name.startswith("beir:"):
                datasets.entry(name)  # unknown names fail now, with "did you mean"
        run.update(local_input_hashes(run))
    return runs


def preflight(runs: list[dict[str, Any]], runs_dir: str | Path | None = None) -> None:
    """Fail fast, before any heavy work: values only a later stage could judge (metric names), an
    unwritable ``runs_dir``, every missing model, tokenizer and data set at once, then local inputs
    that exist but cannot be read (model directories, beir: folders)."""
    from harness.assets import missing_assets
    from harness.data.paper import missing_data

    check_run_values(runs, runs_dir)
    for device in sorted({r["device"] for r in runs}):
        resolve_device(device)
    models = sorted({r[k] for r in runs for k in ("source_model", "bridge_model")})
    tokenizers = sorted({r["target_tokenizer"] for r in runs if r["target_tokenizer"] != "auto"})
    data = sorted({name for r in runs for name in run_datasets(r)})
    missing = missing_assets(models, tokenizers) + [line for name in data for line in missing_data(name)]
    if missing:
        raise HarnessError(f"{len(missing)} missing (offline?): " + "; ".join(missing))
    check_local_inputs(runs, {"source_model": True, "bridge_model": False})


def check_run_values(runs: list[dict[str, Any]], runs_dir: str | Path | None = None) -> None:
    """What the config schema cannot judge: metric names (ranx's), and that ``runs_dir`` takes files
    (a run must not fail at its last step, writing the record)."""
    from harness.evaluate import check_metrics

    for metrics in dict.fromkeys(tuple(r["eval.metrics"]) for r in runs):
        check_metrics(list(metrics))
    from harness.backends import check_seismic_options, preflight as backend_preflight

    for backend in dict.fromkeys(run_value(r, "eval.backend") for r in runs):
        backend_preflight(backend)  # its packages (and Java), before any model is adapted
    for run in runs:
        check_seismic_options(run_value(run, "eval.seismic"))  # checked whatever the backend
    check_pocket_teacher(runs)
    if runs_dir is not None:
        check_runs_dir(runs_dir)


def check_pocket_teacher(runs: list[dict[str, Any]]) -> None:
    """qg-distill with the pocket teacher needs LibreOffice help training pairs in the run's language
    (the teacher itself is trained on demand, offline)."""
    from harness.teacher import POCKET_TEACHER, check_lang, uses_pocket_teacher

    for run in runs:
        if uses_pocket_teacher(run):
            try:
                check_lang(run["lang"])
            except HarnessError as err:
                raise HarnessError(f"train.teacher {POCKET_TEACHER}: {err}; set train.teacher to a seq2seq "
                                   f"model directory") from None


def check_runs_dir(runs_dir: str | Path) -> None:
    """``runs_dir`` exists (or is made now) and a file can be written in it."""
    import tempfile

    from harness.util import owned_prefix

    try:
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=owned_prefix("write-check")):
            pass
    except OSError as err:
        raise HarnessError(f"runs folder {runs_dir} is not writable ({err.strerror or type(err).__name__}): "
                           f"choose another with --runs-dir") from None


def check_local_inputs(runs: list[dict[str, Any]], model_keys: dict[str, bool]) -> None:
    """Local model directories (``model_keys``: config key -> must be a masked LM) and beir: folders,
    read now: a truncated weights file or a bad corpus line fails here, not after the adaptation."""
    for key, masked_lm in model_keys.items():
        for ref in dict.fromkeys(r[key] for r in runs if key in r):
            problem = local_model_problem(ref, masked_lm=masked_lm)
            if problem:
                raise HarnessError(f"{key} {ref}: {problem}")
    for name in dict.fromkeys(name for r in runs for name in run_datasets(r)):
        if name.startswith("beir:"):
            load_collection(name)  # its errors name the file and line


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(1)


def local_model_problem(ref: str, *, masked_lm: bool) -> str | None:
    """Why the local model directory ``ref`` would not load (not a model, not a masked LM, no or
    truncated weights), found without loading the weights; None for one that looks whole, and for
    pocket: and hub references (checked where they are built or fetched)."""
    path = Path(ref).expanduser()
    if ref.startswith("pocket:") or not path.is_dir():
        return None
    model_dir = path
    if masked_lm and (path / "modules.json").is_file():  # a SparseEncoder directory: its MLM module's folder
        from harness.encoder import _read_sparse_encoder_dir

        try:
            model_dir, _ = _read_sparse_encoder_dir(path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"modules.json is not a SparseEncoder's ({type(err).__name__}): save the model again"
    return _config_problem(model_dir, masked_lm) or _weights_problem(model_dir) or _tokenizer_problem(model_dir)


def _tokenizer_problem(model_dir: Path) -> str | None:
    from harness.assets import missing_assets

    lines = missing_assets([], [str(model_dir)])  # the tokenizer is loaded from the model's folder
    return lines[0] if lines else None


def _config_problem(model_dir: Path, masked_lm: bool) -> str | None:
    from transformers import MODEL_FOR_MASKED_LM_MAPPING, AutoConfig

    if not (model_dir / "config.json").is_file():
        return f"{model_dir} has no config.json: not a Hugging Face model directory"
    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except Exception as err:  # transformers raises ValueError, OSError, KeyError, JSON errors...
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return f"config.json is not a model configuration ({type(err).__name__}: {first})"
    if masked_lm and type(config) not in MODEL_FOR_MASKED_LM_MAPPING:
        return f"a '{config.model_type}' model has no masked-LM head: a sparse encoder is a masked LM (e.g. BERT)"
    return None


def _weights_problem(model_dir: Path) -> str | None:
    import zipfile

    from harness.pocket_models import model_dir_problem

    weights = [model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()]
    if not weights:
        return f"no weights in {model_dir} (model.safetensors or pytorch_model.bin): save the model again"
    problem = model_dir_problem(model_dir)  # every JSON parses, each safetensors file as long as its header says
    if problem:
        return f"{problem}: the file is damaged or truncated; copy or save it again"
    for path in weights:  # torch's zip format ends with its directory; an old pickle (0x80 ...) has none to check
        if path.suffix == ".bin" and not zipfile.is_zipfile(path) and _first_byte(path) != b"\x80":
            return (f"{path.name} is neither a torch zip archive nor a pickle: damaged or truncated; "
                    f"copy or save it again")
    return None


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------
def load_source(run: dict[str, Any]) -> tuple[Any, Any]:
    """The English masked LM and its tokenizer."""
    from transformers import AutoModelForMaskedLM

    from harness.assets import load_tokenizer, resolve_model

    model = AutoModelForMaskedLM.from_pretrained(resolve_model(run["source_model"]))
    return model, load_tokenizer(run["source_model"])


def method_context(run: dict[str, Any], model: Any, source_tok: Any, target_tok: Any,
                   resource_log: dict[str, Any] | None = None) -> Any:
    """The method's view of the run, with expensive resources provided on demand.

    ``resource_log`` collects what the resources cost (bridge vectors: cache hit or computed, seconds).
    """
    from harness.api import MethodContext
    from harness.method_specs import provided_resources

    log = resource_log if resource_log is not None else {}

    def bridge_vectors() -> tuple[Any, Any]:
        from harness.bridge import vocab_bridge_vectors

        kwargs = dict(prefix=run["bridge_prefix"], device=resolve_device(run["device"]))
        log["bridge_target"], log["bridge_source"] = {}, {}
        target = vocab_bridge_vectors(target_tok, run["bridge_model"], stats=log["bridge_target"], **kwargs)
        source = vocab_bridge_vectors(source_tok, run["bridge_model"], stats=log["bridge_source"], **kwargs)
        return target, source

    def target_text() -> list[str]:
        from harness.data import target_text as texts

        return texts(run["lang"], run_value(run, "training_text"))

    def source_text() -> list[str]:
        from harness.data import target_text as texts

        return texts("en", run_value(run, "training_text"))  # English help text: the source side of WECHSEL-style vectors

    def dictionary() -> list[tuple[str, str]]:
        from harness.api import MissingResourceError
        from harness.data import NoDictionaryError, bilingual_dictionary

        try:
            return bilingual_dictionary(run["lang"])
        except NoDictionaryError as err:
            raise MissingResourceError(str(err)) from None

    output = model.get_output_embeddings()
    bias = getattr(output, "bias", None)
    return MethodContext(
        source_tokenizer=source_tok, target_tokenizer=target_tok,
        source_embeddings=model.get_input_embeddings().weight.detach(),
        source_bias=bias.detach() if bias is not None else None,
        lang=run["lang"], seed=run["seed"], device=resolve_device(run["device"]),
        resources=provided_resources({"bridge_vectors": bridge_vectors, "target_text": target_text,
                                      "source_text": source_text, "dictionary": dictionary}),
    )


def make_plan(run: dict[str, Any], ctx: Any) -> Any:
    from harness.method_specs import get_method

    plan = get_method(run["method"])(ctx, **run["method_params"])
    n_source, d = (int(n) for n in ctx.source_embeddings.shape)
    problems = plan.validate(d=d, n_source=n_source)
    if problems:
        raise HarnessError(f"method '{run['method']}' returned an invalid plan: {'; '.join(problems)}")
    return plan


def make_encoder(run: dict[str, Any], model: Any, tokenizer: Any) -> Any:
    from harness.encoder import SpladeEncoder

    return SpladeEncoder(model, tokenizer, device=resolve_device(run["device"]),
                         query_max_length=run["encode.query_max_length"],
                         doc_max_length=run["encode.doc_max_length"], max_chars=run["encode.doc_max_chars"])


ON_DISK_DOCS = 100_000  # larger corpora are encoded into a sharded, resumable index in the run folder


def evaluate_encoder(run: dict[str, Any], encoder: Any, collection: Any, *, show_progress: bool = True,
                     index_dir: Path | None = None, search_info: dict[str, Any] | None = None) -> tuple[Any, dict]:
    """Encode the collection (into ``index_dir`` shard by shard when given), search it with the run's
    ``eval.backend`` (exact by default; ``search_info`` receives what the backend reports), score with ranx."""
    from harness.backends import search
    from harness.evaluate import evaluate
    from harness.index import build_index, load_index, wait_for_index

    qids, dids = list(collection.queries), list(collection.corpus)
    common = dict(batch_size=run["encode.batch_size"], max_active_dims=run["encode.max_active_dims"],
                  show_progress=show_progress)
    texts = [collection.corpus[d] for d in dids]
    if index_dir is None:
        docs = encoder.encode(texts, kind="document", **common)
    else:
        docs, _ = load_index(wait_for_index(build_index(encoder, texts, dids, index_dir, **common)))
    queries = encoder.encode([collection.queries[q] for q in qids], kind="query", **common)
    backend = run_value(run, "eval.backend")
    ranking, info = search(backend, queries, docs, run["eval.top_k"], doc_ids=dids, query_ids=qids,
                           workdir=index_dir.parent if index_dir is not None else None,
                           options=dict(run_value(run, "eval.seismic")))
    if search_info is not None and backend != "exact":
        search_info.update(backend=backend, **info)
    return evaluate(collection.qrels, ranking, metrics=tuple(run["eval.metrics"])), ranking


def training_pairs(run: dict[str, Any]) -> list[tuple[str, str]]:
    """The (query, passage) pairs of the run's ``train_dataset``."""
    pairs = load_collection(run["train_dataset"]).train_pairs
    if not pairs:
        raise HarnessError(f"train_dataset {run['train_dataset']!r} has no training pairs: pick one whose "
                           f"'pairs' column in `harness data list` is not 0 (e.g. libreoffice-help-{run['lang']})")
    fraction = run_value(run, "train.pairs_fraction")
    return pairs if fraction >= 1 else pairs_slice(pairs, fraction, run["seed"])


def pairs_slice(pairs: list[tuple[str, str]], fraction: float, seed: int) -> list[tuple[str, str]]:
    """``fraction`` of ``pairs`` (at least one), drawn with ``seed``, in their original order."""
    import random

    if fraction >= 1:
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), max(1, round(fraction * len(pairs)))))
    return [pairs[i] for i in keep]


# --------------------------------------------------------------------------------------------
# A whole run
# --------------------------------------------------------------------------------------------
def execute(run: dict[str, Any], *, runs_dir: str, force: bool = False, echo: Echo = print,
            save_model: bool = True) -> dict[str, Any]:
    """Carry out one run and write its record; an identical recorded run is reported instead.

    ``save_model``: keep the final adapted model as a SparseEncoder directory ``model/`` (with its
    card) in the run folder. An execution option, not a config key: it does not change the run id.
    """
    folder = RunDir.for_config(runs_dir, run)
    if not force and (done := folder.recorded()) is not None:
        return reported(folder, done, f"{folder.id}: already recorded", echo)
    timing: dict[str, float] = {}
    echo(f"{folder.id}: {run['method']} -> {run['lang']} ({run['setting']}, seed {run['seed']})")
    model, target_tok, plan, target_ref = adapt(run, timing, echo)
    with stage(timing, "data", echo):
        collection = load_collection(run["dataset"])
    extra: dict[str, Any] = {"plan": plan.diagnostics(), "target_tokenizer": target_ref}
    if run["setting"] == "fine-tuned":
        extra.update(train(run, model, target_tok, collection, folder, timing, echo))
    index_dir = folder.path / "index" if len(collection.corpus) > ON_DISK_DOCS else None
    if process_rank() != 0:
        return follow(run, make_encoder(run, model, target_tok), collection, index_dir, echo)
    encoder = make_encoder(run, model, target_tok)
    with stage(timing, "evaluate", echo):
        evaluation, ranking = evaluate_encoder(run, encoder, collection, index_dir=index_dir,
                                               search_info=extra.setdefault("search", {}))
    if not extra["search"]:
        del extra["search"]  # exact search: the record as before
    if run.get("eval.also"):
        with stage(timing, "evaluate_also", echo):
            extra["also"] = evaluate_also(run, encoder, folder)
    files = {}
    if save_model:
        with stage(timing, "save", echo):
            files["model"] = save_run_model(folder, run, encoder, evaluation.mean, extra)
    record = write_record(folder, run, evaluation, ranking, timing, qrels=collection.qrels, extra=extra,
                          files=files)
    echo(f"{folder.id}: {format_metrics(record['metrics'])} -> {folder.path}")
    return record


MODEL_DIR = "model"
ALSO_DIR = "also"


def evaluate_also(run: dict[str, Any], encoder: Any, folder: RunDir) -> dict[str, Any]:
    """The final model on each collection of ``eval.also``: ``also/<name>/`` holds its run, qrels and
    per-query scores; returns {name: {"metrics", "counts", "files"}} for the record (written after)."""
    from harness.evaluate import write_per_query, write_trec_qrels, write_trec_run

    out = {}
    for name in run["eval.also"]:
        collection = load_collection(name)
        evaluation, ranking = evaluate_encoder(run, encoder, collection, show_progress=False)
        sub = f"{ALSO_DIR}/{name.replace('/', '_').replace(':', '_')}"
        (folder.path / sub).mkdir(parents=True, exist_ok=True)
        write_trec_run(folder.file(f"{sub}/run.trec"), ranking, tag=f"{folder.id}/{name}")
        write_trec_qrels(folder.file(f"{sub}/qrels.trec"), collection.qrels)
        write_per_query(folder.file(f"{sub}/per_query.json"), evaluation.per_query)
        out[name] = {"metrics": evaluation.mean, "counts": {"queries": evaluation.n_queries},
                     "files": {k: f"{sub}/{k}.{ext}" for k, ext in (("run", "trec"), ("qrels", "trec"),
                                                                     ("per_query", "json"))}}
    return out


def save_run_model(folder: RunDir, run: dict[str, Any], encoder: Any, metrics: dict[str, float],
                   extra: dict[str, Any]) -> str:
    """The adapted model as a SparseEncoder directory with its card, written atomically; its relative path."""
    from harness.model_card import model_card
    from harness.segmented_tokenizer import SegmentedTokenizerFast

    tokenizer = encoder.tokenizer
    segmenter = (tokenizer.segmenter or "none (whitespace + punctuation)") \
        if isinstance(tokenizer, SegmentedTokenizerFast) else None
    card = model_card(run, metrics, run_id=folder.id, plan=extra.get("plan"),
                      target_tokenizer=extra.get("target_tokenizer"), segmenter=segmenter)
    encoder.save(folder.path / MODEL_DIR, files={"README.md": card})
    return MODEL_DIR


def follow(run: dict[str, Any], encoder: Any, collection: Any, index_dir: Path | None, echo: Echo) -> dict[str, Any]:
    """A rank other than 0 after training: encode its shards of a large corpus, then leave the record to rank 0."""
    from harness.index import build_index

    if index_dir is not None:
        dids = list(collection.corpus)
        build_index(encoder, [collection.corpus[d] for d in dids], dids, index_dir,
                    batch_size=run["encode.batch_size"], max_active_dims=run["encode.max_active_dims"])
    echo(f"rank {process_rank()}: done; rank 0 evaluates and writes the record")
    return {}


def train(run: dict[str, Any], model: Any, tokenizer: Any, collection: Any, folder: RunDir,
          timing: dict[str, float], echo: Echo) -> dict[str, Any]:
    """Fine-tune in place (resuming from ``folder/train``); the curve and convergence numbers."""
    from harness.train import fine_tune

    curve_collection = load_collection(run["train.eval_dataset"]) if "train.eval_dataset" in run else collection

    def evaluate(m: Any, t: Any) -> dict[str, float]:
        evaluation, _ = evaluate_encoder(run, make_encoder(run, m, t), curve_collection, show_progress=False)
        return evaluation.mean

    with stage(timing, "train", echo):
        result = fine_tune(run, model, tokenizer, pairs=training_pairs(run), evaluate=evaluate,
                           work_dir=folder.path / "train", echo=echo)
    if process_rank() == 0:
        folder.write_json("curve.json", result["curve"])
    keep = ("steps_to_95", "train_seconds", "objective", "primary_metric", "resumed_from_steps")
    return {"curve": result["curve"], **{k: result.get(k) for k in keep}}


def adapt(run: dict[str, Any], timing: dict[str, float], echo: Echo | None = None) -> tuple[Any, Any, Any, str]:
    """Source model -> plan -> transplanted model: (model, target tokenizer, plan, tokenizer provenance)."""
    from harness.assets import require_assets
    from harness.transplant import keep_source_rows, transplant

    with stage(timing, "assets", echo):
        require_assets([run["source_model"], run["bridge_model"]])
        model, source_tok = load_source(run)
        target_tok, target_ref = run_target_tokenizer(run, source_tok)
    resources: dict[str, Any] = {}
    with stage(timing, "plan", echo):
        plan = make_plan(run, method_context(run, model, source_tok, target_tok, resources))
        if run_value(run, "vocab_mode") == "extend":  # source tokens keep their rows, whatever the method
            plan = keep_source_rows(plan, len(source_tok))
    for side in ("bridge_target", "bridge_source"):
        if side in resources:  # the bridge cache shows in the record: "hit" and seconds
            timing[side] = resources[side]["seconds"]
            plan.info[f"{side}_cache"] = resources[side]["cache"]
    with stage(timing, "transplant", echo):
        model = transplant(model, source_tok, target_tok, plan)
    return model, target_tok, plan, target_ref


def evaluate_model(model_ref: str, dataset: str, *, profile: str, overrides: tuple[str, ...] | list[str],
                   runs_dir: str, force: bool = False, echo: Echo = print) -> dict[str, Any]:
    """Evaluate an existing sparse encoder (no adaptation) and record it like a run."""
    from harness.assets import require_assets, resolve_model
    from harness.encoder import SpladeEncoder

    config = load_config(profile, overrides)
    run = run_config(config, method="eval", method_params={"model": model_ref}, lang=dataset_lang(dataset, config["dataset_lang"]), seed=0,
                     setting="zero-shot")
    run.update(dataset=dataset, source_model=model_ref)
    run.update(local_input_hashes(run))
    folder = RunDir.for_config(runs_dir, run)
    if not force and (done := folder.recorded()) is not None:
        return reported(folder, done, f"{model_ref} on {dataset}: already recorded", echo)
    check_run_values([run], runs_dir)  # the preflight of an evaluation: no bridge model, no method
    require_assets([model_ref])
    check_local_inputs([run], {"source_model": True})
    timing: dict[str, float] = {}
    with stage(timing, "assets"):
        encoder = SpladeEncoder.from_pretrained(resolve_model(model_ref), device=resolve_device(run["device"]),
                                                query_max_length=run["encode.query_max_length"],
                                                doc_max_length=run["encode.doc_max_length"],
                                                max_chars=run["encode.doc_max_chars"])
    with stage(timing, "data"):
        collection = load_collection(dataset)
    with stage(timing, "evaluate"):
        index_dir = folder.path / "index" if len(collection.corpus) > ON_DISK_DOCS else None
        search_info: dict[str, Any] = {}
        evaluation, ranking = evaluate_encoder(run, encoder, collection, index_dir=index_dir, search_info=search_info)
    record = write_record(folder, run, evaluation, ranking, timing, qrels=collection.qrels,
                          extra={"search": search_info} if search_info else None)
    echo(f"{model_ref} on {dataset}: {format_metrics(record['metrics'])} -> {folder.path}")
    return record


def inspect_tokens(profile: str, overrides: tuple[str, ...] | list[str], *, method: str, lang: str,
                   tokens: list[str], top: int = 10) -> list[str]:
    """Lines describing how ``method`` builds each target token."""
    from harness.assets import require_assets

    run = plan_runs(profile, overrides, method=method, lang=lang, seed=0, settings=["zero-shot"])[0]
    require_assets([run["source_model"], run["bridge_model"]])
    model, source_tok = load_source(run)
    target_tok, _ = run_target_tokenizer(run, source_tok)
    plan = make_plan(run, method_context(run, model, source_tok, target_tok))
    vocab, source_vocab = target_tok.get_vocab(), source_tok.convert_ids_to_tokens(list(range(len(source_tok))))
    lines = []
    for token in tokens:
        if token not in vocab:
            pieces = target_tok.tokenize(token)
            raise HarnessError(f"'{token}' is not a target token; the target tokenizer splits it into {pieces}")
        t = vocab[token]
        kind = plan.KIND_NAMES[int(plan.kinds[t])]
        lines.append(f"{token} (id {t}): {kind}")
        for s, w in plan.sources_of(t)[:top]:
            lines.append(f"  {w:.4f}  {source_vocab[s]} (id {s})")
    return lines


def reported(folder: RunDir, record: dict[str, Any], what: str, echo: Echo) -> dict[str, Any]:
    """An existing ok record, announced instead of running again."""
    echo(f"{what} in {folder.path} ({format_metrics(record['metrics'])}); --force re-runs it")
    return record


def format_metrics(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "no metrics"
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
