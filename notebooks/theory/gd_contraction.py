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
# # Example 2.1: full-batch gradient descent is a contraction near a minimum
#
# The paper's first example {cite}`dherin2025iteration` is the classical one behind the whole
# contraction story: near a minimum $\theta^*$ with Hessian $H$, the gradient-descent map
# $T(\theta) = \theta - h\nabla L(\theta)$ is approximately affine,
# $T(\theta) \approx \theta - hH(\theta - \theta^*)$, so it shrinks distances by the factor
# $\|I - hH\| = \max_i |1 - h\lambda_i|$, which is below 1 exactly when $0 < h < 2/\lambda_{\max}$
# (for $H$ positive definite). This chapter measures that factor and the threshold twice:
# on a quadratic whose spectrum we choose, where the linearization is exact, and on a small
# tanh network trained to a minimum, where the map is nonlinear and the Hessian has flat
# directions that the example's assumption leaves out. Every iteration runs through the
# library's engine, `backward_lib.iterate`; the closed forms are computed separately.

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seed = 0  # seed of every random draw in the chapter
eigenvalues = [0.2, 0.5, 1.0, 1.7, 2.6, 4.0]  # spectrum of the quadratic's Hessian H
pairs = 20000  # random pairs (x, y) per learning rate, quadratic
h_points = 45  # learning rates on the grid (0, 2.2/λ_max]
margin = 0.02  # quadratic: iterate at h (1 ∓ margin)·2/λ_max
steps = 600  # quadratic: steps of the two short runs
overflow_steps = 20000  # quadratic: long run above 2/λ_max, until float64 overflows
n_points = 16  # network: regression points (fewer than parameters: it interpolates)
width = (
    16  # network: hidden units of the one-hidden-layer tanh MLP (6·width + 1 weights)
)
train_steps = 2000  # network: full-batch Nesterov steps to the minimum
train_lr = 0.1  # network: Nesterov learning rate
train_momentum = 0.95  # network: Nesterov momentum
radius = 1e-3  # network: half-distance of the pairs, size of the perturbation
net_margin = 0.1  # network: iterate at h (1 ∓ net_margin)·2/λ_max
net_steps = 3000  # network: steps of the two perturbed runs
net_pairs = 200  # network: random pairs inside the non-flat subspace

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "eigenvalues": "list of float > 0",
    "pairs": "int >= 1",
    "h_points": "int >= 2",
    "margin": "float in (0, 1)",
    "overflow_steps": "int >= 1",
    "n_points": "int >= 1",
    "width": "int >= 1",
    "train_steps": "int >= 1",
    "train_lr": "float > 0",
    "train_momentum": "float in [0, 1)",
    "radius": "float > 0",
    "net_margin": "float in (0, 1)",
    "net_steps": "int >= 1",
    "net_pairs": "int >= 1",
}

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import stats

import backward_lib as bl
from backward_lib import maps, models, orders, record, schedule
from backward_lib.analysis import curvature
from companion import claims, plots, runcard

plots.use_style()
torch.set_default_dtype(torch.float64)
t_start = time.perf_counter()
runcard.show(
    profile,
    "Example 2.1 (Section 2) of Dherin et al. (2025)",
    data=f"synthetic: a quadratic with spectrum {eigenvalues}; {n_points} regression "
    "points in R⁴ with targets sin(a·x) + 0.1·noise",
    scale=f"{pairs} random pairs × {h_points} learning rates; quadratic runs of {steps} "
    f"and {overflow_steps} steps; MLP 4→{width}→1 (tanh), {train_steps} Nesterov "
    f"steps, perturbed GD runs of {net_steps} steps",
    seeds=f"{seed} (all draws derive from it)",
    device=runcard.device_name("cpu"),
)

# %% [markdown]
# ## A quadratic with a known spectrum
#
# Take $L(\theta) = \tfrac12 (\theta - \theta^*)^\top H (\theta - \theta^*)$ with
# $H = Q\,\mathrm{diag}(\lambda)\,Q^\top$, $Q$ a random rotation. Gradient descent is then
# exactly affine, $T(\theta) = \theta - hH(\theta - \theta^*)$, and for any pair
#
# $$
# T(x) - T(y) = (I - hH)(x - y), \qquad
# \sup_{x \ne y} \frac{\|T(x) - T(y)\|}{\|x - y\|} = \|I - hH\|_2
# = \max_i |1 - h\lambda_i| .
# $$
#
# The factor is below 1 exactly on $0 < h < 2/\lambda_{\max}$: for small $h$ the slowest
# direction ($\lambda_{\min}$) sets it, for large $h$ the sharpest one ($\lambda_{\max}$) does.

# %%
gen = torch.Generator().manual_seed(seed)
lam = torch.tensor(eigenvalues)
d = len(eigenvalues)
Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
H = Q @ torch.diag(lam) @ Q.T
theta_star = torch.randn(d, generator=gen)
lam_max = float(lam.max())


def gd_quadratic(h):
    """T(θ, n) = θ − hH(θ − θ*), the same map at every step n (rows of θ: many points)."""
    return lambda theta, n: theta - h * (theta - theta_star) @ H


