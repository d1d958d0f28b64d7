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
# # Figure 3: a reset, and backward settles again
#
# The paper trains an MLP with 5 hidden layers of 500 units on Fashion-MNIST
# {cite}`xiao2017fashion` with SGD (lr 0.001, batch 8) for 2000 steps and records the test
# accuracy at every step {cite}`dherin2025iteration`. Until step 1000 the backward iterate
# $\tilde\theta_n = T_1 \circ \dots \circ T_n(\theta_0)$ is computed from $\theta_0$; at step
# $r = 1000$ it is *reset*: from then on
# $\tilde\theta_n = T_{r+1} \circ \dots \circ T_n(\theta_r)$, starting from the forward
# parameter $\theta_r$. The paper reads the figure as: the backward curve converges, the reset
# sends it to a new point, and it converges again, while the forward curve keeps oscillating.
#
# This chapter runs the same procedure, scaled for a CPU in the `book` profile (steps, width,
# seeds and recording density; optimizer, learning rate and batch size are the paper's), and
# measures what the figure shows.

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
seeds = [0, 1, 2]  # one row per seed, as in the paper
steps = 2000  # training steps
reset_at = 1000  # step r of the reset (or of the switch to backward)
switch = (
    "reset"  # reset: backward, then from θ_r; delayed: forward, then backward from θ_s
)
figure = "Fig. 3"  # the paper's figure (claims' source)
lr = 0.001  # SGD learning rate (paper: 0.001)
batch_size = 8  # paper: 8
width = 1.0  # multiplies the 500 hidden units
depth = 5  # hidden layers (paper: 5)
init = "he"  # He-normal weights: the paper does not state its initialization
record_every = 1  # record every k-th step (paper: every step)
train_eval = 2000  # training examples for the training loss
test_eval = 10000  # test examples for test loss and accuracy
device = "cpu"
chain_batch = 1  # chains advanced together with vmap (use 32-128 on a GPU)
executor = (
    "sequential"  # sequential | batched (vmap, GPU) | ray (workers: local or cluster)
)

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "reset_at": "int >= 1",
    "switch": "one of reset, delayed",
}
rules = ["reset_at < steps", "record_every <= steps"]

# %%
from backward_lib import experiment
from backward_lib.analysis import stability
from companion import claims, plots, runcard

plots.use_style()
order = f"{switch}:{reset_at}"  # reset: backward before r; delayed: forward before s
base = experiment.Experiment(
    dataset="fashion_mnist", model="mlp", width=width, depth=depth, init=init,
    optimizer="sgd", lr=lr, batch_size=batch_size, steps=steps,
    orders=("forward", order), record_every=record_every,
    forward_every=record_every, train_eval=train_eval, test_eval=test_eval,
    device=device, chain_batch=chain_batch, executor=executor,
)  # fmt: skip
df, prep, seconds = experiment.run_seeds(base, seeds)
label = f"backward ({switch} at {reset_at})"
df["order"] = df["order"].replace({order: label})
runcard.show(
    profile,
    f"{figure} of Dherin et al. (2025)",
    **experiment.card(prep, seeds, seconds),
)
runcard.results(df, "every recorded value (order, seed, step, metric)")

# %% [markdown]
# ## The figure
#
# Test accuracy of the forward iterate and of the backward iterate with the reset, one row
# per seed. The dotted line marks the reset.

# %%
fig = plots.curves(df, "test_accuracy", title=f"Test accuracy ({figure})")
for ax in fig.axes:
    ax.axvline(reset_at, color="gray", ls=":", lw=1)

# %% [markdown]
# ## What moves, and what settles
#
# Three measures between consecutive recorded steps, before and after the reset, per order:
# the mean absolute change of the test accuracy (the curve's step-to-step variation), the
# distance travelled in parameter space $\|\theta_{n+k} - \theta_n\|$, and in function space
# the fraction of test predictions that change. Backward "converges to a point" should show
# as all three shrinking along the backward curve.

# %%
orders = ("forward", label)
windows = {
    f"before {switch}": dict(lo=1, hi=reset_at),
    f"after {switch}": dict(lo=reset_at + 1),
}
if (
    switch == "delayed"
):  # before s both orders are the forward iterate: nothing to compare
    windows.pop(f"before {switch}")
moves = stability.movement_table(df, orders, windows)
moves.round(4)

# %% [markdown]
# Along each curve, the same two distances step by step (log scale): a backward iterate that
# converges to a point shows them falling; a forward iterate that samples a distribution
# keeps them level.

# %%
fig = plots.curves(
    df, "pred_change", logy=True, title="Fraction of test predictions that change"
)
fig = plots.curves(
    df, "increment", logy=True, title="Parameter distance between recorded steps"
)

# %% [markdown]
# **Reading.** The table and the curves separate two notions of "moving". In function space
# (predictions, accuracy) the backward iterate moves less than the forward one, most clearly
# after step $r$, when its chains start from the trained $\theta_r$: this is the stability the
# paper's figure shows. In parameter space the two are closer, and the backward iterate can
# even move more: two consecutive backward iterates differ by the first maps applied, at the
# start point, carried through $n$ maps that barely contract along directions the network's
# output does not depend on. The findings below say which measures agree with the paper at
# this scale.

# %% [markdown]
# ## Claims
#
# Checks (must hold, else the chapter fails): at step 1 both orders are the same iterate; right
# after the reset, $\tilde\theta_{r+1} = T_{r+1}(\theta_r) = \theta_{r+1}$, so the two curves
# meet there. Findings (the paper's claims at this scale, reported either way): forward moves
# more than backward, i.e. the ratio forward/backward of each measure above is greater than 1.
# A ratio averaged over a few seeds is noisy, so a finding is decided by the two-sided 95%
# interval of the mean ratio over seeds (Student t with k − 1 degrees of freedom): AGREES when
# it lies above 1, DISAGREES when it lies below, INCONCLUSIVE when it contains 1.

# %%
acc = df[df["metric"] == "test_accuracy"].pivot_table(
    index=["seed", "step"], columns="order", values="value"
)
first, meet = acc.xs(1, level="step"), acc.xs(reset_at + 1, level="step")
early = acc[acc.index.get_level_values("step") <= reset_at]
results = [
    claims.at_most(
        figure,
        "step 1: forward and backward accuracy equal",
        (first[orders[0]] - first[orders[1]]).abs().max(),
        0.0,
    ),
    claims.at_most(
        figure,
        "step r+1: backward from θ_r equals forward",
        (meet[orders[0]] - meet[orders[1]]).abs().max(),
        1e-6,
    ),
    *claims.ratio_findings(stability.ratios(moves, *orders), figure, *orders),
]
if switch == "delayed":
    results.insert(1, claims.at_most(figure, "before s: delayed backward is the forward iterate",
                                     (early[orders[0]] - early[orders[1]]).abs().max(), 0.0))  # fmt: skip
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)
