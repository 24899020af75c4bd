"""Save and load model weights (``state_dict`` files) safely, and checksum files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn


def save_state(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.state_dict()`` to ``path`` (atomically: a partial file never replaces a good
    one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(model.state_dict(), partial)
    partial.replace(path)
    return path


def load_state(model: nn.Module, path: str | Path,
               device: torch.device | str | None = None) -> nn.Module:
    """Load weights saved by :func:`save_state` into ``model`` (tensors only:
    ``weights_only=True``)."""
    state = torch.load(Path(path), map_location=device or "cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device or "cpu")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
