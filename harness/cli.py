"""The ``harness`` command line. Heavy libraries are imported inside commands so --help is instant."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from harness.util import HarnessError, exit_on_sigterm

RUNS_DIR = "runs"
JSON_HELP = "print the record(s) as JSON on stdout (progress goes to stderr)"
SEEDS = click.IntRange(0, 2**32 - 1)  # config.SEED: the seeds numpy's legacy seeding and the methods accept
COUNT = click.IntRange(min=1)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one 'error: ...' line and exit code 2; Ctrl-C exits 130, as shells expect."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from harness.registry import UnknownNameError

        try:
            return fn(*args, **kwargs)
        except (HarnessError, UnknownNameError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:  # click would print "Aborted!" and exit 1
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def echo_table(rows: list[dict[str, Any]], headers: str | list[str] = "keys") -> None:
    from tabulate import tabulate

    click.echo(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparse-transfer-harness")
@click.option("-v", "--verbose", count=True, help="more output: third-party progress bars and info logs")
@click.option("-q", "--quiet", count=True, help="less output: results and errors only, no progress bars")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Transfer English SPLADE sparse encoders to new languages and compare initialization methods."""
    exit_on_sigterm()
    ctx.obj = {"verbosity": verbose - quiet}
    set_verbosity(verbose - quiet)


def set_verbosity(level: int) -> None:
    """Third-party output by level, through environment variables (inherited by sweep workers and
    read when transformers / huggingface_hub / tqdm are first imported, so nothing is imported here).

    -1 (-q): no progress bars at all, transformers errors only; 0 (default): no Hugging Face progress
    bars ("Loading weights", downloads), the harness's own bars and messages; 1 (-v): everything,
    transformers info logs too. At the default level a variable the user set is left alone."""
    if level < 0:
        os.environ.update(TQDM_DISABLE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error")
    elif level == 0:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    else:
        os.environ.update(HF_HUB_DISABLE_PROGRESS_BARS="0", TRANSFORMERS_VERBOSITY="info")
    if "transformers" in sys.modules:  # imported already (an embedding process): tell it directly
        from transformers.utils import logging as hf_logging

        quiet_bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").lower() in ("1", "true", "yes", "on")
        hf_logging.disable_progress_bar() if quiet_bars else hf_logging.enable_progress_bar()


def verbosity() -> int:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.get("verbosity", 0) if isinstance(obj, dict) else 0


def progress_echo(as_json: bool = False) -> Callable[[str], None]:
    """Where a command's progress lines go: stdout; stderr under --json (stdout holds the JSON); nowhere under -q."""
    if verbosity() < 0:
        return lambda message: None
    if as_json:
        return lambda message: click.echo(message, err=True)
    return click.echo


def emit_records(records: list[dict[str, Any]], as_json: bool, *, single: bool = False) -> None:
    """--json: the record(s) on stdout (one object when ``single``, else a list); -q: one line per record."""
    import json

    if as_json:
        click.echo(json.dumps(records[0] if single else records, indent=2, ensure_ascii=False))
    elif verbosity() < 0:
        for record in records:
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in (record.get("metrics") or {}).items())
            click.echo(f"{record.get('run_id', '?')}: {metrics or 'no metrics'}")


@main.command("methods")
@user_errors
def methods_cmd() -> None:
    """List initialization methods: parameters and defaults, citation, resources, determinism."""
    from harness.method_specs import get_method
    from harness.registry import methods

    def declared(value: Any) -> str:
        if value is None:
            return "?"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return ", ".join(value) or "-"

    rows = []
    for entry in methods:
        try:
            spec = get_method(entry.name)
        except Exception as err:  # a broken plugin must not hide the others
            rows.append({"method": entry.name, "origin": entry.origin, "description": f"(fails to load: {err})",
                         "deterministic": "?", "resources": "?", "citation": "-", "parameters": "-"})
            continue
        params = ", ".join(p.describe() for p in spec.params) or "-"
        rows.append({"method": entry.name, "origin": entry.origin, "description": spec.description,
                     "deterministic": declared(spec.deterministic), "resources": declared(spec.resources),
                     "citation": spec.citation or "-", "parameters": params})
    echo_table(rows)
    click.echo("deterministic: the plan does not depend on the seed (? = not declared); resources: what the "
               "method asks the runner for beyond the tokenizers and E_s")
    shadowed = [(e.name, o) for e in methods for o in e.shadowed]
    for name, origin in shadowed:
        click.echo(f"note: {origin} also defines '{name}'; the built-in wins", err=True)


