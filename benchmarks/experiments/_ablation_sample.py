"""The defaults' clustering step on the ablation's seed-0 sample, for experiments that start from its model."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ablation import PRETEXT  # noqa: E402
from real_images import load  # noqa: E402

from sklearn_scan import SCANClusterer  # noqa: E402


def fit_on_ablation_sample(dataset, **params):
    """``(data, X_train, y_train, model)``: SCANClusterer without self-labeling, fitted on the 10,000 training
    images ``benchmarks/ablation.py`` samples with seed 0, its pretext cached where the ablation caches it."""
    data = load(dataset, str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    train = np.random.default_rng(0).choice(len(data.X_train), size=10_000, replace=False)
    X_train, y_train = data.X_train[train], data.y_train[train]
    model = SCANClusterer(10, random_state=0, memory=f"/tmp/scan-ablation-cache/{dataset}-0", selflabel_epochs=0,
                          **dict(PRETEXT[dataset], **params)).fit(X_train)
    return data, X_train, y_train, model


def parse_variant(variant, defaults, flags=()):
    """A variant name ``first_keyVALUE_keyVALUE`` -> ``(first, options)``: ``defaults`` (key -> value string)
    updated with each part. A part takes the longest key (of ``defaults`` and ``flags``) it starts with, so
    ``ema0.99`` is not ``e`` with "ma0.99"; a flag given alone maps to "".
    """
    first, *parts = variant.split("_")
    options = dict(defaults)
    for part in parts:
        key = max((key for key in (*defaults, *flags) if part.startswith(key)), key=len)
        options[key] = part[len(key):]
    return first, options
