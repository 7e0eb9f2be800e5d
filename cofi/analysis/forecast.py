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


def forecast_points(forecast: pd.DataFrame | None, test: pd.DataFrame, task: str, base: str = "base") -> pd.DataFrame:
    """Per run that measured its KL on ``task``: its early KL and its Vers drop from the base model (``test``: the
    per-seed test rows; both means over seeds). Empty without a forecast frame or the base model's row."""
    base_vers = test[(test["method"] == base) & (test["task"] == task)]["vers"]
    if forecast is None or base_vers.empty:
        return pd.DataFrame(columns=["method", "kl_early", "vers_drop"])
    kl = forecast[forecast["task"] == task].groupby("method")["kl_early"].mean().dropna()
    vers = test[(test["task"] == task) & test["method"].isin(kl.index)].groupby("method")["vers"].mean()
    runs = sorted(set(kl.index) & set(vers.index))
    return pd.DataFrame({"method": runs, "kl_early": [kl[r] for r in runs],
                         "vers_drop": [float(base_vers.mean()) - vers[r] for r in runs]})


def plot_forecast(points: dict[str, pd.DataFrame], rho: dict[str, float], stem) -> None:
    """One panel per task: each run's early KL against its final Vers drop, labelled, with Spearman's ρ."""
    from cofi.io import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(5.5 * len(points), 4.5), squeeze=False)
    for axis, (task, frame) in zip(axes[0], points.items()):
        axis.scatter(frame["kl_early"], frame["vers_drop"], color="tab:blue")
        for row in frame.itertuples():
            axis.annotate(row.method, (row.kl_early, row.vers_drop), fontsize=6, xytext=(3, 2),
                          textcoords="offset points")
        axis.set_xlabel(f"KL(base ‖ run) at {EARLY:.0%} of training (nats, mean over seeds)")
        axis.set_ylabel("Vers drop from the base model (test, mean over seeds)")
        axis.set_title(f"{task}: Spearman ρ {rho.get(task, float('nan')):.2f} over {len(frame)} runs")
        if frame.empty:
            axis.text(0.5, 0.5, "no run measured its KL (training.kl_every)", ha="center", transform=axis.transAxes)
    fig.tight_layout()
    save_figure(fig, stem)
