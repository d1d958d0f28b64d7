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
# The `book` profile runs it at the paper's scale (5×500, 2000 steps, five seeds, the forward
# iterate recorded at every step) but records the backward iterate every 10 steps instead of
# every step (each costs a chain of up to 1000 maps), and runs both readings of "reset to the
# parameter at this step": from the forward $\theta_r$ and from the backward $\tilde\theta_r$.
# It then measures what the figure shows: whether forward moves more than backward after the
# reset, and whether backward converges to a point.

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
record_every = 1  # backward iterates every k-th step (paper: every step)
forward_every = 1  # forward iterates every k-th step (one pass: dense costs little)
lags = [1]  # movement measured between iterates this many steps apart (both orders)
readings = [
    "forward"
]  # the reset's start: forward θ_r (as we read the paper) and/or backward θ̃_r
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
    "readings": "list of one of forward, backward",
}
rules = ["reset_at < steps", "record_every <= steps", "forward_every <= steps"]

# %%
import pandas as pd

from backward_lib import describe, experiment
from backward_lib.analysis import stability
from companion import claims, plots, runcard

plots.use_style()
# order spec -> label. reset: backward before r, then backward from θ_r (or θ̃_r); delayed:
# forward before s, then backward from θ_s
if switch == "delayed":
    specs = {f"delayed:{reset_at}": f"backward (delayed at {reset_at})"}
else:
    start = {"forward": ("", "θ_r"), "backward": (":backward", "θ̃_r")}
    specs = {
        f"reset:{reset_at}{start[r][0]}": f"backward (reset to {start[r][1]})"
        for r in readings
    }
base = experiment.Experiment(
    dataset="fashion_mnist", model="mlp", width=width, depth=depth, init=init,
    optimizer="sgd", lr=lr, batch_size=batch_size, steps=steps,
    orders=("forward", *specs), record_every=record_every, forward_every=forward_every,
    lags=tuple(lags), train_eval=train_eval, test_eval=test_eval,
    device=device, chain_batch=chain_batch, executor=executor,
)  # fmt: skip
df, prep, seconds = experiment.run_seeds(base, seeds)
df["order"] = df["order"].replace(specs)
labels = list(specs.values())
label = labels[0]  # the paper's reading
runcard.show(
    profile,
    f"{figure} of Dherin et al. (2025)",
    **describe.card(prep, seeds, seconds),
)
runcard.results(df, "every recorded value (order, seed, step, metric)")

# %% [markdown]
# ## The figure
#
# Test accuracy of the forward iterate and of the backward iterates, one row per seed. With
# both readings of the reset, one backward curve starts its chains from the forward parameter
# $\theta_r$ (the paper's figure, as we read it) and one from the backward $\tilde\theta_r$.
# The dotted line marks step $r$.

# %% mystnb={"figure": {"caption": "Test accuracy against step, forward (blue) and the backward reading (vermillion; a second reading orange, dashed), one panel per seed; the dotted line marks the reset or switch step. The paper reads the backward curves as settling after it; the findings below measure it.", "name": "fig-fig3_reset-test-accuracy"}, "image": {"alt": "Line plots, one panel per seed, of the test accuracy against the step for the forward iterate and the backward readings, with a vertical line at the reset step."}}
fig = plots.curves(df, "test_accuracy")
for ax in fig.axes:
    ax.axvline(reset_at, color="gray", ls=":", lw=1)

# %% [markdown]
# ## What moves, and what settles
#
# Both orders are compared at one lag $k$ (the largest of `lags`), on the steps both recorded:
# the distance between iterates $k$ steps apart in parameter space, $\|\theta_{n} -
# \theta_{n-k}\|$, and in function space (the fraction of test predictions that differ, the mean
# change of the test logits), and each curve's step-to-step variation on the common grid, raw
# and detrended (the *jitter*, mean absolute second difference, which a smooth trend does not
# reach; the verdicts use it). Windows: before $r$, and after $r + k$, once no lagged iterate
# reaches back before the reset. Before $r$ both readings run the same backward chains, so
# that window is shown once.

