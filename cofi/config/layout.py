"""Where every file of an experiment goes (pure): the one home of the results tree's paths."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Where everything of one experiment goes, under ``results/<experiment>``. Any argument may be a
    Snakemake wildcard such as ``"{run}"``, which gives the rule's path pattern."""

    root: str

    @classmethod
    def of(cls, experiment: str) -> "Layout":
        """The layout of the experiment called ``experiment`` (the config's ``experiment`` key)."""
        return cls(f"results/{experiment}")

    @property
    def data(self) -> str:
        return f"{self.root}/data"

    def data_file(self, stem: str) -> str:
        return f"{self.data}/{stem}.jsonl"

    @property
    def base_model(self) -> str:
        return f"{self.root}/base_model"

    def run_dir(self, run: str, task: str, seed) -> str:
        return f"{self.root}/runs/{run}/{task}/seed{seed}"

    def run_file(self, run: str, task: str, seed, name: str) -> str:
        return f"{self.run_dir(run, task, seed)}/{name}"

    def realigned(self, row: str, task: str, seed, name: str) -> str:
        """A file of the realignment probe of ``row`` (a run, or the base model) at ``task`` and ``seed``."""
        return f"{self.root}/realign/{row}/{task}/seed{seed}/{name}"

    def importance(self, source: str, suffix: str = "safetensors") -> str:
        return f"{self.root}/importance/{source}.{suffix}"

    def search_dir(self, search: str, task: str) -> str:
        return f"{self.root}/search/{search}/{task}"

    @property
    def base_scores(self) -> str:
        return f"{self.root}/scores/base.json"

    def landscape(self, task: str, run: str, suffix: str = "json") -> str:
        return f"{self.root}/landscape/{task}/{run}.{suffix}"

    @property
    def tables(self) -> str:
        return f"{self.root}/tables"

    @property
    def plots(self) -> str:
        return f"{self.root}/plots"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.root}/benchmarks"
