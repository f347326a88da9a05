"""Configuration: a profile (configs/<name>.yaml) plus ``--set key=value`` overrides, validated.

Every key is declared in ``SCHEMA`` with its type, default, meaning and (for numbers) range; a
profile or override naming an unknown key or giving a value of the wrong type or out of range fails
with the key named.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.params import Range
from harness.util import HarnessError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SETTINGS = ("zero-shot", "fine-tuned")
DATASET_KEYS = ("dataset", "train_dataset", "train.eval_dataset", "train.aligned_dataset")  # names with {lang}, resolved per run
# Keys added after records existed, with the value that reproduces those records: a run config leaves a
# key out while it holds that value, so the old records keep their ids. A key whose new default changes
# results (training_text) has a legacy value other than its default, and so moves the ids of new runs.
LEGACY_VALUES: dict[str, Any] = {"train.eval_dataset": None, "train.schedule": None, "train.warmup_steps": None,
                                 "tokenizer.recipe": None, "dataset_lang": None, "training_text": "all-pages",
                                 "vocab_mode": "replace", "train.aligned_dataset": "libreoffice-help-{lang}-x-en-train",
                                 "eval.also": [], "train.pairs_fraction": 1.0, "eval.backend": "exact",
                                 "eval.seismic": {}}
# Objective keys whose default changed after records existed: (objective, earlier default, new default). A run
# that trains with another objective ignores the key and records the earlier default, so its id stays.
RETIRED_DEFAULTS: dict[str, tuple[str, Any, Any]] = {
    "train.teacher": ("qg-distill", "{cache}/teachers/query-generator", "pocket:query-generator")}
# may be a {lang: value} mapping in a profile ("*": the other languages), resolved per run
PER_LANGUAGE_KEYS = ("tokenizer.recipe", "dataset")
GRID_KEYS = ("languages", "methods", "seeds", "settings", "source_models", "exclude",  # describe a sweep, not a run
             "tune.grid", "tune.methods", "tune.languages", "tune.seeds", "tune.dataset", "tune.metric")


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    help: str
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    range: Range | None = None  # of the value, or of every element of a list value


COUNT, POSITIVE, NON_NEGATIVE, FRACTION = Range(ge=1), Range(gt=0), Range(ge=0), Range(ge=0, le=1)
SEED = Range(ge=0, le=2**32 - 1)  # numpy's legacy seeding and the method generators stay in range


# The keys of the runner. The training objectives' keys (``train.<parameter>``) are declared by the
# objectives themselves (``harness.objectives``) and added below.
BASE_SCHEMA: dict[str, Key] = {
    "profile": Key(str, "pocket", "profile name"),
    "source_model": Key(str, "pocket:splade-tiny", "English sparse encoder: hub id, directory or pocket:NAME"),
    "bridge_model": Key(str, "pocket:me5-small", "multilingual sentence encoder embedding both vocabularies"),
    "bridge_prefix": Key(str, None, "text put before each token for the bridge (default: the model's query prompt)", True),
    "target_tokenizer": Key(str, "auto", "'auto' trains a WordPiece on the language's text; or a hub id / directory"),
    "tokenizer.vocab_size": Key(int, 30000, "vocabulary size of an automatically trained target tokenizer",
                                range=COUNT),
    "tokenizer.min_frequency": Key(int, 2, "minimum pair frequency when training the target tokenizer",
                                   range=NON_NEGATIVE),
    "tokenizer.lowercase": Key(bool, True, "lower-case text in the trained target tokenizer (the source is uncased)"),
    "tokenizer.recipe": Key((str, dict), None, "how 'auto' trains the target tokenizer: wordpiece-bert (the "
                            "default: BERT pre-tokenizer, CJK characters isolated), unigram (SentencePiece-style, "
                            "no CJK isolation) or wordpiece-seg (WordPiece over a word segmenter: zh jieba, ja "
                            "fugashi, ko kiwipiepy); or a {lang: recipe} mapping (unlisted languages: the default)",
                            True),
    "vocab_mode": Key(str, "replace", "replace: the target vocabulary replaces the source's; extend: the source "
                      "vocabulary keeps its rows and the target tokens it lacks are appended (the method "
                      "initializes those), so the model reads both languages", choices=("replace", "extend")),
    "training_text": Key(str, "train-pages", "text that trains target tokenizers and static vectors: train-pages "
                         "(LibreOffice help without the dev pages) or all-pages (records made before the dev "
                         "split; dev text leaks into the tokenizer)", choices=("train-pages", "all-pages")),
    "dataset": Key((str, dict), "gnome-help-{lang}", "test collection; {lang} is replaced by the run's language; "
                   "or a {lang: collection} mapping with \"*\" for the other languages"),
    "train_dataset": Key(str, "libreoffice-help-{lang}", "fine-tuning pairs; {lang} is replaced"),
    "dataset_lang": Key(str, None, "language of a beir: folder for harness reference (BM25's analysis and its target "
                        "tokenizer); default: the folder's 'lang' file, else 'und' (harness run takes --lang)", True),
    "languages": Key(list, ["ko", "ja", "zh", "ru"], "sweep: target languages"),
    "methods": Key(list, ["sembridge", "focus", "wechsel", "mean", "random", "overlap"], "sweep: methods"),
    "seeds": Key(list, [0, 1, 2], "sweep: seeds", range=SEED),
    "settings": Key(list, list(SETTINGS), "sweep: settings"),
    "source_models": Key(list, [], "sweep: source models, each run as source_model (empty: source_model alone)"),
    "baseline_method": Key(str, "random", "method the significance tests compare against"),
    "exclude": Key(list, [], "sweep: cells left out, each a mapping of method/lang/seed/setting values, e.g. "
                   "[{lang: en, setting: fine-tuned}]"),
    "tune.grid": Key(dict, {}, "harness tune: {config key: [values]}, every combination is one recipe tried on dev"),
    "tune.methods": Key(list, ["random", "sembridge"], "harness tune: methods whose dev scores choose the recipe"),
    "tune.languages": Key(list, ["ko"], "harness tune: languages whose dev scores choose the recipe"),
    "tune.seeds": Key(list, [0], "harness tune: seeds per recipe", range=SEED),
    "tune.dataset": Key(str, "libreoffice-help-{lang}-dev", "harness tune: the dev collection ({lang} is replaced); never a test collection"),
    "tune.metric": Key(str, "ndcg@10", "harness tune: the metric that picks the recipe"),
    "method_params": Key(dict, {}, "per-method parameter overrides: {method: {param: value}}"),
    "device": Key(str, "auto", "auto, cpu or cuda"),
    "encode.batch_size": Key(int, 32, "texts per encoder batch", range=COUNT),
    "encode.query_max_length": Key(int, 256, "query token limit", range=COUNT),
    "encode.doc_max_length": Key(int, 256, "document token limit", range=COUNT),
    "encode.doc_max_chars": Key(int, 2000, "document text cut before tokenizing", range=COUNT),
    "encode.max_active_dims": Key(int, None, "keep only the top-k dimensions of each vector (a fresh model can be dense)", True, range=COUNT),
    "eval.metrics": Key(list, ["ndcg@10", "recall@100", "mrr@10"], "ranx metric names"),
    "eval.top_k": Key(int, 100, "documents retrieved per query", range=COUNT),
    "eval.also": Key(list, [], "more test collections the final model is evaluated on ({lang} is replaced), e.g. "
                     "[gnome-help-{lang}-x-en, gnome-help-en]: each is recorded in the run folder (also/<name>/) and "
                     "is a leaderboard column of its own"),
    "eval.backend": Key(str, "exact", "search over the sparse vectors: exact (dot products), lucene-impact (a "
                        "Lucene impact index of the weights quantized x100) or seismic (approximate)",
                        choices=("exact", "lucene-impact", "seismic")),
    "eval.seismic": Key(dict, {}, "settings of eval.backend=seismic, each left at seismic's default unless set: "
                        "build n_postings, centroid_fraction, summary_energy, min_cluster_size; search query_cut, "
                        "heap_factor (e.g. {query_cut: 20, heap_factor: 0.9})"),
    "train.objective": Key(str, "splade", "training objective (see `harness objectives`)"),
    "train.steps": Key(int, 150, "optimisation steps (pocket: ~1 step/s on 2 CPU cores with splade-tiny)", range=COUNT),
    "train.batch_size": Key(int, 8, "pairs per (global) batch; each adds its hard negatives", range=COUNT),
    "train.lr": Key(float, 2e-5, "peak learning rate (linear warm-up, then linear decay to 0; 1e-4 collapsed a mean-initialised ko model)", range=POSITIVE),
    "train.warmup_ratio": Key(float, 0.1, "fraction of steps with linear learning-rate warm-up", range=FRACTION),
    "train.warmup_steps": Key(int, None, "warm-up steps (instead of train.warmup_ratio): a longer budget then "
                              "continues the same run, so its curve prefix is the shorter budget's run", True,
                              range=NON_NEGATIVE),
    "train.schedule": Key(str, None, "learning rate after warm-up: linear (decay to 0 at the last step; the "
                          "default), constant (no decay: a curve flattens only when the model converges) or "
                          "cosine (to 0)", True, choices=("linear", "constant", "cosine")),
    "train.eval_dataset": Key(str, None, "test collection of the curve points during training ({lang} is replaced); "
                              "default: the run's dataset (a cheaper tier, e.g. miracl-{lang}-lite, keeps them affordable)", True),
    "train.eval_every": Key(int, 30, "evaluate every N steps (the convergence curve; also at step 0 and the last step)",
                            range=COUNT),
    "train.checkpoint_every": Key(int, 30, "checkpoint every N steps (for resume; also at the last step)", range=COUNT),
    "train.pairs_fraction": Key(float, 1.0, "fraction of the train_dataset's pairs trained on, drawn with the run's "
                                "seed (the same pairs for every method and objective of that seed): a low-resource slice",
                                range=Range(gt=0, le=1)),
    "train.query_max_length": Key(int, 32, "query token limit in training", range=COUNT),
    "train.doc_max_length": Key(int, 128, "document token limit in training", range=COUNT),
    "train.bf16": Key(bool, True, "bf16 autocast on CUDA (ignored on CPU)"),
    "train.weight_decay": Key(float, 0.01, "AdamW weight decay (not on biases and LayerNorm)", range=NON_NEGATIVE),
    "train.max_grad_norm": Key(float, 1.0, "gradient clipping norm", range=POSITIVE),
}
ALIASES = {"objective": "train.objective", "steps": "train.steps", "lr": "train.lr"}


def objective_keys(names: list[str] | tuple[str, ...]) -> dict[str, Key]:
    """``train.<parameter>`` keys declared by the objectives ``names``; a parameter that two of them
    declare differently, or that collides with a runner key, is an error in the objective."""
    from harness.objectives import get_objective
    from harness.objectives.base import KEY_PREFIX, objective_params

    keys: dict[str, Key] = {}
    for name in names:
        for p in objective_params(get_objective(name)):
            key = KEY_PREFIX + p.name
            spec = Key(p.type, p.default, p.help, nullable=p.default is None, choices=p.choices, range=p.range)
            earlier = BASE_SCHEMA.get(key) or keys.get(key)
            if earlier is not None and (earlier.type, earlier.default) != (spec.type, spec.default):
                raise HarnessError(f"objective '{name}' declares parameter '{p.name}' as {spec.type.__name__} = "
                                   f"{spec.default!r}, but config key '{key}' is already {earlier.default!r}: rename it")
            keys.setdefault(key, spec)
    return keys


# Built-in objectives' keys are in every fine-tuned run config (run ids of existing records rely on it);
# a plugin objective's keys join only the configs that choose it.
BUILTIN_OBJECTIVES = ("splade", "clear", "qg-distill")
SCHEMA: dict[str, Key] = {**BASE_SCHEMA, **objective_keys(BUILTIN_OBJECTIVES)}


def schema_for(objective: str) -> dict[str, Key]:
    """The schema of a config training with ``objective``: SCHEMA plus a plugin objective's own keys."""
    if objective in BUILTIN_OBJECTIVES:
        return SCHEMA
    return {**SCHEMA, **{k: v for k, v in objective_keys([objective]).items() if k not in SCHEMA}}


