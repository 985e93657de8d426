"""Peak memory of fitting on an image collection, against the size of its decoded pixels.

A collection (folder, file list or torch Dataset) is decoded once, at
``image_size``, into one uint8 array of N x image_size x image_size x 3 bytes;
this script checks that the whole fit needs little more than that. With a
fixed encoder (``pretext="none"``, frozen, no self-labeling) the collection is
embedded one batch at a time and should need almost nothing per image. It fits
SCANClusterer on a Dataset of synthetic photos (larger than ``image_size``, so
every one is resized), with no pretext epochs so that the figure is the data
path's, not the network's. Each (size, mode) runs in a fresh process; peak
resident memory is read from the kernel. Writes docs/collection-memory.md.

Usage: python benchmarks/collection_memory.py [--sizes 5000 20000] [--image-size 64]
"""

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from _common import ROOT, in_fresh_process, run_metadata


class SyntheticPhotos:
    """A torch-style Dataset of (source_side, source_side, 3) uint8 photos made on demand."""

    def __init__(self, n_images, source_side):
        self.n_images, self.source_side = n_images, source_side

    def __len__(self):
        return self.n_images

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        corner = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float32)
        ramp = np.linspace(0, 1, self.source_side, dtype=np.float32)
        image = (corner[0, 0] * (1 - ramp)[:, None, None] * (1 - ramp)[None, :, None]
                 + corner[1, 1] * ramp[:, None, None] * ramp[None, :, None])
        return image.clip(0, 255).astype(np.uint8), 0


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MODES = {
    "pixels held": "default CNN, pixels decoded into memory once",
    "streamed": "fixed encoder (pretext='none', frozen, selflabel_epochs=0): embedded batch by batch",
}


def run(n_images, image_size, source_side, mode):
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from sklearn_scan import SCANClusterer

    torch.set_num_threads(2)
    photos = type("Photos", (SyntheticPhotos, Dataset), {})(n_images, source_side)
    if mode == "streamed":
        encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        params = dict(backbone=encoder, pretext="none")
    else:
        params = dict(pretext_epochs=0)
    baseline = peak_mib()
    start = time.perf_counter()
    model = SCANClusterer(4, scan_epochs=2, selflabel_epochs=0, n_heads=5, image_size=image_size,
                          random_state=0, **params).fit(photos)
    return {
        "mode": mode, "n_images": n_images, "image_size": image_size, "source_side": source_side,
        "decoded_mib": n_images * image_size * image_size * 3 / 2**20,
        "baseline_mib": baseline, "peak_mib": peak_mib(), "seconds": time.perf_counter() - start,
        "n_clusters_found": int(len(np.unique(model.labels_))),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--source-side", type=int, default=96)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    rows = []
    for mode in MODES:
        for n_images in args.sizes:
            rows.append(in_fresh_process(run, n_images, args.image_size, args.source_side, mode))
            row = rows[-1]
            print(f"{mode}, {n_images} images: decoded {row['decoded_mib']:.0f} MiB, peak {row['peak_mib']:.0f} MiB "
                  f"(after imports {row['baseline_mib']:.0f}), fit {row['seconds']:.0f} s", flush=True)
    meta = run_metadata()
    lines = [
        "# Memory of fitting on an image collection",
        "",
        f"`python benchmarks/collection_memory.py --sizes {' '.join(map(str, args.sizes))} --image-size {args.image_size}`"
        f": {meta['date']}, {meta['machine']}, {meta['cpus']} cores, torch {meta['torch']}.",
        "",
        f"A torch Dataset of {args.source_side}x{args.source_side} RGB photos decoded at {args.image_size} px, "
        "no pretext epochs, so the figures are the data path's. Peak is the process's resident-set maximum. Modes: "
        + "; ".join(f"*{mode}*: {text}" for mode, text in MODES.items()) + ".",
        "",
        "| mode | images | decoded pixels (MiB) | peak after imports (MiB) | peak during fit (MiB) | fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['n_images']} | {row['decoded_mib']:.0f} | {row['baseline_mib']:.0f} "
                     f"| {row['peak_mib']:.0f} | {row['seconds']:.0f} |")
    lines.append("")
    for mode in MODES:
        runs = [row for row in rows if row["mode"] == mode]
        if len(runs) >= 2:
            slope = (runs[-1]["peak_mib"] - runs[0]["peak_mib"]) / (runs[-1]["decoded_mib"] - runs[0]["decoded_mib"])
            lines.append(f"- {mode}: peak memory grows by {slope:.2f} MiB per MiB of decoded pixels between "
                         f"{runs[0]['n_images']} and {runs[-1]['n_images']} images (1.0: one copy of the pixels).")
    report = "\n".join(lines) + "\n"
    Path(args.out, "collection-memory.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    Path(args.out, "collection-memory.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
