"""The paper's CIFAR-10 protocol on one GPU, in one call.

Fit on all 50,000 training images, report ACC/NMI/ARI on the 10,000 test
images with ``predict``. The schedule is sized for a 30-minute wall-time budget
on one H200 (ResNet-18, the whole network fine-tuned as in the paper, with
fewer pretext epochs than its 500).

    python benchmarks/gpu_cifar10.py --data PATH/cifar10-jpg.tar --out OUT_DIR [--pretext-epochs 200]

Writes OUT_DIR/gpu_cifar10.json (figures, wall time per stage from the
model's history, GPU name) and prints the figures as it goes.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from sklearn_scan import SCANClusterer
from sklearn_scan.datasets import load_cifar10
from sklearn_scan.metrics import clustering_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="cifar10-jpg.tar, or 'torchvision' to download")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pretext-epochs", type=int, default=200)
    parser.add_argument("--scan-epochs", type=int, default=50)
    parser.add_argument("--selflabel-epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("This script is the GPU track: no CUDA device is visible.")
    data = load_cifar10(None if args.data == "torchvision" else args.data)
    params = dict(
        backbone="resnet18", freeze_backbone=False, batch_size=512, pretext_epochs=args.pretext_epochs,
        scan_epochs=args.scan_epochs, selflabel_epochs=args.selflabel_epochs, random_state=args.seed, verbose=1,
    )
    start = time.perf_counter()
    model = SCANClusterer(10, **params).fit(data.X_train)
    fit_seconds = time.perf_counter() - start
    result = {
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "params": params,
        "fit_seconds": fit_seconds, "train": clustering_report(data.y_train, model.labels_),
        "test": clustering_report(data.y_test, model.predict(data.X_test)),
        "best_head": model.best_head_, "history_tail": model.history_[-3:],
    }
    print(json.dumps(result, indent=2), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_cifar10.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
