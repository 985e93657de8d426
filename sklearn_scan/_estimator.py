"""SCANClusterer: the scikit-learn estimator over the SCAN pipeline (:func:`~sklearn_scan._pipeline.fit_pipeline`)."""

import copy
import dataclasses
import inspect
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ._batching import predict_in_batches
from ._checkpoints import open_checkpoints
from ._config import make_config, unused_parameters_warning
from ._device import inference_device, is_on_device, prepare_module
from ._images import collection_names, is_image_collection
from ._inputs import check_same_kind_of_input, to_model_inputs
from ._memory import reuse_freed_memory
from ._neighbors import METHODS as NEIGHBOR_METHODS
from ._neighbors import mine_neighbors
from ._persistence import load_model, save_model
from ._pipeline import fit_pipeline
from ._precision import mixed_precision
from ._scan_loss import scan_loss_of_predictions
from ._sources import ArraySource, ImageCollection, collection_image_size

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
    default). X is images ``(n, h, w[, c])``, 2-D features ``(n, d)`` (no
    pretext), a folder, a list of image files or a torch Dataset.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters (at least 2).
    backbone : str, nn.Module or callable, default="auto"
        The network that embeds the samples. "auto": the shipped
        "efficientnet-lite0" (ImageNet weights installed by the ``photos``
        extra, used offline and frozen) for colour images of 32 pixels or
        more, arrays or collections; otherwise a small CNN trained from
        scratch ("convnet"; on CUDA a CIFAR-style "resnet18" for images of
        32 pixels or more); for 2-D features "normalized" (linear heads on
        unit-length rows) from 128 columns and "mlp" below.
        Also "efficientnet-lite1"/"-lite2", "torchvision:<model>",
        "timm:<model>", "hub:<repo>:<model>" (pretrained, resized and
        normalised as their weights expect), an ``nn.Module`` mapping
        (B, C, H, W) to (B, F) (copied, never trained in place), or a
        callable returning one. See :doc:`/guide` for which data takes which.
    backbone_weights : str, path or None, default=None
        Weights of a pretrained backbone: None for the library's default
        (downloaded once into its usual cache), a torchvision weights name
        such as "IMAGENET1K_V2", or a local state_dict file.
    pretext : {"auto", "simclr", "none"}, default="auto"
        Self-supervised pretext task; "none" uses the backbone as it is.
        "auto": "none" for pretrained backbones, "simclr" otherwise.
    n_neighbors : int, default=20
        Neighbours mined per sample (below n_samples), as in the paper.
    entropy_weight : float, default=5.0
        Weight of the entropy of the mean prediction in the SCAN loss.
    n_heads : int, default=50
        Clustering heads trained at once; the mean of the 10 with the lowest
        SCAN loss (``AVERAGED_HEADS``), their clusters matched, is kept.
    head_hidden_size : int, default=0
        Width of a hidden layer (linear, batch norm, ReLU) the heads share;
        0 gives the paper's linear heads.
    pretext_epochs, scan_epochs, selflabel_epochs : int or "auto", default="auto"
        Epochs of each stage; ``selflabel_epochs=0`` skips self-labeling.
        "auto" sizes them to the number of samples N: the pretext sees
        600,000 images (10 to 100 epochs; at least 180,000 images and at
        most 500 epochs for small sets), the clustering step 300,000 anchors
        (1,000,000 for heads on an encoder the pretext trained), and
        self-labeling does not run. :doc:`/parameters` says why and what
        each costs.
    confidence_threshold : float, default=0.99
        Top probability above which a prediction becomes a pseudo-label.
    batch_size : int, default=128
        Mini-batch size of every stage and of inference (on a CPU a
        pretrained backbone embeds at most 32 images at a time).
    metric : {"auto", "cosine", "euclidean"}, default="auto"
        Distance for neighbour mining: "auto" is cosine on learned image
        embeddings and euclidean on user-given features.
    neighbor_method : {"auto", "exact", "pynndescent", "faiss"}, default="auto"
        How neighbours are mined: "exact" search, an approximate pynndescent
        graph, or a faiss HNSW index (the ``faiss`` extra). "auto": exact up
        to 20,000 samples on a CPU (2,000,000 on a GPU), pynndescent above.
    freeze_backbone : bool, default=True
        True trains only the clustering heads, on fixed backbone features;
        False trains the whole network in the clustering step and
        self-labeling, as the paper does: anchors and neighbours augmented
        (colour images: the paper's four RandAugment operations, then Cutout;
        grayscale images: SimCLR's views, see ``scan_recipe``), the weights of
        the epoch with the lowest SCAN loss kept. A user's module on 2-D
        features is frozen too; the MLP trained on 2-D features never is.
    pretext_params, scan_params, selflabel_params : dict, default=None
        Settings of each stage's Adam optimiser: ``learning_rate`` (pretext
        1e-3; clustering step 1e-2 for the heads, 1e-1 on unit-length rows,
        1e-3 for the MLP on 2-D features; self-labeling 1e-4, the paper's,
        kept constant) and ``weight_decay``. The pretext also takes
        ``temperature`` (0.5) and ``projection_dim`` (128); the clustering
        step ``encoder_learning_rate`` (1e-5 when the whole network trains);
        self-labeling ``ema_decay`` (None; the paper's ImageNet recipe uses a
        moving average of the weights at 0.999) and ``guard`` (True: keep the
        weights, the clustering step's included, with the lowest SCAN loss of
        the predictions over the mined neighbours).
    augmentation_params : dict, default=None
        Changes to the augmentation policy chosen for the images (fields of
        ``AugmentationPolicy``: ``flip``, ``crop_scale``, ``rotation_degrees``,
        ``brightness``, ``contrast``, ``gamma``, ...). Grayscale images get no
        flips (a mirrored digit is another symbol): ``{"flip": True}`` adds
        them for clothing or photos. ``scan_views`` ("auto": 2 for colour
        images on a pretrained backbone, else 0): weak views of every image,
        embedded once with a frozen backbone, that the heads train on.
        ``scan_recipe``: the views of anchors and neighbours when the whole
        network trains, "strong" (the paper's; the default for colour
        images) or "weak" (SimCLR's; the default for grayscale images).
        ``strong_recipe``: the strong views, "paper" (the default:
        RandAugment's four distinct operations, then Cutout of up to half
        the side) or "library" (``strong_ops`` operations drawn with
        replacement, then a Cutout of ``cutout_fraction`` of the side).
    memory : str, joblib.Memory or None, default=None
        Where to cache the trained pretext encoder (a folder or a
        ``joblib.Memory``). Fits that differ only in later-stage parameters
        then train the pretext once, as in a grid search.
    checkpoint_dir : str, path-like or None, default=None
        A folder where the fit saves its state: after the embedding, and in
        each training stage at the end of its last epoch and of the first
        epoch that ends 30 seconds after the last save (each file written
        whole, then renamed); a fit killed within an epoch resumes from the
        end of an earlier one. Fitting again with the same folder resumes
        from the last checkpoint (and on a CPU ends with the labels of an
        uninterrupted fit); a finished fit's folder makes the next fit
        quick. Checkpoints of other parameters or other data are refused
        with an error that names the difference. Folder fits also keep
        their decoded images there.
    device : str or torch.device, default="auto"
        "auto" picks cuda, then mps, then cpu.
    random_state : int, RandomState or None, default=None
        Seeds every random choice; with an int, CPU fits are repeatable.
    image_size : int or None, default=None
        Side of the square images decoded from files or a Dataset (shorter
        side scaled to it, centre square cropped); None means 64, or 224 with
        a pretrained backbone. Arrays are used at their own size.
    n_jobs : int or None, default=None
        Threads that decode image files (-1: all cores).
    mixed_precision : "auto" or bool, default="auto"
        Compute in bfloat16 (weights stay float32). "auto": on CUDA, and on
        CPUs with native bfloat16 (AVX512-BF16, AMX); float32 elsewhere, and
        on any CPU when the environment variable
        ``SKLEARN_SCAN_CPU_BFLOAT16=0`` is set or torch's kernels are held to
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
    stage_labels_ : dict
        Labels of the training samples after each stage that ran: "kmeans"
        (k-means with ``n_clusters`` on the embedding the neighbours were
        mined in), "scan" (the clustering step) and, when self-labeling ran,
        "selflabel" (equal to ``labels_``). Clusters are numbered as in
        ``labels_`` (k-means' matched to them).
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

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_scan import SCANClusterer
    >>> X = load_digits().images / 16.0                      # doctest: +SKIP
    >>> model = SCANClusterer(n_clusters=10, random_state=0).fit(X)  # doctest: +SKIP
    >>> model.labels_[:5], model.predict(X[:5])              # doctest: +SKIP
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
        "neighbor_method": [StrOptions(set(NEIGHBOR_METHODS))],
        "freeze_backbone": ["boolean"],
        "pretext_params": [dict, None],
        "scan_params": [dict, None],
        "selflabel_params": [dict, None],
        "augmentation_params": [dict, None],
        "memory": [str, HasMethods("cache"), None],
        "checkpoint_dir": [str, os.PathLike, None],
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
        neighbor_method="auto",
        freeze_backbone=True,
        pretext_params=None,
        scan_params=None,
        selflabel_params=None,
        augmentation_params=None,
        memory=None,
        checkpoint_dir=None,
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
        self.neighbor_method = neighbor_method
        self.freeze_backbone = freeze_backbone
        self.pretext_params = pretext_params
        self.scan_params = scan_params
        self.selflabel_params = selflabel_params
        self.augmentation_params = augmentation_params
        self.memory = memory
        self.checkpoint_dir = checkpoint_dir
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
        source = self._source(X, reset=True)
        params = self.get_params(deep=False)
        config, warning = make_config(params, source)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)
        source = source.at_size(collection_image_size(self.image_size, config.backbone))
        defaults = {name: p.default for name, p in inspect.signature(type(self)).parameters.items()}
        unused = unused_parameters_warning(params, defaults, source, config)
        if unused:
            warnings.warn(unused, UserWarning, stacklevel=2)
        if self.checkpoint_dir is not None:
            config = dataclasses.replace(config, checkpoints=open_checkpoints(self.checkpoint_dir, params, source, config))
        result = fit_pipeline(source, config)
        for field in dataclasses.fields(result):
            setattr(self, f"{field.name}_", getattr(result, field.name))
        if source.inputs is None:
            self.n_features_in_ = result.input_shape[1]  # the image height, as X.shape[1] of an array of images
        return self

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

        Neighbours are mined among the samples of X where the fit mined them
        (the learned embedding; the standardised features for the MLP on 2-D
        features), and the loss uses the fixed entropy weight ``SCORE_ENTROPY_WEIGHT``
        (5.0) so that scores compare across ``entropy_weight`` values. ``y``
        is ignored.
        """
        features = self.transform(X)
        mined = features
        if self.backbone_name_ == "mlp":  # fit mined the standardised features, not the MLP's outputs
            mined = self._per_sample(X, lambda model, inputs, images: self._apply(
                model.encoder.standardize, inputs, images), np.nan)
        readable = ~np.isnan(features).any(axis=1)  # rows of unreadable files are NaN
        features, mined = features[readable], mined[readable]
        if len(features) < 2:
            raise ValueError(f"score needs at least 2 samples to mine neighbours; got n_samples={len(features)}.")
        neighbors = mine_neighbors(mined, min(self.n_neighbors, len(features) - 1), metric=self.metric_,
                                   method=self.neighbor_method, random_state=0)
        logits = self._apply(self.model_.head, torch.from_numpy(features), images=False)
        total, _, _ = scan_loss_of_predictions(logits, neighbors, SCORE_ENTROPY_WEIGHT)
        return -float(total)

    def _source(self, X, reset=False):
        """X as a source, its kind decided once: a validated array, or an image collection (at inference,
        decoded as this model takes images)."""
        options = dict(n_jobs=self.n_jobs, verbose=self.verbose, batch_size=self.batch_size)
        if reset:
            return ImageCollection(X, **options) if is_image_collection(X) else ArraySource(*self._validate(X, True))
        check_is_fitted(self)
        if not is_image_collection(X):
            return ArraySource(*self._validate(X, reset=False))
        return ImageCollection.for_model(X, self.input_shape_, **options)

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
