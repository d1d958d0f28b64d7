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
# # Example 3.2: learning dynamics near a minimum
#
# Near a minimum $\theta^*$ the paper {cite}`dherin2025iteration` linearizes the batch
# gradient, $\nabla L_{B_n}(\theta) \approx H(\theta - \theta^*) + \delta_n$, with $H$ the
# Hessian of the full loss and $\delta_n$ i.i.d. zero-mean noise of covariance $C$. With
# $e = \theta - \theta^*$ every SGD step becomes the affine map
# $T_n(e) = (I - hH)e - h\delta_n$: a matrix version of Example 3.1. This chapter takes $H$
# and $C$ from a real (small) network trained to a minimum, iterates these maps forward and
# backward through the library's engine, and compares the covariance of the iterates with the
# closed form, the solution of a discrete Lyapunov equation. It then checks the stability
# threshold $h < 2/\lambda_{\max}$, and finally asks how well the linear model describes the
# real, nonlinear SGD maps of the same network started at the minimum.

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seed = 0  # seed of every random draw in the chapter
n_points = 64  # synthetic regression points
width = 6  # hidden units of the one-hidden-layer tanh network
train_steps = 4000  # full-batch Nesterov steps to the minimum
train_lr = 0.04  # learning rate of that training
train_momentum = 0.95  # Nesterov momentum of that training
batch = 8  # mini-batch size b whose gradient noise is modelled
cov_batches = 2000  # mini-batches for the estimate of C
keep_ratio = 200  # keep the eigen-directions of H with λ ≥ λ_max / keep_ratio
h_lambda = 1.0  # h·λ_max of the linearized maps (a contraction for < 2)
steps = 1000  # N: each backward endpoint applies N maps
realizations = 3000  # independent noise sequences, advanced together
stability_h_lambda = [1.5, 3.0]  # h·λ_max below and above the threshold 2
stability_steps = 1500  # last recorded step of the stability runs
stability_every = 100  # record every this many steps
stability_realizations = 200  # realizations in the stability runs
sgd_h_lambda = [0.25, 1.0]  # h·λ_max of the real (nonlinear) SGD runs
sgd_steps = [1500, 600]  # N of the real SGD runs (matching sgd_h_lambda)
sgd_realizations = 400  # independent batch sequences of the real SGD runs

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "n_points": "int >= 1",
    "width": "int >= 1",
    "train_steps": "int >= 1",
    "train_lr": "float > 0",
    "train_momentum": "float in [0, 1)",
    "batch": "int >= 1",
    "cov_batches": "int >= 2",
    "keep_ratio": "float >= 1",
    "h_lambda": "float in (0, 2)",
    "realizations": "int >= 2",
    "stability_h_lambda": "list of float > 0",
    "stability_steps": "int >= 1",
    "stability_every": "int >= 1",
    "stability_realizations": "int >= 2",
    "sgd_h_lambda": "list of float in (0, 2)",
    "sgd_steps": "list of int >= 1",
    "sgd_realizations": "int >= 2",
}
rules = [
    "batch <= n_points",
    "stability_every <= stability_steps",
    "len(sgd_steps) == len(sgd_h_lambda)",
]

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import linalg, special, stats
from torch import nn

import backward_lib as bl
from backward_lib import ensemble, maps, models, optim, orders, record, schedule
from backward_lib.analysis import curvature
from companion import claims, plots, runcard

plots.use_style()
torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # tiny tensors: threads cost more than they save here
t_start = time.perf_counter()
runcard.show(
    profile,
    "Example 3.2 (Section 3.2) of Dherin et al. (2025)",
    data=f"synthetic regression, {n_points} points in R⁴, "
    "y = sin(1.5x₁) + 0.5x₂x₃ + N(0, 0.1²)",
    scale=f"MLP 4–{width}–1 (tanh); h·λ_max = {h_lambda}, N = {steps}, "
    f"{realizations} realizations; real SGD: h·λ_max ∈ {sgd_h_lambda}, "
    f"{sgd_realizations} realizations",
    seeds=f"{seed} (all draws derive from it)",
    device=runcard.device_name("cpu"),
)

# %% [markdown]
# ## A trained minimum: $H$ and $C$
#
# A one-hidden-layer tanh network (4–6–1, $d = 37$ parameters) fits 64 noisy points of a
# smooth function in float64. It cannot interpolate them, so the per-example gradients at the
# minimum do not vanish and mini-batch gradients are noisy there, as the example assumes.
# Training is full-batch Nesterov through the engine (batch size = data size).

