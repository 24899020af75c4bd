"""Plausible wrong answers to the exercises of Part I and notebooks 05 to 15, to
prove that each self-check rejects them.

Every :class:`Exercise` pairs a self-check with the reference answer (which it must accept) and
at least two wrong answers a student could write (each of which it must reject). The unit tests
run all of them; ``make bench`` records the fraction rejected as ``checks.wrong_rejected_fraction``.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..checks import (
    binary_and_uniform,
    compression_demo,
    data_parallel,
    deep_compression,
    deploy_in_c,
    fixed_point,
    global_average_pooling,
    lenet,
    linear_model,
    mlp,
    mnist_data,
    neuron_pruning,
    start_here,
    weight_pruning,
    weight_sharing,
    why_compress,
)
from ..compact import compact_bytes
from ..cost import conv_cost, linear_cost
from ..data import load_mnist, one_hot
from ..deep_compression import encode_layer, encode_model, share_pruned, sparse_entries
from ..deploy import find_compiler
from ..distributed import allreduce_gradients, average_gradients
from ..fixed_point import saturate, shift_round, to_fixed
from ..gap import GapHead, class_activation_map
from ..models import MLP, LeNet, LinearNet
from ..neurons import group_penalty, shrink_pair
from ..pruning import apply_masks, magnitude_mask
from ..quantization import binarize, dequantize, quantize
from ..reference import pretrained
from ..sharing import lloyd_step, share_layer
from ..training import evaluate, train_epoch, train_step


@dataclass
class Exercise:
    """A self-check ``check(answer, strict=...)``, its reference answer and named wrong answers."""

    name: str
    check: Callable[..., bool]
    reference: object
    wrong: dict[str, object]


VERDICTS: dict[tuple[str, int], bool] = {}  # (exercise, id of answer): some checks start processes


def passes(exercise: Exercise, answer: object) -> bool:
    """Whether ``exercise.check`` accepts ``answer`` (its printed report is discarded).

    The verdict is kept for the rest of the process: the unit tests and ``rejection_figures``
    ask for the same pairs, and notebook 15's checks start worker processes.
    """
    key = (exercise.name, id(answer))
    if key not in VERDICTS:
        report = io.StringIO()
        with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
            VERDICTS[key] = exercise.check(answer, strict=False)
    return VERDICTS[key]


# ---- notebook 00 ---------------------------------------------------------------------------

def split_sizes_swapped() -> tuple[int, int, int]:
    return 10_000, 50_000, 10_000


def split_sizes_official() -> tuple[int, int, int]:
    return 60_000, 10_000, 10_000  # the official train set, before the validation split


def bytes_as_float32(t: torch.Tensor) -> int:
    return t.numel() * 4


def bytes_as_count(t: torch.Tensor) -> int:
    return t.numel()


# ---- notebook 01 ---------------------------------------------------------------------------

def one_hot_off_by_one(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return (labels[:, None] == torch.arange(1, num_classes + 1)).float()


def one_hot_fixed_ten(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return (labels[:, None] == torch.arange(10)).float()


def one_hot_booleans(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return labels[:, None] == torch.arange(num_classes)


def rarest_without_minlength(dataset) -> int:
    return int(torch.bincount(dataset.labels.long()).argmin())


def rarest_of_those_present(dataset) -> int:
    digits, counts = dataset.labels.unique(return_counts=True)
    return int(digits[counts.argmin()])


def most_common_digit(dataset) -> int:
    return int(torch.bincount(dataset.labels.long(), minlength=10).argmax())


def pixels_truncated(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return ((x * std + mean) * 255).clamp(0, 255).to(torch.uint8)  # no rounding


def pixels_wrong_order(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (((x + mean) * std) * 255).round().clamp(0, 255).to(torch.uint8)


def pixels_as_floats(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (x * std + mean) * 255


# ---- notebook 02 ---------------------------------------------------------------------------

class NetWithSoftmax(LinearNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).softmax(dim=1)


class NetWithoutBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(-1, 28 * 28))


class NetTransposedPixels(LinearNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.transpose(-1, -2).reshape(-1, 28 * 28))


def loop_without_zero_grad(net, loader, criterion, optimizer) -> list[float]:
    losses = []
    for x, y in loader:
        loss = criterion(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def loop_without_step(net, loader, criterion, optimizer) -> list[float]:
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        losses.append(loss.item())
    return losses


def loop_keeping_tensors(net, loader, criterion, optimizer) -> list:
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss)  # keeps the graph alive
    return losses


def loop_summed_loss(net, loader, criterion, optimizer) -> list[float]:
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(net(x), y) * len(y)  # a sum, not a mean
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def loop_zero_grad_after_backward(net, loader, criterion, optimizer) -> list[float]:
    losses = []
    for x, y in loader:
        loss = criterion(net(x), y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        losses.append(loss.item())
    return losses


def accuracy_mean_of_batches(net, loader) -> float:
    net.eval()
    accs = [(net(x).argmax(dim=1) == y).float().mean().item() for x, y in loader]
    return sum(accs) / len(accs)


def accuracy_in_train_mode(net, loader) -> float:
    correct = sum((net(x).argmax(dim=1) == y).sum().item() for x, y in loader)
    return correct / sum(len(y) for _, y in loader)


def accuracy_as_tensor(net, loader) -> torch.Tensor:
    net.eval()
    correct = sum((net(x).argmax(dim=1) == y).sum() for x, y in loader)
    return correct / sum(len(y) for _, y in loader)


def softmax_unstable(z: torch.Tensor) -> torch.Tensor:
    return z.exp() / z.exp().sum(dim=1, keepdim=True)


def softmax_over_batch(z: torch.Tensor) -> torch.Tensor:
    e = (z - z.max()).exp()
    return e / e.sum(dim=0, keepdim=True)


def cross_entropy_summed(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(z[torch.arange(len(y)), y] - torch.logsumexp(z, dim=1)).sum()


def cross_entropy_unstable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = z.exp() / z.exp().sum(dim=1, keepdim=True)
    return -p[torch.arange(len(y)), y].log().mean()


def cross_entropy_first_class(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(z[:, 0] - torch.logsumexp(z, dim=1)).mean()


# ---- notebook 03 ---------------------------------------------------------------------------

class MLPWithoutReLU(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.fc2(self.fc1(x.flatten(1))))


class MLPReLUOnLogits(MLP):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class MLPSwappedWidths(MLP):
    def __init__(self):
        super().__init__(hidden=(80, 120))


def count_without_biases(sizes: list[int]) -> int:
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def count_biases_of_inputs(sizes: list[int]) -> int:
    return sum(a * b + a for a, b in zip(sizes, sizes[1:], strict=False))


def best_single_run(results: dict[str, list[float]]) -> str:
    return max(results, key=lambda name: max(results[name]))


def best_last_seed(results: dict[str, list[float]]) -> str:
    return max(results, key=lambda name: results[name][-1])


def best_first_seed(results: dict[str, list[float]]) -> str:
    return max(results, key=lambda name: results[name][0])


# ---- notebook 04 ---------------------------------------------------------------------------

def side_without_padding(h: int, k: int, p: int = 0, s: int = 1) -> int:
    return (h - k) // s + 1


def side_rounded_up(h: int, k: int, p: int = 0, s: int = 1) -> int:
    return -(-(h + 2 * p - k) // s) + 1


def side_off_by_one(h: int, k: int, p: int = 0, s: int = 1) -> int:
    return (h + 2 * p - k) // s


def pool_wrong_reshape(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, 2, h // 2, 2, w // 2).amax(dim=(2, 4))  # blocks far apart


def pool_of_absolute_values(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.abs().view(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))


def pool_average(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


class LeNetWithoutPadding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.max_pool2d(F.relu(self.conv1(x)), 2))), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class LeNetPoolBeforeReLUMissing(LeNet):
    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2)  # no ReLU
        return F.max_pool2d(self.conv2(x), 2)


class LeNetAveragePooling(LeNet):
    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        return F.avg_pool2d(F.relu(self.conv2(x)), 2)


def fc1_inputs_ignoring_padding(side: int, padding: int) -> int:
    return 16 * ((side - 4) // 2 - 4) // 2 * ((side - 4) // 2 - 4) // 2


def fc1_inputs_one_channel(side: int, padding: int) -> int:
    s = ((side + 2 * padding - 4) // 2 - 4) // 2
    return s * s


def fc1_inputs_always_400(side: int, padding: int) -> int:
    return 400


EXERCISES: list[Exercise] = [
    Exercise("00 split_sizes", start_here.check_split_sizes, lambda: (50_000, 10_000, 10_000),
             {"train and validation swapped": split_sizes_swapped,
              "the official 60,000 as training": split_sizes_official}),
    Exercise("00 tensor_bytes", start_here.check_tensor_bytes, start_here.reference_tensor_bytes,
             {"4 bytes whatever the dtype": bytes_as_float32,
              "elements, not bytes": bytes_as_count}),
    Exercise("01 one_hot_by_comparison", mnist_data.check_one_hot, one_hot,
             {"off by one": one_hot_off_by_one, "always 10 classes": one_hot_fixed_ten,
              "booleans, not floats": one_hot_booleans}),
    Exercise("01 rarest_digit", mnist_data.check_rarest_digit, mnist_data.reference_rarest_digit,
             {"bincount without minlength": rarest_without_minlength,
              "only digits present": rarest_of_those_present,
              "the most common": most_common_digit}),
    Exercise("01 to_pixels", mnist_data.check_to_pixels, mnist_data.reference_to_pixels,
             {"truncated, not rounded": pixels_truncated, "operations in the wrong order":
              pixels_wrong_order, "floats, not uint8": pixels_as_floats}),
    Exercise("02 Net", linear_model.check_linear_net, LinearNet,
             {"a softmax at the end": NetWithSoftmax, "no bias": NetWithoutBias,
              "pixels flattened column by column": NetTransposedPixels}),
    Exercise("02 my_softmax", linear_model.check_softmax, lambda z: torch.softmax(z, dim=1),
             {"no max subtracted": softmax_unstable, "over the batch axis": softmax_over_batch}),
    Exercise("02 my_cross_entropy", linear_model.check_cross_entropy, F.cross_entropy,
             {"a sum, not a mean": cross_entropy_summed, "log of softmax": cross_entropy_unstable,
              "always class 0": cross_entropy_first_class}),
    Exercise("02 train_epoch", linear_model.check_train_epoch, train_epoch,
             {"no zero_grad": loop_without_zero_grad, "no optimizer.step": loop_without_step,
              "loss tensors kept": loop_keeping_tensors, "summed loss": loop_summed_loss,
              "zero_grad after backward": loop_zero_grad_after_backward}),
    Exercise("02 evaluate", linear_model.check_evaluate, evaluate,
             {"mean of per-batch accuracies": accuracy_mean_of_batches,
              "no net.eval()": accuracy_in_train_mode,
              "a tensor, not a float": accuracy_as_tensor}),
    Exercise("03 Net", mlp.check_mlp, MLP,
             {"no ReLU": MLPWithoutReLU, "ReLU on the logits": MLPReLUOnLogits,
              "hidden widths swapped": MLPSwappedWidths}),
    Exercise("03 mlp_parameter_count", mlp.check_parameter_count,
             lambda sizes: sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False)),
             {"no biases": count_without_biases,
              "biases counted on inputs": count_biases_of_inputs}),
    Exercise("03 best_setting", mlp.check_best_setting, mlp.reference_best_setting,
             {"best single run": best_single_run, "last seed": best_last_seed,
              "first seed": best_first_seed}),
    Exercise("04 conv_output_side", lenet.check_output_side, lenet.reference_output_side,
             {"padding ignored": side_without_padding, "rounded up": side_rounded_up,
              "off by one": side_off_by_one}),
    Exercise("04 max_pool_2x2", lenet.check_max_pool, lambda x: F.max_pool2d(x, 2),
             {"wrong reshape": pool_wrong_reshape, "absolute values": pool_of_absolute_values,
              "average pooling": pool_average}),
    Exercise("04 Net", lenet.check_lenet, LeNet,
             {"no padding": LeNetWithoutPadding, "no ReLU after the convolutions":
              LeNetPoolBeforeReLUMissing, "average pooling": LeNetAveragePooling}),
    Exercise("04 fc1_inputs", lenet.check_fc1_inputs, lenet.measured_fc1_inputs,
             {"padding ignored": fc1_inputs_ignoring_padding, "one channel": fc1_inputs_one_channel,
              "always 400": fc1_inputs_always_400}),
]


# ---- notebook 10 ---------------------------------------------------------------------------

def entries_with(mask, value_index, position_bits, *, first=-1, filler_when=None, minus=1,
                 filler_value=False):
    """Relative indices with one of a student's slips, chosen by the keywords."""
    max_gap = 2**position_bits
    too_long = filler_when or (lambda gap: gap > max_gap)
    gaps, values, previous = [], [], first
    flat = value_index.flatten()
    for position in mask.flatten().nonzero().flatten().tolist():
        gap = position - previous
        while too_long(gap):
            gaps.append(max_gap - 1)
            values.append(int(flat[position]) if filler_value else 0)
            gap -= max_gap
        gaps.append(gap - minus)
        values.append(int(flat[position]))
        previous = position
    return gaps, values


