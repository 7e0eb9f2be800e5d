"""The jobs that rebuild results from score files: the tables, the claims, the figures and the sharpness
table (no training, no evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cofi.config.settings import ClaimRows, TablesSettings
from cofi.jobs.interface import Job, option

RUN_FILE_HELP = "RUN=PATH reads a file as run RUN's (a run that trains what another run trains shares its files)"


@dataclass(frozen=True, kw_only=True)
class TableJob(Job):
    """Build the result tables from score files."""

    scores: tuple[str, ...] = option("score JSON files (test, and validation for sweeps); " + RUN_FILE_HELP)
    searches: tuple[str, ...] = option("search result.json files: their picks' rows are named cofitune_coarse", ())
    out_dir: str = option("directory for main.csv/.md/.tex, normalised.md/.tex, tuned.md/.tex, comparisons.csv/.md, "
                          "seeds.csv")
    reference: str | None = option("run the normalised view and the comparisons compare to (e.g. full)", None)
    compare_to: tuple[str, ...] = option("more rows every row is compared to, paired (e.g. sft_tuned)", ())
    groups: dict = option('{sweep: {variant run: "lr=0.001"}}: a tuned row per sweep', {})
    settings: TablesSettings = option("how the tables read (tables)", TablesSettings())
    expect: dict | None = option('{"runs", "sweeps", "tasks", "seeds", "searched"}: refuse a partial table', None)
    selected_on_test: dict = option("{task: rows}: rows chosen on that task's test split (selection: test), "
                                    "marked in the tables", {})

    def execute(self):
        from cofi.analysis.tables import write_tables

        tidy = write_tables(list(self.scores), self.out_dir, self.reference, self.groups, self.settings, self.expect,
                            searches=list(self.searches), compare_to=self.compare_to,
                            selected_on_test=self.selected_on_test)
        self.log(f"wrote {len(tidy)} rows (runs × tasks) to {self.out_dir}: main.csv/.md/.tex, normalised.md/.tex, "
                 "tuned.md/.tex, comparisons.csv/.md, seeds.csv")
        return tidy


@dataclass(frozen=True, kw_only=True)
class ClaimsJob(Job):
    """The papers' claims checked against the score files: claims.md and claims.csv."""

    scores: tuple[str, ...] = option("the table's score files (test, and validation for sweeps); " + RUN_FILE_HELP)
    searches: tuple[str, ...] = option("search result.json files (the coarse pick's rows, the region claim)", ())
    groups: dict = option('{sweep: {variant run: "lr=0.001"}}: a tuned row per sweep', {})
    sharpness: str | None = option("sharpness.csv (the flatness claim)", None)
    curves: tuple[dict, ...] = option('[{"method", "task", "seed", "steps", "path"}, ...]: loss.csv of each run that '
                                      "measured its KL (training.kl_every; the forecast claim)", ())
    rows: ClaimRows = option("which rows the claims read (claims)", ClaimRows())
    settings: TablesSettings = option("digits and the bootstrap (tables)", TablesSettings())
    out_dir: str = option("directory for claims.md and claims.csv")
    forecast_plot: str | None = option("path without suffix of the forecast figure (PNG and PDF): each run's early KL "
                                       "against its Vers drop, per task", None)

    def execute(self) -> list[dict]:
        import pandas as pd

        from cofi.analysis.claims import claims_frame, claims_markdown, measure
        from cofi.analysis.forecast import forecast_frame, forecast_points, plot_forecast
        from cofi.analysis.intervals import Bootstrap
        from cofi.analysis.tables import load_per_seed, score_rows
        from cofi.io import read_json

        searches = [read_json(p) for p in self.searches]
        search_scores = {}  # the candidates' rows on their task, by score file: the region claim's interval
        for result in searches:
            for node in result["nodes"]:
                path = node.get("score_file")
                if path and Path(path).exists():
                    search_scores[path] = next(r for r in score_rows(read_json(path)) if r["task"] == result["task"])
        per_seed = load_per_seed(self.scores, self.searches, self.groups)
        forecast = forecast_frame(list(self.curves)) if self.curves else None
        claims = measure(per_seed, self.rows, searches, pd.read_csv(self.sharpness) if self.sharpness else None,
                         Bootstrap(self.settings.bootstrap, self.settings.bootstrap_seed), search_scores, forecast)
        if self.forecast_plot:
            rho = {part["part"].task: part["part"].mean for claim in claims if claim["claim"] == "kl_forecast"
                   for part in claim["parts"] if part["part"].values}
            test = per_seed[per_seed["split"] == "test"]
            tasks = sorted(set(test["task"]))  # every panel, a run or none
            plot_forecast({task: forecast_points(forecast, test, task) for task in tasks}, rho, self.forecast_plot)
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "claims.md").write_text("The papers' claims against this experiment (test split)\n\n"
                                       + claims_markdown(claims, self.settings.digits))
        claims_frame(claims).to_csv(out / "claims.csv", index=False, float_format="%.4f")
        self.log("; ".join(f"{c['claim']}: {c['verdict']} (old rule: {c['old_verdict']})" for c in claims))
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


@dataclass(frozen=True, kw_only=True)
class RealignTableJob(Job):
    """The realignment probe's table: each probed row's drop, what its probe recovered, and the base model's own
    change from the same steps (realign.md and realign.csv)."""

    before: tuple[str, ...] = option("the probed rows' test score files and the base model's; " + RUN_FILE_HELP)
    after: tuple[str, ...] = option("their score files after the probe (the base model's at each seed)")
    steps: int = option("the probe's steps (realign.steps), for the caption")
    examples: int = option("its examples (realign.examples), for the caption")
    settings: TablesSettings = option("digits and the bootstrap (tables)", TablesSettings())
    out_dir: str = option("directory for realign.md and realign.csv")

    def execute(self):
        from cofi.analysis.intervals import Bootstrap
        from cofi.analysis.realign import realign_markdown, realign_table
        from cofi.analysis.tables import read_score_files

        table = realign_table(read_score_files(list(self.before)), read_score_files(list(self.after)),
                              Bootstrap(self.settings.bootstrap, self.settings.bootstrap_seed))
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "realign.md").write_text(realign_markdown(table, self.steps, self.examples, self.settings.digits))
        table.to_csv(out / "realign.csv", index=False, float_format="%.4f")
        self.log(f"realignment probe: {table['method'].nunique() if len(table) else 0} rows -> {out}/realign.md")
        return table
