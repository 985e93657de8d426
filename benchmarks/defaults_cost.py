"""What the defaults give and cost across set sizes: ACC and minutes of ``SCANClusterer(n_clusters=10)``.

Each case fits the defaults (``random_state`` = the seed) on a sample of a training split, in a
fresh process, alone on the machine, and scores ``predict`` on the whole test split (scikit-learn's
digits: the 1,797 images themselves, as ``make demo`` does). The precision is the one "auto" picks
on this CPU; run it once more as a CPU without native bfloat16 with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 SKLEARN_SCAN_CPU_BFLOAT16=0``. Rows are added
to docs/defaults-cost.json and docs/defaults-cost.md lists them.

    python benchmarks/defaults_cost.py                                 # every case, seed 0
    python benchmarks/defaults_cost.py --cases digits mnist:10000 --seeds 0 1 2

Cases: ``digits`` (scikit-learn's 1,797 8x8 digits), ``mnist:N``, ``fashion_mnist:N`` and
``mnist16:N`` (MNIST shrunk to 16x16, a stand-in for USPS's 7,291 training digits).
"""

import argparse
import json
import time

import numpy as np
from _common import ROOT, in_fresh_process, run_metadata

DOCS = ROOT / "docs"
CASES = ("digits", "mnist:1000", "mnist:2000", "mnist16:7291", "mnist:10000", "mnist:60000")


def fit_case(case, seed, data_dir):
    """Fit the defaults on one case in this process: ACC, NMI, ARI, seconds, stage seconds, epochs."""
    import torch

    from sklearn_scan import SCANClusterer
    from sklearn_scan._precision import cpu_has_native_bfloat16
    from sklearn_scan.metrics import clustering_report

    name, _, size = case.partition(":")
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        X_train, X_test, y_test = digits.images / 16.0, digits.images / 16.0, digits.target
    else:
        from real_images import load

        data = load(name, data_dir)
        rng = np.random.default_rng(seed)
        train = rng.choice(len(data.X_train), size=min(int(size), len(data.X_train)), replace=False)
        X_train, X_test, y_test = data.X_train[train], data.X_test, data.y_test
    start = time.perf_counter()
    model = SCANClusterer(n_clusters=10, random_state=seed).fit(X_train)
    seconds = time.perf_counter() - start
    epochs = {stage: sum(1 for entry in model.history_ if entry["stage"] == stage) for stage in ("pretext", "scan")}
    return {
        "case": case, "seed": seed, "n_images": len(X_train), "image_shape": list(X_train.shape[1:]),
        **clustering_report(y_test, model.predict(X_test)), "seconds": seconds,
        "stage_seconds": model.stage_seconds_, "epochs": epochs,
        "precision": "bfloat16" if cpu_has_native_bfloat16() else "float32",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


#: How the tables name each data set.
DATA_NAMES = {"digits": "scikit-learn digits, 8x8", "mnist": "MNIST, 28x28", "mnist16": "MNIST shrunk to 16x16",
              "fashion_mnist": "Fashion-MNIST, 28x28"}


def markdown(rows):
    machines = sorted({f"{row['meta']['cpus']} cores, {row['cpu_capability']}, torch {row['meta']['torch']}"
                       for row in rows})
    dates = sorted({row["meta"]["date"] for row in rows})
    lines = [
        "# What the defaults give and cost, by set size",
        "",
        "`SCANClusterer(n_clusters=10, random_state=seed).fit(X)` on a sample of the training split, test ACC of "
        "`predict` on the whole test split (digits: the 1,797 images themselves, as `make demo`), one fit at a "
        "time; each row's own command is in defaults-cost.json. MNIST shrunk to 16x16 stands in for USPS (7,291 "
        "training digits of 16x16).",
        "",
        f"`python benchmarks/defaults_cost.py --cases CASE --seeds SEED`: {', '.join(dates)}, {'; '.join(machines)}.",
        "",
        "| data | images | precision | pretext epochs | seed | ACC | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["case"].split(":")[0], r["n_images"], r["precision"], r["seed"])):
        name = row["case"].split(":")[0]
        lines.append(f"| {DATA_NAMES.get(name, name)} | {row['n_images']:,} | {row['precision']} | "
                     f"{row['epochs']['pretext']} | {row['seed']} | {row['accuracy']:.3f} | {row['seconds'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--from-json", action="store_true", help="rewrite the Markdown from the JSON, running nothing")
    args = parser.parse_args()
    path = DOCS / "defaults-cost.json"
    if args.from_json:
        (DOCS / "defaults-cost.md").write_text(markdown(json.loads(path.read_text())))
        return
    for case in args.cases:
        for seed in args.seeds:
            meta = run_metadata(command=f"python benchmarks/defaults_cost.py --cases {case} --seeds {seed}")
            row = {**in_fresh_process(fit_case, case, seed, args.data_dir), "meta": meta}
            print(f"{case:<16} seed {seed}  {row['precision']:<9} pretext epochs {row['epochs']['pretext']:>4}  "
                  f"ACC {row['accuracy']:.4f}  {row['seconds'] / 60:5.1f} min", flush=True)
            if args.no_record:
                continue
            rows = json.loads(path.read_text()) if path.exists() else []
            rows = [r for r in rows if not (r["case"] == case and r["seed"] == seed
                                            and r["precision"] == row["precision"])] + [row]
            path.write_text(json.dumps(rows, indent=1) + "\n")
            (DOCS / "defaults-cost.md").write_text(markdown(rows))


if __name__ == "__main__":
    main()
