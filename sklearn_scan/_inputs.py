"""Input checks: validate X once and adapt it to a tensor the stages share."""

import numpy as np
import torch

from ._memory import release_freed_memory


def to_model_inputs(X, copy=True):
    """Adapt a validated array to the tensor every stage takes, without modifying X.

    X: (N, D) features, (N, H, W) grayscale images or (N, H, W, C) images with
    C in {1, 3}, integer (0-255) or float (0-1).
    Returns ``(inputs, images)``: a CPU tensor, (N, D) float32 for features or
    (N, C, H, W) for images (uint8 for integer input, float32 otherwise), and
    whether X holds images. ``copy=False`` lets uint8 images share X's
    memory, as a channels-last view (for arrays the library decoded itself).
    """
    if X.ndim == 2:
        return torch.from_numpy(np.array(X, dtype=np.float32, copy=True)), False
    if X.ndim == 3:
        X = X[..., None]
    if X.ndim != 4:
        raise ValueError(
            f"X must be 2-D features (n_samples, n_features), grayscale images "
            f"(n_samples, height, width) or images (n_samples, height, width, channels); "
            f"got an array with {X.ndim} dimensions, shape {X.shape}."
        )
    if 0 in X.shape[1:3]:
        raise ValueError(f"Images must be at least 1x1 pixels; got shape {X.shape}.")
    channels = X.shape[-1]
    if channels not in (1, 3):
        hint = ""
        if X.shape[1] in (1, 3):
            hint = " It looks channels-first (N, C, H, W): pass X.transpose(0, 2, 3, 1)."
        raise ValueError(
            f"Images must have 1 or 3 channels in the last dimension (N, H, W, C); "
            f"got shape {X.shape}.{hint}"
        )
    if np.issubdtype(X.dtype, np.integer) or X.dtype == np.bool_:
        low, high = X.min(), X.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer images must hold values in 0-255; got values from {low} to {high}."
            )
        if not copy and X.dtype == np.uint8:
            return torch.from_numpy(X).permute(0, 3, 1, 2), True
        # One copy, straight into the (N, C, H, W) layout.
        return torch.from_numpy(np.array(X.transpose(0, 3, 1, 2), dtype=np.uint8, order="C", copy=True)), True
    else:
        low, high = float(X.min()), float(X.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise ValueError(
                f"Float images must hold values in [0, 1]; got values from {low:g} to {high:g}. "
                "Divide by the maximum (for example X / 255.0), or pass uint8 images."
            )
        pixels = np.clip(np.asarray(X, dtype=np.float32), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))), True


def per_channel_statistics(inputs, images, chunk_elements=2**22):
    """Mean and std per channel (images) or per feature, as float32 tensors.

    inputs: (N, C, H, W) or (N, D), uint8 (0-255, scaled to 0-1) or float.
    Summed in float64 over chunks of about ``chunk_elements`` values, so
    memory stays at one chunk however large the data set. A constant
    channel gets std 1.
    """
    dims = (0, 2, 3) if images else (0,)
    per_sample = max(1, inputs[0].numel())
    rows = max(1, chunk_elements // per_sample)
    total = squares = 0.0
    for start in range(0, len(inputs), rows):
        values = inputs[start : start + rows].double()
        total = total + values.sum(dim=dims)
        squares = squares + values.square().sum(dim=dims)
        del values
        release_freed_memory()
    count = inputs.numel() / inputs.shape[1]
    mean = total / count
    variance = (squares - count * mean.square()).clamp(min=0.0) / max(count - 1, 1)
    std = variance.sqrt()
    if inputs.dtype == torch.uint8:
        mean, std = mean / 255.0, std / 255.0
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float(), std.float()


def check_same_kind_of_input(expected_shape, shape):
    """Raise a clear error when X of ``shape`` at predict time differs from the (C, H, W) or (D,) fitted on."""
    if len(expected_shape) == 1:
        if len(shape) != 2:
            raise ValueError(
                f"This model was fitted on 2-D features with {expected_shape[0]} columns; got X of shape {tuple(shape)}."
            )
        return
    channels, height, width = expected_shape
    if len(shape) not in (3, 4):
        raise ValueError(
            f"This model was fitted on {height}x{width} images with {channels} channel(s); "
            f"got X of shape {tuple(shape)}."
        )
    got_channels = 1 if len(shape) == 3 else shape[3]
    if got_channels != channels:
        raise ValueError(
            f"This model was fitted on images with {channels} channel(s), got {got_channels}; "
            "convert the images to the same colour mode (grayscale or RGB)."
        )
    if tuple(shape[1:3]) != (height, width):
        raise ValueError(
            f"This model was fitted on {height}x{width} images, got {shape[1]}x{shape[2]}; "
            "resize them to the training size."
        )


def check_sample_count(n_samples, n_clusters, n_neighbors):
    """Raise a clear error when ``n_samples`` is too few for ``n_clusters`` and ``n_neighbors``."""
    if n_samples < 2:
        raise ValueError(f"Clustering needs at least 2 samples; got n_samples={n_samples}.")
    if n_clusters > n_samples:
        raise ValueError(f"n_clusters={n_clusters} must be at most n_samples={n_samples}.")
    if n_neighbors >= n_samples:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be below n_samples={n_samples}; "
            f"use n_neighbors={n_samples - 1} or fewer."
        )
