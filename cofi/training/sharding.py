"""Sharded training with PyTorch FSDP2 (``torch.distributed.fsdp.fully_shard``), for jobs of several processes.

- **Sharding**: each decoder layer, then the root, is a ``fully_shard`` unit; parameters become
  DTensors sharded on dim 0 (``torch.chunk`` rows: with N rows over S shards, shard r holds rows
  [r·c, min((r+1)·c, N)), c = ⌈N/S⌉; the last shards may hold fewer or none). Frozen and trained
  weights share units; only trained ones get gradients and optimizer state. Across nodes the mesh
  is 2-D: replicate across nodes, shard within one (hybrid sharding).
- **Reduction**: the loss of each process is already divided by the global batch's token count, so
  the gradients are *summed* over processes: every unit reduces with factor 1 and sum-only
  collectives (FSDP2 averages by default, and gloo once summed where NCCL averaged).
- **Accumulation**: with ``grad_accum`` > 1 every micro-batch reduce-scatters, so a process only ever
  holds the gradients of its own shards (torchtitan does the same); across nodes the replicas'
  all-reduce waits for the last micro-batch. ``compute.accumulate_unsharded`` reduces once, after the
  last micro-batch instead: fewer collectives, but until then every process holds the unsharded
  gradient of every trained weight (at 7B in fp32 about 25 GiB per GPU).
- **Precision**: trained and frozen shards are kept in float32 (float64 in the tests); under bf16
  a ``MixedPrecisionPolicy`` gathers bf16 weights for the forward and backward and reduces in fp32.
- **Loading**: only process 0 reads the weights; the others build the model on the meta device, and
  after sharding process 0's full state dict is broadcast into everyone's shards. The saved model is
  gathered back to process 0 as a full state dict on the CPU.
- **Checkpoints**: the trained shards and the optimizer state through ``torch.distributed.checkpoint``.

Every helper here is also correct on a single process with plain tensors (it does nothing special).
"""

from __future__ import annotations

from pathlib import Path

import torch

from cofi.models.layers import decoder_layers
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Shard

MASTER_DTYPES = {torch.bfloat16: torch.float32, torch.float16: torch.float32}  # what a half-precision model trains in


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the shards of a model loaded in ``dtype`` are kept in (half precision trains in float32)."""
    return MASTER_DTYPES.get(dtype, dtype)


def is_sharded(tensor) -> bool:
    return isinstance(tensor, DTensor)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded tensor (the tensor itself when it is not sharded)."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor that may be a DTensor (e.g. a penalty summed over shards) as a plain tensor, still on its device."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _shard_dim(tensor: DTensor) -> int:
    """The mesh dimension ``tensor`` is sharded over (FSDP2 shards dim 0 over one mesh dimension)."""
    dims = [i for i, placement in enumerate(tensor.placements) if isinstance(placement, Shard)]
    if len(dims) != 1 or tensor.placements[dims[0]].dim != 0:
        raise ValueError(f"expected a tensor sharded on dim 0 over one mesh dimension, got {tensor.placements}")
    return dims[0]


def local_rows(values: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """The entries of a per-row vector ``values`` (one per row of ``param``) that this process's
    shard of ``param`` holds; all of them for a tensor that is not sharded."""
    if not isinstance(param, DTensor):
        return values
    dim = _shard_dim(param)
    mesh = param.device_mesh
    chunks = torch.chunk(values, mesh.size(dim))
    coordinate = mesh.get_local_rank(dim)
    rows = chunks[coordinate] if coordinate < len(chunks) else values[:0]
    if rows.shape[0] != param.to_local().shape[0]:
        raise RuntimeError(f"row mask of {rows.shape[0]} rows for a shard of {param.to_local().shape[0]}")
    return rows


def square_sum(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Σ‖t‖² over every tensor, whole: the local shards' squares summed over the shards (not over
    the replicas of hybrid sharding, which hold the same rows)."""
    total = torch.zeros((), dtype=torch.float64)
    sharded: dict[tuple, list] = {}  # (mesh, dim) -> [group, sum of the local parts]
    for tensor in tensors:
        part = local(tensor).detach().double().pow(2).sum()
        if isinstance(tensor, DTensor):
            dim = _shard_dim(tensor)
            entry = sharded.setdefault((id(tensor.device_mesh), dim), [tensor.device_mesh.get_group(dim), 0])
            entry[1] = entry[1] + part
        else:
            total += part.cpu()
    for group, part in sharded.values():
        dist.all_reduce(part, group=group)
        total += part.cpu()
    return total


def shard_model(model, mesh, precision: str):
    """``fully_shard`` every decoder layer, then the root; gradients summed over processes."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16" \
        else MixedPrecisionPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # the losses are divided by the global token count already
            module.set_force_sum_reduction_for_comms(True)
    return model


def set_gradient_sync(model, last_micro_batch: bool, accumulate_unsharded: bool) -> None:
    """The collectives of the next backward (see the module's *Accumulation*)."""
    if accumulate_unsharded:
        model.set_requires_gradient_sync(last_micro_batch)
    else:
        model.set_requires_gradient_sync(True)
        model.set_requires_all_reduce(last_micro_batch)  # only meaningful across nodes (hybrid); sums the partial shards


def gradient_bytes(model) -> int:
    """Bytes of gradient this process holds now: its shards' reduced gradients, and the unsharded
    gradients FSDP2 keeps between backwards that did not reduce-scatter. (FSDP2 has no public
    accessor for the latter: its parameter groups are read directly.)"""
    from torch.distributed.fsdp import FSDPModule

    held = {}
    for module in model.modules():
        if not isinstance(module, FSDPModule):
            continue
        for group in module._get_fsdp_state()._fsdp_param_groups:
            for param in group.fsdp_params:
                unsharded = param._unsharded_param.grad if hasattr(param, "_unsharded_param") else None
                for grad in (param.sharded_param.grad, unsharded, param.unsharded_accumulated_grad):
                    if grad is not None:
                        grad = local(grad)
                        held[grad.data_ptr()] = grad.numel() * grad.element_size()
    return sum(held.values())


def restore_non_persistent_buffers(model, device: torch.device) -> None:
    """Buffers that are not in a state dict (rotary frequencies) come out of ``to_empty`` as garbage:
    each module holding one is rebuilt from its config and its buffers copied over."""
    for module in model.modules():
        names = getattr(module, "_non_persistent_buffers_set", set())
        if not names:
            continue
        if not hasattr(module, "config"):
            raise RuntimeError(f"{type(module).__name__}: cannot rebuild its non-persistent buffers {sorted(names)}")
        fresh = type(module)(module.config)
        for name in names:
            setattr(module, name, getattr(fresh, name).to(device))


def broadcast_full_state(model, full_state: dict | None, device: torch.device) -> None:
    """Fill every process's shards from process 0's ``full_state`` (the others pass None): weightless (meta) shards
    are allocated on ``device`` first, then each tensor is sent, cut, and copied into its shards' dtype."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if any(parameter.is_meta for parameter in model.parameters()):
        model.to_empty(device=device)
        restore_non_persistent_buffers(model, device)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full_state if dist.get_rank() == 0 else {}, options=options)


def gather_full_state(model) -> dict:
    """The whole model's state on process 0, on the CPU (an empty dict on the others)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_checkpoint(directory: Path, model, optimizer) -> None:
    """The trained shards and the optimizer's state, every process its own part."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory))


def load_checkpoint(directory: Path, model, optimizer) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    options = StateDictOptions(ignore_frozen_params=True)
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(directory))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(ignore_frozen_params=True, strict=False))
