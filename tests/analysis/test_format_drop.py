"""The format table on rows whose answers are known: a drop that is all format, one that is all lost answers."""

import numpy as np
import pandas as pd

from cofi.analysis.format_drop import format_markdown, format_table
from cofi.analysis.intervals import Bootstrap


def row(method, seed, reason_strict, reason_lenient, spec=None):
    spec = spec if spec is not None else [1.0] * 20
    items = {"spec": spec, "know": [1.0] * 20, "reason": reason_strict, "instruct": [0.5] * 20}
    scores = {suite: 100 * float(np.mean(values)) for suite, values in items.items()}
    return {"method": method, "task": "bio", "seed": seed, "split": "test", **scores,
            "vers": (scores["know"] + scores["reason"] + scores["instruct"]) / 3, "uni": 0.0,
            "item_scores": items, "item_scores_lenient": {"spec": spec, "reason": reason_lenient}}


def test_the_format_share_tells_answers_said_otherwise_from_answers_lost():
    knows = [1.0] * 16 + [0.0] * 4
    rng = np.random.default_rng(0)
    rows = [row("base", None, knows, knows)]
    for seed in range(3):
        # the same answers, mostly not said in the expected form: the strict score falls, the lenient one holds
        said_otherwise = [0.0 if i < 12 and rng.random() < 0.9 else v for i, v in enumerate(knows)]
        rows.append(row("full", seed, said_otherwise, knows))
        # answers gone: both scores fall alike
        lost = [0.0 if i < 12 and rng.random() < 0.9 else v for i, v in enumerate(knows)]
        rows.append(row("lora", seed, lost, lost))
        rows.append(row("l2", seed, knows, knows))  # no drop
    table = format_table(pd.DataFrame(rows), Bootstrap(500, 0)).set_index(["method", "suite"])
    assert set(table.index) == {(m, "reason") for m in ("full", "lora", "l2")}  # Vers suites: Spec is learnt
    full, lora, l2 = table.loc["full", "reason"], table.loc["lora", "reason"], table.loc["l2", "reason"]
    assert full["strict_drop_lo"] > 0 and full["format_share"] == 100.0 and full["lenient_drop"] == 0.0
    assert lora["strict_drop_lo"] > 0 and lora["format_share"] == 0.0
    assert lora["strict_drop"] == lora["lenient_drop"] > 0
    assert l2["strict_drop"] == 0.0 and np.isnan(l2["format_share"])  # no drop, no share
    assert "| full | bio | Reason |" in format_markdown(table.reset_index())


def test_score_files_without_lenient_scores_give_an_empty_table():
    rows = [row("base", None, [1.0] * 20, [1.0] * 20), row("full", 0, [0.0] * 20, [0.0] * 20)]
    for entry in rows:
        entry["item_scores_lenient"] = None
    table = format_table(pd.DataFrame(rows))
    assert table.empty and "No run has lenient scores" in format_markdown(table)
