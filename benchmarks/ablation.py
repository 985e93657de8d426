"""Ablation of SCAN's two steps, in the spirit of the paper's Table 1: one change per row.

Every row fits ``SCANClusterer`` on the same 10,000-image training sample with one
pretext encoder (trained once, cached under --cache), and reports on the whole
test split: k-means on the pretext embedding, the clustering step alone
(``selflabel_epochs=0``) and the fit with self-labeling, with neighbour purity.
Results are appended to docs/ablation.json and the table is rewritten in
docs/ablation.md.

Usage:
    python benchmarks/ablation.py --dataset fashion_mnist --rows frozen unfrozen_augmented
    python benchmarks/ablation.py --list
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import ROOT, ClusteringStepSpy, run_metadata
from real_images import DATASETS, load

DOCS = ROOT / "docs"

#: The pretext every row shares (the benchmark's CPU-track settings), by data set.
PRETEXT = {
    "mnist": dict(pretext_epochs=100, batch_size=128),
    "fashion_mnist": dict(pretext_epochs=100, batch_size=128),
    "cifar10": dict(pretext_epochs=200, batch_size=128),
    "mnist16": dict(pretext_epochs="auto", batch_size=128),
}

#: Rows: changes to the estimator's parameters, each against "defaults".
ROWS = {
    "defaults": {},
    "frozen": dict(freeze_backbone=True),
    # Heads alone on the features of weak views of every image, embedded once (scan_views; the default for
    # pretrained encoders), or on the images' own features only.
    "frozen_no_views": dict(freeze_backbone=True, augmentation_params={"scan_views": 0}),
    "frozen_2_views": dict(freeze_backbone=True, augmentation_params={"scan_views": 2}),
    "frozen_4_views": dict(freeze_backbone=True, augmentation_params={"scan_views": 4}),
    # Heads alone for 30 epochs instead of 200 (on EfficientNet features of CIFAR-10, 200 epochs overfit).
    "frozen_30_epochs": dict(freeze_backbone=True, scan_epochs=30),
    # Heads alone for 100 or 200 epochs (the default before scan_epochs="auto"; MNIST seed 0 lost 3 points at 30).
    "frozen_100_epochs": dict(freeze_backbone=True, scan_epochs=100),
    "frozen_200_epochs": dict(freeze_backbone=True, scan_epochs=200),
    # Heads alone with fewer or more mined neighbours than the paper's 20 (purer at 5 and 10, more of them at 50).
    "neighbors_5": dict(freeze_backbone=True, n_neighbors=5),
    "neighbors_10": dict(freeze_backbone=True, n_neighbors=10),
    "neighbors_50": dict(freeze_backbone=True, n_neighbors=50),
    # The whole network trains in the clustering step: 30 epochs (a tenth of a CPU budget's time each).
    "unfrozen_clean": dict(freeze_backbone=False, scan_epochs=30, augmentation_params={"augment_scan": False}),
    "unfrozen_augmented": dict(freeze_backbone=False, scan_epochs=30, augmentation_params={"augment_scan": True}),
    # Heads at the frozen heads' rate, the encoder at the paper's.
    "unfrozen_augmented_split_lr": dict(freeze_backbone=False, scan_epochs=30, augmentation_params={"augment_scan": True},
                                        scan_params={"learning_rate": 1e-2, "encoder_learning_rate": 1e-4}),
}


def pretext_embedding(X, n_classes, seed, cache, pretext):
    """The cached pretext encoder's features of X (a one-epoch frozen fit reuses the cache)."""
    from sklearn_scan import SCANClusterer

    model = SCANClusterer(n_classes, random_state=seed, memory=cache, freeze_backbone=True, scan_epochs=1,
                          selflabel_epochs=0, **pretext).fit(X)
    return model


