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

__all__ = [
    "DATASETS",
    "EXECUTORS",
    "Experiment",
    "Prepared",
    "card",
    "frame",
    "grid",
    "plan",
    "prepare",
    "run",
    "run_seeds",
    "select",
    "step_rows",
    "store_config",
    "workload",
]

DATASETS = (
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "regression:smooth",
    "regression:oscillating",
    "regression:kinked",
)
# How the chains run: one process, chains batched with vmap (groups of chain_batch), or Ray workers
EXECUTORS = ("sequential", "batched", "ray")


@dataclass(frozen=True)
class Experiment:
    """One training configuration; every field but ``device``, ``chain_batch`` and ``executor``
    is part of the results' key (those three change the round-off, not the results).

    ``executor`` picks how the chains run: ``sequential`` (one process, the reference),
    ``batched`` (chains advanced together with vmap in groups of ``chain_batch`` > 1) or ``ray``
    (blocks of recorded steps on Ray workers, :mod:`backward_lib.ray_executor`; with
    ``chain_batch`` > 1 each worker batches its chains too). For compatibility ``chain_batch`` > 1
    with the default ``sequential`` means ``batched``, as it did before ``executor`` existed;
    ``batched`` with ``chain_batch`` 1 is an error (there would be nothing to batch).
    """

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
    executor: str = "sequential"  # sequential | batched | ray (see the class docstring)
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
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: unknown executor {self.executor!r}; choose one of {EXECUTORS}")
        if self.executor == "sequential" and self.chain_batch > 1:
            object.__setattr__(self, "executor", "batched")  # what chain_batch > 1 has always meant
        if self.executor == "batched" and self.chain_batch == 1:
            raise ValueError("executor: 'batched' needs chain_batch > 1 (the number of chains per group)")


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


def select(exp: Experiment) -> tuple:
    """The data ``exp`` uses, on the CPU: (x, y, train-eval x, y, test-eval x, y, description,
    classes), the subsets drawn from ``exp.seed``.

    :func:`prepare` takes it as ``selected``; the Ray executor puts it in the object store once
    per experiment, so workers neither read the files nor hold what the run does not use.
    """
    (x, y), (xt, yt), used, classes = _load(exp)
    g = torch.Generator().manual_seed(exp.seed)
    if exp.train_size:
        keep = torch.randperm(len(x), generator=g)[: exp.train_size]
        x, y = x[keep], y[keep]
    train_eval = torch.randperm(len(x), generator=g)[: exp.train_eval]
    test_eval = torch.randperm(len(xt), generator=g)[: exp.test_eval]
    return x, y, x[train_eval], y[train_eval], xt[test_eval], yt[test_eval], used, classes


def prepare(exp: Experiment, *, selected: tuple | None = None) -> Prepared:
    """Build data, model, step maps and probe for ``exp`` (deterministic in ``exp.seed``).

    ``selected`` is :func:`select`'s result for ``exp`` if the caller has it already.
    """
    x, y, xe, ye, xt, yt, used, classes = select(exp) if selected is None else selected
    dev = torch.device(exp.device)
    x, y, xe, ye, xt, yt = (v.to(dev) for v in (x, y, xe, ye, xt, yt))
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
        (xe, ye),
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
    # chain_batch > 1: executor "batched", or "ray" with each worker batching its own chains
    if exp.chain_batch > 1 and order.name in ("backward", "reset", "window"):
        return batched_trajectory(prep.T, prep.theta0, order, steps, group=exp.chain_batch, on_apply=on_apply)
    return trajectory(prep.T, prep.theta0, order, steps, on_apply=on_apply)


def store_config(exp: Experiment) -> dict[str, Any]:
    """The configuration that keys ``exp``'s results: the execution path is left out.

    ``device`` and ``chain_batch`` read ``any``; ``executor`` is dropped, so results stored
    before that field existed keep their key.
    """
    cfg = {**asdict(exp), "device": "any", "chain_batch": "any"}
    del cfg["executor"]
    return cfg


