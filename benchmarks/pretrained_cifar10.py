"""CIFAR-10 on the shipped ImageNet backbone: SCAN heads against k-means on the same features.

Protocol as benchmarks/real_images.py: per seed, fit on 10,000 training images sampled with that
seed, score on the whole test split. The estimator runs with its defaults, which pick the shipped
backbone for colour images, arrays included (the fit checks that it did); the 32-pixel
images are upscaled to 224 by the backbone's input adapter. k-means (n_init=10) runs on the same
features, as they are and at unit length.
Writes docs/benchmark-pretrained.md and .json. Usage: python benchmarks/pretrained_cifar10.py [--seeds 0 1 2]
"""

import argparse
import json
import sys
import time

import numpy as np
from _common import ROOT, run_metadata

DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar"


def run(seed, train_size, test_features=None):
    import torch
    from sklearn.cluster import KMeans

    from sklearn_scan import SCANClusterer, datasets
    from sklearn_scan._neighbors import mine_neighbors
    from sklearn_scan.metrics import clustering_accuracy_score

    data = datasets.load_cifar10(DATA)
    train = np.random.default_rng(seed).choice(len(data.X_train), train_size, replace=False)
    X, y = data.X_train[train], data.y_train[train]
    start = time.perf_counter()
    model = SCANClusterer(10, random_state=seed).fit(X)
    fit_seconds = time.perf_counter() - start
    assert model.backbone_name_ == "efficientnet-lite0", model.backbone_name_
    start = time.perf_counter()
    # The frozen backbone is the same for every seed: the test split is embedded once for all methods and seeds.
    test_features = model.transform(data.X_test) if test_features is None else test_features
    embed_seconds = time.perf_counter() - start
    with torch.inference_mode():
        scan_labels = model.model_.head(torch.from_numpy(test_features)).argmax(1).numpy()
    train_features = model.transform(X)
    neighbors = mine_neighbors(train_features, 20, metric="cosine")
    result = {"seed": seed, "fit_seconds": fit_seconds, "test_embedding_seconds": embed_seconds,
              "stage_seconds": model.stage_seconds_, "purity_k20": float((y[neighbors] == y[:, None]).mean()),
              "scan": clustering_accuracy_score(data.y_test, scan_labels)}
    for name, scale in (("kmeans", lambda F: F), ("kmeans_unit", lambda F: F / np.linalg.norm(F, axis=1, keepdims=True))):
        kmeans = KMeans(10, n_init=10, random_state=seed).fit(scale(train_features))
        result[name] = clustering_accuracy_score(data.y_test, kmeans.predict(scale(test_features)))
    return result, test_features


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--append", action="store_true",
                        help="keep the runs of other seeds in docs/benchmark-pretrained.json (each names its commit)")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args()
    if args.from_json:
        recorded = json.loads((ROOT / "docs" / "benchmark-pretrained.json").read_text())
        return write_markdown(recorded["meta"], recorded["runs"], args.train_size)
    meta = run_metadata(arguments=" ".join(sys.argv[1:]))  # before the runs: the code they start with
    path = ROOT / "docs" / "benchmark-pretrained.json"
    runs, test_features = [], None
    if args.append:
        earlier = json.loads(path.read_text())
        runs = [{"commit": earlier["meta"]["commit"], **r} for r in earlier["runs"] if r["seed"] not in args.seeds]
    for seed in args.seeds:
        result, test_features = run(seed, args.train_size, test_features)
        runs.append({"commit": meta["commit"], **result})
        print(json.dumps(runs[-1]), flush=True)
    runs.sort(key=lambda r: r["seed"])
    meta["commit"] = ", ".join(sorted({r["commit"] for r in runs}))
    path.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    write_markdown(meta, runs, args.train_size)


def write_markdown(meta, runs, train_size):
    mean = {key: float(np.mean([r[key] for r in runs])) for key in ("scan", "kmeans", "kmeans_unit", "purity_k20")}
    lines = [
        "# CIFAR-10 on the shipped ImageNet backbone", "",
        f"Fit on {train_size:,} training images per seed, test ACC on the whole test split; "
        "`SCANClusterer(10, random_state=seed)` with its defaults (for colour images the shipped "
        "EfficientNet-Lite0, frozen, 50 linear heads trained on the features of two weak views of every image, "
        "neighbours mined on the images' own features). k-means (n_init=10) runs on the same features. The fit time "
        "includes embedding the images and their views.",
        "",
        f"`{('python benchmarks/pretrained_cifar10.py ' + meta['arguments']).strip()}`: {meta['date']}, {meta['machine']}, "
        f"{meta['cpus']} cores, torch {meta['torch']}.",
        "",
        "| seed | k-means on the features | k-means on unit-length features | SCAN heads | purity@20 | fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        seconds = f"{r['fit_seconds']:.0f}" + (" (cores shared with another job)" if r.get("shared_cores") else "")
        lines.append(f"| {r['seed']} | {r['kmeans']:.3f} | {r['kmeans_unit']:.3f} | {r['scan']:.3f} | "
                     f"{r['purity_k20']:.3f} | {seconds} |")
    lines += [f"| mean | {mean['kmeans']:.3f} | {mean['kmeans_unit']:.3f} | {mean['scan']:.3f} | "
              f"{mean['purity_k20']:.3f} | |", ""]
    (ROOT / "docs" / "benchmark-pretrained.md").write_text("\n".join(lines))
    print("\n".join(lines))

if __name__ == "__main__":
    main()
