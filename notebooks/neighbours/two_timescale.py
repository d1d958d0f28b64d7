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
# # The two-timescale regime: online SGD follows its slow limit
#
# Marion & Berthier {cite}`marion2023twotimescale` prove that a one-hidden-layer network on
# $[0, 1]$ trained by online SGD converges to a global minimum when its inner weights (the
# neurons' positions) learn much more slowly than its outer weights, and show by simulation
# that SGD follows the *two-timescale limit* in that regime but can fail outside it. This
# chapter reproduces their simulations: a run in the two-timescale regime beside its limit, the
# failure case $\varepsilon = 1$, and the final error over $\varepsilon$. It then asks the
# question of this book {cite}`dherin2025iteration`: what does the backward composition of the
# same online SGD maps do there?

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seeds = [0]  # two-timescale runs (the paper shows one)
target = (
    "paper"  # "paper": f* as the paper states it; "code": the authors' code's heights
)
m = 20  # moving neurons, plus the fixed bias neuron
eta = 1e-2  # transition width η of σ (the paper's table; the authors' code: 4e-3)
noise = 1.0  # label noise U[-noise, noise]
h = 1e-5  # step of the outer weights a
eps = 2e-5  # the positions' step is ε h
tau = 0.035  # final slow time τ, i.e. p ε h after p steps (1.75e8 steps)
fail_seeds = [0]  # runs of the failure case, ε 1
fail_h = 1e-5  # step h of the failure case
fail_tau = 10.0  # its final slow time (1e6 steps)
sweep_eps = [0.01, 0.1, 1.0]  # ε of the final-error boxplot
sweep_h = 1e-5  # step h of the sweep: one value, or one per ε
sweep_tau = 3.0  # final slow time of every sweep run
repeats = 20  # sweep runs per ε (seeds 100, 101, …)
window = 2**22  # W of the windowed backward order (book question)
record_points = 40  # log-spaced recorded steps of the error curves
limit_dt = 1e-5  # Euler step of the limit ODE (slow time)

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "target": "one of paper, code",
    "m": "int >= 1",
    "eta": "float > 0",
    "noise": "float >= 0",
    "h": "float > 0",
    "eps": "float > 0",
    "tau": "float > 0",
    "fail_seeds": "list of int in [0, 2**31)",
    "fail_h": "float > 0",
    "fail_tau": "float > 0",
    "sweep_eps": "list of float > 0",
    "sweep_h": "float > 0 or list of float > 0",
    "sweep_tau": "float > 0",
    "repeats": "int >= 1",
    "window": "int >= 1",
    "record_points": "int >= 2",
    "limit_dt": "float > 0",
}

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from scipy import stats

import backward_lib as bl
from backward_lib import orders, record
from backward_lib.neighbours import two_timescale as tt
from companion import claims, plots, runcard

plots.use_style()
f_star = {"paper": tt.PAPER, "code": tt.CODE}[target]
rows = pd.DataFrame(
    [("two-timescale", s, h, eps, tau) for s in seeds]
    + [("ε = 1 (failure)", s, fail_h, 1.0, fail_tau) for s in fail_seeds]
    + [(f"ε = {e:g}", 100 + k, hh, e, sweep_tau)
       for e, hh in zip(sweep_eps, np.broadcast_to(sweep_h, len(sweep_eps)), strict=True)
       for k in range(repeats)],
    columns=["group", "seed", "h", "eps", "tau"],
)  # fmt: skip
rows["end"] = [
    tt.steps_for(t, e, hh) for t, e, hh in zip(rows.tau, rows.eps, rows.h, strict=True)
]
groups = rows.groupby("group", sort=False)["end"].agg(["first", "size"])
runcard.show(
    profile,
    "Section 6 (figures of the two-timescale and ε = 1 runs, final error against ε) "
    "of Marion & Berthier (2023)",
    data=f"online samples x ~ U[0, 1], y = f*(x) + U[−{noise:g}, {noise:g}]; "
    f"target '{target}' (values {f_star.values} cut at {f_star.jumps})",
    model=f"{m} smooth-step neurons of width η = {eta:g} plus a bias",
    runs=f"two-timescale: h = {h:g}, ε = {eps:g}, τ = {tau:g}; failure: h = {fail_h:g}, "
    f"ε = 1, τ = {fail_tau:g}; sweep: h = {sweep_h}, ε ∈ {sweep_eps}, τ = {sweep_tau:g}",
    steps="; ".join(
        f"{g}: {r['first']:,} × {r['size']} run(s)" for g, r in groups.iterrows()
    ),
    paper_settings="h = 1e-5 in all runs; two-timescale ε = 2e-5, τ = 0.035 (1.75e8 steps); "
    "failure τ = 10 (1e6 steps); sweep τ = 3, 20 runs per ε",
    seeds=f"{seeds} (two-timescale), {fail_seeds} (failure), 100–{99 + repeats} (sweep)",
    device=runcard.device_name("cpu"),
)

