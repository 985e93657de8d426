"""Batched image augmentations on tensors, scaled to the image size.

All functions take a batch (B, C, H, W) of floats in [0, 1] on any device and a
CPU ``torch.Generator``; random parameters are drawn on the CPU (a few numbers
per image) and the pixel work runs on the batch's device, with no per-image
Python loop. ``weak_views`` gives SimCLR's views, ``strong_views`` the
RandAugment-style views used for self-labeling.
"""

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class AugmentationPolicy:
    """How strongly to augment images of one kind; see :func:`policy_for_images`.

    ``augment_scan``: the clustering step trains on weak views of anchors and
    neighbours. With a frozen encoder these are ``scan_views`` views of each
    image, embedded once along with the image: the heads train on the
    features of one of its views, drawn at random each step, while the
    image's own features serve to mine neighbours and to predict ("auto":
    see ``_pipeline.scan_views``). With the whole network training,
    fresh views every step, of the kind ``scan_recipe`` names: ``"strong"``
    (the paper's: :func:`strong_views` of anchors and neighbours; colour
    images) or ``"weak"`` (:func:`weak_views`, SimCLR's; grayscale images,
    see :func:`policy_for_images`).

    ``gamma`` (1 means none): every weak view's intensities are raised to a
    power drawn log-uniformly in [1 / gamma, gamma], after the colour jitter.

    ``strong_recipe``: how :func:`strong_views` augments for self-labeling,
    ``"paper"`` (:func:`paper_strong_views`: RandAugment's four distinct
    operations, then Cutout) or ``"library"`` (a random resized crop of the
    weak views, then ``strong_ops`` operations drawn with replacement and a
    cutout of ``cutout_fraction`` of the side set to 0). After 10 epochs of
    self-labeling without the guard, the paper's views lost 0.65 points on
    MNIST and none on Fashion-MNIST, the library's 0.43 and 0.52
    (docs/selflabel-guard.md), so the paper's are the default.
    """

    crop_scale: tuple = (0.2, 1.0)
    crop_ratio: tuple = (3 / 4, 4 / 3)
    flip: bool = True
    rotation_degrees: float = 0.0
    jitter_probability: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_probability: float = 0.2
    gamma: float = 1.0
    cutout_fraction: float = 0.5
    strong_ops: int = 4
    strong_recipe: str = "paper"
    augment_scan: bool = True
    scan_views: object = "auto"
    scan_recipe: str = "strong"


#: The values of ``AugmentationPolicy.strong_recipe`` and ``AugmentationPolicy.scan_recipe``.
STRONG_RECIPES = ("library", "paper")
SCAN_RECIPES = ("strong", "weak")

#: The policy fields :func:`weak_views` reads (the pretext's views); the others only shape the
#: clustering step and the strong views, so they do not change a trained pretext encoder.
WEAK_VIEW_FIELDS = (
    "crop_scale", "crop_ratio", "flip", "rotation_degrees", "jitter_probability", "brightness", "contrast",
    "saturation", "hue", "grayscale_probability", "gamma",
)


def policy_for_images(n_channels, height, width, **changes):
    """The augmentation policy for images of this shape, with ``changes`` to its fields.

    Colour images get SimCLR's recipe (crops of 20-100% of the area,
    horizontal flips, colour jitter, random grayscale). Grayscale images
    (digits, characters, clothing) get milder crops, small rotations and
    brightness/contrast jitter only, and no flips, since a mirrored digit is
    another symbol; their strong views use two RandAugment operations instead
    of four, and the whole network trains the clustering step on their weak
    views (``scan_recipe="weak"``: the paper's strong views lost 1 point on
    MNIST shrunk to 16x16 and 9 on Fashion-MNIST, docs/scan-steps.md). Their jitter is strong (brightness and contrast factors
    0.2-1.8, then a gamma of 0.5-2), so that the pretext cannot tell images
    apart by how light they are: with factors 0.6-1.4 and no gamma, dark and
    light garments of Fashion-MNIST fell into separate clusters. On
    Fashion-MNIST (40 pretext epochs, seed-0 sample) the strong factors raised
    the neighbours' purity@20 from 0.718 to 0.744, k-means on the embedding
    from 0.592 to 0.674 and the SCAN heads to 0.699; the gamma then to 0.763,
    0.683 and 0.719 (benchmarks/experiments/README.md, the grayscale jitter).
    Tiny images (under 16 pixels) get milder crops and the milder jitter
    without gamma, as measured on 8x8 digits. Every kind
    trains the clustering step on these views of anchors and neighbours
    (``augment_scan``): with the whole network training, on Fashion-MNIST that
    gave test ACC 0.660 against 0.650 on clean images (docs/ablation.md).
    """
    if n_channels == 3:
        return AugmentationPolicy(**changes)
    small = min(height, width) < 16
    policy = AugmentationPolicy(
        crop_scale=(0.6, 1.0) if small else (0.4, 1.0),
        flip=False,
        rotation_degrees=10.0 if small else 15.0,
        brightness=0.4 if small else 0.8,
        contrast=0.4 if small else 0.8,
        saturation=0.0,
        hue=0.0,
        grayscale_probability=0.0,
        gamma=1.0 if small else 2.0,
        cutout_fraction=0.25 if small else 0.4,
        strong_ops=2,
        scan_recipe="weak",
    )
    return dataclasses.replace(policy, **changes)


