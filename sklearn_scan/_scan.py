"""Clustering stage: train several heads with the SCAN loss, keep the mean of the lowest-loss ones."""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._checkpoints import stage_checkpoint
from ._distributed import Processes, data_parallel, local_batches, mean_over_processes
from ._scan_loss import SCANLoss
from ._torch_utils import (
    autocast,
    cosine_schedule,
    prepare_module,
    run_epochs,
    shuffled_batches,
    to_device,
)


def train_scan(
    model,
    inputs,
    neighbors,
    *,
    entropy_weight,
    epochs,
    batch_size,
    device,
    generator,
    augment=None,
    images=True,
    learning_rate=1e-4,
    weight_decay=1e-4,
    encoder_learning_rate=None,
    anchors=None,
    processes=Processes(),
    checkpoints=None,
    verbose=0,
    history=None,
):
    """Train ``model`` in place so each sample and its neighbours get the same confident cluster.

    model: (B, ...) -> (B, n_heads, n_clusters) logits; every head is trained at once.
    inputs: (N, ...) tensor; neighbors: (N, k) int array from :func:`mine_neighbors`.
    augment: optional ``augment(batch, generator)`` applied to anchors and neighbours.
    Each step pairs every anchor with one of its k neighbours drawn at random.
    encoder_learning_rate: for a model with an ``encoder`` (a ``ClusterModel``),
    the encoder's learning rate, ``learning_rate`` being the heads'; None: one rate.
    anchors: the indices of the samples this process draws its anchors from
    (its share in a data-parallel fit, ``batch_size / world_size`` a step);
    None: all of them. checkpoints: a
    :class:`~sklearn_scan._checkpoints.CheckpointDirectory` to resume from and save to.
    Returns ``(model, interrupted)``; the model is on ``device``.
    """
    history = [] if history is None else history
    neighbors = torch.as_tensor(neighbors)
    anchors = torch.arange(len(inputs)) if anchors is None else torch.as_tensor(anchors)
    model = prepare_module(model, device, images)
    loss_fn = SCANLoss(entropy_weight, processes)
    if encoder_learning_rate is None:
        groups = [{"params": list(model.parameters())}]
    else:
        encoder_parameters = {id(parameter) for parameter in model.encoder.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in encoder_parameters]},
            {"params": list(model.encoder.parameters()), "lr": encoder_learning_rate},
        ]
    optimizer = torch.optim.Adam(groups, lr=learning_rate, weight_decay=weight_decay)
    local_size, n_steps = local_batches(len(anchors), batch_size, processes)
    scheduler = cosine_schedule(optimizer, epochs * n_steps)
    trained = data_parallel(model, device, processes)
    model.train()

    def train_one_epoch(epoch):
        sums, count = 0, 0
        for positions in shuffled_batches(len(anchors), local_size, generator, n_steps):
            batch_anchors = anchors[positions]
            choice = torch.randint(0, neighbors.shape[1], (len(batch_anchors),), generator=generator)
            partners = neighbors[batch_anchors, choice]
            batch = to_device(inputs[torch.cat([batch_anchors, partners])], device, images)
            if augment is not None:
                batch = augment(batch, generator)
            with autocast(device):
                logits = trained(batch)
            total, consistency, entropy = loss_fn(*logits.float().chunk(2))
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
            optimizer.step()
            scheduler.step()
            sums = sums + torch.stack([total, consistency, entropy]).detach()
            count += 1
        total, consistency, entropy = (sums / count).cpu()
        best = int(torch.argmin(total))
        return {
            "loss": mean_over_processes(total.mean().item(), processes),
            "best_head_loss": mean_over_processes(total[best].item(), processes),
            "consistency": mean_over_processes(consistency[best].item(), processes),
            "entropy": entropy[best].item(),
        }

    saved = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    checkpoint = stage_checkpoint(checkpoints, "scan", saved, [generator])
    interrupted = run_epochs("scan", epochs, train_one_epoch, verbose if processes.is_main else 0, history, checkpoint)
    model.eval()
    return model, interrupted


def scan_loss_of_predictions(logits, neighbors, entropy_weight, chunk_elements=2**21):
    """The SCAN loss of fixed predictions over all samples and all their neighbours.

    logits: (N, ..., C) array, e.g. (N, n_heads, C); neighbors: (N, k).
    The consistency term averages over every (sample, neighbour) pair. Pairs
    are taken in chunks of rows of about ``chunk_elements`` values, so memory
    holds the log-probabilities and one chunk, whatever N.
    Returns ``(total, consistency, entropy)`` numpy arrays of shape (...).
    """
    log_probs = torch.log_softmax(torch.as_tensor(np.asarray(logits, dtype=np.float32)), dim=-1)
    neighbors = torch.as_tensor(neighbors)
    n_samples = len(log_probs)
    rows_per_chunk = max(1, chunk_elements // max(1, neighbors.shape[1] * log_probs[0].numel()))
    log_dot_sum = torch.zeros(log_probs.shape[1:-1], dtype=torch.float64)
    for start in range(0, n_samples, rows_per_chunk):
        anchors = log_probs[start : start + rows_per_chunk].unsqueeze(1)  # (R, 1, ..., C)
        partners = log_probs[neighbors[start : start + rows_per_chunk]]  # (R, k, ..., C)
        log_dot_sum += torch.logsumexp(anchors + partners, dim=-1).sum(dim=(0, 1), dtype=torch.float64)
    consistency = (-log_dot_sum / (n_samples * neighbors.shape[1])).float()
    mean_probs = log_probs.exp().sum(dim=0, dtype=torch.float64).float() / n_samples
    entropy = -(mean_probs * torch.log(mean_probs.clamp_min(1e-8))).sum(dim=-1)
    total = consistency - entropy_weight * entropy
    return total.numpy(), consistency.numpy(), entropy.numpy()


def choose_heads(logits, neighbors, entropy_weight, n_averaged):
    """The heads to keep, by SCAN loss, with their clusters matched to the lowest-loss head's.

    logits: (N, n_heads, C) predictions on the training samples; neighbors: (N, k).
    Returns ``(losses (n_heads,), kept (m,) head indices, lowest loss first,
    orders (m, C))``: cluster ``orders[i][j]`` of head ``kept[i]`` is the one
    that agrees most with cluster j of the lowest-loss head (Hungarian matching
    of their training labels), with m = min(n_averaged, n_heads).
    """
    losses, _, _ = scan_loss_of_predictions(logits, neighbors, entropy_weight)
    kept = np.argsort(losses, kind="stable")[:n_averaged]
    n_clusters = logits.shape[2]
    reference = logits[:, kept[0]].argmax(axis=1)
    orders = []
    for head in kept:
        agreement = np.zeros((n_clusters, n_clusters))
        np.add.at(agreement, (logits[:, head].argmax(axis=1), reference), 1)
        rows, cols = linear_sum_assignment(-agreement)
        order = np.empty(n_clusters, dtype=np.int64)
        order[cols] = rows
        orders.append(order)
    return losses, kept, np.array(orders)
