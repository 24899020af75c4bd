"""Solutions to notebook 03's exercises. Names not defined here (``torch``, ``course_utils``, ``MLP``,
``fit``, ``loaders``, ``best_lr``) are the notebook's."""
from itertools import pairwise


def mlp_parameter_count(sizes: list[int]) -> int:
    return sum(n_in * n_out + n_out for n_in, n_out in pairwise(sizes))  # weights + biases per layer


def momentum_sweep(values: list[float]) -> dict[float, float]:
    accuracies = {}
    for momentum in values:
        course_utils.seed_everything(0)
        model = MLP((120, 80))
        optimizer = torch.optim.SGD(model.parameters(), lr=best_lr, momentum=momentum)
        history = fit(model, loaders.train, optimizer, 3, val_loader=loaders.val, live_plot=False, progress=False)
        accuracies[momentum] = history.val_acc[-1]
    return accuracies
