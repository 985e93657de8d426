"""Pretext stage: SimCLR trains the encoder to be invariant to augmentations."""

import torch
from torch import nn

from ._augment import weak_views
from ._device import to_device
from ._ntxent import DEFAULT_TEMPERATURE, NTXentLoss
from ._trainer import Stage, train_stage


def projection_head(in_features, out_features=128):
    """SimCLR's MLP projection head: (B, in_features) -> (B, out_features)."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.BatchNorm1d(in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, out_features),
    )


def train_pretext(
    encoder, images, *, policy, epochs, training, temperature=DEFAULT_TEMPERATURE, learning_rate=1e-3,
    weight_decay=1e-6, projection_dim=128,
):
    """Train ``encoder`` in place with SimCLR's NT-Xent loss on two weak views per image.

    encoder: an :class:`~sklearn_scan._backbones.Encoder`, (B, C, H, W) -> (B, F).
    images: (N, C, H, W) tensor, uint8 or float in [0, 1] (in a data-parallel
    fit, this process's share). training: the fit's
    :class:`~sklearn_scan._trainer.Training`. Returns ``(encoder on the
    device, interrupted)``.
    """
    device = training.device
    network = nn.Sequential(encoder, projection_head(encoder.out_features, projection_dim).to(device))
    loss_fn = NTXentLoss(temperature, training.processes)

    def batch_loss(forward, indices):
        batch = to_device(images[indices], device, images=True)
        views = [weak_views(batch, policy, training.generator) for _ in range(2)]
        loss = loss_fn(*forward(torch.cat(views)).chunk(2))
        return loss, {"loss": loss.detach()}

    stage = Stage("pretext", network, len(images), batch_loss, learning_rate, weight_decay)
    interrupted = train_stage(stage, epochs, training)
    return encoder, interrupted
