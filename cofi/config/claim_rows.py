"""Which table rows each of the papers' claims reads, found from what the config has (pure: no files).

A claims row left at ``auto`` (the default) is found from the runs:

- CoFiTune: the run of method ``cofitune`` (preferring the paper's recipe: the gradient soft mask, no SAM), a
  sweep by its tuned row; without one, the coarse search's pick;
- Full SFT at the shared lr: the search's reference;
- Full SFT at its tuned lr: the tuned row of the reference's sweep, else of the first sweep of plain Full SFT;
- SAM: a Full SFT run with SAM; AdamW at its compute: a Full SFT run with ``equal_compute``;
- old data: every run whose method trains on old data (replay), besides the rows the config names.

A row the config names is read as it is (null: that claim is not tested).
"""

from __future__ import annotations

import dataclasses

from cofi.config.names import BASE_ROW, COARSE_ROW, tuned_row
from cofi.config.settings import AUTO, ClaimRows

# What each claim reads, and what a config needs to test it (check-config lists the claims it cannot test).
CLAIM_NEEDS = {
    "vers_kept": "a CoFiTune row: a run of method cofitune, or the search on (its pick)",
    "spec_kept": "a CoFiTune row, and Full SFT: search.reference (the shared lr) or a sweep of method full over lr",
    "vers_gain": "a CoFiTune row, and Full SFT: search.reference (the shared lr) or a sweep of method full over lr",
    "best_uni": "a CoFiTune row and another method's run (not old data)",
    "paper_region": "search.enabled: true (the region (N/4, N/2] FFN among its candidates)",
    "sam_forgets_less": "a run of method full with sam: {rho: …} and one with equal_compute: true",
    "sharp_forgets": "landscape.runs with at least 3 runs besides the base model",
}


def _row(run) -> str:
    """The table row that stands for a run: a sweep variant by its sweep's tuned row."""
    return tuned_row(run.sweep) if run.sweep else run.name


def _plain_full(run) -> bool:
    return run.method == "full" and not run.sam_rho and not run.equal_compute


def found_rows(claims: ClaimRows, runs, reference: str | None, search_on: bool) -> ClaimRows:
    """``claims`` with each ``auto`` row found from ``runs`` (a :class:`cofi.config.runs.Runs`), ``reference`` (the
    search's reference run) and whether the search runs; None where the config has no such run."""
    listed = list(runs.values())

    def first(test):
        return next((_row(run) for run in listed if test(run)), None)

    def auto(key, find):
        value = getattr(claims, key)
        return find() if value == AUTO else value

    def cofitune():
        recipe = first(lambda r: r.method == "cofitune" and r.params.get("softmask") == "grad" and not r.sam_rho)
        return recipe or first(lambda r: r.method == "cofitune") or (COARSE_ROW if search_on else None)

    def full_tuned():
        ref = runs.get(reference)
        if ref is not None and ref.sweep and _plain_full(ref):
            return tuned_row(ref.sweep)
        return first(lambda r: r.sweep is not None and _plain_full(r))

    return dataclasses.replace(
        claims,
        cofitune=auto("cofitune", cofitune),
        full=auto("full", lambda: reference if reference in runs else first(lambda r: _plain_full(r) and not r.sweep)),
        full_tuned=auto("full_tuned", full_tuned),
        sam=auto("sam", lambda: first(lambda r: r.method == "full" and r.sam_rho and not r.equal_compute)),
        equal_compute=auto("equal_compute", lambda: first(lambda r: r.method == "full" and r.equal_compute
                                                          and not r.sam_rho)))


def claim_rows(claims: ClaimRows, runs, reference: str | None = None, search_on: bool = False) -> ClaimRows:
    """The claims settings as the claims job reads them: ``auto`` rows found (:func:`found_rows`); each old-data
    sweep expanded to its values' rows and its tuned row, with every run of a method that trains on old data;
    CoFiTune's own rows (the coarse pick, every run of its method) added."""
    from cofi.methods import METHODS

    claims = found_rows(claims, runs, reference, search_on)
    sweeps = runs.sweeps

    def rows_of(name: str) -> list[str]:
        return [*sweeps[name], tuned_row(name)] if name in sweeps else [name]

    old = [row for name in claims.old_data for row in rows_of(name)]
    old += [row for name, run in runs.items() if METHODS[run.method].trains_on_old_data
            for row in (name, *([tuned_row(run.sweep)] if run.sweep else []))]
    claimed = claims.cofitune
    sweep = next((name for name in sweeps if tuned_row(name) == claimed), None)
    method = runs[next(iter(sweeps[sweep]))].method if sweep else runs[claimed].method if claimed in runs else None
    own = {COARSE_ROW, *claims.own_rows}
    for name, run in runs.items():
        if method is not None and run.method == method:
            own |= {name, *([tuned_row(run.sweep)] if run.sweep else [])}
    return dataclasses.replace(claims, old_data=tuple(dict.fromkeys(old)), own_rows=tuple(sorted(own)))


def untested_claims(rows: ClaimRows, table_rows: list[str], search_on: bool, landscape_runs: list[str]) -> dict:
    """{claim: what it would need} for each claim these rows (as :func:`claim_rows` gives them) cannot test, and
    each claim tested only in part (against one Full SFT of two)."""
    missing = {}
    fulls = [r for r in (rows.full, rows.full_tuned) if r]
    others = set(table_rows) - {BASE_ROW, rows.cofitune, *rows.old_data, *rows.own_rows}
    if not rows.cofitune:
        missing |= {claim: CLAIM_NEEDS[claim] for claim in ("vers_kept", "spec_kept", "vers_gain", "best_uni")}
    elif not fulls:
        missing |= {claim: CLAIM_NEEDS[claim] for claim in ("spec_kept", "vers_gain")}
    elif len(fulls) == 1:
        lacking = "a sweep of method full over lr (its tuned row)" if rows.full else "search.reference"
        missing |= {claim: f"only in part: against one Full SFT; the other needs {lacking}"
                    for claim in ("spec_kept", "vers_gain")}
    if rows.cofitune and not others:
        missing["best_uni"] = CLAIM_NEEDS["best_uni"]
    if not search_on:
        missing["paper_region"] = CLAIM_NEEDS["paper_region"]
    if not (rows.sam and rows.equal_compute):
        missing["sam_forgets_less"] = CLAIM_NEEDS["sam_forgets_less"]
    if len([r for r in landscape_runs if r != BASE_ROW]) < 3:
        missing["sharp_forgets"] = CLAIM_NEEDS["sharp_forgets"]
    return missing
