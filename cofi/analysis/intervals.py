"""95 % intervals from seeds and items: a two-level bootstrap (pure numpy and pandas; no torch, no files).

A table cell (a run on a task) is a mean over seeds of scores that are themselves means over items. One
bootstrap replicate of it:

1. draws the seeds with replacement (as many as the cell has);
2. draws each suite's items with replacement, one draw per suite, used in every seed: every seed scored the
   same items, so items are crossed with seeds, not nested in them (a fresh draw per seed would shrink the
   items' share of the variance by the number of seeds);
3. computes the statistic (a score, a ratio, a difference of two rows) from the drawn seeds and items.

The interval is the 2.5th and 97.5th percentile of the replicates. The draws depend only on the suite (its
name and size) and the number of seeds, never on the row, so two rows on the same seeds and items see the
same draws: their difference is a *paired* replicate, and its interval keeps out what the rows share. The
draws are seeded: the same tables every time.

A score file without per-item scores (an older one, or an evaluator that does not keep them) takes part with
each suite's score as its one item: its interval then comes from the seeds alone, and the table says so.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

SUITES = ("spec", "know", "reason", "instruct")
CONFIDENCE = 0.95
POWER = 0.80
Z_TWO_SIDED = 1.959963984540054  # the standard normal's 97.5th percentile (5 % level, two-sided)
Z_POWER = 0.8416212335729143  # its 80th percentile (80 % power)


@dataclass(frozen=True)
class Cell:
    """One row on one task: per seed, each suite's item scores in [0, 1] (``items[suite]``: seeds × items).
    ``seeds`` are the seed labels (``(None,)`` for the base model, scored once); ``itemised`` is False where
    some score file had no item scores."""

    task: str
    seeds: tuple
    items: dict
    itemised: bool = True

    @classmethod
    def of(cls, task: str, rows: list[dict]) -> "Cell":
        """From per-seed rows (``seed``, the suites' scores in [0, 100], ``item_scores``: {suite: [0–1, …]} or None)."""
        rows = sorted(rows, key=lambda r: (r["seed"] is None, r["seed"]))
        itemised = all(r.get("item_scores") for r in rows)
        items = {}
        for suite in SUITES:
            per_seed = [np.asarray(r["item_scores"][suite], dtype=float) if itemised else np.array([r[suite] / 100])
                        for r in rows]
            if len({len(v) for v in per_seed}) > 1:
                raise ValueError(f"{task} {suite}: the seeds scored different numbers of items "
                                 f"({[len(v) for v in per_seed]}); a cell's seeds must share their items")
            items[suite] = np.stack(per_seed)
        return cls(task, tuple(r["seed"] for r in rows), items, itemised)

    def means(self) -> dict[str, float]:
        """Each column's mean over seeds (of the mean over items): what the table shows."""
        suite = {s: 100 * float(v.mean()) for s, v in self.items.items()}
        vers = (suite["know"] + suite["reason"] + suite["instruct"]) / 3
        return {**suite, "vers": vers, "uni": (suite["spec"] + vers) / 2}

    def on(self, seeds: tuple) -> "Cell":
        """The cell on ``seeds`` (the base model's one score stands for every seed)."""
        if self.seeds == (None,):
            return replace(self, seeds=seeds, items={s: np.repeat(v, len(seeds), axis=0) for s, v in self.items.items()})
        index = [self.seeds.index(s) for s in seeds]
        return replace(self, seeds=seeds, items={s: v[index] for s, v in self.items.items()})


def shared_seeds(a: Cell, b: Cell) -> tuple:
    """The seeds two cells are compared on: those both have (the base model pairs with every seed)."""
    if a.seeds == (None,):
        return b.seeds
    if b.seeds == (None,):
        return a.seeds
    return tuple(s for s in a.seeds if s in b.seeds)


class Bootstrap:
    """Seeded replicates of table cells; draws are cached per suite and per seed count (every row reuses them)."""

    def __init__(self, replicates: int = 2000, seed: int = 0):
        if replicates < 100:
            raise ValueError(f"a bootstrap needs at least 100 replicates, got {replicates}")
        self.replicates, self.seed = replicates, seed
        self._weights: dict = {}

    def _draws(self, key: str, size: int) -> np.ndarray:
        """Replicates × size multinomial weights summing to 1 per replicate (how often each one was drawn)."""
        if (key, size) not in self._weights:
            rng = np.random.default_rng([self.seed, zlib.crc32(key.encode()), size])
            counts = rng.multinomial(size, np.full(size, 1 / size), size=self.replicates)
            self._weights[key, size] = counts / size
        return self._weights[key, size]

    def columns(self, cell: Cell) -> dict[str, np.ndarray]:
        """Each score column's replicates (0–100): Spec, Know, Reason, Instruct, Vers, Uni of the cell."""
        per_seed = {}
        for suite, items in cell.items.items():
            key = f"spec:{cell.task}" if suite == "spec" else suite
            weights = self._draws(key, items.shape[1]) if cell.itemised else self._draws("", 1)
            per_seed[suite] = 100 * weights @ items.T  # replicates × seeds
        per_seed["vers"] = (per_seed["know"] + per_seed["reason"] + per_seed["instruct"]) / 3
        per_seed["uni"] = (per_seed["spec"] + per_seed["vers"]) / 2
        seeds = self._draws("seeds", len(cell.seeds))
        return {column: (seeds * values).sum(axis=1) for column, values in per_seed.items()}

    def paired(self, a: Cell, b: Cell) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
        """Both cells' column replicates on their shared seeds, drawn alike; and how many seeds that is."""
        seeds = shared_seeds(a, b)
        if not seeds:
            raise ValueError(f"{a.task}: the two rows share no seed")
        for suite in SUITES:
            if a.itemised and b.itemised and a.items[suite].shape[1] != b.items[suite].shape[1]:
                raise ValueError(f"{a.task} {suite}: the two rows scored different items "
                                 f"({a.items[suite].shape[1]} and {b.items[suite].shape[1]}); a paired comparison "
                                 "needs the same")
        return self.columns(a.on(seeds)), self.columns(b.on(seeds)), len(seeds)


def interval(replicates: np.ndarray) -> tuple[float, float]:
    """The percentile interval at :data:`CONFIDENCE` (NaN where every replicate is undefined)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(low), float(high)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """100 · a / b per replicate (NaN where b is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 100 * numerator / np.where(denominator > 0, denominator, 1), np.nan)


def detectable_difference(standard_error: float) -> float:
    """The smallest true difference a two-sided test at the 5 % level finds with 80 % power, for an estimate with
    this standard error (normal approximation): (z₀.₉₇₅ + z₀.₈₀) · SE ≈ 2.80 · SE."""
    return (Z_TWO_SIDED + Z_POWER) * standard_error


# Uni = Spec / 2 + (Know + Reason + Instruct) / 6: with n items in each suite and one item variance v, Var(Uni) =
# v/n · (1/4 + 3/36) = v / (3n): a third of one suite's.
UNI_VARIANCE_SHARE = 1 / 4 + 3 / 36


def items_needed(difference: float, discordant: float = 0.2, uni: bool = False) -> int:
    """Items per suite for a paired comparison of two models on pass/fail items to detect ``difference`` (a share:
    0.05 is 5 points) with 80 % power at the 5 % level, seeds aside: n = (z₀.₉₇₅ + z₀.₈₀)² · (d − Δ²) / Δ², where
    ``discordant`` (d) is the share of items the two models score differently (McNemar's normal approximation: a
    per-item difference has variance d − Δ²). ``uni``: the difference is in Uni, every suite of that size
    (:data:`UNI_VARIANCE_SHARE` of the variance)."""
    if not 0 < difference <= discordant <= 1:
        raise ValueError(f"need 0 < difference ≤ discordant share ≤ 1, got {difference} and {discordant}")
    share = UNI_VARIANCE_SHARE if uni else 1.0
    return int(np.ceil((Z_TWO_SIDED + Z_POWER) ** 2 * (discordant - difference ** 2) * share / difference ** 2))
