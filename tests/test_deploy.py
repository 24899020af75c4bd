"""The C program of deploy/ (``make deploy``): it reads the compact model files of notebook 13 and
computes what PyTorch computes with ``compact.load_compact``, runs notebook 11's integer-only MLP
bit for bit as ``FixedPointMLP``, and refuses every damaged input. Also ``course_utils.deploy``,
which builds and runs it from Python."""

import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_utils import deploy, pretrained
from course_utils.compact import compact_bytes, load_compact, write_compact
from course_utils.data import prepare_mnist
from course_utils.deep_compression import EncodedLayer, encode_layer, encode_model, share_pruned
from course_utils.fixed_point import FixedPointMLP
from course_utils.paths import PROJECT_ROOT
from course_utils.pruning import HAN_SPARSITY, pruned_copy
from course_utils.sharing import share_layer
from course_utils.zoo import build_model

DEPLOY = PROJECT_ROOT / "deploy"
FLAGS = ("-std=c99", "-pedantic", "-O2", "-Wall", "-Wextra", "-Werror")
BITS = {"lenet300": {"fc1": 6, "fc2": 6, "fc3": 6},
        "lenet5": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}}
TEST_DIGITS = 10_000  # all of MNIST's test set: about 10 s of C for both networks


def needs_compiler() -> list[str]:
    """$CC, cc, gcc or clang (deploy.find_compiler); a skip without one, a failure in CI."""
    cc = deploy.find_compiler()
    if cc is None:
        if os.environ.get("CI"):
            pytest.fail("no C compiler (cc, gcc or clang) found, and CI is set: the C deployment "
                        "must be tested there")
        pytest.skip("no C compiler (cc, gcc or clang) found: the C deployment program cannot be "
                    "built")
    return cc


@pytest.fixture(scope="module")
def dlcz(tmp_path_factory) -> Path:
    """The program, built from deploy/ into a temporary folder (warnings are errors)."""
    needs_compiler()
    binary = tmp_path_factory.mktemp("deploy") / "dlcz"
    return deploy.compile_c(sorted(DEPLOY.glob("*.c")), binary, flags=FLAGS)


