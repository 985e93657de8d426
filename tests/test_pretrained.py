"""Pretrained backbones by name, with weight files the tests write (no downloads)."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from sklearn_scan import SCANClusterer
from sklearn_scan._pretrained import InputAdapter, build_pretrained

from .test_images import two_kinds

FAST = dict(n_clusters=2, n_neighbors=5, n_heads=3, pretext="none", scan_epochs=30, selflabel_epochs=1,
            batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A torchvision mobilenet_v3_small checkpoint (random weights) as a state_dict file."""
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(weights=None)
    path = tmp_path_factory.mktemp("weights") / "mobilenet.pth"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_torchvision_weights_from_a_file_give_the_same_features(mobilenet_file, no_downloads):
    path, reference = mobilenet_file
    pretrained = build_pretrained("torchvision:mobilenet_v3_small", str(path))
    assert pretrained.input_size == 224 and pretrained.mean == (0.485, 0.456, 0.406)
    reference = reference.eval()
    reference.classifier = nn.Identity()
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(pretrained.module.eval()(images), reference(images))


def test_missing_weights_say_what_to_do(no_downloads, tmp_path, mobilenet_file):
    with pytest.raises(RuntimeError, match="Without network access.*backbone_weights="):
        build_pretrained("torchvision:mobilenet_v3_small")
    with pytest.raises(ValueError, match="is not a file"):
        build_pretrained("torchvision:mobilenet_v3_small", str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="no model named"):
        build_pretrained("torchvision:no_such_net")
    with pytest.raises(ValueError, match="do not fit"):
        build_pretrained("torchvision:resnet18", str(mobilenet_file[0]))
    with pytest.raises(ValueError, match="hub:<owner/repo"):
        build_pretrained("hub:just_a_name")


def test_input_adapter_makes_three_channel_images_of_the_right_size():
    adapter = InputAdapter(16)
    assert adapter(torch.rand(2, 1, 8, 8)).shape == (2, 3, 16, 16)
    assert adapter(torch.rand(2, 3, 40, 30)).shape == (2, 3, 16, 16)
    same = torch.rand(1, 3, 16, 16)
    assert adapter(same) is same


def test_frozen_pretrained_backbone_trains_only_the_heads(mobilenet_file, no_downloads, tmp_path):
    path, reference = mobilenet_file
    images = two_kinds(n=40, size=16)
    model = SCANClusterer(backbone="torchvision:mobilenet_v3_small", backbone_weights=str(path), **FAST).fit(images)
    assert model.backbone_name_ == "torchvision:mobilenet_v3_small"
    # The backbone's weights are the file's, untouched by training.
    encoder_state = model.model_.encoder.backbone.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("classifier"):
            torch.testing.assert_close(encoder_state[key], value)
    assert model.transform(images).shape == (40, 576)
    # Grayscale arrays work too (channels repeated), and save/load needs no download.
    model.save(tmp_path / "model.pt")
    restored = SCANClusterer.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(restored.predict(images), model.predict(images))
    gray = SCANClusterer(backbone="torchvision:mobilenet_v3_small", backbone_weights=str(path), **FAST)
    assert gray.fit(images[..., 0]).transform(images[..., 0]).shape == (40, 576)


def test_timm_backbone_from_a_file(tmp_path, no_downloads):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    path = tmp_path / "test_vit.pth"
    torch.save(reference.state_dict(), path)
    pretrained = build_pretrained("timm:test_vit", str(path))
    assert pretrained.input_size == 160 and pretrained.mean == (0.5, 0.5, 0.5)
    images = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(pretrained.module.eval()(images), reference(images))
    model = SCANClusterer(backbone="timm:test_vit", backbone_weights=str(path), **FAST).fit(two_kinds(n=30, size=8))
    assert model.predict(two_kinds(n=30, size=8)).shape == (30,)


def test_torch_hub_model_from_a_local_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(
        "import torch\n"
        "def tiny(pretrained=False):\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n"
    )
    pretrained = build_pretrained(f"hub:{repo}:tiny")
    assert pretrained.module(torch.rand(2, 3, 224, 224)).shape == (2, 4)
    weights = tmp_path / "tiny.pth"
    state = {key: torch.ones_like(value) for key, value in pretrained.module.state_dict().items()}
    torch.save(state, weights)
    loaded = build_pretrained(f"hub:{repo}:tiny", str(weights))
    torch.testing.assert_close(loaded.module[0].weight, torch.ones_like(loaded.module[0].weight))
    model = SCANClusterer(backbone=f"hub:{repo}:tiny", **FAST).fit(two_kinds(n=30, size=8))
    assert model.transform(two_kinds(n=30, size=8)).shape == (30, 4)


def test_pretrained_backbones_take_images_only(mobilenet_file):
    X = np.random.default_rng(0).normal(size=(30, 5))
    with pytest.raises(ValueError, match="takes images"):
        SCANClusterer(backbone="torchvision:mobilenet_v3_small", backbone_weights=str(mobilenet_file[0]), **FAST).fit(X)


class RecordingBackbone(nn.Module):
    """Flattens images and remembers the range of the last inputs it saw."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)
        self.seen = None

    def forward(self, images):
        self.seen = (float(images.min()), float(images.max()))
        return self.linear(images.flatten(1))


def test_a_module_used_as_it_is_gets_images_in_unit_range():
    images = two_kinds(n=30, size=8)
    model = SCANClusterer(backbone=RecordingBackbone(), **FAST).fit(images)
    low, high = model.model_.encoder.backbone.seen
    assert 0.0 <= low and high <= 1.0 and high > 0.5


def test_pretext_epochs_without_a_pretext_say_so(mobilenet_file, no_downloads):
    path, _ = mobilenet_file
    images = two_kinds(n=40, size=16)
    model = SCANClusterer(backbone="torchvision:mobilenet_v3_small", backbone_weights=str(path),
                          **dict(FAST, pretext_epochs=50))
    with pytest.warns(UserWarning, match=r"pretext_epochs=50 has no effect.*pretext='simclr'"):
        model.fit(images)
    assert not any(entry["stage"] == "pretext" for entry in model.history_)
