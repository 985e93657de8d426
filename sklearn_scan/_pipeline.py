"""The SCAN pipeline as one function: :func:`fit_pipeline` runs the stages in order on a data source.

::

    source (_sources)  --decoded-->  pretext (_pretext)  --embed-->  neighbours (_neighbors)
        --> clustering step (_scan)  --> self-labeling (_selflabel)  --> FitResult

A :class:`FitConfig` says what each stage does (the estimator's parameters, with
every "auto" that the data does not decide resolved); :class:`FitResult` holds
what the fit learnt. Each stage is a function of explicit inputs, so one stage
can later run on several processes or resume from a checkpoint alone.
"""

import contextlib
import functools
import dataclasses
import time
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_memory

from ._augment import (
    STRONG_RECIPES,
    WEAK_VIEW_FIELDS,
    AugmentationPolicy,
    ViewsEncoder,
    pick_views,
    policy_for_images,
    strong_views,
    weak_views,
)
from ._backbones import ClusteringHeads, ClusterModel, build_encoder, frozen
from ._checkpoints import CheckpointDirectory
from ._distributed import Processes, from_main_process, gather_by_position, gather_lists, global_sum
from ._inputs import check_sample_count, per_channel_statistics
from ._neighbors import mine_neighbors
from ._pretext import train_pretext
from ._pretrained import is_pretrained_name
from ._scan import choose_heads, scan_loss_of_predictions, train_scan
from ._selflabel import train_selflabel
from ._sources import DecodedImages
from ._torch_utils import make_generator, mixed_precision, predict_in_batches, reuse_freed_memory, seeded

#: Keys each ``*_params`` dict of the estimator accepts.
STAGE_PARAMS = {
    "augmentation_params": tuple(field.name for field in dataclasses.fields(AugmentationPolicy)),
    "pretext_params": ("temperature", "learning_rate", "weight_decay", "projection_dim"),
    "scan_params": ("learning_rate", "weight_decay", "encoder_learning_rate"),
    "selflabel_params": ("learning_rate", "weight_decay", "ema_decay", "guard"),
}

#: ``pretext_epochs="auto"``: as many epochs as show SimCLR this many images (two views each), 10 to 100.
#: Sized so that a fit of 10,000 28x28 images stays within 15 minutes on 2 cores of a CPU without native
#: bfloat16 (float32, AVX2), the pretext being nearly all of it: 60 epochs, a whole fit of 10.4 minutes
#: there. On a 10,000-image MNIST sample (seed 0) 60 epochs gave neighbours of purity@20 0.970,
#: k-means on the embedding 0.953 and test ACC 0.971, where 100 gave 0.973 and 0.974. The ceiling of 100
#: keeps small sets short (1,797 8x8 digits: 100 epochs, 1.6 minutes in float32, ACC 0.99); more epochs
#: still help them (2,000 MNIST images: 0.943 at 100, 0.963 at 200, 0.970 at 500). ``docs/defaults-cost.md``
#: has accuracy and minutes by set size.
PRETEXT_IMAGES = 600_000
PRETEXT_EPOCHS_RANGE = (10, 100)

#: ...but a set too small for 100 epochs to show SimCLR this many images gets more epochs, up to
#: ``PRETEXT_MAX_EPOCHS``: 100 epochs of 1,000 MNIST images (700 steps) gave test ACC 0.758 where 100 of
#: 2,000 gave 0.943. 1,797 8x8 digits stay at 100 epochs; 1,000 images get 180.
PRETEXT_MIN_IMAGES = 180_000
PRETEXT_MAX_EPOCHS = 500

#: ``scan_epochs="auto"``: epochs that show the clustering step this many anchors (each with a neighbour),
#: 10 to 200; 30 epochs of 10,000 images. When the whole network trains that is about 4 minutes on 2 cores
#: for 28x28 images (benchmarks/ablation.py); heads alone on fixed features take seconds, and 30 epochs
#: served them better than 200 (lr 1e-2 overfits): on EfficientNet-Lite0 features of CIFAR-10 the kept
#: head's test ACC was 0.562/0.579/0.535 against 0.519/0.548/0.527, on those of Fashion-MNIST
#: 0.763/0.763/0.764 against 0.760/0.758/0.757 (three seeds of the heads,
#: benchmarks/experiments/fixed_feature_heads.py), and on a CNN embedding of 16x16 digits 0.967 against
#: 0.969 (one seed, docs/ablation.md). The MLP trained from scratch on 2-D features gets ``MLP_SCAN_EPOCHS``.
SCAN_IMAGES = 300_000
SCAN_EPOCHS_RANGE = (10, 200)
MLP_SCAN_EPOCHS = 200

