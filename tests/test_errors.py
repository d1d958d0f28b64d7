"""Bad input raises a ValueError that names the offending parameter."""

from __future__ import annotations

import pytest
import torch

import backward_lib
from backward_lib import data, maps, orders


def _half(x, n):
    return 0.5 * x


X0 = torch.tensor(1.0, dtype=torch.float64)

CASES = [
    ("lr", lambda: maps.sgd(lr=0)),
    ("lr", lambda: maps.sgd(lr=-1e-3)),
    (r"\bat\b", lambda: backward_lib.iterate(_half, X0, orders.reset(at=5), 5)),
    (r"\bat\b", lambda: backward_lib.iterate(_half, X0, orders.reset(at=9, start="backward"), [3, 5])),
    (r"\bat\b", lambda: backward_lib.count_applications(orders.reset(at=5), 5)),
    (r"\bat\b", lambda: orders.reset(at=0)),
    ("after", lambda: backward_lib.iterate(_half, X0, orders.delayed(after=5), 5)),
    ("after", lambda: backward_lib.count_applications(orders.delayed(after=7), 3)),
    ("after", lambda: orders.delayed(after=-1)),
    ("order", lambda: orders.get("sideways")),
    ("optimizer", lambda: maps.get("lion", lr=0.1)),
    ("dataset", lambda: data.load("mnist9", download=False)),
    ("steps", lambda: backward_lib.iterate(_half, X0, orders.forward(), 0)),
    ("steps", lambda: backward_lib.count_applications(orders.backward(), 0)),
]


@pytest.mark.parametrize(("param", "call"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_input_names_parameter(param, call):
    with pytest.raises(ValueError, match=param):
        call()


def test_valid_boundaries_do_not_raise():
    """r = 1 and r = steps − 1 are allowed; so is window(1)."""
    assert len(backward_lib.iterate(_half, X0, orders.reset(at=1), 5)) == 5
    assert len(backward_lib.iterate(_half, X0, orders.reset(at=4), 5)) == 5
    assert len(backward_lib.iterate(_half, X0, orders.delayed(after=4), 5)) == 5
    assert len(backward_lib.iterate(_half, X0, orders.window(1), 5)) == 5