# %%
lag = max(lags)
event = "the switch" if switch == "delayed" else "the reset"
windows = {
    f"before {event}": dict(lo=1, hi=reset_at),
    f"after {event}": dict(lo=reset_at + lag),
}
if switch == "delayed":
    windows.pop(f"before {event}")  # before s both orders are the forward iterate
tables = {}
for i, lab in enumerate(labels):
    w = (
        windows
        if i == 0
        else {k: v for k, v in windows.items() if k.startswith("after")}
    )
    tables[lab] = stability.movement_table(df, ("forward", lab), w, lag=lag)
moves = pd.concat(tables, names=["backward reading"])
moves.round(4)

# %% [markdown]
# ## Does backward converge to a point?
#
# The paper's Theorem 2.2 reading: where the maps contract, backward iterates converge to a
# point. Then their lag-$k$ movements shrink along $n$. For each order we fit
# $m_n \propto n^{b}$ to the movements after the reset, per seed, and give the mean slope $b$
# with its two-sided 95% interval over seeds: $b < 0$ is decay, $b \approx 0$ a level.

# %%
after = reset_at + lag
decays = pd.DataFrame(
    [
        {
            "order": o,
            "measure": m,
            **stability.mean_interval(
                stability.decay(df, o, f"{m}_lag{lag}", lo=after)
            ),
        }
        for o in ("forward", *labels)
        for m in stability.MOVES
    ]
).set_index(["order", "measure"])
decays.round(3)

# %% [markdown]
# The same movements step by step (log scale), after the reset: a backward iterate converging
# to a point shows them falling; a forward iterate sampling a distribution keeps them level.

# %% mystnb={"figure": {"caption": "Fraction of test predictions that change over the lag, after the reset or switch, per seed (log scale): forward (blue) against the backward reading (vermillion; a second reading orange, dashed).", "name": "fig-fig3_reset-prediction-change"}, "image": {"alt": "Line plots on a log scale, one panel per seed, of the fraction of test predictions that change between iterates a fixed lag apart, forward against backward."}}
late = df[df["step"] > reset_at]
fig = plots.curves(late, f"pred_change_lag{lag}", logy=True)

# %% mystnb={"figure": {"caption": "Parameter distance between iterates one lag apart, after the reset or switch, per seed (log scale): forward (blue) against the backward reading (vermillion; a second reading orange, dashed).", "name": "fig-fig3_reset-parameter-distance"}, "image": {"alt": "Line plots on a log scale, one panel per seed, of the distance in parameter space between iterates a fixed lag apart, forward against backward."}}
fig = plots.curves(late, f"increment_lag{lag}", logy=True)

# %% [markdown]
# ## Claims
#
# Checks (must hold, else the chapter fails): at step 1 every order is the same iterate,
# $T_1(\theta_0)$; right after a reset from $\theta_r$, $\tilde\theta_{r+1} = T_{r+1}(\theta_r) =
# \theta_{r+1}$, so those two curves meet there. Findings (the paper's claims at this scale,
# reported either way), each decided by the two-sided 95% Student-t interval over seeds:
# forward moves more than backward (ratio forward/backward above 1: AGREES when the interval
# lies above 1, DISAGREES below, INCONCLUSIVE when it contains 1), and backward converges
# after the reset (decay slope below 0).

# %%
acc = df[df["metric"] == "test_accuracy"].pivot_table(
    index=["seed", "step"], columns="order", values="value"
)
first = acc.xs(1, level="step")
# after s, A.6 runs Fig. 3's reset from θ_r: the same findings, counted once
again = "Fig. 3" if switch == "delayed" else None
results = [
    claims.at_most(figure, "step 1: every order is the same iterate",
                   float((first.max(axis=1) - first.min(axis=1)).max()), 0.0),
]  # fmt: skip
if readings[0] == "forward":  # the first reading starts from θ_r (delayed: always)
    meet = acc.xs(reset_at + 1, level="step")
    results.append(claims.at_most(figure, f"step r+1: {label} equals forward",
                                  float((meet["forward"] - meet[label]).abs().max()), 1e-6))  # fmt: skip