def run(binary: Path, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """Uncompressed IDX files, as ``prepare_mnist`` unpacks them."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path, label_path = folder / "images-idx3-ubyte", folder / "labels-idx1-ubyte"
    image_path.write_bytes(struct.pack(">IIII", 0x803, len(images), 28, 28)
                           + images.astype(np.uint8).tobytes())
    label_path.write_bytes(struct.pack(">II", 0x801, len(labels))
                           + labels.astype(np.uint8).tobytes())
    return image_path, label_path


def normalised(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """As ``data.DigitDataset`` does: (N, 1, 28, 28) of (p / 255 - mean) / std in fp32."""
    return torch.from_numpy(images).float().div_(255).sub_(mean).div_(std).unsqueeze(1)


def torch_logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(batch) for batch in x.split(1000)]).numpy()


def c_logits(binary: Path, model_path: Path, images: Path, mean: float, std: float,
             n: int) -> np.ndarray:
    result = run(binary, "--logits", "--images", images, "--mean", repr(mean), "--std", repr(std),
                 "-n", n, model_path)
    assert result.returncode == 0, result.stderr
    return np.loadtxt(result.stdout.splitlines(), dtype=np.float32, ndmin=2)


def reseal(body: bytes) -> bytes:
    """A file with a valid CRC-32 around any body: what a checksum alone cannot catch."""
    return body + struct.pack("<I", zlib.crc32(body))


def run_resealed(dlcz: Path, digits, file_bytes: bytes, path: Path,
                 data) -> subprocess.CompletedProcess:
    """Alter one byte of ``file_bytes`` after its magic, make the CRC-32 valid again, write it to
    ``path`` and run the C program's logits on 8 digits; it must exit 0 or 1, never crash."""
    body = bytearray(file_bytes[:-4])
    body[data.draw(st.integers(4, len(body) - 1))] ^= data.draw(st.integers(1, 255))
    path.write_bytes(reseal(bytes(body)))
    result = run(dlcz, "--logits", "--images", digits[1], "-n", 8, "--mean", 0.25, "--std", 0.5,
                 path)
    assert result.returncode in (0, 1), result.stderr
    return result


def synthetic(architecture: str, position_bits: int, use_huffman: bool, k: int = 7,
              keep: float = 0.1, seed: int = 0) -> tuple[torch.nn.Module, dict[str, EncodedLayer]]:
    """A random model whose layers keep about ``keep`` of their weights and share ``k`` values,
    encoded. (Hand-made codebooks instead of k-means: as valid for the format, and instant.)"""
    torch.manual_seed(seed)
    model = build_model(architecture)
    for layer in model.children():
        weight = layer.weight.detach()
        mask = torch.rand(weight.shape) < keep
        share_layer(layer, torch.linspace(-1, 1, k) * weight.abs().max(),
                    torch.randint(0, k, weight.shape), mask)
    names = [name for name, _ in model.named_children()]
    return model.eval(), encode_model(model, names, position_bits, use_huffman)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[np.ndarray, Path, Path]:
    """64 random 28x28 digits with labels, as IDX files."""
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    labels = generator.integers(0, 10, 64, dtype=np.uint8)
    return images, *write_idx(tmp_path_factory.mktemp("digits"), images, labels)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    """A valid compact LeNet-300-100 file of a few kB: 1% of the weights kept, 3 shared values,
    Huffman."""
    path = tmp_path_factory.mktemp("small") / "small.dlcz"
    write_compact(path, "lenet300", synthetic("lenet300", 8, True, k=3, keep=0.01)[1])
    return path


# ---- the same numbers as PyTorch ----


@pytest.mark.parametrize("architecture, use_huffman, position_bits, k, keep", [
    ("lenet300", True, 8, 7, 0.1),
    ("lenet300", False, 3, 7, 0.1),   # gaps above 8: filler entries
    ("lenet300", False, 0, 3, 0.3),   # 0-bit positions: every skipped weight is a filler
    ("lenet300", True, 12, 1, 0.1),   # one shared value: a one-symbol Huffman code
    ("lenet5", True, 3, 255, 0.2),
    ("lenet5", False, 8, 31, 0.5),
    ("lenet5", True, 5, 2, 1.0),      # no pruning at all
])
def test_synthetic_models_agree_with_pytorch(tmp_path, dlcz, digits, architecture, use_huffman,
                                             position_bits, k, keep):
    images, image_path, _ = digits
    path = tmp_path / "model.dlcz"
    write_compact(path, architecture,
                  synthetic(architecture, position_bits, use_huffman, k, keep)[1])
    mean, std = 0.25, 0.5  # not the defaults: the options are honoured
    expected = torch_logits(load_compact(path), normalised(images, mean, std))
    got = c_logits(dlcz, path, image_path, mean, std, len(images))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    assert np.array_equal(got.argmax(1), expected.argmax(1))


@pytest.fixture(scope="module", params=["lenet300", "lenet5"])
def shipped(request, tmp_path_factory) -> tuple[str, Path]:
    """The shipped trained model, pruned to Han et al.'s sparsities in one shot (no retraining) and
    shared with notebook 13's bits by k-means (no fine-tuning): a valid file, quickly."""
    architecture = request.param
    model = share_pruned(pruned_copy(pretrained(architecture), HAN_SPARSITY[architecture]),
                         BITS[architecture])
    path = tmp_path_factory.mktemp("shipped") / f"{architecture}.dlcz"
    write_compact(path, architecture,
                  encode_model(model, list(BITS[architecture]), position_bits=8, use_huffman=True))
    return architecture, path


def test_shipped_models_agree_with_pytorch_on_the_test_set(dlcz, mnist, shipped):
    architecture, path = shipped
    raw = prepare_mnist() / "MNIST" / "raw"
    x, y = mnist.test[list(range(TEST_DIGITS))]
    expected = torch_logits(load_compact(path), x)
    got = c_logits(dlcz, path, raw / "t10k-images-idx3-ubyte", mnist.train.mean, mnist.train.std,
                   TEST_DIGITS)
    assert np.array_equal(got.argmax(1), expected.argmax(1)), (
        f"{(got.argmax(1) != expected.argmax(1)).sum()} digits differ")
    assert np.abs(got - expected).max() < 1e-4

    n = 1000  # the other two outputs, on fewer digits
    predictions = run(dlcz, "--data", raw, "-n", n, path)
    assert predictions.returncode == 0, predictions.stderr
    assert [int(line) for line in predictions.stdout.split()] == expected[:n].argmax(1).tolist()
    summary = run(dlcz, "--accuracy", "--data", raw, "-n", n, path)
    assert summary.returncode == 0, summary.stderr
    correct = int((torch.from_numpy(expected[:n]).argmax(1) == y[:n]).sum())
    assert f"{architecture}: accuracy {correct / n:.4f} ({correct} of {n} digits)" in summary.stdout
    assert re.search(r"time per digit: [0-9.]+ ms", summary.stdout)


def test_defaults_are_the_course_data_and_its_normalisation(dlcz, mnist, shipped):
    """Run from the project root without options: data/mnist/MNIST/raw and load_mnist()'s mean and
    std."""
    _, path = shipped
    n = 200
    expected = torch_logits(load_compact(path), mnist.test[list(range(n))][0])
    result = run(dlcz, "--logits", "-n", n, path, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    got = np.loadtxt(result.stdout.splitlines(), dtype=np.float32)
    assert np.abs(got - expected).max() < 1e-4


def test_info_counts_the_kept_weights(tmp_path, dlcz):
    model, layers = synthetic("lenet5", 4, True, k=15, keep=0.2)
    path = tmp_path / "model.dlcz"
    size = write_compact(path, "lenet5", layers)
    result = run(dlcz, "--info", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"lenet5, format version 1, {size} bytes")
    for name in layers:
        weight = getattr(model, name).weight
        assert re.search(rf"^{name} .*: {int((weight != 0).sum())} of {weight.numel()} weights "
                         rf"kept, 15 values shared, {layers[name].count} entries", result.stdout,
                         re.M)


def test_help(dlcz):
    result = run(dlcz, "--help")
    assert result.returncode == 0 and "--accuracy" in result.stdout and "--mean" in result.stdout


# ---- notebook 11's integer-only MLP, bit for bit ----


@pytest.fixture(scope="module")
def calibration(mnist) -> torch.Tensor:
    return mnist.train[list(range(1000))][0]  # (1000, 1, 28, 28), as notebook 11 calibrates


@pytest.mark.parametrize("bits, dynamic, digits", [
    (8, True, TEST_DIGITS),  # notebook 11's 8-bit network on every test digit
    (16, True, 2000),        # 16-bit words: weights stored as i16, 32-bit biases, the int64 sum
    (4, True, 2000),         # negative fractional bits: steps larger than 1
    (6, False, 2000),        # one format for everything (global fixed point)
])
def test_fixed_point_mlp_is_bit_exact(tmp_path, dlcz, mnist, calibration, bits, dynamic, digits):
    model = FixedPointMLP(pretrained("lenet300"), bits, calibration, dynamic=dynamic)
    path = tmp_path / "lenet300.dlfx"
    size = deploy.write_fixed(path, model)
    assert size == path.stat().st_size == 8 + 4 + sum(
        6 + (1 if bits <= 8 else 2) * w.numel() + 4 * w.shape[0]
        for w in model.int_weights.values())
    x, _ = mnist.test[list(range(digits))]
    expected = model(x).numpy()  # (digits, 10) int64
    raw = prepare_mnist() / "MNIST" / "raw"
    got = deploy.c_logits(path, digits, raw / "t10k-images-idx3-ubyte", mnist.train.mean,
                          mnist.train.std, binary=dlcz)
    assert got.dtype == np.int64 and got.shape == expected.shape
    assert np.array_equal(got, expected), (
        f"{(got != expected).any(1).sum()} of {digits} digits differ")
    # Python reads it back
    assert np.array_equal(deploy.run_fixed(deploy.read_fixed(path), x).numpy(), expected)


def test_fixed_point_defaults_and_accuracy(tmp_path, dlcz, mnist, calibration):
    """From the project root with no options: the course's digits and normalisation; --accuracy and
    --info."""
    model = FixedPointMLP(pretrained("lenet300"), 8, calibration)
    path = tmp_path / "q8.dlfx"
    size = deploy.write_fixed(path, model)
    n = 500
    x, y = mnist.test[list(range(n))]
    expected = model(x)
    result = run(dlcz, "--logits", "-n", n, path, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.loadtxt(result.stdout.splitlines(), dtype=np.int64), expected.numpy())
    summary = run(dlcz, "--accuracy", "-n", n, path, cwd=PROJECT_ROOT)
    correct = int((expected.argmax(1) == y).sum())
    assert f"fixed-point: accuracy {correct / n:.4f} ({correct} of {n} digits)" in summary.stdout
    info = run(dlcz, "--info", path)
    assert info.returncode == 0 and info.stdout.startswith("fixed-point MLP, 8-bit words, format "
                                                           f"version 1, {size} bytes")
    frac = model.frac
    shift = frac["input"] + frac["fc1.weight"] - frac["fc1.out"]
    assert f"input: {frac['input']} fractional bits" in info.stdout
    assert (f"layer 1 (300, 784): weights {frac['fc1.weight']}, output {frac['fc1.out']} "
            f"fractional bits, sums shifted right by {shift}, then ReLU") in info.stdout


def tiny_fixed(bits: int = 8, frac: tuple[int, int, int] = (4, 6, 3),
               seed: int = 0) -> deploy.FixedFile:
    """A random 784-16-10 integer network (one ReLU), quick to write, run and damage."""
    generator = torch.Generator().manual_seed(seed)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    layers = [deploy.FixedLayer(torch.randint(lo, hi, (out, inputs), generator=generator),
                                torch.randint(-(2 ** (2 * bits - 2)), 2 ** (2 * bits - 2), (out,),
                                              generator=generator),
                                frac[1], frac[2]) for out, inputs in [(16, 784), (10, 16)]]
    return deploy.FixedFile(bits, frac[0], layers)


@pytest.mark.parametrize("bits, frac",
                         [(8, (4, 6, 3)), (12, (2, 9, -1)), (3, (0, 1, 12)), (16, (10, 14, 7))])
def test_fixed_point_rounding_and_saturation_on_random_networks(tmp_path, dlcz, digits, bits, frac):
    """Random integers saturate often and round both ways: shifts of 7 and 12 bits, one of -11
    (a left shift), 17 bits with 16-bit words."""
    images, image_path, _ = digits
    content = tiny_fixed(bits, frac)
    path = tmp_path / "tiny.dlfx"
    deploy.write_fixed(path, content)
    expected = deploy.run_fixed(content, normalised(images, 0.25, 0.5)).numpy()
    got = deploy.c_logits(path, len(images), image_path, 0.25, 0.5, binary=dlcz)
    assert np.array_equal(got, expected)


def test_fixed_file_round_trip_and_limits(calibration):
    model = FixedPointMLP(pretrained("lenet300"), 8, calibration)
    content = deploy.parse_fixed(deploy.fixed_bytes(model))
    assert (content.bits, content.frac_input) == (8, model.frac["input"])
    for layer, name in zip(content.layers, model.names, strict=True):
        assert (torch.equal(layer.weight, model.int_weights[name])
                and torch.equal(layer.bias, model.int_biases[name]))
        assert (layer.frac_weight, layer.frac_out) == (model.frac[f"{name}.weight"],
                                                       model.frac[f"{name}.out"])
    good = tiny_fixed()
    bad = {
        "17-bit words": replace(good, bits=17),
        "a weight too wide":
            replace(good, layers=[replace(good.layers[0], weight=good.layers[0].weight * 2),
                                  good.layers[1]]),
        "a bias too wide":
            replace(good, layers=[good.layers[0],
                                  replace(good.layers[1], bias=good.layers[1].bias * 4)]),
        "a shift of 63": replace(good, frac_input=60),
        "a left shift of 17":
            replace(good, layers=[replace(good.layers[0], frac_out=27), good.layers[1]]),
        "not 784 inputs":
            replace(good, layers=[replace(good.layers[0], weight=good.layers[0].weight[:, :100]),
                                  good.layers[1]]),
        "9 classes":
            replace(good, layers=[good.layers[0],
                                  replace(good.layers[1], weight=good.layers[1].weight[:9],
                                          bias=good.layers[1].bias[:9])]),
        "no layers": replace(good, layers=[]),
    }
    for case, content in bad.items():
        with pytest.raises(ValueError):
            deploy.fixed_bytes(content)
            pytest.fail(case)


def fixed_damaged(good: bytes) -> dict[str, tuple[bytes, str]]:
    """name: (bytes, what the C program's message must say) for damaged fixed-point files."""
    body = good[:-4]
    layer1 = 8 + 6 + 16 * 784 + 4 * 16  # where layer 2's header starts

    def patched(offset: int, new: bytes) -> bytes:
        return reseal(body[:offset] + new + body[offset + len(new):])

    return {
        "truncated": (good[:-10], "CRC-32 does not match"),
        "altered byte": (good[:100] + bytes([good[100] ^ 1]) + good[101:], "CRC-32 does not match"),
        "magic only": (b"DLFX", "cut short"),
        "wrong version": (patched(4, b"\x02"), "fixed-point version 1"),
        "17-bit words": (patched(5, b"\x11"), "17-bit words"),
        "no layers": (patched(7, b"\x00"), "0 layers"),
        "not 784 inputs": (patched(10, struct.pack("<H", 785)), "reads 785 inputs, not 784"),
        "inputs of layer 2":
            (patched(layer1 + 2, struct.pack("<H", 15)), "layer 2 reads 15 inputs, not 16"),
        "a shift of 130 bits": (patched(6, b"\x7f"), "shifts its sums by 130 bits"),
        "9 classes":
            (reseal(body[:layer1] + struct.pack("<H", 9) + body[layer1 + 2:layer1 + 6 + 9 * 16]
                    + body[layer1 + 6 + 10 * 16:-4]), "9 outputs, not the 10 classes"),
        "extra bytes": (reseal(body + b"xyz"), "3 unexpected bytes"),
        "cut, resealed": (reseal(body[:-3]), "cut short"),
    }


def test_damaged_fixed_files_are_refused(tmp_path, dlcz, digits):
    good = deploy.fixed_bytes(tiny_fixed())
    path = tmp_path / "damaged.dlfx"
    for case, (data, message) in fixed_damaged(good).items():
        path.write_bytes(data)
        result = run(dlcz, "--images", digits[1], path)
        assert (result.returncode == 1 and message in result.stderr
                and result.stdout == ""), (case, result.stderr)
        with pytest.raises(ValueError):
            deploy.parse_fixed(data)


def test_fixed_weight_and_bias_out_of_range_are_refused(tmp_path, dlcz, digits):
    """A resealed file whose integers do not fit the word size: refused by C and by Python."""
    body = deploy.fixed_bytes(tiny_fixed(bits=4))[:-4]
    weight_at, bias_at = 8 + 6, 8 + 6 + 16 * 784
    cases = {"weight": body[:weight_at] + b"\x7f" + body[weight_at + 1:],
             "bias": body[:bias_at] + struct.pack("<i", 1 << 20) + body[bias_at + 4:]}
    for what, altered in cases.items():
        path = tmp_path / f"{what}.dlfx"
        path.write_bytes(reseal(altered))
        result = run(dlcz, "--images", digits[1], path)
        assert (result.returncode == 1 and f"{what} " in result.stderr
                and "does not fit" in result.stderr), result.stderr
        with pytest.raises(ValueError, match="does not fit"):
            deploy.read_fixed(path)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fixed_resealed_alterations_are_refused_or_computed_as_by_python(dlcz, digits, tmp_path,
                                                                         data):
    path = tmp_path / "resealed.dlfx"
    result = run_resealed(dlcz, digits, deploy.fixed_bytes(tiny_fixed(bits=6, frac=(3, 5, 2))),
                          path, data)
    try:
        content = deploy.read_fixed(path)
    except ValueError:
        assert (result.returncode == 1
                and result.stderr.startswith("dlcz: error: ")), "C accepts what Python refuses"
        return
    assert result.returncode == 0, f"C refuses what Python accepts: {result.stderr}"
    expected = deploy.run_fixed(content, normalised(digits[0][:8], 0.25, 0.5)).numpy()
    assert np.array_equal(np.loadtxt(result.stdout.splitlines(), dtype=np.int64, ndmin=2), expected)


# ---- course_utils.deploy: compiler, build, run, parse ----


def test_find_compiler_honours_cc_and_falls_back(monkeypatch):
    cc = needs_compiler()
    monkeypatch.setenv("CC", f"{shutil.which(cc[0])} -O0")  # a command with its own flags
    assert deploy.find_compiler() == [shutil.which(cc[0]), "-O0"]
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert deploy.find_compiler() is not None and deploy.find_compiler()[0] in deploy.COMPILERS
    monkeypatch.setenv("PATH", "")
    assert deploy.find_compiler() is None


def test_no_compiler_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(deploy.NoCompilerError, match="No C compiler found") as err:
        deploy.build(tmp_path / "dlcz", force=True)
    assert "c-compiler" in str(err.value) and "gcc" in str(err.value)
    assert not (tmp_path / "dlcz").exists()


def test_build_only_when_out_of_date(tmp_path):
    needs_compiler()
    sources = tmp_path / "src"
    shutil.copytree(DEPLOY, sources)
    binary = tmp_path / "out" / "dlcz"
    assert not deploy.is_up_to_date(binary, sources)
    assert deploy.build(binary, sources) == binary and binary.exists()
    assert deploy.is_up_to_date(binary, sources)
    built = binary.stat().st_mtime_ns
    deploy.build(binary, sources)
    assert binary.stat().st_mtime_ns == built  # not built again
    os.utime(sources / "dlcz.h")  # a header edited after the build (which is made older)
    os.utime(binary, ns=(built - 10**9, built - 10**9))
    assert not deploy.is_up_to_date(binary, sources)
    deploy.build(binary, sources)
    assert deploy.is_up_to_date(binary, sources) and "--accuracy" in run(binary, "--help").stdout


def test_a_compile_error_is_reported_with_the_compiler_message(tmp_path):
    needs_compiler()
    source = tmp_path / "bad.c"
    source.write_text("int main(void) { return undefined_name; }\n")
    with pytest.raises(deploy.CompileError, match="undefined_name"):
        deploy.compile_c([source], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))


def test_run_parse_and_errors(dlcz, mnist, shipped):
    architecture, path = shipped
    n = 300
    expected = torch_logits(load_compact(path), mnist.test[list(range(n))][0])
    logits = deploy.c_logits(path, n, mean=mnist.train.mean, std=mnist.train.std, binary=dlcz)
    assert logits.dtype == np.float32 and np.abs(logits - expected).max() < 1e-4
    predictions = deploy.c_predictions(path, n, mean=mnist.train.mean, std=mnist.train.std,
                                       binary=dlcz)
    assert np.array_equal(predictions, expected.argmax(1))
    summary = deploy.c_accuracy(path, n, mnist.train.mean, mnist.train.std, binary=dlcz)
    labels = mnist.test[list(range(n))][1].numpy()
    assert ((summary.name, summary.digits, summary.correct)
            == (architecture, n, int((expected.argmax(1) == labels).sum())))
    assert summary.accuracy == pytest.approx(summary.correct / n, abs=1e-4)
    assert 0 < summary.median_seconds < 1 and 0 < summary.mean_seconds < 1
    with pytest.raises(deploy.ProgramError, match="cannot open"):
        deploy.c_logits(path.with_name("absent.dlcz"), binary=dlcz)


def test_parse_accuracy():
    run_ = deploy.parse_accuracy("lenet300: accuracy 0.9834 (9834 of 10000 digits)\n"
                                 "time per digit: 0.0131 ms on average, 0.0129 ms median (batch 1, "
                                 "one thread)\n")
    assert run_ == deploy.CRun("lenet300", 0.9834, 9834, 10000, pytest.approx(1.31e-5),
                               pytest.approx(1.29e-5))
    with pytest.raises(ValueError, match="not the output"):
        deploy.parse_accuracy("3\n7\n")


def test_c_function_reads_a_function_with_its_comment():
    source = deploy.c_function("linear")
    assert source.startswith("/* out (N_out,)") and source.endswith("}")
    assert "void linear(const float *in, const Layer *layer, float *out)" in source
    assert "sum += w->value[j] * in[w->column[j]];" in source and "max_pool2" not in source
    assert deploy.c_function("shift_round", DEPLOY / "fixed.c").count("{") >= 1
    with pytest.raises(ValueError, match="no function"):
        deploy.c_function("no_such_function")


def test_compressed_reference_writes_a_small_file(tmp_path):
    model = deploy.compressed_reference("lenet300")
    size = deploy.write_compressed(tmp_path / "m.dlcz", "lenet300", model)
    assert size == (tmp_path / "m.dlcz").stat().st_size < 40_000
    weight = model.fc1.weight.detach()
    # pruned, 63 values + 0
    assert (weight != 0).float().mean() < 0.1 and len(weight.unique()) <= 2**6


# ---- everything damaged is refused, with a message and exit status 1 (2 for arguments) ----


def damaged_files(small: bytes) -> dict[str, tuple[bytes, str]]:
    """name: (file bytes, what the message must say)."""
    layers = synthetic("lenet300", 8, False, k=3, keep=0.01)[1]
    body = small[:-4]

    def with_layer(name: str, **changes) -> bytes:
        return compact_bytes("lenet300", {**layers, name: replace(layers[name], **changes)})

    # fc3 as (1, 100): PyTorch's copy_ would broadcast it to (10, 100)
    one_row = torch.nn.Linear(100, 1)
    share_layer(one_row, torch.tensor([0.5, -0.5]), torch.randint(0, 2, (1, 100)),
                torch.rand(1, 100) < 0.5)
    flipped = bytearray(small)
    flipped[len(small) // 2] ^= 0x10
    return {
        "empty": (b"", "cut short"),
        "truncated": (small[:-100], "CRC-32 does not match"),
        "altered byte": (bytes(flipped), "CRC-32 does not match"),
        "wrong magic": (b"DLCX" + small[4:], "wrong magic"),
        "not a model at all": (b"\x89PNG\r\n\x1a\n" + bytes(100), "wrong magic"),
        "wrong version": (reseal(body[:4] + b"\x02" + body[5:]), "format version 2"),
        "unknown architecture": (compact_bytes("resnet", layers), "architecture 'resnet'"),
        "architecture not in C": (compact_bytes("mlp", layers), "architecture 'mlp'"),
        "layers of another net":
            (compact_bytes("lenet300", {"conv1": replace(layers["fc1"], name="conv1")}),
             "layer 'conv1'"),
        "missing layer":
            (compact_bytes("lenet300", {n: c for n, c in layers.items() if n != "fc3"}),
             "no layer fc3"),
        "layer twice": (reseal(_twice(layers)), "fc3 appears twice"),
        "wrong shape": (with_layer("fc2", shape=(100, 301)), "dimension 1 is 301"),
        "broadcastable shape":
            (compact_bytes("lenet300", {**layers, "fc3": encode_layer(one_row, 8, False, "fc3")}),
             "dimension 0 is 1"),
        "no bias": (with_layer("fc3", bias=None), "no bias"),
        "extra bytes": (reseal(body + b"abc"), "3 unexpected bytes"),
        "cut inside a layer, resealed": (reseal(body[:-50]), "needs"),
        "value stream too short":
            (with_layer("fc1", values=layers["fc1"].values[:10]), "value stream ends"),
        "value index past the codebook":
            (with_layer("fc1", codebook=layers["fc1"].codebook[:1]), "codebook has only 1"),
        "position past the weights":
            (with_layer("fc3", positions=b"\xff" * len(layers["fc3"].positions)), "past its 1000"),
        "NaN in the codebook":
            (with_layer("fc2", codebook=torch.tensor([0.5, float("nan"), 1.0])), "not a finite"),
        "no prefix code":
            (with_layer("fc3", value_lengths={0: 1, 1: 1, 2: 1}, position_lengths={0: 1},
                        values=b"\0" * 8, positions=b"\0" * 8), "no prefix code"),
        "bits that are no code": (with_layer("fc3", value_lengths={1: 2}, position_lengths={0: 1},
                                             values=b"\xff" * 8, positions=b"\0" * 8), "no code"),
    }


def _twice(layers: dict[str, EncodedLayer]) -> bytes:
    """A body whose layer count says 4, with fc3 written twice."""
    body = b"DLCZ\x01\x08lenet300\x04" + b"".join(c.to_bytes() for c in layers.values())
    return body + layers["fc3"].to_bytes()


@pytest.fixture(scope="module")
def damaged(small_file):
    files = damaged_files(small_file.read_bytes())
    assert sorted(files) == sorted(DAMAGE)
    return files


DAMAGE = ["empty", "truncated", "altered byte", "wrong magic", "not a model at all",
          "wrong version", "unknown architecture", "architecture not in C", "layers of another net",
          "missing layer", "layer twice", "wrong shape", "broadcastable shape", "no bias",
          "extra bytes", "cut inside a layer, resealed", "value stream too short",
          "value index past the codebook", "position past the weights", "NaN in the codebook",
          "no prefix code", "bits that are no code"]


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_model_file_is_refused(tmp_path, dlcz, digits, damaged, case):
    data, message = damaged[case]
    path = tmp_path / "model.dlcz"
    path.write_bytes(data)
    result = run(dlcz, "--images", digits[1], path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert message in result.stderr and result.stdout == ""


def test_refused_as_by_python_where_python_refuses(tmp_path, damaged):
    """Every damaged file is refused by load_compact too, but four the C program is stricter about,
    which load_compact accepts: fc3 twice (the last one wins), a NaN weight, code lengths that are
    no prefix code (the codes that clash are never read), and a (1, 100) fc3 (copy_ broadcasts it to
    all 10 rows)."""
    stricter = {"layer twice", "NaN in the codebook", "no prefix code", "broadcastable shape"}
    for case in set(DAMAGE) - stricter:
        path = tmp_path / "model.dlcz"
        path.write_bytes(damaged[case][0])
        with pytest.raises((ValueError, IndexError, RuntimeError)):
            load_compact(path)


def test_missing_and_unreadable_model_files(tmp_path, dlcz, digits):
    for path, message in [(tmp_path / "absent.dlcz", "cannot open"), (tmp_path, "cannot read")]:
        result = run(dlcz, "--images", digits[1], path)
        assert result.returncode == 1 and str(path) in result.stderr and message in result.stderr


def test_damaged_digit_files_are_refused(tmp_path, dlcz, digits, small_file):
    images, image_path, label_path = digits
    good_images, good_labels = image_path.read_bytes(), label_path.read_bytes()
    cases = {
        "missing images": ("images", None, "cannot open"),
        "image magic": ("images", b"\0\0\x08\x01" + good_images[4:], "not an IDX file of images"),
        "images cut short": ("images", good_images[:-100], "cut short"),
        "image header cut": ("images", good_images[:10], "not an IDX file of images"),
        "32x32 images": ("images", struct.pack(">IIII", 0x803, 1, 32, 32) + bytes(1024), "32 x 32"),
        "missing labels": ("labels", None, "cannot open"),
        "label magic": ("labels", good_images, "not an IDX file of labels"),
        "labels cut short": ("labels", good_labels[:-1], "cut short"),
        "fewer labels":
            ("labels", struct.pack(">II", 0x801, 10) + good_labels[8:18],
             "10 labels for the 64 images"),
        "label 10": ("labels", good_labels[:20] + b"\x0a" + good_labels[21:], "not a class 0..9"),
    }
    for case, (which, data, message) in cases.items():
        paths = {"images": tmp_path / f"{case}.images", "labels": tmp_path / f"{case}.labels"}
        paths["images"].write_bytes(good_images)
        paths["labels"].write_bytes(good_labels)
        if data is None:
            paths[which].unlink()
        else:
            paths[which].write_bytes(data)
        result = run(dlcz, "--accuracy", "--images", paths["images"], "--labels", paths["labels"],
                     small_file)
        assert result.returncode == 1, (case, result.returncode, result.stderr)
        assert message in result.stderr, (case, result.stderr)


@pytest.mark.parametrize("args, message", [
    ([], "no model file"),
    (["--fast", "{model}"], "unknown option: --fast"),
    (["-n", "abc", "{model}"], "-n needs a whole number"),
    (["-n", "0", "{model}"], "-n needs a whole number"),
    (["-n", "12x", "{model}"], "-n needs a whole number"),
    (["{model}", "-n"], "needs a value: -n"),
    (["--std", "0", "{model}"], "--std needs a number above 0"),
    (["--std", "nan", "{model}"], "--std needs a number above 0"),
    (["--mean", "x", "{model}"], "--mean needs a number"),
    (["{model}", "{model}"], "one model file only"),
])
def test_bad_arguments(dlcz, small_file, args, message):
    result = run(dlcz, *[str(small_file) if a == "{model}" else a for a in args])
    assert result.returncode == 2 and message in result.stderr, (result.returncode, result.stderr)


def test_more_digits_than_the_file_holds(dlcz, digits, small_file):
    result = run(dlcz, "--images", digits[1], "-n", 65, small_file)
    assert result.returncode == 1 and "holds 64 digits, 65 asked for" in result.stderr


@pytest.mark.parametrize("damage, reason", [("an altered byte", "CRC-32|wrong magic"),
                                            ("a truncation", "CRC-32|cut short")])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_damage_is_refused(dlcz, digits, small_file, tmp_path, damage, reason, data):
    """Any one altered byte (the CRC-32 left as it was), or the file cut short anywhere."""
    damaged = bytearray(small_file.read_bytes())
    at = data.draw(st.integers(0, len(damaged) - 1))
    if damage == "a truncation":
        del damaged[at:]
    else:
        damaged[at] ^= data.draw(st.integers(1, 255))
    path = tmp_path / "damaged.dlcz"
    path.write_bytes(bytes(damaged))
    result = run(dlcz, "--images", digits[1], path)
    assert result.returncode == 1 and re.search(reason, result.stderr), result.stderr


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_resealed_alterations_are_refused_or_computed_as_by_python(dlcz, digits, small_file,
                                                                   tmp_path, data):
    """A byte altered and the CRC-32 made valid again reaches the decoder itself: the program
    refuses the file (exit 1) or computes what load_compact computes from it; it never crashes."""
    path = tmp_path / "resealed.dlcz"
    result = run_resealed(dlcz, digits, small_file.read_bytes(), path, data)
    if result.returncode == 1:
        assert result.stderr.startswith("dlcz: error: ") and result.stdout == ""
        return
    # accepted by Python too
    expected = torch_logits(load_compact(path), normalised(digits[0][:8], 0.25, 0.5))
    got = np.loadtxt(result.stdout.splitlines(), dtype=np.float32)
    if np.isfinite(expected).all() and np.isfinite(got).all():  # an altered exponent may overflow
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


# ---- the build ----


def test_make_deploy_builds_with_c99_and_O2():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "-B", "deploy"], cwd=PROJECT_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert re.search(r"-std=c99 -O2 .*-o build/deploy/dlcz .*deploy/main\.c.*-lm",
                     result.stdout), result.stdout


def test_sources_are_short_lines():
    for source in sorted(DEPLOY.glob("*.[ch]")):
        long = [n for n, line in enumerate(source.read_text().splitlines(), 1) if len(line) > 100]
        assert not long, f"{source.name}: lines {long} are longer than 100 characters"


def test_compiler_version_and_library_bytes(tmp_path):
    cc = needs_compiler()
    assert deploy.compiler_version(cc)  # e.g. "cc (Debian 12.2.0-14) 12.2.0"
    (tmp_path / "libx.so").write_bytes(b"x" * 10)
    (tmp_path / "liby.so.1").write_bytes(b"y" * 5)
    (tmp_path / "notes.txt").write_bytes(b"z" * 100)
    assert deploy.library_bytes(tmp_path) == 15
