"""The results store: keyed by configuration and code, resumable, and verified from scratch.

Also the probe's lagged movements and BatchNorm policy, which decide what a store file holds.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_experiment import TINY as EXPERIMENT_TINY

from backward_lib import experiment, models, orders, provenance, store, trajectory, tree
from backward_lib.probe import BN_SUFFIX, NetworkProbe
from companion import verify

# test_experiment's tiny regression experiment, on the decisive-scale grid: pairs and lags
TINY = {**EXPERIMENT_TINY, "steps": 30, "record_every": 5, "forward_every": 1, "anchor_offsets": (1,),
        "lags": (1, 5), "orders": ("forward", "backward", "reset:15")}  # fmt: skip
CLASSIFY = dict(
    dataset="fashion_mnist", model="mlp", depth=2, hidden=24, lr=0.05, batch_size=8, steps=20,
    record_every=4, forward_every=1, anchor_offsets=(1,), lags=(1, 4),
    orders=("forward", "backward"), train_size=256, train_eval=64, test_eval=64,
)  # fmt: skip


def test_key_covers_configuration_code_and_torch(tmp_path):
    exp = experiment.Experiment(**TINY)
    a = store.Store(experiment.store_config(exp), tmp_path, code="abc")
    assert a.path == tmp_path / f"{a.key}.jsonl" and a.path.is_file()
    assert store.read_header(a.path) == {"config": json.loads(json.dumps(experiment.store_config(exp))),
                                         "code": "abc", "torch": torch.__version__}  # fmt: skip
    assert store.Store(experiment.store_config(exp), tmp_path, code="abd").key != a.key
    assert store.Store(experiment.store_config(replace(exp, seed=1)), tmp_path, code="abc").key != a.key
    # the execution path is not part of it
    moved = replace(exp, device="cuda", chain_batch=4, executor="batched")
    assert store.Store(experiment.store_config(moved), tmp_path, code="abc").key == a.key
    # a stored header gives back the experiment that wrote it
    back = experiment.from_config(store.read_header(a.path)["config"], orders=exp.orders)
    assert (
        back == exp and experiment.open_store(back, tmp_path).key == experiment.open_store(exp, tmp_path).key
    )


def test_rows_append_and_a_torn_line(tmp_path):
    st = store.Store({"seed": 3, "x": 1}, tmp_path, code="c")
    st.append(
        "backward", [{"step": 2, "metric": "loss", "value": 0.5}, {"step": 2, "metric": "acc", "value": 1.0}]
    )
    with pytest.raises(ValueError, match="one step"):
        st.append(
            "backward",
            [{"step": 3, "metric": "loss", "value": 0.5}, {"step": 4, "metric": "loss", "value": 1}],
        )
    with st.path.open("a") as f:
        f.write('{"order": "backward", "step": 5, "val')  # a killed writer's last line
    assert st.done_steps("backward") == {2}
    assert store.check(st.path, "c") is None  # a torn tail is resumable, not corrupt
    again = store.Store({"seed": 3, "x": 1}, tmp_path, code="c")
    again.append("backward", [{"step": 5, "metric": "loss", "value": float("nan")}])
    rows = again.rows("backward")
    assert [(r["step"], r["metric"], r["seed"]) for r in rows] == [
        (2, "loss", 3),
        (2, "acc", 3),
        (5, "loss", 3),
    ]
    assert rows[-1]["diverged"] and not rows[0]["diverged"]
    assert store.check(again.path, "c") is None


def test_check_tells_stale_from_edited(tmp_path):
    st = store.Store({"seed": 0}, tmp_path, code="now")
    st.append("forward", [{"step": 1, "metric": "loss", "value": 0.5}])
    assert store.check(st.path, "now") is None
    assert "stale" in store.check(st.path, "later")
    lines = st.path.read_text().splitlines()
    head = json.loads(lines[0])
    st.path.write_text("\n".join([json.dumps({**head, "config": {"seed": 1}}), *lines[1:]]) + "\n")
    assert "hash of its header" in store.check(st.path, "now")
    st.path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    assert "does not parse" in store.check(st.path, "now")


def test_code_digest_ignores_docstrings_not_code():
    def dump(src: str) -> str:
        return ast.dump(provenance._strip_docstrings(ast.parse(src)))

    base = 'def f(x):\n    """Doc."""\n    return x + 1  # why\n'
    assert dump(base) == dump('def f(x):\n    """Other words."""\n\n    return x + 1\n')
    assert dump(base) != dump('def f(x):\n    """Doc."""\n    return x + 2\n')
    assert experiment.CODE == provenance.digest("backward_lib.experiment")
    used = provenance.closure({"backward_lib.experiment"})
    assert {"backward_lib.maps", "backward_lib.probe", "backward_lib.data", "backward_lib.store"} <= used
    assert "backward_lib.analysis.stability" not in used and "backward_lib.describe" not in used


def test_lagged_movements_are_distances_between_iterates_k_apart(tmp_path):
    exp = experiment.Experiment(**CLASSIFY)
    df, prep = experiment.run(exp, progress=False, root=tmp_path)
    ref = dict(trajectory(prep.T, prep.theta0, orders.backward(), experiment.grid(exp, "backward")))
    names = [k for k, _ in prep.model.named_parameters()]

    def dist(m: int, n: int) -> float:
        return tree.distance([ref[n][k] for k in names], [ref[m][k] for k in names])

    got = df[(df.order == "backward")].set_index(["step", "metric"])["value"]
    assert experiment.grid(exp, "backward")[:5] == [1, 2, 5, 6, 9]
    assert got[(6, "increment_lag1")] == pytest.approx(dist(5, 6), rel=1e-12)
    assert got[(9, "increment_lag4")] == pytest.approx(dist(5, 9), rel=1e-12)
    assert got[(9, "increment")] == pytest.approx(dist(6, 9), rel=1e-12)  # the previous recorded
    assert (9, "increment_lag1") not in got.index  # step 8 is not recorded
    fwd = df[(df.order == "forward") & (df.metric == "pred_change_lag4")]
    assert fwd["step"].min() == 5 and len(fwd) == exp.steps - 4  # dense forward: every lag


def test_resume_with_lags_and_gaps_equals_an_uninterrupted_run(tmp_path):
    exp = experiment.Experiment(**TINY)
    clean, _ = experiment.run(exp, progress=False, root=tmp_path / "clean")
    old, part = experiment.open_store(exp, tmp_path / "clean"), experiment.open_store(exp, tmp_path / "part")
    keep = {"forward": {1, 2, 3, 9}, "backward": {1, 6, 16}, "reset:15": {20, 21}}
    for spec, steps in keep.items():
        for n in sorted(steps):
            part.append(spec, [r for r in old.rows(spec) if r["step"] == n])
    again, _ = experiment.run(exp, progress=False, root=tmp_path / "part")
    key = ["order", "step", "metric"]
    a, b = again.sort_values(key).reset_index(drop=True), clean.sort_values(key).reset_index(drop=True)
    assert (a[key] == b[key]).all().all()
    np.testing.assert_array_equal(a["value"], b["value"])


def test_bn_statistics_recomputed_on_the_fixed_subset():
    model = models.get("resnet18", in_shape=(3, 16, 16), num_classes=10, width=0.0625, seed=0)
    x = torch.rand(40, 3, 16, 16)
    y = torch.randint(0, 10, (40,))
    theta = {k: v.detach().clone() for k, v in [*model.named_parameters(), *model.named_buffers()]}
    for k in theta:
        if k.endswith("running_mean"):
            theta[k] += 5.0  # statistics a chain left behind, far from the data's
    probe = NetworkProbe(model, torch.nn.functional.cross_entropy, (x, y), (x, y), chunk=16, bn_stats=32)
    fresh = probe._recomputed(theta)
    # by hand: a copy of the model, statistics reset, cumulative average over the same chunks
    ref = copy.deepcopy(model)
    ref.load_state_dict(theta)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    ref.train()
    with torch.no_grad():
        ref(x[:16]), ref(x[16:32])
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(fresh[k], v, rtol=1e-6, atol=1e-6)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    values = probe(theta, 1)
    assert values["test_loss"] != values["test_loss" + BN_SUFFIX]  # the two policies differ here
    with pytest.raises(ValueError, match="bn_stats"):
        NetworkProbe(model, torch.nn.functional.cross_entropy, (x, y), (x, y), bn_stats=41)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    for seed in (0, 1):
        experiment.run(experiment.Experiment(**{**TINY, "seed": seed}), progress=False, root=root)
    return root


def test_verify_recomputes_a_sample_exactly(written):
    report = verify.verify(written, used={"tiny": [p.stem for p in written.glob("*.jsonl")]})
    assert report.ok, report.problems
    orders_seen = {r["order"] for r in report.checked}
    assert orders_seen == set(TINY["orders"]) and report.files == 2
    late = [r["step"] for r in report.checked if r["order"] == "backward"]
    assert max(late) >= 0.75 * TINY["steps"]  # a late backward chain is among them
    assert report.max_deviation() == 0.0  # the same machine, the same numerics: the same bits
    assert "store verified" in verify.summary(report)


def test_verify_samples_one_step_per_order_and_a_late_backward_one():
    import random

    grid = list(range(10, 2001, 10))
    for seed in range(20):
        chosen = verify._sample({"forward": grid, "backward": grid, "reset:1000": grid}, random.Random(seed))
        assert all(len(steps) == 1 for steps in chosen.values())
        assert chosen["backward"][0] > 1500  # the last quarter: the costliest chains
    both = {"forward": grid, "backward": grid}
    spread = {verify._sample(both, random.Random(s))["forward"][0] for s in range(20)}
    assert min(spread) <= 1000 < max(spread)  # forward's step is drawn from its whole grid
    assert verify._sample(both, random.Random(3)) == verify._sample(both, random.Random(3))  # seeded
    alone = verify._sample({"forward": grid, "reset:1000": grid}, random.Random(0))
    assert all(steps[0] > 1500 for steps in alone.values())  # no backward order: every order late


def test_verify_fails_on_a_tampered_value(written, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(written, root)
    for path in root.glob("*.jsonl"):
        lines = path.read_text().splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            row = json.loads(line)
            row["values"] = {k: v * 1.01 for k, v in row["values"].items()}  # every value off by 1%
            out.append(json.dumps(row))
        path.write_text("\n".join(out) + "\n")
    report = verify.verify(root, used={})
    assert not report.ok and all("recomputed" in p for p in report.problems)


def test_verify_fails_on_stale_missing_and_edited_files(written, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(written, root)
    first, second = sorted(root.glob("*.jsonl"))
    lines = first.read_text().splitlines()
    head = json.loads(lines[0])
    first.write_text("\n".join([json.dumps({**head, "code": "0" * 16}), *lines[1:]]) + "\n")  # edited
    old = store.Store(head["config"], root, code="1" * 16)  # written by other library code: stale
    old.append("forward", [{"step": 1, "metric": "train_loss", "value": 0.5}])
    report = verify.verify(root, used={"tiny": [second.stem, "feedfacefeedface"]}, recompute=False)
    text = "\n".join(report.problems)
    assert f"{first.name}: its name is not the hash of its header" in text
    assert f"{old.path.name}: stale, computed by library code 1111111111111111" in text
    assert "tiny: uses results feedfacefeedface, which the store lacks" in text
    assert len(report.problems) == 3


def test_orders_share_what_they_compute_alike(tmp_path):
    """reset:15 before its reset is backward, and delayed:15 after its switch is reset:15: one
    computation each, copied, with the values an order computed on its own would have."""
    exp = experiment.Experiment(**{**TINY, "orders": ("forward", "backward", "reset:15", "delayed:15")})
    donors = experiment.shared(exp)
    assert donors["forward"] == {} and donors["backward"] == {1: "forward"}  # T_1(θ₀) in every order
    # before r: backward's chains (step 1 is every order's T_1(θ₀), computed by forward; r = 15
    # itself is not on backward's grid); after the switch, once no lagged step reaches back
    # before it (lags 1 and 5), delayed's chains and the steps before them are reset's
    reset_grid, delayed_grid = experiment.grid(exp, "reset:15"), experiment.grid(exp, "delayed:15")
    assert donors["reset:15"] == {1: "forward", **{n: "backward" for n in reset_grid if 1 < n < 15}}
    assert {n for n, d in donors["delayed:15"].items() if d == "reset:15"} == {
        n for n in delayed_grid if n > 20
    }
    together, _ = experiment.run(exp, progress=False, root=tmp_path / "together")
    for spec in ("reset:15", "delayed:15"):
        alone, _ = experiment.run(replace(exp, orders=(spec,)), progress=False, root=tmp_path / spec)
        a = together[together.order == spec].sort_values(["step", "metric"]).reset_index(drop=True)
        b = alone.sort_values(["step", "metric"]).reset_index(drop=True)
        assert (a[["step", "metric"]] == b[["step", "metric"]]).all().all()
        np.testing.assert_array_equal(a["value"], b["value"])


def test_chapters_on_one_configuration_share_its_store_file(tmp_path, monkeypatch):
    """A.2 (forward, backward) first, then Fig. 3 (forward, reset): Fig. 3 loads forward and
    copies backward's chains before its reset, computing only the chains after it."""
    a2 = experiment.Experiment(**{**TINY, "orders": ("forward", "backward")})
    experiment.run(a2, progress=False, root=tmp_path / "shared")
    fig3 = replace(a2, orders=("forward", "reset:15"))
    assert (
        experiment.open_store(fig3, tmp_path / "shared").path
        == experiment.open_store(a2, tmp_path / "shared").path
    )
    calls = []
    orig = experiment.trajectory
    monkeypatch.setattr(experiment, "trajectory", lambda *a, **kw: calls.append(list(a[3])) or orig(*a, **kw))
    both, _ = experiment.run(fig3, progress=False, root=tmp_path / "shared")
    # one pass: reset:15 after r, and r = 15 itself (not on backward's grid) with the steps it
    # and r + 1 need (12, and 11 for r + 1's lag 5); forward and the rest of backward loaded
    assert len(calls) == 1 and min(calls[0]) == 11
    monkeypatch.setattr(experiment, "trajectory", orig)
    alone, _ = experiment.run(fig3, progress=False, root=tmp_path / "alone")
    key = ["order", "step", "metric"]
    a, b = both.sort_values(key).reset_index(drop=True), alone.sort_values(key).reset_index(drop=True)
    assert (a[key] == b[key]).all().all()
    np.testing.assert_array_equal(a["value"], b["value"])


