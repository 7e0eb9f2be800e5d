"""The papers' claims, checked against an experiment's numbers (pure pandas and numpy: no torch, no files).

One line per claim, per task the measured value with its 95 % interval, and a verdict from one stated rule,
the same whichever way the numbers fall (:data:`RULE`, written at the top of claims.md):

- a claim "x ≥ t" *holds* on a task when the whole 95 % interval of x is at or above t, *fails* when the whole
  interval is below t, and is *unclear* otherwise (strict "x > t": holds above t, fails at or below). The
  interval is a bootstrap over seeds, then items (:mod:`cofi.analysis.intervals`), paired where x compares two
  rows (the same seeds, the same items): with one seed, the items still count.
- a claim over runs (sharper landscapes go with more forgetting) holds on a task when Spearman's ρ reaches the
  one-sided 5 % critical value of a permutation test, fails when ρ ≤ 0, else unclear.
- over tasks (and, where a claim is measured against Full SFT, against its shared and its tuned lr):
  **holds** if every part holds, **fails** if every part fails, **unclear** if every part is unclear, **mixed**
  otherwise; parts that could not be measured (a run the experiment lacks) are left out, and a claim with none is
  *not tested*.

For one release each part also carries the old rule's verdict (mean ± one standard deviation over seeds, which
is no interval of anything, and with one seed no spread at all), shown beside the new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cofi.analysis.intervals import Bootstrap, interval, ratio, shared_seeds
from cofi.analysis.stats import spearman, spearman_critical
from cofi.config.names import BASE_ROW as BASE
from cofi.config.settings import ClaimRows

PAPER_REGION = "r25-50_ffn"  # (N/4, N/2] – FFN: where the paper's search ended at 7B, 13B and 33B

RULE = ("**How to read the verdicts.** Each value is the estimate on the test split with its 95 % interval "
        "[low, high]: a bootstrap over seeds, then items, paired where two rows are compared (the same seeds, the "
        "same items). A part **holds** when the whole interval clears the claim's threshold, **fails** when the "
        "whole interval misses it, and is **unclear** otherwise; a correlation claim holds when Spearman's ρ "
        "reaches its one-sided 5 % permutation critical value and fails when ρ ≤ 0. A claim holds if every "
        "measured part holds, fails if every one fails, is unclear if every one is, and is mixed otherwise. The last column is the old "
        "rule's verdict (mean ± one std over seeds; no interval, and no spread at all with one seed), kept for "
        "comparison.")


@dataclass(frozen=True)
class Part:
    """One measured part of a claim: a task, what it is measured against, the estimate and its 95 % interval
    (the new rule's), and the per-seed values (the old rule's)."""

    task: str
    against: str
    values: tuple[float, ...] = ()
    estimate: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    note: str = ""
    runs: int = 0  # the runs a correlation is over

    @property
    def measured(self) -> bool:
        return bool(self.values) or not math.isnan(self.estimate)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (n - 1))


def interval_verdict(part: Part, threshold: float, strict: bool = False) -> str:
    """holds / fails / unclear for "x ≥ threshold" (strict: "x > threshold") from the 95 % interval."""
    if math.isnan(part.low):
        return "unclear"
    if (part.low > threshold) if strict else (part.low >= threshold):
        return "holds"
    if (part.high <= threshold) if strict else (part.high < threshold):
        return "fails"
    return "unclear"


def threshold_verdict(part: Part, threshold: float, strict: bool = False) -> str:
    """The old rule: holds / fails / unclear for "x ≥ threshold" (strict: "x > threshold"), by mean ± one std
    over seeds."""
    low, high = part.mean - part.std, part.mean + part.std
    if (low > threshold) if strict else (low >= threshold):
        return "holds"
    if (high <= threshold) if strict else (high < threshold):
        return "fails"
    return "unclear"


def overall(verdicts: list[str]) -> str:
    measured = [v for v in verdicts if v != "not tested"]
    if not measured:
        return "not tested"
    if all(v == "holds" for v in measured):
        return "holds"
    if all(v == "fails" for v in measured):
        return "fails"
    if all(v == "unclear" for v in measured):
        return "unclear"
    return "mixed"


def _test_rows(per_seed: pd.DataFrame) -> pd.DataFrame:
    return per_seed[per_seed["split"] == "test"]


def _values(test: pd.DataFrame, row: str, task: str, column: str) -> dict:
    """{seed: value} of a row on a task (the base model: one value under seed None)."""
    rows = test[(test["method"] == row) & (test["task"] == task)]
    return {None if pd.isna(s) else int(s): float(v) for s, v in zip(rows["seed"], rows[column])}


def _paired(test: pd.DataFrame, row: str, other: str, task: str, column: str, relation) -> tuple[float, ...] | None:
    """``relation(row's value, other's value)`` per seed both have (the base model pairs with every seed)."""
    mine, theirs = _values(test, row, task, column), _values(test, other, task, column)
    if not mine or not theirs:
        return None
    if list(theirs) == [None]:
        theirs = {seed: theirs[None] for seed in mine}
    seeds = [s for s in mine if s in theirs]
    return tuple(relation(mine[s], theirs[s]) for s in seeds) or None


def _ratio(a, b):
    """100 · a / b, of numbers or of replicate arrays (NaN where b is 0)."""
    return ratio(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


class Comparer:
    """Parts of claims that compare two rows on a task: the new rule's estimate and interval (paired bootstrap)
    and the old rule's per-seed values, from the same statistic."""

    def __init__(self, per_seed: pd.DataFrame, bootstrap: Bootstrap):
        from cofi.analysis.tables import cells_of

        self.test, self.cells, self.bootstrap = _test_rows(per_seed), cells_of(per_seed), bootstrap

    def part(self, row: str, other: str, task: str, label: str, column: str, statistic) -> Part:
        """``statistic(row's column, other's column)`` (numbers or replicate arrays) on ``task``."""
        if (row, task) not in self.cells or (other, task) not in self.cells:
            return Part(task, label, note=f"no {row} or {other} scores")
        mine, theirs = self.cells[row, task], self.cells[other, task]
        draws_mine, draws_theirs, _ = self.bootstrap.paired(mine, theirs)
        seeds = shared_seeds(mine, theirs)
        estimate = float(statistic(mine.on(seeds).means()[column], theirs.on(seeds).means()[column]))
        low, high = interval(np.asarray(statistic(draws_mine[column], draws_theirs[column]), dtype=float))
        values = _paired(self.test, row, other, task, column, lambda a, b: float(statistic(a, b))) or ()
        return Part(task, label, values, estimate, low, high)


