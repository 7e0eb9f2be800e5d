"""CoFiTune's coarse level: only a layer range × module groups trains (see :mod:`cofi.search.regions`)."""

from __future__ import annotations

from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Method, MethodError, Setup
from cofi.search.regions import Region, RegionError, check_region, freeze_outside

RANGE_BOUNDS = {"minItems": 2, "maxItems": 2}


@dataclass(frozen=True)
class RegionConfig:
    range: tuple[float, ...] | None = setting(None, "layer range (a, b] as fractions of the depth", **RANGE_BOUNDS)
    modules: tuple[str, ...] | None = setting(None, "module groups to train (names from module_groups)")


def check_region_keys(key: str, params: dict, context) -> None:
    """The range and groups make a region that selects at least one layer of this model."""
    groups = context.experiment.module_groups
    try:
        region = Region.make(*params["range"], params["modules"])
        if context.n_layers is not None:
            check_region(region, groups, context.n_layers)
        elif unknown := [m for m in region.modules if m not in groups]:
            raise RegionError(f"unknown module group(s) {unknown} (defined: {sorted(groups)})")
    except RegionError as error:
        raise MethodError(f"config key {key}: {error}") from None


def region_params(arch, params: dict, module_groups: dict) -> int:
    """The parameters of a region's projections in its layers."""
    region = Region.make(*params["range"], params["modules"])
    projections = {p for group in region.modules for p in module_groups[group]}
    return len(region.layers(arch.layers)) * sum(arch.projection_params(p) for p in projections)


class RegionMethod(Method):
    name = "region"
    description = "CoFiTune's coarse level: a layer range × module groups trains"
    config = RegionConfig
    uses_groups = True

    def trained_params(self, arch, params, module_groups):
        return region_params(arch, params, module_groups)

    def check(self, key, run, context):
        for field in ("range", "modules"):
            if run.params[field] is None:
                raise MethodError(f"config key {key}: method {self.name!r} needs {field!r}")
        check_region_keys(key, run.params, context)

    def setup(self, model, run, inputs):
        params = run.params
        region = Region.make(*params["range"], params["modules"])
        return Setup(model, freeze_outside(model, region, params["groups"]))
