"""The ``ray`` executor: the recorded steps of an experiment as blocks on Ray workers.

The plan is data (:class:`Block`). For each order the recorded steps still to do (from the
store) are cut into blocks of consecutive recorded steps; a block carries its warm steps (those
each of its steps needs before it, :func:`backward_lib.experiment.needs`), so the probe measures
increments, prediction and logit changes exactly as the sequential run does. A cut is
made only between steps whose chains share no work (backward, reset after r, window): an order
whose chains extend each other (forward; delayed before its switch) stays one block, one
prefix-shared pass, and runs concurrently with the others. Blocks are sized by their map
applications (:func:`backward_lib.engine.count_applications`, warm steps and start points
included; backward chains cost n) to about a quarter of a worker's share, and are handed out
largest first to whichever worker is free.

Workers are Ray actors, one CPU (or ``gpus`` GPUs) each, running one thread under the driver's
pinned numerics (the variables are passed in ``runtime_env``), so they compute the same bits as
a one-thread sequential run. Each builds :class:`~backward_lib.experiment.Prepared` once per
experiment from the configuration and the data, which goes to the object store once (per
experiment and Ray session, :func:`~backward_lib.experiment.select`'s subsets only) and is
passed by reference.
Workers stream each recorded step's values back as it finishes; the driver stores it at once,
so a killed driver loses only unfinished steps, and a worker that dies loses only the rest of
its block, which is resubmitted (the actor restarts).

Ray is imported inside the functions: ``import backward_lib`` never needs it. ``ray.init()``
runs once per process (an existing connection is reused); ``address`` or ``RAY_ADDRESS``
connects to a cluster, and with neither a local Ray starts.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch

from . import orders
from .engine import _Runner, count_applications
from .experiment import (
    Experiment,
    Prepared,
    copy_shared,
    effective_spec,
    frame,
    local_iterates,
    needs,
    open_store,
    plan,
    prepare,
    select,
    step_rows,
    store_config,
    stored_orders,
)
from .orders import Order
from .store import Store, config_key

__all__ = ["NUMERICS_VARS", "Block", "blocks", "cut", "iterates", "pool", "run", "run_many", "shutdown"]

# What decides the bits of a CPU kernel (companion/numerics.py); workers inherit these values
NUMERICS_VARS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
BLOCKS_PER_WORKER = 4  # more blocks balance better, but each repeats its warm step and start point
MAX_RETRIES = 3  # a block whose worker keeps dying is an error, not a loop

Params = dict[str, torch.Tensor]
Event = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Block:
    """One task: evaluate ``steps`` (increasing) of order ``spec`` of experiment ``exp`` (an
    index into the run's experiments) in one chain pass, and report the steps in ``record``."""

    exp: int
    spec: str
    steps: tuple[int, ...]
    record: tuple[int, ...]
    cost: int  # map applications of the pass

    def rest(self, left: set[int], need: dict[int, set[int]]) -> Block:
        """The block that still has to report ``left``: each with the steps it needs before it
        (:func:`backward_lib.experiment.needs`; empty when nothing is probed)."""
        keep = set(left).union(*(need.get(s, set()) for s in left))
        steps = tuple(sorted(keep))
        cost = count_applications(orders.parse(effective_spec(self.spec, steps[-1])), steps)
        return Block(self.exp, self.spec, steps, tuple(sorted(left)), cost)


def _shares(order: Order, m: int, n: int) -> bool:
    """Whether chain(n) continues chain(m) (same start, m's batches a prefix of n's)."""
    a, b = order.chain(m), order.chain(n)
    return a.start == b.start and b.batches[: len(a.batches)] == a.batches


def cut(
    order: Order, record: list[int], target: int, need: dict[int, set[int]] | None = None
) -> list[tuple[list[int], list[int], int]]:
    """Cut one order's recorded steps into (steps, record, cost) blocks of about ``target``
    applications.

    A block ends once its cost reaches ``target`` and the next recorded step's chain shares no
    work with its last one. Each block evaluates, with its recorded steps, the steps ``need``
    says they need before them in the same pass (:func:`backward_lib.experiment.needs`: the
    grid step before, the lagged ones); without ``need`` nothing is probed, so nothing is.
    """
    need = need or {}
    out: list[tuple[list[int], list[int], int]] = []
    steps: list[int] = []
    rec: list[int] = []
    runner = _Runner(None, None)  # a dry run counts applications as the real pass will make them
    for j, s in enumerate(record):
        new = sorted((need.get(s, set()) | {s}) - set(steps))
        if steps and new[0] < steps[-1]:  # a lagged step from before the block: count afresh
            steps = sorted({*steps, *new})
            runner = _Runner(None, None)
            for t in steps:
                runner.evaluate(order.chain(t))
        else:
            for t in new:
                steps.append(t)
                runner.evaluate(order.chain(t))
        rec.append(s)
        last = j == len(record) - 1
        if last or (runner.applications >= target and not _shares(order, s, record[j + 1])):
            out.append((steps, rec, runner.applications))
            steps, rec, runner = [], [], _Runner(None, None)
    return out


def blocks(exps: list[Experiment], stores: list[Store], workers: int) -> list[Block]:
    """The plan of a run: every order's remaining recorded steps as blocks, largest first."""
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    plans = []
    for i, (exp, store) in enumerate(zip(exps, stores, strict=True)):
        for spec in exp.orders:
            evaluate, todo = plan(exp, spec, store.done_steps(spec), stored_orders(store))
            if todo:
                order = orders.parse(spec)
                cost = count_applications(orders.parse(effective_spec(spec, evaluate[-1])), evaluate)
                plans.append((i, spec, order, needs(exp, spec), todo, cost))
    total = sum(p[-1] for p in plans)
    target = max(1, total // (workers * BLOCKS_PER_WORKER))
    out = [
        Block(i, spec, tuple(steps), tuple(rec), cost)
        for i, spec, order, need, todo, _ in plans
        for steps, rec, cost in cut(order, todo, target, need)
    ]
    return sorted(out, key=lambda b: -b.cost)  # largest first: the last blocks fill the gaps


class _Worker:
    """A Ray actor's state: Prepared experiments, built from the object store's data once."""

    def __init__(self) -> None:
        torch.set_num_threads(1)  # one CPU per worker; more threads would contend for it
        self._prepared: OrderedDict[str, Prepared] = OrderedDict()

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "threads": torch.get_num_threads(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            **{k: os.environ.get(k) for k in NUMERICS_VARS},
        }

    def _prepare(self, exp: Experiment, data: list) -> Prepared:
        import ray

        key = config_key(asdict(exp))
        if key not in self._prepared:
            self._prepared[key] = prepare(exp, selected=ray.get(data[0]))
            while len(self._prepared) > 2:  # a few experiments at a time: bounded memory
                self._prepared.popitem(last=False)
        self._prepared.move_to_end(key)
        return self._prepared[key]

    def run_block(
        self,
        exp: Experiment,
        data: list,
        spec: str,
        steps: tuple[int, ...],
        record: tuple[int, ...],
        probe: bool,
    ) -> Iterator[tuple[int, Any, int]]:
        """Yield (step, probe values or the iterate, pid) for each recorded step of the block.

        ``data`` wraps the object-store reference in a list, so Ray hands over the reference
        rather than the (large) data on every call.
        """
        prep = self._prepare(exp, data)
        prep.probe.reset()
        record_set = set(record)
        for n, theta in local_iterates(prep, effective_spec(spec, steps[-1]), list(steps)):
            if probe:
                values = prep.probe(theta, n)  # every step: later ones' movements need it
                if n in record_set:
                    yield n, values, os.getpid()
            elif n in record_set:
                yield n, {k: v.detach().cpu().clone() for k, v in theta.items()}, os.getpid()


@dataclass
class _Pool:
    key: tuple
    actors: list


_POOL: _Pool | None = None


def _session() -> tuple[str, str]:
    """This connection to Ray: a new local Ray reuses job ids, never node ids."""
    import ray

    ctx = ray.get_runtime_context()
    return ctx.get_job_id(), ctx.get_node_id()


def _connect(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)


def pool(count: int | None = None, *, gpus: float = 0.0, address: str | None = None) -> list[Any]:
    """The pool of worker actors (kept between runs of this process; rebuilt if the Ray session,
    the count or the GPU share changes). ``count`` defaults to the cluster's CPUs, or its GPUs
    divided by ``gpus`` when workers take GPUs."""
    import ray

    global _POOL
    _connect(address)
    res = ray.cluster_resources()
    if gpus > 0 and res.get("GPU", 0) < gpus:
        raise ValueError(f"gpus: workers ask for {gpus} GPU each but the Ray cluster has {res.get('GPU', 0)}")
    if count is None:
        count = int(res.get("GPU", 0) // gpus) if gpus > 0 else int(res.get("CPU", 1))
    if count < 1:
        raise ValueError(f"workers must be ≥ 1, got {count}")
    env = {k: os.environ[k] for k in NUMERICS_VARS if k in os.environ}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    key = (_session(), count, gpus, tuple(sorted(env.items())))
    if _POOL is not None and _POOL.key == key:
        return _POOL.actors
    shutdown()
    cls = ray.remote(_Worker).options(
        num_cpus=1, num_gpus=gpus, max_restarts=-1, runtime_env={"env_vars": env}
    )
    actors = [cls.remote() for _ in range(count)]
    ray.get([a.info.remote() for a in actors])  # started and importable before any work is timed
    _POOL = _Pool(key, actors)
    return actors


def shutdown() -> None:
    """End this process's worker actors and forget its data references (Ray keeps running)."""
    global _POOL
    _DATA.clear()
    if _POOL is None:
        return
    import ray

    if ray.is_initialized():
        for a in _POOL.actors:
            ray.kill(a)
    _POOL = None


def _execute(
    exps: list[Experiment],
    plan_: list[Block],
    data: list[Any],
    actors: list[Any],
    deliver: Callable[[Block, int, Any], None],
    *,
    probe: bool,
    on_event: Event | None,
) -> None:
    """Run the blocks on the actors; ``deliver`` each recorded step as it arrives.

    A worker that dies costs the rest of its block, resubmitted first; its actor restarts and
    is given work again once it answers (a call made while it restarts would fail too).
    """
    import ray
    from ray.exceptions import RayActorError

    pending = list(plan_)
    free = list(range(len(actors)))
    live: dict[Any, tuple[int, Block, set[int]]] = {}  # block generators
    waking: dict[Any, tuple[int, int]] = {}  # info() calls to restarting actors: (actor, attempt)
    tries: dict[tuple[int, str, int], int] = {}

    def wake(i: int, attempt: int) -> None:
        if attempt > 600:  # about a minute of refusals: the actor is not coming back
            raise RuntimeError(f"workers: actor {i} did not restart")
        waking[actors[i].info.remote()] = (i, attempt)

    def event(kind: str, info: dict[str, Any]) -> None:
        if on_event is not None:
            on_event(kind, info)

    try:
        while pending or live:
            while pending and free:
                i, b = free.pop(0), pending.pop(0)
                gen = (
                    actors[i]
                    .run_block.options(num_returns="streaming")
                    .remote(exps[b.exp], [data[b.exp]], b.spec, b.steps, b.record, probe)
                )
                live[gen] = (i, b, set(b.record))
            ready, _ = ray.wait([*live, *waking], num_returns=1)
            for ref in ready:
                if ref in waking:
                    i, attempt = waking.pop(ref)
                    try:
                        ray.get(ref)
                        free.append(i)
                    except RayActorError:
                        time.sleep(0.1)
                        wake(i, attempt + 1)
                    continue
                i, b, left = live[ref]
                try:
                    n, value, pid = ray.get(next(ref))
                except StopIteration:
                    del live[ref]
                    free.append(i)
                    continue
                except RayActorError as err:  # the worker died: only the rest of its block is lost
                    del live[ref]
                    wake(i, 0)
                    key = (b.exp, b.spec, b.record[-1])  # the rest of a block keeps its last step
                    tries[key] = tries.get(key, 0) + 1
                    if tries[key] > MAX_RETRIES:
                        raise RuntimeError(
                            f"block {b.spec} steps {sorted(left)}: worker died {MAX_RETRIES + 1} times"
                        ) from err
                    pending.insert(0, b.rest(left, needs(exps[b.exp], b.spec) if probe else {}))
                    event(
                        "lost",
                        {"exp": b.exp, "order": b.spec, "steps": sorted(left), "error": type(err).__name__},
                    )
                    continue
                left.discard(n)
                deliver(b, n, value)
                event("step", {"exp": b.exp, "order": b.spec, "step": n, "pid": pid, "left": len(left)})
    except BaseException:
        shutdown()  # tasks still running on the actors would delay the next run's blocks
        raise


_DATA: OrderedDict[tuple, tuple[Any, tuple]] = OrderedDict()  # (session, key) -> (ref, selected)


def _data_refs(exps: list[Experiment]) -> tuple[list[Any], list[tuple]]:
    """Each experiment's data (:func:`~backward_lib.experiment.select`) in the object store, once
    per Ray session: a rerun (a benchmark's repeats, a resume) reuses the reference."""
    import ray

    session = _session()
    refs, selected = [], []
    for e in exps:
        key = (session, config_key(store_config(e)))  # the data depend on the results' key only
        if key not in _DATA:
            d = select(e)
            _DATA[key] = (ray.put(d), d)
            while len(_DATA) > 4:  # bounded: old data sets leave the object store
                _DATA.popitem(last=False)
        _DATA.move_to_end(key)
        refs.append(_DATA[key][0])
        selected.append(_DATA[key][1])
    return refs, selected


def _gpus(exps: list[Experiment], gpus: float | None) -> float:
    if gpus is not None:
        if gpus < 0:
            raise ValueError(f"gpus must be ≥ 0, got {gpus}")
        return gpus
    return 1.0 if any(e.device.startswith("cuda") for e in exps) else 0.0


def run_many(
    exps: list[Experiment],
    *,
    progress: bool = True,
    root: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    gpus: float | None = None,
    on_event: Event | None = None,
) -> list[tuple[pd.DataFrame, Prepared]]:
    """:func:`backward_lib.experiment.run` for several experiments (e.g. seeds) at once: all
    their blocks share one pool of workers. Returns (records, Prepared) per experiment.

    ``gpus`` is each worker's GPU share (default 1 when an experiment's device is CUDA, else 0);
    ``on_event(kind, info)`` hears of each stored step (``"step"``) and each block lost with its
    worker and resubmitted (``"lost"``).
    """
    if not exps:
        raise ValueError("exps must name at least one experiment")
    stores = [open_store(e, root) for e in exps]
    actors = pool(workers, gpus=_gpus(exps, gpus), address=address)
    plan_ = blocks(exps, stores, len(actors))
    refs, loaded = _data_refs(exps)
    bar = None
    if progress and plan_:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(b.record) for b in plan_), unit="record", desc="ray", mininterval=2.0)

    def deliver(b: Block, n: int, values: Any) -> None:
        stores[b.exp].append(b.spec, step_rows(exps[b.exp], b.spec, n, values))
        if bar is not None:
            bar.update(1)

    try:
        _execute(exps, plan_, refs, actors, deliver, probe=True, on_event=on_event)
    finally:
        if bar is not None:
            bar.close()
    for e, s in zip(exps, stores, strict=True):
        copy_shared(e, s)
    return [(frame(e, s), prepare(e, selected=d)) for e, s, d in zip(exps, stores, loaded, strict=True)]


def run(
    exp: Experiment,
    *,
    progress: bool = True,
    root: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    gpus: float | None = None,
    on_event: Event | None = None,
) -> tuple[pd.DataFrame, Prepared]:
    """One experiment on Ray workers: the same records as the sequential run (see module doc)."""
    return run_many(
        [exp], progress=progress, root=root, address=address, workers=workers, gpus=gpus, on_event=on_event
    )[0]


def iterates(
    exp: Experiment,
    spec: str,
    steps: list[int],
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus: float | None = None,
) -> dict[int, Params]:
    """The iterates of order ``spec`` at ``steps`` computed on the workers, nothing probed or
    stored (no warm steps either): the engine's throughput on Ray, for benchmarks."""
    order = orders.parse(spec)
    steps = sorted(set(steps))
    order.validate(steps[-1])
    actors = pool(workers, gpus=_gpus([exp], gpus), address=address)
    target = max(1, count_applications(order, steps) // (len(actors) * BLOCKS_PER_WORKER))
    plan_ = sorted(
        (Block(0, spec, tuple(s), tuple(r), c) for s, r, c in cut(order, steps, target)),
        key=lambda b: -b.cost,
    )
    refs, _ = _data_refs([exp])
    out: dict[int, Params] = {}
    _execute(
        [exp], plan_, refs, actors, lambda b, n, theta: out.__setitem__(n, theta), probe=False, on_event=None
    )
    return dict(sorted(out.items()))