def run(dataset, rows, seed, data_dir, cache, train_size, selflabel_epochs, pretext_epochs=None):
    from sklearn.cluster import KMeans

    from sklearn_scan import SCANClusterer
    from sklearn_scan._neighbors import mine_neighbors
    from sklearn_scan.metrics import clustering_accuracy_score

    data = load(dataset, data_dir)
    rng = np.random.default_rng(seed)
    train = rng.choice(len(data.X_train), size=min(train_size, len(data.X_train)), replace=False)
    X_train, y_train, X_test, y_test = data.X_train[train], data.y_train[train], data.X_test, data.y_test
    n_classes = len(data.classes)
    cache = str(Path(cache) / f"{dataset}-{seed}")
    pretext = dict(PRETEXT[dataset], **({"pretext_epochs": pretext_epochs} if pretext_epochs is not None else {}))

    start = time.perf_counter()
    base = pretext_embedding(X_train, n_classes, seed, cache, pretext)
    pretext_seconds = time.perf_counter() - start
    train_features = base.transform(X_train)
    neighbors = mine_neighbors(train_features, 20, metric="cosine")
    purity = float((y_train[neighbors] == y_train[:, None]).mean())
    unit = train_features / np.linalg.norm(train_features, axis=1, keepdims=True)
    kmeans = KMeans(n_classes, n_init=10, random_state=seed).fit(unit)
    test_features = base.transform(X_test)
    kmeans_accuracy = clustering_accuracy_score(
        y_test, kmeans.predict(test_features / np.linalg.norm(test_features, axis=1, keepdims=True))
    )
    print(f"{dataset} seed {seed}: pretext {pretext_seconds:.0f} s, purity@20 {purity:.3f}, "
          f"k-means on the embedding {kmeans_accuracy:.3f}", flush=True)

    for row in rows:
        params = dict(pretext, **ROWS[row])
        with ClusteringStepSpy(X_test) as spy:
            full = SCANClusterer(n_classes, random_state=seed, memory=cache,
                                 **dict(params, selflabel_epochs=selflabel_epochs)).fit(X_train)
        stages = full.stage_seconds_
        clustering_seconds = sum(stages[name] for name in ("pretext", "embedding and neighbours", "clustering step"))
        final_accuracy = clustering_accuracy_score(y_test, full.predict(X_test))
        clustering_accuracy = clustering_accuracy_score(y_test, spy.labels) if spy.labels is not None else final_accuracy
        result = {
            "dataset": dataset, "row": row, "seed": seed, "params": params, "train_size": len(X_train),
            "neighbor_purity_k20": purity, "kmeans_on_embedding": kmeans_accuracy, "pretext_seconds": pretext_seconds,
            "clustering_step": clustering_accuracy, "clustering_seconds": clustering_seconds,
            "stage_seconds": stages,
        }
        if selflabel_epochs:
            shares = [entry["confident_share"] for entry in full.history_ if "confident_share" in entry]
            result.update(
                after_selflabeling=final_accuracy,
                selflabel_seconds=stages.get("self-labeling", 0.0),
                confident_shares=shares,
                selflabel_stopped=any(entry.get("stopped") for entry in full.history_),
            )
        yield result
        print(f"  {row:<22} clustering step {clustering_accuracy:.3f} ({clustering_seconds:.0f} s)"
              + (f"  after self-labeling {result['after_selflabeling']:.3f} "
                 f"({result['selflabel_seconds']:.0f} s)" if selflabel_epochs else ""), flush=True)


ROW_MEANINGS = {
    "defaults": "`SCANClusterer(n_clusters=10, random_state=0)` with the row's pretext",
    "frozen": "heads alone on the fixed pretext embedding (the default)",
    "frozen_no_views / frozen_2_views / frozen_4_views": "heads alone on the images' own features / on the features "
    "of 2 or 4 weak views of each image (`scan_views`)",
    "frozen_30_epochs / frozen_100_epochs / frozen_200_epochs": "heads alone, 30, 100 or 200 epochs",
    "neighbors_5 / neighbors_10 / neighbors_50": "heads alone with 5, 10 or 50 mined neighbours (default 20)",
    "unfrozen_clean / unfrozen_augmented": "the whole network trains in the clustering step (30 epochs, lr 1e-3) on "
    "clean images / on SimCLR views of anchors and neighbours",
    "unfrozen_augmented_split_lr": "as unfrozen_augmented, heads at lr 1e-2 and the encoder at 1e-4",
}


