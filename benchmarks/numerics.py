"""Which kernels make the book's bits differ between CPUs, and what pinning them would cost.

Every chapter is executed under ``companion.numerics``' pinned kernel set. This measures, for
that set and for the candidates that would pin more, a fingerprint of the bits of what the
book's networks compute, and the time of one training step on one thread (what one Ray worker
does): the Figure 3 MLP (5×500, batch 8) and the Figure 2 ResNet-18 (width 1/8, batch 8, 3×32×32).

Candidate sets (each in a fresh process, since the libraries read them at start-up):

* ``pinned``: the book's set (torch's AVX2 kernels, ``MKL_CBWR=AVX2,STRICT``, oneDNN ≤ AVX2);
* ``mkl-auto``: ``MKL_CBWR=AUTO,STRICT``, MKL's own dispatch in its reproducible mode. Intel
  documents that on non-Intel CPUs the ``AVX2`` branch is not available and ``AUTO`` runs
  instead, so this is what ``pinned`` means on an AMD CPU;
* ``mkl-avx2-capped``: ``pinned`` with ``MKL_ENABLE_INSTRUCTIONS=AVX2``, which keeps MKL's
  dispatch (``AUTO`` on an AMD CPU) from choosing AVX-512 code;
* ``mkl-compatible``: ``MKL_CBWR=COMPATIBLE,STRICT``, the SSE2 branch that every x86-64 CPU
  runs alike;
* ``no-onednn``: ``pinned`` with torch's oneDNN convolutions switched off, so that convolutions
  run as im2col and MKL GEMM (oneDNN has no reproducible mode: its blocking follows the caches);
* ``universal``: ``mkl-compatible`` and ``no-onednn`` together.

Fingerprints (first 12 hex digits of a SHA-256 of the bytes, two threads as the book runs):
``gemm`` (fp32 products of the MLP's shapes), ``conv`` (a 3×3 convolution's output and weight
gradient), ``mlp`` (the MLP's parameters after 20 SGD steps), ``resnet18`` (its parameters and
BatchNorm statistics after 3 steps). Two machines whose fingerprints agree under a set compute
the same bits under it. Run it on each and compare::

    python benchmarks/numerics.py > here.json            # ~1 min on 2 idle cores
    python benchmarks/numerics.py --compare here.json    # on the other machine
    python benchmarks/numerics.py --quick                # seconds, for tests

The last line of stdout is one JSON object; ``other_load`` is the CPUs' worth of time other
processes used while it ran (above ~0.2 on 2 cores the timings are not trustworthy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]  # engine.py's load meter; the pipeline

from companion.numerics import PINNED  # noqa: E402  (the book's set, not a copy of it)

NO_ONEDNN = "BENCH_NO_ONEDNN"  # read by the worker: torch.backends.mkldnn off
SETS: dict[str, dict[str, str]] = {
    "pinned": PINNED,
    "mkl-auto": {**PINNED, "MKL_CBWR": "AUTO,STRICT"},
    "mkl-avx2-capped": {**PINNED, "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl-compatible": {**PINNED, "MKL_CBWR": "COMPATIBLE,STRICT"},
    "no-onednn": {**PINNED, NO_ONEDNN: "1"},
    "universal": {**PINNED, "MKL_CBWR": "COMPATIBLE,STRICT", NO_ONEDNN: "1"},
}
FINGERPRINTS = ("gemm", "conv", "mlp", "resnet18")


def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _prepared(model: str, length: int):
    """A prepared experiment of the book: θ₀, the one step map and ``length`` batches."""
    from backward_lib import experiment

    exp = experiment.Experiment(
        dataset="fashion_mnist" if model == "mlp" else "cifar10", substitute=True, model=model,
        width=1.0 if model == "mlp" else 0.125, batch_size=8, steps=length,
        record_every=1, forward_every=1, train_eval=8, test_eval=8,
    )  # fmt: skip
    return experiment.prepare(exp)


def _forward(model: str, steps: int):
    """θ after ``steps`` maps of forward training, through the book's engine."""
    import backward_lib as bl

    p = _prepared(model, max(steps, 64))
    return bl.iterate(p.T, p.theta0, bl.orders.forward(), [steps])[steps]


