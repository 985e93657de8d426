import numpy as np
import pytest
import torch

from sklearn_scan._neighbors import drop_self, mine_neighbors


def brute_force(features, k, metric):
    if metric == "cosine":
        features = features / np.linalg.norm(features, axis=1, keepdims=True)
    distances = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_neighbors_match_brute_force(metric):
    features = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    found = mine_neighbors(features, 7, metric=metric, method="exact")
    expected = brute_force(features, 7, metric)
    assert found.shape == (300, 7) and found.dtype == np.int64
    assert (found == expected).mean() > 0.99
    assert not (found == np.arange(300)[:, None]).any()


def test_pynndescent_neighbors_are_nearly_exact_and_exclude_self():
    features = np.random.default_rng(1).normal(size=(600, 5)).astype(np.float32)
    approximate = mine_neighbors(features, 10, method="pynndescent", random_state=0)
    exact = mine_neighbors(features, 10, method="exact")
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
    assert recall > 0.9
    assert not (approximate == np.arange(600)[:, None]).any()


def test_drop_self_handles_rows_without_self():
    table = np.array([[0, 4, 5], [2, 1, 3], [7, 8, 9]])
    assert drop_self(table).tolist() == [[4, 5], [2, 3], [7, 8]]


def test_mine_neighbors_rejects_bad_arguments():
    features = np.zeros((5, 2))
    with pytest.raises(ValueError, match="below n_samples=5"):
        mine_neighbors(features, 5)
    with pytest.raises(ValueError, match="metric"):
        mine_neighbors(features, 2, metric="manhattan")
    with pytest.raises(ValueError, match="method"):
        mine_neighbors(features, 2, method="faiss")


def test_exact_search_in_small_chunks_gives_the_same_neighbours():
    from sklearn_scan._neighbors import _exact_neighbors

    features = torch.from_numpy(np.random.default_rng(1).normal(size=(250, 5)).astype(np.float32))
    whole = _exact_neighbors(features, 6, "cosine")
    # 1000 values per chunk: 4 rows of 250 distances at a time.
    chunked = _exact_neighbors(features, 6, "cosine", chunk_elements=1000)
    assert (whole == chunked).mean() > 0.99