#: ``scan_epochs="auto"`` for heads on the features of an encoder SimCLR trained on the data: this many
#: anchors, 100 epochs for 10,000 samples. The 30 epochs of ``SCAN_IMAGES`` left them short of confident:
#: on the 80-epoch embedding of a 10,000-image MNIST sample (seed 0, purity@20 0.968, k-means 0.839) the
#: kept head gave test ACC 0.938 at 30 epochs (14 s, confident share 0.54), 0.969 at 100 (40 s), 0.970 at
#: 200 (68 s); on Fashion-MNIST's 100-epoch embedding 0.650 at 30, 0.653 at 100 (docs/ablation.md,
#: benchmarks/experiments/README.md, Fashion-MNIST with the defaults).
PRETEXT_ENCODER_SCAN_IMAGES = 1_000_000

#: ``scan_views="auto"`` (an augmentation parameter): with a frozen encoder that no pretext trained on the data
#: (a pretrained backbone), the heads train on the features of this many weak views of every image, embedded
#: once with it. On EfficientNet-Lite0 features of CIFAR-10 the kept head's test ACC went from 0.51-0.58 to
#: 0.643/0.644/0.647 with 2 views (three seeds of the heads; the images' own features among the views
#: 0.611/0.619/0.613, 1 view 0.585 on average, 4 views with the images' own 0.636;
#: benchmarks/experiments/head_selection.py). Each view is one more pass of the backbone, so 2 keeps a
#: folder of 1,000 photos within 2 minutes on 2 cores. An encoder SimCLR trained on the data is invariant to
#: these views already and gets none: on Fashion-MNIST (40 pretext epochs, one seed) 0, 2 and 4 views gave
#: 0.638, 0.631 and 0.629 (docs/ablation.md). Nor do grayscale images, whose weak views are milder (no colour
#: jitter, no flips): on EfficientNet-Lite0 features of Fashion-MNIST the kept head gave 0.757/0.758/0.758
#: with 2 views against 0.763/0.763/0.764 without, at a third of the time (benchmarks/experiments/README.md).
AUTO_SCAN_VIEWS = 2

#: Learning rate of the clustering step when ``scan_params`` sets none: heads on a frozen encoder, heads on
#: unit-length rows of 2-D features ("normalized"; their inputs are about 30 times smaller than the shipped
#: backbone's features, so at 1e-2 the heads barely moved in their 30 epochs: on CIFAR-10 EfficientNet-Lite0
#: features test ACC 0.485/0.496/0.501 against 0.550/0.538/0.532 at 1e-1, k-means 0.451; 200 epochs at 1e-2
#: gave 0.548 in 141 s against 25 s; benchmarks/experiments/README.md), and the whole network.
HEADS_LEARNING_RATE, UNIT_ROWS_LEARNING_RATE, NETWORK_LEARNING_RATE = 1e-2, 1e-1, 1e-3

#: ``selflabel_epochs="auto"``: none. Wherever measured, self-labeling moved ACC by under 0.01 with heads
#: alone (Fashion-MNIST 0.649 -> 0.645, CIFAR-10 0.324 -> 0.322) and lost points when the whole network
#: trained (Fashion-MNIST -2.8 to -7, CIFAR-10 -6; docs/ablation.md): its confident pseudo-labels
#: (p > 0.99) were only 83% right on Fashion-MNIST. On the stronger grayscale embedding of the defaults (clustering
#: step 0.728, 57% confident, 87% of those right) ten variants lost up to 10.6 points or held (+0.1 with a
#: moving average of the weights at 0.999; benchmarks/experiments/README.md). A number of epochs runs it,
#: behind a guard that keeps the clustering step's model unless the SCAN loss improves
#: (docs/selflabel-guard.md).
AUTO_SELFLABEL_EPOCHS = 0

