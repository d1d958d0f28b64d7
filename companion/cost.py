"""What a chapter costs at the paper's scale: model FLOPs, GPU hours, and the command.

The book's sessions had no GPU to measure, so the GPU hours here are a stated extrapolation:
the experiment's model FLOPs (``backward_lib.describe.flops``: torch's FLOP counter over one
training and one evaluation pass, times the map applications and evaluated examples of every
order and seed) divided by an assumed sustained rate, :data:`ASSUMED_RATE`. A measured rate
(``benchmarks/gpu_check.py`` on a lent GPU) would replace the assumption; until then each
figure says which it is. FLOPs are the part that is measured; readers with another rate can
divide themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from . import chapters

__all__ = [
    "ASSUMED_RATE",
    "PEAK",
    "UTILIZATION",
    "PaperCost",
    "cluster_command",
    "experiment",
    "paper_cost",
    "paper_row",
]

# An H100/H200-class GPU's dense FP32 peak (no tensor cores), FLOP/s, and the fraction of a
# peak that the engine sustained on this book's CPU for the ResNet-18 workload (the Performance
# chapter measures 0.35 of the matmul peak there, 0.19 for the MLP): an assumption, not a GPU
# measurement, which chain batching on a GPU may beat or miss.
PEAK = 67e12
UTILIZATION = 0.3
ASSUMED_RATE = PEAK * UTILIZATION


def experiment(params: dict[str, Any]):
    """The ``backward_lib.experiment.Experiment`` a chapter's parameters describe (seed
    excluded), or None for chapters that do not train through the engine's recorded grid."""
    from backward_lib import experiment as exp_mod

    need = {"seeds", "steps", "width", "record_every", "train_eval", "test_eval"}
    if not need <= set(params):
        return None
    names = {f.name for f in fields(exp_mod.Experiment)}
    # the execution path does not change what is computed: counted as the sequential engine runs it
    kw = {
        k: v
        for k, v in params.items()
        if k in names and k not in ("device", "chain_batch", "executor", "seed")
    }
    kw["forward_every"] = params.get("forward_every") or params["record_every"]  # 0: as record_every
    kw["lags"] = tuple(params.get("lags") or ())
    kw["anchor_offsets"] = tuple(params.get("anchor_offsets") or ())
    if "switch" in params:
        starts = params.get("readings", ["forward"]) if params["switch"] == "reset" else ["forward"]
        kw["orders"] = ("forward", *(f"{params['switch']}:{params['reset_at']}" + ("" if s == "forward" else
                        ":backward") for s in starts))  # fmt: skip
    return exp_mod.Experiment(**kw)


@dataclass(frozen=True)
class PaperCost:
    """One chapter at its ``paper`` profile."""

    flops: float  # model FLOPs over every seed and order
    seeds: int
    gpu_hours: float  # flops / ASSUMED_RATE
    measured: bool = False  # True only once a GPU rate was measured (never, so far)

    def text(self) -> str:
        """The run card's "at the paper's scale" wording."""
        return (
            f"{self.flops / 1e15:,.0f} PFLOP over {self.seeds} seed{'s' * (self.seeds != 1)}, "
            f"≈ {_hours(self.gpu_hours)} on one GPU at an assumed {ASSUMED_RATE / 1e12:.0f} TFLOP/s "
            f"({UTILIZATION:.0%} of an H100-class FP32 peak; not measured: no GPU was lent)"
        )


def _hours(h: float) -> str:
    if h < 1:
        minutes = round(h * 60)
        return "under a GPU minute" if minutes < 1 else f"{minutes} GPU minute{'s' * (minutes != 1)}"
    return f"{h:,.1f} GPU hours"


def paper_cost(name: str) -> PaperCost | None:
    """The cost of chapter ``name`` at its ``paper`` profile, or None for a chapter that does
    not train through the engine's grid (its paper settings run on a CPU in minutes)."""
    from backward_lib import describe

    src = chapters.chapters()[name]
    params = {**chapters.defaults(src), **chapters.parameters(name, "paper")}
    exp = experiment(params)
    if exp is None:
        return None
    seeds = len(params["seeds"])
    flops = describe.flops(exp)["total"] * seeds
    return PaperCost(flops, seeds, flops / ASSUMED_RATE / 3600)


def cluster_command(name: str) -> str:
    """The one command that runs chapter ``name`` at the paper's scale on a Ray cluster (from
    a node of it; its chains and seeds go to the cluster's GPU workers as Ray tasks)."""
    return f"RAY_ADDRESS=auto python -m companion run {name} --profile paper --executor ray"


def paper_row(name: str) -> str:
    """The run card's "at the paper's scale" row for chapter ``name``: the expected cost and
    the command, on one GPU and on a Ray cluster."""
    one = f"`python -m companion run {name} --profile paper`"
    c = paper_cost(name)
    if c is None:
        return f"{one} (on a CPU; the Reproduce page lists what it changes)"
    return f"{c.text()}; on one GPU {one}, on a Ray cluster `{cluster_command(name)}`"
