"""Neighbour mining: the k nearest neighbours of every sample in an embedding."""

import numpy as np
import torch

from ._memory import release_freed_memory

#: On a CPU, exact search (a blocked matrix product, quadratic in N) up to this many samples; above it an
#: approximate index. On a GPU exact search runs up to ``GPU_EXACT_SEARCH_MAX_SAMPLES``.
EXACT_SEARCH_MAX_SAMPLES = 20_000
GPU_EXACT_SEARCH_MAX_SAMPLES = 2_000_000

#: pynndescent builds its graph with this many neighbours per sample at least (the k + 1 nearest of it are
#: kept): a wider graph keeps recall as N grows, where a graph of k + 1 loses it. On 1,000,000 rows of a
#: 128-dimensional mixture of 100 Gaussians, 2 CPU cores: recall@20 0.928 in 128 s and 2.6 GB, against
#: 0.942 in 366 s for faiss's HNSW index (docs/neighbors-scale.md), so "auto" takes pynndescent.
PYNNDESCENT_GRAPH_NEIGHBORS = 40

#: faiss's HNSW index: links per node, and the candidate lists of construction and search.
FAISS_HNSW_LINKS, FAISS_EF_CONSTRUCTION, FAISS_EF_SEARCH = 32, 80, 96

METHODS = ("auto", "exact", "pynndescent", "faiss")


def mine_neighbors(features, n_neighbors, *, metric="cosine", method="auto", random_state=None, device=None):
    """Indices of the ``n_neighbors`` nearest neighbours of every sample, itself excluded.

    features: (N, D) array or tensor. metric: "cosine" or "euclidean".
    method: "exact" (blocked matrix products, on ``device``), "pynndescent",
    "faiss" (an HNSW index; the ``faiss`` extra) or "auto": exact up to
    ``EXACT_SEARCH_MAX_SAMPLES`` samples on a CPU and
    ``GPU_EXACT_SEARCH_MAX_SAMPLES`` on a GPU, pynndescent above that.
    device: where exact search runs (None: the CPU). Returns an int64 array
    (N, n_neighbors), nearest first.
    """
    features = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n_samples = features.shape[0]
    if not 1 <= n_neighbors < n_samples:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be at least 1 and below n_samples={n_samples}."
        )
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}.")
    device = torch.device(device or "cpu")
    if method == "auto":
        method = _auto_method(n_samples, device)
    if method == "exact":
        return _exact_neighbors(features, n_neighbors, metric, device)
    if method == "faiss":
        return _faiss_neighbors(features.numpy(), n_neighbors, metric)
    return _pynndescent_neighbors(features.numpy(), n_neighbors, metric, random_state)


def _auto_method(n_samples, device):
    limit = EXACT_SEARCH_MAX_SAMPLES if device.type == "cpu" else GPU_EXACT_SEARCH_MAX_SAMPLES
    return "exact" if n_samples <= limit else "pynndescent"


def _exact_neighbors(features, n_neighbors, metric, device, block_elements=2**24):
    """Exact search in blocks of rows, each block's distance matrix about ``block_elements`` values."""
    features = features.to(device)
    if metric == "cosine":
        features = torch.nn.functional.normalize(features, dim=1)
    squared_norms = (features * features).sum(dim=1)
    block_size = max(1, block_elements // len(features))
    neighbors = []
    for start in range(0, len(features), block_size):
        block = features[start : start + block_size]
        # Squared euclidean distance; for unit vectors it orders like cosine distance.
        distances = squared_norms[start : start + block_size, None] - 2 * block @ features.T + squared_norms[None, :]
        rows = torch.arange(len(block), device=device)
        distances[rows, rows + start] = float("inf")
        neighbors.append(torch.topk(distances, n_neighbors, dim=1, largest=False).indices.cpu())
        del distances
        release_freed_memory()
    return torch.cat(neighbors).numpy().astype(np.int64)


def _pynndescent_neighbors(features, n_neighbors, metric, random_state):
    from pynndescent import NNDescent

    graph_neighbors = max(n_neighbors + 1, PYNNDESCENT_GRAPH_NEIGHBORS)
    index = NNDescent(features, metric=metric, n_neighbors=graph_neighbors, random_state=random_state)
    indices, _ = index.neighbor_graph
    return drop_self(indices[:, : n_neighbors + 1])


def _faiss_neighbors(features, n_neighbors, metric):
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "method='faiss' needs faiss: pip install 'sklearn-scan[faiss]' (or faiss-cpu / faiss-gpu)."
        ) from error
    features = np.ascontiguousarray(features, dtype=np.float32)
    if metric == "cosine":
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexHNSWFlat(features.shape[1], FAISS_HNSW_LINKS)
    index.hnsw.efConstruction = FAISS_EF_CONSTRUCTION
    index.hnsw.efSearch = max(FAISS_EF_SEARCH, n_neighbors + 1)
    index.add(features)
    _, indices = index.search(features, n_neighbors + 1)
    return drop_self(indices)


def drop_self(indices):
    """Remove each row's own index from a (N, k + 1) neighbour table, giving (N, k).

    A row that does not contain itself (possible with approximate search or
    duplicate samples) loses its last, farthest entry instead.
    """
    indices = np.asarray(indices)
    is_self = indices == np.arange(len(indices))[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # Keep only the first self-match per row so exactly one entry goes.
    first = np.argmax(is_self, axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(len(indices)), first] = False
    return indices[keep].reshape(len(indices), -1).astype(np.int64)
