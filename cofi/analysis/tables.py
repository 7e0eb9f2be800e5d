"""Result tables, built with pandas from the per-run score files only.

Three views of the same numbers, all on the test split:

- ``main``: per task Spec, Know, Reason, Instruct, Vers, Uni as mean ± std over seeds;
- ``normalised``: Spec as % of the reference run's (Full SFT), Vers as % of the base model's, the
  change of Vers against the reference in %, and Uni;
- ``seeds.csv``: every score of every seed, for your own analysis.

A sweep (a run with a list of learning rates or Wise-FT α) gets a row per value and a ``tuned``
row: per task, the value with the highest mean Uni on the **validation** split, shown with its test
scores. The best value of each column among the fine-tuned rows is marked (the base model is
a reference point, not a contender).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cofi.errors import InputError
from cofi.config.names import BASE_ROW as BASE, COARSE_ROW as COARSE, tuned_row

SCORE_COLUMNS = ["spec", "know", "reason", "instruct", "vers", "uni"]
NORMALISED_COLUMNS = ["spec_pct_ref", "vers_pct_base", "vers_change_pct", "uni"]
HEADERS = {"spec": "Spec", "know": "Know", "reason": "Reason", "instruct": "Instruct", "vers": "Vers", "uni": "Uni",
           "spec_pct_ref": "Spec % ref", "vers_pct_base": "Vers % base", "vers_change_pct": "ΔVers % ref"}


def score_rows(scores: dict) -> list[dict]:
    """One row per task scored in a score file (the base model is scored on every task)."""
    labels = scores["labels"]
    return [
        {
            "method": labels["method"],
            "task": task,
            "seed": labels.get("seed"),
            "split": labels.get("split", "test"),
            "spec": spec,
            **{key: scores[key] for key in ("know", "reason", "instruct", "vers")},
            "uni": scores["uni"][task],
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


def summarise(per_seed: pd.DataFrame, reference: str | None = None, groups: dict | None = None) -> pd.DataFrame:
    """Tidy test-split table: mean and std over seeds per method × task, seed count, detail, and the
    normalised columns (against ``reference``, e.g. Full SFT, and the base model)."""
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
    return table[columns]


def tidy_table(files, reference: str | None = None, groups: dict | None = None, searches=()) -> pd.DataFrame:
    """The tidy summary straight from score files (see :func:`summarise`)."""
    return summarise(add_tuned_rows(read_score_files(files, searches), groups or {}), reference, groups)


def _best(tidy: pd.DataFrame, column: str) -> set[tuple[str, str]]:
    """(method, task) pairs holding the column's best value per task among fine-tuned rows."""
    contenders = tidy[tidy["method"] != BASE].dropna(subset=[column])
    best = contenders.groupby("task", sort=False)[column].transform("max")
    winners = contenders[contenders[column].round(6) == best.round(6)]
    return set(zip(winners["method"], winners["task"]))


def formatted(tidy: pd.DataFrame, columns: list[str], digits: int = 1, show_std: bool = True, bold: str | None = "md",
              signed: tuple[str, ...] = ()) -> pd.DataFrame:
    """Methods as rows, (task, column) as columns, cells as text: "mean ± std", the best in bold."""
    best = {c: _best(tidy, c) for c in columns} if bold else {}
    open_, close = {"md": ("**", "**"), "tex": (r"\textbf{", "}")}.get(bold, ("", ""))
    pm = " ± " if bold != "tex" else r" $\pm$ "
    cells = {}
    for row in tidy.itertuples(index=False):
        for column in columns:
            value = getattr(row, column)
            if pd.isna(value):
                text = "–"
            else:
                text = f"{value:+.{digits}f}" if column in signed else f"{value:.{digits}f}"
                std = getattr(row, f"{column}_std", float("nan"))
                if show_std and not pd.isna(std):
                    text += f"{pm}{std:.{digits}f}"
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


