"""What checkpoints cost: seconds per save and file size of each stage, for fits with the defaults.

Fits the defaults on each case with ``checkpoint_dir`` and a checkpoint after every epoch
(``CHECKPOINT_SECONDS = 0``), timing every save; the default (a save every 30 s of training)
costs the time of one save per 30 s. (That a resumed fit ends with the same labels is tested in
tests/test_checkpoints.py.) Writes docs/checkpoint-cost.json and .md.

    python benchmarks/checkpoint_cost.py [--cases digits cifar10:2000]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, cpu_kind, run_metadata

DOCS = ROOT / "docs"


def load(case):
    name, _, size = case.partition(":")
    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().images / 16.0
    import tarfile

    from PIL import Image

    images = []
    with tarfile.open(ROOT.parent / "shared" / "data" / "cifar10-jpg.tar") as tar:
        for member in tar:
            if member.isfile() and "/train/" in member.name:
                images.append(np.asarray(Image.open(tar.extractfile(member)).convert("RGB")))
                if len(images) == int(size):
                    break
    return np.stack(images)


def run(case):
    import sklearn_scan._checkpoints as checkpoints
    from sklearn_scan import SCANClusterer

    checkpoints.CHECKPOINT_SECONDS = 0.0
    saves = {}
    save = checkpoints.CheckpointDirectory.save

    def timed_save(self, stage, state):
        start = time.perf_counter()
        save(self, stage, state)
        saves.setdefault(stage, []).append(time.perf_counter() - start)

    checkpoints.CheckpointDirectory.save = timed_save
    X = load(case)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        model = SCANClusterer(n_clusters=10, random_state=0, checkpoint_dir=directory).fit(X)
        seconds = time.perf_counter() - start
        sizes = {path.stem: path.stat().st_size / 2**20 for path in Path(directory).glob("*.pt")}
    epochs = {stage: sum(1 for entry in model.history_ if entry["stage"] == stage) for stage in ("pretext", "scan")}
    return {
        "case": case, "n_images": len(X), "fit_seconds": seconds, "stage_seconds": model.stage_seconds_,
        "epochs": epochs, "backbone": model.backbone_name_,
        "stages": {stage: {"saves": len(times), "seconds_per_save": float(np.mean(times)),
                           "file_mib": sizes.get(stage, 0.0)} for stage, times in saves.items()},
    }


def markdown(rows, meta):
    lines = [
        "# What checkpoints cost",
        "",
        f"`python benchmarks/checkpoint_cost.py`: {meta['date']}, {meta['machine']}, {meta['cpus']} cores "
        f"({meta['cpu_capability']}), torch {meta['torch']}.",
        "",
        "The defaults with `checkpoint_dir` set and a checkpoint after every epoch; the default writes one after the "
        "first epoch that ends 30 s after the last and after each stage's last epoch. *Share at 30 s*: one save's time "
        "per 30 s of training.",
        "",
        "| data | images | backbone | stage | saves | seconds per save | file (MiB) | share at 30 s | fit with a save every epoch (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for stage, figures in row["stages"].items():
            lines.append(f"| {row['case']} | {row['n_images']:,} | {row['backbone']} | {stage} | {figures['saves']} | "
                         f"{figures['seconds_per_save']:.3f} | {figures['file_mib']:.1f} | "
                         f"{figures['seconds_per_save'] / 30:.2%} | {row['fit_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["digits", "cifar10:1000"])
    args = parser.parse_args()
    meta = run_metadata(cpu_capability=cpu_kind(), command="python benchmarks/checkpoint_cost.py " + " ".join(args.cases))
    rows = []
    for case in args.cases:
        rows.append(run(case))
        print(json.dumps(rows[-1]), flush=True)
    (DOCS / "checkpoint-cost.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (DOCS / "checkpoint-cost.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
