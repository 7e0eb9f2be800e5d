"""The forgetting forecast: each run's KL to the base model early in training (``training.kl_every``'s curve), to be
ranked against its final Vers drop (the claims' ``kl_forecast``: pure pandas, no files but the curves read here)."""

from __future__ import annotations

import pandas as pd

EARLY = 0.2  # "KL at 20 % of training"


def early_kl(curve: pd.DataFrame, steps: int, fraction: float = EARLY) -> float:
    """The KL measured at the first measured step at or past ``fraction`` of ``steps`` (NaN without one)."""
    measured = curve.dropna(subset=["kl"]) if "kl" in curve else curve.iloc[0:0]
    late_enough = measured[measured["step"] >= fraction * steps]
    return float(late_enough["kl"].iloc[0]) if not late_enough.empty else float("nan")


def forecast_frame(curves: list[dict], fraction: float = EARLY) -> pd.DataFrame:
    """One row per run, task and seed: ``kl_early`` from its loss curve (``curves``: {"method", "task", "seed",
    "steps", "path"} each)."""
    rows = [{"method": c["method"], "task": c["task"], "seed": c["seed"],
             "kl_early": early_kl(pd.read_csv(c["path"]), c["steps"], fraction)} for c in curves]
    return pd.DataFrame(rows, columns=["method", "task", "seed", "kl_early"])