def _uniform(generator, size, low, high):
    return torch.rand(size, generator=generator) * (high - low) + low


def _affine_warp(images, matrices):
    """Resample each image through its own 2x3 affine matrix (normalised coordinates)."""
    grid = F.affine_grid(matrices.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _crop_flip_rotate_matrices(batch_size, policy, generator):
    """Affine matrices for a random resized crop, optional flip and rotation: (B, 2, 3)."""
    area = _uniform(generator, batch_size, *policy.crop_scale)
    log_ratio = _uniform(generator, batch_size, math.log(policy.crop_ratio[0]), math.log(policy.crop_ratio[1]))
    ratio = torch.exp(log_ratio)
    scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
    scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
    shift_x = (torch.rand(batch_size, generator=generator) * 2 - 1) * (1 - scale_x)
    shift_y = (torch.rand(batch_size, generator=generator) * 2 - 1) * (1 - scale_y)
    if policy.flip:
        flips = torch.rand(batch_size, generator=generator) < 0.5
        scale_x = torch.where(flips, -scale_x, scale_x)
    angle = torch.deg2rad(_uniform(generator, batch_size, -policy.rotation_degrees, policy.rotation_degrees))
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack(
        [
            torch.stack([scale_x * cos, -scale_y * sin, shift_x], dim=1),
            torch.stack([scale_x * sin, scale_y * cos, shift_y], dim=1),
        ],
        dim=1,
    )


def _gray(images):
    """Luma of (B, C, H, W) images, kept as (B, 1, H, W)."""
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _per_image(values, images):
    return values.to(images.device, images.dtype).view(-1, 1, 1, 1)


def _hue_rotation(images, angles):
    """Rotate hue by ``angles`` (radians, shape (B,)) in YIQ space; RGB only."""
    to_yiq = images.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angles).to(images), torch.sin(angles).to(images)
    zeros, ones = torch.zeros_like(cos), torch.ones_like(cos)
    rotation = torch.stack(
        [torch.stack([ones, zeros, zeros], 1), torch.stack([zeros, cos, -sin], 1), torch.stack([zeros, sin, cos], 1)],
        dim=1,
    )
    matrices = from_yiq @ rotation @ to_yiq
    return torch.einsum("bij,bjhw->bihw", matrices, images)


def _colour_jitter(images, policy, generator):
    """Brightness, contrast, saturation and hue jitter, each image its own factors."""
    batch_size = images.shape[0]
    applied = torch.rand(batch_size, generator=generator) < policy.jitter_probability

    def factors(strength):
        values = _uniform(generator, batch_size, 1 - strength, 1 + strength)
        return torch.where(applied, values, torch.ones_like(values))

    brightness, contrast = factors(policy.brightness), factors(policy.contrast)
    saturation = factors(policy.saturation)
    hue = torch.where(applied, _uniform(generator, batch_size, -policy.hue, policy.hue), torch.zeros(batch_size))
    images = images * _per_image(brightness, images)
    mean = _gray(images).mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * _per_image(contrast, images) + mean
    if images.shape[1] == 3:
        gray = _gray(images)
        images = (images - gray) * _per_image(saturation, images) + gray
        if policy.hue > 0:
            images = _hue_rotation(images, hue * 2 * math.pi)
        to_gray = torch.rand(batch_size, generator=generator) < policy.grayscale_probability
        images = torch.where(_per_image(to_gray, images) > 0, _gray(images).expand_as(images), images)
    return images.clamp(0.0, 1.0)


