"""Engine throughput on the Figure 3 workload, against the paper's plain Figure 1 loop.

Workload: MLP 784 → 5×500 ReLU → 10 (He init), Fashion-MNIST train, SGD lr 0.001, batch 8,
cross-entropy, backward order at a few recorded steps. In one run this measures

* ``engine_chain_steps_per_s``: map applications per second of ``backward_lib.trajectory``
  with ``maps.network`` + ``maps.sgd`` (applications counted by ``count_applications``);
* ``naive_chain_steps_per_s``: the same applications done as Figure 1 does them: for each
  recorded step n, load θ₀ into an ``nn.Module``, make a fresh ``torch.optim.SGD`` and replay
  the stored batches n, n−1, …, 1 with zero_grad / backward / step;
* ``engine_1thread_chain_steps_per_s``: the engine on one thread (what one worker can do);
* ``model_gflops`` of the engine, a same-run fp32 ``torch.matmul`` peak and their ratio;
* ``ray_chain_steps_per_s``: the same iterates on a local Ray with ``--ray-workers`` (2)
  one-thread workers (``backward_lib.ray_executor.iterates``: recorded steps as blocks, largest
  first), and ``ray_speedup`` = that rate over the engine's (default threads: 2 on the 2-core
  machine), timed interleaved with it; ``ray_other_load`` is ``other_load`` around those engine
  runs. Data transfer and worker start-up are left out (a warm-up run);
  without Ray installed, or with ``--no-ray``, these keys are null;
* ``parallel_chain_steps_per_s``: as many plain one-thread engine processes as Ray has
  workers, started together on the same chains, with no Ray between them: what the machine
  gives two independent one-thread processes (they share caches and memory bandwidth), the
  ceiling of any multi-process executor here. ``parallel_speedup`` is that rate over the
  two-thread engine and ``ray_efficiency`` Ray's rate over it (1: Ray costs nothing).

Both loops must end at the same parameters (``max_abs_diff``), so the rates compare the same
computation. The last line of stdout is one JSON object; ``--profile`` adds a torch.profiler
table of the engine's operators on stderr. Timings are the best of ``--repeats`` interleaved
runs; ``other_load`` is the CPUs' worth of time other processes used meanwhile (from
/proc/stat): on a shared machine two OpenMP threads can slow batch-8 steps several-fold.

    python benchmarks/engine.py            # ~20 s on 2 cores
    python benchmarks/engine.py --quick    # a few seconds, for tests
    python benchmarks/engine.py --no-ray   # without the Ray executor (Ray not installed)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from backward_lib import count_applications, maps, orders, trajectory

IN_DIM, OUT_DIM, DEPTH, WIDTH = 784, 10, 5, 500
LR, BATCH, SEED = 0.001, 8, 0
Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Workload:
    """Everything both loops share: model template, θ₀, data, schedule and recorded steps."""

    model: nn.Module  # the engine's stateless template
    theta0: Params
    x: torch.Tensor
    y: torch.Tensor
    sched: torch.Tensor
    steps: list[int]
    naive_model: nn.Module  # the module the naive loop trains in place
    stored: list[tuple[torch.Tensor, torch.Tensor]]  # Figure 1's stored batches 1..K
    lr: float
    name: str  # the workload in words


def recorded_steps(k: int, points: int) -> list[int]:
    """``points`` recorded steps evenly spaced up to ``k``: e.g. k=400, points=4 → 100..400."""
    return sorted({max(1, round(k * i / points)) for i in range(1, points + 1)})


MODELS = ("mlp", "resnet18")


def experiment_of(model: str, width: float, k: int, executor: str = "sequential"):
    """The workload as an Experiment: Fig. 3's MLP on Fashion-MNIST, or Fig. 2's ResNet-18
    (lr 0.025) on Fashion-MNIST at 3×32×32 (the CIFAR substitute; speed does not depend on
    the pixels). Batch 8, SGD, backward order."""
    from backward_lib import experiment

    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if model == "mlp":
        kw = dict(dataset="fashion_mnist", model="mlp", depth=DEPTH, hidden=WIDTH, init="he", lr=LR)
    else:
        kw = dict(dataset="cifar10", substitute=True, model="resnet18", lr=0.025)
    return experiment.Experiment(**kw, width=width, optimizer="sgd", batch_size=BATCH, steps=k,
                                 seed=SEED, orders=("backward",), train_eval=1, test_eval=1,
                                 executor=executor)  # fmt: skip


def build(k: int, points: int, model: str = "mlp", width: float = 1.0) -> Workload:
    """The seeded model, data and batch schedule of :func:`experiment_of`, for both loops."""
    from backward_lib import experiment

    prep = experiment.prepare(experiment_of(model, width, k))
    x, y, sched = prep.T.x, prep.T.y, prep.T.schedule
    naive_model = copy.deepcopy(prep.model)
    naive_model.load_state_dict(prep.theta0)
    stored = [(x[idx], y[idx]) for idx in sched]
    e = prep.exp
    name = (f"figure3 mlp({IN_DIM},{OUT_DIM},{DEPTH},{round(WIDTH * width)}) he, fashion_mnist train"
            if model == "mlp" else f"figure2 resnet18 width {width}, fashion_mnist at 3x32x32")  # fmt: skip
    name += (
        f", sgd lr={e.lr}, batch {BATCH}, cross-entropy, backward order at steps {recorded_steps(k, points)}"
    )
    return Workload(
        prep.model, prep.theta0, x, y, sched, recorded_steps(k, points), naive_model, stored, e.lr, name
    )


def run_engine(w: Workload, steps: list[int]) -> dict[int, Params]:
    """Backward-order iterates at ``steps`` through backward_lib's engine."""
    T = maps.network(w.model, nn.functional.cross_entropy, maps.sgd(w.lr), w.x, w.y, w.sched)
    return dict(trajectory(T, w.theta0, orders.backward(), steps))


