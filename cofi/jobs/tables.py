"""The jobs that rebuild results from score files: the tables, the claims, the figures and the sharpness
table (no training, no evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cofi.config.settings import ClaimRows
from cofi.jobs.interface import Job, option

RUN_FILE_HELP = "RUN=PATH reads a file as run RUN's (a run that trains what another run trains shares its files)"


@dataclass(frozen=True, kw_only=True)
class TableJob(Job):
    """Build the result tables from score files."""

    scores: tuple[str, ...] = option("score JSON files (test, and validation for sweeps); " + RUN_FILE_HELP)
    searches: tuple[str, ...] = option("search result.json files: their picks' rows are named cofitune_coarse", ())
    out_dir: str = option("directory for main.csv/.md/.tex, normalised.md/.tex, tuned.md/.tex, seeds.csv")
    reference: str | None = option("run the normalised view compares to (e.g. full)", None)
    groups: dict = option('{sweep: {variant run: "lr=0.001"}}: a tuned row per sweep', {})
    digits: int = option("decimals shown (tables.digits)", 1)
    std: bool = option("show ± std over seeds (tables.show_std)", True)
    bold: bool = option("mark the best value per column (tables.bold_best)", True)
    expect: dict | None = option('{"runs", "sweeps", "tasks", "seeds", "searched"}: refuse a partial table', None)

    def execute(self):
        from cofi.analysis.tables import write_tables

        tidy = write_tables(list(self.scores), self.out_dir, self.reference, self.groups, self.digits, self.std,
                            self.bold, self.expect, searches=list(self.searches))
        self.log(f"wrote {len(tidy)} rows (runs × tasks) to {self.out_dir}: main.csv/.md/.tex, normalised.md/.tex, "
                 "seeds.csv")
        return tidy


@dataclass(frozen=True, kw_only=True)
class ClaimsJob(Job):
    """The papers' claims checked against the tables: claims.md and claims.csv."""

    seeds: str = option("seeds.csv of the main table (every score of every seed)")
    searches: tuple[str, ...] = option("search result.json files (the region claim)", ())
    sharpness: str | None = option("sharpness.csv (the flatness claim)", None)
    rows: ClaimRows = option("which rows the claims read (claims)", ClaimRows())
    digits: int = option("decimals in claims.md (tables.digits)", 1)
    out_dir: str = option("directory for claims.md and claims.csv")

    def execute(self) -> list[dict]:
        import pandas as pd

        from cofi.analysis.claims import claims_frame, claims_markdown, measure
        from cofi.io import read_json

        claims = measure(pd.read_csv(self.seeds), self.rows, [read_json(p) for p in self.searches],
                         pd.read_csv(self.sharpness) if self.sharpness else None)
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "claims.md").write_text("The papers' claims against this experiment (test split)\n\n"
                                       + claims_markdown(claims, self.digits))
        claims_frame(claims).to_csv(out / "claims.csv", index=False, float_format="%.4f")
        self.log("; ".join(f"{c['claim']}: {c['verdict']}" for c in claims))
        return claims


@dataclass(frozen=True, kw_only=True)
class PlotsJob(Job):
    """Figures from the tidy table: Pareto (Spec vs Vers) per task, Uni per run."""

    table: str = option("tables/main.csv")
    out_dir: str = option("directory for the figures (PNG and PDF)")
    collect: dict = option("{target: source}: other figures to copy in", {})

    def execute(self) -> list:
        from cofi.analysis.plots import write_plots

        written = write_plots(self.table, self.out_dir, self.collect)
        self.log(f"wrote {len(written)} figures to {self.out_dir}")
        return written


@dataclass(frozen=True, kw_only=True)
class LossCurvesJob(Job):
    """The training loss of several runs in one figure."""

    curves: dict = option("{label: a run's loss.csv}")
    title: str = option("figure title", "training loss")
    out: str = option("figure path without suffix (PNG and PDF)")

    def execute(self) -> list:
        from cofi.analysis.plots import plot_loss_curves

        written = plot_loss_curves(dict(self.curves), self.title, self.out)
        self.log(f"wrote {', '.join(map(str, written))} ({len(self.curves)} runs)")
        return written


@dataclass(frozen=True, kw_only=True)
class SharpnessJob(Job):
    """Sharpness of every landscape, the Vers drop of each model, and their rank correlations."""

    landscapes: tuple[str, ...] = option("landscape JSON files")
    scores: tuple[str, ...] = option("the score files of the same models and the base model; " + RUN_FILE_HELP)
    out_dir: str = option("directory for sharpness.csv/.md and sharpness_correlation.csv")
    plot_dir: str = option("directory for landscape_<task>.png/pdf (every run's 1-D curves)")

    def execute(self):
        from cofi.analysis.sharpness import write_sharpness

        table, correlations = write_sharpness(list(self.landscapes), list(self.scores), self.out_dir, self.plot_dir)
        self.log(f"sharpness of {len(table)} models; Spearman with the Vers drop:\n"
                 f"{correlations.round(3).to_string(index=False)}")
        return table