# %%
gen = torch.Generator().manual_seed(seed)
x = torch.randn(n_points, 4, generator=gen)
y = torch.sin(1.5 * x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]
y = y + 0.1 * torch.randn(n_points, 1, generator=gen)
model = models.mlp(4, 1, 1, width, activation="tanh", init="lecun", seed=seed)
loss_fn = nn.functional.mse_loss
train = maps.network(
    model,
    loss_fn,
    maps.get("nesterov", train_lr, momentum=train_momentum),
    x,
    y,
    schedule.batches(n_points, n_points, train_steps, seed),
)
theta_star = bl.iterate(train, maps.params_of(model), orders.forward(), [train_steps])[
    train_steps
]
flat = curvature.flat_loss(model, loss_fn, x, y)
w_star = flat.pack(theta_star)
w_req = w_star.clone().requires_grad_(True)
(grad_star,) = torch.autograd.grad(flat(w_req), w_req)
print(
    f"d = {w_star.numel()}, loss {float(flat(w_star)):.5f}, "
    f"‖∇L(θ*)‖ = {float(grad_star.norm()):.2e}"
)

# %% [markdown]
# The Hessian $H = \nabla^2 L(\theta^*)$ comes from autograd. Its spectrum spans five
# decades, and the smallest eigenvalues are near zero, some slightly negative: along those
# directions the loss is nearly flat and training has not finished (nor would it in any
# reasonable number of steps). The linear model is meaningless there (its stationary variance
# $h^2 C_{ii}/(1-(1-h\lambda_i)^2) \approx hC_{ii}/(2\lambda_i)$ blows up as
# $\lambda_i \to 0$), so we **project them out**: we keep the $k$ eigen-directions with
# $\lambda \ge \lambda_{\max}/$`keep_ratio` and work in their coordinates
# $z = U_k^\top e$, where $H_k = U_k^\top H U_k$ is diagonal.

# %%
H = curvature.hessian(flat, w_star)
lam, U = torch.linalg.eigh(H)
lam_max = float(lam[-1])
kept = lam >= lam_max / keep_ratio
k = int(kept.sum())
U_k = U[:, kept]
H_k = U_k.T @ H @ U_k
lam_k = lam[kept].numpy()
print(
    f"λ_max = {lam_max:.3f}; kept k = {k} of {lam.numel()} directions "
    f"(λ ≥ {lam_max / keep_ratio:.3f}); dropped range [{float(lam[~kept].min()):.1e}, "
    f"{float(lam[~kept].max()):.1e}], {int((lam < 0).sum())} negative"
)

# %% mystnb={"figure": {"caption": "Absolute Hessian eigenvalues at the trained minimum, by index (log scale): the kept directions (filled) and the dropped ones (open; crosses: negative).", "name": "fig-near_minimum-spectrum"}, "image": {"alt": "Semi-log scatter plot of Hessian eigenvalue magnitudes against their index, marking kept, dropped and negative eigenvalues."}}
fig, ax = plt.subplots(figsize=(plots.WIDTH, 2.4))
order_idx = np.arange(1, lam.numel() + 1)
ax.semilogy(order_idx[kept], lam[kept], "o", ms=4, label="kept")
ax.semilogy(order_idx[~kept], lam[~kept].abs(), "o", ms=4, mfc="none", label="dropped")
neg = (lam < 0).numpy()
ax.semilogy(order_idx[neg], lam[neg].abs(), "kx", ms=6, label="dropped, negative")
ax.axhline(lam_max / keep_ratio, color="gray", ls="--", lw=1)
ax.axhline(2 / (h_lambda / lam_max), color="gray", ls=":", lw=1)
ax.text(
    1, lam_max / keep_ratio * 1.4, r"$\lambda_{\max}$ / keep ratio", fontsize="small"
)
ax.text(1, 2 * lam_max / h_lambda / 3, "2/h (stability limit)", fontsize="small")
ax.set(
    xlabel="eigenvalue index",
    ylabel="$|\\lambda_i|$",
    title="Spectrum of the Hessian at the trained minimum",
)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# The noise covariance $C$ is the covariance of the mini-batch gradients at $\theta^*$
# (batch size $b$ = 8), estimated with `curvature.gradient_covariance` over many batches.
# For batches drawn uniformly without replacement from $n$ examples it has a closed form
# from the per-example gradients $g_i$:
# $C = \frac{n-b}{b(n-1)} \cdot \frac1n \sum_i (g_i - \bar g)(g_i - \bar g)^\top$.

