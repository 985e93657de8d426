"""Data set loaders, on small files the tests write themselves."""

import gzip
import io
import tarfile

import numpy as np
import pytest
import torchvision
from PIL import Image

from sklearn_scan import datasets


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_load_mnist_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_X": rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8), "train_y": np.arange(5),
        "test_X": rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8), "test_y": np.arange(3),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    data = datasets.load_mnist(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(data.X_train, arrays["train_X"])
    assert data.y_test.dtype == np.int64 and data.classes[3] == "3"


def test_load_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(1)
    images = {"train": rng.integers(0, 256, (4, 28, 28)), "t10k": rng.integers(0, 256, (2, 28, 28))}
    for split, array in images.items():
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", array)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(len(array)))
    data = datasets.load_fashion_mnist(tmp_path)
    assert data.X_train.shape == (4, 28, 28, 1) and data.X_test.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(data.X_train[..., 0], images["train"])
    np.testing.assert_array_equal(data.y_train, [0, 1, 2, 3])
    assert data.classes[9] == "Ankle boot"


def test_read_idx_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x01\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")


def test_load_cifar10_from_a_tar_of_images(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "images.tar"
    expected = {}
    with tarfile.open(path, "w") as archive:
        for split, n in (("train", 3), ("test", 2)):
            for class_name in ("cat", "airplane"):
                for index in range(n):
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(pixels).save(buffer, format="PNG")
                    info = tarfile.TarInfo(f"cifar10/{split}/{class_name}/{index:04d}.png")
                    info.size = len(buffer.getvalue())
                    archive.addfile(info, io.BytesIO(buffer.getvalue()))
                    expected[(split, class_name, index)] = pixels
    data = datasets.load_cifar10(path)
    assert data.classes == ["airplane", "cat"]
    assert data.X_train.shape == (6, 32, 32, 3) and data.X_test.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(data.y_train, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.X_train[3], expected[("train", "cat", 0)])


def test_torchvision_is_the_default_source(monkeypatch, tmp_path):
    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.zeros((2 if train else 1, 32, 32, 3), dtype=np.uint8)
            self.targets = [1, 2] if train else [3]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = datasets.load_cifar10(root=tmp_path)
    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    np.testing.assert_array_equal(data.y_train, [1, 2])


def test_missing_sources_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="No data at"):
        datasets.load_mnist(tmp_path / "missing.npz")

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(RuntimeError, match="pass source= pointing at a local copy"):
        datasets.load_mnist(root=tmp_path)
