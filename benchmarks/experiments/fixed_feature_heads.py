"""SCAN heads on fixed features: one sampled neighbour per anchor (the library) against all k at once.

The paper's consistency term sums over every neighbour of an anchor; the library's training step draws
one neighbour per anchor and step. On fixed features the whole neighbour set costs little (the heads
are linear), so this script measures whether the exact term gives better heads.

Usage: python benchmarks/experiments/fixed_feature_heads.py TRAIN.npy TRAIN_Y.npy TEST.npy TEST_Y.npy '{"all": true}'
Prints, per seed of the heads, train and test ACC of the kept head (mean of the 10 lowest-loss heads,
clusters matched, as the estimator keeps it), of the lowest-loss head and of the best head.
"""

import json
import sys
import time

import numpy as np
import torch

from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import choose_heads, train_scan
from sklearn_scan._scan_loss import SCANLoss
from sklearn_scan._torch_utils import cosine_schedule, make_generator, n_batches, predict_in_batches, shuffled_batches
from sklearn_scan.metrics import clustering_accuracy_score

train, y_train, test, y_test = (np.load(path) for path in sys.argv[1:5])
options = {"all": False, "lr": 1e-2, "epochs": 200, "heads": 50, "k": 20, "entropy": 5.0, "seeds": [0, 1, 2],
           "batch": 128, "kept": 10, "metric": "cosine", **json.loads(sys.argv[5] if len(sys.argv) > 5 else "{}")}
print(options, flush=True)
X, X_test = torch.from_numpy(train.astype(np.float32)), torch.from_numpy(test.astype(np.float32))
n_clusters = len(np.unique(y_train))
neighbors = mine_neighbors(train, options["k"], metric=options["metric"])
print(f"purity@{options['k']} {(y_train[neighbors] == y_train[:, None]).mean():.3f}", flush=True)


def train_all_neighbors(heads, generator):
    """Adam on the SCAN loss with every neighbour of each anchor in the consistency term."""
    optimizer = torch.optim.Adam(heads.parameters(), lr=options["lr"], weight_decay=1e-4)
    scheduler = cosine_schedule(optimizer, options["epochs"] * n_batches(len(X), options["batch"]))
    table = torch.from_numpy(neighbors)
    entropy_loss = SCANLoss(options["entropy"])
    for _ in range(options["epochs"]):
        for anchors in shuffled_batches(len(X), options["batch"], generator):
            anchor_log = torch.log_softmax(heads(X[anchors]), -1)  # (B, H, C)
            partner_log = torch.log_softmax(heads(X[table[anchors].reshape(-1)]), -1)
            partner_log = partner_log.view(len(anchors), -1, *anchor_log.shape[1:])  # (B, k, H, C)
            consistency = -torch.logsumexp(anchor_log[:, None] + partner_log, -1).mean((0, 1))
            mean_probs = anchor_log.exp().mean(0)
            entropy = -(mean_probs * mean_probs.clamp_min(1e-8).log()).sum(-1)
            loss = consistency - entropy_loss.entropy_weight * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            scheduler.step()
    return heads


for seed in options["seeds"]:
    start = time.perf_counter()
    torch.manual_seed(seed)
    heads = ClusteringHeads(X.shape[1], n_clusters, options["heads"], 0)
    if options["all"]:
        heads = train_all_neighbors(heads, make_generator(seed)).eval()
    else:
        heads, _ = train_scan(heads, X, neighbors, entropy_weight=options["entropy"], epochs=options["epochs"],
                              batch_size=options["batch"], device=torch.device("cpu"), generator=make_generator(seed),
                              images=False, learning_rate=options["lr"])
    seconds = time.perf_counter() - start
    train_logits = predict_in_batches(heads, X, torch.device("cpu"), 1024, False)
    test_logits = predict_in_batches(heads, X_test, torch.device("cpu"), 1024, False)
    losses, kept, orders = choose_heads(train_logits, neighbors, options["entropy"], options["kept"])
    kept_head = heads.mean_head(kept, orders)
    with torch.no_grad():
        kept_train, kept_test = kept_head(X).argmax(1).numpy(), kept_head(X_test).argmax(1).numpy()
    test_acc = np.array([clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(options["heads"])])
    print(f"seed {seed}: kept head train {clustering_accuracy_score(y_train, kept_train):.3f} "
          f"test {clustering_accuracy_score(y_test, kept_test):.3f}  lowest-loss test {test_acc[kept[0]]:.3f}  "
          f"best test {test_acc.max():.3f}  lowest loss {losses[kept[0]]:.3f}  ({seconds:.0f} s)", flush=True)