def run_naive(w: Workload, steps: list[int]) -> dict[int, Params]:
    """Figure 1 done plainly: per recorded step, reload θ₀ and replay batches n..1 with torch.optim."""
    model, loss_fn = w.naive_model, nn.CrossEntropyLoss()
    out = {}
    for n in steps:
        model.load_state_dict(w.theta0)
        opt = torch.optim.SGD(model.parameters(), lr=w.lr)
        for xb, yb in reversed(w.stored[:n]):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        out[n] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return out


def max_abs_diff(a: dict[int, Params], b: dict[int, Params]) -> float:
    """Largest |a − b| over every recorded step and every tensor."""
    return max(float((a[n][k] - b[n][k]).abs().max()) for n in a for k in a[n])


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call (time.perf_counter)."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops_per_application(w: Workload) -> int:
    """Model FLOPs of one SGD step, as torch's FLOP counter counts one forward and backward
    pass of a batch (matrix products and convolutions; the update, activations and loss are
    not counted, nor the first layer's input gradient, which autograd never computes)."""
    from torch.utils.flop_counter import FlopCounterMode

    xb, yb = w.stored[0]
    model = copy.deepcopy(w.naive_model)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(xb), yb).backward()
    return int(counter.get_total_flops())


def matmul_peak_gflops(sizes: tuple[int, ...], repeats: int) -> float:
    """Best fp32 square ``torch.matmul`` rate over ``sizes``, default threads, in GFLOP/s."""
    g = torch.Generator().manual_seed(SEED)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        torch.matmul(a, b)  # warm-up
        t = min(seconds(lambda a=a, b=b: torch.matmul(a, b)) for _ in range(repeats))
        best = max(best, 2 * n**3 / t / 1e9)
    return best


