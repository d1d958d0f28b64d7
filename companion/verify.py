"""Verify the committed results store: current, complete, and recomputable from scratch.

The chapters load their experiments from the store (``results/``), so CI does not retrain
them; this is what makes that safe:

1. every store file is current (its header names today's library code and torch) and whole
   (its name is the hash of its header, every line a recorded step);
2. every result a published chapter used (listed in its notebook's metadata by the pipeline)
   is in the store;
3. a seeded sample of stored recorded steps is recomputed from scratch and compared with the
   stored values: for every experiment (one seed drawn per configuration), its first recorded
   step (the probe below) and one step of every order, backward's from the last quarter of its
   grid (the costliest chains, :func:`_sample`). ``--all`` recomputes every step of every file.

A value passes when ``|stored − recomputed| ≤ atol + rtol·|recomputed|`` with the tolerances of
:data:`TOLERANCE`, far below any edit that changes a reading.

Other CPUs. Under the book's pinned numerics the machine that wrote a file recomputes it
exactly. Another kind of CPU may not: measured on an Intel Xeon with AVX-512 against files
written on the earlier sessions' machine, the pinned kernels still differ somewhere in the last
bits, and a network trained for hundreds of steps amplifies that into another trajectory (Fig.
2's ResNet-18: first step identical, step 1951's test accuracy 0.798 stored, 0.810
recomputed), which no tolerance can absorb. So each sampled file is first probed at its
earliest recorded step, one map from θ₀, where round-off has no steps to grow: the probe must
match within the tolerances, always (a wholesale edit, a stale file or changed code fails
here). Its later sampled steps must match too with ``strict`` (``--strict``: on the machine
that wrote the store, where they are exact); otherwise a later step that does not match is
reported as not reproduced on this CPU, with the files it concerns, and does not fail: there a
tampered late value is caught only by a strict run on a machine of the writer's kind.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (atol, rtol) by metric family. Accuracies and prediction changes move in steps of
# 1/test_eval: two test predictions may differ. Losses, distances and logit changes: relative.
TOLERANCE: dict[str, tuple[float, float]] = {
    "test_accuracy": (2e-4, 0.0),
    "pred_change": (2e-4, 0.0),
    "default": (1e-7, 1e-4),
}


def tolerance(metric: str) -> tuple[float, float]:
    """(atol, rtol) for ``metric`` (suffixes such as ``_lag10`` or ``_bnfix`` keep the family)."""
    for family, tol in TOLERANCE.items():
        if metric.startswith(family):
            return tol
    return TOLERANCE["default"]


@dataclass
class Report:
    """What :func:`verify` found: problems (each fails it) and what was recomputed."""

    problems: list[str] = field(default_factory=list)
    checked: list[dict[str, Any]] = field(default_factory=list)  # one row per recomputed value
    other_bits: list[str] = field(default_factory=list)  # files whose later steps this CPU did not reproduce
    unreproduced: list[str] = field(default_factory=list)  # those values (not problems unless strict)
    files: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def max_deviation(self) -> float:
        return max((r["deviation"] for r in self.checked), default=0.0)


def used_keys() -> dict[str, list[str]]:
    """Store keys each executed chapter used, from its notebook's metadata (the pipeline's)."""
    from .chapters import chapters, output_path
    from .stamps import stored

    out = {}
    for name, src in chapters().items():
        meta = stored(output_path(src)) or {}
        if meta.get("results"):
            out[name] = list(meta["results"])
    return out


def _sample(steps_by_order: dict[str, list[int]], rng: random.Random) -> dict[str, list[int]]:
    """Per order one seeded recorded step: backward's from the last quarter of its grid, the
    others' from anywhere on theirs.

    Backward's step n applies n maps (and its probe needs the recorded step before it, n more),
    so the late backward chain is the costliest value of a file and the one that must be
    recomputed; a second, random backward step would nearly double the cost of the CNN files
    and test less. Without a backward order every order gets a late step.
    """
    late_for = {"backward"} if "backward" in steps_by_order else set(steps_by_order)
    chosen = {}
    for spec, steps in steps_by_order.items():
        steps = sorted(steps)
        if spec in late_for:
            steps = steps[len(steps) - max(1, len(steps) // 4) :]
        chosen[spec] = [rng.choice(steps)]
    return chosen


def _compare(stored: dict[str, float], fresh: dict[str, float]) -> list[tuple[str, float, float, bool]]:
    rows = []
    for metric in sorted(set(stored) | set(fresh)):
        a, b = stored.get(metric), fresh.get(metric)
        if a is None or b is None:
            rows.append((metric, math.inf, math.nan, False))
            continue
        if math.isnan(a) and math.isnan(b):
            rows.append((metric, 0.0, 0.0, True))
            continue
        atol, rtol = tolerance(metric)
        dev = abs(a - b)
        rows.append((metric, dev, atol + rtol * abs(b), dev <= atol + rtol * abs(b)))
    return rows


def verify(
    root: Path | str | None = None,
    *,
    seed: int = 0,
    everything: bool = False,
    used: dict[str, list[str]] | None = None,
    recompute: bool = True,
    strict: bool = False,
) -> Report:
    """Check the store at ``root`` (default ``results/``) as the module docstring says.

    ``used`` maps chapters to the keys they need (default: from the executed notebooks).
    """
    from backward_lib import experiment, store

    t0 = time.perf_counter()
    root = Path(root) if root is not None else store.default_root()
    report = Report()
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else []
    report.files = len(files)
    good = []
    for path in files:
        why = store.check(path, experiment.CODE)
        if why:
            report.problems.append(why)
        else:
            good.append(path)
    have = {p.stem for p in files}
    for chapter, keys in sorted((used if used is not None else used_keys()).items()):
        missing = sorted(set(keys) - have)
        if missing:
            report.problems.append(f"{chapter}: uses results {', '.join(missing)}, which the store lacks")
    if not recompute:
        report.seconds = time.perf_counter() - t0
        return report
    # one seed per configuration, drawn from `seed`
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in good:
        cfg = store.read_header(path)["config"]
        groups[json.dumps({k: v for k, v in cfg.items() if k != "seed"}, sort_keys=True)].append(path)
    rng = random.Random(seed)
    picked = [p for _, ps in sorted(groups.items()) for p in (ps if everything else [rng.choice(sorted(ps))])]
    for path in picked:
        cfg = store.read_header(path)["config"]
        specs = store.Store(cfg, root, code=experiment.CODE).orders()
        if not specs:
            continue  # a header only: nothing stored yet
        exp = experiment.from_config(cfg, orders=tuple(specs))
        st = experiment.open_store(exp, root)
        if st.key != path.stem:
            report.problems.append(f"{path.name}: its configuration no longer gives its key")
            continue
        stored_steps = {spec: sorted(st.done_steps(spec)) for spec in exp.orders if st.done_steps(spec)}
        chosen = stored_steps if everything else _sample(stored_steps, rng)
        # the probe: the earliest recorded step (of forward where stored), one map from θ₀
        spec0 = "forward" if "forward" in stored_steps else next(iter(stored_steps))
        first = stored_steps[spec0][0]
        chosen = {spec: [n for n in ns if (spec, n) != (spec0, first)] for spec, ns in chosen.items()}
        for spec, steps in [(spec0, [first]), *chosen.items()]:
            if not steps:
                continue
            probe = (spec, steps) == (spec0, [first])
            fresh = experiment.measure(exp, spec, steps)
            rows = {(r["step"], r["metric"]): r["value"] for r in st.rows(spec)}
            for n in steps:
                saved = {m: v for (s, m), v in rows.items() if s == n}
                compared = _compare(saved, fresh[n])
                for metric, dev, allowed, ok in compared:
                    report.checked.append({"file": path.stem, "order": spec, "step": n, "metric": metric,
                                           "deviation": dev, "allowed": allowed, "ok": ok})  # fmt: skip
                    if not ok:
                        line = (f"{path.name}: {spec} step {n} {metric}: stored {saved.get(metric)!r}, "
                                f"recomputed {fresh[n].get(metric)!r} (allowed ±{allowed:.2g})")  # fmt: skip
                        if probe or strict:
                            report.problems.append(line)
                        else:  # a later step on another kind of CPU: another trajectory
                            report.unreproduced.append(line)
                            if path.stem not in report.other_bits:
                                report.other_bits.append(path.stem)
    report.seconds = time.perf_counter() - t0
    return report


def summary(report: Report) -> str:
    """A few lines for the terminal and CI logs."""
    n = len(report.checked)
    steps = len({(r["file"], r["order"], r["step"]) for r in report.checked})
    lines = [
        f"store: {report.files} files; recomputed {steps} recorded steps ({n} values) from scratch "
        f"in {report.seconds:.0f} s; largest deviation {report.max_deviation():.3g}"
    ]
    if report.other_bits:
        values = len(report.unreproduced)
        lines.append(
            f"not reproduced on this CPU: {values} value{'s' * (values != 1)} at later steps of "
            f"{len(report.other_bits)} file(s) ({', '.join(report.other_bits)}), whose first step "
            "matches: the file was written by a CPU whose pinned kernels give other bits, which a "
            "long trajectory amplifies; `verify --strict` on a machine of the writer's kind compares them"
        )
    lines += [f"problem: {p}" for p in report.problems]
    lines.append("store verified" if report.ok else f"{len(report.problems)} problem(s)")
    return "\n".join(lines)
