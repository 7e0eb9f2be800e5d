"""Coarse-level search policy (pure): which regions to train next, which to keep, when to stop.

The paper's walk (reconstructed; its Algorithm 1 is not public): three half-depth ranges with
both module groups, then the two quarters of the best half, then each module group alone in the
best quarter. Generalised here to a per-depth expansion *schedule*, a *beam*, a selection
*criterion* under a Spec floor relative to Full SFT, and stop rules. ``grid`` mode scores the
whole space in one depth; ``snr`` mode ranks the same space without training
(:mod:`cofi.search.snr`). The workflow wires these functions to Snakemake checkpoints, one per
depth; nothing here reads files or trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from cofi.search.regions import DEFAULT_GROUPS, Region
from cofi.config.settings import setting

CRITERIA = ("uni", "vers", "spec")
HALVES = [(Fraction(0), Fraction(1, 2)), (Fraction(1, 4), Fraction(3, 4)), (Fraction(1, 2), Fraction(1))]
QUARTERS = [(Fraction(i, 4), Fraction(i + 1, 4)) for i in range(4)]


@dataclass(frozen=True)
class Policy:
    """The search's settings (the config's ``search`` section, less enabled/reference/seed)."""

    mode: Literal["tree", "grid", "snr"] = setting(
        "tree", "tree (the paper's walk, generalised), grid (all 21 candidates), or snr (the grid's candidates ranked by "
                "their weights' signal-to-noise ratio, none trained)")
    schedule: tuple[str, ...] = setting(("halves", "split", "modules"),
                                        "expansion per depth: halves, split (alias quarters), modules", minItems=1)
    beam: int = setting(1, "candidates kept per depth (1: the paper's greedy walk)", minimum=1)
    criterion: Literal["uni", "vers", "spec"] = setting("uni", "what a candidate is ranked by (uni and vers under the Spec floor)")
    spec_floor: float = setting(0.9, "fraction of the reference run's validation Spec a candidate must reach", minimum=0, maximum=1)
    margin: float = setting(0.0, "a child is expanded only if it beats its parent by more than this; negative tolerates a loss")
    max_depth: int | None = setting(None, "stop after this depth (null: the schedule's length)", minimum=1)
    min_layers: int = setting(1, "a candidate range keeps at least this many layers", minimum=1)
    root_modules: tuple[str, ...] = setting(tuple(DEFAULT_GROUPS), "module groups of the root (all default groups, as the paper)", minItems=1)

    @property
    def depth_limit(self) -> int:
        if self.mode in ("grid", "snr"):
            return 1
        return min(self.max_depth or len(self.schedule), len(self.schedule))


def _halves(region: Region) -> list[Region]:
    """(a, (a+b)/2], ((3a+b)/4, (a+3b)/4], ((a+b)/2, b]: the paper's three half-depth ranges of the root."""
    lo, w = region.lo, region.hi - region.lo
    return [Region(lo + a * w, lo + b * w, region.modules) for a, b in HALVES]


def _split(region: Region) -> list[Region]:
    """The two halves of the range (for a half of the model: its two quarters)."""
    mid = (region.lo + region.hi) / 2
    return [Region(region.lo, mid, region.modules), Region(mid, region.hi, region.modules)]


def _modules(region: Region) -> list[Region]:
    """Each module group alone in the same range."""
    return [Region(region.lo, region.hi, (m,)) for m in region.modules] if len(region.modules) > 1 else []


EXPANSIONS = {"halves": _halves, "split": _split, "quarters": _split, "modules": _modules}


def children(region: Region, step: str, n_layers: int, min_layers: int) -> list[Region]:
    """Children of ``region`` under one schedule step, dropping ranges with too few layers."""
    if step not in EXPANSIONS:
        raise ValueError(f"unknown schedule step {step!r} (known: {', '.join(EXPANSIONS)})")
    return [c for c in EXPANSIONS[step](region) if len(c.layers(n_layers)) >= min_layers]


def grid(modules: tuple[str, ...], n_layers: int, min_layers: int) -> list[Region]:
    """The exhaustive space: 7 ranges (3 halves, 4 quarters) × each group alone and all together."""
    module_sets = [(m,) for m in modules] + ([tuple(modules)] if len(modules) > 1 else [])
    ranges = HALVES + QUARTERS
    regions = [Region(lo, hi, ms) for lo, hi in ranges for ms in module_sets]
    return [r for r in regions if len(r.layers(n_layers)) >= min_layers]


def root(policy: Policy) -> Region:
    return Region(Fraction(0), Fraction(1), tuple(policy.root_modules))


def check_policy(policy: Policy, groups: dict, n_layers: int | None) -> None:
    """The schedule's steps exist, the root's groups are defined, and the first depth has a candidate."""
    from cofi.errors import InputError

    for i, name in enumerate(policy.schedule):
        if name not in EXPANSIONS:
            raise InputError(f"config key search.schedule[{i}]: unknown step {name!r} (known: {', '.join(EXPANSIONS)})")
    if unknown := [m for m in policy.root_modules if m not in groups]:
        raise InputError(f"config key search.root_modules: unknown module group(s) {unknown} (defined: {sorted(groups)})")
    if n_layers is not None and not first_candidates(policy, n_layers):
        raise InputError(f"config key search.min_layers: no first-depth candidate keeps {policy.min_layers} layers "
                         f"of {n_layers}")


