"""The course's C program (``deploy/``, notebook 14) driven from Python, and the fixed-point file it
reads.

``deploy/`` is a dependency-free C99 program, ``dlcz``, that runs notebook 13's compact model files
(``compact.write_compact``) and notebook 11's integer-only MLP (``fixed_point.FixedPointMLP``) on
the IDX test digits. This module

- finds a C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) and builds ``build/deploy/dlcz``
  when no up-to-date build exists (as ``make deploy`` does);
- runs it and parses what it prints: class scores, predictions, accuracy and time per digit;
- writes the fixed-point model file (``write_fixed``), whose format is documented in
  ``deploy/fixed.c`` and below, and reads it back (``read_fixed``).

Without a compiler, :func:`build` raises :class:`NoCompilerError` with :data:`NO_COMPILER`, a
message that says what to install; the notebook prints it and skips its C sections.

The fixed-point file, little-endian throughout (``u8``/``u16``/``u32`` unsigned, ``i8``... signed)::

    magic b"DLFX", format version (u8)
    word bits W (u8, 2..16), fractional bits of the input (i8), number of layers (u8)
    per layer (a ReLU follows every layer but the last):
        outputs, inputs (u16 each); fractional bits of the weights and of the output (i8 each)
        the weights: outputs x inputs W-bit integers, row-major, i8 each if W <= 8, else i16
        the biases: outputs 2W-bit integers (i32 each), in the sum's format
    CRC-32 of every byte before it (u32)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import prepare_mnist
from .fixed_point import FixedPointMLP, int_matmul, saturate, shift_round, to_fixed
from .paths import BUILD_DIR, DEPLOY_DIR

BINARY = BUILD_DIR / "deploy" / "dlcz"
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra")  # as the Makefile's `make deploy`
COMPILERS = ("cc", "gcc", "clang")
NO_COMPILER = (
    "No C compiler found (looked for $CC, cc, gcc and clang), so the C program cannot be built "
    "here. Install one: `sudo apt install gcc` (Debian, Ubuntu), `xcode-select --install` (macOS), "
    "or `conda install -c conda-forge c-compiler` (conda; Binder's environment.yml has it)."
)
# Notebook 13's bits per layer: 8 for convolutions, 5 for fully connected layers (Han et al.);
# LeNet-300-100 with 6 bits everywhere, as in Deep Compression's Table 2.
DEPLOY_BITS = {"lenet300": {"fc1": 6, "fc2": 6, "fc3": 6},
               "lenet5": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}}

FIXED_MAGIC = b"DLFX"
FIXED_VERSION = 1
FIXED_MAX_LAYERS, FIXED_MAX_UNITS = 8, 4096  # as deploy/dlcz.h
FIXED_SHIFTS = (-16, 62)  # the shifts the C program performs exactly in 64-bit integers
PIXELS, CLASSES = 28 * 28, 10


class NoCompilerError(RuntimeError):
    """No C compiler was found; the message (:data:`NO_COMPILER`) says what to install."""


class CompileError(RuntimeError):
    """The compiler refused the sources; the message holds its error output."""


class ProgramError(RuntimeError):
    """The C program exited with an error; the message is what it printed on stderr."""


# ---- finding a compiler and building ----

def find_compiler() -> list[str] | None:
    """``$CC`` (which may hold a launcher, ``"ccache gcc"``), else the first of cc, gcc and clang on
    the PATH, as a command list; None when there is none."""
    for command in [os.environ.get("CC", ""), *COMPILERS]:
        words = shlex.split(command)
        if words and shutil.which(words[0]):
            return words
    return None


def compiler_version(compiler: list[str] | None = None) -> str:
    """The first line of ``<compiler> --version`` (e.g. ``cc (Debian 12.2.0-14) 12.2.0``), or
    ``""``."""
    compiler = compiler or find_compiler()
    if compiler is None:
        return ""
    done = subprocess.run([*compiler, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else ""


def library_bytes(folder: Path) -> int:
    """Bytes of the shared libraries (``.so``, ``.dylib``, ``.dll``, ``.pyd``) in ``folder``: what a
    Python runtime such as PyTorch or ONNX Runtime brings along."""
    patterns = ["*.so", "*.so.*", "*.dylib", "*.dll", "*.pyd"]
    return sum(p.stat().st_size for pattern in patterns for p in Path(folder).glob(pattern)
               if p.is_file())


def compile_c(sources: list[Path], output: Path, flags: tuple[str, ...] = CFLAGS,
              compiler: list[str] | None = None) -> Path:
    """Compile and link C ``sources`` into the program ``output`` (``-lm`` last); raises
    :class:`NoCompilerError` or :class:`CompileError`. The program appears whole or not at all."""
    compiler = compiler or find_compiler()
    if compiler is None:
        raise NoCompilerError(NO_COMPILER)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    done = subprocess.run([*compiler, *flags, "-o", str(partial), *map(str, sources), "-lm"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise CompileError(f"{' '.join(compiler)} failed (exit "
                           f"{done.returncode}):\n{done.stderr.strip()}")
    os.replace(partial, output)  # atomic: a program run meanwhile never sees half a file
    return output


def program_sources(source_dir: Path = DEPLOY_DIR) -> list[Path]:
    """The C files of the program, and the headers they include."""
    return sorted(source_dir.glob("*.c")) + sorted(source_dir.glob("*.h"))


def is_up_to_date(binary: Path = BINARY, source_dir: Path = DEPLOY_DIR) -> bool:
    """Whether ``binary`` exists and is newer than every source and header in ``source_dir``."""
    binary = Path(binary)
    if not binary.exists():
        return False
    built = binary.stat().st_mtime
    return all(source.stat().st_mtime <= built for source in program_sources(source_dir))


def build(binary: Path = BINARY, source_dir: Path = DEPLOY_DIR, force: bool = False) -> Path:
    """The program ``build/deploy/dlcz``, compiled from ``deploy/*.c`` with ``cc -std=c99 -O2``
    unless an up-to-date build exists (or ``force``). Raises :class:`NoCompilerError` without a
    compiler."""
    if not force and is_up_to_date(binary, source_dir):
        return Path(binary)
    return compile_c(sorted(Path(source_dir).glob("*.c")), binary)


# ---- running it ----

def run_program(model_path: Path, *options: object, binary: Path = BINARY,
                timeout: float = 300) -> str:
    """What ``dlcz [options] model_path`` prints; raises :class:`ProgramError` with its message if
    it fails."""
    done = subprocess.run([str(binary), *map(str, options), str(model_path)], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise ProgramError(done.stderr.strip() or f"dlcz exited with status {done.returncode}")
    return done.stdout


def digit_options(n: int | None = None, images: Path | None = None, labels: Path | None = None,
                  mean: float | None = None, std: float | None = None) -> list[str]:
    """The program's options for which digits to read and how to normalise them (its defaults when
    None)."""
    options = []
    for flag, value in [("-n", n), ("--images", images), ("--labels", labels), ("--mean", mean),
                        ("--std", std)]:
        if value is not None:
            options += [flag, repr(value) if isinstance(value, float) else str(value)]
    return options


def c_logits(model_path: Path, n: int | None = None, images: Path | None = None,
             mean: float | None = None, std: float | None = None,
             binary: Path = BINARY) -> np.ndarray:
    """The program's class scores (digits, 10): float32 for a compact file, int64 for a fixed-point
    one. Without ``images``, the MNIST test digits that ``prepare_mnist`` unpacks."""
    images = images or prepare_mnist() / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    text = run_program(model_path, "--logits", *digit_options(n, images, None, mean, std),
                       binary=binary)
    dtype = np.int64 if is_fixed_file(model_path) else np.float32
    return np.loadtxt(text.splitlines(), dtype=dtype, ndmin=2)


def c_predictions(model_path: Path, n: int | None = None, images: Path | None = None,
                  mean: float | None = None, std: float | None = None,
                  binary: Path = BINARY) -> np.ndarray:
    """The predicted class of each digit, (digits,) int64."""
    images = images or prepare_mnist() / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    text = run_program(model_path, *digit_options(n, images, None, mean, std), binary=binary)
    return np.array([int(line) for line in text.split()], dtype=np.int64)


@dataclass
class CRun:
    """What ``dlcz --accuracy`` reports: accuracy, and seconds per digit (batch 1, one thread)."""

    name: str
    accuracy: float
    correct: int
    digits: int
    mean_seconds: float
    median_seconds: float


ACCURACY_LINE = re.compile(r"^(?P<name>[\w-]+): accuracy (?P<acc>[0-9.]+) \((?P<correct>\d+) of "
                           r"(?P<digits>\d+) digits\)$", re.M)
TIME_LINE = re.compile(r"^time per digit: (?P<mean>[0-9.]+) ms on average, (?P<median>[0-9.]+) ms "
                       r"median", re.M)


def parse_accuracy(text: str) -> CRun:
    """The :class:`CRun` in the output of ``dlcz --accuracy``; ValueError if it holds none."""
    acc, time = ACCURACY_LINE.search(text), TIME_LINE.search(text)
    if acc is None or time is None:
        raise ValueError(f"not the output of dlcz --accuracy: {text[:200]!r}")
    return CRun(acc["name"], float(acc["acc"]), int(acc["correct"]), int(acc["digits"]),
                float(time["mean"]) / 1e3, float(time["median"]) / 1e3)


def c_accuracy(model_path: Path, n: int | None = None, mean: float | None = None,
               std: float | None = None, binary: Path = BINARY) -> CRun:
    """Accuracy on the MNIST test digits, and the time per digit, measured by the program itself."""
    raw = prepare_mnist() / "MNIST" / "raw"
    options = digit_options(n, raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte",
                            mean, std)
    return parse_accuracy(run_program(model_path, "--accuracy", *options, binary=binary))


def c_function(name: str, path: Path = DEPLOY_DIR / "nets.c") -> str:
    """The source of the C function ``name`` in ``path``, with the comment just above it, for
    reading in a notebook (from its comment to the ``}`` that closes it in the first column)."""
    lines = Path(path).read_text().splitlines()
    start = next((i for i, line in enumerate(lines)
                  if re.match(rf"^[A-Za-z_][\w \*]*\b{re.escape(name)}\(", line)), None)
    if start is None:
        raise ValueError(f"no function {name!r} in {path}")
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    while (start > 0 and lines[start - 1].strip()
           and (lines[start - 1].lstrip().startswith(("/*", "*")))):
        start -= 1
    return "\n".join(lines[start:end + 1])


# ---- the compressed reference models, quickly (no retraining) ----

def compressed_reference(architecture: str) -> nn.Module:
    """The shipped pruned-and-retrained ``{architecture}_pruned`` checkpoint with its survivors
    shared by k-means in :data:`DEPLOY_BITS` (a second or less: no fine-tuning); CPU, eval mode."""
    from .deep_compression import share_pruned
    from .reference import pretrained

    return share_pruned(pretrained(f"{architecture}_pruned", "cpu"),
                        DEPLOY_BITS[architecture]).eval()


def write_compressed(path: Path, architecture: str, model: nn.Module) -> int:
    """Notebook 13's compact file of a pruned, shared ``model`` (8-bit gaps, Huffman-coded); its
    bytes."""
    from .compact import write_compact
    from .deep_compression import encode_model

    layers = encode_model(model, list(DEPLOY_BITS[architecture]), position_bits=8, use_huffman=True)
    return write_compact(path, architecture, layers)


# ---- the fixed-point file ----

@dataclass
class FixedLayer:
    """One layer of a fixed-point file: integer weights (out, in) and biases (out,), int64
    tensors."""

    weight: torch.Tensor
    bias: torch.Tensor
    frac_weight: int
    frac_out: int


@dataclass
class FixedFile:
    """What a fixed-point file holds."""

    bits: int
    frac_input: int
    layers: list[FixedLayer]


def fixed_layers(model: FixedPointMLP) -> FixedFile:
    """The integers and formats of a ``FixedPointMLP``, as the file stores them."""
    return FixedFile(model.bits, model.frac["input"], [
        FixedLayer(model.int_weights[name], model.int_biases[name],
                   model.frac[f"{name}.weight"], model.frac[f"{name}.out"])
        for name in model.names])


def check_fixed(content: FixedFile) -> None:
    """Raise ``ValueError`` unless the C program can run ``content`` exactly (deploy/fixed.c's
    limits)."""
    bits = content.bits
    if not 2 <= bits <= 16:
        raise ValueError(f"{bits}-bit words; the file holds 2 to 16 bits")
    if not 1 <= len(content.layers) <= FIXED_MAX_LAYERS:
        raise ValueError(f"{len(content.layers)} layers; the file holds 1 to {FIXED_MAX_LAYERS}")
    frac_in, inputs = content.frac_input, PIXELS
    for i, layer in enumerate(content.layers, 1):
        outputs, width = layer.weight.shape
        if width != inputs:
            raise ValueError(f"layer {i} reads {width} inputs, not {inputs}")
        if not 1 <= outputs <= FIXED_MAX_UNITS or layer.bias.shape != (outputs,):
            raise ValueError(f"layer {i}: {outputs} outputs and a bias of shape "
                             f"{tuple(layer.bias.shape)}")
        shift = frac_in + layer.frac_weight - layer.frac_out
        if not FIXED_SHIFTS[0] <= shift <= FIXED_SHIFTS[1]:
            raise ValueError(f"layer {i} shifts its sums by {shift} bits; the C program shifts "
                             f"{FIXED_SHIFTS[0]} to {FIXED_SHIFTS[1]} bits")
        for what, values, b in [("weight", layer.weight, bits), ("bias", layer.bias, 2 * bits)]:
            if values.numel() and not (-(2 ** (b - 1)) <= int(values.min())
                                       and int(values.max()) < 2 ** (b - 1)):
                raise ValueError(f"layer {i}: a {what} does not fit in {b} bits")
        frac_in, inputs = layer.frac_out, outputs
    if inputs != CLASSES:
        raise ValueError(f"the last layer has {inputs} outputs, not the {CLASSES} classes")


def fixed_bytes(model: FixedPointMLP | FixedFile) -> bytes:
    """The fixed-point file of a ``FixedPointMLP`` (see the module's docstring), CRC-32 last."""
    content = model if isinstance(model, FixedFile) else fixed_layers(model)
    check_fixed(content)
    word = "<i1" if content.bits <= 8 else "<i2"
    parts = [FIXED_MAGIC, struct.pack("<BBbB", FIXED_VERSION, content.bits, content.frac_input,
                                      len(content.layers))]
    for layer in content.layers:
        outputs, inputs = layer.weight.shape
        parts += [struct.pack("<HHbb", outputs, inputs, layer.frac_weight, layer.frac_out),
                  layer.weight.cpu().numpy().astype(word).tobytes(),
                  layer.bias.cpu().numpy().astype("<i4").tobytes()]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def run_fixed(content: FixedFile, x: torch.Tensor) -> torch.Tensor:
    """The integer class scores (B, 10) of a fixed-point file's network on normalised digits ``x``
    (B, 1, 28, 28), computed in Python exactly as ``FixedPointMLP.forward`` does."""
    q = to_fixed(x.cpu().flatten(1), content.bits, content.frac_input)  # (B, 784)
    frac_in = content.frac_input
    for i, layer in enumerate(content.layers):
        acc = int_matmul(q, layer.weight, content.bits) + layer.bias  # (B, out) int64
        if i < len(content.layers) - 1:
            acc = acc.clamp(min=0)
        q = saturate(shift_round(acc, frac_in + layer.frac_weight - layer.frac_out), content.bits)
        frac_in = layer.frac_out
    return q


def write_fixed(path: str | Path, model: FixedPointMLP | FixedFile) -> int:
    """Write the fixed-point file of ``model``; returns its bytes."""
    data = fixed_bytes(model)
    Path(path).write_bytes(data)
    return len(data)


def is_fixed_file(path: str | Path) -> bool:
    """Whether the file starts with the fixed-point magic (else the C program reads it as a compact
    file)."""
    with open(path, "rb") as f:
        return f.read(4) == FIXED_MAGIC


def parse_fixed(data: bytes) -> FixedFile:
    """The content of a fixed-point file's bytes, checked by magic, CRC-32, version and
    ``check_fixed``."""
    if data[:4] != FIXED_MAGIC:
        raise ValueError(f"not a fixed-point model file: it starts with {data[:4]!r}, not "
                         f"{FIXED_MAGIC!r}")
    if len(data) < 9 or zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise ValueError("the file's CRC-32 does not match its contents: it was cut short or "
                         "altered")
    version, bits, frac_input, n_layers = struct.unpack_from("<BBbB", data, 4)
    if version != FIXED_VERSION:
        raise ValueError(f"format version {version}; this course_utils reads version "
                         f"{FIXED_VERSION}")
    body = data[:-4]
    word = np.dtype("<i1" if bits <= 8 else "<i2")
    try:
        layers = _parse_layers(body, 8, n_layers, word)
    except (struct.error, ValueError) as err:
        raise ValueError(f"the file is cut short or malformed: {err}") from err
    content = FixedFile(bits, frac_input, layers)
    check_fixed(content)
    return content


def _parse_layers(body: bytes, offset: int, n_layers: int, word: np.dtype) -> list[FixedLayer]:
    layers = []
    for _ in range(n_layers):
        outputs, inputs, frac_weight, frac_out = struct.unpack_from("<HHbb", body, offset)
        offset += 6
        n = outputs * inputs
        weight = np.frombuffer(body, word, n, offset).reshape(outputs, inputs)
        offset += n * word.itemsize
        bias = np.frombuffer(body, "<i4", outputs, offset)
        offset += 4 * outputs
        layers.append(FixedLayer(torch.from_numpy(weight.astype(np.int64)),
                                 torch.from_numpy(bias.astype(np.int64)), frac_weight, frac_out))
    if offset != len(body):
        raise ValueError(f"{len(body) - offset} unexpected bytes after the last layer")
    return layers


def read_fixed(path: str | Path) -> FixedFile:
    """``parse_fixed`` of the file at ``path``."""
    return parse_fixed(Path(path).read_bytes())
