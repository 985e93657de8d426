"""Image collections as inputs: a folder, a list of image files, or a torch Dataset.

Images are decoded one batch at a time and resized on the way in, so memory
holds only the resized pixels (N x image_size x image_size x 3 bytes), never
the originals. Resize policy: the shorter side is scaled to ``image_size``
(keeping the aspect ratio), then the centre square is cropped, as
torchvision's ``Resize(image_size)`` + ``CenterCrop(image_size)`` do. Every
image becomes RGB: grayscale is repeated over three channels, transparency is
composited onto white, palettes are expanded. Files that cannot be decoded are
skipped with a warning and reported.
"""

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

from ._progress import progress

#: ITU-R 601 luma weights, for models fitted on grayscale images.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

#: PIL modes without colour: such images are scans, digits, line art rather than photos.
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")
#: Shorter side from which colour images count as photos (see :func:`looks_like_photos`).
PHOTO_MIN_SIDE = 32

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")


def is_image_collection(X):
    """True for a folder or file path, a list of paths, or a torch Dataset."""
    if isinstance(X, (str, os.PathLike)):
        return True
    if isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(item, (str, os.PathLike)) for item in X):
        return True
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(X, Dataset)


def list_image_files(folder):
    """Image files under ``folder``, searched recursively, in sorted order: list of str.

    A link to a missing file is listed too, so that decoding reports it with the other unreadable files.
    """
    folder = Path(folder)
    files = sorted(
        str(path) for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and (path.is_file() or (path.is_symlink() and not path.exists()))
    )
    if not files:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) were found under {folder}; "
            "point to the folder that holds the images."
        )
    return files


def _to_rgb(image):
    """A PIL image in RGB: transparency composited onto white, palettes and grayscale expanded."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def resize_and_crop(image, image_size):
    """Scale the shorter side of a PIL image to ``image_size`` and crop the centre square."""
    from PIL import Image

    width, height = image.size
    scale = image_size / min(width, height)
    new_size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    image = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_size[0] - image_size) // 2, (new_size[1] - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


def decode_file(path, image_size):
    """(image_size, image_size, 3) uint8 array from an image file."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        # JPEG can decode at a reduced scale directly, much faster for large photos.
        image.draft("RGB", (image_size, image_size))
        image = ImageOps.exif_transpose(image)
        return np.asarray(resize_and_crop(_to_rgb(image), image_size), dtype=np.uint8)


def decode_item(item, image_size):
    """(image_size, image_size, 3) uint8 array from a Dataset item.

    The item (or its first element, for ``(image, label)`` pairs) is a PIL
    image, an (H, W[, C]) numpy array or a (C, H, W) tensor; arrays and
    tensors hold 0-255 integers or 0-1 floats.
    """
    from PIL import Image

    if isinstance(item, (tuple, list)):
        item = item[0]
    if not isinstance(item, Image.Image):
        array = item.numpy() if hasattr(item, "numpy") else np.asarray(item)
        if hasattr(item, "numpy") and array.ndim == 3 and array.shape[0] in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # tensors are channels-first
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if not np.issubdtype(array.dtype, np.integer):
            array = np.clip(array * 255.0 + 0.5, 0, 255)
        item = Image.fromarray(array.astype(np.uint8))
    return np.asarray(resize_and_crop(_to_rgb(item), image_size), dtype=np.uint8)


def _decode_one(source, index, image_size):
    try:
        if isinstance(source, list):
            return decode_file(source[index], image_size), None
        return decode_item(source[index], image_size), None
    except Exception as exc:  # noqa: BLE001 - any failure means this one image cannot be used
        return None, f"{type(exc).__name__}: {exc}"


def collection_names(X):
    """The name of every item of an image collection: file paths as str, or Dataset indices."""
    if isinstance(X, (str, os.PathLike)):
        path = Path(X)
        if not path.exists():
            raise ValueError(f"{path} does not exist; pass a folder of images, an image file or a list of files.")
        return list_image_files(path) if path.is_dir() else [str(path)]
    if isinstance(X, (list, tuple)):
        return [str(item) for item in X]
    return list(range(len(X)))


def _colour_and_side(source, index):
    """(is colour, shorter side) of one item, read from the file header only; None when unreadable."""
    from PIL import Image

    try:
        if isinstance(source, list):
            with Image.open(source[index]) as image:
                return image.mode not in GRAYSCALE_MODES, min(image.size)
        item = source[index]
        item = item[0] if isinstance(item, (tuple, list)) else item
        if isinstance(item, Image.Image):
            return item.mode not in GRAYSCALE_MODES, min(item.size)
        shape = tuple(item.shape)
        if hasattr(item, "numpy") and len(shape) == 3 and shape[0] in (1, 3, 4):
            shape = shape[1:] + shape[:1]  # tensors are channels-first
        colour = len(shape) == 3 and shape[2] in (3, 4)
        return colour, min(shape[:2])
    except Exception:  # noqa: BLE001 - an unreadable item says nothing about the others
        return None


