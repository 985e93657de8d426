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
