"""Sharpness against forgetting (pure pandas and matplotlib, no torch): a table of every model's
sharpness figures (from :mod:`cofi.analysis.landscape` results) with its Vers drop, Spearman's rank
correlation of each figure with the drop, and every model's 1-D curves on one figure per task.
"""

from __future__ import annotations

from cofi.analysis.stats import spearman
from cofi.config.names import BASE_ROW


FIGURES = ("rise_1d", "rise_2d", "grad", "curvature")
BATCHES = ("spec", "vers")  # the landscape's fixed batches: the task's examples, the versatility suites'
COLUMNS = tuple(f"{batch}_{figure}" for batch in BATCHES for figure in FIGURES)  # of sharpness.csv


def sharpness_table(landscapes: list[dict], vers: dict[tuple[str, str], float], base_vers: dict[str, float]):
    """(table, correlations): one row per run × task with the Vers drop (base Vers − run Vers) and every
    sharpness figure; per task, Spearman's ρ of each figure with the Vers drop over the fine-tuned runs."""
    import pandas as pd

    rows = []
    for result in landscapes:
        run, task = result["run"], result["task"]
        row = {"run": run, "task": task, "seed": result["seed"], "vers": vers[(run, task)],
               "vers_drop": base_vers[task] - vers[(run, task)]}
        for batch, figures in result["sharpness"].items():
            row |= {f"{batch}_{name}": figures[name] for name in FIGURES}
        rows.append(row)
    table = pd.DataFrame(rows)
    figure_columns = [c for c in COLUMNS if c in table.columns]
    correlations = []
    for task, group in table[table["run"] != BASE_ROW].groupby("task", sort=False):
        correlations.append({"task": task, "runs": len(group),
                             **{c: spearman(group[c], group["vers_drop"]) for c in figure_columns}})
    return table, pd.DataFrame(correlations)


def plot_curves(landscapes: list[dict], task: str, stem) -> None:
    """Every run's 1-D curves on one task, speciality and versatility batch side by side."""
    from cofi.io import pyplot, save_figure

    plt = pyplot()
    keys = list(landscapes[0]["loss_1d"])
    figure, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for axis, key in zip(axes[0], keys):
        for result in landscapes:
            style = {"color": "black", "lw": 2} if result["run"] == BASE_ROW else {}
            axis.plot(result["alphas_1d"], result["loss_1d"][key], label=result["run"], **style)
        axis.set_yscale("log")
        axis.set_title(f"{task}: loss on the {key} batch along one direction")
        axis.set_xlabel("α (filter-normalised direction)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("loss")
    axes[0][-1].legend(fontsize=7, ncol=2)
    figure.tight_layout()
    save_figure(figure, stem, dpi=120)


def write_sharpness(landscape_files, score_files, out_dir, plot_dir):
    """From landscape JSON files and the score files of the same models (and the base model's; PATH or RUN=PATH,
    :func:`cofi.jobs.evaluate.read_scores`):
    ``sharpness.csv``/``.md`` and ``sharpness_correlation.csv`` in ``out_dir``, every model's 1-D curves
    per task in ``plot_dir``. Returns (table, correlations)."""
    from pathlib import Path

    from cofi.io import read_json
    from cofi.jobs.evaluate import read_scores

    landscapes, vers, base_vers = [read_json(path) for path in landscape_files], {}, {}
    for data in map(read_scores, map(str, score_files)):
        if data["labels"]["method"] == BASE_ROW:
            base_vers = {task: data["vers"] for task in data["spec"]}
        else:
            for task in data["spec"]:
                vers[(data["labels"]["method"], task)] = data["vers"]
    for result in landscapes:
        if result["run"] == BASE_ROW:
            vers[(BASE_ROW, result["task"])] = base_vers[result["task"]]
    table, correlations = sharpness_table(landscapes, vers, base_vers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sharpness.csv", index=False, float_format="%.6g")
    correlations.to_csv(out / "sharpness_correlation.csv", index=False, float_format="%.3f")
    (out / "sharpness.md").write_text(
        "Sharpness of each model's loss landscape (spec/vers: the fixed speciality/versatility batch) and its "
        "Vers drop (base Vers − the model's, test split, same seed).\n\n" + table.round(4).to_markdown(index=False)
        + "\n\nSpearman's rank correlation of each figure with the Vers drop, over the fine-tuned runs of a task:\n\n"
        + correlations.round(3).to_markdown(index=False) + "\n")
    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    for task in dict.fromkeys(r["task"] for r in landscapes):
        plot_curves([r for r in landscapes if r["task"] == task], task, Path(plot_dir) / f"landscape_{task}")
    return table, correlations
