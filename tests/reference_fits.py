"""Small fits, one per route through a fit, whose partitions are recorded to catch changes of behaviour.

Routes: images from scratch with heads alone, the whole network with self-labeling, heads with
self-labeling, 2-D features (MLP and unit-length rows), a folder decoded once to disk, and a folder
streamed through a fixed encoder. Every case is a fit that clusters: it uses all its clusters and
beats chance clearly (``tests/test_reference_labels.py`` checks both), so a recorded partition pins
learning, not only determinism. The cases run with the default precision ("auto": bfloat16 on CPUs
that compute it natively, float32 elsewhere); floating-point sums differ across CPUs, precisions and
thread counts, so the test compares partitions up to relabelling and losses within a tolerance,
never bits.

Record on the commit to compare with (overwrites ``tests/data/reference_labels.npz``)::

    python -m tests.reference_fits

and measure how far the partitions move under other numerics (the test's tolerances)::

    python -m tests.reference_fits --spread
"""

import contextlib
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from sklearn_scan import SCANClusterer

REFERENCE_FILE = Path(__file__).parent / "data" / "reference_labels.npz"

COMMON = dict(n_clusters=10, n_neighbors=10, n_heads=5, batch_size=64, random_state=0)


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
    """name -> (X, parameters, true classes) for every route; ``folder`` is where the image folder is written.

    The true classes only score the fits (they must beat chance), never fit them.
    """
    images_folder = str(write_folder(folder))
    digits = load_digits().target[:400]
    kinds = np.array([int(Path(name).parent.name[-1]) for name in folder_names(images_folder)])
    return {
        "digits_heads": (digit_images(), dict(COMMON, pretext_epochs=10, scan_epochs=100), digits),
        "digits_whole_network": (
            digit_images(),
            dict(COMMON, pretext_epochs=10, scan_epochs=30, selflabel_epochs=1, freeze_backbone=False),
            digits,
        ),
        "digits_heads_selflabel": (
            digit_images(), dict(COMMON, pretext_epochs=10, scan_epochs=100, selflabel_epochs=2), digits
        ),
        "features_mlp": (digit_features(), dict(COMMON, scan_epochs=10, selflabel_epochs=1), digits),
        "features_normalized": (digit_features(n_features=160), dict(COMMON, scan_epochs=20), digits),
        "folder_decoded": (
            images_folder,
            dict(COMMON, n_clusters=3, backbone="convnet", pretext_epochs=20, scan_epochs=100, selflabel_epochs=1,
                 image_size=12),
            kinds,
        ),
        # The encoder's features are small numbers (channel means), so the heads take a larger step than the
        # default for frozen encoders; at 1e-2 they merged two of the three kinds in 100 epochs.
        "folder_streamed": (
            images_folder,
            dict(COMMON, n_clusters=3, backbone=HalfMeans(), pretext="none", scan_epochs=100, image_size=12,
                 scan_params={"learning_rate": 0.1}),
            kinds,
        ),
    }


def folder_names(folder):
    """The PNG files of :func:`write_folder` in the order a fit lists them (the broken file does not decode)."""
    return sorted(str(path) for path in Path(folder).rglob("*.png"))


def fit_case(X, params):
    """The figures recorded for one case: labels_, predictions on X and the head losses."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the broken file in the folder
        model = SCANClusterer(**params).fit(X)
        predictions = model.predict(X)
    if isinstance(X, str):
        predictions = predictions[predictions >= 0]  # the broken file's row
    return {"labels": model.labels_, "predict": predictions, "head_losses": model.head_losses_}


def record(path=REFERENCE_FILE):
    import tempfile

    from sklearn_scan.metrics import clustering_accuracy_score

    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (X, params, truth) in cases(Path(scratch) / "images").items():
            for key, value in fit_case(X, params).items():
                figures[f"{name}/{key}"] = value
            labels = figures[f"{name}/labels"]
            print(f"{name}: ACC {clustering_accuracy_score(truth, labels):.3f}, sizes {np.bincount(labels)}")
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **figures)
    print(f"wrote {path}")


@contextlib.contextmanager
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def spread(path=REFERENCE_FILE):
    """Agreement with the recorded partitions, and the change of the lowest head loss, under other numerics:
    one thread instead of all, bfloat16 forced, and contiguous tensors instead of channels-last."""
    import tempfile
    from unittest import mock

    from sklearn_scan import _device
    from sklearn_scan.metrics import clustering_accuracy_score

    reference = np.load(path)
    variants = {  # name -> (parameters changed, context)
        "1 thread": ({}, one_thread),
        "bfloat16": ({"mixed_precision": True}, contextlib.nullcontext),
        "contiguous": ({}, lambda: mock.patch.object(_device, "channels_last", lambda device, images: False)),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, (X, params, _) in cases(Path(scratch) / "images").items():
            for variant, (changes, context) in variants.items():
                with context():
                    figures = fit_case(X, dict(params, **changes))
                agreement = clustering_accuracy_score(reference[f"{name}/labels"], figures["labels"])
                loss_change = figures["head_losses"].min() - reference[f"{name}/head_losses"].min()
                print(f"{name:<24}{variant:<12} agreement {agreement:.3f}  lowest head loss {loss_change:+.3f}",
                      flush=True)


if __name__ == "__main__":
    import sys

    spread() if "--spread" in sys.argv else record()