h_grid = np.linspace(2.2 / lam_max / h_points, 2.2 / lam_max, h_points)
theory = np.abs(1 - np.outer(h_grid, eigenvalues)).max(1)  # max_i |1 − hλ_i|
print(f"λ_max = {lam_max:g}, 2/λ_max = {2 / lam_max:g}")

# %% [markdown]
# We measure the factor in two ways for every $h$: the exact operator norm of $I - hH$
# (from a singular value decomposition), and the worst ratio $\|T(x) - T(y)\|/\|x - y\|$
# over `pairs` random Gaussian pairs, each evaluated with the map itself.

# %%
X = torch.randn(pairs, d, generator=gen)
Y = torch.randn(pairs, d, generator=gen)
worst, op_norm = [], []
for h in h_grid:
    T = gd_quadratic(h)
    ratio = (T(X, 1) - T(Y, 1)).norm(dim=1) / (X - Y).norm(dim=1)
    worst.append(float(ratio.max()))
    op_norm.append(float(torch.linalg.matrix_norm(torch.eye(d) - h * H, ord=2)))
worst, op_norm = np.array(worst), np.array(op_norm)
print(
    f"max |operator norm − theory| = {np.abs(op_norm - theory).max():.2e}; "
    f"worst pair / theory ∈ [{(worst / theory).min():.4f}, {(worst / theory).max():.4f}]"
)

# %% [markdown]
# The operator norm equals $\max_i|1 - h\lambda_i|$ to round-off, and the worst random pair
# comes within a few percent of it from below. How close it must come follows from the
# geometry: writing $x - y$ in the eigenbasis, the squared ratio is
# $\sum_i w_i (1 - h\lambda_i)^2$ with weights $w_i$ of a uniformly random direction, and the
# weight on one fixed direction has the law $\mathrm{Beta}(\tfrac12, \tfrac{d-1}{2})$.
# So the worst of $P$ pairs is at least $\max_i|1 - h\lambda_i|\sqrt{1 - \varepsilon}$,
# where $\varepsilon$ is exceeded by $1 - w$ for all $P$ pairs with probability
# $\alpha = 10^{-6}$ (for each of the two directions that can attain the maximum).

# %%
alpha = 1e-6
eps = stats.beta.ppf(1 - alpha ** (1 / pairs), (d - 1) / 2, 0.5)
pair_floor = np.sqrt(1 - eps)
print(
    f"ε = {eps:.4f}: worst pair ≥ {pair_floor:.4f} × theory with probability "
    f"≥ 1 − {2 * alpha:g}"
)

# %% mystnb={"figure": {"caption": "Quadratic loss: contraction factor of the GD map against the learning rate h. The operator norm (circles) and the worst random pair (crosses) lie on max_i |1 − hλ_i| (black).", "name": "fig-gd_contraction-quadratic"}, "image": {"alt": "Plot of contraction factors against the learning rate: one grey curve per eigenvalue mode, the maximum as a black line, and measured points."}}
fig, ax = plt.subplots(figsize=(plots.WIDTH, 3.0))
for i, lam_i in enumerate(eigenvalues):
    ax.plot(
        h_grid,
        np.abs(1 - h_grid * lam_i),
        color="0.75",
        lw=0.8,
        label="$|1 - h\\lambda_i|$, each mode" if i == 0 else None,
    )
ax.plot(h_grid, theory, "k-", lw=1.5, label="$\\max_i |1 - h\\lambda_i|$")
ax.plot(
    h_grid,
    op_norm,
    "o",
    ms=5,
    mfc="none",
    color=plots.OKABE_ITO["blue"],
    label="$\\|I - hH\\|_2$",
)
ax.plot(
    h_grid,
    worst,
    "x",
    ms=4,
    color=plots.OKABE_ITO["vermillion"],
    label=f"worst of {pairs} random pairs",
)
ax.axvline(2 / lam_max, color="k", ls="--", lw=0.8)
ax.axhline(1, color="k", ls=":", lw=0.8)
ax.text(2 / lam_max, 1.55, " $2/\\lambda_{\\max}$", va="top")
ax.set(
    xlabel="learning rate h",
    ylabel="contraction factor",
    ylim=(0, 1.6),
    title="Quadratic: measured contraction factor against max|1 − hλ|",
)
ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
plt.show()

# %% [markdown]
# ### Iterating $T$: convergence just below $2/\lambda_{\max}$, divergence just above
#
# The Banach fixed-point theorem turns the factor into a rate: the forward iterates of the
# one map $T$ (the same for every $n$, so forward and backward coincide) satisfy
# $\theta_n - \theta^* = (I - hH)^n(\theta_0 - \theta^*)$, whose norm behaves like
# $\max_i|1 - h\lambda_i|^n$ once the sharpest mode dominates. At $h = (1 \mp m)\,2/\lambda_{\max}$
# that factor is $1 \mp 2m$ (the other modes are smaller for our spectrum). We record
# $\|\theta_n - \theta^*\|$ through the engine and fit the slope of its logarithm.

# %%
theta0 = theta_star + torch.randn(d, generator=gen)
h_runs = {"below": (1 - margin) * 2 / lam_max, "above": (1 + margin) * 2 / lam_max}


def distance_to(point):
    return lambda theta: float((theta - point).norm())


