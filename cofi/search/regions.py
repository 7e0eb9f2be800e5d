"""Regions: a layer range (a, b] given as fractions of the depth N, times a set of module groups.

Pure except :func:`freeze_outside`, which sets ``requires_grad`` on a model. A region's id is a
stable, filesystem-safe string (``r25-50_ffn``, ``r0-50_mha-ffn``), so finished runs are found
again by name whatever search produced them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from cofi.errors import InputError
from cofi.models.layers import ATTENTION, FFN

# As the official CoFiTune code groups them: the gate projection and o_proj stay frozen.
DEFAULT_GROUPS = {"mha": [p for p in ATTENTION if p != "o_proj"], "ffn": [p for p in FFN if p != "gate_proj"]}
GROUP_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_ID = re.compile(r"^r(\d+(?:p\d+)?)-(\d+(?:p\d+)?)_([a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*)$")


# A weight or bias of a projection in decoder layer N: ``...layers.N.[...].<projection>.(weight|bias)``.
LAYER_PARAMETER = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:.+\.)?([A-Za-z0-9_]+)\.(?:weight|bias)$")


def layer_projection(name: str) -> tuple[int, str] | None:
    """(layer index, projection name) of a decoder-layer parameter name, or None."""
    match = LAYER_PARAMETER.search(name)
    return (int(match.group(1)), match.group(2)) if match else None


class RegionError(InputError):
    """A region that cannot be trained; the message names what is wrong."""


def as_fraction(value) -> Fraction:
    """0.25, "1/4" and Fraction(1, 4) all give 1/4 (floats are read through their decimal text)."""
    return Fraction(str(value)).limit_denominator(10_000)


def _percent(value: Fraction) -> str:
    pct = value * 100
    if pct.denominator == 1:
        return str(pct.numerator)
    text = f"{float(pct):.4f}".rstrip("0").rstrip(".")
    return text.replace(".", "p")


@dataclass(frozen=True, order=True)
class Region:
    lo: Fraction
    hi: Fraction
    modules: tuple[str, ...]

    @classmethod
    def make(cls, lo, hi, modules) -> "Region":
        lo, hi = as_fraction(lo), as_fraction(hi)
        if not (0 <= lo < hi <= 1):
            raise RegionError(f"layer range ({lo}, {hi}] must satisfy 0 <= a < b <= 1")
        modules = tuple(modules)
        if not modules:
            raise RegionError("a region needs at least one module group")
        if len(set(modules)) != len(modules):
            raise RegionError(f"module groups repeat in {list(modules)}")
        return cls(lo, hi, modules)

    @property
    def id(self) -> str:
        return f"r{_percent(self.lo)}-{_percent(self.hi)}_{'-'.join(self.modules)}"

    @property
    def label(self) -> str:
        """Human label like the paper's figure: "(N/4, N/2] – ffn"."""
        def frac(x: Fraction) -> str:
            return "0" if x == 0 else "N" if x == 1 else f"{x.numerator}N/{x.denominator}" if x.numerator > 1 else f"N/{x.denominator}"
        return f"({frac(self.lo)}, {frac(self.hi)}] – {'+'.join(self.modules)}"

    def layers(self, n_layers: int) -> list[int]:
        """0-based indices of the layers ℓ (1-based) with a·N < ℓ ≤ b·N."""
        return [i for i in range(n_layers) if self.lo * n_layers < i + 1 <= self.hi * n_layers]

    def to_dict(self) -> dict:
        return {"range": [str(self.lo), str(self.hi)], "modules": list(self.modules)}


def parse_region_id(region_id: str) -> Region:
    match = _ID.match(region_id)
    if not match:
        raise RegionError(f"{region_id!r} is not a region id (expected e.g. r25-50_ffn)")
    lo, hi, modules = match.groups()
    return Region.make(Fraction(lo.replace("p", ".")) / 100, Fraction(hi.replace("p", ".")) / 100, modules.split("-"))


def check_groups(groups: dict[str, list[str]]) -> None:
    if not groups:
        raise RegionError("module_groups must define at least one group")
    for name, projections in groups.items():
        if not GROUP_NAME.match(name):
            raise RegionError(f"module group name {name!r} must be lower-case letters and digits")
        if not projections:
            raise RegionError(f"module group {name!r} is empty (list projection names such as up_proj)")


def check_region(region: Region, groups: dict[str, list[str]], n_layers: int) -> None:
    unknown = [m for m in region.modules if m not in groups]
    if unknown:
        raise RegionError(f"region {region.id}: unknown module group(s) {unknown} (defined: {sorted(groups)})")
    if not region.layers(n_layers):
        raise RegionError(f"region {region.id}: the range ({region.lo}, {region.hi}] selects no layer of a {n_layers}-layer model")


def trainable_names(param_names: list[str], region: Region, groups: dict[str, list[str]], n_layers: int) -> list[str]:
    """Names of the parameters (weights and biases) of the region's projections in its layers."""
    check_region(region, groups, n_layers)
    layers = set(region.layers(n_layers))
    projections = {p for m in region.modules for p in groups[m]}
    selected = [name for name in param_names
                if (found := layer_projection(name)) and found[0] in layers and found[1] in projections]
    missing = projections - {layer_projection(n)[1] for n in selected}
    if missing:
        raise RegionError(f"region {region.id}: the model has no parameters for projection(s) {sorted(missing)}")
    return selected


def freeze_outside(model, region: Region, groups: dict[str, list[str]]) -> list[str]:
    """Only the region's parameters require grad (so only they get optimizer state); returns them."""
    names = trainable_names([n for n, _ in model.named_parameters()], region, groups, model.config.num_hidden_layers)
    keep = set(names)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in keep)
    return names
