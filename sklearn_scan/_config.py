"""The configuration of a fit: the estimator's parameters, every "auto" the data decides resolved once.

:func:`make_config` turns the parameters and the fit's source into a :class:`FitConfig`; the
pipeline reads nothing else. The rules behind each "auto" and the measurements that chose them
are on the parameters page (``docs/parameters.md``).
"""

import dataclasses

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._augment import SCAN_RECIPES, STRONG_RECIPES, AugmentationPolicy
from ._checkpoints import CheckpointDirectory
from ._device import resolve_device
from ._distributed import Processes, join_processes
from ._pretrained import is_pretrained_name
from ._sources import photo_backbone

#: Keys each ``*_params`` dict of the estimator accepts.
STAGE_PARAMS = {
    "augmentation_params": tuple(field.name for field in dataclasses.fields(AugmentationPolicy)),
    "pretext_params": ("temperature", "learning_rate", "weight_decay", "projection_dim"),
    "scan_params": ("learning_rate", "weight_decay", "encoder_learning_rate"),
    "selflabel_params": ("learning_rate", "weight_decay", "ema_decay", "guard"),
}

#: ``pretext_epochs="auto"``: the epochs that show SimCLR ``PRETEXT_IMAGES`` images, within
#: ``PRETEXT_EPOCHS_RANGE``; a set too small for that gets ``PRETEXT_MIN_IMAGES`` in at most ``PRETEXT_MAX_EPOCHS``.
PRETEXT_IMAGES, PRETEXT_EPOCHS_RANGE = 600_000, (10, 100)
PRETEXT_MIN_IMAGES, PRETEXT_MAX_EPOCHS = 180_000, 500

#: ``scan_epochs="auto"``: the epochs that show the clustering step this many anchors, within
#: ``SCAN_EPOCHS_RANGE``: heads on a pretrained backbone and the whole network ``SCAN_IMAGES``, heads on
#: an encoder the pretext trained ``PRETEXT_ENCODER_SCAN_IMAGES``; the MLP on 2-D features ``MLP_SCAN_EPOCHS``.
SCAN_IMAGES, SCAN_EPOCHS_RANGE = 300_000, (10, 200)
PRETEXT_ENCODER_SCAN_IMAGES = 1_000_000
MLP_SCAN_EPOCHS = 200

#: ``selflabel_epochs="auto"``: none (the parameters page says where it was measured).
AUTO_SELFLABEL_EPOCHS = 0

#: Adam's learning rate of the clustering step's heads when ``scan_params`` sets none: on features, on
#: unit-length rows of 2-D features ("normalized"), and the encoder's when the whole network trains.
HEADS_LEARNING_RATE, UNIT_ROWS_LEARNING_RATE, ENCODER_LEARNING_RATE = 1e-2, 1e-1, 1e-5

#: Self-labeling's Adam learning rate when ``selflabel_params`` sets none (the paper's, kept constant).
SELFLABEL_LEARNING_RATE = 1e-4


