"""SimCLR-from-scratch features, the shipped backbone's features, and the two side by side, on a grayscale set.

Usage: python benchmarks/experiments/concat_features.py DATASET [--seeds 0 1 2] [--weights 1 0.5]
Needs the cached 100-epoch pretext of benchmarks/ablation.py (--cache, seed-0 sample) and
/tmp/feat/DATASET_effnet224_{train,test}[_y].npy from embed_pretrained.py (same seed-0 sample). For each
embedding (every part at unit length; "concat w" puts w times the shipped features beside the SimCLR ones):
purity@20, k-means on it (test ACC), and the kept head of SCAN heads at lr 1e-1 (unit rows) with its SCAN
loss on the training sample, a label-free figure to compare embeddings by.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _kept_head import kept_head  # noqa: E402
from ablation import PRETEXT, pretext_embedding  # noqa: E402
from real_images import load  # noqa: E402

from sklearn_scan._neighbors import mine_neighbors  # noqa: E402
from sklearn_scan._scan import scan_loss_of_predictions  # noqa: E402
from sklearn_scan.metrics import clustering_accuracy_score  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dataset")
parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
parser.add_argument("--weights", type=float, nargs="+", default=[1.0])
parser.add_argument("--cache", default="/tmp/scan-ablation-cache")
parser.add_argument("--features", default="/tmp/feat")
args = parser.parse_args()

data = load(args.dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
X_train, y_train, X_test, y_test = data.X_train[train], data.y_train[train], data.X_test, data.y_test
n_classes = len(data.classes)
model = pretext_embedding(X_train, n_classes, 0, str(Path(args.cache) / f"{args.dataset}-0"), PRETEXT[args.dataset])


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


simclr = unit(model.transform(X_train)), unit(model.transform(X_test))
feat = Path(args.features)
assert (np.load(feat / f"{args.dataset}_effnet224_train_y.npy") == y_train).all()
shipped = tuple(unit(np.load(feat / f"{args.dataset}_effnet224_{s}.npy").astype(np.float32)) for s in ("train", "test"))
embeddings = {"simclr": simclr, "shipped": shipped}
for w in args.weights:
    embeddings[f"concat {w:g}"] = tuple(unit(np.hstack([a, w * b])).astype(np.float32) for a, b in zip(simclr, shipped))

print(f"{args.dataset}: embedding, purity@20, k-means test ACC, then per head seed: kept head test ACC (SCAN loss)")
for name, (tr, te) in embeddings.items():
    neighbors = mine_neighbors(tr, 20, metric="cosine", random_state=0)
    purity = float((y_train[neighbors] == y_train[:, None]).mean())
    kmeans = clustering_accuracy_score(y_test, KMeans(n_classes, n_init=10, random_state=0).fit(tr).predict(te))
    cells = []
    for seed in args.seeds:
        head = kept_head(torch.from_numpy(tr), torch.from_numpy(tr)[:, None], neighbors, n_classes, seed,
                         learning_rate=1e-1)
        with torch.no_grad():
            train_logits = head(torch.from_numpy(tr)).numpy()
            test_labels = head(torch.from_numpy(te)).argmax(-1).numpy()
        loss = float(scan_loss_of_predictions(train_logits, neighbors, 5.0)[0])
        cells.append(f"{clustering_accuracy_score(y_test, test_labels):.3f} ({loss:.3f})")
    print(f"  {name:<12} {purity:.3f}  {kmeans:.3f}  " + "  ".join(cells), flush=True)
