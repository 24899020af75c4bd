"""Solutions to notebook 09's exercises. Names not defined here (``torch``) are the notebook's."""
import math


def sharing_rate(n: int, k: int, b: int = 32) -> float:
    return n * b / (n * math.log2(k) + k * b)


def assign(w: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return (w[:, None] - codebook[None, :]).abs().argmin(dim=1)  # (n, k) distances -> (n,)


def pq_bits(m: int, n: int, d: int, k: int) -> int:
    blocks = n // d
    return blocks * m * math.ceil(math.log2(k)) + blocks * k * d * 32  # indices + one codebook per column block
