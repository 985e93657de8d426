import dataclasses
import math

import numpy as np
import pytest
import torch

from sklearn_scan import _augment
from sklearn_scan._augment import (
    AugmentationPolicy,
    ViewsEncoder,
    pick_views,
    policy_for_images,
    strong_views,
    weak_views,
)
from sklearn_scan._random import make_generator


def batch(channels=3, size=16, n=6):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("views", [weak_views, strong_views])
@pytest.mark.parametrize("channels, size", [(1, 8), (1, 28), (3, 32)])
def test_views_keep_shape_and_range(views, channels, size):
    images = batch(channels, size)
    original = images.clone()
    out = views(images, policy_for_images(channels, size, size), make_generator(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(images, original)  # the input is not modified
    assert not torch.allclose(out, images)


@pytest.mark.parametrize("views", [weak_views, strong_views])
def test_views_are_repeatable_and_differ_per_draw(views):
    images = batch()
    policy = policy_for_images(3, 16, 16)
    first = views(images, policy, make_generator(1))
    again = views(images, policy, make_generator(1))
    torch.testing.assert_close(first, again)
    generator = make_generator(1)
    assert not torch.allclose(views(images, policy, generator), views(images, policy, generator))


def test_identity_policy_returns_the_images():
    images = batch()
    policy = AugmentationPolicy(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, jitter_probability=0.0,
        grayscale_probability=0.0, hue=0.0,
    )
    torch.testing.assert_close(weak_views(images, policy, make_generator(0)), images, atol=1e-5, rtol=0)


def test_policies_scale_with_the_images():
    digits, mnist, cifar = policy_for_images(1, 8, 8), policy_for_images(1, 28, 28), policy_for_images(3, 32, 32)
    assert not digits.flip and not mnist.flip and cifar.flip
    assert digits.crop_scale[0] > mnist.crop_scale[0] > cifar.crop_scale[0]
    assert cifar.augment_scan and digits.augment_scan  # the whole network trains on views of every kind
    assert cifar.strong_ops > digits.strong_ops
    assert (mnist.brightness, mnist.contrast, mnist.gamma) == (0.8, 0.8, 2.0)
    assert (digits.brightness, digits.contrast, digits.gamma) == (0.4, 0.4, 1.0) and cifar.gamma == 1.0


def test_weak_brightness_factor_stays_in_documented_range():
    policy = dataclasses.replace(
        policy_for_images(1, 28, 28), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation_degrees=0.0,
        jitter_probability=1.0, contrast=0.0, gamma=1.0,
    )
    views = weak_views(torch.full((2000, 1, 28, 28), 0.5), policy, make_generator(0))
    factors = views.mean(dim=(1, 2, 3)) / 0.5
    # Grayscale images of 16 pixels or more: brightness factors 0.2-1.8, spread over the whole range.
    assert factors.min() >= 0.2 - 1e-4 and factors.max() <= 1.8 + 1e-4
    assert factors.min() < 0.25 and factors.max() > 1.75


def test_weak_gamma_stays_in_documented_range():
    policy = dataclasses.replace(
        policy_for_images(1, 28, 28), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation_degrees=0.0,
        jitter_probability=0.0,
    )
    images = torch.cat([torch.zeros(2000, 1, 28, 14), torch.full((2000, 1, 28, 14), 0.25)], dim=3)
    views = weak_views(images, policy, make_generator(0))
    assert torch.all(views[..., :14] == 0)  # black stays black
    powers = torch.log(views[..., 14:].mean(dim=(1, 2, 3))) / math.log(0.25)
    # Grayscale images of 16 pixels or more: a power in [1/2, 2] for every view, log-uniform.
    assert powers.min() >= 0.5 - 1e-4 and powers.max() <= 2.0 + 1e-4
    assert powers.min() < 0.52 and powers.max() > 1.95 and abs(torch.log(powers).mean()) < 0.05


def test_cutout_blanks_a_square():
    images = torch.ones(4, 1, 16, 16)
    policy = AugmentationPolicy(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, strong_ops=1, cutout_fraction=0.5,
        strong_recipe="library",
    )
    out = strong_views(images, policy, make_generator(0))
    zero_share = (out == 0).float().mean(dim=(1, 2, 3)).numpy()
    # A cutout of half the side covers up to a quarter of the image, less at the border.
    assert np.all(zero_share > 0.05) and np.all(zero_share <= 0.3)


GRAY = torch.full((2, 3, 8, 8), 0.5)
EDGES = torch.cat([torch.zeros(2, 3, 8, 4), torch.ones(2, 3, 8, 4)], dim=3) * 0.5 + 0.25  # halves at 0.25 and 0.75


def at(magnitude):
    return torch.full((2,), float(magnitude))


@pytest.mark.parametrize("operation", [_augment._brightness])
def test_brightness_factor_stays_in_documented_range(operation):
    assert operation(GRAY, at(0)).mean().item() == pytest.approx(0.5 * 0.1)
    assert operation(GRAY, at(1)).mean().item() == pytest.approx(0.5 * 1.9)


def test_contrast_factor_stays_in_documented_range():
    spread = lambda out: (out[..., 4:] - out[..., :4]).mean().item()  # noqa: E731
    assert spread(_augment._contrast(EDGES, at(0))) == pytest.approx(0.5 * 0.1, abs=1e-6)
    assert spread(_augment._contrast(EDGES, at(1))) == pytest.approx(0.5 * 1.9, abs=1e-6)


def test_saturation_factor_stays_in_documented_range():
    colour = torch.tensor([0.6, 0.4, 0.4]).view(1, 3, 1, 1).expand(2, 3, 8, 8)
    gray = _augment._gray(colour)
    for magnitude, factor in ((0, 0.1), (1, 1.9)):
        torch.testing.assert_close(_augment._saturation(colour, at(magnitude)) - gray, (colour - gray) * factor)


def test_sharpness_factor_stays_in_documented_range():
    smooth = _augment._sharpness(EDGES, at(0.5))  # factor 1: the image itself
    torch.testing.assert_close(smooth, EDGES)
    blurred, sharpened = _augment._sharpness(EDGES, at(0)), _augment._sharpness(EDGES, at(1))
    # The edge moves towards the blurred image by 0.9 of the way, or away from it as far.
    step = (EDGES - blurred)[..., 3].abs().max() / 0.9
    assert (sharpened - EDGES)[..., 3].abs().max() == pytest.approx(float(step) * 0.9, rel=1e-4)


def test_posterize_keeps_four_to_eight_bits():
    ramp = torch.linspace(0, 1, 256).view(1, 1, 1, 256).expand(2, 1, 1, 256)
    assert len(torch.unique(_augment._posterize(ramp, at(0)))) == 256
    assert len(torch.unique(_augment._posterize(ramp, at(1)))) == 16


def test_solarize_threshold_spans_zero_to_one():
    torch.testing.assert_close(_augment._solarize(GRAY, at(0)), GRAY)  # threshold 1: nothing inverted
    white = torch.ones(2, 1, 4, 4)
    torch.testing.assert_close(_augment._solarize(white, at(0)), white)  # not even pure white
    torch.testing.assert_close(_augment._solarize(EDGES, at(1)), 1 - EDGES)  # threshold 0: everything


def test_geometric_ops_stay_in_documented_range():
    one = torch.ones(1, 5)
    matrices = {}
    for index, name in enumerate(_augment.GEOMETRIC_OPS):
        chosen = torch.zeros(1, 5)
        chosen[0, index] = 1
        matrices[name] = _augment._randaugment_matrices(chosen, one, one)[0]
    angle = torch.atan2(matrices["rotate"][1, 0], matrices["rotate"][0, 0])
    assert torch.rad2deg(angle).item() == pytest.approx(30, abs=1e-4)
    assert matrices["shear_x"][0, 1].item() == pytest.approx(0.3) and matrices["shear_y"][1, 0].item() == pytest.approx(0.3)
    # Normalised coordinates span 2 per side: 0.6 is 30% of the side.
    assert matrices["translate_x"][0, 2].item() == pytest.approx(0.6) and matrices["translate_y"][1, 2].item() == pytest.approx(0.6)


def test_cutout_side_follows_the_policy():
    out = _augment._cutout(torch.ones(64, 1, 16, 16), 0.25, make_generator(0))
    widest_row = (out == 0).sum(dim=3).amax(dim=(1, 2))
    assert widest_row.max().item() == 4  # a quarter of 16 pixels, never wider


def test_views_encoder_puts_the_images_own_features_first():
    images = batch()
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    policy = policy_for_images(3, 16, 16)
    features = ViewsEncoder(encoder, policy, 2, make_generator(0))(images)
    assert features.shape == (6, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(features[:, 0], encoder(images))
        torch.testing.assert_close(features[:, 1], encoder(weak_views(images, policy, make_generator(0))))
    assert not torch.allclose(features[:, 1], features[:, 2])  # each view is drawn anew


def test_pick_views_draws_one_of_each_samples_rows():
    n, n_views = 64, 3
    # Feature vector of sample i, view v: [i, v].
    batch = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n_views), indexing="ij"), dim=-1).float()
    picked = pick_views(batch, make_generator(0))
    assert picked.shape == (n, 2)
    np.testing.assert_array_equal(picked[:, 0].numpy(), np.arange(n))
    assert set(picked[:, 1].long().tolist()) == set(range(n_views))


