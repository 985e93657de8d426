import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.model_selection import cross_validate

from sklearn_scan.metrics import (
    SCORERS,
    accuracy_scorer,
    cluster_to_class_mapping,
    clustering_accuracy_score,
    clustering_report,
)


def test_accuracy_is_invariant_to_label_permutation():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 200)
    y_pred = np.where(rng.random(200) < 0.8, y_true, rng.integers(0, 5, 200))
    base = clustering_accuracy_score(y_true, y_pred)
    for _ in range(5):
        permutation = rng.permutation(5)
        assert clustering_accuracy_score(y_true, permutation[y_pred]) == pytest.approx(base)
    # Cluster names can be anything.
    assert clustering_accuracy_score(y_true, np.array(list("abcde"))[y_pred]) == pytest.approx(base)


def test_accuracy_known_values():
    assert clustering_accuracy_score([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0
    assert clustering_accuracy_score([0, 0, 1, 1], [0, 1, 0, 1]) == 0.5
    assert clustering_accuracy_score([0, 0, 0, 1, 1, 2], [5, 5, 7, 7, 7, 9]) == pytest.approx(5 / 6)


def test_accuracy_with_more_clusters_than_classes():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    # One-to-one: cluster 0 -> class 0 (2 right), cluster 2 -> class 1 (3 right).
    assert clustering_accuracy_score(y_true, y_pred) == pytest.approx(5 / 8)
    # Many-to-one: every cluster takes its majority class.
    assert clustering_accuracy_score(y_true, y_pred, mapping="many_to_one") == 1.0


def test_accuracy_with_fewer_clusters_than_classes():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1])
    assert clustering_accuracy_score(y_true, y_pred) == pytest.approx(4 / 6)
    mapping = cluster_to_class_mapping(y_true, y_pred)
    assert mapping[0] == 0 and mapping[1] in (1, 2)


def test_many_to_one_mapping_sends_every_cluster_to_its_majority_class():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([5, 5, 6, 7, 7, 6])
    assert cluster_to_class_mapping(y_true, y_pred, mapping="many_to_one")[5] == 0
    assert cluster_to_class_mapping(y_true, y_pred, mapping="many_to_one")[7] == 1
    assert set(cluster_to_class_mapping(y_true, y_pred, mapping="many_to_one")) == {5, 6, 7}
    assert len(cluster_to_class_mapping(y_true, y_pred)) == 2
    with pytest.raises(ValueError, match="mapping"):
        cluster_to_class_mapping(y_true, y_pred, mapping="greedy")


def test_accuracy_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        clustering_accuracy_score([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="at least one"):
        clustering_accuracy_score([], [])
    with pytest.raises(ValueError, match="mapping"):
        clustering_accuracy_score([0, 1], [0, 1], mapping="greedy")


def test_scorers_plug_into_cross_validate(blobs):
    X, y = blobs
    result = cross_validate(KMeans(3, n_init=3, random_state=0), X, y, scoring=SCORERS, cv=3)
    for name in ("accuracy", "nmi", "ari"):
        assert result[f"test_{name}"].mean() > 0.95
    assert accuracy_scorer(KMeans(3, n_init=3, random_state=0).fit(X), X, y) > 0.95


def test_clustering_report():
    report = clustering_report([0, 0, 1, 1], [1, 1, 0, 0])
    assert report == {"accuracy": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
