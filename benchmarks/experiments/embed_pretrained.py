"""Features of the shipped ImageNet backbone (efficientnet-lite0) for experiments on the later stages.

Usage: python benchmarks/experiments/embed_pretrained.py DATASET [OUT_DIR] [--size SIDE] [--flip]
[--backbone NAME] [--augment SEED] (DATASET as in real_images.py). Writes
OUT_DIR/DATASET_{TAG}{SIDE}[_flip]_{train,train_y,test,test_y}.npy (default /tmp/feat, side 224, TAG
"effnet" for efficientnet-lite0, "lite1"/"lite2" for the others): the 10,000-image training sample of
seed 0 (as real_images.py draws it) and the test split, embedded exactly as
``SCANClusterer(backbone="efficientnet-lite0")`` embeds arrays (images upscaled by the backbone's input
adapter, bfloat16 where the CPU has it); ``--flip`` embeds the images mirrored left to right,
``--augment SEED`` one SimCLR view of each training image (the library's ``weak_views``; no test split).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from real_images import load  # noqa: E402

from sklearn_scan._augment import policy_for_images, weak_views  # noqa: E402
from sklearn_scan._backbones import build_encoder  # noqa: E402
from sklearn_scan._inputs import to_model_inputs  # noqa: E402
from sklearn_scan._pretrained import InputAdapter  # noqa: E402
from sklearn_scan._torch_utils import make_generator, mixed_precision, predict_in_batches  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dataset")
parser.add_argument("out", nargs="?", default="/tmp/feat")
parser.add_argument("--size", type=int, default=None, help="input side (default: the backbone's own)")
parser.add_argument("--flip", action="store_true")
parser.add_argument("--backbone", default="efficientnet-lite0")
parser.add_argument("--augment", type=int, default=None, help="seed of one SimCLR view per training image")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
data = load(args.dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
splits = (("train", data.X_train[train], data.y_train[train]), ("test", data.X_test, data.y_test))
for name, X, y in splits[:1] if args.augment is not None else splits:
    inputs, images = to_model_inputs(X)
    if args.augment is not None:
        float_inputs = inputs.float() / 255 if inputs.dtype == torch.uint8 else inputs
        inputs = weak_views(float_inputs, policy_for_images(*inputs.shape[1:]), make_generator(args.augment))
    if args.flip:
        inputs = inputs.flip(-1)
    encoder, _ = build_encoder(args.backbone, tuple(inputs.shape[1:]), torch.device("cpu"))
    assert isinstance(encoder.standardize[0], InputAdapter)
    size = encoder.standardize[0].size = args.size or encoder.standardize[0].size
    encoder.eval()
    start = time.perf_counter()
    with mixed_precision("auto"):
        features = predict_in_batches(encoder, inputs, torch.device("cpu"), 128, images)
    tag = "effnet" if args.backbone == "efficientnet-lite0" else args.backbone.removeprefix("efficientnet-")
    view = ("_flip" if args.flip else "") + (f"_aug{args.augment}" if args.augment is not None else "")
    stem = f"{args.dataset}_{tag}{size}{view}_{name}"
    np.save(out / f"{stem}.npy", features)
    np.save(out / f"{stem}_y.npy", y)
    print(name, features.shape, f"{time.perf_counter() - start:.0f} s", flush=True)
