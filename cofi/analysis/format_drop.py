"""Format or knowledge: how much of a fine-tuned row's drop on a versatility generation suite is the answer said in
another form.

Every generation suite is scored twice (:func:`cofi.evaluation.metrics.lenient`): strictly, and with the answer
allowed anywhere in the response. Against the base model, per row, task and suite:

- the strict drop, base − row on the strict score (what the tables show);
- the lenient drop, the same on the lenient score (answers still given, in any form, count);
- the format share, (strict drop − lenient drop) / strict drop: the part of the drop that the lenient score does
  not see, i.e. answers the model still gives but not in the expected form. Shown where the strict drop is real
  (its interval above 0); a share near 100 % is a format collapse, near 0 % lost answers.

Intervals: the tables' bootstrap (:mod:`cofi.analysis.intervals`), the strict and lenient scores drawn alike (the same
seeds and items), each row paired with the base model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cofi.analysis.intervals import SUITES, Bootstrap, Cell, interval, ratio
from cofi.config.names import BASE_ROW as BASE

VERSATILITY = ("know", "reason", "instruct")  # what forgetting is measured on (Spec is what the run learns)


def _cells(per_seed: pd.DataFrame) -> dict[tuple[str, str], tuple[Cell, Cell, set[str]]]:
    """{(row, task): (strict cell, lenient cell, the suites scored leniently)} of the test split's rows whose every
    seed has lenient scores (the lenient cell takes the strict items of suites without lenient ones)."""
    from cofi.analysis.tables import test_records

    cells = {}
    for key, rows in test_records(per_seed).items():
        if not all(r.get("item_scores") and r.get("item_scores_lenient") for r in rows):
            continue
        suites = set.intersection(*(set(r["item_scores_lenient"]) for r in rows)) & set(SUITES)
        lenient_rows = [{**r, "item_scores": {**r["item_scores"], **{s: r["item_scores_lenient"][s] for s in suites}}}
                        for r in rows]
        cells[key] = (Cell.of(key[1], rows), Cell.of(key[1], lenient_rows), suites)
    return cells


def format_table(per_seed: pd.DataFrame, bootstrap: Bootstrap | None = None) -> pd.DataFrame:
    """Per fine-tuned row, task and versatility generation suite: the strict and lenient scores, the strict and lenient drops
    from the base model and the format share, each with its ``_lo``/``_hi`` interval (empty without lenient
    scores)."""
    bootstrap = bootstrap or Bootstrap()
    cells, out = _cells(per_seed), []
    for (method, task), (strict, lenient, suites) in cells.items():
        if method == BASE or (BASE, task) not in cells:
            continue
        base_strict, base_lenient, base_suites = cells[BASE, task]
        mine_s, base_s, _ = bootstrap.paired(strict, base_strict)
        mine_l, base_l, _ = bootstrap.paired(lenient, base_lenient)
        seeds = strict.seeds
        means = {name: cell.on(seeds).means() for name, cell in (("strict", strict), ("lenient", lenient),
                                                                  ("base_strict", base_strict),
                                                                  ("base_lenient", base_lenient))}
        for suite in [s for s in VERSATILITY if s in suites and s in base_suites]:
            strict_drop = base_s[suite] - mine_s[suite]
            lenient_drop = base_l[suite] - mine_l[suite]
            share = ratio(strict_drop - lenient_drop, strict_drop)
            observed = {"strict_drop": means["base_strict"][suite] - means["strict"][suite],
                        "lenient_drop": means["base_lenient"][suite] - means["lenient"][suite]}
            observed["format_share"] = (100 * (observed["strict_drop"] - observed["lenient_drop"])
                                        / observed["strict_drop"] if observed["strict_drop"] > 0 else np.nan)
            entry = {"method": method, "task": task, "suite": suite, "strict": means["strict"][suite],
                     "lenient": means["lenient"][suite], "n_seeds": len(seeds)}
            for column, replicates in (("strict_drop", strict_drop), ("lenient_drop", lenient_drop),
                                       ("format_share", share)):
                low, high = interval(replicates)
                entry |= {column: observed[column], f"{column}_lo": low, f"{column}_hi": high}
            if not entry["strict_drop_lo"] > 0:  # no real drop: no share of it to speak of
                entry |= {"format_share": np.nan, "format_share_lo": np.nan, "format_share_hi": np.nan}
            out.append(entry)
    return pd.DataFrame(out, columns=None if out else ["method", "task", "suite", "strict", "lenient", "n_seeds"])


def format_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """The format table as Markdown, with its caption."""
    caption = ("Format or knowledge: each generation suite's drop from the base model, scored strictly (as the tables) "
               "and leniently (the answer anywhere in the response), test split, mean over seeds [95 % interval: a "
               "bootstrap over seeds, then items, paired with the base model]; the format share is the part of the "
               "strict drop the lenient score does not see (answers still given, in another form), shown where the "
               "strict drop's interval is above 0.\n\n")
    if table.empty:
        return caption + "No run has lenient scores (no generation suite, or score files from before they existed).\n"

    from cofi.analysis.tables import HEADERS, signed_cell

    lines = ["| row | task | suite | strict | lenient | strict drop | lenient drop | format share (%) |",
             "| --- | --- | --- | --: | --: | --: | --: | --: |"]
    for row in table.to_dict("records"):
        measured = " | ".join(signed_cell(row, column, digits) for column in ("strict_drop", "lenient_drop", "format_share"))
        lines.append(f"| {row['method']} | {row['task']} | {HEADERS[row['suite']]} | {row['strict']:.{digits}f} | "
                     f"{row['lenient']:.{digits}f} | {measured} |")
    return caption + "\n".join(lines) + "\n"