# %% [markdown]
# ## The model and one SGD step
#
# Neuron $j$ is a smooth step of width $\eta$ at position $u_j$; neuron 0 is a bias:
#
# $$
# f(x) = \sum_{j=0}^{m} a_j\, \sigma\!\Big(\frac{x - u_j}{\eta}\Big), \qquad
# \sigma(z) = \begin{cases} 0 & z \le -\tfrac12 \\ s^2(3 - 2s),\ s = z + \tfrac12 & |z| < \tfrac12
# \\ 1 & z \ge \tfrac12 \end{cases}, \qquad u_0 = -\eta/2 .
# $$
#
# The paper only asks for a smooth step; we take the cubic smoothstep, which is $C^1$ with
# $\sigma'(z) = 6s(1-s)$. The authors' code uses a linear ramp and its derivative $1/\eta$
# on the ramp; our gradient is the exact derivative of our $\sigma$. Each step draws
# $x \sim U[0, 1]$, $y = f^*(x) + \xi$ with $\xi \sim U[-1, 1]$, and with $r = 2(f(x) - y)$
#
# $$
# a_j \leftarrow a_j - h\, r\, \sigma_j, \qquad
# u_j \leftarrow u_j + \varepsilon h\, r\, a_j\, \sigma'_j / \eta ,
# $$
#
# the gradient of $(y - f(x))^2$ with step $h$ on $a$ and $\varepsilon h$ on $u$. After $p$
# steps the slow time is $\tau = p\varepsilon h$. The library's map does this in closed form for
# all runs at once (a dozen numpy operations per step, whatever the number of runs); here it
# is compared with autograd on one step from a random state.

