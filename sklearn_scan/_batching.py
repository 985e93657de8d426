"""Batches: shuffled index batches for training, and a module applied to all samples in fixed batches."""

import copy

import torch

from ._device import is_on_device, prepare_module, to_device
from ._precision import autocast


def shuffled_batches(n_samples, batch_size, generator, n_steps=None):
    """Yield index tensors of a random permutation in batches.

    The last incomplete batch is dropped when there is more than one batch, so
    that batch norm never sees a batch of one sample. ``n_steps``: yield only
    that many batches (the processes of a data-parallel fit take the same
    number of steps, though their shares may differ by a sample).
    """
    order = torch.randperm(n_samples, generator=generator)
    if n_samples <= batch_size:
        yield order
        return
    starts = range(0, n_samples - batch_size + 1, batch_size)
    for start in starts if n_steps is None else starts[:n_steps]:
        yield order[start : start + batch_size]


def n_batches(n_samples, batch_size):
    """How many batches :func:`shuffled_batches` yields per epoch."""
    return 1 if n_samples <= batch_size else n_samples // batch_size


@torch.inference_mode()
def predict_in_batches(module, inputs, device, batch_size, images):
    """Apply ``module`` in eval mode to ``inputs`` (N, ...) and return a float32 numpy array.

    On a CPU, a submodule with a ``cpu_batch_size`` attribute caps the batch size.
    The module is used on a copy when it must move to another device, so a
    fitted estimator is never modified by inference.
    """
    if not is_on_device(module, device):
        module = prepare_module(copy.deepcopy(module), device, images)
    if device.type == "cpu":  # a module may cap the batch on a CPU (large pretrained backbones do)
        caps = [part.cpu_batch_size for part in module.modules() if hasattr(part, "cpu_batch_size")]
        batch_size = min([batch_size, *caps])
    was_training = module.training
    module.eval()
    outputs = None  # filled batch by batch: memory holds the outputs once
    try:
        for start in range(0, len(inputs), batch_size):
            batch = to_device(inputs[start : start + batch_size], device, images)
            with autocast(device):
                result = module(batch).float().cpu()
            if outputs is None:
                outputs = torch.empty((len(inputs), *result.shape[1:]), dtype=torch.float32)
            outputs[start : start + len(result)] = result
    finally:
        module.train(was_training)
    if outputs is None:
        raise ValueError("predict_in_batches got no samples.")
    return outputs.numpy()
