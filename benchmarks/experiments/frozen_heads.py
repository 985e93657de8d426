"""Variants of the clustering step on saved frozen features (fast: no encoder runs).

python frozen_heads.py FEATURES.npy LABELS.npy VARIANT...
VARIANT is JSON: {"k": 20, "hidden": 0, "normalize": false, "epochs": 200, "lr": 1e-2, "entropy": 5}
Prints the lowest-loss head's ACC (train sample) for seeds 0-2.
"""
import json, sys, time
import numpy as np, torch
from torch import nn
from sklearn_scan._backbones import ClusteringHeads
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import scan_loss_of_predictions, train_scan
from sklearn_scan._torch_utils import make_generator, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score

f = np.load(sys.argv[1]).astype(np.float32); y = np.load(sys.argv[2])
cpu = torch.device('cpu')
for spec in sys.argv[3:]:
    v = {"k": 20, "hidden": 0, "normalize": False, "epochs": 200, "lr": 1e-2, "entropy": 5.0, "heads": 50, **json.loads(spec)}
    x = f / np.linalg.norm(f, axis=1, keepdims=True) if v["normalize"] else f
    nb = mine_neighbors(f, v["k"])
    accs = []; t0 = time.time()
    for seed in range(3):
        torch.manual_seed(seed)
        heads = ClusteringHeads(x.shape[1] if not v["hidden"] else v["hidden"], 10, v["heads"])
        model = heads if not v["hidden"] else nn.Sequential(nn.Linear(x.shape[1], v["hidden"]), nn.BatchNorm1d(v["hidden"]), nn.ReLU(), heads)
        model, _ = train_scan(model, torch.from_numpy(x), nb, entropy_weight=v["entropy"], epochs=v["epochs"], batch_size=256,
                              device=cpu, generator=make_generator(seed), images=False, learning_rate=v["lr"])
        logits = predict_in_batches(model, torch.from_numpy(x), cpu, 1024, False)
        losses, _, _ = scan_loss_of_predictions(logits, mine_neighbors(f, 20), 5.0)
        best = int(np.argmin(losses))
        head_acc = [clustering_accuracy_score(y, logits[:, h].argmax(1)) for h in range(logits.shape[1])]
        accs.append((round(head_acc[best], 3), round(max(head_acc), 3)))
    print(v, "purity %.3f" % (y[nb] == y[:, None]).mean(), "best-loss/max ACC", accs, "%.0f s" % (time.time() - t0), flush=True)
