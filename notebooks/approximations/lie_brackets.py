# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lemma C.1 and Theorem C.2: backward = forward + Lie brackets
#
# Appendix C of the paper {cite}`dherin2025iteration` expands a composition of step maps in
# powers of the learning rate: every order of the same maps agrees to first order, and the
# backward iterate differs from the forward one by a sum of Lie brackets at second order.
# Adding that sum to the forward iterate gives an *approximate backward iterate*
# (Definition C.3) whose error should be third order in $h$. The paper adds that "in
# real-life cases higher orders beyond $h^2$ play a significant role". This chapter checks
# the orders on a smooth network, with the sign convention stated and tested, and then
# measures how large the neglected terms are at the paper's learning rate on the
# Fashion-MNIST MLP {cite}`xiao2017fashion`.

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seed = 0  # model initialization and batch schedule
width = 1.0  # multiplies the 500 hidden units (paper: 5 × 500)
depth = 5  # hidden layers (paper: 5)
init = "he"  # He-normal weights (the paper does not state its initialization)
batch_size = 8  # paper: 8
lr = 0.001  # the paper's learning rate for the Fashion-MNIST MLP
train_size = 20000  # training examples the batches are drawn from (float64 copy)
chain_lengths = [2, 4, 8, 16]  # n of the order check
h_min, h_max, h_points = 1e-5, 1e-1, 9  # learning rates of the order check
fit_points = 4  # the smallest learning rates enter the slope fits
steps = 2000  # steps along training at the paper's learning rate
record_points = 14  # log-spaced recorded steps along training
sweep_n = 8  # chain length of the learning-rate sweep at the end
sweep_h_min, sweep_points = 1e-7, 13  # its learning rates: [sweep_h_min, h_max]

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "chain_lengths": "list of int >= 2",
    "h_min": "float > 0",
    "h_max": "float > 0",
    "h_points": "int >= 2",
    "fit_points": "int >= 2",
    "record_points": "int >= 1",
    "sweep_n": "int >= 2",
    "sweep_h_min": "float > 0",
    "sweep_points": "int >= 2",
}
rules = [
    "h_min < h_max",
    "sweep_h_min < h_max",
    "fit_points <= h_points",
    "batch_size <= train_size",
]

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

import backward_lib as bl
from backward_lib import experiment, maps, models, orders, record, tree
from backward_lib.analysis import approx
from companion import claims, plots, runcard

plots.use_style()
xent = torch.nn.functional.cross_entropy
torch.set_default_dtype(torch.float64)
t_start = time.perf_counter()
exp = experiment.Experiment(
    width=width, depth=depth, init=init, lr=lr, batch_size=batch_size,
    steps=max(steps, max(chain_lengths)), train_size=train_size, seed=seed,
    train_eval=1, test_eval=1,
)  # fmt: skip
prep = experiment.prepare(exp)  # data subset, schedule and ReLU model as elsewhere
x, y, sched = prep.x.double(), prep.y, prep.T.schedule
hidden = round(500 * width)
nets = {
    "ReLU": prep.model.double(),  # the paper's MLP
    "tanh": models.mlp(784, 10, depth, hidden, activation="tanh", init=init, seed=seed),
}
nets["tanh"].double()
theta0 = {name: maps.params_of(m) for name, m in nets.items()}
n_params = sum(p.numel() for p in nets["ReLU"].parameters())
runcard.show(
    profile,
    "Lemma C.1, Theorem C.2 and Definition C.3 (Appendix C) of Dherin et al. (2025)",
    data=f"Fashion-MNIST, {train_size} training examples (seeded subset), batches of "
    f"{batch_size}, float64",
    model=f"MLP {depth}×{hidden} ({n_params:,} parameters), init {init}; ReLU (the "
    "paper's) and tanh (smooth) with the same weights",
    scale=f"order check: n ∈ {chain_lengths}, {h_points} learning rates in "
    f"[{h_min:g}, {h_max:g}]; along training: lr {lr}, {steps} steps",
    seeds=f"{seed}",
    device=runcard.device_name("cpu"),
)

