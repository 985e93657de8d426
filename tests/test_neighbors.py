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
    with pytest.raises(ValueError, match="method must be one of"):
        mine_neighbors(features, 2, method="annoy")


def test_exact_search_in_small_chunks_gives_the_same_neighbours():
    from sklearn_scan._neighbors import _exact_neighbors

    features = torch.from_numpy(np.random.default_rng(1).normal(size=(250, 5)).astype(np.float32))
    whole = _exact_neighbors(features, 6, "cosine", torch.device("cpu"))
    # 1000 values per block: 4 rows of 250 distances at a time.
    chunked = _exact_neighbors(features, 6, "cosine", torch.device("cpu"), block_elements=1000)
    assert (whole == chunked).mean() > 0.99


def test_faiss_neighbors_are_nearly_exact_and_exclude_self():
    pytest.importorskip("faiss")
    features = np.random.default_rng(2).normal(size=(2000, 8)).astype(np.float32)
    for metric in ("cosine", "euclidean"):
        approximate = mine_neighbors(features, 10, metric=metric, method="faiss")
        exact = mine_neighbors(features, 10, metric=metric, method="exact")
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
        assert recall > 0.95 and approximate.shape == (2000, 10)
        assert not (approximate == np.arange(2000)[:, None]).any()


def test_auto_chooses_exact_search_for_small_sets_and_an_index_above():
    from sklearn_scan import _neighbors

    assert _neighbors._auto_method(20_000, torch.device("cpu")) == "exact"
    assert _neighbors._auto_method(1_000_000, torch.device("cuda")) == "exact"  # exact on a GPU
    assert _neighbors._auto_method(20_001, torch.device("cpu")) == "pynndescent"


def test_pynndescent_keeps_the_nearest_of_a_wider_graph(monkeypatch):
    from sklearn_scan import _neighbors

    built = {}
    real = __import__("pynndescent").NNDescent

    def spy(features, **kwargs):
        built.update(kwargs)
        return real(features, **kwargs)

    monkeypatch.setattr("pynndescent.NNDescent", spy)
    features = np.random.default_rng(3).normal(size=(500, 4)).astype(np.float32)
    found = _neighbors.mine_neighbors(features, 5, method="pynndescent", random_state=0)
    assert built["n_neighbors"] == _neighbors.PYNNDESCENT_GRAPH_NEIGHBORS and found.shape == (500, 5)
