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


class Direction:
    """A filter-normalised direction that is drawn tensor by tensor when it is used, never held whole: the
    generator's state before each parameter's draw is kept (a few KB each), and :meth:`tensor` draws that
    parameter's part again and scales it to the weights it is given. The draws are those of one pass over the
    parameters in order from ``seed``, on the CPU (the same direction on any device). A direction of at most
    ``KEEP_BYTES`` is kept once drawn (a small model's landscape would otherwise spend its time drawing)."""

    KEEP_BYTES = 256 * 2**20

    def __init__(self, shapes: dict[str, torch.Size], seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.shapes, self.states, self.kept = dict(shapes), {}, {}
        self.keep = sum(torch.Size(shape).numel() for shape in self.shapes.values()) * 4 <= self.KEEP_BYTES
        for name, shape in self.shapes.items():
            self.states[name] = generator.get_state()
            torch.randn(shape, generator=generator, dtype=torch.float32)  # advances the generator past this draw

    @classmethod
    def of(cls, model: torch.nn.Module, seed: int) -> "Direction":
        return cls({name: p.shape for name, p in model.named_parameters()}, seed)

    def tensor(self, name: str, weights: torch.Tensor) -> torch.Tensor:
        """This parameter's part of the direction, rows scaled to the norms of the rows of ``weights`` (float32, on
        ``weights``' device); zero for vectors (norms, biases). Kept directions are scaled to the first weights
        they were given (a landscape gives each parameter's starting weights, always the same)."""
        if name in self.kept:
            return self.kept[name]
        shape = self.shapes[name]
        if len(shape) < 2:
            direction = torch.zeros(shape, dtype=torch.float32, device=weights.device)
        else:
            generator = torch.Generator()
            generator.set_state(self.states[name])
            draw = torch.randn(shape, generator=generator, dtype=torch.float32).to(weights.device)
            dims = tuple(range(1, draw.dim()))
            scale = weights.detach().float().norm(dim=dims, keepdim=True) / draw.norm(dim=dims, keepdim=True).clamp_min(1e-12)
            direction = draw * scale
        if self.keep:
            self.kept[name] = direction
        return direction


def filter_normalised_direction(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The whole direction for ``model``'s weights at once (:class:`Direction`, every tensor drawn)."""
    direction = Direction.of(model, seed)
    return {name: direction.tensor(name, p) for name, p in model.named_parameters()}


def grid(span: float, points: int) -> np.ndarray:
    """``points`` (odd, so 0 is on it) evenly spaced values in [−span, span]."""
    if points < 3 or points % 2 == 0:
        raise ValueError(f"a landscape grid needs an odd number of points >= 3, got {points}")
    return np.linspace(-span, span, points)


@torch.no_grad()
def _losses_at(model, offsets, loss_fns: dict[str, LossFn], directions: list[Direction], progress=None) -> dict[str, list]:
    """Loss of every ``loss_fn`` at w + Σ cᵢ·dᵢ for each coefficient tuple in ``offsets``; w restored after.
    ``progress(done, total)`` is called after each point. The weights w are kept in host memory, and each
    tensor's move is made on its own: the device holds the model and a few tensors, not the directions."""
    parameters = dict(model.named_parameters())
    start = {name: p.detach().to("cpu", copy=True) for name, p in parameters.items()}
    losses = {key: [] for key in loss_fns}
    try:
        for done, coefficients in enumerate(offsets, 1):
            for name, p in parameters.items():
                weights = start[name]
                moved = weights.float() + sum(c * d.tensor(name, weights) for c, d in zip(coefficients, directions))
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
    d1, d2 = Direction.of(model, direction_seed), Direction.of(model, direction_seed + 1)
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
    from cofi.training.loop import token_loss_sum

    def loss(model) -> float:
        total, n = token_loss_sum(model, batch)
        return float(total.detach()) / n

    return loss


def fixed_batches(task_records: list[dict], versatility_records: list[list[dict]], prompter, mask_prompt: bool,
                  max_len: int, batch_size: int, seed: int, pad_id: int) -> dict[str, dict]:
    """A seeded sample of the task's examples and an equal share of each versatility suite's, collated."""
    import random

    from cofi.analysis.sharpness import BATCHES
    from cofi.training.loop import collate, tokenize_dataset

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

