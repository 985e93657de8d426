"""Self-labeling stage: confident predictions become pseudo-labels for strong views."""

import torch
import torch.nn.functional as F

from ._torch_utils import (
    autocast,
    cosine_schedule,
    prepare_module,
    run_epochs,
    shuffled_batches,
    to_device,
)


def balanced_cross_entropy(logits, pseudo_labels, n_clusters):
    """Cross-entropy with class weights inversely proportional to pseudo-label counts.

    logits: (B, C); pseudo_labels: (B,) ints. Clusters with few confident samples
    in the batch weigh as much in total as crowded ones. Returns a scalar.
    """
    counts = torch.bincount(pseudo_labels, minlength=n_clusters).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    weights = weights * (counts > 0).sum() / weights.sum()
    return F.cross_entropy(logits.float(), pseudo_labels, weight=weights)


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
    weak_augment=None,
    strong_augment=None,
    images=True,
    learning_rate=1e-4,
    weight_decay=1e-4,
    verbose=0,
    history=None,
):
    """Fine-tune ``model`` in place on its own confident predictions.

    model: (B, ...) -> (B, n_clusters) logits. In every batch the prediction on
    a weak view picks the samples whose top probability exceeds
    ``confidence_threshold``; the model then learns those pseudo-labels on
    strong views with :func:`balanced_cross_entropy`.
    Returns ``(model, interrupted)``; the model is on ``device``.
    """
    history = [] if history is None else history
    model = prepare_module(model, device, images)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=learning_rate, weight_decay=weight_decay)
    scheduler = cosine_schedule(optimizer, epochs)
    model.train()

    def train_one_epoch(epoch):
        loss_sum, confident, seen = torch.zeros((), device=device), 0, 0
        steps = 0
        for indices in shuffled_batches(len(inputs), batch_size, generator):
            batch = to_device(inputs[indices], device, images)
            weak = batch if weak_augment is None else weak_augment(batch, generator)
            with torch.no_grad(), autocast(device):
                probabilities = torch.softmax(model(weak).float(), dim=1)
            top_probability, pseudo_labels = probabilities.max(dim=1)
            mask = top_probability > confidence_threshold
            n_confident = int(mask.sum())
            seen += len(indices)
            confident += n_confident
            # Batch norm needs two samples to train on.
            if n_confident < 2:
                continue
            strong = batch[mask] if strong_augment is None else strong_augment(batch[mask], generator)
            with autocast(device):
                logits = model(strong)
            loss = balanced_cross_entropy(logits, pseudo_labels[mask], n_clusters)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            steps += 1
        # Stepped per epoch, since a batch without confident samples takes no step.
        if steps:
            scheduler.step()
        return {
            "loss": (loss_sum / max(steps, 1)).item(),
            "confident_share": confident / max(seen, 1),
        }

    interrupted = run_epochs("selflabel", epochs, train_one_epoch, verbose, history)
    model.eval()
    return model, interrupted
