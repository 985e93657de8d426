"""Clustering metrics against ground truth, and scorers for GridSearchCV and cross_validate.

Labels are only for evaluation: no estimator in this package sees them while fitting.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, make_scorer, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils._param_validation import StrOptions, validate_params


@validate_params(
    {"y_true": ["array-like"], "y_pred": ["array-like"], "mapping": [StrOptions({"hungarian", "many_to_one"})]},
    prefer_skip_nested_validation=True,
)
def clustering_accuracy_score(y_true, y_pred, *, mapping="hungarian"):
    """Accuracy of cluster labels after the best mapping of clusters to classes.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes (any hashable labels).
    y_pred : array-like of shape (n_samples,)
        Cluster labels; their numbering is irrelevant.
    mapping : {"hungarian", "many_to_one"}, default="hungarian"
        "hungarian" matches clusters and classes one to one (the usual
        unsupervised-classification accuracy). With more clusters than
        classes the unmatched clusters count as errors; with fewer, the
        unmatched classes do. "many_to_one" maps every cluster to its
        majority class, the evaluation used for overclustering.

    Returns
    -------
    float in [0, 1].
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D and of the same length; got shapes {y_true.shape} and {y_pred.shape}."
        )
    if y_true.size == 0:
        raise ValueError("clustering_accuracy_score needs at least one sample.")
    # Rows are classes, columns clusters.
    counts = contingency_matrix(y_true, y_pred)
    if mapping == "many_to_one":
        return float(counts.max(axis=0).sum() / y_true.size)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / y_true.size)


def cluster_to_class_mapping(y_true, y_pred, *, mapping="hungarian"):
    """The cluster -> class mapping that :func:`clustering_accuracy_score` uses.

    With ``mapping="hungarian"`` clusters and classes are matched one to one
    (unmatched clusters are left out); with "many_to_one" every cluster maps
    to its majority class. Returns a dict from cluster label to class label.
    """
    if mapping not in ("hungarian", "many_to_one"):
        raise ValueError(f"mapping must be 'hungarian' or 'many_to_one'; got {mapping!r}.")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    counts = contingency_matrix(y_true, y_pred)
    if mapping == "many_to_one":
        return {cluster.item(): classes[row].item() for cluster, row in zip(clusters, counts.argmax(axis=0))}
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {clusters[col].item(): classes[row].item() for row, col in zip(rows, cols)}


accuracy_scorer = make_scorer(clustering_accuracy_score)
nmi_scorer = make_scorer(normalized_mutual_info_score)
ari_scorer = make_scorer(adjusted_rand_score)

#: Scorers by name, ready for ``scoring=`` of GridSearchCV and cross_validate.
SCORERS = {"accuracy": accuracy_scorer, "nmi": nmi_scorer, "ari": ari_scorer}


def clustering_report(y_true, y_pred):
    """ACC, NMI and ARI of cluster labels against classes, as a dict of floats."""
    return {
        "accuracy": clustering_accuracy_score(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }
