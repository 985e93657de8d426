"""Neighbour purity of a cached SimCLR encoder's embedding, mined on the images' own features or on their mean
with the features of weak views (and centred), with the kept head's test ACC for each mining.

Usage: python benchmarks/experiments/mining_views.py DATASET OUTPUT.pkl [--views 0 2 4 8] [--heads]
(OUTPUT.pkl: a joblib cache entry of the pretext, as benchmarks/ablation.py caches it; the 10,000-image
training sample of seed 0 as ablation.py draws it). The heads train as the estimator's do on a pretext-trained
encoder (50 linear heads, 100 epochs, lr 1e-2, the images' own features), with each mining's neighbours.
"""

import argparse
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kept_head import kept_head  # noqa: E402
from real_images import load  # noqa: E402

from sklearn_scan._augment import ViewsEncoder, policy_for_images  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._neighbors import mine_neighbors  # noqa: E402
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches  # noqa: E402
from sklearn_scan.metrics import clustering_accuracy_score  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dataset")
parser.add_argument("cached")
parser.add_argument("--views", type=int, nargs="+", default=[0, 2, 4, 8])
parser.add_argument("--heads", action="store_true")
args = parser.parse_args()

data = load(args.dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
sample = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
y_train = data.y_train[sample]
encoder, _, _ = joblib.load(args.cached)
inputs, images = to_model_inputs(data.X_train[sample])
test_inputs, _ = to_model_inputs(data.X_test)
policy = policy_for_images(*inputs.shape[1:])
n_classes = len(data.classes)


def purity(neighbors):
    return float((y_train[neighbors] == y_train[:, None]).mean())


def embed(module, x):
    with mixed_precision("auto"):
        return predict_in_batches(module, x, torch.device("cpu"), 512, images)


own = embed(encoder, inputs)
test_own = torch.from_numpy(embed(encoder, test_inputs).astype(np.float32))
for n_views in args.views:
    start = time.perf_counter()
    if n_views:
        features = embed(ViewsEncoder(encoder, policy, n_views, make_generator(0)), inputs).mean(axis=1)
    else:
        features = own
    seconds = time.perf_counter() - start
    for centred in (False, True):
        mined = features - features.mean(axis=0) if centred else features
        neighbors = mine_neighbors(mined, 20)
        line = f"views {n_views} centred {centred}: purity@20 {purity(neighbors):.4f} (embedding {seconds:.1f} s)"
        if args.heads:
            head = kept_head(torch.from_numpy(own.astype(np.float32)), torch.from_numpy(own.astype(np.float32))[:, None],
                             neighbors, n_classes, 0, epochs=100)
            with torch.no_grad():
                predicted = head(test_own).argmax(1).numpy()
            line += f", kept head test ACC {clustering_accuracy_score(data.y_test, predicted):.4f}"
        print(line, flush=True)
