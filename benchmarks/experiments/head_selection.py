"""Label-free ways to choose among the clustering heads, against the heads' test ACC.

Usage: python benchmarks/experiments/head_selection.py STEM [VIEW_STEM ...] ['{"seeds": [0, 1, 2]}']
STEM as written by embed_pretrained.py (STEM_train.npy, ...); each VIEW_STEM holds features of other views
of the same training images (VIEW_STEM_train.npy, from ``--flip`` or ``--augment``): then every anchor
and neighbour trains on one of the views (the images as they are included) drawn at random; with
'{"test_stem": STEM}' the views are the given stems alone (neighbours and test still from STEM). Trains the estimator's 50 linear heads on
the features as the estimator gets them (cosine neighbours, k = 20, 30 epochs at lr 1e-2, batch 128;
each can be changed in the options, and "hidden" > 0 gives the heads a shared hidden layer), then prints
the test ACC of the head each criterion picks:
- loss: the lowest SCAN loss (the paper's choice);
- mean10: the mean of the 10 lowest-loss heads, clusters matched (the estimator's choice);
- medoid: the head whose training partition agrees best (mean adjusted Rand index) with all the others;
- medoid10: the mean of the 10 heads that agree best with the others, clusters matched;
- consensus: the mean of all 50 heads' probabilities, each matched to the medoid's clusters.
Head logits are saved to /tmp/heads_SEED.npz for further study.
"""

import json
import sys

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from sklearn_scan._augment import pick_views
from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import scan_loss_of_predictions, train_scan
from sklearn_scan._torch_utils import make_generator
from sklearn_scan.metrics import clustering_accuracy_score

stems = [arg for arg in sys.argv[1:] if not arg.startswith("{")]
options = {"seeds": [0, 1, 2], "epochs": 30, "k": 20, "lr": 1e-2, "hidden": 0, "batch": 128,
           **json.loads(next((arg for arg in sys.argv[1:] if arg.startswith("{")), "{}"))}
print(options, flush=True)
# With "test_stem" the training views are the given stems alone, the images as they are left out of them.
stem = options.get("test_stem", stems[0])
view_stems = stems if "test_stem" in options else [stem] + stems[1:]
train, y_train, test, y_test = (np.load(f"{stem}_{part}.npy") for part in ("train", "train_y", "test", "test_y"))
train, test = train.astype(np.float32), test.astype(np.float32)
n_clusters = len(np.unique(y_train))
neighbors = mine_neighbors(train, options["k"], metric="cosine", random_state=0)
views = torch.from_numpy(np.stack([np.load(f"{view}_train.npy").astype(np.float32) for view in view_stems], 1))


def match(labels, reference):
    """Order o with o[j] = the cluster of ``labels`` that agrees most with cluster j of ``reference``."""
    agreement = np.zeros((n_clusters, n_clusters))
    np.add.at(agreement, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-agreement)
    order = np.empty(n_clusters, dtype=np.int64)
    order[cols] = rows
    return order


for seed in options["seeds"]:
    torch.manual_seed(seed)
    heads = ClusteringHeads(train.shape[1], n_clusters, 50, options["hidden"])
    heads, _ = train_scan(heads, views, neighbors, augment=pick_views, entropy_weight=5.0, epochs=options["epochs"],
                          batch_size=options["batch"], device=torch.device("cpu"), generator=make_generator(seed), images=False,
                          learning_rate=options["lr"])
    heads.eval()
    with torch.no_grad():
        train_logits, test_logits = heads(torch.from_numpy(train)).numpy(), heads(torch.from_numpy(test)).numpy()
    np.savez(f"/tmp/heads_{seed}.npz", train=train_logits, test=test_logits)
    test_acc = np.array([clustering_accuracy_score(y_test, test_logits[:, h].argmax(1)) for h in range(50)])
    losses, _, _ = scan_loss_of_predictions(train_logits, neighbors, 5.0)
    train_labels = train_logits.argmax(2)
    agreement = np.array([[adjusted_rand_score(train_labels[:, a], train_labels[:, b]) if a < b else 0.0
                           for b in range(50)] for a in range(50)])
    agreement = agreement + agreement.T
    centrality = agreement.sum(1) / 49
    medoid = int(np.argmax(centrality))
    by_loss = np.argsort(losses)[:10]
    by_centrality = np.argsort(-centrality)[:10]
    picks = {
        "loss": test_acc[by_loss[0]],
        "medoid": test_acc[medoid],
    }
    # Matching uses training labels; apply the order found on the training split to the test logits.
    def matched_mean(chosen, reference_head):
        reference = train_labels[:, reference_head]
        probs = torch.softmax(torch.from_numpy(test_logits), -1).numpy()
        return np.mean([probs[:, h, match(train_labels[:, h], reference)] for h in chosen], axis=0)
    picks["mean10"] = clustering_accuracy_score(y_test, matched_mean(by_loss, by_loss[0]).argmax(1))
    picks["medoid10"] = clustering_accuracy_score(y_test, matched_mean(by_centrality, medoid).argmax(1))
    picks["consensus"] = clustering_accuracy_score(y_test, matched_mean(range(50), medoid).argmax(1))
    rank = np.corrcoef(np.argsort(np.argsort(centrality)), np.argsort(np.argsort(test_acc)))[0, 1]
    loss_rank = np.corrcoef(np.argsort(np.argsort(-losses)), np.argsort(np.argsort(test_acc)))[0, 1]
    print(f"seed {seed}: best {test_acc.max():.3f} median {np.median(test_acc):.3f}  "
          + "  ".join(f"{name} {value:.3f}" for name, value in picks.items())
          + f"  spearman(centrality, acc) {rank:.2f}  spearman(-loss, acc) {loss_rank:.2f}", flush=True)
