"""Loaders for the image data sets the benchmarks use: MNIST, Fashion-MNIST, CIFAR-10.

Each loader reads a local copy when given one (``source``), and otherwise gets
the data the usual way, through torchvision's dataset classes (which download
into ``root``). Every loader returns a :class:`sklearn.utils.Bunch` with
``X_train``, ``y_train``, ``X_test``, ``y_test`` (uint8 images of shape
(n, height, width, channels) and int64 labels) and ``classes``.
"""

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

DEFAULT_ROOT = Path("~/.cache/sklearn_scan").expanduser()

MNIST_CLASSES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_mnist(source=None, *, root=DEFAULT_ROOT, download=True):
    """MNIST digits: 60,000 + 10,000 images of 28x28x1.

    source: an .npz with ``train_X``, ``train_y``, ``test_X``, ``test_y``; or
    None to use ``torchvision.datasets.MNIST`` under ``root``.
    """
    if source is None:
        return _from_torchvision("MNIST", root, download, MNIST_CLASSES)
    with np.load(_existing(source)) as data:
        return _bunch(data["train_X"], data["train_y"], data["test_X"], data["test_y"], MNIST_CLASSES)


def load_fashion_mnist(source=None, *, root=DEFAULT_ROOT, download=True):
    """Fashion-MNIST clothing: 60,000 + 10,000 images of 28x28x1.

    source: a folder with the original ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
    files (for example /usr/share/datasets/fashion-mnist from Debian's
    dataset-fashion-mnist); or None to use ``torchvision.datasets.FashionMNIST``.
    """
    if source is None:
        return _from_torchvision("FashionMNIST", root, download, FASHION_MNIST_CLASSES)
    folder = _existing(source)
    arrays = [
        read_idx(folder / f"{split}-{kind}-ubyte.gz")
        for split in ("train", "t10k")
        for kind in ("images-idx3", "labels-idx1")
    ]
    return _bunch(arrays[0], arrays[1], arrays[2], arrays[3], FASHION_MNIST_CLASSES)


def load_cifar10(source=None, *, root=DEFAULT_ROOT, download=True):
    """CIFAR-10: 50,000 + 10,000 colour images of 32x32x3.

    source: a tar of JPEG or PNG files laid out as ``*/train/<class>/*`` and
    ``*/test/<class>/*``, read in place; or None to use ``torchvision.datasets.CIFAR10``.
    Class folders sorted by name give the labels.
    """
    if source is None:
        return _from_torchvision("CIFAR10", root, download, CIFAR10_CLASSES)
    return read_image_tar(_existing(source))


def read_idx(path):
    """Read an IDX file (optionally gzipped), the format of MNIST's original files."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes.")
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)
    return array[..., None] if n_dims == 3 else array.astype(np.int64)


def read_image_tar(path):
    """Decode every image of a ``*/{train,test}/<class>/<file>`` tar into arrays, in place."""
    from PIL import Image

    splits = {"train": ([], []), "test": ([], [])}
    with tarfile.open(path) as archive:
        members = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
        parsed = []
        for member in members:
            parts = Path(member.name).parts
            if len(parts) >= 3 and parts[-3] in splits:
                parsed.append((parts[-3], parts[-2], member))
        classes = sorted({class_name for _, class_name, _ in parsed})
        for split, class_name, member in parsed:
            with Image.open(io.BytesIO(archive.extractfile(member).read())) as image:
                splits[split][0].append(np.asarray(image.convert("RGB")))
            splits[split][1].append(classes.index(class_name))
    if not splits["train"][0] or not splits["test"][0]:
        raise ValueError(f"{path} holds no images under */train/<class>/ and */test/<class>/.")
    (X_train, y_train), (X_test, y_test) = (
        (np.stack(images), np.asarray(labels, dtype=np.int64)) for images, labels in splits.values()
    )
    return _bunch(X_train, y_train, X_test, y_test, classes)


def _from_torchvision(name, root, download, classes):
    import torchvision

    dataset_class = getattr(torchvision.datasets, name)
    try:
        train = dataset_class(str(root), train=True, download=download)
        test = dataset_class(str(root), train=False, download=download)
    except Exception as exc:  # noqa: BLE001 - network and file errors alike
        raise RuntimeError(
            f"Could not get {name} through torchvision into {root} ({exc}). Without network access, "
            f"pass source= pointing at a local copy."
        ) from exc

    def arrays(dataset):
        images = np.asarray(dataset.data)
        images = images[..., None] if images.ndim == 3 else images
        return images.astype(np.uint8), np.asarray(dataset.targets, dtype=np.int64)

    return _bunch(*arrays(train), *arrays(test), classes)


def _existing(source):
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No data at {path}.")
    return path


def _bunch(X_train, y_train, X_test, y_test, classes):
    return Bunch(
        X_train=np.asarray(X_train, dtype=np.uint8), y_train=np.asarray(y_train, dtype=np.int64),
        X_test=np.asarray(X_test, dtype=np.uint8), y_test=np.asarray(y_test, dtype=np.int64),
        classes=list(classes),
    )
