"""int8 inference through ONNX Runtime's maintained quantizer (notebook 14).

The float model is exported to ONNX (fp32 weights, the graph written with ``onnx.helper`` as
``onnx_export`` does, from the model's own steps: no ``torch.onnx`` exporter needed; a ReLU after a
pooling is moved before it, the same function, see :func:`float_onnx`), then
``onnxruntime.quantization.quantize_static`` rewrites it for int8 inference:

- **QDQ format**: a ``QuantizeLinear``/``DequantizeLinear`` pair around each tensor to be held in
  8 bits; when it loads the file, ONNX Runtime fuses each pattern ``DQ -> Conv -> Q`` into one
  integer kernel (``QLinearConv``, ``QGemm``), which multiplies 8-bit integers and sums them in
  int32.
- **Weights** int8, symmetric, one scale **per output channel**; **activations** uint8 with a scale
  and zero point per tensor, calibrated (``CalibrationMethod.MinMax``) on validation digits fed by a
  :class:`DigitReader`, never on test digits.

x86 CPUs multiply 8-bit integers with one of two instruction sequences. With AVX-512 VNNI (Intel
since Cascade Lake, AMD since Zen 4) or AVX-VNNI (Intel since Alder Lake), ``VPDPBUSD`` multiplies
unsigned by signed bytes and adds each group of four products into an int32 lane in one instruction.
With AVX2 only, ``VPMADDUBSW`` adds pairs of products into int16 lanes, which saturate
(255 * 127 * 2 > 32767), and ``VPMADDWD`` widens them to int32: more instructions, and a possible
overflow that ONNX Runtime's documentation avoids with ``reduce_range`` (7-bit weights) on such
CPUs. :func:`cpu_features` reads which of these the processor has, so that every speedup is printed
beside them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from torch import nn

from .chain import forward_chain, relu_before_pooling
from .onnx_export import INPUT, chain_model, weight_node
from .timing import median_seconds

# /proc/cpuinfo flag -> the name printed
CPU_FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
             "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}


def cpu_features(cpuinfo: str | None = None) -> dict[str, bool] | None:
    """Which vector features of :data:`CPU_FLAGS` the processor reports, from the ``flags`` line of
    ``/proc/cpuinfo`` (or the text ``cpuinfo``); None where there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.split(":", 1)[0].strip() in ("flags", "Features")), None)
    if flags is None:
        return None
    return {name: flag in flags for flag, name in CPU_FLAGS.items()}


def features_line(features: dict[str, bool] | None) -> str:
    """One line for printing beside a speedup: ``AVX2 yes, AVX-512 no, ...``."""
    if features is None:
        return "CPU features unknown (no /proc/cpuinfo)"
    return "CPU: " + ", ".join(f"{name} {'yes' if present else 'no'}"
                               for name, present in features.items())


def features_short(features: dict[str, bool] | None) -> str:
    """The features present, for a table column: ``AVX2 AVX-512 AVX-512 VNNI``, or
    ``none of them``."""
    if features is None:
        return "unknown"
    return " + ".join(name for name, present in features.items() if present) or "none of them"


def has_vnni(features: dict[str, bool] | None) -> bool:
    """Whether the CPU has an 8-bit dot-product instruction (AVX-512 VNNI or AVX-VNNI)."""
    return bool(features) and (features["AVX-512 VNNI"] or features["AVX-VNNI"])


# ---- the float model in ONNX ----

def float_onnx(model: nn.Module) -> onnx.ModelProto:
    """The fp32 ONNX graph of a float ``model`` with dense weights: input ``digits``
    (B, 1, 28, 28), output ``scores`` (B, 10).

    Its steps are the model's own (``chain.forward_chain``), with every ReLU after a pooling moved
    before it (``chain.relu_before_pooling``): the same function, but the quantizer can then fuse
    each Conv and its ReLU into one integer kernel and pool the 8-bit values directly, instead of
    dequantizing to pool in fp32 and quantizing again.
    """
    steps = relu_before_pooling(forward_chain(model))

    def layer(step: str, x: str, y: str) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
        module = model.get_submodule(step)
        weights = [numpy_helper.from_array(p.detach().cpu().float().numpy(), f"{step}.{kind}")
                   for kind, p in [("weight", module.weight), ("bias", module.bias)]
                   if p is not None]
        return weights, [weight_node(step, x, y, isinstance(module, nn.Conv2d),
                                     module.bias is not None)]

    return chain_model(type(model).__name__, steps, layer)


def export_float(path: str | Path, model: nn.Module) -> int:
    """Write :func:`float_onnx`'s file; returns its bytes."""
    data = float_onnx(model).SerializeToString()
    Path(path).write_bytes(data)
    return len(data)


# ---- static quantization ----

class DigitReader(CalibrationDataReader):
    """Calibration inputs for ``quantize_static``: normalised digits (N, 1, 28, 28) in batches, as
    ``{"digits": array}``; ``get_next`` returns None when they run out."""

    def __init__(self, digits: torch.Tensor, batch_size: int = 100):
        self.batches = [{INPUT: b.cpu().float().numpy()} for b in digits.split(batch_size)]
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.iterator, None)

    def rewind(self) -> None:
        self.iterator = iter(self.batches)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path, calibration: torch.Tensor,
                  reduce_range: bool | None = None) -> int:
    """Quantize the fp32 ONNX file to int8 with ``quantize_static``: QDQ format, per-channel int8
    weights, uint8 activations calibrated (min and max) on ``calibration`` digits; returns the
    file's bytes.

    ``reduce_range`` (7-bit weights) defaults to what ONNX Runtime advises for this CPU: on when it
    has no VNNI instruction. ``quant_pre_process`` (shape inference, graph clean-up) runs first, as
    advised.
    """
    int8_path = Path(int8_path)
    prepared = int8_path.with_name(int8_path.stem + ".prepared.onnx")
    quant_pre_process(str(fp32_path), str(prepared))
    if reduce_range is None:
        reduce_range = not has_vnni(cpu_features())
    quantize_static(str(prepared), str(int8_path), DigitReader(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    prepared.unlink()
    return int8_path.stat().st_size


# ---- running and timing ----

def session(path: str | Path, threads: int = 1,
            optimized_path: str | Path | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session on ``threads`` threads (1: the single-thread comparisons of
    notebook 14). With ``optimized_path``, ONNX Runtime writes the graph it actually runs there."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def operators(path: str | Path) -> list[str]:
    """The operator types of an ONNX file's graph, sorted, each once."""
    return sorted({node.op_type for node in onnx.load(str(path)).graph.node})


def ort_scores(sess: ort.InferenceSession, x: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Class scores (N, 10) of digits ``x`` (N, 1, 28, 28)."""
    return torch.cat([torch.from_numpy(sess.run(None, {INPUT: b.cpu().float().numpy()})[0])
                      for b in x.split(batch_size)])


def ort_accuracy(sess: ort.InferenceSession, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of digits ``x`` whose predicted class is the label ``y``."""
    return (ort_scores(sess, x).argmax(1) == y.cpu()).float().mean().item()


def ort_seconds(sess: ort.InferenceSession, batch_size: int, repeats: int = 50,
                warmup: int = 5) -> float:
    """Median seconds of one ``run`` on a batch of ``batch_size`` zero digits."""
    x = np.zeros((batch_size, 1, 28, 28), dtype=np.float32)
    return median_seconds(lambda: sess.run(None, {INPUT: x}), repeats, warmup)
