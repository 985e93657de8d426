"""
Cluster scikit-learn's digits
=============================

Cluster scikit-learn's 1,797 8x8 digits with SCAN's defaults and compare with k-means on the raw
pixels. Labels only score the clusters, never fit them. Run with ``make demo`` (or
``python examples/digits_demo.py``): about 2 minutes on 2 CPU cores.
"""

import time

from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

from sklearn_scan import SCANClusterer
from sklearn_scan.metrics import clustering_report


def main():
    digits = load_digits()
    images = digits.images / 16.0  # (1797, 8, 8) floats in [0, 1]
    rows = []

    start = time.perf_counter()
    kmeans_labels = KMeans(n_clusters=10, n_init=10, random_state=0).fit_predict(digits.data)
    rows.append(("k-means on raw pixels", clustering_report(digits.target, kmeans_labels), time.perf_counter() - start))

    start = time.perf_counter()
    model = SCANClusterer(n_clusters=10, random_state=0, verbose=1).fit(images)
    rows.append(("SCAN (sklearn-scan)", clustering_report(digits.target, model.labels_), time.perf_counter() - start))

    print(f"\nscikit-learn digits: {len(images)} images of 8x8 pixels, 10 classes")
    print(f"{'method':<24}{'ACC':>8}{'NMI':>8}{'ARI':>8}{'time (s)':>10}")
    for name, report, seconds in rows:
        print(f"{name:<24}{report['accuracy']:>8.3f}{report['nmi']:>8.3f}{report['ari']:>8.3f}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
