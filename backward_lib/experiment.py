"""The deep-network experiments: one configuration in, a tidy table of records out.

An :class:`Experiment` names everything a run depends on (data, model, optimizer, scale,
orders, seed); :func:`run` builds the step maps from it, runs every order through the engine
and stores each recorded step as it finishes (:mod:`backward_lib.store`), so a run that is
killed resumes where it stopped and a rerun with the same configuration only loads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch

from . import data, maps, models, orders, record, schedule
from .batched import batched_trajectory
from .device import device_name
from .engine import count_applications, trajectory
from .probe import NetworkProbe
from .store import Store

__all__ = ["Experiment", "Prepared", "prepare", "run", "run_seeds", "card", "grid", "DATASETS", "workload"]

DATASETS = (
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "regression:smooth",
    "regression:oscillating",
    "regression:kinked",
)


@dataclass(frozen=True)
class Experiment:
    """One training configuration; every field is part of the results' key."""

    dataset: str = "fashion_mnist"  # fashion_mnist | cifar10 | cifar100 | regression:<name>
    model: str = "mlp"  # mlp | resnet18 | resnet50 | vgg19
    width: float = 1.0  # multiplies hidden units (mlp) or channels (CNNs)
    depth: int = 5  # mlp hidden layers
    hidden: int = 500  # mlp hidden units at width 1
    init: str = "he"  # mlp initialization: he | lecun | torch (the paper does not say)
    optimizer: str = "sgd"  # sgd | momentum | nesterov | adamw
    lr: float = 0.001
    batch_size: int = 8
    steps: int = 2000
    orders: tuple[str, ...] = ("forward", "backward")  # order specs, see orders.parse
    record_every: int = 1  # grid of recorded steps for chained orders
    forward_every: int = 1  # grid for forward (one pass, so it can be dense)
    seed: int = 0  # model init, batch schedule and evaluation subsets
    train_size: int = 0  # training examples used (0: all)
    train_eval: int = 1000  # fixed training subset for the training loss
    test_eval: int = 1000  # test examples for test loss / accuracy
    substitute: bool = False  # CIFAR unavailable: run on Fashion-MNIST at 3×32×32 instead
    device: str = "cpu"
    chain_batch: int = 1  # chains advanced together with vmap (GPU); 1: the sequential engine
    extra: tuple[tuple[str, Any], ...] = field(default=())  # optimizer keyword arguments

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "record_every",
            "forward_every",
            "depth",
            "hidden",
            "chain_batch",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.model not in models.NAMES:
            raise ValueError(f"model: unknown model {self.model!r}; choose one of {models.NAMES}")
        if self.optimizer not in maps.NAMES:
            raise ValueError(f"optimizer: unknown optimizer {self.optimizer!r}; choose one of {maps.NAMES}")
        for spec in self.orders:
            orders.parse(spec).validate(self.steps)


@dataclass
class Prepared:
    """Everything built from an Experiment: data on the device, model template, maps."""

    exp: Experiment
    data_used: str  # what was actually trained on (a substitution says so)
    model: torch.nn.Module
    theta0: dict[str, torch.Tensor]
    T: maps.NetworkMap  # the one step map: its pure parts (objective, data, schedule) too
    probe: NetworkProbe
    x: torch.Tensor
    y: torch.Tensor


def _load(exp: Experiment) -> tuple[tuple, tuple, str, int]:
    """(train, test, description, classes); CIFAR may be substituted when allowed."""
    if exp.dataset.startswith("regression:"):
        name = exp.dataset.split(":", 1)[1]
        train = data.regression(name, 100, seed=exp.seed)
        grid = torch.linspace(-1, 1, 1000).unsqueeze(1)
        test = (grid, torch.as_tensor(data.REGRESSIONS[name](grid.numpy()), dtype=torch.float32))
        return train, test, f"synthetic regression '{name}', 100 points", 0
    try:
        train, test = data.load(exp.dataset, "train"), data.load(exp.dataset, "test")
        classes = 100 if exp.dataset == "cifar100" else 10
        return train, test, exp.dataset, classes
    except data.DataNotFound:
        if not exp.substitute or exp.dataset == "fashion_mnist":
            raise
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    train = (data.as_images(train[0]), train[1])
    test = (data.as_images(test[0]), test[1])
    note = f"Fashion-MNIST resized to 3×32×32 (substituted: {exp.dataset} not available here)"
    return train, test, note, 10


def prepare(exp: Experiment) -> Prepared:
    """Build data, model, step maps and probe for ``exp`` (deterministic in ``exp.seed``)."""
    (x, y), (xt, yt), used, classes = _load(exp)
    g = torch.Generator().manual_seed(exp.seed)
    if exp.train_size:
        keep = torch.randperm(len(x), generator=g)[: exp.train_size]
        x, y = x[keep], y[keep]
    train_eval = torch.randperm(len(x), generator=g)[: exp.train_eval]
    test_eval = torch.randperm(len(xt), generator=g)[: exp.test_eval]
    dev = torch.device(exp.device)
    x, y, xt, yt = x.to(dev), y.to(dev), xt[test_eval].to(dev), yt[test_eval].to(dev)
    classification = classes > 0
    out = classes if classification else 1
    model = models.get(
        exp.model,
        in_shape=tuple(x.shape[1:]),
        num_classes=out,
        width=exp.width,
        depth=exp.depth,
        hidden=exp.hidden,
        init=exp.init,
        seed=exp.seed,
    ).to(dev)
    loss_fn = torch.nn.functional.cross_entropy if classification else torch.nn.functional.mse_loss
    sched = schedule.batches(len(x), exp.batch_size, exp.steps, exp.seed).to(dev)
    opt = maps.get(exp.optimizer, exp.lr, **dict(exp.extra))
    T = maps.network(model, loss_fn, opt, x, y, sched)
    probe = NetworkProbe(
        model,
        loss_fn,
        (x[train_eval.to(dev)], y[train_eval.to(dev)]),
        (xt, yt),
        classification=classification,
    )
    return Prepared(exp, used, model, maps.params_of(model), T, probe, x, y)


