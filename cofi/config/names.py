"""The names the workflow gives table rows, runs and search candidates (pure): one home for each."""

RUN_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # what a run (and a search candidate) may be called
SEARCH_PREFIX = "region-"  # search candidates are runs named region-<region id>
# Table rows the workflow makes itself; no configured run may take their names.
BASE_ROW = "base"  # the base model, scored once
COARSE_ROW = "cofitune_coarse"  # the coarse search's pick, trained at every seed
RESERVED_ROWS = {BASE_ROW: "the base model's row", COARSE_ROW: "the coarse search's pick"}


def tuned_row(sweep: str) -> str:
    """The row of a sweep's value chosen on validation."""
    return f"{sweep}_tuned"


def claim_rows(claims, runs):
    """The claims settings (a :class:`cofi.config.settings.ClaimRows`) as the claims job reads them, for ``runs``
    (a :class:`cofi.config.runs.Runs`): each old-data sweep expanded to its values' rows and its tuned row;
    CoFiTune's own rows (the coarse pick, every run of its method) added."""
    import dataclasses

    sweeps = runs.sweeps

    def rows_of(name: str) -> list[str]:
        return [*sweeps[name], tuned_row(name)] if name in sweeps else [name]

    old = [row for name in claims.old_data for row in rows_of(name)]
    claimed = claims.cofitune
    sweep = next((name for name in sweeps if tuned_row(name) == claimed), None)
    method = runs[next(iter(sweeps[sweep]))].method if sweep else runs[claimed].method if claimed in runs else None
    own = {COARSE_ROW, *claims.own_rows}
    for name, run in runs.items():
        if method is not None and run.method == method:
            own |= {name, *([tuned_row(run.sweep)] if run.sweep else [])}
    return dataclasses.replace(claims, old_data=tuple(old), own_rows=tuple(sorted(own)))