def _random_gamma(images, largest, generator):
    """Each image's intensities raised to a power log-uniform in [1 / largest, largest]."""
    log_largest = math.log(largest)
    gamma = torch.exp(_uniform(generator, images.shape[0], -log_largest, log_largest))
    return images.clamp(min=1e-6).pow(_per_image(gamma, images)) * (images > 0)


def weak_views(images, policy, generator):
    """One SimCLR-style view per image: crop, flip, rotation, colour jitter, gamma. (B, C, H, W) -> same."""
    matrices = _crop_flip_rotate_matrices(images.shape[0], policy, generator)
    views = _colour_jitter(_affine_warp(images, matrices), policy, generator)
    if policy.gamma != 1.0:
        views = _random_gamma(views, policy.gamma, generator)
    return views


class ViewsEncoder(nn.Module):
    """An encoder that also embeds ``n_views`` weak views of every image: (B, C, H, W) -> (B, 1 + n_views, F).

    Row 0 holds the features of the images as they are. Views are drawn from
    ``generator`` in float32 (outside any autocast); the encoder runs as it would alone.
    """

    def __init__(self, encoder, policy, n_views, generator):
        super().__init__()
        self.encoder, self.policy, self.n_views, self.generator = encoder, policy, int(n_views), generator

    def forward(self, images):
        # The views keep the batch's memory layout: on 256 CIFAR-10 images through EfficientNet-Lite0 on the
        # CPU in bfloat16, standard-layout views of a channels-last batch took 48 s against 28 s.
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        layout = torch.channels_last if channels_last else torch.contiguous_format
        with torch.autocast(images.device.type, enabled=False):
            views = [weak_views(images.float(), self.policy, self.generator).contiguous(memory_format=layout)
                     for _ in range(self.n_views)]
        return torch.stack([self.encoder(batch) for batch in (images, *views)], dim=1)


def pick_views(batch, generator):
    """One of the V feature vectors of every sample, drawn at random: (B, V, F) -> (B, F)."""
    choice = torch.randint(0, batch.shape[1], (len(batch),), generator=generator).to(batch.device)
    return batch[torch.arange(len(batch), device=batch.device), choice]


