"""The worker program of notebook 15: data-parallel training of the lecture's MLP on MNIST.

torchrun starts one copy per process and tells each its place through the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)::

    python -m torch.distributed.run --standalone --nproc-per-node=2 -m course_utils.ddp_train \\
        --steps 50 --global-batch 128 --out result.pt

Every process: join the group (gloo on CPUs; NCCL when there is a GPU for each process), build
the same MLP from the same seed, take its share of each global minibatch, average the gradients
(DistributedDataParallel, or by hand with ``--sync hand``), update. Rank 0 saves the final
weights and what was measured to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from itertools import islice
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel

from .distributed import allreduce_gradients, sharded_loader, training_set
from .models import MLP
from .training import seed_everything, train_epoch


def starting_point(dataset: torch.utils.data.Dataset, global_batch: int, rank: int,
                   world_size: int, seed: int, lr: float, device: torch.device | str = "cpu"
                   ) -> tuple[MLP, torch.optim.Optimizer, torch.utils.data.DataLoader]:
    """What rank ``rank`` starts from: the MLP with the same initial weights in every process,
    SGD with momentum 0.9 on it, and its share of each global minibatch of ``dataset``."""
    loader = sharded_loader(dataset, global_batch, rank, world_size, seed)
    seed_everything(seed)  # the same initial weights in every process
    model = MLP().to(device)
    return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), loader


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps; 0 = one epoch")
    parser.add_argument("--global-batch", type=int, default=128,
                        help="examples per step, all ranks together")
    parser.add_argument("--train-size", type=int, default=0,
                        help="the first N training examples; 0 = all")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--sync", choices=["ddp", "hand"], default="ddp",
                        help="DistributedDataParallel, or allreduce_gradients after backward")
    parser.add_argument("--sync-source", type=Path,
                        help="with --sync hand: a Python file defining allreduce_gradients(model)")
    parser.add_argument("--fail-rank", type=int, default=-1, help="this rank raises at --fail-step")
    parser.add_argument("--fail-step", type=int, default=0)
    parser.add_argument("--out", type=Path, help="rank 0 saves weights and measurements here")
    return parser.parse_args(argv)


def sync_function(args: argparse.Namespace):
    """``allreduce_gradients``: the course's, or the one defined in ``--sync-source``."""
    if args.sync_source is None:
        return allreduce_gradients
    namespace = {"dist": dist, "torch": torch, "nn": torch.nn}
    exec(compile(args.sync_source.read_text(), str(args.sync_source), "exec"), namespace)
    return namespace["allreduce_gradients"]


@record
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world_size
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device(f"cuda:{rank % torch.cuda.device_count()}" if use_cuda else "cpu")
    print(f"rank {rank} of {world_size}: {dist.get_backend()} on {device}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)

    model, optimizer, loader = starting_point(training_set(args.train_size), args.global_batch,
                                              rank, world_size, args.seed, args.lr, device)
    steps = args.steps or len(loader)
    communicated = {"bytes": 0}
    if args.sync == "ddp":
        trained = DistributedDataParallel(model)  # also broadcasts rank 0's weights to the others

        def counting_allreduce(state: dict, bucket):  # bytes of every gradient bucket all-reduced
            state["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
            return default_hooks.allreduce_hook(None, bucket)

        trained.register_comm_hook(communicated, counting_allreduce)
    else:
        trained, sync = model, sync_function(args)
    if args.sync == "hand":  # between backward and the update
        optimizer.register_step_pre_hook(lambda *_: sync(model))

    def on_step(loss: float) -> None:
        on_step.done += 1
        if rank == args.fail_rank and on_step.done == args.fail_step:
            raise RuntimeError(f"rank {rank}: failure injected at step {on_step.done}")
        if rank == 0 and (on_step.done % 10 == 0 or on_step.done == steps):
            print(f"progress {on_step.done}/{steps} loss {loss:.4f}", flush=True)

    on_step.done = 0
    dist.barrier()
    start = time.perf_counter()
    losses = train_epoch(trained, islice(loader, steps), F.cross_entropy, optimizer, on_step)
    dist.barrier()
    seconds = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    peaks = [0.0] * world_size
    dist.all_gather_object(peaks, peak_rss_mb)
    if rank == 0 and args.out is not None:
        torch.save({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "losses": losses, "steps": len(losses), "seconds": seconds,
                    "world_size": world_size, "threads": args.threads,
                    "backend": dist.get_backend(),
                    "allreduce_bytes_per_step": communicated["bytes"] / max(len(losses), 1),
                    "peak_rss_mb": peaks}, args.out)
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
