"""V-SoftMask: everything trains, with the soft mask on every layer and module."""

from cofi.methods.base import Method, Setup, train_everything
from cofi.methods.softmask_options import IMPORTANCE, SOFT_MASK_KEYS, check_soft_mask_keys, soft_mask_extensions


class VSoftMask(Method):
    name = "vsoftmask"
    description = "V-SoftMask: everything trains, soft mask on all layers and modules"
    keys = SOFT_MASK_KEYS
    sweep = ("softmask",)
    needs = (IMPORTANCE,)

    def check(self, key, run, context):
        check_soft_mask_keys(key, run.params)

    def setup(self, model, run, inputs):
        trainable = train_everything(model)
        return Setup(model, trainable, extensions=soft_mask_extensions(model, trainable, run.params, inputs))
