"""Solutions to notebook 08's exercises. Names not defined here (``torch``) are the notebook's."""


def ternarize(w: torch.Tensor, t: float) -> torch.Tensor:
    keep = w.abs() > t
    alpha = w.abs()[keep].mean()
    return torch.where(keep, alpha * w.sign(), torch.zeros_like(w))


def uniform_bytes(n_weights: int, bits: int, channels: int) -> int:
    return (n_weights * bits + 7) // 8 + 8 * channels  # packed values, then a scale and a zero point each


def xnor_dot(a_bits: int, b_bits: int, k: int) -> int:
    return k - 2 * (a_bits ^ b_bits).bit_count()  # agreements minus disagreements
