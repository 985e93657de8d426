"""Progress bars for long work, shown with ``verbose``."""

from tqdm.auto import tqdm


def progress(iterable, verbose, desc, total=None, initial=0):
    """A tqdm bar when ``verbose`` is on, the bare iterable otherwise."""
    if not verbose:
        return iterable
    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=True, dynamic_ncols=True)
