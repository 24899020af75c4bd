"""Self-check of notebook 14's exercise: 2x2 max pooling written in C, compiled and run from Python.

The student's ``max_pool_c()`` returns C source that defines
``void max_pool2(const float *in, int channels, int height, int width, float *out)``. It is compiled
with a small test program (:data:`HARNESS`), which reads a (C, H, W) map from stdin, calls
``max_pool2`` and writes the (C, H / 2, W / 2) result to stdout. The result goes into a buffer with
guard values on both sides, so that a write outside ``out`` is caught and reported, and so is an
output left unwritten. Each case runs the program in its own process: a crash fails that case, not
the notebook's kernel.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..deploy import NO_COMPILER, CompileError, NoCompilerError, compile_c
from ..exercises import Case, check_cases, is_strict, say

SIGNATURE = "void max_pool2(const float *in, int channels, int height, int width, float *out)"
UNWRITTEN = 0x7FC0DEAD  # a NaN the program puts in out before the call: still there = never written
HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void max_pool2(const float *in, int channels, int height, int width, float *out);

#define GUARD 64  /* floats of guard on each side of out */

int main(void)
{
    int32_t dims[3];
    size_t n_in, n_out;
    float *in, *buffer, *out;
    const uint32_t unwritten = 0x7FC0DEADu;
    if (fread(dims, sizeof dims, 1, stdin) != 1)
        return 2;
    n_in = (size_t)dims[0] * dims[1] * dims[2];
    n_out = (size_t)dims[0] * (dims[1] / 2) * (dims[2] / 2);
    in = malloc(n_in * sizeof *in);
    buffer = malloc((n_out + 2 * GUARD) * sizeof *buffer);
    if (!in || !buffer || fread(in, sizeof *in, n_in, stdin) != n_in)
        return 2;
    for (size_t i = 0; i < n_out + 2 * GUARD; i++)
        memcpy(buffer + i, &unwritten, sizeof unwritten);
    out = buffer + GUARD;
    max_pool2(in, dims[0], dims[1], dims[2], out);
    for (size_t i = 0; i < GUARD; i++)
        if (memcmp(buffer + i, &unwritten, 4) || memcmp(out + n_out + i, &unwritten, 4)) {
            fprintf(stderr, "max_pool2 wrote outside out: %s its %zu floats",
                    memcmp(buffer + i, &unwritten, 4) ? "before the first of" : "past the end of",
                    n_out);
            return 3;
        }
    fwrite(out, sizeof *out, n_out, stdout);
    return 0;
}
"""


class MaxPoolProgram:
    """The student's C compiled with :data:`HARNESS` into a program, run once per input."""

    def __init__(self, source: str, folder: Path):
        (folder / "student.c").write_text(source)
        (folder / "harness.c").write_text(HARNESS)
        self.binary = compile_c([folder / "student.c", folder / "harness.c"], folder / "max_pool",
                                flags=("-std=c99", "-O2", "-Wall"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``max_pool2`` of a (C, H, W) map, as a tensor (C, H // 2, W // 2)."""
        c, h, w = x.shape
        data = struct.pack("<3i", c, h, w) + x.float().cpu().numpy().astype("<f4").tobytes()
        try:
            done = subprocess.run([str(self.binary)], input=data, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise RuntimeError("max_pool2 ran for over 10 s: an endless loop?") from None
        if done.returncode < 0:
            raise RuntimeError(f"the program crashed (signal {-done.returncode}): max_pool2 read "
                               f"or wrote outside its arrays?")
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace").strip()
                               or f"exit status {done.returncode}")
        raw = np.frombuffer(done.stdout, dtype="<u4")
        if (raw == UNWRITTEN).any():
            raise RuntimeError(f"max_pool2 left {int((raw == UNWRITTEN).sum())} of the {raw.size} "
                               "outputs unwritten")
        return torch.from_numpy(raw.view("<f4").astype(np.float32)).reshape(c, h // 2, w // 2)


def reference_max_pool_c() -> str:
    """The reference answer (as deploy/nets.c's ``max_pool2``)."""
    return SIGNATURE + r"""
{
    int out_h = height / 2, out_w = width / 2;  /* an odd last row or column is dropped */
    for (int c = 0; c < channels; c++)
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
                const float *top = in + (c * height + 2 * y) * width + 2 * x;  /* (c, 2y, 2x) */
                const float *bottom = top + width;                           /* (c, 2y + 1, 2x) */
                float m = top[0];
                if (top[1] > m) m = top[1];
                if (bottom[0] > m) m = bottom[0];
                if (bottom[1] > m) m = bottom[1];
                out[(c * out_h + y) * out_w + x] = m;
            }
}
"""


def pool_inputs(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    c, h, w = (int(v) for v in torch.randint(2, 7, (3,), generator=generator))
    return {
        "random (3, 8, 8)": torch.randn(3, 8, 8, generator=generator),
        "all negative (2, 4, 6)": -torch.rand(2, 4, 6, generator=generator) - 1,
        "odd height and width (2, 5, 7): last row and column dropped":
            torch.randn(2, 5, 7, generator=generator),
        "taller than wide (1, 6, 2)": torch.randn(1, 6, 2, generator=generator),
        "a single 2x2 window": torch.tensor([[[1.0, 3.0], [-2.0, 0.5]]]),
        f"random sizes ({c}, {2 * h + 1}, {2 * w})":
            torch.randn(c, 2 * h + 1, 2 * w, generator=generator),
    }


def check_max_pool_c(max_pool_c: Callable[[], str], seed: int = 0,
                     strict: bool | None = None) -> bool:
    """The student's C ``max_pool2`` against ``F.max_pool2d(x, 2)``: random maps, all-negative
    values, odd and non-square sizes. Needs a C compiler; without one it says so (and fails when
    strict)."""
    inputs = pool_inputs(seed)
    with tempfile.TemporaryDirectory(prefix="max-pool-c-") as folder:
        program: Callable[[torch.Tensor], torch.Tensor]
        try:
            program = MaxPoolProgram(max_pool_c(), Path(folder))
        except NotImplementedError:
            program = _raise(NotImplementedError("your code here"))
        except TypeError as err:  # not a string
            program = _raise(TypeError(f"max_pool_c() must return the C source as a str ({err})"))
        except NoCompilerError:
            say(f"… max_pool2 in C: not checked. {NO_COMPILER}", False)
            if is_strict(strict):
                raise
            return False
        except CompileError as err:
            say(f"Your C does not compile:\n{err}", False)
            program = _raise(RuntimeError("it does not compile (the compiler's message is above)"))
        return check_cases("max_pool2 in C", [
            Case(label, F.max_pool2d(x[None], 2)[0], lambda x=x: program(x), atol=0.0, rtol=0.0)
            for label, x in inputs.items()
        ], strict)


def _raise(error: Exception) -> Callable[[torch.Tensor], torch.Tensor]:
    def fail(x: torch.Tensor) -> torch.Tensor:
        raise error

    return fail