def measure(per_seed: pd.DataFrame, rows: ClaimRows, searches: list[dict] = (), sharpness: pd.DataFrame | None = None,
            bootstrap: Bootstrap | None = None, search_scores: dict | None = None,
            forecast: pd.DataFrame | None = None) -> list[dict]:
    """Every claim: its statement, its rule, its parts (each with a verdict under the new and the old rule) and
    its overall verdicts. ``per_seed``: the table's per-seed rows (with ``item_scores`` where the files have them).
    ``search_scores``: {score file path: its row on the search's task} of the searches' candidates (the region
    claim's interval). ``forecast``: each run's early KL per task and seed (:func:`cofi.analysis.forecast.forecast_frame`;
    the forecast claim)."""
    comparer = Comparer(per_seed, bootstrap or Bootstrap())
    test = comparer.test
    tasks = list(dict.fromkeys(test["task"]))
    present = set(test["method"])
    fulls = [(row, label) for row, label in ((rows.full, "Full SFT, shared lr"), (rows.full_tuned, "Full SFT, tuned lr"))
             if row]
    claims = []

    def parts_against(others, column, statistic):
        if not rows.cofitune:
            return [Part(task, label, note="no CoFiTune row") for _, label in others for task in tasks]
        return [comparer.part(rows.cofitune, other, task, label, column, statistic) for other, label in others
                for task in tasks]

    def add(key, statement, rule, parts, threshold=None, strict=False, verdict_of=None):
        def judged(part):
            if not part.measured:
                return {"part": part, "verdict": "not tested", "old_verdict": "not tested"}
            if verdict_of is not None:
                verdict = verdict_of(part)
                return {"part": part, "verdict": verdict, "old_verdict": verdict}
            return {"part": part, "verdict": interval_verdict(part, threshold, strict),
                    "old_verdict": threshold_verdict(part, threshold, strict) if part.values else "not tested"}

        parts = [judged(p) for p in parts]
        claims.append({"claim": key, "statement": statement, "rule": rule, "parts": parts,
                       "verdict": overall([j["verdict"] for j in parts]),
                       "old_verdict": overall([j["old_verdict"] for j in parts])})

    difference = lambda a, b: a - b  # noqa: E731
    add("vers_kept", f"CoFiTune ({rows.cofitune}) keeps ≥ 95 % of the base model's Vers",
        "100 · Vers / base Vers; holds if the interval is ≥ 95",
        parts_against([(BASE, "base model")], "vers", _ratio), 95)
    add("spec_kept", f"CoFiTune ({rows.cofitune}) keeps ≥ 90 % of Full SFT's Spec",
        "100 · Spec / Full SFT's Spec, paired; holds if the interval is ≥ 90",
        parts_against(fulls, "spec", _ratio), 90)
    add("vers_gain", f"CoFiTune's ({rows.cofitune}) Vers is ≥ 14 % (relative) above Full SFT's",
        "100 · (Vers − Full SFT's Vers) / Full SFT's Vers, paired; holds if the interval is ≥ 14",
        parts_against(fulls, "vers", lambda a, b: _ratio(np.asarray(a) - np.asarray(b), b)), 14)

    competitors = sorted(present - {BASE, rows.cofitune, *rows.old_data, *rows.own_rows})
    best_parts = []
    for task in tasks:
        on_task = test[test["task"] == task]
        means = on_task[on_task["method"].isin(competitors)].groupby("method")["uni"].mean()
        if means.empty or rows.cofitune not in present:
            best_parts.append(Part(task, "best other run", note="no runs to compare"))
            continue
        best = means.idxmax()
        best_parts.append(comparer.part(rows.cofitune, best, task, f"best other run ({best})", "uni", difference))
    add("best_uni", f"CoFiTune ({rows.cofitune}) has the best Uni of all methods without old data",
        "Uni − the Uni of the best other method's run (by mean; not the base model, not CoFiTune's own rows, not "
        "the old-data rows), paired; holds if the interval is > 0", best_parts, 0, strict=True)

    add("paper_region", "(N/4, N/2] – FFN is the best coarse candidate",
        f"{PAPER_REGION}'s selection value − the best other candidate's (validation, the search seed; interval: "
        "a bootstrap over the items, paired); holds if the interval is ≥ 0",
        _region_parts(searches, tasks, search_scores or {}, comparer.bootstrap), 0)

    add("sam_forgets_less", f"SAM ({rows.sam}) forgets less than AdamW at equal compute ({rows.equal_compute})",
        "Vers of SAM − Vers of AdamW with twice the steps, paired; holds if the interval is > 0",
        [comparer.part(rows.sam, rows.equal_compute, task, rows.equal_compute or "equal compute", "vers", difference)
         if rows.sam and rows.equal_compute else Part(task, "equal compute", note="no SAM or equal-compute row")
         for task in tasks], 0, strict=True)

    flat_parts = []
    if sharpness is not None and rows.sharpness in sharpness.columns:
        for task, group in sharpness[sharpness["run"] != BASE].groupby("task", sort=False):
            rho = spearman(list(group[rows.sharpness]), list(group["vers_drop"]))
            flat_parts.append(Part(task, f"{len(group)} runs", () if math.isnan(rho) else (rho,),
                                   note="" if not math.isnan(rho) else "too few runs or no spread", runs=len(group)))
    else:
        flat_parts = [Part(task, "landscapes", note="no sharpness table") for task in tasks]

    def flat_verdict(part: Part) -> str:
        if part.mean >= spearman_critical(part.runs):
            return "holds"
        return "fails" if part.mean <= 0 else "unclear"

    add("sharp_forgets", "Sharper speciality landscapes go with more forgetting",
        f"Spearman ρ of {rows.sharpness} with the Vers drop over the landscapes' runs; holds if ρ ≥ the one-sided "
        "5 % permutation critical value, fails if ρ ≤ 0", flat_parts, verdict_of=flat_verdict)

    add("kl_forecast", "KL to the base model at 20 % of training ranks the runs by their final Vers drop",
        "Spearman ρ of each run's KL(base ‖ run) on the task's held-out prompts at 20 % of its steps (mean over seeds) "
        "with its Vers drop from the base model (test, mean over seeds), over every run that measured it "
        "(training.kl_every); holds if ρ ≥ the one-sided 5 % permutation critical value, fails if ρ ≤ 0",
        _forecast_parts(forecast, test, tasks), verdict_of=flat_verdict)
    return claims