@main.command("run")
@click.option("--method", "method_name", required=True, help="initialization method (see `harness methods`)")
@click.option("--lang", required=True, help="target language code, e.g. ko")
@click.option("--profile", default="pocket", show_default=True, help="profile name or YAML path")
@click.option("--setting", type=click.Choice(["zero-shot", "fine-tuned", "both"]), default="both", show_default=True)
@click.option("--seed", type=SEEDS, default=0, show_default=True)
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key (repeatable); method.PARAM=VALUE sets a method parameter")
@click.option("--force", is_flag=True, help="re-run even if an identical run is recorded")
@click.option("--no-save-model", "no_save_model", is_flag=True,
              help="do not keep the adapted model (model/ in the run folder); the run id is the same either way")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@user_errors
def run_cmd(method_name: str, lang: str, profile: str, setting: str, seed: int, runs_dir: str,
            overrides: tuple[str, ...], force: bool, no_save_model: bool, as_json: bool) -> None:
    """Adapt the source encoder to LANG with METHOD, evaluate, and record the run."""
    from harness.pipeline import execute, plan_runs, preflight

    settings = ["zero-shot", "fine-tuned"] if setting == "both" else [setting]
    runs = plan_runs(profile, overrides, method=method_name, lang=lang, seed=seed, settings=settings)
    preflight(runs, runs_dir)
    echo = progress_echo(as_json)
    records = [execute(run, runs_dir=runs_dir, force=force, echo=echo, save_model=not no_save_model) for run in runs]
    records = [r for r in records if r]  # a rank other than 0 under torchrun returns {} and prints nothing
    if records:
        emit_records(records, as_json)


@main.command("config")
@click.option("--profile", default="pocket", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--keys", is_flag=True, help="list every config key with its type, default and meaning")
@user_errors
def config_cmd(profile: str, overrides: tuple[str, ...], keys: bool) -> None:
    """Show the resolved configuration of a profile (or all keys)."""
    from harness.config import SCHEMA, load_config

    if keys:
        echo_table([{"key": k, "type": key_type(s), "default": repr(s.default), "meaning": s.help}
                    for k, s in SCHEMA.items()])
        return
    config = load_config(profile, overrides)
    echo_table([{"key": k, "value": repr(v)} for k, v in config.items()])


def key_type(spec: Any) -> str:
    """A config key's type with its range: ``int >= 1``, ``list (each >= 0 and <= 4294967295)``."""
    name = getattr(spec.type, "__name__", str(spec.type))
    if spec.range is None:
        return name
    return f"{name} (each {spec.range})" if spec.type is list else f"{name} {spec.range}"


@main.command("eval")
@click.option("--model", "model_ref", required=True, help="sparse encoder: pocket:NAME, hub id, or directory")
@click.option("--dataset", required=True, help="test collection (see `harness data list`) or beir:DIR")
@click.option("--profile", default="pocket", show_default=True, help="profile whose encode/eval settings apply")
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--force", is_flag=True, help="re-run even if an identical evaluation is recorded")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@user_errors
def eval_cmd(model_ref: str, dataset: str, profile: str, runs_dir: str, overrides: tuple[str, ...], force: bool,
             as_json: bool) -> None:
    """Evaluate any sparse encoder (e.g. the unadapted source model) on a collection."""
    from harness.pipeline import evaluate_model

    record = evaluate_model(model_ref, dataset, profile=profile, overrides=overrides, runs_dir=runs_dir, force=force,
                            echo=progress_echo(as_json))
    emit_records([record], as_json, single=True)


@main.group("data")
def data_group() -> None:
    """Datasets: test collections, target text, training pairs, dictionaries."""


@data_group.command("list")
@user_errors
def data_list() -> None:
    """Every registered dataset with its size, source and licence."""
    from harness.data import dataset_rows

    echo_table(dataset_rows())


@data_group.command("build")
@click.argument("name", required=False)
@user_errors
def data_build(name: str | None) -> None:
    """Build (and cache) one dataset, or all of them."""
    from harness.data import build

    build(name)
    click.echo(f"built {name or 'all datasets'}")


@data_group.command("export")
@click.argument("name")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["beir", "trec", "mteb"]), default="beir", show_default=True,
              help="beir: corpus.jsonl, queries.jsonl, qrels/test.tsv (read back by beir:DIR); trec: topics.tsv, "
                   "qrels.trec, corpus.jsonl; mteb: the BEIR files plus a README.md of configs that "
                   "datasets.load_dataset (and so mteb's retrieval loader) reads")
