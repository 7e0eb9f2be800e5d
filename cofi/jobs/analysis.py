"""Jobs on one model that are not evaluation: unit importance (for the soft masks) and the loss landscape."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cofi.io import compute_line
from cofi.config.settings import PromptSettings
from cofi.jobs.interface import OnDevice, option


@dataclass(frozen=True, kw_only=True)
class ImportanceJob(OnDevice):
    """Estimate unit importance (heads, FFN units) for the soft masks."""

    model: str = option("the model directory")
    data: str = option("JSONL whose inputs (instruction + input) are used, unlabeled")
    options: dict = option("dropout, batches, batch_size, signed, seed; micro_batch_size, gradient_checkpointing if "
                           "set (importance)")
    prompt: PromptSettings = option("the prompt settings")
    out: str = option("output .safetensors")
    plot: str = option("output heatmap (.png)")

    def execute(self) -> None:
        importance(self)


def importance(job: ImportanceJob) -> None:
    """Unit importance of the job's model, written with its heatmap. Under ``torchrun`` (or srun tasks) with several
    processes the model is sharded with FSDP2 like a training job's (process 0 reads the weights once), each process
    runs its parts of every batch, and the mask gradients are summed over the processes before their absolute value
    (:func:`cofi.methods.cofitune.importance.accumulate_importance`)."""
    from cofi.training import distributed
    from cofi.data.records import load_records
    from cofi.methods.cofitune.importance import accumulate_importance, plot_importance, prompt_batches, save_importance
    from cofi.models.loading import load_model, load_tokenizer, resolve_device
    from cofi.data.prompts import Prompter
    from cofi.config.settings import to_dict

    options = job.options
    distributed.adopt_launcher()
    device = resolve_device(job.device)
    distributed.init(device)
    checkpointing = options.get("gradient_checkpointing", False)
    if distributed.active():
        model, tokenizer = _sharded(job, device, checkpointing), load_tokenizer(job.model, job.trust_remote_code)
        checkpointing = False  # enabled before sharding
    else:
        model, tokenizer = load_model(job.model, job.trust_remote_code, job.dtype, job.device)
    batches = prompt_batches(load_records(job.data), Prompter.of(tokenizer, job.prompt), options["batch_size"],
                             options["batches"], job.prompt.max_len, options["seed"])
    started = time.perf_counter()
    raw = accumulate_importance(model, batches, options["dropout"], options["signed"], options["seed"],
                                options.get("micro_batch_size"), checkpointing, process=distributed.rank(),
                                processes=distributed.world_size(), reduce=distributed.summed)
    computed = time.perf_counter() - started
    if distributed.is_main():
        recorded = {**options, "data": job.data, "model": job.model, "prompt": to_dict(job.prompt)}
        values = save_importance(job.out, raw, model.config, recorded)
        plot_importance(values, job.plot, title=f"unit importance from {Path(job.data).name}")
        job.log(f"importance from {sum(len(b['input_ids']) for b in batches)} inputs in "
                f"{time.perf_counter() - started:.1f}s" + (f" over {distributed.world_size()} processes"
                                                           if distributed.active() else "") + "; "
                + ", ".join(f"{k} mean {v.mean():.3f}" for k, v in values.items()))
        job.log(f"wrote {job.out} and {job.plot}")
        job.log(compute_line(computed))
    distributed.barrier()
    distributed.finish()


def _sharded(job: ImportanceJob, device, checkpointing: bool):
    """The model as FSDP2 shards in its loaded dtype: every process builds it without weights, process 0 reads them."""
    from cofi.training import distributed, sharding
    from cofi.models.loading import DTYPES, load_model, skeleton
    from cofi.training.loop import enable_gradient_checkpointing

    model = skeleton(job.model, DTYPES[job.dtype], job.trust_remote_code)
    stored = load_model(job.model, job.trust_remote_code, job.dtype, "cpu")[0] if distributed.is_main() else None
    if checkpointing:
        enable_gradient_checkpointing(model)
    sharding.shard_model(model, distributed.mesh(device, hybrid=False), "fp32")  # no casts: the loaded dtype
    sharding.broadcast_full_state(model, stored.state_dict() if stored is not None else None, device)
    return model


@dataclass(frozen=True, kw_only=True)
class LandscapeJob(OnDevice):
    """Loss landscape of a model along filter-normalised random directions."""

    model: str = option("the model directory")
    task_data: str = option("speciality JSONL (a seeded sample is the fixed batch)")
    vers_suites: dict = option('{name: {"path", "type"}}: the fixed versatility batch')
    options: dict = option("span, points_1d, points_2d, radius, batch_size, direction_seed, data_seed (landscape)")
    labels: dict = option('{"run", "task", "seed"} stored with the result')
    prompt: PromptSettings = option("the prompt settings")
    out: str = option("result JSON")
    plot: str = option("figure path without suffix (PNG and PDF)")

    def execute(self) -> dict:
        return landscape(self)


def landscape(job: LandscapeJob) -> dict:
    """Loss landscape of one model on a fixed speciality and a fixed versatility batch."""
    from cofi.data.records import read_jsonl
    from cofi.io import write_json
    from cofi.analysis.landscape import batch_loss, fixed_batches, landscape as probe, plot_landscape
    from cofi.models.loading import load_model
    from cofi.data.prompts import Prompter
    from cofi.evaluation.tasks import TASK_TYPES

    options = job.options
    model, tokenizer = load_model(job.model, job.trust_remote_code, job.dtype, job.device)
    model.eval()
    vers_records = [TASK_TYPES[s["type"]].read(s["path"]) for s in job.vers_suites.values()]
    batches = fixed_batches(read_jsonl(job.task_data), vers_records, Prompter.of(tokenizer, job.prompt),
                            job.prompt.mask_prompt, job.prompt.max_len, options["batch_size"], options["data_seed"],
                            tokenizer.pad_token_id)
    started = time.perf_counter()
    result = probe(model, {name: batch_loss(batch) for name, batch in batches.items()}, options["span"],
                   options["points_1d"], options["points_2d"], options["radius"], options["direction_seed"], log=job.log)
    computed = time.perf_counter() - started
    result = {**job.labels, "model": job.model, "options": options, **result}
    write_json(job.out, result, indent=None)
    plot_landscape(result, f"{result['run']} on {result['task']} (seed {result['seed']})", job.plot)
    for key, figures in result["sharpness"].items():
        job.log(f"{key} batch: loss {result['centre'][key]:.4f} at the centre; "
                + ", ".join(f"{name} {value:.4g}" for name, value in figures.items()))
    job.log(f"{len(result['alphas_1d']) + len(result['alphas_2d']) ** 2} grid points in {computed:.1f}s")
    job.log(compute_line(computed))
    return result