#: The kept head is the mean of this many lowest-loss heads (clusters matched), not the lowest-loss head
#: alone. On EfficientNet-Lite0 features of CIFAR-10 the lowest-loss head was often several points below
#: the mean head; the mean of 10 gave test ACC 0.521/0.569/0.520 against 0.495/0.515/0.507 (three seeds
#: of the heads, batch 128), and 0.567/0.539/0.556 against 0.559/0.506/0.560 at batch 256; on the CNN
#: embeddings of Fashion-MNIST, MNIST and CIFAR-10 it moved ACC by 0.003 at most
#: (benchmarks/experiments/head_ensemble.py).
AVERAGED_HEADS = 10

#: 2-D features below ``NORMALIZED_MIN_FEATURES`` columns: neighbours are mined on the standardised features
#: themselves, not on the outputs of the MLP that has not trained yet (a random projection of them). On
#: scikit-learn's digits as 64 pixel columns: purity@20 0.903 against 0.857-0.874, training ACC
#: 0.927/0.844/0.924 against 0.912/0.812/0.824 (seeds 0-2; benchmarks/experiments/mlp_mining.py).
MINE_FEATURES_FOR_MLP = True


def check_stage_params(name, params):
    """A copy of the ``name`` dict (``pretext_params``, ...), or a clear error for a key it does not take."""
    params = params or {}
    unknown = set(params) - set(STAGE_PARAMS[name])
    if unknown:
        raise ValueError(f"{name} got unknown keys {sorted(unknown)}; valid keys are {list(STAGE_PARAMS[name])}.")
    if name == "augmentation_params":
        _check_augmentation_values(
            params.get("scan_views", "auto"), params.get("gamma", 1.0), params.get("strong_recipe", "library")
        )
    if name == "selflabel_params":
        _check_ema_decay(params.get("ema_decay"))
        if not isinstance(params.get("guard", True), (bool, np.bool_)):
            raise ValueError(f"selflabel_params['guard'] must be True or False; got {params['guard']!r}.")
    return dict(params)


def _check_ema_decay(decay):
    if decay is not None and not (isinstance(decay, (float, np.floating)) and 0 < decay < 1):
        raise ValueError(f"selflabel_params['ema_decay'] must be None or a number between 0 and 1 (the paper's: "
                         f"0.999); got {decay!r}.")


def _check_augmentation_values(views, gamma, strong_recipe):
    if strong_recipe not in STRONG_RECIPES:
        raise ValueError(f"augmentation_params['strong_recipe'] must be one of {list(STRONG_RECIPES)}; "
                         f"got {strong_recipe!r}.")
    if views != "auto" and not (isinstance(views, (int, np.integer)) and not isinstance(views, bool) and views >= 0):
        raise ValueError(
            f"augmentation_params['scan_views'] must be 'auto' or a whole number of 0 or more; got {views!r}."
        )
    if not (isinstance(gamma, (int, float, np.number)) and not isinstance(gamma, bool) and 1 <= gamma < np.inf):
        raise ValueError(
            f"augmentation_params['gamma'] must be a finite number of 1 or more (1: no gamma; g: powers in [1/g, g]); "
            f"got {gamma!r}."
        )


def auto_epochs(epochs, n_samples, images_seen, epochs_range):
    """``epochs``, or for "auto" the epochs that show ``images_seen`` samples, clipped to ``epochs_range``."""
    if epochs != "auto":
        return epochs
    low, high = epochs_range
    return int(np.clip(round(images_seen / n_samples), low, high))


def auto_pretext_epochs(epochs, n_samples):
    """``epochs``, or for "auto" the pretext epochs of ``n_samples`` images: ``PRETEXT_IMAGES`` seen in 10 to 100
    epochs, but at least ``PRETEXT_MIN_IMAGES`` seen, in at most ``PRETEXT_MAX_EPOCHS``."""
    if epochs != "auto":
        return epochs
    floor = min(PRETEXT_MAX_EPOCHS, round(PRETEXT_MIN_IMAGES / n_samples))
    return max(auto_epochs("auto", n_samples, PRETEXT_IMAGES, PRETEXT_EPOCHS_RANGE), floor)