# %%
C_est = curvature.gradient_covariance(
    flat, w_star, schedule.batches(n_points, batch, cov_batches, seed + 1)
)
g_ex = curvature.batch_gradients(flat, w_star, torch.arange(n_points)[:, None])
g_ex = g_ex - g_ex.mean(0)
fpc = (n_points - batch) / (batch * (n_points - 1))  # finite-population factor
C_exact = fpc * g_ex.T @ g_ex / n_points
c_err = float((C_est - C_exact).norm() / C_exact.norm())
c_rms = float(
    ((C_exact.trace() ** 2 + C_exact.norm() ** 2) / cov_batches).sqrt() / C_exact.norm()
)
print(
    f"‖C_est − C‖_F/‖C‖_F = {c_err:.3f} (root-mean-square sampling error {c_rms:.3f})"
)

# %% [markdown]
# The estimate agrees with the closed form within its sampling error. The linearized maps
# below use the estimate $C_k = U_k^\top C_{\text{est}} U_k$; the real-SGD comparison at the
# end uses the exact moments, which are what real batches produce.
#
# ## The Lyapunov equation
#
# With $M = I - hH_k$, forward and backward iterates unroll as in Example 3.1,
#
# $$
# e_n = M^n e_0 - h\sum_{j=1}^{n} M^{n-j}\delta_j, \qquad
# \tilde e_n = M^n e_0 - h\sum_{j=1}^{n} M^{j-1}\delta_j ,
# $$
#
# and both have, as $n \to \infty$, covariance $\Sigma = h^2\sum_{j\ge0} M^j C M^{j\top}$,
# the solution of the discrete Lyapunov equation
#
# $$
# \Sigma = (I - hH)\,\Sigma\,(I - hH)^\top + h^2 C .
# $$
#
# We start at the minimum ($e_0 = 0$), draw $\delta_n \sim N(0, C_k)$, and hold all
# realizations in one tensor of shape $[R, k]$, so one engine call advances all of them.
# The noise of step $n$ is seeded by $n$: every chain, forward or backward, replays the same
# maps.


# %%
def linear_maps(h, n_real, noise_seed, C=None):
    """T_n(e) = (I − hH_k)e − hδ_n on the rows of e; δ_n ~ N(0, C) seeded by n."""
    M = torch.eye(k) - h * H_k
    L = torch.linalg.cholesky(C_k if C is None else C)

    def step(e, n):
        g = torch.Generator().manual_seed(noise_seed + n)
        z = torch.randn(n_real, k, generator=g)
        return e @ M.T - h * z @ L.T

    return step


def lyapunov(h, C):
    """Σ = MΣMᵀ + h²C with M = I − hH_k (scipy's discrete Lyapunov solver)."""
    M = (torch.eye(k) - h * H_k).numpy()
    return linalg.solve_discrete_lyapunov(M, h**2 * C.numpy())


C_k = U_k.T @ C_est @ U_k
h = h_lambda / lam_max
Sigma = lyapunov(h, C_k)
deficit = (1 - h * lam_k.min()) ** (2 * steps)  # Σ − Cov(ẽ_N) ≤ this × Σ
T_lin = linear_maps(h, realizations, 10_000 * (seed + 1))
start = torch.zeros(realizations, k)
ends = {
    name: bl.iterate(T_lin, start, order, [steps])[steps].numpy()
    for name, order in (("backward", orders.backward()), ("forward", orders.forward()))
}
print(f"h = {h:.4f}; finite-N deficit (1 − hλ_min)^(2N) = {deficit:.1e}")

# %% [markdown]
# The finite-$N$ covariance differs from $\Sigma$ by at most the printed fraction, far below
# the sampling error. We compare the empirical covariances
# $\hat\Sigma = \frac1R\sum_r e^{(r)} e^{(r)\top}$ (the mean is known to be 0) with $\Sigma$:
# the relative Frobenius error, and the variance along each eigenvector $u_i$ of $\Sigma$,
# $u_i^\top\hat\Sigma u_i$ against $\sigma_i^2 = u_i^\top\Sigma u_i$.

# %%
sig_var, sig_vec = np.linalg.eigh(Sigma)
rms_frob = np.sqrt((np.trace(Sigma) ** 2 + np.sum(Sigma**2)) / realizations)
rms_frob /= np.linalg.norm(Sigma)
rows = []
dir_var = {}
for name, e in ends.items():
    S_hat = e.T @ e / realizations
    dir_var[name] = ((e @ sig_vec) ** 2).mean(0)
    rows.append(
        {
            "order": name,
            "relative Frobenius error": np.linalg.norm(S_hat - Sigma)
            / np.linalg.norm(Sigma),
            "max |u_iᵀΣ̂u_i / σ_i² − 1|": np.abs(dir_var[name] / sig_var - 1).max(),
            "tr Σ̂ / tr Σ": np.trace(S_hat) / np.trace(Sigma),
        }
    )
