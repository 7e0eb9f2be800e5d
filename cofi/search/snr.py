"""The signal-to-noise pick (Spectrum's measure, cofi's regions), with no training.

A weight matrix's SNR, as Spectrum computes it: its singular values S; the noise scale σ from their
interquartile range (IQR / 1.349, a Gaussian's); the Marchenko–Pastur bulk edge σ·(1 + √β), β the short
side over the long one; SNR = the sum of the singular values above the edge over the sum of those at or
below it, divided by the largest singular value (so that matrices of different scale compare).

Spectrum ranks the layers within each projection (q_proj, up_proj, ...) and trains the top share of each.
Its regions are any set of layers; cofi's are a layer range × module groups. So a matrix scores its
percentile among the same projection in the other layers (0: the lowest SNR, 1: the highest), and a region
the mean over its matrices: projections whose SNRs differ in scale count alike, and the regions compared
are the grid's (:func:`cofi.search.policy.grid`). Only :func:`matrix_snr` computes; the rest is pure.
"""

from __future__ import annotations

import math

import torch

from cofi.search.regions import Region

GAUSSIAN_IQR = 1.349  # a unit Gaussian's interquartile range: IQR / 1.349 estimates σ


def matrix_snr(weight: torch.Tensor) -> dict:
    """Spectrum's SNR of one matrix (computed in float64), with what it rests on."""
    values = torch.linalg.svdvals(weight.detach().to(torch.float64))
    q25, q75 = torch.quantile(values, torch.tensor([0.25, 0.75], dtype=values.dtype)).tolist()
    sigma = (q75 - q25) / GAUSSIAN_IQR
    rows, cols = weight.shape
    beta = min(rows, cols) / max(rows, cols)
    edge = sigma * (1 + math.sqrt(beta))
    signal, noise = values[values > edge].sum().item(), values[values <= edge].sum().item()
    largest = values.max().item()
    snr = (signal / noise if noise > 0 else math.inf) / largest if largest > 0 else 0.0
    return {"snr": snr, "largest": largest, "edge": edge, "above_edge": int((values > edge).sum())}


def percentiles(snr: dict[tuple[int, str], float]) -> dict[tuple[int, str], float]:
    """{(layer, projection): SNR} -> each matrix's percentile among its projection's layers (ties share the
    mean of their places; a projection in one layer only: 0.5)."""
    out = {}
    for projection in {p for _, p in snr}:
        keys = sorted((k for k in snr if k[1] == projection), key=lambda k: snr[k])
        n = len(keys)
        i = 0
        while i < n:  # a run of equal SNRs shares the mean of its places
            j = i
            while j + 1 < n and snr[keys[j + 1]] == snr[keys[i]]:
                j += 1
            place = (i + j) / 2
            for k in keys[i:j + 1]:
                out[k] = place / (n - 1) if n > 1 else 0.5
            i = j + 1
    return out


def region_matrices(region: Region, groups: dict[str, list[str]], n_layers: int) -> list[tuple[int, str]]:
    """The (layer, projection) matrices a region trains."""
    return [(layer, p) for layer in region.layers(n_layers) for m in region.modules for p in groups[m]]


def rank_regions(regions: list[Region], snr: dict[tuple[int, str], float], groups: dict[str, list[str]],
                 n_layers: int) -> list[dict]:
    """Each region with its mean SNR percentile (``value``) and mean SNR, best first; ties go to the smaller
    region (it touches less), then to the id, as the tree search's ties do."""
    where = percentiles(snr)
    rows = []
    for region in regions:
        matrices = region_matrices(region, groups, n_layers)
        if missing := [m for m in matrices if m not in snr]:
            raise ValueError(f"region {region.id}: no SNR for the matrices {missing[:3]} (the model lacks them)")
        rows.append({"id": region.id, "label": region.label, "layers": region.layers(n_layers),
                     "modules": list(region.modules), "matrices": len(matrices),
                     "value": sum(where[m] for m in matrices) / len(matrices),
                     "snr": sum(snr[m] for m in matrices) / len(matrices)})
    rows.sort(key=lambda r: (-r["value"], len(r["layers"]) * len(r["modules"]), r["id"]))
    for place, row in enumerate(rows, 1):
        row["rank"] = place
    return rows
