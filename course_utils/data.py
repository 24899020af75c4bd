"""MNIST from the files shipped in ``data/mnist``: verify, unpack, split, normalise, batch.

Nothing here touches the network. The four gzip IDX files are checked against
``MD5SUMS`` (the MD5 of each *uncompressed* file, as published with MNIST) and
unpacked into ``<root>/MNIST/raw``, the layout ``torchvision.datasets.MNIST`` reads.

To use another dataset in the same IDX layout (an instructor's own digits, say),
put its four ``.gz`` files and an ``MD5SUMS`` file in a folder and pass
``root=that_folder`` or set the environment variable ``COURSE_MNIST_DIR``. Without either, the
files are read from ``mnist/`` in the course's data folder (``$COURSE_DATA_DIR``, else ``data/``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torchvision
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from .paths import data_dir

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
NUM_CLASSES = 10
# The MD5 of each uncompressed file of the MNIST shipped in data/mnist (its MD5SUMS): how the course
# knows that the dataset in use is that MNIST, whatever MD5SUMS another folder carries.
SHIPPED_MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
RESTORE_HINT = (
    "Restore the shipped files with `git checkout -- data/mnist` (or clone the course again). "
    "The course never downloads data."
)


class DataError(RuntimeError):
    """A data or checkpoint file is missing or does not match its checksum."""


def mnist_dir(root: str | Path | None = None) -> Path:
    """The folder holding the ``.gz`` files: ``root``, else ``$COURSE_MNIST_DIR``, else ``mnist/``
    in the course's data folder (``paths.data_dir``)."""
    return Path(root or os.environ.get("COURSE_MNIST_DIR") or data_dir() / "mnist")


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_checksums(path: Path) -> dict[str, str]:
    """Parse a ``md5sum``/``sha256sum`` style file: ``<hex>  <file name>`` per line."""
    if not path.is_file():
        raise DataError(f"{path} is missing, so the data cannot be verified. {RESTORE_HINT}")
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _unpack_verified(gz_path: Path, expected_md5: str) -> bytes:
    if not gz_path.is_file():
        raise DataError(f"{gz_path} is missing. {RESTORE_HINT}")
    try:
        content = gzip.decompress(gz_path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{gz_path} is corrupt (not a readable gzip file: {err}). "
                        f"{RESTORE_HINT}") from err
    actual = md5_hex(content)
    if actual != expected_md5:
        raise DataError(
            f"{gz_path} is corrupt: the MD5 of its content is {actual}, expected {expected_md5}. "
            f"{RESTORE_HINT}"
        )
    return content


def prepare_mnist(root: str | Path | None = None) -> Path:
    """Verify the four MNIST files and unpack them for torchvision; return the folder to give it.

    Already unpacked files are re-checked (a fraction of a second) and kept when they match.
    Raises :class:`DataError` naming the file and how to restore it when anything is off.
    """
    root = mnist_dir(root)
    expected = read_checksums(root / "MD5SUMS")
    raw_dir = root / "MNIST" / "raw"
    for name in MNIST_FILES:
        if name not in expected:
            raise DataError(f"{root / 'MD5SUMS'} has no checksum for {name}. {RESTORE_HINT}")
        target = raw_dir / name
        if target.is_file() and md5_hex(target.read_bytes()) == expected[name]:
            continue
        content = _unpack_verified(root / f"{name}.gz", expected[name])
        raw_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(content)
        partial.replace(target)
    return root


def is_shipped_mnist(root: str | Path | None = None) -> bool:
    """Whether the dataset in ``root`` (else the active one, see :func:`mnist_dir`) is the MNIST
    the course ships: its four files have the shipped files' MD5s (``SHIPPED_MNIST_MD5``).

    A folder whose ``MD5SUMS`` lists other checksums is another dataset (False at once); one that
    lists MNIST's has its files verified against them (:func:`prepare_mnist`, which raises
    :class:`DataError` when a file does not match, as ``load_mnist`` would).
    """
    expected = read_checksums(mnist_dir(root) / "MD5SUMS")
    if any(expected.get(name) != md5 for name, md5 in SHIPPED_MNIST_MD5.items()):
        return False
    prepare_mnist(root)
    return True