def _forecast_parts(forecast: pd.DataFrame | None, test: pd.DataFrame, tasks: list[str]) -> list[Part]:
    """Per task, Spearman's ρ of the runs' early KL with their Vers drop."""
    if forecast is None or forecast["kl_early"].notna().sum() == 0:
        return [Part(task, "runs", note="no run measured its KL (training.kl_every)") for task in tasks]
    from cofi.analysis.forecast import forecast_points

    parts = []
    for task in tasks:
        points = forecast_points(forecast, test, task, BASE)
        if len(points) < 3:
            parts.append(Part(task, f"{len(points)} runs", note="fewer than 3 runs with a KL curve and test scores"))
            continue
        rho = spearman(points["kl_early"].tolist(), points["vers_drop"].tolist())
        parts.append(Part(task, f"{len(points)} runs", () if math.isnan(rho) else (rho,),
                          note="" if not math.isnan(rho) else "no spread", runs=len(points)))
    return parts


def _region_parts(searches: list[dict], tasks: list[str], search_scores: dict, bootstrap: Bootstrap) -> list[Part]:
    """The paper region's selection value against the best other candidate's, per search: the trace's values
    (one seed, validation) and, where the candidates' score files are at hand, a paired interval over their items."""
    from cofi.analysis.intervals import Cell

    if not searches:
        return [Part(task, "the search", note="no search") for task in tasks]
    parts = []
    for result in searches:
        if result.get("criterion") == "snr":  # ranked by the weights' SNR: no candidate has a selection value
            parts.append(Part(result["task"], f"pick {result['selected']}", note="search.mode snr trains no candidate"))
            continue
        nodes = {n["id"]: n for n in result["nodes"] if n["id"] != "root"}
        if PAPER_REGION not in nodes:
            parts.append(Part(result["task"], f"{len(nodes)} candidates", note=f"{PAPER_REGION} not trained"))
            continue
        others = {k: n for k, n in nodes.items() if k != PAPER_REGION}
        label = f"{len(nodes)} candidates (pick {result['selected']})"
        if not others:
            parts.append(Part(result["task"], label, (0.0,), 0.0, 0.0, 0.0))
            continue
        rival = max(others, key=lambda k: others[k]["value"])
        gap = nodes[PAPER_REGION]["value"] - others[rival]["value"]
        files = [nodes[k].get("score_file") for k in (PAPER_REGION, rival)]
        if not all(f in search_scores for f in files):
            parts.append(Part(result["task"], label, (gap,), gap, note="no interval: the candidates' item scores "
                                                                       "are not at hand"))
            continue
        cells = [Cell.of(result["task"], [{**search_scores[f], "seed": 0}]) for f in files]
        mine, theirs, _ = bootstrap.paired(*cells)
        column = result.get("criterion", "uni")
        low, high = interval(mine[column] - theirs[column])
        parts.append(Part(result["task"], label, (gap,), gap, low, high))
    return parts


