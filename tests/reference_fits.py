"""Small fits whose labels were recorded before a refactor, to prove it changed no behaviour.

Each case covers one route through a fit: images from scratch with heads alone, the whole
network with self-labeling, 2-D features (MLP and unit-length rows), a folder decoded into
memory, and a folder streamed through a fixed encoder. They run in float32
(``mixed_precision=False``), whose results match across CPUs.

Re-recorded when heads on a fixed image encoder began training on weak views of every image
(``scan_views``, 2026-12-01): only ``folder_streamed`` (a fixed encoder) changed, and with
``augmentation_params={"scan_views": 0}`` every case gave the labels, predictions and head losses
recorded before, so that change touched nothing else. Re-recorded when heads on unit-length rows
(``backbone="normalized"``) got their own learning rate, 1e-1 (2026-12-01): only ``features_normalized`` changed.
Re-recorded when the CNN's pooled blocks began pooling before batch norm and ReLU (2026-12-01, eighth
session): the four cases on the CNN changed (``digits_*``, ``folder_decoded``); the 2-D feature cases and
``folder_streamed`` gave the figures recorded before.

Record on the commit to compare with (overwrites ``tests/data/reference_labels.npz``)::

    python -m tests.reference_fits
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from sklearn_scan import SCANClusterer

REFERENCE_FILE = Path(__file__).parent / "data" / "reference_labels.npz"

COMMON = dict(n_clusters=10, n_neighbors=10, n_heads=5, batch_size=64, random_state=0, mixed_precision=False)


def digit_images(n=400):
    """The first ``n`` of scikit-learn's 8x8 digits, float in [0, 1]: (n, 8, 8)."""
    return load_digits().images[:n] / 16.0


def digit_features(n=400, n_features=64):
    """Digits as 2-D features; above 64 columns a fixed random projection of the pixels."""
    pixels = digit_images(n).reshape(n, -1)
    if n_features == 64:
        return pixels
    projection = np.random.default_rng(0).normal(size=(64, n_features))
    return np.maximum(pixels @ projection, 0.0)


def write_folder(folder, n=60, size=12):
    """PNGs of three kinds (a bright top, left or bottom-right part) in a folder tree, plus one broken file."""
    rng = np.random.default_rng(0)
    folder = Path(folder)
    for index in range(n):
        pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        kind = index % 3
        if kind == 0:
            pixels[: size // 2] += 150
        elif kind == 1:
            pixels[:, : size // 2, 1] += 180
        else:
            pixels[size // 2 :, size // 2 :, 2] += 190
        sub = folder / f"kind{kind}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(sub / f"{index:03d}.png")
    (folder / "kind0" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


class HalfMeans:
    """A fixed encoder for the streamed route: mean colour of the four image quadrants, (B, 3, H, W) -> (B, 12)."""

    def __new__(cls):
        import torch

        class _HalfMeans(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.ones(1))

            def forward(self, images):
                h, w = images.shape[2] // 2, images.shape[3] // 2
                parts = [images[:, :, :h, :w], images[:, :, :h, w:], images[:, :, h:, :w], images[:, :, h:, w:]]
                return torch.cat([part.mean(dim=(2, 3)) for part in parts], dim=1) * self.scale

        return _HalfMeans()


def cases(folder):
    """name -> (X, parameters) for every route; ``folder`` is where the image folder is written."""
    images_folder = str(write_folder(folder))
    return {
        "digits_heads": (digit_images(), dict(COMMON, pretext_epochs=2, scan_epochs=20)),
        "digits_whole_network": (
            digit_images(), dict(COMMON, pretext_epochs=2, scan_epochs=2, selflabel_epochs=1, freeze_backbone=False)
        ),
        "digits_heads_selflabel": (digit_images(), dict(COMMON, pretext_epochs=1, scan_epochs=10, selflabel_epochs=2)),
        "features_mlp": (digit_features(), dict(COMMON, scan_epochs=10, selflabel_epochs=1)),
        "features_normalized": (digit_features(n_features=160), dict(COMMON, scan_epochs=20)),
        "folder_decoded": (
            images_folder, dict(COMMON, n_clusters=3, backbone="convnet", pretext_epochs=10, scan_epochs=30,
                                selflabel_epochs=1, image_size=12)
        ),
        "folder_streamed": (
            images_folder, dict(COMMON, n_clusters=3, backbone=HalfMeans(), pretext="none", scan_epochs=30,
                                image_size=12)
        ),
    }


def fit_case(X, params):
    """The figures recorded for one case: labels_, predictions on X, head losses and the first rows of transform."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the broken file in the folder
        model = SCANClusterer(**params).fit(X)
        return {
            "labels": model.labels_,
            "predict": model.predict(X),
            "head_losses": model.head_losses_,
            "transform": model.transform(X)[:8],
        }


def record(path=REFERENCE_FILE):
    import tempfile

    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (X, params) in cases(Path(scratch) / "images").items():
            for key, value in fit_case(X, params).items():
                figures[f"{name}/{key}"] = value
            print(name, np.bincount(figures[f"{name}/labels"]))
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **figures)
    print(f"wrote {path}")


if __name__ == "__main__":
    record()
