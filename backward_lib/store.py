"""On-disk results keyed by a hash of the full configuration: finished work is never redone.

Layout: ``<root>/<key>/config.json`` and one JSON-lines file of records per order, appended
and flushed as each recorded step finishes. A run killed halfway leaves every finished step
on disk (a torn last line is ignored), and the next run with the same configuration resumes
after it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["Store", "config_key", "default_root"]


def default_root() -> Path:
    """``$BACKWARD_RESULTS``, else ``results/`` in the repository (git-ignored)."""
    env = os.environ.get("BACKWARD_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "results"


def config_key(config: Any) -> str:
    """A short stable hash of a configuration (a dataclass or a JSON-able mapping)."""
    data = asdict(config) if is_dataclass(config) else dict(config)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Store:
    """Records of one configuration, per order, as lists of row dicts."""

    def __init__(self, config: Any, root: Path | str | None = None):
        self.key = config_key(config)
        self.dir = Path(root or default_root()) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = asdict(config) if is_dataclass(config) else dict(config)
        (self.dir / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True, default=str))
        self._repaired: set[str] = set()

    def _file(self, order: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in order)
        return self.dir / f"{safe}.jsonl"

    def rows(self, order: str) -> list[dict[str, Any]]:
        """Every complete row stored for ``order`` (a torn last line from a kill is skipped)."""
        path = self._file(order)
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the line a killed run was writing
        return rows

    def done_steps(self, order: str) -> set[int]:
        return {int(r["step"]) for r in self.rows(order)}

    def append(self, order: str, rows: list[dict[str, Any]]) -> None:
        """Add the rows of one finished step, durably (flushed and synced)."""
        path = self._file(order)
        if order not in self._repaired and path.is_file():
            good = self.rows(order)
            if len(path.read_text().splitlines()) != len(good):
                # drop a torn tail before appending, so later rows stay readable
                path.write_text("".join(json.dumps(r) + "\n" for r in good))
            self._repaired.add(order)
        with path.open("a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