@click.option("--force", is_flag=True, help="replace DIRECTORY if it is not empty")
@user_errors
def data_export(name: str, directory: str, fmt: str, force: bool) -> None:
    """Write test collection NAME (or beir:DIR) to DIRECTORY in another tool's format."""
    from harness.data import load_collection
    from harness.data.export import export_collection

    files = export_collection(load_collection(name), directory, fmt, force=force)
    click.echo(f"{name} -> {directory} ({fmt}: {', '.join(str(f) for f in files)})")


@main.group("tokenizer")
def tokenizer_group() -> None:
    """Target-language tokenizers."""


@tokenizer_group.command("train")
@click.option("--lang", required=True)
@click.option("--profile", default="pocket", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="tokenizer.recipe, tokenizer.vocab_size, tokenizer.min_frequency, tokenizer.lowercase")
@click.option("--vocab-size", type=int, default=None, help="default: tokenizer.vocab_size (30000)")
@click.option("--min-frequency", type=int, default=None, help="default: tokenizer.min_frequency (2)")
@user_errors
def tokenizer_train(lang: str, profile: str, overrides: tuple[str, ...], vocab_size: int | None,
                    min_frequency: int | None) -> None:
    """Train (or reuse) the language's target tokenizer by tokenizer.recipe; prints its directory."""
    from harness.config import check_value, load_config, per_language
    from harness.target_tokenizer import check_recipe, target_tokenizer

    config = load_config(profile, overrides)
    for key, value in (("tokenizer.vocab_size", vocab_size), ("tokenizer.min_frequency", min_frequency)):
        if value is not None:
            check_value(key, value)  # the options are those keys, with their ranges
    recipe = check_recipe(per_language(config["tokenizer.recipe"], lang))
    tokenizer, path = target_tokenizer(
        "auto", lang, recipe=recipe, training_text=config["training_text"],
        vocab_size=vocab_size if vocab_size is not None else config["tokenizer.vocab_size"],
        min_frequency=min_frequency if min_frequency is not None else config["tokenizer.min_frequency"],
        lowercase=config["tokenizer.lowercase"])
    click.echo(f"{path} ({len(tokenizer)} tokens, recipe {recipe}, text {config['training_text']})")


@tokenizer_group.command("recipes")
def tokenizer_recipes() -> None:
    """The recipes of tokenizer.recipe, and the word segmenter each language gets."""
    from harness.target_tokenizer import RECIPES

    for name, description in RECIPES.items():
        click.echo(f"{name}: {description}")


@main.group("teacher")
def teacher_group() -> None:
    """The pocket query generator, the teacher of the qg-distill objective (train.teacher=pocket:query-generator)."""


TEACHER_SET_HELP = ("a teacher setting (repeatable): encoder_layers, decoder_layers, steps, batch_size, lr, "
                    "warmup_steps, weight_decay, doc_max_length, query_max_length, seed")