def markdown_table(tidy: pd.DataFrame, columns: list[str] = SCORE_COLUMNS, digits: int = 1, show_std: bool = True,
                   bold_best: bool = True, caption: str = "") -> str:
    wide = formatted(tidy, columns, digits, show_std, "md" if bold_best else None,
                     signed=("vers_change_pct",))
    wide.columns = [f"{task} {name}" for task, name in wide.columns]
    wide.index.name = "method"
    body = wide.to_markdown(colalign=["left"] + ["right"] * len(wide.columns))
    notes = _notes(tidy)
    return (f"{caption}\n\n" if caption else "") + body + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def latex_table(tidy: pd.DataFrame, columns: list[str] = SCORE_COLUMNS, digits: int = 1, show_std: bool = True,
                bold_best: bool = True, caption: str = "", label: str = "") -> str:
    """A booktabs table (``\\usepackage{booktabs}``): tasks as column groups, methods as rows."""
    def tex(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%").replace("Δ", r"$\Delta$").replace("±", r"$\pm$")

    wide = formatted(tidy, columns, digits, show_std, "tex" if bold_best else None, signed=("vers_change_pct",))
    wide.index = [tex(m) for m in wide.index]
    wide.columns = pd.MultiIndex.from_tuples([(tex(t), tex(n)) for t, n in wide.columns])
    return wide.to_latex(escape=False, multicolumn=True, multicolumn_format="c", column_format="l" + "r" * wide.shape[1],
                         caption=tex(caption) or None, label=label or None, position="t")


def headline(tidy: pd.DataFrame, groups: dict[str, dict[str, str]]) -> pd.DataFrame:
    """The tidy table without sweep variants: each sweep by its tuned row (the values chosen on validation), every
    other run at its one setting. The table a study's verdict reads, where each method had its own tuning."""
    variants = {v for members in groups.values() for v in members}
    return tidy[~tidy["method"].isin(variants)].reset_index(drop=True)


def write_tables(files, out_dir: str | Path, reference: str | None = None, groups: dict | None = None,
                 digits: int = 1, show_std: bool = True, bold_best: bool = True, expect: dict | None = None,
                 searches=()) -> pd.DataFrame:
    """main.{csv,md,tex}, normalised.{md,tex}, tuned.{md,tex} (:func:`headline`) and seeds.csv in ``out_dir``
    from score ``files`` (and the
    ``searches``' result files); returns the tidy table. With ``expect`` (see :func:`check_complete`),
    a partial set of score files is an error."""
    groups = groups or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = read_score_files(files, searches)
    if expect is not None:
        check_complete(per_seed, expect)
    per_seed = add_tuned_rows(per_seed, groups)
    tidy = summarise(per_seed, reference, groups)
    seeds = sorted({int(s) for s in per_seed.loc[per_seed["split"] == "test", "seed"].dropna()})
    spread = (f"mean ± std over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
              else f"seed {seeds[0]}" if seeds else "")
    options = {"digits": digits, "show_std": show_std, "bold_best": bold_best}
    main_caption = f"Test scores, {spread}; best per column in bold (base model excluded)."
    norm_caption = (f"Normalised test scores ({spread}): Spec as % of {reference}'s, Vers as % of the base model's, "
                    f"ΔVers = change of Vers against {reference} in %; best per column in bold (base model excluded).")
    tidy.to_csv(out / "main.csv", index=False, float_format="%.4f")
    per_seed.sort_values(["split", "method", "task", "seed"], kind="stable").to_csv(out / "seeds.csv", index=False,
                                                                                   float_format="%.4f")
    (out / "main.md").write_text(markdown_table(tidy, SCORE_COLUMNS, caption=main_caption, **options))
    tuned = headline(tidy, groups)
    tuned_caption = (f"Each method at its own settings: a sweep's row is its value chosen on validation Uni per task "
                     f"(below), other runs at their one setting; test scores, {spread}; best per column in bold.")
    (out / "tuned.md").write_text(markdown_table(tuned, SCORE_COLUMNS, caption=tuned_caption, **options))
    (out / "tuned.tex").write_text(latex_table(tuned, SCORE_COLUMNS, caption=tuned_caption, label="tab:tuned", **options))
    (out / "normalised.md").write_text(markdown_table(tidy, NORMALISED_COLUMNS, caption=norm_caption, **options))
    (out / "main.tex").write_text(latex_table(tidy, SCORE_COLUMNS, caption=main_caption, label="tab:main", **options))
    (out / "normalised.tex").write_text(latex_table(tidy, NORMALISED_COLUMNS, caption=norm_caption,
                                                    label="tab:normalised", **options))
    return tidy
