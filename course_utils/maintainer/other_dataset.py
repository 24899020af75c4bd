"""A small dataset in MNIST's layout that is not MNIST: ten classes of drawn shapes.

    python -m course_utils.maintainer.other_dataset FOLDER [--train 12000] [--test 2000] [--seed 0]

writes the four gzip IDX files under MNIST's names and their ``MD5SUMS`` into ``FOLDER``, as
``data/mnist`` holds them, so that ``COURSE_MNIST_DIR=FOLDER`` runs the whole course on it (the
README's promise that any dataset in that layout works; ``tests/test_other_dataset.py``). Each
image is 28x28: one of ten shapes (ring, bars, diagonals, plus, cross, square, triangle, T) drawn
as strokes of random thickness, size, rotation and position, with noise. The same arguments give
the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import struct
import sys
from pathlib import Path

import torch

SIZE = 28
MAX_SEGMENTS = 4
SHAPES = ("ring", "vertical bar", "horizontal bar", "rising diagonal", "falling diagonal", "plus",
          "cross", "square", "triangle", "T")


def _polyline(points: list[tuple[float, float]], closed: bool = False) -> list:
    ends = points + points[:1] if closed else points
    return [(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def shape_segments() -> torch.Tensor:
    """Each class's strokes as line segments in [-1, 1]^2 (x right, y down): (10, 4, 2, 2),
    a class with fewer segments padded by repeating its first one. The ring (class 0) is a circle
    of radius 1, drawn apart; its row holds a point."""
    classes = [
        [((0, 0), (0, 0))],
        [((0, -1), (0, 1))],
        [((-1, 0), (1, 0))],
        [((-0.8, 1), (0.8, -1))],
        [((-0.8, -1), (0.8, 1))],
        [((0, -1), (0, 1)), ((-1, 0), (1, 0))],
        [((-0.8, -0.8), (0.8, 0.8)), ((-0.8, 0.8), (0.8, -0.8))],
        _polyline([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)], closed=True),
        _polyline([(0, -0.9), (0.9, 0.8), (-0.9, 0.8)], closed=True),
        [((-0.9, -0.9), (0.9, -0.9)), ((0, -0.9), (0, 1))],
    ]
    padded = [segments + segments[:1] * (MAX_SEGMENTS - len(segments)) for segments in classes]
    return torch.tensor(padded, dtype=torch.float32)


def draw(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 images (N, 28, 28) of the shapes ``labels`` (N,), each with its own random size,
    rotation, position and stroke thickness, plus noise."""
    n = len(labels)
    u = torch.rand(n, 6, generator=generator)  # (N, 6) uniform draws, one set per image
    half = 6.5 + 3.0 * u[:, 0]  # half the shape's width in pixels
    angle = (u[:, 1] - 0.5) * math.radians(30)
    shift = (u[:, 2:4] - 0.5) * 8  # (N, 2) pixels off the centre
    thickness = 0.8 + 1.4 * u[:, 4]
    brightness = 0.7 + 0.3 * u[:, 5]
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (N,2,2)
    points = shape_segments()[labels.long()]  # (N, 4, 2, 2): segment, end, (x, y)
    points = torch.einsum("nij,nsej->nsei", rotation * half[:, None, None], points)
    points = points + (SIZE - 1) / 2 + shift[:, None, None, :]
    grid = torch.arange(SIZE, dtype=torch.float32)
    py, px = (c.flatten() for c in torch.meshgrid(grid, grid, indexing="ij"))  # (784,) each
    ax, ay = points[:, :, 0, 0, None], points[:, :, 0, 1, None]  # (N, 4, 1) each
    abx, aby = points[:, :, 1, 0, None] - ax, points[:, :, 1, 1, None] - ay
    dx, dy = px - ax, py - ay  # (N, 4, 784) each
    t = ((dx * abx + dy * aby) / (abx * abx + aby * aby).clamp_min(1e-6)).clamp(0, 1)
    segment = ((dx - t * abx) ** 2 + (dy - t * aby) ** 2).amin(1).sqrt()  # (N, 784)
    ring = ((dx[:, 0] ** 2 + dy[:, 0] ** 2).sqrt() - half[:, None]).abs()  # the centre's row
    distance = torch.where(labels[:, None] == 0, ring, segment)  # to the nearest stroke
    ink = (thickness[:, None] + 0.5 - distance).clamp(0, 1) * brightness[:, None]
    noise = 0.08 * torch.randn(n, SIZE * SIZE, generator=generator)
    speckle = (torch.rand(n, SIZE * SIZE, generator=generator) < 0.01).float() * 0.6
    image = (ink + noise + speckle).clamp(0, 1)
    return (image * 255).round().to(torch.uint8).reshape(n, SIZE, SIZE)


def make_split(n: int, generator: torch.Generator, chunk: int = 1000
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (n, 28, 28) uint8, labels (n,) uint8): the ten classes in turn, shuffled."""
    labels = (torch.arange(n) % len(SHAPES))[torch.randperm(n, generator=generator)]
    images = torch.cat([draw(part, generator) for part in labels.split(chunk)])
    return images, labels.to(torch.uint8)


def idx_files(prefix: str, images: torch.Tensor, labels: torch.Tensor) -> dict[str, bytes]:
    """The two uncompressed IDX files of a split, by MNIST's names."""
    n = len(images)
    return {
        f"{prefix}-images-idx3-ubyte":
            struct.pack(">IIII", 0x803, n, SIZE, SIZE) + images.cpu().numpy().tobytes(),
        f"{prefix}-labels-idx1-ubyte":
            struct.pack(">II", 0x801, n) + labels.cpu().numpy().tobytes(),
    }


def write_other_dataset(folder: str | Path, n_train: int = 12_000, n_test: int = 2_000,
                        seed: int = 0) -> Path:
    """Write the four ``.gz`` IDX files and ``MD5SUMS`` (MD5 of each uncompressed file, as
    ``data/mnist/MD5SUMS``) into ``folder``; return it. Deterministic: gzip without a time stamp."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    files = {}
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        files.update(idx_files(prefix, *make_split(n, generator)))
    for name, content in files.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=6, mtime=0))
    (folder / "MD5SUMS").write_text("".join(f"{hashlib.md5(content).hexdigest()}  {name}\n"
                                            for name, content in files.items()))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--train", type=int, default=12_000, help="training images")
    parser.add_argument("--test", type=int, default=2_000, help="test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = write_other_dataset(args.folder, args.train, args.test, args.seed)
    print(f"{args.train:,} training and {args.test:,} test images of {len(SHAPES)} shapes in "
          f"{folder}; use it with COURSE_MNIST_DIR={folder.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