def teacher_settings(overrides: tuple[str, ...]) -> Any:
    import yaml

    from harness.teacher import settings_from

    values = {}
    for text in overrides:
        name, sep, raw = text.partition("=")
        if not sep or not name.strip():
            raise HarnessError(f"--set expects name=value, got '{text}'")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise HarnessError(f"--set {name.strip()}: '{raw}' is not a value") from None
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        values[name.strip()] = value
    return settings_from(values)


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@teacher_group.command("train")
@click.option("--lang", required=True, help="language whose LibreOffice help training pairs train it (en, ko, ja, zh, ru)")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help=TEACHER_SET_HELP)
@click.option("--threads", type=COUNT, default=None, help="torch threads (default: torch's; 1 is faster on a loaded machine)")
@user_errors
def teacher_train(lang: str, overrides: tuple[str, ...], threads: int | None) -> None:
    """Train (or reuse) the language's query generator; prints its cached directory."""
    from harness.teacher import check_lang, pocket_teacher_dir

    settings = teacher_settings(overrides)
    check_lang(lang)
    set_threads(threads)
    echo = progress_echo()
    path = pocket_teacher_dir(lang, settings, progress=verbosity() >= 0, echo=echo)
    click.echo(str(path))


@teacher_group.command("eval")
@click.option("--lang", required=True, help="language of the dev collection libreoffice-help-{lang}-dev")
@click.option("--teacher", "teacher_ref", default=None, type=click.Path(file_okay=False, exists=True),
              help="a seq2seq model directory (default: the pocket teacher of --lang, trained if absent)")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE", help=TEACHER_SET_HELP)
@click.option("--samples", "n_samples", type=click.IntRange(0, 100), default=5, show_default=True,
              help="dev passages to generate a query for")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="JSON record (default: beside the teacher)")
@click.option("--threads", type=COUNT, default=None, help="torch threads (default: torch's)")
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON on stdout")
@user_errors
def teacher_eval(lang: str, teacher_ref: str | None, overrides: tuple[str, ...], n_samples: int, out: str | None,
                 threads: int | None, as_json: bool) -> None:
    """MRR@10 of BM25 and of BM25's top 100 reranked by the teacher's log P(q|p), on the dev collection."""
    import json

    from harness.teacher import check_lang
    from harness.teacher_eval import evaluate_teacher

    settings = teacher_settings(overrides)
    check_lang(lang)
    set_threads(threads)
    record = evaluate_teacher(lang, teacher_ref=teacher_ref, settings=settings, n_samples=n_samples, out=out,
                              progress=verbosity() >= 0, echo=progress_echo(as_json))
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))


@main.command("inspect")
@click.option("--method", "method_name", required=True)
@click.option("--lang", required=True)
@click.option("--token", "tokens", required=True, multiple=True, help="target token (repeatable)")
@click.option("--profile", default="pocket", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--top", type=COUNT, default=10, show_default=True, help="source tokens shown per target token")
@user_errors
def inspect_cmd(method_name: str, lang: str, tokens: tuple[str, ...], profile: str, overrides: tuple[str, ...],
                top: int) -> None:
    """Show the source tokens and weights that make a target token."""
    from harness.pipeline import inspect_tokens

    for line in inspect_tokens(profile, overrides, method=method_name, lang=lang, tokens=list(tokens), top=top):
        click.echo(line)


@main.command("check-method")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="PARAM=VALUE", help="a method parameter (repeatable)")
@user_errors
def check_method_cmd(name: str, overrides: tuple[str, ...]) -> None:
    """Run method NAME on tiny built-in fixtures (offline, seconds) and validate its plan."""
    from harness.checks import check_method
    from harness.config import parse_override
    from harness.method_specs import MethodLoadError, get_method

    params = dict(parse_override(o) for o in overrides)
    try:
        spec = get_method(name)
    except MethodLoadError as err:  # a broken plugin is a failed check, not a traceback
        fail_checks([str(err)])
    try:
        spec.resolve_params(params)
    except ValueError as err:  # a bad --set is a usage error
        raise HarnessError(str(err)) from None
    try:
        problems, diagnostics = check_method(name, params)
    except Exception as err:  # the method itself failed on the fixtures: that is what this command reports
        fail_checks([f"'{name}' raised {type(err).__name__} on the fixtures: {err}"])
    echo_table([{"check": k, "value": v} for k, v in diagnostics.items()])
    if problems:
        fail_checks(problems)
    click.echo(f"ok: '{name}' returns a valid plan")


