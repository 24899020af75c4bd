"""Data parallelism: shares, averaged gradients, torchrun from Python, failures that end."""

import time

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.checks.data_parallel import single_process_weights
from course_utils.ddp_train import parse_args, sync_function
from course_utils.distributed import (
    Node,
    Run,
    average_gradients,
    max_weight_difference,
    run_nodes,
    sharded_loader,
    torchrun_command,
    training_set,
)
from course_utils.models import MLP


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), world_size=st.integers(1, 4), per_rank=st.integers(1, 5),
       seed=st.integers(0, 3))
def test_the_ranks_together_take_the_single_process_batches(n, world_size, per_rank, seed):
    numbers = torch.utils.data.TensorDataset(torch.arange(n))
    batch = world_size * per_rank
    single = [b[0].tolist() for b in sharded_loader(numbers, batch, 0, 1, seed)]
    ranks = [[b[0].tolist() for b in sharded_loader(numbers, batch, r, world_size, seed)]
             for r in range(world_size)]
    if n % world_size == 0:  # no padding: step k of all ranks is the single process's step k
        for k, expected in enumerate(single):
            assert sorted(sum((rank[k] for rank in ranks), [])) == sorted(expected)
    shares = [i for rank in ranks for b in rank for i in b]
    assert set(shares) == set(range(n))  # every example somewhere
    assert len(shares) == -(-n // world_size) * world_size  # padded to equal shares


def test_a_global_batch_must_divide_over_the_processes():
    with pytest.raises(ValueError, match="divide evenly over 3"):
        sharded_loader(torch.utils.data.TensorDataset(torch.arange(8)), 4, 0, 3)


def test_average_gradients_writes_the_mean_into_every_copy_and_skips_frozen_layers():
    copies = [nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)) for _ in range(3)]
    for i, model in enumerate(copies):
        model[0].requires_grad_(False)
        model(torch.full((1, 2), float(i + 1))).sum().backward()
    before = [model[1].weight.grad.clone() for model in copies]
    average_gradients(copies)
    mean = torch.stack(before).mean(dim=0)
    for model in copies:
        assert torch.equal(model[1].weight.grad, mean)
        assert model[0].weight.grad is None


def test_max_weight_difference():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    b = {"w": torch.tensor([1.0, 2.25]), "b": torch.tensor([0.0])}
    assert max_weight_difference(a, b) == 0.5
    with pytest.raises(ValueError, match="differ in their parameters"):
        max_weight_difference(a, {"w": a["w"]})


def test_torchrun_commands_for_one_node_and_a_rendezvous():
    one = torchrun_command(["--steps", "3"], nproc=2)
    assert "--standalone" in one and "--nproc-per-node=2" in one and one[-2:] == ["--steps", "3"]
    two = torchrun_command([], nproc=1, nnodes=2, port=29555, rdzv_timeout_s=7)
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:29555",
            "--rdzv-conf=join_timeout=7", "--max-restarts=0"} <= set(two)
    assert "--standalone" not in two


def test_root_cause_cuts_torchrun_report_to_the_failing_rank():
    report = ["progress 10/50 loss 1.0", "some warning", "Root Cause (first observed failure):",
              "[0]:", "  rank      : 1 (local_rank: 1)", "  RuntimeError: boom", "=====", "tail"]
    run = Run([Node("torchrun", [], 1, report)], 1.0, False, None)
    assert run.root_cause().splitlines() == report[2:6]
    assert not run.ok


def test_the_hand_written_all_reduce_is_loaded_from_a_file(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text("def allreduce_gradients(model):\n    return dist.get_world_size\n")
    args = parse_args(["--sync", "hand", "--sync-source", str(source)])
    assert sync_function(args)(None) is torch.distributed.get_world_size


def test_two_processes_end_with_the_weights_of_one_process_on_the_whole_batch():
    steps, batch = 10, 64
    run = run_nodes(["--steps", str(steps), "--global-batch", str(batch), "--lr", "0.05",
                     "--train-size", str(steps * batch)], nproc=2, progress=False, echo=False)
    assert run.ok, run.output()
    assert (run.result["world_size"], run.result["steps"]) == (2, steps)
    expected = single_process_weights(0, steps, batch, 0.05, training_set(steps * batch))
    assert max_weight_difference(expected, run.result["state_dict"]) <= 1e-5
    assert run.result["allreduce_bytes_per_step"] == 4 * sum(p.numel() for p in MLP().parameters())
    assert len(run.result["peak_rss_mb"]) == 2 and min(run.result["peak_rss_mb"]) > 50


def test_a_failing_rank_ends_the_run_with_its_traceback():
    run = run_nodes(["--steps", "20", "--train-size", "2560", "--fail-rank", "1",
                     "--fail-step", "3"], nproc=2, timeout_s=60, progress=False, echo=False)
    assert not run.ok and not run.timed_out
    assert "rank 1: failure injected at step 3" in run.root_cause()


def test_a_run_past_its_time_limit_is_killed_and_returns():
    start = time.perf_counter()
    run = run_nodes(["--steps", "5"], nproc=1, nnodes=2, started=1, timeout_s=3, progress=False,
                    echo=False)
    assert run.timed_out and not run.ok
    assert time.perf_counter() - start < 10


def test_single_process_weights_are_a_real_training_run():
    data = training_set(256)
    trained = single_process_weights(0, 4, 64, 0.05, data)
    torch.manual_seed(0)
    untrained = MLP().state_dict()
    assert max_weight_difference(trained, untrained) > 1e-4
    model = MLP()
    model.load_state_dict(trained)
    x, y = data[list(range(256))]
    assert F.cross_entropy(model(x), y).item() < 2.2  # better than chance (log 10 = 2.30)
