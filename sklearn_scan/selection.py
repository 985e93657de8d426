"""Choosing the number of clusters without labels.

:func:`compare_n_clusters` fits one :class:`SCANClusterer` per candidate
``n_clusters`` (sharing one pretext through a cache) and scores each
partition on the graph of mined neighbours. The recommended value maximises
the graph's *modularity*: the share of neighbour pairs that fall in the same
cluster, minus the share expected by chance for clusters of those sizes.
Too few clusters merge groups, which chance agreement punishes; too many
split groups, which cuts neighbour pairs apart.
"""

import tempfile

import numpy as np
from sklearn.utils import Bunch

from ._estimator import SCANClusterer
from ._sources import backbone_for, collection_image_size
from ._images import is_image_collection, load_image_collection
from ._neighbors import mine_neighbors


def neighbor_modularity(labels, neighbors):
    """Modularity of a partition of the directed k-nearest-neighbour graph.

    labels: (N,) clusters; neighbors: (N, k) indices. Returns
    ``(modularity, agreement)``: agreement is the share of (sample,
    neighbour) pairs in the same cluster; modularity subtracts the share
    expected if clusters of the same sizes were drawn at random.
    """
    labels, neighbors = np.asarray(labels), np.asarray(neighbors)
    same = labels[neighbors] == labels[:, None]
    agreement = float(same.mean())
    _, sources = np.unique(labels, return_inverse=True)
    n_clusters = sources.max() + 1
    source_share = np.bincount(sources, minlength=n_clusters) / len(labels)
    target_share = np.bincount(sources[neighbors.ravel()], minlength=n_clusters) / neighbors.size
    return agreement - float(source_share @ target_share), agreement


def compare_n_clusters(X, candidates, *, memory=None, n_neighbors=None, return_models=False, **params):
    """Fit SCAN for each ``n_clusters`` in ``candidates`` and report label-free criteria.

    X: anything :meth:`SCANClusterer.fit` takes; ``params``: the other
    SCANClusterer parameters (the same for every candidate). The pretext
    encoder is trained once and cached in ``memory`` (a temporary folder
    when None), so each further candidate costs only the later stages.
    Neighbours for the criteria are mined in the first model's embedding
    (``n_neighbors``, default that of the models).

    Returns a Bunch with ``results`` (one dict per candidate: n_clusters,
    modularity, neighbor_agreement, confident_share, score, smallest_cluster_share),
    ``best_n_clusters`` (highest modularity) and, with ``return_models``, ``models``.
    """
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 2:
        raise ValueError(f"candidates must be integers of at least 2; got {candidates}.")
    if is_image_collection(X):
        # Decoded once for all candidates; colour photos keep the backbone a fit on the files would use.
        params["backbone"] = backbone_for(X, params.get("backbone", "auto"))
        size = collection_image_size(params.get("image_size"), params["backbone"])
        X, _, _, _ = load_image_collection(X, size, n_jobs=params.get("n_jobs"), verbose=params.get("verbose", 0))
    with tempfile.TemporaryDirectory() as scratch:
        cache = memory if memory is not None else scratch
        results, models, neighbors = [], {}, None
        for n_clusters in candidates:
            model = SCANClusterer(n_clusters=n_clusters, memory=cache, **params).fit(X)
            if neighbors is None:
                k = n_neighbors or model.n_neighbors
                neighbors = mine_neighbors(model.transform(X), k, metric=model.metric_, random_state=0)
            modularity, agreement = neighbor_modularity(model.labels_, neighbors)
            confidence = model.predict_proba(X).max(axis=1)
            results.append({
                "n_clusters": n_clusters,
                "modularity": modularity,
                "neighbor_agreement": agreement,
                "confident_share": float(np.mean(confidence > model.confidence_threshold)),
                "score": model.score(X),
                "smallest_cluster_share": float(np.bincount(model.labels_).min() / len(model.labels_)),
                "n_nonempty_clusters": int(len(np.unique(model.labels_))),
            })
            if return_models:
                models[n_clusters] = model
    best = max(results, key=lambda row: row["modularity"])["n_clusters"]
    report = Bunch(results=results, best_n_clusters=best)
    if return_models:
        report.models = models
    return report
