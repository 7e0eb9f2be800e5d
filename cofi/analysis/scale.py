"""The scale trend: the same methods at several model sizes, from each experiment's tidy table.

Each experiment (``results/<experiment>``) is one model size of the same study (``make scale``): its
``tables/main.csv`` gives every row's Uni and Vers, its ``base_model`` the parameter count. The trend
is each method's Uni and Vers drop (the base model's Vers minus the method's) against the size.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cofi.config.names import BASE_ROW as BASE


def parameter_count(model_dir: str | Path) -> int:
    """Parameters of a model directory's architecture (built on the meta device: nothing is loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def scale_frame(tables: dict[int, pd.DataFrame], methods: list[str] | None = None) -> pd.DataFrame:
    """One row per size, task and method: Uni and the Vers drop (mean and std over seeds). ``tables``:
    {parameters: the experiment's tidy table}; ``methods``: the rows to keep (default: all but the base)."""
    rows = []
    for params, tidy in sorted(tables.items()):
        base = tidy[tidy["method"] == BASE].set_index("task")["vers"]
        kept = tidy[tidy["method"] != BASE] if methods is None else tidy[tidy["method"].isin(methods)]
        for row in kept.itertuples(index=False):
            rows.append({"params": params, "task": row.task, "method": row.method, "uni": row.uni, "uni_std": row.uni_std,
                         "vers": row.vers, "vers_drop": base[row.task] - row.vers, "vers_drop_std": row.vers_std,
                         "spec": row.spec})
    return pd.DataFrame(rows)


def plot_scale(frame: pd.DataFrame, stem: str | Path) -> None:
    """Uni and Vers drop against the parameter count (log scale), one line per method, one column per task."""
    from cofi.io import pyplot, save_figure

    plt = pyplot()
    tasks = list(dict.fromkeys(frame["task"]))
    figure, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 7.5), squeeze=False, sharex=True)
    for column, task in enumerate(tasks):
        on_task = frame[frame["task"] == task]
        for method, group in on_task.groupby("method", sort=False):
            group = group.sort_values("params")
            for row, (value, spread) in enumerate((("uni", "uni_std"), ("vers_drop", "vers_drop_std"))):
                axes[row][column].errorbar(group["params"], group[value], yerr=group[spread].fillna(0), marker="o",
                                           capsize=3, label=method)
        axes[0][column].set_title(f"{task}: Uni")
        axes[1][column].set_title(f"{task}: Vers drop (base − run)")
        axes[1][column].set_xlabel("parameters")
        for row in (0, 1):
            axes[row][column].set_xscale("log")
            axes[row][column].grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    figure.suptitle("Each method against the model's size (mean ± std over seeds)")
    figure.tight_layout()
    save_figure(figure, stem, dpi=120)


def write_scale(experiments: list[str | Path], out_dir: str | Path, methods: list[str] | None = None) -> pd.DataFrame:
    """scale.csv and scale.png/.pdf in ``out_dir`` from finished experiments of one study at several sizes."""
    tables = {}
    for experiment in map(Path, experiments):
        params = parameter_count(experiment / "base_model")
        if params in tables:
            raise ValueError(f"{experiment}: the same size ({params:,} parameters) as another experiment")
        tables[params] = pd.read_csv(experiment / "tables" / "main.csv")
    frame = scale_frame(tables, methods)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "scale.csv", index=False, float_format="%.4f")
    plot_scale(frame, out / "scale")
    return frame
