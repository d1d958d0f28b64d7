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
# # Appendix D.2.1: training with the order-average regularizer
#
# The previous chapter showed that the average over all orders of $k$ small SGD steps on
# the sub-batches of a batch $B$ is, to second order in $h$, one gradient step on
#
# $$
# \tilde L_B = L_B + \lambda\Big(-\frac h4 \|\nabla L_B\|^2
#   + \frac{h}{4k^2} \sum_{a=1}^k \|\nabla L_{B_a}\|^2\Big)
# $$
#
# with $\lambda = 1$. Appendix D.2.1 of the paper {cite}`dherin2025iteration` trains the
# Fashion-MNIST MLP (5 × 500) {cite}`xiao2017fashion` with this step for several weights
# $\lambda$ and three numbers of sub-batches $k$, against large-batch training (batch $b$,
# learning rate $h$) and small-batch training (batch $b/k$, learning rate $h/k$, the same
# examples in the same order), and reports that the regularizer "can outperform vanilla
# training both for large and small batches with minimal tuning of $\lambda$". The paper
# gives neither $h$, $b$, $k$ nor $\lambda$; the values here are ours (see the parameters and
# the note below).

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seeds = [0, 1, 2, 3, 4]  # model init, batch schedule and evaluation subsets
steps = 1000  # large-batch steps (small-batch runs take k times as many)
lr = 0.01  # h: not given in the paper (our choice, see below)
batch_size = 48  # b: not given; divisible by every k
ks = [2, 3, 4]  # numbers of sub-batches: three, as in the paper (values not given)
lams = [0.25, 0.5, 1.0]  # weights λ of the regularizer (λ = 1: the order average)
width = 1.0  # multiplies the 500 hidden units (paper: 5 × 500)
depth = 5  # hidden layers
init = "he"  # He-normal weights: the paper does not state its initialization
record_every = 10  # recorded large steps
late = 0.2  # the last fraction of training whose test loss is compared
train_eval = 2000  # training examples for the training loss
test_eval = 10000  # test examples for the test loss
device = "cpu"

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "ks": "list of int >= 2",
    "lams": "list of float > 0",
    "late": "float in (0, 1]",
}
rules = ["record_every <= steps"]

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from backward_lib import describe, experiment, maps, orders, record
from backward_lib.analysis import approx, stability
from companion import claims, plots, runcard

plots.use_style()
t_start = time.perf_counter()
grid = record.every(record_every, steps)


