"""The papers' claims, checked against an experiment's numbers (pure pandas: no torch, no files).

One line per claim, per task the measured value (mean ± std over seeds, where seeds exist) and a
verdict from one stated rule, the same whichever way the numbers fall:

- a claim "x ≥ t" (x per seed, paired by seed where it compares two runs) *holds* on a task when
  mean − std ≥ t, *fails* when mean + std < t, and is *unclear* in between (the seeds' spread
  straddles the threshold; one seed has no spread). A strict claim ("x > t") holds when
  mean − std > t and fails when mean + std ≤ t.
- a claim over runs (sharper landscapes go with more forgetting) holds on a task when Spearman's ρ
  reaches the one-sided 5 % critical value of a permutation test, fails when ρ ≤ 0, else unclear.
- over tasks (and, where a claim is measured against Full SFT, against its shared and its tuned lr):
  **holds** if every part holds, **fails** if every part fails, **mixed** otherwise; parts that
  could not be measured (a run the experiment lacks) are left out, and a claim with none is *not
  tested*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cofi.analysis.stats import spearman, spearman_critical
from cofi.config.names import BASE_ROW as BASE
from cofi.config.settings import ClaimRows

PAPER_REGION = "r25-50_ffn"  # (N/4, N/2] – FFN: where the paper's search ended at 7B, 13B and 33B


@dataclass(frozen=True)
class Part:
    """One measured part of a claim: a task, what it is measured against, and the per-seed values."""

    task: str
    against: str
    values: tuple[float, ...]
    note: str = ""
    runs: int = 0  # the runs a correlation is over

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (n - 1))


def threshold_verdict(part: Part, threshold: float, strict: bool = False) -> str:
    """holds / fails / unclear for "x ≥ threshold" (strict: "x > threshold"), by mean ± one std."""
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


def _ratio(a: float, b: float) -> float:
    return 100 * a / b if b else float("nan")


def measure(per_seed: pd.DataFrame, rows: ClaimRows, searches: list[dict] = (), sharpness: pd.DataFrame | None = None
            ) -> list[dict]:
    """Every claim: its statement, its rule, its parts (each with a verdict) and its overall verdict."""
    test = _test_rows(per_seed)
    tasks = list(dict.fromkeys(test["task"]))
    present = set(test["method"])
    fulls = [(row, label) for row, label in ((rows.full, "Full SFT, shared lr"), (rows.full_tuned, "Full SFT, tuned lr"))
             if row]
    claims = []

    def parts_against(others, column, relation):
        parts = []
        for other, label in others:
            for task in tasks:
                values = _paired(test, rows.cofitune, other, task, column, relation)
                parts.append(Part(task, label, values or (), "" if values else f"no {rows.cofitune} or {other} scores"))
        return parts

    def add(key, statement, rule, parts, verdict_of):
        judged = [{"part": p, "verdict": verdict_of(p) if p.values else "not tested"} for p in parts]
        claims.append({"claim": key, "statement": statement, "rule": rule, "parts": judged,
                       "verdict": overall([j["verdict"] for j in judged])})

    add("vers_kept", f"CoFiTune ({rows.cofitune}) keeps ≥ 95 % of the base model's Vers",
        "100 · Vers / base Vers per seed; holds if mean − std ≥ 95",
        parts_against([(BASE, "base model")], "vers", _ratio), lambda p: threshold_verdict(p, 95))
    add("spec_kept", f"CoFiTune ({rows.cofitune}) keeps ≥ 90 % of Full SFT's Spec",
        "100 · Spec / Full SFT's Spec, paired by seed; holds if mean − std ≥ 90",
        parts_against(fulls, "spec", _ratio), lambda p: threshold_verdict(p, 90))
    add("vers_gain", f"CoFiTune's ({rows.cofitune}) Vers is ≥ 14 % (relative) above Full SFT's",
        "100 · (Vers − Full SFT's Vers) / Full SFT's Vers, paired by seed; holds if mean − std ≥ 14",
        parts_against(fulls, "vers", lambda a, b: _ratio(a - b, b)), lambda p: threshold_verdict(p, 14))

    competitors = sorted(present - {BASE, rows.cofitune, *rows.old_data, *rows.own_rows})
    best_parts = []
    for task in tasks:
        on_task = test[test["task"] == task]
        means = on_task[on_task["method"].isin(competitors)].groupby("method")["uni"].mean()
        if means.empty or rows.cofitune not in present:
            best_parts.append(Part(task, "best other run", (), "no runs to compare"))
            continue
        best = means.idxmax()
        values = _paired(test, rows.cofitune, best, task, "uni", lambda a, b: a - b)
        best_parts.append(Part(task, f"best other run ({best})", values or ()))
    add("best_uni", f"CoFiTune ({rows.cofitune}) has the best Uni of all methods without old data",
        "Uni − the Uni of the best other method's run (by mean; not the base model, not CoFiTune's own rows, not "
        "the old-data rows), paired by seed; holds if mean − std > 0", best_parts,
        lambda p: threshold_verdict(p, 0, strict=True))

    region_parts = [] if searches else [Part(task, "the search", (), "no search") for task in tasks]
    for result in searches:
        values = {n["id"]: n["value"] for n in result["nodes"] if n["id"] != "root"}
        if PAPER_REGION not in values:
            region_parts.append(Part(result["task"], f"{len(values)} candidates", (), f"{PAPER_REGION} not trained"))
            continue
        others = [v for k, v in values.items() if k != PAPER_REGION]
        gap = values[PAPER_REGION] - max(others) if others else 0.0
        region_parts.append(Part(result["task"], f"{len(values)} candidates (pick {result['selected']})", (gap,)))
    add("paper_region", "(N/4, N/2] – FFN is the best coarse candidate",
        f"{PAPER_REGION}'s selection value − the best other candidate's (validation, the search seed); holds if ≥ 0",
        region_parts, lambda p: threshold_verdict(p, 0))

    add("sam_forgets_less", f"SAM ({rows.sam}) forgets less than AdamW at equal compute ({rows.equal_compute})",
        "Vers of SAM − Vers of AdamW with twice the steps, paired by seed; holds if mean − std > 0",
        [Part(task, rows.equal_compute, _paired(test, rows.sam, rows.equal_compute, task, "vers", lambda a, b: a - b)
              or ()) for task in tasks], lambda p: threshold_verdict(p, 0, strict=True))

    flat_parts = []
    if sharpness is not None and rows.sharpness in sharpness.columns:
        for task, group in sharpness[sharpness["run"] != BASE].groupby("task", sort=False):
            rho = spearman(list(group[rows.sharpness]), list(group["vers_drop"]))
            flat_parts.append(Part(task, f"{len(group)} runs", () if math.isnan(rho) else (rho,),
                                   "" if not math.isnan(rho) else "too few runs or no spread", runs=len(group)))
    else:
        flat_parts = [Part(task, "landscapes", (), "no sharpness table") for task in tasks]

    def flat_verdict(part: Part) -> str:
        if part.mean >= spearman_critical(part.runs):
            return "holds"
        return "fails" if part.mean <= 0 else "unclear"

    add("sharp_forgets", "Sharper speciality landscapes go with more forgetting",
        f"Spearman ρ of {rows.sharpness} with the Vers drop over the landscapes' runs; holds if ρ ≥ the one-sided "
        "5 % permutation critical value, fails if ρ ≤ 0", flat_parts, flat_verdict)
    return claims


def claims_frame(claims: list[dict]) -> pd.DataFrame:
    """Long form: one row per claim part (the CSV)."""
    rows = []
    for claim in claims:
        for judged in claim["parts"]:
            part = judged["part"]
            rows.append({"claim": claim["claim"], "task": part.task, "against": part.against, "n": len(part.values),
                         "mean": part.mean if part.values else float("nan"),
                         "std": part.std if len(part.values) > 1 else float("nan"),
                         "verdict": judged["verdict"], "note": part.note, "claim_verdict": claim["verdict"]})
    return pd.DataFrame(rows)


def claims_markdown(claims: list[dict], digits: int = 1) -> str:
    """One line per claim: per task and reference the value (mean ± std) and its verdict, then the verdict."""
    lines = ["| claim | measured (per task) | verdict |", "|:--|:--|:--|"]
    for claim in claims:
        cells = []
        for judged in claim["parts"]:
            part = judged["part"]
            if not part.values:
                cells.append(f"{part.task} vs {part.against}: not tested ({part.note})")
                continue
            value = f"{part.mean:.{digits}f}" + (f" ± {part.std:.{digits}f}" if len(part.values) > 1 else "")
            cells.append(f"{part.task} vs {part.against}: {value} ({judged['verdict']})")
        lines.append(f"| {claim['statement']} | {'; '.join(cells)} | **{claim['verdict']}** |")
    rules = "\n".join(f"- {claim['claim']}: {claim['rule']}" for claim in claims)
    return "\n".join(lines) + "\n\n" + VERDICTS + "\n\n" + rules + "\n"


VERDICTS = ("A part holds when its mean − std (over seeds) clears the claim's threshold, fails when its mean + std "
            "misses it, and is unclear in between; a claim holds if every measured part holds, fails if every one "
            "fails, and is mixed otherwise. Each claim's statistic:")
