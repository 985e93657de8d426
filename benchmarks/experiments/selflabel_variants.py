"""Self-labeling variants from one clustering-step model (why does self-labeling lose points?).

    python benchmarks/experiments/selflabel_variants.py fashion_mnist '{"freeze_backbone": false, "scan_epochs": 30}'

Fits SCANClusterer without self-labeling on the ablation's 10,000-image sample (pretext from the
ablation's cache), then runs ``train_selflabel`` from a copy of that model in several variants and
prints test ACC, the confident share and the accuracy of the confident pseudo-labels.
"""

import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ablation import PRETEXT  # noqa: E402
from real_images import load  # noqa: E402

from sklearn_scan import SCANClusterer  # noqa: E402
from sklearn_scan._augment import policy_for_images, strong_views, weak_views  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._selflabel import train_selflabel  # noqa: E402
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches  # noqa: E402
from sklearn_scan.metrics import clustering_accuracy_score  # noqa: E402


def main():
    dataset, params = sys.argv[1], json.loads(sys.argv[2])
    variants = sys.argv[3].split(",") if len(sys.argv) > 3 else ["strong", "weak", "clean", "strong_lr1e-5"]
    data = load(dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    rng = np.random.default_rng(0)
    train = rng.choice(len(data.X_train), size=10_000, replace=False)
    X_train, y_train = data.X_train[train], data.y_train[train]
    cache = f"/tmp/scan-ablation-cache/{dataset}-0"
    model = SCANClusterer(10, random_state=0, memory=cache, selflabel_epochs=0,
                          **dict(PRETEXT[dataset], **params)).fit(X_train)
    print("clustering step: test ACC", clustering_accuracy_score(data.y_test, model.predict(data.X_test)), flush=True)
    inputs, _ = to_model_inputs(X_train)
    test_inputs, _ = to_model_inputs(data.X_test)
    policy = policy_for_images(*inputs.shape[1:])
    cpu = torch.device("cpu")
    augmentations = {
        "strong": lambda batch, generator: strong_views(batch, policy, generator),
        "weak": lambda batch, generator: weak_views(batch, policy, generator),
        "clean": None,
    }
    for variant in variants:
        augmentation, learning_rate = variant.split("_lr") if "_lr" in variant else (variant, "1e-4")
        network = copy.deepcopy(model.model_)
        history = []
        with mixed_precision("auto"):
            logits = predict_in_batches(network, inputs, cpu, 512, True)
            probability = torch.softmax(torch.from_numpy(logits).float(), 1).max(1).values.numpy()
            confident = probability > 0.99
            before = clustering_accuracy_score(y_train[confident], logits.argmax(1)[confident])
            train_selflabel(network, inputs, n_clusters=10, confidence_threshold=0.99, epochs=10, batch_size=128,
                            device=cpu, generator=make_generator(0), strong_augment=augmentations[augmentation],
                            learning_rate=float(learning_rate), history=history)
            test_logits = predict_in_batches(network, test_inputs, cpu, 512, True)
        print(f"{variant:<16} test ACC {clustering_accuracy_score(data.y_test, test_logits.argmax(1)):.3f}  "
              f"confident share {confident.mean():.3f} (their ACC {before:.3f})  shares "
              f"{[round(h['confident_share'], 3) for h in history]}", flush=True)


if __name__ == "__main__":
    main()
