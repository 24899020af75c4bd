import gzip
import hashlib
import struct
from pathlib import Path

import matplotlib
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

matplotlib.use("Agg")

# The device that tests put models on to catch tensors made on the CPU next to them. Without a GPU,
# PyTorch's ``meta`` device (shapes only, no values) stands in; ``OneDevice`` then makes mixing it
# with the CPU raise, as CUDA does, in-place operations included.
OTHER_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "meta")
ATEN = torch.ops.aten
COPIES = {ATEN._to_copy.default, ATEN.copy_.default, ATEN._copy_from.default,
          ATEN._copy_from_and_resize.default}


class OneDevice(TorchDispatchMode):
    """Within it, an operation (other than a copy) whose tensors lie on two devices raises a
    RuntimeError; 0-dim CPU tensors count as numbers, as on CUDA."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in COPIES:
            devices = {t.device for t in tree_leaves((args, kwargs))
                       if isinstance(t, torch.Tensor)
                       and not (t.dim() == 0 and t.device.type == "cpu")}
            if len(devices) > 1:
                raise RuntimeError(f"{func} mixes tensors on {sorted(map(str, devices))}")
        return func(*args, **kwargs)


@pytest.fixture
def other_device() -> torch.device:
    return OTHER_DEVICE


@pytest.fixture
def one_device() -> type[OneDevice]:
    return OneDevice


def write_idx_dataset(folder: Path, n_train: int = 30, n_test: int = 10, seed: int = 0) -> Path:
    """A tiny MNIST-layout dataset (random 28x28 digits) with its MD5SUMS, as an instructor would
    ship one."""
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sums = []
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator)
        labels = torch.arange(n, dtype=torch.uint8) % 10
        files = {
            f"{prefix}-images-idx3-ubyte":
                struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes(),
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