lin_table = pd.DataFrame(rows)
print(
    f"root-mean-square Frobenius error expected from R = {realizations}: {rms_frob:.3f}"
)
lin_table

# %% [markdown]
# Both orders reproduce $\Sigma$ within the sampling error expected from $R$ Gaussian
# samples: backward endpoints and late forward iterates have the same law, the Lyapunov one
# (Theorem 2.6 in this example).
#
# ## Stability: $h < 2/\lambda_{\max}$
#
# The backward increments are $\tilde e_n - \tilde e_m = -h\sum_{j=m+1}^{n} M^{j-1}\delta_j$,
# so, in the eigenbasis of $H_k$ (where $M$ is diagonal with entries $1-h\lambda_i$),
#
# $$
# \mathbb E\,\|\tilde e_n - \tilde e_m\|^2
#   = R\,h^2 \sum_{j=m+1}^{n}\sum_i (1-h\lambda_i)^{2(j-1)}\,C_{ii} ,
# $$
#
# summed over the $R$ realizations of the tensor. They decay like
# $\rho^n$, $\rho = \max_i |1-h\lambda_i|$, when $h < 2/\lambda_{\max}$, and grow like
# $|1-h\lambda_{\max}|^n$ beyond it, until float64 overflows: `record` then marks the iterate
# as diverged. Forward increments at the stable $h$ keep their stationary size
# $\mathbb E\|e_n - e_m\|^2 = R\,[\operatorname{tr}\Sigma_n + \operatorname{tr}\Sigma_m -
# 2\operatorname{tr}(M^{n-m}\Sigma_m)]$, $\Sigma_m$ the covariance at step $m$.


# %%
def log_backward_increment(h, m, n, n_real):
    """log of the expected ‖ẽ_n − ẽ_m‖ (root of the sum above), overflow-safe."""
    j = np.arange(m + 1, n + 1)[:, None]
    log_terms = 2 * (j - 1) * np.log(np.abs(1 - h * lam_k)) + np.log(np.diag(C_k))
    return 0.5 * (np.log(n_real) + 2 * np.log(h) + special.logsumexp(log_terms))


def forward_increment(h, m, n, n_real):
    """Expected ‖e_n − e_m‖ of forward iterates from e_0 = 0 (stable h only)."""
    mult = 1 - h * lam_k
    s_inf = h**2 * np.diag(C_k) / (1 - mult**2)  # diagonal of Σ in this basis

    def var(t):
        return s_inf * (1 - mult ** (2 * t))

    sq = var(n) + var(m) - 2 * mult ** (n - m) * var(m)
    return np.sqrt(n_real * sq.sum())


grid = record.every(stability_every, stability_steps, first=stability_every)
stab = []
for s in stability_h_lambda:
    T_s = linear_maps(s / lam_max, stability_realizations, 20_000 * (seed + 1))
    df = record.record(
        T_s,
        torch.zeros(stability_realizations, k),
        {"forward": orders.forward(), "backward": orders.backward()},
        grid,
        {},
    )
    stab.append(df.assign(h_lambda=s))
stab = pd.concat(stab)
stab = stab[stab["metric"] == "increment"].copy()
prev = dict(zip(grid[1:], grid[:-1], strict=True))
stab["m"] = stab["step"].map(prev)


def log_theory(row):
    """log of the expected increment of this record row (NaN where not derived)."""
    h_s = row.h_lambda / lam_max
    if row.order == "backward":
        return log_backward_increment(h_s, row.m, row.step, stability_realizations)
    if row.h_lambda < 2:
        return np.log(forward_increment(h_s, row.m, row.step, stability_realizations))
    return np.nan


stab["log theory"] = stab.apply(log_theory, axis=1)
stab["log ratio"] = np.log(stab["value"]) - stab["log theory"]
first_div = stab[stab["diverged"]].groupby(["h_lambda", "order"])["step"].min()
print("first recorded step marked diverged:", first_div.to_dict())

