"""Solutions to notebook 10's exercises. Names not defined here (``encoded``) are the notebook's."""
import math
from collections import Counter


def gaps(positions: list[int]) -> list[int]:
    return [p - q for p, q in zip(positions, [-1] + positions[:-1], strict=True)]


def entropy_bits(symbols: list[int]) -> float:
    n = len(symbols)
    return -sum(c / n * math.log2(c / n) for c in Counter(symbols).values())


def bias_share() -> float:
    codes = encoded[("lenet300", True)].values()
    return sum(c.nbytes()["bias"] for c in codes) / sum(c.total_bytes() for c in codes)