def gaps_from_zero(positions: list[int]) -> list[int]:
    return [p - q for p, q in zip(positions, [0, *positions], strict=False)]


def gaps_absolute(positions: list[int]) -> list[int]:
    return list(positions)


def entropy_natural_log(symbols: list[int]) -> float:
    n = len(symbols)
    return -sum(k / n * math.log(k / n) for k in (symbols.count(s) for s in set(symbols)))


def entropy_of_the_alphabet(symbols: list[int]) -> float:
    return math.log2(len(set(symbols)))  # the fixed-width bits, not the entropy


def bias_share_of_the_rest(codes) -> float:
    bias = sum(c.nbytes()["bias"] for c in codes.values())
    return bias / (sum(c.total_bytes() for c in codes.values()) - bias)


def bias_share_of_one_layer(codes) -> float:
    last = list(codes.values())[-1]
    return last.nbytes()["bias"] / last.total_bytes()


def encoded_lenet300() -> dict:
    """LeNet-300-100, pruned and shared at 6 bits, encoded with and without Huffman coding."""
    shared = share_pruned(pretrained("lenet300_pruned"), dict.fromkeys(["fc1", "fc2", "fc3"], 6))
    return {("lenet300", huffman): encode_model(shared, ["fc1", "fc2", "fc3"], 5, huffman)
            for huffman in (False, True)}


