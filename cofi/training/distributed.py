"""Processes started by ``torchrun`` (one per GPU; gloo on CPU in the tests): the process group, the
device mesh the model is sharded over, and the rows of a global batch each process trains.

Every process builds the same global batch from the same seeded stream and trains on its own rows
of it (``rank::world_size``); the loss of each is divided by the token count of the *global* batch,
so the sum of the processes' gradients is the global batch's. The sum is FSDP2's reduce-scatter
(:mod:`cofi.training.sharding`), set to sum rather than average. A single process needs none of this and
trains as it always has.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def from_slurm(environ: dict) -> dict[str, str]:
    """torch.distributed's variables for a task that ``srun`` started (one task per GPU, across nodes):
    RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE from SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS
    and the tasks per node; the rendezvous on the node srun was started from, at a port derived from
    the job id. Empty where the process is not one of several srun tasks, or a launcher set them."""
    if "RANK" in environ or int(environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in environ:
        return {}
    tasks, nodes = int(environ["SLURM_NTASKS"]), int(environ.get("SLURM_STEP_NUM_NODES", environ.get("SLURM_NNODES", "1")))
    if tasks % nodes:
        raise RuntimeError(f"SLURM: {tasks} tasks do not split evenly over {nodes} nodes")
    host = environ.get("SLURM_LAUNCH_NODE_IPADDR") or environ.get("SLURMD_NODENAME", "localhost")
    return {"RANK": environ["SLURM_PROCID"], "LOCAL_RANK": environ["SLURM_LOCALID"], "WORLD_SIZE": str(tasks),
            "LOCAL_WORLD_SIZE": str(tasks // nodes), "MASTER_ADDR": host,
            "MASTER_PORT": str(29500 + int(environ.get("SLURM_JOB_ID", "0")) % 10000)}


def adopt_launcher() -> None:
    """Where ``srun`` started this process as one of several tasks, set torch.distributed's variables
    (before anything reads LOCAL_RANK to pick a GPU)."""
    os.environ.update(from_slurm(os.environ))


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


def nodes() -> int:
    """Nodes of the job: processes / processes per node (torchrun's LOCAL_WORLD_SIZE)."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    if world_size() % per_node:
        raise RuntimeError(f"{world_size()} processes do not split into nodes of {per_node}")
    return world_size() // per_node


def mesh(device: torch.device, hybrid: bool = True):
    """The device mesh to shard over: one dimension over every process (one node, or ``hybrid`` False: flat
    sharding); across nodes with ``hybrid``, a 2-D mesh (replicate across nodes, shard within one)."""
    from torch.distributed.device_mesh import init_device_mesh

    n_nodes = nodes()
    if n_nodes == 1 or not hybrid:
        return init_device_mesh(device.type, (world_size(),), mesh_dim_names=("shard",))
    return init_device_mesh(device.type, (n_nodes, world_size() // n_nodes), mesh_dim_names=("replicate", "shard"))


def shard(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This process's rows of a global batch."""
    if not active():
        return batch
    return {key: value[rank() :: world_size()] for key, value in batch.items()}


def summed(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes, in place, on its device (no wait for the host)."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def gather(value) -> list:
    """``value`` of every process, in rank order (a one-item list on a single process)."""
    if not active():
        return [value]
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def host_memory_mb(field: str = "VmHWM") -> float:
    """This process's host memory from /proc (Linux): ``VmHWM`` the peak, ``VmRSS`` now."""
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def barrier() -> None:
    if active():
        dist.barrier()


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