def _step_ms(model: str, repeats: int) -> float:
    """Best-of-three mean time of one map application, one thread (the map called directly:
    the engine's bookkeeping is :mod:`benchmarks.engine`'s subject, not this one's)."""
    import torch

    torch.set_num_threads(1)
    p = _prepared(model, 2 + repeats)
    theta = {k: v.clone() for k, v in p.theta0.items()}
    state = p.T.init(theta)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for n in range(1, 1 + repeats):
            theta, state = p.T.update(theta, state, n)
        best = min(best, (time.perf_counter() - t0) / repeats)
    torch.set_num_threads(2)
    return best * 1e3


def worker(quick: bool) -> dict:
    """Fingerprints and step times under this process's kernel set."""
    import torch

    if os.environ.get(NO_ONEDNN):
        torch.backends.mkldnn.enabled = False
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    products = []
    for m, k, n in ((8, 784, 500), (8, 500, 500), (500, 8, 500), (8, 500, 10)):
        a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
        products.append(a @ b)
    x = torch.randn(8, 16, 32, 32, generator=g)
    w = torch.randn(32, 16, 3, 3, generator=g, requires_grad=True)
    out = torch.nn.functional.conv2d(x, w, padding=1)
    (grad,) = torch.autograd.grad(out.square().sum(), w)
    prints = {"gemm": _digest(*products), "conv": _digest(out, grad)}
    for model, steps in (("mlp", 20), ("resnet18", 3)):
        theta = _forward(model, steps)
        prints[model] = _digest(*theta.values())
    repeats = (5, 2) if quick else (200, 20)
    return {
        "fingerprints": prints,
        "mlp_step_ms": _step_ms("mlp", repeats[0]),
        "resnet18_step_ms": _step_ms("resnet18", repeats[1]),
    }


def cpu() -> dict:
    """The CPU in words: model, vendor and the vector extensions the kernels choose between."""
    info = {"model": platform.processor() or "unknown", "vendor": "unknown", "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
            info["model"] = value.strip()
        elif key == "vendor_id":
            info["vendor"] = value.strip()
        elif key == "flags":
            have = set(value.split())
            info["flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in have]
            break
    return info


def measure(names: list[str], quick: bool) -> dict:
    """Run :func:`worker` once per kernel set, each in a fresh process; ratios against ``pinned``."""
    from engine import machine_busy_seconds

    busy0, wall0, cpu0 = machine_busy_seconds(), time.perf_counter(), _cpu_seconds()
    sets = {}
    for name in names:
        drop = (NO_ONEDNN, "BOOK_NUMERICS", "MKL_ENABLE_INSTRUCTIONS")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(SETS[name])
        cmd = [sys.executable, str(HERE), "--worker", *(["--quick"] if quick else [])]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"kernel set {name!r}: worker failed:\n{done.stderr[-3000:]}")
        sets[name] = {"env": SETS[name], **json.loads(done.stdout.strip().splitlines()[-1])}
    base = sets.get("pinned")
    if base:
        for row in sets.values():
            for key in ("mlp_step_ms", "resnet18_step_ms"):
                row[key.replace("_ms", "_vs_pinned")] = row[key] / base[key]
    wall = time.perf_counter() - wall0
    own = _cpu_seconds() - cpu0  # this process and its workers
    others = max(0.0, machine_busy_seconds() - busy0 - own) / wall
    return {"cpu": cpu(), "torch": _torch_version(), "sets": sets, "other_load": others, "quick": quick}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _torch_version() -> str:
    import torch

    return torch.__version__


def compare(mine: dict, theirs: dict) -> dict[str, dict[str, bool]]:
    """For each kernel set both runs measured: which fingerprints agree."""
    out = {}
    for name, row in mine["sets"].items():
        other = theirs.get("sets", {}).get(name)
        if other:
            out[name] = {f: row["fingerprints"][f] == other["fingerprints"].get(f) for f in FINGERPRINTS}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few timing repeats (seconds), for tests")
    p.add_argument("--sets", nargs="+", default=list(SETS), help=f"kernel sets to measure, of {list(SETS)}")
    p.add_argument("--compare", type=Path, help="a JSON line this script printed on another machine")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = [s for s in args.sets if s not in SETS]
    if unknown:
        p.error(f"--sets: unknown kernel set(s) {unknown}; choose from {list(SETS)}")
    if args.compare is not None and not args.compare.is_file():
        p.error(f"--compare: no such file {args.compare}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        result = worker(args.quick)
        print(json.dumps(result))
        return result
    result = measure(args.sets, args.quick)
    if args.compare is not None:
        theirs = json.loads(args.compare.read_text().strip().splitlines()[-1])
        result["compared_with"] = {"cpu": theirs.get("cpu"), "agree": compare(result, theirs)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
