"""The training step's one extension point: what a method or a run option adds to each step."""


class Extension:
    """What a method or a run option adds to the training step (:func:`cofi.training.loop.train`). Every hook
    is optional; the trainer calls them in this order:

    - :meth:`attach` once, with the optimizer (e.g. to hook its step);
    - :meth:`gradients` wraps each step's gradient computation: ``compute()`` runs every micro-batch's
      forward and backward (and the penalties) at the current weights and returns the curve's fields;
      SAM calls it twice around its ascent;
    - :meth:`penalty`, inside every computation, a scalar tensor that joins the objective once;
    - :meth:`after_backward` once per step, after the last gradients and before clipping.

    :meth:`token_loss` replaces the summed cross-entropy of each micro-batch (at most one extension of a run may
    define it: DFT's and ASFT's objectives).
    """

    def attach(self, optimizer) -> None:
        pass

    def gradients(self, compute, zero_grad) -> dict:
        return compute()

    def penalty(self):
        return None

    def after_backward(self) -> None:
        pass

    def token_loss(self, logits, targets, batch):
        """The micro-batch's summed loss over its labelled positions, in place of their cross-entropy:
        ``logits`` (positions × vocabulary, float32) and ``targets`` (positions) at the labelled positions, ``batch``
        the micro-batch (for a method that needs another model's view of it); None keeps the cross-entropy."""
        return None
