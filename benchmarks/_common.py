"""What the benchmark scripts share: fresh-process runs, summaries, run metadata."""

import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("accuracy", "nmi", "ari")


def in_fresh_process(function, *args):
    """Call ``function(*args)`` in a new process, so that its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def statistics(values):
    """Mean, std and median of a list of numbers."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values))}


def summary_row(runs, **keys):
    """Statistics over ``runs`` of the figures, time and peak memory, with ``keys`` in front."""
    row = {**keys, "n_seeds": len(runs)}
    for key in (*FIGURES, "seconds", "peak_memory_mib"):
        row[key] = statistics([run[key] for run in runs])
    return row


def table_cells(row):
    """Markdown cells: ACC, NMI, ARI as mean ± std, then median time and peak memory."""
    figures = [f"{row[key]['mean']:.3f} ± {row[key]['std']:.3f}" for key in FIGURES]
    return " | ".join(figures + [f"{row['seconds']['median']:.1f}", f"{row['peak_memory_mib']['median']:.0f}"])


def cpu_kind():
    """The CPU's kernel level and whether it computes bfloat16 natively, e.g. "AVX2, native bfloat16: no"."""
    import torch

    from sklearn_scan._precision import cpu_has_native_bfloat16

    return f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {'yes' if cpu_has_native_bfloat16() else 'no'}"


def run_metadata(**extra):
    """Machine, torch version, date and commit of a benchmark run."""
    import torch

    return {
        "machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "commit": source_commit(), **extra,
    }


def source_commit():
    """The commit checked out, with "-dirty" when the library or benchmark code has uncommitted changes.

    (Reports the benchmarks write under docs/ do not count.)
    """
    commit = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "sklearn_scan", "benchmarks", "pyproject.toml"],
                             cwd=ROOT)
    return (commit.stdout.strip() or "unknown") + ("-dirty" if changed.returncode == 1 else "")


class ClusteringStepSpy:
    """Records the test predictions of the model self-labeling starts from (the clustering step's).

    Installed in place of the estimator's ``train_selflabel``, so that one fit
    gives both figures; ACC ignores the numbering of clusters, so raw argmaxes do.
    """

    def __init__(self, X_test):
        from sklearn_scan._inputs import to_model_inputs

        self.test_inputs, self.images = to_model_inputs(X_test)
        self.labels = None

    def __call__(self, model, inputs, **kwargs):
        from sklearn_scan._batching import predict_in_batches

        logits = predict_in_batches(model, self.test_inputs.to(kwargs["training"].device), kwargs["training"].device, 512, self.images)
        self.labels = logits.argmax(axis=1)
        return self.original(model, inputs, **kwargs)

    def __enter__(self):
        from sklearn_scan import _pipeline

        self.original, _pipeline.train_selflabel = _pipeline.train_selflabel, self
        return self

    def __exit__(self, *exc):
        from sklearn_scan import _pipeline

        _pipeline.train_selflabel = self.original
