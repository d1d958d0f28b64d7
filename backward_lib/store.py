"""On-disk results keyed by what made them: finished work is never redone, stale work never reused.

One file per configuration (an experiment and its seed): ``<root>/<key>.jsonl``. Its first line
is the header, ``{"config": …, "code": …, "torch": …}``; every further line is one recorded
step, ``{"order": spec, "step": n, "values": {metric: value}, "seconds": s}``, appended and
synced as the step finishes (``seconds``: wall time since the previous line this process wrote,
so a file's sum is what computing it took). The key hashes the header: the full configuration,
the digest of the library code that computes the results
(:func:`backward_lib.provenance.digest`) and torch's version, so a change to the step, the
model, the data (whose checksums are in the code) or torch gives a new key and the old file is
never read for it. A run killed halfway leaves every finished step on disk (a torn last line is
ignored and dropped before the next append), and the next run with the same key resumes after
it.

The book commits its store (``results/`` in the repository); :func:`check` is how a reader or
CI tells that a file is current and unaltered in its layout, and the pipeline's ``verify``
recomputes a sample of its values from scratch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["Store", "check", "config_key", "default_root", "header", "read_header", "used_keys_file"]

USED = "BACKWARD_USED"  # a file that every Store opened appends its key to (the pipeline's manifest)


def default_root() -> Path:
    """``$BACKWARD_RESULTS``, else ``results/`` in the repository (committed)."""
    env = os.environ.get("BACKWARD_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "results"


def used_keys_file() -> Path | None:
    """Where opened stores record their keys (``$BACKWARD_USED``), or None."""
    env = os.environ.get(USED)
    return Path(env) if env else None


def _plain(config: Any) -> dict[str, Any]:
    data = asdict(config) if is_dataclass(config) else dict(config)
    return json.loads(json.dumps(data, sort_keys=True, default=str))  # tuples → lists, as stored


def config_key(config: Any) -> str:
    """A short stable hash of a configuration (a dataclass or a JSON-able mapping)."""
    return hashlib.sha256(json.dumps(_plain(config), sort_keys=True).encode()).hexdigest()[:16]


def header(config: Any, code: str) -> dict[str, Any]:
    """What a store file's key hashes: configuration, code digest and torch's version."""
    return {"config": _plain(config), "code": code, "torch": torch.__version__}


def read_header(path: Path) -> dict[str, Any]:
    """The header line of a store file (ValueError if it has none)."""
    with path.open() as f:
        first = f.readline()
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        raise ValueError(f"{path.name}: no header line") from None
    if not isinstance(head, dict) or set(head) != {"config", "code", "torch"}:
        raise ValueError(f"{path.name}: the first line is not a store header")
    return head


def check(path: Path, code: str) -> str | None:
    """Why the store file ``path`` must not be used with library code ``code``, or None.

    A file is stale when its header names other code or another torch; it is corrupt when its
    name is not the hash of its header (an edited configuration) or a line is not a step.
    """
    try:
        head = read_header(path)
    except ValueError as err:
        return str(err)
    if config_key(head) != path.stem:
        return f"{path.name}: its name is not the hash of its header (edited or renamed)"
    if head["code"] != code:
        return f"{path.name}: stale, computed by library code {head['code']}, the library is now {code}"
    if head["torch"] != torch.__version__:
        return f"{path.name}: stale, computed with torch {head['torch']}, torch is now {torch.__version__}"
    lines = path.read_text().splitlines()[1:]
    for i, line in enumerate(lines, 2):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) + 1:
                continue  # a torn last line: a killed run's, resumed over
            return f"{path.name}: line {i} does not parse"
        if set(row) != {"order", "step", "values", "seconds"}:
            return f"{path.name}: line {i} is not a recorded step"
    return None


class Store:
    """Records of one configuration, per order, as lists of tidy row dicts."""

    def __init__(self, config: Any, root: Path | str | None = None, *, code: str = "none"):
        self.header = header(config, code)
        self.key = config_key(self.header)
        self.root = Path(root or default_root())
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / f"{self.key}.jsonl"
        self.seed = self.header["config"].get("seed")
        if not self.path.is_file():
            self.path.write_text(json.dumps(self.header, sort_keys=True) + "\n")
        used = used_keys_file()
        if used is not None:
            with used.open("a") as f:
                f.write(self.key + "\n")
        self._repaired = False
        self._clock = time.perf_counter()

    def _lines(self) -> tuple[list[dict[str, Any]], bool]:
        """(complete step lines, whether a torn line follows them)."""
        out = []
        lines = self.path.read_text().splitlines()[1:]
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                return out, True  # the line a killed run was writing
        return out, False

    def rows(self, order: str) -> list[dict[str, Any]]:
        """Every complete row stored for ``order``: (order, seed, step, metric, value, diverged)."""
        return [
            {
                "order": order,
                "seed": self.seed,
                "step": s["step"],
                "metric": k,
                "value": v,
                "diverged": not math.isfinite(v),
            }
            for s in self._lines()[0]
            if s["order"] == order
            for k, v in s["values"].items()
        ]

    def orders(self) -> list[str]:
        """The orders stored, in the order they first appear."""
        return list(dict.fromkeys(s["order"] for s in self._lines()[0]))

    def seconds(self) -> float:
        """Wall time the stored steps took to compute, over every run that wrote them."""
        return float(sum(s["seconds"] for s in self._lines()[0]))

    def done_steps(self, order: str) -> set[int]:
        return {int(s["step"]) for s in self._lines()[0] if s["order"] == order}

    def append(self, order: str, rows: list[dict[str, Any]]) -> None:
        """Add the rows of one finished step (one step number), durably (flushed and synced)."""
        if not rows:
            return
        steps = {int(r["step"]) for r in rows}
        if len(steps) != 1:
            raise ValueError(f"append takes the rows of one step, got steps {sorted(steps)}")
        if not self._repaired:
            good, torn = self._lines()
            if torn:  # drop a torn tail before appending, so later lines stay readable
                keep = [json.dumps(self.header, sort_keys=True)] + [json.dumps(s) for s in good]
                self.path.write_text("".join(line + "\n" for line in keep))
            self._repaired = True
        now = time.perf_counter()
        line = {
            "order": order,
            "step": steps.pop(),
            "values": {r["metric"]: r["value"] for r in rows},
            "seconds": round(now - self._clock, 3),
        }
        self._clock = now
        with self.path.open("a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
