"""Result tables, built with pandas from the per-run score files only.

Four views of the same numbers, all on the test split, each value with its 95 % interval (a bootstrap over
seeds, then items: :mod:`cofi.analysis.intervals`):

- ``main``: per task Spec, Know, Reason, Instruct, Vers, Uni, the mean over seeds;
- ``normalised``: Spec as % of the reference run's (Full SFT), Vers as % of the base model's, the
  change of Vers against the reference in %, and Uni;
- ``comparisons``: every row's difference from Full SFT (at the shared and at its tuned lr) in Spec, Vers and
  Uni, paired (the same seeds, the same items);
- ``format``: each generation suite's drop from the base model scored strictly and leniently, and the share of
  it that is format (:mod:`cofi.analysis.format_drop`);
- ``seeds.csv``: every score of every seed, for your own analysis.

Each table's caption says the smallest Uni difference it can see: 2.80 times the median standard error of its
rows' paired differences from the reference (80 % power at the 5 % level).

A sweep (a run with a list of learning rates or Wise-FT α) gets a row per value and a ``tuned``
row: per task, the value with the highest mean Uni on the **validation** split, shown with its test
scores. The best value of each column among the fine-tuned rows is marked (the base model is
a reference point, not a contender).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cofi.analysis.format_drop import format_markdown, format_table
from cofi.analysis.intervals import SUITES, Bootstrap, Cell, detectable_difference, interval, ratio, shared_seeds
from cofi.config.names import BASE_ROW as BASE, COARSE_ROW as COARSE, tuned_row
from cofi.config.settings import TablesSettings
from cofi.errors import InputError

TEST_MARK = " †"  # a row chosen on the test split (selection: test)
SCORE_COLUMNS = ["spec", "know", "reason", "instruct", "vers", "uni"]
NORMALISED_COLUMNS = ["spec_pct_ref", "vers_pct_base", "vers_change_pct", "uni"]
HEADERS = {"spec": "Spec", "know": "Know", "reason": "Reason", "instruct": "Instruct", "vers": "Vers", "uni": "Uni",
           "spec_pct_ref": "Spec % ref", "vers_pct_base": "Vers % base", "vers_change_pct": "ΔVers % ref"}


def score_rows(scores: dict) -> list[dict]:
    """One row per task scored in a score file (the base model is scored on every task); ``item_scores`` holds
    each suite's per-item scores ({suite: [0–1, …]}) where the file has them, else None; ``item_scores_lenient`` the
    generation suites' lenient ones (:func:`cofi.evaluation.metrics.lenient`), else None."""
    labels = scores["labels"]
    items, lenient = scores.get("item_scores"), scores.get("item_scores_lenient")
    return [
        {
            "method": labels["method"],
            "task": task,
            "seed": labels.get("seed"),
            "split": labels.get("split", "test"),
            "spec": spec,
            **{key: scores[key] for key in ("know", "reason", "instruct", "vers")},
            "uni": scores["uni"][task],
            "item_scores": {"spec": items["spec"][task], **items["vers"]} if items else None,
            "item_scores_lenient": ({**({"spec": lenient["spec"][task]} if task in lenient["spec"] else {}),
                                     **lenient["vers"]} if lenient else None),
        }
        for task, spec in scores["spec"].items()
    ]


def read_score_files(files: list[str | Path], searches: list[str | Path] = ()) -> pd.DataFrame:
    """Per-seed rows from score files (PATH, or RUN=PATH: :func:`cofi.jobs.evaluate.read_scores`); a
    search's pick (from its ``result.json`` in ``searches``) is renamed ``cofitune_coarse``, its region id
    in ``detail``."""
    from cofi.io import read_json
    from cofi.jobs.evaluate import read_scores

    picks = {(r["run"], r["task"]): r["selected"] for r in map(read_json, searches)}
    rows = []
    for scores in map(read_scores, map(str, files)):
        for row in score_rows(scores):
            region = picks.get((row["method"], row["task"]))
            rows.append({**row, "method": COARSE if region else row["method"], "detail": region or ""})
    if not rows:
        raise ValueError("no score files given")
    return pd.DataFrame(rows)