def needs_data_statistics(backbone, pretext):
    """Whether the encoder standardises with the data's per-channel mean and std.

    A pretrained backbone brings its own normalisation, and a module the user
    passes for use as it is (``pretext="none"``) gets the images as they are, in [0, 1].
    """
    as_given = pretext == "none" and not isinstance(backbone, str)
    return not as_given and not is_pretrained_name(backbone)


@dataclasses.dataclass(frozen=True)
class StageSeeds:
    """One seed per stage, so that a cached pretext leaves the later stages unchanged."""

    pretext: int
    neighbors: int
    scan: int
    selflabel: int


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """What each stage of a fit does: the estimator's parameters, resolved as far as they go without the data.

    ``backbone`` is a name, module or callable ("auto" left for the encoder to
    resolve, except for photos); ``pretext`` is "simclr" or "none";
    ``selflabel_epochs`` is a number; ``pretext_epochs`` and ``scan_epochs``
    may still be "auto" (they depend on the number of samples); the
    ``*_params`` dicts hold only the keys the user set.
    """

    n_clusters: int
    backbone: object
    backbone_weights: object
    pretext: str
    n_neighbors: int
    entropy_weight: float
    n_heads: int
    head_hidden_size: int
    pretext_epochs: object
    scan_epochs: object
    selflabel_epochs: int
    confidence_threshold: float
    batch_size: int
    metric: str
    freeze_backbone: bool
    pretext_params: dict
    scan_params: dict
    selflabel_params: dict
    augmentation_params: dict
    memory: object
    device: torch.device
    seeds: StageSeeds
    mixed_precision: object
    verbose: int
    processes: Processes = Processes()
    checkpoints: CheckpointDirectory = None

    @property
    def embeds_once(self):
        """True when the images are only embedded once: a fixed encoder, heads alone, no self-labeling.

        That is ``pretext="none"`` on a pretrained backbone or a user module
        (which need no statistics of the data), frozen. A collection is then
        streamed through the encoder and never held in memory.
        """
        fixed_encoder = self.pretext == "none" and not needs_data_statistics(self.backbone, self.pretext)
        return fixed_encoder and self.freeze_backbone and self.selflabel_epochs == 0


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
    clock = StageClock()
    processes = config.processes
    whole = source
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
    freeze = (config.freeze_backbone and source.images) or backbone_name == "normalized"
    pretext_trained = any(entry["stage"] == "pretext" for entry in history)
    n_views = scan_views(policy, pretext_trained, source.input_shape[0]) if freeze and source.images else 0

    source, encoder = source.to(config.device), encoder.to(config.device)
    embedding = config.checkpoints.load("embedding") if config.checkpoints is not None else None
    if embedding is None:
        embedding = embed_and_mine(source, whole, encoder, backbone_name, policy, n_views, config)
        if config.checkpoints is not None:  # each process's anchors are its own
            saved = {key: value for key, value in embedding.items() if key != "anchors"}
            config.checkpoints.save("embedding", {**saved, "per_process": embedding["anchors"]})
    else:
        embedding["anchors"] = embedding.pop("per_process")[processes.rank]
    features, views, neighbors = (None if value is None else value.numpy() for value in (
        embedding["features"], embedding["views"], embedding["neighbors"]))
    views = None if views is None else torch.from_numpy(views)
    image_names, skipped, metric = embedding["image_names"], embedding["skipped"], embedding["metric"]
    anchors, own = embedding.get("anchors"), source  # own: the samples this process trains self-labeling on
    if processes.distributed and not freeze:
        # The network trains on the images of any anchor's neighbours: every process holds them all.
        source = whole.decoded(*decoded_images_file(config, "whole")).to(config.device)
    history.append({"stage": "neighbors", "n_neighbors": config.n_neighbors, "metric": metric, "views": n_views})
    clock.lap("embedding and neighbours")

    if backbone_name == "normalized":
        learning_rate = UNIT_ROWS_LEARNING_RATE
    else:
        learning_rate = HEADS_LEARNING_RATE if freeze else NETWORK_LEARNING_RATE
    scan_images = PRETEXT_ENCODER_SCAN_IMAGES if freeze and pretext_trained else SCAN_IMAGES
    model, head_losses, interrupted = clustering_step(
        encoder, source, features, neighbors, policy, freeze, config, history, learning_rate, scan_images,
        views=views, anchors=anchors,
    )
    clock.lap("clustering step")
    if config.selflabel_epochs > 0 and not interrupted:
        self_labeling(model, source, own, policy, freeze, config, history, features, neighbors)
        clock.lap("self-labeling")

    # A frozen encoder is unchanged since `features` was computed: only the head runs again.
    module, inputs = (model.head, torch.from_numpy(features)) if freeze else (model, source.inputs)
    logits = predict_in_batches(module, inputs, config.device, config.batch_size, images=not freeze and source.images)
    labels = number_clusters_by_size(model, logits.argmax(axis=1), config.n_clusters)
    return FitResult(
        model=model.cpu().eval(), backbone_name=backbone_name, input_shape=source.input_shape,
        device=str(config.device), metric=metric, neighbors=neighbors, head_losses=head_losses,
        best_head=int(np.argmin(head_losses)), history=history, stage_seconds=clock.seconds, labels=labels,
        confidence=torch.softmax(torch.from_numpy(logits).double(), dim=1).max(dim=1).values.numpy(),
        image_names=image_names, skipped_images=skipped,
    )


