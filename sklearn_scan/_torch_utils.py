"""Device, randomness, batching and mixed precision: the torch plumbing every stage shares."""

import contextlib
import contextvars
import copy
import ctypes
import functools
import os
import platform
import threading
import warnings

import torch
from tqdm.auto import tqdm


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


@contextlib.contextmanager
def seeded(seed, device):
    """Run a block with torch's global RNG seeded, restoring the caller's state after.

    Weight initialisation uses torch's global RNG; forking it keeps fits
    repeatable without touching the random state the user owns.
    """
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def make_generator(seed):
    """A CPU ``torch.Generator``: all sampling (shuffles, augmentations) draws from it.

    Sampling on the CPU and moving the few numbers to the device keeps runs
    identical across devices and avoids per-device generator semantics.
    """
    return torch.Generator().manual_seed(int(seed))


def shuffled_batches(n_samples, batch_size, generator, n_steps=None):
    """Yield index tensors of a random permutation in batches.

    The last incomplete batch is dropped when there is more than one batch, so
    that batch norm never sees a batch of one sample. ``n_steps``: yield only
    that many batches (the processes of a data-parallel fit take the same
    number of steps, though their shares may differ by a sample).
    """
    order = torch.randperm(n_samples, generator=generator)
    if n_samples <= batch_size:
        yield order
        return
    starts = range(0, n_samples - batch_size + 1, batch_size)
    for start in starts if n_steps is None else starts[:n_steps]:
        yield order[start : start + batch_size]


_MIXED_PRECISION = contextvars.ContextVar("mixed_precision", default="auto")


@contextlib.contextmanager
def mixed_precision(setting):
    """Within this block, :func:`autocast` follows ``setting``: "auto", True or False."""
    token = _MIXED_PRECISION.set(setting)
    try:
        yield
    finally:
        _MIXED_PRECISION.reset(token)


#: Set to "0" to compute in float32 on the CPU under ``mixed_precision="auto"``, as on a CPU without native
#: bfloat16 (with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` too, such a CPU is emulated whole).
BFLOAT16_ENVIRONMENT_VARIABLE = "SKLEARN_SCAN_CPU_BFLOAT16"


