"""CoFiTune, both levels: a region (the coarse search's pick for the task, or one the run names) trained with
Fine-SoftMask."""

from __future__ import annotations

from dataclasses import dataclass

from cofi.config.settings import setting
from cofi.methods.base import Method, MethodError, Setup
from cofi.methods.cofitune.coarse import RANGE_BOUNDS, check_region_keys, region_params
from cofi.methods.cofitune.softmask_keys import IMPORTANCE, SoftMaskConfig, check_soft_mask_keys, update_copies
from cofi.search.regions import Region, freeze_outside


@dataclass(frozen=True)
class CoFiTuneConfig(SoftMaskConfig):
    range: tuple[float, ...] | None = setting(None, "a fixed layer range (a, b] instead of the search's pick, e.g. the "
                                              "paper's [0.25, 0.5]", **RANGE_BOUNDS)
    modules: tuple[str, ...] | None = setting(None, "the module groups of a fixed range")


class CoFiTune(Method):
    name = "cofitune"
    description = "CoFiTune: the search's region (or a fixed one) + Fine-SoftMask"
    config = CoFiTuneConfig
    needs = (IMPORTANCE,)
    uses_groups = True

    def trains_pick(self, run) -> bool:
        return run.params.get("range") is None  # a fixed region needs no search

    def trained_params(self, arch, params, module_groups):
        if params.get("range") is not None:
            return region_params(arch, params, module_groups)
        # Before the search has picked: its largest first-depth candidate (half the layers, every group).
        projections = {p for group in module_groups.values() for p in group}
        return (arch.layers // 2) * sum(arch.projection_params(p) for p in projections)

    def weight_copies(self, params):
        return update_copies(params)

    def check(self, key, run, context):
        fixed = [run.params.get(k) is not None for k in ("range", "modules")]
        if any(fixed) and not all(fixed):
            raise MethodError(f"config key {key}: a fixed region needs both range and modules")
        if all(fixed):
            check_region_keys(key, run.params, context)
        elif not context.experiment.search.enabled:
            raise MethodError(f"config key {key}: method {self.name!r} trains the coarse search's pick; set "
                              "search.enabled: true, or give the run a range and modules")
        check_soft_mask_keys(key, run.params)

    def setup(self, model, run, inputs):
        params = run.params
        if params.get("range") is None or params.get("modules") is None:
            raise MethodError(f"method {self.name!r} trains the coarse search's pick: its params need range and modules")
        trainable = freeze_outside(model, Region.make(*params["range"], params["modules"]), params["groups"])
        from cofi.methods.cofitune.softmask import soft_mask_extensions  # torch: only when a run trains

        return Setup(model, trainable, extensions=soft_mask_extensions(model, trainable, params, inputs))
