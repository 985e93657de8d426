"""Pictures of a clustering: prototype grids, cluster sizes, a confusion matrix.

Every function draws with matplotlib and returns the ``Figure``; pass
``ax=`` (or nothing, for a new figure). Images may be any indexable sequence
of arrays of shape (H, W), (H, W, 1) or (H, W, 3), uint8 0-255 or float 0-1,
so a list of decoded thumbnails works as well as an array of shape (N, H, W[, C]).
"""

import numpy as np

from .metrics import cluster_to_class_mapping


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    figure, ax = _pyplot().subplots(figsize=figsize)
    return figure, ax


def _displayable(image):
    """An (H, W) or (H, W, 3) float array in [0, 1] for ``imshow``."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"Cannot show an image of shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3).")
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def prototype_indices(labels, confidence, n_per_cluster=8, least_confident=False):
    """Indices of the most (or least) confident samples of every cluster.

    labels: (N,) cluster per sample; confidence: (N,) top probability per sample.
    Returns ``{cluster: indices}`` for every cluster present, at most
    ``n_per_cluster`` indices each, most confident first (least confident
    first with ``least_confident=True``).
    """
    labels, confidence = np.asarray(labels), np.asarray(confidence, dtype=float)
    if labels.shape != confidence.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and confidence must be 1-D and of the same length; got shapes {labels.shape} and {confidence.shape}."
        )
    chosen = {}
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        order = np.argsort(confidence[members] if least_confident else -confidence[members], kind="stable")
        chosen[int(cluster)] = members[order[:n_per_cluster]]
    return chosen


def plot_prototypes(images, labels, confidence, *, n_per_cluster=8, least_confident=False, clusters=None,
                    title=None, image_inches=0.9):
    """One row per cluster with its most confident images (its prototypes).

    images: indexable sequence of N images; labels, confidence: (N,) arrays,
    for example ``model.labels_`` and ``model.predict_proba(X).max(axis=1)``.
    ``least_confident=True`` shows the doubtful members instead.
    ``clusters`` restricts and orders the rows. Returns the figure.
    """
    chosen = prototype_indices(labels, confidence, n_per_cluster, least_confident)
    clusters = list(chosen) if clusters is None else [c for c in clusters if c in chosen]
    if not clusters:
        raise ValueError("There are no clusters to show.")
    counts = np.bincount(np.asarray(labels), minlength=max(chosen) + 1)
    plt = _pyplot()
    figure, axes = plt.subplots(
        len(clusters), n_per_cluster, squeeze=False,
        figsize=(image_inches * n_per_cluster + 1.2, image_inches * len(clusters) + (0.4 if title else 0.1)),
    )
    for row, cluster in enumerate(clusters):
        for column in range(n_per_cluster):
            ax = axes[row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if column < len(chosen[cluster]):
                index = chosen[cluster][column]
                image = _displayable(images[index])
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
                ax.set_title(f"{confidence[index]:.2f}", fontsize=6, pad=1)
        axes[row, 0].set_ylabel(f"{cluster}\n({counts[cluster]})", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.subplots_adjust(left=1.0 / (image_inches * n_per_cluster + 1.2), right=0.99, wspace=0.05, hspace=0.3)
    return figure


def plot_cluster_sizes(labels, *, n_clusters=None, ax=None):
    """Bar chart of how many samples each cluster holds. Returns the figure."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_clusters or 0)
    figure, ax = _new_axes(ax, (max(4.0, 0.35 * len(counts) + 1.5), 3.0))
    ax.bar(np.arange(len(counts)), counts, color="tab:blue")
    ax.set_xlabel("cluster")
    ax.set_ylabel("samples")
    ax.set_xticks(np.arange(len(counts)))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"Cluster sizes ({len(labels):,} samples)")
    figure.tight_layout()
    return figure


def plot_confusion_matrix(y_true, labels, *, class_names=None, ax=None):
    """Counts of each class (rows) in each cluster (columns).

    Columns are ordered by the class each cluster is matched to (Hungarian
    matching when there are as many clusters as classes, otherwise each
    cluster's majority class), so a good clustering shows a bright diagonal.
    Returns the figure.
    """
    y_true, labels = np.asarray(y_true), np.asarray(labels)
    classes, class_index = np.unique(y_true, return_inverse=True)
    clusters, cluster_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(counts, (class_index, cluster_index), 1)
    method = "hungarian" if len(clusters) <= len(classes) else "many_to_one"
    mapping = cluster_to_class_mapping(y_true, labels, mapping=method)
    # Unmatched clusters (more clusters than classes, Hungarian) go last.
    matched = np.array([np.searchsorted(classes, mapping[c]) if c in mapping else len(classes) for c in clusters.tolist()])
    order = np.argsort(matched, kind="stable")
    counts = counts[:, order]
    names = [str(name) for name in (class_names if class_names is not None else classes)]
    if len(names) != len(classes):
        raise ValueError(f"class_names has {len(names)} names for {len(classes)} classes in y_true.")
    figure, ax = _new_axes(ax, (0.45 * len(clusters) + 2.5, 0.4 * len(classes) + 1.5))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(np.arange(len(clusters)), [str(c) for c in clusters[order]], fontsize=7)
    ax.set_yticks(np.arange(len(classes)), names, fontsize=7)
    ax.set_xlabel("cluster")
    ax.set_ylabel("class")
    threshold = counts.max() / 2 if counts.size else 0
    if counts.size <= 400:
        for (row, column), value in np.ndenumerate(counts):
            ax.text(column, row, str(value), ha="center", va="center", fontsize=6,
                    color="white" if value > threshold else "black")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title("Classes per cluster")
    figure.tight_layout()
    return figure
