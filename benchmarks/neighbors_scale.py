"""Neighbour mining as the number of samples grows: time, peak memory and recall of each method.

For each n and data set, ``mine_neighbors(features, 20, method=...)`` runs in a fresh process (its
peak memory is its own); recall@20 is measured against exact search on 500 random queries, and
neighbour purity against the mixture's components (or the data set's labels). Data sets:
``mixture`` (128-dimensional rows of 100 Gaussian components with unit spread around centres
drawn with spread 3; euclidean) and ``mnist_embedding`` (the learned embedding of all 70,000
MNIST images by the defaults fitted on 10,000 of them, cosine). The embedding is computed once
(about 12 minutes on 2 cores) and kept in results/mnist-embedding.npz; --embedding FILE.npz with
``features`` and ``labels`` uses another. Writes docs/neighbors-scale.json, .md and .png.

    python benchmarks/neighbors_scale.py --sizes 10000 100000 1000000 --methods auto
    python benchmarks/neighbors_scale.py --data mnist_embedding --sizes 10000 70000 --methods exact pynndescent
"""

import argparse
import json
import resource
import time

import numpy as np
from _common import ROOT, cpu_kind, in_fresh_process, run_metadata

DOCS = ROOT / "docs"
N_QUERIES = 500
K = 20


def mixture(n, dimensions=128, components=100, seed=0):
    """(n, dimensions) float32 rows of a Gaussian mixture and each row's component."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(components, dimensions)).astype(np.float32)
    labels = rng.integers(0, components, size=n)
    rows = centres[labels]
    for start in range(0, n, 100_000):  # in blocks, to keep the float64 temporaries small
        stop = min(start + 100_000, n)
        rows[start:stop] += rng.standard_normal((stop - start, dimensions), dtype=np.float32)
    return rows, labels


def make_mnist_embedding(path, data_dir=ROOT.parent / "shared" / "data"):
    """Fit the defaults on 10,000 MNIST training images; write the embedding of all 70,000 to path."""
    from sklearn_scan import SCANClusterer

    data = np.load(data_dir / "mnist.npz")
    images = np.concatenate([data["train_X"], data["test_X"]])
    labels = np.concatenate([data["train_y"], data["test_y"]])
    model = SCANClusterer(n_clusters=10, random_state=0).fit(images[:10_000])
    features = np.concatenate([model.transform(images[start:start + 10_000]) for start in range(0, len(images), 10_000)])
    path.parent.mkdir(exist_ok=True)
    np.savez(path, features=features.astype(np.float32), labels=labels)


def load_data(name, n, embedding):
    if name == "mixture":
        return (*mixture(n), "euclidean")
    data = np.load(embedding)
    features, labels = data["features"], data["labels"]
    if n > len(features):
        raise SystemExit(f"{embedding} holds {len(features)} rows; asked for {n}")
    return features[:n], labels[:n], "cosine"


def exact_for_queries(features, queries, metric):
    """Exact 20 nearest neighbours (self excluded) of the query rows, by blocks of the data."""
    import torch

    data = torch.from_numpy(features)
    query = data[queries]
    if metric == "cosine":
        data = torch.nn.functional.normalize(data, dim=1)
        query = torch.nn.functional.normalize(query, dim=1)
    best = None
    for start in range(0, len(data), 200_000):
        block = data[start:start + 200_000]
        distances = (query * query).sum(1, keepdim=True) - 2 * query @ block.T + (block * block).sum(1)[None]
        indices = torch.arange(start, start + len(block)).expand(len(query), -1)
        distances[indices == torch.from_numpy(queries)[:, None]] = float("inf")
        if best is not None:
            distances = torch.cat([best[0], distances], dim=1)
            indices = torch.cat([best[1], indices], dim=1)
        top = torch.topk(distances, K, dim=1, largest=False)
        best = (top.values, torch.gather(indices, 1, top.indices))
    return best[1].numpy()


def run(name, n, method, embedding):
    from sklearn_scan._neighbors import mine_neighbors

    features, labels, metric = load_data(name, n, embedding)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    neighbors = mine_neighbors(features, K, metric=metric, method=method, random_state=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queries = np.random.default_rng(1).choice(n, size=min(N_QUERIES, n), replace=False)
    truth = exact_for_queries(features, queries, metric)
    recall = float(np.mean([len(set(neighbors[q]) & set(t)) / K for q, t in zip(queries, truth)]))
    return {
        "data": name, "n": n, "method": method, "metric": metric, "seconds": seconds, "recall_at_20": recall,
        "purity_at_20": float((labels[neighbors] == labels[:, None]).mean()),
        "peak_mib": peak, "data_mib": features.nbytes / 2**20, "peak_before_mib": baseline,
    }


def markdown(rows):
    meta = rows[-1]["meta"]
    lines = [
        "# Neighbour mining at scale",
        "",
        f"`mine_neighbors(features, 20)` on 128-dimensional rows; recall@20 against exact search on {N_QUERIES} "
        "random queries; purity@20: the share of neighbours from the same mixture component (or class). Peak: the "
        "process's resident-set maximum, data included. *mixture*: 100 Gaussian components, euclidean. "
        "*mnist_embedding*: the 128-dimensional embedding of all 70,000 MNIST images by the defaults fitted on the "
        "first 10,000 training images (which are the rows of n = 10,000), cosine, purity against the digit labels. "
        "Each run is a fresh process, so pynndescent's times include numba compiling its functions, about 30 s.",
        "",
        f"`python benchmarks/neighbors_scale.py`: {meta['date']}, {meta['machine']}, {meta['cpus']} cores "
        f"({meta['cpu_capability']}), torch {meta['torch']}.",
        "",
        "| data | n | method | seconds | recall@20 | purity@20 | peak memory (MiB) | data (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["data"], r["method"], r["n"])):
        lines.append(f"| {r['data']} | {r['n']:,} | {r['method']} | {r['seconds']:.1f} | {r['recall_at_20']:.3f} | "
                     f"{r['purity_at_20']:.3f} | {r['peak_mib']:.0f} | {r['data_mib']:.0f} |")
    lines += ["", "![time against n](neighbors-scale.png)", ""]
    return "\n".join(lines)


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in sorted({(r["data"], r["method"]) for r in rows}):
        points = sorted((r["n"], r["seconds"]) for r in rows if (r["data"], r["method"]) == key)
        ax.loglog(*zip(*points), marker="o", label=" / ".join(key))
    ax.set_xlabel("samples")
    ax.set_ylabel("seconds")
    ax.set_title("Mining 20 neighbours, 2 CPU cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "neighbors-scale.png", dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["mixture"], choices=["mixture", "mnist_embedding"])
    parser.add_argument("--methods", nargs="+", default=["auto"])
    parser.add_argument("--embedding", help="an .npz with features (N, 128) and labels (N,)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the markdown and plot")
    args = parser.parse_args()
    if "mnist_embedding" in args.data and args.embedding is None:
        args.embedding = ROOT / "results" / "mnist-embedding.npz"
        if not args.embedding.exists():
            in_fresh_process(make_mnist_embedding, args.embedding)
    path = DOCS / "neighbors-scale.json"
    if args.from_json:
        rows = json.loads(path.read_text())
        (DOCS / "neighbors-scale.md").write_text(markdown(rows))
        return plot(rows)
    rows = json.loads(path.read_text()) if path.exists() and not args.no_record else []
    for name in args.data:
        for method in args.methods:
            for n in args.sizes:
                row = in_fresh_process(run, name, n, method, args.embedding)
                print(json.dumps(row), flush=True)
                if args.no_record:
                    continue
                row["meta"] = run_metadata(cpu_capability=cpu_kind(), command="python benchmarks/neighbors_scale.py " + " ".join(
                    ["--sizes", str(n), "--data", name, "--methods", method]))
                rows = [r for r in rows if (r["data"], r["n"], r["method"]) != (name, n, method)] + [row]
                path.write_text(json.dumps(rows, indent=1) + "\n")
    if rows and not args.no_record:
        (DOCS / "neighbors-scale.md").write_text(markdown(rows))
        plot(rows)


if __name__ == "__main__":
    main()
