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
# # Figure 2: backward SGD is more stable (ResNet-18)
#
# Figure 2 and Appendix B.1 of {cite}`dherin2025iteration`: a ResNet-18 trained on CIFAR-10
# {cite}`krizhevsky2009cifar` with SGD, no regularization, lr 0.025, batch 8, every step of
# 2000 recorded for the forward and the backward iterate. The paper observes that the backward
# training loss, test loss and test accuracy are much less noisy than the forward ones.
# Here the CIFAR-style ResNet-18 {cite}`he2016resnet` is torchvision's, with a 3×3 stride-1
# stem and no max-pool. The `book` profile keeps the paper's 2000 steps, batch, learning rate
# and five seeds, narrows the channels to 1/8 and evaluates both orders every 50th step (a
# backward iterate at step $n$ costs $n$ maps), on Fashion-MNIST in place of CIFAR-10; the run
# card states it all.

# %% tags=["parameters"]
profile = "default"  # parameter profile the pipeline injected (run card)
figure = "Fig. 2"  # the paper's figure this run reproduces (claims' source)
model = "resnet18"  # resnet18 | resnet50 | vgg19 | mlp
optimizer = "sgd"  # sgd | momentum | nesterov | adamw
seeds = [0, 1, 2, 3, 4]  # one row per seed
steps = 2000  # paper: 2000
lr = 0.025  # paper: 0.025
batch_size = 8  # paper: 8
width = 1.0  # channel multiplier (1.0: 64-128-256-512)
dataset = "cifar10"  # paper: CIFAR-10
substitute = False  # if CIFAR-10 is unavailable, train on Fashion-MNIST at 3×32×32
record_every = 1  # paper: every step
forward_every = 0  # forward recorded every this many steps (0: as record_every)
lags = None  # movement also measured this many steps apart, e.g. [1]
anchor_offsets = None  # backward also recorded this many steps after each recorded step
bn_stats = 0  # BatchNorm: also evaluate with statistics recomputed on this many training examples
train_eval = 2000  # training examples for the training loss
test_eval = 10000  # test examples
device = "cpu"
chain_batch = 1  # chains advanced together with vmap (use 16-64 on a GPU)
executor = (
    "sequential"  # sequential | batched (vmap, GPU) | ray (workers: local or cluster)
)

# %% tags=["parameter-spec", "remove-cell"]
# Valid values of the parameters above (companion.spec; the book's shared names, such as
# seeds, steps, lr and device, are in spec.SHARED): checked before the chapter runs.
spec = {
    "model": "one of resnet18, resnet50, vgg19, mlp",
    "optimizer": "one of sgd, momentum, nesterov, adamw",
    "dataset": "one of fashion_mnist, cifar10, cifar100",
    "substitute": "bool",
    "forward_every": "int >= 0",
    "lags": "none or list of int >= 1",
}
rules = ["record_every <= steps", "bn_stats <= train_eval", "forward_every <= steps"]

# %%
import pandas as pd
from IPython.display import display

from backward_lib import describe, experiment
from backward_lib.analysis import stability
from companion import claims, plots, runcard

plots.use_style()
base = experiment.Experiment(
    dataset=dataset, substitute=substitute, model=model, width=width,
    optimizer=optimizer, lr=lr, batch_size=batch_size, steps=steps,
    orders=("forward", "backward"), record_every=record_every,
    forward_every=forward_every or record_every, lags=tuple(lags or ()),
    anchor_offsets=tuple(anchor_offsets or ()), train_eval=train_eval, test_eval=test_eval,
    bn_stats=bn_stats, device=device, chain_batch=chain_batch, executor=executor,
)  # fmt: skip
df, prep, seconds = experiment.run_seeds(base, seeds)
if "substituted" in prep.data_used:
    runcard.notice(
        f"**Data substituted.** {dataset} could not be loaded on the machine that executed this "
        "chapter, so the same network and optimizer were trained on Fashion-MNIST, resized to "
        "3×32×32. The curves below are *not* CIFAR-10 curves; rerun with the data available "
        "(the `paper` profile never substitutes)."
    )
runcard.show(
    profile,
    f"{figure} of Dherin et al. (2025)",
    **describe.card(prep, seeds, seconds),
)
runcard.results(df, "every recorded value (order, seed, step, metric)")

# %% [markdown]
# ## The curves (one row per seed)

