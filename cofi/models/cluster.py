"""What each job asks the cluster for (pure: no torch, no Snakemake): GPUs, nodes, host memory and runtime.

The site layer describes a GPU and a node once (config key ``cluster``); a training job's request follows from
cofi's plan for its run (:mod:`cofi.models.plan`), so a LoRA run asks for one GPU where Full SFT asks for two, and a run
that needs more GPUs than a node has spans nodes, one srun task per GPU. Jobs that load one whole model ask for one
GPU, or as many of a node's as an evaluation batch or the sharded importance needs by the plan. Keys are Snakemake
resources as the SLURM executor plugin reads them (``gpu``, ``gpu_model``, ``nodes``, ``tasks_per_node``, ``gres``,
``mpi``, ``mem_mb``, ``runtime`` in minutes); a key a job does not need is absent.
"""

from __future__ import annotations

import math

from cofi.errors import InputError
from cofi.models.plan import (ANSWER_TOKENS, CUDA_OVERHEAD_GIB, DTYPE_BYTES, GIB, Architecture, evaluation_bytes,
                       importance_bytes, smallest_fit, trained_params)

# Dense bf16 peak TFLOP/s from the vendors' data sheets, for runtimes where cluster.gpu_tflops is null.
PEAK_TFLOPS = {"a100": 312, "h100": 989, "h200": 989, "b200": 2250, "l40s": 362, "l40": 181, "a6000": 155,
               "a40": 150, "a10": 125, "l4": 121, "v100": 125}
DEFAULT_TFLOPS = 312
# A training job's runtime: its FLOPs at this share of the peak, times the margin, plus the fixed part. Fine-tuning
# at these sizes reaches 30-50 % of the peak; assuming less, and doubling, keeps a slow node from being killed
# at the limit (a job that is still killed is resubmitted with the runtime times its attempt).
ASSUMED_MFU = 0.25
RUNTIME_MARGIN = 2.0
SETUP_MINUTES = 30  # start-up, loading the weights, the final save, checkpoints
HOST_GIB_PER_PROCESS = 8  # torch, CUDA's host side, the tokenized data and the tokenizer of one process
# Every key a training request may hold (a rule declares them all; a job's request leaves out what it does not need).
REQUEST_KEYS = ("gpu", "gpu_model", "cpus_per_gpu", "nodes", "tasks_per_node", "tasks", "gres", "cpus_per_task", "mpi",
                "mem_mb", "runtime")


class ClusterError(InputError):
    """A run the described cluster cannot hold; the message names the run and what to change."""


def check_described(site, executor: str | None) -> None:
    """A workflow sent to SLURM must say what the cluster's nodes have: without it, no job would ask for a GPU."""
    if executor == "slurm" and site.gpus_per_node is None:
        raise ClusterError("config key cluster.gpus_per_node: the workflow runs on SLURM but the site layer does not "
                           "describe the cluster (config: {cluster: {gpus_per_node: 8, gpu_memory_gib: 80, "
                           "gpu_model: a100}} in its profile, or gpus_per_node: 0 for CPU nodes; "
                           "workflow/profiles/slurm-site.example.yaml)")


def peak_tflops(site) -> float:
    if site.gpu_tflops is not None:
        return site.gpu_tflops
    return PEAK_TFLOPS.get((site.gpu_model or "").lower(), DEFAULT_TFLOPS)


def _gpus(site, gpus: int) -> dict:
    """The resources of a job on ``gpus`` GPUs: one node's (torchrun, one process per GPU), or whole nodes with one
    srun task per GPU (the launcher in rules/common.smk follows ``mpi``)."""
    per_node = site.gpus_per_node
    if gpus <= per_node:
        request = {"gpu": gpus, "cpus_per_gpu": site.cpus_per_gpu}
        if site.gpu_model:
            request["gpu_model"] = site.gpu_model
        return request
    nodes = math.ceil(gpus / per_node)
    model = f"{site.gpu_model}:" if site.gpu_model else ""
    tasks = {"tasks_per_node": per_node} if per_node > 1 else {"tasks": nodes}
    return {"nodes": nodes, **tasks, "gres": f"gpu:{model}{per_node}", "cpus_per_task": site.cpus_per_gpu,
            "mpi": "srun"}


def rank0_host_bytes(arch: Architecture, dtype: str, processes: int, sharded: bool, trained: int) -> int:
    """Host memory on the first node: process 0 reads the weights once in their stored dtype; a sharded run gathers
    them there at the end (float32 masters of the trained ones, the others as stored) before writing them; and every
    process on the node has its own runtime."""
    stored = DTYPE_BYTES[dtype]
    model = arch.params * stored
    if sharded:
        model = max(model, trained * max(stored, 4) + (arch.params - trained) * stored)
    return model + processes * HOST_GIB_PER_PROCESS * GIB


def training_flops(arch: Architecture, run, trained: int, max_len: int, checkpointing: bool) -> float:
    """An upper bound of the run's FLOPs: every optimizer step's tokens at full length, each through the forward
    (2 per parameter), the backward to the activations (2) and to the trained weights (2 per trained one), the
    recomputed forward under checkpointing, all twice with SAM."""
    tokens = run.train.steps * run.train.grad_accum * run.train.batch_size * max_len
    per_token = 4 * arch.params + 2 * trained + (2 * arch.params if checkpointing else 0)
    return tokens * per_token * (2 if run.sam_rho else 1)


