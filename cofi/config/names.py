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