def check_complete(per_seed: pd.DataFrame, expect: dict) -> None:
    """Refuse to build a partial table: every expected run has test scores for every task and seed
    (sweep variants also validation scores), the base model is there, and each searched task has
    its coarse pick. ``expect``: {"runs", "sweeps", "tasks", "seeds", "searched"} from the config."""
    # The base model is scored once (no seed); seeds may come back from pandas as floats (0.0 == 0).
    have = {(m, t, None if m == BASE else s, sp)
            for m, t, s, sp in zip(per_seed["method"], per_seed["task"], per_seed["seed"], per_seed["split"])}
    wanted = [(BASE, t, None, "test") for t in expect["tasks"]]
    wanted += [(r, t, s, "test") for r in expect["runs"] for t in expect["tasks"] for s in expect["seeds"]]
    wanted += [(r, t, s, "val") for r in expect["sweeps"] for t in expect["tasks"] for s in expect["seeds"]]
    wanted += [(COARSE, t, s, "test") for t in expect["searched"] for s in expect["seeds"]]
    missing = [w for w in wanted if w not in have]
    if missing:
        shown = "; ".join(f"{m} {t}" + (f" seed {s}" if s is not None else "") + f" ({sp})" for m, t, s, sp in missing[:6])
        raise InputError(f"the table would be partial: no score file for {shown}"
                         + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
                         + ". If Snakemake started this job before the search it waits for was re-evaluated, "
                           "run snakemake again (docs/known-issues.md).")


def add_tuned_rows(per_seed: pd.DataFrame, groups: dict[str, dict[str, str]]) -> pd.DataFrame:
    """For each sweep ``group`` ({variant run: label such as "lr=0.001"}), per task: the variant with
    the best mean validation Uni (ties: the first listed), copied as ``<group>_tuned`` test rows."""
    added = []
    for group, variants in groups.items():
        val = per_seed[(per_seed["split"] == "val") & per_seed["method"].isin(variants)]
        for task in per_seed.loc[per_seed["method"].isin(variants), "task"].unique():
            means = val[val["task"] == task].groupby("method")["uni"].mean()
            missing = [v for v in variants if v not in means.index]
            if missing:
                raise ValueError(f"tuned row of {group!r} on {task!r}: no validation scores for {missing}")
            best = max(variants, key=lambda v: (means[v], -list(variants).index(v)))
            chosen = per_seed[(per_seed["method"] == best) & (per_seed["task"] == task) & (per_seed["split"] == "test")]
            added.append(chosen.assign(method=tuned_row(group), detail=variants[best]))
    return pd.concat([per_seed, *added], ignore_index=True) if added else per_seed


def row_order(methods: list[str], reference: str | None, groups: dict[str, dict[str, str]]) -> list[str]:
    """Base, the reference, the coarse pick, then as given; a tuned row right after its group's variants."""
    order = [m for m in dict.fromkeys([BASE, reference, COARSE] + methods) if m in methods]
    for group, variants in groups.items():
        tuned = tuned_row(group)
        if tuned in order:
            order.remove(tuned)
            last = max(order.index(v) for v in variants if v in order)
            order.insert(last + 1, tuned)
    return order


