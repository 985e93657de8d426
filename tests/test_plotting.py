import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sklearn_scan.plotting import (  # noqa: E402
    plot_cluster_sizes,
    plot_confusion_matrix,
    plot_prototypes,
    prototype_indices,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_prototype_indices_orders_by_confidence_within_each_cluster():
    labels = np.array([0, 1, 0, 0, 1])
    confidence = np.array([0.5, 0.9, 0.99, 0.7, 0.6])
    chosen = prototype_indices(labels, confidence, n_per_cluster=2)
    assert list(chosen) == [0, 1]
    np.testing.assert_array_equal(chosen[0], [2, 3])
    np.testing.assert_array_equal(chosen[1], [1, 4])
    doubtful = prototype_indices(labels, confidence, n_per_cluster=1, least_confident=True)
    np.testing.assert_array_equal(doubtful[0], [0])
    with pytest.raises(ValueError, match="same length"):
        prototype_indices(labels, confidence[:3])


@pytest.mark.parametrize("shape, dtype", [((12, 6, 6), np.uint8), ((12, 6, 6, 1), np.float32), ((12, 6, 6, 3), np.uint8)])
def test_plot_prototypes_draws_one_row_per_cluster(shape, dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, shape).astype(dtype)
    if dtype == np.float32:
        images /= 255
    labels = np.repeat([0, 1, 2], 4)
    confidence = rng.random(12)
    figure = plot_prototypes(images, labels, confidence, n_per_cluster=5, title="t")
    assert len(figure.axes) == 3 * 5
    # Clusters of 4 leave the fifth column empty; filled cells hold one image each.
    filled = [ax for ax in figure.axes if ax.images]
    assert len(filled) == 12
    # Images can also be a list of differently sized thumbnails.
    thumbnails = [np.zeros((4 + i % 3, 5, 3), np.uint8) for i in range(12)]
    assert len(plot_prototypes(thumbnails, labels, confidence, n_per_cluster=2, clusters=[2, 0]).axes) == 4
    with pytest.raises(ValueError, match="Cannot show"):
        plot_prototypes(np.zeros((12, 2, 2, 2)), labels, confidence)


def test_plot_confusion_matrix_puts_matched_clusters_on_the_diagonal():
    y_true = np.array(["cat"] * 5 + ["dog"] * 5 + ["owl"] * 5)
    labels = np.array([2] * 5 + [0] * 4 + [1] + [1] * 5)
    figure = plot_confusion_matrix(y_true, labels)
    counts = figure.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.diag(counts), [5, 4, 5])
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["2", "0", "1"]
    # More clusters than classes: many-to-one matching, every cluster shown.
    over = plot_confusion_matrix(y_true, np.arange(15) % 5, class_names=["c", "d", "o"])
    assert over.axes[0].images[0].get_array().shape == (3, 5)
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion_matrix(y_true, labels, class_names=["a"])


def test_plot_cluster_sizes_counts_every_cluster():
    figure = plot_cluster_sizes(np.array([0, 0, 2]), n_clusters=4)
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    assert heights == [2, 0, 1, 0]
