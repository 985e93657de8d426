"""The whole network fine-tuned with the SCAN loss, starting from the defaults' clustering step.

    python benchmarks/experiments/scan_finetune.py fashion_mnist weak_e10_lr1e-4_enc1e-5,clean_e10_lr1e-4_enc1e-5

The paper's clustering step updates the whole network on augmented anchors and neighbours; trained that
way from random heads (docs/ablation.md, unfrozen_*) it lost to heads alone on Fashion-MNIST. Here the
network starts from the defaults' result instead (heads alone on the fixed embedding, the kept head), so
the encoder only moves once the head already has a sensible partition. A variant is an augmentation
(``weak``: SimCLR views as in the pretext, ``clean``: the images as they are) with ``_eN`` (epochs,
default 10), ``_lrX`` (the head's Adam rate, default 1e-4), ``_encX`` (the encoder's, default 1e-5).

Prints test ACC, training ACC, the confident share (p > 0.99) and the purity of the neighbours mined on
the fine-tuned encoder's features.
"""

import copy
import sys

import torch

from _ablation_sample import fit_on_ablation_sample, parse_variant
from sklearn_scan._augment import policy_for_images, weak_views
from sklearn_scan._backbones import ClusterModel
from sklearn_scan._inputs import to_model_inputs
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._scan import train_scan
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches
from sklearn_scan.metrics import clustering_accuracy_score


class OneHead(torch.nn.Module):
    """(B, F) -> (B, 1, C): the kept head shaped as the clustering step's heads are."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, features):
        return self.head(features).unsqueeze(1)


def purity(features, y, k=20):
    neighbors = mine_neighbors(features, k, metric="cosine", random_state=0)
    return float((y[neighbors] == y[:, None]).mean())


def main():
    dataset = sys.argv[1]
    variants = sys.argv[2].split(",")
    data, X_train, y_train, model = fit_on_ablation_sample(dataset)
    print("clustering step: test ACC", clustering_accuracy_score(data.y_test, model.predict(data.X_test)),
          "confident share", (model.confidence_ > 0.99).mean(), flush=True)
    inputs, _ = to_model_inputs(X_train)
    test_inputs, _ = to_model_inputs(data.X_test)
    policy = policy_for_images(*inputs.shape[1:])
    cpu = torch.device("cpu")
    with mixed_precision("auto"):
        start_features = predict_in_batches(model.model_.encoder, inputs, cpu, 512, True)
    print("purity@20 of the starting encoder", round(purity(start_features, y_train), 4), flush=True)
    for variant in variants:
        views, options = parse_variant(variant, {"e": "10", "lr": "1e-4", "enc": "1e-5"})
        augment = (lambda batch, generator: weak_views(batch, policy, generator)) if views == "weak" else None
        network = copy.deepcopy(model.model_)
        trainable = ClusterModel(network.encoder, OneHead(network.head))
        history = []
        with mixed_precision("auto"):
            train_scan(trainable, inputs, model.neighbors_, entropy_weight=5.0, epochs=int(options["e"]),
                       batch_size=128, device=cpu, generator=make_generator(0), augment=augment, images=True,
                       learning_rate=float(options["lr"]), encoder_learning_rate=float(options["enc"]),
                       history=history)
            network.eval()
            test_logits = predict_in_batches(network, test_inputs, cpu, 512, True)
            train_logits = predict_in_batches(network, inputs, cpu, 512, True)
            features = predict_in_batches(network.encoder, inputs, cpu, 512, True)
        confidence = torch.softmax(torch.from_numpy(train_logits).float(), 1).max(1).values.numpy()
        print(f"{variant:<28} test ACC {clustering_accuracy_score(data.y_test, test_logits.argmax(1)):.3f}  "
              f"train ACC {clustering_accuracy_score(y_train, train_logits.argmax(1)):.3f}  "
              f"confident share {(confidence > 0.99).mean():.3f}  purity@20 {purity(features, y_train):.4f}  "
              f"loss {[round(h['loss'], 3) for h in history if 'loss' in h]}", flush=True)


if __name__ == "__main__":
    main()