def claims_frame(claims: list[dict]) -> pd.DataFrame:
    """Long form: one row per claim part (the CSV): the estimate, its interval and verdict, and the old rule's
    mean, std and verdict."""
    rows = []
    for claim in claims:
        for judged in claim["parts"]:
            part = judged["part"]
            rows.append({"claim": claim["claim"], "task": part.task, "against": part.against,
                         "estimate": part.estimate, "low": part.low, "high": part.high, "verdict": judged["verdict"],
                         "n_seeds": len(part.values), "mean": part.mean if part.values else float("nan"),
                         "std": part.std if len(part.values) > 1 else float("nan"),
                         "old_verdict": judged["old_verdict"], "note": part.note,
                         "claim_verdict": claim["verdict"], "claim_old_verdict": claim["old_verdict"]})
    return pd.DataFrame(rows)


def _measured(part: Part, digits: int) -> str:
    if not math.isnan(part.estimate) and not math.isnan(part.low):
        return f"{part.estimate:.{digits}f} [{part.low:.{digits}f}, {part.high:.{digits}f}]"
    if not math.isnan(part.estimate):
        return f"{part.estimate:.{digits}f} (no interval)"
    return f"ρ {part.mean:.{digits + 1}f} over {part.runs} runs" if part.runs else f"{part.mean:.{digits}f}"


def claims_markdown(claims: list[dict], digits: int = 1) -> str:
    """The rule first; then one line per claim: per task and reference the estimate [95 % interval] and its
    verdict, the claim's verdict, and the old rule's (mean ± std over seeds) beside it; then each claim's
    statistic."""
    lines = ["| claim | measured (per task: estimate [95 % interval]) | verdict | old rule: mean ± std over seeds |",
             "|:--|:--|:--|:--|"]
    for claim in claims:
        cells, old = [], []
        for judged in claim["parts"]:
            part = judged["part"]
            if not part.measured:
                cells.append(f"{part.task} vs {part.against}: not tested ({part.note})")
                continue
            cells.append(f"{part.task} vs {part.against}: {_measured(part, digits)} ({judged['verdict']})")
            if part.values and not part.runs:
                spread = f" ± {part.std:.{digits}f}" if len(part.values) > 1 else " (one seed)"
                old.append(f"{part.task}: {part.mean:.{digits}f}{spread} ({judged['old_verdict']})")
        old_text = "; ".join(old) + f" → **{claim['old_verdict']}**" if old else claim["old_verdict"]
        lines.append(f"| {claim['statement']} | {'; '.join(cells)} | **{claim['verdict']}** | {old_text} |")
    rules = "\n".join(f"- {claim['claim']}: {claim['rule']}" for claim in claims)
    return RULE + "\n\n" + "\n".join(lines) + "\n\nEach claim's statistic:\n\n" + rules + "\n"
