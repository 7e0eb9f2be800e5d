"""CoFiTune, both levels: the coarse search's region for the task, trained with Fine-SoftMask."""

from cofi.methods.base import Method, MethodError, Setup
from cofi.regions import Region, freeze_outside
from cofi.methods.softmask_options import SOFT_MASK_KEYS, check_soft_mask_keys


class CoFiTune(Method):
    name = "cofitune"
    description = "CoFiTune: the search's region + Fine-SoftMask"
    keys = SOFT_MASK_KEYS
    needs = ("search_region", "importance")
    uses_groups = True

    def check(self, key, params, context):
        if not context.config["search"]["enabled"]:
            raise MethodError(f"config key {key}: method {self.name!r} trains the coarse search's pick; set search.enabled: true")
        check_soft_mask_keys(key, params)

    def setup(self, model, params, inputs):
        from cofi.softmask import soft_mask_hook

        if not {"range", "modules"} <= set(params):
            raise MethodError(f"method {self.name!r} trains the coarse search's pick: its params need range and modules")
        trainable = freeze_outside(model, Region.make(*params["range"], params["modules"]), params["groups"])
        return Setup(model, trainable, hooks=[soft_mask_hook(model, trainable, params, inputs)])
