"""Self-labeling stage: confident predictions become pseudo-labels for strong views."""

import copy

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ._batch_norm import recalibrate_batch_norm
from ._batching import predict_in_batches
from ._checkpoints import StateOf
from ._device import to_device
from ._distributed import Processes, global_sum, mean_over_processes
from ._precision import autocast
from ._trainer import Stage, train_stage

#: Self-labeling stops, and returns to the weights of the last good epoch, when the share of confident
#: samples falls below this fraction of the share it started from (a collapse: the network is unlearning
#: its clusters).
COLLAPSE_FRACTION = 0.5


def confidence(logits):
    """Top probability and cluster of every row of ``logits`` (N, C): ``(top (N,), labels (N,))``.

    Computed in float32, or in float64 for float64 logits.
    """
    logits = torch.as_tensor(logits)
    return torch.softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1).max(dim=-1)


def balanced_cross_entropy(logits, pseudo_labels, n_clusters, processes=Processes()):
    """Cross-entropy with class weights inversely proportional to pseudo-label counts.

    logits: (B, C); pseudo_labels: (B,) ints. Clusters with few confident samples
    in the batch weigh as much in total as crowded ones. Returns a scalar.
    With ``processes`` of a data-parallel fit, each process passes its share of
    the global batch: the counts are the global batch's, and the mean over
    processes of the returned losses is the global batch's loss.
    """
    counts = global_sum(torch.bincount(pseudo_labels, minlength=n_clusters).float(), processes)
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    weights = weights * (counts > 0).sum() / weights.sum()
    per_sample = F.cross_entropy(logits.float(), pseudo_labels, weight=weights, reduction="none")
    total_weight = global_sum(weights[pseudo_labels].sum(), processes)
    return per_sample.sum() * processes.world_size / total_weight


class StoppingRules:
    """When self-labeling stops, and which weights it keeps; its state goes into the stage's checkpoint.

    ``end_epoch(epoch, figures, labeler)`` after every epoch, with the epoch's
    confident share in ``figures``: under ``COLLAPSE_FRACTION`` of the first
    share the last good weights come back and the stage stops; with
    ``plateau=(epochs, gain)`` it stops when the share has not risen by
    ``gain`` in that many epochs; with a ``criterion(model) -> float``
    (lower is better, no labels) the weights where it was lowest are kept.
    """

    def __init__(self, labeler, first_share, criterion=None, plateau=None):
        self.criterion, self.plateau, self.first_share = criterion, plateau, first_share
        self.good_state = copy.deepcopy(labeler.state_dict())
        self.best_share, self.since_best, self.guard = first_share, 0, None
        if criterion is not None:
            start = float(criterion(labeler))
            self.guard = {"start": start, "best": start, "epoch": 0, "state": self.good_state}

    def end_epoch(self, epoch, figures, labeler):
        share = figures["confident_share"]
        if share < COLLAPSE_FRACTION * self.first_share:
            labeler.load_state_dict(self.good_state)
            return {**figures, "stopped": True}
        self.good_state = copy.deepcopy(labeler.state_dict())
        if self.guard is not None:
            figures["criterion"] = float(self.criterion(labeler))
            if figures["criterion"] < self.guard["best"]:
                self.guard.update(best=figures["criterion"], epoch=epoch + 1, state=self.good_state)
        if self.plateau is not None:
            patience, gain = self.plateau
            if share >= self.best_share + gain:
                self.best_share, self.since_best = share, 0
            else:
                self.since_best += 1
            if self.since_best >= patience:
                return {**figures, "stopped": True, "plateau": True}
        return figures

    def keep_guarded(self, labeler, history):
        """Load the weights the guard kept (if there is a guard) and say which in ``history``."""
        if self.guard is not None:
            labeler.load_state_dict(self.guard["state"])
            history.append({"stage": "selflabel_guard", "kept_epoch": self.guard["epoch"],
                            "start_criterion": self.guard["start"], "kept_criterion": self.guard["best"]})

    def state_dict(self):
        return {name: getattr(self, name) for name in ("good_state", "best_share", "since_best", "guard")}

    def load_state_dict(self, state):
        for name, value in state.items():
            setattr(self, name, value)


