"""The compact model file, its ONNX export, and the pruning and sharing steps that feed them
(notebook 13)."""

import struct
import zlib

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.compact import (
    MAGIC,
    CompactFileError,
    checked_body,
    compact_bytes,
    file_fields,
    load_compact,
    parse_compact,
    part_bytes,
    write_compact,
)
from course_utils.deep_compression import EncodedLayer, decode_model, encode_model, share_pruned
from course_utils.onnx_export import export_onnx, onnx_model
from course_utils.pruning import (
    HAN_SPARSITY,
    model_kept_fraction,
    prunable_weights,
    pruned_copy,
    scale_profile,
)
from course_utils.widgets import compression_explorer
from course_utils.zoo import build_model

BITS = {"lenet300": {"fc1": 6, "fc2": 6, "fc3": 6},
        "lenet5": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}}


def compressed(architecture: str, use_huffman: bool,
               position_bits: int = 5) -> tuple[torch.nn.Module, dict[str, EncodedLayer]]:
    """A randomly initialised model pruned to Han et al.'s sparsities, shared and encoded."""
    torch.manual_seed(0)
    model = pruned_copy(build_model(architecture), HAN_SPARSITY[architecture])
    shared = share_pruned(model, BITS[architecture])
    return shared, encode_model(shared, list(BITS[architecture]), position_bits, use_huffman)


@pytest.fixture(scope="module")
def lenet300_file() -> bytes:
    return compact_bytes("lenet300", compressed("lenet300", use_huffman=True)[1])


def assert_same_layer(a: EncodedLayer, b: EncodedLayer) -> None:
    assert ((a.shape, a.count, a.value_bits, a.position_bits)
            == (b.shape, b.count, b.value_bits, b.position_bits))
    assert ((a.values, a.positions, a.value_lengths, a.position_lengths)
            == (b.values, b.positions, b.value_lengths, b.position_lengths))
    assert torch.equal(a.codebook, b.codebook)
    assert (a.bias is None and b.bias is None) or torch.equal(a.bias, b.bias)


def test_layer_record_by_hand():
    code = EncodedLayer(name="fc", shape=(2, 3), count=2, value_bits=2, position_bits=2,
                        codebook=torch.tensor([0.5, -1.0]), values=b"\x60", positions=b"\x10",
                        value_lengths=None, position_lengths=None, bias=None)
    expected = (b"\x02fc"                              # name
                + b"\x02" + b"\x02\0\0\0" + b"\x03\0\0\0"  # 2 dimensions: 2, 3
                # 2 entries, 2 + 2 bits, fixed width and no bias
                + b"\x02\0\0\0" + b"\x02\x02" + b"\x00"
                + b"\x02\0" + struct.pack("<2f", 0.5, -1.0)  # codebook
                + b"\x01\0\0\0\x60" + b"\x01\0\0\0\x10")  # value and position streams
    assert code.to_bytes() == expected
    assert code.nbytes() == {"values": 1, "positions": 1, "tables": 0, "codebook": 8, "bias": 0,
                             "header": len(expected) - 10}


@pytest.mark.parametrize("architecture", ["lenet300", "lenet5"])
@pytest.mark.parametrize("use_huffman", [False, True])
def test_round_trip_gives_back_every_field_and_weight(tmp_path, architecture, use_huffman):
    shared, layers = compressed(architecture, use_huffman)
    path = tmp_path / "model.dlcz"
    size = write_compact(path, architecture, layers)
    assert size == path.stat().st_size
    name, read = parse_compact(path.read_bytes())
    assert name == architecture and list(read) == list(layers)
    for layer in layers:
        assert_same_layer(read[layer], layers[layer])
    model = load_compact(path)
    for layer in layers:
        assert torch.equal(getattr(model, layer).weight, getattr(shared, layer).weight.detach())
        assert torch.equal(getattr(model, layer).bias, getattr(shared, layer).bias.detach())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), shared(x), atol=1e-5)