runs = pd.concat(
    record.record(
        gd_quadratic(h),
        theta0,
        {name: orders.forward()},
        steps,
        {"distance": distance_to(theta_star)},
        increment=False,
    )
    for name, h in h_runs.items()
)
fit_from = steps // 3
rate_fit, rate_theory = {}, {}
for name, h in h_runs.items():
    run = runs[runs["order"] == name]
    n, dist = run["step"].to_numpy(), run["value"].to_numpy()
    rate_fit[name] = np.polyfit(n[fit_from:], np.log(dist[fit_from:]), 1)[0]
    rate_theory[name] = np.log(np.abs(1 - h * np.array(eigenvalues)).max())
pd.DataFrame({"fitted slope": rate_fit, "log max|1 − hλ|": rate_theory})

# %% [markdown]
# The fitted slopes match $\log(1 \mp 2m)$: the distance shrinks by $1 - 2m$ per step below
# the threshold and grows by $1 + 2m$ above it. Growth at a rate this close to 1 takes long
# to show as a failure, so we let the run above the threshold continue until float64
# overflows; the recorder marks the first non-finite iterate as `diverged`. The step where
# that happens is predicted from the growth rate: $\theta_n - \theta^*$ is dominated by
# $(1 - h\lambda_{\max})^n q_{\max}q_{\max}^\top(\theta_0 - \theta^*)$ and overflows when its
# largest entry passes the largest float64, about $1.8 \times 10^{308}$. (We record the
# largest entry $\|\theta_n - \theta^*\|_\infty$ here: the Euclidean norm squares the entries
# and would overflow halfway, at $10^{154}$.)

# %%
every = 50
long_run = record.record(
    gd_quadratic(h_runs["above"]),
    theta0,
    {"above": orders.forward()},
    record.every(every, overflow_steps),
    {"largest entry": lambda theta: float((theta - theta_star).abs().max())},
    increment=False,
)
q_max = Q[:, int(lam.argmax())]
top = (q_max * (q_max @ (theta0 - theta_star))).abs().max()
growth = abs(1 - h_runs["above"] * lam_max)
predicted = (np.log(np.finfo(np.float64).max) - np.log(float(top))) / np.log(growth)
first_diverged = long_run.loc[long_run["diverged"], "step"].min()
print(
    f"first diverged record: step {first_diverged}; predicted overflow: step "
    f"{predicted:.0f}; diverged records in the run below: "
    f"{int(runs['diverged'].sum())}"
)

# %% mystnb={"figure": {"caption": "Left: distance to the minimum against step n just below and just above 2/λ_max, with the predicted rates (dashed). Right: the diverging run until float64 overflows, at the predicted step.", "name": "fig-gd_contraction-iterates"}, "image": {"alt": "Two panels: semi-log distance to the minimum against the step for a converging and a diverging learning rate, and the log of the distance of the diverging run with a predicted overflow line."}}
fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.8))
colors = {"below": "C0", "above": "C3"}
for name, h in h_runs.items():
    run = runs[runs["order"] == name]
    label = f"$h = {h / (2 / lam_max):.2f} \\cdot 2/\\lambda_{{\\max}}$"
    axes[0].plot(run["step"], run["value"], color=colors[name], label=label)
    d0 = float((theta0 - theta_star).norm())
    axes[0].plot(
        run["step"], d0 * np.exp(rate_theory[name] * run["step"]), "k--", lw=0.8
    )
axes[0].plot([], [], "k--", lw=0.8, label="$\\max_i|1-h\\lambda_i|^n$")
axes[0].set(yscale="log", xlabel="step n", ylabel="$\\|\\theta_n - \\theta^*\\|$")
ok = long_run[~long_run["diverged"]]
axes[1].plot(ok["step"], np.log10(ok["value"]), color=colors["above"])
axes[1].axhline(np.log10(np.finfo(np.float64).max), color="0.5", ls=":", lw=0.8)
axes[1].plot(
    first_diverged,
    1.0,
    "x",
    color=colors["above"],
    ms=8,
    mew=2,
    transform=axes[1].get_xaxis_transform(),
    clip_on=False,
    label=f"diverged (step {first_diverged})",
)
axes[1].axvline(predicted, color="k", ls="--", lw=0.8, label="predicted overflow")
axes[1].set(
    xlabel="step n",
    ylabel="$\\log_{10}\\|\\theta_n - \\theta^*\\|_\\infty$",
    title=f"$h = {1 + margin:g} \\cdot 2/\\lambda_{{\\max}}$ until float64 overflows",
)
plots.legend_below(fig, ncol=3, fontsize="small")  # the lines leave no empty corner
plt.show()

# %% [markdown]
# ## A small network at a trained minimum
#
# Now a real, nonlinear loss: a one-hidden-layer tanh network $4 \to$ `width` $\to 1$
# (LeCun-normal initialization) fitted by mean squared error to `n_points` points
# $y = \sin(a^\top x) + 0.1\,\xi$. The network has $d = 6\cdot$`width`$+1$ parameters, more
# than the data points, so it can interpolate. We train it to the minimum with full-batch
# Nesterov (momentum `train_momentum`) through the engine: the library's network step map with a schedule
# whose every batch is the whole data set.

