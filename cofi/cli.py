"""``python -m cofi <command>``: the workflow's jobs (each command generated from its job class in
:mod:`cofi.jobs`, :mod:`cofi.jobs.interface`), plus ``check-config``, ``methods`` and ``plan`` for users. Benchmarks, the GPU check and the lm-eval bridge are in
``python -m cofi.devtools``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cofi import OFFLINE
from cofi.jobs import online

if not online(sys.argv[1:]):  # a fetch goes online unless the environment says otherwise
    for _var, _value in OFFLINE.items():
        os.environ.setdefault(_var, _value)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# --- commands ---------------------------------------------------------------------------------------

def cmd_check_config(args) -> None:
    """Validate the config; then say which rows the claims read and which claims it cannot test."""
    from cofi.config.checks import checked_experiment, load_config

    config = load_config(args.config)
    experiment = checked_experiment(config)
    log(f"{args.config}: OK (experiment {config['experiment']!r}, tasks {', '.join(config['tasks'])})")
    rows = experiment.claim_rows
    print("claims read: " + ", ".join(f"{key} {getattr(rows, key) or '-'}" for key in
                                      ("cofitune", "full", "full_tuned", "sam", "equal_compute"))
          + f", old data {', '.join(rows.old_data) or '-'}")
    untested = experiment.untested_claims
    for claim, need in untested.items():
        print(f"claim {claim} not tested: needs {need}" if not need.startswith("only in part")
              else f"claim {claim} tested {need}")
    if not untested:
        print("every claim can be tested")


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


def run_job(args) -> None:
    """A workflow job: its spec and flags into its job class (checked: a bad key is an error naming it), run."""
    from cofi.jobs.interface import job_from, values_of
    from cofi.models import kernels

    cls = args.job_class
    job = job_from(cls, values_of(args, cls), "job", log=log)
    if cls.computes:
        log(kernels.in_use())
        threads(args.threads)
    job.execute()


# --- the parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from cofi.jobs import JOBS, job_class
    from cofi.jobs.interface import add_job_command

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

    for command in JOBS:  # the workflow's jobs: each command generated from its job class
        add_job_command(sub, command, job_class(command)).set_defaults(func=run_job, job_class=job_class(command))
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    from cofi.errors import InputError

    args = (parser or build_parser()).parse_args(argv)
    try:
        args.func(args)
    except InputError as error:  # bad data, config or model path: say what is wrong, no traceback
        print(f"cofi {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
