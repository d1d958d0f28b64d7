"""One seaborn style for the whole book, and the figures chapters share.

Figures are sized for the book's column (about 7 inches wide). Orders keep one colour across
the book. A diverged run is marked with a cross where it diverged, never drawn as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["ORDER_COLORS", "WIDTH", "curves", "law", "legend_below", "use_style"]

WIDTH = 7.0  # inches: the book's text column
ORDER_COLORS = {
    "forward": "#1f77b4",
    "backward": "#d62728",
    "reset": "#2ca02c",
    "delayed": "#9467bd",
    "window": "#ff7f0e",
}


def use_style() -> None:
    """The book's plotting style (call once at the top of a chapter)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.constrained_layout.use": True,
            "legend.frameon": False,
            "axes.titlesize": "medium",
        }
    )


def legend_below(fig: plt.Figure, *, ncol: int | None = None, **kw) -> None:
    """One legend for the whole figure, centred below the panels, from every panel's labels.

    Below rather than beside: a long label beside the panels squeezes them, and one inside a
    panel covers its curves. Labels repeated across panels appear once.
    """
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    if entries:
        n = ncol or min(len(entries), 4)
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=n, **kw)


def _palette(names: Sequence[str]) -> dict[str, str]:
    """An order's colour from its name's first word; a second variant of one order (two readings
    of a reset) and unknown names get the next unused colour."""
    extra = iter(sns.color_palette("tab10", len(names) + 5).as_hex()[5:])
    out: dict[str, str] = {}
    for n in names:
        base = ORDER_COLORS.get(n.split("(")[0].split(":")[0].strip())
        out[n] = base if base and base not in out.values() else next(extra)
    return out


def curves(
    df: pd.DataFrame,
    metric: str,
    *,
    row: str | None = "seed",
    hue: str = "order",
    logy: bool = False,
    height: float = 1.9,
    title: str | None = None,
) -> plt.Figure:
    """Learning curves of one metric from a tidy record frame, one panel per ``row`` value.

    Each panel plots ``value`` against ``step`` for every ``hue`` value; diverged records
    are left out of the line and marked with a cross at the top of the panel.
    """
    data = df[df["metric"] == metric]
    if data.empty:
        raise ValueError(f"metric: no records of {metric!r}; have {sorted(df['metric'].unique())}")
    rows = sorted(data[row].unique()) if row else [None]
    hues = list(dict.fromkeys(data[hue]))
    colors = _palette(hues)
    size = (WIDTH, max(height * len(rows), 2.6))  # one panel alone still gets a readable height
    fig, axes = plt.subplots(len(rows), 1, figsize=size, sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], rows, strict=True):
        part = data if r is None else data[data[row] == r]
        for h in hues:
            d = part[part[hue] == h].sort_values("step")
            ok = d[~d["diverged"]]
            ax.plot(ok["step"], ok["value"], color=colors[h], lw=1.0, label=str(h))
            bad = d[d["diverged"]]
            if not bad.empty:
                ax.plot(
                    bad["step"].iloc[0],
                    1.0,
                    "x",
                    color=colors[h],
                    ms=8,
                    mew=2,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                    label=f"{h} diverged",
                )
        if logy:
            ax.set_yscale("log")
            # a short panel spans less than a decade: label 1 and 3 per decade, not every minor tick
            ax.yaxis.set_minor_locator(mticker.LogLocator(subs=(3.0,)))
        ax.set_ylabel(metric if r is None else f"{metric}\n{row} {r}")
    axes[-1, 0].set_xlabel("step")
    legend_below(fig)
    if title:
        fig.suptitle(title)
    return fig


def law(
    samples: dict[str, np.ndarray],
    *,
    pdf: tuple[np.ndarray, np.ndarray] | None = None,
    pdf_label: str = "theory",
    bins: int = 40,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Density histograms of several samples on one axis, with an optional theoretical pdf."""
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH / 2, 2.6))
    colors = _palette(list(samples))
    lo = min(float(np.min(s)) for s in samples.values())
    hi = max(float(np.max(s)) for s in samples.values())
    edges = np.linspace(lo, hi, bins + 1)
    for name, s in samples.items():
        ax.hist(
            s, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=colors[name], label=name
        )
    if pdf is not None:
        ax.plot(*pdf, color="black", lw=1.2, label=pdf_label)
    ax.set_ylabel("density")
    ax.legend()
    return ax
