"""Data-parallel training for notebook 15: what every worker uses, and torchrun from a notebook.

Every worker process holds a full copy of the model, takes its share of each global minibatch
(``sharded_loader``), and averages its gradients with the others (an all-reduce) before the
update, so that all copies stay identical. ``course_utils.ddp_train`` is the program each worker
runs; :func:`run_nodes` starts it with ``torchrun`` as a subprocess (``mp.spawn`` cannot pickle
functions defined in a notebook) and streams its output into the notebook with a progress bar.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from .data import DigitDataset, load_mnist

PROGRESS = re.compile(r"^progress (\d+)/(\d+) loss ([0-9.naif]+)$")


def training_set(train_size: int = 0) -> DigitDataset:
    """The course's MNIST training split (its first ``train_size`` examples when > 0)."""
    train = load_mnist().train
    n = train_size or len(train)
    return DigitDataset(train.images[:n], train.labels[:n], train.mean, train.std)


def sharded_loader(dataset: Dataset, global_batch: int, rank: int, world_size: int,
                   seed: int = 0) -> DataLoader:
    """Rank ``rank``'s share of every global minibatch of ``global_batch`` examples.

    ``DistributedSampler`` shuffles all indices with ``seed`` (the same order in every process),
    then rank r takes every ``world_size``-th one starting at r; each loader batch holds
    ``global_batch // world_size`` of them, so step k of all ranks together covers the same
    ``global_batch`` examples as step k of a single process (``world_size=1``).
    """
    if global_batch % world_size:
        raise ValueError(f"global_batch={global_batch} must divide evenly over "
                         f"{world_size} processes")
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    batches = BatchSampler(sampler, global_batch // world_size, drop_last=False)
    return DataLoader(dataset, sampler=batches, batch_size=None)  # one indexing call a batch


def average_gradients(replicas: Sequence[nn.Module]) -> None:
    """Replace every replica's ``.grad`` by the mean over replicas (by hand, in one process).

    Parameters without a gradient (frozen ones) are left alone.
    """
    for params in zip(*(replica.parameters() for replica in replicas), strict=True):
        if params[0].grad is None:
            continue
        mean = torch.stack([p.grad for p in params]).mean(dim=0)  # (*param.shape)
        for p in params:
            p.grad.copy_(mean)


def allreduce_gradients(model: nn.Module) -> None:
    """Average ``model``'s gradients over all processes of the default group, in place.

    gloo has no averaging all-reduce, so: sum with ``dist.all_reduce``, then divide.
    """
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_interface() -> str:
    """The loopback interface's name, for gloo: ``lo`` on Linux, ``lo0`` on macOS."""
    return "lo0" if sys.platform == "darwin" else "lo"


@dataclass
class Node:
    """One torchrun command (one "machine") of a run, and what came of it."""

    label: str
    command: list[str]
    returncode: int | None = None
    lines: list[str] = field(default_factory=list)


@dataclass
class Run:
    """A finished data-parallel run: each node's output, the wall-clock time, rank 0's results."""

    nodes: list[Node]
    seconds: float
    timed_out: bool
    result: dict | None

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(node.returncode == 0 for node in self.nodes)

    def output(self) -> str:
        """Every line the nodes printed, node after node."""
        return "\n".join(line for node in self.nodes for line in node.lines)

    def root_cause(self) -> str:
        """torchrun's report of the first failing rank, with its traceback; else the error lines."""
        lines = self.output().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("Root Cause")]
        if starts:
            end = next((i for i in range(starts[0], len(lines)) if lines[i].startswith("====")),
                       len(lines))
            report = lines[starts[0]:end]
            if any("To enable traceback" in line for line in report):  # failed before main()
                printed = [line for line in lines[:starts[0]] if not PROGRESS.match(line)]
                report += ["what the workers printed last:", *printed[-15:]]
            return "\n".join(report)
        return "\n".join(line for line in lines if "Error" in line and not line.startswith(" "))


