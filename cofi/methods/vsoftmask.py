"""V-SoftMask: everything trains, with the soft mask on every layer and module."""

from cofi.methods.base import Method, Setup, train_everything
from cofi.methods.cofitune.softmask_keys import IMPORTANCE, SoftMaskConfig, check_soft_mask_keys, update_copies


class VSoftMask(Method):
    name = "vsoftmask"
    description = "V-SoftMask: everything trains, soft mask on all layers and modules"
    config = SoftMaskConfig
    needs = (IMPORTANCE,)

    def weight_copies(self, params):
        return update_copies(params)

    def check(self, key, run, context):
        check_soft_mask_keys(key, run.params)

    def setup(self, model, run, inputs):
        trainable = train_everything(model)
        from cofi.methods.cofitune.softmask import soft_mask_extensions  # torch: only when a run trains

        return Setup(model, trainable, extensions=soft_mask_extensions(model, trainable, run.params, inputs))
