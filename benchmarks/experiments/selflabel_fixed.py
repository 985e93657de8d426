"""Self-labeling on fixed features with weak views: does anything add points over the kept head?

Usage: python benchmarks/experiments/selflabel_fixed.py STEM VIEW_STEM [VIEW_STEM ...] ['{"seeds": [0]}']
STEM and VIEW_STEMs as in head_selection.py (embed_pretrained.py's files; the views are the training
views, as the estimator's defaults use them). Per seed: the estimator's clustering step on the views
(50 linear heads, 30 epochs at lr 1e-2, mean of the 10 lowest-loss heads), then each self-labeling
variant starting from that kept head, printing test ACC, the confident share and its accuracy:
- the estimator's recipe on features: pseudo-labels from the images' own features (p > threshold) in
  every batch, class-balanced cross-entropy on one view of each, Adam at "lr" for "epochs";
- "mlp": a fresh hidden layer (512) and output trained the same way, its pseudo-labels from the kept head.
"""

import json
import sys

import numpy as np
import torch
from torch import nn

from _kept_head import kept_head

from sklearn_scan._augment import pick_views
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._selflabel import balanced_cross_entropy
from sklearn_scan._torch_utils import make_generator, shuffled_batches
from sklearn_scan.metrics import clustering_accuracy_score

stems = [arg for arg in sys.argv[1:] if not arg.startswith("{")]
options = {"seeds": [0], "variants": [{"threshold": 0.99, "lr": 1e-3, "epochs": 30},
                                      {"threshold": 0.99, "lr": 1e-4, "epochs": 30},
                                      {"threshold": 0.9, "lr": 1e-3, "epochs": 30},
                                      {"threshold": 0.99, "lr": 1e-3, "epochs": 30, "mlp": True}],
           **json.loads(next((arg for arg in sys.argv[1:] if arg.startswith("{")), "{}"))}
torch.set_num_threads(options.get("threads", torch.get_num_threads()))
stem, view_stems = stems[0], stems[1:]
train, y_train, test, y_test = (np.load(f"{stem}_{part}.npy") for part in ("train", "train_y", "test", "test_y"))
train, test = torch.from_numpy(train.astype(np.float32)), torch.from_numpy(test.astype(np.float32))
n_clusters = len(np.unique(y_train))
neighbors = mine_neighbors(train.numpy(), 20, metric="cosine", random_state=0)
views = torch.from_numpy(np.stack([np.load(f"{view}_train.npy").astype(np.float32) for view in view_stems], 1))


def self_label(head, pseudo_source, threshold, lr, epochs, seed):
    """Train ``head`` on views against pseudo-labels from ``pseudo_source`` (a module) on the images' own features."""
    generator = make_generator(seed)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    shares = []
    for _ in range(epochs):
        confident = 0
        for indices in shuffled_batches(len(train), 256, generator):
            pseudo_source.eval()
            with torch.no_grad():
                top, labels = torch.softmax(pseudo_source(train[indices]), 1).max(1)
            mask = top > threshold
            confident += int(mask.sum())
            if mask.sum() < 2:
                continue
            head.train()
            logits = head(pick_views(views[indices], generator))
            loss = balanced_cross_entropy(logits[mask], labels[mask], n_clusters)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        shares.append(confident / len(train))
    head.eval()
    return shares


for seed in options["seeds"]:
    base = kept_head(train, views, neighbors, n_clusters, seed)
    with torch.no_grad():
        probabilities = torch.softmax(base(train), 1)
        base_acc = clustering_accuracy_score(y_test, base(test).argmax(1).numpy())
    top, labels = probabilities.max(1)
    train_acc = clustering_accuracy_score(y_train, labels.numpy())
    print(f"seed {seed}: kept head test {base_acc:.3f} (train {train_acc:.3f}); confident share at 0.99 "
          f"{float((top > 0.99).float().mean()):.3f}, at 0.9 {float((top > 0.9).float().mean()):.3f}", flush=True)
    for variant in options["variants"]:
        import copy

        torch.manual_seed(seed)
        if variant.get("mlp"):
            head = nn.Sequential(nn.Linear(train.shape[1], 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, n_clusters))
            source = base
        else:
            head = copy.deepcopy(base)
            source = head
        shares = self_label(head, source, variant["threshold"], variant["lr"], variant["epochs"], seed)
        with torch.no_grad():
            acc = clustering_accuracy_score(y_test, head(test).argmax(1).numpy())
        print(f"  {json.dumps(variant)}: test {acc:.3f} ({acc - base_acc:+.3f}); confident share "
              f"{shares[0]:.3f} -> {shares[-1]:.3f}", flush=True)