def train(prep, T, k=1):
    """Test and training loss along the forward run of T, at the large steps of the grid
    (a small-batch run takes k steps per large step)."""
    model, loss_fn = prep.model, prep.T.objective.loss_fn
    metrics = {
        "train_loss": record.loss_metric(model, loss_fn, *prep.probe.train),
        "test_loss": record.loss_metric(model, loss_fn, *prep.probe.test),
    }
    df = record.record(T, prep.theta0, {"forward": orders.forward()}, [n * k for n in grid],
                       metrics, seed=prep.exp.seed, increment=False)  # fmt: skip
    return df.assign(step=df["step"] // k)


runs, check_zero = [], None
for seed in seeds:
    exp = experiment.Experiment(
        width=width, depth=depth, init=init, lr=lr, batch_size=batch_size, steps=steps,
        train_eval=train_eval, test_eval=test_eval, seed=seed, device=device,
    )  # fmt: skip
    prep = experiment.prepare(exp)
    model, loss_fn = prep.model, prep.T.objective.loss_fn
    x, y, sched = prep.T.x, prep.T.y, prep.T.schedule
    runs.append(train(prep, prep.T).assign(method="large batch", k=0))
    for k in ks:
        small = sched.reshape(
            steps * k, batch_size // k
        )  # B_1..B_k of each batch, in order
        T = maps.network(model, loss_fn, maps.sgd(lr / k), x, y, small)
        runs.append(train(prep, T, k).assign(method="small batch", k=k))
        for lam in lams:
            T = approx.order_average(model, loss_fn, x, y, sched, lr, k, lam)
            runs.append(train(prep, T).assign(method=f"λ = {lam:g}", k=k))
    if check_zero is None:  # λ = 0 must be large-batch SGD: run it once
        T = approx.order_average(model, loss_fn, x, y, sched, lr, ks[0], 0.0)
        check_zero = (train(prep, T), runs[0])
df = pd.concat(runs, ignore_index=True)
seconds = time.perf_counter() - t_start
card = describe.card(prep, seeds, seconds)
card["training"] = (
    f"SGD; large batch b = {batch_size}, lr h = {lr}, {steps} steps; small batch b/k, lr "
    f"h/k, {steps}·k steps; regularized: batch b, lr h, k ∈ {ks}, λ ∈ {lams}"
)
card["orders"] = (
    f"forward (ordinary training); recorded every {record_every} large steps"
)
runcard.show(profile, "Appendix D.2.1 of Dherin et al. (2025)", **card)
runcard.results(df, "every recorded value (method, k, seed, step, metric)")

# %% [markdown]
# ## Settings
#
# The regularizer is a second-order term: it means what the previous chapter says only
# while $h\lambda_{\max}(\nabla^2 L)$ is small, and it adds $-\frac h4\|\nabla L_B\|^2$,
# a term that rewards large gradients. We take $h$ = 0.01 with $b$ = 48 (so that
# $k$ = 2, 3, 4 divide it): the largest learning rate at which the $\lambda \le 1$ runs
# stayed finite over the book's steps in our trials; with $h$ = 0.05 every regularized run
# diverged, and with $h$ = 0.01 the runs with $\lambda \ge 2$ diverged within a few hundred
# steps. At $h$ = 0.005 all runs are stable and their differences a few thousandths of the
# loss. The small-batch runs see the same examples in the same order as the large-batch
# ones (batch $n$ is split into its $k$ sub-batches), so all runs use the same data per
# large step.
#
# ## Curves
#
# First the raw curves for the largest $k$: mean over seeds (lines) and range over seeds
# (bands). All methods fall together; their differences are a few hundredths of the loss.

# %% mystnb={"figure": {"caption": "Training (left) and test (right) loss against large-batch steps for the largest k: large batch, small batches and the order-averaged steps for each weight λ (greens); bands span the seeds.", "name": "fig-order_average_experiment-curves"}, "image": {"alt": "Two panels of loss curves against large-batch steps for large-batch, small-batch and order-averaged training, with shaded ranges over seeds."}}
colors = {
    "large batch": plots.ORDER_COLORS["forward"],
    "small batch": plots.OKABE_ITO["orange"],
}
greens = sns.color_palette("Greens", len(lams) + 1).as_hex()[1:]
colors.update({f"λ = {lam:g}": c for lam, c in zip(lams, greens, strict=True)})


def band(ax, d, method, y="value"):
    s = d[d["method"] == method].groupby("step")[y].agg(["mean", "min", "max"])
    ax.plot(s.index, s["mean"], color=colors[method], lw=1, label=method)
    ax.fill_between(s.index, s["min"], s["max"], color=colors[method], alpha=0.15)


fig, axes = plt.subplots(1, 2, figsize=(plots.WIDTH, 2.6), sharey=True)
part = df[(df["k"] == ks[-1]) | (df["method"] == "large batch")]
for ax, metric in zip(axes, ("train_loss", "test_loss"), strict=True):
    for method in colors:
        band(ax, part[part["metric"] == metric], method)
    ax.set(
        title=f"{metric.replace('_', ' ')}, k = {ks[-1]}", xlabel="large-batch steps"
    )
axes[1].legend(loc="upper right", fontsize="small")
plt.show()

# %% [markdown]
# The differences are clearer paired: each run minus the large-batch run of the same seed
# (same initialization, same examples), one row per $k$. Below zero is better than large
# batch.

# %% mystnb={"figure": {"caption": "Each run's loss minus the large-batch run of the same seed, against large-batch steps, one row per k; below zero is better than large batch.", "name": "fig-order_average_experiment-paired"}, "image": {"alt": "A grid of panels, rows by k and columns training and test loss, of loss differences to the large-batch run against the step."}}
base = df[df["method"] == "large batch"].set_index(["metric", "seed", "step"])["value"]
paired = df[df["method"] != "large batch"].copy()
key = pd.MultiIndex.from_frame(paired[["metric", "seed", "step"]])
paired["Δ"] = paired["value"].to_numpy() - base.reindex(key).to_numpy()
fig, axes = plt.subplots(len(ks), 2, figsize=(plots.WIDTH, 1.9 * len(ks)), sharex=True,
                         sharey="col", squeeze=False)  # fmt: skip
for row, k in zip(axes, ks, strict=True):
    for ax, metric in zip(row, ("train_loss", "test_loss"), strict=True):
        d = paired[(paired["k"] == k) & (paired["metric"] == metric)]
        ax.axhline(0, color=colors["large batch"], lw=1, label="large batch (Δ = 0)")
        for method in list(colors)[1:]:
            band(ax, d, method, "Δ")
        ax.set_ylabel(f"Δ {metric.replace('_', ' ')}\nk = {k}")
for ax in axes[-1]:
    ax.set_xlabel("large-batch steps (= examples / b)")
fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(colors),
           bbox_to_anchor=(0.5, 1.0), fontsize="small")  # fmt: skip
