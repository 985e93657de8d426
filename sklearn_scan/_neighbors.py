"""Neighbour mining: the k nearest neighbours of every sample in an embedding."""

import numpy as np
import torch

# Below this many samples neighbours are exact (a chunked matrix product);
# above it pynndescent's approximate graph is much faster and nearly exact.
EXACT_SEARCH_MAX_SAMPLES = 20_000


def mine_neighbors(features, n_neighbors, *, metric="cosine", method="auto", random_state=None):
    """Indices of the ``n_neighbors`` nearest neighbours of every sample, itself excluded.

    features: (N, D) array or tensor. metric: "cosine" or "euclidean".
    method: "exact", "pynndescent", or "auto" (exact up to
    ``EXACT_SEARCH_MAX_SAMPLES`` samples). Returns an int64 array (N, n_neighbors),
    nearest first.
    """
    features = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n_samples = features.shape[0]
    if not 1 <= n_neighbors < n_samples:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be at least 1 and below n_samples={n_samples}."
        )
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
    if method == "auto":
        method = "exact" if n_samples <= EXACT_SEARCH_MAX_SAMPLES else "pynndescent"
    if method == "exact":
        return _exact_neighbors(features, n_neighbors, metric)
    if method == "pynndescent":
        return _approximate_neighbors(features.numpy(), n_neighbors, metric, random_state)
    raise ValueError(f"method must be 'auto', 'exact' or 'pynndescent', got {method!r}.")


def _exact_neighbors(features, n_neighbors, metric, chunk_elements=2**24):
    """Exact search in chunks of rows, each chunk's distance matrix about ``chunk_elements`` values."""
    if metric == "cosine":
        features = torch.nn.functional.normalize(features, dim=1)
    squared_norms = (features * features).sum(dim=1)
    chunk_size = max(1, chunk_elements // len(features))
    neighbors = []
    for start in range(0, len(features), chunk_size):
        chunk = features[start : start + chunk_size]
        # Squared euclidean distance; for unit vectors it orders like cosine distance.
        distances = squared_norms[start : start + chunk_size, None] - 2 * chunk @ features.T + squared_norms[None, :]
        rows = torch.arange(len(chunk))
        distances[rows, rows + start] = float("inf")
        neighbors.append(torch.topk(distances, n_neighbors, dim=1, largest=False).indices)
    return torch.cat(neighbors).numpy().astype(np.int64)


def _approximate_neighbors(features, n_neighbors, metric, random_state):
    from pynndescent import NNDescent

    index = NNDescent(features, metric=metric, n_neighbors=n_neighbors + 1, random_state=random_state)
    indices, _ = index.neighbor_graph
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