if switch == "delayed":
    early = acc[acc.index.get_level_values("step") <= reset_at]
    results.append(claims.at_most(figure, "before s: delayed backward is the forward iterate",
                                  float((early["forward"] - early[label]).abs().max()), 0.0))  # fmt: skip
for lab, table in tables.items():
    rows = stability.ratios(table, "forward", lab)
    after_rows = rows["window"].str.startswith("after")
    results += claims.ratio_findings(
        rows[after_rows], figure, "forward", lab, same_as=again
    )
    results += claims.ratio_findings(rows[~after_rows], figure, "forward", lab)
for lab in labels:
    for m in ("pred_change", "increment"):
        d = decays.loc[(lab, m)]
        space = "function" if m == "pred_change" else "parameter"
        results.append(claims.interval(figure, f"after {event}: {lab} converges in {space} space "
                                       f"(decay slope of {m} over {lag} steps < 0)", d["mean"], d["low"],
                                       d["high"], 0.0, "below", same_as=again))  # fmt: skip
claims.table(results)

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)

# %% [markdown]
# ## Reading
#
# From this chapter's own numbers (the claims above), for the paper's reading of the reset:


# %%
def _ratio(window: str, measure: str, lab: str) -> str:
    r = (
        stability.ratios(tables[lab], "forward", lab)
        .set_index(["window", "measure"])
        .loc[(window, measure)]
    )
    return f"{r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"


def _slope(order: str, measure: str) -> str:
    d = decays.loc[(order, measure)]
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


aft = f"after {event}"
print(
    f"{aft}, forward/backward over {lag} steps (mean ratio over seeds, 95% interval): predictions "
    f"that change {_ratio(aft, 'pred_change', label)}, logit change {_ratio(aft, 'logit_change', label)}, "
    f"test-accuracy jitter {_ratio(aft, 'test_accuracy jitter', label)}; parameter distance "
    f"{_ratio(aft, 'increment', label)}."
)
print(
    f"decay slopes b (m_n ∝ n^b) {aft}: backward's prediction change {_slope(label, 'pred_change')}, "
    f"its parameter distance {_slope(label, 'increment')}; forward's {_slope('forward', 'pred_change')} "
    f"and {_slope('forward', 'increment')}."
)

# %% [markdown]
# The two spaces tell different stories, and the book's scale (the paper's network, steps and
# seeds) is enough to separate them. In function space backward is far stabler than forward,
# as the paper's figure shows: its predictions change an order of magnitude less often over the
# same number of steps, and that change shrinks along $n$. In parameter space it is not: two
# backward iterates $k$ steps apart are about as far apart as two forward ones, and the distance
# *grows* with $n$. Consecutive backward iterates differ by the first maps applied at the start
# point, carried through $n$ maps that contract along the directions the network's output
# depends on and barely at all (or expand) along the others. So backward converges in function
# space and does not converge to a point in parameter space: Theorem 2.2's conclusion holds
# only on the part of parameter space where its contraction hypothesis does, and "converges
# to a point" in the paper's reading of this figure is, at this scale, a statement about
# predictions.

# %%
if len(labels) > 1:  # the two readings of the reset, verdict by verdict after it
    by = {
        lab: [
            c.verdict
            for c in results
            if lab in c.statement and c.statement.startswith(aft)
        ]
        for lab in labels
    }
    same = by[labels[0]] == by[labels[1]]
    print(
        f"the readings from θ_r and from θ̃_r give {'the same' if same else 'different'} verdicts {aft}"
    )
