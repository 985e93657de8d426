"""SCAN's steps one by one, as the paper's Table 1: what each adds, in test ACC and minutes.

Per data set and seed, on a sample of the training split, test ACC of ``predict`` on the test split:

- k-means with 10 clusters on the pretext embedding (the encoder's features, as the neighbours are mined);
- the clustering step on frozen features (``freeze_backbone=True``);
- the clustering step on the whole network with SimCLR views (``augmentation_params={"scan_recipe": "weak"}``);
- the same with the paper's strong views (``freeze_backbone=False``);
- then self-labeling (``selflabel_epochs``), with its confident share, the precision of its pseudo-labels on
  the training images and test ACC after every epoch (the paper's Figure 4).

The pretext is trained once per seed and cached (``memory``), so every row shares it. Each run appends its
rows to ``--out`` (default results/scan-steps.jsonl); ``--update-docs`` copies them to docs/scan-steps.jsonl,
draws docs/scan-steps.png and prints the table of docs/scan-steps.md.

    python benchmarks/scan_steps.py --case mnist16:7291 --seeds 0
    python benchmarks/scan_steps.py --case fashion_mnist:10000 --seeds 0 1 2 --selflabel-epochs 30
    python benchmarks/scan_steps.py --update-docs --out results/scan-steps.jsonl
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, run_metadata


def load_case(case, data_dir, seed):
    from real_images import load

    name, _, size = case.partition(":")
    data = load(name, data_dir)
    train = np.random.default_rng(seed).choice(len(data.X_train), size=int(size), replace=False)
    return data.X_train[train], data.y_train[train], data.X_test, data.y_test


class SelfLabelingObserver:
    """Installed around a fit: test ACC of the model self-labeling starts from, and per-epoch figures.

    Wraps ``_selflabel.train_stage`` so that after every epoch the network predicts the test images and the
    training images: test ACC, and the share and precision of the confident training predictions.
    """

    def __init__(self, X_train, y_train, X_test, y_test, threshold=0.99):
        from sklearn_scan._inputs import to_model_inputs

        self.train, self.images = to_model_inputs(X_train)
        self.test, _ = to_model_inputs(X_test)
        self.y_train, self.y_test, self.threshold = y_train, y_test, threshold
        self.epochs, self.start, self.neighbors = [], None, None

    def figures(self, network, device):
        import copy

        import torch

        from sklearn_scan._batch_norm import recalibrate_batch_norm
        from sklearn_scan._batching import predict_in_batches
        from sklearn_scan.metrics import clustering_accuracy_score

        # As the stage would return it: batch norm with the training images' own statistics.
        network = copy.deepcopy(network)
        recalibrate_batch_norm(network, self.train, device, 128, self.images)  # the defaults batch size

        test = predict_in_batches(network, self.test, device, 512, self.images).argmax(1)
        logits = torch.from_numpy(predict_in_batches(network, self.train, device, 512, self.images))
        top, labels = torch.softmax(logits, 1).max(1)
        confident = (top > self.threshold).numpy()
        labels = labels.numpy()
        from scipy.optimize import linear_sum_assignment

        overlap = np.zeros((logits.shape[1], logits.shape[1]))
        np.add.at(overlap, (labels, self.y_train), 1)
        rows, cols = linear_sum_assignment(-overlap)
        mapped = np.empty(logits.shape[1], dtype=int)
        mapped[rows] = cols
        right = mapped[labels] == self.y_train
        label_free = {}
        if self.neighbors is not None:  # what a guard could see without labels
            from sklearn_scan._scan_loss import scan_loss_of_predictions

            label_free = {"neighbor_agreement": float((labels[self.neighbors] == labels[:, None]).mean()),
                          "scan_loss": float(scan_loss_of_predictions(logits.numpy(), self.neighbors, 5.0)[0]),
                          "cluster_size_entropy": float(-(lambda p: (p * np.log(p.clip(1e-12))).sum())(
                              np.bincount(labels, minlength=logits.shape[1]) / len(labels)))}
        return {
            **label_free,
            "test_accuracy": clustering_accuracy_score(self.y_test, test),
            "train_accuracy": float(right.mean()),
            "confident_share": float(confident.mean()),
            "pseudo_label_precision": float(right[confident].mean()) if confident.any() else None,
        }

    def __enter__(self):
        from sklearn_scan import _pipeline, _selflabel

        self.original = _selflabel.train_stage
        self.original_mining = _pipeline.mine_neighbors

        def mining_seen(*args, **kwargs):
            self.neighbors = self.original_mining(*args, **kwargs)
            return self.neighbors

        _pipeline.mine_neighbors = mining_seen

        def observed(stage, epochs, training):
            self.start = self.figures(stage.network, training.device)
            if self.neighbors is not None:  # the share of mined neighbours of the sample's class
                self.start["neighbor_purity"] = float((self.y_train[self.neighbors] == self.y_train[:, None]).mean())
            end_epoch = stage.end_epoch

            def end_epoch_observed(epoch, *args):
                figures = end_epoch(epoch, *args)
                self.epochs.append({"epoch": epoch + 1, **self.figures(stage.network, training.device)})
                print(f"    self-labeling epoch {epoch + 1}: {self.epochs[-1]}", flush=True)
                return figures

            stage.end_epoch = end_epoch_observed
            return self.original(stage, epochs, training)

        _selflabel.train_stage = observed
        return self

    def __exit__(self, *exc):
        from sklearn_scan import _pipeline, _selflabel

        _selflabel.train_stage = self.original
        _pipeline.mine_neighbors = self.original_mining


def run(case, seed, data_dir, selflabel_epochs, rows_out, variants, plateau, guard):
    from sklearn.cluster import KMeans

    from sklearn_scan import SCANClusterer, _pipeline
    from sklearn_scan.metrics import clustering_accuracy_score

    if not plateau:
        _pipeline.SELFLABEL_PLATEAU = None
    X_train, y_train, X_test, y_test = load_case(case, data_dir, seed)
    memory = tempfile.mkdtemp(prefix="scan-steps-")

    def fit(row, **params):
        start = time.perf_counter()
        model = SCANClusterer(n_clusters=10, random_state=seed, memory=memory, **params).fit(X_train)
        seconds = time.perf_counter() - start
        result = {"case": case, "seed": seed, "row": row, "params": {k: v for k, v in params.items()},
                  "test_accuracy": clustering_accuracy_score(y_test, model.predict(X_test)),
                  "train_accuracy": {stage: clustering_accuracy_score(y_train, labels)
                                     for stage, labels in model.stage_labels_.items()},
                  "seconds": seconds, "stage_seconds": model.stage_seconds_, "meta": run_metadata()}
        return model, result

    def report(result):
        print(f"{case} seed {seed} {result['row']:<40} test ACC {result['test_accuracy']:.3f} "
              f"train {result['train_accuracy']}  {result['seconds']:.0f}s", flush=True)
        with open(rows_out, "a") as file:
            file.write(json.dumps(result) + "\n")

    if "frozen" in variants:
        model, result = fit("clustering step, frozen features", selflabel_epochs=0)
        # k-means on the embedding the neighbours were mined in, applied to the test images too.
        features = model.transform(X_train)
        unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
        kmeans = KMeans(10, n_init=10, random_state=seed).fit(unit(features))
        kmeans_result = {**result, "row": "k-means on the pretext embedding", "stage_seconds": {},
                         "test_accuracy": clustering_accuracy_score(y_test, kmeans.predict(unit(model.transform(X_test))))}
        report(kmeans_result)
        report(result)
    if "weak" in variants:
        report(fit("whole network, SimCLR views", freeze_backbone=False, selflabel_epochs=0,
                   augmentation_params={"scan_recipe": "weak"})[1])

    for variant, recipe in (("strong", "strong"), ("weak_selflabel", "weak")):
        if variant not in variants:
            continue
        views = "strong views" if recipe == "strong" else "SimCLR views"
        with SelfLabelingObserver(X_train, y_train, X_test, y_test) as observer:
            _, result = fit(f"whole network, {views}, self-labeling", freeze_backbone=False,
                            selflabel_epochs=selflabel_epochs, selflabel_params={"guard": guard},
                            augmentation_params={"scan_recipe": recipe})
        report({**result, "row": f"whole network, {views}", "test_accuracy": observer.start["test_accuracy"],
                "start": observer.start})
        report({**result, "start": observer.start, "selflabel_epochs": observer.epochs})
    if "frozen_selflabel" in variants:
        with SelfLabelingObserver(X_train, y_train, X_test, y_test) as observer:
            _, result = fit("frozen features, self-labeling", selflabel_epochs=selflabel_epochs,
                            selflabel_params={"guard": guard})
        report({**result, "start": observer.start, "selflabel_epochs": observer.epochs})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="mnist16:7291")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", help="folder with mnist.npz (Fashion-MNIST: apt-get install dataset-fashion-mnist)")
    parser.add_argument("--selflabel-epochs", type=int, default=30)
    parser.add_argument("--variants", nargs="+", default=["frozen", "weak", "strong"],
                        choices=["frozen", "weak", "strong", "weak_selflabel", "frozen_selflabel"])
    parser.add_argument("--plateau", action="store_true", help="stop self-labeling where the confident share plateaus")
    parser.add_argument("--guard", action="store_true", help="keep the self-labeling epoch the guard chooses")
    parser.add_argument("--out", default=str(ROOT / "results" / "scan-steps.jsonl"))
    parser.add_argument("--update-docs", action="store_true",
                        help="no fits: copy --out to docs/scan-steps.jsonl and draw docs/scan-steps.png from it")
    args = parser.parse_args()
    if args.update_docs:
        docs = ROOT / "docs" / "scan-steps"
        Path(f"{docs}.jsonl").write_text(Path(args.out).read_text())
        print(render(args.out, str(docs)))
        return
    if args.data_dir is None:
        parser.error("--data-dir is needed to fit")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        run(args.case, seed, args.data_dir, args.selflabel_epochs, args.out, args.variants, args.plateau, args.guard)



def render(rows_file, out_stem):
    """docs page ``<out_stem>.md`` with the table of steps and ``<out_stem>.png`` with self-labeling per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(rows_file).read_text().splitlines() if line.strip()]
    order = ["k-means on the pretext embedding", "clustering step, frozen features", "whole network, SimCLR views",
             "whole network, strong views", "whole network, SimCLR views, self-labeling",
             "whole network, strong views, self-labeling", "frozen features, self-labeling"]
    cases = sorted({row["case"] for row in rows})
    lines = ["| step | " + " | ".join(cases) + " |", "|---|" + "---|" * len(cases)]
    for name in order:
        cells = []
        for case in cases:
            found = [row for row in rows if row["case"] == case and row["row"] == name]
            cells.append(" / ".join(f"{row['test_accuracy']:.3f}" for row in found) or "")
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    curves = [row for row in rows if row.get("selflabel_epochs")]
    n_columns = min(3, len(curves))
    n_rows = -(-len(curves) // n_columns)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(4.2 * n_columns, 3.2 * n_rows), squeeze=False)
    for axis, row in zip(axes.flat, curves):
        epochs = [row["start"]] + row["selflabel_epochs"]
        x = range(len(epochs))
        for key, label in (("confident_share", "confident share"), ("test_accuracy", "test ACC"),
                           ("pseudo_label_precision", "pseudo-label precision")):
            axis.plot(x, [entry[key] for entry in epochs], label=label)
        axis.set_title(f"{row['case']}\n{row['row']}", fontsize=8)
        axis.set_xlabel("self-labeling epoch")
        axis.set_ylim(0, 1.02)
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(f"{out_stem}.png", dpi=110)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