# %%
T = tt.online_sgd(
    f_star, eta, rows.h.tolist(), rows.eps.tolist(), rows.seed.tolist(), noise=noise
)
theta0 = tt.init(
    rows.seed.tolist(), m, eta
)  # [2, runs, m + 1]: a = 0, u sorted U[0, 1]
probe = theta0.clone()
probe[0] = torch.randn(
    probe.shape[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
)
x1, y1 = tt.Draws(f_star, rows.seed.tolist()).sample(1)
probe[1, :, 3] = torch.from_numpy(x1) + 0.2 * eta  # neuron 3 inside its transition
a, u = probe[0].clone().requires_grad_(True), probe[1].clone().requires_grad_(True)
f1 = (a * tt.smooth_step((torch.from_numpy(x1)[:, None] - u) / eta)).sum(1)
ga, gu = torch.autograd.grad(((torch.from_numpy(y1) - f1) ** 2).sum(), (a, u))
hs, es = (torch.tensor(rows[c].to_numpy())[:, None] for c in ("h", "eps"))
stepped, _ = T.update(probe.clone(), None, 1)
autograd_gap = max(float((stepped[0] - probe[0] + hs * ga).abs().max()),
                   float((stepped[1] - probe[1] + es * hs * gu).abs().max()))  # fmt: skip
print(f"closed-form step − autograd step: {autograd_gap:.1e}")

# %% [markdown]
# ## One forward pass for every run
#
# All runs (the two-timescale runs, the failure case and the sweep) are rows of one state and
# advance together through the engine's forward order; each run is recorded up to its own last
# step. Recorded: a log-spaced grid for the error curves, every sweep run's last step, and the
# steps the book's question needs below.

# %%
tt_end, fail_end = (
    int(rows.end[rows.group == "two-timescale"].max()),
    int(rows.end.iloc[len(seeds)]),
)
r0 = window * max(
    tt_end // window - 1, 0
)  # a window [r0, r0 + W] that ends before tt_end
lags = [2**k for k in range(int(np.log2(window)))]  # j = 1, 2, 4, …, W/2
inside = sorted({r0 + j for j in lags} | {r0 + 2 * j for j in lags} | ({r0} - {0}))
snap = [1] + [max(1, round(f * tt_end)) for f in (0.1, 0.3, 1.0)]
curve = sorted(
    {
        *record.log_grid(tt_end, record_points),
        *record.log_grid(fail_end, record_points),
        *snap,
    }
)
grid = sorted(set(curve) | set(rows.end) | set(inside))
t_run = time.perf_counter()
fwd = dict(bl.trajectory(T, theta0, orders.forward(), grid))
t_run = time.perf_counter() - t_run
print(f"{grid[-1]:,} steps of {len(rows)} runs in {t_run:.1f} s: {grid[-1] / t_run:,.0f} steps/s, "
      f"{grid[-1] * len(rows) / t_run:,.0f} run-steps/s")  # fmt: skip

# %% [markdown]
# ## The two-timescale limit
#
# As $\varepsilon \to 0$ the outer weights sit at their optimum for the current positions, and
# as $\eta \to 0$ that optimum is the best piecewise-constant fit of $f^*$ on the cells cut by
# the neurons: the mean of $f^*$ on each cell. The positions then descend the risk
# $R(u) = \int_0^1 (f^* - f_u)^2$ in slow time. Moving $u_j$ by $du$ replaces the value $f_R$
# right of it by the value $f_L$ left of it on a length $du$, so
#
# $$
# \frac{du_j}{d\tau} = -\frac{\partial R}{\partial u_j}
#   = \big(f_R - f^*(u_j)\big)^2 - \big(f_L - f^*(u_j)\big)^2 .
# $$
#
# A neuron whose two cells lie on one plateau does not move; the two neurons flanking a jump of
# height $\Delta$ at distances $d_l, d_r$ move toward it at speeds $(\Delta d_r/(d_l+d_r))^2$
# and $(\Delta d_l/(d_l+d_r))^2$, and the nearer one reaches it in finite time. We integrate
# this with Euler steps from each run's initial positions (a neuron that would cross a jump
# stops on it) and check the velocity against finite differences of $R$.

# %%
taus = {n: n * eps * h for n in curve}
limit = {
    s: dict(
        zip(
            curve,
            tt.limit_path(
                f_star, theta0[1, r, 1:].numpy(), list(taus.values()), limit_dt
            ),
            strict=True,
        )
    )
    for r, s in enumerate(seeds)
}
u_test = theta0[1, 0, 1:].numpy()
fd = [(tt.limit_risk(f_star, u_test + d * e) - tt.limit_risk(f_star, u_test - d * e)) / (2 * d)
      for d, e in [(1e-7, np.eye(m)[j]) for j in range(m)]]  # fmt: skip
velocity_gap = float(np.max(np.abs(tt.limit_velocity(f_star, u_test) + np.array(fd))))
print(f"|velocity + finite-difference ∂R/∂u| ≤ {velocity_gap:.1e}")

# %% [markdown]
# ## SGD beside its limit
#
# Snapshots of the two-timescale run (first seed): target, SGD's fitted function with its
# neurons (ticks at the bottom) and the limit's piecewise-constant fit with its neurons (ticks at
# the top).

# %% mystnb={"figure": {"caption": "Two-timescale run at four steps: the target f* (black), SGD's fit (blue) and the two-timescale limit (orange, dashed); ticks, the neurons' positions.", "name": "fig-two_timescale-snapshots"}, "image": {"alt": "Four panels of functions on [0, 1] at increasing steps: the piecewise constant target, the SGD network and the limit, with tick marks for neuron positions."}}
xs = torch.linspace(0, 1, 1001, dtype=torch.float64)
low, high = min(f_star.values) - 0.7, max(f_star.values) + 0.7  # rows of neuron ticks
fig, axes = plt.subplots(2, 2, figsize=(plots.WIDTH, 4.2), sharex=True, sharey=True)
for ax, n in zip(axes.flat, snap, strict=True):
    th = fwd[n][:, 0]
    ax.plot(xs, f_star(xs.numpy()), color="black", lw=1.2, label="target $f^*$")
    ax.plot(
        xs,
        tt.network(xs, th[0][None], th[1][None], eta)[0],
        color=plots.ORDER_COLORS["forward"],
        label="SGD",
    )
    edges, values = tt.best_fit(f_star, limit[seeds[0]][n])
    ax.stairs(values, edges, baseline=None, color=plots.OKABE_ITO["orange"], ls="--",
              label="two-timescale limit")  # fmt: skip
    ax.plot(th[1, 1:], np.full(m, low), "|", color=plots.ORDER_COLORS["forward"], ms=8)
    ax.plot(edges[1:-1], np.full(m, high), "|", color=plots.OKABE_ITO["orange"], ms=8)
    ax.set_title(f"step {n:,} (τ = {n * eps * h:.3g})")
plots.legend_below(fig, ncol=3, fontsize="small")
axes[1, 0].set_xlabel("x")
axes[1, 1].set_xlabel("x")
fig.suptitle(f"Two-timescale run: h = {h:g}, ε = {eps:g}, η = {eta:g}")
plt.show()

# %% [markdown]
# The L2 error $\int_0^1 (f^* - f)^2$ of SGD (midpoint rule, 4000 cells) and the limit's risk
# $R(u(\tau))$ on the same axes. The limit starts with its outer weights at their optimum,
# where SGD starts from $a = 0$ and needs some $1/(h\lambda)$ steps to get there: the early gap is
# that transient. The limit has $\eta \to 0$; with $\eta > 0$ even a neuron
# sitting exactly on a jump of height $\Delta$ leaves the error
# $\Delta^2 \eta \int_{-1/2}^{1/2} (\mathbb 1_{z>0} - \sigma(z))^2 dz = 0.0589\,\Delta^2\eta$
# (dotted line: the sum over the jumps), a floor SGD cannot go below with one neuron per jump.

# %% mystnb={"figure": {"caption": "L2 error against step (log–log): SGD (blue) and the two-timescale limit (orange, dashed), one line per run; dotted, the floor set by η.", "name": "fig-two_timescale-error"}, "image": {"alt": "Log-log plot of the L2 error against the step for SGD runs and their two-timescale limits, with a dotted floor line."}}
tt_rows = np.flatnonzero(rows.group == "two-timescale")
fail_rows = np.flatnonzero(rows.group == "ε = 1 (failure)")
err = {n: dict(zip([*tt_rows, *fail_rows], tt.l2_error(fwd[n][:, [*tt_rows, *fail_rows]], f_star, eta), strict=True))
       for n in curve}  # fmt: skip
floor = 0.0589 * eta * float(np.sum(np.diff(f_star.values) ** 2))
fig, ax = plt.subplots(figsize=(plots.WIDTH, 2.8))
for r, s in zip(tt_rows, seeds, strict=True):
    ax.plot(curve, [err[n][r] for n in curve], color=plots.ORDER_COLORS["forward"], lw=1,
            label="SGD" if r == tt_rows[0] else None)  # fmt: skip
    ax.plot(curve, [tt.limit_risk(f_star, limit[s][n]) for n in curve], color=plots.OKABE_ITO["orange"],
            ls="--", label="two-timescale limit" if r == tt_rows[0] else None)  # fmt: skip
ax.axhline(floor, color="gray", ls=":", label="η floor (one neuron on each jump)")
ax.set(xscale="log", yscale="log", xlabel="step", ylabel=r"$\int_0^1 (f^* - f)^2$")
ax.legend(loc="lower left")
plt.show()

# %% [markdown]
# How far are SGD's neurons from the limit's at the end? The distance between the sorted
# position vectors, largest over neurons, against the width $\eta$ of one transition; and how
# many of the five jumps have a neuron within $\eta/2$.

# %%
u_end = fwd[tt_end][1][:, 1:].numpy()
tracking = pd.DataFrame({
    "seed": seeds,
    "max |u_SGD − u_limit|": [np.abs(np.sort(u_end[r]) - limit[s][tt_end]).max() for r, s in zip(tt_rows, seeds, strict=True)],
    "jumps covered (SGD)": tt.covered(u_end[tt_rows], f_star, eta),
    "jumps covered (limit)": [int(tt.covered(limit[s][tt_end][None], f_star, eta)[0]) for s in seeds],
    "L2 error SGD": [err[tt_end][r] for r in tt_rows],
    "risk limit": [tt.limit_risk(f_star, limit[s][tt_end]) for s in seeds],
})  # fmt: skip
tracking.round(4)

# %% [markdown]
# ## The failure case, $\varepsilon = 1$
#
# With the same step on both layers the neurons move while the outer weights are still far from
# their optimum. The run below starts from the same positions and samples as the first
# two-timescale run.

# %% mystnb={"figure": {"caption": "Without two timescales (ε = 1): left, SGD's fit (vermillion) against the target at the last step; right, its L2 error against step.", "name": "fig-two_timescale-failure"}, "image": {"alt": "Two panels: the network function against the target on [0, 1], and the L2 error against the step, for a run with epsilon equal to one."}}
fig, (ax, bx) = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.6), width_ratios=[3, 2])
th = fwd[fail_end][:, fail_rows[0]]
ax.plot(xs, f_star(xs.numpy()), color="black", lw=1.2, label="target")
ax.plot(
    xs,
    tt.network(xs, th[0][None], th[1][None], eta)[0],
    color=plots.OKABE_ITO["vermillion"],
    label="SGD, ε = 1",
)
ax.plot(th[1, 1:], np.full(m, low), "|", color=plots.OKABE_ITO["vermillion"], ms=8)
ax.set(xlabel="x", title=f"step {fail_end:,} (τ = {fail_end * fail_h:.3g})")
ax.legend(loc="upper left", bbox_to_anchor=(0.43, 1.0), fontsize="small")
fail_curve = [n for n in curve if n <= fail_end]
for r in fail_rows:
    bx.plot(
        fail_curve,
        [err[n][r] for n in fail_curve],
        color=plots.OKABE_ITO["vermillion"],
        lw=1,
    )
