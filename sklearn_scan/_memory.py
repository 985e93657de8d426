"""The process's heap: freed memory kept for the next batch during a fit, handed back between stages."""

import contextlib
import ctypes
import functools
import platform
import threading


_HEAP_LOCK = threading.Lock()
_HEAP_USERS = 0
# mallopt's parameters (malloc.h) and glibc's defaults for the two that are changed.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536


@functools.cache
def _glibc():
    """The C library's handle where it is glibc (Linux), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory():
    """Within this block, memory torch frees stays in the process for the next batch; it goes back after.

    glibc's malloc maps large buffers fresh from the kernel and unmaps them when
    they are freed, so every batch's activations are page-faulted in again: on 2
    AVX2 cores EfficientNet-Lite0 embedded 23-26 images/s channels-last, with more
    system time than user time. With mmap off and trimming deferred it embedded
    69-73/s in batches of 16-32, with no system time (benchmarks/throughput.py). On leaving the
    outermost block glibc's settings are restored and the free memory is
    returned to the system (``malloc_trim``). Elsewhere than glibc, nothing changes.
    """
    global _HEAP_USERS
    libc = _glibc()
    if libc is None:
        yield
        return
    with _HEAP_LOCK:
        if _HEAP_USERS == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        _HEAP_USERS += 1
    try:
        yield
    finally:
        with _HEAP_LOCK:
            _HEAP_USERS -= 1
            if _HEAP_USERS == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


def release_freed_memory():
    """Inside :func:`reuse_freed_memory`, hand memory freed so far back to the system (``malloc_trim``).

    Kept for reuse, freed memory fragments: buffers of one batch cannot always take
    the place of the last batch's. A folder fit through a fixed encoder peaked 751 MiB
    higher on 16,000 images than on 4,000; called between decoded batches, blocks of
    neighbour search and epochs, this brought the difference to 29 MiB
    (benchmarks/collection_memory.py), while batches within them still reuse memory.
    """
    if _HEAP_USERS:
        libc = _glibc()
        if libc is not None:
            libc.malloc_trim(0)
