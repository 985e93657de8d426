"""Cluster on top of a pretrained backbone: only the clustering heads train, on frozen features.

With network access (or the weights in torch's cache) this uses ImageNet
weights from torchvision:

    SCANClusterer(n_clusters=10, backbone="torchvision:resnet18", pretext="none")

Offline, the example says so and shows the same path with a backbone that was
pretrained here: a SimCLR encoder trained on MNIST digits, reused through
``backbone=<module>, pretext="none"`` to cluster the MNIST test images.
Either way, the heads train in seconds because the backbone runs once per image.

Run: python examples/pretrained_backbone.py [--weights FILE.pth] [--data-dir DIR]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from sklearn_scan import SCANClusterer
from sklearn_scan.datasets import load_cifar10, load_mnist
from sklearn_scan.metrics import clustering_report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def imagenet_backbone(weights, data_dir):
    """CIFAR-10 test images clustered on torchvision ResNet-18 features; None when the weights cannot be had."""
    data = load_cifar10(data_dir / "cifar10-jpg.tar")
    rng = np.random.default_rng(0)
    sample = rng.choice(len(data.X_test), 2000, replace=False)
    model = SCANClusterer(10, backbone="torchvision:resnet18", backbone_weights=weights, pretext="none",
                          selflabel_epochs=0, random_state=0, verbose=1)
    try:
        start = time.perf_counter()
        model.fit(data.X_test[sample])
    except RuntimeError as error:
        print(f"No ImageNet weights here: {error}\n")
        return None
    return "CIFAR-10 test sample, ResNet-18 ImageNet features", data.y_test[sample], model, time.perf_counter() - start


def backbone_pretrained_here(data_dir):
    """A SimCLR encoder trained on 5,000 MNIST training images, reused frozen on 5,000 test images."""
    data = load_mnist(data_dir / "mnist.npz")
    rng = np.random.default_rng(0)
    train = data.X_train[rng.choice(len(data.X_train), 5000, replace=False)]
    test = rng.choice(len(data.X_test), 5000, replace=False)
    print("Pretraining a SimCLR encoder on 5,000 MNIST training images ...")
    pretraining = SCANClusterer(10, pretext_epochs=20, scan_epochs=1, selflabel_epochs=0, n_heads=1,
                                batch_size=128, random_state=0, verbose=1).fit(train)
    encoder = pretraining.model_.encoder  # (B, 1, 28, 28) -> (B, 128)
    start = time.perf_counter()
    model = SCANClusterer(10, backbone=encoder, pretext="none", selflabel_epochs=0, random_state=0, verbose=1)
    model.fit(data.X_test[test])
    return "MNIST test sample, encoder pretrained here", data.y_test[test], model, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="a local torchvision ResNet-18 state_dict (default: torchvision's cache or download)")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args()
    result = imagenet_backbone(args.weights, args.data_dir) if (args.data_dir / "cifar10-jpg.tar").exists() else None
    if result is None:
        result = backbone_pretrained_here(args.data_dir)
    name, y, model, seconds = result
    scores = clustering_report(y, model.labels_)
    print(f"\n{name}: ACC {scores['accuracy']:.3f}  NMI {scores['nmi']:.3f}  ARI {scores['ari']:.3f}  "
          f"(clustering on frozen features: {seconds:.0f} s)")


if __name__ == "__main__":
    main()