def torchrun_command(program_args: Sequence[str], *, nproc: int, nnodes: int = 1, port: int = 0,
                     rdzv_timeout_s: int = 60) -> list[str]:
    """``python -m torch.distributed.run`` (torchrun) for ``course_utils.ddp_train``, one node's.

    One node: ``--standalone``. Several: a c10d rendezvous at 127.0.0.1:``port`` that gives up
    after ``rdzv_timeout_s`` seconds when not every node has joined; ranks are handed out as the
    nodes join. No restarts on failure.
    """
    if nnodes == 1:
        where = ["--standalone"]
    else:
        where = [f"--nnodes={nnodes}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=course",
                 f"--rdzv-conf=join_timeout={rdzv_timeout_s}"]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", *where,
            "--max-restarts=0", "--monitor-interval=0.5", "-m", "course_utils.ddp_train",
            *program_args]


def run_nodes(program_args: Sequence[str], *, nproc: int = 2, nnodes: int = 1, threads: int = 1,
              timeout_s: float = 120, rdzv_timeout_s: int = 60, started: int | None = None,
              progress: bool = True, echo: bool = True) -> Run:
    """Start ``nnodes`` torchrun commands on this machine, ``nproc`` workers each, and wait.

    ``started`` (default: all) starts only the first few nodes, to show a rendezvous that never
    completes.
    Every worker runs ``course_utils.ddp_train`` with ``program_args`` and ``threads`` intra-op
    threads. Rank 0's progress lines drive a tqdm bar; every other line is printed (with
    ``echo``), so a failing rank's traceback shows in the notebook. After ``timeout_s`` seconds
    every process is killed: the call always returns. ``Run.result`` holds what rank 0 saved.
    """
    out = Path(tempfile.mkdtemp(prefix="ddp-")) / "result.pt"
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1",
               GLOO_SOCKET_IFNAME=loopback_interface())
    args = [*program_args, "--threads", str(threads), "--out", str(out)]
    nodes = [Node(f"node {r}" if nnodes > 1 else "torchrun",
                  torchrun_command(args, nproc=nproc, nnodes=nnodes, port=port,
                                   rdzv_timeout_s=rdzv_timeout_s))
             for r in range(nnodes if started is None else started)]
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    start = time.perf_counter()
    procs = [subprocess.Popen(node.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env, start_new_session=True) for node in nodes]

    def pump(index: int, stream) -> None:
        for line in stream:
            lines.put((index, line.rstrip("\n")))
        lines.put((index, None))

    for i, proc in enumerate(procs):
        threading.Thread(target=pump, args=(i, proc.stdout), daemon=True).start()
    bar = tqdm(total=None, unit="step", disable=not progress)
    open_streams, timed_out = len(procs), False
    while open_streams:
        remaining = timeout_s - (time.perf_counter() - start)
        if remaining <= 0:
            timed_out = True
            break
        try:
            index, line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        nodes[index].lines.append(line)
        match = PROGRESS.match(line)
        if match:
            bar.total = int(match[2])
            bar.n = int(match[1])
            bar.set_postfix(loss=match[3], refresh=False)
            bar.refresh()
        elif echo:
            print(line if nnodes == 1 else f"[{nodes[index].label}] {line}", flush=True)
    for proc, node in zip(procs, nodes, strict=True):
        if timed_out and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        node.returncode = proc.wait()
    bar.close()
    seconds = time.perf_counter() - start
    if timed_out:
        print(f"timed out after {timeout_s:.0f} s: every process was killed")
    result = torch.load(out, weights_only=False) if out.exists() else None
    return Run(nodes, seconds, timed_out, result)


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two state dicts with the same keys."""
    if a.keys() != b.keys():
        raise ValueError(f"the two models differ in their parameters: {sorted(a)} and {sorted(b)}")
    return max(float((a[k].float().cpu() - b[k].float().cpu()).abs().max()) for k in a)