def torchvision_mnist(train: bool, transform=None,
                      root: str | Path | None = None) -> torchvision.datasets.MNIST:
    """The classic ``torchvision.datasets.MNIST`` over the verified local files (PIL image per
    item)."""
    return torchvision.datasets.MNIST(prepare_mnist(root), train=train, transform=transform,
                                      download=False)


def pixel_mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of pixel intensities in [0, 1] of uint8 images, exactly.

    Uses the 256-bin histogram, so no float copy of the images is made.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    counts = torch.bincount(images.flatten(), minlength=256).double()
    levels = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * levels).sum() / n
    var = (counts * (levels - mean) ** 2).sum() / n
    return mean.item(), var.sqrt().item()


class DigitDataset(Dataset):
    """Digits kept as uint8 ``(N, H, W)``; an item is normalised only when it is read.

    ``dataset[i]`` gives ``(x, y)`` with ``x`` of shape ``(1, H, W)``; ``dataset[list_of_i]``
    gives a whole batch ``(B, 1, H, W)`` in one indexing operation, which is what the
    course's DataLoaders ask for.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        if images.dtype != torch.uint8 or images.dim() != 3:
            raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images, self.labels = images, labels.long()
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        x = self.images[index].float().div_(255).sub_(self.mean).div_(self.std)
        return x.unsqueeze(-3), self.labels[index]  # (B, 1, H, W) or (1, H, W)


class MnistSplits(NamedTuple):
    train: DigitDataset
    val: DigitDataset
    test: DigitDataset


def split_indices(n: int, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices: a ``torch.randperm(n)`` seeded with ``seed``, cut after
    ``val_size``."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in (0, {n}), got {val_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def load_mnist(root: str | Path | None = None, val_size: int | None = None,
               seed: int = 0) -> MnistSplits:
    """Train/validation/test splits of MNIST.

    The 60,000 official training images are shuffled by ``torch.randperm`` seeded with
    ``seed``; the first ``val_size`` of that order form the validation set, the rest the
    training set. By default ``val_size`` is a sixth of the training images: 10,000 of MNIST's
    60,000, 2,000 of another dataset's 12,000. The 10,000 official test images are the test set.
    All three are normalised with the mean and std of the *training split* alone.
    """
    full_train = torchvision_mnist(train=True, root=root)
    official_test = torchvision_mnist(train=False, root=root)
    if val_size is None:
        val_size = len(full_train) // 6
    train_idx, val_idx = split_indices(len(full_train), val_size, seed)
    train_images = full_train.data[train_idx]
    mean, std = pixel_mean_std(train_images)
    return MnistSplits(
        train=DigitDataset(train_images, full_train.targets[train_idx], mean, std),
        val=DigitDataset(full_train.data[val_idx], full_train.targets[val_idx], mean, std),
        test=DigitDataset(official_test.data, official_test.targets, mean, std),
    )


def make_loader(
    dataset: Dataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
    num_workers: int = 0
) -> DataLoader:
    """A DataLoader that fetches each minibatch with one indexing call.

    With ``shuffle`` the order is drawn from a generator seeded with ``seed``, so a rerun
    sees the same batches. ``num_workers > 0`` prepares batches in background processes
    (asynchronous loading) while the main process trains.
    """
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        dataset,
        sampler=BatchSampler(order, batch_size, drop_last=False),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader


def make_loaders(splits: MnistSplits, batch_size: int = 128, seed: int = 0,
                 num_workers: int = 0) -> Loaders:
    """Shuffled training loader; validation and test loaders in order with 1,000-image batches."""
    return Loaders(
        train=make_loader(splits.train, batch_size, shuffle=True, seed=seed,
                          num_workers=num_workers),
        val=make_loader(splits.val, 1000),
        test=make_loader(splits.test, 1000),
    )


def one_hot(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Class indices ``(N,)`` to one-hot rows ``(N, num_classes)`` of 0.0 and 1.0."""
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, "
                         f"{labels.max()}]")
    rows = torch.zeros(len(labels), num_classes)
    return rows.scatter_(1, labels.long().unsqueeze(1), 1.0)
