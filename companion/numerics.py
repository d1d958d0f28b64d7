"""The book's pinned numerics: one kernel set for every execution and check of a chapter.

torch picks its vector kernels per CPU (``ATEN_CPU_CAPABILITY``), MKL picks a code path per CPU
(and per vendor), oneDNN JIT-compiles convolutions for the widest ISA it finds, and reductions
split their work by thread count. Left alone, an Intel machine with AVX-512 and an AMD machine
with AVX2 differ in the last bits after one step, and a few hundred SGD steps amplify that into
other curves. The pipeline runs every chapter, and ``make test`` checks it, under :data:`PINNED`:
the AVX2 kernels of all three libraries, MKL's strict conditional numerical reproducibility
(bitwise across thread counts for its BLAS-3 routines) and two threads.

That gives the same bits on machines of one kind, not on every x86-64 CPU: MKL's AVX2 branch
exists on Intel CPUs only (elsewhere its ``AUTO`` dispatch runs), and oneDNN has no
reproducible mode (``benchmarks/numerics.py`` fingerprints where kinds part and what pinning
more would cost). The verdicts are made robust instead: ``make robust`` re-executes chapters on
other kernels and no verdict may flip.

``BOOK_NUMERICS`` chooses another set: ``reference`` runs torch's generic kernels
(``ATEN_CPU_CAPABILITY=default``), which gives other bits in every operation, for the
robustness check of ``make robust`` (a verdict that flips there is a verdict that round-off
decides); ``native`` pins nothing, for paper-scale runs on other hardware (the stamps then no
longer describe those bits).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["KERNEL_SETS", "environment", "kernel_set", "pin"]

PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
}
# torch's generic kernels: on the machines measured this changes the bits of every operation
# the chapters use (products and convolutions included, which torch then routes differently)
# at about 1.2× the time; MKL's and oneDNN's generic paths would add a factor of 3.
REFERENCE = {**PINNED, "ATEN_CPU_CAPABILITY": "default"}
KERNEL_SETS: dict[str, dict[str, str]] = {"pinned": PINNED, "reference": REFERENCE, "native": {}}


def kernel_set(env: Mapping[str, str] | None = None) -> str:
    """The kernel set named by ``BOOK_NUMERICS`` (``pinned`` when unset)."""
    name = (os.environ if env is None else env).get("BOOK_NUMERICS", "pinned")
    if name not in KERNEL_SETS:
        raise ValueError(f"BOOK_NUMERICS must be one of {sorted(KERNEL_SETS)}, got {name!r}")
    return name


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the chosen kernel set's variables applied."""
    base = dict(os.environ if env is None else env)
    return {**base, **KERNEL_SETS[kernel_set(base)]}


def pin() -> str:
    """Apply the chosen kernel set to this process's environment, for the kernels and the
    test processes it starts; must run before torch is imported to affect this process too.
    Returns the set's name."""
    name = kernel_set()
    os.environ.update(KERNEL_SETS[name])
    return name