def _peek(X, names, n_peek):
    """(is colour, shorter side) of up to ``n_peek`` readable items spread over a collection (headers only)."""
    names = collection_names(X) if names is None else names
    source = names if isinstance(X, (str, os.PathLike, list, tuple)) else X
    positions = np.unique(np.linspace(0, len(names) - 1, min(n_peek, len(names))).astype(int))
    return [found for found in (_colour_and_side(source, int(i)) for i in positions) if found is not None]


class ItemKinds(NamedTuple):
    """What a peek at a collection's file headers says: ``channels`` to decode with, whether they are ``photos``."""

    channels: int
    photos: bool


def peek_items(X, names=None, n_peek=32):
    """:class:`ItemKinds` of an image collection, from up to ``n_peek`` items spread over it (headers only).

    Channels: 1 when most readable items are grayscale (they then get the
    grayscale augmentation policy and a one-channel network, as a grayscale
    array does), else 3. Photos: most are in colour and their median shorter
    side is at least ``PHOTO_MIN_SIDE`` pixels.
    """
    looks = _peek(X, names, n_peek)
    if not looks:
        return ItemKinds(3, False)
    colour = np.mean([is_colour for is_colour, _ in looks])
    photos = bool(colour > 0.5 and np.median([side for _, side in looks]) >= PHOTO_MIN_SIDE)
    return ItemKinds(1 if colour < 0.5 else 3, photos)


def looks_like_photos(X, names=None, n_peek=32):
    """True when an image collection holds colour photos rather than grayscale scans or tiny images."""
    return peek_items(X, names, n_peek).photos



def iter_image_batches(X, image_size, *, names=None, channels=3, n_jobs=None, verbose=0, batch_size=256):
    """Decode a folder, a list of files or a Dataset one batch at a time.

    Yields ``(pixels, positions, skipped)`` per batch of ``batch_size`` items:
    a uint8 array (B, image_size, image_size, channels) of the items that
    decoded (``channels=1`` gives their luma), their positions (B,) in
    :func:`collection_names`, and ``[(name, reason), ...]`` for those that
    did not. Decoding runs in ``n_jobs`` threads. ``names``: those of
    :func:`collection_names`, when the caller has them already. Once every
    batch is out, skipped items are warned about (:func:`warn_about_skipped`).
    """
    names = collection_names(X) if names is None else names
    source = names if isinstance(X, (str, os.PathLike, list, tuple)) else X
    n_items = len(names)
    if n_items == 0:
        raise ValueError("The image collection is empty.")
    starts = range(0, n_items, batch_size)
    all_skipped = []
    with Parallel(n_jobs=n_jobs, prefer="threads") as parallel:
        for start in progress(starts, verbose, desc="decoding images", total=len(starts)):
            indices = range(start, min(start + batch_size, n_items))
            decoded = parallel(delayed(_decode_one)(source, i, image_size) for i in indices)
            kept = [index for index, (_, error) in zip(indices, decoded) if error is None]
            pixels = np.empty((len(kept), image_size, image_size, channels), dtype=np.uint8)
            for row, (image, _) in enumerate(item for item in decoded if item[1] is None):
                pixels[row] = image if channels == 3 else np.round(image @ LUMA_WEIGHTS)[..., None]
            skipped = [(names[index], error) for index, (_, error) in zip(indices, decoded) if error is not None]
            all_skipped.extend(skipped)
            yield pixels, np.array(kept, dtype=np.int64), skipped
    warn_about_skipped(all_skipped, n_items)


def warn_about_skipped(skipped, n_items):
    """Warn that ``skipped`` items could not be read; raise when none of ``n_items`` could."""
    if len(skipped) == n_items:
        raise ValueError(f"None of the {n_items} images could be read; the first error: {skipped[0][1]}.")
    if skipped:
        shown = "; ".join(f"{name} ({reason})" for name, reason in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warnings.warn(f"Skipped {len(skipped)} image(s) that could not be read: {shown}{more}.", UserWarning)


def load_image_collection(X, image_size, *, channels=3, n_jobs=None, verbose=0, batch_size=256):
    """Decode a folder, a list of files or a Dataset into resized pixels.

    Returns ``(images, names, kept, skipped)``: a uint8 array (K, image_size,
    image_size, channels) of the K images that decoded (``channels=1`` gives
    their luma), the names of all items (:func:`collection_names`), the
    positions (K,) in ``names`` of the decoded images, and ``[(name,
    reason), ...]`` for those that did not decode.
    """
    names = collection_names(X)
    # Filled in order with the images that decode, so peak memory is one resized copy.
    images = np.empty((len(names), image_size, image_size, channels), dtype=np.uint8)
    kept, skipped = [], []
    batches = iter_image_batches(
        X, image_size, names=names, channels=channels, n_jobs=n_jobs, verbose=verbose, batch_size=batch_size
    )
    for pixels, positions, batch_skipped in batches:
        images[len(kept) : len(kept) + len(pixels)] = pixels
        kept.extend(positions.tolist())
        skipped.extend(batch_skipped)
    return images[: len(kept)], names, np.array(kept, dtype=np.int64), skipped
