"""Resumable training checkpoints, so a preempted or timed-out job continues where it stopped.

A checkpoint is a directory ``step-<N>`` holding the trained weights and the optimizer's state
(one process: ``trained.safetensors``, the trained parameters only, the frozen rest is rebuilt from
the base model, and the optimizer inside ``state.pt``; several processes: ``shards/``, every
process's shards of both through ``torch.distributed.checkpoint``), ``state.pt`` (scheduler and
loss-scaler state, RNG states, the loss curve so far, the time spent) and ``settings.json`` (the
run's identity; a checkpoint of another identity is never resumed). It is written under a temporary
name and renamed when complete, so a job killed mid-write leaves the previous checkpoint intact;
older checkpoints are removed once a newer one is in place. Process 0 does the file bookkeeping.

The data position needs no file: the batch stream is seeded, and resuming at step N replays its
first N × grad_accum batches (cheap next to training).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cofi.training import distributed

PATTERN = re.compile(r"^step-(\d+)$")


def latest(directory: str | Path, identity: dict) -> Path | None:
    """The newest complete checkpoint written with the same ``identity``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = sorted(
        (int(match.group(1)), path)
        for path in directory.iterdir()
        if (match := PATTERN.match(path.name)) and (path / "settings.json").is_file()
    )
    for _, path in reversed(found):
        if json.loads((path / "settings.json").read_text()) == json.loads(json.dumps(identity)):
            return path
    return None


def mismatch(directory: str | Path, identity: dict) -> str | None:
    """Why the newest complete checkpoint in ``directory`` is not resumed (the keys of its identity that
    differ), or None where there is none."""
    directory = Path(directory)
    found = sorted(p for p in directory.glob("step-*") if PATTERN.match(p.name) and (p / "settings.json").is_file()) \
        if directory.is_dir() else []
    if not found:
        return None
    saved, wanted = json.loads((found[-1] / "settings.json").read_text()), json.loads(json.dumps(identity))
    differ = sorted(key for key in saved.keys() | wanted.keys() if saved.get(key) != wanted.get(key))
    return f"{found[-1]} is of another run (its {', '.join(differ)} differ): starting over"


def save(directory: str | Path, step: int, identity: dict, trainer, state: dict) -> Path:
    """A checkpoint of ``trainer`` (:class:`cofi.training.loop.Trainer`) at ``step`` with the loop's ``state``;
    every process calls it."""
    directory = Path(directory)
    final = directory / f"step-{step:08d}"
    partial = directory / f".partial-step-{step:08d}"
    if distributed.is_main():
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    distributed.barrier()
    if trainer.sharded:
        from cofi.training.sharding import save_checkpoint

        save_checkpoint(partial / "shards", trainer.model, trainer.optimizer)  # every process writes its shards
    if distributed.is_main():
        if not trainer.sharded:
            save_file({name: p.detach().to("cpu").contiguous() for name, p in trainer.named},
                      partial / "trained.safetensors")
            state = {**state, "optimizer": trainer.optimizer.state_dict()}
        torch.save({**state, "step": step}, partial / "state.pt")
        (partial / "settings.json").write_text(json.dumps(identity, indent=1, sort_keys=True))  # last: marks it complete
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for path in directory.iterdir():  # older ones, now superseded
            match = PATTERN.match(path.name)
            if match and int(match.group(1)) < step:
                shutil.rmtree(path, ignore_errors=True)
    distributed.barrier()
    return final


def load(path: str | Path, trainer) -> dict:
    """Put the saved weights and optimizer state into ``trainer``; return the loop's saved state."""
    path = Path(path)
    if trainer.sharded:
        from cofi.training.sharding import load_checkpoint

        load_checkpoint(path / "shards", trainer.model, trainer.optimizer)
        return torch.load(path / "state.pt", weights_only=True)
    weights = load_file(path / "trained.safetensors")
    missing = [name for name, _ in trainer.named if name not in weights]
    if missing:
        raise ValueError(f"checkpoint {path}: no weights for {missing[:3]} (a checkpoint of another setup?)")
    with torch.no_grad():
        for name, p in trainer.named:
            p.copy_(weights[name])
    state = torch.load(path / "state.pt", weights_only=True)
    trainer.optimizer.load_state_dict(state["optimizer"])
    return state


def remove(directory: str | Path) -> None:
    """After the run's outputs are written: the checkpoints have served."""
    shutil.rmtree(directory, ignore_errors=True)
