"""Clustering stage: train several heads with the SCAN loss, keep the mean of the lowest-loss ones."""

import copy

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._checkpoints import StateOf
from ._device import to_device
from ._distributed import mean_over_processes
from ._scan_loss import SCANLoss, scan_loss_of_predictions
from ._trainer import Stage, train_stage


def train_scan(
    model, inputs, neighbors, *, entropy_weight, epochs, training, augment=None, images=True, learning_rate=1e-4,
    weight_decay=1e-4, encoder_learning_rate=None, anchors=None, keep_lowest_loss=False,
):
    """Train ``model`` in place so each sample and its neighbours get the same confident cluster.

    model: (B, ...) -> (B, n_heads, n_clusters) logits; every head trains at once.
    inputs: (N, ...) tensor; neighbors: (N, k) ints. Each step pairs every
    anchor with one of its k neighbours drawn at random; ``augment(batch,
    generator)``, if given, transforms anchors and neighbours.
    encoder_learning_rate: for a ``ClusterModel``, the encoder's rate
    (``learning_rate`` being the heads'); None: one rate for all. anchors: the
    samples this process draws anchors from (its share in a data-parallel fit);
    None: all. keep_lowest_loss: keep the weights of the epoch with the lowest
    training loss of the best head, as the paper keeps its lowest-loss model
    (that epoch's history entry has ``"kept": True``); otherwise the last.
    Returns ``(model on the device, interrupted)``.
    """
    neighbors = torch.as_tensor(neighbors)
    anchors = torch.arange(len(inputs)) if anchors is None else torch.as_tensor(anchors)
    loss_fn = SCANLoss(entropy_weight, training.processes)
    generator, processes = training.generator, training.processes
    lowest = {"loss": float("inf"), "epoch": None, "state": None}

    def batch_loss(forward, positions):
        batch_anchors = anchors[positions]
        choice = torch.randint(0, neighbors.shape[1], (len(batch_anchors),), generator=generator)
        batch = to_device(inputs[torch.cat([batch_anchors, neighbors[batch_anchors, choice]])], training.device, images)
        if augment is not None:
            batch = augment(batch, generator)
        total, consistency, entropy = loss_fn(*forward(batch).chunk(2))
        return total.sum(), {"terms": torch.stack([total, consistency, entropy]).detach()}

    def end_epoch(epoch, sums, n_batches, n_steps):
        total, consistency, entropy = (sums["terms"] / n_batches).cpu()
        best = int(torch.argmin(total))
        figures = {
            "loss": mean_over_processes(total.mean().item(), processes),
            "best_head_loss": mean_over_processes(total[best].item(), processes),
            "consistency": mean_over_processes(consistency[best].item(), processes),
            "entropy": entropy[best].item(),
        }
        if keep_lowest_loss and figures["best_head_loss"] < lowest["loss"]:
            lowest.update(loss=figures["best_head_loss"], epoch=epoch, state=copy.deepcopy(model.state_dict()))
        return figures

    groups = None
    if encoder_learning_rate is not None:
        encoder_parameters = {id(parameter) for parameter in model.encoder.parameters()}
        groups = [
            {"params": [p for p in model.parameters() if id(p) not in encoder_parameters]},
            {"params": list(model.encoder.parameters()), "lr": encoder_learning_rate},
        ]
    stage = Stage("scan", model, len(anchors), batch_loss, learning_rate, weight_decay, images=images,
                  parameter_groups=groups, end_epoch=end_epoch, kept=StateOf(lambda: dict(lowest), lowest.update))
    interrupted = train_stage(stage, epochs, training)
    if lowest["state"] is not None:
        model.load_state_dict(lowest["state"])
        for entry in training.history:  # the kept epoch says so in the history
            if entry["stage"] == "scan" and entry["epoch"] == lowest["epoch"]:
                entry["kept"] = True
    return model, interrupted


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
