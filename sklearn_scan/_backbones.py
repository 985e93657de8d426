"""Backbones: the networks that turn an input batch into a feature vector.

Every backbone maps a float batch to features of shape (B, F). Images arrive as
(B, C, H, W) in [0, 1]; precomputed features as (B, D). The encoder adds a
standardisation layer in front, so augmentations can work in [0, 1] space.
"""

import contextlib
import copy
import math

import torch
import torchvision
from torch import nn

from ._pretrained import InputAdapter, build_pretrained, is_pretrained_name

BACKBONE_NAMES = ("auto", "convnet", "resnet18", "mlp", "normalized")

# Smallest image side each built-in image backbone can take.
MIN_IMAGE_SIDE = {"convnet": 4, "resnet18": 8}


class Standardize(nn.Module):
    """Subtract a per-channel (or per-feature) mean and divide by the std.

    ``mean`` and ``std`` have shape (C,) for images and (D,) for features.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class Encoder(nn.Module):
    """Standardisation followed by a backbone: (B, ...) -> (B, out_features)."""

    def __init__(self, standardize, backbone, out_features):
        super().__init__()
        self.standardize = standardize
        self.backbone = backbone
        self.out_features = int(out_features)

    def forward(self, x):
        return self.backbone(self.standardize(x))


def _conv_block(in_channels, out_channels, pool=False):
    # A pooled block pools right after its convolution, so that batch norm and ReLU run on a quarter of the map.
    pooling = [nn.MaxPool2d(2)] if pool else []
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        *pooling,
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def convnet(in_channels, image_side, width=32):
    """A small VGG-style CNN sized for CPU training on small images.

    Five 3x3 conv blocks of width, width, 2 width, 2 width, 4 width channels;
    max-pooling halves the map while it stays at least 4 pixels wide (once
    for 8x8 digits, in the fourth block; for 28x28 in the first and second
    blocks; for 32x32 also in the fourth), right after the block's
    convolution, then global average pooling. Pooling early keeps the cost
    low: on 10,000 MNIST images, pooling 28x28 maps after the second block
    instead of the fourth made an epoch about a quarter cheaper, and 50
    epochs of it gave neighbours of purity 0.958 where 25 of the older
    layout gave 0.938; pooling before batch norm and ReLU made a step
    another 20-25% cheaper, and 100 epochs gave purity 0.973 where the
    layout before gave 0.971 (benchmarks/experiments/).
    (B, C, H, W) -> (B, 4 * width).
    """
    n_pools = min(3, max(0, int(math.floor(math.log2(image_side / 4)))))
    widths = [width, width, 2 * width, 2 * width, 4 * width]
    layers, previous = [], in_channels
    pool_after = {0: (), 1: (3,), 2: (0, 1), 3: (0, 1, 3)}[n_pools]
    for index, channels in enumerate(widths):
        layers += _conv_block(previous, channels, pool=index in pool_after)
        previous = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), widths[-1]


def resnet18(in_channels, image_side):
    """torchvision's ResNet-18 without its classifier: (B, C, H, W) -> (B, 512).

    Below 64 pixels the stem is the CIFAR variant used by SimCLR and SCAN
    (3x3 stride-1 convolution, no max-pool), so 32x32 images keep their detail.
    """
    network = torchvision.models.resnet18(weights=None)
    if image_side < 64 or in_channels != 3:
        stride = 1 if image_side < 64 else 2
        kernel = 3 if image_side < 64 else 7
        network.conv1 = nn.Conv2d(in_channels, 64, kernel, stride, kernel // 2, bias=False)
    if image_side < 64:
        network.maxpool = nn.Identity()
    network.fc = nn.Identity()
    return network, 512


def mlp(in_features, hidden=256):
    """Two hidden layers for precomputed features: (B, D) -> (B, hidden)."""
    network = nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
    )
    return network, hidden


class UnitLength(nn.Module):
    """Scale every row to unit length: (B, D) -> (B, D). No parameters."""

    def forward(self, x):
        return nn.functional.normalize(x, dim=1)


#: Features with at least this many columns are embeddings: "auto" clusters them with linear heads on
#: unit-length rows ("normalized"); fewer columns (coordinates, pixels of tiny images) get the trained MLP.
#: Measured with 200 head epochs (benchmarks/experiments/features_2d.py, test ACC):
#: EfficientNet-Lite0 features of CIFAR-10 (1280 columns) k-means 0.451, MLP 0.484, normalized 0.552
#: (30 head epochs at lr 1e-1, ``_pipeline.UNIT_ROWS_LEARNING_RATE``: 0.550/0.538/0.532);
#: scikit-learn's digits as 64 pixel columns,
#: seeds 0-2: k-means 0.79, MLP 0.909/0.814/0.831, normalized 0.829/0.831/0.827.
NORMALIZED_MIN_FEATURES = 128


def resolve_backbone_name(backbone, input_shape, device):
    """The built-in backbone ``"auto"`` stands for, given one sample's shape and the device.

    Features (D,) get "normalized" from ``NORMALIZED_MIN_FEATURES`` columns
    on and the MLP below. Images (C, H, W) get the small CNN on CPU and MPS,
    and on CUDA the CIFAR ResNet-18 when they are at least 32 pixels wide.
    """
    if backbone != "auto":
        return backbone
    if len(input_shape) == 1:
        return "normalized" if input_shape[0] >= NORMALIZED_MIN_FEATURES else "mlp"
    if device.type == "cuda" and min(input_shape[1:]) >= 32:
        return "resnet18"
    return "convnet"


def build_backbone(backbone, input_shape, device):
    """Build (or copy) the backbone for inputs of ``input_shape`` (per sample).

    ``backbone`` is a built-in name, an ``nn.Module`` (deep-copied, never
    trained in place) or a callable returning one. Returns ``(module, out_features, name)``.
    """
    images = len(input_shape) == 3
    image_side = min(input_shape[1:]) if images else None
    if isinstance(backbone, str):
        name = resolve_backbone_name(backbone, input_shape, device)
        if name not in BACKBONE_NAMES:
            raise ValueError(
                f"backbone={backbone!r} is not a known backbone; use one of "
                f"{BACKBONE_NAMES}, an nn.Module or a callable returning one."
            )
        if name in ("mlp", "normalized"):
            if images:
                raise ValueError(
                    f"backbone={name!r} takes 2-D features (n_samples, n_features); "
                    "for images use 'auto', 'convnet' or 'resnet18'."
                )
            module, out_features = mlp(input_shape[0]) if name == "mlp" else (UnitLength(), input_shape[0])
            return module, out_features, name
        if not images:
            raise ValueError(
                f"backbone={name!r} takes images (n_samples, height, width[, channels]); "
                "for 2-D features use 'auto' or 'mlp'."
            )
        if image_side < MIN_IMAGE_SIDE[name]:
            height, width = input_shape[1:]
            raise ValueError(
                f"Images of {height}x{width} pixels are smaller than the "
                f"{MIN_IMAGE_SIDE[name]}x{MIN_IMAGE_SIDE[name]} the {name!r} backbone takes; "
                "upsample them or pass 2-D features instead."
            )
        builder = convnet if name == "convnet" else resnet18
        module, out_features = builder(input_shape[0], image_side)
        return module, out_features, name
    if isinstance(backbone, nn.Module):
        module = copy.deepcopy(backbone)
    elif callable(backbone):
        module = backbone()
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"The backbone callable returned {type(module).__name__}, not a torch.nn.Module."
            )
    else:
        raise ValueError(
            f"backbone must be a name in {BACKBONE_NAMES}, an nn.Module or a callable "
            f"returning one; got {type(backbone).__name__}."
        )
    return module, infer_out_features(module, input_shape), "custom"


def build_encoder(backbone, input_shape, device, *, statistics=None, weights=None, load_weights=True):
    """The encoder for inputs of ``input_shape`` (per sample): ``(Encoder, backbone name)``.

    Built-in and user backbones standardise with ``statistics`` (per-channel
    mean and std of the data; zeros and ones when None, to be overwritten by
    a saved state). Pretrained backbones named "torchvision:...", "timm:..."
    or "hub:..." get their own input size and normalisation instead, and
    ``weights`` (see :func:`~sklearn_scan._pretrained.build_pretrained`).
    """
    if is_pretrained_name(backbone):
        if len(input_shape) != 3:
            raise ValueError(
                f"backbone={backbone!r} takes images (n_samples, height, width[, channels]), "
                "not 2-D features."
            )
        pretrained = build_pretrained(backbone, weights, load_weights)
        standardize = nn.Sequential(InputAdapter(pretrained.input_size), Standardize(pretrained.mean, pretrained.std))
        out_features = infer_out_features(nn.Sequential(standardize, pretrained.module), input_shape)
        return Encoder(standardize, pretrained.module, out_features), backbone
    module, out_features, name = build_backbone(backbone, input_shape, device)
    if statistics is None:
        statistics = (torch.zeros(input_shape[0]), torch.ones(input_shape[0]))
    if name == "normalized":
        # Rows are made unit length as they are: centring first gave purer neighbours on CIFAR-10
        # EfficientNet features (0.622 against 0.608) but worse heads (ACC 0.473 against 0.55).
        statistics = (torch.zeros_like(statistics[0]), torch.ones_like(statistics[1]))
    return Encoder(Standardize(*statistics), module, out_features), name


def infer_out_features(module, input_shape):
    """Run a (2, *input_shape) zero batch through ``module`` and return its feature size."""
    probe = torch.zeros((2,) + tuple(input_shape))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            output = module(probe)
    except Exception as exc:  # noqa: BLE001 - any failure here means the module does not fit the data
        raise ValueError(
            f"The backbone failed on a batch of shape {tuple(probe.shape)}: {exc}. "
            "Check that it accepts inputs of this shape."
        ) from exc
    finally:
        module.train(was_training)
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"The backbone must return features of shape (batch, n_features); got {shape}. "
            "End it with a pooling and flatten layer."
        )
    return output.shape[1]


def _head_trunk(in_features, hidden_size):
    """The layers shared by all heads: one hidden layer, or nothing when ``hidden_size`` is 0."""
    if not hidden_size:
        return nn.Identity(), in_features
    layers = nn.Sequential(nn.Linear(in_features, hidden_size), nn.BatchNorm1d(hidden_size), nn.ReLU(inplace=True))
    return layers, hidden_size


class ClusteringHeads(nn.Module):
    """``n_heads`` clustering heads at once: (B, F) -> (B, n_heads, n_clusters) logits.

    With ``hidden_size`` > 0 the heads share one hidden layer (linear, batch
    norm, ReLU) before their own linear output layers; with 0 each head is a
    single linear layer, as in the paper.
    """

    def __init__(self, in_features, n_clusters, n_heads, hidden_size=0):
        super().__init__()
        self.n_clusters = int(n_clusters)
        self.n_heads = int(n_heads)
        self.trunk, trunk_features = _head_trunk(in_features, hidden_size)
        self.linear = nn.Linear(trunk_features, self.n_clusters * self.n_heads)

    def forward(self, features):
        return self.linear(self.trunk(features)).view(-1, self.n_heads, self.n_clusters)

    def mean_head(self, heads, orders):
        """A :class:`ClusterHead` whose logits are the mean of those of ``heads``, their clusters matched.

        heads: (m,) head indices; orders: (m, n_clusters), cluster ``orders[i][j]``
        of head ``heads[i]`` becomes cluster j. The output layers are linear after
        the shared trunk, so the mean of their logits is one linear layer.
        """
        rows = torch.stack([head * self.n_clusters + torch.as_tensor(order) for head, order in zip(heads, orders)])
        head = ClusterHead(self.trunk, self.linear).reorder(rows[0].to(self.linear.weight.device))
        with torch.no_grad():
            head.linear.weight.copy_(self.linear.weight[rows].mean(dim=0))
            head.linear.bias.copy_(self.linear.bias[rows].mean(dim=0))
        return head


class ClusterHead(nn.Module):
    """One clustering head: the shared trunk, then its output layer. (B, F) -> (B, n_clusters)."""

    def __init__(self, trunk, linear):
        super().__init__()
        self.trunk = trunk
        self.linear = linear

    def forward(self, features):
        return self.linear(self.trunk(features))

    def reorder(self, order):
        """A copy whose output i is this head's output ``order[i]`` (a subset of outputs keeps only those)."""
        return ClusterHead(copy.deepcopy(self.trunk), select_outputs(self.linear, order))