bx.axhline(floor, color="gray", ls=":")
bx.set(
    xscale="log",
    yscale="log",
    xlabel="step",
    ylabel="L2 error",
    title=f"ε = 1, h = {fail_h:g}",
)
fail_covered = tt.covered(fwd[fail_end][1][fail_rows].numpy(), f_star, eta)
print(
    f"jumps covered at the end (ε = 1): {fail_covered.tolist()} of {len(f_star.jumps)}"
)

# %% [markdown]
# ## Final error against $\varepsilon$
#
# Every sweep run stops at the same slow time $\tau$ = `sweep_tau`, i.e. after
# $\tau/(\varepsilon h)$ steps: the smaller $\varepsilon$, the more steps.

# %% mystnb={"figure": {"caption": "Final L2 error (log scale) against ε, over the sweep's runs: the smaller ε, the lower the error.", "name": "fig-two_timescale-sweep"}, "image": {"alt": "Box plots of the final L2 error on a log scale for each value of epsilon."}}
sweep = rows[
    rows.group.str.startswith("ε = ") & ~rows.group.str.contains("failure")
].copy()
sweep["forward"] = [
    tt.l2_error(fwd[n][:, [r]], f_star, eta)[0]
    for r, n in zip(sweep.index, sweep.end, strict=True)
]
sweep["covered"] = [
    int(tt.covered(fwd[n][1, r].numpy(), f_star, eta)[0])
    for r, n in zip(sweep.index, sweep.end, strict=True)
]
medians = sweep.groupby("eps")["forward"].median()
fig, ax = plt.subplots(figsize=(plots.WIDTH / 2, 2.6))
sns.boxplot(
    sweep, x="eps", y="forward", ax=ax, color=plots.ORDER_COLORS["forward"], fill=False
)
ax.set(yscale="log", xlabel="ε", ylabel="final L2 error")
plt.show()