def _rewrite(root, change):
    """Rewrite every stored row of every file under ``root`` with ``change(row) -> values``."""
    for path in root.glob("*.jsonl"):
        lines = path.read_text().splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            row = json.loads(line)
            row["values"] = change(row)
            out.append(json.dumps(row))
        path.write_text("\n".join(out) + "\n")


def test_verify_catches_a_late_value_when_the_first_step_has_the_same_bits(written, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(written, root)
    last = TINY["steps"]
    _rewrite(
        root, lambda r: {k: v * (1.01 if r["step"] >= last // 2 else 1.0) for k, v in r["values"].items()}
    )
    report = verify.verify(root, used={}, everything=True, strict=True)
    assert not report.ok and not report.other_bits
    assert all(int(p.split(" step ")[1].split()[0]) >= last // 2 for p in report.problems)


def test_verify_says_when_a_file_was_written_with_other_bits(written, tmp_path):
    """Later steps that this machine does not reproduce while the first step matches: another
    kind of CPU wrote the file (another trajectory). Reported, not failed, unless strict."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(written, root)
    _rewrite(root, lambda r: {k: v * (1.01 if r["step"] > 1 else 1.0) for k, v in r["values"].items()})
    report = verify.verify(root, used={})
    assert report.ok, report.problems
    assert len(report.other_bits) == 1 and report.unreproduced  # one seed sampled per configuration
    assert "not reproduced on this CPU" in verify.summary(report)
    assert not verify.verify(root, used={}, strict=True).ok
