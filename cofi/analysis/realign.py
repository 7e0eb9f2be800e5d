"""The realignment probe (spurious forgetting): how much of a row's versatility drop a few training steps on a
handful of versatility examples bring back, against what the same steps give the base model.

Per row, task and versatility suite (and Vers), on the test split, each model's scores before and after its probe:

- the drop, base − row (what the tables show);
- recovered, row after − row before: the points the probe brings back;
- the control, base after − base before: what the same steps do to a model that forgot nothing (teach it the
  suite's form from the examples, or cost it some);
- beyond, recovered − the control where the control is a gain: what came back that the steps do not teach anyone.
  A control that is a loss is not added back: a row already at the floor cannot lose what the base model loses
  (on the real model 10 steps of bare answers cost the base model 14 Reason points, and Full SFT had 1 left);
- the share of the drop beyond accounts for, where the drop is real (its interval above 0): near 100 %, the drop
  was the form of the answers (spurious); near 0 %, the answers are gone.

Intervals: the tables' bootstrap (:mod:`cofi.analysis.intervals`), the four cells drawn alike (the same seeds and
items), so each difference is paired.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cofi.analysis.intervals import Bootstrap, interval, ratio, shared_seeds
from cofi.config.names import BASE_ROW as BASE

COLUMNS = ("know", "reason", "instruct", "vers")
MEASURES = ("drop", "recovered", "control", "beyond", "share")


def realign_table(before: pd.DataFrame, after: pd.DataFrame, bootstrap: Bootstrap | None = None) -> pd.DataFrame:
    """``before``: per-seed rows of the test scores (the base model's among them); ``after``: the same rows' scores
    after the probe (the base model's at each seed). One line per probed row, task and column, each measure with its
    ``_lo``/``_hi`` interval."""
    from cofi.analysis.tables import cells_of

    bootstrap = bootstrap or Bootstrap()
    was, now, out = cells_of(before), cells_of(after), []
    for (row, task), row_after in now.items():
        if row == BASE or (row, task) not in was or (BASE, task) not in was or (BASE, task) not in now:
            continue
        seeds = tuple(s for s in shared_seeds(row_after, was[row, task]) if s in shared_seeds(row_after, now[BASE, task]))
        if not seeds:
            continue
        cells = {"row_before": was[row, task], "row_after": row_after, "base_before": was[BASE, task],
                 "base_after": now[BASE, task]}
        cells = {name: cell.on(seeds) for name, cell in cells.items()}
        drawn = {name: bootstrap.columns(cell) for name, cell in cells.items()}  # cached draws: paired
        means = {name: cell.means() for name, cell in cells.items()}
        for column in COLUMNS:
            replicates, observed = _measures(drawn, column), _measures(means, column)
            replicates["share"] = ratio(replicates["beyond"], replicates["drop"])
            observed["share"] = 100 * observed["beyond"] / observed["drop"] if observed["drop"] > 0 else np.nan
            entry = {"method": row, "task": task, "suite": column, "before": means["row_before"][column],
                     "after": means["row_after"][column], "n_seeds": len(seeds)}
            for measure in MEASURES:
                low, high = interval(replicates[measure])
                entry |= {measure: observed[measure], f"{measure}_lo": low, f"{measure}_hi": high}
            if not entry["drop_lo"] > 0:  # no real drop: no share of it to speak of
                entry |= {"share": np.nan, "share_lo": np.nan, "share_hi": np.nan}
            out.append(entry)
    return pd.DataFrame(out, columns=None if out else ["method", "task", "suite", "before", "after", "n_seeds"])


def _measures(scores: dict, column: str) -> dict:
    """Drop, recovered, control and beyond from the four models' ``column`` (numbers, or replicate arrays)."""
    recovered = scores["row_after"][column] - scores["row_before"][column]
    control = scores["base_after"][column] - scores["base_before"][column]
    return {"drop": scores["base_before"][column] - scores["row_before"][column], "recovered": recovered,
            "control": control, "beyond": recovered - np.maximum(control, 0)}


def realign_markdown(table: pd.DataFrame, steps: int, examples: int, digits: int = 1) -> str:
    """The probe's table as Markdown, with its caption."""
    caption = (f"Realignment probe: each row's models and the base model trained {steps} steps on {examples} "
               "versatility examples (every weight), then scored again; test split, mean over seeds [95 % interval: a "
               "bootstrap over seeds, then items, all four scores drawn alike]. Recovered = after − before; control = "
               "the base model's own change from the same steps; beyond = recovered − the control where the control is a gain "
               "(a loss is not added back: a row at the floor cannot lose it), also as a share of the drop where the "
               "drop's interval is above 0 (near 100 %: the drop was format; near 0 %: answers lost).\n\n")
    if table.empty:
        return caption + "No probed row has scores before and after (realign.runs is empty).\n"

    from cofi.analysis.tables import HEADERS, signed_cell

    lines = ["| row | task | suite | before | after | drop | recovered | control (base) | beyond the base's gain | "
             "share of drop (%) |", "| --- | --- | --- | --: | --: | --: | --: | --: | --: | --: |"]
    for row in table.to_dict("records"):
        lines.append(f"| {row['method']} | {row['task']} | {HEADERS[row['suite']]} | {row['before']:.{digits}f} | "
                     f"{row['after']:.{digits}f} | " + " | ".join(signed_cell(row, m, digits) for m in MEASURES) + " |")
    return caption + "\n".join(lines) + "\n"
