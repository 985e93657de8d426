"""Benchmark on real images: SCAN next to k-means and UMAP on MNIST, Fashion-MNIST, CIFAR-10.

Protocol (CPU track): fit on a random sample of the training split (10,000
images by default), report ACC/NMI/ARI on the whole held-out test split
(``predict``). Every (dataset, seed) runs in a fresh process, one after the
other, so wall time and peak memory are its own. Writes
benchmarks.md, benchmarks.json and benchmarks.png under --out (default results/).

Usage:
    python benchmarks/real_images.py                       # everything, 3 seeds
    python benchmarks/real_images.py --datasets mnist --seeds 0
    python benchmarks/real_images.py --quick               # a smoke run of minutes

Local copies are read from --data-dir (default: ../shared/data beside the
repository) and /usr/share/datasets/fashion-mnist; a missing one is reported
with how to get it, and skipped.
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, ClusteringStepSpy, in_fresh_process, run_metadata, source_commit, summary_row, table_cells

DOCS = ROOT / "docs"

DATASETS = {
    "mnist": {
        "loader": "load_mnist", "file": "{data_dir}/mnist.npz",
        "how_to_get": "copy mnist.npz (train_X, train_y, test_X, test_y) into --data-dir",
        "target": 0.97, "budget_minutes": 15,
    },
    "fashion_mnist": {
        "loader": "load_fashion_mnist", "file": "/usr/share/datasets/fashion-mnist",
        "how_to_get": "apt-get install -y dataset-fashion-mnist",
        "target": 0.70, "budget_minutes": 15,
    },
    "cifar10": {
        "loader": "load_cifar10", "file": "{data_dir}/cifar10-jpg.tar",
        "how_to_get": "copy cifar10-jpg.tar (cifar10/{train,test}/<class>/*.jpg) into --data-dir",
        "target": 0.60, "budget_minutes": 30,
    },
    # A stand-in for small digit sets such as USPS (16x16 grayscale, 7,291 training images): MNIST shrunk
    # to 16x16 (antialiased). Not one of the benchmark rows; used by the ablation (--train-size 7291).
    "mnist16": {
        "loader": "load_mnist", "file": "{data_dir}/mnist.npz", "side": 16,
        "how_to_get": "copy mnist.npz (train_X, train_y, test_X, test_y) into --data-dir",
        "target": 0.97, "budget_minutes": 15,
    },
}

# SCANClusterer settings per data set for the CPU track: the defaults, whose epochs are sized to the
# number of images ("auto"; docstring of SCANClusterer). A change here must say why a user would make it.
SCAN_PARAMS = {"mnist": {}, "fashion_mnist": {}, "cifar10": {}, "mnist16": {}}
QUICK_PARAMS = dict(pretext_epochs=1, scan_epochs=5, selflabel_epochs=1)

METHODS = (
    "k-means on raw pixels",
    "UMAP + k-means",
    "k-means on the pretext embedding",
    "SCAN, clustering step",
    "SCAN, after self-labeling",
)


def load(name, data_dir):
    from sklearn_scan import datasets

    spec = DATASETS[name]
    data = getattr(datasets, spec["loader"])(Path(spec["file"].format(data_dir=data_dir)))
    if "side" in spec:
        data.X_train, data.X_test = (shrink(X, spec["side"]) for X in (data.X_train, data.X_test))
    return data


def shrink(X, side):
    """(N, H, W, C) uint8 images resized to (N, side, side, C), antialiased, still uint8."""
    import torch

    images = torch.from_numpy(X).permute(0, 3, 1, 2).float()
    small = torch.nn.functional.interpolate(images, size=(side, side), mode="bilinear", antialias=True)
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def run_seed(name, seed, data_dir, train_size, test_size, quick):
    """All methods on one data set with one seed; runs in a child process."""
    import torch
    from sklearn.cluster import KMeans

    from sklearn_scan import SCANClusterer
    from sklearn_scan._estimator import SCORE_ENTROPY_WEIGHT
    from sklearn_scan._neighbors import mine_neighbors
    from sklearn_scan._scan import scan_loss_of_predictions
    from sklearn_scan.metrics import clustering_report

    data = load(name, data_dir)
    rng = np.random.default_rng(seed)
    train = rng.choice(len(data.X_train), size=min(train_size, len(data.X_train)), replace=False)
    X_train, y_train = data.X_train[train], data.y_train[train]
    test = np.arange(len(data.X_test)) if test_size is None else rng.choice(len(data.X_test), test_size, replace=False)
    X_test, y_test = data.X_test[test], data.y_test[test]
    n_classes = len(data.classes)
    flat_train = X_train.reshape(len(X_train), -1) / 255.0
    flat_test = X_test.reshape(len(X_test), -1) / 255.0
    runs = []

    def record(method, labels, seconds, **extra):
        runs.append({"dataset": name, "method": method, "seed": seed, **clustering_report(y_test, labels),
                     "seconds": seconds, **extra})
        print(f"{name:<14} seed {seed}  {method:<34} ACC {runs[-1]['accuracy']:.3f}  {seconds:7.1f}s", flush=True)

    start = time.perf_counter()
    kmeans = KMeans(n_classes, n_init=10, random_state=seed).fit(flat_train)
    record("k-means on raw pixels", kmeans.predict(flat_test), time.perf_counter() - start)

    try:
        import umap
    except ImportError:
        runs.append({"dataset": name, "method": "UMAP + k-means", "seed": seed,
                     "skipped": "umap-learn is not installed (pip install umap-learn)"})
    else:
        start = time.perf_counter()
        reducer = umap.UMAP(n_components=10, min_dist=0.0, random_state=seed).fit(flat_train)
        kmeans = KMeans(n_classes, n_init=10, random_state=seed).fit(reducer.embedding_)
        record("UMAP + k-means", kmeans.predict(reducer.transform(flat_test)), time.perf_counter() - start)

    params = dict(SCAN_PARAMS[name], **(QUICK_PARAMS if quick else {}))
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        # One fit gives both SCAN rows: the spy records the clustering step's test predictions
        # before self-labeling starts (it does not run under the defaults).
        with ClusteringStepSpy(X_test) as spy:
            full = SCANClusterer(n_classes, random_state=seed, memory=cache, **params).fit(X_train)
        fit_seconds = time.perf_counter() - start
        clustering_seconds = fit_seconds - full.stage_seconds_.get("self-labeling", 0.0)
        # With a frozen backbone the fitted encoder is the pretext's; otherwise a frozen fit on the
        # same cached pretext gives it.
        pretext_model = full if full.freeze_backbone else SCANClusterer(
            n_classes, random_state=seed, memory=cache,
            **dict(params, selflabel_epochs=0, freeze_backbone=True, scan_epochs=1)).fit(X_train)
    train_embedding = pretext_model.transform(X_train)
    norms = np.linalg.norm(train_embedding, axis=1, keepdims=True)
    kmeans = KMeans(n_classes, n_init=10, random_state=seed).fit(train_embedding / norms)
    test_embedding = pretext_model.transform(X_test)
    record("k-means on the pretext embedding", kmeans.predict(test_embedding / np.linalg.norm(test_embedding, axis=1, keepdims=True)),
           full.stage_seconds_["pretext"] + full.stage_seconds_["embedding and neighbours"])
    purity = {}
    for k in (5, 20, 50):
        neighbors = mine_neighbors(train_embedding, k, metric="cosine")
        purity[f"neighbor_purity_k{k}"] = float((y_train[neighbors] == y_train[:, None]).mean())
    confident = [h["confident_share"] for h in full.history_ if "confident_share" in h]
    if pretext_model is full:
        # Frozen encoder: its head on the embeddings gives predict and predict_proba without embedding the
        # images again (what the estimator computes too; minutes per pass on a pretrained backbone).
        train_logits, test_logits = (full._apply(full.model_.head, torch.from_numpy(embedding), images=False)
                                     for embedding in (train_embedding, test_embedding))
        train_probabilities = torch.softmax(torch.from_numpy(train_logits).double(), dim=1).numpy()
        full_labels = test_logits.argmax(1)
        # SCANClusterer.score(X_train), on the embedding in hand.
        score_neighbors = mine_neighbors(train_embedding, full.n_neighbors, metric=full.metric_, random_state=0)
        label_free_score = -float(scan_loss_of_predictions(train_logits, score_neighbors, SCORE_ENTROPY_WEIGHT)[0])
    else:
        train_probabilities, full_labels = full.predict_proba(X_train), full.predict(X_test)
        label_free_score = float(full.score(X_train))
    figures = dict(label_free_score=label_free_score,
                   confident_share=float(np.mean(train_probabilities.max(axis=1) > 0.99)),
                   selflabel_confident_share=confident[-1] if confident else None,
                   stage_seconds=full.stage_seconds_, params=params)
    if spy.labels is None:  # no self-labeling: both rows are the same model
        record("SCAN, clustering step", full_labels, clustering_seconds, **purity, **figures)
    else:
        record("SCAN, clustering step", spy.labels, clustering_seconds, **purity)
    record("SCAN, after self-labeling", full_labels, fit_seconds, **purity, **figures)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for run in runs:
        run.update(peak_memory_mib=peak, torch_threads=torch.get_num_threads(), train_size=len(X_train),
                   test_size=len(X_test))
    return runs


def summarise(runs):
    rows = []
    for name in DATASETS:
        for method in METHODS:
            mine = [r for r in runs if r["dataset"] == name and r["method"] == method and "accuracy" in r]
            if not mine:
                continue
            row = summary_row(mine, dataset=name, method=method)
            for key in ("neighbor_purity_k5", "neighbor_purity_k20", "neighbor_purity_k50"):
                if key in mine[0]:
                    row[key] = float(np.mean([r[key] for r in mine]))
            rows.append(row)
    return rows


def label_free_agreement(runs):
    """Per data set, over its SCAN runs: how well label-free criteria track test ACC.

    For ``score`` (minus the SCAN loss on the training sample) and the share
    of confident training samples: the Spearman correlation with ACC, and the
    ACC of the run each criterion would pick, next to the best and mean ACC.
    """
    from scipy.stats import spearmanr

    agreement = {}
    for name in DATASETS:
        scan = [r for r in runs if r["dataset"] == name and r["method"].startswith("SCAN") and "accuracy" in r]
        if len(scan) < 3:
            continue
        accuracy = [r["accuracy"] for r in scan]
        entry = {"n_runs": len(scan), "best_accuracy": max(accuracy), "mean_accuracy": float(np.mean(accuracy))}
        for criterion in ("label_free_score", "confident_share"):
            values = [r[criterion] for r in scan]
            entry[criterion] = {
                "spearman": float(spearmanr(values, accuracy).statistic),
                "accuracy_of_pick": accuracy[int(np.argmax(values))],
            }
        agreement[name] = entry
    return agreement


def markdown(rows, skipped, agreement, meta):
    test_split = "the whole test split" if meta["test_size"] is None else f"{meta['test_size']:,} test images"
    lines = [
        "# Benchmarks on real images",
        "",
        f"CPU track: fit on {meta['train_size']:,} training images sampled per seed, scored on "
        f"{test_split} with `predict`. "
        f"Mean ± std over seeds {meta['seeds']}; every (data set, seed) in its own process, one after another on "
        f"one machine ({meta['machine']}, {meta['cpus']} CPUs, torch {meta['torch']}). Produced by "
        f"`python benchmarks/real_images.py {meta['arguments']}` on {meta['date']} at commit {meta['commit']}"
        + (" (with --append, earlier runs are kept: each run's commit is in benchmarks.json)." if "--append" in meta["arguments"] else "."),
        "",
        "![ACC of every method on each data set, mean and std over the seeds](benchmarks.png)",
        "",
        "| data set | method | ACC | NMI | ARI | time (s, median) | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {row['dataset']} | {row['method']} | {table_cells(row)} |" for row in rows]
    lines += ["", "Neighbour purity (share of mined neighbours with the sample's class, pretext embedding, training sample):", ""]
    for row in rows:
        if row["method"] == "SCAN, clustering step" and "neighbor_purity_k20" in row:
            lines.append(f"- {row['dataset']}: k=5 {row['neighbor_purity_k5']:.3f}, k=20 {row['neighbor_purity_k20']:.3f}, "
                         f"k=50 {row['neighbor_purity_k50']:.3f}")
    if agreement:
        lines += ["", "Label-free model choice over the SCAN runs of each data set (both rows, every seed): the "
                  "Spearman correlation of each criterion with test ACC, and the ACC of the run it would pick. "
                  "Criteria: `score` (minus the SCAN loss on the training sample) and the share of training "
                  "samples predicted with probability above 0.99.", "",
                  "| data set | runs | Spearman, score | Spearman, confident share | ACC picked by score "
                  "| ACC picked by confident share | best ACC | mean ACC |", "|---|---|---|---|---|---|---|---|"]
        lines += [
            f"| {name} | {value['n_runs']} | {value['label_free_score']['spearman']:.2f} | "
            f"{value['confident_share']['spearman']:.2f} | {value['label_free_score']['accuracy_of_pick']:.3f} | "
            f"{value['confident_share']['accuracy_of_pick']:.3f} | {value['best_accuracy']:.3f} | "
            f"{value['mean_accuracy']:.3f} |"
            for name, value in agreement.items()
        ]
    lines += ["", "Times: one SCAN fit per seed gives both SCAN rows (the clustering step's test predictions are "
              "recorded before self-labeling starts); the clustering step's time is that fit's without self-labeling, "
              "the self-labeled row's the whole fit. k-means on the pretext embedding shows the pretext's and the "
              "embedding's share of that fit."]
    lines += ["", "## Targets (issue 3)", "", "| data set | target ACC | SCAN after self-labeling | SCAN clustering step | "
              "best of the two ≥ target | budget per seed (min) | SCAN fit, median (min) | seeds |", "|---|---|---|---|---|---|---|---|"]
    for name, spec in DATASETS.items():
        final = next((r for r in rows if r["dataset"] == name and r["method"] == "SCAN, after self-labeling"), None)
        step = next((r for r in rows if r["dataset"] == name and r["method"] == "SCAN, clustering step"), None)
        if final is None or step is None:
            continue
        best = max(final["accuracy"]["mean"], step["accuracy"]["mean"])
        lines.append(
            f"| {name} | {spec['target']:.2f} | {final['accuracy']['mean']:.4f} | {step['accuracy']['mean']:.4f} | "
            f"{'yes' if best >= spec['target'] else 'no'} | {spec['budget_minutes']} | "
            f"{step['seconds']['median'] / 60:.1f} (+{(final['seconds']['median'] - step['seconds']['median']) / 60:.1f} "
            f"self-labeling) | {final['n_seeds']} |"
        )
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- {name}: {reason}" for name, reason in skipped.items()]
    lines.append("")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in DATASETS if any(row["dataset"] == name for row in rows)]
    if not names:
        return
    fig, ax = plt.subplots(figsize=(2.8 * len(names) + 2, 4))
    width = 0.8 / len(METHODS)
    for index, method in enumerate(METHODS):
        values = [next((r["accuracy"] for r in rows if r["dataset"] == n and r["method"] == method), None) for n in names]
        positions = [i + index * width for i, v in enumerate(values) if v is not None]
        means = [v["mean"] for v in values if v is not None]
        stds = [v["std"] for v in values if v is not None]
        ax.bar(positions, means, width, yerr=stds, label=method, capsize=2)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_ylabel("ACC on the test split")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Clustering accuracy, CPU track")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist", "cifar10"], choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--test-size", type=int, default=None, help="default: the whole test split")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--quick", action="store_true", help="tiny epochs and sizes, to check the harness")
    parser.add_argument("--out", default=str(ROOT / "results"),
                        help="where to write benchmarks.md, .json and .png (default: results/, outside the docs)")
    parser.add_argument("--from-json", help="re-render the Markdown and PNG from a benchmarks.json, running nothing")
    parser.add_argument("--append", action="store_true",
                        help="add to the runs already in OUT/benchmarks.json (replacing those of the same data set and seed)")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        meta = saved["meta"]
        report = markdown(summarise(saved["runs"]), saved["skipped"], label_free_agreement(saved["runs"]), meta)
        (Path(args.out) / "benchmarks.md").write_text(report)
        plot(summarise(saved["runs"]), Path(args.out) / "benchmarks.png")
        print(report)
        return
    if args.quick:
        args.train_size, args.test_size = min(args.train_size, 500), args.test_size or 300

    runs, skipped = [], {}
    if args.append:
        # Keep earlier runs of other (data set, seed) pairs; this invocation's pairs are run anew.
        rerun = {(name, seed) for name in args.datasets for seed in args.seeds}
        earlier = json.loads((Path(args.out) / "benchmarks.json").read_text())
        runs = [
            {"commit": earlier["meta"]["commit"], "date": earlier["meta"]["date"], **run}
            for run in earlier["runs"] if (run["dataset"], run["seed"]) not in rerun
        ]
    for name in args.datasets:
        source = Path(DATASETS[name]["file"].format(data_dir=args.data_dir))
        if not source.exists():
            reason = f"no local copy at {source}: {DATASETS[name]['how_to_get']}"
            print(f"{name}: skipped, {reason}", flush=True)
            skipped[name] = reason
            continue
        for seed in args.seeds:
            commit = source_commit()  # before the run: the code it starts with
            new_runs = in_fresh_process(run_seed, name, seed, args.data_dir, args.train_size, args.test_size, args.quick)
            runs += [dict(run, commit=commit, date=time.strftime("%Y-%m-%d")) for run in new_runs]
            # Written after every seed, so an interrupted run keeps what it measured.
            write_reports(runs, skipped, args)
    print()
    print(write_reports(runs, skipped, args) if runs else "Nothing was run.")


def write_reports(runs, skipped, args):
    """Write benchmarks.json, .md and .png under ``args.out``; return the Markdown."""
    meta = run_metadata(
        seeds=args.seeds, train_size=args.train_size, test_size=args.test_size, scan_params=SCAN_PARAMS,
        arguments=" ".join(["--datasets", *args.datasets, "--seeds", *map(str, args.seeds)] + (["--quick"] if args.quick else [])
                           + (["--append"] if args.append else [])),
    )
    meta["seeds"] = sorted({run["seed"] for run in runs})
    # Runs may come from several invocations (--append): name every commit and date they ran at.
    meta["commit"] = ", ".join(sorted({run.get("commit", meta["commit"]) for run in runs})) or meta["commit"]
    meta["date"] = ", ".join(sorted({run.get("date", meta["date"]) for run in runs})) or meta["date"]
    rows = summarise(runs)
    agreement = label_free_agreement(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(
        {"meta": meta, "summary": rows, "label_free_agreement": agreement, "skipped": skipped, "runs": runs}, indent=2))
    report = markdown(rows, skipped, agreement, meta)
    (out / "benchmarks.md").write_text(report)
    plot(rows, out / "benchmarks.png")
    return report

if __name__ == "__main__":
    main()
