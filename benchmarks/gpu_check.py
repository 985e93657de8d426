"""One short GPU check: the same code on CUDA, digits figures, and a GPU-fitted pickle.

Run on a machine with a CUDA GPU: ``python benchmarks/gpu_check.py OUT_DIR``.
Writes OUT_DIR/gpu_check.json, and OUT_DIR/gpu_fitted_features.joblib with
OUT_DIR/gpu_fitted_expected.npz for the test that loads a GPU-fitted model on a CPU.
"""

import json
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import sklearn
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from sklearn_scan import SCANClusterer
from sklearn_scan.metrics import clustering_report


def timed_fit(**params):
    digits = load_digits()
    images, y = digits.images / 16.0, digits.target
    torch.cuda.synchronize()
    start = time.perf_counter()
    model = SCANClusterer(10, device="cuda", **params).fit(images)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    report = clustering_report(y, model.labels_)
    print(params, report, f"{seconds:.1f}s", flush=True)
    return {"params": params, **report, "seconds": seconds, "backbone": model.backbone_name_}


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "torch": torch.__version__, "sklearn": sklearn.__version__,
        "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
    }
    print(info, flush=True)
    digits = load_digits()
    info["kmeans_raw"] = clustering_report(digits.target, KMeans(10, n_init=10, random_state=0).fit_predict(digits.data))
    info["runs"] = [timed_fit(random_state=seed) for seed in (0, 1, 2)]
    info["runs"].append(
        timed_fit(random_state=0, freeze_backbone=False, pretext_epochs=200, scan_epochs=100, selflabel_epochs=50)
    )
    # A model fitted on the GPU, for the CPU-loading test.
    X, _ = make_blobs(n_samples=90, centers=3, cluster_std=0.5, random_state=0)
    X = X.astype(np.float32)
    model = SCANClusterer(3, n_neighbors=5, n_heads=2, scan_epochs=30, selflabel_epochs=2, batch_size=64,
                          random_state=0, device="cuda").fit(X)
    joblib.dump(model, out / "gpu_fitted_features.joblib")
    np.savez(out / "gpu_fitted_expected.npz", X=X, labels=model.predict(X), proba=model.predict_proba(X))
    info["fitted_device"] = model.device_
    (out / "gpu_check.json").write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
