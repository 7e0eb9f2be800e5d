"""The fine-tuning job: one run of one method on one task at one seed, saved as a model directory.

The method's setup (which parameters train, its extensions, its data mixture), the run's options
(SAM), then the shared training loop; a method that does not train (Wise-FT) builds its weights
instead. Under ``torchrun`` every process trains its share of each batch and the first one writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cofi.experiment import Run
from cofi.settings import ComputeSettings, PromptSettings


@dataclass(frozen=True)
class FinetuneJob:
    model: str  # the base model directory
    train_data: str  # the task's training JSONL
    out: str  # the fine-tuned model directory
    curve: str  # the loss curve CSV
    run: Run
    seed: int
    prompt: PromptSettings
    compute: ComputeSettings = ComputeSettings()
    dtype: str = "float32"
    trust_remote_code: bool = False
    inputs: dict[str, str] = field(default_factory=dict)  # the method's needs by name
    checkpoint_dir: str | None = None  # resumable checkpoints (compute.checkpoint_every)
    log: object = print


def finetune(job: FinetuneJob) -> dict:
    """Train (or build) and save the run's model; returns the run record written as ``cofi_run.json``."""
    import torch

    from cofi import checkpoint, distributed
    from cofi.data import load_records
    from cofi.io import write_json
    from cofi.methods import METHODS, Inputs
    from cofi.modeling import load_model, resolve_device, save_model
    from cofi.sam import SAM
    from cofi.train import tokenize_dataset, train

    run, prompt = job.run, job.prompt
    job.compute.check_run(run.sam_rho is not None, f"run {run.name}")
    method = METHODS[run.method]
    device = resolve_device(job.compute.device)
    distributed.init(device)
    log = job.log if distributed.is_main() else (lambda _: None)
    load = lambda path: load_model(path, job.trust_remote_code, job.dtype, str(device))  # noqa: E731
    model, tokenizer = load(job.model)
    inputs = Inputs(seed=job.seed, log=log, load_model=load, paths=dict(job.inputs),
                    tokenize=lambda records: tokenize_dataset(records, tokenizer, prompt.template, prompt.mask_prompt,
                                                              prompt.max_len))
    out = Path(job.out)
    record = {"run": run.spec(), "method": run.method, "params": run.params, "seed": job.seed}
    if not method.trains:
        started = time.perf_counter()
        model = method.build(model, run, inputs)
        if distributed.is_main():
            Path(job.curve).write_text("step,loss,penalty,sam_loss,lr,tokens,seconds\n")  # no training, no curve
        record |= {"trainable": [], "steps": 0, "seconds": time.perf_counter() - started}
    else:
        torch.manual_seed(job.seed)  # adapters and other new weights start from the run's seed
        setup = method.setup(model, run, inputs)
        log(f"method {run.method}: {len(setup.trainable)} parameter tensors train on {device}")
        examples = inputs.tokenize(load_records(job.train_data))
        extensions = list(setup.extensions)
        if run.sam_rho:
            log(f"SAM with rho {run.sam_rho}: two forward/backward passes per step")
            extensions.append(SAM(run.sam_rho))
        batches = setup.batches(examples, run.train.batch_size, tokenizer.pad_token_id, job.seed) if setup.batches else None
        # A checkpoint resumes only into the same run: same base model, data, run and inputs.
        identity = {"model": str(job.model), "train_data": str(job.train_data), "run": run.spec(),
                    "inputs": dict(job.inputs), "prompt": prompt.__dict__}
        summary = train(setup.model, examples, run.train, job.seed, tokenizer.pad_token_id, job.curve,
                        compute=job.compute, extensions=extensions, batches=batches, log=log,
                        checkpoint_dir=job.checkpoint_dir, identity=identity)
        if distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            model = setup.finish(setup.model, out)
        record |= {"trainable": setup.trainable, **summary, "processes": distributed.world_size(), "device": str(device),
                   "precision": job.compute.precision}
    if distributed.is_main():
        save_model(model, tokenizer, out)
        write_json(out / "cofi_run.json", record)
        if job.checkpoint_dir:
            checkpoint.remove(job.checkpoint_dir)  # the outputs are complete: the checkpoints have served
        log(f"saved {run.name} ({run.method}) to {out}")
    distributed.barrier()
    distributed.finish()
    return record
