"""Self-labeling stage: confident predictions become pseudo-labels for strong views."""

import copy

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

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
    """Top probability and cluster of every row of ``logits`` (N, C): ``(top (N,), labels (N,))``."""
    return torch.softmax(torch.as_tensor(logits).float(), dim=-1).max(dim=-1)


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


def train_selflabel(
    model, inputs, *, n_clusters, confidence_threshold, epochs, training, strong_augment=None, images=True,
    learning_rate=1e-4, weight_decay=1e-4, ema_decay=None, criterion=None, plateau=None,
):
    """Fine-tune ``model`` in place on its own confident predictions, as the paper's self-labeling.

    model: (B, ...) -> (B, n_clusters) logits; inputs: (N, ...) (this process's
    share in a data-parallel fit). In every batch the model, in eval mode,
    predicts the samples as they are; those above ``confidence_threshold``
    become pseudo-labels. The whole batch is strongly augmented and forwarded
    in train mode (batch norm sees every sample), and
    :func:`balanced_cross_entropy` counts the confident ones. Adam at a
    constant ``learning_rate``.

    Stops: when the confident share falls below ``COLLAPSE_FRACTION`` of its
    start (the last good epoch's weights come back, ``"stopped"`` in history);
    with ``plateau=(epochs, gain)``, when the share has not risen by ``gain``
    in that many epochs. ``ema_decay``: a moving average of the weights
    chooses the pseudo-labels and is returned. ``criterion(model) -> float``
    (lower is better, no labels) guards the stage: measured before training
    and after every epoch, and the weights where it was lowest are returned
    (a ``"selflabel_guard"`` history entry names the kept epoch, 0 for none).
    Returns ``(model on the device, interrupted)``.
    """
    device, processes, history = training.device, training.processes, training.history
    teacher = None
    if ema_decay:
        teacher = AveragedModel(model.to(device), multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    labeler = model if teacher is None else teacher.module
    kept = {"good_state": copy.deepcopy(labeler.state_dict()), "guard": None, "since_best": 0}
    if criterion is not None:
        start = float(criterion(labeler))
        kept["guard"] = {"start": start, "best": start, "epoch": 0, "state": kept["good_state"]}
    top, _ = confidence(predict_in_batches(model, inputs, device, training.batch_size, images))
    confident_start, seen_start = global_sum(torch.tensor([float((top > confidence_threshold).sum()), float(len(top))]),
                                             processes).tolist()
    first_share = confident_start / max(seen_start, 1)
    kept["best_share"] = first_share

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
        share = confident / max(seen, 1)
        loss = float(sums["loss"]) / n_steps if n_steps else 0.0
        figures = {"loss": mean_over_processes(loss, processes), "confident_share": share}
        if share < COLLAPSE_FRACTION * first_share:
            labeler.load_state_dict(kept["good_state"])
            return {**figures, "stopped": True}
        kept["good_state"] = copy.deepcopy(labeler.state_dict())
        guard = kept["guard"]
        if guard is not None:
            figures["criterion"] = float(criterion(labeler))
            if figures["criterion"] < guard["best"]:
                guard.update(best=figures["criterion"], epoch=epoch + 1, state=kept["good_state"])
        if plateau is not None:
            patience, gain = plateau
            if share >= kept["best_share"] + gain:
                kept.update(best_share=share, since_best=0)
            else:
                kept["since_best"] += 1
            if kept["since_best"] >= patience:
                return {**figures, "stopped": True, "plateau": True}
        return figures

    def after_step():
        if teacher is not None:
            teacher.update_parameters(model)

    def kept_state():  # the teacher's weights, the last good weights and the guard's best
        return {**kept, "teacher": None if teacher is None else teacher.state_dict()}

    def restore_kept(state):
        if teacher is not None:
            teacher.load_state_dict(state.pop("teacher"))
        kept.update({key: value for key, value in state.items() if key != "teacher"})

    stage = Stage("selflabel", model, len(inputs), batch_loss, learning_rate, weight_decay, images=images,
                  schedule="constant", end_epoch=end_epoch, after_step=after_step,
                  kept=StateOf(kept_state, restore_kept))
    interrupted = train_stage(stage, epochs, training)
    if kept["guard"] is not None:
        guard = kept["guard"]
        labeler.load_state_dict(guard["state"])
        history.append({"stage": "selflabel_guard", "kept_epoch": guard["epoch"],
                        "start_criterion": guard["start"], "kept_criterion": guard["best"]})
    if teacher is not None:
        model.load_state_dict(teacher.module.state_dict())
    model.eval()
    return model, interrupted