DATA_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
               "mnist16": "MNIST shrunk to 16x16"}


def markdown(results):
    """The ablation page: one table per data set and pretext, every row with its date and command."""
    lines = [
        "# Ablation of SCAN's steps",
        "",
        "One change per row; 10,000 training images (MNIST shrunk to 16x16: 7,291), the whole test split, seed 0, "
        "one cached pretext per table (its embedding's neighbour purity in the title). *After self-labeling*: 10 epochs from the clustering step's model, without "
        "the guard. Each row ran the library as it stood on its date (the commit is in ablation.json): rows of one "
        "table compare with each other. Written by `python benchmarks/ablation.py`; `--list` prints the rows.",
        "",
    ]
    lines += [f"- {name}: {meaning}." for name, meaning in ROW_MEANINGS.items()]
    groups = {}
    for r in results:
        embedding = (r["dataset"], str(r["params"].get("pretext_epochs")), round(r["neighbor_purity_k20"], 3))
        groups.setdefault(embedding, []).append(r)
    for (dataset, epochs, purity), rows in groups.items():
        dates = sorted({r["date"] for r in rows})
        lines += [
            "",
            f"## {DATA_TITLES.get(dataset, dataset)}, pretext epochs: {epochs}, purity@20 {purity:.3f}",
            "",
            f"Measured {' and '.join(dates)} on 2 CPU cores (x86_64), torch 2.14.1+cu130.",
            "",
            "| row | purity@20 | k-means on embedding | clustering step | after self-labeling | clustering fit (s) "
            "| date | command |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            after = f"{r['after_selflabeling']:.3f}" if "after_selflabeling" in r else "-"
            lines.append(
                f"| {r['row']} | {r['neighbor_purity_k20']:.3f} | {r['kmeans_on_embedding']:.3f} "
                f"| {r['clustering_step']:.3f} | {after} | {r['clustering_seconds']:.0f} | {r['date']} "
                f"| `{r['command']}` |"
            )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="fashion_mnist")
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selflabel-epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache", default="/tmp/scan-ablation-cache")
    parser.add_argument("--pretext-epochs", type=lambda value: value if value == "auto" else int(value),
                        help="override the data set's pretext epochs, or 'auto' (recorded with the row)")
    parser.add_argument("--no-record", action="store_true", help="print the results only (smoke runs)")
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument("--from-json", action="store_true", help="only rewrite docs/ablation.md from the JSON")
    args = parser.parse_args()
    if args.from_json:
        (DOCS / "ablation.md").write_text(markdown(json.loads((DOCS / "ablation.json").read_text())))
        return
    if args.list:
        for name, params in ROWS.items():
            print(f"{name}: {params}")
        return
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; --list shows them")
    meta = run_metadata()
    results = run(args.dataset, args.rows, args.seed, args.data_dir, args.cache, args.train_size,
                  args.selflabel_epochs, args.pretext_epochs)
    path = DOCS / "ablation.json"
    for result in results:
        if args.no_record:
            print(result)
            continue
        kept = json.loads(path.read_text()) if path.exists() else []
        kept.append({**result, "commit": meta["commit"], "date": meta["date"],
                     "command": "python benchmarks/ablation.py " + " ".join(
                         f"--dataset {args.dataset} --seed {args.seed} --rows {result['row']} "
                         f"--selflabel-epochs {args.selflabel_epochs}".split()
                         + ([f"--pretext-epochs {args.pretext_epochs}"] if args.pretext_epochs is not None else []))})
        path.write_text(json.dumps(kept, indent=1) + "\n")
        (DOCS / "ablation.md").write_text(markdown(kept))


if __name__ == "__main__":
    main()