def check_bias_share(answer, strict=None) -> bool:
    return deep_compression.check_bias_share(answer, encoded_lenet300(), strict=strict)


EXERCISES += [
    Exercise("10 sparse_entries", deep_compression.check_sparse_entries, sparse_entries,
             {"no fillers": partial(entries_with, filler_when=lambda gap: False),
              "a filler at exactly 2^p": partial(entries_with, filler_when=lambda gap: gap >= 4),
              "gaps stored as they are": partial(entries_with, minus=0),
              "the first gap from 0": partial(entries_with, first=0),
              "fillers carry the value": partial(entries_with, filler_value=True)}),
    Exercise("10 gaps", deep_compression.check_gaps, deep_compression.reference_gaps,
             {"the first from 0": gaps_from_zero, "positions, not gaps": gaps_absolute}),
    Exercise("10 entropy_bits", deep_compression.check_entropy_bits,
             deep_compression.reference_entropy_bits,
             {"natural logarithm": entropy_natural_log,
              "log2 of the alphabet": entropy_of_the_alphabet}),
    Exercise("10 bias_share", check_bias_share, deep_compression.reference_bias_share,
             {"over the rest, not the whole": bias_share_of_the_rest,
              "the last layer only": bias_share_of_one_layer}),
]


# ---- notebook 11 ---------------------------------------------------------------------------

def to_fixed_half_to_even(x: torch.Tensor, bits: int, frac_bits: int) -> torch.Tensor:
    return torch.round(x * 2.0**frac_bits).clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1).long()


def to_fixed_truncated(x: torch.Tensor, bits: int, frac_bits: int) -> torch.Tensor:
    return (x * 2.0**frac_bits).long().clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def to_fixed_wrapping(x: torch.Tensor, bits: int, frac_bits: int) -> torch.Tensor:
    q = torch.floor(x.double() * 2.0**frac_bits + 0.5).long()
    return (q + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)  # two's complement overflow


def to_fixed_unsigned_range(x: torch.Tensor, bits: int, frac_bits: int) -> torch.Tensor:
    return torch.floor(x.double() * 2.0**frac_bits + 0.5).clamp(0, 2**bits - 1).long()


def to_fixed_as_floats(x: torch.Tensor, bits: int, frac_bits: int) -> torch.Tensor:
    return torch.floor(x * 2.0**frac_bits + 0.5).clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def shift_truncated(acc: torch.Tensor, shift: int) -> torch.Tensor:
    return acc >> shift if shift > 0 else acc << -shift


def shift_by_float_division(acc: torch.Tensor, shift: int) -> torch.Tensor:
    return torch.floor(acc / 2.0**shift + 0.5).long()  # float32: wrong for wide accumulators


def shift_positive_only(acc: torch.Tensor, shift: int) -> torch.Tensor:
    return (acc + (1 << (shift - 1))) >> shift


def multiply_truncated(a_q, b_q, frac_bits, bits):
    return saturate((a_q.long() * b_q.long()) >> frac_bits, bits)


def multiply_unsaturated(a_q, b_q, frac_bits, bits):
    return shift_round(a_q.long() * b_q.long(), frac_bits)


def multiply_shift_by_2f(a_q, b_q, frac_bits, bits):
    return saturate(shift_round(a_q.long() * b_q.long(), 2 * frac_bits), bits)


def underflow_half_to_even(g: torch.Tensor, frac_bits: int) -> float:
    return float((torch.round(g * 2**frac_bits) == 0).float().mean())


def underflow_below_one_step(g: torch.Tensor, frac_bits: int) -> float:
    return float((g.abs() < 2.0**-frac_bits).float().mean())


def underflow_count(g: torch.Tensor, frac_bits: int) -> float:
    return float((to_fixed(g, 16, frac_bits) == 0).sum())


