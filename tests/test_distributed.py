"""Losses of a data-parallel fit: two gloo processes on the CPU against one process on the same global batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sklearn_scan._distributed import Processes, launched_processes, share_of
from sklearn_scan._ntxent import NTXentLoss
from sklearn_scan._scan_loss import SCANLoss
from sklearn_scan._selflabel import balanced_cross_entropy

WORLD_SIZE = 2
BATCH = 8  # the global batch; each process holds 4


def global_batch():
    generator = torch.Generator().manual_seed(0)
    return {
        "view_a": torch.randn(BATCH, 6, generator=generator),
        "view_b": torch.randn(BATCH, 6, generator=generator),
        "anchors": torch.randn(BATCH, 3, 5, generator=generator),  # (B, heads, clusters)
        "neighbors": torch.randn(BATCH, 3, 5, generator=generator),
        "logits": torch.randn(BATCH, 5, generator=generator),
        "labels": torch.tensor([0, 0, 0, 1, 2, 2, 4, 0]),
    }


def losses_and_gradients(batch, processes):
    """Each loss on this process's rows of the batch, and its gradients with respect to them."""
    rows = slice(processes.rank * BATCH // processes.world_size, (processes.rank + 1) * BATCH // processes.world_size)
    inputs = {name: value[rows].clone().requires_grad_(value.is_floating_point()) for name, value in batch.items()}
    results = {}
    losses = {
        "ntxent": lambda: NTXentLoss(0.5, processes)(inputs["view_a"], inputs["view_b"]),
        "scan": lambda: SCANLoss(5.0, processes)(inputs["anchors"], inputs["neighbors"])[0].sum(),
        "balanced_cross_entropy": lambda: balanced_cross_entropy(inputs["logits"], inputs["labels"], 5, processes),
    }
    for name, loss_of in losses.items():
        for tensor in inputs.values():
            tensor.grad = None
        loss = loss_of()
        loss.backward()
        results[name] = (loss.detach(), {key: value.grad.clone() for key, value in inputs.items()
                                          if value.grad is not None})
    return results


def _worker(rank, rendezvous, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    try:
        results = losses_and_gradients(global_batch(), Processes(rank, WORLD_SIZE, rank))
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_losses_across_two_processes_are_those_of_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    single = losses_and_gradients(global_batch(), Processes())
    for name, (loss, gradients) in single.items():
        # Data-parallel training averages the processes' gradients, so the loss it minimises is their mean...
        mean_loss = sum(rank[name][0] for rank in ranks) / WORLD_SIZE
        torch.testing.assert_close(mean_loss, loss, rtol=1e-5, atol=1e-6)
        # ...and each process's gradient, so averaged, is the global batch's gradient for its rows.
        for key, gradient in gradients.items():
            gathered = torch.cat([rank[name][1][key] for rank in ranks]) / WORLD_SIZE
            torch.testing.assert_close(gathered, gradient, rtol=1e-4, atol=1e-6)


def test_one_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched_processes() == Processes(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched_processes() == Processes(3, 4, 1)


def test_shares_cover_every_sample_once():
    shares = [share_of(10, Processes(rank, 3, rank)) for rank in range(3)]
    assert sorted(torch.cat(shares).tolist()) == list(range(10))
    assert [len(share) for share in shares] == [4, 3, 3]


if __name__ == "__main__":
    pytest.main([__file__])


SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_fit.py")


def _run(command, timeout):
    import subprocess
    import sys

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=timeout,
                          env=environment)


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", SCRIPT]


@pytest.fixture(scope="module")
def torchrun_fit(tmp_path_factory):
    """The labels of each of the 2 processes of an uninterrupted fit under torchrun."""
    import numpy as np

    out = tmp_path_factory.mktemp("torchrun")
    two = _run([*TORCHRUN, str(out)], timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    return [np.load(out / f"rank{rank}.npz") for rank in range(2)]


@pytest.mark.slow_distributed
def test_a_fit_under_torchrun_matches_one_process(tmp_path, torchrun_fit):
    import numpy as np

    from sklearn_scan.metrics import clustering_accuracy_score

    single = tmp_path / "single"
    single.mkdir()
    one = _run([SCRIPT, str(single)], timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    alone = np.load(single / "rank0.npz")
    ranks = torchrun_fit
    np.testing.assert_array_equal(ranks[0]["labels"], ranks[1]["labels"])  # every process: the same model
    truth = alone["truth"]
    accuracy_alone = clustering_accuracy_score(truth, alone["labels"])
    accuracy_spread = clustering_accuracy_score(truth, ranks[0]["labels"])
    agreement = clustering_accuracy_score(alone["labels"], ranks[0]["labels"])
    assert accuracy_spread > 0.8 and abs(accuracy_spread - accuracy_alone) < 0.1
    assert agreement > 0.8
    # Each process trains on its half of the images.
    assert ranks[0]["first_convolution_images"] <= 0.75 * alone["first_convolution_images"]


@pytest.mark.slow_distributed
def test_a_killed_process_stops_the_others_with_an_error(tmp_path):
    import time

    start = time.perf_counter()
    run = _run([*TORCHRUN, str(tmp_path), "--die-after-pretext-epoch", "1"], timeout=300)
    assert run.returncode != 0
    assert time.perf_counter() - start < 300
    assert not (tmp_path / "rank0.npz").exists()  # the survivor did not carry on as if alone


@pytest.mark.slow_distributed
def test_a_killed_fit_under_torchrun_resumes_from_its_checkpoints(tmp_path, torchrun_fit):
    import numpy as np

    state = tmp_path / "state"
    killed = _run([*TORCHRUN, str(tmp_path), "--checkpoint-dir", str(state), "--die-after-pretext-epoch", "1",
                   "--die-epoch", "3"], timeout=300)
    assert killed.returncode != 0
    assert torch.load(state / "pretext.pt", weights_only=True)["epoch"] >= 2  # written by the first process
    resumed = _run([*TORCHRUN, str(tmp_path), "--checkpoint-dir", str(state)], timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rank{rank}.npz")["labels"], torchrun_fit[rank]["labels"])


@pytest.mark.parametrize("shares, batch_size", [((5, 4), 16), ((65, 64), 128), ((300, 299), 128)])
def test_every_process_takes_batches_of_one_size_when_shares_differ(monkeypatch, shares, batch_size):
    """Shares differ by a sample; even below a local batch, every process's batches have one size and count."""
    import sklearn_scan._distributed as distributed
    from sklearn_scan._batching import shuffled_batches

    monkeypatch.setattr(distributed, "_reduced", lambda tensor, op: torch.tensor([min(shares)]))
    sizes = []
    for rank, share in enumerate(shares):
        local_size, n_steps = distributed.local_batches(share, batch_size, Processes(rank, 2, rank))
        sizes.append([len(batch) for batch in shuffled_batches(share, local_size, torch.Generator(), n_steps)])
    assert sizes[0] == sizes[1] and len(sizes[0]) >= 1