def first_candidates(policy: Policy, n_layers: int) -> list[dict]:
    """Depth-1 candidates, each as ``{"id", "parent", "region"}``; the root's scores are the reference's."""
    if policy.mode in ("grid", "snr"):
        regions = grid(policy.root_modules, n_layers, policy.min_layers)
    else:
        regions = children(root(policy), policy.schedule[0], n_layers, policy.min_layers)
    return [{"id": r.id, "parent": "root", "region": r} for r in regions]


def criterion_value(scores: dict, criterion: str) -> float:
    return float(scores[criterion])


def spec_floor(policy: Policy, reference_spec: float) -> float:
    """The validation Spec a candidate must reach to be ranked by the criterion (none when ranking by Spec)."""
    return policy.spec_floor * reference_spec if policy.criterion != "spec" else float("-inf")


def best_variant(variants: dict[float, dict], policy: Policy, reference_spec: float) -> float:
    """The learning rate of a candidate's best variant ({lr: its scores}): the highest criterion value
    among the variants that reach the Spec floor, or the highest Spec if none does (the same rule that
    ranks candidates); ties go to the smaller lr (the gentler change)."""
    floor = spec_floor(policy, reference_spec)
    eligible = {lr: s for lr, s in variants.items() if s["spec"] >= floor}
    if eligible:
        return min(eligible, key=lambda lr: (-criterion_value(eligible[lr], policy.criterion), lr))
    return min(variants, key=lambda lr: (-variants[lr]["spec"], -criterion_value(variants[lr], policy.criterion), lr))


def _size(region: Region, n_layers: int) -> int:
    return len(region.layers(n_layers)) * len(region.modules)


@dataclass
class StepResult:
    nodes: list[dict] = field(default_factory=list)  # every candidate of this depth, with status and reason
    expand: list[dict] = field(default_factory=list)  # candidates for the next depth


def step(
    depth: int,
    candidates: list[dict],
    scores: dict[str, dict],
    parent_values: dict[str, float],
    reference_spec: float,
    policy: Policy,
    n_layers: int,
) -> StepResult:
    """Rank this depth's candidates, keep the beam, and expand the kept ones that improved.

    ``scores[id]`` holds ``spec``, ``vers`` and ``uni`` of a candidate; ``parent_values`` the
    criterion value of each parent ("root" is the reference run). Ties go to the smaller region
    (fewer layers × groups: cheaper, touches less), then to the id, so the order is total.
    """
    floor = spec_floor(policy, reference_spec)
    rows = []
    for c in candidates:
        s = scores[c["id"]]
        rows.append({
            "id": c["id"], "parent": c["parent"], "depth": depth, "label": c["region"].label,
            "layers": c["region"].layers(n_layers), "modules": list(c["region"].modules),
            "spec": s["spec"], "vers": s["vers"], "uni": s["uni"],
            "value": criterion_value(s, policy.criterion), "region": c["region"],
        })
    eligible = [r for r in rows if r["spec"] >= floor]
    order = lambda r: (-r["value"], _size(r["region"], n_layers), r["id"])
    if eligible:
        kept = {r["id"] for r in sorted(eligible, key=order)[: policy.beam]}
    else:
        # Nobody reached the floor: keep the closest (highest Spec) as this depth's answer and stop
        # here, since smaller regions would only learn less.
        kept = {min(rows, key=lambda r: (-r["spec"], *order(r)))["id"]}
    result = StepResult()
    seen: set[str] = set()
    for r in sorted(rows, key=lambda r: r["id"]):
        parent_value = parent_values[r["parent"]]
        if r["id"] not in kept:
            r["status"] = "pruned"
            r["reason"] = (f"Spec {r['spec']:.1f} below floor {floor:.1f}" if r["spec"] < floor
                           else f"outranked ({policy.criterion} {r['value']:.1f}; beam {policy.beam})")
        elif not eligible:
            r["status"], r["reason"] = "kept", f"not expanded: no candidate reached the Spec floor {floor:.1f}; highest Spec kept"
        elif r["value"] <= parent_value + policy.margin:
            r["status"], r["reason"] = "kept", f"not expanded: {policy.criterion} {r['value']:.1f} does not beat parent {parent_value:.1f} by > {policy.margin}"
        elif depth >= policy.depth_limit:
            r["status"], r["reason"] = "kept", f"not expanded: depth limit {policy.depth_limit}"
        else:
            step_name = policy.schedule[depth]
            kids = [k for k in children(r["region"], step_name, n_layers, policy.min_layers) if k.id not in seen]
            r["status"] = "expanded" if kids else "kept"
            r["reason"] = (f"expanded by {step_name!r} into {len(kids)}" if kids
                           else f"not expanded: {step_name!r} gives no child with >= {policy.min_layers} layers")
            for k in kids:
                seen.add(k.id)
                result.expand.append({"id": k.id, "parent": r["id"], "region": k})
        result.nodes.append(r)
    return result


def best_node(nodes: list[dict], n_layers: int) -> dict | None:
    """The final pick: the best kept or expanded node over the whole search (same tie rule)."""
    kept = [n for n in nodes if n.get("status") in ("kept", "expanded") and n["id"] != "root"]
    if not kept:
        return None
    return min(kept, key=lambda n: (-n["value"], len(n["layers"]) * len(n["modules"]), n["id"]))