def summarise(per_seed: pd.DataFrame, reference: str | None = None, groups: dict | None = None,
              bootstrap: Bootstrap | None = None, cells: dict | None = None) -> pd.DataFrame:
    """Tidy test-split table: mean and std over seeds per method × task, seed count, detail, the normalised
    columns (against ``reference``, e.g. Full SFT, and the base model), and each value's 95 % interval
    (``<column>_lo``, ``<column>_hi``; ``itemised``: whether items took part, not the seeds alone). ``cells``: the
    :func:`cells_of` ``per_seed``, where the caller has them already."""
    groups = groups or {}
    test = per_seed[per_seed["split"] == "test"]
    grouped = test.groupby(["method", "task"], sort=False)
    means = grouped[SCORE_COLUMNS].mean()
    stds = grouped[SCORE_COLUMNS].std(ddof=1).add_suffix("_std")  # NaN for a single seed
    table = means.join(stds).join(grouped["seed"].nunique(dropna=False).rename("n_seeds"))
    table = table.join(grouped["detail"].first()).reset_index()
    order = row_order(list(dict.fromkeys(test["method"])), reference, groups)
    tasks = list(dict.fromkeys(test["task"]))
    table["method"] = pd.Categorical(table["method"], order, ordered=True)
    table["task"] = pd.Categorical(table["task"], tasks, ordered=True)
    table = table.sort_values(["method", "task"]).reset_index(drop=True)
    table[["method", "task"]] = table[["method", "task"]].astype(str)
    by_task = table.set_index(["method", "task"])
    ref_spec = table["task"].map(lambda t: by_task["spec"].get((reference, t), float("nan")))
    ref_vers = table["task"].map(lambda t: by_task["vers"].get((reference, t), float("nan")))
    base_vers = table["task"].map(lambda t: by_task["vers"].get((BASE, t), float("nan")))
    table["spec_pct_ref"] = 100 * table["spec"] / ref_spec.where(ref_spec > 0)
    table["vers_pct_base"] = 100 * table["vers"] / base_vers.where(base_vers > 0)
    table["vers_change_pct"] = 100 * (table["vers"] - ref_vers) / ref_vers.where(ref_vers > 0)
    columns = ["method", "task", *SCORE_COLUMNS, *(f"{c}_std" for c in SCORE_COLUMNS), "n_seeds", "detail",
               "spec_pct_ref", "vers_pct_base", "vers_change_pct"]
    return add_intervals(table[columns], cells or cells_of(per_seed), reference, bootstrap or Bootstrap())


def signed_cell(row: dict, column: str, digits: int) -> str:
    """A signed estimate with its interval, "+1.2 [-0.3, +2.5]", from ``column`` and its ``_lo``/``_hi``; "—" where
    there is none."""
    if pd.isna(row[column]):
        return "—"
    return f"{row[column]:+.{digits}f} [{row[f'{column}_lo']:+.{digits}f}, {row[f'{column}_hi']:+.{digits}f}]"


def test_records(per_seed: pd.DataFrame) -> dict[tuple[str, str], list[dict]]:
    """{(row, task): its per-seed records} of the test split."""
    test = per_seed[per_seed["split"] == "test"]
    grouped: dict = {}
    for record in test.to_dict("records"):
        record["seed"] = None if pd.isna(record["seed"]) else int(record["seed"])  # the base model: no seed
        grouped.setdefault((record["method"], record["task"]), []).append(record)
    return grouped


def cells_of(per_seed: pd.DataFrame) -> dict[tuple[str, str], Cell]:
    """{(row, task): its :class:`Cell`} of the test split."""
    return {(method, task): Cell.of(task, rows) for (method, task), rows in test_records(per_seed).items()}


def add_intervals(table: pd.DataFrame, cells: dict, reference: str | None, bootstrap: Bootstrap) -> pd.DataFrame:
    """``table`` with the ``_lo``/``_hi`` interval of every score and normalised column, ``itemised``, and
    ``n_items`` (the items of each suite, e.g. "spec 100, know 150, …")."""
    bounds = []
    for method, task in zip(table["method"], table["task"]):
        cell = cells[method, task]
        columns = bootstrap.columns(cell)
        row = {f"{c}{end}": value for c in SCORE_COLUMNS for end, value in zip(("_lo", "_hi"), interval(columns[c]))}
        normalised = {}
        if (reference, task) in cells:
            mine, ref, _ = bootstrap.paired(cell, cells[reference, task])
            normalised["spec_pct_ref"] = ratio(mine["spec"], ref["spec"])
            normalised["vers_change_pct"] = ratio(mine["vers"] - ref["vers"], ref["vers"])
        if (BASE, task) in cells:
            mine, base, _ = bootstrap.paired(cell, cells[BASE, task])
            normalised["vers_pct_base"] = ratio(mine["vers"], base["vers"])
        for column in ("spec_pct_ref", "vers_pct_base", "vers_change_pct"):
            low_high = interval(normalised[column]) if column in normalised else (float("nan"),) * 2
            row |= {f"{column}_lo": low_high[0], f"{column}_hi": low_high[1]}
        row["itemised"] = cell.itemised
        row["n_items"] = ", ".join(f"{s} {cell.items[s].shape[1]}" for s in SUITES) if cell.itemised else ""
        bounds.append(row)
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(bounds)], axis=1)


