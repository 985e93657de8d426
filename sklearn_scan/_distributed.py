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

import numpy as np
import torch
import torch.distributed as dist

from ._batching import n_batches

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
    if processes.distributed and device_type == "cuda":
        torch.cuda.set_device(processes.local_rank)  # NCCL's collectives run on the current GPU
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
        return _SumOverProcesses.apply(tensor)
    return _reduced(tensor, dist.ReduceOp.SUM)


def _reduced(tensor, op):
    """A copy of ``tensor`` reduced over all processes by ``op``, on the tensor's device.

    NCCL reduces only tensors on the current GPU, so counts kept on the CPU travel there and back.
    """
    where = tensor.device
    backend_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else where
    reduced = tensor.to(backend_device, copy=True)
    dist.all_reduce(reduced, op=op)
    return reduced.to(where)


def gather_batches(tensor, processes):
    """Every process's (b, ...) tensor, concatenated in rank order: (W * b, ...), with gradients to each part."""
    if not processes.distributed:
        return tensor
    return _GatherBatches.apply(tensor, processes.rank, processes.world_size)


class _SumOverProcesses(torch.autograd.Function):
    """Sum over processes; the gradient of each process's part is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx, tensor):
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, gradient):
        gradient = gradient.clone()
        dist.all_reduce(gradient, op=dist.ReduceOp.SUM)
        return gradient


class _GatherBatches(torch.autograd.Function):
    """Concatenate every process's batch; each part's gradient is summed over the processes that used it."""

    @staticmethod
    def forward(ctx, tensor, rank, world_size):
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor)
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, gradient):
        gradient = gradient.contiguous().clone()
        dist.all_reduce(gradient, op=dist.ReduceOp.SUM)
        return gradient[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows], None, None


def local_batches(n_local, batch_size, processes):
    """``(this process's batch size, steps per epoch)`` for global batches of ``batch_size``.

    Each process takes ``batch_size / world_size`` samples a step, and all
    take as many steps as the smallest share allows. Every process's batches
    have the same size, even where a share is smaller than a batch and the
    shares differ by a sample (the losses gather equal shapes across processes).
    """
    local_size = max(2, batch_size // processes.world_size)
    fewest = n_local
    if processes.distributed:
        fewest = int(_reduced(torch.tensor([n_local]), dist.ReduceOp.MIN))
        local_size = min(local_size, fewest)
    return local_size, n_batches(fewest, local_size)


def data_parallel(model, device, processes):
    """``model`` wrapped for data-parallel training (DDP averages its gradients), or as it is in one process."""
    if not processes.distributed:
        return model
    # Batch norm normalises with each process's share of the batch, as with one process on a smaller batch.
    if device.type == "cuda":
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(model)


def mean_over_processes(value, processes):
    """The mean of a float over all processes (for the progress bar and history)."""
    if not processes.distributed:
        return value
    return float(global_sum(torch.tensor(float(value), dtype=torch.float64), processes)) / processes.world_size


def gather_by_position(rows, positions, processes):
    """Every process's ``rows`` (n_r, ...) numpy array, put in the order of their global ``positions`` (n_r,).

    Returns ``(rows of all processes (sum n_r, ...), their positions, sorted)``.
    """
    if not processes.distributed:
        return rows, positions
    parts = gather_lists([(rows, positions)], processes)
    rows = np.concatenate([part[0] for part in parts])
    positions = np.concatenate([part[1] for part in parts])
    order = np.argsort(positions, kind="stable")
    return rows[order], positions[order]


def from_main_process(value, processes):
    """``value`` as the main process (rank 0) has it, on every process (any picklable object)."""
    if not processes.distributed:
        return value
    box = [value if processes.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(items, processes):
    """Every process's list, concatenated in rank order."""
    if not processes.distributed:
        return list(items)
    parts = [None] * processes.world_size
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]