# %% mystnb={"figure": {"caption": "Increments of the linearized iterates against step n, below (left) and above (right) hλ_max = 2: measured (dots) against expected (lines). Below, the backward increments fall and the forward ones stay; above, both grow.", "name": "fig-near_minimum-increments"}, "image": {"alt": "Two panels of log increment sizes against the step for forward and backward iterates, measured points with expected lines, and crosses where runs diverged."}}
fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.9), sharex=True)
for ax, s in zip(axes, stability_h_lambda, strict=True):
    part = stab[stab["h_lambda"] == s]
    for name in ("forward", "backward"):
        d = part[part["order"] == name]
        color = plots.ORDER_COLORS[name]
        ok = d[~d["diverged"]]
        big = name == "forward"  # hollow and larger: visible under coinciding dots
        ax.plot(
            ok["step"],
            np.log10(ok["value"]),
            "o",
            ms=6 if big else 3,
            mfc="none" if big else color,
            color=color,
            label=name,
        )
        ax.plot(ok["step"], ok["log theory"] / np.log(10), "-", lw=1, color=color)
        bad = d[d["diverged"]]
        if not bad.empty:
            ax.plot(
                bad["step"].iloc[0],
                1.0,
                "x",
                color=color,
                ms=12 if big else 8,  # larger: visible under a cross at the same step
                mew=2,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                label=f"{name} diverged",
            )
    side = "below" if s < 2 else "above"
    ax.set(xlabel="step n", title=f"$h\\lambda_{{\\max}}$ = {s} ({side} 2)")
# log10 on a linear axis: the growing increments reach 1e300, beyond log-axis tick range
axes[0].set_ylabel(f"$\\log_{{10}}\\|\\theta_n - \\theta_{{n-{stability_every}}}\\|$")
axes[0].legend(loc="lower left")
axes[1].legend(loc="lower right")  # the rising line leaves it empty
fig.suptitle("Increments over all realizations: measured (dots), expected (lines)")
plt.show()
# %% [markdown]
# Below the threshold the backward increments fall geometrically, as predicted, while the
# forward ones keep their stationary size; above it both orders grow at the predicted rate
# until the iterates overflow float64, and the crosses mark the first recorded step that
# `record` flags as diverged.
#
# ## The real SGD maps
#
# The linear model replaces the batch gradient by $H e + \delta_n$: it keeps the noise of the
# batch *gradient* and drops the noise of the batch *Hessian*. Linearizing the real batch map
# instead gives $T_n(e) = (I - hH_{B_n})e - h\delta_n$ with a random $H_{B_n}$ of mean $H$;
# since $e$ is independent of the batch that acts on it, its stationary covariance solves
#
# $$
# \Sigma_{\text{mult}} = M\Sigma_{\text{mult}}M^\top
#   + h^2\,\mathbb E\big[(H_B - H)\,\Sigma_{\text{mult}}\,(H_B - H)\big] + h^2 C ,
# $$
#
# a linear system in the $k^2$ entries of $\Sigma_{\text{mult}}$, whose coefficients come
# from the per-example Hessians with the same finite-population factor as $C$. The extra term
# is of relative size $h\,\mathbb E\|H_B - H\|^2/\lambda$: it vanishes as $h \to 0$ and is
# of order one at $h \approx 1/\lambda_{\max}$ when batches are small.

# %%
H_ex = torch.stack(
    [curvature.hessian(flat, w_star, torch.tensor([i])) for i in range(n_points)]
)
D_k = U_k.T @ (H_ex - H_ex.mean(0)) @ U_k  # [n, k, k] per-example deviations
K4 = fpc * torch.einsum("nij,nkl->ijkl", D_k, D_k) / n_points  # E[ΔH_ij ΔH_kl]
C_k_exact = U_k.T @ C_exact @ U_k


def lyapunov_mult(h):
    """Σ = MΣMᵀ + h²E[ΔH Σ ΔH] + h²C as one linear system in vec(Σ)."""
    M = torch.eye(k) - h * H_k
    A = torch.einsum("ik,jl->ijkl", M, M) + h**2 * K4.permute(0, 2, 1, 3)
    A = A.reshape(k * k, k * k)
    vec = torch.linalg.solve(torch.eye(k * k) - A, h**2 * C_k_exact.reshape(-1))
    return vec.view(k, k).numpy()


print(f"‖E[H_ex] − H‖_max = {float((H_ex.mean(0) - H).abs().max()):.1e}")

# %% [markdown]
# The real SGD map of batch $n$ is $\theta \mapsto \theta - h\nabla L_{B_n}(\theta)$ on the
# full 37-parameter network, with batches drawn i.i.d. (a fresh uniform 8-subset at every
# step, as the example assumes; the library's epoch schedule would correlate the noise of
# one epoch). To run hundreds of realizations at once, the map below evaluates all of them in
# one tensor of shape $[R, d]$ (the library's training step, vmapped over the rows:
# `ensemble.flat_network`); it is checked against `maps.network` on single realizations
# right after.


# %%
def sgd_ensemble(h, n_real, noise_seed):
    """The real SGD maps T_n(θ) = θ − h∇L_{B_n}(θ) of n_real realizations at once."""
    batches = ensemble.iid_batches(n_points, batch, n_real, noise_seed)
    return ensemble.flat_network(
        flat, optim.sgd(h), batches
    )  # the library's step, vmapped


check_steps, sgd_seed = 20, 30_000 * (seed + 1)
T_ens = sgd_ensemble(1 / lam_max, 3, sgd_seed)
W_ens = bl.iterate(
    T_ens, w_star.expand(3, -1).clone(), orders.backward(), [check_steps]
)
ens_err = []
for r in range(3):
    sched = torch.stack(
        [
            ensemble.iid_batches(n_points, batch, 3, sgd_seed)(n)[r]
            for n in range(1, check_steps + 1)
        ]
    )
    T_r = maps.network(model, loss_fn, maps.sgd(1 / lam_max), x, y, sched)
    th = bl.iterate(T_r, flat.unpack(w_star.clone()), orders.backward(), [check_steps])
    ens_err.append(
        float((flat.pack(th[check_steps]) - W_ens[check_steps][r]).abs().max())
    )
print(
    f"vectorized vs maps.network, {check_steps} backward steps: max |Δθ| = {max(ens_err):.1e}"
)

# %% [markdown]
# Now the backward endpoints $\tilde\theta_N = T_1\circ\dots\circ T_N(\theta^*)$ of the real
# maps, projected on the kept directions ($z = U_k^\top(\tilde\theta_N - \theta^*)$), against
# both closed forms: the paper's additive model $\Sigma$ (with the exact $C$) and
# $\Sigma_{\text{mult}}$.

# %%
sgd_rows, sgd_dir = [], {}
for s, n_steps in zip(sgd_h_lambda, sgd_steps, strict=True):
    h_s = s / lam_max
    T_sgd = sgd_ensemble(h_s, sgd_realizations, sgd_seed + 1000 * n_steps)
    W0 = w_star.expand(sgd_realizations, -1).clone()
    W_end = bl.iterate(T_sgd, W0, orders.backward(), [n_steps])[n_steps]
    z = ((W_end - w_star) @ U_k).numpy()
    S_hat = np.cov(z.T)
    dropped = (W_end - w_star) - (W_end - w_star) @ U_k @ U_k.T  # flat directions
    S_add, S_mult = lyapunov(h_s, C_k_exact), lyapunov_mult(h_s)
    if s == h_lambda:
        sgd_dir = {
            "real": np.einsum("ir,ij,jr->r", sig_vec, S_hat, sig_vec),
            "mult": np.einsum("ir,ij,jr->r", sig_vec, S_mult, sig_vec),
        }
    for name, S in (("additive (paper)", S_add), ("batch Hessian", S_mult)):
        sd = np.sqrt(2 * np.sum(S * S) / (sgd_realizations - 1)) / np.trace(S)
        sgd_rows.append(
            {
                "h·λ_max": s,
                "N": n_steps,
                "model": name,
                "tr Σ̂ / tr Σ_model": np.trace(S_hat) / np.trace(S),
                "sd": sd,
                "rel. Frobenius error": np.linalg.norm(S_hat - S) / np.linalg.norm(S),
                "rms move, kept": np.sqrt((z**2).sum(1).mean()),
                "rms move, dropped": float(dropped.norm(dim=1).pow(2).mean().sqrt()),
            }
        )
sgd_table = pd.DataFrame(sgd_rows)
sgd_table

# %% [markdown]
# The batch-Hessian model matches the real SGD maps within the sampling error at both step
# sizes. The paper's additive model misses the batch-Hessian term, whose share grows about
# linearly with $h$ (right panel): a few percent at $h\lambda_{\max}$ = 0.25, comparable
# with the sampling error of the runs, and most of the variance at $h\lambda_{\max}$ = 1
# (the z-scores are in the claims below). The
# left panel collects the variances along the eigenvectors of $\Sigma$ at
# $h\lambda_{\max}$ = 1; the right one follows the ratio of the two closed forms as
# $h \to 0$, with the real SGD runs on it.