def comparisons(cells: dict, against: list[str], bootstrap: Bootstrap | None = None,
                rows: list[str] | None = None) -> pd.DataFrame:
    """Every row's paired difference from each row of ``against`` (e.g. Full SFT at the shared and at its tuned lr)
    in Spec, Vers and Uni, per task: the difference of the means, its 95 % interval and the bootstrap standard
    error (on the seeds both rows have, the same items). ``cells``: :func:`cells_of` the per-seed rows; ``rows``:
    which rows and in what order (default: all)."""
    bootstrap = bootstrap or Bootstrap()
    tasks = list(dict.fromkeys(task for _, task in cells))
    rows = rows or list(dict.fromkeys(method for method, _ in cells))
    out = []
    for other in against:
        for method in rows:
            for task in tasks:
                if method == other or (method, task) not in cells or (other, task) not in cells:
                    continue
                mine, theirs, seeds = bootstrap.paired(cells[method, task], cells[other, task])
                entry = {"method": method, "task": task, "against": other, "n_seeds": seeds}
                observed = _observed_difference(cells[method, task], cells[other, task])
                for column in ("spec", "vers", "uni"):
                    difference = mine[column] - theirs[column]
                    low, high = interval(difference)
                    entry |= {f"d_{column}": observed[column], f"d_{column}_lo": low, f"d_{column}_hi": high,
                              f"d_{column}_se": float(np.std(difference, ddof=1))}
                out.append(entry)
    return pd.DataFrame(out, columns=None if out else ["method", "task", "against", "n_seeds"])


def _observed_difference(a: Cell, b: Cell) -> dict[str, float]:
    """The two rows' difference of means on their shared seeds (what the paired replicates scatter around)."""
    seeds = shared_seeds(a, b)
    mine, theirs = a.on(seeds).means(), b.on(seeds).means()
    return {column: mine[column] - theirs[column] for column in ("spec", "vers", "uni")}


def detectable_uni(compared: pd.DataFrame, reference: str | None, rows: list[str] | None = None) -> float:
    """The smallest Uni difference from ``reference`` the table detects with 80 % power at the 5 % level: from
    the median standard error of its fine-tuned rows' paired differences (NaN without such rows)."""
    if compared.empty or reference is None:
        return float("nan")
    mine = compared[(compared["against"] == reference) & (compared["method"] != BASE)]
    if rows is not None:
        mine = mine[mine["method"].isin(rows)]
    return detectable_difference(float(mine["d_uni_se"].median())) if len(mine) else float("nan")


def tidy_table(files, reference: str | None = None, groups: dict | None = None, searches=()) -> pd.DataFrame:
    """The tidy summary straight from score files (see :func:`summarise`)."""
    return summarise(load_per_seed(files, searches, groups), reference, groups)


def _best(tidy: pd.DataFrame, column: str) -> set[tuple[str, str]]:
    """(method, task) pairs holding the column's best value per task among fine-tuned rows."""
    contenders = tidy[tidy["method"] != BASE].dropna(subset=[column])
    best = contenders.groupby("task", sort=False)[column].transform("max")
    winners = contenders[contenders[column].round(6) == best.round(6)]
    return set(zip(winners["method"], winners["task"]))


