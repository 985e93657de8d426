"""The whole pipeline on scikit-learn's digits, with the default parameters."""

import pytest
from sklearn.cluster import KMeans

from sklearn_scan import SCANClusterer
from sklearn_scan.metrics import clustering_accuracy_score

pytestmark = pytest.mark.numerics  # every test here depends on floating-point numerics


def test_digits_clusters_clearly_better_than_kmeans(digits):
    images, y = digits
    kmeans = clustering_accuracy_score(y, KMeans(10, n_init=10, random_state=0).fit_predict(images.reshape(len(images), -1)))
    model = SCANClusterer(n_clusters=10, random_state=0).fit(images)
    scan = clustering_accuracy_score(y, model.labels_)
    assert kmeans < 0.85
    assert scan > kmeans + 0.1, (scan, kmeans)
    # Prediction on the training images agrees with the fitted labels.
    assert (model.predict(images) == model.labels_).mean() > 0.99
    neighbour_purity = (y[model.neighbors_] == y[:, None]).mean()
    assert neighbour_purity > 0.9