# %% mystnb={"figure": {"caption": "Left: variance along each eigenvector, measured against the Lyapunov prediction (identity: grey). Right: total variance over the additive model's against hλ_max: where the additive model holds.", "name": "fig-near_minimum-covariance"}, "image": {"alt": "Two panels: a scatter of measured against predicted variances with an identity line, and a ratio of variances against the product of learning rate and top eigenvalue."}}
h_grid = np.geomspace(0.01, 1.2, 15)
ratio_curve = [
    np.trace(lyapunov_mult(s / lam_max)) / np.trace(lyapunov(s / lam_max, C_k_exact))
    for s in h_grid
]
add_rows = sgd_table[sgd_table["model"] == "additive (paper)"]
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(plots.WIDTH, 3.3))
lims = np.array([sig_var.min() / 2, sig_var.max() * 4])
ax.plot(lims, lims, color="gray", lw=1, label="Lyapunov $\\Sigma$ (identity)")
for name in ("backward", "forward"):
    ax.plot(
        sig_var,
        dir_var[name],
        "o",
        ms=4,
        mfc="none",
        color=plots.ORDER_COLORS[name],
        label=f"linear maps, {name}",
    )
if sgd_dir:
    ax.plot(
        sig_var,
        sgd_dir["real"],
        "^",
        ms=4,
        color=plots.OKABE_ITO["bluish green"],
        label="real SGD, backward",
    )
    ax.plot(
        sig_var,
        sgd_dir["mult"],
        "k_",
        ms=8,
        mew=1.5,
        label="$\\Sigma_{\\mathrm{mult}}$",
    )
ax.set(
    xscale="log",
    yscale="log",
    xlim=lims,
    ylim=lims,
    xlabel="$u_i^\\top \\Sigma u_i$ (Lyapunov)",
    ylabel="variance along $u_i$",
    title=f"$h\\lambda_{{\\max}}$ = {h_lambda}, k = {k} directions",
)
ax2.plot(
    h_grid,
    ratio_curve,
    "k-",
    lw=1,
    label="tr $\\Sigma_{\\mathrm{mult}}$ / tr $\\Sigma$",
)
ax2.errorbar(
    add_rows["h·λ_max"],
    add_rows["tr Σ̂ / tr Σ_model"],
    yerr=2 * add_rows["sd"],
    fmt="^",
    color=plots.OKABE_ITO["bluish green"],
    label="real SGD: tr $\\hat\\Sigma$ / tr $\\Sigma$ (±2 sd)",
)
ax2.axhline(1, color="gray", lw=1)
ax2.set(
    xscale="log",
    xlabel="$h\\lambda_{\\max}$",
    ylabel="variance / additive model's",
    title="where the additive model holds",
)
plots.legend_below(fig, ncol=3, fontsize="small")  # inside, it would cover points
plt.show()

# %% [markdown]
# ## Claims
#
# Tolerances. The linearized iterates are exactly Gaussian, so
# $R\,u_i^\top\hat\Sigma u_i/\sigma_i^2 \sim \chi^2_R$, independent across the eigenvectors
# of $\Sigma$: we allow the two-sided 0.1% band of the maximum over the $k$ directions
# (Bonferroni), from the $\chi^2$ quantiles. The relative
# Frobenius error is allowed three times its root-mean-square value under the Wishart law,
# $\sqrt{((\operatorname{tr}\Sigma)^2 + \|\Sigma\|_F^2)/R}/\|\Sigma\|_F$; the same bound
# serves for the estimate of $C$ (its batch gradients are means of 8 examples, close to
# Gaussian). An increment summed over $R_s$ realizations is a sum of at least $R_s$
# independent squared Gaussians, so its relative standard deviation is at most
# $1/\sqrt{2R_s}$; we allow five of them in its logarithm at every recorded step. The
# minimum is accepted when the offset $H^+\nabla L(\theta^*)$ to the quadratic model's
# minimum is below 5% of the stationary standard deviation in every kept direction. A trace
# ratio of the real SGD runs has standard deviation
# $\sqrt{2\|\Sigma\|_F^2/(R-1)}/\operatorname{tr}\Sigma$ (Gaussian approximation); agreement
# means within four of them. The vectorized SGD map must equal `maps.network` to round-off
# ($10^{-12}$). The paper's additive model against real SGD is a *finding*: its verdict is
# reported, not enforced.

