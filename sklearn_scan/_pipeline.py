"""The SCAN pipeline as one function: :func:`fit_pipeline` runs the stages in order on a data source.

::

    source (_sources)  --decoded-->  pretext (_pretext)  --embed-->  neighbours (_neighbors)
        --> clustering step (_scan)  --> self-labeling (_selflabel)  --> FitResult

A :class:`~sklearn_scan._config.FitConfig` says what each stage does; :class:`FitResult` holds
what the fit learnt. Each stage is a function of explicit inputs, run by the one training loop
of :mod:`sklearn_scan._trainer`.
"""

import contextlib
import copy
import dataclasses
import functools
import time
import warnings

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_memory

from ._augment import WEAK_VIEW_FIELDS, ViewsEncoder, pick_views, policy_for_images, strong_views, weak_views
from ._backbones import ClusteringHeads, ClusterModel, build_encoder, frozen
from ._batch_norm import recalibrate_batch_norm
from ._batching import predict_in_batches
from ._config import (
    ENCODER_LEARNING_RATE,
    HEADS_LEARNING_RATE,
    MLP_SCAN_EPOCHS,
    PRETEXT_ENCODER_SCAN_IMAGES,
    SCAN_EPOCHS_RANGE,
    SCAN_IMAGES,
    SELFLABEL_LEARNING_RATE,
    UNIT_ROWS_LEARNING_RATE,
    auto_epochs,
    auto_pretext_epochs,
    needs_data_statistics,
)
from ._distributed import Processes, from_main_process, gather_by_position, gather_lists, global_sum
from ._inputs import check_sample_count, per_channel_statistics
from ._memory import reuse_freed_memory
from ._neighbors import mine_neighbors
from ._precision import mixed_precision
from ._pretext import train_pretext
from ._random import make_generator, seeded
from ._scan import choose_heads, train_scan
from ._scan_loss import scan_loss_of_predictions
from ._selflabel import confidence, train_selflabel
from ._sources import DecodedImages
from ._trainer import Training

#: The kept head is the mean of this many lowest-loss heads, their clusters matched (docs/parameters.md).
AVERAGED_HEADS = 10

#: Heads on a frozen encoder no pretext trained on the data (a pretrained backbone) train on this many
#: weak views of every colour image, embedded once (``scan_views="auto"``; docs/parameters.md).
AUTO_SCAN_VIEWS = 2

#: Self-labeling stops when the confident share has not risen by ``gain`` in ``epochs`` epochs, and keeps
#: those weights: the paper saves them where the share plateaus.
SELFLABEL_PLATEAU = (3, 0.002)


@dataclasses.dataclass
class FitResult:
    """What a fit learnt; each field is the estimator's fitted attribute of the same name plus "_"."""

    model: ClusterModel
    backbone_name: str
    input_shape: tuple
    device: str
    metric: str
    neighbors: np.ndarray
    head_losses: np.ndarray
    best_head: int
    history: list
    stage_seconds: dict
    stage_labels: dict
    labels: np.ndarray
    confidence: np.ndarray
    image_names: list
    skipped_images: list


class StageClock:
    """Wall time of consecutive stages: ``lap(name)`` closes the stage that just ran."""

    def __init__(self):
        self.seconds, self.start = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.seconds[name] = now - self.start
        self.start = now


def fit_pipeline(source, config):
    """Run SCAN's stages on ``source`` (an :class:`~sklearn_scan._sources.ArraySource` or
    :class:`~sklearn_scan._sources.ImageCollection`) as ``config`` says; returns a :class:`FitResult`.
    """
    with mixed_precision(config.mixed_precision), reuse_freed_memory():
        return _run_stages(source, config)


