"""Features of a pretext encoder that benchmarks/ablation.py cached, for experiments on the later stages.

Usage: python benchmarks/experiments/embed_cached_pretext.py DATASET OUTPUT.pkl [OUT_DIR]
(DATASET as in real_images.py; OUTPUT.pkl a joblib cache entry of the pretext, e.g. under
/tmp/scan-ablation-cache/DATASET-0/). Writes OUT_DIR/DATASET_{train,train_y,test,test_y}.npy (default
/tmp/feat): the 10,000-image training sample of seed 0 (as ablation.py draws it) and the test split.
"""

import sys
from pathlib import Path

import joblib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_images import load  # noqa: E402

from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._torch_utils import mixed_precision, predict_in_batches  # noqa: E402

dataset, cached = sys.argv[1], sys.argv[2]
out = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/feat")
data = load(dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
encoder, _, _ = joblib.load(cached)
for name, X, y in (("train", data.X_train[train], data.y_train[train]), ("test", data.X_test, data.y_test)):
    inputs, images = to_model_inputs(X)
    with mixed_precision("auto"):
        features = predict_in_batches(encoder, inputs, torch.device("cpu"), 512, images)
    np.save(out / f"{dataset}_{name}.npy", features)
    np.save(out / f"{dataset}_{name}_y.npy", y)
    print(name, features.shape)
