"""One training loop for every stage: optimiser, schedule, data parallelism, batches, precision, checkpoints, progress.

A stage (the pretext, the clustering step, self-labeling) supplies only what is its own:
the network it trains, its loss on a batch of sample indices, and optionally what it does at the
end of an epoch (keep the best weights, stop). :func:`train_stage` does the rest the same way for all.
"""

import dataclasses
import warnings
from typing import Callable

import torch
from torch import nn

from ._batching import shuffled_batches
from ._checkpoints import StageCheckpoint
from ._device import prepare_module
from ._distributed import Processes, data_parallel, local_batches, mean_over_processes
from ._memory import release_freed_memory
from ._precision import autocast
from ._progress import progress


@dataclasses.dataclass
class Training:
    """How every stage of a fit trains: what stays the same from one stage to the next.

    ``generator`` draws the stage's shuffles and augmentations (one per stage and
    process); ``checkpoints`` is the fit's
    :class:`~sklearn_scan._checkpoints.CheckpointDirectory` or None; entries of
    every epoch are appended to ``history``.
    """

    batch_size: int
    device: torch.device
    generator: torch.Generator
    processes: Processes = Processes()
    checkpoints: object = None
    verbose: int = 0
    history: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Stage:
    """What one stage brings to :func:`train_stage`.

    ``batch_loss(forward, indices) -> (loss, sums)``: ``forward(x)`` runs the
    trained network (data-parallel, in the fit's precision, float32 out) on a
    batch; ``indices`` (B,) are the samples of this step. ``loss`` is the scalar
    to minimise, or None to take no step; ``sums`` maps names to tensors that
    are summed over the epoch. ``end_epoch(epoch, sums, n_batches, n_steps) ->
    dict`` turns them into the epoch's figures (``"stopped": True`` ends the
    stage); by default the mean ``"loss"`` over the steps taken.
    ``parameter_groups``: the optimiser's groups (default: every parameter that
    requires gradients, at ``learning_rate``). ``schedule``: "cosine" (to zero
    over all steps) or "constant". ``after_step()`` runs after every optimiser
    step. ``kept``: an object with ``state_dict``/``load_state_dict`` for what
    the stage keeps between epochs, saved in its checkpoint.
    """

    name: str
    network: nn.Module
    n_items: int
    batch_loss: Callable
    learning_rate: float
    weight_decay: float = 0.0
    images: bool = True
    parameter_groups: list = None
    schedule: str = "cosine"
    end_epoch: Callable = None
    after_step: Callable = None
    kept: object = None


def mean_loss(processes):
    """The default ``end_epoch``: the mean ``"loss"`` over the steps of the epoch and over processes."""

    def figures(epoch, sums, n_batches, n_steps):
        return {"loss": mean_over_processes((sums["loss"] / max(n_steps, 1)).item(), processes)}

    return figures


def train_stage(stage, epochs, training):
    """Train ``stage.network`` in place for ``epochs`` epochs; returns True when it was interrupted.

    The network moves to ``training.device`` (channels-last for images), is
    wrapped for data-parallel training under torchrun, and trains with Adam
    on shuffled batches of ``training.batch_size`` samples in all (each process
    takes its share). Each epoch's figures are appended to
    ``training.history`` with the stage and epoch, shown on a progress bar with
    ``verbose`` and, with checkpoints, saved at epoch ends (the first that ends
    ``CHECKPOINT_SECONDS`` after the last write, and the last); a resumed stage
    starts after the epoch it saved. Ctrl-C ends the stage early, keeping what
    was learned.
    """
    processes, device = training.processes, training.device
    network = prepare_module(stage.network, device, stage.images)
    trained = data_parallel(network, device, processes)
    groups = stage.parameter_groups or [{"params": [p for p in network.parameters() if p.requires_grad]}]
    optimizer = torch.optim.Adam(groups, lr=stage.learning_rate, weight_decay=stage.weight_decay)
    local_size, n_steps = local_batches(stage.n_items, training.batch_size, processes)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * n_steps))
    end_epoch = stage.end_epoch or mean_loss(processes)

    def forward(inputs):
        with autocast(device):
            return trained(inputs).float()

    def one_epoch(epoch):
        network.train()
        sums, batches, steps = {}, 0, 0
        for indices in shuffled_batches(stage.n_items, local_size, training.generator, n_steps):
            loss, batch_sums = stage.batch_loss(forward, indices)
            for name, value in batch_sums.items():
                sums[name] = sums.get(name, 0) + value
            batches += 1
            if loss is None:
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if stage.schedule == "cosine":
                scheduler.step()
            if stage.after_step is not None:
                stage.after_step()
            steps += 1
        return end_epoch(epoch, sums, batches, steps)

    checkpoint = None
    if training.checkpoints is not None:
        saved = {"network": network, "optimizer": optimizer, "scheduler": scheduler}
        checkpoint = StageCheckpoint(training.checkpoints, stage.name, saved, [training.generator], stage.kept)
    interrupted = run_epochs(stage.name, epochs, one_epoch, training, checkpoint)
    network.eval()
    return interrupted


def run_epochs(name, n_epochs, one_epoch, training, checkpoint=None):
    """Run ``one_epoch(epoch) -> dict`` up to ``n_epochs`` times, recording history; True when interrupted."""
    history = training.history
    verbose = training.verbose if training.processes.is_main else 0
    first = checkpoint.restore(history) if checkpoint is not None else 0
    if first is None:  # the saved stage had stopped
        first = n_epochs
    bar = progress(range(first, n_epochs), verbose, desc=name, initial=first, total=n_epochs)
    try:
        for epoch in bar:
            figures = one_epoch(epoch)
            release_freed_memory()
            history.append({"stage": name, "epoch": epoch, **figures})
            if verbose:
                bar.set_postfix({key: f"{value:.4g}" for key, value in figures.items()})
            stopped = bool(figures.get("stopped"))
            if checkpoint is not None:
                checkpoint.after_epoch(epoch, stopped or epoch == n_epochs - 1, history, stopped=stopped)
            if stopped:
                break
    except KeyboardInterrupt:
        warnings.warn(
            f"Training interrupted during the {name} stage; keeping what was learned so far.", RuntimeWarning
        )
        history.append({"stage": name, "epoch": None, "interrupted": True})
        return True
    finally:
        if verbose:
            bar.close()
    return False