# RandAugment-style operations, each taking (images, magnitudes in [0, 1] of shape (B,)).
def _autocontrast(images, magnitude):
    """Stretch each channel to span [0, 1]; a constant channel stays as it is."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    spread = high - low
    return torch.where(spread > 1e-3, (images - low) / spread.clamp_min(1e-3), images)


def _equalize(images, magnitude):
    """Histogram equalisation of each channel over 256 levels; a constant channel stays as it is."""
    batch_size, channels, height, width = images.shape
    levels = torch.round(images.clamp(0, 1) * 255).long().view(batch_size * channels, height * width)
    histogram = torch.zeros(batch_size * channels, 256, device=images.device, dtype=images.dtype)
    histogram.scatter_add_(1, levels, torch.ones_like(levels, dtype=images.dtype))
    cumulative = histogram.cumsum(dim=1)
    darkest = cumulative.gather(1, (histogram > 0).to(torch.uint8).argmax(dim=1, keepdim=True))
    spread = height * width - darkest
    lookup = ((cumulative - darkest) / spread.clamp_min(1)).clamp(0, 1)
    equalized = lookup.gather(1, levels).view(batch_size, channels, height, width)
    return torch.where((spread > 0).view(batch_size, channels, 1, 1), equalized, images)


def _brightness(images, magnitude):
    return images * _per_image(1 + 0.9 * (2 * magnitude - 1), images)


def _contrast(images, magnitude):
    mean = _gray(images).mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * _per_image(1 + 0.9 * (2 * magnitude - 1), images) + mean


def _saturation(images, magnitude):
    gray = _gray(images)
    return (images - gray) * _per_image(1 + 0.9 * (2 * magnitude - 1), images) + gray


def _sharpness(images, magnitude):
    channels = images.shape[1]
    kernel = images.new_tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    smooth = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel.expand(channels, 1, 3, 3), groups=channels)
    factor = _per_image(1 + 0.9 * (2 * magnitude - 1), images)
    return smooth + (images - smooth) * factor


def _posterize(images, magnitude):
    """Keep 8 - round(4 * magnitude) bits: 256 grey levels at magnitude 0, 16 at 1."""
    step = _per_image(torch.pow(2.0, torch.round(magnitude * 4)), images)
    return torch.floor(torch.round(images * 255) / step) * step / 255


def _solarize(images, magnitude):
    """Invert the intensities above 1 - magnitude: none at 0, all but black at 1."""
    threshold = _per_image(1 - magnitude, images)
    return torch.where(images > threshold, 1 - images, images)


def _identity(images, magnitude):
    return images


PHOTOMETRIC_OPS = (
    _identity,
    _autocontrast,
    _brightness,
    _contrast,
    _saturation,
    _sharpness,
    _posterize,
    _solarize,
)
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _randaugment_matrices(chosen, magnitudes, sign):
    """Compose the chosen geometric ops into one affine matrix per image: (B, 2, 3)."""
    batch_size = chosen.shape[0]
    rotate, shear_x, shear_y, move_x, move_y = (chosen[:, i] * magnitudes[:, i] * sign[:, i] for i in range(5))
    angle = torch.deg2rad(rotate * 30)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(batch_size, 3, 3)
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, -sin, sin, cos
    rotation[:, 2, 2] = 1
    shear = torch.eye(3).repeat(batch_size, 1, 1)
    shear[:, 0, 1], shear[:, 1, 0] = shear_x * 0.3, shear_y * 0.3
    shear[:, 0, 2], shear[:, 1, 2] = move_x * 0.6, move_y * 0.6
    return (rotation @ shear)[:, :2]


def _cutout(images, fraction, generator, random_size=False, fill=0.0):
    """Set a random square of side ``fraction`` of the image (of up to that side when ``random_size``) to ``fill``."""
    batch_size, _, height, width = images.shape
    side_y, side_x = max(1, int(round(height * fraction))), max(1, int(round(width * fraction)))
    share = torch.rand(batch_size, generator=generator) if random_size else torch.ones(batch_size)
    side_y = torch.round(share * side_y).clamp(min=1).long().to(images.device).view(-1, 1, 1)
    side_x = torch.round(share * side_x).clamp(min=1).long().to(images.device).view(-1, 1, 1)
    centre_y = torch.randint(0, height, (batch_size,), generator=generator).to(images.device)
    centre_x = torch.randint(0, width, (batch_size,), generator=generator).to(images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    top, left = centre_y.view(-1, 1, 1) - side_y // 2, centre_x.view(-1, 1, 1) - side_x // 2
    inside = (rows >= top) & (rows < top + side_y) & (cols >= left) & (cols < left + side_x)
    return torch.where(inside.unsqueeze(1), images.new_tensor(fill), images)


def strong_views(images, policy, generator):
    """A strongly augmented view per image, as ``policy.strong_recipe`` says. (B, C, H, W) -> same.

    ``"library"``: weak crop/flip, random ops, then cutout.

    Each image draws ``policy.strong_ops`` operations (with replacement) from the
    photometric and geometric lists with random magnitudes; geometric ones are
    composed into a single resampling. (B, C, H, W) -> same.
    Ranges, at magnitudes drawn uniformly in [0, 1] (tests/test_augment.py checks
    each): brightness, contrast, saturation and sharpness factors 0.1-1.9;
    posterize to 4-8 bits; solarize above a threshold of 0-1; autocontrast;
    rotation up to 30 degrees, shear up to 0.3, translation up to 30% of the
    side, either way; cutout of a square of ``policy.cutout_fraction`` of the
    side, set to 0.
    """
    if policy.strong_recipe == "paper":
        return paper_strong_views(images, policy, generator)
    batch_size = images.shape[0]
    images = _affine_warp(images, _crop_flip_rotate_matrices(batch_size, policy, generator))
    photometric = list(PHOTOMETRIC_OPS)
    if images.shape[1] == 1:
        photometric.remove(_saturation)
    n_kinds = len(photometric) + len(GEOMETRIC_OPS)
    draws = torch.randint(0, n_kinds, (batch_size, policy.strong_ops), generator=generator)
    chosen = torch.zeros(batch_size, n_kinds).scatter_(1, draws, 1.0)
    magnitudes = torch.rand(batch_size, n_kinds, generator=generator)
    sign = torch.where(torch.rand(batch_size, n_kinds, generator=generator) < 0.5, -1.0, 1.0)
    images = _apply_randaugment(images, photometric, chosen, magnitudes, sign)
    return _cutout(images, policy.cutout_fraction, generator)


def _apply_randaugment(images, photometric, chosen, magnitudes, sign):
    """Apply each image's chosen operations: the photometric ones in list order, then the geometric ones as one warp.

    chosen, magnitudes, sign: (B, len(photometric) + 5), photometric operations first.
    """
    for index, operation in enumerate(photometric):
        selected = chosen[:, index] > 0
        if selected.any():
            mask = _per_image(selected, images) > 0
            images = torch.where(mask, operation(images, magnitudes[:, index]), images).clamp(0.0, 1.0)
    geometric = slice(len(photometric), chosen.shape[1])
    matrices = _randaugment_matrices(chosen[:, geometric], magnitudes[:, geometric], sign[:, geometric])
    return _affine_warp(images, matrices)


#: The paper's strong views: its Cutout covers a square of up to this share of the side (CIFAR-10's 16 of 32 pixels).
PAPER_CUTOUT_FRACTION = 0.5
#: ...filled with mid-grey, which standardisation maps near 0, rather than black.
PAPER_CUTOUT_FILL = 0.5
PAPER_RANDAUGMENT_OPS = 4


def _shift_flip_matrices(batch_size, policy, generator):
    """Pad-and-crop shifts of up to 1/8 of the side, and a horizontal flip where the policy flips: (B, 2, 3)."""
    shift = (torch.rand(batch_size, 2, generator=generator) * 2 - 1) * 0.25  # normalised coordinates span 2
    scale = torch.ones(batch_size)
    if policy.flip:
        scale = torch.where(torch.rand(batch_size, generator=generator) < 0.5, -scale, scale)
    zeros = torch.zeros(batch_size)
    return torch.stack(
        [torch.stack([scale, zeros, shift[:, 0]], dim=1), torch.stack([zeros, torch.ones(batch_size), shift[:, 1]], dim=1)],
        dim=1,
    )


def paper_strong_views(images, policy, generator):
    """The paper's strong views: flip and shift, RandAugment, then Cutout. (B, C, H, W) -> same.

    Each image is shifted by up to 1/8 of its side (and flipped where the
    policy flips), then takes ``PAPER_RANDAUGMENT_OPS`` (4) distinct
    operations of RandAugment's 14 (13 without colour: saturation needs
    it), each at a magnitude drawn uniformly: identity, autocontrast,
    equalize, brightness, contrast, saturation, sharpness (factors 0.1-1.9),
    posterize (4-8 bits), solarize (threshold 0-1), rotation (up to 30
    degrees), shear (up to 0.3) and translation (up to 30% of the side),
    either way. Cutout then sets a square of up to half the side, of a
    random size, to mid-grey.
    """
    batch_size = images.shape[0]
    images = _affine_warp(images, _shift_flip_matrices(batch_size, policy, generator))
    photometric = [*PHOTOMETRIC_OPS, _equalize]
    if images.shape[1] == 1:
        photometric.remove(_saturation)
    n_kinds = len(photometric) + len(GEOMETRIC_OPS)
    ranks = torch.rand(batch_size, n_kinds, generator=generator).argsort(dim=1)
    chosen = (ranks < PAPER_RANDAUGMENT_OPS).float()
    magnitudes = torch.rand(batch_size, n_kinds, generator=generator)
    sign = torch.where(torch.rand(batch_size, n_kinds, generator=generator) < 0.5, -1.0, 1.0)
    images = _apply_randaugment(images, photometric, chosen, magnitudes, sign)
    return _cutout(images, PAPER_CUTOUT_FRACTION, generator, random_size=True, fill=PAPER_CUTOUT_FILL)
