"""sklearn-scan: cluster images without labels by SCAN, as a scikit-learn estimator."""

from ._estimator import SCANClusterer
from .metrics import clustering_accuracy_score

__all__ = ["SCANClusterer", "clustering_accuracy_score"]
__version__ = "0.1.0"
