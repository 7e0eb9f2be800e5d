"""The two-level bootstrap (cofi/analysis/intervals.py) on synthetic items whose answer is known."""

import numpy as np
import pytest

from cofi.analysis.intervals import (Bootstrap, Cell, detectable_difference, interval, items_needed, shared_seeds,
                                     SUITES)


def cell(task, per_seed: dict, **suites_override) -> Cell:
    """A cell whose every suite holds ``per_seed[seed]`` (an item array in 0–1), unless a suite is overridden."""
    rows = []
    for seed, items in per_seed.items():
        scores = {s: np.asarray(suites_override.get(s, {}).get(seed, items), dtype=float) for s in SUITES}
        rows.append({"seed": seed, **{s: 100 * v.mean() for s, v in scores.items()},
                     "item_scores": {s: list(v) for s, v in scores.items()}})
    return Cell.of(task, rows)


def binary(n, correct, rng=None):
    items = np.zeros(n)
    items[:correct] = 1
    return rng.permutation(items) if rng is not None else items


def width(replicates):
    low, high = interval(replicates)
    return high - low


def test_the_same_bootstrap_seed_gives_the_same_interval_and_another_seed_another():
    c = cell("bio", {0: binary(100, 60), 1: binary(100, 70)})
    first, again, other = (Bootstrap(seed=s).columns(c)["uni"] for s in (0, 0, 1))
    assert interval(first) == interval(again) and interval(first) != interval(other)


def test_the_interval_narrows_as_the_square_root_of_the_items():
    few, many = (Bootstrap().columns(cell("bio", {0: binary(n, n // 2)}))["spec"] for n in (100, 1600))
    assert 3.2 < width(few) / width(many) < 4.8  # √16 = 4
    assert width(few) == pytest.approx(2 * 1.96 * 100 * np.sqrt(0.25 / 100), rel=0.15)  # the binomial's ±9.8


def test_items_are_crossed_with_seeds_not_nested_in_them():
    """Every seed scored the same items: three seeds that agree item for item are no more certain than one (a draw of
    items per seed would shrink the interval by √3)."""
    items = binary(200, 120, np.random.default_rng(0))
    one = Bootstrap().columns(cell("bio", {0: items}))["spec"]
    three = Bootstrap().columns(cell("bio", {0: items, 1: items, 2: items}))["spec"]
    assert width(three) == pytest.approx(width(one), rel=0.08)


def test_a_file_without_item_scores_gets_an_interval_from_its_seeds_alone():
    rows = [{"seed": s, "spec": v, "know": 50.0, "reason": 50.0, "instruct": 50.0, "item_scores": None}
            for s, v in ((0, 60.0), (1, 70.0), (2, 80.0))]
    c = Cell.of("bio", rows)
    assert not c.itemised and c.means()["spec"] == pytest.approx(70.0)
    low, high = interval(Bootstrap().columns(c)["spec"])
    assert 60.0 <= low < 70.0 < high <= 80.0
    assert width(Bootstrap().columns(c)["know"]) == pytest.approx(0.0, abs=1e-9)  # the same in every seed


def test_ninety_five_percent_intervals_cover_the_truth_about_95_percent_of_the_time():
    """Experiments drawn from a known world (3 seeds whose skill varies around 0.6, 150 items of varying
    difficulty): the interval of the mean covers the world's true mean in about 95 % of them."""
    rng = np.random.default_rng(7)
    bootstrap = Bootstrap(replicates=500)
    covered, experiments = 0, 150
    for _ in range(experiments):
        difficulty = rng.normal(0, 1, 150)  # the items drawn from an endless pool
        per_seed = {}
        for seed in range(3):
            skill = 0.4 + rng.normal(0, 0.15)  # a seed's own luck
            per_seed[seed] = (rng.random(150) < 1 / (1 + np.exp(-(skill - difficulty)))).astype(float)
        truth = _true_mean(rng)
        low, high = interval(bootstrap.columns(cell("bio", per_seed))["spec"])
        covered += low <= truth <= high
    assert 0.88 <= covered / experiments <= 0.995


def _true_mean(rng) -> float:
    """The world's mean accuracy over its seeds and items (Monte Carlo, large: the truth up to 0.1 point)."""
    skill = 0.4 + rng.normal(0, 0.15, 4000)[:, None]
    difficulty = rng.normal(0, 1, 400)[None, :]
    return float(100 * (1 / (1 + np.exp(-(skill - difficulty)))).mean())


def test_a_paired_difference_sees_what_two_separate_intervals_cannot():
    """Two models that agree on 180 of 200 items and differ on 20 (15 for A, 5 for B): A is 5 points better. Each
    alone has an interval of about ±7 points, so theirs overlap; the paired difference's excludes 0."""
    rng = np.random.default_rng(1)
    shared = binary(180, 120, rng)
    a = np.concatenate([shared, np.ones(15), np.zeros(5)])
    b = np.concatenate([shared, np.zeros(15), np.ones(5)])
    mine, theirs, seeds = Bootstrap().paired(cell("bio", {0: a}), cell("bio", {0: b}))
    assert seeds == 1
    alone = [interval(Bootstrap().columns(cell("bio", {0: x}))["spec"]) for x in (a, b)]
    assert alone[0][0] < alone[1][1]  # overlapping
    low, high = interval(mine["spec"] - theirs["spec"])
    assert 0 < low < 5 < high < 10


def test_the_base_model_pairs_with_every_seed_and_rows_pair_on_the_seeds_they_share():
    base = cell("bio", {None: binary(50, 40)})
    row = cell("bio", {0: binary(50, 30), 2: binary(50, 35)})
    other = cell("bio", {1: binary(50, 30), 2: binary(50, 20)})
    assert shared_seeds(row, base) == (0, 2) and shared_seeds(row, other) == (2,)
    mine, theirs, seeds = Bootstrap().paired(row, other)
    assert seeds == 1 and np.mean(mine["spec"] - theirs["spec"]) == pytest.approx(30.0, abs=1.0)  # 70 % − 40 %
    with pytest.raises(ValueError, match="share no seed"):
        Bootstrap().paired(cell("bio", {0: binary(50, 1)}), cell("bio", {1: binary(50, 1)}))
    with pytest.raises(ValueError, match="scored different items"):
        Bootstrap().paired(cell("bio", {0: binary(50, 1)}), cell("bio", {0: binary(60, 1)}))


def test_the_items_needed_give_the_power_they_promise():
    """At the items items_needed gives for a 10-point paired difference (20 % of items discordant), a simulated
    two-sided z-test at 5 % finds the difference in about 80 % of experiments."""
    n = items_needed(0.10, discordant=0.2)
    assert n == 150
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(2000):
        # per item: +1 (only A right) with 0.15, −1 (only B right) with 0.05, 0 otherwise
        draws = rng.choice([1.0, -1.0, 0.0], size=n, p=[0.15, 0.05, 0.80])
        found += abs(draws.mean()) / (draws.std(ddof=1) / np.sqrt(n)) > 1.96
    assert 0.75 <= found / 2000 <= 0.86
    assert items_needed(0.10, 0.2, uni=True) == 50  # Uni: a third of one suite's variance
    assert detectable_difference(1.0) == pytest.approx(2.8016, abs=1e-3)
    with pytest.raises(ValueError, match="difference"):
        items_needed(0.3, discordant=0.2)
