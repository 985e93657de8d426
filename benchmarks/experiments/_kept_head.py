"""The estimator's clustering step on fixed features, for the experiments that start from its kept head."""

import torch

from sklearn_scan._augment import pick_views
from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._pipeline import AVERAGED_HEADS, HEADS_LEARNING_RATE
from sklearn_scan._scan import choose_heads, train_scan
from sklearn_scan._torch_utils import make_generator


def kept_head(train, views, neighbors, n_clusters, seed, epochs=30, learning_rate=HEADS_LEARNING_RATE):
    """50 linear heads trained on ``views`` (N, V, F), one view drawn per step, as the estimator trains them
    (batch 128, its learning rate, entropy weight 5); returns the mean of the 10 lowest-loss heads, clusters
    matched, in eval mode. train: (N, F) the images' own features, on which the losses are measured."""
    torch.manual_seed(seed)
    heads = ClusteringHeads(train.shape[1], n_clusters, 50)
    heads, _ = train_scan(heads, views, neighbors, augment=pick_views, entropy_weight=5.0, epochs=epochs,
                          batch_size=128, device=torch.device("cpu"), generator=make_generator(seed), images=False,
                          learning_rate=learning_rate)
    with torch.no_grad():
        logits = heads(train).numpy()
    _, kept, orders = choose_heads(logits, neighbors, 5.0, AVERAGED_HEADS)
    return heads.mean_head(kept, orders).eval()
