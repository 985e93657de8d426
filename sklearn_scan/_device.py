"""Where the networks run: the device of a fit, moving modules and batches there, memory layout."""

import warnings

import torch


def resolve_device(device):
    """Turn ``"auto"``, a string or a ``torch.device`` into a ``torch.device``.

    ``"auto"`` picks cuda, then mps, then cpu. Asking for an accelerator that is
    not there raises a ``ValueError`` instead of failing later inside torch.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu', "
            "'cuda', 'cuda:0' or 'mps'."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch sees no CUDA GPU here; "
            "use device='auto' or device='cpu'."
        )
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available here; "
            "use device='auto' or device='cpu'."
        )
    return resolved


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def inference_device(fitted_device):
    """The device a fitted model predicts on: the one it was fitted on, if present.

    A model fitted on a GPU and loaded on a machine without one falls back to
    the CPU with a warning, as skorch does.
    """
    device = torch.device(fitted_device)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            "This model was fitted on a CUDA device, which is not available here; "
            "predicting on the CPU instead.",
            RuntimeWarning,
        )
        return torch.device("cpu")
    if device.type == "mps" and not _mps_available():
        return torch.device("cpu")
    return device


def channels_last(device, images):
    """Image models run channels-last on CUDA and on the CPU, in either precision.

    In float32 on 2 AVX2 cores, channels-last made a SimCLR step of the small CNN
    1.3-1.6 times as fast (28x28 and 8x8 images) and EfficientNet-Lite0's inference
    1.5 times (benchmarks/throughput.py).
    """
    return images and device.type in ("cuda", "cpu")


def prepare_module(module, device, images):
    """Move a module to ``device``, channels-last for image models where that is faster."""
    module = module.to(device)
    if channels_last(device, images):
        module = module.to(memory_format=torch.channels_last)
    return module


def to_device(batch, device, images):
    """Move a batch to ``device`` as float32 (uint8 images are scaled to [0, 1])."""
    batch = batch.to(device, non_blocking=True)
    if batch.dtype == torch.uint8:
        batch = batch.float().div_(255.0)
    if batch.dim() == 4:
        # Inputs may be a channels-last view of decoded images; the model gets one layout either way.
        layout = torch.channels_last if channels_last(device, images) else torch.contiguous_format
        batch = batch.contiguous(memory_format=layout)
    return batch


def is_on_device(module, device):
    """True when the parameters of ``module`` live on ``device`` ("cuda" matches the current GPU's "cuda:N")."""
    where = next(iter(module.parameters()), torch.empty(0)).device
    if device.index is None:  # "cuda" means the current GPU; "mps" has one device
        return where.type == device.type and (device.type != "cuda" or where.index == torch.cuda.current_device())
    return where == device
