import gzip
import hashlib
import struct
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


def write_idx_dataset(folder: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> Path:
    """A tiny MNIST-layout dataset (random 28x28 digits) with its MD5SUMS, as an instructor would ship one."""
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sums = []
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        files = {
            f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes(),
            f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 0x801, n) + labels.numpy().tobytes(),
        }
        for name, content in files.items():
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
            sums.append(f"{hashlib.md5(content).hexdigest()}  {name}\n")
    (folder / "MD5SUMS").write_text("".join(sums))
    return folder


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    return write_idx_dataset(tmp_path / "digits")


@pytest.fixture(scope="session")
def mnist():
    from course_utils.data import load_mnist

    return load_mnist()
