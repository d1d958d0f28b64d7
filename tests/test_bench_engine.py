"""benchmarks/engine.py: its loops compute the same iterates, and its parallel baseline runs
the same chains in separate processes (timings are reported, never asserted)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "engine.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(PATH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_engine", PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_engine"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PATH.parent))
    return module


def test_quick_run_agrees_and_measures_the_parallel_baseline(bench, capsys):
    out = bench.main(["--quick", "--no-ray"])
    assert out["agree"] and out["max_abs_diff"] < 1e-4
    assert out["ray_speedup"] is None and out["ray_efficiency"] is None  # no Ray asked for
    assert out["parallel_processes"] == 2 and out["parallel_chain_steps_per_s"] > 0
    assert out["applications"] == 12 + 24  # backward at steps 12 and 24
    assert capsys.readouterr().out.strip().endswith("}")  # one JSON line last


def test_a_failing_parallel_process_is_an_error_with_its_message(bench):
    args = bench.parse_args(["--quick", "--model", "mlp"])
    args.width = -1.0  # the solo process's own argument check refuses it
    with pytest.raises(RuntimeError, match="parallel baseline: a process failed"):
        bench.time_parallel(args, 2)


def test_bad_arguments_name_the_option(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--ray-workers", "0"])
