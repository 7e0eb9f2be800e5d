"""Supervised fine-tuning loop: response-only loss, AdamW, warm-up + cosine decay, accumulation.

Kept as one readable loop (rather than ``transformers.Trainer``) because the anti-forgetting
methods act between backward and step, where a plain loop is easiest to follow. What a method or
a run option adds to a step comes in as :class:`~cofi.methods.base.Extension` objects (soft
masks, penalties, SAM); the loop knows none of them by name.
"""

from __future__ import annotations

import csv
import math
import time
from functools import partial
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import get_cosine_schedule_with_warmup

from cofi.training import distributed
from cofi.training.extension import Extension
from cofi.data.prompts import IGNORE_INDEX
from cofi.training.sharding import gradient_bytes, is_sharded, local, set_gradient_sync, whole
from cofi.config.settings import ComputeSettings, TrainSettings, to_dict

CURVE_COLUMNS = ["step", "loss", "penalty", "sam_loss", "lr", "tokens", "seconds", "kl", "vers_ce_delta"]


def keeps_a_response(example: dict) -> bool:
    """The example has a labelled token to learn after the first (one that ``max_len`` did not cut away)."""
    return any(label != IGNORE_INDEX for label in example["labels"][1:])


def tokenize_dataset(records, prompter, mask_prompt: bool, max_len: int) -> list[dict]:
    """Training examples of ``records`` (:meth:`cofi.data.prompts.Prompter.example`), those that keep a response token."""
    examples = [prompter.example(r, mask_prompt, max_len) for r in records]
    usable = [e for e in examples if keeps_a_response(e)]
    if not usable:
        raise ValueError(f"no training example keeps a response token within max_len={max_len}")
    return usable


