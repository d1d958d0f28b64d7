"""Pytree helpers."""

from __future__ import annotations

import math

import torch

from backward_lib import tree


def test_distance_clone_and_finiteness():
    a = {"w": torch.tensor([3.0, 0.0]), "n": torch.tensor(5), "t": (torch.tensor([1.0]),)}
    b = {"w": torch.tensor([0.0, 4.0]), "n": torch.tensor(9), "t": (torch.tensor([1.0]),)}
    assert tree.distance(a, b) == 5.0  # integer leaves (batch counters) are ignored
    c = tree.clone(a)
    c["w"].add_(1.0)
    assert torch.equal(a["w"], torch.tensor([3.0, 0.0]))
    assert tree.all_finite(a)
    assert not tree.all_finite({"w": torch.tensor([1.0, math.inf])})
    assert not tree.all_finite([torch.tensor([1.0]), torch.tensor([math.nan])])
    assert [t.tolist() for t in tree.leaves(a)] == [[3.0, 0.0], 5, [1.0]]
    doubled = tree.tree_map(lambda x, y: x + y, a, b)
    assert doubled["w"].tolist() == [3.0, 4.0] and isinstance(doubled["t"], tuple)