def training_request(experiment, arch: Architecture, run, attempt: int = 1) -> dict:
    """What the finetune job of ``run`` asks for on the cluster ``experiment.cluster`` describes."""
    site, compute = experiment.cluster, experiment.compute
    trained = trained_params(arch, run, experiment.module_groups)
    if not trained:  # no training and no GPU (Wise-FT: the two files interpolated tensor by tensor)
        return {"cpus_per_task": 1, "mem_mb": 8 * 1024, "runtime": SETUP_MINUTES * attempt}
    gpus = smallest_fit(arch, run, experiment.module_groups, experiment.prompt.max_len, experiment.model.dtype,
                        compute.precision, site.gpu_memory_gib, compute.gradient_checkpointing, site.gpus_per_node,
                        compute.sharding, compute.accumulate_unsharded)
    if gpus is None:
        raise ClusterError(
            f"run {run.name}: cofi's plan finds no GPU count whose {site.gpu_memory_gib:g} GiB per GPU (config key "
            f"cluster.gpu_memory_gib) holds it under compute.sharding {compute.sharding} (see `python -m cofi plan`): "
            "use flat or auto sharding, compute.gradient_checkpointing, or a smaller batch_size")
    request = _gpus(site, gpus)
    processes_per_node = min(gpus, site.gpus_per_node)
    host = rank0_host_bytes(arch, experiment.model.dtype, processes_per_node, gpus > 1, trained)
    if site.node_memory_gib is not None and host > site.node_memory_gib * GIB:
        raise ClusterError(
            f"run {run.name}: its first node needs {host / GIB:.0f} GiB of host memory (the weights as read or "
            f"gathered, and {processes_per_node} processes), more than cluster.node_memory_gib {site.node_memory_gib:g}")
    flops = training_flops(arch, run, trained, experiment.prompt.max_len, compute.gradient_checkpointing)
    seconds = RUNTIME_MARGIN * flops / (gpus * peak_tflops(site) * 1e12 * ASSUMED_MFU)
    return {**request, "mem_mb": math.ceil(host / 2**20), "runtime": (SETUP_MINUTES + math.ceil(seconds / 60)) * attempt}


def check_requests(experiment, arch: Architecture) -> None:
    """Every configured run's request, computed once at start-up, so that a run the cluster cannot hold stops the
    workflow before any job (:class:`ClusterError` naming the run)."""
    for run in experiment.runs.values():
        training_request(experiment, arch, run)


def model_gpus(experiment, arch: Architecture, job: str) -> int:
    """GPUs for a job that loads the whole model: one; for ``job`` "evaluation" as many of a node's as its batch needs
    by the plan (it spreads the weights over them; a batch that still does not fit is halved by the job itself); for
    "importance" as many as its shards and parts need (each GPU runs batch / GPUs inputs at a time, or
    importance.micro_batch_size)."""
    site, dtype, length = experiment.cluster, experiment.model.dtype, experiment.prompt.max_len
    room = site.gpu_memory_gib * GIB - CUDA_OVERHEAD_GIB * GIB
    if job == "evaluation":
        needed = evaluation_bytes(arch, experiment.evaluation.batch_size, length, ANSWER_TOKENS, dtype)
        fits = lambda gpus: needed / gpus <= room  # noqa: E731
    elif job == "importance":
        options = experiment.importance
        fits = lambda gpus: importance_bytes(  # noqa: E731
            arch, options.micro_batch_size or -(-options.batch_size // gpus), length, dtype,
            experiment.compute.gradient_checkpointing, gpus) <= room
    else:
        return 1
    gpus = 1
    while gpus < site.gpus_per_node and not fits(gpus):
        gpus *= 2
    return min(gpus, site.gpus_per_node)


def model_request(experiment, arch: Architecture, job: str) -> dict:
    """The GPU keys of a job that loads the whole model (the profile gives its host memory and runtime)."""
    site = experiment.cluster
    request = {"gpu": model_gpus(experiment, arch, job), "cpus_per_gpu": site.cpus_per_gpu}
    if site.gpu_model:
        request["gpu_model"] = site.gpu_model
    return request


def launcher(resources) -> str:
    """How a job that may run several processes (finetune, importance) starts them, from its resources (a mapping
    with ``get``). With an ``mpi`` resource (a SLURM profile: ``mpi: srun``, ``nodes``, ``tasks_per_node``): that
    launcher, one task per GPU across the nodes (cofi reads SLURM's task variables). Else on one machine torchrun,
    one process per GPU (``gpu``) or per ``processes`` (CPU); else python. The processes shard the model (FSDP2).

    The task geometry goes to srun explicitly: the SLURM job-step plugin strips the allocation's SLURM_* variables
    before running the job's command, so a bare ``srun`` would start one task."""
    import shlex

    if resources.get("mpi"):
        geometry = [f"--{flag}={int(resources.get(key))}" for key, flag in
                    (("nodes", "nodes"), ("tasks_per_node", "ntasks-per-node"), ("tasks", "ntasks"))
                    if resources.get(key)]
        return " ".join([*(shlex.quote(part) for part in shlex.split(str(resources.get("mpi")))), *geometry, "python"])
    processes = max(int(resources.get("gpu", 0) or 0), int(resources.get("processes", 0) or 0))
    return f"torchrun --standalone --nproc-per-node {processes}" if processes > 1 else "python"
