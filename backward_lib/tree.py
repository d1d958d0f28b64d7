"""Minimal pytree helpers: an iterate is a tensor, or a dict/tuple/list of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Tree = Any  # torch.Tensor | dict[str, Tree] | tuple[Tree, ...] (named too) | list[Tree]

__all__ = ["Tree", "all_finite", "clone", "distance", "leaves", "tree_map"]


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf-wise to ``tree`` (and the matching leaves of ``rest``)."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a named tuple (optimizer states)
        return type(tree)(*(tree_map(fn, *xs) for xs in zip(tree, *rest, strict=True)))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, *xs) for xs in zip(tree, *rest, strict=True))
    return fn(tree, *rest)


def leaves(tree: Tree) -> list[torch.Tensor]:
    """The tensors of ``tree`` in a fixed order (dict insertion order)."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in leaves(v)]
    if isinstance(tree, (tuple, list)):
        return [leaf for v in tree for leaf in leaves(v)]
    return [tree]


def clone(tree: Tree) -> Tree:
    """A detached copy that later in-place updates cannot reach."""
    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, tree)


def all_finite(tree: Tree) -> bool:
    """True when no leaf holds a NaN or an infinity (one device sync)."""
    flags = [torch.isfinite(t).all() for t in leaves(tree) if isinstance(t, torch.Tensor)]
    return bool(torch.stack(flags).all()) if flags else True


def distance(a: Tree, b: Tree) -> float:
    """Euclidean distance ‖a − b‖ over all floating-point leaves.

    Scaled by the largest entry before squaring, so it stays finite up to float64's range
    (squaring first would overflow once ‖a − b‖ passes about 1e154).
    """
    diffs = [
        (x.detach().double() - y.detach().double()).reshape(-1)
        for x, y in zip(leaves(a), leaves(b), strict=True)
        if x.is_floating_point()
    ]
    if not diffs:
        return 0.0
    d = torch.cat(diffs)
    scale = d.abs().max()
    if not torch.isfinite(scale) or scale == 0:
        return float(scale)
    return float(scale * (d / scale).pow(2).sum().sqrt())
