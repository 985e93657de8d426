"""Self-labeling stage: confident predictions become pseudo-labels for strong views."""

import copy

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ._checkpoints import StateOf, stage_checkpoint
from ._distributed import Processes, data_parallel, global_sum, local_batches, mean_over_processes
from ._torch_utils import (
    autocast,
    cosine_schedule,
    predict_in_batches,
    prepare_module,
    run_epochs,
    shuffled_batches,
    to_device,
)


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


#: Self-labeling stops, and returns to the weights of the last good epoch, when the share of confident
#: samples falls below this fraction of the share it started from (the paper keeps the weights where
#: the confident share plateaus; a collapse means the network is unlearning its clusters).
COLLAPSE_FRACTION = 0.5


def train_selflabel(
    model,
    inputs,
    *,
    n_clusters,
    confidence_threshold,
    epochs,
    batch_size,
    device,
    generator,
    strong_augment=None,
    images=True,
    learning_rate=1e-4,
    weight_decay=1e-4,
    ema_decay=None,
    criterion=None,
    processes=Processes(),
    checkpoints=None,
    verbose=0,
    history=None,
):
    """Fine-tune ``model`` in place on its own confident predictions.

    model: (B, ...) -> (B, n_clusters) logits. In every batch the model, in
    eval mode, predicts the images as they are; those whose top probability
    exceeds ``confidence_threshold`` become pseudo-labels. The whole batch is
    then strongly augmented and forwarded in train mode (so batch norm sees
    every image, not a few class-skewed ones), and the loss,
    :func:`balanced_cross_entropy`, counts only the confident samples.
    When an epoch's confident share falls below ``COLLAPSE_FRACTION`` of the
    share before training, the weights of the last good epoch come back and
    the stage stops (``"stopped": True`` in its history entry).
    With ``ema_decay`` (the paper's ImageNet recipe: 0.999), an exponential moving
    average of the weights (batch-norm statistics included) chooses the
    pseudo-labels and becomes the returned model.
    ``criterion(model) -> float``, lower is better and computed without labels,
    guards the stage: it is measured before training and after every epoch,
    and the weights where it was lowest are returned, those before training
    when no epoch improved on them (a ``"selflabel_guard"`` history entry
    names the kept epoch, 0 for none). With ``processes`` of a data-parallel
    fit, ``inputs`` is this process's share, and the pseudo-label counts,
    confident shares and the decision to skip a step are the global batch's.
    checkpoints: a :class:`~sklearn_scan._checkpoints.CheckpointDirectory` to
    resume from and save to (the guard's best weights included).
    Returns ``(model, interrupted)``; the model is on ``device``.
    """
    history = [] if history is None else history
    model = prepare_module(model, device, images)
    trained = data_parallel(model, device, processes)
    local_size, n_steps = local_batches(len(inputs), batch_size, processes)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=learning_rate, weight_decay=weight_decay)
    scheduler = cosine_schedule(optimizer, epochs)
    teacher = None
    if ema_decay:
        teacher = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    labeler = model if teacher is None else teacher.module
    good_state = copy.deepcopy(labeler.state_dict())
    guard = None
    if criterion is not None:
        start = float(criterion(labeler))
        guard = {"start": start, "best": start, "epoch": 0, "state": good_state}
    with autocast(device):
        logits = torch.from_numpy(predict_in_batches(model, inputs, device, batch_size, images))
    counts = torch.tensor([float((torch.softmax(logits, dim=1).max(dim=1).values > confidence_threshold).sum()),
                           float(len(logits))])
    confident_start, seen_start = global_sum(counts, processes).tolist()
    first_share = confident_start / max(seen_start, 1)

    def train_one_epoch(epoch):
        nonlocal good_state
        loss_sum, confident, seen = torch.zeros((), device=device), 0, 0
        steps = 0
        for indices in shuffled_batches(len(inputs), local_size, generator, n_steps):
            batch = to_device(inputs[indices], device, images)
            labeler.eval()
            with torch.no_grad(), autocast(device):
                probabilities = torch.softmax(labeler(batch).float(), dim=1)
            top_probability, pseudo_labels = probabilities.max(dim=1)
            mask = top_probability > confidence_threshold
            n_confident, n_seen = global_sum(torch.tensor([int(mask.sum()), len(indices)]), processes).tolist()
            seen += n_seen
            confident += n_confident
            # Batch norm needs two samples to train on; every process skips the same steps.
            if n_confident == 0 or len(indices) < 2:
                continue
            views = batch if strong_augment is None else strong_augment(batch, generator)
            model.train()
            with autocast(device):
                logits = trained(views)
            loss = balanced_cross_entropy(logits[mask], pseudo_labels[mask], n_clusters, processes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if teacher is not None:
                teacher.update_parameters(model)
            loss_sum += loss.detach()
            steps += 1
        # Stepped per epoch, since a batch without confident samples takes no step.
        if steps:
            scheduler.step()
        share = confident / max(seen, 1)
        figures = {"loss": mean_over_processes((loss_sum / max(steps, 1)).item(), processes), "confident_share": share}
        if share < COLLAPSE_FRACTION * first_share:
            labeler.load_state_dict(good_state)
            return {**figures, "stopped": True}
        good_state = copy.deepcopy(labeler.state_dict())
        if guard is not None:
            figures["criterion"] = float(criterion(labeler))
            if figures["criterion"] < guard["best"]:
                guard.update(best=figures["criterion"], epoch=epoch + 1, state=good_state)
        return figures

    saved = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    if teacher is not None:
        saved["teacher"] = teacher

    def kept_state():  # what else an epoch hands the next: the last good weights and the guard's best
        return {"good_state": good_state, "guard": guard}

    def restore_kept(state):
        nonlocal good_state
        good_state = state["good_state"]
        if guard is not None:
            guard.update(state["guard"])

    checkpoint = stage_checkpoint(checkpoints, "selflabel", saved, [generator], StateOf(kept_state, restore_kept))
    interrupted = run_epochs(
        "selflabel", epochs, train_one_epoch, verbose if processes.is_main else 0, history, checkpoint
    )
    if guard is not None:
        labeler.load_state_dict(guard["state"])
        history.append({"stage": "selflabel_guard", "kept_epoch": guard["epoch"],
                        "start_criterion": guard["start"], "kept_criterion": guard["best"]})
    if teacher is not None:
        model.load_state_dict(teacher.module.state_dict())
    model.eval()
    return model, interrupted
