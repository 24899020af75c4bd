"""Export a compressed model to ONNX, which C/C++ runtimes load (notebook 13).

ONNX stores a graph of standard operators and its constant tensors ("initializers"). A dense export
would store every weight in fp32 and lose the compression. Here each weight is stored as its
Deep Compression entries, one byte per value index and one per gap, and the graph rebuilds the
dense weight with standard operators before using it:

    positions = CumSum(gaps + 1) - 1                              # (count,) int64
    values    = Gather(table, value_indices)                      # (count,) fp32, table[0] = 0
    weight    = Reshape(ScatterElements(zeros(numel), positions, values), shape)

All their inputs are constants, so a runtime may compute them once, when it loads the model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .chain import forward_chain, layers_in_order
from .deep_compression import EncodedLayer, entry_streams
from .zoo import build_model

OPSET = 17
INPUT, OUTPUT = "digits", "scores"


def _decoding(name: str, code: EncodedLayer) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
    """Initializers and nodes that rebuild layer ``name``'s weight as the tensor
    ``{name}.weight``."""
    if code.value_bits > 8 or code.position_bits > 8:
        raise ValueError(f"{name}: the ONNX form stores indices and gaps in one byte, so at most 8 "
                         "bits each")
    values, gaps = entry_streams(code)
    table = np.concatenate([[0.0], code.codebook.cpu().numpy()]).astype(np.float32)
    init = [numpy_helper.from_array(table, f"{name}.table"),
            numpy_helper.from_array(values.astype(np.uint8), f"{name}.value_index"),
            numpy_helper.from_array(gaps.astype(np.uint8), f"{name}.gap"),
            numpy_helper.from_array(np.array(code.shape, dtype=np.int64), f"{name}.shape"),
            numpy_helper.from_array(np.array([np.prod(code.shape)], dtype=np.int64),
                                    f"{name}.numel")]
    if code.bias is not None:
        bias = code.bias.cpu().numpy().astype(np.float32)
        init.append(numpy_helper.from_array(bias, f"{name}.bias"))
    t = f"{name}."  # prefix of the intermediate tensors
    nodes = [
        helper.make_node("Cast", [f"{name}.gap"], [t + "gap64"], to=TensorProto.INT64),
        helper.make_node("Add", [t + "gap64", "one"], [t + "step"]),
        helper.make_node("CumSum", [t + "step", "axis0"], [t + "end"]),
        helper.make_node("Sub", [t + "end", "one"], [t + "positions"]),
        helper.make_node("Cast", [f"{name}.value_index"], [t + "index64"], to=TensorProto.INT64),
        helper.make_node("Gather", [f"{name}.table", t + "index64"], [t + "values"]),
        helper.make_node("ConstantOfShape", [f"{name}.numel"], [t + "zeros"],
                         value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])),
        helper.make_node("ScatterElements", [t + "zeros", t + "positions", t + "values"],
                         [t + "flat"], axis=0),
        helper.make_node("Reshape", [t + "flat", f"{name}.shape"], [f"{name}.weight"]),
    ]
    return init, nodes


def weight_node(step: str, x: str, y: str, conv: bool, bias: bool = True) -> onnx.NodeProto:
    """The Conv or Gemm node of layer ``step``, reading the initializers ``<step>.weight`` and
    (with ``bias``) ``<step>.bias``."""
    inputs = [x, f"{step}.weight"] + ([f"{step}.bias"] if bias else [])
    if conv:
        return helper.make_node("Conv", inputs, [y], name=step)
    return helper.make_node("Gemm", inputs, [y], name=step, transB=1)  # x @ W.T + b


LayerBuilder = Callable[[str, str, str], tuple[list[onnx.TensorProto], list[onnx.NodeProto]]]


def chain_model(name: str, steps: list[str], layer: LayerBuilder,
                initializers: list[onnx.TensorProto] | None = None) -> onnx.ModelProto:
    """A checked ONNX model running ``steps`` (``chain.forward_chain``) from ``digits``
    (B, 1, 28, 28) fp32 to ``scores`` (B, 10): ``maxpool``, ``relu`` and ``flatten`` are built
    here, and ``layer(step, x, y)`` gives the initializers and nodes of every layer."""
    initializers, nodes, x = list(initializers or []), [], INPUT
    for i, step in enumerate(steps):
        y = OUTPUT if i == len(steps) - 1 else f"x{i}"
        if step == "maxpool":
            nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2]))
        elif step == "relu":
            nodes.append(helper.make_node("Relu", [x], [y]))
        elif step == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [y], axis=1))
        else:
            init, more = layer(step, x, y)
            initializers += init
            nodes += more
        x = y
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 10])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="dl-course")
    onnx.checker.check_model(model)
    return model


def onnx_model(architecture: str, layers: dict[str, EncodedLayer]) -> onnx.ModelProto:
    """The ONNX model of an encoded ``architecture`` (a name of ``zoo.MODELS``), its steps those of
    the float model's forward pass: input ``digits`` (B, 1, 28, 28) fp32, output ``scores``
    (B, 10). Every layer of the architecture must be in ``layers``, with its weight's shape."""
    model = build_model(architecture)
    steps = forward_chain(model)
    expected = {name: tuple(model.get_submodule(name).weight.shape)
                for name in layers_in_order(steps)}
    given = {name: code.shape for name, code in layers.items()}
    if given != expected:
        raise ValueError(f"{architecture} has the layers {expected} (weight shapes), the encoding "
                         f"{given}")

    def layer(step: str, x: str, y: str) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
        init, decode = _decoding(step, layers[step])
        code = layers[step]
        return init, decode + [weight_node(step, x, y, len(code.shape) == 4, code.bias is not None)]

    constants = [numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
                 numpy_helper.from_array(np.array(0, dtype=np.int64), "axis0")]
    return chain_model(architecture, steps, layer, constants)


def export_onnx(path: str | Path, architecture: str, layers: dict[str, EncodedLayer]) -> int:
    """Write the ONNX file of an encoded model; returns its bytes."""
    data = onnx_model(architecture, layers).SerializeToString()
    Path(path).write_bytes(data)
    return len(data)