EXERCISES += [
    Exercise("11 to_fixed", fixed_point.check_to_fixed, lambda x, b, f: to_fixed(x, b, f),
             {"half to even": to_fixed_half_to_even, "truncated": to_fixed_truncated,
              "wrapping, not saturating": to_fixed_wrapping,
              "unsigned range": to_fixed_unsigned_range,
              "floats, not integers": to_fixed_as_floats}),
    Exercise("11 shift_round", fixed_point.check_shift_round, lambda acc, s: shift_round(acc, s),
             {"truncated": shift_truncated, "float division": shift_by_float_division,
              "positive shifts only": shift_positive_only}),
    Exercise("11 qmn_range", fixed_point.check_qmn_range, fixed_point.reference_qmn_range,
             {"unsigned": lambda m, n: (0.0, 2.0 ** (m + 1) - 2.0**-n, 2.0**-n),
              "largest without the step": lambda m, n: (-(2.0**m), 2.0**m, 2.0**-n),
              "m counts the sign":
                  lambda m, n: (-(2.0 ** (m - 1)), 2.0 ** (m - 1) - 2.0**-n, 2.0**-n)}),
    Exercise("11 fixed_multiply", fixed_point.check_fixed_multiply,
             fixed_point.reference_fixed_multiply,
             {"truncated": multiply_truncated, "not saturated": multiply_unsaturated,
              "shifted by 2F": multiply_shift_by_2f}),
    Exercise("11 underflow_fraction", fixed_point.check_underflow_fraction,
             fixed_point.reference_underflow_fraction,
             {"half to even": underflow_half_to_even, "below one step": underflow_below_one_step,
              "a count": underflow_count}),
]


# ---- notebook 12 ---------------------------------------------------------------------------

class GapHeadMaxPooled(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Conv2d(channels, num_classes, 1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features).amax(dim=(2, 3))


class GapHeadSummed(GapHeadMaxPooled):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features).sum(dim=(2, 3))


class GapHeadWithBias(GapHeadMaxPooled):
    def __init__(self, channels: int, num_classes: int):
        super().__init__(channels, num_classes)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features).mean(dim=(2, 3))


class GapHeadBatchCentred(GapHeadMaxPooled):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scores = self.classifier(features).mean(dim=(2, 3))
        return scores - scores.mean(dim=0)  # depends on the other images


def gap_parameters_reference(widths: tuple[int, int, int, int]) -> int:
    channels = (1, *widths)
    convs = sum(9 * c_in * c_out for c_in, c_out in zip(channels, channels[1:], strict=False))
    return convs + 2 * sum(widths) + 10 * widths[-1]


def gap_parameters_with_conv_biases(widths: tuple[int, int, int, int]) -> int:
    return gap_parameters_reference(widths) + sum(widths)


def gap_parameters_with_running_statistics(widths: tuple[int, int, int, int]) -> int:
    return gap_parameters_reference(widths) + 2 * sum(widths)  # buffers, not parameters


def gap_parameters_classifier_on_the_first_width(widths: tuple[int, int, int, int]) -> int:
    return gap_parameters_reference(widths) - 10 * widths[-1] + 10 * widths[0]


def fc_head_reference(c: int, h: int, w: int, hidden: int, classes: int) -> int:
    return (c * h * w + 1) * hidden + (hidden + 1) * classes


def fc_head_without_biases(c: int, h: int, w: int, hidden: int, classes: int) -> int:
    return c * h * w * hidden + hidden * classes


def fc_head_square_features(c: int, h: int, w: int, hidden: int, classes: int) -> int:
    return fc_head_reference(c, h, h, hidden, classes)


def fc_head_one_bias(c: int, h: int, w: int, hidden: int, classes: int) -> int:
    return (c * h * w + 1) * hidden + hidden * classes