def formatted(tidy: pd.DataFrame, columns: list[str], settings: TablesSettings = TablesSettings(),
              bold: str | None = "md", signed: tuple[str, ...] = ()) -> pd.DataFrame:
    """Methods as rows, (task, column) as columns, cells as text: "mean [low, high]" (and/or "± std"), the best in
    bold."""
    digits = settings.digits
    best = {c: _best(tidy, c) for c in columns} if bold else {}
    open_, close = {"md": ("**", "**"), "tex": (r"\textbf{", "}")}.get(bold, ("", ""))
    pm = " ± " if bold != "tex" else r" $\pm$ "

    def number(value: float, column: str) -> str:
        return f"{value:+.{digits}f}" if column in signed else f"{value:.{digits}f}"

    cells = {}
    for row in tidy.itertuples(index=False):
        for column in columns:
            value = getattr(row, column)
            if pd.isna(value):
                text = "–"
            else:
                text = number(value, column)
                std = getattr(row, f"{column}_std", float("nan"))
                if settings.show_std and not pd.isna(std):
                    text += f"{pm}{std:.{digits}f}"
                low, high = getattr(row, f"{column}_lo", float("nan")), getattr(row, f"{column}_hi", float("nan"))
                if settings.interval and not pd.isna(low):
                    text += f" [{number(low, column)}, {number(high, column)}]"
                if (row.method, row.task) in best.get(column, ()):
                    text = f"{open_}{text}{close}"
            cells.setdefault(row.method, {})[(row.task, HEADERS[column])] = text
    wide = pd.DataFrame.from_dict(cells, orient="index")
    tasks = list(dict.fromkeys(tidy["task"]))
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples([(t, HEADERS[c]) for t in tasks for c in columns]))
    return wide.fillna("–")


def _notes(tidy: pd.DataFrame) -> list[str]:
    notes = []
    for method, rows in tidy[tidy["detail"] != ""].groupby("method", sort=False):
        label = "region" if method == COARSE else "chosen on validation"
        notes.append(f"{method} ({label}): " + "; ".join(f"{t} → {d}" for t, d in zip(rows["task"], rows["detail"])))
    return notes


def markdown_table(tidy: pd.DataFrame, columns: list[str] = SCORE_COLUMNS, settings: TablesSettings = TablesSettings(),
                   caption: str = "") -> str:
    wide = formatted(tidy, columns, settings, "md" if settings.bold_best else None, signed=("vers_change_pct",))
    wide.columns = [f"{task} {name}" for task, name in wide.columns]
    wide.index.name = "method"
    body = wide.to_markdown(colalign=["left"] + ["right"] * len(wide.columns))
    notes = _notes(tidy)
    return (f"{caption}\n\n" if caption else "") + body + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("Δ", r"$\Delta$").replace("±", r"$\pm$")


def relabelled(tidy: pd.DataFrame, labels: dict | None) -> pd.DataFrame:
    """Only the rows ``labels`` names, in its order, under its names (a row's † mark kept); all rows without it."""
    if not labels:
        return tidy
    base = tidy["method"].str.removesuffix(TEST_MARK)
    kept = tidy[base.isin(labels)].copy()
    kept["method"] = [labels[m.removesuffix(TEST_MARK)] + (TEST_MARK if m.endswith(TEST_MARK) else "")
                      for m in kept["method"]]
    order = {labels[row]: i for i, row in enumerate(labels)}
    return kept.sort_values("method", key=lambda ms: ms.str.removesuffix(TEST_MARK).map(order), kind="stable")


def latex_table(tidy: pd.DataFrame, columns: list[str] = SCORE_COLUMNS, settings: TablesSettings = TablesSettings(),
                caption: str = "", label: str = "") -> str:
    """A booktabs table (``\\usepackage{booktabs}``): tasks as column groups, methods as rows (``tables.labels``:
    which rows, in what order, under what names)."""
    tidy = relabelled(tidy, settings.labels)
    wide = formatted(tidy, columns, settings, "tex" if settings.bold_best else None, signed=("vers_change_pct",))
    wide.index = list(wide.index) if settings.labels else [_tex(m) for m in wide.index]  # labels are LaTeX already
    wide.columns = pd.MultiIndex.from_tuples([(_tex(t), _tex(n)) for t, n in wide.columns])
    return wide.to_latex(escape=False, multicolumn=True, multicolumn_format="c", column_format="l" + "r" * wide.shape[1],
                         caption=_tex(caption) or None, label=label or None, position="t")