def decoded_images_file(config, part=None):
    """``(directory, name)`` of the file a collection's images are decoded to: in the checkpoint directory,
    so a resumed fit reads them again (one file per process and ``part`` in a data-parallel fit), else None."""
    if config.checkpoints is None:
        return None, None
    processes = config.processes
    return config.checkpoints.directory, "images" if part is None else f"images-{part}-{processes.rank}"


def embed_and_mine(source, whole, encoder, backbone_name, policy, n_views, config):
    """The embedding of ``source`` (this process's share of ``whole``) and its neighbours, mined once.

    Returns a dict of tensors and plain values (what the embedding checkpoint holds): ``features``
    (N, F) the neighbours are mined in, ``views`` (N, V, F) or None (the features of weak views the
    heads train on), ``neighbors`` (N, k), ``image_names``, ``skipped``, ``metric``, and ``anchors``:
    in a data-parallel fit this process's samples' rows among the N, else None.
    """
    processes = config.processes
    embedder = ViewsEncoder(encoder, policy, n_views, make_generator(config.seeds.neighbors)) if n_views else encoder
    if backbone_name == "mlp" and MINE_FEATURES_FOR_MLP:
        embedder = encoder.standardize
    features, image_names, skipped = source.embed(embedder, config.device, config.batch_size)
    anchors = None
    if processes.distributed:
        features, image_names, skipped, anchors = gather_embedding(features, image_names, skipped, whole, processes)
    # With views, features is (N, 1 + n_views, F): the images' own features (to mine neighbours) first.
    # The heads train on the views alone, as the paper's frozen-backbone protocol augments every image: on
    # CIFAR-10 EfficientNet features, 0.645 against 0.614 with the images' own features among the views.
    views = None
    if n_views:
        views, features = torch.from_numpy(features[:, 1:]), np.ascontiguousarray(features[:, 0])
    check_sample_count(len(features), config.n_clusters, config.n_neighbors)
    metric = config.metric if config.metric != "auto" else ("cosine" if source.images else "euclidean")
    neighbors = None
    if processes.is_main:  # mined once, by the main process
        neighbors = mine_neighbors(
            features, config.n_neighbors, metric=metric, random_state=config.seeds.neighbors, device=config.device
        )
    neighbors = from_main_process(neighbors, processes)
    return {
        "features": torch.from_numpy(features), "views": views, "neighbors": torch.from_numpy(neighbors),
        "image_names": image_names, "skipped": skipped, "metric": metric, "anchors": anchors,
    }


