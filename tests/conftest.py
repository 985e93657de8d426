import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as float images in [0, 1] and their labels."""
    data = load_digits()
    return data.images / 16.0, data.target


@pytest.fixture
def blobs():
    """Well separated 2-D features in 3 clusters."""
    X, y = make_blobs(n_samples=90, centers=3, cluster_std=0.5, random_state=0)
    return X.astype(np.float32), y


def fast_params(**overrides):
    """A configuration that fits small data in a second or two."""
    params = dict(
        n_clusters=3, n_neighbors=5, n_heads=2, pretext_epochs=1, scan_epochs=30,
        selflabel_epochs=2, batch_size=64, random_state=0,
    )
    params.update(overrides)
    return params
