"""What an experiment ran and what it costs, as plain data for run cards and cost estimates.

Kept apart from :mod:`backward_lib.experiment`: the results store is keyed by the code that
computes results, and describing a run does not change them.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from . import models, orders
from .device import device_name
from .engine import count_applications
from .experiment import Experiment, Prepared, grid, open_store

__all__ = ["card", "flops", "workload"]


def _model(exp: Experiment) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The experiment's model (built, not trained) and the shape of one input."""
    if exp.dataset.startswith("regression:"):
        in_shape, classes = (1,), 1
    elif exp.model == "mlp" and exp.dataset == "fashion_mnist":
        in_shape, classes = (1, 28, 28), 10
    else:
        in_shape, classes = (3, 32, 32), 100 if exp.dataset == "cifar100" else 10
    model = models.get(exp.model, in_shape=in_shape, num_classes=classes, width=exp.width,
                       depth=exp.depth, hidden=exp.hidden, init=exp.init, seed=exp.seed)  # fmt: skip
    return model, in_shape


def workload(exp: Experiment) -> dict[str, int]:
    """What one seed of ``exp`` costs, counted without training: map applications over all
    orders, examples evaluated at the recorded steps, the model's parameter count, and
    ``cost`` = parameters × (3 × batch × applications + evaluated), in multiply-adds up to a
    constant (a training step is about three forward passes of its batch).

    Ratios of ``cost`` between two settings of one chapter extrapolate a measured wall time;
    the constant, the device and the chain batching are what such a ratio leaves out.
    """
    applications = sum(count_applications(orders.parse(s), grid(exp, s)) for s in exp.orders)
    evaluated = sum(len(grid(exp, s)) for s in exp.orders) * (exp.train_eval + exp.test_eval)
    model, _ = _model(exp)
    parameters = sum(p.numel() for p in model.parameters())
    cost = parameters * (3 * exp.batch_size * applications + evaluated)
    return {"applications": applications, "evaluated": evaluated, "parameters": parameters, "cost": cost}


def flops(exp: Experiment) -> dict[str, float]:
    """Model FLOPs of one seed of ``exp`` as torch's FLOP counter counts them (matrix products
    and convolutions): ``train`` per training example (forward and backward), ``evaluate`` per
    evaluated example (forward), and ``total`` = train × batch × applications + evaluate ×
    evaluated. Counted on a CPU copy of the model at the configured width, without training.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model, in_shape = _model(exp)
    x = torch.randn(2, *in_shape)  # two examples: BatchNorm in training mode needs more than one
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out.float().pow(2).mean().backward()
    train = counter.get_total_flops() / 2
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    evaluate = counter.get_total_flops() / 2
    w = workload(exp)
    total = train * exp.batch_size * w["applications"] + evaluate * w["evaluated"]
    return {"train": float(train), "evaluate": float(evaluate), "total": float(total)}


def card(prep: Prepared, seeds: list[int], seconds: float) -> dict[str, str]:
    """Run-card rows describing what an experiment actually ran."""
    e = prep.exp
    stored = sum(open_store(replace(e, seed=int(s))).seconds() for s in seeds)
    n_params = sum(p.numel() for p in prep.model.parameters())
    size = (
        f"MLP {e.depth}×{round(e.hidden * e.width)}" if e.model == "mlp" else f"{e.model}, width ×{e.width}"
    )
    return {
        "data": f"{prep.data_used}; {len(prep.x)} training examples, {e.test_eval} test examples evaluated",
        "model": f"{size} ({n_params:,} parameters), init {e.init if e.model == 'mlp' else 'torchvision'}",
        "training": f"{e.optimizer}, lr {e.lr}, batch {e.batch_size}, {e.steps} steps",
        "orders": ", ".join(e.orders)
        + f"; forward recorded every {e.forward_every} step(s), the others every {e.record_every}"
        + (f" and {', '.join(f'+{k}' for k in e.anchor_offsets)} after each" if e.anchor_offsets else "")
        + (f"; movement measured at lags {', '.join(map(str, e.lags))}" if e.lags else "")
        + (f"; BatchNorm statistics also recomputed on {e.bn_stats} training examples" if e.bn_stats else ""),
        "seeds": ", ".join(map(str, seeds)),
        "device": device_name(e.device)
        + (f", {e.chain_batch} chains per batch" if e.chain_batch > 1 else "")
        + (", Ray workers" if e.executor == "ray" else ""),
        "compute": f"{stored:,.0f} s to compute the stored results; {seconds:,.0f} s in this run "
        "(what the results store held was loaded, not recomputed)",
    }