# %% [markdown]
# ## The expansion and the sign convention
#
# Write every step as $T_n(\theta) = \theta + h V_n(\theta)$; for SGD $V_n = -g_n$ with
# $g_n = \nabla L_{B_n}$, and the Jacobian is $V_n' = -H_n$, the Hessian of batch $n$'s
# loss. Lemma C.1: applying $T_{i_1}$ first and $T_{i_k}$ last,
#
# $$
# T_{i_k} \circ \dots \circ T_{i_1}(\theta) = \theta + h \sum_a V_{i_a}(\theta)
#   + h^2 \sum_{a<b} V_{i_b}'(\theta)\, V_{i_a}(\theta) + O(h^3):
# $$
#
# each later map's Jacobian acts on each earlier field. Forward applies $1, \dots, n$,
# backward $n, \dots, 1$, so with everything at $\theta_0$ (Theorem C.2)
#
# $$
# \tilde\theta_n - \theta_n = h^2 \sum_{i<j\le n} \big(V_i' V_j - V_j' V_i\big)
#  = h^2 \sum_{i<j \le n} [V_j, V_i] + O(h^3),
# \qquad [X, Y] = Y'X - X'Y,
# $$
#
# and for SGD the approximate backward iterate of Definition C.3 is
#
# $$
# \hat\theta_n = \theta_n + h^2 C_n, \qquad
# C_n = \sum_{i<j\le n} \big(H_i g_j - H_j g_i\big)(\theta_0).
# $$
#
# $C_n$ does not depend on $h$: it is computed once per $n$ with exact Hessian-vector
# products (`approx.BracketCorrection`, Corollary C.4). If the convention were the other
# way round, $\theta_n - h^2 C_n$ would be the third-order approximation; the check below
# tells the two apart.

# %%
losses = {name: approx.ExampleLoss(m, xent, x, y) for name, m in nets.items()}
correction = approx.BracketCorrection(losses["tanh"], theta0["tanh"], sched)
C = {}
for n in chain_lengths:
    correction.advance(n)
    C[n] = correction.value()
zero = tree.tree_map(torch.zeros_like, C[chain_lengths[0]])
print("‖C_n‖:", {n: f"{tree.distance(c, zero):.3g}" for n, c in C.items()})

# %% [markdown]
# ## Orders in $h$ on a smooth network
#
# Lemma C.1 is a Taylor expansion: it needs smooth vector fields. The tanh MLP has them.
# For each $h$ the engine computes $\theta_n$ (forward order) and $\tilde\theta_n$
# (backward order) on the same batches; we measure the gap $\|\tilde\theta_n - \theta_n\|$,
# the residual $\|\tilde\theta_n - \hat\theta_n\|$ and the residual with the sign flipped.


# %%
def distances(net, C, h, ns):
    """{n: (gap, residual, residual with the sign of C flipped)} at learning rate h."""
    T = maps.network(nets[net], xent, maps.sgd(h), x, y, sched)
    fwd = bl.iterate(T, theta0[net], orders.forward(), ns)
    bwd = bl.iterate(T, theta0[net], orders.backward(), ns)
    minus = {n: tree.tree_map(torch.neg, C[n]) for n in ns}
    return {
        n: (
            tree.distance(bwd[n], fwd[n]),
            tree.distance(bwd[n], approx.corrected(fwd[n], C[n], h)),
            tree.distance(bwd[n], approx.corrected(fwd[n], minus[n], h)),
        )
        for n in ns
    }


h_grid = np.geomspace(h_min, h_max, h_points)
rows = [
    {"h": h, "n": n, "gap": d[0], "residual": d[1], "flipped": d[2]}
    for h in h_grid
    for n, d in distances("tanh", C, h, chain_lengths).items()
]
order_df = pd.DataFrame(rows)
order_df.pivot_table(index="h", columns="n", values=["gap", "residual"]).map(
    "{:.2e}".format
)


# %%
def slope(df, col, n):
    """Least-squares slope of log(col) against log h over the fit_points smallest h."""
    d = df[df["n"] == n].nsmallest(fit_points, "h")
    return np.polyfit(np.log(d["h"]), np.log(d[col]), 1)[0]


slopes = pd.DataFrame(
    {
        c: [slope(order_df, c, n) for n in chain_lengths]
        for c in ("gap", "residual", "flipped")
    },
    index=pd.Index(chain_lengths, name="n"),
)
slopes.round(3)