# %%
gen = torch.Generator().manual_seed(seed + 1)
x = torch.randn(n_points, 4, generator=gen)
a = torch.randn(4, generator=gen)
y = (torch.sin(x @ a) + 0.1 * torch.randn(n_points, generator=gen))[:, None]
model = models.mlp(4, 1, 1, width, activation="tanh", init="lecun", seed=seed)
mse = torch.nn.functional.mse_loss
full_batch = schedule.batches(n_points, n_points, train_steps, seed)
train = maps.network(
    model,
    mse,
    maps.get("nesterov", train_lr, momentum=train_momentum),
    x,
    y,
    full_batch,
)
theta_trained = bl.iterate(
    train, maps.params_of(model), orders.forward(), [train_steps]
)[train_steps]
loss = curvature.flat_loss(model, mse, x, y)
w_star = loss.pack(theta_trained)


def gradient(w):
    """∇L(w) of the full-batch loss at a flat parameter vector."""
    v = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(v), v)
    return g


grad_norm = float(gradient(w_star).norm())
print(
    f"d = {len(w_star)}, L(w*) = {float(loss(w_star)):.2e}, ‖∇L(w*)‖ = {grad_norm:.2e}"
)

# %% [markdown]
# The loss is zero to round-off: $w^*$ is an interpolating global minimum. There the
# Hessian is exactly the Gauss–Newton matrix $H = \tfrac{2}{N} J^\top J$ ($J$ the $N \times d$
# Jacobian of the outputs), positive semi-definite of rank at most $N$. So $d - N$
# eigenvalues are zero: **the Hessian of a trained network is not positive definite**, and
# Example 2.1's assumption fails in those flat directions, along which the minimum
# extends to a manifold of minimizers. We treat this honestly by splitting the space:
# on the non-flat subspace (the eigenvectors with $\lambda_i > 0$) the example applies as
# stated; along the flat directions the linearized map is the identity, factor exactly 1.
# (We tried the alternative, a ridge term $\tfrac{\rho}{2}\|w\|^2$ with $\rho = 0.05$ on a
# narrower network: the minimum becomes strict, but its smallest eigenvalues sat far below
# $\rho$, near $10^{-3}$, where the penalty almost balances the data term, with a condition
# number in the thousands: no cleaner a picture, and a different loss from the paper's.)

# %%
H_net = curvature.hessian(loss, w_star)
lam_net, Q_net = torch.linalg.eigh(H_net)
lam_max_net = float(lam_net[-1])
flat = lam_net.abs() <= 1e-10 * lam_max_net
n_flat, n_curved = int(flat.sum()), int((~flat).sum())
lam_min_net = float(lam_net[~flat].min())
print(
    f"{n_curved} eigenvalues in [{lam_min_net:.4f}, {lam_max_net:.4f}]; {n_flat} with "
    f"|λ| ≤ 1e-10·λ_max (largest {float(lam_net[flat].abs().max()):.1e}); "
    f"2/λ_max = {2 / lam_max_net:.4f}"
)
print("positive eigenvalues:", np.array2string(lam_net[~flat].numpy(), precision=4))

# %% [markdown]
# Exactly $N$ = `n_points` eigenvalues are positive; the others vanish to round-off.
#
# ### The real gradient step near $w^*$
#
# The gradient-descent map is $T_h(w) = w - h\nabla L(w)$ — the library's network step map
# with `maps.sgd(h)` on the full batch (checked equal below). For a pair $x, y$ the map gives
# $T_h(x) - T_h(y) = (x - y) - h(\nabla L(x) - \nabla L(y))$, so one gradient per point
# serves every $h$ on the grid. We take pairs $w^* \pm r\,q_i$ along every eigenvector $q_i$
# of $H$ (the directions where the linear theory says the ratio is extreme) and random pairs
# $w^* + r\,Q_{+}u$, $w^* + r\,Q_{+}u'$ inside the non-flat subspace. For the symmetric pairs
# the ratio is $|1 - h\lambda_i| + O(r^2)$: the nonlinearity of $\nabla L$ enters only at
# third order.

# %%
gd_check = maps.network(model, mse, maps.sgd(0.3), x, y, full_batch)
theta_copy = {k: v.clone() for k, v in theta_trained.items()}
w_pert = w_star + radius * Q_net[:, -1]
theta_pert = {k: v.clone() for k, v in loss.unpack(w_pert).items()}
stepped, _ = gd_check.update(theta_pert, gd_check.init(theta_pert), 1)
map_error = float((loss.pack(stepped) - (w_pert - 0.3 * gradient(w_pert))).abs().max())
print(f"library map vs w − h∇L(w): max |difference| = {map_error:.1e}")


def pair_ratios(X, Y, h_values):
    """‖T_h(x) − T_h(y)‖ / ‖x − y‖ for each row pair and each h: shape [len(h), pairs]."""
    gx = torch.stack([gradient(w) for w in X])
    gy = torch.stack([gradient(w) for w in Y])
    dx, dg = X - Y, gx - gy
    h_t = torch.as_tensor(h_values)[:, None, None]
    return ((dx - h_t * dg).norm(dim=-1) / dx.norm(dim=-1)).numpy()


