"""Last feature maps of the shipped backbone, before its head convolution, for tuning that head.

Usage: python benchmarks/experiments/embed_maps.py [OUT_DIR] [--views 1 2] [--no-test]
Writes OUT_DIR/cifar10_maps_{train,test,aug1,aug2}.npy (float16, (N, 320, 7, 7); default /tmp/feat):
the output of EfficientNet-Lite0's last block (the input of ``conv_head``, a 1x1 convolution to 1,280
channels, then batch norm, ReLU6 and average pooling) for the seed-0 training sample of 10,000 CIFAR-10
images, the test split, and one SimCLR view of each training image per seed (the views of
``embed_pretrained.py --augment SEED``), embedded as the estimator embeds arrays.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_images import load  # noqa: E402

from sklearn_scan._augment import policy_for_images, weak_views  # noqa: E402
from sklearn_scan._backbones import build_encoder  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches  # noqa: E402


class LastMaps(nn.Module):
    """The encoder up to its last block: (B, C, H, W) images -> (B, 320, 7, 7) maps."""

    def __init__(self, encoder):
        super().__init__()
        self.standardize, self.network = encoder.standardize, encoder.backbone

    def forward(self, images):
        network = self.network
        return network.blocks(network.bn1(network.conv_stem(self.standardize(images))))


parser = argparse.ArgumentParser()
parser.add_argument("out", nargs="?", default="/tmp/feat")
parser.add_argument("--views", type=int, nargs="*", default=[1, 2])
parser.add_argument("--no-test", action="store_true", help="skip the test split")
args = parser.parse_args()
out = Path(args.out)
data = load("cifar10", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
inputs, images = to_model_inputs(data.X_train[train])
float_inputs = inputs.float() / 255
policy = policy_for_images(*inputs.shape[1:])
parts = [("train", inputs)] + [(f"aug{seed}", None) for seed in args.views] + ([] if args.no_test else [("test", None)])
encoder, _ = build_encoder("efficientnet-lite0", tuple(inputs.shape[1:]), torch.device("cpu"))
maps = LastMaps(encoder).eval()
for name, part in parts:
    if name.startswith("aug"):
        part = weak_views(float_inputs, policy, make_generator(int(name[3:])))
    elif name == "test":
        part, _ = to_model_inputs(data.X_test)
    start = time.perf_counter()
    with mixed_precision("auto"):
        result = predict_in_batches(maps, part, torch.device("cpu"), 128, images)
    np.save(out / f"cifar10_maps_{name}.npy", result.astype(np.float16))
    print(name, result.shape, f"{time.perf_counter() - start:.0f} s", flush=True)