def check_stage_params(name, params):
    """A copy of the ``name`` dict (``pretext_params``, ...), or a clear error for a key or value it does not take."""
    params = dict(params or {})
    unknown = set(params) - set(STAGE_PARAMS[name])
    if unknown:
        raise ValueError(f"{name} got unknown keys {sorted(unknown)}; valid keys are {list(STAGE_PARAMS[name])}.")
    if name == "augmentation_params":
        default = AugmentationPolicy()
        _check_augmentation_values(
            params.get("scan_views", default.scan_views), params.get("gamma", default.gamma),
            params.get("strong_recipe", default.strong_recipe),
        )
        if params.get("scan_recipe", default.scan_recipe) not in SCAN_RECIPES:
            raise ValueError(f"augmentation_params['scan_recipe'] must be one of {list(SCAN_RECIPES)}; "
                             f"got {params['scan_recipe']!r}.")
    if name == "selflabel_params":
        decay = params.get("ema_decay")
        if decay is not None and not (isinstance(decay, (float, np.floating)) and 0 < decay < 1):
            raise ValueError(f"selflabel_params['ema_decay'] must be None or a number between 0 and 1 (the "
                             f"paper's: 0.999); got {decay!r}.")
        if not isinstance(params.get("guard", True), (bool, np.bool_)):
            raise ValueError(f"selflabel_params['guard'] must be True or False; got {params['guard']!r}.")
    return params


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
    """``epochs``, or for "auto" the pretext epochs of ``n_samples`` images (see ``PRETEXT_IMAGES``)."""
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
    """What each stage of a fit does: the estimator's parameters, resolved as far as they go without training.

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
    neighbor_method: str
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


def make_config(params, source):
    """The :class:`FitConfig` of a fit with the estimator's ``params`` (a dict) on ``source``.

    Resolves backbone "auto" for photos (with the warning to give, if any), pretext "auto" (none for a
    pretrained backbone, SimCLR otherwise), the device and the processes of a torchrun launch, and draws
    one seed per stage from ``random_state``. Returns ``(config, warning or None)``.
    """
    backbone, warning = photo_backbone(params["backbone"], source.photos)
    pretext = params["pretext"]
    if pretext == "auto":
        pretext = "none" if is_pretrained_name(backbone) else "simclr"
    device = resolve_device(params["device"])
    processes = join_processes(device.type)  # several under torchrun; one otherwise
    if processes.distributed and device.type == "cuda" and params["device"] == "auto":
        device = torch.device("cuda", processes.local_rank)
    selflabel_epochs = params["selflabel_epochs"]
    resolved = dict(
        backbone=backbone, pretext=pretext, device=device, processes=processes,
        selflabel_epochs=AUTO_SELFLABEL_EPOCHS if selflabel_epochs == "auto" else selflabel_epochs,
        **{name: check_stage_params(name, params[name]) for name in STAGE_PARAMS},
    )
    seeds = check_random_state(params["random_state"]).randint(np.iinfo(np.int32).max, size=4)
    # Every other field is the parameter of the same name, as given.
    given = {field.name: params[field.name] for field in dataclasses.fields(FitConfig)
             if field.name not in resolved and field.name not in ("seeds", "checkpoints")}
    return FitConfig(**given, **resolved, seeds=StageSeeds(*(int(seed) for seed in seeds))), warning


def unused_parameters_warning(params, defaults, source, config):
    """A message naming every parameter set away from its default that this fit's route ignores, or None.

    params, defaults: the estimator's parameters and their defaults (dicts).
    """
    changed = {name for name, value in params.items()
               if not (value is defaults[name] or (isinstance(value, (str, int, float, bool)) and value == defaults[name]))}
    reasons = {}
    if not source.images:
        for name in ("pretext", "pretext_epochs", "pretext_params", "augmentation_params"):
            reasons[name] = "2-D features get no pretext and no augmentation"
        # Asking for no pretext is what features get anyway.
        changed -= {name for name, none in (("pretext", "none"), ("pretext_epochs", 0))
                    if isinstance(params[name], str | int) and params[name] == none}
    if source.inputs is not None:  # an array
        for name in ("image_size", "n_jobs"):
            reasons[name] = "they apply to image files and Datasets; arrays are used as they are"
    if config.selflabel_epochs == 0:
        for name in ("selflabel_params", "confidence_threshold"):
            reasons[name] = "self-labeling does not run (selflabel_epochs is 0 or 'auto'); set selflabel_epochs"
    if config.freeze_backbone and source.images and "encoder_learning_rate" in config.scan_params:
        changed.add("scan_params['encoder_learning_rate']")
        reasons["scan_params['encoder_learning_rate']"] = "the encoder is frozen (freeze_backbone=True)"
    augmentation = config.augmentation_params
    if source.images and AugmentationPolicy(**augmentation).strong_recipe == "paper":
        for name in ("strong_ops", "cutout_fraction"):
            if name in augmentation:
                changed.add(f"augmentation_params['{name}']")
                reasons[f"augmentation_params['{name}']"] = (
                    "the paper's strong views (strong_recipe='paper', the default) always compose four operations "
                    "and a Cutout of up to half the side; pass strong_recipe='library' to set them")
    unused = sorted(changed & set(reasons))
    if not unused:
        return None
    return "Parameters with no effect on this fit: " + "; ".join(f"{name} ({reasons[name]})" for name in unused) + "."
