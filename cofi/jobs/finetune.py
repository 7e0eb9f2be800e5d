"""The fine-tuning job: one run of one method on one task at one seed, saved as a model directory.

The method's setup (which parameters train, its extensions, its data mixture), the run's options
(SAM), then the shared training loop; a method that does not train (Wise-FT) builds its weights
instead. Under ``torchrun`` with several processes the model is sharded with FSDP2
(:mod:`cofi.training.sharding`): only process 0 reads the weights, every process trains its share of each
batch on its shards, and process 0 gathers and writes the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cofi.config.runs import Run
from cofi.io import compute_line
from cofi.config.settings import ComputeSettings, PromptSettings
from cofi.jobs.interface import LoadsModel, option


@dataclass(frozen=True, kw_only=True)
class FinetuneJob(LoadsModel):
    """Fine-tune a model on a speciality task: one run at one seed."""

    model: str = option("the base model directory")
    train_data: str = option("the task's training JSONL", flag="train")
    run: Run = option("the run: name, method, params, train, sam_rho, equal_compute (python -m cofi methods lists "
                      "the methods)", flag="run-spec")
    seed: int = option("seed of the data order and initialisation", 0)
    prompt: PromptSettings = option("the prompt settings")
    compute: ComputeSettings = option("how it computes: device, precision, gradient_checkpointing, checkpoint_every, "
                                      "...", ComputeSettings())
    inputs: dict = option("{name: path} of the files the method needs (python -m cofi methods lists them)", {})
    forgetting: dict | None = option('with training.kl_every: what it measures on, {"task": {"path", "type"}, "vers": '
                                     '{dimension: {"path", "type"}}} (validation files)', None)
    checkpoint_dir: str | None = option("where checkpoints go and are resumed from (removed when the run is done)", None)
    out: str = option("output model directory")
    curve: str = option("loss curve CSV")

    @classmethod
    def device_of(cls, values: dict) -> str:
        return str((values.get("compute") or {}).get("device", ComputeSettings.device))

    def execute(self) -> dict:
        return finetune(self)


def _hybrid(job: FinetuneJob, run: Run, device, log) -> bool:
    """``compute.sharding`` for this job across nodes: hybrid or flat as set; auto asks the plan whether the run fits
    one node's GPUs (on CPUs, which have no such limit here, hybrid)."""
    from cofi.training import distributed

    sharding = job.compute.sharding
    if sharding == "auto" and distributed.nodes() > 1 and device.type == "cuda":
        import torch

        from cofi.models.plan import Architecture, mesh_for

        gpu_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        sharding = mesh_for(Architecture.load(job.model), run, run.params.get("groups") or {}, distributed.world_size(),
                            job.prompt.max_len, job.dtype, job.compute.precision, gpu_gib,
                            job.compute.gradient_checkpointing, distributed.world_size() // distributed.nodes(), "auto",
                            job.compute.accumulate_unsharded)
        log(f"compute.sharding auto: {sharding} (the plan at {gpu_gib:.0f} GiB per GPU)")
    return sharding != "flat"


def finetune(job: FinetuneJob) -> dict:
    """Train (or build) and save the run's model; returns the run record written as ``cofi_run.json``."""
    import torch

    from cofi.training import checkpoint, distributed, sharding
    from cofi.data.records import load_records
    from cofi.io import write_json
    from cofi.methods import METHODS, Inputs
    from cofi.models.loading import DTYPES, load_model, load_tokenizer, resolve_device, save_model, skeleton
    from cofi.data.prompts import Prompter
    from cofi.training.sam import SAM
    from cofi.models.weights import save_beside_weights
    from cofi.training.loop import CURVE_COLUMNS, enable_gradient_checkpointing, tokenize_dataset, train

    run, prompt = job.run, job.prompt
    job.compute.check_run(run.sam_rho is not None, f"run {run.name}")
    method = METHODS[run.method]
    distributed.adopt_launcher()  # one of several srun tasks: RANK, LOCAL_RANK, ... from SLURM's variables
    device = resolve_device(job.compute.device)
    distributed.init(device)
    sharded = distributed.active() and method.trains
    main = distributed.is_main()
    log = job.log if main else (lambda _: None)
    dtype = sharding.master_dtype(DTYPES[job.dtype]) if sharded else DTYPES[job.dtype]
    load = lambda path: load_model(path, job.trust_remote_code, job.dtype, str(device))  # noqa: E731
    stored = None
    if sharded:  # every process builds the model without weights; process 0 also reads them, once, on the CPU
        model, tokenizer = skeleton(job.model, dtype, job.trust_remote_code), load_tokenizer(job.model, job.trust_remote_code)
        if main:
            stored, _ = load_model(job.model, job.trust_remote_code, job.dtype, "cpu")
    elif method.trains:
        model, tokenizer = load(job.model)
    elif main:  # a method that builds its weights from the files (Wise-FT) loads no model
        tokenizer = load_tokenizer(job.model, job.trust_remote_code)
    inputs = Inputs(seed=job.seed, log=log, load_model=load, paths=dict(job.inputs),
                    tokenize=lambda records: tokenize_dataset(records, Prompter.of(tokenizer, prompt), prompt.mask_prompt,
                                                              prompt.max_len))
    out = Path(job.out)
    record = {"run": run.spec(), "method": run.method, "params": run.params, "seed": job.seed}
    if not method.trains:
        if main:
            started = time.perf_counter()
            method.build(job.model, out, run, inputs, DTYPES[job.dtype])
            save_beside_weights(job.model, tokenizer, out, DTYPES[job.dtype], job.trust_remote_code)
            Path(job.curve).write_text(",".join(CURVE_COLUMNS) + "\n")  # no training, no curve
            record |= {"trainable": [], "steps": 0, "seconds": time.perf_counter() - started}
            log(compute_line(record["seconds"]))
    else:
        torch.manual_seed(job.seed)  # adapters and other new weights start from the run's seed
        full = None
        if stored is not None:  # the weights as stored, and the method's new ones (LoRA's adapters) drawn from the seed
            full = method.setup(stored, run, _quiet(inputs)).model.state_dict()
        setup = method.setup(model, run, inputs)
        trained = setup.model
        log(f"method {run.method}: {len(setup.trainable)} parameter tensors train on {device}"
            + (f", sharded over {distributed.world_size()} processes" if sharded else ""))
        if sharded:
            record["sharded_dtypes"] = _keep_frozen_in_compute_dtype(trained, job.compute.precision)
            if job.compute.gradient_checkpointing:
                enable_gradient_checkpointing(trained)
            mesh = distributed.mesh(device, hybrid=_hybrid(job, run, device, log))
            record["mesh"] = dict(zip(mesh.mesh_dim_names, mesh.shape))
            sharding.shard_model(trained, mesh, job.compute.precision)
            sharding.broadcast_full_state(trained, full, device)
            del full, stored
            record["loading_peak_host_memory_mb"] = distributed.gather(round(distributed.host_memory_mb(), 1))
        examples = inputs.tokenize(load_records(job.train_data))
        extensions = list(setup.extensions)
        if run.sam_rho:
            log(f"SAM with rho {run.sam_rho}: two forward/backward passes per step")
            extensions.append(SAM(run.sam_rho))
        batches = setup.batches(examples, run.train.batch_size, tokenizer.pad_token_id, job.seed) if setup.batches else None
        # A checkpoint resumes only into the same run: same base model, data, run and inputs.
        identity = {"model": str(job.model), "train_data": str(job.train_data), "run": run.spec(),
                    "inputs": dict(job.inputs), "prompt": prompt.__dict__}
        began = time.perf_counter()  # this process's training (a resumed run's summary counts earlier ones too)
        summary = train(trained, examples, run.train, job.seed, tokenizer.pad_token_id, job.curve,
                        compute=job.compute, extensions=extensions, batches=batches, log=log,
                        checkpoint_dir=job.checkpoint_dir, identity=identity,
                        forgetting=forgetting_probe(job, Prompter.of(tokenizer, prompt), tokenizer.pad_token_id))
        log(compute_line(time.perf_counter() - began))
        finishing = setup
        if sharded:
            trained, finishing = _gathered(job, method, run, inputs, trained, DTYPES[job.dtype])
        if main:
            out.mkdir(parents=True, exist_ok=True)
            model = finishing.finish(trained, out)
        record |= {"trainable": setup.trainable, **summary, "processes": distributed.world_size(), "device": str(device),
                   "precision": job.compute.precision, "sharded": sharded,
                   "peak_host_memory_mb": distributed.gather(round(distributed.host_memory_mb(), 1))}
    if main:
        if method.trains:
            save_model(model, tokenizer, out)
        write_json(out / "cofi_run.json", record)
        if job.checkpoint_dir:
            checkpoint.remove(job.checkpoint_dir)  # the outputs are complete: the checkpoints have served
        log(f"saved {run.name} ({run.method}) to {out}")
    distributed.barrier()
    distributed.finish()
    return record


def forgetting_probe(job: FinetuneJob, prompter, pad_id: int):
    """The fixed samples ``training.kl_every`` measures on: the first ``kl_items`` examples of the task's validation
    file, and as many of the versatility suites' (taken from each in turn), each with its reference response (a
    multiple-choice item's right choice); prompts masked, as the loss sees them. None for a run that does not watch."""
    from cofi.evaluation.tasks import TASK_TYPES
    from cofi.training import distributed
    from cofi.training.forgetting import ForgettingProbe
    from cofi.training.loop import collate, keeps_a_response

    settings = job.run.train
    if not settings.kl_every:
        return None
    if not job.forgetting:
        raise ValueError("training.kl_every needs the samples it measures on (the job's forgetting option)")

    def examples(records):
        made = (prompter.example(r, mask_prompt=True, max_len=job.prompt.max_len) for r in records if r["output"])
        return [e for e in made if keeps_a_response(e)][:settings.kl_items]

    def batches(made):
        size = settings.batch_size
        return [collate(made[i:i + size], pad_id) for i in range(0, len(made), size)
                if len(made[i:i + size]) >= distributed.world_size()]  # every process gets a row

    read = lambda suite: TASK_TYPES[suite["type"]].read(suite["path"])  # noqa: E731
    suites = [examples(read(suite)) for suite in job.forgetting["vers"].values()]
    in_turn = [e for row in zip(*suites) for e in row] if suites else []
    return ForgettingProbe(batches(examples(read(job.forgetting["task"]))), batches(in_turn[:settings.kl_items]),
                           settings.kl_every, settings.max_kl)


def _quiet(inputs):
    """The method's inputs without its log (a second setup would repeat every line)."""
    return type(inputs)(**{**inputs.__dict__, "log": lambda _: None})


def _keep_frozen_in_compute_dtype(model, precision: str) -> dict[str, list[str]]:
    """Under bf16/fp16 only the trained weights need float32 masters: the frozen ones are only ever gathered in the
    compute dtype, so they are kept in it (half the bytes; FSDP2 asks a uniform dtype of the trained ones only).
    Returns the dtypes of each kind, for the run record."""
    from cofi.training.loop import Precision

    compute = Precision.DTYPES[precision]
    for parameter in model.parameters():
        if compute is not None and not parameter.requires_grad and parameter.is_floating_point():
            parameter.data = parameter.data.to(compute)  # on the meta device: nothing is allocated yet
    kinds = {"trained": set(), "frozen": set()}
    for parameter in model.parameters():
        kinds["trained" if parameter.requires_grad else "frozen"].add(str(parameter.dtype).removeprefix("torch."))
    return {kind: sorted(dtypes) for kind, dtypes in kinds.items()}


def _gathered(job: FinetuneJob, method, run: Run, inputs, sharded_model, dtype):
    """The trained model whole, on process 0's CPU: its gathered state loaded (in place, no copy) into a
    weightless model of the same structure (the method's setup again, e.g. for LoRA's adapters)."""
    import torch

    from cofi.training import distributed, sharding

    full = sharding.gather_full_state(sharded_model)  # every process takes part; process 0 receives
    if not distributed.is_main():
        return None, None
    from cofi.models.loading import skeleton

    setup = method.setup(skeleton(job.model, sharding.master_dtype(dtype), job.trust_remote_code), run, _quiet(inputs))
    setup.model.load_state_dict(full, assign=True)
    sharding.restore_non_persistent_buffers(setup.model, torch.device("cpu"))
    return setup.model.to(dtype), setup
