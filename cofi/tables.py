"""Result tables, built with pandas from the per-model score files only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SCORE_COLUMNS = ["spec", "know", "reason", "instruct", "vers", "uni"]
HEADERS = {"spec": "Spec", "know": "Know", "reason": "Reason", "instruct": "Instruct", "vers": "Vers", "uni": "Uni"}


def score_rows(scores: dict) -> list[dict]:
    """One tidy row per task scored in a score file (the base model is scored on every task)."""
    labels = scores["labels"]
    return [
        {
            "method": labels["method"],
            "task": task,
            "seed": labels.get("seed"),
            "spec": spec,
            **{key: scores[key] for key in ("know", "reason", "instruct", "vers")},
            "uni": scores["uni"][task],
        }
        for task, spec in scores["spec"].items()
    ]


COARSE = "cofitune_coarse"


def tidy_table(files: list[str | Path]) -> pd.DataFrame:
    """Mean over seeds per method × task, in the order methods first appear (base first).

    ``files`` are score files and search results (``result.json``, told apart by their
    ``selected`` key): a search's pick is shown as the method ``cofitune_coarse``, its region id
    in ``detail``.
    """
    loaded = []
    for path in files:
        with open(path) as handle:
            loaded.append(json.load(handle))
    picks = {(r["run"], r["task"]): r["selected"] for r in loaded if "selected" in r}
    rows = []
    for scores in (s for s in loaded if "selected" not in s):
        for row in score_rows(scores):
            region = picks.get((row["method"], row["task"]))
            rows.append({**row, "method": COARSE if region else row["method"], "detail": region or ""})
    if not rows:
        raise ValueError("no score files given")
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(["base"] + frame["method"].tolist()))
    grouped = frame.groupby(["method", "task"], sort=False)
    table = (grouped[SCORE_COLUMNS].mean().join(grouped["seed"].nunique(dropna=False).rename("n_seeds"))
             .join(grouped["detail"].first()).reset_index())
    table["method"] = pd.Categorical(table["method"], [m for m in order if m in set(table["method"])], ordered=True)
    return table.sort_values(["method", "task"]).reset_index(drop=True).assign(method=lambda t: t["method"].astype(str))


def markdown_table(tidy: pd.DataFrame, digits: int = 1) -> str:
    """Methods as rows; per task the columns Spec, Know, Reason, Instruct, Vers, Uni."""
    wide = tidy.pivot(index="method", columns="task", values=SCORE_COLUMNS)
    wide = wide.reindex(index=list(dict.fromkeys(tidy["method"])))
    tasks = list(dict.fromkeys(tidy["task"]))
    wide = wide.reindex(columns=[(col, task) for task in tasks for col in SCORE_COLUMNS])
    wide.columns = [f"{task} {HEADERS[col]}" for col, task in wide.columns]
    text = wide.round(digits).to_markdown(floatfmt=f".{digits}f", missingval="–") + "\n"
    picks = tidy[tidy["detail"] != ""]
    if len(picks):
        text += "\n" + f"{COARSE}: " + "; ".join(f"{t} → {d}" for t, d in zip(picks["task"], picks["detail"])) + "\n"
    return text


def write_tables(files, csv_path, md_path) -> pd.DataFrame:
    tidy = tidy_table(files)
    tidy.to_csv(csv_path, index=False, float_format="%.4f")
    Path(md_path).write_text(markdown_table(tidy))
    return tidy