h_net = np.linspace(2.2 / lam_max_net / h_points, 2.2 / lam_max_net, h_points)
eig_pairs = pair_ratios(
    w_star + radius * Q_net.T, w_star - radius * Q_net.T, h_net
)  # [h, d]
Q_plus = Q_net[:, ~flat]
U = torch.randn(2, net_pairs, n_curved, generator=gen)
U = U / U.norm(dim=-1, keepdim=True)
rand_pairs = pair_ratios(
    w_star + radius * U[0] @ Q_plus.T, w_star + radius * U[1] @ Q_plus.T, h_net
)
lam_np = lam_net.numpy()
linear = np.abs(1 - h_net[:, None] * lam_np[None, :])  # |1 − hλ_i|, [h, d]
theory_curved = linear[:, ~flat.numpy()].max(1)
eig_error = np.abs(eig_pairs - linear).max()
print(f"max over i, h of | ratio along q_i − |1 − hλ_i| | = {eig_error:.1e}")

# %% [markdown]
# Every eigen-pair ratio of the real map equals its linear prediction to about
# $10^{-6}$. That this gap is the $O(r^2)$ remainder, and not a mismatch, shows in its
# scaling: at radius $r/10$ it must be 100 times smaller.

# %%
small = pair_ratios(
    w_star + radius / 10 * Q_net.T, w_star - radius / 10 * Q_net.T, h_net
)
eig_error_small = np.abs(small - linear).max()
remainder_order = np.log10(eig_error / eig_error_small)
print(
    f"remainder at r/10: {eig_error_small:.1e}; order of the remainder in r: "
    f"{remainder_order:.3f}"
)

# %% mystnb={"figure": {"caption": "Tanh MLP at an interpolating minimum: contraction factor against h. Along the non-flat subspace the map follows max over λ_i > 0 of |1 − hλ_i|; flat directions keep the factor at 1.", "name": "fig-gd_contraction-network"}, "image": {"alt": "Plot of contraction factors of a network's gradient map against the learning rate, with per-mode curves, per-direction ratios and worst random pairs."}}
worst_curved = np.maximum(eig_pairs[:, ~flat.numpy()].max(1), rand_pairs.max(1))
fig, ax = plt.subplots(figsize=(plots.WIDTH, 3.2))
for i in np.flatnonzero(~flat.numpy()):
    ax.plot(h_net, linear[:, i], color="0.8", lw=0.8)
ax.plot([], [], color="0.8", lw=0.8, label="$|1 - h\\lambda_i|$, each $\\lambda_i > 0$")
ax.plot(h_net, eig_pairs, ".", ms=1.5, color="C0", alpha=0.5)
ax.plot([], [], ".", color="C0", label="ratio along each $q_i$ (flat ones at 1)")
ax.plot(
    h_net,
    theory_curved,
    "k-",
    lw=1.5,
    label="$\\max_{\\lambda_i > 0}|1 - h\\lambda_i|$",
)
ax.plot(
    h_net,
    worst_curved,
    "o",
    ms=5,
    mfc="none",
    color="k",
    label="worst pair, non-flat subspace",
)
ax.plot(
    h_net,
    rand_pairs.max(1),
    "x",
    ms=4,
    color="C3",
    label=f"worst of {net_pairs} random non-flat pairs",
)
ax.axvline(2 / lam_max_net, color="k", ls="--", lw=0.8)
ax.text(2 / lam_max_net, 1.55, " $2/\\lambda_{\\max}$", va="top")
ax.set(
    xlabel="learning rate h",
    ylabel="contraction factor",
    ylim=(0, 1.6),
    title=f"Tanh MLP at an interpolating minimum (pairs at radius {radius:g})",
)
ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
plt.show()

# %% [markdown]
# On the non-flat subspace the real map follows $\max_{\lambda_i>0}|1 - h\lambda_i|$: a
# contraction for $h < 2/\lambda_{\max}$, but a weak one, since the smallest positive
# eigenvalue is small ($1 - h\lambda_{\min}^+$ stays close to 1 for every admissible $h$).
# Counting the flat directions, the factor never drops below 1: the map is not a contraction
# of the whole space, only non-expansive along the valley of minimizers. Random pairs in the
# non-flat subspace stay below the worst eigen-pair, as they must.
#
# ### Gradient descent from a perturbed minimum
#
# Finally the real dynamics, through the engine: full-batch GD (`maps.sgd(h)`) started at
# $w^* + \delta$ with a random $\|\delta\| = r$, at $h = (1 \mp m)\,2/\lambda_{\max}$ with
# $m$ = `net_margin` = 0.1. The linear theory predicts: below the threshold the component of
# $\delta$ along the sharpest direction shrinks by $|1 - h\lambda_{\max}| = 1 - 2m = 0.8$ per
# step, the non-flat part converges at the slowest rate $1 - h\lambda_{\min}^+$, and the flat
# part stays, so the iterates converge to a minimizer at distance
# $\approx\|P_{\text{flat}}\delta\|$ from $w^*$; above it the sharp component grows by
# $1 + 2m = 1.2$ per step and the iterates leave $w^*$.

