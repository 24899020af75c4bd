"""Solutions to notebook 11's exercises. Names not defined here (``torch``) are the notebook's."""


def qmn_range(m: int, n: int) -> tuple[float, float, float]:
    step = 2.0**-n
    return -(2.0**m), 2.0**m - step, step


def fixed_multiply(a_q: torch.Tensor, b_q: torch.Tensor, frac_bits: int, bits: int) -> torch.Tensor:
    product = a_q.long() * b_q.long()  # 2F fractional bits, in a wide accumulator
    rounded = (product + (1 << (frac_bits - 1))) >> frac_bits  # half up, back to F fractional bits
    return rounded.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def underflow_fraction(g: torch.Tensor, frac_bits: int) -> float:
    return float((torch.round(g * 2**frac_bits) == 0).float().mean())
