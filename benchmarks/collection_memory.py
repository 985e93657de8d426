"""Peak memory of fitting on an image collection, against the size of its decoded pixels.

A collection (folder, file list or torch Dataset) is decoded once, at
``image_size``, into one uint8 array of N x image_size x image_size x 3 bytes;
this script checks that the whole fit needs little more than that: it fits
SCANClusterer on a Dataset of synthetic photos (larger than ``image_size``, so
every one is resized), with the pretext switched off so that the figure is the
data path's, not the network's. Each size runs in a fresh process; peak
resident memory is read from the kernel. Writes docs/collection-memory.md.

Usage: python benchmarks/collection_memory.py [--sizes 5000 20000] [--image-size 64]
"""

import argparse
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


def run(n_images, image_size, source_side):
    import torch
    from torch.utils.data import Dataset

    from sklearn_scan import SCANClusterer

    torch.set_num_threads(2)
    photos = type("Photos", (SyntheticPhotos, Dataset), {})(n_images, source_side)
    baseline = peak_mib()
    start = time.perf_counter()
    model = SCANClusterer(4, pretext_epochs=0, scan_epochs=2, selflabel_epochs=1, n_heads=5, image_size=image_size,
                          random_state=0).fit(photos)
    return {
        "n_images": n_images, "image_size": image_size, "source_side": source_side,
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
    for n_images in args.sizes:
        rows.append(in_fresh_process(run, n_images, args.image_size, args.source_side))
        row = rows[-1]
        print(f"{n_images} images: decoded {row['decoded_mib']:.0f} MiB, peak {row['peak_mib']:.0f} MiB "
              f"(after imports {row['baseline_mib']:.0f}), fit {row['seconds']:.0f} s", flush=True)
    meta = run_metadata()
    lines = [
        "# Memory of fitting on an image collection",
        "",
        f"`python benchmarks/collection_memory.py --sizes {' '.join(map(str, args.sizes))} --image-size {args.image_size}`"
        f" at commit {meta['commit']}, {meta['date']}, {meta['cpus']} CPUs, torch {meta['torch']}.",
        "",
        f"A torch Dataset of {args.source_side}x{args.source_side} RGB photos decoded at {args.image_size} px; "
        "pretext off, so the figures are the data path's. Peak is the process's resident-set maximum.",
        "",
        "| images | decoded pixels (MiB) | peak after imports (MiB) | peak during fit (MiB) | fit growth / decoded | fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        growth = (row["peak_mib"] - row["baseline_mib"]) / row["decoded_mib"]
        lines.append(f"| {row['n_images']} | {row['decoded_mib']:.0f} | {row['baseline_mib']:.0f} | {row['peak_mib']:.0f} "
                     f"| {growth:.2f} | {row['seconds']:.0f} |")
    if len(rows) >= 2:
        slope = (rows[-1]["peak_mib"] - rows[0]["peak_mib"]) / (rows[-1]["decoded_mib"] - rows[0]["decoded_mib"])
        lines += ["", f"Peak memory grows by {slope:.2f} MiB per MiB of decoded pixels between the two sizes "
                  "(1.0 would be exactly one copy of the pixels)."]
    report = "\n".join(lines) + "\n"
    Path(args.out, "collection-memory.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
