"""
Cluster a folder of photos from the command line
================================================

Builds a folder of JPEG and PNG photos of varying sizes, some grayscale, one corrupt, from
CIFAR-10 test images (four classes, 150 each) when a local copy exists, otherwise from
scikit-learn's digits; then runs::

    sklearn-scan cluster PHOTOS --n-clusters 4 --out RESULT --labels-from-folders
    sklearn-scan predict RESULT/model.pt NEW_PHOTOS

and prints the accuracy against the folders. Open ``RESULT/report.html`` in a browser to see the
clusters. The command line runs with its defaults: colour photos are clustered on the shipped
ImageNet backbone (the ``photos`` extra). Run: ``python examples/folder_of_images.py [--out DIR]``.
"""

import argparse
import io
import random
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from sklearn_scan.cli import main as sklearn_scan

CIFAR_TAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar"
CLASSES = ("airplane", "automobile", "frog", "ship")


def cifar_photos(per_class):
    """(class name, PIL image) pairs from the local CIFAR-10 tar, test split."""
    counts = dict.fromkeys(CLASSES, 0)
    with tarfile.open(CIFAR_TAR) as archive:
        for member in archive:
            name = member.name.split("/")
            if member.isfile() and "test" in name and name[-2] in counts and counts[name[-2]] < per_class:
                counts[name[-2]] += 1
                yield name[-2], Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
            if min(counts.values()) >= per_class:
                return


def digit_photos(per_class):
    from sklearn.datasets import load_digits

    digits = load_digits()
    for digit in range(4):
        for image in digits.images[digits.target == digit][:per_class]:
            yield str(digit), Image.fromarray(np.uint8(image * 255 / 16)).resize((32, 32)).convert("RGB")


def write_photos(folder, pairs, rng):
    """Save photos at random sizes, some grayscale, as JPEG or PNG, one folder per class."""
    for index, (label, image) in enumerate(pairs):
        side = rng.choice([32, 48, 96, 160])
        image = image.resize((side, int(side * rng.choice([0.75, 1.0, 1.33]))), Image.Resampling.BICUBIC)
        if rng.random() < 0.15:
            image = image.convert("L")
        (folder / label).mkdir(parents=True, exist_ok=True)
        image.save(folder / label / f"{index:04d}{rng.choice(['.jpg', '.png'])}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="folder_example", help="working folder (default: ./folder_example)")
    args = parser.parse_args()
    out = Path(args.out)
    rng = random.Random(0)
    photos, new_photos = out / "photos", out / "new_photos"
    pairs = list(cifar_photos(170) if CIFAR_TAR.exists() else digit_photos(170))
    rng.shuffle(pairs)
    write_photos(photos, pairs[:-40], rng)
    write_photos(new_photos, pairs[-40:], rng)
    (photos / "corrupt.jpg").write_bytes(b"this is not a JPEG")
    print(f"Wrote {len(pairs) - 40} photos to {photos} and 40 more to {new_photos} "
          f"({'CIFAR-10' if CIFAR_TAR.exists() else 'digits'}).")

    # Default settings: colour photos are clustered on the shipped ImageNet backbone (the photos extra).
    sklearn_scan(["cluster", str(photos), "--n-clusters", "4", "--out", str(out / "result"), "--labels-from-folders"])
    sklearn_scan(["predict", str(out / "result" / "model.pt"), str(new_photos), "--out", str(out / "new_assignments.csv")])
    print(f"Open {out / 'result' / 'report.html'} in a browser.")


if __name__ == "__main__":
    main()