# %%
delta = torch.randn(len(w_star), generator=gen)
delta = radius * delta / delta.norm()
theta_start = {k: v.clone() for k, v in loss.unpack(w_star + delta).items()}
q_top = Q_net[:, -1]
net_record = record.every(10, net_steps) + list(range(2, 41))
net_metrics = {
    "distance to w*": lambda th: float((loss.pack(th) - w_star).norm()),
    "sharp coordinate": lambda th: float((q_top @ (loss.pack(th) - w_star)).abs()),
    "loss": lambda th: float(loss(loss.pack(th))),
}
h_net_runs = {
    "below": (1 - net_margin) * 2 / lam_max_net,
    "above": (1 + net_margin) * 2 / lam_max_net,
}
schedule_runs = schedule.batches(n_points, n_points, net_steps, seed)
net_runs, net_ends = [], {}
for name, h in h_net_runs.items():
    gd = maps.network(model, mse, maps.sgd(h), x, y, schedule_runs)
    net_runs.append(
        record.record(
            gd, theta_start, {name: orders.forward()}, net_record, net_metrics
        )
    )
    net_ends[name] = bl.iterate(gd, theta_start, orders.forward(), [net_steps])[
        net_steps
    ]
net_runs = pd.concat(net_runs)
wide = net_runs.pivot_table(index=["order", "step"], columns="metric", values="value")
wide.groupby(level="order").tail(1)

# %% [markdown]
# We read off five numbers: the per-step rate of the sharp coordinate in the first 30
# steps (while it is still small), the asymptotic rate of the increments
# $\|w_{n+10} - w_n\|$ in the last two thirds of the run below the threshold (predicted
# $1 - h\lambda_{\min}^+$ per step), the final distance to $w^*$ against
# $\|P_{\text{flat}}\delta\|$, the final loss against its linear prediction, and, for the
# run above the threshold, the sharpness $\lambda_{\max}$ where it ended up.

# %%
flat_part = float((Q_net[:, flat].T @ delta).norm())
sharp_rate = {}
for name in h_net_runs:
    early = wide.loc[name].loc[2:30, "sharp coordinate"]
    sharp_rate[name] = np.exp(np.polyfit(early.index, np.log(early.to_numpy()), 1)[0])
late = wide.loc["below"].loc[net_steps // 3 :, "increment"].dropna()
late = late[late.index % 10 == 1]  # increments over 10 steps
slow_rate = np.exp(np.polyfit(late.index, np.log(late.to_numpy()), 1)[0])
slow_theory = 1 - h_net_runs["below"] * lam_min_net
next_rate = 1 - h_net_runs["below"] * float(lam_net[~flat][1])
next_share = (next_rate / slow_theory) ** (net_steps // 3)  # second mode, fit start

# %%
end_dist = {k: float((loss.pack(v) - w_star).norm()) for k, v in net_ends.items()}
end_loss = {k: float(loss(loss.pack(v))) for k, v in net_ends.items()}
c_plus = Q_net[:, ~flat].T @ delta  # non-flat coordinates of δ
lam_plus = lam_net[~flat]
h_below = h_net_runs["below"]


def loss_prediction(n):
    """Linear theory: L(w_n) = ½ Σ_{λ_i>0} λ_i (1 − hλ_i)^(2n) (q_i·δ)² for an array of n."""
    decay = (1 - h_below * lam_plus.numpy()[None, :]) ** (2 * np.asarray(n)[:, None])
    return 0.5 * (decay * (lam_plus * c_plus**2).numpy()).sum(1)


loss_linear = float(loss_prediction([net_steps])[0])
end_sharp = float(
    torch.linalg.eigvalsh(curvature.hessian(loss, loss.pack(net_ends["above"])))[-1]
)
pd.DataFrame(
    {
        "sharp rate (fit)": sharp_rate,
        "|1 − hλ_max|": {k: abs(1 - h * lam_max_net) for k, h in h_net_runs.items()},
        "final distance to w*": end_dist,
        "final loss": end_loss,
    }
)

# %%
print(
    f"slow rate below: fit {slow_rate:.6f}, 1 − hλ⁺_min = {slow_theory:.6f} (next "
    f"mode's relative share at the fit's start ≤ {next_share:.3f}); "
    f"‖P_flat δ‖ = {flat_part:.3e}; above: λ_max at its end point = {end_sharp:.4f} "
    f"< 2/h = {2 / h_net_runs['above']:.4f}"
)
print(
    f"final loss below: {end_loss['below']:.3e}; linear prediction "
    f"½ Σ λ_i (1 − hλ_i)^(2n) (q_i·δ)² = {loss_linear:.3e}"
)

# %% mystnb={"figure": {"caption": "Network iterates below and above the threshold (log–log): left, distance to w* with its flat part (dotted); right, training loss with the linear prediction (dashed).", "name": "fig-gd_contraction-network-iterates"}, "image": {"alt": "Two log-log panels against the step: distance to the minimum and training loss, for learning rates below and above the stability threshold."}}
fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.8))
for name, h in h_net_runs.items():
    part = wide.loc[name]
    label = f"$h = {h / (2 / lam_max_net):.1f} \\cdot 2/\\lambda_{{\\max}}$"
    axes[0].plot(part.index, part["distance to w*"], color=colors[name], label=label)
    axes[1].plot(part.index, part["loss"], color=colors[name], label=label)
