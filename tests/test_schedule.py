"""The seeded batch schedule."""

from __future__ import annotations

import pytest
import torch

from backward_lib import schedule


def test_same_seed_same_schedule():
    a = schedule.batches(100, 8, 50, seed=3)
    b = schedule.batches(100, 8, 50, seed=3)
    assert torch.equal(a, b)


def test_different_seed_different_schedule():
    a = schedule.batches(100, 8, 50, seed=3)
    b = schedule.batches(100, 8, 50, seed=4)
    assert not torch.equal(a, b)
    assert (a != b).float().mean() > 0.5


def test_does_not_touch_the_global_generator():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    schedule.batches(100, 8, 50, seed=3)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(("n", "bs", "steps"), [(100, 8, 50), (10, 10, 3), (7, 1, 20), (64, 8, 8)])
def test_shape_dtype_and_range(n, bs, steps):
    s = schedule.batches(n, bs, steps, seed=0)
    assert s.shape == (steps, bs)
    assert s.dtype == torch.int64
    assert int(s.min()) >= 0 and int(s.max()) < n


def test_epochs_sample_without_replacement():
    n, bs = 100, 8
    per_epoch = n // bs  # 12 full batches, the last 4 examples of each permutation dropped
    s = schedule.batches(n, bs, 40, seed=1)
    for e in range(0, 40, per_epoch):
        epoch = s[e : e + per_epoch].flatten()
        assert epoch.unique().numel() == epoch.numel()  # distinct within an epoch
    # consecutive epochs are different permutations
    assert not torch.equal(s[:per_epoch], s[per_epoch : 2 * per_epoch])
    # a whole epoch covers n − (n mod bs) distinct examples
    assert s[:per_epoch].unique().numel() == per_epoch * bs


def test_prefix_is_stable_in_steps():
    """A longer run replays the shorter run's batches: batch n does not depend on the length."""
    short = schedule.batches(50, 5, 7, seed=9)
    long = schedule.batches(50, 5, 30, seed=9)
    assert torch.equal(long[:7], short)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_examples": 10, "batch_size": 11, "steps": 3}, "batch_size"),
        ({"n_examples": 10, "batch_size": 0, "steps": 3}, "batch_size"),
        ({"n_examples": 10, "batch_size": 2, "steps": 0}, "steps"),
        ({"n_examples": 0, "batch_size": 1, "steps": 3}, "n_examples"),
    ],
)
def test_bad_schedule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedule.batches(seed=0, **kwargs)
