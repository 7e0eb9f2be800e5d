"""CoFiTune, both levels: the coarse search's region for the task, trained with Fine-SoftMask."""

from cofi.methods.base import Method, MethodError, Setup
from cofi.methods.softmask_options import IMPORTANCE, SOFT_MASK_KEYS, check_soft_mask_keys
from cofi.regions import Region, freeze_outside


class CoFiTune(Method):
    name = "cofitune"
    description = "CoFiTune: the search's region + Fine-SoftMask"
    keys = SOFT_MASK_KEYS
    needs = (IMPORTANCE,)
    trains_search_pick = True
    uses_groups = True

    def check(self, key, run, context):
        if not context.experiment.search.enabled:
            raise MethodError(f"config key {key}: method {self.name!r} trains the coarse search's pick; set search.enabled: true")
        check_soft_mask_keys(key, run.params)

    def setup(self, model, run, inputs):
        params = run.params
        from cofi.softmask import soft_mask

        if not {"range", "modules"} <= set(params):
            raise MethodError(f"method {self.name!r} trains the coarse search's pick: its params need range and modules")
        trainable = freeze_outside(model, Region.make(*params["range"], params["modules"]), params["groups"])
        return Setup(model, trainable, extensions=[soft_mask(model, trainable, params, inputs.path(IMPORTANCE), inputs)])
