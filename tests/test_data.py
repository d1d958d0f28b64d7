"""IDX parsing, dataset search, checksums and the real Fashion-MNIST test split."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from backward_lib import data

REAL = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x00 0x00 0x08 ndim, big-endian dims, then the bytes."""
    header = b"\x00\x00\x08" + bytes([array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_by_hand():
    raw = (
        b"\x00\x00\x08\x03"
        + (2).to_bytes(4, "big")
        + (3).to_bytes(4, "big")
        + (4).to_bytes(4, "big")
        + bytes(range(24))
    )
    a = data.read_idx(raw)
    assert a.shape == (2, 3, 4) and a.dtype == np.uint8
    assert a[0, 0, 0] == 0 and a[0, 1, 0] == 4 and a[1, 0, 0] == 12 and a[1, 2, 3] == 23
    labels = data.read_idx(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([9, 0, 255]))
    assert labels.tolist() == [9, 0, 255]


def test_read_idx_rejects_bad_files():
    with pytest.raises(ValueError, match="IDX"):
        data.read_idx(b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x00" * 4)  # float IDX
    with pytest.raises(ValueError, match="mismatch"):
        data.read_idx(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(4))


def make_split(folder: Path, n: int = 5, split: str = "train", seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    names = data._SPLIT_FILES[split]
    folder.mkdir(parents=True, exist_ok=True)
    raws = [idx_bytes(images), idx_bytes(labels)]
    for name, raw in zip(names, raws, strict=True):
        (folder / name).write_bytes(gzip.compress(raw))
    return images, labels, dict(zip(names, raws, strict=True))


@pytest.mark.parametrize("sub", ["", "fashion-mnist"])
def test_load_from_backward_data(tmp_path, monkeypatch, sub):
    images, labels, _ = make_split(tmp_path / sub if sub else tmp_path, n=5)
    monkeypatch.setenv("BACKWARD_DATA", str(tmp_path))
    assert data.search_paths()[:2] == [tmp_path / "fashion-mnist", tmp_path]
    x, y = data.load("fashion_mnist", "train", download=False, checksums={})
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (5,) and y.dtype == torch.int64
    np.testing.assert_allclose(x.squeeze(1).numpy(), images.astype(np.float32) / 255.0, rtol=0, atol=0)
    assert y.tolist() == labels.tolist()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_checksums(tmp_path, monkeypatch):
    _, _, raws = make_split(tmp_path, n=3)
    monkeypatch.setenv("BACKWARD_DATA", str(tmp_path))
    # right checksums (SHA-256 of the decompressed bytes, any MD5): accepted
    good = {f: ("0" * 32, hashlib.sha256(raw).hexdigest()) for f, raw in raws.items()}
    x, _ = data.load("fashion_mnist", download=False, checksums=good)
    assert x.shape[0] == 3
    # right MD5 of the gzip, wrong SHA: accepted as well
    md5s = {f: (hashlib.md5((tmp_path / f).read_bytes()).hexdigest(), "0" * 64) for f in raws}
    assert data.load("fashion_mnist", download=False, checksums=md5s)[0].shape[0] == 3
    # wrong checksums: rejected
    bad = {f: ("0" * 32, "0" * 64) for f in raws}
    with pytest.raises(ValueError, match="checksum"):
        data.load("fashion_mnist", download=False, checksums=bad)
    # the default checksums are Fashion-MNIST's own: hand-made files fail them
    with pytest.raises(ValueError, match="checksum"):
        data.load("fashion_mnist", download=False)


def test_missing_dataset_lists_searched_paths(tmp_path, monkeypatch):
    paths = [tmp_path / "nowhere", tmp_path / "neither"]
    monkeypatch.setattr(data, "search_paths", lambda name="fashion_mnist": paths)
    with pytest.raises(data.DataNotFound) as err:
        data.load("fashion_mnist", "test", download=False)
    msg = str(err.value)
    for p in paths:
        assert str(p) in msg
    assert "BACKWARD_DATA" in msg and "download disabled" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_incomplete_folder_is_not_used(tmp_path, monkeypatch):
    """A folder with only the test split does not count as holding the train split."""
    make_split(tmp_path / "a", split="test")
    monkeypatch.setattr(data, "search_paths", lambda name="fashion_mnist": [tmp_path / "a"])
    assert data.load("fashion_mnist", "test", download=False, checksums={})[0].shape[0] == 5
    with pytest.raises(data.DataNotFound):
        data.load("fashion_mnist", "train", download=False, checksums={})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"name": "mnist9"}, "dataset"), ({"name": "fashion_mnist", "split": "validation"}, "split")],
)
def test_bad_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(download=False, **kwargs)


@pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"{REAL} is missing: install Debian's dataset-fashion-mnist (the Makefile does) to run this test",
)
def test_real_fashion_mnist_test_split(monkeypatch):
    monkeypatch.delenv("BACKWARD_DATA", raising=False)
    x, y = data.load("fashion_mnist", "test", download=False)  # default checksums verified
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y), torch.full((10,), 1000))
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
