"""The SCAN loss: consistent predictions for neighbours, spread over all clusters."""

import torch
from torch import nn

from ._distributed import Processes, global_sum


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
        # log <p_i, p_j> computed stably in log space.
        log_dot = torch.logsumexp(anchor_log_probs + neighbor_log_probs, dim=-1)
        consistency = -log_dot.mean(dim=0)
        batch_size = global_sum(torch.tensor(float(anchor_logits.shape[0])), self.processes)
        mean_probs = global_sum(anchor_log_probs.exp().sum(dim=0), self.processes, differentiable=True) / batch_size
        entropy = -(mean_probs * torch.log(mean_probs.clamp_min(1e-8))).sum(dim=-1)
        return consistency - self.entropy_weight * entropy, consistency, entropy
