"""SCANClusterer on 2-D precomputed features: the trained MLP against linear heads on centred unit-length features.

Usage: python benchmarks/experiments/features_2d.py NAME [SEEDS...]
NAME: cifar_effnet (efficientnet-lite0 features of CIFAR-10, from /tmp/feat, see pretrained_heads.py),
digits, mnist_pixels, fashion_pixels. Prints test ACC of k-means on the raw features, k-means on the
centred unit-length features, and SCANClusterer with backbone "mlp" and "normalized" (other parameters default).
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from sklearn_scan import SCANClusterer, datasets
from sklearn_scan.metrics import clustering_accuracy_score

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def load(name, seed):
    rng = np.random.default_rng(seed)
    if name == "cifar_effnet":
        F = Path("/tmp/feat")
        return [np.load(F / f) for f in ("cifar_train0.npy", "cifar_train0_y.npy", "cifar_test.npy", "cifar_test_y.npy")]
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X, y, X, y
    data = datasets.load_mnist(SHARED / "mnist.npz") if name == "mnist_pixels" else datasets.load_fashion_mnist(
        Path("/usr/share/datasets/fashion-mnist"))
    train = rng.choice(len(data.X_train), 10_000, replace=False)
    flat = lambda X: X.reshape(len(X), -1).astype(np.float32) / 255.0
    return flat(data.X_train[train]), data.y_train[train], flat(data.X_test), data.y_test


name, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]] or [0]
for seed in seeds:
    X, y, X_test, y_test = load(name, seed)
    k = len(np.unique(y))
    line = [f"{name} seed {seed}"]
    kmeans = KMeans(k, n_init=10, random_state=seed).fit(X)
    line.append(f"k-means {clustering_accuracy_score(y_test, kmeans.predict(X_test)):.3f}")
    centre = X.mean(0)
    unit = lambda Z: (Z - centre) / np.linalg.norm(Z - centre, axis=1, keepdims=True)
    kmeans = KMeans(k, n_init=10, random_state=seed).fit(unit(X))
    line.append(f"k-means centred unit {clustering_accuracy_score(y_test, kmeans.predict(unit(X_test))):.3f}")
    for backbone in os.environ.get("BACKBONES", "mlp,normalized").split(","):
        start = time.perf_counter()
        model = SCANClusterer(k, backbone=backbone, random_state=seed).fit(X)
        line.append(f"{backbone} {clustering_accuracy_score(y_test, model.predict(X_test)):.3f} "
                    f"({time.perf_counter() - start:.0f} s)")
    print("  ".join(line), flush=True)
