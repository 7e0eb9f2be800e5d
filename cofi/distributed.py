"""Data parallelism over processes started by ``torchrun`` (one per GPU; gloo on CPU in the tests).

Every process builds the same global batch from the same seeded stream and trains on its own
rows of it (``rank::world_size``). The loss of each process is divided by the token count of the
*global* batch, so the sum of the processes' gradients is the gradient of the global batch: one
all-reduce (sum) after the backward passes gives every process exactly what one process with the
whole batch computes, up to the order of floating-point sums. Soft masks, clipping, penalties and
SAM's ascent then act on that global gradient, identically on every process.

The reduction is one flat all-reduce per dtype after the last micro-batch's backward, rather than
``DistributedDataParallel``'s buckets overlapped with the backward pass: simpler to keep exact
around SAM's second pass and the penalties, at the cost of that overlap.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Started by ``torchrun`` (or another launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPUs) if launched with several processes."""
    if launched() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's communicator uses the current device: this process's own
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """The process that writes files (the model, the curve, checkpoints, logs)."""
    return rank() == 0


def shard(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This process's rows of a global batch."""
    if not active():
        return batch
    return {key: value[rank() :: world_size()] for key, value in batch.items()}


@torch.no_grad()
def sum_gradients(params: list[torch.Tensor]) -> None:
    """Replace each gradient by its sum over the processes (a missing gradient counts as zeros)."""
    if not active():
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        by_dtype.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def sum_scalar(value: float, device: torch.device) -> float:
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def barrier() -> None:
    if active():
        dist.barrier()


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
