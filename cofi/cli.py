"""``python -m cofi <command>``: the workflow's jobs from the command line (each parses its flags into
a job spec and calls the job in :mod:`cofi.jobs` or the module named), plus ``check-config``,
``methods`` and ``plan`` for users. Benchmarks, the GPU check and the lm-eval bridge are in
``python -m cofi.devtools``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cofi import OFFLINE
from cofi.io import compute_line

for _var, _value in OFFLINE.items():
    os.environ.setdefault(_var, _value)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def json_arg(text: str):
    """argparse type of the flags that carry JSON: bad JSON is a usage error naming the flag."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg} at column {error.colno}): {text!r}") from None


json_arg.__name__ = "JSON"  # argparse names the type in its message


def named_path(text: str) -> tuple[str, str]:
    """``NAME=PATH`` (a method's input)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def choices(settings_class, key: str) -> list:
    """The values a Literal-typed settings key takes (the settings dataclass is their one home)."""
    import typing

    return list(typing.get_args(typing.get_type_hints(settings_class)[key]))


def model_load_args(p, several: bool = False) -> None:
    """How a command loads a model: directory (``several``: once, or once per output), remote code, dtype,
    device, threads."""
    from cofi.config.settings import ModelSettings

    p.add_argument("--model", required=True, action="append" if several else "store",
                   help="local Hugging Face causal LM directory" + ("; once, or once per score file" if several else ""))
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    p.add_argument("--dtype", default=ModelSettings.dtype, choices=choices(ModelSettings, "dtype"), help="weights dtype")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the rule's threads)")
    p.add_argument("--device", default="auto", help="auto (the GPU if one is visible, else the CPU), cpu, cuda or cuda:N")


def loading(args) -> dict:
    return {"dtype": args.dtype, "trust_remote_code": args.trust_remote_code, "device": args.device}


# --- commands ---------------------------------------------------------------------------------------

def cmd_check_config(args) -> None:
    from cofi.config.checks import check_config, load_config

    config = check_config(load_config(args.config))
    log(f"{args.config}: OK (experiment {config['experiment']!r}, tasks {', '.join(config['tasks'])})")


def cmd_methods(args) -> None:
    """The registered methods, their own config keys and defaults, and what every training method takes."""
    import json

    from cofi.methods import METHODS
    from cofi.config.settings import TrainSettings, help_lines

    for name, method in METHODS.items():
        print(f"{name}: {method.description}" + ("" if method.trains else " (no training)"))
        for key, spec in method.keys.items():
            sweep = " (a list gives a run per value)" if key in method.sweep else ""
            print(f"    {key} = {json.dumps(spec.get('default'))}: {spec.get('description', '')}{sweep}")
        for need in method.needs:
            print(f"    needs {need.name}: {need.help}")
    print("\nEvery training method also takes the training keys (default: the training section's):")
    for line in help_lines(TrainSettings):
        print(f"    {line}")
    print("and sam: {rho: R} (sharpness-aware minimisation) and equal_compute: true (twice the steps: the\n"
          "compute of a SAM run). lr and sam.rho may be lists, as may the keys marked above.")


def cmd_plan(args) -> None:
    """Memory per GPU of every run of a config, sharded over --gpus GPUs; what fits and what each needs; with the
    config's cluster described, what each training job asks SLURM for."""
    import dataclasses

    from cofi.models.cluster import ClusterError, training_request
    from cofi.config.checks import checked_experiment, load_config
    from cofi.models.plan import CUDA_OVERHEAD_GIB, Architecture, analysis_table, plan_table

    experiment = checked_experiment(load_config(args.config), check_files=False)
    arch = Architecture.load(args.architecture) if args.architecture else Architecture.of(experiment)
    site = experiment.cluster
    gpu_memory = args.gpu_memory if args.gpu_memory is not None else site.gpu_memory_gib
    per_node = args.gpus_per_node or site.gpus_per_node or 8
    table = plan_table(experiment, arch, args.gpus, gpu_memory, per_node)
    print(f"{arch.params / 1e9:.2f} B parameters ({arch.layers} layers, hidden {arch.hidden}); per GPU in GiB at "
          f"{args.gpus} GPUs of {gpu_memory:g} GiB, micro-batch = batch_size / GPUs rows of "
          f"{experiment.prompt.max_len} tokens, {experiment.model.dtype} weights, {experiment.compute.precision}, "
          f"+{CUDA_OVERHEAD_GIB} GiB CUDA overhead; 'needs': the fewest GPUs that fit"
          f"{' (with gradient checkpointing)' if experiment.compute.gradient_checkpointing else ''}:\n")
    print(table.round(2).fillna("-").to_markdown(index=False))
    print(f"\nThe other jobs, on one GPU of {gpu_memory:g} GiB at the config's batch sizes (evaluation halves its batch "
          "where one does not fit, and spreads a model over a node's GPUs where the weights do not):\n")
    print(analysis_table(experiment, arch, gpu_memory).to_markdown(index=False))
    if site.has_gpus:
        experiment.cluster = dataclasses.replace(site, gpu_memory_gib=gpu_memory, gpus_per_node=per_node)
        print(f"\nWhat each training job asks for (config key cluster: {per_node} GPUs of {gpu_memory:g} GiB per node):\n")
        for name, run in experiment.runs.items():
            try:
                request = training_request(experiment, arch, run)
            except ClusterError as error:
                request = str(error)
            print(f"- {name}: {request}")


