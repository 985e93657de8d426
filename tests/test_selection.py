import numpy as np
import pytest
from sklearn.datasets import make_blobs

from sklearn_scan.selection import compare_n_clusters, neighbor_modularity


def test_modularity_of_simple_partitions():
    # Two groups whose members only point at each other.
    neighbors = np.array([[1], [0], [3], [2]])
    modularity, agreement = neighbor_modularity([0, 0, 1, 1], neighbors)
    assert agreement == 1.0 and modularity == pytest.approx(0.5)
    assert neighbor_modularity([0, 0, 0, 0], neighbors)[0] == pytest.approx(0.0)
    # Splitting across the edges: no pair agrees, less than chance.
    assert neighbor_modularity([0, 1, 0, 1], neighbors)[0] == pytest.approx(-0.5)


def test_modularity_recommends_the_number_of_blobs():
    X, _ = make_blobs(400, centers=4, n_features=6, cluster_std=1.0, random_state=0)
    report = compare_n_clusters(
        X.astype(np.float32), [6, 2, 4, 3], n_neighbors=10, n_heads=5, scan_epochs=60, selflabel_epochs=2,
        batch_size=128, random_state=0, return_models=True,
    )
    assert [row["n_clusters"] for row in report.results] == [2, 3, 4, 6]
    assert report.best_n_clusters == 4
    assert set(report.models) == {2, 3, 4, 6}
    assert all(-1 <= row["modularity"] <= 1 and 0 <= row["confident_share"] <= 1 for row in report.results)
    with pytest.raises(ValueError, match="at least 2"):
        compare_n_clusters(X, [1, 3])


@pytest.mark.numerics
def test_overclustering_is_scored_many_to_one():
    from sklearn_scan import SCANClusterer, clustering_accuracy_score

    X, y = make_blobs(400, centers=4, n_features=6, cluster_std=1.0, random_state=0)
    model = SCANClusterer(n_clusters=8, n_neighbors=10, n_heads=5, scan_epochs=60, selflabel_epochs=0, batch_size=128,
                          random_state=0).fit(X.astype(np.float32))
    assert len(np.unique(model.labels_)) > 4
    many_to_one = clustering_accuracy_score(y, model.labels_, mapping="many_to_one")
    assert many_to_one > 0.95 and many_to_one > clustering_accuracy_score(y, model.labels_)
