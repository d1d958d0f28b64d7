"""Datasets as preloaded tensors (the hot loop indexes tensors, never a DataLoader).

Fashion-MNIST is looked for, in order, in ``$BACKWARD_DATA/fashion-mnist`` (or
``$BACKWARD_DATA`` itself), in ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package) and in the user cache; if none has it, torchvision's
downloader fills the cache. Files are verified: a gzip matching torchvision's published MD5,
or decompressed contents matching the SHA-256 below (Debian recompresses the same bytes).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["NAMES", "DataNotFound", "load", "read_idx", "search_paths"]

NAMES = ("fashion_mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")

# file -> (MD5 of torchvision's gzip, SHA-256 of the decompressed IDX bytes)
FASHION_MNIST = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DataNotFound(FileNotFoundError):
    """The data set is in none of the places searched and could not be downloaded."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "backward_lib"


def search_paths(name: str = "fashion_mnist") -> list[Path]:
    """Folders searched for ``name``'s files, in order."""
    sub = name.replace("_", "-")
    paths = []
    if os.environ.get("BACKWARD_DATA"):
        root = Path(os.environ["BACKWARD_DATA"])
        paths += [root / sub, root]
    paths += [Path("/usr/share/datasets") / sub, _cache_dir() / sub]
    return paths


def read_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file (big-endian header: magic, dims; then unsigned bytes)."""
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"IDX size mismatch: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def _verified(path: Path, checksums: tuple[str, str] | None) -> bytes:
    packed = path.read_bytes()
    raw = gzip.decompress(packed)
    if checksums is not None:
        md5, sha = checksums
        if hashlib.md5(packed).hexdigest() != md5 and hashlib.sha256(raw).hexdigest() != sha:
            raise ValueError(f"checksum mismatch for {path}: the file is corrupt or not the original")
    return raw


def _find(files: tuple[str, ...], paths: list[Path]) -> Path | None:
    return next((p for p in paths if all((p / f).is_file() for f in files)), None)


def _download(name: str, target: Path) -> None:
    from torchvision import datasets  # only when needed: it is slow to import

    target.mkdir(parents=True, exist_ok=True)
    ds = datasets.FashionMNIST(str(target / "tv"), train=True, download=True)
    datasets.FashionMNIST(str(target / "tv"), train=False, download=True)
    for f in FASHION_MNIST:
        (target / f).write_bytes((Path(ds.raw_folder) / f).read_bytes())


def load(
    name: str, split: str = "train", *, download: bool = True, checksums: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: images as float32 ``[N, C, H, W]`` in [0, 1], labels as int64 ``[N]``.

    Fashion-MNIST is [N, 1, 28, 28]; CIFAR-10/100 are [N, 3, 32, 32] (torchvision's files,
    downloaded into the cache when absent).
    """
    if name not in NAMES:
        raise ValueError(f"dataset: unknown dataset {name!r}; choose one of {NAMES}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name.startswith("cifar"):
        return _load_cifar(name, split, download)
    checksums = FASHION_MNIST if checksums is None else checksums
    files = _SPLIT_FILES[split]
    paths = search_paths(name)
    root = _find(files, paths)
    if root is None and download:
        try:
            _download(name, paths[-1])
            root = _find(files, paths)
        except Exception as err:  # offline: say where we looked, then how to provide the data
            reason = f"download failed ({type(err).__name__}: {err})"
        else:
            reason = "download gave no files"
    else:
        reason = "download disabled"
    if root is None:
        looked = "\n  ".join(str(p) for p in paths)
        raise DataNotFound(
            f"{name} ({split}) not found; looked in:\n  {looked}\n{reason}.\n"
            "Provide it with `apt-get install dataset-fashion-mnist` (Debian), or put the four "
            "IDX .gz files in a folder and set BACKWARD_DATA to it."
        )
    images = read_idx(_verified(root / files[0], checksums.get(files[0])))
    labels = read_idx(_verified(root / files[1], checksums.get(files[1])))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _not_found(name: str, split: str, paths: list[Path], reason: str) -> DataNotFound:
    looked = "\n  ".join(str(p) for p in paths)
    return DataNotFound(
        f"{name} ({split}) not found; looked in:\n  {looked}\n{reason}.\n"
        f"Provide it by running torchvision's {name.upper()} download once with network access "
        "(it fills the cache above), or set BACKWARD_DATA to a folder holding torchvision's files."
    )


def _load_cifar(name: str, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    paths = search_paths(name)
    for root in paths:
        try:
            ds = cls(str(root), train=split == "train", download=False)
            break
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            continue
    else:
        if not download:
            raise _not_found(name, split, paths, "download disabled")
        try:
            ds = cls(str(paths[-1]), train=split == "train", download=True)
        except Exception as err:
            raise _not_found(name, split, paths, f"download failed ({type(err).__name__}: {err})") from err
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


def as_images(x: torch.Tensor, size: int = 32, channels: int = 3) -> torch.Tensor:
    """Resize [N, C, H, W] images to size × size and replicate a single channel to ``channels``.

    Used where a CIFAR chapter falls back to Fashion-MNIST: same architecture, other data.
    """
    out = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if out.shape[1] == 1 and channels > 1:
        out = out.expand(-1, channels, -1, -1)
    return out.contiguous()


REGRESSIONS = {
    "smooth": lambda t: np.sin(np.pi * t),
    "oscillating": lambda t: np.sin(4 * np.pi * t) * np.exp(-(t**2)),
    "kinked": lambda t: np.abs(t) - 0.5 + 0.5 * (t > 0.5),
}


def regression(name: str, n: int = 100, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points (x, f(x)), x uniform on [−1, 1], from one of three function graphs.

    ``smooth``: sin(πx); ``oscillating``: sin(4πx)·e^(−x²); ``kinked``: |x| − ½ with a jump of
    ½ at x = ½ (a kink and a discontinuity). Returned as float32 [n, 1] tensors.
    """
    if name not in REGRESSIONS:
        raise ValueError(f"dataset: unknown regression {name!r}; choose one of {tuple(REGRESSIONS)}")
    t = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 1))
    return torch.tensor(t, dtype=torch.float32), torch.tensor(REGRESSIONS[name](t), dtype=torch.float32)
