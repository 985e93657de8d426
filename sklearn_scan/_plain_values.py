"""Plain values: what files loaded with ``torch.load(weights_only=True)`` may hold besides tensors."""

import numpy as np


def to_plain(value):
    """numpy scalars become Python numbers; containers are converted item by item."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value