def cmd_make_data(args) -> None:
    from cofi.data.embedded import spec_of
    from cofi.jobs.base_model import make_data

    started = time.perf_counter()
    make_data(args.suites, spec_of(args.suites, args.spec), args.out_dir, log=log)
    log(compute_line(time.perf_counter() - started))


def cmd_import_gguf(args) -> None:
    from cofi.models.gguf import import_gguf

    threads(args.threads)
    started = time.perf_counter()  # the conversion is the job's work: reading, dequantizing, writing
    import_gguf(args.gguf, args.out, args.dtype, log=log)
    log(compute_line(time.perf_counter() - started))


def cmd_build_base(args) -> None:
    from cofi.jobs.base_model import BaseModelJob, build_base
    from cofi.config.settings import BaseTrainSettings, PromptSettings, from_dict
    from cofi.data.world import WorldSpec

    threads(args.threads)
    base = args.base
    build_base(BaseModelJob(
        world=from_dict(WorldSpec, args.world, "--world"), seed=base["seed"],
        architecture={k: base[k] for k in ("layers", "hidden", "intermediate", "heads")},
        train=from_dict(BaseTrainSettings, base["train"], "--base train"), train_data=args.train,
        prompt=from_dict(PromptSettings, args.prompt, "--prompt"), out=args.out, log=log))


def cmd_finetune(args) -> None:
    from cofi.config.experiment import Run
    from cofi.jobs.finetune import FinetuneJob, finetune
    from cofi.config.settings import ComputeSettings, PromptSettings, from_dict

    threads(args.threads)
    finetune(FinetuneJob(
        model=args.model, train_data=args.train, out=args.out, curve=args.curve, run=Run.from_spec(args.run_spec),
        seed=args.seed, prompt=from_dict(PromptSettings, args.prompt, "--prompt"),
        compute=from_dict(ComputeSettings, {**args.compute, "device": args.device}, "--compute"), dtype=args.dtype,
        trust_remote_code=args.trust_remote_code, inputs=dict(args.input), checkpoint_dir=args.checkpoint_dir, log=log))


