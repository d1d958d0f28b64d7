"""The deep-network experiments: one configuration in, a tidy table of records out.

An :class:`Experiment` names everything a run depends on (data, model, optimizer, scale,
orders, seed); :func:`run` builds the step maps from it, runs every order through the engine
and stores each recorded step as it finishes (:mod:`backward_lib.store`), so a run that is
killed resumes where it stopped and a rerun with the same configuration only loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import data, maps, models, orders, provenance, record, schedule
from .batched import batched_trajectory
from .engine import count_applications, trajectory
from .probe import NetworkProbe
from .store import Store

__all__ = [
    "CODE",
    "DATASETS",
    "EXECUTORS",
    "Experiment",
    "Prepared",
    "effective_spec",
    "frame",
    "from_config",
    "grid",
    "iterates",
    "local_iterates",
    "measure",
    "needs",
    "open_store",
    "plan",
    "shared",
    "stored_orders",
    "copy_shared",
    "prepare",
    "run",
    "run_seeds",
    "select",
    "step_rows",
    "store_config",
]

DATASETS = (
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "regression:smooth",
    "regression:oscillating",
    "regression:kinked",
)
# What computed the stored results: this module and every library module it imports (the key of
# the results store, so a change to any of them makes stored results stale; see provenance)
CODE = provenance.digest(__name__)

# How the chains run: one process, chains batched with vmap (groups of chain_batch), or Ray workers
EXECUTORS = ("sequential", "batched", "ray")


@dataclass(frozen=True)
class Experiment:
    """One training configuration; every field but ``device``, ``chain_batch`` and ``executor``
    is part of the results' key (those three change the round-off, not the results).

    ``executor`` picks how the chains run: ``sequential`` (one process, the reference),
    ``batched`` (chains advanced together with vmap in groups of ``chain_batch`` > 1) or ``ray``
    (blocks of recorded steps on Ray workers, :mod:`backward_lib.ray_executor`; with
    ``chain_batch`` > 1 each worker batches its chains too). ``sequential`` with ``chain_batch``
    > 1 and ``batched`` with ``chain_batch`` 1 are errors: one says to batch and the other not.
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
    record_every: int = 1  # grid of recorded steps for chained orders (the anchors)
    forward_every: int = 1  # grid for forward (one pass, so it can be dense)
    anchor_offsets: tuple[int, ...] = ()  # chained orders also record a + k for each anchor a
    lags: tuple[int, ...] = ()  # movement also measured from the iterate k steps back, if recorded
    bn_stats: int = 0  # BatchNorm: metrics again with statistics recomputed on this many examples
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
        for name in ("orders", "anchor_offsets", "lags"):
            if isinstance(getattr(self, name), list):  # as YAML and JSON give them
                object.__setattr__(self, name, tuple(getattr(self, name)))
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
        for name in ("anchor_offsets", "lags"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or any(
                isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in value
            ):
                raise ValueError(f"{name} must be a tuple of positive integers, got {value!r}")
        if not isinstance(self.bn_stats, int) or not 0 <= self.bn_stats <= self.train_eval:
            raise ValueError(
                f"bn_stats must be an integer in 0..train_eval = 0..{self.train_eval}, got {self.bn_stats!r}"
            )
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
            raise ValueError(
                f"chain_batch: {self.chain_batch} chains per group needs executor 'batched' or 'ray'"
                " (the sequential executor runs one chain at a time)"
            )
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
        lags=exp.lags,
        bn_stats=exp.bn_stats,
    )
    return Prepared(exp, used, model, maps.params_of(model), T, probe, x, y)


def grid(exp: Experiment, spec: str) -> list[int]:
    """Recorded steps of one order: dense for forward; for chained orders the anchors (every
    ``record_every``) and each anchor + ``anchor_offsets``; plus a reset's r and r + 1."""
    if spec == "forward":
        steps = set(record.every(exp.forward_every, exp.steps))
    else:
        anchors = record.every(exp.record_every, exp.steps)
        steps = set(anchors) | {a + k for a in anchors for k in exp.anchor_offsets if a + k <= exp.steps}
    order = orders.parse(spec)
    if order.reset_at is not None:
        steps |= {order.reset_at, min(order.reset_at + 1, exp.steps)}
    return sorted(steps)


def needs(exp: Experiment, spec: str) -> dict[int, set[int]]:
    """For each recorded step, the recorded steps the probe must see before it in the same pass:
    the grid step before it (``increment``, …) and the step ``k`` back for each of ``lags``."""
    steps = grid(exp, spec)
    on = set(steps)
    return {
        s: ({steps[i - 1]} if i else set()) | {s - k for k in exp.lags if s - k in on}
        for i, s in enumerate(steps)
    }


