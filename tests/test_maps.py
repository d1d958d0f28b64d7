"""Network step maps against plain torch loops and torch.optim, BatchNorm buffers, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import backward_lib
from backward_lib import engine, maps, models, orders, tree
from conftest import assert_tree_close, make_problem, max_diff

LR = 0.1


def norm_diff(a: dict, b: dict) -> float:
    return tree.distance(a, b)


# ---------------------------------------------------------------- plain SGD on a real network


def test_backward_network_steps_by_hand(net):
    theta0 = net.theta0()
    saved = {k: v.clone() for k, v in theta0.items()}
    T = net.step_map(maps.sgd(LR))
    back = backward_lib.iterate(T, theta0, orders.backward(), 3)
    fore = backward_lib.iterate(T, theta0, orders.forward(), 3)

    assert_tree_close(back[1], fore[1], atol=0)  # θ̃_1 = θ_1
    assert_tree_close(back[1], net.hand_chain([1], lr=LR), atol=1e-12)
    assert_tree_close(back[2], net.hand_chain([2, 1], lr=LR), atol=1e-12)  # T_1(T_2(θ₀))
    assert_tree_close(fore[2], net.hand_chain([1, 2], lr=LR), atol=1e-12)  # T_2(T_1(θ₀))
    assert_tree_close(back[3], net.hand_chain([3, 2, 1], lr=LR), atol=1e-12)
    assert_tree_close(fore[3], net.hand_chain([1, 2, 3], lr=LR), atol=1e-12)
    assert norm_diff(back[2], fore[2]) > 1e-2  # the orders differ at second order, visibly
    assert norm_diff(net.hand_chain([1], lr=LR), theta0) > 1e-2  # a step really moves θ

    # θ₀ untouched, and θ₀'s tensors are not handed out as iterates
    for k in theta0:
        assert torch.equal(theta0[k], saved[k]), k
        assert back[1][k].data_ptr() != theta0[k].data_ptr()
        assert not theta0[k].requires_grad


def test_network_iterates_not_mutated_after_hand_out(net):
    theta0 = net.theta0()
    T = net.step_map(maps.sgd(LR))
    for order in (orders.forward(), orders.backward(), orders.window(2)):
        handed = [(n, th, tree.clone(th)) for n, th in engine.trajectory(T, theta0, order, 5)]
        for _n, th, snap in handed:
            assert_tree_close(th, snap, atol=0)
        # distinct steps are distinct points (no aliasing of a single buffer)
        assert norm_diff(handed[0][1], handed[-1][1]) > 1e-2, str(order)


def test_forward_recording_matches_hand_for_every_step(net):
    theta0 = net.theta0()
    fore = backward_lib.iterate(net.step_map(maps.sgd(LR)), theta0, orders.forward(), 4)
    for n in range(1, 5):
        assert_tree_close(fore[n], net.hand_chain(range(1, n + 1), lr=LR), atol=1e-12)


# ---------------------------------------------------------------- optimizers vs torch.optim


OPTIMIZERS = [
    pytest.param(
        lambda: maps.adamw(0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
        lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
        id="adamw",
    ),
    pytest.param(
        lambda: maps.adamw(0.003),
        lambda p: torch.optim.AdamW(p, lr=0.003),  # both default betas, eps, weight_decay=0.01
        id="adamw-defaults",
    ),
    pytest.param(
        lambda: maps.sgd(LR, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9),
        id="momentum",
    ),
    pytest.param(
        lambda: maps.sgd(LR, momentum=0.7, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.7, nesterov=True),
        id="nesterov",
    ),
    pytest.param(lambda: maps.sgd(LR), lambda p: torch.optim.SGD(p, lr=LR), id="sgd"),
    pytest.param(
        lambda: maps.get("momentum", LR),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9),
        id="get-momentum",
    ),
    pytest.param(
        lambda: maps.get("nesterov", LR, momentum=0.5),
        lambda p: torch.optim.SGD(p, lr=LR, momentum=0.5, nesterov=True),
        id="get-nesterov",
    ),
    pytest.param(
        lambda: maps.get("adamw", 0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
        id="get-adamw",
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), OPTIMIZERS)
def test_optimizer_chains_equal_torch_optim(net, ours, theirs):
    theta0 = net.theta0()
    T = net.step_map(ours())
    N = 4
    fore = backward_lib.iterate(T, theta0, orders.forward(), N)
    back = backward_lib.iterate(T, theta0, orders.backward(), [3, N])
    reset = backward_lib.iterate(T, theta0, orders.reset(at=2), [N])[N]
    for n in range(1, N + 1):  # forward: one optimizer whose state carries along the pass
        assert_tree_close(fore[n], net.hand_chain(range(1, n + 1), theirs), atol=1e-10)
    # every backward chain starts from fresh optimizer state: a fresh torch optimizer over n, …, 1
    assert_tree_close(back[3], net.hand_chain([3, 2, 1], theirs), atol=1e-10)
    assert_tree_close(back[N], net.hand_chain([4, 3, 2, 1], theirs), atol=1e-10)
    # a reset chain starts at the forward θ_2 with fresh state, then applies batches 4, 3
    start = {k: v.clone() for k, v in fore[2].items()}
    ref = copy.deepcopy(net)
    ref.model.load_state_dict(start)
    assert_tree_close(reset, ref.hand_chain([4, 3], theirs), atol=1e-10)
    # the optimizer state matters: continuing the state differs from restarting it
    assert max_diff(back[3], net.hand_chain([3, 2, 1], lambda p: torch.optim.SGD(p, lr=1e-3))) > 1e-4


def test_momentum_state_matters(net):
    """Backward step 3 with momentum is not a restart-per-step nor a plain-SGD chain."""
    theta0 = net.theta0()
    back3 = backward_lib.iterate(net.step_map(maps.sgd(LR, momentum=0.9)), theta0, orders.backward(), [3])[3]
    assert max_diff(back3, net.hand_chain([3, 2, 1], lr=LR)) > 1e-3


def test_momentum_zero_is_plain_sgd(net):
    theta0 = net.theta0()
    a = backward_lib.iterate(net.step_map(maps.sgd(LR, momentum=0.0)), theta0, orders.backward(), [3])[3]
    assert_tree_close(a, net.hand_chain([3, 2, 1], lr=LR), atol=1e-12)


def test_float32_adamw_close_to_torch():
    prob = make_problem(models.mlp(6, 3, depth=2, width=16, seed=1))
    prob.model.float()
    prob.x = prob.x.float()
    theta0 = prob.theta0()
    out = backward_lib.iterate(prob.step_map(maps.adamw(1e-3)), theta0, orders.backward(), [3])[3]
    ref = prob.hand_chain([3, 2, 1], lambda p: torch.optim.AdamW(p, lr=1e-3))
    assert all(v.dtype == torch.float32 for v in out.values())
    assert_tree_close(out, ref, atol=1e-6)


# ---------------------------------------------------------------- BatchNorm buffers


def test_batchnorm_buffers_travel_with_the_chain(bn_net):
    theta0 = bn_net.theta0()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(theta0)
    saved = {k: v.clone() for k, v in theta0.items()}
    T = bn_net.step_map(maps.sgd(LR))
    fore = backward_lib.iterate(T, theta0, orders.forward(), 3)
    back = backward_lib.iterate(T, theta0, orders.backward(), 3)

    # step 1: running mean = 0.1 · batch mean of the BN input at θ₀ (momentum 0.1, start 0)
    first = bn_net.x[bn_net.schedule[0]]
    with torch.no_grad():
        pre = first @ theta0["0.weight"].T + theta0["0.bias"]
    torch.testing.assert_close(fore[1]["1.running_mean"], 0.1 * pre.mean(0), atol=1e-12, rtol=0)
    torch.testing.assert_close(back[1]["1.running_mean"], fore[1]["1.running_mean"], atol=0, rtol=0)

    # the statistics change along a chain and count the batches of that chain
    for its in (fore, back):
        assert float((its[2]["1.running_mean"] - its[1]["1.running_mean"]).abs().max()) > 1e-3
        assert float((its[3]["1.running_var"] - its[2]["1.running_var"]).abs().max()) > 1e-4
        for n in (1, 2, 3):
            assert int(its[n]["1.num_batches_tracked"]) == n
    # forward and backward iterates at the same step carry different statistics
    for n in (2, 3):
        assert float((fore[n]["1.running_mean"] - back[n]["1.running_mean"]).abs().max()) > 1e-3
        assert float((fore[n]["1.running_var"] - back[n]["1.running_var"]).abs().max()) > 1e-4
    # both equal nn.Module training (buffers included) done by hand
    assert_tree_close(back[3], bn_net.hand_chain([3, 2, 1], lr=LR), atol=1e-12)
    assert_tree_close(fore[3], bn_net.hand_chain([1, 2, 3], lr=LR), atol=1e-12)
    # θ₀'s buffers untouched
    for k in saved:
        assert torch.equal(theta0[k], saved[k]), k
    assert int(theta0["1.num_batches_tracked"]) == 0


def test_params_of_is_a_detached_copy(bn_net):
    theta = maps.params_of(bn_net.model)
    sd = bn_net.model.state_dict()
    assert list(theta) == [k for k, _ in bn_net.model.named_parameters()] + [
        k for k, _ in bn_net.model.named_buffers()
    ]
    for k, v in theta.items():
        assert torch.equal(v, sd[k]) and v.data_ptr() != sd[k].data_ptr() and not v.requires_grad


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: maps.sgd(lr=0), "lr"),
        (lambda: maps.sgd(lr=-0.1), "lr"),
        (lambda: maps.sgd(lr=float("nan")), "lr"),
        (lambda: maps.adamw(lr=0), "lr"),
        (lambda: maps.sgd(0.1, momentum=1.0), "momentum"),
        (lambda: maps.sgd(0.1, nesterov=True), "nesterov"),
        (lambda: maps.adamw(0.1, betas=(0.9, 1.0)), "betas"),
        (lambda: maps.adamw(0.1, weight_decay=-1), "weight_decay"),
        (lambda: maps.get("lion", lr=0.1), "optimizer"),
    ],
)
def test_bad_optimizer_settings(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_network_checks_schedule_and_batch_index(net):
    with pytest.raises(ValueError, match="schedule"):
        maps.network(net.model, net.loss_fn, maps.sgd(0.1), net.x, net.y, net.schedule[0])
    T = net.step_map(maps.sgd(0.1))
    steps = net.schedule.shape[0]
    with pytest.raises(ValueError, match="batch index"):
        backward_lib.iterate(T, net.theta0(), orders.backward(), [steps + 1])


def test_network_accepts_module_loss():
    model = nn.Linear(2, 1).double()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    sched = torch.tensor([[0], [1]])
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    T = maps.network(model, nn.MSELoss(), maps.sgd(0.5), x, y, sched)
    out = backward_lib.iterate(T, maps.params_of(model), orders.forward(), [1])[1]
    # loss (w·x + b − y)² at 0 with x = e₁, y = 1: gradient −2 on w₁ and on b; step 0.5 → +1
    torch.testing.assert_close(out["weight"], torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(out["bias"], torch.tensor([1.0], dtype=torch.float64))
