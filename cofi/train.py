"""Supervised fine-tuning loop: response-only loss, AdamW, warm-up + cosine decay, accumulation.

Kept as one readable loop (rather than ``transformers.Trainer``) because the anti-forgetting
methods need to act between backward and step, where a plain loop is easiest to follow.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import get_cosine_schedule_with_warmup

from cofi import distributed
from cofi.prompts import IGNORE_INDEX, encode_example


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """Optimisation budget and schedule. ``steps`` counts optimizer steps."""

    lr: float = 1e-3
    steps: int = 300
    batch_size: int = 32
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mask_prompt: bool = True
    max_len: int = 64
    seed: int = 0
    log_every: int = 25
    sam_rho: float = 0.0  # > 0: sharpness-aware minimisation with this radius (cofi.sam)
    # How to compute, not what: set from the config's `compute` section, not part of a run's params.
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast with float32 trained weights (fp16: loss scaling)
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0  # > 0: a resumable checkpoint every this many steps (cofi.checkpoint)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {sorted(PRECISIONS)}")
        if self.precision == "fp16" and self.sam_rho > 0:
            raise ValueError("precision fp16 with SAM: the loss scaler and SAM's ascent do not mix; use bf16")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """From a run's params: training keys, and ``sam: {rho: ...}`` where the run uses SAM."""
        known = {f for f in cls.__dataclass_fields__}
        values = {**values, "sam_rho": (values.get("sam") or {}).get("rho", values.get("sam_rho", 0.0))}
        return cls(**{k: v for k, v in values.items() if k in known})


def tokenize_dataset(records, tokenizer, template: str, mask_prompt: bool, max_len: int) -> list[dict]:
    examples = [encode_example(tokenizer, r, template, mask_prompt, max_len) for r in records]
    usable = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"][1:])]
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


