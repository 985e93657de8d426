"""Batch norm's running statistics re-estimated on the clean images after the pretext: purity@20 and k-means.

Usage: python benchmarks/experiments/bn_clean_statistics.py DATASET OUTPUT.pkl
(OUTPUT.pkl: a joblib cache entry of the pretext of benchmarks/ablation.py, seed-0 sample). Prints purity@20
and k-means (unit rows) on the features with the running statistics the pretext left (from augmented
views), then with statistics averaged over one pass of the 10,000 clean images; saves both feature sets and
the labels to /tmp/s9/.
"""

import sys
from pathlib import Path

import joblib
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_images import load  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._torch_utils import mixed_precision, predict_in_batches  # noqa: E402
from sklearn_scan._neighbors import mine_neighbors  # noqa: E402
from sklearn_scan.metrics import clustering_accuracy_score  # noqa: E402
torch.set_num_threads(2)
dataset, cached = sys.argv[1], sys.argv[2]
data = load(dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
X, y = data.X_train[train], data.y_train[train]
encoder, _, _ = joblib.load(cached)
inputs, images = to_model_inputs(X)
def evaluate(tag):
    encoder.eval()
    with mixed_precision("auto"):
        f = predict_in_batches(encoder, inputs, torch.device("cpu"), 512, images)
    f = np.asarray(f, dtype=np.float32)
    nb = mine_neighbors(f, 20, random_state=0)
    pur = (y[nb] == y[:, None]).mean()
    fu = f / np.linalg.norm(f, axis=1, keepdims=True)
    km = clustering_accuracy_score(y, KMeans(10, n_init=10, random_state=0).fit_predict(fu))
    print(f"{tag}: purity@20 {pur:.4f} kmeans(unit) {km:.4f}", flush=True)
    return f
f0 = evaluate("running stats as trained")
for m in encoder.modules():
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        m.reset_running_stats(); m.momentum = None
encoder.train()
with torch.no_grad(), mixed_precision("auto"):
    for i in range(0, len(inputs), 500):
        encoder(inputs[i:i+500].float() / 255)
f1 = evaluate("running stats re-estimated on clean images")
Path("/tmp/s9").mkdir(exist_ok=True)
for name, values in (("f0", f0), ("f1", f1), ("y", y)):
    np.save(f"/tmp/s9/{dataset}_{name}.npy", values)
