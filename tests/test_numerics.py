"""The pinned numerics are in force in the test processes, and the kernel sets are checked."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from companion import numerics


def test_tests_run_under_the_chosen_kernel_set():
    # conftest.py pins before torch is imported; the capability torch dispatches to shows it
    want = {"pinned": "AVX2", "reference": "DEFAULT"}.get(numerics.kernel_set())
    if want is None:  # BOOK_NUMERICS=native: nothing is pinned, so nothing to see
        assert numerics.KERNEL_SETS["native"] == {}
        return
    assert torch.backends.cpu.get_cpu_capability() == want
    # and a fresh process (a kernel nbval starts) inherits the set, threads included
    code = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [want, numerics.KERNEL_SETS[numerics.kernel_set()]["OMP_NUM_THREADS"]]


def test_environment_applies_a_set_and_rejects_unknown_names():
    env = numerics.environment({"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_CBWR"] == "AVX2,STRICT"
    ref = numerics.environment({"BOOK_NUMERICS": "reference"})
    assert ref["ATEN_CPU_CAPABILITY"] == "default" and ref["OMP_NUM_THREADS"] == env["OMP_NUM_THREADS"]
    assert numerics.environment({"BOOK_NUMERICS": "native", "X": "1"}) == {
        "BOOK_NUMERICS": "native",
        "X": "1",
    }
    with pytest.raises(ValueError, match="BOOK_NUMERICS"):
        numerics.kernel_set({"BOOK_NUMERICS": "fast"})
