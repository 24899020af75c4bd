"""RAM of one inference: the activations a layer chain holds, estimated from shapes, and the
peak measured in a fresh process.

Run as ``python -m course_utils.memory BATCH`` it builds the original AlexNet
(:func:`course_utils.cost.alexnet_2012`) with random weights, runs one forward pass at batch
``BATCH`` and prints, as JSON, how far that pass raised the process's peak resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from .cost import LayerCost, alexnet_2012
from .storage import FP32_BITS, packed_bytes


def activation_bytes(costs: list[LayerCost], batch_size: int) -> list[int]:
    """Bytes of each layer's float32 output at ``batch_size``, from ``layer_costs``' shapes."""
    return [packed_bytes(batch_size * torch.Size(c.output_shape).numel(), FP32_BITS)
            for c in costs]


def chain_peak_bytes(input_bytes: int, outputs: list[int]) -> int:
    """The most activation memory a chain of layers holds at once, in bytes.

    While a layer runs, its input and its output are both alive; the input is freed after.
    """
    inputs = [input_bytes, *outputs[:-1]]
    return max(i + o for i, o in zip(inputs, outputs, strict=True))


def measured_forward_growth(batch_size: int, timeout_s: float = 120) -> int | None:
    """Bytes by which one AlexNet forward pass at ``batch_size`` raised the peak resident memory
    of a fresh Python process; None where the operating system does not report a peak (Windows).
    """
    try:
        import resource  # noqa: F401  (Unix only)
    except ImportError:
        return None
    done = subprocess.run([sys.executable, "-m", "course_utils.memory", str(batch_size)],
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["growth_bytes"]


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the process's peak resident memory to its current one (Linux 4.0 and later)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def main(batch_size: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = alexnet_2012().eval()
    images = torch.rand(batch_size, 3, 227, 227)  # (B, 3, 227, 227)
    with torch.no_grad():
        model(images[:1])  # the first pass sets up the kernels once: not counted
        if _reset_peak():  # Linux: the peak from now on, above the memory in use now
            before = _status_bytes("VmRSS")
            model(images)
            growth = _status_bytes("VmHWM") - before
        else:  # elsewhere: how far the pass raised the lifetime peak (0 if it stayed below)
            before = _peak_rss_bytes()
            model(images)
            growth = _peak_rss_bytes() - before
    print(json.dumps({"batch_size": batch_size, "growth_bytes": growth}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
