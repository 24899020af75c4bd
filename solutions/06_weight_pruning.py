"""Solutions to notebook 06's exercises. Names not defined here (``torch``) are the notebook's."""


def threshold_for(weight: torch.Tensor, sparsity: float) -> float:
    k = round(sparsity * weight.numel())  # the k-th smallest magnitude is the last one pruned
    return float(weight.detach().abs().flatten().kthvalue(k).values)


def csr_bytes_relative(weight: torch.Tensor) -> float:
    matrix = weight.detach().reshape(weight.shape[0], -1)
    nnz = int((matrix != 0).sum())
    return (nnz * (32 + 5) + (matrix.shape[0] + 1) * 32) / 8
