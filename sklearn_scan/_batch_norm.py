"""Batch-norm statistics of the samples as they are, for a network trained on augmented views of them.

A network that trains on strong views (RandAugment, Cutout) keeps running statistics of those views in its
batch-norm layers, yet predicts the samples as they are. :func:`recalibrate_batch_norm` replaces them with
the statistics of the samples themselves; :func:`batch_norm_statistics_kept` stops a training stage from
changing them, so that a network in eval mode keeps judging the samples as they are while it trains.
"""

import contextlib

import torch
from torch import nn

from ._device import to_device
from ._precision import autocast


def batch_norm_layers(module):
    return [layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def batch_norm_statistics_kept(module):
    """Within this block, forward passes in train mode normalise with batch statistics but leave the running
    statistics of ``module``'s batch-norm layers as they are."""
    layers = batch_norm_layers(module)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


@torch.no_grad()
def recalibrate_batch_norm(module, inputs, device, batch_size, images):
    """Set the running statistics of ``module``'s batch-norm layers to those of ``inputs`` (N, ...) as they are.

    One pass in train mode, without gradients, averaging over all batches; ``module`` ends in eval mode.
    Layers that stay in eval mode when ``module`` trains (a frozen encoder's) keep their statistics; a
    network without batch norm is left as it is.
    """
    module.train()
    layers = [layer for layer in batch_norm_layers(module) if layer.training]
    if not layers:
        module.eval()
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
    try:
        for start in range(0, len(inputs), batch_size):
            batch = to_device(inputs[start : start + batch_size], device, images)
            if len(batch) > 1:
                with autocast(device):
                    module(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        module.eval()
