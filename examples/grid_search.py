"""
Choose the entropy weight with GridSearchCV
===========================================

Without labels, ``GridSearchCV`` ranks models by ``SCANClusterer.score`` (minus the SCAN loss);
with labels, by the Hungarian-matched accuracy. Both searches run on scikit-learn's digits and
are printed, so that you can see how far the label-free choice agrees with the labelled one.
``memory`` caches the pretext encoder, so it is trained once per split, not once per candidate.
Run: ``python examples/grid_search.py``.
"""

import tempfile

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sklearn_scan import SCANClusterer
from sklearn_scan.metrics import SCORERS


def main():
    digits = load_digits()
    images, y = digits.images / 16.0, digits.target
    grid = {"entropy_weight": [1.0, 5.0, 10.0]}
    with tempfile.TemporaryDirectory() as cache:
        # A shorter pretext than the default keeps the 3 splits to a couple of minutes.
        model = SCANClusterer(n_clusters=10, pretext_epochs=30, selflabel_epochs=0, random_state=0, memory=cache)
        label_free = GridSearchCV(model, grid, cv=3).fit(images)
        labelled = GridSearchCV(model, grid, cv=3, scoring=SCORERS, refit="accuracy").fit(images, y)

    print(f"{'entropy_weight':>15}{'score (no labels)':>20}{'ACC':>8}{'NMI':>8}{'ARI':>8}")
    for i, weight in enumerate(grid["entropy_weight"]):
        print(
            f"{weight:>15}{label_free.cv_results_['mean_test_score'][i]:>20.3f}"
            f"{labelled.cv_results_['mean_test_accuracy'][i]:>8.3f}"
            f"{labelled.cv_results_['mean_test_nmi'][i]:>8.3f}{labelled.cv_results_['mean_test_ari'][i]:>8.3f}"
        )
    print("chosen without labels:", label_free.best_params_, " with labels:", labelled.best_params_)


if __name__ == "__main__":
    main()