# %% mystnb={"figure": {"caption": "Training loss against step, forward (blue) and backward (vermillion) iterate, one panel per seed. The paper reads the backward curve as the smoother; the findings below measure it.", "name": "fig-fig2_resnet18-train-loss"}, "image": {"alt": "Line plots, one panel per seed, of the training loss against the training step for the forward and the backward SGD iterate."}}
fig = plots.curves(df, "train_loss")

# %% mystnb={"figure": {"caption": "Test loss against step, forward (blue) and backward (vermillion) iterate, one panel per seed. The paper reads the backward curve as the less noisy; the findings below measure it.", "name": "fig-fig2_resnet18-test-loss"}, "image": {"alt": "Line plots, one panel per seed, of the test loss against the training step for the forward and the backward SGD iterate."}}
fig = plots.curves(df, "test_loss")

# %% mystnb={"figure": {"caption": "Test accuracy against step, forward (blue) and backward (vermillion) iterate, one panel per seed. The paper reads the backward accuracy as the less noisy; the findings below measure it.", "name": "fig-fig2_resnet18-test-accuracy"}, "image": {"alt": "Line plots, one panel per seed, of the test accuracy against the training step for the forward and the backward SGD iterate."}}
fig = plots.curves(df, "test_accuracy")

# %% [markdown]
# ## Stability, measured
#
# Per seed and order, over the second half of training (the first steps fall steeply in both
# orders and would swamp the noise being compared): the step-to-step variation of the test
# accuracy and of the training loss, raw and detrended (the *jitter*, mean absolute second
# difference, which a smooth trend does not reach; the verdicts use it), and how far
# consecutive recorded iterates are apart, in parameters and in predictions.
#
# BatchNorm. Each map updates the running statistics, so an iterate carries those of the
# batches its chain applied last: for a backward iterate, batches 1, 2, … whatever $n$ is. With
# `bn_stats` > 0 every iterate is evaluated a second time with statistics recomputed on the
# same fixed training subset, the same policy for both orders; the findings use that policy
# and the table after them shows what the chain's own statistics would have said.

# %%
orders = ("forward", "backward")
policies = {"chain's statistics": ""}
if (df["metric"] == "test_accuracy_bnfix").any():
    policies["recomputed statistics"] = "_bnfix"
# with `lags`, movement between iterates `min(lags)` steps apart at every recorded step (a
# lag-1 pair measures the step-to-step jitter directly, with no drift to remove); without,
# between consecutive recorded steps
lag = min(lags) if lags else None
tables = {
    p: stability.movement_table(df, orders, lag=lag, suffix=s)
    for p, s in policies.items()
}
policy = list(policies)[
    -1
]  # the verdicts' policy: recomputed where the network has BatchNorm
table = tables[policy]
pd.concat(tables, names=["BatchNorm"]).round(4)

# %% [markdown]
# ## Does backward converge to a point, and faster?
#
# Measured where the run records movement at a lag (`lags`): if backward iterates converge to
# a point, their movement shrinks along $n$; per seed we fit $m_n \propto n^{b}$ over the
# second half and give the mean slope $b$ with its two-sided 95% interval over seeds ($b < 0$:
# decay). "Converges faster": the steps each order takes to reach 95% of forward's mean final
# test accuracy (a seed that never does counts as step $N + 1$, a bound in that order's favour).

# %%
half = steps // 2
suffix = policies[policy]
if lag is not None:
    decays = pd.DataFrame(
        [{"order": o, "measure": m, **stability.mean_interval(stability.decay(
            df, o, f"{m}_lag{lag}" + (suffix if m != "increment" else ""), lo=half))}
         for o in orders for m in stability.MOVES]
    ).set_index(["order", "measure"])  # fmt: skip
    level = 0.95 * df[(df.metric == "test_accuracy" + suffix) & (df.order == "forward")
                      & (df.step == steps)]["value"].mean()  # fmt: skip
    reach = stability.steps_to(df, "test_accuracy" + suffix, level, orders).fillna(
        steps + 1
    )
    speed = stability.mean_interval((reach["forward"] / reach["backward"]).to_numpy())
    display(decays.round(3))
    print(f"test accuracy {level:.3f} first reached (steps, per seed):")
    display(reach)
else:
    print("No lagged movement recorded (`lags` is none): these measures need it.")

# %% [markdown]
# ## Did the networks train?
#
# A stability comparison between networks that never leave chance says nothing about the
# paper's claim. The test accuracy at the last step, per order (mean over seeds), against
# chance (one class in ten); if forward stays below twice chance, this chapter's findings are
# reported but not counted as evidence.

