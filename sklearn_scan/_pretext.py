"""Pretext stage: SimCLR trains the encoder to be invariant to augmentations."""

import torch
from torch import nn

from ._augment import weak_views
from ._checkpoints import stage_checkpoint
from ._distributed import Processes, data_parallel, local_batches, mean_over_processes
from ._ntxent import DEFAULT_TEMPERATURE, NTXentLoss
from ._torch_utils import (
    autocast,
    cosine_schedule,
    prepare_module,
    run_epochs,
    shuffled_batches,
    to_device,
)


def projection_head(in_features, out_features=128):
    """SimCLR's MLP projection head: (B, in_features) -> (B, out_features)."""
    return nn.Sequential(
        nn.Linear(in_features, in_features),
        nn.BatchNorm1d(in_features),
        nn.ReLU(inplace=True),
        nn.Linear(in_features, out_features),
    )


def train_pretext(
    encoder,
    images,
    *,
    policy,
    epochs,
    batch_size,
    device,
    generator,
    temperature=DEFAULT_TEMPERATURE,
    learning_rate=1e-3,
    weight_decay=1e-6,
    projection_dim=128,
    processes=Processes(),
    checkpoints=None,
    verbose=0,
    history=None,
):
    """Train ``encoder`` in place with SimCLR's NT-Xent loss on two views per image.

    encoder: an :class:`~sklearn_scan._backbones.Encoder`, (B, C, H, W) -> (B, F).
    images: (N, C, H, W) tensor, uint8 or float in [0, 1], on any device: with
    ``processes`` of a data-parallel fit, this process's share, of which it
    takes ``batch_size / world_size`` images a step. With ``checkpoints`` (a
    :class:`~sklearn_scan._checkpoints.CheckpointDirectory`), training resumes
    from the stage's checkpoint and saves to it.
    Returns ``(encoder, interrupted)``; the encoder is on ``device``.
    """
    history = [] if history is None else history
    encoder = prepare_module(encoder, device, images=True)
    head = projection_head(encoder.out_features, projection_dim).to(device)
    network = nn.Sequential(encoder, head)
    model = data_parallel(network, device, processes)
    loss_fn = NTXentLoss(temperature, processes)
    local_size, n_steps = local_batches(len(images), batch_size, processes)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = cosine_schedule(optimizer, epochs * n_steps)
    model.train()

    def train_one_epoch(epoch):
        total, count = torch.zeros((), device=device), 0
        for indices in shuffled_batches(len(images), local_size, generator, n_steps):
            batch = to_device(images[indices], device, images=True)
            view_a = weak_views(batch, policy, generator)
            view_b = weak_views(batch, policy, generator)
            with autocast(device):
                projections = model(torch.cat([view_a, view_b]))
            loss = loss_fn(*projections.float().chunk(2))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
            count += 1
        return {"loss": mean_over_processes((total / count).item(), processes)}

    saved = {"network": network, "optimizer": optimizer, "scheduler": scheduler}
    checkpoint = stage_checkpoint(checkpoints, "pretext", saved, [generator])
    interrupted = run_epochs(
        "pretext", epochs, train_one_epoch, verbose if processes.is_main else 0, history, checkpoint
    )
    encoder.eval()
    return encoder, interrupted