# %%
sweep.groupby("eps")[["forward", "covered"]].median()

# %% [markdown]
# ## The book's question: backward composition of the same online maps
#
# The maps $T_n$ are i.i.d. (one fresh sample each), so for every fixed $n$ the backward
# iterate $T_1 \circ \dots \circ T_n(\theta_0)$ has the same law as the forward one: reversing
# an i.i.d. sequence does not change its law. What can differ is the *path*. With millions of
# steps the full backward order is out of reach (step $n$ costs $n$ maps), so we use the
# engine's window order with chained windows, `orders.window(W, start="window")`: inside each
# window of $W$ steps the maps are composed backward from the previous window's end, so
# every recorded step costs at most $W$ maps and the windows' ends cost $N$ maps in all, as
# much as the forward pass. This answers the question as far as it can be answered: a window
# is a backward composition of $W$ i.i.d. maps from a fixed start, which is exactly what
# Theorems 2.2 and 2.6 are about, and chained windows keep the slow positions evolving over the
# whole run, as in the forward pass. $W$ is chosen longer than the time the outer weights of
# the two-timescale runs take to forget their start, $\approx 1/(h\lambda)$ for the typical
# eigenvalues $\lambda$ below. Runs shorter than $W$ are plain backward.

# %%
window_order = orders.window(window, start="window")
bgrid = sorted(set(rows.end) | set(inside))
cost = bl.count_applications(window_order, bgrid)
t_back = time.perf_counter()
bwd = dict(bl.trajectory(T, theta0, window_order, bgrid))
t_back = time.perf_counter() - t_back
print(f"window order: {cost:,} map applications for {len(bgrid)} recorded steps "
      f"(forward: {grid[-1]:,}); {t_back:.1f} s")  # fmt: skip

