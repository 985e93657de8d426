"""Randomness of a fit: generators drawn from one seed, torch's global generator forked where it is used."""

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed, device):
    """Run a block with torch's global RNG seeded, restoring the caller's state after.

    Weight initialisation uses torch's global RNG; forking it keeps fits
    repeatable without touching the random state the user owns.
    """
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def make_generator(seed):
    """A CPU ``torch.Generator``: all sampling (shuffles, augmentations) draws from it.

    Sampling on the CPU and moving the few numbers to the device keeps runs
    identical across devices and avoids per-device generator semantics.
    """
    return torch.Generator().manual_seed(int(seed))