def plan(exp: Experiment, spec: str, done: set[int]) -> tuple[list[int], list[int]]:
    """(steps to evaluate, steps to record) for order ``spec`` when ``done`` are stored already.

    The rule: every recorded step not yet done is evaluated together with the grid step before
    it, so the probe measures its increments from the previous recorded iterate exactly as an
    uninterrupted run does, even where the stored steps have gaps (a killed Ray run leaves them).
    """
    steps = grid(exp, spec)
    todo = [s for i, s in enumerate(steps) if s not in done]
    before = {steps[i - 1] for i, s in enumerate(steps) if i and s not in done}
    return sorted(set(todo) | before), todo


def step_rows(exp: Experiment, spec: str, n: int, values: dict[str, float]) -> list[dict[str, Any]]:
    """The stored rows of one recorded step."""
    return [
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


def frame(exp: Experiment, store: Store) -> pd.DataFrame:
    """The stored records of ``exp``: orders as listed, steps increasing, metrics in probe order.

    Ray workers finish steps out of order; this order (a stable sort of what is stored) makes the
    table the same whichever executor filled the store.
    """
    table = pd.DataFrame([r for spec in exp.orders for r in store.rows(spec)], columns=record.COLUMNS)
    table = table.drop_duplicates(["order", "step", "metric"])  # a step stored twice counts once
    rank = table["order"].map({spec: i for i, spec in enumerate(exp.orders)})
    keep = pd.DataFrame({"rank": rank, "step": table["step"]}).sort_values(["rank", "step"], kind="stable")
    return table.loc[keep.index].reset_index(drop=True)


def run(exp: Experiment, *, progress: bool = True, root: str | None = None) -> tuple[pd.DataFrame, Prepared]:
    """Records of every order of ``exp`` (tidy: order, seed, step, metric, value, diverged).

    ``exp.executor`` decides where the chains run; the table is the same for each.
    """
    if exp.executor == "ray":
        from . import ray_executor

        return ray_executor.run(exp, progress=progress, root=root)
    prep = prepare(exp)
    store = Store(store_config(exp), root)
    plans = {}
    for spec in exp.orders:
        evaluate, todo = plan(exp, spec, store.done_steps(spec))
        if todo:
            plans[spec] = (evaluate, set(todo))
    bar = None
    if progress and plans:
        from tqdm import tqdm

        total = sum(count_applications(orders.parse(s), p[0]) for s, p in plans.items())
        bar = tqdm(total=total, unit="step", desc=f"seed {exp.seed}", mininterval=2.0)
    try:
        for spec, (evaluate, todo) in plans.items():
            prep.probe.reset()
            on_apply = bar.update if bar is not None else None
            for n, theta in _iterate(prep, spec, evaluate, on_apply):
                values = prep.probe(theta)
                if n in todo:
                    store.append(spec, step_rows(exp, spec, n, values))
    finally:
        if bar is not None:
            bar.close()
    return frame(exp, store), prep


def run_seeds(
    base: Experiment, seeds: list[int], *, progress: bool = True
) -> tuple[pd.DataFrame, Prepared, float]:
    """Run ``base`` for each seed (one row per seed in the figures); (records, first run, seconds).

    With ``base.executor == "ray"`` the seeds' blocks share one pool of Ray workers and run
    concurrently.
    """
    import time
    from dataclasses import replace

    if not seeds:
        raise ValueError("seeds must name at least one seed")
    t0 = time.perf_counter()
    exps = [replace(base, seed=int(s)) for s in seeds]
    if base.executor == "ray":
        from . import ray_executor

        runs = ray_executor.run_many(exps, progress=progress)
    else:
        runs = [run(e, progress=progress) for e in exps]
    table = pd.concat([r[0] for r in runs], ignore_index=True)
    return table, runs[0][1], time.perf_counter() - t0


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
        + (f", {e.chain_batch} chains per batch" if e.chain_batch > 1 else "")
        + (", Ray workers" if e.executor == "ray" else ""),
        "compute": f"{seconds:.0f} s for the runs (less when loaded from results/)",
    }