def cmd_evaluate(args) -> None:
    from cofi.jobs.evaluate import EvaluateJob, Scoring, evaluate
    from cofi.config.settings import PromptSettings, from_dict

    n = len(args.out)
    models = args.model * n if len(args.model) == 1 else args.model
    predictions = args.predictions or [None] * n
    if {len(models), len(args.suites), len(args.labels), len(predictions)} != {n}:
        raise SystemExit("cofi evaluate: give --suites, --labels and --out once per score file, --model once or once "
                         f"per score file, --predictions once per score file or never; got {n} --out, "
                         f"{len(args.model)} --model, {len(args.suites)} --suites, {len(args.labels)} --labels and "
                         f"{len(args.predictions or [])} --predictions")
    scorings = tuple(Scoring(*fields) for fields in zip(models, args.suites, args.labels, args.out, predictions))
    threads(args.threads)
    evaluate(EvaluateJob(scorings=scorings, prompt=from_dict(PromptSettings, args.prompt, "--prompt"),
                         batch_size=args.batch_size, max_items=args.max_items, generation=args.generation, log=log,
                         **loading(args)))


def cmd_importance(args) -> None:
    from cofi.jobs.analysis import ImportanceJob, importance
    from cofi.config.settings import PromptSettings, from_dict

    threads(args.threads)
    importance(ImportanceJob(model=args.model, data=args.data, options=args.options,
                             prompt=from_dict(PromptSettings, args.prompt, "--prompt"), out=args.out, plot=args.plot,
                             log=log, **loading(args)))


def cmd_landscape(args) -> None:
    from cofi.jobs.analysis import LandscapeJob, landscape
    from cofi.config.settings import PromptSettings, from_dict

    threads(args.threads)
    landscape(LandscapeJob(model=args.model, task_data=args.task_data, vers_suites=args.vers_suites,
                           options=args.options, labels=args.labels,
                           prompt=from_dict(PromptSettings, args.prompt, "--prompt"), out=args.out, plot=args.plot,
                           log=log, **loading(args)))


def cmd_search_step(args) -> None:
    from cofi.jobs.search import policy_from_dict, search_step

    payload = search_step(args.task, args.depth, policy_from_dict(args.policy), args.n_layers, args.reference,
                          args.split, args.previous, args.candidates, args.out, reference_run=args.reference_run)
    for node in payload["nodes"]:
        log(f"depth {args.depth} {node['id']} (lr {node.get('lr')}): Spec {node['spec']:.1f} Vers {node['vers']:.1f} "
            f"Uni {node['uni']:.1f} - {node['status']}: {node['reason']}")
    log(f"next depth: {', '.join(c['id'] for c in payload['expand']) or 'nothing (search ends)'}")


def cmd_search_report(args) -> None:
    from cofi.jobs.search import search_report

    result = search_report(args.task, args.depth_files, args.n_layers, args.out_dir)
    log(f"{args.task}: selected {result['label']} ({result['selected']}) after training {len(result['trained'])} candidates")


def cmd_table(args) -> None:
    from cofi.analysis.tables import write_tables

    tidy = write_tables(args.scores, args.out_dir, args.reference, args.groups, args.digits, args.std, args.bold,
                        args.expect, searches=args.searches)
    log(f"wrote {len(tidy)} rows (runs × tasks) to {args.out_dir}: main.csv/.md/.tex, normalised.md/.tex, seeds.csv")


def cmd_claims(args) -> None:
    """The papers' claims against this experiment's numbers: claims.md and claims.csv."""
    from pathlib import Path

    import pandas as pd

    from cofi.analysis.claims import claims_frame, claims_markdown, measure
    from cofi.io import read_json
    from cofi.config.settings import ClaimRows, from_dict

    rows = from_dict(ClaimRows, args.rows, "--rows")
    claims = measure(pd.read_csv(args.seeds), rows, [read_json(p) for p in args.searches],
                     pd.read_csv(args.sharpness) if args.sharpness else None)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.md").write_text("The papers' claims against this experiment (test split)\n\n"
                                   + claims_markdown(claims, args.digits))
    claims_frame(claims).to_csv(out / "claims.csv", index=False, float_format="%.4f")
    log("; ".join(f"{c['claim']}: {c['verdict']}" for c in claims))