# %% [markdown]
# Inside the window that starts at step $r_0$, how far does each iterate move between step
# $r_0 + j$ and step $r_0 + 2j$? A sequence that converges to a point has
# $\|\theta_{r_0+2j} - \theta_{r_0+j}\| \to 0$; one that samples a distribution does not.
# How fast a backward chain can forget its first maps is set by how strongly the maps
# contract. With the positions frozen (they barely move in a window when $\varepsilon \ll 1$)
# the outer weights follow a linear recursion contracting like $(1 - h\lambda)^j$ along each
# eigenvector of $G = 2\,\mathbb E[\sigma\sigma^\top]$ ($\sigma$ the vector of the neurons'
# outputs, $x \sim U[0,1]$). Two neurons at nearly the same place make $G$ nearly singular: the
# difference of their weights is almost free. So we also measure the movement of $a$ projected
# on the eigenvectors that a window contracts by $e^{-7}$ or more, $h\lambda W \ge 7$ (dotted;
# $G$ at each run's $\theta_{r_0}$). Solid: all parameters. Median over the runs of each group.


# %% mystnb={"figure": {"caption": "Distance ‖θ_{r0+2j} − θ_{r0+j}‖ against lag j, forward (blue) and backward (vermillion), in four runs; dotted, restricted to the contracted directions.", "name": "fig-two_timescale-moves"}, "image": {"alt": "A two-by-two grid of panels of distances between iterates against the lag, forward and backward, with dotted lines for contracted directions."}}
def contracted(theta, r):
    """Eigenvectors of G at run r of theta that one window contracts by e^{-7} or more."""
    xq = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    S = tt.smooth_step((xq[None, :] - theta[1, r][:, None]) / eta)  # [M, points]
    lam, V = torch.linalg.eigh(2 * S @ S.T / len(xq))
    return V[:, rows.h[r] * lam * window >= 7]


def moved(it, idx, j, fast=None):
    """Median over runs idx of ‖θ_{r0+2j} − θ_{r0+j}‖, or of ‖Pᵀ(a_{r0+2j} − a_{r0+j})‖."""
    d = it[r0 + 2 * j][:, idx] - it[r0 + j][:, idx]  # [2, runs, M]
    if fast is None:
        return float(d.permute(1, 0, 2).flatten(1).norm(dim=1).median())
    return float(
        np.median([float((fast[r].T @ d[0, k]).norm()) for k, r in enumerate(idx)])
    )


panels = {f"two-timescale, ε = {eps:g}": list(tt_rows),
          **{f"ε = {e:g}": list(sweep.index[sweep.eps == e]) for e in sweep_eps}}  # fmt: skip
fig, axes = plt.subplots(2, 2, figsize=(plots.WIDTH, 4.4), sharex=True, sharey=True)
moves = {}
for ax, (name, idx) in zip(axes.flat, panels.items(), strict=True):
    fast = {
        label: {r: contracted(it.get(r0, theta0), r) for r in idx}
        for label, it in (("forward", fwd), ("backward", bwd))
    }
    kept = np.median([fast["backward"][r].shape[1] for r in idx])
    for label, it in (("forward", fwd), ("backward", bwd)):
        moves[name, label] = [moved(it, idx, j) for j in lags]
        ax.plot(lags, moves[name, label], color=plots.ORDER_COLORS[label], label=label)
        if kept:
            moves[name, label, "fast"] = [moved(it, idx, j, fast[label]) for j in lags]
            ax.plot(
                lags,
                moves[name, label, "fast"],
                color=plots.ORDER_COLORS[label],
                ls=":",
                lw=1.2,
            )
    ax.set(xscale="log", yscale="log")
    ax.set_title(f"{name} ({kept:.0f}/{m + 1} directions contracted)", fontsize="small")
