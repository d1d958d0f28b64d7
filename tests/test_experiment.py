"""The experiment runner: results stored as they finish, resumed after a real kill."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backward_lib import experiment

TINY = dict(
    dataset="regression:smooth",
    model="mlp",
    depth=2,
    hidden=16,
    lr=0.05,
    batch_size=4,
    steps=40,
    record_every=4,
    forward_every=4,
    orders=("forward", "backward", "reset:20"),
    train_eval=100,
    test_eval=200,
)


def test_run_records_and_reloads(tmp_path):
    exp = experiment.Experiment(**TINY)
    df, prep = experiment.run(exp, progress=False, root=tmp_path)
    assert set(df.columns) == {"order", "seed", "step", "metric", "value", "diverged"}
    assert set(df["order"]) == {"forward", "backward", "reset:20"}
    assert prep.data_used.startswith("synthetic regression")
    steps = sorted(df[(df.order == "backward") & (df.metric == "train_loss")]["step"])
    assert steps == experiment.grid(exp, "backward")
    assert not df["diverged"].any()
    # step 1 is the same iterate in every order
    first = df[(df.step == 1) & (df.metric == "train_loss")]["value"]
    assert np.ptp(first.to_numpy()) == 0
    # a second run loads: nothing is recomputed, same table
    t0 = time.perf_counter()
    again, _ = experiment.run(exp, progress=False, root=tmp_path)
    assert again.equals(df)
    assert time.perf_counter() - t0 < 30


def test_bad_configuration_names_the_parameter():
    for field, value in [
        ("lr", 0.0),
        ("batch_size", 0),
        ("dataset", "mnist9"),
        ("model", "gpt"),
        ("optimizer", "lion"),
        ("steps", -1),
    ]:
        with pytest.raises(ValueError, match=field if field != "dataset" else "dataset"):
            experiment.Experiment(**{**TINY, field: value})
    with pytest.raises(ValueError, match="at="):
        experiment.Experiment(**{**TINY, "orders": ("reset:40",)})


def test_diverging_run_is_marked(tmp_path):
    exp = experiment.Experiment(**{**TINY, "lr": 1e6, "orders": ("forward",)})
    df, _ = experiment.run(exp, progress=False, root=tmp_path)
    late = df[df.step == df.step.max()]
    assert late["diverged"].all() and late["value"].isna().all()


KILLED = """
import sys, time
from backward_lib import engine, experiment
exp = experiment.Experiment(**{tiny})
orig = engine._Runner._run
def slow(self, chain, theta):
    time.sleep(0.05)  # slow enough to be killed halfway
    return orig(self, chain, theta)
engine._Runner._run = slow
experiment.run(exp, progress=False, root=sys.argv[1])
"""


def test_killed_run_resumes_without_recomputing(tmp_path):
    exp = experiment.Experiment(**{**TINY, "orders": ("backward",), "record_every": 1})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED.format(tiny=repr({**TINY, "orders": ("backward",), "record_every": 1})),
            str(tmp_path),
        ],
        env=env,
    )
    st = experiment.open_store(exp, tmp_path)
    deadline = time.time() + 60
    while len(st.done_steps("backward")) < 10 and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = st.done_steps("backward")
    assert 10 <= len(done) < exp.steps, "the run should have been killed halfway"
    before = {json.dumps(r, sort_keys=True) for r in st.rows("backward")}

    # resume: only the missing chains (plus the last finished one, for increments) run
    calls = []
    orig = experiment.trajectory

    def spy(T, theta0, order, steps, **kw):
        calls.append(list(steps))
        return orig(T, theta0, order, steps, **kw)

    experiment.trajectory = spy
    try:
        df, _ = experiment.run(exp, progress=False, root=tmp_path)
    finally:
        experiment.trajectory = orig
    missing = sorted(set(range(1, exp.steps + 1)) - done)
    assert calls == [[max(done), *missing]]
    after = {json.dumps(r, sort_keys=True) for r in st.rows("backward")}
    assert before <= after  # finished work kept as it was

    # and the resumed table equals an uninterrupted run
    fresh, _ = experiment.run(exp, progress=False, root=tmp_path / "fresh")
    key = ["order", "step", "metric"]
    a, b = df.sort_values(key).reset_index(drop=True), fresh.sort_values(key).reset_index(drop=True)
    assert (a[key] == b[key]).all().all()
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-6, atol=1e-7)


def paper_experiment(chapter: str, **shrink) -> experiment.Experiment:
    """The paper profile's configuration of an experiment chapter, shrunk in size only."""
    from companion import chapters, cost

    p = {**chapters.defaults(chapters.chapters()[chapter]), **chapters.parameters(chapter, "paper"), **shrink}
    spec = f"{p['switch']}:{p['reset_at']}" if "reset_at" in p else "backward"
    # the book's one builder (none-valued lists and forward_every=0 normalised as chapters do),
    # then the execution fields it leaves out, as the profile sets them
    built = cost.experiment(p)
    run = {k: p[k] for k in ("device", "chain_batch", "executor") if k in p}
    return dataclasses.replace(built, orders=("forward", spec), **run)


CIFAR_CHAPTERS = ["fig2_resnet18", "a3_vgg19", "a3_vgg19_lr", "a4_resnet50", "a5_adamw", "a7_long"]


@pytest.mark.parametrize("chapter", CIFAR_CHAPTERS)
def test_paper_profile_never_substitutes(chapter, tmp_path, monkeypatch):
    """Offline, the paper profile of a CIFAR chapter stops with a clear message instead."""
    from backward_lib import data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exp = paper_experiment(chapter, steps=4, record_every=2, forward_every=2, device="cpu")
    assert exp.substitute is False
    with pytest.raises(data.DataNotFound, match="looked in"):
        experiment.prepare(exp)


@pytest.mark.parametrize("chapter", ["fig3_reset", "a6_delayed", "a2_curves"])
def test_paper_profile_code_path_at_small_scale(chapter, tmp_path):
    """The paper profile's settings (chain batching included) run on the CPU, shrunk."""
    shrink = dict(steps=12, width=0.02, record_every=3, forward_every=3, train_eval=64, test_eval=64,
                  device="cpu", train_size=256)  # fmt: skip
    if chapter != "a2_curves":
        shrink["reset_at"] = 6
    exp = paper_experiment(chapter, **shrink)
    assert exp.chain_batch > 1  # the GPU profile batches chains; here on the CPU
    df, _ = experiment.run(exp, progress=False, root=tmp_path)
    assert not df["diverged"].any() and df["step"].max() == 12
