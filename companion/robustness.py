"""Robustness of the verdicts to round-off, recorded.

A chapter is re-executed under another kernel set (``BOOK_NUMERICS=reference``: torch's generic
kernels, other bits in every operation) with its experiments recomputed in a store of their own,
and its claims are compared with the published chapter's, claim by claim: a verdict that differs
is one that round-off decides. The comparison is written to ``book/robustness.json``, one entry
per chapter, with the published chapter's stamp: an entry whose stamp no longer matches the
published chapter is stale (the chapter changed since) and says nothing about it. The Reproduce
page shows the record; ``python -m companion robust`` fills it.

That the re-execution computed other bits is part of the record: the number of claims whose
measured value changed. A chapter where none changed was not tested by this check.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import chapters, stamps
from .claims import METADATA_KEY

__all__ = ["RECORD", "compare", "current", "load", "run", "update"]

RECORD = chapters.BOOK / "robustness.json"
KERNEL_SET = "reference"


def claims_of(path: Path) -> list[dict[str, Any]]:
    """The structured claims an executed chapter carries (``claims.check``'s output metadata)."""
    nb = json.loads(path.read_text())
    return [c for cell in nb["cells"] for o in cell.get("outputs", [])
            for c in o.get("metadata", {}).get(METADATA_KEY, [])]  # fmt: skip


def _key(c: dict[str, Any]) -> str:
    return f"[{c['source']}] {c['statement']}"


def compare(published: list[dict[str, Any]], rerun: list[dict[str, Any]]) -> dict[str, Any]:
    """Claim-by-claim comparison of two executions of one chapter.

    ``claims``: how many were compared; ``flipped``: those whose verdict differs (statement,
    published and re-executed verdicts); ``changed``: how many measured values differ at all
    (evidence that the other kernels computed other bits); ``missing``: claims that only one
    execution made (a chapter whose claims differ in kind is not comparable).
    """
    a = {_key(c): c for c in published}
    b = {_key(c): c for c in rerun}
    both = [k for k in a if k in b]
    flipped = [
        {"claim": k, "published": a[k]["verdict"], "rerun": b[k]["verdict"]}
        for k in both
        if a[k]["verdict"] != b[k]["verdict"]
    ]
    changed = sum(a[k]["measured"] != b[k]["measured"] for k in both)
    missing = sorted(set(a) ^ set(b))
    return {"claims": len(both), "flipped": flipped, "changed": changed, "missing": missing}


def load(path: Path = RECORD) -> dict[str, dict[str, Any]]:
    """The record: chapter name -> entry (empty when none was made)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def current(name: str, entry: dict[str, Any]) -> bool:
    """Whether ``entry`` describes the published chapter ``name`` as it is now."""
    src = chapters.chapters().get(name)
    if src is None:
        return False
    meta = stamps.stored(chapters.output_path(src)) or {}
    return meta.get("stamp") == entry.get("stamp")


def update(names: list[str], rerun_dir: Path, path: Path = RECORD) -> dict[str, dict[str, Any]]:
    """Compare each chapter's re-execution under ``rerun_dir`` (the layout of ``book/``) with
    the published one, and write the entries into the record. Returns the new entries."""
    known = chapters.chapters()
    record, new = load(path), {}
    today = datetime.date.today().isoformat()
    for name in names:
        out = chapters.output_path(known[name])
        again = Path(rerun_dir) / out.relative_to(chapters.BOOK)
        if not again.is_file():
            raise ValueError(f"chapter {name}: no re-execution at {again}")
        meta, meta_again = stamps.stored(out) or {}, stamps.stored(again) or {}
        if meta_again.get("numerics") != KERNEL_SET:
            raise ValueError(f"chapter {name}: {again} was not executed under {KERNEL_SET!r} numerics")
        entry = {"stamp": meta.get("stamp"), "kernel_set": KERNEL_SET, "date": today,
                 **compare(claims_of(out), claims_of(again))}  # fmt: skip
        record[name] = new[name] = entry
    _write(record, path)
    return new


def _write(record: dict[str, dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(dict(sorted(record.items())), indent=1, ensure_ascii=False) + "\n")


def run(names: list[str], executor: str | None, store: Path, rerun_dir: Path) -> dict[str, dict[str, Any]]:
    """Re-execute ``names`` under the reference kernels into ``rerun_dir``, their experiments
    recomputed in ``store`` (resumable: a killed run keeps its finished steps), and record the
    comparison. Each chapter is compared as soon as it finishes, so a killed run keeps those."""
    known = chapters.chapters()
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"chapter: unknown chapter(s) {bad}; known: {sorted(known)}")
    env = {**os.environ, "BOOK_NUMERICS": KERNEL_SET, "BACKWARD_RESULTS": str(Path(store).resolve())}
    new = {}
    for name in names:
        cmd = [sys.executable, "-m", "companion", "run", name, "--out", str(rerun_dir)]
        if executor is not None and "executor" in chapters.declared(known[name]):
            cmd += ["--executor", executor]
        done = subprocess.run(cmd, env=env, cwd=chapters.ROOT)
        if done.returncode < 0:  # killed by a signal: nothing to record; the store keeps its steps
            raise RuntimeError(f"chapter {name}: re-execution killed (signal {-done.returncode})")
        if done.returncode == 0:
            new.update(update([name], rerun_dir))
        else:  # a check that fails under other round-off: recorded, the other chapters still run
            new.update(_failed(name))
    return new


def _failed(name: str, path: Path = RECORD) -> dict[str, dict[str, Any]]:
    meta = stamps.stored(chapters.output_path(chapters.chapters()[name])) or {}
    entry = {"stamp": meta.get("stamp"), "kernel_set": KERNEL_SET,
             "date": datetime.date.today().isoformat(), "claims": 0, "changed": 0, "missing": [],
             "flipped": [{"claim": "the re-execution", "published": "ran", "rerun": "failed"}]}  # fmt: skip
    _write({**load(path), name: entry}, path)
    return {name: entry}


def summary(entries: dict[str, dict[str, Any]]) -> str:
    """One line per entry, for the command line."""
    lines = []
    for name, e in entries.items():
        flips = "; ".join(f"{f['claim']}: {f['published']} -> {f['rerun']}" for f in e["flipped"])
        lines.append(f"{name}: {e['claims']} claims, {e['changed']} measured values changed, "
                     f"{len(e['flipped'])} verdicts flipped" + (f" ({flips})" if flips else ""))  # fmt: skip
    return "\n".join(lines)