def profile_engine(w: Workload, steps: list[int]) -> None:
    """Print the engine's top operators (torch.profiler, CPU time) to stderr.

    Operator counts and the ranking are what to read: with two OpenMP threads the profiler
    itself inflates the small GEMMs' times about threefold on the 2-core machine.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_engine(w, steps)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI: --steps K, --points P, --repeats R, --quick, --profile."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="largest recorded step K (default 300)")
    p.add_argument("--points", type=int, default=3, help="recorded steps evenly spaced up to K")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each loop; the best is kept")
    p.add_argument("--quick", action="store_true", help="tiny version (K=24, 2 points, 1 repeat)")
    p.add_argument("--profile", action="store_true", help="torch.profiler table of the engine on stderr")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray executor (its keys are null)")
    p.add_argument("--ray-workers", type=int, default=2, help="one-thread Ray workers (default 2)")
    p.add_argument("--model", choices=MODELS, default="mlp", help="mlp (Fig. 3) or resnet18 (Fig. 2)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1: the paper's)")
    # one process of the parallel baseline (time_parallel starts them)
    p.add_argument("--solo", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.points, args.repeats = 24, 2, 1
    if args.steps < 1 or args.points < 1 or args.repeats < 1 or args.ray_workers < 1:
        p.error("--steps, --points, --repeats and --ray-workers must be ≥ 1")
    if not args.width > 0:
        p.error(f"--width must be > 0, got {args.width}")
    return args


def machine_busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat; NaN elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds (user + system) used by this process, all threads."""
    t = os.times()
    return t.user + t.system


def time_loops(w: Workload, repeats: int) -> tuple[float, float, float]:
    """Best engine and naive wall times over interleaved runs, and the CPU-seconds that
    other processes used meanwhile per wall second (0 on a quiet machine)."""
    t_engine = t_naive = float("inf")
    busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
    for _ in range(repeats):  # interleaved, so slow drift hits both loops alike
        t_engine = min(t_engine, seconds(lambda: run_engine(w, w.steps)))
        t_naive = min(t_naive, seconds(lambda: run_naive(w, w.steps)))
    others = machine_busy_seconds() - busy0 - (own_cpu_seconds() - own0)
    return t_engine, t_naive, max(0.0, others) / (time.perf_counter() - wall0)


def solo(args: argparse.Namespace) -> None:
    """One process of the parallel baseline: build, warm up, say ``ready``, wait for ``go`` on
    stdin, then time the engine ``--repeats`` times on one thread and print the times."""
    torch.set_num_threads(1)
    w = build(args.steps, args.points, args.model, args.width)
    run_engine(w, w.steps[:1])
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps([seconds(lambda: run_engine(w, w.steps)) for _ in range(args.repeats)]), flush=True)


def time_parallel(args: argparse.Namespace, workers: int) -> float:
    """Wall time of the backward iterates when ``workers`` one-thread engine processes compute
    them at once (each all of them): per repeat the slowest process's time, best repeat kept.
    The processes are built and warmed first and released together."""
    import subprocess

    cmd = [sys.executable, __file__, "--solo", "--steps", str(args.steps), "--points", str(args.points),
           "--repeats", str(args.repeats), "--model", args.model, "--width", str(args.width)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(workers)]  # fmt: skip
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"parallel baseline: a process failed:\n{proc.stderr.read()[-3000:]}")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        times = [json.loads(proc.stdout.readline()) for proc in procs]
    finally:
        for proc in procs:  # done by now, or failed: nothing of theirs is needed any more
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return min(max(per_repeat) for per_repeat in zip(*times, strict=True))