def fail_checks(problems: list[str]) -> NoReturn:
    """One FAIL line per problem on stderr, then exit code 1 (a failed check)."""
    for problem in problems:
        click.echo(f"FAIL: {problem}", err=True)
    sys.exit(1)


@main.command("objectives")
@user_errors
def objectives_cmd() -> None:
    """List training objectives (built-in and plugins)."""
    from harness.objectives import objective_rows

    echo_table(objective_rows())


def launcher_options(command: Callable) -> Callable:
    """--workers, --launcher and --launcher-opt: where a grid's cells run (sweep and tune)."""
    command = click.option("--launcher-opt", "launcher_opts", multiple=True, metavar="KEY=VALUE",
                           help="submitit: cluster, partition, timeout_min, cpus_per_task, gpus_per_node, slurm_*...; "
                                "ray: address (default $RAY_ADDRESS), num_cpus, num_gpus (README: Scaling up)")(command)
    command = click.option("--launcher", type=click.Choice(["local", "submitit", "ray"]), default="local",
                           show_default=True, help="where cells run: this machine's process pool, submitit jobs "
                                                   "(SLURM or local), Ray tasks")(command)
    return click.option("--workers", type=COUNT, default=None,
                        help="local: parallel worker processes (default 1); submitit, ray: most cells in flight "
                             "(default: all)")(command)


@main.command("sweep")
@click.argument("config")
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@launcher_options
@click.option("--fail-fast", is_flag=True, help="stop at the first failed cell")
@click.option("--no-save-model", "no_save_model", is_flag=True,
              help="keep no adapted models (model/ in each run folder); run ids are the same either way")
@user_errors
def sweep_cmd(config: str, runs_dir: str, overrides: tuple[str, ...], workers: int | None, launcher: str,
              launcher_opts: tuple[str, ...], fail_fast: bool, no_save_model: bool) -> None:
    """Run the grid methods x languages x seeds x settings of CONFIG (a profile or YAML path)."""
    from harness.launchers import parse_options
    from harness.pipeline import check_runs_dir
    from harness.sweep import sweep

    options = parse_options(launcher_opts)
    check_runs_dir(runs_dir)  # before planning: failed plans are recorded there at once
    summary = sweep(config, runs_dir=runs_dir, overrides=overrides, workers=workers, echo=progress_echo(),
                    fail_fast=fail_fast, save_model=not no_save_model, launcher=launcher,
                    launcher_options=options)
    if verbosity() < 0:  # the sweep's own echo said it otherwise
        click.echo(summary.line())
    if not summary.ok:
        sys.exit(1)