def collate(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of the batch."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def example_batches(examples: list[dict], batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Endless epochs, each a fresh seeded permutation, cut into lists of examples; a short last batch is dropped."""
    generator = torch.Generator().manual_seed(seed)
    per_epoch = max(1, len(examples) // batch_size)
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        if len(examples) < batch_size:  # tiny datasets: sample with repetition to fill a batch
            order = (order * math.ceil(batch_size / len(examples)))[:batch_size]
        for b in range(per_epoch):
            yield [examples[i] for i in order[b * batch_size : (b + 1) * batch_size]]


def batch_stream(examples: list[dict], batch_size: int, pad_id: int, seed: int) -> Iterator[dict]:
    """Collated batches of :func:`example_batches`."""
    for batch in example_batches(examples, batch_size, seed):
        yield collate(batch, pad_id)


def token_loss_sum(model, batch: dict, objective=None) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled tokens (or ``objective``'s loss: an
    :meth:`Extension.token_loss <cofi.training.extension.Extension.token_loss>`), and their count."""
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    if logits.dtype in (torch.bfloat16, torch.float16):
        logits = logits.float()  # the loss in float32 (a float64 model keeps float64)
    count = int((targets != IGNORE_INDEX).sum())
    if objective is not None:
        labelled = targets != IGNORE_INDEX
        return objective(logits[:, :-1][labelled], targets[labelled], batch), count
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, count


class Precision:
    """The precision policy, decided once at setup: autocast dtype, fp16's loss scaler, and float32
    copies of the trained weights while training (half-precision AdamW updates vanish). A sharded
    model (:mod:`cofi.training.sharding`) keeps float32 shards of its trained weights and computes in bf16
    through FSDP2's mixed precision policy instead: no autocast, no copies."""

    DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

    def __init__(self, precision: str, device: torch.device, params: list[torch.Tensor], sharded: bool = False):
        if sharded and precision == "fp16":
            raise ValueError("fp16 with sharded training: use bf16 (FSDP2's loss scaling is not wired in here)")
        self.autocast_dtype = None if sharded else self.DTYPES[precision]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self._restore = []
        if self.autocast_dtype is not None:
            for p in params:
                if p.dtype in (torch.bfloat16, torch.float16):
                    self._restore.append((p, p.dtype))
                    p.data = p.data.float()

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def unscale(self, optimizer) -> None:
        if self.scaler:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()

    def finish(self) -> None:
        """The trained weights back in the dtype they were loaded in (what is saved)."""
        for p, dtype in self._restore:
            p.data = p.data.to(dtype)


class Trainer:
    """One run's optimisation state and step. Everything a resumed run needs is saved by
    :meth:`save_checkpoint` and comes back through :meth:`resume`, in one place. A sharded model
    (:mod:`cofi.training.sharding`; gradient checkpointing is then enabled before sharding) trains the same
    way: each process steps its own shards."""

    def __init__(self, model, settings: TrainSettings, seed: int, compute: ComputeSettings, extensions=()):
        self.model, self.settings, self.seed, self.extensions = model, settings, seed, list(extensions)
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named]
        self.sharded = any(is_sharded(p) for p in self.params)
        self.device = local(next(model.parameters())).device
        self.precision = Precision(compute.precision, self.device, self.params, self.sharded)
        self.accumulate_unsharded = compute.accumulate_unsharded
        self.gradient_mb_after_first_micro_batch = None  # sharded: what accumulation holds (cofi.training.sharding)
        if compute.gradient_checkpointing and not self.sharded:
            enable_gradient_checkpointing(model)
        # One fused kernel on GPUs (the step of a 1B model is otherwise memory-bound loops); torch's default elsewhere.
        self.optimizer = torch.optim.AdamW(self.params, lr=settings.lr, weight_decay=settings.weight_decay,
                                           fused=True if self.device.type == "cuda" else None)
        for extension in self.extensions:
            extension.attach(self.optimizer)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, round(settings.warmup_ratio * settings.steps),
                                                         settings.steps)
        self.has_penalty = any(type(e).penalty is not Extension.penalty for e in self.extensions)
        objectives = [e.token_loss for e in self.extensions if type(e).token_loss is not Extension.token_loss]
        if len(objectives) > 1:
            raise ValueError("two extensions replace the token loss; a run takes one objective")
        self.objective = objectives[0] if objectives else None

    def _compute(self, micro_batches: list[dict], n_tokens: int) -> dict:
        """Gradients of the step's objective — token-mean cross-entropy over the global batch's
        micro-batches, plus the penalties once — unscaled and summed over processes. The fields it returns are
        tensors on the device: reading them waits for the step, which the loop does once per log line."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(micro_batches):
            if self.sharded:
                set_gradient_sync(self.model, i == len(micro_batches) - 1, self.accumulate_unsharded)
            with self.precision.autocast():
                loss_sum, _ = token_loss_sum(self.model, distributed.shard(batch), self.objective)
            self.precision.backward(loss_sum / n_tokens)
            total += loss_sum.detach().double()
            if self.sharded and self.gradient_mb_after_first_micro_batch is None:
                self.gradient_mb_after_first_micro_batch = round(gradient_bytes(self.model) / 2**20, 3)
        self.precision.unscale(self.optimizer)
        penalty = 0.0
        terms = [term for e in self.extensions if (term := e.penalty()) is not None]
        if terms:  # on the weights (each process its shards): added after the reduction, once
            term = sum(terms)
            term.backward()
            penalty = whole(term.detach())
        return {"loss": distributed.summed(total) / n_tokens, "penalty": penalty}

    def step(self, micro_batches: list[dict]) -> dict:
        """One optimizer step on ``micro_batches``; returns the curve's fields for it."""
        # Normalise by the tokens of the whole accumulated global batch, so accumulation and
        # processes match one big batch.
        n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro_batches)
        compute = partial(self._compute, micro_batches, n_tokens)
        for extension in self.extensions:  # an extension may take the gradients again (SAM)
            compute = partial(extension.gradients, compute, self.zero_grad)
        fields = compute()
        for extension in self.extensions:
            extension.after_backward()
        if self.settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.settings.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.precision.step(self.optimizer)
        self.scheduler.step()
        self.zero_grad()
        return {**fields, "lr": lr, "tokens": n_tokens}

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def save_checkpoint(self, directory, step: int, identity: dict, curve: list, seconds: float) -> None:
        """Weights, optimizer, scheduler, loss scaler, RNG, the curve so far and the time spent (every process)."""
        from cofi.training import checkpoint

        rng = {"cpu": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        scaler = self.precision.scaler
        checkpoint.save(directory, step, identity, self, {
            "scheduler": self.scheduler.state_dict(), "rng": rng, "scaler": scaler.state_dict() if scaler else None,
            "curve": curve, "seconds": seconds})

    def resume(self, directory, identity: dict) -> tuple[Path, dict] | None:
        """The newest checkpoint of this ``identity`` loaded into the trainer: (its path, the loop's state)."""
        from cofi.training import checkpoint

        path = checkpoint.latest(directory, identity)
        if path is None:
            return None
        state = checkpoint.load(path, self)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.precision.scaler and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        return path, state


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant, so a frozen lower part still passes gradients up to the first trained layer."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    options = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x's name for it
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
    base.config.use_cache = False


def _tensorboard(directory: Path):
    """TensorBoard's event-file writer (as LLaMA-Factory's ``report_to: tensorboard``)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(directory))


def _read(fields: dict) -> dict:
    """A step's fields with its device tensors read as floats."""
    return {key: float(value) if torch.is_tensor(value) else value for key, value in fields.items()}


def _curve_row(step: int, fields: dict, elapsed: float) -> list:
    def optional(name: str, form: str) -> str:  # measured on some steps only
        return "" if fields.get(name) is None else format(fields[name], form)

    return [step, f"{fields['loss']:.6f}", f"{fields['penalty']:.6g}", optional("sam_loss", ".6f"),
            f"{fields['lr']:.6g}", fields["tokens"], f"{elapsed:.3f}", optional("kl", ".6g"),
            optional("vers_ce_delta", ".6g")]


def train(model, examples: list[dict], settings: TrainSettings, seed: int, pad_id: int, curve_path: str | Path, *,
          compute: ComputeSettings = ComputeSettings(), extensions=(), batches: Iterator[dict] | None = None,
          log=print, checkpoint_dir: str | Path | None = None, identity: dict | None = None,
          forgetting=None) -> dict:
    """Train the parameters that require grad; write a loss curve CSV; return a summary.

    ``extensions`` act in every step (:class:`~cofi.methods.base.Extension`). ``batches`` replaces
    the default seeded stream over ``examples`` (e.g. replay mixing); it yields global batches, of
    which each process (under ``torchrun``) trains its share. With ``compute.checkpoint_every`` > 0
    and a ``checkpoint_dir``, a checkpoint is written every that many steps, and a checkpoint there
    of the same ``identity`` (what the run is) is resumed (:mod:`cofi.training.checkpoint`). ``forgetting``
    (:class:`cofi.training.forgetting.ForgettingProbe`) measures KL to the starting model and the versatility
    cross-entropy's change every ``forgetting.every`` steps, and stops the run where its budget is passed.
    """
    from cofi.training.forgetting import Monitor, reference_file
    from cofi.training import checkpoint

    torch.manual_seed(seed)
    if distributed.active() and settings.batch_size < distributed.world_size():
        raise ValueError(f"batch_size {settings.batch_size} is smaller than the {distributed.world_size()} processes")
    trainer = Trainer(model, settings, seed, compute, extensions)
    stream = batches if batches is not None else batch_stream(examples, settings.batch_size, pad_id, seed)
    identity = {**(identity or {}), "train": {k: v for k, v in to_dict(settings).items() if k != "log_every"},
                "seed": seed, "precision": compute.precision, "gradient_checkpointing": compute.gradient_checkpointing,
                "processes": distributed.world_size()}
    checkpointing = bool(checkpoint_dir and compute.checkpoint_every)
    rows: list[list] = []
    first_step, spent = 1, 0.0
    resume = trainer.resume(checkpoint_dir, identity) if checkpointing else None
    if resume is not None:
        path, state = resume
        rows, spent, first_step = state["curve"], state["seconds"], state["step"] + 1
        for _ in range(state["step"] * settings.grad_accum):  # the data position: replay the seeded stream
            next(stream)
        log(f"resuming from {path} (step {state['step']} of {settings.steps})")
    elif checkpointing and (why := checkpoint.mismatch(checkpoint_dir, identity)):
        log(why)
    monitor = None
    if forgetting is not None and forgetting.every:  # before the first step: the model is still the one it started as
        monitor = Monitor(forgetting, model, trainer.precision.autocast)
        stored = reference_file(checkpoint_dir) if checkpointing else None
        if resume is None and stored is not None:
            stored.unlink(missing_ok=True)  # another run's: this one starts afresh
        monitor.reference(stored, first_step - 1)

    model.train()
    log(f"training {sum(p.numel() for p in trainer.params):,} parameters for {settings.steps} steps"
        + (f" on {distributed.world_size()} processes" if distributed.active() else "")
        + f": {to_dict(settings)}, seed {seed}, {compute.precision}")
    started = time.perf_counter() - spent
    fields = {"loss": float("nan")}
    board = _tensorboard(Path(curve_path).parent / "tensorboard") if compute.tensorboard and distributed.is_main() else None
    pending: list[tuple[int, dict, float]] = []  # steps whose fields are still tensors on the device

    def settle() -> dict:
        """The pending steps' fields read (one wait for the device) into curve rows and TensorBoard scalars;
        returns the last step's."""
        read = {}
        for step, values, elapsed in pending:
            read = _read(values)
            rows.append(_curve_row(step, read, elapsed))
            if board is not None:
                for name in ("loss", "lr", "penalty", "sam_loss", "tokens", "kl", "vers_ce_delta"):
                    if read.get(name) is not None:
                        board.add_scalar(f"train/{name}", read[name], step)
        pending.clear()
        return read

    stopped_at = None
    for step in range(first_step, settings.steps + 1):
        stepped = trainer.step([next(stream) for _ in range(settings.grad_accum)])
        if monitor is not None and monitor.due(step, settings.steps):
            stepped = {**stepped, **monitor.measure(step)}
            if stepped.pop("over_budget", False):
                stopped_at = step
        logging = step % settings.log_every == 0 or step == settings.steps or stopped_at is not None
        saving = checkpointing and step % compute.checkpoint_every == 0 and step < settings.steps
        if logging or saving:
            stepped = _read(stepped)  # waits for the device, so this step's time below is its end
        elapsed = time.perf_counter() - started
        pending.append((step, stepped, elapsed))
        if logging or saving:
            fields = settle()
        if logging:
            extra = (f"  penalty {fields['penalty']:.4g}" if trainer.has_penalty else "") + (
                f"  loss at w+eps {fields['sam_loss']:.6f}" if "sam_loss" in fields else "")
            remaining = elapsed / step * (settings.steps - step)
            extra += f"  KL {fields['kl']:.4g}  vers CE {fields['vers_ce_delta']:+.4g}" if "kl" in fields else ""
            log(f"step {step}/{settings.steps}  loss {fields['loss']:.4f}{extra}  lr {fields['lr']:.2e}  "
                f"{elapsed:.1f}s  (ETA {remaining:.0f}s)")
        if stopped_at is not None:
            log(f"KL {fields['kl']:.4g} passed training.max_kl {forgetting.max_kl:g} at step {step}: stopping, with the "
                f"weights of step {monitor.kept_step}, the last measurement under it")
            break
        if saving:
            trainer.save_checkpoint(checkpoint_dir, step, identity, rows, elapsed)
    if board is not None:
        board.close()
    if distributed.is_main():
        Path(curve_path).parent.mkdir(parents=True, exist_ok=True)
        with open(curve_path, "w", newline="") as handle:
            curve = csv.writer(handle)
            curve.writerow(CURVE_COLUMNS)
            curve.writerows(rows)
    trainer.precision.finish()
    model.eval()
    summary = {"steps": settings.steps, "seconds": time.perf_counter() - started, "final_loss": fields["loss"],
               "resumed_at_step": first_step - 1 if resume is not None else None}
    if monitor is not None:
        summary["forgetting"] = {"measurements": monitor.measurements, "seconds": monitor.seconds,
                                 "stopped_at_step": stopped_at, "kept_step": monitor.kept_step}
    if trainer.sharded:
        summary["gradient_mb_after_first_micro_batch"] = distributed.gather(trainer.gradient_mb_after_first_micro_batch)
    if trainer.device.type == "cuda":
        summary["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**30
    return summary
