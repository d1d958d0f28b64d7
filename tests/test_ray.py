"""The ray executor against the sequential one: same records, a real worker kill, resume.

One local Ray (2 CPUs) serves the whole module. Workers run one thread under the driver's
pinned kernels, and the tests run one thread too (tests/conftest.py), so both executors make
the same floating-point operations in the same order: the records are compared bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch

from backward_lib import count_applications, experiment, orders, ray_executor, store, trajectory

TINY = dict(
    dataset="fashion_mnist",
    model="mlp",
    depth=2,
    hidden=32,
    lr=0.05,
    batch_size=8,
    steps=12,
    record_every=3,
    forward_every=3,
    orders=("forward", "backward", "reset:6"),
    train_size=256,
    train_eval=64,
    test_eval=64,
)


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray_executor.shutdown()
    if started:
        ray.shutdown()


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same rows in the same order, values bit for bit (float64 copies of float32 results)."""
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_import_never_needs_ray():
    code = "import sys, backward_lib, backward_lib.experiment, backward_lib.ray_executor; "
    code += "assert 'ray' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_executor_field():
    with pytest.raises(ValueError, match="executor"):
        experiment.Experiment(**TINY, executor="dask")
    with pytest.raises(ValueError, match="chain_batch"):
        experiment.Experiment(**TINY, executor="batched")
    with pytest.raises(ValueError, match=r"chain_batch: 4 .* needs executor 'batched' or 'ray'"):
        experiment.Experiment(**TINY, chain_batch=4)  # sequential runs one chain at a time
    keys = {store.config_key(experiment.store_config(experiment.Experiment(**TINY, executor=e)))
            for e in ("sequential", "ray")}  # fmt: skip
    assert len(keys) == 1  # the executor is not part of the results' key
    other = experiment.store_config(experiment.Experiment(**{**TINY, "orders": ("backward",)}))
    assert keys == {store.config_key(other)}  # nor the orders: one file holds every order run


def test_plan_is_blocks_with_warm_steps():
    exp = experiment.Experiment(**{**TINY, "steps": 40, "record_every": 1, "forward_every": 1})
    done = {1, 2, 3, 10}  # a gap, as a killed Ray run leaves
    for spec in exp.orders:
        _, todo = experiment.plan(exp, spec, done)
        copied = experiment.shared(exp)[spec]  # reset:6 before 6 is backward's work
        assert todo == [s for s in range(1, 41) if s not in done and s not in copied]
        order = orders.parse(spec)
        parts = ray_executor.cut(order, todo, 50, experiment.needs(exp, spec))
        assert [s for _, rec, _ in parts for s in rec] == todo  # each step in exactly one block
        for steps, rec, cost in parts:
            assert all(s - 1 in steps for s in rec if s > 1)  # its warm step travels with it
            assert cost == count_applications(orders.parse(experiment.effective_spec(spec, steps[-1])), steps)
        if spec == "forward":
            assert len(parts) == 1  # one prefix-shared pass, never split
        else:
            assert len(parts) > 3
    # anchors with pairs and lags: every step a block records has what it needs in the block
    lagged = replace(exp, record_every=5, anchor_offsets=(1, 3), lags=(1, 5))
    need = experiment.needs(lagged, "backward")
    assert need[11] == {9, 6} and need[12] == {11, 7} and need[14] == {12, 9}  # anchors 1, 6, 11, …
    parts = ray_executor.cut(orders.backward(), sorted(need), 30, need)
    for steps, rec, _ in parts:
        assert steps == sorted(steps) and all(need[s] <= set(steps) for s in rec)
    with pytest.raises(ValueError, match="workers"):
        ray_executor.blocks([exp], [], 0)


def test_workers_compute_under_the_drivers_numerics(local_ray):
    infos = ray.get([a.info.remote() for a in ray_executor.pool()])
    assert len(infos) == 2 and len({i["pid"] for i in infos}) == 2
    for info in infos:
        assert info["threads"] == 1
        assert info["capability"] == torch.backends.cpu.get_cpu_capability()
        for k in ray_executor.NUMERICS_VARS:
            assert info[k] == os.environ.get(k), k


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adamw"])
def test_ray_equals_sequential(optimizer, local_ray, tmp_path):
    lr = 0.005 if optimizer == "adamw" else 0.05
    exp = experiment.Experiment(**{**TINY, "optimizer": optimizer, "lr": lr})
    seq, _ = experiment.run(exp, progress=False, root=tmp_path / "seq")
    par, prep = experiment.run(replace(exp, executor="ray"), progress=False, root=tmp_path / "ray")
    same(seq, par)
    assert prep.exp.executor == "ray" and set(par["order"]) == set(exp.orders)
    assert {"increment", "pred_change", "logit_change"} <= set(par["metric"])


def test_anchor_pairs_and_lags_on_ray(local_ray, tmp_path):
    """The decisive-scale grid: anchors with pairs, lagged movements, blocks cut between them."""
    exp = experiment.Experiment(**{**TINY, "steps": 24, "record_every": 6, "forward_every": 1,
                                   "anchor_offsets": (1, 3), "lags": (1, 3)})  # fmt: skip
    seq, _ = experiment.run(exp, progress=False, root=tmp_path / "seq")
    par, _ = experiment.run(replace(exp, executor="ray"), progress=False, root=tmp_path / "ray")
    same(seq, par)
    assert {"increment_lag1", "pred_change_lag3"} <= set(par[par.order == "backward"]["metric"])


