"""Head choice on fixed features: the lowest-loss head against the mean of the lowest-loss heads, aligned.

Heads are linear (or share one trunk), so the mean of several heads' logits, with their clusters matched
to the lowest-loss head's (Hungarian on the agreement of their training labels), is again one linear
head. This script measures whether that mean beats the lowest-loss head alone.

Usage: python benchmarks/experiments/head_ensemble.py TRAIN.npy TRAIN_Y.npy TEST.npy TEST_Y.npy '{"norm": "none"}'
(features from an embedding script, e.g. /tmp/feat from pretrained_heads.py), or ``digits`` for the
pixels of scikit-learn's digits. Prints, per seed of the heads, the test ACC of the lowest-loss head, the
best and mean head, and of the aligned mean of the m lowest-loss heads.
"""

import json
import sys
import time

import numpy as np
import torch

from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import choose_heads, scan_loss_of_predictions, train_scan
from sklearn_scan._torch_utils import make_generator, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score

if sys.argv[1] == "digits":
    from sklearn.datasets import load_digits

    train, y_train = load_digits(return_X_y=True)
    test, y_test = train, y_train
    options_text = sys.argv[2] if len(sys.argv) > 2 else "{}"
else:
    train, y_train, test, y_test = (np.load(path) for path in sys.argv[1:5])
    options_text = sys.argv[5] if len(sys.argv) > 5 else "{}"
options = {"norm": "none", "metric": "cosine", "lr": 1e-2, "epochs": 200, "heads": 50, "k": 20, "entropy": 5.0,
           "seeds": [0, 1, 2], "batch": 128, "sizes": [1, 3, 5, 10, 25, 50], **json.loads(options_text)}
print(options, flush=True)


def scale(features):
    if options["norm"] == "l2":
        return features / np.linalg.norm(features, axis=1, keepdims=True)
    return features


X, X_test = scale(train).astype(np.float32), scale(test).astype(np.float32)
n_clusters = len(np.unique(y_train))
neighbors = mine_neighbors(X, options["k"], metric=options["metric"])
print(f"purity@{options['k']} {(y_train[neighbors] == y_train[:, None]).mean():.3f}", flush=True)
for seed in options["seeds"]:
    start = time.perf_counter()
    torch.manual_seed(seed)
    heads = ClusteringHeads(X.shape[1], n_clusters, options["heads"], 0)
    heads, _ = train_scan(heads, torch.from_numpy(X), neighbors, entropy_weight=options["entropy"],
                          epochs=options["epochs"], batch_size=options["batch"], device=torch.device("cpu"),
                          generator=make_generator(seed), images=False, learning_rate=options["lr"])
    seconds = time.perf_counter() - start
    train_logits = predict_in_batches(heads, torch.from_numpy(X), torch.device("cpu"), 1024, False)
    test_logits = predict_in_batches(heads, torch.from_numpy(X_test), torch.device("cpu"), 1024, False)
    _, consistency, entropy = scan_loss_of_predictions(train_logits, neighbors, options["entropy"])
    # Every head, lowest loss first, its clusters matched to the lowest-loss head's (as the estimator does).
    losses, ranked, orders = choose_heads(train_logits, neighbors, options["entropy"], options["heads"])
    accuracy = np.array([clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(options["heads"])])
    aligned_train = [train_logits[:, h][:, order] for h, order in zip(ranked, orders)]
    aligned_test = [test_logits[:, h][:, order] for h, order in zip(ranked, orders)]
    balanced = entropy >= np.log(n_clusters) - 0.05  # heads within 0.05 nats of a uniform mean prediction
    most_consistent = np.flatnonzero(balanced)[np.argmin(consistency[balanced])] if balanced.any() else ranked[0]
    line = [f"seed {seed}: lowest-loss {accuracy[ranked[0]]:.3f}  best {accuracy.max():.3f}  mean {accuracy.mean():.3f}"
            f"  most consistent balanced {accuracy[most_consistent]:.3f} ({balanced.sum()} balanced)"]
    for size in options["sizes"]:
        mean_test = np.mean(aligned_test[:size], axis=0)
        mean_train = np.mean(aligned_train[:size], axis=0)
        loss, _, _ = scan_loss_of_predictions(mean_train[:, None], neighbors, options["entropy"])
        line.append(f"mean of {size} {clustering_accuracy_score(y_test, mean_test.argmax(1)):.3f} (loss {loss[0]:.3f})")
    print("  ".join(line) + f"  ({seconds:.0f} s)", flush=True)
