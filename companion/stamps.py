"""Stamps: a chapter's executed notebook is current while this hash of what made it holds.

The hash covers the chapter source (and a variant's), its parameters, the library modules it
imports (followed through their own imports, in the science library and in this package) and
the pinned requirements. The pipeline's own execution and page modules are left out: they do
not change results.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from backward_lib import provenance

from . import numerics
from .chapters import ROOT, _variant

__all__ = ["META", "stamp", "stored"]

META = "backward_book"


PACKAGES = ("backward_lib", "companion")
# Pipeline mechanics: how a chapter is found, run, stamped and published, not what it computes.
MECHANICS = {"companion", "companion.__main__", "companion.chapters", "companion.pages",
             "companion.pipeline", "companion.stamps"}  # fmt: skip
# Parameters that choose how the chains run, not what they compute: the results store leaves
# them out of its key (``backward_lib.experiment``), so a chapter run on Ray reads the same
# results as a sequential one and is as current.
EXECUTION = frozenset({"executor", "chain_batch", "device"})


def _imports(code: str, module: str = "") -> set[str]:
    """Modules of :data:`PACKAGES` that ``code`` imports (the library's one import walk)."""
    return provenance.imports(code, module, PACKAGES)


def _library_hash(code: str) -> str:
    """Hash of the library modules ``code`` uses, followed through their own imports.

    A chapter is stale when a module it runs changes, not when an unrelated one does. The
    pipeline's mechanics (:data:`MECHANICS`) are left out: they do not change results.
    """
    seen = provenance.closure(_imports(code) | {"backward_lib"}, PACKAGES, exclude=frozenset(MECHANICS))
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + provenance.source_file(name).read_bytes())
    for script in sorted(set(re.findall(r"benchmarks/\w+\.py", code))):  # scripts a chapter runs
        h.update(script.encode() + b"\0" + (ROOT / script).read_bytes())
    return h.hexdigest()


def _code(text: str) -> str:
    """The Python code of a jupytext percent source (markdown cells are comments already)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("%"))


def stamp(src: Path, params: dict[str, Any]) -> str:
    """Hash of the chapter source, its parameters (less :data:`EXECUTION`), the library, the
    pinned requirements and the pinned numerics (another kernel set gives other bits)."""
    params = {k: v for k, v in params.items() if k not in EXECUTION}
    h = hashlib.sha256()
    sources = [src.read_bytes()]
    if src.suffix == ".yaml":
        sources.append(_variant(src)["source"].read_bytes())
    code = sources[-1].decode()
    for part in (
        *sources,
        json.dumps(params, sort_keys=True, default=str).encode(),
        _library_hash(_code(code)).encode(),
        (ROOT / "requirements.txt").read_bytes(),
        json.dumps(numerics.KERNEL_SETS[numerics.kernel_set()], sort_keys=True).encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def stored(out: Path) -> dict[str, Any] | None:
    """The stamp an executed notebook carries, or None when it is missing or was not stamped."""
    if not out.is_file():
        return None
    return json.loads(out.read_text()).get("metadata", {}).get(META)
