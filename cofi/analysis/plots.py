"""Figures from the tidy result table (``tables/main.csv``): Spec vs Vers with the Pareto front, Uni per method.

Each figure is written as PNG and PDF. Error bars are the std over seeds where there is more than one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from cofi.config.names import BASE_ROW as BASE
from cofi.io import pyplot, save_figure


def pareto_front(points: pd.DataFrame, x: str = "spec", y: str = "vers") -> pd.DataFrame:
    """The rows no other row beats on both ``x`` and ``y`` (higher is better), sorted by ``x``."""
    keep = []
    for i, row in points.iterrows():
        dominated = ((points[x] >= row[x]) & (points[y] >= row[y]) & ((points[x] > row[x]) | (points[y] > row[y]))).any()
        if not dominated:
            keep.append(i)
    return points.loc[keep].sort_values(x)


def label_heights(points: pd.DataFrame, x: str = "spec", y: str = "vers", width: float = 14.0,
                  height: float = 2.6) -> list[float]:
    """Label heights (data units) that keep labels of nearby points from overlapping: each label
    starts at its point and moves down past any earlier label it would cover."""
    placed: list[tuple[float, float]] = []
    heights = [0.0] * len(points)
    for i in sorted(range(len(points)), key=lambda i: (-points[y].iloc[i], points[x].iloc[i])):
        px, label_y = points[x].iloc[i], points[y].iloc[i]
        while any(abs(px - qx) < width and abs(label_y - qy) < height for qx, qy in placed):
            label_y -= height
        placed.append((px, label_y))
        heights[i] = label_y
    return heights


def error_bars(rows: pd.DataFrame, column: str):
    """The 95 % intervals as matplotlib's (below, above) distances from the mean; ± std in a table without them."""
    if f"{column}_lo" not in rows:
        return rows[f"{column}_std"].fillna(0)
    below = (rows[column] - rows[f"{column}_lo"]).clip(lower=0).fillna(0)
    above = (rows[f"{column}_hi"] - rows[column]).clip(lower=0).fillna(0)
    return [list(below), list(above)]


def error_bar(rows: pd.DataFrame, column: str, row) -> list | float:
    """One row's :func:`error_bars` (a point of the Pareto plot)."""
    bars = error_bars(rows[rows["method"] == row.method], column)
    return [[bars[0][0]], [bars[1][0]]] if isinstance(bars, list) else float(bars.iloc[0])


def plot_pareto(tidy: pd.DataFrame, task: str, stem: Path) -> list[Path]:
    """Spec (x) against Vers (y) for every method on one task; the base model as a star, the front as a line."""
    plt = pyplot()
    rows = tidy[tidy["task"] == task].reset_index(drop=True)
    figure, axis = plt.subplots(figsize=(7.5, 6))
    front = pareto_front(rows)
    axis.plot(front["spec"], front["vers"], "-", color="tab:red", lw=1.2, alpha=0.7, zorder=1, label="Pareto front")
    for row in rows.itertuples(index=False):
        is_base = row.method == BASE
        axis.errorbar(row.spec, row.vers, xerr=error_bar(rows, "spec", row), yerr=error_bar(rows, "vers", row),
                      fmt="*" if is_base else "o",
                      ms=14 if is_base else 6, color="black" if is_base else ("tab:red" if row.method in set(front["method"]) else "tab:blue"),
                      ecolor="0.75", elinewidth=0.8, zorder=2)
    for (x, y), label_y, name in zip(rows[["spec", "vers"]].values, label_heights(rows), rows["method"]):
        axis.annotate(name, (x, y), xytext=(x + 1.2, label_y), fontsize=7,
                      arrowprops={"arrowstyle": "-", "color": "0.7", "lw": 0.5} if abs(label_y - y) > 1.5 else None)
    axis.set_xlabel(f"Spec ({task})")
    axis.set_ylabel("Vers (mean of Know, Reason, Instruct)")
    axis.set_title(f"{task}: speciality vs versatility (base model ★; mean and 95 % interval)")
    axis.set_xlim(-3, 103)
    axis.set_ylim(-3, 103)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, stem)


def plot_uni(tidy: pd.DataFrame, stem: Path) -> list[Path]:
    """Uni per method, one panel per task, with the base model's and the reference's levels marked."""
    plt = pyplot()
    tasks = list(dict.fromkeys(tidy["task"]))
    methods = list(dict.fromkeys(tidy["method"]))
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks) + 1.5, 0.28 * len(methods) + 1.5),
                                sharey=True, squeeze=False)
    for axis, task in zip(axes[0], tasks):
        rows = tidy[tidy["task"] == task].set_index("method").reindex(methods)
        positions = range(len(methods))
        axis.barh(positions, rows["uni"], xerr=error_bars(rows, "uni"), color=[
            "0.3" if m == BASE else "tab:blue" for m in methods], ecolor="0.5", height=0.7)
        axis.set_title(task)
        axis.set_xlabel("Uni = (Spec + Vers) / 2")
        axis.set_xlim(0, 100)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)), methods, fontsize=8)
    axes[0][0].invert_yaxis()
    figure.tight_layout()
    return save_figure(figure, stem)


def write_plots(table_csv: str | Path, out_dir: str | Path, collect: dict[str, str] | None = None) -> list[Path]:
    """Pareto and Uni figures from the tidy table; ``collect``: {target: source} figures copied in
    (search trees, importance heatmaps), so every figure of an experiment is in one folder."""
    tidy = pd.read_csv(table_csv, keep_default_na=False, na_values=[""])
    out = Path(out_dir)
    written = plot_uni(tidy, out / "uni")
    for task in dict.fromkeys(tidy["task"]):
        written += plot_pareto(tidy, task, out / f"pareto_{task}")
    for target, source in (collect or {}).items():
        shutil.copyfile(source, target)
        written.append(Path(target))
    return written


def plot_loss_curves(curves: dict[str, str | Path], title: str, stem: str | Path) -> list[Path]:
    """Training loss against the step of each run (``{label: loss.csv}``); runs that do not train
    (their curve file holds only the header) are left out. Where runs measured their forgetting
    (``training.kl_every``), its two curves beside the loss: KL(base ‖ model) on the task's held-out prompts,
    and the change in versatility cross-entropy. PNG and PDF."""
    plt = pyplot()
    read = {label: pd.read_csv(path) for label, path in curves.items()}
    read = {label: curve for label, curve in read.items() if not curve.empty}
    watched = any("kl" in curve and curve["kl"].notna().any() for curve in read.values())
    panels = [("loss", "training loss (response tokens)"), ("kl", "KL(base ‖ model), task prompts"),
              ("vers_ce_delta", "Δ cross-entropy, versatility")][:3 if watched else 1]
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels) * 0.72 if watched else 7, 4.2), squeeze=False)
    for axis, (column, label_text) in zip(axes[0], panels):
        for label, curve in read.items():
            if column in curve and curve[column].notna().any():
                points = curve.dropna(subset=[column])
                axis.plot(points["step"], points[column], label=label, linewidth=1.2,
                          marker="." if column != "loss" else None)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel(label_text)
    axes[0][0].set_title(title)
    if read:
        axes[0][0].legend(fontsize=7, ncol=2 if len(read) > 8 else 1)
    figure.tight_layout()
    return save_figure(figure, stem)
