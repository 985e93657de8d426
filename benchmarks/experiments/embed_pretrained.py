"""Features of the shipped ImageNet backbone (efficientnet-lite0) for experiments on the later stages.

Usage: python benchmarks/experiments/embed_pretrained.py DATASET [OUT_DIR] [--size SIDE]
(DATASET as in real_images.py). Writes OUT_DIR/DATASET_effnet{SIDE}_{train,train_y,test,test_y}.npy
(default /tmp/feat, side 224): the 10,000-image training sample of seed 0 (as real_images.py draws it)
and the test split, embedded exactly as ``SCANClusterer(backbone="efficientnet-lite0")`` embeds arrays
(images upscaled by the backbone's input adapter, bfloat16 where the CPU has it).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_images import load  # noqa: E402

from sklearn_scan._backbones import build_encoder  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._pretrained import InputAdapter  # noqa: E402
from sklearn_scan._torch_utils import mixed_precision, predict_in_batches  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dataset")
parser.add_argument("out", nargs="?", default="/tmp/feat")
parser.add_argument("--size", type=int, default=224)
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
data = load(args.dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
for name, X, y in (("train", data.X_train[train], data.y_train[train]), ("test", data.X_test, data.y_test)):
    inputs, images = to_model_inputs(X)
    encoder, _ = build_encoder("efficientnet-lite0", tuple(inputs.shape[1:]), torch.device("cpu"))
    assert isinstance(encoder.standardize[0], InputAdapter)
    encoder.standardize[0].size = args.size
    encoder.eval()
    start = time.perf_counter()
    with mixed_precision("auto"):
        features = predict_in_batches(encoder, inputs, torch.device("cpu"), 128, images)
    stem = f"{args.dataset}_effnet{args.size}_{name}"
    np.save(out / f"{stem}.npy", features)
    np.save(out / f"{stem}_y.npy", y)
    print(name, features.shape, f"{time.perf_counter() - start:.0f} s", flush=True)