def _closest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_value(key: str, value: Any, schema: dict[str, Key] | None = None) -> Any:
    """``value`` checked against the schema type and range of ``key`` (ints widen to floats)."""
    schema = SCHEMA if schema is None else schema
    if key not in schema:
        raise HarnessError(f"unknown config key '{key}'{_closest(key, list(schema))}; see `harness config --keys`")
    spec = schema[key]
    value = _typed(key, spec, value)
    if spec.range is not None and value is not None:
        _check_range(key, spec.range, value)
    return value


def _check_range(key: str, bounds: Range, value: Any) -> None:
    """A number, or each element of a list, within ``bounds``."""
    for item in value if isinstance(value, list) else [value]:
        number = isinstance(item, (int, float)) and not isinstance(item, bool)
        if not number or item not in bounds:
            what = "hold numbers" if isinstance(value, list) else "be"
            raise HarnessError(f"config key '{key}' must {what} {bounds}, got {item!r}")


def _typed(key: str, spec: Key, value: Any) -> Any:
    if value is None and spec.nullable:
        return None
    if spec.choices is not None and value not in spec.choices:
        raise HarnessError(f"config key '{key}' must be one of {', '.join(map(repr, spec.choices))}, got {value!r}")
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    bad_bool = isinstance(value, bool) and spec.type in (int, float)
    if bad_bool or not isinstance(value, spec.type):
        want = spec.type.__name__ if isinstance(spec.type, type) else str(spec.type)
        hint = " (in YAML, quote names with braces: ['gnome-help-{lang}-x-en'])" if "{" in str(value) else ""
        raise HarnessError(f"config key '{key}' must be {want}, got {value!r}{hint}")
    return copy.deepcopy(value)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested profile mappings -> dotted keys (``method_params`` stays a mapping)."""
    flat = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in SCHEMA:
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def profile_path(profile: str) -> Path:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = CONFIG_DIR / f"{profile}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise HarnessError(f"unknown profile '{profile}'{_closest(profile, names)}; profiles: {', '.join(names)}")
    return path


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (``2e-5``, ``true``, ``[ko, ja]``)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise HarnessError(f"--set expects key=value, got '{text}'")
    key = ALIASES.get(key.strip(), key.strip())
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return key, raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key, value


def load_config(profile: str = "pocket", overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Resolved flat config: schema defaults < profile file < ``--set`` overrides."""
    import yaml

    path = profile_path(profile)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise HarnessError(f"{path}: not valid YAML ({err.__class__.__name__}); fix the file") from None
    if not isinstance(tree, dict):
        raise HarnessError(f"{path}: a profile is a mapping of config keys (key: value lines), not a YAML "
                           f"{type(tree).__name__}: fix the file")
    flat = flatten(tree)
    parsed = [parse_override(text) for text in overrides]
    parsed = [(k, v) for k, v in parsed if not k.startswith("method.")]  # checked by the method's own spec
    objective = next((v for k, v in reversed(parsed) if k == "train.objective"),
                     flat.get("train.objective", SCHEMA["train.objective"].default))
    schema = schema_for(objective) if isinstance(objective, str) else SCHEMA
    config = {key: copy.deepcopy(spec.default) for key, spec in schema.items()}
    for key, value in [*flat.items(), *parsed]:
        config[key] = check_value(key, value, schema)
    config["profile"] = config.get("profile") or path.stem
    return config


