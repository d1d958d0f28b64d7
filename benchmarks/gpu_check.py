"""The GPU check, one prepared script for a session that is lent a CUDA device (a few minutes).

1. Chain batching against the sequential engine on CUDA: the backward iterates of a few
   recorded steps, for the Fig. 3 MLP (5×500) and a ResNet-18 (BatchNorm), fp32 with TF32
   off, must agree within ``--tol`` (relative to the parameters' scale).
2. Chain-steps per second at the paper's width: Fig. 2's ResNet-18 (width 1, batch 8) with
   ``chain_batch`` 8, 32 and 64, and Fig. 3's MLP, against the sequential engine on the same
   device.

Inputs are random tensors of the real shapes (3×32×32 and 1×28×28): speed and agreement do
not depend on the pixels, and the device machine has no data sets. Prints one JSON line and
writes it to ``$OUT/gpu.json`` when ``OUT`` is set; ``benchmarks/gpu.json`` committed beside this
file is what the Reproduce page shows.

    python benchmarks/gpu_check.py            # needs CUDA
    python benchmarks/gpu_check.py --quick    # fewer steps (about a minute)
    python benchmarks/gpu_check.py --smoke    # tiny, on the CPU: the script itself works (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.nn import functional as F  # noqa: N812

from backward_lib import batched, count_applications, maps, models, orders, schedule, trajectory
from backward_lib.device import device_name


def _setup(model_name: str, width: float, n: int, steps: int, device: torch.device):
    """The step map of a seeded model on random inputs of the paper's shape, and its θ₀."""
    shape, classes = ((3, 32, 32), 10) if model_name != "mlp" else ((1, 28, 28), 10)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, *shape, generator=g).to(device)
    y = torch.randint(0, classes, (n,), generator=g).to(device)
    model = models.get(model_name, in_shape=shape, num_classes=classes, width=width, depth=5, hidden=500,
                       init="he", seed=0).to(device)  # fmt: skip
    sched = schedule.batches(n, 8, steps, 0).to(device)
    T = maps.network(model, F.cross_entropy, maps.sgd(0.025 if model_name != "mlp" else 0.001), x, y, sched)
    return T, maps.params_of(model)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def agreement(model_name: str, width: float, steps: list[int], device: torch.device) -> float:
    """Largest |batched − sequential| over the recorded backward iterates, relative to the
    largest parameter entry."""
    T, theta0 = _setup(model_name, width, 512, steps[-1], device)
    seq = dict(trajectory(T, theta0, orders.backward(), steps))
    bat = dict(batched.batched_trajectory(T, theta0, orders.backward(), steps, group=len(steps)))
    scale = max(float(v.abs().max()) for v in theta0.values() if v.is_floating_point())
    diff = max(float((seq[n][k].float() - bat[n][k].float()).abs().max()) for n in steps for k in seq[n])
    return diff / scale


def rate(model_name: str, width: float, steps: list[int], group: int | None, device: torch.device) -> float:
    """Chain-steps (map applications) per second of the backward order at ``steps``:
    batched in groups of ``group``, or the sequential engine (``group`` None)."""
    T, theta0 = _setup(model_name, width, 4096, steps[-1], device)

    def run() -> dict:
        if group is None:
            return dict(trajectory(T, theta0, orders.backward(), steps))
        return dict(batched.batched_trajectory(T, theta0, orders.backward(), steps, group=group))

    run()  # warm-up: cuDNN autotuning, allocator
    _sync(device)
    t = time.perf_counter()
    run()
    _sync(device)
    return count_applications(orders.backward(), steps) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter chains")
    p.add_argument("--smoke", action="store_true", help="tiny widths and chains on the CPU")
    p.add_argument("--tol", type=float, default=1e-4, help="relative agreement tolerance (fp32, TF32 off)")
    args = p.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; run it on the device machine (or --smoke)")
    device = torch.device("cpu" if args.smoke else "cuda")
    wide, deep = (0.0625, 0.02) if args.smoke else (1.0, 0.25)  # ResNet-18 widths: speed, agreement
    torch.backends.cuda.matmul.allow_tf32 = False  # the agreement check compares fp32 round-off
    torch.backends.cudnn.allow_tf32 = False
    k = 4 if args.smoke else 16 if args.quick else 32
    result: dict = {"device": device_name(device), "torch": torch.__version__, "tolerance": args.tol}
    result["agreement"] = {
        "mlp": agreement("mlp", 1.0, list(range(max(1, k - 7), k + 1)), device),
        "resnet18": agreement("resnet18", deep, list(range(k - 3, k + 1)), device),
    }
    result["agree"] = all(v <= args.tol for v in result["agreement"].values())
    torch.backends.cuda.matmul.allow_tf32 = True  # speed as a user would run it
    torch.backends.cudnn.allow_tf32 = True
    groups = (2, 4) if args.smoke else (8, 32, 64)
    grid = list(range(k + 1, k + 1 + groups[-1]))  # consecutive recorded steps: full groups
    result["chain_steps_per_s"] = {
        "mlp_sequential": rate("mlp", 1.0, grid, None, device),
        f"mlp_batched_{groups[-1]}": rate("mlp", 1.0, grid, groups[-1], device),
        "resnet18_sequential": rate("resnet18", wide, grid[: groups[0]], None, device),
        **{f"resnet18_batched_{g}": rate("resnet18", wide, grid, g, device) for g in groups},
    }
    if device.type == "cuda":
        result["memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    line = json.dumps(result)
    print(line)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu.json").write_text(line + "\n")
    if not result["agree"]:
        raise SystemExit(f"batched and sequential disagree on CUDA: {result['agreement']}")
    return result


if __name__ == "__main__":
    main()