def cmd_plots(args) -> None:
    from cofi.analysis.plots import write_plots

    written = write_plots(args.table, args.out_dir, args.collect)
    log(f"wrote {len(written)} figures to {args.out_dir}")


def cmd_loss_curves(args) -> None:
    from cofi.analysis.plots import plot_loss_curves

    written = plot_loss_curves(dict(args.curve), args.title, args.out)
    log(f"wrote {', '.join(map(str, written))} ({len(args.curve)} runs)")


def cmd_sharpness(args) -> None:
    """Sharpness figures of every landscape, the Vers drop of each model, and their rank correlations."""
    from cofi.analysis.sharpness import write_sharpness

    table, correlations = write_sharpness(args.landscapes, args.scores, args.out_dir, args.plot_dir)
    log(f"sharpness of {len(table)} models; Spearman with the Vers drop:\n{correlations.round(3).to_string(index=False)}")


# --- the parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from cofi.config.settings import EvaluationSettings, ModelSettings
    from cofi.methods import METHODS

    parser = argparse.ArgumentParser(prog="cofi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file (schema, meaning, data files, model)")
    p.add_argument("config", help="YAML config file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("methods", help="list the registered methods, their config keys and what they need")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("plan", help="memory per GPU of every run of a config, and the GPUs or nodes each needs")
    p.add_argument("--config", required=True, help="YAML config file")
    p.add_argument("--gpus", type=int, default=8, help="GPUs the runs are sharded over")
    p.add_argument("--gpu-memory", type=float, help="memory of one GPU, GiB (default: cluster.gpu_memory_gib)")
    p.add_argument("--gpus-per-node", type=int, help="GPUs per node, for the nodes a run needs (default: "
                   "cluster.gpus_per_node, else 8)")
    p.add_argument("--architecture", help="a model directory, a config.json, or a preset (llama2-7b, llama2-13b, "
                   "llama1-33b, tinyllama-1.1b); default: the config's model")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("make-data", help="write the data made here (the symbolic world or the chat suites) as JSONL")
    p.add_argument("--suites", choices=("world", "chat"), default="world", help="which (embedded.suites)")
    p.add_argument("--spec", type=json_arg, default={}, help="JSON of its settings (embedded.world or embedded.chat)")
    p.add_argument("--out-dir", required=True, help="directory for <split>.jsonl files")
    p.set_defaults(func=cmd_make_data)

    p = sub.add_parser("import-gguf", help="write a Llama-family GGUF model file as a Hugging Face model directory")
    p.add_argument("--gguf", required=True, help="the .gguf file")
    p.add_argument("--out", required=True, help="the model directory to write (must not exist or be empty)")
    p.add_argument("--dtype", choices=choices(ModelSettings, "dtype"), default=ModelSettings.dtype,
                   help="dtype of the dequantized weights")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_import_gguf)

    p = sub.add_parser("build-base", help="build and align the embedded base model")
    p.add_argument("--world", type=json_arg, required=True, help="JSON of embedded.world settings (for the vocabulary)")
    p.add_argument("--base", type=json_arg, required=True, help="JSON of embedded.base settings (architecture, training)")
    p.add_argument("--train", required=True, help="versatility training JSONL")
    p.add_argument("--prompt", type=json_arg, required=True, help="JSON of the prompt settings (template, max_len)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.set_defaults(func=cmd_build_base)

    p = sub.add_parser("finetune", help="fine-tune a model on a speciality task: one run at one seed")
    model_load_args(p)
    p.add_argument("--run-spec", type=json_arg, required=True,
                   help="JSON of the run (name, method, params, train, sam_rho, equal_compute); methods: "
                        + ", ".join(METHODS))
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--seed", type=int, default=0, help="seed for data order and initialisation")
    p.add_argument("--prompt", type=json_arg, required=True, help="JSON of the prompt settings")
    p.add_argument("--compute", type=json_arg, default={}, help="JSON: precision, gradient_checkpointing, checkpoint_every")
    p.add_argument("--input", type=named_path, action="append", default=[], metavar="NAME=PATH",
                   help="a file the method needs (python -m cofi methods lists them)")
    p.add_argument("--checkpoint-dir", help="where checkpoints go and are resumed from (removed when the run is done)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--curve", required=True, help="loss curve CSV")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("evaluate", help="score models on speciality and versatility suites")
    model_load_args(p, several=True)
    p.add_argument("--prompt", type=json_arg, required=True, help="JSON of the prompt settings")
    p.add_argument("--generation", type=json_arg, default={},
                   help="JSON of decoding options over the model's generation config (default: greedy)")
    # Several score files (e.g. every seed of a run, on its test and validation split) in one process: each
    # model loads once.
    p.add_argument("--suites", type=json_arg, required=True, action="append",
                   help='JSON {"spec": {name: suite}, "vers": {name: suite}}; once per score file')
    p.add_argument("--labels", type=json_arg, required=True, action="append",
                   help="JSON labels stored with the scores (method, task, seed, split); once per score file")
    p.add_argument("--batch-size", type=int, default=EvaluationSettings.batch_size, help="evaluation batch size")
    p.add_argument("--max-items", type=int, default=None, help="score at most this many items per suite")
    p.add_argument("--out", required=True, action="append", help="scores JSON; once per score file")
    p.add_argument("--predictions", action="append", help="optional JSON of per-item predictions, once per score file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("importance", help="estimate unit importance (heads, FFN units) for the soft masks")
    model_load_args(p)
    p.add_argument("--prompt", type=json_arg, required=True, help="JSON of the prompt settings")
    p.add_argument("--data", required=True, help="JSONL whose inputs (instruction + input) are used, unlabeled")
    p.add_argument("--options", type=json_arg, required=True, help="JSON: dropout, batches, batch_size, signed, seed")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--plot", required=True, help="output heatmap (.png)")
    p.set_defaults(func=cmd_importance)

    p = sub.add_parser("landscape", help="loss landscape of a model along filter-normalised random directions")
    model_load_args(p)
    p.add_argument("--prompt", type=json_arg, required=True, help="JSON of the prompt settings")
    p.add_argument("--task-data", required=True, help="speciality JSONL (a seeded sample is the fixed batch)")
    p.add_argument("--vers-suites", type=json_arg, required=True, help='JSON {name: {"path", "type"}}: the fixed versatility batch')
    p.add_argument("--options", type=json_arg, required=True,
                   help="JSON: span, points_1d, points_2d, radius, batch_size, direction_seed, data_seed")
    p.add_argument("--labels", type=json_arg, required=True, help='JSON {"run", "task", "seed"} stored with the result')
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--plot", required=True, help="figure path without suffix (PNG and PDF)")
    p.set_defaults(func=cmd_landscape)

    p = sub.add_parser("search-step", help="one depth of the coarse search: score, select, expand")
    p.add_argument("--task", required=True, help="speciality task")
    p.add_argument("--depth", type=int, required=True, help="depth of this step (0 seeds the search)")
    p.add_argument("--policy", type=json_arg, required=True, help="JSON of the search policy")
    p.add_argument("--n-layers", type=int, required=True, help="decoder layers of the model")
    p.add_argument("--split", default="val", help="split the scores come from (recorded in the trace)")
    p.add_argument("--reference", required=True, help="score file of the reference run (Full SFT)")
    p.add_argument("--previous", help="the previous depth's file (depth >= 1)")
    p.add_argument("--reference-run", type=json_arg, default=None, help='JSON {"run", "lr"} of the reference (the trace)')
    p.add_argument("--candidates", type=json_arg, default={},
                   help='JSON {candidate id: [{"lr", "run", "scores": score file}, ...]} of this depth, one per lr')
    p.add_argument("--out", required=True, help="this depth's JSON file")
    p.set_defaults(func=cmd_search_step)

    p = sub.add_parser("search-report", help="trace, table and tree figure of a finished search")
    p.add_argument("depth_files", nargs="+", help="depth JSON files in order")
    p.add_argument("--task", required=True, help="speciality task")
    p.add_argument("--n-layers", type=int, required=True, help="decoder layers of the model")
    p.add_argument("--out-dir", required=True, help="directory for result.json, trace.csv, table.md, tree.png/pdf")
    p.set_defaults(func=cmd_search_report)

    p = sub.add_parser("table", help="build the result tables from score files")
    p.add_argument("--scores", nargs="+", required=True, help="score JSON files (test, and validation for sweeps); RUN=PATH reads a "
                   "file as run RUN's (a run that trains what another run trains shares its files)")
    p.add_argument("--searches", nargs="*", default=[], help="search result.json files: their picks' rows are named "
                   "cofitune_coarse")
    p.add_argument("--out-dir", required=True, help="directory for main.csv/.md/.tex, normalised.md/.tex, seeds.csv")
    p.add_argument("--reference", help="run the normalised view compares to (e.g. full)")
    p.add_argument("--groups", type=json_arg, default={}, help='JSON {sweep: {variant run: "lr=0.001"}}: a tuned row per sweep')
    p.add_argument("--digits", type=int, default=1, help="decimals shown")
    p.add_argument("--std", action=argparse.BooleanOptionalAction, default=True, help="show ± std over seeds")
    p.add_argument("--bold", action=argparse.BooleanOptionalAction, default=True, help="mark the best value per column")
    p.add_argument("--expect", type=json_arg, help='JSON {"runs", "sweeps", "tasks", "seeds", "searched"}: refuse a partial table')
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("claims", help="the papers' claims checked against the tables: claims.md and claims.csv")
    p.add_argument("--seeds", required=True, help="seeds.csv of the main table (every score of every seed)")
    p.add_argument("--searches", nargs="*", default=[], help="search result.json files (the region claim)")
    p.add_argument("--sharpness", help="sharpness.csv (the flatness claim)")
    p.add_argument("--rows", type=json_arg, default={}, help="JSON of the claims settings: which rows the claims read")
    p.add_argument("--digits", type=int, default=1, help="decimals in claims.md")
    p.add_argument("--out-dir", required=True, help="directory for claims.md and claims.csv")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("plots", help="figures from the tidy table: Pareto (Spec vs Vers) per task, Uni per run")
    p.add_argument("--table", required=True, help="tables/main.csv")
    p.add_argument("--out-dir", required=True, help="directory for the figures (PNG and PDF)")
    p.add_argument("--collect", type=json_arg, default={}, help='JSON {target: source}: other figures to copy in')
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("loss-curves", help="the training loss of several runs in one figure")
    p.add_argument("--curve", type=named_path, action="append", required=True, metavar="LABEL=PATH",
                   help="a run's loss.csv, under a label")
    p.add_argument("--title", default="training loss", help="figure title")
    p.add_argument("--out", required=True, help="figure path without suffix (PNG and PDF)")
    p.set_defaults(func=cmd_loss_curves)

    p = sub.add_parser("sharpness", help="sharpness table and rank correlation with the Vers drop")
    p.add_argument("--landscapes", nargs="+", required=True, help="landscape JSON files")
    p.add_argument("--scores", nargs="+", required=True, help="the score files of the same models and the base model (RUN=PATH as for table)")
    p.add_argument("--out-dir", required=True, help="directory for sharpness.csv/.md and sharpness_correlation.csv")
    p.add_argument("--plot-dir", required=True, help="directory for landscape_<task>.png/pdf (every run's 1-D curves)")
    p.set_defaults(func=cmd_sharpness)
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    from cofi.models import kernels
    from cofi.errors import InputError

    args = (parser or build_parser()).parse_args(argv)
    if args.command in kernels.COMMANDS:
        log(kernels.in_use())
    try:
        args.func(args)
    except InputError as error:  # bad data, config or model path: say what is wrong, no traceback
        print(f"cofi {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