def iterates(
    prep: Prepared, spec: str, steps: list[int], *, on_apply: Callable[[int], None] | None = None
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(n, θ) for order ``spec`` at ``steps``, from the executor that ``prep.exp`` names.

    The one entry point to the executors: the sequential engine; chains advanced together in
    groups of ``chain_batch`` (``batched``, for orders whose chains share no work; forward and
    shared prefixes stay sequential, where batching gains nothing); or Ray workers (``ray``,
    iterates only: :func:`run` streams Ray's recorded steps to the store instead).
    """
    if prep.exp.executor == "ray":
        from . import ray_executor

        yield from ray_executor.iterates(prep.exp, spec, steps).items()
    else:
        yield from local_iterates(prep, spec, steps, on_apply=on_apply)


def local_iterates(
    prep: Prepared, spec: str, steps: list[int], *, on_apply: Callable[[int], None] | None = None
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """The in-process part of :func:`iterates` (also what each Ray worker runs): chains in
    groups of ``chain_batch`` where it is > 1 and they share no work, else the sequential engine."""
    order, exp = orders.parse(spec), prep.exp
    if exp.chain_batch > 1 and order.name in ("backward", "reset", "window"):
        return batched_trajectory(prep.T, prep.theta0, order, steps, group=exp.chain_batch, on_apply=on_apply)
    return trajectory(prep.T, prep.theta0, order, steps, on_apply=on_apply)


def store_config(exp: Experiment) -> dict[str, Any]:
    """The configuration that keys ``exp``'s results: the execution path and the orders left out.

    ``device`` and ``chain_batch`` read ``any``; ``executor`` and ``orders`` are dropped: one
    store file holds every order ever run on one configuration and seed, so chapters that share
    a configuration (Fig. 3, A.2 and A.6 share the MLP's) share its forward run and its chains.
    """
    cfg = {**asdict(exp), "device": "any", "chain_batch": "any"}
    del cfg["executor"], cfg["orders"]
    return cfg


def from_config(config: dict[str, Any], **execution: Any) -> Experiment:
    """The :class:`Experiment` whose :func:`store_config` is ``config`` (a store file's header),
    with ``orders`` and run as ``execution`` says (``device``, ``chain_batch``, ``executor``;
    default the CPU's sequential engine)."""
    names = {f.name for f in fields(Experiment)}
    unknown = sorted(set(config) - names)  # a store header has no orders: ``execution`` gives them
    if unknown:
        raise ValueError(f"config: fields {unknown} are not Experiment fields")
    run_only = ("device", "chain_batch")  # "any" in the store's key
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k not in run_only}
    kw["extra"] = tuple(tuple(pair) for pair in config.get("extra", ()))
    return Experiment(**{**kw, **execution})


def effective_spec(spec: str, last: int) -> str:
    """The spec to run a pass ending at ``last`` with: before its switch step r a reset (or
    delayed) order's chains are plain backward (forward) chains, and the engine refuses a reset
    order whose steps all come before r."""
    order = orders.parse(spec)
    if order.reset_at is not None and last <= order.reset_at:
        return "backward" if order.backward_before else "forward"
    return spec


def measure(exp: Experiment, spec: str, steps: list[int]) -> dict[int, dict[str, float]]:
    """The probe's values at ``steps`` of order ``spec``, computed from scratch: nothing read
    from or written to a store (the steps each one :func:`needs` are evaluated too)."""
    need = needs(exp, spec)
    bad = sorted(set(steps) - set(need))
    if bad:
        raise ValueError(f"steps: {bad} are not recorded steps of {spec!r}")
    evaluate = sorted(set(steps).union(*(need[s] for s in steps)))
    out = {}
    with one_thread():
        prep = prepare(exp)
        prep.probe.reset()
        for n, theta in iterates(prep, effective_spec(spec, evaluate[-1]), evaluate):
            values = prep.probe(theta, n)
            if n in steps:
                out[n] = values
    return out


@contextmanager
def one_thread() -> Iterator[None]:
    """Compute with one thread, as the Ray workers do: a reduction split over two threads rounds
    differently, and the store should hold the same bits whichever executor filled it (at batch
    8 a second thread barely speeds up a step; two workers use two cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def open_store(exp: Experiment, root: str | Path | None = None) -> Store:
    """``exp``'s results in the store at ``root`` (default: ``results/``), keyed by its
    configuration and :data:`CODE`."""
    return Store(store_config(exp), root, code=CODE)


def _signature(exp: Experiment, spec: str, n: int, steps: list[int], on: set[int]) -> tuple:
    """What the probe's values at recorded step ``n`` of ``spec`` are computed from: the chain
    of n, that of the recorded step before it, and those of its lagged steps."""
    order = orders.parse(spec)
    i = steps.index(n)
    prev = order.chain(steps[i - 1]) if i else None
    lagged = tuple((k, order.chain(n - k)) for k in exp.lags if n - k in on)
    return order.chain(n), prev, lagged


def shared(exp: Experiment, stored: dict[str, set[int]] | None = None) -> dict[str, dict[int, str]]:
    """Per order, the recorded steps whose values another order computes too: the same chains,
    from the same start, with the same chains before them (orders are data, so this is a
    comparison, not a guess). E.g. ``reset:1000`` before step 1000 is ``backward``.

    The donor is an order the store holds already (``stored``: order → done steps, for orders
    of other chapters on the same configuration) where that step is done, else an earlier order
    of ``exp``. Those steps are computed once and copied (:func:`copy_shared`).
    """
    out: dict[str, dict[int, str]] = {}
    seen: list[tuple[str, dict[int, tuple], set[int] | None]] = []

    def signatures(spec: str) -> dict[int, tuple]:
        steps = grid(exp, spec)
        on = set(steps)
        return {n: _signature(exp, spec, n, steps, on) for n in steps}

    for spec, done in (stored or {}).items():
        if spec not in exp.orders and done:
            seen.append((spec, signatures(spec), done))
    for spec in exp.orders:
        sig = signatures(spec)
        out[spec] = {}
        for n in sig:
            able = (d for d, other, done in seen if other.get(n) == sig[n] and (done is None or n in done))
            donor = next(able, None)
            if donor is not None:
                out[spec][n] = donor
        seen.append((spec, sig, None))
    return out


def stored_orders(store: Store) -> dict[str, set[int]]:
    """Every order the store holds, with its done steps (the donors :func:`shared` may use)."""
    return {spec: store.done_steps(spec) for spec in store.orders()}


def copy_shared(exp: Experiment, store: Store) -> None:
    """Store, for each order, the values of the steps another order computed (:func:`shared`)."""
    for spec, donors in shared(exp, stored_orders(store)).items():
        done = store.done_steps(spec)
        cache: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for n, donor in sorted(donors.items()):
            if n in done:
                continue
            if donor not in cache:
                rows: dict[int, list[dict[str, Any]]] = {}
                for r in store.rows(donor):
                    rows.setdefault(r["step"], []).append({**r, "order": spec})
                cache[donor] = rows
            if n in cache[donor]:
                store.append(spec, cache[donor][n])


def plan(
    exp: Experiment, spec: str, done: set[int], stored: dict[str, set[int]] | None = None
) -> tuple[list[int], list[int]]:
    """(steps to evaluate, steps to record) for order ``spec`` when ``done`` are stored already.

    The rule: every recorded step not yet done, and not computed by another order
    (:func:`shared`, with the orders ``stored`` already), is evaluated together with the steps
    it :func:`needs`, so the probe measures its movements exactly as an uninterrupted run does,
    even where the stored steps have gaps (a killed Ray run leaves them).
    """
    need, copied = needs(exp, spec), shared(exp, stored)[spec]
    todo = [s for s in need if s not in done and s not in copied]
    return sorted(set(todo).union(*(need[s] for s in todo))), todo


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

    ``exp.executor`` decides where the chains run; the table is the same for each. Everything
    is computed with one thread (:func:`one_thread`), in this process and on the Ray workers.
    """
    if exp.executor == "ray":
        from . import ray_executor

        return ray_executor.run(exp, progress=progress, root=root)
    prep = prepare(exp)
    store = open_store(exp, root)
    plans, stored = {}, stored_orders(store)
    for spec in exp.orders:
        evaluate, todo = plan(exp, spec, store.done_steps(spec), stored)
        if todo:
            plans[spec] = (evaluate, set(todo))
    bar = None
    if progress and plans:
        from tqdm import tqdm

        total = sum(count_applications(orders.parse(s), p[0]) for s, p in plans.items())
        bar = tqdm(total=total, unit="step", desc=f"seed {exp.seed}", mininterval=2.0)
    try:
        with one_thread():
            for spec, (evaluate, todo) in plans.items():
                prep.probe.reset()
                on_apply = bar.update if bar is not None else None
                for n, theta in iterates(prep, spec, evaluate, on_apply=on_apply):
                    values = prep.probe(theta, n)
                    if n in todo:
                        store.append(spec, step_rows(exp, spec, n, values))
    finally:
        if bar is not None:
            bar.close()
    copy_shared(exp, store)
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
