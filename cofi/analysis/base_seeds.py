"""The base model's seed as a source of uncertainty (``make base-seeds``; pure pandas, no torch).

An experiment on the embedded model is conditional on one base model: its tables' ± is the spread over
fine-tuning seeds from that one base. A study repeats the whole experiment (its search, importance, every
run and seed) on base models built with other seeds, each as an experiment of its own, and compares:

- each cell (row, task, score): the spread *between* base seeds (the standard deviation of the experiments'
  means) next to the spread *within* one (the mean of the experiments' standard deviations over fine-tuning
  seeds);
- each claim's verdict per base seed, and whether it moves.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SCORES = ("spec", "vers", "uni")


def seed_configs(config: dict, seeds: list[int]) -> dict[int, dict]:
    """{base seed: the config with embedded.base.seed set}: the config's own seed keeps its experiment's name
    (its finished results count), every other seed an experiment ``<name>_base<seed>`` of its own."""
    own = ((config.get("embedded") or {}).get("base") or {}).get("seed", 0)
    configs = {}
    for seed in seeds:
        embedded = dict(config.get("embedded") or {})
        embedded["base"] = {**(embedded.get("base") or {}), "seed": seed}
        name = config["experiment"] if seed == own else f"{config['experiment']}_base{seed}"
        configs[seed] = {**config, "experiment": name, "embedded": embedded}
    return configs


def spread_frame(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per table row, task and score: the mean over base seeds, the spread between base seeds and the
    mean spread within one (over fine-tuning seeds), and their ratio. ``tables``: {base seed: main.csv}."""
    long = pd.concat([table.assign(base_seed=seed) for seed, table in tables.items()], ignore_index=True)
    rows = []
    for (method, task), group in long.groupby(["method", "task"], sort=False):
        for score in SCORES:
            between = group[score].std(ddof=1) if len(group) > 1 else float("nan")
            within = group[f"{score}_std"].mean()
            rows.append({"method": method, "task": task, "score": score, "base_seeds": len(group),
                         "mean": group[score].mean(), "between_base_seeds": between, "within_base_seed": within,
                         "ratio": between / within if within > 0 else float("nan"),
                         **{f"base{seed}": value for seed, value in zip(group["base_seed"], group[score])}})
    return pd.DataFrame(rows)


def verdict_frame(claims: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim and part (task, against): its verdict under each base seed, and whether it moves.
    ``claims``: {base seed: claims.csv}. A part is matched by claim and task (its 'against' may name another
    run under another base seed, e.g. the best rival)."""
    rows: dict[tuple[str, str], dict] = {}
    for seed, frame in claims.items():
        for part in frame.itertuples(index=False):
            row = rows.setdefault((part.claim, part.task), {"claim": part.claim, "task": part.task})
            row[f"base{seed}"] = part.verdict
            row.setdefault("against", set()).add(str(part.against))
    table = pd.DataFrame(rows.values())
    verdicts = [f"base{seed}" for seed in claims]
    table["against"] = table["against"].map(lambda names: "; ".join(sorted(names)))
    table["moves"] = table[verdicts].nunique(axis=1, dropna=False) > 1
    return table[["claim", "task", "against", *verdicts, "moves"]]


def write_base_seeds(experiments: dict[int, str | Path], out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """spread.csv/.md and verdicts.csv/.md in ``out_dir``, from finished experiments ({base seed: results/<exp>})."""
    tables = {seed: pd.read_csv(Path(path) / "tables" / "main.csv") for seed, path in experiments.items()}
    claims = {seed: pd.read_csv(Path(path) / "tables" / "claims.csv") for seed, path in experiments.items()}
    spread, verdicts = spread_frame(tables), verdict_frame(claims)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spread.to_csv(out / "spread.csv", index=False, float_format="%.4f")
    verdicts.to_csv(out / "verdicts.csv", index=False)
    seeds = ", ".join(map(str, experiments))
    (out / "spread.md").write_text(
        f"Every cell under base seeds {seeds}: the mean, the spread between base seeds (std of the experiments' "
        "means) and within one (mean std over fine-tuning seeds)\n\n" + spread.round(2).to_markdown(index=False) + "\n")
    moved = int(verdicts["moves"].sum())
    (out / "verdicts.md").write_text(
        f"Each claim's verdict per task under base seeds {seeds}: {moved} of {len(verdicts)} move\n\n"
        + verdicts.to_markdown(index=False) + "\n")
    return spread, verdicts
