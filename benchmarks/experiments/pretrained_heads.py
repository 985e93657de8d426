"""Clustering heads on fixed pretrained features: feature scaling, neighbour metric and head choice.

Usage: python benchmarks/experiments/pretrained_heads.py TRAIN.npy TRAIN_Y.npy TEST.npy TEST_Y.npy '{"norm": "l2"}'
(features from an embedding script, e.g. efficientnet-lite0 on CIFAR-10). Prints, per seed, k-means on the
same features, purity@20, and the test ACC of the lowest-loss head, of the head that agrees most with the
others (medoid by NMI), the best and the mean head.
"""

import json
import sys
import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import scan_loss_of_predictions, train_scan
from sklearn_scan._torch_utils import make_generator, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score

train, y_train, test, y_test = (np.load(path) for path in sys.argv[1:5])
options = {"norm": "l2", "metric": "cosine", "lr": 1e-2, "epochs": 200, "heads": 50, "k": 20, "hidden": 0,
           "entropy": 5.0, "seeds": [0, 1, 2], "batch": 256, **json.loads(sys.argv[5] if len(sys.argv) > 5 else "{}")}
print(options)


def scale(features):
    if options["norm"] == "l2":
        return features / np.linalg.norm(features, axis=1, keepdims=True)
    if options["norm"] == "standard":
        return (features - train.mean(0)) / (train.std(0) + 1e-6)
    return features


X, X_test = scale(train).astype(np.float32), scale(test).astype(np.float32)
n_clusters = len(np.unique(y_train))
neighbors = mine_neighbors(X, options["k"], metric=options["metric"])
print(f"purity@{options['k']} {(y_train[neighbors] == y_train[:, None]).mean():.3f}")
for seed in options["seeds"]:
    kmeans = KMeans(n_clusters, n_init=10, random_state=seed).fit(X)
    start = time.perf_counter()
    torch.manual_seed(seed)
    heads = ClusteringHeads(X.shape[1], n_clusters, options["heads"], options["hidden"])
    heads, _ = train_scan(heads, torch.from_numpy(X), neighbors, entropy_weight=options["entropy"],
                          epochs=options["epochs"], batch_size=options["batch"], device=torch.device("cpu"),
                          generator=make_generator(seed), images=False, learning_rate=options["lr"])
    seconds = time.perf_counter() - start
    train_logits = predict_in_batches(heads, torch.from_numpy(X), torch.device("cpu"), 1024, False)
    test_logits = predict_in_batches(heads, torch.from_numpy(X_test), torch.device("cpu"), 1024, False)
    losses, _, _ = scan_loss_of_predictions(train_logits, neighbors, options["entropy"])
    train_labels = train_logits.argmax(2).T
    agreement = np.array([[normalized_mutual_info_score(a, b) for b in train_labels] for a in train_labels]).mean(1)
    accuracy = np.array([clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(options["heads"])])
    print(f"seed {seed}: k-means {clustering_accuracy_score(y_test, kmeans.predict(X_test)):.3f}  "
          f"lowest-loss head {accuracy[np.argmin(losses)]:.3f}  medoid head {accuracy[np.argmax(agreement)]:.3f}  "
          f"best {accuracy.max():.3f}  mean {accuracy.mean():.3f}  "
          f"spearman(-loss, acc) {np.corrcoef(np.argsort(np.argsort(-losses)), np.argsort(np.argsort(accuracy)))[0, 1]:.2f}  "
          f"({seconds:.0f} s)", flush=True)
