"""Full SFT: every parameter trains. The reference the search's Spec floor and the tables compare to."""

from cofi.methods.base import Method, Setup, train_everything


class Full(Method):
    name = "full"
    description = "Full SFT: every parameter trains"

    def setup(self, model, run, inputs):
        return Setup(model, train_everything(model))
