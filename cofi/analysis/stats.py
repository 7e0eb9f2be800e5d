"""Statistics the analysis shares (pure: pandas and numpy, no torch)."""

from __future__ import annotations

import pandas as pd


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (ties share their mean rank)."""
    a, b = pd.Series(a, dtype=float), pd.Series(b, dtype=float)
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.rank().corr(b.rank()))


def spearman_critical(n: int, alpha: float = 0.05, draws: int = 20000, seed: int = 0) -> float:
    """The one-sided critical value of Spearman's ρ for ``n`` pairs without ties: the (1 − alpha) quantile of ρ
    under random permutations (seeded: the same value every time)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ranks = np.arange(n, dtype=float)
    centred = ranks - ranks.mean()
    rhos = np.array([np.dot(centred, rng.permutation(centred)) for _ in range(draws)]) / np.dot(centred, centred)
    return float(np.quantile(rhos, 1 - alpha))