# %%
lo, hi = stats.chi2.ppf([0.0005 / k, 1 - 0.0005 / k], realizations) / realizations
dir_tol = max(1 - lo, hi - 1)
inc_tol = 5 / np.sqrt(2 * stability_realizations)
below, above = min(stability_h_lambda), max(stability_h_lambda)
stab_ok = stab[~stab["diverged"] & stab["log theory"].notna()]
b_below = stab[(stab["h_lambda"] == below) & (stab["order"] == "backward")]
offset = np.abs((U_k.T @ grad_star).numpy() / lam_k) / np.sqrt(np.diag(Sigma))
sgd_idx = sgd_table.set_index(["h·λ_max", "model"])
results = [
    claims.at_most(
        "Example 3.2",
        "C from mini-batches = closed form: rel. Frobenius error / its rms",
        c_err / c_rms,
        3.0,
    ),
    claims.at_most(
        "Example 3.2",
        "θ* is a minimum: max over kept directions |H⁺∇L| / σ_i",
        offset.max(),
        0.05,
    ),
]
for name in ("backward", "forward"):
    row = lin_table.set_index("order").loc[name]
    results += [
        claims.at_most(
            "Example 3.2",
            f"{name} endpoints: covariance = Lyapunov Σ, rel. Frobenius error / rms",
            row["relative Frobenius error"] / rms_frob,
            3.0,
        ),
        claims.at_most(
            "Example 3.2",
            f"{name} endpoints: variance along every eigenvector of Σ",
            row["max |u_iᵀΣ̂u_i / σ_i² − 1|"],
            dir_tol,
        ),
    ]
for (s, name), part in stab_ok.groupby(["h_lambda", "order"]):
    results.append(
        claims.at_most(
            "Example 3.2",
            f"hλ_max = {s}: {name} increments = closed form (max |log ratio|)",
            part["log ratio"].abs().max(),
            inc_tol,
        )
    )
results += [
    claims.at_most(
        "Example 2.1",
        f"hλ_max = {below}: backward increments decay (last / first)",
        b_below["value"].iloc[-1] / b_below["value"].iloc[0],
        1e-3,
    ),
    claims.close(
        "Example 2.1",
        f"hλ_max = {below}: no recorded iterate diverged",
        int(stab[stab["h_lambda"] == below]["diverged"].sum()),
        0,
        0,
    ),
    claims.at_most(
        "Example 2.1",
        f"hλ_max = {above}: backward iterates diverge (first marked step)",
        first_div.get((above, "backward"), np.inf),
        stability_steps,
    ),
    claims.at_most(
        "Example 3.2",
        "vectorized real SGD map = maps.network (max |Δθ|)",
        max(ens_err),
        1e-12,
    ),
    claims.close(
        "Example 3.2",
        "batch-Hessian term vanishes as h → 0: tr Σ_mult / tr Σ at hλ_max = 0.01",
        ratio_curve[0],
        1.0,
        0.02,
    ),
]
for s in sgd_h_lambda:
    r = sgd_idx.loc[(s, "batch Hessian")]
    results.append(
        claims.close(
            "beyond Example 3.2",
            f"real SGD, hλ_max = {s}: z-score of tr Σ̂ / tr Σ_mult − 1",
            (r["tr Σ̂ / tr Σ_model"] - 1) / r["sd"],
            0.0,
            4.0,
        )
    )
for s in sgd_h_lambda:
    r = sgd_idx.loc[(s, "additive (paper)")]
    results.append(
        claims.finding(
            "Example 3.2",
            f"real SGD, hλ_max = {s}: z-score of tr Σ̂ / tr Σ (additive model) − 1",
            (r["tr Σ̂ / tr Σ_model"] - 1) / r["sd"],
            0.0,
            "close",
            4.0,
        )
    )
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)

# %% [markdown]
# **Reading.** The paper's Example 3.2 holds exactly as stated for the maps it writes down:
# with a real Hessian and a real gradient-noise covariance, backward endpoints and late
# forward iterates of $T_n(e) = (I-hH)e - h\delta_n$ both have the Lyapunov covariance, the
# backward increments decay at the rate $\max_i|1-h\lambda_i|$ for $h < 2/\lambda_{\max}$,
# and both orders blow up beyond it. Two of the example's assumptions need care on a real
# network. First, $H$ is not positive definite in practice: about half of this network's 37
# directions are nearly flat (some slightly negative), where $1 - h\lambda_i \approx 1$, no
# map contracts, and neither the backward limit nor the stationary law exists within any
# practical number of steps; the chapter projects them out, and the real SGD runs drift along
# them. Second, the linearized batch map carries the batch Hessian, not the full one. For
# small $h$ the difference is small and the paper's additive model describes real SGD near
# the minimum; at $h = 1/\lambda_{\max}$ with batches of 8 it underestimates the stationary
# variance by tens of percent up to a factor two (1.9 with the default seed; 1.7 and 1.3
# with seeds 1 and 2), while the model with the batch-Hessian term matches. The qualitative conclusion of the example (backward SGD converges to a point
# whose law is the forward stationary law) survives, since the maps remain contractions on
# average in the kept directions; the closed form of that law needs the extra term.