fig.supylabel(r"$\|\theta_{r_0+2j} - \theta_{r_0+j}\|$", fontsize="small")
axes[0, 0].plot([], [], color="gray", ls=":", label="contracted directions")
axes[0, 0].legend(loc="lower left", fontsize="small")
_ = fig.supxlabel(
    f"j (steps into the window of W = {window:,} steps from r0 = {r0:,})",
    fontsize="small",
)

# %% [markdown]
# At every run's last step the two orders give different points with the same law: the final
# errors of the sweep, forward beside backward.

# %% mystnb={"figure": {"caption": "Final L2 error against ε, forward (blue) beside backward (vermillion): the same law.", "name": "fig-two_timescale-orders"}, "image": {"alt": "Paired box plots of the final L2 error for forward and backward iterates at each value of epsilon."}}
sweep["backward"] = [
    tt.l2_error(bwd[n][:, [r]], f_star, eta)[0]
    for r, n in zip(sweep.index, sweep.end, strict=True)
]
long = sweep.melt(
    id_vars="eps",
    value_vars=["forward", "backward"],
    var_name="order",
    value_name="error",
)
fig, ax = plt.subplots(figsize=(plots.WIDTH / 2, 2.6))
sns.boxplot(
    long, x="eps", y="error", hue="order", palette=plots.ORDER_COLORS, fill=False, ax=ax
)
ax.set(yscale="log", xlabel="ε", ylabel="final L2 error")
ax.legend(loc="lower right", fontsize="small")
plt.show()

# %%
ks = {
    e: stats.ks_2samp(g["forward"], g["backward"]).pvalue
    for e, g in sweep.groupby("eps")
}
pd.DataFrame(
    {
        "KS p-value": ks,
        "median forward": medians,
        "median backward": sweep.groupby("eps")["backward"].median(),
    }
)

# %% [markdown]
# **Reading.** In the two-timescale regime SGD's neurons land where the limit's do, within a
# transition width or two (the largest gaps sit next to a jump, where a neuron with $\eta > 0$
# is captured before the $\eta \to 0$ limit's neuron arrives), and its error falls with the
# limit's to the floor set by $\eta$ plus the noise of the outer weights. With $\varepsilon = 1$
# neurons crowd on the large jumps and leave other jumps uncovered, and the final error at
# $\varepsilon = 1$ is several times that at small $\varepsilon$.
#
# The backward composition changes none of this in law: at every fixed step its iterate is a
# sample of the same distribution (the KS tests), so the failure at $\varepsilon = 1$ is just as
# likely. It changes the path. Along the directions a window contracts, the backward iterate
# settles (dotted red lines fall) while the forward iterate keeps moving (dotted blue lines
# rise to the stationary spread): the paper's picture of a backward iterate converging to a point
# while the forward one samples a distribution, restricted to the fast variables. It does not
# converge as a whole: the maps are far from uniform contractions here. The positions move on
# the slow time scale (a window of $W$ steps barely contracts them), and two neurons at nearly
# the same place leave the difference of their weights almost free ($G$ nearly singular), so
# along those directions both orders keep drifting. The smaller $h$, the fewer directions a
# window of $W$ steps contracts: in the sweep's $\varepsilon = 1$ runs (smallest $h$) none, and the
# two orders move alike.
#
# **Compared with the paper's figures.** Same shapes: in the two-timescale run the fitted
# function becomes the target's staircase with a neuron on each jump the limit covers, and the
# error curves of SGD and limit fall together; the $\varepsilon = 1$ run leaves jumps uncovered
# with several neurons stacked on the large jumps; the boxplot rises at $\varepsilon = 1$.
# Differences: our target has the heights the paper states (1, 4, 1, 2, 1, 4) and $\eta = 0.01$
# from its table, where the authors' public code uses heights 1, 5, 1, 3, 1, 5 and
# $\eta = 0.004$, so our error floor $0.0589\,\Delta^2\eta$ is higher and visible in the error
# plot; our $\sigma$ is a $C^1$ smoothstep with its exact derivative (autograd's), theirs a linear
# ramp with the ramp's derivative; the limit is run to the same slow time as SGD, so a jump the
# limit has not reached yet (the small jump at 0.5 in some runs) stays uncovered in both. The
# `book` profile takes larger steps $h$ than the paper (run card: in the two-timescale run the
# paper's quick setting $h = 10^{-3}$, $1.75 \times 10^6$ steps, instead of $10^{-5}$;
# $10^{-4}$ instead of $10^{-5}$ in the failure case; and in the sweep
# one step count for every $\varepsilon$, $h = \tau/(\varepsilon N)$, so only the $\varepsilon = 1$
# runs have the paper's $h$); the fitted functions and error curves are noisier than the paper's.