def time_ray(w: Workload, exp, workers: int, repeats: int) -> tuple[float, float, float, float]:
    """Best wall times of the backward iterates on a local Ray with ``workers`` one-thread
    workers and of the engine, interleaved (so the machine's load hits both alike), their
    largest |Δθ|, and ``other_load`` meanwhile. A warm-up run starts the workers and ships the
    data first."""
    import ray

    from backward_lib import ray_executor

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        got = ray_executor.iterates(exp, "backward", w.steps, workers=workers)  # warm-up
        # against the engine at the workers' one thread: a BatchNorm network's round-off
        # depends on the thread count and grows over a chain (1e-4 after 3 steps at lr 0.025)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            diff = max_abs_diff(run_engine(w, w.steps), got)
        finally:
            torch.set_num_threads(threads)
        t_ray = t_engine = float("inf")
        # the workers count as "others" in /proc/stat: the load is measured around the engine runs
        # only (Ray's idle daemons included)
        others = 0.0
        for _ in range(repeats):
            t_ray = min(
                t_ray, seconds(lambda: ray_executor.iterates(exp, "backward", w.steps, workers=workers))
            )
            b, o, t = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
            t_engine = min(t_engine, seconds(lambda: run_engine(w, w.steps)))
            others += max(0.0, machine_busy_seconds() - b - (own_cpu_seconds() - o)) / (
                time.perf_counter() - t
            )
    finally:
        ray_executor.shutdown()
        if started:
            ray.shutdown()
    return t_ray, diff, t_engine, others / repeats


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print and return the JSON result."""
    args = parse_args(argv)
    if args.solo:
        solo(args)
        return {}
    w = build(args.steps, args.points, args.model, args.width)
    apps = count_applications(orders.backward(), w.steps)
    warm = w.steps[:1] if args.quick else [min(w.steps[0], 20)]
    run_engine(w, warm)  # warm-up: allocator, BLAS, autograd, torch.optim's lazy imports
    run_naive(w, warm)
    diff = max_abs_diff(run_engine(w, w.steps), run_naive(w, w.steps))
    t_engine, t_naive, others = time_loops(w, args.repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what one core does alone: the bound on two one-thread workers
    try:
        t_one = min(seconds(lambda: run_engine(w, w.steps)) for _ in range(args.repeats))
    finally:
        torch.set_num_threads(threads)
    engine_rate, naive_rate = apps / t_engine, apps / t_naive
    flops = flops_per_application(w)
    model_gflops = flops * engine_rate / 1e9
    peak = matmul_peak_gflops((512, 1024) if args.quick else (1024, 1536, 2048), 2 if args.quick else 5)
    if args.profile:
        profile_engine(w, w.steps)
    t_ray = ray_diff = t_engine_ray = ray_others = None
    try:
        import ray  # noqa: F401
    except ImportError:  # Ray is optional: the Ray keys are then null
        args.no_ray = True
    if not args.no_ray:
        exp = experiment_of(args.model, args.width, args.steps, executor="ray")
        t_ray, ray_diff, t_engine_ray, ray_others = time_ray(w, exp, args.ray_workers, args.repeats)
    t_parallel = time_parallel(args, args.ray_workers)
    rates = {"sequential": engine_rate, **({"ray": apps / t_ray} if t_ray else {})}
    best = max(rates, key=rates.get)
    result = {
        "workload": w.name,
        "model": args.model,
        "width": args.width,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "applications": apps,
        "engine_s": round(t_engine, 4),
        "naive_s": round(t_naive, 4),
        "engine_chain_steps_per_s": round(engine_rate, 1),
        "engine_1thread_chain_steps_per_s": round(apps / t_one, 1),
        "naive_chain_steps_per_s": round(naive_rate, 1),
        "speedup": round(engine_rate / naive_rate, 3),
        "model_gflops": round(model_gflops, 2),
        "matmul_peak_gflops": round(peak, 1),
        "utilization": round(model_gflops / peak, 4),
        "max_abs_diff": diff,
        "agree": diff < 1e-4,
        "other_load": round(others, 2),
        "ray_workers": None if t_ray is None else args.ray_workers,
        "ray_s": None if t_ray is None else round(t_ray, 4),
        "ray_chain_steps_per_s": None if t_ray is None else round(apps / t_ray, 1),
        "ray_speedup": None if t_ray is None else round(t_engine_ray / t_ray, 3),
        "ray_max_abs_diff": ray_diff,
        "ray_other_load": None if ray_others is None else round(ray_others, 2),
        "parallel_processes": args.ray_workers,
        "parallel_chain_steps_per_s": round(args.ray_workers * apps / t_parallel, 1),
        "parallel_speedup": round(args.ray_workers * t_engine / t_parallel, 3),
        "ray_efficiency": None if t_ray is None else round(t_parallel / (args.ray_workers * t_ray), 3),
        "flops_per_application": flops,
        "best_executor": best,
        "best_speedup": round(rates[best] / naive_rate, 3),
        "best_utilization": round(flops * rates[best] / 1e9 / peak, 4),
    }
    if others > 0.2:
        print(f"warning: other processes used {others:.2f} CPUs while timing; rates are low", file=sys.stderr)
    print(json.dumps(result))
    if not result["agree"]:
        raise SystemExit(f"engine and naive loop disagree: max |Δθ| = {diff:.3g} ≥ 1e-4")
    if ray_diff is not None and ray_diff >= 1e-4:
        raise SystemExit(f"engine and Ray executor disagree: max |Δθ| = {ray_diff:.3g} ≥ 1e-4")
    return result


if __name__ == "__main__":
    main()
