"""What a recorded network iterate is measured by: losses, accuracy, and how far it moved.

A probe is called on the iterates of one order in increasing step order; it remembers the
previous one, so that the distance travelled in parameter space (``increment`` = ‖θ_n − θ_m‖)
and in function space (``pred_change``, the fraction of test predictions that changed, and
``logit_change``, the mean change of the test logits) are measured between consecutive
recorded steps m < n. With ``lags`` it also measures them at fixed lags k where the iterate k
steps earlier was probed too (``increment_lag{k}``, …): the same distance for every order,
whatever its recording grid. ``reset()`` starts a new order.

BatchNorm. In train mode every map updates the running statistics, so an iterate carries
those of the batches its chain applied last (for a backward chain: batches 1, 2, …). The
plain metrics evaluate with them. With ``bn_stats`` > 0 every metric is measured a second
time, suffixed ``_bnfix``, with statistics recomputed for each iterate on the first
``bn_stats`` examples of the fixed training subset (chunks of ``chunk``, their cumulative
average): the same policy for every order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from . import tree

__all__ = ["BN_SUFFIX", "NetworkProbe"]

BN_SUFFIX = "_bnfix"
MOVES = ("increment", "pred_change", "logit_change")


class NetworkProbe:
    """θ ↦ {train_loss, test_loss, test_accuracy, increment, pred_change, logit_change, …}."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        *,
        classification: bool = True,
        chunk: int = 2048,
        lags: tuple[int, ...] = (),
        bn_stats: int = 0,
    ):
        if any(not isinstance(k, int) or k < 1 for k in lags):
            raise ValueError(f"lags must be positive integers, got {lags!r}")
        self.bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if bn_stats and not 0 < bn_stats <= len(train[0]):
            raise ValueError(f"bn_stats must be in 1..{len(train[0])} (the training subset), got {bn_stats}")
        self.model, self.loss_fn, self.train, self.test = model, loss_fn, train, test
        self.classification, self.chunk = classification, chunk
        self.lags, self.bn_stats = tuple(sorted(set(lags))), (bn_stats if self.bn else 0)
        self.names = [k for k, _ in model.named_parameters()]
        self.buffers = [k for k, _ in model.named_buffers()]
        self.reset()

    def reset(self) -> None:
        self.prev: tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor | None] | None = None
        self.seen: dict[int, tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor | None]] = {}

    def _outputs(self, theta, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()  # BatchNorm: the statistics in theta
        try:
            parts = [
                functional_call(self.model, theta, (x[i : i + self.chunk],))
                for i in range(0, len(x), self.chunk)
            ]
        finally:
            self.model.train()
        return torch.cat(parts)

    def _recomputed(self, theta) -> dict[str, torch.Tensor]:
        """θ with BatchNorm statistics recomputed on the fixed subset (cumulative average)."""
        fresh = {k: torch.zeros_like(theta[k]) for k in self.buffers}
        for k in self.buffers:
            if k.endswith("running_var"):
                fresh[k].fill_(1.0)
        momenta = [m.momentum for m in self.bn]
        x = self.train[0][: self.bn_stats]
        try:
            for m in self.bn:
                m.momentum = None  # running statistics = the average over the chunks seen
            self.model.train()
            for i in range(0, len(x), self.chunk):
                functional_call(self.model, {**theta, **fresh}, (x[i : i + self.chunk],))
        finally:
            for m, mom in zip(self.bn, momenta, strict=True):
                m.momentum = mom
        return {**theta, **fresh}

    def _measure(self, theta, suffix: str) -> tuple[dict[str, float], torch.Tensor]:
        out_train = self._outputs(theta, self.train[0])
        out_test = self._outputs(theta, self.test[0])
        values = {
            "train_loss": float(self.loss_fn(out_train, self.train[1])),
            "test_loss": float(self.loss_fn(out_test, self.test[1])),
        }
        if self.classification:
            values["test_accuracy"] = float((out_test.argmax(-1) == self.test[1]).double().mean())
        return {k + suffix: v for k, v in values.items()}, out_test

    def _moves(self, params, outs, ref, tag: str) -> dict[str, float]:
        ref_params, *ref_outs = ref
        values = {"increment" + tag: tree.distance(params, ref_params)}
        if self.classification:
            for out, old, suffix in zip(outs, ref_outs, ("", BN_SUFFIX), strict=False):
                if out is None or old is None:
                    continue
                changed = out.argmax(-1) != old.argmax(-1)
                values["pred_change" + tag + suffix] = float(changed.double().mean())
                values["logit_change" + tag + suffix] = float((out - old).norm(dim=-1).mean())
        return values

    @torch.no_grad()
    def __call__(self, theta, step: int | None = None) -> dict[str, float]:
        """The metrics of ``theta``; ``step`` (its step number) enables the lagged measures."""
        if not tree.all_finite(theta):
            self.reset()
            return dict.fromkeys(self.keys(), math.nan)
        values, out = self._measure(theta, "")
        out_bn = None
        if self.bn_stats:
            more, out_bn = self._measure(self._recomputed(theta), BN_SUFFIX)
            values.update(more)
        params = [theta[k] for k in self.names]
        if self.prev is not None:
            values.update(self._moves(params, (out, out_bn), self.prev, ""))
        if step is not None and self.lags:
            for k in self.lags:
                if step - k in self.seen:
                    values.update(self._moves(params, (out, out_bn), self.seen[step - k], f"_lag{k}"))
            self.seen[step] = (params, out, out_bn)
            for s in [s for s in self.seen if s <= step - self.lags[-1]]:
                del self.seen[s]  # no later step is that far ahead of it
        self.prev = (params, out, out_bn)
        return values

    def keys(self) -> list[str]:
        """Every metric this probe can report (a diverged iterate reports them all as NaN)."""
        base = ["train_loss", "test_loss"] + (["test_accuracy"] if self.classification else [])
        keys = base + ([k + BN_SUFFIX for k in base] if self.bn_stats else [])
        moves = ["increment"] + (
            ["pred_change", "logit_change"]
            + (["pred_change" + BN_SUFFIX, "logit_change" + BN_SUFFIX] if self.bn_stats else [])
            if self.classification
            else []
        )
        keys += moves
        for k in self.lags:
            keys += [m.replace("increment", f"increment_lag{k}") if m == "increment" else
                     m.replace("_change", f"_change_lag{k}") for m in moves]  # fmt: skip
        return keys
