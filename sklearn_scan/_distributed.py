"""Data-parallel training across processes (torchrun): who this process is, its share, global sums.

Under ``torchrun --nproc_per_node N script.py`` every process runs the user's script; the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) says which one it is. The losses
stay those of the global batch: each process holds a share of every global batch, and the terms
that span the batch (SimCLR's negatives, the SCAN entropy of the mean prediction,
self-labeling's class weights) are computed from sums over all processes, with gradients
where the loss needs them.
"""

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as distributed_functional

#: How long a process waits for the others at a collective before it stops with an error.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place among the ``world_size`` processes of a data-parallel fit."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        """Whether this process writes files and reports progress (rank 0)."""
        return self.rank == 0


def launched_processes():
    """The processes of a torchrun launch, as its environment describes them (one process otherwise)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes()
    return Processes(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def join_processes(device_type, timeout=TIMEOUT):
    """The process group of this launch, initialised here unless the script did (gloo on CPUs, NCCL on GPUs)."""
    processes = launched_processes()
    if processes.distributed and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout)
    if dist.is_initialized():
        processes = Processes(dist.get_rank(), dist.get_world_size(), processes.local_rank)
    return processes


def share_of(n_samples, processes):
    """The sample indices this process holds: every ``world_size``-th one from its rank, (ceil(N / W),) or fewer."""
    return torch.arange(processes.rank, n_samples, processes.world_size)


def global_sum(tensor, processes, differentiable=False):
    """The sum of ``tensor`` over all processes (the tensor itself in one process).

    With ``differentiable`` the gradient flows back to every process's
    tensor, as it would to the parts of one sum in a single process.
    """
    if not processes.distributed:
        return tensor
    if differentiable:
        return distributed_functional.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_batches(tensor, processes):
    """Every process's (b, ...) tensor, concatenated in rank order: (W * b, ...), with gradients to each part."""
    if not processes.distributed:
        return tensor
    return torch.cat(distributed_functional.all_gather(tensor))
