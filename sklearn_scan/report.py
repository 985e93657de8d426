"""An HTML report of a clustering: sizes, prototypes, doubtful members, and scores when labels are known.

:func:`write_report` writes one self-contained ``report.html`` (pictures
embedded as PNG data) that any browser opens, next to the same pictures as
PNG files.
"""

import base64
import html
import io
import time
from pathlib import Path

import numpy as np

from ._images import decode_file, decode_item
from .metrics import clustering_accuracy_score, clustering_report
from .plotting import plot_cluster_sizes, plot_confusion_matrix, plot_prototypes, prototype_indices


def _png(figure, path=None):
    """The figure as PNG bytes, also written to ``path`` when given; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _img_tag(data, alt):
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


class _Thumbnails:
    """Decodes, on demand, only the images a picture shows: ``thumbnails[i]`` is (S, S, 3) uint8."""

    def __init__(self, source, size):
        self.source, self.size, self.cache = source, size, {}

    def __getitem__(self, index):
        if index not in self.cache:
            item = self.source[index]
            self.cache[index] = decode_file(item, self.size) if isinstance(item, str) else decode_item(item, self.size)
        return self.cache[index]


def write_report(out_dir, names, labels, confidence, *, images=None, y_true=None, class_names=None,
                 n_per_cluster=8, n_doubtful=4, thumbnail_size=96, title="Clustering report", details=None,
                 stage_labels=None):
    """Write ``report.html`` and its pictures (PNG) into ``out_dir``; return the HTML path.

    names: (N,) file paths (or any names); labels: (N,) clusters; confidence:
    (N,) top probabilities. ``images``: an indexable sequence of images to
    show instead of decoding ``names`` as files. With ``y_true`` the report
    adds ACC/NMI/ARI and a confusion matrix. ``details``: extra
    ``{field: value}`` lines for the header (for example the model's settings).
    ``stage_labels``: the model's ``stage_labels_`` (labels after k-means on
    the embedding, the clustering step and self-labeling); the report then
    says how many images each stage moved to another cluster.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels, confidence = np.asarray(labels), np.asarray(confidence, dtype=float)
    shown = images if images is not None else _Thumbnails(list(names), thumbnail_size)
    clusters = list(np.unique(labels))
    sizes = _png(plot_cluster_sizes(labels), out / "cluster_sizes.png")
    prototypes = _png(
        plot_prototypes(shown, labels, confidence, n_per_cluster=n_per_cluster,
                        title="Most confident images per cluster (row label: cluster and size; above: confidence)"),
        out / "prototypes.png",
    )
    doubtful = _png(
        plot_prototypes(shown, labels, confidence, n_per_cluster=n_doubtful, least_confident=True,
                        title="Least confident images per cluster"),
        out / "least_confident.png",
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "th{background:#f3f3f3}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(labels):,} images in {len(clusters)} clusters; "
        f"{np.mean(confidence > 0.99):.0%} assigned with confidence above 0.99. "
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.</p>",
    ]
    if details:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in details.items()) + "</ul>")
    if y_true is not None:
        scores = clustering_report(y_true, labels)
        parts += [
            "<h2>Agreement with the folder labels</h2>",
            f"<p>ACC {scores['accuracy']:.3f} &middot; NMI {scores['nmi']:.3f} &middot; ARI {scores['ari']:.3f} "
            "(ACC matches clusters to labels one to one).</p>",
            _img_tag(_png(plot_confusion_matrix(y_true, labels, class_names=class_names), out / "confusion_matrix.png"),
                     "confusion matrix"),
        ]
    if stage_labels:
        parts.append(_stage_changes(stage_labels, y_true))
    parts += [
        "<h2>Cluster sizes</h2>", _img_tag(sizes, "cluster sizes"),
        "<h2>Prototypes</h2><p>Each row is a cluster; its most confident images, most confident first.</p>",
        _img_tag(prototypes, "prototypes"),
        "<h2>Doubtful members</h2><p>The least confident images of each cluster: "
        "where the cluster's border runs.</p>",
        _img_tag(doubtful, "least confident images"),
        "<h2>Clusters</h2><table><tr><th>cluster</th><th>images</th><th>mean confidence</th>"
        "<th>most confident image</th></tr>",
    ]
    top = prototype_indices(labels, confidence, n_per_cluster=1)
    for cluster in clusters:
        members = labels == cluster
        parts.append(
            f"<tr><td>{cluster}</td><td>{members.sum():,}</td><td>{confidence[members].mean():.3f}</td>"
            f"<td style='text-align:left'>{html.escape(str(names[top[cluster][0]]))}</td></tr>"
        )
    parts += ["</table>", "</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


#: How the report names the stages of ``stage_labels_``.
STAGE_NAMES = {"kmeans": "k-means on the embedding", "scan": "clustering step", "selflabel": "self-labeling"}


def _stage_changes(stage_labels, y_true=None):
    """An HTML table: per stage, the share of images in another cluster than after the stage before it.

    Clusters of consecutive stages are matched one to one first, so a renumbering is no change. With
    ``y_true``, each stage's ACC too.
    """
    rows = ["<h2>What each stage changed</h2><table><tr><th>stage</th><th>images moved to another cluster</th>"
            + ("<th>ACC</th>" if y_true is not None else "") + "</tr>"]
    previous = None
    for stage, labels in stage_labels.items():
        moved = "" if previous is None else f"{1 - clustering_accuracy_score(previous, labels):.1%}"
        score = f"<td>{clustering_accuracy_score(y_true, labels):.3f}</td>" if y_true is not None else ""
        rows.append(f"<tr><td style='text-align:left'>{STAGE_NAMES.get(stage, stage)}</td><td>{moved}</td>{score}</tr>")
        previous = labels
    return "\n".join(rows + ["</table>"])