def _run_stages(source, config):
    clock, processes = StageClock(), config.processes
    all_samples = source
    if processes.distributed:
        source = source.share(processes)
    if not config.embeds_once:
        source = source.decoded(*decoded_images_file(config, "share" if processes.distributed else None))
    n_samples = int(global_sum(torch.tensor(source.n_samples), processes))
    check_sample_count(n_samples, config.n_clusters, config.n_neighbors)
    policy = policy_for_images(*source.input_shape, **config.augmentation_params) if source.images else None
    encoder, backbone_name, history = train_encoder(source, config, policy, n_samples)
    clock.lap("pretext")

    # The MLP on user-given features is the model itself: it always trains; "normalized" has nothing to train.
    freeze = (config.freeze_backbone and backbone_name != "mlp") or backbone_name == "normalized"
    pretext_trained = any(entry["stage"] == "pretext" for entry in history)
    n_views = scan_views(policy, pretext_trained, source.input_shape[0]) if freeze and source.images else 0
    train_source = source = source.to(config.device)
    embedding = embedding_of(source, all_samples, encoder.to(config.device), backbone_name, policy, n_views, config)
    features, neighbors = embedding["features"].numpy(), embedding["neighbors"].numpy()
    if processes.distributed and not freeze:
        # The network trains on the images of any anchor's neighbours: every process holds them all.
        source = all_samples.decoded(*decoded_images_file(config, "whole")).to(config.device)
    history.append({"stage": "neighbors", "n_neighbors": config.n_neighbors, "metric": embedding["metric"],
                    "views": n_views})
    predict = functools.partial(predict_training_samples, source=source, features=features, freeze=freeze,
                                config=config)
    stage_labels = {"kmeans": kmeans_labels(features, embedding["metric"], config)}
    clock.lap("embedding and neighbours")

    model, head_losses, interrupted = clustering_step(
        encoder, source, embedding, policy, freeze, config, history, backbone_name, pretext_trained
    )
    stage_labels["scan"] = predict(model).argmax(axis=1)
    clock.lap("clustering step")
    if config.selflabel_epochs > 0 and not interrupted:
        self_labeling(model, source, train_source, policy, freeze, config, history, features, neighbors)
        clock.lap("self-labeling")

    logits = predict(model)
    labels, rank = number_clusters_by_size(model, logits.argmax(axis=1), config.n_clusters)
    stage_labels = {"kmeans": matched_to(stage_labels["kmeans"], labels, config.n_clusters),
                    "scan": rank[stage_labels["scan"]]}
    if config.selflabel_epochs > 0 and not interrupted:
        stage_labels["selflabel"] = labels
    return FitResult(
        model=model.cpu().eval(), backbone_name=backbone_name, input_shape=source.input_shape,
        device=str(config.device), metric=embedding["metric"], neighbors=neighbors, head_losses=head_losses,
        best_head=int(np.argmin(head_losses)), history=history, stage_seconds=clock.seconds,
        stage_labels=stage_labels, labels=labels,
        confidence=confidence(torch.from_numpy(logits).double())[0].numpy(),
        image_names=embedding["image_names"], skipped_images=embedding["skipped"],
    )


def predict_training_samples(model, source, features, freeze, config):
    """Logits (N, C) of ``model`` on the training samples: the head on ``features`` when the encoder is frozen."""
    module, inputs = (model.head, torch.from_numpy(features)) if freeze else (model, source.inputs)
    return predict_in_batches(module, inputs, config.device, config.batch_size, images=not freeze and source.images)


def kmeans_labels(features, metric, config):
    """k-means with ``n_clusters`` on the embedding the neighbours were mined in (N, F): (N,) labels.

    For the cosine metric, on unit-length rows (spherical k-means), so that it sees the distances the neighbours do.
    """
    rows = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12) if metric == "cosine" else features
    kmeans = KMeans(config.n_clusters, n_init="auto", random_state=config.seeds.neighbors)
    return kmeans.fit_predict(rows.astype(np.float64)).astype(np.int64)