def select_outputs(linear, rows):
    """A copy of ``linear`` keeping outputs ``rows`` in that order: output i is old output rows[i]."""
    rows = torch.as_tensor(rows, device=linear.weight.device)
    # Built on the meta device so no random initialisation draws from torch's RNG.
    selected = nn.Linear(linear.in_features, len(rows), device="meta").to_empty(device=linear.weight.device)
    with torch.no_grad():
        selected.weight.copy_(linear.weight[rows])
        selected.bias.copy_(linear.bias[rows])
    return selected


class Frozen(nn.Module):
    """Wrap a module so it never trains: no gradients, always in eval mode.

    The wrapped module's parameters stop requiring gradients; :func:`frozen`
    gives them back their flags when the wrapper is no longer needed.
    """

    def __init__(self, module):
        super().__init__()
        self.module = module.requires_grad_(False)

    def train(self, mode=True):
        return super().train(False)

    def forward(self, x):
        with torch.no_grad():
            return self.module(x)


@contextlib.contextmanager
def frozen(module):
    """``Frozen(module)`` for the block; after it the module's parameters require gradients as before."""
    flags = [parameter.requires_grad for parameter in module.parameters()]
    try:
        yield Frozen(module)
    finally:
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


class ClusterModel(nn.Module):
    """Encoder followed by clustering head(s): inputs -> cluster logits."""

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x):
        return self.head(self.encoder(x))
