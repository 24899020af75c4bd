"""Solutions to notebook 07's exercises. Names not defined here (``nn``, ``torch``, ``dense_head``,
``best``) are the notebook's."""


def neurons_to_keep(fc_in: nn.Linear, fc_out: nn.Linear, tau: float) -> torch.Tensor:
    incoming = fc_in.weight.detach().norm(dim=1)  # (hidden,): row i feeds neuron i
    outgoing = fc_out.weight.detach().norm(dim=0)  # (hidden,): column i leaves neuron i
    return (incoming > tau) & (outgoing > tau)


def head_parameter_compression() -> float:
    return sum(p.numel() for p in dense_head.parameters()) / sum(p.numel() for p in best.parameters())