# %% mystnb={"figure": {"caption": "Against the learning rate h (log–log), one line per chain length n: left, the gap between backward and forward iterate (slope 2); right, the residual after the bracket correction (slope 3; dotted, sign flipped: slope 2).", "name": "fig-lie_brackets-order-in-h"}, "image": {"alt": "Two log-log panels of distances against the learning rate, one line per chain length, with reference slopes 2 and 3."}}
colors = dict(
    zip(chain_lengths, sns.color_palette("viridis", len(chain_lengths)), strict=True)
)
fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 3.0), sharey=True)
for ax, col, p in ((axes[0], "gap", 2), (axes[1], "residual", 3)):
    for n in chain_lengths:
        d = order_df[order_df["n"] == n]
        ax.loglog(d["h"], d[col], "o-", ms=3, color=colors[n], label=f"n = {n}")
        if col == "residual":
            ax.loglog(d["h"], d["flipped"], ":", color=colors[n], lw=1.3)
    ref = order_df[order_df["n"] == chain_lengths[-1]].nsmallest(1, "h")
    hh = np.array([h_min, h_max])
    ax.loglog(hh, float(ref[col].iloc[0]) * (hh / h_min) ** p, "k--", lw=0.8,
              label=f"slope {p}")  # fmt: skip
    ax.set_xlabel("learning rate h")
axes[0].set(ylabel="distance", title=r"gap $\|\tilde\theta_n - \theta_n\|$")
axes[1].set(
    title=r"residual $\|\tilde\theta_n - \hat\theta_n\|$ (dotted: sign flipped)"
)
axes[0].legend(handles=axes[0].lines[-1:], loc="upper left", fontsize="small")
axes[1].legend(loc="upper left", fontsize="small")
plt.show()

# %% [markdown]
# The gap falls with slope 2 and the residual with slope 3 as $h \to 0$, for every $n$; with
# the sign flipped (dotted) the residual keeps slope 2, so the convention above is the right
# one. At larger $h$ the residual bends towards the gap: the neglected terms catch up with the
# second-order ones sooner for longer chains.
#
# ## At the paper's learning rate, along training
#
# Now $h$ = 0.001 and $n$ grows along a training run, for the paper's ReLU network and for
# the tanh network with the same weights. The correction is accumulated once per network
# through all steps (`mode="deferred"`: one batch HVP per step, one HVP over the examples
# seen at each recorded step).

# %%
grid = sorted(set(record.log_grid(steps, record_points)) | {sweep_n})
along, C_train = [], {}
for net in nets:
    corr = approx.BracketCorrection(losses[net], theta0[net], sched, mode="deferred")
    T = maps.network(nets[net], xent, maps.sgd(lr), x, y, sched)
    bwd = dict(bl.trajectory(T, theta0[net], orders.backward(), grid))
    for n, theta in bl.trajectory(T, theta0[net], orders.forward(), grid):
        corr.advance(n)
        hat = approx.corrected(theta, corr.value(), lr)  # θ̂_n = θ_n + h² C_n
        C_train[net, n] = corr.value()
        along.append({"net": net, "n": n, "gap": tree.distance(bwd[n], theta),
                      "residual": tree.distance(bwd[n], hat)})  # fmt: skip
along = pd.DataFrame(along)
along["ratio"] = along["residual"] / along["gap"].where(along["n"] > 1)  # gap_1 = 0
along[along["n"] > 1].pivot_table(index="n", columns="net", values="ratio").round(3).T

# %% mystnb={"figure": {"caption": "Distance to the backward iterate along training (log–log), for the ReLU (left) and tanh (right) MLP: the forward iterate (blue) and the corrected iterate (vermillion). On ReLU the correction removes almost nothing.", "name": "fig-lie_brackets-along-training"}, "image": {"alt": "Two log-log panels, ReLU and tanh networks, of the distance to the backward iterate against the step, for the forward and for the corrected iterate."}}
fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.9), sharey=True)
for ax, net in zip(axes, nets, strict=True):
    d = along[(along["net"] == net) & (along["n"] > 1)]
    ax.loglog(d["n"], d["gap"], "o-", ms=3, color=plots.ORDER_COLORS["forward"],
              label=r"$\|\tilde\theta_n - \theta_n\|$ (forward)")  # fmt: skip
    ax.loglog(d["n"], d["residual"], "s-", ms=3, color=plots.ORDER_COLORS["backward"],
              label=r"$\|\tilde\theta_n - \hat\theta_n\|$ (corrected)")  # fmt: skip
    ax.set(title=f"{net} MLP, h = {lr}", xlabel="step n")
