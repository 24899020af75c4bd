"""int8 through ONNX Runtime's quantizer (course_utils.onnx_int8): sizes and accuracies, never
speeds."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from course_utils import pretrained
from course_utils.gap import GapNet
from course_utils.onnx_int8 import (
    DigitReader,
    cpu_features,
    export_float,
    features_line,
    features_short,
    has_vnni,
    operators,
    ort_accuracy,
    ort_scores,
    ort_seconds,
    quantize_int8,
    session,
)
from course_utils.zoo import build_model

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni
bugs\t\t: spectre_v1
"""


def test_cpu_features_from_the_flags_line():
    features = cpu_features(CPUINFO)
    assert features == {"AVX2": True, "AVX-512": True, "AVX-512 VNNI": True, "AVX-VNNI": False,
                        "AMX-INT8": False}
    assert has_vnni(features)
    assert (features_line(features)
            == "CPU: AVX2 yes, AVX-512 yes, AVX-512 VNNI yes, AVX-VNNI no, AMX-INT8 no")
    avx2_only = cpu_features("flags : fpu sse4_2 avx avx2 fma\n")
    assert avx2_only["AVX2"] and not has_vnni(avx2_only)
    assert has_vnni(cpu_features("flags : avx2 avx_vnni\n"))
    assert cpu_features("processor : 0\n") is None and not has_vnni(None)
    assert "unknown" in features_line(None)
    # this machine's, whatever it has
    assert cpu_features() is None or set(cpu_features()) == set(features)


def test_digit_reader_batches_then_none():
    reader = DigitReader(torch.zeros(250, 1, 28, 28), batch_size=100)
    sizes = [batch["digits"].shape[0] for batch in iter(reader.get_next, None)]
    assert sizes == [100, 100, 50] and reader.get_next() is None
    reader.rewind()
    assert reader.get_next()["digits"].dtype == np.float32


@pytest.mark.parametrize("architecture", ["lenet5", "lenet300"])
def test_float_export_computes_what_pytorch_computes(tmp_path, architecture):
    torch.manual_seed(0)
    model = build_model(architecture).eval()
    path = tmp_path / "model.onnx"
    size = export_float(path, model)
    # fp32, dense
    assert size == path.stat().st_size > 4 * sum(p.numel() for p in model.parameters())
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    got = ort_scores(session(path), x, batch_size=2)
    assert got.shape == (5, 10) and torch.allclose(got, expected, atol=1e-5)


def test_float_export_follows_any_chain_of_layers(tmp_path):
    """A nested model, a layer without bias and a ReLU after a pooling: the export runs the model's
    own steps; a model that is not such a chain is refused by name."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(4 * 13 * 13, 10, bias=False))).eval()
    path = tmp_path / "nested.onnx"
    export_float(path, model)
    assert operators(path) == ["Conv", "Flatten", "Gemm", "MaxPool", "Relu"]
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(ort_scores(session(path), x), expected, atol=1e-5)
    with pytest.raises(ValueError, match="amin"):
        export_float(path, GapNet())


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, mnist):
    """Both reference models in fp32 and int8 ONNX files, calibrated on 1000 validation digits."""
    folder = tmp_path_factory.mktemp("int8")
    calibration = mnist.val[list(range(1000))][0]
    files = {}
    for architecture in ["lenet5", "lenet300"]:
        fp32, int8 = folder / f"{architecture}.onnx", folder / f"{architecture}.int8.onnx"
        files[architecture] = (export_float(fp32, pretrained(architecture)), fp32,
                               quantize_int8(fp32, int8, calibration), int8)
    return files


@pytest.mark.parametrize("architecture", ["lenet5", "lenet300"])
def test_int8_is_smaller_and_as_accurate(quantized, mnist, architecture):
    """The targets of notebook 14: a file at least 3.5x smaller, at most 0.1 points of test accuracy
    lost."""
    fp32_bytes, fp32, int8_bytes, int8 = quantized[architecture]
    assert int8_bytes == int8.stat().st_size and fp32_bytes / int8_bytes >= 3.5
    assert not list(int8.parent.glob("*.prepared.onnx"))  # the intermediate file is removed
    x, y = mnist.test[list(range(len(mnist.test)))]
    drop = 100 * (ort_accuracy(session(fp32), x, y) - ort_accuracy(session(int8), x, y))
    assert drop <= 0.1, f"{architecture}: {drop:.2f} points lost"
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(operators(int8))  # the QDQ format


def test_onnx_runtime_fuses_qdq_into_integer_kernels(quantized, tmp_path):
    """With the ReLU before the pooling, LeNet-5 runs in integers from its first layer to its last:
    no fp32 pooling between a DequantizeLinear and a QuantizeLinear."""
    _, _, _, int8 = quantized["lenet5"]
    session(int8, optimized_path=tmp_path / "optimized.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert {"QLinearConv", "QGemm"} <= set(ops)
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 1


def test_reduce_range_is_a_choice(tmp_path, mnist):
    """7-bit weights (ONNX Runtime's advice without VNNI) also keep LeNet-300-100's accuracy."""
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    export_float(fp32, pretrained("lenet300"))
    quantize_int8(fp32, int8, mnist.val[list(range(500))][0], reduce_range=True)
    x, y = mnist.test[list(range(2000))]
    assert ort_accuracy(session(int8), x, y) >= ort_accuracy(session(fp32), x, y) - 0.005


def test_seconds_are_positive(quantized):
    sess = session(quantized["lenet300"][3])
    assert 0 < ort_seconds(sess, 1, repeats=3, warmup=1) < 1
    assert 0 < ort_seconds(sess, 256, repeats=2, warmup=1) < 10


def test_features_short():
    assert features_short(cpu_features(CPUINFO)) == "AVX2 + AVX-512 + AVX-512 VNNI"
    assert features_short(cpu_features("flags : fpu sse2\n")) == "none of them"
    assert features_short(None) == "unknown"