def grid(exp: Experiment, spec: str) -> list[int]:
    """Recorded steps of one order: dense for forward, ``record_every`` otherwise (plus resets)."""
    every = exp.forward_every if spec == "forward" else exp.record_every
    steps = set(record.every(every, exp.steps))
    order = orders.parse(spec)
    if order.reset_at is not None:
        steps |= {order.reset_at, min(order.reset_at + 1, exp.steps)}
    return sorted(steps)


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
    if exp.dataset.startswith("regression:"):
        in_shape, classes = (1,), 1
    elif exp.model == "mlp" and exp.dataset == "fashion_mnist":
        in_shape, classes = (1, 28, 28), 10
    else:
        in_shape, classes = (3, 32, 32), 100 if exp.dataset == "cifar100" else 10
    model = models.get(exp.model, in_shape=in_shape, num_classes=classes, width=exp.width,
                       depth=exp.depth, hidden=exp.hidden, init=exp.init, seed=exp.seed)  # fmt: skip
    parameters = sum(p.numel() for p in model.parameters())
    cost = parameters * (3 * exp.batch_size * applications + evaluated)
    return {"applications": applications, "evaluated": evaluated, "parameters": parameters, "cost": cost}


def _iterate(prep: Prepared, spec: str, steps: list[int], on_apply):
    """The sequential engine, or chain batching where chains share no work."""
    order, exp = orders.parse(spec), prep.exp
    if exp.chain_batch > 1 and order.name in ("backward", "reset", "window"):
        return batched_trajectory(prep.T, prep.theta0, order, steps, group=exp.chain_batch, on_apply=on_apply)
    return trajectory(prep.T, prep.theta0, order, steps, on_apply=on_apply)


def run(exp: Experiment, *, progress: bool = True, root: str | None = None) -> tuple[pd.DataFrame, Prepared]:
    """Records of every order of ``exp`` (tidy: order, seed, step, metric, value, diverged)."""
    prep = prepare(exp)
    # the device and the execution path change round-off, not results: not part of the key
    store = Store({**asdict(exp), "device": "any", "chain_batch": "any"}, root)
    plans = {}
    for spec in exp.orders:
        steps, done = grid(exp, spec), store.done_steps(spec)
        todo = [s for s in steps if s not in done]
        if todo:
            before = [s for s in steps if s < todo[0]]
            plans[spec] = (before[-1:], todo)  # re-run the last finished step for increments
    bar = None
    if progress and plans:
        from tqdm import tqdm

        total = sum(count_applications(orders.parse(s), p[0] + p[1]) for s, p in plans.items())
        bar = tqdm(total=total, unit="step", desc=f"seed {exp.seed}", mininterval=2.0)
    try:
        for spec, (warm, todo) in plans.items():
            prep.probe.reset()
            on_apply = bar.update if bar is not None else None
            for n, theta in _iterate(prep, spec, warm + todo, on_apply):
                values = prep.probe(theta)
                if n in warm:
                    continue
                rows = [
                    {
                        "order": spec,
                        "seed": exp.seed,
                        "step": n,
                        "metric": k,
                        "value": v,
                        "diverged": not math.isfinite(v),
                    }
                    for k, v in values.items()
                ]
                store.append(spec, rows)
    finally:
        if bar is not None:
            bar.close()
    frame = pd.DataFrame([r for spec in exp.orders for r in store.rows(spec)], columns=record.COLUMNS)
    return frame, prep


def run_seeds(
    base: Experiment, seeds: list[int], *, progress: bool = True
) -> tuple[pd.DataFrame, Prepared, float]:
    """Run ``base`` for each seed (one row per seed in the figures); (records, first run, seconds)."""
    import time
    from dataclasses import replace

    if not seeds:
        raise ValueError("seeds must name at least one seed")
    t0 = time.perf_counter()
    runs = [run(replace(base, seed=int(s)), progress=progress) for s in seeds]
    frame = pd.concat([r[0] for r in runs], ignore_index=True)
    return frame, runs[0][1], time.perf_counter() - t0


def card(prep: Prepared, seeds: list[int], seconds: float) -> dict[str, str]:
    """Run-card rows describing what an experiment actually ran."""
    e = prep.exp
    n_params = sum(p.numel() for p in prep.model.parameters())
    size = (
        f"MLP {e.depth}×{round(e.hidden * e.width)}" if e.model == "mlp" else f"{e.model}, width ×{e.width}"
    )
    return {
        "data": f"{prep.data_used}; {len(prep.x)} training examples, {e.test_eval} test examples evaluated",
        "model": f"{size} ({n_params:,} parameters), init {e.init if e.model == 'mlp' else 'torchvision'}",
        "training": f"{e.optimizer}, lr {e.lr}, batch {e.batch_size}, {e.steps} steps",
        "orders": ", ".join(e.orders) + f"; recorded every {e.record_every} step(s)",
        "seeds": ", ".join(map(str, seeds)),
        "device": device_name(e.device)
        + (f", {e.chain_batch} chains per batch" if e.chain_batch > 1 else ""),
        "compute": f"{seconds:.0f} s for the runs (less when loaded from results/)",
    }