def comparisons_markdown(compared: pd.DataFrame, digits: int = 1) -> str:
    """Per reference: a row per run, per task ΔSpec, ΔVers, ΔUni with their paired 95 % intervals; a difference
    whose interval excludes 0 is marked (↑ above the reference, ↓ below)."""
    parts = []
    for other, group in compared.groupby("against", sort=False):
        cells: dict = {}
        for row in group.itertuples(index=False):
            for column, name in (("spec", "ΔSpec"), ("vers", "ΔVers"), ("uni", "ΔUni")):
                value, low, high = (getattr(row, f"d_{column}{end}") for end in ("", "_lo", "_hi"))
                mark = " ↑" if low > 0 else " ↓" if high < 0 else ""
                cells.setdefault(row.method, {})[f"{row.task} {name}"] = (
                    f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]{mark}")
        wide = pd.DataFrame.from_dict(cells, orient="index").fillna("–")
        wide.index.name = "method"
        seeds = sorted(set(group["n_seeds"]))
        parts.append(f"Against {other} (paired: the same items, {'/'.join(map(str, seeds))} shared seeds)\n\n"
                     + wide.to_markdown(colalign=["left"] + ["right"] * len(wide.columns)) + "\n")
    return "\n".join(parts)


def headline(tidy: pd.DataFrame, groups: dict[str, dict[str, str]]) -> pd.DataFrame:
    """The tidy table without sweep variants: each sweep by its tuned row (the values chosen on validation), every
    other run at its one setting. The table a study's verdict reads, where each method had its own tuning."""
    variants = {v for members in groups.values() for v in members}
    return tidy[~tidy["method"].isin(variants)].reset_index(drop=True)


def load_per_seed(files, searches=(), groups: dict | None = None, expect: dict | None = None) -> pd.DataFrame:
    """Every score of every seed from the score ``files`` (and the ``searches``' result files), the sweeps' tuned
    rows added. With ``expect`` (see :func:`check_complete`), a partial set of score files is an error."""
    per_seed = read_score_files(files, searches)
    if expect is not None:
        check_complete(per_seed, expect)
    return add_tuned_rows(per_seed, groups or {})


def _spread(per_seed: pd.DataFrame, tidy: pd.DataFrame, settings: TablesSettings) -> str:
    """What each cell shows beyond its mean, for the captions."""
    seeds = sorted({int(s) for s in per_seed.loc[per_seed["split"] == "test", "seed"].dropna()})
    over = f"over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}" if seeds else ""
    shown = ["mean " + over]
    if settings.show_std and len(seeds) > 1:
        shown.append("± std")
    if settings.interval:
        alone = sorted(set(tidy.loc[~tidy["itemised"].astype(bool), "method"]))
        shown.append("[95 % interval: a bootstrap over seeds, then items" + (
            f"; items unknown for {', '.join(alone)}: seeds only" if alone else "") + "]")
    return " ".join(shown)


def _sensitivity(compared: pd.DataFrame, tidy: pd.DataFrame, reference: str | None, rows=None) -> str:
    """The caption's sentence on the smallest Uni difference the table can see."""
    smallest = detectable_uni(compared, reference, rows)
    if np.isnan(smallest):
        return ""
    counts = sorted(set(tidy.loc[tidy["method"] != BASE, "n_items"]) - {""})
    seeds = sorted(set(tidy.loc[tidy["method"] != BASE, "n_seeds"]))
    return (f" The smallest Uni difference from {reference} this table can see is {smallest:.1f} points (80 % power, "
            f"5 % level: 2.80 × the median standard error of the rows' paired differences; "
            f"{'/'.join(map(str, seeds))} seeds, items per suite: {' | '.join(counts) or 'unknown'}).")


def flag_test_selection(tidy: pd.DataFrame, selected_on_test: dict) -> tuple[pd.DataFrame, str]:
    """The rows chosen on a test split, marked †, and the note that says so (``selected_on_test``: {task: rows})."""
    rows = {row for touched in selected_on_test.values() for row in touched}
    if not rows & set(tidy["method"]):
        return tidy, ""
    marked = tidy.assign(method=[m + TEST_MARK if m in rows else m for m in tidy["method"]])
    return marked, (f"†: chosen on the test split of {', '.join(selected_on_test)} (selection: test: no validation "
                    "data), so its test scores are not a held-out estimate.\n")