axes[0].set_ylabel("distance to the backward iterate")
axes[1].legend(loc="lower right", fontsize="small")
plt.show()

# %% [markdown]
# For the ReLU network the correction removes almost nothing at any step: the corrected
# iterate is as far from the backward one as the forward iterate is. For the tanh network
# it removes most of the gap over the first steps and then stops helping, and later makes
# things worse.
#
# ## Why: kinks, and the size of $nh\|H\|$
#
# Two things limit the expansion. A ReLU network's gradient jumps wherever a pre-activation
# changes sign; Lemma C.1 needs $C^2$ fields, and the autograd Hessian only sees the smooth
# pieces. A step of size $h$ crosses activation boundaries once $h$ exceeds the smallest
# margin of the batches' pre-activations, and from there on the jumps, not the brackets,
# dominate the gap. For a smooth network the series is one in $nh\lambda_{\max}$ roughly,
# with $\lambda_{\max}$ the largest Hessian eigenvalue: below we estimate $\lambda_{\max}$
# of the training loss at $\theta_0$ on the examples of the first batches by power
# iteration on exact HVPs.


# %%
def top_eigenvalue(net, idx, iters=30):
    f = losses[net].batch(theta0[net], idx)
    p = losses[net].variables(theta0[net])
    zero = tree.tree_map(torch.zeros_like, p)
    v = tree.tree_map(torch.randn_like, p)
    for _ in range(iters):
        norm = tree.distance(v, zero)
        v = tree.tree_map(lambda t: t / norm, v)
        hv = approx.hvp(f, p, v)
        lam = sum(
            float((a * b).sum())
            for a, b in zip(tree.leaves(v), tree.leaves(hv), strict=True)
        )
        v = hv
    return lam


torch.manual_seed(seed)
first = sched[: 2 * max(chain_lengths)].flatten()
lam_max = {net: top_eigenvalue(net, first) for net in nets}
print({net: f"λ_max ≈ {v:.1f}, 1/(h λ_max) ≈ {1 / (lr * v):.0f} steps"
       for net, v in lam_max.items()})  # fmt: skip

# %% [markdown]
# The sweep over $h$ at a fixed $n$ = `sweep_n` shows both limits. We also count the
# pre-activations (ReLU inputs, on the examples of batches $1..n$) whose sign differs
# between $\theta_0$ and the forward or backward iterate: kinks crossed by the chains.


# %%
def kinks_crossed(net, thetas, idx):
    """ReLU inputs on examples idx whose sign differs from their sign at θ₀."""
    signs = []
    relus = [m for m in nets[net].modules() if isinstance(m, torch.nn.ReLU)]
    hooks = [
        m.register_forward_hook(lambda m, i, o: signs.append(i[0] > 0)) for m in relus
    ]
    with torch.no_grad():
        for th in [theta0[net], *thetas]:
            torch.func.functional_call(nets[net], th, (x[idx],))
    for hook in hooks:
        hook.remove()
    L = len(relus)
    return sum(
        int((signs[k * L + i] != signs[i]).sum()) for k in (1, 2) for i in range(L)
    )


sweep = []
idx = sched[:sweep_n].flatten()
for net in nets:
    C_n = {sweep_n: C_train[net, sweep_n]}
    for h in np.geomspace(sweep_h_min, h_max, sweep_points):
        T = maps.network(nets[net], xent, maps.sgd(h), x, y, sched)
        ends = [bl.iterate(T, theta0[net], o, [sweep_n])[sweep_n]
                for o in (orders.forward(), orders.backward())]  # fmt: skip
        gap, res, _ = distances(net, C_n, h, [sweep_n])[sweep_n]
        kinks = kinks_crossed(net, ends, idx) if net == "ReLU" else 0
        sweep.append(
            {"net": net, "h": h, "gap": gap, "ratio": res / gap, "kinks": kinks}
        )
