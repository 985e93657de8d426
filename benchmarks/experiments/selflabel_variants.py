"""Self-labeling variants from one clustering-step model (why does self-labeling lose points?).

    python benchmarks/experiments/selflabel_variants.py fashion_mnist '{"freeze_backbone": false, "scan_epochs": 30}'
    python benchmarks/experiments/selflabel_variants.py fashion_mnist '{}' strong_lr1e-5_t0.9_e20,head_strong

A variant is an augmentation (strong, weak or clean) with optional parts: ``_lrX`` (Adam's rate,
default 1e-4), ``_tP`` (confidence threshold, default 0.99), ``_eN`` (epochs, default 10), ``_emaD``
(pseudo-labels from, and the result, an exponential moving average of the weights, decay D), ``_plain``
(cross-entropy without class weights); a ``head_`` prefix keeps the encoder frozen (what
``freeze_backbone=True`` self-labels), otherwise the whole network trains.

Fits SCANClusterer without self-labeling on the ablation's 10,000-image sample (pretext from the
ablation's cache), then runs ``train_selflabel`` from a copy of that model in several variants and
prints test ACC, the confident share and the accuracy of the confident pseudo-labels.
"""

import copy
import json
import sys

import numpy as np
import torch

from _ablation_sample import fit_on_ablation_sample, parse_variant
from sklearn_scan._augment import policy_for_images, strong_views, weak_views
from sklearn_scan._backbones import ClusterModel, Frozen
from sklearn_scan._inputs import to_model_inputs
import sklearn_scan._selflabel as selflabel_module
from sklearn_scan._selflabel import balanced_cross_entropy, train_selflabel
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score


def plain_cross_entropy(logits, pseudo_labels, n_clusters):
    return torch.nn.functional.cross_entropy(logits.float(), pseudo_labels)


def main():
    dataset, params = sys.argv[1], json.loads(sys.argv[2])
    variants = sys.argv[3].split(",") if len(sys.argv) > 3 else ["strong", "weak", "clean", "strong_lr1e-5"]
    data, X_train, y_train, model = fit_on_ablation_sample(dataset, **params)
    print("clustering step: test ACC", clustering_accuracy_score(data.y_test, model.predict(data.X_test)), flush=True)
    inputs, _ = to_model_inputs(X_train)
    test_inputs, _ = to_model_inputs(data.X_test)
    policy = policy_for_images(*inputs.shape[1:])
    train_labels = model.labels_
    confident = model.confidence_ > 0.99
    print("clusters (rows) by class (columns), all training images / confident ones:")
    for cluster in range(10):
        print(f"  {cluster}: {np.bincount(y_train[train_labels == cluster], minlength=10)}  "
              f"{np.bincount(y_train[(train_labels == cluster) & confident], minlength=10)}")
    cpu = torch.device("cpu")
    augmentations = {
        "strong": lambda batch, generator: strong_views(batch, policy, generator),
        "weak": lambda batch, generator: weak_views(batch, policy, generator),
        "clean": None,
    }
    for variant in variants:
        head_only = variant.startswith("head_")
        augmentation, options = parse_variant(variant.removeprefix("head_"), {"lr": "1e-4", "t": "0.99", "e": "10"},
                                              flags=("ema", "plain"))
        threshold = float(options["t"])
        selflabel_module.balanced_cross_entropy = (
            plain_cross_entropy if "plain" in options else balanced_cross_entropy)
        network = copy.deepcopy(model.model_)
        trained = ClusterModel(Frozen(network.encoder), network.head) if head_only else network
        history = []
        with mixed_precision("auto"):
            logits = predict_in_batches(network, inputs, cpu, 512, True)
            probability = torch.softmax(torch.from_numpy(logits).float(), 1).max(1).values.numpy()
            confident = probability > threshold
            before = clustering_accuracy_score(y_train[confident], logits.argmax(1)[confident])
            train_selflabel(trained, inputs, n_clusters=10, confidence_threshold=threshold,
                            epochs=int(options["e"]), batch_size=128, device=cpu, generator=make_generator(0),
                            strong_augment=augmentations[augmentation], learning_rate=float(options["lr"]),
                            history=history, ema_decay=float(options["ema"]) if "ema" in options else None)
            test_logits = predict_in_batches(network, test_inputs, cpu, 512, True)
            train_logits = predict_in_batches(network, inputs, cpu, 512, True)
        print(f"{variant:<24} test ACC {clustering_accuracy_score(data.y_test, test_logits.argmax(1)):.3f}  "
              f"train ACC {clustering_accuracy_score(y_train, logits.argmax(1)):.3f} -> "
              f"{clustering_accuracy_score(y_train, train_logits.argmax(1)):.3f}  "
              f"confident share {confident.mean():.3f} (their ACC {before:.3f})  shares "
              f"{[round(h['confident_share'], 3) for h in history]}", flush=True)


if __name__ == "__main__":
    main()
