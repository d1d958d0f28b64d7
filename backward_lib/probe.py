"""What a recorded network iterate is measured by: losses, accuracy, and how far it moved.

A probe is called on consecutive recorded iterates of one order; it remembers the previous
one, so that the distance travelled in parameter space (‖θ_n − θ_m‖) and in function space
(the fraction of test predictions that changed, the mean change of the logits) are measured
between recorded steps m < n. ``reset()`` starts a new order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from . import tree

__all__ = ["NetworkProbe"]


class NetworkProbe:
    """θ ↦ {train_loss, test_loss, test_accuracy, increment, pred_change, logit_change}."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        *,
        classification: bool = True,
        chunk: int = 2048,
    ):
        self.model, self.loss_fn, self.train, self.test = model, loss_fn, train, test
        self.classification, self.chunk = classification, chunk
        self.names = [k for k, _ in model.named_parameters()]
        self.reset()

    def reset(self) -> None:
        self.prev_params: list[torch.Tensor] | None = None
        self.prev_out: torch.Tensor | None = None

    @torch.no_grad()
    def _outputs(self, theta, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()  # BatchNorm: the chain's running statistics
        try:
            parts = [
                functional_call(self.model, theta, (x[i : i + self.chunk],))
                for i in range(0, len(x), self.chunk)
            ]
        finally:
            self.model.train()
        return torch.cat(parts)

    def __call__(self, theta) -> dict[str, float]:
        if not tree.all_finite(theta):
            self.reset()
            keys = ["train_loss", "test_loss", "increment"] + (
                ["test_accuracy", "pred_change", "logit_change"] if self.classification else []
            )
            return dict.fromkeys(keys, math.nan)
        out_train = self._outputs(theta, self.train[0])
        out_test = self._outputs(theta, self.test[0])
        values = {
            "train_loss": float(self.loss_fn(out_train, self.train[1])),
            "test_loss": float(self.loss_fn(out_test, self.test[1])),
        }
        if self.classification:
            values["test_accuracy"] = float((out_test.argmax(-1) == self.test[1]).double().mean())
        params = [theta[k] for k in self.names]
        if self.prev_params is not None:
            values["increment"] = tree.distance(params, self.prev_params)
            if self.classification:
                changed = out_test.argmax(-1) != self.prev_out.argmax(-1)
                values["pred_change"] = float(changed.double().mean())
                values["logit_change"] = float((out_test - self.prev_out).norm(dim=-1).mean())
        self.prev_params, self.prev_out = params, out_test
        return values
