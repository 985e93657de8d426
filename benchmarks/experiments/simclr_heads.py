"""Where the heads lose on a SimCLR embedding: every head's test ACC against its SCAN loss, by k and entropy weight.

Usage: python benchmarks/experiments/simclr_heads.py DATASET [--configs k,weight,epochs ...] [--pretext-epochs auto]
Uses the cached 100-epoch pretext of benchmarks/ablation.py (seed-0 sample, --cache; --pretext-epochs auto: the
defaults' pretext, as ablation.py --pretext-epochs auto caches it). For each configuration
(default: the estimator's 20,5,30), 50 linear heads train on the encoder's fixed features as the estimator
trains them (lr 1e-2, batch 128, one neighbour per step); prints the kept head's test ACC (mean of the 10
lowest-loss heads), the lowest-loss head's, the median and best head's, and the Spearman correlation of
loss with ACC over the heads.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ablation import PRETEXT, pretext_embedding  # noqa: E402
from real_images import load  # noqa: E402

from sklearn_scan._backbones import ClusteringHeads  # noqa: E402
from sklearn_scan._neighbors import mine_neighbors  # noqa: E402
from sklearn_scan._pipeline import AVERAGED_HEADS, HEADS_LEARNING_RATE  # noqa: E402
from sklearn_scan._scan import choose_heads, train_scan  # noqa: E402
from sklearn_scan._torch_utils import make_generator  # noqa: E402
from sklearn_scan.metrics import clustering_accuracy_score  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dataset")
parser.add_argument("--configs", nargs="+", default=["20,5,30"])
parser.add_argument("--cache", default="/tmp/scan-ablation-cache")
parser.add_argument("--pretext-epochs", default=None, help="as ablation.py's (e.g. auto: the defaults' pretext)")
args = parser.parse_args()
pretext = dict(PRETEXT[args.dataset])
if args.pretext_epochs is not None:
    pretext["pretext_epochs"] = args.pretext_epochs if args.pretext_epochs == "auto" else int(args.pretext_epochs)

data = load(args.dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
X_train, y_train, X_test, y_test = data.X_train[train], data.y_train[train], data.X_test, data.y_test
n_classes = len(data.classes)
model = pretext_embedding(X_train, n_classes, 0, str(Path(args.cache) / f"{args.dataset}-0"), pretext)
train_features = torch.from_numpy(model.transform(X_train).astype(np.float32))
test_features = torch.from_numpy(model.transform(X_test).astype(np.float32))

for config in args.configs:
    k, weight, epochs = config.split(",")
    k, weight, epochs = int(k), float(weight), int(epochs)
    neighbors = mine_neighbors(train_features.numpy(), k, metric="cosine", random_state=0)
    purity = float((y_train[neighbors] == y_train[:, None]).mean())
    torch.manual_seed(0)
    heads = ClusteringHeads(train_features.shape[1], n_classes, 50)
    heads, _ = train_scan(heads, train_features, neighbors, entropy_weight=weight, epochs=epochs, batch_size=128,
                          device=torch.device("cpu"), generator=make_generator(0), images=False,
                          learning_rate=HEADS_LEARNING_RATE)
    heads.eval()
    with torch.no_grad():
        train_logits, test_logits = heads(train_features).numpy(), heads(test_features).numpy()
    losses, kept, orders = choose_heads(train_logits, neighbors, weight, AVERAGED_HEADS)
    accuracies = np.array([clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(50)])
    with torch.no_grad():
        mean_labels = heads.mean_head(kept, orders).eval()(test_features).argmax(1).numpy()
    print(f"{args.dataset} k={k} weight={weight:g} epochs={epochs}: purity {purity:.3f}  kept "
          f"{clustering_accuracy_score(y_test, mean_labels):.3f}  lowest-loss {accuracies[kept[0]]:.3f}  "
          f"median {np.median(accuracies):.3f}  best {accuracies.max():.3f}  "
          f"Spearman(loss, ACC) {spearmanr(losses, accuracies)[0]:+.2f}", flush=True)