# %%
classes = 100 if dataset == "cifar100" and "substituted" not in prep.data_used else 10
last = df[(df["metric"] == "test_accuracy") & (df["step"] == steps)]
final = last.groupby("order")["value"].mean()
trains = bool(final["forward"] >= 2 / classes)
print(f"test accuracy at step {steps}: " + ", ".join(f"{o} {v:.3f}" for o, v in final.items())
      + f"; chance {1 / classes:.3f}: " + ("the networks train" if trains else "near chance, not evidence"))  # fmt: skip

# %% [markdown]
# ## Why parameters and predictions can disagree
#
# Two recorded backward iterates $k$ steps apart are the same $n$ maps applied last to two
# different starting points:
#
# $$
# \tilde\theta_n = F_n(\theta_0), \qquad
# \tilde\theta_{n+k} = F_n(\psi), \quad
# F_n = T_1 \circ \dots \circ T_n, \quad \psi = T_{n+1} \circ \dots \circ T_{n+k}(\theta_0).
# $$
#
# They end close in parameters only if $F_n$ contracts the distance between $\theta_0$ and
# $\psi$, the hypothesis of Theorem 2.2. Stochastic gradient steps of an over-parameterized
# network do not contract in the Euclidean distance (the {doc}`Appendix G chapter
# <../theory/pl_pseudometric>` says why), so nearby backward iterates can sit far apart as
# points while agreeing on most test predictions. The parameter `increment` measures the
# first, `pred_change` (the fraction of test predictions that change) the second, and
# `logit_change` lies between: a function-space measure that follows every small move of the
# outputs, decision or not. Where `increment` disagrees and `pred_change` agrees, backward
# composition settles in its decisions but not at a point.

# %% [markdown]
# ## Claims
#
# Check: at step 1 both orders are the same iterate (BatchNorm statistics included). Findings:
# forward moves more than backward by each measure: the two-sided 95% t-interval over seeds of
# the ratio forward/backward lies above 1 (AGREES), below 1 (DISAGREES), or contains 1
# (INCONCLUSIVE).

# %%
results = [
    claims.at_most(figure, "step 1: forward and backward train loss equal",
                   stability.first_step_gap(df), 0.0),
    *claims.ratio_findings(stability.ratios(table, *orders), figure, *orders, counted=trains),
]  # fmt: skip
if lag is not None:
    results += [
        *[claims.interval(figure, f"second half: backward converges in {sp} space (decay slope of {m} over "
                          f"{lag} step{'s' * (lag != 1)} < 0)", *decays.loc[("backward", m), ["mean", "low", "high"]],
                          0.0, "below", counted=trains)
          for m, sp in (("pred_change", "function"), ("increment", "parameter"))],
        claims.interval(figure, "backward reaches 95% of forward's final test accuracy sooner (steps "
                        "forward/backward > 1)", speed["mean"], speed["low"], speed["high"], 1.0, "above",
                        counted=trains),
    ]  # fmt: skip
claims.table(results)

# %% [markdown]
# How the BatchNorm policy changes each verdict (the same intervals, under each policy):

# %%
verdicts = pd.DataFrame(
    {p: [c.verdict for c in claims.ratio_findings(stability.ratios(t, *orders), figure, *orders)]
     for p, t in tables.items()},
    index=[f"{r.window}: {r.measure}" for r in stability.ratios(table, *orders).itertuples()],
)  # fmt: skip
verdicts

# %%
# NBVAL_CHECK_OUTPUT
claims.check(results)

# %% [markdown]
# **Reading**, from this chapter's own numbers:

# %%
found = [c for c in results if c.kind == "finding"]
split = {
    v: [c.statement.split(",")[0] for c in found if c.verdict == v]
    for v in ("AGREES", "DISAGREES", "INCONCLUSIVE")
}
flip = [i for i, row in verdicts.iterrows() if row.nunique() > 1]
print(
    f"At width ×{width}, {steps} steps and {len(seeds)} seeds the networks reach test accuracy "
    + ", ".join(f"{o} {v:.3f}" for o, v in final.items())
    + (" (near chance: none of this is evidence)." if not trains else ".")
)
for v, names in split.items():
    print(f"{v.lower()} ({len(names)}): {'; '.join(names) or 'none'}")
print(
    f"the BatchNorm policy changes {len(flip)} of {len(verdicts)} verdicts"
    + (f": {'; '.join(flip)}" if flip else "")
)
