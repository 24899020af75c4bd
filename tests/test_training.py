import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import DigitDataset, make_loader
from course_utils.training import (
    confusion_matrix,
    default_device,
    evaluate,
    fit,
    predict,
    seed_everything,
    train_step,
)


def test_one_optimisation_step_lowers_the_loss(mnist):
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = mnist.train[:256]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = train_step(model, x, y, optimizer)
    after = F.cross_entropy(model(x), y).item()
    assert after < before - 0.1


def test_seeding_makes_initialisation_repeatable():
    seed_everything(3)
    first = nn.Linear(4, 2).weight.detach().clone()
    seed_everything(3)
    assert torch.equal(nn.Linear(4, 2).weight, first)


class Threshold(nn.Module):
    """Predicts class 1 when the first pixel is positive, else class 0."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        first = x.flatten(1)[:, :1]
        return torch.cat([-first, first], dim=1)


def test_predict_and_evaluate_on_a_hand_made_model():
    images = torch.tensor([[[200]], [[10]], [[255]], [[0]]], dtype=torch.uint8)  # (4, 1, 1)
    dataset = DigitDataset(images, torch.tensor([1, 0, 0, 0]), mean=0.5, std=1.0)
    loader = make_loader(dataset, batch_size=3)
    preds, labels = predict(Threshold(), loader)
    assert preds.tolist() == [1, 0, 1, 0] and labels.tolist() == [1, 0, 0, 0]
    assert evaluate(Threshold(), loader) == pytest.approx(0.75)


def test_confusion_matrix_counts():
    cm = confusion_matrix(torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 2, 0]),
                          num_classes=3)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]))


def test_fit_records_every_step_and_learns(mnist):
    seed_everything(0)
    subset = DigitDataset(mnist.train.images[:2000], mnist.train.labels[:2000], mnist.train.mean,
                          mnist.train.std)
    loader = make_loader(subset, batch_size=100, shuffle=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, loader, optimizer, epochs=3, val_loader=make_loader(mnist.val, 1000),
                  progress=False)
    assert len(history.step_loss) == 60 and len(history.val_acc) == 3
    assert history.epoch_loss()[2] < history.epoch_loss()[0]
    assert history.val_acc[-1] > 0.8
    assert history.train_seconds > 0


def test_default_device_follows_cuda_availability():
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
