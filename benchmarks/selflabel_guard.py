"""Self-labeling with and without its guard, and with the library's or the paper's strong views.

Per data set, one sample of the training split (seed 0), the defaults' clustering step, then
self-labeling for each number of epochs: with the guard (the default: the weights with the
lowest SCAN loss are kept, the clustering step's included) and without it (the weights of the
last epoch), with the paper's strong views (the default: RandAugment's 4 distinct operations,
then Cutout) and with the library's own (``strong_recipe="library"``). ACC is on the fitted
images (``labels_``); the pretext is cached (``memory``), so each variant repeats only the
clustering step and self-labeling. Writes docs/selflabel-guard.json and .md.

    python benchmarks/selflabel_guard.py                                  # MNIST, Fashion-MNIST: 10 and 50 epochs
    python benchmarks/selflabel_guard.py --cases cifar10:1000 --epochs 10
"""

import argparse
import json
import tempfile
import time

import numpy as np
from _common import ROOT, run_metadata

DOCS = ROOT / "docs"
OUT = DOCS / "selflabel-guard.json"

#: (name, selflabel_params, augmentation_params) of each self-labeling variant.
VARIANTS = {
    "paper_views_guard": ({}, {"strong_recipe": "paper"}),  # the defaults
    "paper_views_no_guard": ({"guard": False}, {"strong_recipe": "paper"}),
    "library_views_guard": ({}, {"strong_recipe": "library"}),
    "library_views_no_guard": ({"guard": False}, {"strong_recipe": "library"}),
}


def load_case(case, data_dir):
    from real_images import load

    name, _, size = case.partition(":")
    data = load(name, data_dir)
    train = np.random.default_rng(0).choice(len(data.X_train), size=int(size), replace=False)
    return data.X_train[train], data.y_train[train]


def fit(X, y, memory, epochs, variant):
    from sklearn_scan import SCANClusterer
    from sklearn_scan.metrics import clustering_accuracy_score

    selflabel_params, augmentation_params = VARIANTS[variant] if epochs else ({}, {})
    start = time.perf_counter()
    model = SCANClusterer(
        n_clusters=10, random_state=0, memory=memory, selflabel_epochs=epochs,
        selflabel_params=selflabel_params or None, augmentation_params=augmentation_params or None,
    ).fit(X)
    seconds = time.perf_counter() - start
    epochs_run = [entry for entry in model.history_ if entry["stage"] == "selflabel"]
    guard = next((entry for entry in model.history_ if entry["stage"] == "selflabel_guard"), {})
    return {
        "epochs": epochs, "variant": variant if epochs else "clustering step", "accuracy": clustering_accuracy_score(y, model.labels_),
        "seconds": seconds, "stage_seconds": model.stage_seconds_,
        "confident_share": [round(entry["confident_share"], 4) for entry in epochs_run],
        "criterion": [round(entry["criterion"], 5) for entry in epochs_run if "criterion" in entry],
        "kept_epoch": guard.get("kept_epoch"), "start_criterion": guard.get("start_criterion"),
    }


def markdown(rows):
    lines = [
        "# Self-labeling: the guard and the strong views",
        "",
        "`SCANClusterer(n_clusters=10, random_state=0, selflabel_epochs=E, ...)` on a sample of the training split "
        "(seed 0); ACC on the fitted images (the clustering step's and self-labeling's from the same cached pretext). "
        "*guard*: the default, which keeps the weights with the lowest SCAN loss, the clustering step's included; "
        "*no guard*: `selflabel_params={'guard': False}`; *paper views*: the default strong views (RandAugment's "
        "four distinct operations, then Cutout); *library views*: `augmentation_params={'strong_recipe': 'library'}`. "
        "Written by `python benchmarks/selflabel_guard.py` "
        "(commands and commits in selflabel-guard.json).",
        "",
    ]
    for case in dict.fromkeys(row["case"] for row in rows):
        case_rows = [row for row in rows if row["case"] == case]
        meta = case_rows[0]["meta"]
        lines += [
            f"## {case}", "",
            f"`python benchmarks/selflabel_guard.py --cases {case} --epochs E`: {meta['date']}, {meta['machine']}, "
            f"{meta['cpus']} cores, {meta['cpu_capability']}, torch {meta['torch']}.", "",
            "| epochs | variant | ACC of the clustering step | ACC after self-labeling | change | kept epoch | "
            "confident share, first → last epoch |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in sorted((row for row in case_rows if row["epochs"]), key=lambda row: row["epochs"]):
            base = row["clustering_step_accuracy"]
            share = f"{row['confident_share'][0]:.3f} → {row['confident_share'][-1]:.3f}" if row["confident_share"] else ""
            kept = "" if row["kept_epoch"] is None else str(row["kept_epoch"])
            lines.append(f"| {row['epochs']} | {row['variant'].replace('_', ' ')} | {base:.4f} | {row['accuracy']:.4f} | "
                         f"{100 * (row['accuracy'] - base):+.2f} points | {kept} | {share} |")
        lines.append("")
    return "\n".join(lines)


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["mnist:10000", "fashion_mnist:10000"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--from-json", action="store_true", help="only rewrite the markdown from the JSON")
    parser.add_argument("--cache", help="a folder to cache the pretext in (default: a temporary one per case)")
    args = parser.parse_args()
    rows = json.loads(OUT.read_text()) if OUT.exists() else []
    if not args.from_json:
        for case in args.cases:
            X, y = load_case(case, args.data_dir)
            with tempfile.TemporaryDirectory() as scratch:
                memory = scratch if args.cache is None else f"{args.cache}/{case.replace(':', '-')}"
                plan = [(0, None)] + [(epochs, variant) for epochs in args.epochs for variant in args.variants]
                start_accuracy = None
                for epochs, variant in plan:
                    row = fit(X, y, memory, epochs, variant)
                    # Each run's own clustering step (epochs 0, the same code and pretext) is what it changes.
                    start_accuracy = row["accuracy"] if epochs == 0 else start_accuracy
                    row["clustering_step_accuracy"] = start_accuracy
                    row = {"case": case, **row, "meta": run_metadata(
                        cpu_capability=torch.backends.cpu.get_cpu_capability(),
                        command="python benchmarks/selflabel_guard.py --cases " + case)}
                    rows = [old for old in rows if (old["case"], old["epochs"], old["variant"]) !=
                            (case, row["epochs"], row["variant"])] + [row]
                    OUT.write_text(json.dumps(rows, indent=1) + "\n")
                    print(json.dumps({key: row[key] for key in ("case", "epochs", "variant", "accuracy", "seconds",
                                                                 "kept_epoch")}), flush=True)
    (DOCS / "selflabel-guard.md").write_text(markdown(rows) + "\n")


if __name__ == "__main__":
    main()