plt.show()

# %% [markdown]
# ## Late test loss
#
# The comparison the paper makes is of test loss. Learning curves at this learning rate
# oscillate, so we average each run's test loss over the last `late` fraction of training,
# then give mean and standard deviation over seeds.

# %%
tail = df[df["step"] > (1 - late) * steps]
late_loss = tail.groupby(["metric", "k", "method", "seed"])["value"].mean()
per_run = late_loss.loc["test_loss"]
large = per_run.xs(0, level="k").xs("large batch", level="method")
stats = late_loss.groupby(level=["metric", "k", "method"]).agg(["mean", "std"])
table = (
    stats.unstack("metric")
    .swaplevel(axis=1)
    .sort_index(axis=1, ascending=[False, True])
)
table.round(4)

# %% [markdown]
# The paired difference per seed (same initialization and batches) between the better of
# the two baselines and the regularized run: positive means the regularizer wins.


# %%
def advantage(k, method):
    """Per seed: min(large, small) − regularized late test loss."""
    small = per_run.loc[k, "small batch"]
    best = np.minimum(large.to_numpy(), small.reindex(large.index).to_numpy())
    return pd.Series(
        best - per_run.loc[k, method].reindex(large.index).to_numpy(), large.index
    )


adv = pd.DataFrame(
    {(k, f"λ = {lam:g}"): advantage(k, f"λ = {lam:g}") for k in ks for lam in lams}
)
# mean over seeds and its two-sided 95% t-interval (Student t with seeds − 1 degrees of freedom)
summary = pd.DataFrame(
    {col: stability.mean_interval(adv[col].to_numpy()) for col in adv}
).T
summary.index = summary.index.set_names(["k", "method"])
summary.round(4)

# %% [markdown]
# **Reading.** With $\lambda = 1$ the regularized runs end with a lower test loss than
# large-batch training for every $k$ and, on average over seeds, lower than small-batch
# training; $\lambda = 0.5$ gives less. The training loss moves by the same amounts as the test loss:
# at this scale the term acts by speeding up optimization (it removes part of the large
# step's implicit gradient-norm penalty, $-\frac h4 \|\nabla L_B\|^2$ in expectation up to
# the factor $1 - 1/k$), not by closing a generalization gap, which a few hundred steps on
# the full training set do not open. The margins are a few hundredths of the loss, of the
# size of the step-to-step oscillations at this learning rate, so the verdicts below depend
# on the seeds and on the number of steps; larger weights or learning rates diverge.

# %% [markdown]
# ## Claims
#
# Check: with $\lambda = 0$ the order-average step map is large-batch SGD, so its run must
# reproduce the large-batch curve (to $10^{-5}$ in float32 loss). Findings: the paper's
# claim that the regularizer beats both baselines on test loss, for each $k$ with the order
# average itself ($\lambda = 1$), and with the best of our $\lambda$ for each $k$ (tuned on
# the same test loss, as "minimal tuning" does, so biased in the regularizer's favour; it
# is one finding per $k$). A finding agrees when the two-sided 95% t-interval over seeds of
# the paired advantage lies above 0, disagrees when it lies below, and is inconclusive when it
# contains 0 (with 3 seeds the t quantile is 4.30: only large, consistent margins decide).

# %%
a, b = (d[d["metric"] == "test_loss"].set_index("step")["value"] for d in check_zero)
best = {
    k: summary.loc[k, "mean"].idxmax() for k in ks
}  # λ tuned per k on the mean advantage


def _advantage(k, method, what, same_as=None):
    row = summary.loc[(k, method)]
    return claims.interval("D.2.1", f"k = {k}, {what}: test-loss advantage over the better baseline > 0 "
                           f"({len(seeds)} seeds)", row["mean"], row["low"], row["high"], 0.0, "above",
                           same_as=same_as)  # fmt: skip


results = [
    claims.at_most("D.2", "λ = 0 reproduces large-batch SGD (max |Δ test loss|)",
                   float((a - b).abs().max()), 1e-5),
    *[_advantage(k, "λ = 1", "λ = 1") for k in ks],
    # where the tuned λ is 1 the finding is the one above: shown, counted once
    *[_advantage(k, best[k], f"best λ ({best[k]}, tuned on test loss)",
                 "D.2.1 at λ = 1" if best[k] == "λ = 1" else None) for k in ks],
]  # fmt: skip
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)