def test_views_encoder_keeps_the_batch_layout():
    images = batch().contiguous(memory_format=torch.channels_last)
    layouts = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            layouts.append(x.is_contiguous(memory_format=torch.channels_last))
            return x.mean(dim=(2, 3))

    ViewsEncoder(Spy(), policy_for_images(3, 16, 16), 2, make_generator(0))(images)
    assert layouts == [True, True, True]


def test_autocontrast_stretches_each_channel_and_keeps_a_constant_one():
    torch.testing.assert_close(_augment._autocontrast(EDGES, at(0.5)), (EDGES - 0.25) / 0.5)
    torch.testing.assert_close(_augment._autocontrast(GRAY, at(0.5)), GRAY)  # not turned black


def test_equalize_spreads_the_levels_and_keeps_a_constant_channel():
    dark = torch.linspace(0, 0.25, 64).view(1, 1, 8, 8).repeat(2, 1, 1, 1)
    out = _augment._equalize(dark, at(0.5))
    assert out.min().item() == 0 and out.max().item() == 1  # a dark ramp now spans the whole range
    assert torch.all(out.flatten(1).diff(dim=1) >= 0)  # in the same order
    torch.testing.assert_close(_augment._equalize(GRAY, at(0.5)), GRAY)


def test_paper_recipe_applies_four_distinct_operations(monkeypatch):
    calls = []
    real_apply = _augment._apply_randaugment

    def spy(images, photometric, chosen, *rest):
        calls.append(([operation.__name__ for operation in photometric], chosen.clone()))
        return real_apply(images, photometric, chosen, *rest)

    monkeypatch.setattr(_augment, "_apply_randaugment", spy)
    for channels, n_operations in ((3, 14), (1, 13)):  # RandAugment's 14; saturation needs colour
        policy = dataclasses.replace(policy_for_images(channels, 16, 16), strong_recipe="paper")
        strong_views(batch(channels, n=256), policy, make_generator(0))
        names, chosen = calls[-1]
        assert "_equalize" in names and len(names) + len(_augment.GEOMETRIC_OPS) == n_operations
        assert chosen.shape == (256, n_operations)
        assert torch.all(chosen.sum(dim=1) == 4)  # four per image, never one twice
        assert torch.all(chosen.sum(dim=0) > 0)  # every operation is drawn


def test_paper_recipe_cutout_is_grey_and_of_random_size():
    out = _augment._cutout(torch.ones(256, 1, 16, 16), 0.5, make_generator(0), random_size=True, fill=0.5)
    grey = (out == 0.5).sum(dim=(1, 2, 3))
    assert set(torch.unique(out).tolist()) == {0.5, 1.0}
    assert grey.max().item() <= 64 and grey.min().item() <= 4 and len(torch.unique(grey)) > 10
