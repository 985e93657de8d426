"""Beyond frozen features: tune the shipped backbone's head convolution on cached last maps.

Usage: python benchmarks/experiments/tune_top.py ['{"seeds": [0], ...}'] (maps from embed_maps.py;
'{"test": false}' scores on the training sample when the test split's maps were not written).
EfficientNet-Lite0 ends in ``conv_head`` (1x1, 320 -> 1,280 channels), batch norm with ReLU6 and average
pooling: 0.4 M weights that see a 7x7 map of every image. Per seed of the heads:
1. the estimator's clustering step on the frozen features of the two views (the baseline; neighbours
   mined on the images' own features), the mean of the 10 lowest-loss heads kept;
2. self-labeling of that head together with the head convolution (its batch norm in eval mode, so its
   statistics stay ImageNet's): pseudo-labels from the images' own maps (p > "threshold") in every batch,
   class-balanced cross-entropy on one view's maps, Adam ("lr_top" for the convolution, "lr_head"),
   "epochs" epochs; with "top": false the head alone trains (self-labeling on fixed features);
3. with "scan": true instead, the clustering step itself with the head convolution trainable: 50 fresh
   heads at lr 1e-2 and the convolution at "lr_top", SCAN loss on the views' maps, "epochs" epochs, the
   mean of the 10 lowest-loss heads kept.
Prints test ACC of the kept head and after each variant, with the confident share.
"""

import copy
import json
import sys

import numpy as np
import timm
import torch
from torch import nn

from _kept_head import kept_head

from sklearn_scan._augment import pick_views
from sklearn_scan._backbones import ClusteringHeads, ClusterModel
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import choose_heads, train_scan
from sklearn_scan._selflabel import balanced_cross_entropy
from sklearn_scan._pretrained import shipped_weights_file, _to_timm_names
from sklearn_scan._torch_utils import make_generator, shuffled_batches
from sklearn_scan.metrics import clustering_accuracy_score

options = {"seeds": [0], "folder": "/tmp/feat", "variants": [
    {"top": False, "lr_head": 1e-3, "epochs": 10, "threshold": 0.99},
    {"top": True, "lr_top": 1e-4, "lr_head": 1e-3, "epochs": 10, "threshold": 0.99},
    {"top": True, "lr_top": 1e-3, "lr_head": 1e-3, "epochs": 10, "threshold": 0.99},
], **json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")}
folder = options["folder"]
maps = {name: torch.from_numpy(np.load(f"{folder}/cifar10_maps_{name}.npy")) for name in ("train", "aug1", "aug2")}
# Without the test split's maps (embed_maps.py --no-test) ACC is measured on the training sample.
if options.get("test", True):
    maps["test"] = torch.from_numpy(np.load(f"{folder}/cifar10_maps_test.npy"))
    y_test = np.load(f"{folder}/cifar10_effnet224_test_y.npy")
else:
    maps["test"], y_test = maps["train"], np.load(f"{folder}/cifar10_effnet224_train_y.npy")
y_train = np.load(f"{folder}/cifar10_effnet224_train_y.npy")
view_maps = torch.stack([maps["aug1"], maps["aug2"]], 1)  # (N, 2, 320, 7, 7) float16


class Top(nn.Module):
    """conv_head, bn2 (with ReLU6) and average pooling: (B, 320, 7, 7) -> (B, 1280)."""

    def __init__(self):
        super().__init__()
        network = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        state = torch.load(shipped_weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
        network.load_state_dict(_to_timm_names(state, network, "efficientnet-lite0"))
        self.conv, self.norm = network.conv_head, network.bn2

    def forward(self, maps):
        return self.norm(self.conv(maps.float())).mean((2, 3))

    def train(self, mode=True):
        super().train(mode)
        self.norm.eval()  # ImageNet's statistics throughout
        return self


def apply(module, inputs, batch=500):
    with torch.no_grad():
        return torch.cat([module(inputs[i:i + batch]) for i in range(0, len(inputs), batch)])


top = Top().eval()
train = apply(top, maps["train"])
reference = torch.from_numpy(np.load(f"{folder}/cifar10_effnet224_train.npy"))
print("features from maps against embed_pretrained.py's:",
      f"max abs difference {float((train - reference).abs().max()):.3g} (feature scale {float(reference.abs().max()):.3g})")
test = apply(top, maps["test"])
views = torch.stack([apply(top, view_maps[:, v]) for v in range(2)], 1)
neighbors = mine_neighbors(train.numpy(), 20, metric="cosine", random_state=0)


def self_label(top, head, variant, generator):
    parameters = [{"params": head.parameters(), "lr": variant["lr_head"]}]
    if variant["top"]:
        parameters.append({"params": top.parameters(), "lr": variant["lr_top"]})
    optimizer = torch.optim.Adam(parameters, weight_decay=1e-4)
    model = nn.Sequential(top, head)
    shares = []
    for _ in range(variant["epochs"]):
        confident = 0
        for indices in shuffled_batches(len(train), 256, generator):
            model.eval()  # batch norm keeps its statistics throughout
            with torch.no_grad():
                top_probability, labels = torch.softmax(model(maps["train"][indices]), 1).max(1)
            mask = top_probability > variant["threshold"]
            confident += int(mask.sum())
            if mask.sum() < 2:
                continue
            logits = model(pick_views(view_maps[indices], generator))
            loss = balanced_cross_entropy(logits[mask], labels[mask], 10)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        shares.append(confident / len(train))
    return shares


for seed in options["seeds"]:
    base = kept_head(train, views, neighbors, 10, seed)
    with torch.no_grad():
        base_acc = clustering_accuracy_score(y_test, base(test).argmax(1).numpy())
    print(f"seed {seed}: kept head test {base_acc:.3f}", flush=True)
    for variant in options["variants"]:
        tuned_top, head = copy.deepcopy(top), copy.deepcopy(base)
        import time

        start = time.perf_counter()
        if variant.get("scan"):
            torch.manual_seed(seed)
            model = ClusterModel(tuned_top, ClusteringHeads(1280, 10, 50))
            model, _ = train_scan(model, view_maps, neighbors, augment=pick_views, entropy_weight=5.0,
                                  epochs=variant["epochs"], batch_size=128, device=torch.device("cpu"),
                                  generator=make_generator(seed), images=False, learning_rate=1e-2,
                                  encoder_learning_rate=variant["lr_top"])
            model.eval()
            _, kept, orders = choose_heads(apply(model, maps["train"]).numpy(), neighbors, 5.0, 10)
            head, shares = model.head.mean_head(kept, orders), []
        else:
            shares = self_label(tuned_top, head, variant, make_generator(seed))
        model = nn.Sequential(tuned_top, head).eval()
        acc = clustering_accuracy_score(y_test, apply(model, maps["test"]).argmax(1).numpy())
        print(f"  {json.dumps(variant)}: test {acc:.3f} ({acc - base_acc:+.3f}), confident share "
              + " ".join(f"{s:.2f}" for s in shares) + f", {time.perf_counter() - start:.0f} s", flush=True)
