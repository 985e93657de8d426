"""Heads as the estimator trains them on a SimCLR encoder, on saved features; confusion matrix of the kept head.

Usage: python benchmarks/experiments/saved_feature_heads.py FEATURES.npy LABELS.npy [K] [EPOCHS]
(e.g. the FEATURES_OUT and /tmp/mnist_y.npy of mnist_pretext.py); MINE_ON=OTHER.npy mines the neighbours on
other features of the same samples. 50 linear heads, K neighbours (20), EPOCHS
epochs (100), lr as the estimator's; prints purity@K, the kept head's ACC on these samples (the mean of the 10
lowest-loss heads), the best and median head, the cluster-to-class mapping and the confusion matrix (rows:
classes, columns: clusters); saves the kept head's labels beside FEATURES.
"""

import sys

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._pipeline import AVERAGED_HEADS, HEADS_LEARNING_RATE
from sklearn_scan._scan import choose_heads, train_scan
from sklearn_scan._torch_utils import make_generator
from sklearn_scan.metrics import clustering_accuracy_score, cluster_to_class_mapping
torch.set_num_threads(2)
f = np.load(sys.argv[1]).astype(np.float32); y = np.load(sys.argv[2]); k = int(sys.argv[3]) if len(sys.argv) > 3 else 20
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 100
feat = torch.from_numpy(f)
# MINE_ON=OTHER.npy: mine the neighbours on other features of the same samples (e.g. the projection head's).
import os
mined_on = np.load(os.environ["MINE_ON"]).astype(np.float32) if os.environ.get("MINE_ON") else f
nb = mine_neighbors(mined_on, k, metric="cosine", random_state=0)
print("purity", (y[nb] == y[:, None]).mean())
torch.manual_seed(0)
heads = ClusteringHeads(f.shape[1], 10, 50)
heads, _ = train_scan(heads, feat, nb, entropy_weight=5.0, epochs=epochs, batch_size=128, device=torch.device("cpu"),
                      generator=make_generator(0), images=False, learning_rate=HEADS_LEARNING_RATE)
heads.eval()
with torch.no_grad():
    logits = heads(feat)
logits = logits.numpy()
losses, kept, orders = choose_heads(logits, nb, 5.0, AVERAGED_HEADS)
with torch.no_grad():
    labels = heads.mean_head(kept, orders).eval()(feat).argmax(1).numpy()
acc = [clustering_accuracy_score(y, logits[:, h].argmax(1)) for h in range(50)]
print("kept", clustering_accuracy_score(y, labels), "best", max(acc), "median", np.median(acc))
m = cluster_to_class_mapping(y, labels)
print(m)
print(confusion_matrix(y, labels))
np.save(sys.argv[1].replace(".npy", "_labels.npy"), labels)
