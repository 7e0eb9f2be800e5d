"""The coarse search's settings and its candidates as runs (pure).

A candidate carries its region and lr; its run's name is derived from them (``region-<id>`` at the
reference's lr, ``region-<id>_lr<lr>`` at another), so a wider beam or a longer lr list reuses every
run trained before. Where only the name is known (a rule's wildcard) the region is parsed from its id
and the lr looked up by its text among ``search.lr``, never parsed back from it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from cofi.config import settings
from cofi.config.names import SEARCH_PREFIX
from cofi.config.runs import Run, value_text
from cofi.errors import InputError
from cofi.search.policy import Policy
from cofi.search.regions import parse_region_id


class SearchError(InputError):
    """Search settings that do not fit the runs; the message names the config key."""


@dataclass(frozen=True)
class Search:
    """The coarse search's settings."""

    enabled: bool
    policy: Policy
    reference: str  # the run whose scores are the root and set the Spec floor; candidates train like it
    seed: int  # the seed the candidates are trained and selected at
    lrs: tuple[float, ...] = ()  # each candidate trains at each; a candidate scores as its best (search.lr)
    reference_lr: float | None = None  # the reference's lr (None where no run is called so: check_config says so)
    eval_items: int | None = None  # candidates (and the reference, to compare) scored on this many items per suite
    eval_seed: int = 0  # which items: a seeded sample

    @classmethod
    def of(cls, section: dict, reference: Run | None, first_seed: int) -> "Search":
        """From the config's ``search`` section; ``reference``: the run it names (None where there is none)."""
        policy_keys = {key: value for key, value in section.items()
                       if key not in ("enabled", "reference", "seed", "lr", "eval_items", "eval_seed")}
        reference_lr = reference.train.lr if reference else None
        lrs = section["lr"] if section["lr"] is not None else [reference_lr] if reference else []
        if len({value_text(lr) for lr in lrs}) < len(lrs):  # a candidate's name gives its lr by this text
            raise SearchError(f"config key search.lr: {lrs} has values that print alike to 6 digits; give "
                              "learning rates that differ in their first 6 significant digits")
        return cls(enabled=section["enabled"], policy=settings.from_dict(Policy, policy_keys, "search"),
                   reference=section["reference"], lrs=tuple(lrs), reference_lr=reference_lr,
                   seed=section["seed"] if section["seed"] is not None else first_seed,
                   eval_items=section["eval_items"], eval_seed=section["eval_seed"])

    @property
    def mode(self) -> str:
        return self.policy.mode

    @property
    def name(self) -> str:
        """Where its files go: the mode, and the lr list where it is not the reference's lr alone (so a
        search over region x lr sits beside the search over regions, and both reuse the same runs)."""
        name = self.mode
        if self.lrs not in ((), (self.reference_lr,)):
            name += "_lr" + "-".join(map(value_text, self.lrs))
        return name + (SAMPLE.format(split="", items=self.eval_items, seed=self.eval_seed) if self.eval_items else "")

    @property
    def scores_split(self) -> str:
        """The stem of the score files the search reads: ``val``, or its seeded subset (:func:`split_of`)."""
        if self.eval_items is None:
            return "val"
        return SAMPLE.format(split="val", items=self.eval_items, seed=self.eval_seed)


SAMPLE = "{split}_items{items}_seed{seed}"  # a split's seeded sample of items, as score files and searches name it
SUBSET_SPLIT = re.compile(SAMPLE.format(split="(?P<split>[a-z]+)", items="(?P<items>[0-9]+)", seed="(?P<seed>[0-9]+)"))
# A score file's stem, as the rules' split wildcard matches it: a split, or a sample of it.
SCORES_STEM = "(test|val)(" + SAMPLE.format(split="", items="[0-9]+", seed="[0-9]+") + ")?"


def split_of(stem: str) -> tuple[str, dict | None]:
    """A score file's stem as (split, subset): ``val`` -> ("val", None); ``val_items50_seed0`` -> ("val", {"items":
    50, "seed": 0}), the items :func:`cofi.evaluation.subsets.chosen` picks."""
    match = SUBSET_SPLIT.fullmatch(stem)
    if match is None:
        return stem, None
    return match["split"], {"items": int(match["items"]), "seed": int(match["seed"])}


@dataclass(frozen=True)
class Candidates:
    """The runs of the search: each candidate trained like the reference run, at one of ``search.lrs``."""

    search: Search
    reference: Run | None
    module_groups: dict

    def name(self, region_id: str, lr: float) -> str:
        """The run name of candidate ``region_id`` at ``lr``."""
        return SEARCH_PREFIX + region_id + ("" if lr == self.search.reference_lr else f"_lr{value_text(lr)}")

    def run(self, region, lr: float) -> Run:
        """Candidate ``region`` (a :class:`cofi.search.regions.Region`) at ``lr``, trained like the reference."""
        reference = self.reference
        train = reference.train if lr == reference.train.lr else dataclasses.replace(reference.train, lr=lr)
        return Run(name=self.name(region.id, lr), method="region",
                   params={**region.to_dict(), "groups": self.module_groups},
                   train=train, sam_rho=reference.sam_rho, equal_compute=reference.equal_compute)

    def named(self, name: str) -> Run:
        """The candidate a run name gives (``KeyError`` where it is none)."""
        if not name.startswith(SEARCH_PREFIX):
            raise KeyError(f"unknown run {name!r}: not in runs and not a search candidate")
        # A region id has one "_" (module group names have none): a second one starts the lr.
        span, _, rest = name[len(SEARCH_PREFIX):].partition("_")
        groups, _, lr = rest.partition("_")
        return self.run(parse_region_id(f"{span}_{groups}"), self._lr(name, lr) if lr else self.search.reference_lr)

    def _lr(self, name: str, text: str) -> float:
        """The configured search lr a candidate's name gives (``lr<value>``): looked up, never parsed back."""
        by_text = {f"lr{value_text(lr)}": lr for lr in self.search.lrs}
        if text not in by_text:
            raise KeyError(f"search candidate {name!r}: {text} is not one of search.lr ({', '.join(by_text)})")
        return by_text[text]

    @staticmethod
    def with_pick(run: Run, pick: dict) -> dict:
        """The spec of ``run``, which trains the search's pick (``pick``: the search's result): the pick's region,
        and its lr unless the run sets its own."""
        spec = run.spec(**parse_region_id(pick["selected"]).to_dict())
        if not run.own_lr and "lr" in pick:
            spec["train"] = {**spec["train"], "lr": pick["lr"]}
        return spec
