"""Per-rule times from the TSV files Snakemake's ``benchmark:`` directive writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_benchmarks(directory: str | Path) -> pd.DataFrame:
    """One row per job; ``rule`` is the first folder under ``directory`` (rules name their own)."""
    directory = Path(directory)
    rows = []
    for path in sorted(directory.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rows.append({"rule": path.relative_to(directory).parts[0], "job": str(path.relative_to(directory)),
                     "seconds": float(frame["s"].iloc[-1]), "max_rss_mb": pd.to_numeric(frame["max_rss"], errors="coerce").iloc[-1]})
    if not rows:
        raise FileNotFoundError(f"{directory}: no benchmark files (run the workflow first)")
    return pd.DataFrame(rows)


def benchmark_report(directory: str | Path) -> str:
    jobs = read_benchmarks(directory)
    per_rule = jobs.groupby("rule", sort=False).agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), max_s=("seconds", "max"), max_rss_mb=("max_rss_mb", "max")
    )
    return (
        per_rule.round(1).to_markdown()
        + f"\n\nsum of job times: {jobs['seconds'].sum():.1f} s over {len(jobs)} jobs\n"
    )
