"""The command line on a folder of photos, with default settings: ACC and wall time.

Builds, per seed, a folder of 1,000 photos of the 10 CIFAR-10 classes (100 each, drawn from the
test split, saved as JPEG or PNG at random sizes from 64 to 320 pixels with varied aspect ratios),
then times

    sklearn-scan cluster PHOTOS --n-clusters 10 --out RESULT --labels-from-folders --quiet

and scores the clusters against the folders; k-means on the same model's features is shown beside
it. Writes docs/benchmark-photos.md and .json. CIFAR-10 photos are 32 pixels upscaled, so they are
harder than real photos of these sizes. Usage: python benchmarks/photo_folder.py [--seeds 0 1 2]
"""

import argparse
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, cpu_kind, run_metadata

CIFAR_TAR = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar"


def write_photos(folder, per_class, seed):
    """Save ``per_class`` test photos of every class under folder/<class>/, at random sizes."""
    from PIL import Image

    rng = random.Random(seed)
    with tarfile.open(CIFAR_TAR) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and "/test/" in m.name]
        by_class = {}
        for member in members:
            by_class.setdefault(member.name.split("/")[-2], []).append(member)
        for label, group in sorted(by_class.items()):
            (folder / label).mkdir(parents=True)
            for index, member in enumerate(rng.sample(group, per_class)):
                image = Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
                side = rng.randint(64, 320)
                image = image.resize((side, int(side * rng.choice([0.75, 1.0, 1.33]))), Image.Resampling.BICUBIC)
                image.save(folder / label / f"{index:04d}{rng.choice(['.jpg', '.png'])}")


def run(seed, per_class):
    from sklearn.cluster import KMeans

    from sklearn_scan import SCANClusterer
    from sklearn_scan.metrics import clustering_report

    with tempfile.TemporaryDirectory() as scratch:
        photos, out = Path(scratch) / "photos", Path(scratch) / "result"
        write_photos(photos, per_class, seed)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sklearn_scan.cli", "cluster", str(photos), "--n-clusters", "10",
                        "--out", str(out), "--labels-from-folders", "--quiet"], check=True)
        seconds = time.perf_counter() - start
        rows = [line.split(",") for line in (out / "assignments.csv").read_text().splitlines()[1:]]
        truth = [Path(path).parent.name for path, _, _ in rows]
        labels = [int(cluster) for _, cluster, _ in rows]
        model = SCANClusterer.load(out / "model.pt")
        features = model.transform([path for path, _, _ in rows])
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        kmeans = KMeans(10, n_init=10, random_state=seed).fit_predict(features)
    return {"seed": seed, "seconds": seconds, "backbone": model.backbone_name_, "n_photos": len(rows),
            "scan": clustering_report(truth, labels), "kmeans_on_features": clustering_report(truth, kmeans)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args()
    if not CIFAR_TAR.exists():
        raise SystemExit(f"needs {CIFAR_TAR} (see ../shared/data/README.md)")
    meta = run_metadata(arguments=" ".join(sys.argv[1:]), cpu_capability=cpu_kind())  # before the runs: the code they start with
    runs = []
    for seed in args.seeds:
        runs.append(run(seed, args.per_class))
        print(json.dumps(runs[-1]), flush=True)
    (ROOT / "docs" / "benchmark-photos.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    acc = [r["scan"]["accuracy"] for r in runs]
    kmeans = [r["kmeans_on_features"]["accuracy"] for r in runs]
    lines = [
        "# A folder of photos, clustered with the command line's defaults", "",
        f"Per seed: {runs[0]['n_photos']:,} photos of "
        "the 10 CIFAR-10 classes (test split, upscaled to 64-320 pixels, JPEG or PNG), then "
        "`sklearn-scan cluster PHOTOS --n-clusters 10 --out RESULT --labels-from-folders --quiet`, timed as a "
        "whole (start-up, decoding, embedding, clustering, report).", "",
        f"`python benchmarks/photo_folder.py {meta['arguments']}`: {meta['date']}, {meta['machine']}, "
        f"{meta['cpus']} cores ({meta['cpu_capability']}), torch {meta['torch']}.", "",
        "| seed | backbone | ACC | NMI | ARI | k-means on the same features (ACC) | wall time (s) |", "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['seed']} | {r['backbone']} | {r['scan']['accuracy']:.3f} | {r['scan']['nmi']:.3f} | "
              f"{r['scan']['ari']:.3f} | {r['kmeans_on_features']['accuracy']:.3f} | {r['seconds']:.0f} |" for r in runs]
    lines += ["", f"Mean ACC {np.mean(acc):.3f} (k-means on the same unit-length features {np.mean(kmeans):.3f}); "
              f"median wall time {np.median([r['seconds'] for r in runs]):.0f} s.", ""]
    (ROOT / "docs" / "benchmark-photos.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