def runner_up_of_rank(rank: int) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """The maps of the class of this rank (0: the predicted one, -1: the lowest score)."""
    def maps(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            classes = model(x).argsort(dim=1, descending=True)[:, rank]
        return class_activation_map(model, x, classes)[0]
    return maps


def runner_up_of_the_shipped_network(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return global_average_pooling.reference_runner_up_maps(pretrained("gap"), x)  # not ``model``


def check_runner_up(answer, strict=None) -> bool:
    return global_average_pooling.check_runner_up_maps(answer, pretrained("gap"),
                                                       load_mnist().test[:8][0], strict=strict)


EXERCISES += [
    Exercise("12 GapHead", global_average_pooling.check_gap_head, GapHead,
             {"max, not mean": GapHeadMaxPooled, "sum, not mean": GapHeadSummed,
              "a bias": GapHeadWithBias, "centred over the batch": GapHeadBatchCentred}),
    Exercise("12 gap_parameters", global_average_pooling.check_gap_parameters,
             gap_parameters_reference,
             {"biases on the convolutions": gap_parameters_with_conv_biases,
              "BatchNorm's running statistics counted": gap_parameters_with_running_statistics,
              "the classifier on the first width": gap_parameters_classifier_on_the_first_width}),
    Exercise("12 fc_head_parameters", global_average_pooling.check_fc_head_parameters,
             fc_head_reference,
             {"no biases": fc_head_without_biases, "h * h, not h * w": fc_head_square_features,
              "the output layer's biases forgotten": fc_head_one_bias}),
    Exercise("12 runner_up_maps", check_runner_up, global_average_pooling.reference_runner_up_maps,
             {"the predicted class": runner_up_of_rank(0),
              "the lowest score": runner_up_of_rank(-1),
              "the shipped network, not the model given": runner_up_of_the_shipped_network}),
]


# ---- notebook 13 ---------------------------------------------------------------------------

def intact_big_endian(data: bytes) -> bool:
    return len(data) >= 4 and struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def intact_over_everything(data: bytes) -> bool:
    return len(data) >= 4 and struct.unpack("<I", data[-4:])[0] == zlib.crc32(data)


def intact_raising_when_short(data: bytes) -> bool:
    return struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def intact_by_magic(data: bytes) -> bool:
    return data[:4] == b"DLCZ"


def header_name_in_characters(data: bytes) -> tuple[bytes, int, str]:
    return data[:4], data[4], data[6:].decode("utf-8", errors="replace")[:data[5]]


def header_name_from_byte_5(data: bytes) -> tuple[bytes, int, str]:
    return data[:4], data[4], data[5:5 + data[5]].decode("utf-8", errors="replace")


def header_version_as_byte(data: bytes) -> tuple[bytes, int, str]:
    return data[:4], data[4:5], data[6:6 + data[5]].decode()


def bits_per_kept_in_bytes(file_bytes: int, masks: dict) -> float:
    return file_bytes / sum(int(m.sum()) for m in masks.values())


def bits_per_every_weight(file_bytes: int, masks: dict) -> float:
    return 8 * file_bytes / sum(m.numel() for m in masks.values())


def compact_file_bytes() -> bytes:
    """A small intact compact file: a hand-made shared layer, as notebook 13 writes them."""
    layer = nn.Linear(6, 3)
    share_layer(layer, torch.tensor([0.5, -1.0, 0.25]), torch.randint(0, 3, (3, 6),
                generator=torch.Generator().manual_seed(0)), torch.rand(3, 6) > 0.5)
    return compact_bytes("lenet5", {"fc1": encode_layer(layer, 2, True, "fc1")})


def check_intact(answer, strict=None) -> bool:
    return compression_demo.check_is_intact(answer, compact_file_bytes(), strict=strict)


def check_header(answer, strict=None) -> bool:
    return compression_demo.check_header(answer, compact_file_bytes(), strict=strict)


def check_bits_per_kept(answer, strict=None) -> bool:
    masks = {"a": torch.rand(20, 30, generator=torch.Generator().manual_seed(0)) > 0.9}
    return compression_demo.check_bits_per_kept_weight(answer, 1234, masks, strict=strict)


EXERCISES += [
    Exercise("13 is_intact", check_intact, compression_demo.reference_is_intact,
             {"big-endian": intact_big_endian, "the CRC over everything": intact_over_everything,
              "raises when short": intact_raising_when_short, "the magic only": intact_by_magic}),
    Exercise("13 header", check_header, compression_demo.reference_header,
             {"name length in characters": header_name_in_characters,
              "name from byte 5": header_name_from_byte_5,
              "version as bytes": header_version_as_byte}),
    Exercise("13 bits_per_kept_weight", check_bits_per_kept,
             compression_demo.reference_bits_per_kept_weight,
             {"bytes, not bits": bits_per_kept_in_bytes,
              "over every weight": bits_per_every_weight}),
]


# ---- notebook 14 (C source, compiled: registered where a compiler is found; CI requires one) --

def max_pool_c_from_zero() -> str:
    return deploy_in_c.reference_max_pool_c().replace(
        "float m = top[0];",
        "float m = 0.0f;  /* wrong for negative maps */\n if (top[0] > m) m = top[0];")


def max_pool_c_rounded_up() -> str:
    return deploy_in_c.reference_max_pool_c().replace(
        "out_h = height / 2, out_w = width / 2",
        "out_h = (height + 1) / 2, out_w = (width + 1) / 2")


# an input row taken as 2 * out_w floats: wrong for odd widths
def max_pool_c_rows_of_pairs() -> str:
    return deploy_in_c.reference_max_pool_c().replace(
        "(c * height + 2 * y) * width + 2 * x", "(c * height + 2 * y) * 2 * out_w + 2 * x").replace(
        "top + width;", "top + 2 * out_w;")


def max_pool_c_one_channel_out() -> str:
    return deploy_in_c.reference_max_pool_c().replace("out[(c * out_h + y) * out_w + x]",
                                                      "out[y * out_w + x]")


if find_compiler() is not None:
    EXERCISES.append(
        Exercise("14 max_pool2 in C", deploy_in_c.check_max_pool_c,
                 deploy_in_c.reference_max_pool_c,
                 {"max starts at 0": max_pool_c_from_zero,
                  "sizes rounded up": max_pool_c_rounded_up,
                  "rows of 2 * out_w": max_pool_c_rows_of_pairs,
                  "channel left out of out": max_pool_c_one_channel_out}))


# ---- notebook 06 ---------------------------------------------------------------------------

def mask_by_threshold(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = round(sparsity * weight.numel())
    if k == 0:
        return torch.ones_like(weight, dtype=torch.bool)
    return weight.abs() > weight.abs().flatten().kthvalue(k).values  # ties at t all go


def mask_of_signed_values(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    keep = torch.ones(weight.numel(), dtype=torch.bool)
    keep[weight.flatten().argsort(stable=True)[:round(sparsity * weight.numel())]] = False
    return keep.view_as(weight)


def mask_of_the_largest(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    keep = torch.ones(weight.numel(), dtype=torch.bool)
    keep[weight.abs().flatten().argsort(descending=True,
                                        stable=True)[:round(sparsity * weight.numel())]] = False
    return keep.view_as(weight)


def mask_truncated_count(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    keep = torch.ones(weight.numel(), dtype=torch.bool)
    keep[weight.abs().flatten().argsort(stable=True)[:int(sparsity * weight.numel())]] = False
    return keep.view_as(weight)


def mask_as_floats(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    return magnitude_mask(weight, sparsity).float()


def retrain_masked_before_step(model, masks, x, y, optimizer) -> float:
    apply_masks(model, masks)
    return train_step(model, x, y, optimizer)


def retrain_without_masks(model, masks, x, y, optimizer) -> float:
    return train_step(model, x, y, optimizer)


def retrain_masks_inverted(model, masks, x, y, optimizer) -> float:
    loss = train_step(model, x, y, optimizer)
    apply_masks(model, {name: ~mask for name, mask in masks.items()})
    return loss


def retrain_loss_tensor(model, masks, x, y, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    apply_masks(model, masks)
    return loss


def threshold_off_by_one(weight: torch.Tensor, sparsity: float) -> float:
    return float(weight.abs().flatten().kthvalue(round(sparsity * weight.numel()) + 1).values)


def threshold_of_signed_values(weight: torch.Tensor, sparsity: float) -> float:
    return float(weight.flatten().kthvalue(round(sparsity * weight.numel())).values)


def csr_relative_rows_only(weight: torch.Tensor) -> float:
    matrix = weight.reshape(weight.shape[0], -1)
    return (int((matrix != 0).sum()) * (32 + 5) + matrix.shape[0] * 32) / 8


def csr_relative_every_entry(weight: torch.Tensor) -> float:
    matrix = weight.reshape(weight.shape[0], -1)
    return (matrix.numel() * (32 + 5) + (matrix.shape[0] + 1) * 32) / 8


def csr_relative_in_bits(weight: torch.Tensor) -> float:
    matrix = weight.reshape(weight.shape[0], -1)
    return float(int((matrix != 0).sum()) * (32 + 5) + (matrix.shape[0] + 1) * 32)


EXERCISES += [
    Exercise("06 magnitude_mask", weight_pruning.check_magnitude_mask, magnitude_mask,
             {"threshold from kthvalue (ties)": mask_by_threshold,
              "signed values": mask_of_signed_values, "the largest pruned": mask_of_the_largest,
              "count truncated": mask_truncated_count, "floats, not booleans": mask_as_floats}),
    Exercise("06 retrain_step", weight_pruning.check_retrain_step,
             weight_pruning.reference_retrain_step,
             {"masks before the step": retrain_masked_before_step,
              "no masks": retrain_without_masks, "masks inverted": retrain_masks_inverted,
              "the loss tensor": retrain_loss_tensor}),
    Exercise("06 threshold_for", weight_pruning.check_threshold_for,
             lambda w, s: float(w.abs().flatten().kthvalue(round(s * w.numel())).values),
             {"off by one": threshold_off_by_one, "signed values": threshold_of_signed_values}),
    Exercise("06 csr_bytes_relative", weight_pruning.check_csr_bytes_relative,
             weight_pruning.reference_csr_bytes_relative,
             {"rows, not rows + 1 pointers": csr_relative_rows_only,
              "every entry, not the nonzeros": csr_relative_every_entry,
              "bits, not bytes": csr_relative_in_bits}),
]


# ---- notebook 05 ---------------------------------------------------------------------------

def linear_bias_per_input(n_in: int, n_out: int) -> tuple[int, int]:
    return n_in * n_out + n_in, n_in * n_out


def linear_without_bias(n_in: int, n_out: int) -> tuple[int, int]:
    return n_in * n_out, n_in * n_out


def conv_groups_ignored(c_in, c_out, k, h_out, w_out, groups=1) -> tuple[int, int]:
    return c_out * (c_in * k * k + 1), c_out * h_out * w_out * c_in * k * k


def conv_macs_once_per_weight(c_in, c_out, k, h_out, w_out, groups=1) -> tuple[int, int]:
    weights = c_out * c_in // groups * k * k
    return weights + c_out, weights  # as if a convolution were a fully connected layer


def conv_kernel_not_squared(c_in, c_out, k, h_out, w_out, groups=1) -> tuple[int, int]:
    return c_out * (c_in // groups * k + 1), c_out * h_out * w_out * c_in // groups * k


def conv_groups_divide_outputs(c_in, c_out, k, h_out, w_out, groups=1) -> tuple[int, int]:
    return c_out // groups * (c_in * k * k + 1), c_out // groups * h_out * w_out * c_in * k * k


def int8_energy_full_word(params: int, macs: int) -> float:
    return (macs * (0.2 + 0.1) + params * 640) / 1e6


def int8_energy_int8_add(params: int, macs: int) -> float:
    return (macs * (0.2 + 0.03) + params * 640 / 4) / 1e6


def int8_energy_in_picojoules(params: int, macs: int) -> float:
    return macs * (0.2 + 0.1) + params * 640 / 4


def model_macs(pair, strict=None) -> bool:
    return why_compress.check_model_macs(*pair, strict=strict)


EXERCISES += [
    Exercise("05 linear_cost", why_compress.check_linear_cost, linear_cost,
             {"a bias per input": linear_bias_per_input, "no bias": linear_without_bias}),
    Exercise("05 conv_cost", why_compress.check_conv_cost, conv_cost,
             {"groups ignored": conv_groups_ignored, "each weight once": conv_macs_once_per_weight,
              "k, not k squared": conv_kernel_not_squared,
              "groups divide the outputs": conv_groups_divide_outputs}),
    Exercise("05 model_macs", model_macs, (linear_cost, conv_cost),
             {"groups ignored": (linear_cost, conv_groups_ignored),
              "each weight once": (linear_cost, conv_macs_once_per_weight)}),
    Exercise("05 int8_energy_uj", why_compress.check_int8_energy,
             why_compress.reference_int8_energy_uj,
             {"a whole word per weight": int8_energy_full_word,
              "an 8-bit add": int8_energy_int8_add, "picojoules": int8_energy_in_picojoules}),
]


# ---- notebook 07 ---------------------------------------------------------------------------

def norms_rows_and_columns_swapped(fc_in: nn.Linear, fc_out: nn.Linear):
    return fc_in.weight.norm(dim=0).sum(), fc_out.weight.norm(dim=1).sum()  # the slide's in x out


def norms_squared(fc_in: nn.Linear, fc_out: nn.Linear):
    return (fc_in.weight**2).sum(), (fc_out.weight**2).sum()


def norms_l1(fc_in: nn.Linear, fc_out: nn.Linear):
    return fc_in.weight.abs().sum(), fc_out.weight.abs().sum()


def norms_detached(fc_in: nn.Linear, fc_out: nn.Linear):
    return (torch.tensor(float(fc_in.weight.norm(dim=1).sum())),
            torch.tensor(float(fc_out.weight.norm(dim=0).sum())))


def remove_neuron_with(fc_in, fc_out, i, *, in_bias=True, out_columns=True, out_bias=True):
    """Neuron removal with one of a student's slips, chosen by the keywords."""
    keep = torch.arange(fc_in.out_features) != i
    new_in = nn.Linear(fc_in.in_features, fc_in.out_features - 1)
    new_out = nn.Linear(fc_out.in_features - 1, fc_out.out_features)
    with torch.no_grad():
        new_in.weight.copy_(fc_in.weight[keep])
        if in_bias:
            new_in.bias.copy_(fc_in.bias[keep])
        new_out.weight.copy_(fc_out.weight[:, keep] if out_columns else fc_out.weight[:, :-1])
        if out_bias:
            new_out.bias.copy_(fc_out.bias)
    return new_in, new_out


def keep_either(fc_in: nn.Linear, fc_out: nn.Linear, tau: float) -> torch.Tensor:
    return (fc_in.weight.norm(dim=1) > tau) | (fc_out.weight.norm(dim=0) > tau)


def keep_at_tau(fc_in: nn.Linear, fc_out: nn.Linear, tau: float) -> torch.Tensor:
    return (fc_in.weight.norm(dim=1) >= tau) & (fc_out.weight.norm(dim=0) >= tau)


def keep_by_incoming_only(fc_in: nn.Linear, fc_out: nn.Linear, tau: float) -> torch.Tensor:
    return fc_in.weight.norm(dim=1) > tau


def compression_of_weights_only(dense: nn.Module, small: nn.Module) -> float:
    def weights(m):
        return sum(p.numel() for name, p in m.named_parameters() if name.endswith("weight"))
    return weights(dense) / weights(small)


def compression_inverted(dense: nn.Module, small: nn.Module) -> float:
    return sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in dense.parameters())


def check_parameter_compression(answer, strict=None) -> bool:
    torch.manual_seed(0)
    return neuron_pruning.check_parameter_compression(answer, nn.Linear(800, 500),
                                                      nn.Linear(80, 50), strict=strict)


EXERCISES += [
    Exercise("07 group_norms", neuron_pruning.check_group_norms, group_penalty,
             {"the slide's orientation": norms_rows_and_columns_swapped, "squared": norms_squared,
              "L1": norms_l1, "detached": norms_detached}),
    Exercise("07 remove_neuron", neuron_pruning.check_remove_neuron,
             lambda a, b, i: shrink_pair(a, b, torch.arange(a.out_features) != i),
             {"first bias not cut": partial(remove_neuron_with, in_bias=False),
              "the last column cut": partial(remove_neuron_with, out_columns=False),
              "second bias lost": partial(remove_neuron_with, out_bias=False)}),
    Exercise("07 neurons_to_keep", neuron_pruning.check_neurons_to_keep,
             neuron_pruning.reference_neurons_to_keep,
             {"either norm": keep_either, "at tau too": keep_at_tau,
              "incoming only": keep_by_incoming_only}),
    Exercise("07 parameter_compression", check_parameter_compression,
             neuron_pruning.reference_parameter_compression,
             {"weights only": compression_of_weights_only, "inverted": compression_inverted}),
]


# ---- notebook 08 ---------------------------------------------------------------------------

def filters_alpha_per_layer(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w >= 0, 1.0, -1.0) * w.abs().mean()


def filters_alpha_per_input(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w >= 0, 1.0, -1.0) * w.abs().mean(dim=0, keepdim=True)


def filters_torch_sign(w: torch.Tensor) -> torch.Tensor:
    return torch.sign(w) * w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


def filters_alpha_of_max(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w >= 0, 1.0, -1.0) * w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True)


def quantize_floor(x, scale, zero_point, bits):
    return torch.clamp(torch.floor(x / scale) + zero_point, 0, 2**bits - 1).to(torch.int32)


def quantize_unclamped(x, scale, zero_point, bits):
    return (torch.round(x / scale) + zero_point).to(torch.int32)


def quantize_as_floats(x, scale, zero_point, bits):
    return torch.clamp(torch.round(x / scale) + zero_point, 0, 2**bits - 1)


def quantize_zero_point_subtracted(x, scale, zero_point, bits):
    return torch.clamp(torch.round(x / scale) - zero_point, 0, 2**bits - 1).to(torch.int32)


def dequantize_without_zero_point(q, scale, zero_point):
    return scale * q.float()


def ternarize_alpha_of_all(w: torch.Tensor, t: float) -> torch.Tensor:
    return torch.where(w.abs() > t, w.abs().mean() * w.sign(), torch.zeros_like(w))


def ternarize_keeping_t(w: torch.Tensor, t: float) -> torch.Tensor:
    keep = w.abs() >= t
    return torch.where(keep, w.abs()[keep].mean() * w.sign(), torch.zeros_like(w))


def ternarize_without_alpha(w: torch.Tensor, t: float) -> torch.Tensor:
    return torch.where(w.abs() > t, w.sign(), torch.zeros_like(w))


def ternarize_nan_when_nothing_kept(w: torch.Tensor, t: float) -> torch.Tensor:
    keep = w.abs() > t
    return torch.where(keep, w.abs()[keep].mean() * w.sign(),
                       torch.zeros_like(w) * w.abs()[keep].mean())


EXERCISES += [
    Exercise("08 binarize_filters", binary_and_uniform.check_binarize_filters,
             lambda w: binarize(w, scaled=True, per_filter=True),
             {"one alpha per layer": filters_alpha_per_layer,
              "alpha per input": filters_alpha_per_input,
              "torch.sign (0 stays 0)": filters_torch_sign,
              "alpha = max |w|": filters_alpha_of_max}),
    Exercise("08 quantize and dequantize",
             lambda pair, strict=None: binary_and_uniform.check_quantize(*pair, strict=strict),
             (quantize, dequantize),
             {"floor, not round": (quantize_floor, dequantize),
              "no clamp": (quantize_unclamped, dequantize),
              "floats, not integers": (quantize_as_floats, dequantize),
              "zero point subtracted": (quantize_zero_point_subtracted, dequantize),
              "dequantize without the zero point": (quantize, dequantize_without_zero_point)}),
    Exercise("08 ternarize", binary_and_uniform.check_ternarize,
             binary_and_uniform.reference_ternarize,
             {"alpha over all weights": ternarize_alpha_of_all, "|w| = t kept": ternarize_keeping_t,
              "no alpha": ternarize_without_alpha,
              "nan when nothing is kept": ternarize_nan_when_nothing_kept}),
    Exercise("08 uniform_bytes", binary_and_uniform.check_uniform_bytes,
             binary_and_uniform.reference_uniform_bytes,
             {"rounded down": lambda n, bits, channels: n * bits // 8 + 8 * channels,
              "bits, not bytes": lambda n, bits, channels: n * bits + 8 * channels,
              "one scale for all channels": lambda n, bits, channels: -(-n * bits // 8) + 8}),
    Exercise("08 xnor_dot", binary_and_uniform.check_xnor_dot,
             lambda a, b, k: k - 2 * (a ^ b).bit_count(),
             {"k minus the popcount": lambda a, b, k: k - (a ^ b).bit_count(),
              "popcount of AND": lambda a, b, k: 2 * (a & b).bit_count() - k,
              "sign flipped": lambda a, b, k: 2 * (a ^ b).bit_count() - k}),
]


# ---- notebook 09 ---------------------------------------------------------------------------

def lloyd_without_empty_guard(points: torch.Tensor, centroids: torch.Tensor):
    assign = torch.cdist(points, centroids).argmin(dim=1)
    sums = torch.zeros_like(centroids).index_add_(0, assign, points)
    counts = torch.bincount(assign, minlength=len(centroids)).float()
    return sums / counts[:, None], assign  # 0 / 0 for an empty cluster


def lloyd_sums_not_means(points: torch.Tensor, centroids: torch.Tensor):
    assign = torch.cdist(points, centroids).argmin(dim=1)
    return torch.zeros_like(centroids).index_add_(0, assign, points), assign


def lloyd_assigned_after_the_move(points: torch.Tensor, centroids: torch.Tensor):
    moved, _ = lloyd_step(points, centroids)
    return moved, torch.cdist(points, moved).argmin(dim=1)


def centroid_mean_gradient(weight_grad: torch.Tensor, indices: torch.Tensor,
                           k: int) -> torch.Tensor:
    sums = torch.zeros(k).index_add_(0, indices.flatten(), weight_grad.flatten())
    return sums / torch.bincount(indices.flatten(), minlength=k).clamp(min=1)


def centroid_gradient_counts(weight_grad: torch.Tensor, indices: torch.Tensor,
                             k: int) -> torch.Tensor:
    return torch.bincount(indices.flatten(), minlength=k).float()


def centroid_gradient_without_minlength(weight_grad: torch.Tensor, indices: torch.Tensor,
                                        k: int) -> torch.Tensor:
    return torch.bincount(indices.flatten(), weights=weight_grad.flatten()).float()


def pq_bits_unrounded(m: int, n: int, d: int, k: int) -> float:
    return (n // d) * m * math.log2(k) + (n // d) * k * d * 32


def pq_bits_one_codebook(m: int, n: int, d: int, k: int) -> int:
    return (n // d) * m * math.ceil(math.log2(k)) + k * d * 32


def pq_bits_index_per_weight(m: int, n: int, d: int, k: int) -> int:
    return m * n * math.ceil(math.log2(k)) + (n // d) * k * d * 32


EXERCISES += [
    Exercise("09 lloyd_step", weight_sharing.check_lloyd_step, lloyd_step,
             {"no guard for an empty cluster": lloyd_without_empty_guard,
              "sums, not means": lloyd_sums_not_means,
              "assignments after the move": lloyd_assigned_after_the_move}),
    Exercise("09 centroid_gradient", weight_sharing.check_centroid_gradient,
             lambda g, i, k: torch.zeros(k).index_add_(0, i.flatten(), g.flatten()),
             {"the mean, not the sum": centroid_mean_gradient, "counts": centroid_gradient_counts,
              "bincount without minlength": centroid_gradient_without_minlength}),
    Exercise("09 sharing_rate", weight_sharing.check_sharing_rate,
             weight_sharing.reference_sharing_rate,
             {"index bits rounded up":
                  lambda n, k, b=32: n * b / (n * math.ceil(math.log2(k)) + k * b),
              "no codebook": lambda n, k, b=32: b / math.log2(k),
              "upside down": lambda n, k, b=32: (n * math.log2(k) + k * b) / (n * b)}),
    Exercise("09 assign", weight_sharing.check_assign, weight_sharing.reference_assign,
             {"signed difference": lambda w, c: (w[:, None] - c[None, :]).argmin(dim=1),
              "over the weights, not the codebook":
                  lambda w, c: (w[None, :] - c[:, None]).abs().argmin(dim=1),
              "the farthest": lambda w, c: (w[:, None] - c[None, :]).abs().argmax(dim=1)}),
    Exercise("09 pq_bits", weight_sharing.check_pq_bits,
             lambda m, n, d, k: (n // d) * m * math.ceil(math.log2(k)) + (n // d) * k * d * 32,
             {"log2 k not rounded up": pq_bits_unrounded, "one codebook": pq_bits_one_codebook,
              "an index per weight": pq_bits_index_per_weight}),
]


# ---- notebook 15 ---------------------------------------------------------------------------

def average_summed(replicas) -> None:
    for params in zip(*(r.parameters() for r in replicas), strict=True):
        if params[0].grad is not None:
            total = torch.stack([p.grad for p in params]).sum(dim=0)
            for p in params:
                p.grad.copy_(total)


def average_into_first_only(replicas) -> None:
    for params in zip(*(r.parameters() for r in replicas), strict=True):
        if params[0].grad is not None:
            params[0].grad.copy_(torch.stack([p.grad for p in params]).mean(dim=0))


def average_without_none_check(replicas) -> None:
    for params in zip(*(r.parameters() for r in replicas), strict=True):
        mean = torch.stack([p.grad for p in params]).mean(dim=0)
        for p in params:
            p.grad.copy_(mean)


def average_the_weights(replicas) -> None:
    with torch.no_grad():
        for params in zip(*(r.parameters() for r in replicas), strict=True):
            mean = torch.stack([p for p in params]).mean(dim=0)
            for p in params:
                p.copy_(mean)


def allreduce_summed(model) -> None:
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)


def allreduce_halved(model) -> None:
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= 2


def allreduce_the_weights(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            dist.all_reduce(p.data)
            p.data /= dist.get_world_size()


EXERCISES += [
    Exercise("15 average_gradients", data_parallel.check_average_gradients, average_gradients,
             {"summed, not averaged": average_summed,
              "only the first copy": average_into_first_only,
              "frozen layers not skipped": average_without_none_check,
              "the weights averaged": average_the_weights}),
    # 5 steps instead of 20: each try starts three worker processes.
    Exercise("15 allreduce_gradients", partial(data_parallel.check_allreduce_gradients, steps=5),
             allreduce_gradients,
             {"summed, not divided": allreduce_summed, "divided by 2": allreduce_halved,
              "the weights all-reduced": allreduce_the_weights}),
]


def rejection_figures() -> dict[str, float]:
    """``checks.wrong_pairs`` tried and ``checks.wrong_rejected_fraction`` rejected."""
    pairs = [(e, w) for e in EXERCISES for w in e.wrong.values()]
    rejected = sum(not passes(e, w) for e, w in pairs)
    return {"checks.wrong_pairs": len(pairs),
            "checks.wrong_rejected_fraction": rejected / len(pairs),
            "checks.exercises": len(EXERCISES)}