def train_selflabel(
    model, inputs, *, n_clusters, confidence_threshold, epochs, training, strong_augment=None, images=True,
    learning_rate=1e-4, weight_decay=1e-4, ema_decay=None, criterion=None, plateau=None, all_inputs=None,
):
    """Fine-tune ``model`` in place on its own confident predictions, as the paper's self-labeling.

    model: (B, ...) -> (B, n_clusters) logits; inputs: (N, ...) (this process's
    share in a data-parallel fit). In every batch the model, in eval mode,
    predicts the samples as they are; those above ``confidence_threshold``
    become pseudo-labels. The whole batch is strongly augmented and forwarded
    in train mode (batch norm sees every sample), and
    :func:`balanced_cross_entropy` counts the confident ones. Adam at a
    constant ``learning_rate``. The returned model's batch norm holds the
    statistics of the samples as they are (of ``all_inputs``, every process's
    samples in a data-parallel fit; default ``inputs``), not of the strong views.
    ``ema_decay``: a moving average of the weights chooses the pseudo-labels
    and is returned. :class:`StoppingRules` (``criterion``, ``plateau``) say
    when it stops and which weights it keeps (a ``"selflabel_guard"`` history
    entry names the guard's kept epoch, 0 for none).
    Returns ``(model on the device, interrupted)``.
    """
    device, processes = training.device, training.processes
    teacher = None
    if ema_decay:
        teacher = AveragedModel(model.to(device), multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    labeler = model if teacher is None else teacher.module
    top, _ = confidence(predict_in_batches(model, inputs, device, training.batch_size, images))
    counts = global_sum(torch.tensor([float((top > confidence_threshold).sum()), float(len(top))]), processes)
    rules = StoppingRules(labeler, float(counts[0] / counts[1].clamp_min(1)), criterion, plateau)

    def batch_loss(forward, indices):
        batch = to_device(inputs[indices], device, images)
        labeler.eval()
        with torch.no_grad(), autocast(device):
            top, pseudo_labels = confidence(labeler(batch))
        mask = top > confidence_threshold
        counts = global_sum(torch.tensor([int(mask.sum()), len(indices)]), processes)
        if counts[0] == 0 or len(indices) < 2:  # batch norm needs two samples; every process skips alike
            return None, {"counts": counts}
        views = batch if strong_augment is None else strong_augment(batch, training.generator)
        model.train()
        loss = balanced_cross_entropy(forward(views)[mask], pseudo_labels[mask], n_clusters, processes)
        return loss, {"counts": counts, "loss": loss.detach()}

    def end_epoch(epoch, sums, n_batches, n_steps):
        confident, seen = sums["counts"].tolist()
        loss = float(sums["loss"]) / n_steps if n_steps else 0.0
        figures = {"loss": mean_over_processes(loss, processes), "confident_share": confident / max(seen, 1)}
        return rules.end_epoch(epoch, figures, labeler)

    def kept_state():  # the stopping rules' state, and the teacher's weights
        return {"rules": rules.state_dict(), "teacher": None if teacher is None else teacher.state_dict()}

    def restore_kept(state):
        rules.load_state_dict(state["rules"])
        if teacher is not None:
            teacher.load_state_dict(state["teacher"])

    stage = Stage("selflabel", model, len(inputs), batch_loss, learning_rate, weight_decay, images=images,
                  schedule="constant", end_epoch=end_epoch, kept=StateOf(kept_state, restore_kept),
                  after_step=None if teacher is None else lambda: teacher.update_parameters(model))
    interrupted = train_stage(stage, epochs, training)
    rules.keep_guarded(labeler, training.history)
    if teacher is not None:
        model.load_state_dict(teacher.module.state_dict())
    if strong_augment is not None:  # trained on strong views: batch norm gets the samples' own statistics
        recalibrate_batch_norm(model, inputs if all_inputs is None else all_inputs, device, training.batch_size, images)
    model.eval()
    return model, interrupted