sweep = pd.DataFrame(sweep)
relu = sweep[sweep["net"] == "ReLU"].set_index("h")
relu[["gap", "ratio", "kinks"]].T.map("{:.3g}".format)

# %% mystnb={"figure": {"caption": "Residual over gap against the learning rate h (log–log) for the tanh and ReLU MLPs; dotted, the paper's h. For tanh the ratio falls like h; for ReLU it jumps to 1 once kinks are crossed.", "name": "fig-lie_brackets-ratio"}, "image": {"alt": "Log-log plot of the ratio of the corrected residual to the forward gap against the learning rate, for a tanh and a ReLU network."}}
fig, ax = plt.subplots(figsize=(plots.WIDTH, 2.8))
for net, marker in zip(nets, "os", strict=True):
    d = sweep[sweep["net"] == net]
    ax.loglog(d["h"], d["ratio"], marker + "-", ms=3, label=f"{net} MLP")
ax.axvline(lr, color="gray", ls=":", lw=1, label=f"paper's h = {lr}")
ax.axhline(1, color="black", lw=0.6)
ax.set(xlabel="learning rate h", ylabel="residual / gap",
       title=f"How much of the gap the correction leaves, n = {sweep_n}")  # fmt: skip
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# For the tanh network the ratio falls like $h$ (third order over second order) down to
# round-off. For the ReLU network it follows the tanh curve while no pre-activation changes
# sign within the $n$ steps, and jumps to 1 as soon as a few do: the gap grows by two
# orders of magnitude between consecutive learning rates there. A gradient jump of size
# $O(1)$ carried by a step of size $h$ is a first-order effect, which no bracket describes.
# At the paper's $h$ = 0.001 the chains cross thousands of kinks.

# %% [markdown]
# ## Claims
#
# Checks: the fitted slopes over the `fit_points` smallest learning rates (1.5 decades where
# the next-order term is below a percent of the leading one, so a fitted slope moves by less
# than 0.02) must be 2 for the gap and 3 for the residual within 0.1, for every $n$; the
# flipped sign must leave slope 2 (within 0.1), which a wrong sign convention would not; at
# $n = 1$ there is no bracket, so $\hat\theta_1 = \theta_1 = \tilde\theta_1$ to round-off.
# Findings: the paper says higher orders matter at usual learning rates. At $h$ = 0.001 we
# call the approximation useless where it leaves at least half the gap,
# $\|\tilde\theta_n - \hat\theta_n\| \ge \tfrac12 \|\tilde\theta_n - \theta_n\|$ at the last
# recorded step. One more check for the ReLU network: at the learning rates where no kink is
# crossed, the correction must work as for a smooth network (residual/gap ≤ 0.01).

# %%
last = along[along["n"] == along["n"].max()].set_index("net")
one = along[along["n"] == 1].set_index("net")
results = [
    *[claims.close("Theorem C.2", f"gap slope in h, n = {n}", slopes.loc[n, "gap"], 2.0, 0.1)
      for n in chain_lengths],
    *[claims.close("Definition C.3", f"residual slope in h, n = {n}",
                   slopes.loc[n, "residual"], 3.0, 0.1) for n in chain_lengths],
    *[claims.close("Theorem C.2", f"sign flipped: residual slope stays 2, n = {n}",
                   slopes.loc[n, "flipped"], 2.0, 0.1) for n in chain_lengths],
    claims.at_most("Definition C.3", "n = 1: corrected = forward = backward",
                   float(one[["gap", "residual"]].to_numpy().max()), 1e-12),
    claims.finding("Appendix C", f"ReLU MLP, h = {lr}: residual/gap at the last step "
                   "(higher orders matter: ≥ ½)", last.loc["ReLU", "ratio"], 0.5, "at_least"),
    claims.finding("Appendix C", f"tanh MLP, h = {lr}: residual/gap at the last step "
                   "(higher orders matter: ≥ ½)", last.loc["tanh", "ratio"], 0.5, "at_least"),
]  # fmt: skip
smooth = relu[relu["kinks"] == 0]
if len(smooth):
    results.insert(12, claims.at_most(
        "Lemma C.1", f"ReLU MLP, h ≤ {smooth.index.max():.0e} (no kink crossed): "
        "residual/gap", smooth["ratio"].max(), 0.01))  # fmt: skip
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)
