"""Neighbours of 2-D features below 128 columns: mined on the features or on the untrained MLP's outputs.

Fits the defaults on scikit-learn's digits as 64 pixel columns (seeds 0-2) and prints training ACC
and neighbour purity@20 for both; the library mines on the standardised features.

    python benchmarks/experiments/mlp_mining.py
"""

from unittest import mock

import numpy as np
from sklearn.datasets import load_digits

from sklearn_scan import SCANClusterer, _pipeline
from sklearn_scan.metrics import clustering_accuracy_score


def main():
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    for name, mine_on_inputs in (("untrained MLP outputs", False), ("standardised features", True)):
        accuracies, purities = [], []
        for seed in (0, 1, 2):
            with mock.patch.object(_pipeline, "MINE_FEATURES_FOR_MLP", mine_on_inputs):
                model = SCANClusterer(10, random_state=seed).fit(X)
            accuracies.append(clustering_accuracy_score(y, model.labels_))
            purities.append((y[model.neighbors_] == y[:, None]).mean())
        print(f"{name:<24} ACC {np.round(accuracies, 3)}  purity@20 {np.round(purities, 3)}")


if __name__ == "__main__":
    main()
