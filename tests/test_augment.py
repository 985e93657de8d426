import numpy as np
import pytest
import torch

from sklearn_scan._augment import AugmentationPolicy, policy_for_images, strong_views, weak_views
from sklearn_scan._torch_utils import make_generator


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
    assert cifar.augment_scan and not digits.augment_scan
    assert cifar.strong_ops > digits.strong_ops


def test_cutout_blanks_a_square():
    images = torch.ones(4, 1, 16, 16)
    policy = AugmentationPolicy(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, strong_ops=1, cutout_fraction=0.5,
    )
    out = strong_views(images, policy, make_generator(0))
    zero_share = (out == 0).float().mean(dim=(1, 2, 3)).numpy()
    # A cutout of half the side covers up to a quarter of the image, less at the border.
    assert np.all(zero_share > 0.05) and np.all(zero_share <= 0.3)
