"""Frozen pretrained features: which view of them gives the purest neighbours and the best heads.

Usage: python benchmarks/experiments/feature_variants.py STEM [FLIP_STEM] ['{"seeds": [0, 1, 2]}']
STEM and FLIP_STEM are prefixes written by embed_pretrained.py, for example
/tmp/feat/cifar10_effnet224 and /tmp/feat/cifar10_effnet224_flip (files STEM_train.npy, STEM_train_y.npy,
STEM_test.npy, STEM_test_y.npy). For each variant of the features (as embedded; the mean of the image's
and its mirror image's features; centred) prints purity@k for k = 5, 10, 20, 50, k-means on unit-length
rows, and the estimator's clustering step (50 linear heads on unit-length rows, 30 epochs at lr 1e-2,
the mean of the 10 lowest-loss heads kept): test ACC per seed of the heads. With FLIP_STEM also "views":
heads trained on one of the two views drawn at random for every anchor and neighbour, tested on the mean.
"""

import json
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans

from sklearn_scan._augment import pick_views
from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import choose_heads, train_scan
from sklearn_scan._torch_utils import make_generator
from sklearn_scan.metrics import clustering_accuracy_score

stems = [arg for arg in sys.argv[1:] if not arg.startswith("{")]
options = {"seeds": [0, 1, 2], "epochs": 30, "k": 20, "variants": None,
           **json.loads(next((arg for arg in sys.argv[1:] if arg.startswith("{")), "{}"))}
print(options, flush=True)


def load(stem):
    return [np.load(f"{stem}_{part}.npy").astype(np.float32) for part in ("train", "train_y", "test", "test_y")]


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(1e-12)


train, y_train, test, y_test = load(stems[0])
y_train, y_test = y_train.astype(int), y_test.astype(int)
variants = {"as embedded": (unit(train), unit(test))}
mean = train.mean(0)
variants["centred"] = (unit(train - mean), unit(test - mean))
views = None
if len(stems) > 1:
    flip_train, _, flip_test, _ = load(stems[1])
    variants["mean of mirror views"] = (unit(train + flip_train), unit(test + flip_test))
    views = torch.from_numpy(np.stack([unit(train), unit(flip_train)], 1))  # (N, 2, F)
    variants["views"] = variants["mean of mirror views"]
if options["variants"]:
    variants = {name: value for name, value in variants.items() if name in options["variants"]}
n_clusters = len(np.unique(y_train))


for name, (X, X_test) in variants.items():
    neighbors50 = mine_neighbors(X, 50, metric="cosine", random_state=0)
    same = y_train[neighbors50] == y_train[:, None]
    purity = "  ".join(f"@{k} {same[:, :k].mean():.3f}" for k in (5, 10, 20, 50))
    kmeans = KMeans(n_clusters, n_init=10, random_state=0).fit(X)
    kmeans_acc = clustering_accuracy_score(y_test, kmeans.predict(X_test))
    print(f"[{name}] purity {purity}  k-means test {kmeans_acc:.3f}", flush=True)
    neighbors = neighbors50[:, : options["k"]]
    inputs = views if name == "views" else torch.from_numpy(X)
    for seed in options["seeds"]:
        start = time.perf_counter()
        torch.manual_seed(seed)
        heads = ClusteringHeads(X.shape[1], n_clusters, 50, 0)
        heads, _ = train_scan(heads, inputs, neighbors, entropy_weight=5.0, epochs=options["epochs"], batch_size=128,
                              device=torch.device("cpu"), generator=make_generator(seed), images=False,
                              learning_rate=1e-2, augment=pick_views if name == "views" else None)
        with torch.no_grad():
            logits = heads(torch.from_numpy(X)).numpy()
            _, kept, orders = choose_heads(logits, neighbors, 5.0, 10)
            kept_head = heads.mean_head(kept, orders)
            test_labels = kept_head(torch.from_numpy(X_test)).argmax(1).numpy()
            test_logits = heads(torch.from_numpy(X_test)).numpy()
        best = max(clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(50))
        print(f"  seed {seed}: kept head test {clustering_accuracy_score(y_test, test_labels):.3f}  "
              f"best head {best:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)
