"""V-SoftMask: everything trains, with the soft mask on every layer and module."""

from cofi.methods.base import Method, Setup, train_everything
from cofi.methods.softmask_options import SOFT_MASK_KEYS, check_soft_mask_keys


class VSoftMask(Method):
    name = "vsoftmask"
    description = "V-SoftMask: everything trains, soft mask on all layers and modules"
    keys = SOFT_MASK_KEYS
    needs = ("importance",)

    def check(self, key, params, context):
        check_soft_mask_keys(key, params)

    def setup(self, model, params, inputs):
        from cofi.softmask import soft_mask_hook

        trainable = train_everything(model)
        return Setup(model, trainable, hooks=[soft_mask_hook(model, trainable, params, inputs)])