axes[0].axhline(
    flat_part, color="k", ls=":", lw=0.8, label="$\\|P_{flat}\\,\\delta\\|$"
)
axes[0].set(yscale="log", xscale="log", xlabel="step n", ylabel="$\\|w_n - w^*\\|$")
steps_below = wide.loc["below"].index.to_numpy()
axes[1].plot(
    steps_below, loss_prediction(steps_below), "k--", lw=0.8, label="linear prediction"
)
axes[1].set(yscale="log", xscale="log", xlabel="step n", ylabel="training loss")
axes[1].legend(loc="lower left", fontsize="small")
axes[0].legend(loc="center right", fontsize="small")
plt.show()

# %% [markdown]
# Below the threshold the iterates settle at distance $\|P_{\text{flat}}\delta\|$ from $w^*$,
# and the loss falls exactly as the linear prediction says, at the slow rate
# $(1 - h\lambda_{\min}^+)^{2n}$: GD converges, not to $w^*$ but to a neighbouring minimizer
# in the valley. Above the threshold the sharp component grows at rate 1.2 until the
# linearization no longer holds; the iterate is thrown out of the neighbourhood (a loss
# spike) and then converges toward a *different* interpolating minimum whose sharpness is
# below $2/h$ — the converse of Example 2.1: gradient descent cannot settle at a minimum with
# $\lambda_{\max} > 2/h$, because that minimum repels it.

# %% [markdown]
# ## Claims
#
# Tolerances. Exact identities (operator norm, the library map against $w - h\nabla L$)
# to $10^{-12}$: float64 round-off over a few dozen operations. Ratios of the quadratic map
# must not exceed the theory by more than $10^{-12}$; from below, the Beta bound above gives
# the floor $\sqrt{1 - \varepsilon}$ with failure probability $2 \times 10^{-6}$. Fitted slopes
# of the quadratic: 0.001 (the next mode's share decays like $(0.902/0.96)^{200} < 10^{-5}$,
# so the fit is exact to far better). Overflow step: within 100 steps of the prediction
# (the recording grid is 50 steps; an intermediate product $H(\theta - \theta^*)$ can
# overflow up to $\log(\lambda_{\max}\sqrt d)/\log 1.04 \approx 60$ steps early); a growth
# rate wrong by 1% would move the overflow by thousands of steps.
#
# Network: the eigen-pair ratios to $10^{-5}$ (thirty times the $O(r^2)$ remainder measured
# at $r$; a wrong constant in $1 - h\lambda$ would be off by $O(1)$), the remainder's order in
# $r$ to $2 \pm 0.1$. The runs are deterministic, so their tolerances bound systematic
# effects: 0.005 for the sharp coordinate's rate (the nonlinear terms are relatively as
# large as the coordinate itself, at most $2 \times 10^{-2}$ at step 30, and the fit averages
# them); $2 \times 10^{-4}$ for the slow rate (the next positive mode's share, printed above,
# is a few percent when the fit starts and shrinks; the two directions are orthogonal, so it
# enters $\log\|\cdot\|$ only through half its square, and biases the fitted log-rate by at
# most the squared share times $\log\frac{1 - h\lambda_{\min}^+}{1 - h\lambda_2^+}$, below
# $10^{-5}$). The final loss below the threshold must equal the linear prediction
# $\tfrac12\sum_{\lambda_i>0}\lambda_i(1 - h\lambda_i)^{2n}(q_i^\top\delta)^2$ within 0.02 in
# $\log_{10}$ (5%): the nonlinearity moves the eigenvalues at the limit point by $O(r)$
# relative, which changes $(1 - h\lambda)^{2n}$ by about 1%. The final distance to $w^*$ must
# equal $\|P_{\text{flat}}\delta\|$ within $0.005\,r$ (the valley of minimizers bends at
# second order, a relative $O(r) = 10^{-3}$ effect). Leaving $w^*$ means ending $100\,r$ away.


# %%
def misclassified(factor, h, lam_max):
    """Grid points where 'factor < 1' disagrees with 'h < 2/λ_max' (those at 2/λ_max skipped)."""
    away = np.abs(h * lam_max / 2 - 1) > 1e-6
    return int(((factor < 1) != (h < 2 / lam_max))[away].sum())


