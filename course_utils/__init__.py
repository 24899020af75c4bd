"""Helpers shared by the dl-course notebooks: one small module per topic.

- ``data``: verified MNIST, splits, normalisation, DataLoaders, one-hot
- ``targets``: ``mnist_target``, the notebooks' targets, asserted only on the shipped MNIST
- ``paths``: the project's folders
- ``models``: LinearNet, MLP, LeNet, the reference LeNet-300-100 and Caffe LeNet-5
- ``zoo``: every network by name, Part II's included (``build_model``)
- ``training``: seeding, device choice, the training loop, evaluation
- ``distributed`` and ``ddp_train``: data-parallel training on several processes and machines:
  shares, averaged gradients, the worker program, ``torchrun`` started from a notebook
- ``plots``: digit grids, loss curves, confusion matrices, weight histograms
- ``widgets``: interactive controls for live demos
- ``checkpoints`` and ``reference``: saved weights; ``pretrained(name)``, the shipped reference
  models
- ``bench``: figures the notebooks record for ``make bench``
- ``cost`` and ``timing``: parameters, MACs, bytes, energy; honest latency measurements
- ``storage``: how many bytes each stored thing takes (packed bits, fp32, CSR; ``torch.save``)
- ``pruning`` and ``neurons``: weight pruning, sparse storage; group regularisers, smaller layers
- ``quantization`` and ``int8``: binary and uniform quantization, BinaryConnect's MLP; real int8
  inference
- ``sharing``, ``huffman`` and ``deep_compression``: k-means weight sharing, product and residual
  quantization; Huffman coding; pruned and shared layers encoded with every byte counted
- ``compact`` and ``onnx_export``: the course's compact model file, checked by CRC-32; ONNX export
  with the weights decoded inside the graph
- ``fixed_point``: fixed-point formats, integer-only inference, stochastic rounding
- ``gap``: the global-average-pooling network, class activation maps, digits on larger canvases
- ``display``, ``exercises`` and ``checks``: tables and source code in notebooks; the self-check
  engine, and each notebook's self-checks
- ``maintainer``: the instructors' tools, which students never import (release, grading, running
  and timing the notebooks, slides, the wrong answers every self-check must reject)
"""

from .bench import record
from .checkpoints import load_state, save_state
from .data import DataError, load_mnist, make_loader, make_loaders, one_hot, prepare_mnist
from .models import count_parameters
from .plots import plot_confusion, plot_losses, plot_weight_histograms, show_digits
from .reference import pretrained
from .targets import mnist_target
from .training import (
    confusion_matrix,
    default_device,
    evaluate,
    fit,
    predict,
    seed_everything,
    train_epoch,
    train_step,
)
from .zoo import build_model

__all__ = [
    "DataError", "build_model", "confusion_matrix", "count_parameters", "default_device",
    "evaluate", "fit", "load_mnist", "load_state", "make_loader", "make_loaders", "mnist_target",
    "one_hot",
    "plot_confusion", "plot_losses", "plot_weight_histograms", "predict", "prepare_mnist",
    "pretrained", "record", "save_state", "seed_everything",
    "show_digits", "train_epoch", "train_step",
]
