"""The SCAN loss: consistent predictions for neighbours, spread over all clusters.

One formula, two uses: :class:`SCANLoss` on a batch of anchors and neighbours (training, with
gradients, across processes), :func:`scan_loss_of_predictions` on fixed predictions of all samples
and all their neighbours (choosing heads, scoring).
"""

import numpy as np
import torch
from torch import nn

from ._distributed import Processes, global_sum


def log_dot_products(log_probs, partner_log_probs):
    """log <p_i, p_j> of matching rows, computed stably in log space: (..., C), (..., C) -> (...)."""
    return torch.logsumexp(log_probs + partner_log_probs, dim=-1)


def entropy(mean_probs):
    """Entropy of a mean prediction (..., C) -> (...)."""
    return -(mean_probs * torch.log(mean_probs.clamp_min(1e-8))).sum(dim=-1)


class SCANLoss(nn.Module):
    """Minus the log dot product of neighbour predictions, minus weighted entropy.

    For anchor predictions p_i and neighbour predictions p_j (softmaxes over C
    clusters) the loss is ``-mean_i log <p_i, p_j> - entropy_weight * H(mean_i p_i)``.
    The first term (consistency) rewards confident, agreeing predictions; the
    entropy of the mean prediction keeps all samples from collapsing into one
    cluster. With ``processes`` of a data-parallel fit, each process passes
    its share of the global batch and the mean prediction is that of the
    global batch, summed over processes with gradients.
    """

    def __init__(self, entropy_weight=5.0, processes=Processes()):
        super().__init__()
        if not entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be non-negative, got {entropy_weight}.")
        self.entropy_weight = float(entropy_weight)
        self.processes = processes

    def forward(self, anchor_logits, neighbor_logits):
        """Loss terms per head.

        anchor_logits, neighbor_logits: (B, ..., C), e.g. (B, n_heads, C). The
        batch dimension is averaged; any middle dimensions are kept.
        Returns ``(total, consistency, entropy)``, each of shape (...).
        """
        if anchor_logits.shape != neighbor_logits.shape:
            raise ValueError(
                f"SCANLoss takes logits of the same shape; got {tuple(anchor_logits.shape)} "
                f"and {tuple(neighbor_logits.shape)}."
            )
        anchor_log_probs = torch.log_softmax(anchor_logits.float(), dim=-1)
        neighbor_log_probs = torch.log_softmax(neighbor_logits.float(), dim=-1)
        consistency = -log_dot_products(anchor_log_probs, neighbor_log_probs).mean(dim=0)
        batch_size = global_sum(torch.tensor(float(anchor_logits.shape[0])), self.processes)
        mean_probs = global_sum(anchor_log_probs.exp().sum(dim=0), self.processes, differentiable=True) / batch_size
        spread = entropy(mean_probs)
        return consistency - self.entropy_weight * spread, consistency, spread


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
        log_dot_sum += log_dot_products(anchors, partners).sum(dim=(0, 1), dtype=torch.float64)
    consistency = (-log_dot_sum / (n_samples * neighbors.shape[1])).float()
    spread = entropy(log_probs.exp().sum(dim=0, dtype=torch.float64).float() / n_samples)
    total = consistency - entropy_weight * spread
    return total.numpy(), consistency.numpy(), spread.numpy()
