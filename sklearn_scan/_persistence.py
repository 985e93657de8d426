"""Save a fitted SCANClusterer to one file and load it back with ``torch.load(weights_only=True)``.

The file holds only tensors and plain Python values (the network's
``state_dict``, the fitted attributes, the constructor parameters), so loading
it runs no pickled code. The network is rebuilt from the backbone name and
input shape; a model with a user-given backbone needs that backbone again at
load time (``backbone=``), since its code is not in the file.
"""

import numbers
from pathlib import Path

import numpy as np
import torch

from ._plain_values import to_plain
from ._backbones import ClusterHead, ClusterModel, _head_trunk, build_encoder

FORMAT = "sklearn-scan-model"
#: 2: the CNN's pooled blocks pool right after the convolution, which renumbered its layers.
FORMAT_VERSION = 2

_ARRAY_ATTRIBUTES = ("labels_", "confidence_", "neighbors_", "head_losses_")
_PLAIN_ATTRIBUTES = ("backbone_name_", "input_shape_", "device_", "metric_", "best_head_", "history_", "n_features_in_",
                     "image_names_", "skipped_images_", "stage_seconds_")


def _plain(value):
    """True when ``value`` survives ``weights_only`` loading as it is."""
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


def save_model(estimator, path):
    """Write the fitted ``estimator`` to ``path`` (one file, loadable with weights_only)."""
    params = {key: to_plain(value) for key, value in estimator.get_params(deep=False).items()}
    if isinstance(params.get("device"), torch.device):
        params["device"] = str(params["device"])
    # Objects (a backbone module, a joblib.Memory, a RandomState) are not stored.
    dropped = sorted(key for key, value in params.items() if not _plain(value))
    params = {key: (None if key in dropped else value) for key, value in params.items()}
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": params,
        "dropped_params": dropped,
        "attributes": {name: to_plain(getattr(estimator, name)) for name in _PLAIN_ATTRIBUTES},
        "arrays": {name: torch.from_numpy(np.ascontiguousarray(getattr(estimator, name))) for name in _ARRAY_ATTRIBUTES},
        "state_dict": {key: value.detach().cpu() for key, value in estimator.model_.state_dict().items()},
    }
    torch.save(state, Path(path))


def load_model(cls, path, backbone=None):
    """Rebuild a fitted ``cls`` instance from a file written by :func:`save_model`."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else means it is not one of our files
        raise ValueError(f"{path} is not a model saved with SCANClusterer.save: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a model saved with SCANClusterer.save.")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved by a newer sklearn-scan (format {state['format_version']}); upgrade sklearn-scan to load it."
        )
    attributes = state["attributes"]
    params = dict(state["params"])
    if attributes["backbone_name_"] == "custom":
        if backbone is None:
            raise ValueError(
                f"{path} holds a model with a user-given backbone, whose code is not saved; "
                "pass the same backbone (an nn.Module or a callable returning one) as load(path, backbone=...)."
            )
        params["backbone"] = backbone
    estimator = cls(**params)
    input_shape = tuple(attributes["input_shape_"])
    # The architecture only: the weights come from the file.
    encoder, _ = build_encoder(
        backbone if attributes["backbone_name_"] == "custom" else attributes["backbone_name_"],
        input_shape, torch.device("cpu"), load_weights=False,
    )
    trunk, trunk_features = _head_trunk(encoder.out_features, params.get("head_hidden_size") or 0)
    head = ClusterHead(trunk, torch.nn.Linear(trunk_features, params["n_clusters"]))
    model = ClusterModel(encoder, head)
    weights = state["state_dict"]
    if state["format_version"] < 2 and attributes["backbone_name_"] == "convnet":
        weights = renumbered_by_position(weights, model.state_dict())
    model.load_state_dict(weights)
    estimator.model_ = model.eval()
    for name, value in attributes.items():
        setattr(estimator, name, tuple(value) if name == "input_shape_" else value)
    for name, value in state["arrays"].items():
        setattr(estimator, name, value.numpy())
    return estimator


def renumbered_by_position(weights, expected):
    """``weights`` under the keys of ``expected``, matching the layers that hold tensors in order.

    For a file of format 1 whose CNN put max-pooling after batch norm and ReLU:
    the convolutions and batch norms are the same, in the same order, under other indices.
    """
    def layers(state):
        grouped = {}
        for key, value in state.items():
            layer, name = key.rsplit(".", 1)
            grouped.setdefault(layer, {})[name] = value
        return list(grouped.items())

    old, new = layers(weights), layers(expected)
    same_shapes = len(old) == len(new) and all(
        old_tensors.keys() == new_tensors.keys()
        and all(old_tensors[name].shape == new_tensors[name].shape for name in old_tensors)
        for (_, old_tensors), (_, new_tensors) in zip(old, new)
    )
    if not same_shapes:
        raise ValueError("The saved network does not match this version's CNN; fit the model again.")
    return {f"{new_layer}.{name}": value
            for (_, old_tensors), (new_layer, _) in zip(old, new) for name, value in old_tensors.items()}
