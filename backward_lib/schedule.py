"""The seeded batch schedule: batch n is drawn once and replayed by every chain.

Batches are epochs of a seeded permutation (sampling without replacement inside an epoch,
the last incomplete batch of an epoch dropped), stored as an index tensor of shape
[steps, batch_size]; row n − 1 holds batch n.
"""

from __future__ import annotations

import torch

__all__ = ["batches"]


def batches(n_examples: int, batch_size: int, steps: int, seed: int) -> torch.Tensor:
    """Index tensor ``[steps, batch_size]`` (int64); the same seed gives the same schedule."""
    if n_examples < 1:
        raise ValueError(f"n_examples must be ≥ 1, got {n_examples}")
    if not 1 <= batch_size <= n_examples:
        raise ValueError(f"batch_size must be in 1..{n_examples} (the data size), got {batch_size}")
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    per_epoch = n_examples // batch_size
    epochs = -(-steps // per_epoch)
    g = torch.Generator().manual_seed(int(seed))
    rows = [
        torch.randperm(n_examples, generator=g)[: per_epoch * batch_size].view(per_epoch, -1)
        for _ in range(epochs)
    ]
    return torch.cat(rows)[:steps].contiguous()