# %% [markdown]
# ## Claims
#
# Checks: the closed-form step equals autograd to round-off ($10^{-12}$); the limit velocity is
# minus the gradient of $R$ (central differences with step $10^{-7}$ have error $O(10^{-9})$
# here; we allow $10^{-5}$); the bias neuron never moves (exactly: $\sigma' = 0$ there); the
# window order costs at most $W$ maps per recorded step beyond the chained windows' $N$; and,
# for each $\varepsilon$, forward and backward final errors have the same law (two-sample
# Kolmogorov–Smirnov test not rejected at the 1% level; fixed seeds make it deterministic).
# Findings, the paper's claims at this scale: every two-timescale run ends with its neurons
# within $2\eta$ of the limit's; some $\varepsilon = 1$ run leaves a jump uncovered; the median
# final error at $\varepsilon = 1$ is at least twice that at the smallest $\varepsilon$. The book's
# question: at the end of the window the forward iterate moves at least 10× more than the
# backward one along the contracted directions, and at least 2× more over all parameters.

# %%
tt_name = f"two-timescale, ε = {eps:g}"
end_ratio = {kind: moves[(tt_name, "forward", *kind)][-1] / moves[(tt_name, "backward", *kind)][-1]
             for kind in [(), ("fast",)] if (tt_name, "backward", *kind) in moves}  # fmt: skip
results = [
    claims.at_most(
        "model", "closed-form SGD step = autograd step", autograd_gap, 1e-12
    ),
    claims.at_most("limit", "du/dτ = −∂R/∂u (finite differences)", velocity_gap, 1e-5),
    claims.at_most(
        "model",
        "bias neuron never moves: max |u_0 + η/2|",
        float((fwd[grid[-1]][1, :, 0] + eta / 2).abs().max()),
        0.0,
    ),
    claims.at_most(
        "engine",
        "window order: map applications ≤ N + W × recorded steps",
        cost,
        bgrid[-1] + window * len(bgrid),
    ),
    *[
        claims.at_least(
            "i.i.d. maps",
            f"ε = {e:g}: forward and backward final errors, KS p",
            p,
            0.01,
        )
        for e, p in ks.items()
    ],
    claims.finding(
        "Marion & Berthier, Sec. 6",
        "two-timescale: max over runs of max |u_SGD − u_limit| ≤ 2η",
        tracking["max |u_SGD − u_limit|"].max(),
        2 * eta,
        "at_most",
    ),
    claims.finding(
        "Marion & Berthier, Sec. 6",
        "ε = 1: fewest jumps covered by a run (< 5)",
        int(fail_covered.min()),
        len(f_star.jumps) - 1,
        "at_most",
    ),
    claims.finding(
        "Marion & Berthier, Sec. 6",
        "median final error, ε = 1 over smallest ε (≥ 2)",
        medians.iloc[-1] / medians.iloc[0],
        2.0,
        "at_least",
    ),
    claims.finding(
        "book question",
        "two-timescale, end of window, contracted directions: forward/backward move (≥ 10)",
        end_ratio.get(("fast",), np.nan),
        10.0,
        "at_least",
    ),
    claims.finding(
        "book question",
        "two-timescale, end of window, all parameters: forward/backward move (≥ 2)",
        end_ratio[()],
        2.0,
        "at_least",
    ),
]
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)