def per_language(value: Any, lang: str) -> Any:
    """A per-language key's value for ``lang``: a {lang: value} mapping is looked up (unlisted: its "*"
    entry, else None)."""
    return value.get(lang, value.get("*")) if isinstance(value, dict) else value


def run_datasets(run: dict[str, Any]) -> list[str]:
    """Every dataset a run reads: its DATASET_KEYS values, then the extra test collections of ``eval.also``."""
    return [run[k] for k in DATASET_KEYS if k in run] + list(run.get("eval.also", ()))


def run_value(run: dict[str, Any], key: str) -> Any:
    """A run config's value of ``key``, reading a key left out at its legacy value (see LEGACY_VALUES)."""
    return run[key] if key in run else LEGACY_VALUES[key]


def method_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set method.alpha=2`` -> {"alpha": 2.0}."""
    pairs = (parse_override(text) for text in overrides)
    return {key[len("method.") :]: value for key, value in pairs if key.startswith("method.")}


def run_config(config: dict[str, Any], *, method: str, method_params: dict[str, Any], lang: str,
               seed: int, setting: str) -> dict[str, Any]:
    """The config of one run: sweep keys dropped, {lang} filled, training keys only when fine-tuned."""
    if setting not in SETTINGS:
        raise HarnessError(f"unknown setting '{setting}'; settings: {', '.join(SETTINGS)}")
    run = {k: v for k, v in config.items() if k not in GRID_KEYS and k not in ("method_params", "baseline_method")}
    if setting == "zero-shot":
        run = {k: v for k, v in run.items() if not k.startswith("train.") and k != "train_dataset"}
    for key in PER_LANGUAGE_KEYS:
        if key in run:
            run[key] = per_language(run[key], lang)
    for key, legacy in LEGACY_VALUES.items():
        if key in run and run[key] == legacy:
            del run[key]
    for key, (objective, earlier, new) in RETIRED_DEFAULTS.items():
        if run.get(key) == new and run.get("train.objective") != objective:
            run[key] = earlier
    for key in DATASET_KEYS:
        if key in run:
            run[key] = run[key].replace("{lang}", lang)
    if "eval.also" in run:
        run["eval.also"] = [name.replace("{lang}", lang) for name in run["eval.also"]]
    run.update(method=method, method_params=method_params, lang=lang, seed=seed, setting=setting)
    return run
