"""Mixed precision: bfloat16 autocast on CUDA and on CPUs that compute it natively, float32 elsewhere."""

import contextlib
import contextvars
import functools
import os

import torch


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
