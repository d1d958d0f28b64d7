"""The run card that opens every chapter: what was run, at which scale, on what.

The wall time is unknown while the chapter runs; the pipeline measures the whole execution
and writes it into the card's row marked :data:`WALL_PENDING` (``backward_lib.book``).
"""

from __future__ import annotations

import platform
from typing import Any

import torch

from . import __version__

__all__ = ["WALL_PENDING", "device_name", "markdown", "show"]

WALL_PENDING = "not measured (chapter run outside the pipeline)"


def device_name(device: str | torch.device = "cpu") -> str:
    """A readable name for the device the chapter computed on."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def markdown(profile: str, reproduces: str, **rows: Any) -> str:
    """The card as a Markdown table (keys become row labels, underscores as spaces)."""
    lines = ["| run card | |", "|---|---|", f"| reproduces | {reproduces} |", f"| profile | `{profile}` |"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in rows.items()]
    lines += [
        f"| library | backward_lib {__version__}, torch {torch.__version__} |",
        f"| wall time | {WALL_PENDING} |",
    ]
    return "\n".join(lines)


def show(profile: str, reproduces: str, **rows: Any) -> None:
    """Display the run card in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(markdown(profile, reproduces, **rows)))


def notice(text: str, kind: str = "warning") -> None:
    """A visible admonition in the rendered chapter (e.g. data substituted for the paper's)."""
    from IPython.display import Markdown, display

    display(Markdown(f":::{{{kind}}}\n{text}\n:::"))