@main.command("tune")
@click.argument("config", default="pocket")
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", default="leaderboards", show_default=True, type=click.Path(file_okay=False))
@click.option("--name", default=None, help="report file stem (default: <profile>-tuning)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@launcher_options
@user_errors
def tune_cmd(config: str, runs_dir: str, out_dir: str, name: str | None, overrides: tuple[str, ...],
             workers: int | None, launcher: str, launcher_opts: tuple[str, ...]) -> None:
    """Choose the training recipe on the dev collections: every recipe of CONFIG's tune.grid, fine-tuned
    and scored on dev, then leaderboards/<profile>-tuning.md with the pick."""
    import shlex
    from pathlib import Path

    from harness.device import device_name
    from harness.launchers import parse_options
    from harness.pipeline import check_runs_dir
    from harness.runs import git_commit
    from harness.tune import tune

    options = parse_options(launcher_opts)
    check_runs_dir(runs_dir)
    header = {"command": shlex.join(["harness", *sys.argv[1:]]), "commit": git_commit(), "machine": device_name()}
    tune(config, runs_dir=runs_dir, out_dir=out_dir, name=name or f"{Path(config).stem}-tuning", overrides=overrides,
         workers=workers, header=header, echo=click.echo, launcher=launcher, launcher_options=options)


@main.command("leaderboard")
@click.option("--runs", "runs_dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", default="leaderboards", show_default=True, type=click.Path(file_okay=False))
@click.option("--name", default="pocket", show_default=True, help="output file stem")
@click.option("--profile", default=None, help="only records of this profile (default: the --grid profile's; "
              "without --grid, every record)")
@click.option("--metric", default="ndcg@10", show_default=True, help="metric of the main table")
@click.option("--baseline", default="random", show_default=True,
              help="method the others are tested against; or KEY=VALUE: each row against its own method's row "
                   "with that value (e.g. train.objective=splade)")
@click.option("--test", type=click.Choice(["randomization", "t-test"]), default="randomization", show_default=True)
@click.option("--correction", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True)
@click.option("--grid", default=None, metavar="CONFIG",
              help="profile whose sweep grid the records should cover: counts and lists the missing cells")
@click.option("--control", "controls", multiple=True, default=["en"], show_default=True,
              help="control language: shown last, left out of the averages (repeat; '' for none)")
@click.option("--json", "as_json", is_flag=True,
              help="print the files written and every table cell (the CSV's rows) as JSON on stdout")
@click.option("--strict", is_flag=True, help="fail (exit 2, nothing written) when a record is unreadable, "
              "instead of leaving it out with a warning")
@user_errors
def leaderboard_cmd(runs_dir: str, out_dir: str, name: str, profile: str | None, metric: str, baseline: str,
                    test: str, correction: str, controls: tuple[str, ...], grid: str | None, as_json: bool,
                    strict: bool) -> None:
    """Leaderboards (markdown, LaTeX, CSV, plots) from the run records in --runs."""
    import shlex

    from harness.report import build_leaderboard
    from harness.device import device_name
    from harness.runs import git_commit

    header = {"command": shlex.join(["harness", *sys.argv[1:]]), "commit": git_commit(), "machine": device_name()}
    named = click.get_current_context().get_parameter_source("baseline") is not click.core.ParameterSource.DEFAULT
    if grid and profile is None:  # other profiles' records share the folder (e.g. records/): not this grid's
        from harness.config import load_config

        profile = load_config(grid)["profile"]
    paths = build_leaderboard(runs_dir, out_dir, name=name, metric=metric, baseline=baseline, test=test,
                              correction=correction, header=header, profile=profile,
                              controls=[c for c in controls if c], grid=grid_cells(grid, runs_dir) if grid else None,
                              warn=lambda message: click.echo(f"warning: {message}", err=True), strict=strict,
                              require_baseline=named)
    if as_json:
        import json

        csv_path = next(p for p in paths if p.suffix == ".csv")
        click.echo(json.dumps({"files": [str(p) for p in paths], "cells": leaderboard_cells(csv_path)}, indent=2,
                              ensure_ascii=False))
        return
    for path in paths:
        click.echo(str(path))


def leaderboard_cells(csv_path: Path) -> list[dict[str, Any]]:
    """The rows of a leaderboard CSV with numbers as numbers (empty fields: None)."""
    import csv

    numeric = {"n_seeds": int, "significant": int, "mean": float, "sd": float, "diff_vs_baseline": float,
               "p": float, "p_adjusted": float}
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (numeric[k](v) if v != "" else None) if k in numeric else v for k, v in row.items()} for row in rows]


def grid_cells(config: str, runs_dir: str) -> Any:
    """The run ids a sweep of ``config`` would record, with their cell labels."""
    from harness.report import GridCells
    from harness.runs import RunDir
    from harness.sweep import plan_cells

    cells = plan_cells(config)
    return GridCells(config, {RunDir.for_config(runs_dir, c.run).id: (c.method, c.lang, c.setting, c.seed)
                              for c in cells})