def token_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over labelled tokens, and their count."""
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, int((targets != IGNORE_INDEX).sum())


class _Step:
    """One optimizer step's gradient computation: autocast, loss scaling, and the sum over processes."""

    def __init__(self, model, params, cfg: TrainConfig, penalties, device: torch.device):
        self.model, self.params, self.penalties, self.device = model, params, penalties, device
        self.autocast_dtype = PRECISIONS[cfg.precision]
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None

    def gradients(self, micro_batches: list[dict], n_tokens: int, optimizer) -> tuple[float, float]:
        """Gradients of the step's objective — token-mean cross-entropy over the global batch's
        micro-batches, plus the penalties once — unscaled and summed over processes. Returns the
        cross-entropy and penalty values."""
        total = 0.0
        for batch in micro_batches:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                loss_sum, _ = token_loss_sum(self.model, distributed.shard(batch))
            scaled = loss_sum / n_tokens
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss_sum.item()
        distributed.sum_gradients(self.params)
        if self.scaler:
            self.scaler.unscale_(optimizer)
        penalty = 0.0
        if self.penalties:  # the same weights on every process: added after the sum, once
            term = sum(p() for p in self.penalties)
            term.backward()
            penalty = term.detach().item()
        return distributed.sum_scalar(total, self.device) / n_tokens, penalty

    def step(self, optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()


def _upcast_trained(params) -> list[tuple[torch.Tensor, torch.dtype]]:
    """Mixed precision keeps float32 copies of what trains (half-precision AdamW updates vanish)."""
    changed = []
    for p in params:
        if p.dtype in (torch.bfloat16, torch.float16):
            changed.append((p, p.dtype))
            p.data = p.data.float()
    return changed


def train(model, examples: list[dict], cfg: TrainConfig, pad_id: int, curve_path: str | Path, log=print,
          hooks: tuple = (), penalties: tuple = (), batches: Iterator[dict] | None = None,
          checkpoint_dir: str | Path | None = None, settings: dict | None = None) -> dict:
    """Train the parameters that require grad; write a loss curve CSV; return a summary.

    ``hooks`` (e.g. :class:`cofi.softmask.SoftMask`) get ``attach(optimizer)`` once and
    ``after_backward()`` once per optimizer step, after accumulation (and SAM's second pass) and
    before clipping. ``penalties`` are callables whose scalar joins every step's objective.
    ``batches`` replaces the default seeded stream over ``examples`` (e.g. replay mixing); it
    yields global batches, of which each process (under ``torchrun``) trains its share.
    With ``cfg.sam_rho`` > 0 each step is a SAM step (:mod:`cofi.sam`): two passes on the same batch.
    With ``cfg.checkpoint_every`` > 0 and a ``checkpoint_dir``, a checkpoint is written every that
    many steps, and a checkpoint there of the same ``settings`` is resumed (:mod:`cofi.checkpoint`).
    """
    from cofi import checkpoint
    from cofi.sam import SAM

    torch.manual_seed(cfg.seed)
    if distributed.active() and cfg.batch_size < distributed.world_size():
        raise ValueError(f"batch_size {cfg.batch_size} is smaller than the {distributed.world_size()} processes")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    restore_dtypes = _upcast_trained(params) if cfg.precision != "fp32" else []
    if cfg.gradient_checkpointing:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x's name for it
            base.activation_checkpointing_enable()
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.config.use_cache = False
    device = next(model.parameters()).device
    # One fused kernel on GPUs (the step of a 1B model is otherwise memory-bound loops); torch's default elsewhere.
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True if device.type == "cuda" else None)
    sam = SAM(params, cfg.sam_rho) if cfg.sam_rho > 0 else None
    for hook in hooks:
        hook.attach(optimizer)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * cfg.steps), cfg.steps)
    stream = batches if batches is not None else batch_stream(examples, cfg.batch_size, pad_id, cfg.seed)
    computer = _Step(model, params, cfg, penalties, device)

    settings = {**(settings or {}), "train": {k: v for k, v in asdict(cfg).items() if k not in ("log_every", "checkpoint_every")},
                "processes": distributed.world_size()}
    rows: list[list] = []
    first_step, spent = 1, 0.0
    resume = checkpoint.latest(checkpoint_dir, settings) if checkpoint_dir and cfg.checkpoint_every else None
    if resume is not None:
        state = checkpoint.load(resume, named)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if computer.scaler and state.get("scaler"):
            computer.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        rows, spent, first_step = state["curve"], state["seconds"], state["step"] + 1
        for _ in range(state["step"] * cfg.grad_accum):  # the data position: replay the seeded stream
            next(stream)
        log(f"resuming from {resume} (step {state['step']} of {cfg.steps})")

    model.train()
    log(f"training {sum(p.numel() for p in params):,} parameters for {cfg.steps} steps"
        + (f" on {distributed.world_size()} processes" if distributed.active() else "") + f": {asdict(cfg)}")
    started = time.perf_counter() - spent
    loss = float("nan")
    for step in range(first_step, cfg.steps + 1):
        micro_batches = [next(stream) for _ in range(cfg.grad_accum)]
        # Normalise by the tokens of the whole accumulated global batch, so accumulation and
        # processes match one big batch.
        n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro_batches)
        loss, penalty = computer.gradients(micro_batches, n_tokens, optimizer)
        sam_loss = ""
        if sam is not None:  # second pass at w + ε, then back to w (cofi.sam)
            sam.ascend()
            optimizer.zero_grad(set_to_none=True)
            sam_loss = f"{computer.gradients(micro_batches, n_tokens, optimizer)[0]:.6f}"
            sam.restore()
        for hook in hooks:
            hook.after_backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        computer.step(optimizer)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        rows.append([step, f"{loss:.6f}", f"{penalty:.6g}", sam_loss, f"{lr:.6g}", n_tokens, f"{elapsed:.3f}"])
        if step % cfg.log_every == 0 or step == cfg.steps:
            extra = (f"  penalty {penalty:.4g}" if penalties else "") + (f"  loss at w+eps {sam_loss}" if sam else "")
            log(f"step {step}/{cfg.steps}  loss {loss:.4f}{extra}  lr {lr:.2e}  {elapsed:.1f}s")
        if checkpoint_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            if distributed.is_main():
                rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
                         "scaler": computer.scaler.state_dict() if computer.scaler else None,
                         "curve": rows, "seconds": elapsed}
                checkpoint.save(checkpoint_dir, step, settings, named, state)
            distributed.barrier()
    if distributed.is_main():
        Path(curve_path).parent.mkdir(parents=True, exist_ok=True)
        with open(curve_path, "w", newline="") as handle:
            curve = csv.writer(handle)
            curve.writerow(["step", "loss", "penalty", "sam_loss", "lr", "tokens", "seconds"])
            curve.writerows(rows)
    for p, dtype in restore_dtypes:
        p.data = p.data.to(dtype)
    model.eval()
    summary = {"steps": cfg.steps, "seconds": time.perf_counter() - started, "final_loss": loss,
               "resumed_at_step": first_step - 1 if resume is not None else None}
    if device.type == "cuda":
        summary["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return summary
