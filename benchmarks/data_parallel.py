"""A digits fit in one process against the same script under torchrun with 2 processes (CPU, gloo).

Runs tests/distributed_fit.py --defaults (``SCANClusterer(n_clusters=10, random_state=0)`` on
scikit-learn's 1,797 digits) once alone and once under ``torchrun --standalone --nproc_per_node 2``
on the same machine, and reports ACC, the agreement of the two partitions (Hungarian-matched),
whether both processes got the same labels, the images each sent through the first convolution, and
the wall time. Writes docs/data-parallel.json and .md.

    python benchmarks/data_parallel.py
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, cpu_kind, run_metadata

SCRIPT = ROOT / "tests" / "distributed_fit.py"


def launch(command, out_dir):
    start = time.perf_counter()
    subprocess.run([sys.executable, *command, str(SCRIPT), str(out_dir), "--defaults"], check=True)
    return time.perf_counter() - start


def main():
    from sklearn_scan.metrics import clustering_accuracy_score

    with tempfile.TemporaryDirectory() as alone_dir, tempfile.TemporaryDirectory() as spread_dir:
        alone_seconds = launch([], alone_dir)
        spread_seconds = launch(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], spread_dir)
        alone = np.load(Path(alone_dir) / "rank0.npz")
        ranks = [np.load(Path(spread_dir) / f"rank{rank}.npz") for rank in range(2)]
        truth = alone["truth"]
        row = {
            "alone": {"accuracy": clustering_accuracy_score(truth, alone["labels"]), "seconds": alone_seconds,
                      "first_convolution_images": int(alone["first_convolution_images"])},
            "torchrun_2": {
                "accuracy": clustering_accuracy_score(truth, ranks[0]["labels"]), "seconds": spread_seconds,
                "first_convolution_images": [int(rank["first_convolution_images"]) for rank in ranks],
                "same_labels_on_every_process": bool(np.array_equal(ranks[0]["labels"], ranks[1]["labels"])),
            },
            "agreement": clustering_accuracy_score(alone["labels"], ranks[0]["labels"]),
            "meta": run_metadata(command="python benchmarks/data_parallel.py", cpu_capability=cpu_kind()),
        }
    (ROOT / "docs" / "data-parallel.json").write_text(json.dumps(row, indent=1) + "\n")
    meta, spread = row["meta"], row["torchrun_2"]
    lines = [
        "# One process against two under torchrun",
        "",
        "`SCANClusterer(n_clusters=10, random_state=0)` on scikit-learn's 1,797 digits, the same script alone and "
        "under `torchrun --standalone --nproc_per_node 2` (gloo) on the same machine; wall time includes start-up.",
        "",
        f"`python benchmarks/data_parallel.py`: {meta['date']}, {meta['machine']}, {meta['cpus']} cores "
        f"({meta['cpu_capability']}), torch {meta['torch']}.",
        "",
        "| run | ACC | images through the first convolution | wall time (s) |",
        "|---|---|---|---|",
        f"| one process | {row['alone']['accuracy']:.3f} | {row['alone']['first_convolution_images']:,} | "
        f"{row['alone']['seconds']:.0f} |",
        f"| 2 processes | {spread['accuracy']:.3f} | {' and '.join(f'{n:,}' for n in spread['first_convolution_images'])}"
        f" | {spread['seconds']:.0f} |",
        "",
        f"Both processes ended with {'the same' if spread['same_labels_on_every_process'] else 'different'} labels; "
        f"they agree with the one-process fit on {row['agreement']:.3f} of the digits (clusters matched).",
        "",
    ]
    (ROOT / "docs" / "data-parallel.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