@main.command("reference")
@click.option("--system", type=click.Choice(["bm25", "bm25-lite", "dense-bridge"]), required=True)
@click.option("--dataset", required=True)
@click.option("--profile", default="pocket", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@user_errors
def reference_cmd(system: str, dataset: str, profile: str, overrides: tuple[str, ...], runs_dir: str,
                  force: bool, as_json: bool) -> None:
    """Evaluate a reference system (BM25, the dense bridge model) on a collection, as a run record."""
    from harness.config import load_config
    from harness.pipeline import check_run_values
    from harness.references import evaluate_reference

    check_run_values([load_config(profile, overrides)], runs_dir)

    record = evaluate_reference(system, dataset, profile=profile, overrides=overrides, runs_dir=runs_dir,
                                force=force, echo=progress_echo(as_json))
    emit_records([record], as_json, single=True)


@main.command("fuse")
@click.argument("runs", nargs=-1, required=True)
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False),
              help="where run ids are looked up and the fused record is written")
@click.option("--method", "fusion", type=click.Choice(["rrf"]), default="rrf", show_default=True,
              help="rrf: reciprocal rank fusion (ranx.fuse), no weights to tune")
@click.option("--k", type=COUNT, default=60, show_default=True, help="RRF's rank constant")
@click.option("--force", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@user_errors
def fuse_cmd(runs: tuple[str, ...], runs_dir: str, fusion: str, k: int, force: bool, as_json: bool) -> None:
    """Fuse recorded RUNS (run folders or ids) of one collection into a hybrid system's record (e.g. a
    fine-tuned model + BM25)."""
    from harness.fusion import fuse_runs

    record = fuse_runs([run_folder(ref, runs_dir) for ref in runs], runs_dir=runs_dir, method=fusion, k=k,
                       force=force, echo=progress_echo(as_json))
    emit_records([record], as_json, single=True)


@main.command("export")
@click.argument("run")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--runs-dir", default=RUNS_DIR, show_default=True, type=click.Path(file_okay=False),
              help="where a run id is looked up")
@click.option("--force", is_flag=True, help="replace DIRECTORY if it is not empty")
@user_errors
def export_cmd(run: str, directory: str, runs_dir: str, force: bool) -> None:
    """Copy the saved model of RUN (a run folder or a run id) to DIRECTORY, a SparseEncoder directory."""
    import shutil

    from harness.runs import RunDir
    from harness.util import atomic_dir

    folder = run_folder(run, runs_dir)
    record = RunDir(folder).result()
    model = record.get("files", {}).get("model")
    if not model or not (folder / model / "modules.json").is_file():
        raise HarnessError(f"run {folder.name} has no saved model: re-run it with --force and without "
                           f"--no-save-model (`harness run ... --force`)")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise HarnessError(f"{target} exists and is not empty: choose another folder or pass --force to replace it")
    if target.resolve() == (folder / model).resolve():
        raise HarnessError(f"{target} is the run's own model folder: export to another folder")
    with atomic_dir(target) as tmp:
        shutil.copytree(folder / model, tmp, dirs_exist_ok=True)
    click.echo(f"{folder.name}: model -> {target} (load it with sentence_transformers.SparseEncoder({str(target)!r}))")


def run_folder(ref: str, runs_dir: str) -> Path:
    """A run folder given as a path, or as a run id under ``runs_dir`` (unknown ids: "did you mean")."""
    import difflib

    for candidate in (Path(ref), Path(runs_dir) / ref):
        if (candidate / "result.json").is_file():
            return candidate
    known = sorted(p.parent.name for p in Path(runs_dir).glob("*/result.json"))
    close = difflib.get_close_matches(ref, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise HarnessError(f"no run '{ref}': not a run folder, and not a run id under {runs_dir} ({hint}"
                       f"{len(known)} runs there; pass a run folder or --runs-dir)")


if __name__ == "__main__":  # pragma: no cover
    main()
