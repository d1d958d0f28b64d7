"""The book's figure helpers: words on the axes, one distinct style per order, the law panels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from companion import plots


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _records(orders, metric="test_accuracy", seeds=(0, 1), steps=5):
    rows = [
        {"order": o, "seed": s, "step": n, "metric": metric, "value": 0.1 * n + k, "diverged": False}
        for k, o in enumerate(orders)
        for s in seeds
        for n in range(1, steps + 1)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("metric", "words"),
    [
        ("test_accuracy", "test accuracy"),
        ("train_loss", "training loss"),
        ("increment_lag10", r"$\|\theta_{n} - \theta_{n-10}\|$"),
        ("pred_change_lag50", "test predictions changed\nover 50 steps (fraction)"),
        ("some_new_metric", "some new metric"),
    ],
)
def test_metric_label_is_words(metric, words):
    assert plots.metric_label(metric) == words


@pytest.mark.parametrize(
    "names",
    [
        ["forward", "backward", "approx. backward"],
        ["forward", "backward (reset to θ_r)", "backward (reset to θ̃_r)"],
        ["forward", "backward (delayed at 1000)", "window:10", "something else"],
    ],
)
def test_orders_get_distinct_colours(names):
    styles = plots.order_style(names)
    assert len({s["color"] for s in styles.values()}) == len(names)
    assert styles["forward"]["color"] == plots.ORDER_COLORS["forward"]
    # the forward iterate, the noisiest line, is drawn under every other line
    assert all(s["zorder"] > styles["forward"]["zorder"] for n, s in styles.items() if n != "forward")


def test_a_second_reading_is_dashed_above_the_first():
    s = plots.order_style(["backward (reset to θ_r)", "backward (reset to θ̃_r)"])
    first, second = s.values()
    assert first["color"] == plots.ORDER_COLORS["backward"] and first["ls"] == "-"
    assert second["ls"] != "-" and second["zorder"] > first["zorder"]


def test_curves_label_axes_in_words():
    fig = plots.curves(_records(["forward", "backward"]), "test_accuracy")
    assert fig._supylabel.get_text() == "test accuracy"
    assert [ax.get_ylabel() for ax in fig.axes] == ["seed 0", "seed 1"]
    assert fig.axes[-1].get_xlabel() == "step n"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["forward", "backward"]
    assert "_" not in "".join(t.get_text() for t in fig.legends[0].get_texts())


def test_curves_without_rows_label_the_one_axis():
    fig = plots.curves(_records(["forward"], metric="train_loss", seeds=(0,)), "train_loss", row=None)
    assert fig.axes[0].get_ylabel() == "training loss"


def test_law_panels():
    rng = np.random.default_rng(0)
    samples = {"backward endpoints": rng.normal(size=300), "control": rng.normal(0.5, 1, 300)}
    fig = plots.law_panels(samples, rng.normal(size=2000), "x", mark=(0.0, "f(θ*)"))
    qq, hist, gap = fig.axes
    assert hist.get_ylabel() == "density"
    assert qq.get_title() == "Q–Q plot" and gap.get_xlabel() == "x"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(labels) == ["KS: not rejected at 1%", "backward endpoints", "control"]


def test_law_panels_refuses_more_samples_than_styles():
    with pytest.raises(ValueError, match="samples"):
        plots.law_panels({str(k): np.zeros(3) for k in range(9)}, np.zeros(3), "x")


def test_use_style_outside_ipython_is_harmless():
    plots.use_style()
    assert plt.rcParams["figure.constrained_layout.use"]


def test_every_figure_has_a_caption_a_unique_name_and_alt_text():
    """Across the book, variants included: a figure's name is a label, so it must be unique."""
    from companion import chapters

    names = []
    for chapter, src in chapters.chapters().items():
        for cell in chapters.notebook(src).cells:
            meta = cell.metadata.get("mystnb", {})
            draws = cell.cell_type == "code" and ("plt.show()" in cell.source or "fig = " in cell.source)
            if draws:
                assert "figure" in meta, f"{chapter}: a figure cell without a caption: {cell.source[:60]!r}"
            if "figure" in meta:
                assert meta["figure"]["caption"].strip() and meta["image"]["alt"].strip()
                assert meta["figure"]["name"].startswith(f"fig-{chapter}-")
                names.append(meta["figure"]["name"])
    assert len(names) == len(set(names)) > 50