def matched_to(labels, reference, n_clusters):
    """``labels`` renumbered so that each cluster takes the number of the ``reference`` cluster it overlaps most."""
    overlap = np.zeros((n_clusters, n_clusters))
    np.add.at(overlap, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.empty(n_clusters, dtype=np.int64)
    mapping[rows] = cols
    return mapping[labels]


def decoded_images_file(config, part=None):
    """``(directory, name)`` of the file a collection's images are decoded to: in the checkpoint directory,
    so a resumed fit reads them again (one file per process and ``part`` in a data-parallel fit), else None."""
    if config.checkpoints is None:
        return None, None
    return config.checkpoints.directory, "images" if part is None else f"images-{part}-{config.processes.rank}"


def embedding_of(source, all_samples, encoder, backbone_name, policy, n_views, config):
    """:func:`embed_and_mine`, or what the embedding checkpoint holds; saved there once mined."""
    saved = config.checkpoints.load("embedding") if config.checkpoints is not None else None
    if saved is not None:
        return {**saved, "anchors": saved.pop("per_process")[config.processes.rank]}
    embedding = embed_and_mine(source, all_samples, encoder, backbone_name, policy, n_views, config)
    if config.checkpoints is not None:  # each process's anchors are its own
        kept = {key: value for key, value in embedding.items() if key != "anchors"}
        config.checkpoints.save("embedding", {**kept, "per_process": embedding["anchors"]})
    return embedding


def embed_and_mine(source, all_samples, encoder, backbone_name, policy, n_views, config):
    """The embedding of ``source`` (this process's share of ``all_samples``) and its neighbours, mined once.

    Returns a dict of tensors and plain values (what the embedding checkpoint holds): ``features``
    (N, F) the neighbours are mined in, ``views`` (N, V, F) or None (the features of weak views the
    heads train on), ``neighbors`` (N, k), ``image_names``, ``skipped``, ``metric``, and ``anchors``:
    in a data-parallel fit this process's samples' rows among the N, else None. 2-D features for the MLP
    are mined as they are (standardised), not through the untrained MLP.
    """
    processes = config.processes
    embedder = ViewsEncoder(encoder, policy, n_views, make_generator(config.seeds.neighbors)) if n_views else encoder
    if backbone_name == "mlp":
        embedder = encoder.standardize
    features, image_names, skipped = source.embed(embedder, config.device, config.batch_size)
    anchors = None
    if processes.distributed:
        features, image_names, skipped, anchors = gather_embedding(features, image_names, skipped, all_samples, processes)
    # With views, features is (N, 1 + n_views, F): the images' own features (to mine neighbours) first.
    views = None
    if n_views:
        views, features = torch.from_numpy(features[:, 1:]), np.ascontiguousarray(features[:, 0])
    check_sample_count(len(features), config.n_clusters, config.n_neighbors)
    metric = config.metric if config.metric != "auto" else ("cosine" if source.images else "euclidean")
    neighbors = None
    if processes.is_main:  # mined once, by the main process
        neighbors = mine_neighbors(features, config.n_neighbors, metric=metric, method=config.neighbor_method,
                                   random_state=config.seeds.neighbors, device=config.device)
    neighbors = from_main_process(neighbors, processes)
    return {
        "features": torch.from_numpy(features), "views": views, "neighbors": torch.from_numpy(neighbors),
        "image_names": image_names, "skipped": skipped, "metric": metric, "anchors": anchors,
    }


def gather_embedding(features, row_names, skipped, all_samples, processes):
    """Every process's features of its share, in the order of the whole source.

    features: (n_r, ...) of this process's rows, named by their positions in
    ``all_samples``. Returns ``(features (N, ...), names of the N rows or None for
    arrays, skipped items of all processes, rows of this process's samples
    among the N)``.
    """
    local_positions = np.asarray(row_names, dtype=np.int64)
    features, positions = gather_by_position(features, local_positions, processes)
    skipped = gather_lists(skipped, processes)
    names = None if all_samples.names is None else [all_samples.names[position] for position in positions]
    return features, names, skipped, torch.from_numpy(np.searchsorted(positions, local_positions))


def scan_views(policy, pretext_trained, n_channels):
    """Weak views per image that heads on a frozen encoder train on: ``policy.scan_views``, or for "auto"
    ``AUTO_SCAN_VIEWS`` for colour images on an encoder no pretext trained, else 0; 0 without ``augment_scan``.
    """
    if not policy.augment_scan:
        return 0
    if policy.scan_views == "auto":
        return AUTO_SCAN_VIEWS if n_channels == 3 and not pretext_trained else 0
    return int(policy.scan_views)


def train_encoder(source, config, policy, n_samples):
    """The pretext stage: ``(encoder on the CPU in eval mode, backbone name, history)`` for ``source``.

    ``policy``: the augmentation policy of the images (None for features); its weak-view fields shape the views.
    n_samples: how many samples the fit has (more than ``source`` holds in a data-parallel fit).
    A SimCLR pretext is cached in ``config.memory``; an encoder that learns
    nothing from the data (``pretext="none"``, or no epochs) is only built.
    """
    pretext = config.pretext if source.images else "none"
    if source.images and pretext == "none" and config.pretext_epochs not in ("auto", 0):
        warnings.warn(_no_pretext_message(config), UserWarning)
    epochs = auto_pretext_epochs(config.pretext_epochs, n_samples)
    if pretext == "none" or epochs == 0:
        statistics = None
        if needs_data_statistics(config.backbone, pretext):
            statistics = per_channel_statistics(source.inputs.to(config.device), source.images)
        with seeded(config.seeds.pretext, config.device):
            encoder, backbone_name = build_encoder(
                config.backbone, source.input_shape, config.device, statistics=statistics,
                weights=config.backbone_weights,
            )
        return encoder.cpu().eval(), backbone_name, []
    images = source.inputs if isinstance(source.inputs, DecodedImages) else source.inputs.numpy()
    arguments = (
        images, config.backbone, config.backbone_weights, epochs, config.batch_size, config.pretext_params,
        # Every field the pretext's views use, defaults included (so that a change of default retrains), and
        # only those, so that a change to the later stages' augmentation reuses the cache.
        {field: getattr(policy, field) for field in WEAK_VIEW_FIELDS},
        config.device, config.mixed_precision, config.seeds.pretext, config.verbose, config.checkpoints,
    )
    if config.processes.distributed:  # each process holds a share of the images: nothing to cache
        encoder, backbone_name, history = pretrain_encoder(*arguments, processes=config.processes)
        return encoder, backbone_name, list(history)
    cached = check_memory(config.memory).cache(pretrain_encoder, ignore=["verbose", "checkpoints"])
    pretrained = cached.call_and_shelve(*arguments)
    encoder, backbone_name, history = pretrained.get()
    if history and history[-1].get("interrupted"):
        pretrained.clear()  # never keep a half-trained encoder in the cache
    return encoder, backbone_name, list(history)


def _no_pretext_message(config):
    backbone = config.backbone if isinstance(config.backbone, str) else type(config.backbone).__name__
    return (f"pretext_epochs={config.pretext_epochs} has no effect: the backbone {backbone!r} is used as it is "
            "(pretext='none', the default for pretrained backbones). Pass pretext='simclr' to train it with "
            "SimCLR on these images first, or backbone='convnet' to train a small network from scratch.")


def pretrain_encoder(
    images, backbone, backbone_weights, epochs, batch_size, pretext_params, augmentation, device, precision, seed,
    verbose, checkpoints=None, processes=Processes(),
):
    """Build an image encoder and train it with SimCLR for ``epochs`` epochs.

    images: (N, C, H, W) numpy array as :func:`~sklearn_scan._inputs.to_model_inputs` makes it, or
    :class:`~sklearn_scan._sources.DecodedImages` (hashed by their digest). A plain function of its
    arguments, so ``memory`` can cache it (``precision``, the ``mixed_precision`` setting, changes the
    result). With ``processes`` of a data-parallel fit, ``images`` is this process's share.
    Returns ``(encoder on the CPU, backbone name, pretext history)``.
    """
    if not isinstance(images, DecodedImages):
        images = torch.from_numpy(images).to(device)
    training = Training(batch_size, device, make_generator(seed + processes.rank), processes, checkpoints, verbose)
    with seeded(seed, device), mixed_precision(precision):
        encoder, backbone_name = build_encoder(
            backbone, tuple(images.shape[1:]), device,
            statistics=per_channel_statistics(images, True) if needs_data_statistics(backbone, "simclr") else None,
            weights=backbone_weights,
        )
        policy = policy_for_images(*images.shape[1:], **augmentation)
        encoder, _ = train_pretext(encoder, images, policy=policy, epochs=epochs, training=training, **pretext_params)
    return encoder.cpu().eval(), backbone_name, training.history


def clustering_step(encoder, source, embedding, policy, freeze, config, history, backbone_name, pretext_trained):
    """Train ``config.n_heads`` heads with the SCAN loss and keep the mean of the ``AVERAGED_HEADS`` lowest-loss ones.

    With ``freeze`` the heads train on the embedding's features (or on one of each sample's weak views'
    features, drawn per step); otherwise the whole network trains on the images, augmented as
    ``policy.scan_recipe`` says (the paper's strong views for colour images, SimCLR's weak views for
    grayscale ones), the heads at their rate and the encoder at ``encoder_learning_rate``. Returns ``(ClusterModel of the encoder and the kept head,
    head losses (n_heads,), interrupted)``.
    """
    device = config.device
    features, neighbors = embedding["features"].numpy(), embedding["neighbors"].numpy()
    with seeded(config.seeds.scan, device):
        heads = ClusteringHeads(encoder.out_features, config.n_clusters, config.n_heads, config.head_hidden_size)
    params = dict(config.scan_params)
    augment = None
    if freeze:
        trained, inputs, on_images = heads, torch.from_numpy(features).to(device), False
        params.pop("encoder_learning_rate", None)  # no encoder trains (the warning of unused parameters says so)
        params.setdefault("learning_rate", UNIT_ROWS_LEARNING_RATE if backbone_name == "normalized"
                          else HEADS_LEARNING_RATE)
    else:
        trained, inputs, on_images = ClusterModel(encoder, heads), source.inputs, source.images
        if on_images:
            params.setdefault("learning_rate", HEADS_LEARNING_RATE)
            params.setdefault("encoder_learning_rate", ENCODER_LEARNING_RATE)
        else:  # the MLP on 2-D features trains from scratch, at one rate
            params.setdefault("learning_rate", 1e-3)
        if on_images and policy.augment_scan:
            views = strong_views if policy.scan_recipe == "strong" else weak_views
            augment = lambda batch, generator: views(batch, policy, generator)  # noqa: E731
    train_inputs = inputs
    if freeze and embedding["views"] is not None:
        train_inputs, augment = embedding["views"].to(device), pick_views
    if config.scan_epochs == "auto" and not (freeze or on_images):
        epochs = MLP_SCAN_EPOCHS
    else:
        anchors_shown = PRETEXT_ENCODER_SCAN_IMAGES if freeze and pretext_trained else SCAN_IMAGES
        epochs = auto_epochs(config.scan_epochs, len(inputs), anchors_shown, SCAN_EPOCHS_RANGE)
    training = Training(config.batch_size, device, make_generator(config.seeds.scan + config.processes.rank),
                        config.processes, config.checkpoints, config.verbose, history)
    with seeded(config.seeds.scan + 1, device):  # dropout or drop-path of a user's backbone draws from it
        trained, interrupted = train_scan(
            trained, train_inputs, neighbors, entropy_weight=config.entropy_weight, epochs=epochs, training=training,
            augment=augment, images=on_images, anchors=embedding["anchors"], keep_lowest_loss=not freeze and on_images,
            **params,
        )
        if on_images and augment is not None:  # trained on views: batch norm gets the images' own statistics
            recalibrate_batch_norm(trained, inputs, device, config.batch_size, images=True)
    head_logits = predict_in_batches(trained, inputs, device, config.batch_size, on_images)
    head_losses, kept, orders = choose_heads(head_logits, neighbors, config.entropy_weight, AVERAGED_HEADS)
    history.append({"stage": "heads", "averaged_heads": kept.tolist()})
    return ClusterModel(encoder, heads.mean_head(kept, orders)), head_losses, interrupted


def self_labeling(model, source, train_source, policy, freeze, config, history, features, neighbors):
    """Fine-tune ``model`` in place on its confident predictions of strongly augmented samples.

    train_source: the samples this process trains on (``source`` itself, or its share in a data-parallel
    fit). A frozen encoder stays as it is: then only the head trains. Unless
    ``selflabel_params["guard"]`` is False, the stage keeps the weights (the clustering step's included)
    where :func:`guard_criterion` was lowest; it stops where the confident share plateaus.
    """
    params = {"learning_rate": SELFLABEL_LEARNING_RATE, **config.selflabel_params}
    criterion = None
    if params.pop("guard", True):
        criterion = functools.partial(
            guard_criterion, inputs=torch.from_numpy(features) if freeze else source.inputs,
            neighbors=neighbors, freeze=freeze, images=source.images, config=config,
        )
    strong = (lambda batch, generator: strong_views(batch, policy, generator)) if source.images else None
    training = Training(config.batch_size, config.device, make_generator(config.seeds.selflabel + config.processes.rank),
                        config.processes, config.checkpoints, config.verbose, history)
    with frozen(model.encoder) if freeze else contextlib.nullcontext(model.encoder) as encoder, \
            seeded(config.seeds.selflabel + 1, config.device):
        train_selflabel(
            ClusterModel(encoder, model.head), train_source.inputs, n_clusters=config.n_clusters,
            confidence_threshold=config.confidence_threshold, epochs=config.selflabel_epochs, training=training,
            strong_augment=strong, images=source.images, criterion=criterion, plateau=SELFLABEL_PLATEAU,
            all_inputs=source.inputs, **params,
        )


def guard_criterion(model, inputs, neighbors, freeze, images, config):
    """SCAN loss (``config.entropy_weight``) of ``model``'s predictions on ``inputs`` over the mined ``neighbors``.

    With a frozen encoder, the head's on the features; otherwise the whole network's on the images, judged
    as the fitted model will be: a copy whose batch norm holds the images' own statistics, not the strong
    views' it trains on.
    """
    module, on_images = (model.head, False) if freeze else (model, images)
    if images:  # trained on strong views: judged with the statistics of the images as they are
        module = copy.deepcopy(module)
        recalibrate_batch_norm(module, inputs, config.device, config.batch_size, images=on_images)
    logits = predict_in_batches(module, inputs, config.device, config.batch_size, on_images)
    total, _, _ = scan_loss_of_predictions(logits, neighbors, config.entropy_weight)
    return float(total)


def number_clusters_by_size(model, raw_labels, n_clusters):
    """Renumber the clusters of ``model``'s head by size, largest first, so labels have no gaps.

    Returns ``(labels, rank)``: ``rank[c]`` is the new number of head cluster c.
    """
    sizes = np.bincount(raw_labels, minlength=n_clusters)
    order = np.argsort(-sizes, kind="stable")
    model.head = model.head.reorder(order)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[raw_labels].astype(np.int64), rank