def gather_embedding(features, row_names, skipped, whole, processes):
    """Every process's features of its share, in the order of the whole source.

    features: (n_r, ...) of this process's rows, named by their positions in
    ``whole``. Returns ``(features (N, ...), names of the N rows or None for
    arrays, skipped items of all processes, rows of this process's samples
    among the N)``.
    """
    local_positions = np.asarray(row_names, dtype=np.int64)
    features, positions = gather_by_position(features, local_positions, processes)
    skipped = gather_lists(skipped, processes)
    names = None if whole.names is None else [whole.names[position] for position in positions]
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
        images, config.backbone, config.backbone_weights, epochs, config.batch_size,
        config.pretext_params,
        # Every field the pretext's views use, defaults included (so that a change of default retrains), and
        # only those, so that a change to the later stages' augmentation reuses the cache.
        {field: getattr(policy, field) for field in WEAK_VIEW_FIELDS},
        config.device, config.mixed_precision, config.seeds.pretext, config.verbose, config.checkpoints,
    )
    if config.processes.distributed:  # each process holds a share of the images: nothing to cache
        encoder, backbone_name, history = _pretrain_encoder(*arguments, processes=config.processes)
        return encoder, backbone_name, list(history)
    pretrained = check_memory(config.memory).cache(_pretrain_encoder, ignore=["verbose", "checkpoints"]).call_and_shelve(*arguments)
    encoder, backbone_name, history = pretrained.get()
    if history and history[-1].get("interrupted"):
        pretrained.clear()  # never keep a half-trained encoder in the cache
    return encoder, backbone_name, list(history)


def _no_pretext_message(config):
    backbone = config.backbone if isinstance(config.backbone, str) else type(config.backbone).__name__
    return (f"pretext_epochs={config.pretext_epochs} has no effect: the backbone {backbone!r} is used as it is "
            "(pretext='none', the default for pretrained backbones). Pass pretext='simclr' to train it with "
            "SimCLR on these images first, or backbone='convnet' to train a small network from scratch.")


def _pretrain_encoder(
    images, backbone, backbone_weights, epochs, batch_size, pretext_params, augmentation, device, precision, seed,
    verbose, checkpoints=None, processes=Processes(),
):
    """Build an image encoder and train it with SimCLR for ``epochs`` epochs.

    images: (N, C, H, W) numpy array as :func:`~sklearn_scan._inputs.to_model_inputs` makes it, or
    :class:`~sklearn_scan._sources.DecodedImages` (hashed by their digest).
    A plain function of its arguments, so ``memory`` can cache it (``precision``, the
    ``mixed_precision`` setting, is one of them since it changes the result). ``checkpoints``: the
    fit's :class:`~sklearn_scan._checkpoints.CheckpointDirectory` or None. With ``processes``
    of a data-parallel fit, ``images`` is this process's share. Returns
    ``(encoder on the CPU, backbone name, pretext history)``.
    """
    if not isinstance(images, DecodedImages):
        images = torch.from_numpy(images).to(device)
    history = []
    with seeded(seed, device), mixed_precision(precision):
        encoder, backbone_name = build_encoder(
            backbone, tuple(images.shape[1:]), device,
            statistics=per_channel_statistics(images, True) if needs_data_statistics(backbone, "simclr") else None,
            weights=backbone_weights,
        )
        encoder, _ = train_pretext(
            encoder, images, policy=policy_for_images(*images.shape[1:], **augmentation), epochs=epochs,
            batch_size=batch_size, device=device, generator=make_generator(seed + processes.rank), verbose=verbose,
            history=history, processes=processes, checkpoints=checkpoints, **pretext_params,
        )
    return encoder.cpu().eval(), backbone_name, history