results = [
    claims.at_most(
        "Example 2.1",
        "quadratic: |‖I − hH‖₂ − max|1 − hλ_i|| over the h grid",
        np.abs(op_norm - theory).max(),
        1e-12,
    ),
    claims.at_most(
        "Example 2.1",
        "quadratic: worst pair ratio − max|1 − hλ_i| (never above the factor)",
        (worst - theory).max(),
        0.0,
        1e-12,
    ),
    claims.at_least(
        "Example 2.1",
        "quadratic: worst pair ratio / max|1 − hλ_i| (Beta floor √(1 − ε))",
        (worst / theory).min(),
        pair_floor,
    ),
    claims.at_most(
        "Example 2.1",
        "quadratic: factor < 1 exactly for h < 2/λ_max (misclassified h)",
        misclassified(op_norm, h_grid, lam_max),
        0,
    ),
    claims.close(
        "Example 2.1",
        "quadratic, h just below 2/λ_max: log-distance slope = log max|1 − hλ|",
        rate_fit["below"],
        rate_theory["below"],
        1e-3,
    ),
    claims.close(
        "Example 2.1",
        "quadratic, h just above 2/λ_max: log-distance slope = log max|1 − hλ|",
        rate_fit["above"],
        rate_theory["above"],
        1e-3,
    ),
    claims.close(
        "Example 2.1",
        "quadratic, h just above: first diverged step − predicted overflow step",
        first_diverged - predicted,
        0.0,
        100,
    ),
    claims.at_most(
        "Example 2.1",
        "quadratic, h just below: diverged records",
        int(runs.loc[runs["order"] == "below", "diverged"].sum()),
        0,
    ),
    claims.at_most(
        "Example 2.1", "network: ‖∇L(w*)‖ at the trained minimum", grad_norm, 1e-12
    ),
    claims.close(
        "Example 2.1",
        "network: number of positive Hessian eigenvalues = N (flat: d − N)",
        n_curved,
        n_points,
        0,
    ),
    claims.at_most(
        "Example 2.1",
        "network: library GD map = w − h∇L(w) (max |difference|)",
        map_error,
        1e-12,
    ),
    claims.at_most(
        "Example 2.1",
        "network: eigen-pair ratio of the real map − |1 − hλ_i|, all i, h",
        eig_error,
        1e-5,
    ),
    claims.close(
        "Example 2.1",
        "network: order in r of the nonlinear remainder",
        remainder_order,
        2.0,
        0.1,
    ),
    claims.at_most(
        "Example 2.1",
        "network: worst random non-flat pair − max_{λ>0}|1 − hλ|",
        (rand_pairs.max(1) - theory_curved).max(),
        0.0,
        1e-5,
    ),
    claims.at_most(
        "Example 2.1",
        "network: non-flat factor < 1 exactly for h < 2/λ_max (misclassified h)",
        misclassified(worst_curved, h_net, lam_max_net),
        0,
    ),
    claims.close(
        "Example 2.1",
        f"network, h = {1 - net_margin:g}·2/λ_max: sharp coordinate rate = |1 − hλ_max|",
        sharp_rate["below"],
        abs(1 - h_net_runs["below"] * lam_max_net),
        0.005,
    ),
    claims.close(
        "Example 2.1",
        f"network, h = {1 + net_margin:g}·2/λ_max: sharp coordinate rate = |1 − hλ_max|",
        sharp_rate["above"],
        abs(1 - h_net_runs["above"] * lam_max_net),
        0.005,
    ),
    claims.close(
        "Example 2.1",
        f"network, h = {1 - net_margin:g}·2/λ_max: increment rate = 1 − hλ⁺_min",
        slow_rate,
        slow_theory,
        2e-4,
    ),
    claims.close(
        "Example 2.1",
        f"network, h = {1 - net_margin:g}·2/λ_max: log₁₀(final loss / linear prediction)",
        np.log10(end_loss["below"] / loss_linear),
        0.0,
        0.02,
    ),
    claims.close(
        "Example 2.1",
        f"network, h = {1 - net_margin:g}·2/λ_max: (final ‖w − w*‖ − ‖P_flat δ‖) / r",
        (end_dist["below"] - flat_part) / radius,
        0.0,
        0.005,
    ),
    claims.at_least(
        "Example 2.1",
        f"network, h = {1 + net_margin:g}·2/λ_max: final ‖w − w*‖ / r (left w*)",
        end_dist["above"] / radius,
        100,
    ),
    claims.at_most(
        "Example 2.1 (converse)",
        f"network, h = {1 + net_margin:g}·2/λ_max: λ_max at the new minimum · h/2",
        end_sharp * h_net_runs["above"] / 2,
        1.0,
    ),
]
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)

# %% [markdown]
# **Reading.** The paper's statement holds exactly where its assumption does. On the
# quadratic the Hessian is positive definite and the linearization is the map itself: the
# contraction factor is $\max_i|1 - h\lambda_i|$ to round-off, below 1 exactly for
# $h < 2/\lambda_{\max}$, and iterating the map converges at $h = 0.98 \cdot 2/\lambda_{\max}$
# and diverges (to float64 overflow, at the predicted step) at $1.02 \cdot 2/\lambda_{\max}$.
# On the trained network two things differ from the example. The map is nonlinear, but near
# the minimum the difference is an $O(r^2)$ correction to the ratios, and the threshold
# $2/\lambda_{\max}$ separates convergence from escape as predicted. The Hessian, however,
# is not positive definite: an interpolating minimum of an over-parameterized network has
# $d - N$ exactly flat directions, so GD is a contraction only on the non-flat subspace, with
# a factor close to 1 set by the smallest positive eigenvalue, and merely non-expansive along
# the valley of minimizers; the iterates converge to a nearby minimizer, not to $w^*$. Above
# the threshold the escape does not end in divergence either: the iterates land at a
# flatter minimum with $\lambda_{\max} < 2/h$. For the paper's backward argument this means
# that the contraction hypothesis holds near a network's minimum only in the directions the
# data constrain.