def test_other_orders_on_ray(local_ray, tmp_path):
    """Delayed (forward before its switch: one block there), windows and a backward-start reset."""
    exp = experiment.Experiment(**{**TINY, "record_every": 1, "orders": ("delayed:5", "window:4",
                                   "window:4:window", "reset:6:backward")})  # fmt: skip
    seq, _ = experiment.run(exp, progress=False, root=tmp_path / "seq")
    par, _ = experiment.run(replace(exp, executor="ray"), progress=True, root=tmp_path / "ray")
    same(seq, par)


def test_ray_workers_batch_chains_too(local_ray, tmp_path):
    """chain_batch > 1 with executor ray: each worker runs its blocks' chains with vmap."""
    exp = experiment.Experiment(**{**TINY, "chain_batch": 4, "executor": "batched"})
    bat, _ = experiment.run(exp, progress=False, root=tmp_path / "batched")
    par, _ = experiment.run(replace(exp, executor="ray"), progress=False, root=tmp_path / "ray")
    same(bat, par)


def test_ray_equals_sequential_with_batchnorm(local_ray, tmp_path):
    """A narrow ResNet-18 (BatchNorm buffers travel with each chain) on 3×32×32 inputs."""
    exp = experiment.Experiment(dataset="cifar10", substitute=True, model="resnet18", width=0.0625,
                                steps=4, record_every=1, forward_every=1, orders=("forward", "backward"),
                                train_size=64, train_eval=16, test_eval=16, lr=0.01)  # fmt: skip
    seq, _ = experiment.run(exp, progress=False, root=tmp_path / "seq")
    par, _ = experiment.run(replace(exp, executor="ray"), progress=False, root=tmp_path / "ray")
    same(seq, par)


KILL = dict(TINY, hidden=64, steps=150, record_every=1, forward_every=1, orders=("backward",))


def test_killed_worker_loses_only_its_block(local_ray, tmp_path):
    exp = experiment.Experiment(**KILL)
    events: list[tuple[str, dict]] = []
    killed: list[int] = []

    def on_event(kind: str, info: dict) -> None:
        events.append((kind, info))
        # mid-block: this worker still has ≥ 5 steps to compute, each a chain of > 100 applications
        if kind == "step" and not killed and info["step"] > 100 and info["left"] >= 5:
            killed.append(info["pid"])
            os.kill(info["pid"], signal.SIGKILL)

    par, _ = ray_executor.run(
        replace(exp, executor="ray"), progress=False, root=tmp_path / "ray", on_event=on_event
    )
    assert killed, "no worker was killed"
    lost = [info for kind, info in events if kind == "lost"]
    assert len(lost) == 1 and len(lost[0]["steps"]) >= 5
    stored = [info["step"] for kind, info in events if kind == "step"]
    assert sorted(stored) == list(range(1, 151))  # every step stored once: no block was redone whole
    seq, _ = experiment.run(exp, progress=False, root=tmp_path / "seq")
    same(seq, par)
    # and the actor was restarted: the pool has two live workers again, the killed pid gone
    pids = {i["pid"] for i in ray.get([a.info.remote() for a in ray_executor.pool()])}
    assert len(pids) == 2 and killed[0] not in pids


def test_resume_computes_only_the_rest(local_ray, tmp_path):
    exp = experiment.Experiment(**{**TINY, "record_every": 1, "forward_every": 1})
    clean, _ = experiment.run(exp, progress=False, root=tmp_path / "clean")
    # a store with some steps done, gaps included
    done = {"forward": {1, 2, 3, 4, 5}, "backward": {1, 2, 7, 8}, "reset:6": set()}
    part = experiment.open_store(exp, tmp_path / "part")
    old = experiment.open_store(exp, tmp_path / "clean")
    for spec, steps in done.items():
        for n in sorted(steps):
            part.append(spec, [r for r in old.rows(spec) if r["step"] == n])
    events: list[tuple[str, dict]] = []
    par, _ = ray_executor.run(
        replace(exp, executor="ray"), progress=False, root=tmp_path / "part",
        on_event=lambda kind, info: events.append((kind, info)),
    )  # fmt: skip
    computed = {(info["order"], info["step"]) for kind, info in events if kind == "step"}
    copied = experiment.shared(exp)
    assert computed == {
        (s, n) for s in exp.orders for n in range(1, 13) if n not in done[s] and n not in copied[s]
    }
    assert set(copied["reset:6"]) == set(range(1, 7))  # before its reset: backward's chains, copied
    same(clean, par)


def test_run_seeds_on_ray(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKWARD_RESULTS", str(tmp_path / "seq"))
    base = experiment.Experiment(**{**TINY, "orders": ("forward", "backward")})
    seq, _, _ = experiment.run_seeds(base, [0, 1], progress=False)
    monkeypatch.setenv("BACKWARD_RESULTS", str(tmp_path / "ray"))
    par, prep, _ = experiment.run_seeds(replace(base, executor="ray"), [0, 1], progress=False)
    same(seq, par)
    assert sorted(set(par["seed"])) == [0, 1] and prep.exp.seed == 0


def test_iterates_match_the_engine(local_ray):
    exp = experiment.Experiment(**TINY)
    prep = experiment.prepare(exp)
    steps = [3, 7, 12]
    ref = dict(trajectory(prep.T, prep.theta0, orders.backward(), steps))
    got = ray_executor.iterates(exp, "backward", steps)
    assert list(got) == steps
    for n in steps:
        for k in ref[n]:
            assert torch.equal(ref[n][k], got[n][k]), (n, k)