@functools.cache
def cpu_has_native_bfloat16():
    """True when this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX; Arm BF16) and torch uses it.

    False when ``SKLEARN_SCAN_CPU_BFLOAT16=0`` is set, or when torch's kernels are held to AVX2 or
    less (``ATEN_CPU_CAPABILITY=avx2``).
    """
    if os.environ.get(BFLOAT16_ENVIRONMENT_VARIABLE, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX", "AVX2"):
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(cpuinfo.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def uses_bfloat16(device):
    """Whether :func:`autocast` computes in bfloat16 on ``device`` under the current setting.

    "auto": on CUDA, and on CPUs with native bfloat16, where a small CNN's
    training step ran about twice as fast (benchmarks/profile_step.py, AMD
    EPYC with AVX512-BF16); never on MPS. True forces it on CPU and CUDA.
    """
    setting = _MIXED_PRECISION.get()
    if setting is False or device.type not in ("cuda", "cpu"):
        return False
    return setting is True or device.type == "cuda" or cpu_has_native_bfloat16()


def autocast(device):
    """bfloat16 autocast where :func:`uses_bfloat16` says so, float32 otherwise."""
    if uses_bfloat16(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _channels_last(device, images):
    """Image models run channels-last on CUDA and on the CPU, in either precision.

    In float32 on 2 AVX2 cores, channels-last made a SimCLR step of the small CNN
    1.3-1.6 times as fast (28x28 and 8x8 images) and EfficientNet-Lite0's inference
    1.5 times (benchmarks/throughput.py).
    """
    return images and device.type in ("cuda", "cpu")


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

def prepare_module(module, device, images):
    """Move a module to ``device``, channels-last for image models where that is faster."""
    module = module.to(device)
    if _channels_last(device, images):
        module = module.to(memory_format=torch.channels_last)
    return module


def to_device(batch, device, images):
    """Move a batch to ``device`` as float32 (uint8 images are scaled to [0, 1])."""
    batch = batch.to(device, non_blocking=True)
    if batch.dtype == torch.uint8:
        batch = batch.float().div_(255.0)
    if batch.dim() == 4:
        # Inputs may be a channels-last view of decoded images; the model gets one layout either way.
        layout = torch.channels_last if _channels_last(device, images) else torch.contiguous_format
        batch = batch.contiguous(memory_format=layout)
    return batch


def is_on_device(module, device):
    """True when the parameters of ``module`` live on ``device`` ("cuda" matches the current GPU's "cuda:N")."""
    where = next(iter(module.parameters()), torch.empty(0)).device
    if device.index is None:  # "cuda" means the current GPU; "mps" has one device
        return where.type == device.type and (device.type != "cuda" or where.index == torch.cuda.current_device())
    return where == device


@torch.inference_mode()
def predict_in_batches(module, inputs, device, batch_size, images):
    """Apply ``module`` in eval mode to ``inputs`` (N, ...) and return a float32 numpy array.

    On a CPU, a submodule with a ``cpu_batch_size`` attribute caps the batch size.
    The module is used on a copy when it must move to another device, so a
    fitted estimator is never modified by inference.
    """
    if not is_on_device(module, device):
        module = prepare_module(copy.deepcopy(module), device, images)
    if device.type == "cpu":  # a module may cap the batch on a CPU (large pretrained backbones do)
        caps = [part.cpu_batch_size for part in module.modules() if hasattr(part, "cpu_batch_size")]
        batch_size = min([batch_size, *caps])
    was_training = module.training
    module.eval()
    outputs = None  # filled batch by batch: memory holds the outputs once
    try:
        for start in range(0, len(inputs), batch_size):
            batch = to_device(inputs[start : start + batch_size], device, images)
            with autocast(device):
                result = module(batch).float().cpu()
            if outputs is None:
                outputs = torch.empty((len(inputs), *result.shape[1:]), dtype=torch.float32)
            outputs[start : start + len(result)] = result
    finally:
        module.train(was_training)
    if outputs is None:
        raise ValueError("predict_in_batches got no samples.")
    return outputs.numpy()


def progress(iterable, verbose, desc, total=None, initial=0):
    """A tqdm bar when ``verbose`` is on, the bare iterable otherwise."""
    if not verbose:
        return iterable
    return tqdm(iterable, desc=desc, total=total, initial=initial, leave=True, dynamic_ncols=True)


def run_epochs(stage, n_epochs, train_one_epoch, verbose, history, checkpoint=None):
    """Run ``train_one_epoch(epoch) -> dict`` ``n_epochs`` times, recording history.

    Each epoch's dict of figures is appended to ``history`` with the stage and
    epoch number, and shown on the progress bar; a dict with ``"stopped": True``
    ends the stage after that epoch. Ctrl-C (KeyboardInterrupt) ends the stage
    early, keeping what was learned. With a
    :class:`~sklearn_scan._checkpoints.StageCheckpoint`, the stage starts after
    the epoch it saved and saves after epochs as it decides. Returns True when
    the stage was interrupted.
    """
    first = checkpoint.restore(history) if checkpoint is not None else 0
    if first is None:  # the saved stage had stopped
        first = n_epochs
    bar = progress(range(first, n_epochs), verbose, desc=stage, initial=first, total=n_epochs)
    try:
        for epoch in bar:
            figures = train_one_epoch(epoch)
            release_freed_memory()
            history.append({"stage": stage, "epoch": epoch, **figures})
            if verbose:
                bar.set_postfix({key: f"{value:.4g}" for key, value in figures.items()})
            stopped = bool(figures.get("stopped"))
            if checkpoint is not None:
                checkpoint.after_epoch(epoch, stopped or epoch == n_epochs - 1, history, stopped=stopped)
            if stopped:
                break
    except KeyboardInterrupt:
        warnings.warn(
            f"Training interrupted during the {stage} stage; keeping what was learned so far.",
            RuntimeWarning,
        )
        history.append({"stage": stage, "epoch": None, "interrupted": True})
        return True
    finally:
        if verbose:
            bar.close()
    return False


def cosine_schedule(optimizer, total_steps):
    """Cosine decay of the learning rate to zero over ``total_steps`` optimizer steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


def n_batches(n_samples, batch_size):
    """How many batches :func:`shuffled_batches` yields per epoch."""
    return 1 if n_samples <= batch_size else n_samples // batch_size