def test_the_parts_add_up_to_the_file_and_the_file_fields_to_their_sizes(tmp_path):
    _, layers = compressed("lenet300", use_huffman=True)
    size = write_compact(tmp_path / "m.dlcz", "lenet300", layers)
    parts = part_bytes("lenet300", layers)
    assert sum(parts.values()) == size == (tmp_path / "m.dlcz").stat().st_size
    # magic, version (1), architecture (1 + 8), layer count (1), CRC-32 (4)
    assert parts["file"] == 4 + 1 + 1 + len("lenet300") + 1 + 4
    # per layer: name (1 + 3), 2 dimensions (1 + 8), count, widths, flags, codebook size (9),
    # the two streams' lengths (8)
    assert parts["header"] == 3 * (4 + 9 + 9 + 8)
    for part in ("values", "positions", "tables", "codebook", "bias"):
        assert parts[part] == sum(code.nbytes()[part] for code in layers.values())
    assert parts["bias"] == 4 * (300 + 100 + 10)
    fields = file_fields("lenet300", layers)
    assert [part for part, _ in fields[:3]] == ["file"] * 3 and fields[-1][0] == "file"


def test_a_layer_stored_under_another_name_is_refused():
    _, layers = compressed("lenet300", use_huffman=False)
    with pytest.raises(ValueError, match="the layer encoded as 'fc1' is stored under 'conv1'"):
        compact_bytes("lenet300", {"conv1": layers["fc1"]})


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_altered_byte_is_refused(lenet300_file, data):
    offset = data.draw(st.integers(0, len(lenet300_file) - 1))
    flip = data.draw(st.integers(1, 255))
    altered = bytearray(lenet300_file)
    altered[offset] ^= flip
    with pytest.raises(CompactFileError, match="not a compact model file|CRC-32"):
        parse_compact(bytes(altered))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_truncation_is_refused(lenet300_file, data):
    length = data.draw(st.integers(0, len(lenet300_file) - 1))
    with pytest.raises(CompactFileError, match="cut short|not a compact model file"):
        parse_compact(lenet300_file[:length])


def test_error_says_how_to_restore(tmp_path, lenet300_file):
    path = tmp_path / "model.dlcz"
    path.write_bytes(lenet300_file[:-100])
    with pytest.raises(CompactFileError, match="CRC-32 does not match.*write_compact"):
        load_compact(path)


def test_valid_checksum_but_unknown_version_or_extra_bytes(lenet300_file):
    def resealed(body: bytes) -> bytes:
        return body + struct.pack("<I", zlib.crc32(body))

    body = lenet300_file[:-4]
    with pytest.raises(CompactFileError, match="version 9"):
        parse_compact(resealed(body[:4] + b"\x09" + body[5:]))
    with pytest.raises(CompactFileError, match="3 unexpected bytes"):
        parse_compact(resealed(body + b"abc"))


def test_decode_model_refuses_an_incomplete_encoding():
    _, layers = compressed("lenet300", use_huffman=False)
    del layers["fc3"]
    with pytest.raises(ValueError, match="fc3.weight"):
        decode_model("lenet300", layers)


@pytest.mark.parametrize("architecture", ["lenet300", "lenet5"])
def test_onnx_runtime_computes_what_pytorch_computes(tmp_path, architecture):
    shared, layers = compressed(architecture, use_huffman=True, position_bits=8)
    path = tmp_path / "model.onnx"
    size = export_onnx(path, architecture, layers)
    assert size == path.stat().st_size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        expected = shared(x).numpy()
    (scores,) = session.run(None, {"digits": x.numpy()})
    assert scores.shape == (5, 10)
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_onnx_stores_one_byte_per_entry_and_no_dense_weight():
    _, layers = compressed("lenet5", use_huffman=False, position_bits=8)
    sizes = {init.name: len(init.raw_data)
             for init in onnx_model("lenet5", layers).graph.initializer}
    for name, code in layers.items():
        assert sizes[f"{name}.value_index"] == sizes[f"{name}.gap"] == code.count
        assert sizes[f"{name}.table"] == 4 * (code.codebook.numel() + 1)
    assert max(sizes.values()) < 400_000  # fc1 alone has 400,000 weights: 1.6 MB in fp32