def write_tables(files, out_dir: str | Path, reference: str | None = None, groups: dict | None = None,
                 settings: TablesSettings = TablesSettings(), expect: dict | None = None, searches=(),
                 compare_to: tuple[str, ...] = (), selected_on_test: dict | None = None) -> pd.DataFrame:
    """main.{csv,md,tex}, normalised.{md,tex}, tuned.{md,tex} (:func:`headline`), comparisons.{csv,md} (against
    ``reference`` and the rows of ``compare_to``), format.{csv,md} (:mod:`cofi.analysis.format_drop`) and seeds.csv in
    ``out_dir`` from score ``files`` (and the
    ``searches``' result files); returns the tidy table. With ``expect`` (see :func:`check_complete`), a partial set
    of score files is an error. ``selected_on_test`` ({task: rows}): rows chosen on a test split, marked †."""
    groups = groups or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = load_per_seed(files, searches, groups, expect)
    bootstrap = Bootstrap(settings.bootstrap, settings.bootstrap_seed)
    cells = cells_of(per_seed)
    tidy = summarise(per_seed, reference, groups, bootstrap, cells)
    against = [r for r in dict.fromkeys([reference, *compare_to]) if r is not None and r in set(tidy["method"])]
    compared = comparisons(cells, against, bootstrap, rows=list(dict.fromkeys(tidy["method"])))
    spread = _spread(per_seed, tidy, settings)
    tuned = headline(tidy, groups)
    main_caption = (f"Test scores, {spread}; best per column in bold (base model excluded)."
                    + _sensitivity(compared, tidy, reference))
    norm_caption = (f"Normalised test scores ({spread}): Spec as % of {reference}'s, Vers as % of the base model's, "
                    f"ΔVers = change of Vers against {reference} in %; best per column in bold (base model excluded)."
                    + _sensitivity(compared, tidy, reference))
    tuned_caption = (f"Each method at its own settings: a sweep's row is its value chosen on validation Uni per task "
                     f"(below), other runs at their one setting; test scores, {spread}; best per column in bold."
                     + _sensitivity(compared, tidy, reference, list(tuned["method"])))
    tidy.to_csv(out / "main.csv", index=False, float_format="%.4f")
    per_seed.drop(columns=["item_scores", "item_scores_lenient"]).sort_values(["split", "method", "task", "seed"], kind="stable").to_csv(
        out / "seeds.csv", index=False, float_format="%.4f")
    compared.to_csv(out / "comparisons.csv", index=False, float_format="%.4f")
    formats = format_table(per_seed, bootstrap)
    formats.to_csv(out / "format.csv", index=False, float_format="%.4f")
    (out / "format.md").write_text(format_markdown(formats, settings.digits))
    (out / "comparisons.md").write_text(
        "Paired differences in test scores (this row − the reference), mean over the shared seeds [95 % interval: "
        "a bootstrap over seeds, then items, drawn alike for both rows]; ↑/↓: the interval excludes 0.\n\n"
        + comparisons_markdown(compared, settings.digits))
    shown, note = flag_test_selection(tidy, selected_on_test or {})
    shown_tuned, _ = flag_test_selection(tuned, selected_on_test or {})
    (out / "main.md").write_text(markdown_table(shown, SCORE_COLUMNS, settings, main_caption) + note)
    (out / "main.tex").write_text(latex_table(shown, SCORE_COLUMNS, settings, main_caption + note, "tab:main"))
    (out / "tuned.md").write_text(markdown_table(shown_tuned, SCORE_COLUMNS, settings, tuned_caption) + note)
    (out / "tuned.tex").write_text(latex_table(shown_tuned, SCORE_COLUMNS, settings, tuned_caption + note,
                                               "tab:tuned"))
    (out / "normalised.md").write_text(markdown_table(shown, NORMALISED_COLUMNS, settings, norm_caption) + note)
    (out / "normalised.tex").write_text(latex_table(shown, NORMALISED_COLUMNS, settings, norm_caption + note,
                                                    "tab:normalised"))
    return tidy