def clustering_step(encoder, source, features, neighbors, policy, freeze, config, history, learning_rate, scan_images,
                    views=None, anchors=None):
    """Train ``config.n_heads`` heads with the SCAN loss and keep the mean of the ``AVERAGED_HEADS`` lowest-loss ones.

    features: (N, F) embedding of ``source``; neighbors: (N, k). With ``freeze``
    the heads train on ``features``, or on ``views`` (N, V, F) when given (one of
    each sample's V feature vectors drawn per step); otherwise with the encoder
    on the images (weakly augmented when ``policy.augment_scan``). learning_rate:
    Adam's, unless ``config.scan_params`` sets one; scan_images: how many ``scan_epochs="auto"``
    shows the heads (the MLP on 2-D features always gets ``MLP_SCAN_EPOCHS``). Returns
    ``(ClusterModel of the encoder and the kept head, head losses (n_heads,), interrupted)``.
    """
    device = config.device
    with seeded(config.seeds.scan, device):
        heads = ClusteringHeads(encoder.out_features, config.n_clusters, config.n_heads, config.head_hidden_size)
    augment = None
    if freeze:
        trainable, inputs, on_images = heads, torch.from_numpy(features).to(device), False
    else:
        trainable, inputs, on_images = ClusterModel(encoder, heads), source.inputs, source.images
        if on_images and policy.augment_scan:
            augment = lambda batch, generator: weak_views(batch, policy, generator)  # noqa: E731
    train_inputs = inputs
    if freeze and views is not None:
        train_inputs, augment = views.to(device), pick_views
    if config.scan_epochs == "auto" and not (freeze or on_images):
        epochs = MLP_SCAN_EPOCHS
    else:
        epochs = auto_epochs(config.scan_epochs, len(inputs), scan_images, SCAN_EPOCHS_RANGE)
    trainable, interrupted = train_scan(
        trainable, train_inputs, neighbors, entropy_weight=config.entropy_weight, epochs=epochs, augment=augment,
        images=on_images, generator=make_generator(config.seeds.scan + config.processes.rank), history=history,
        anchors=anchors, processes=config.processes, checkpoints=config.checkpoints,
        batch_size=config.batch_size, device=device, verbose=config.verbose,
        **{"learning_rate": learning_rate, **config.scan_params},
    )
    head_logits = predict_in_batches(trainable, inputs, device, config.batch_size, on_images)
    head_losses, kept, orders = choose_heads(head_logits, neighbors, config.entropy_weight, AVERAGED_HEADS)
    history.append({"stage": "heads", "averaged_heads": kept.tolist()})
    return ClusterModel(encoder, heads.mean_head(kept, orders)), head_losses, interrupted


def self_labeling(model, source, own, policy, freeze, config, history, features, neighbors):
    """Fine-tune ``model`` in place on its confident predictions of strongly augmented samples.

    own: the samples this process trains on (``source`` itself, or its share in a data-parallel fit).

    A frozen encoder stays as it is: then only the head trains, and the
    encoder's parameters require gradients again afterwards, as before.
    Unless ``selflabel_params["guard"]`` is False, the stage keeps the weights
    (the clustering step's included) with the lowest SCAN loss of the
    predictions on the samples as they are, over the mined ``neighbors``
    (N, k): the criterion that chose the heads, so self-labeling is kept only
    where it makes neighbours agree more confidently without merging clusters.
    ``features`` (N, F): the frozen encoder's embedding of the samples.
    """
    params = {"learning_rate": 1e-4 if freeze else 1e-5, **config.selflabel_params}
    criterion = None
    if params.pop("guard", True):
        criterion = functools.partial(
            _scan_loss_of_model, inputs=torch.from_numpy(features) if freeze else source.inputs,
            neighbors=neighbors, freeze=freeze, images=source.images, config=config,
        )
    strong = (lambda batch, generator: strong_views(batch, policy, generator)) if source.images else None
    with frozen(model.encoder) if freeze else contextlib.nullcontext(model.encoder) as encoder:
        train_selflabel(
            ClusterModel(encoder, model.head), own.inputs,
            n_clusters=config.n_clusters, confidence_threshold=config.confidence_threshold,
            epochs=config.selflabel_epochs, strong_augment=strong, images=source.images,
            generator=make_generator(config.seeds.selflabel + config.processes.rank), history=history,
            batch_size=config.batch_size, device=config.device, verbose=config.verbose, criterion=criterion,
            processes=config.processes, checkpoints=config.checkpoints, **params,
        )


def _scan_loss_of_model(model, inputs, neighbors, freeze, images, config):
    """SCAN loss (``config.entropy_weight``) of ``model``'s predictions on ``inputs``: the features with a frozen encoder."""
    module, on_images = (model.head, False) if freeze else (model, images)
    logits = predict_in_batches(module, inputs, config.device, config.batch_size, on_images)
    total, _, _ = scan_loss_of_predictions(logits, neighbors, config.entropy_weight)
    return float(total)


def number_clusters_by_size(model, raw_labels, n_clusters):
    """Renumber the clusters of ``model``'s head by size, largest first, so labels have no gaps; returns the labels."""
    sizes = np.bincount(raw_labels, minlength=n_clusters)
    order = np.argsort(-sizes, kind="stable")
    model.head = model.head.reorder(order)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[raw_labels].astype(np.int64)