def test_onnx_refuses_wide_fields_and_unknown_architectures():
    _, layers = compressed("lenet300", use_huffman=False, position_bits=9)
    with pytest.raises(ValueError, match="at most 8 bits"):
        onnx_model("lenet300", layers)
    with pytest.raises(ValueError, match="120, 784"):  # the MLP's fc1 is not LeNet-300-100's
        onnx_model("mlp", layers)
    with pytest.raises(ValueError, match="fc3"):  # a layer the architecture runs is missing
        onnx_model("lenet300", {name: code for name, code in layers.items() if name != "fc3"})
    with pytest.raises(ValueError, match="amin"):  # GapNet is not a chain of layers
        onnx_model("gap", layers)
    with pytest.raises(ValueError, match="unknown model"):
        onnx_model("vgg", layers)


def test_share_pruned_keeps_zeros_and_uses_k_values():
    torch.manual_seed(0)
    pruned = pruned_copy(build_model("lenet300"), dict.fromkeys(["fc1", "fc2", "fc3"], 0.9))
    shared = share_pruned(pruned, {"fc1": 3, "fc2": 3, "fc3": 3})
    for name in ["fc1", "fc2", "fc3"]:
        before, after = getattr(pruned, name).weight, getattr(shared, name).weight.detach()
        assert torch.equal(after == 0, before == 0)
        assert after[after != 0].unique().numel() <= 2**3 - 1
    assert model_kept_fraction(pruned) == pytest.approx(0.1, abs=1e-4)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 0.99))
def test_scale_profile_hits_the_overall_sparsity(sparsity):
    sizes = {name: w.numel() for name, w in prunable_weights(build_model("lenet5")).items()}
    profile = scale_profile(HAN_SPARSITY["lenet5"], sizes, sparsity)
    kept = sum((1 - profile[name]) * n for name, n in sizes.items()) / sum(sizes.values())
    assert kept == pytest.approx(1 - sparsity, abs=1e-9)
    assert all(0.0 <= s < 1.0 for s in profile.values())


def test_scale_profile_by_hand():
    profile, sizes = {"a": 0.9, "b": 0.5}, {"a": 900, "b": 100}  # keeps 90 + 50 = 14% of 1000
    assert scale_profile(profile, sizes, 0.86) == pytest.approx({"a": 0.9, "b": 0.5})
    # twice as many kept; b capped
    assert scale_profile(profile, sizes, 0.72) == pytest.approx({"a": 0.8, "b": 0.0})
    assert scale_profile(profile, sizes, 0.0) == pytest.approx({"a": 0.0, "b": 0.0})


def test_compression_explorer_measures_each_setting_once(monkeypatch):
    monkeypatch.setattr("matplotlib.pyplot.show", lambda: None)
    calls = []

    def measure(sparsity: float, bits: int) -> tuple[int, float]:
        calls.append((sparsity, bits))
        return int(1000 * (1 - sparsity) * bits), 0.9

    measured = {(0.5, 4): (2000, 0.95)}
    explorer = compression_explorer(measure, (0.5, 0.0, 0.9, 0.1), (4, 2, 8, 1), measured)
    assert calls == []  # the initial setting was measured before
    explorer.children[1].value = 3
    explorer.children[1].value = 4
    explorer.children[1].value = 3
    assert calls == [(0.5, 3)]
    assert measured[(0.5, 3)] == (1500, 0.9)


def test_checked_body_returns_the_bytes_before_the_trailer_and_refuses_damage():
    body = MAGIC + b"\x01\x06lenet5\x00"
    data = body + struct.pack("<I", zlib.crc32(body))
    assert checked_body(data) == body
    for damaged, message in [(data[:-1], "CRC-32"),
                             (b"XXXX" + data[4:], "not a compact model file"),
                             (data[:7], "cut short"), (data[:-4] + b"\0\0\0\0", "CRC-32")]:
        with pytest.raises(CompactFileError, match=message):
            checked_body(damaged)
