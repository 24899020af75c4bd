"""Solutions to notebook 01's exercises. Names not defined here (``torch``, ``mean``, ``std``) are the notebook's."""


def one_hot_by_comparison(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return (labels[:, None] == torch.arange(num_classes)).float()  # (B, 1) == (1, C) -> (B, C)


def rarest_digit(dataset) -> int:
    return int(torch.bincount(dataset.labels.long()).argmin())


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)  # x = (p / 255 - mean) / std
