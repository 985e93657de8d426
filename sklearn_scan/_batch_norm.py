"""Batch-norm statistics of the samples as they are, for a network trained on augmented views of them.

A network that trains on augmented views (RandAugment, Cutout) keeps running statistics of those views in
its batch-norm layers, yet predicts the samples as they are. :func:`recalibrate_batch_norm` replaces them
with the statistics of the samples themselves.
"""

import torch
from torch import nn

from ._device import to_device
from ._precision import autocast


def batch_norm_layers(module):
    return [layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batch_norm(module, inputs, device, batch_size, images):
    """Set the running statistics of ``module``'s batch-norm layers to those of ``inputs`` (N, ...) as they are.

    One pass without gradients with only the batch-norm layers in train mode (dropout stays off and draws
    nothing), averaging over all batches; ``module`` ends in eval mode. Layers that stay in eval mode when
    ``module`` trains (a frozen encoder's) keep their statistics; a network without batch norm is left as it is.
    """
    module.train()
    layers = [layer for layer in batch_norm_layers(module) if layer.training]
    module.eval()
    if not layers:
        return
    for layer in layers:
        layer.train()
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
