"""Loss landscapes and sharpness (the second paper's evidence): loss around a model's weights.

Directions are random and *filter-normalised* (Li et al., 2018): a Gaussian draw per parameter,
each row of a weight matrix (one output unit, the transformer analogue of a filter) rescaled to the
norm of the same row of the weights; vectors (norms, biases) are not moved. The draw depends only
on the seed and the parameter shapes, so every model of one architecture is probed along the same
draw, scaled to its own weights. On a grid of α (1-D) and (α, β) (2-D), the loss of
``w + α·d₁ (+ β·d₂)`` on a fixed batch is recorded, and three figures summarise it:

- ``rise``: the largest loss increase over the centre within ``radius`` (1-D and 2-D grids);
- ``grad``: the mean magnitude of the 2-D surface's gradient over the whole grid (finite differences);
- ``curvature``: the second difference of the 1-D curve at the centre, (L(h) − 2L(0) + L(−h)) / h².
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

LossFn = Callable[[torch.nn.Module], float]


def filter_normalised_direction(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    direction = {}
    for name, parameter in model.named_parameters():
        draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
        if parameter.dim() < 2:
            direction[name] = torch.zeros_like(draw)
            continue
        draw = draw.to(parameter.device)  # drawn on the CPU: the same direction on any device
        weights = parameter.detach().float()
        dims = tuple(range(1, parameter.dim()))
        scale = weights.norm(dim=dims, keepdim=True) / draw.norm(dim=dims, keepdim=True).clamp_min(1e-12)
        direction[name] = draw * scale
    return direction


def grid(span: float, points: int) -> np.ndarray:
    """``points`` (odd, so 0 is on it) evenly spaced values in [−span, span]."""
    if points < 3 or points % 2 == 0:
        raise ValueError(f"a landscape grid needs an odd number of points >= 3, got {points}")
    return np.linspace(-span, span, points)


@torch.no_grad()
def _losses_at(model, offsets, loss_fns: dict[str, LossFn], directions: list[dict[str, torch.Tensor]],
               progress=None) -> dict[str, list]:
    """Loss of every ``loss_fn`` at w + Σ cᵢ·dᵢ for each coefficient tuple in ``offsets``; w restored after.
    ``progress(done, total)`` is called after each point."""
    parameters = dict(model.named_parameters())
    start = {name: p.detach().clone() for name, p in parameters.items()}
    losses = {key: [] for key in loss_fns}
    try:
        for done, coefficients in enumerate(offsets, 1):
            for name, p in parameters.items():
                moved = start[name].float() + sum(c * d[name] for c, d in zip(coefficients, directions))
                p.copy_(moved.to(p.dtype))
            for key, loss_fn in loss_fns.items():
                losses[key].append(loss_fn(model))
            if progress is not None:
                progress(done, len(offsets))
    finally:
        for name, p in parameters.items():
            p.copy_(start[name])
    return losses


def sharpness(alphas: np.ndarray, curve: np.ndarray, surface: np.ndarray, radius: float) -> dict[str, float]:
    """The three figures from a 1-D curve over ``alphas`` and a 2-D surface over alphas × alphas₂ (same span)."""
    centre = len(alphas) // 2
    step = float(alphas[1] - alphas[0])
    inside = np.abs(alphas) <= radius + 1e-12
    rise_1d = float(np.max(curve[inside] - curve[centre]))
    side = surface.shape[0]
    betas = np.linspace(alphas[0], alphas[-1], side)
    a2, b2 = np.meshgrid(betas, betas, indexing="ij")
    disc = np.hypot(a2, b2) <= radius + 1e-12
    rise_2d = float(np.max(surface[disc] - surface[side // 2, side // 2]))
    step_2d = float(betas[1] - betas[0])
    grad_a, grad_b = np.gradient(surface, step_2d, step_2d)
    return {"rise_1d": rise_1d, "rise_2d": rise_2d, "grad": float(np.mean(np.hypot(grad_a, grad_b))),
            "curvature": float((curve[centre + 1] - 2 * curve[centre] + curve[centre - 1]) / step ** 2)}


def landscape(model, loss_fns: dict[str, LossFn], span: float, points_1d: int, points_2d: int, radius: float,
              direction_seed: int, log=None) -> dict:
    """1-D and 2-D loss grids and the sharpness figures, for each named loss (e.g. spec, vers); with ``log``,
    a progress line with the ETA about every tenth of the grid."""
    if not 0 < radius <= span:
        raise ValueError(f"radius {radius} must be in (0, span={span}]")
    d1 = filter_normalised_direction(model, direction_seed)
    d2 = filter_normalised_direction(model, direction_seed + 1)
    alphas, betas = grid(span, points_1d), grid(span, points_2d)
    total, started = points_1d + points_2d ** 2, time.perf_counter()

    def progress(offset: int):
        def report(done: int, _):
            done += offset
            if log is not None and (done % max(1, total // 10) == 0 or done == total):
                elapsed = time.perf_counter() - started
                log(f"{done}/{total} grid points, {elapsed:.0f}s (ETA {elapsed / done * (total - done):.0f}s)")
        return report

    curves = _losses_at(model, [(a,) for a in alphas], loss_fns, [d1], progress(0))
    plane = _losses_at(model, [(a, b) for a in betas for b in betas], loss_fns, [d1, d2], progress(points_1d))
    result = {"alphas_1d": alphas.tolist(), "alphas_2d": betas.tolist(), "loss_1d": {}, "loss_2d": {}, "sharpness": {},
              "centre": {}}
    for key in loss_fns:
        curve = np.array(curves[key])
        surface = np.array(plane[key]).reshape(points_2d, points_2d)
        result["loss_1d"][key] = curve.tolist()
        result["loss_2d"][key] = surface.tolist()
        result["centre"][key] = float(curve[points_1d // 2])
        result["sharpness"][key] = sharpness(alphas, curve, surface, radius)
    return result


def batch_loss(batch: dict) -> LossFn:
    """Token-mean cross-entropy of a model on one fixed (collated) batch."""
    from cofi.train import token_loss_sum

    def loss(model) -> float:
        total, n = token_loss_sum(model, batch)
        return float(total) / n

    return loss


def fixed_batches(task_records: list[dict], versatility_records: list[list[dict]], prompter, mask_prompt: bool,
                  max_len: int, batch_size: int, seed: int, pad_id: int) -> dict[str, dict]:
    """A seeded sample of the task's examples and an equal share of each versatility suite's, collated."""
    import random

    from cofi.sharpness import BATCHES
    from cofi.train import collate, tokenize_dataset

    rng = random.Random(seed)

    def sample(records, n):
        return rng.sample(list(records), min(n, len(records)))

    per_suite = max(1, math.ceil(batch_size / len(versatility_records)))
    spec = tokenize_dataset(sample(task_records, batch_size), prompter, mask_prompt, max_len)
    vers = [e for records in versatility_records
            for e in tokenize_dataset(sample(records, per_suite), prompter, mask_prompt, max_len)]
    return dict(zip(BATCHES, (collate(spec, pad_id), collate(vers[:batch_size], pad_id))))


def plot_landscape(result: dict, title: str, stem) -> None:
    """1-D curves (speciality and versatility batch) and 2-D contours, PNG and PDF."""
    import matplotlib

    from cofi.io import pyplot, save_figure

    plt = pyplot()
    keys = list(result["loss_1d"])
    figure, axes = plt.subplots(1, 1 + len(keys), figsize=(4.6 * (1 + len(keys)), 4))
    for key in keys:
        axes[0].plot(result["alphas_1d"], result["loss_1d"][key], label=f"{key} batch")
    axes[0].set_xlabel("α (filter-normalised direction)")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    for axis, key in zip(axes[1:], keys):
        surface = np.array(result["loss_2d"][key])
        levels = np.geomspace(max(surface.min(), 1e-4), surface.max(), 15)
        contour = axis.contourf(result["alphas_2d"], result["alphas_2d"], surface.T, levels=levels,
                                norm=matplotlib.colors.LogNorm(), cmap="viridis")
        figure.colorbar(contour, ax=axis, label="loss", format="%.3g")
        axis.plot([0], [0], "r+", ms=10)
        axis.set_title(f"{key} batch")
        axis.set_xlabel("α")
        axis.set_ylabel("β")
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, stem, dpi=120)

