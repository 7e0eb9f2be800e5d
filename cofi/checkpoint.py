"""Resumable training checkpoints, so a preempted or timed-out job continues where it stopped.

A checkpoint is a directory ``step-<N>`` holding ``trained.safetensors`` (the weights of the
trained parameters only: the frozen rest is rebuilt from the base model), ``state.pt`` (optimizer,
scheduler and loss-scaler state, RNG states, the loss curve so far, the time spent) and
``settings.json`` (the run's identity: what it was; a checkpoint of another identity is never resumed). It is
written under a temporary name and renamed when complete, so a job killed mid-write leaves the
previous checkpoint intact; older checkpoints are removed once a newer one is in place.

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


def save(directory: str | Path, step: int, identity: dict, named_params: list[tuple[str, torch.Tensor]],
         state: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    partial = directory / f".partial-step-{step:08d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_file({name: p.detach().to("cpu").contiguous() for name, p in named_params}, partial / "trained.safetensors")
    torch.save({**state, "step": step}, partial / "state.pt")
    (partial / "settings.json").write_text(json.dumps(identity, indent=1, sort_keys=True))  # last: marks it complete
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for path in directory.iterdir():  # older ones, now superseded
        match = PATTERN.match(path.name)
        if match and int(match.group(1)) < step:
            shutil.rmtree(path, ignore_errors=True)
    return final


def load(path: str | Path, named_params: list[tuple[str, torch.Tensor]]) -> dict:
    """Copy the saved weights into ``named_params`` and return the saved state."""
    path = Path(path)
    weights = load_file(path / "trained.safetensors")
    missing = [name for name, _ in named_params if name not in weights]
    if missing:
        raise ValueError(f"checkpoint {path}: no weights for {missing[:3]} (a checkpoint of another setup?)")
    with torch.no_grad():
        for name, p in named_params:
            p.copy_(weights[name])
    return torch.load(path / "state.pt", weights_only=True)


def remove(directory: str | Path) -> None:
    """After the run's outputs are written: the checkpoints have served."""
    shutil.rmtree(directory, ignore_errors=True)
