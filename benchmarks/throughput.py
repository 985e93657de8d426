"""Images per second of each stage's loop, with the user and system CPU time they cost.

For every precision asked (float32; bfloat16, which runs at speed only on CPUs with native
bfloat16), memory layout (contiguous, channels-last) and batch size, one loop of each stage on
random images:

- pretext: SimCLR steps of the default CNN (two views per image) on 8x8x1, 28x28x1 and 32x32x3 images;
- embedding: EfficientNet-Lite0 inference at 224 px, as the photo path runs it;
- heads: SCAN steps of 50 linear heads on 1,280 fixed features.

With ``--sweep`` each loop runs with glibc's default allocator settings ("fresh pages") and
inside :func:`sklearn_scan._memory.reuse_freed_memory` ("reused"), which fits and
predictions use, and once more on one thread instead of torch's default of one per core.
Writes docs/throughput.md and docs/throughput.json.

    python benchmarks/throughput.py                                   # float32, the defaults' settings
    python benchmarks/throughput.py --sweep                            # every layout, batch size and heap setting
    python benchmarks/throughput.py --precisions float32 bfloat16     # bfloat16 too (slow without native support)

Emulate a CPU without native bfloat16 on one that has it:
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 SKLEARN_SCAN_CPU_BFLOAT16=0 python benchmarks/throughput.py``.
"""

import argparse
import contextlib
import json
import resource
import time
from unittest import mock

import torch
from _common import ROOT, run_metadata

from sklearn_scan import _device, _precision
from sklearn_scan._augment import policy_for_images
from sklearn_scan._backbones import ClusteringHeads, build_encoder
from sklearn_scan._inputs import per_channel_statistics
from sklearn_scan._pretext import train_pretext
from sklearn_scan._pretrained import build_pretrained
from sklearn_scan._scan import train_scan
from sklearn_scan._batching import predict_in_batches
from sklearn_scan._memory import reuse_freed_memory
from sklearn_scan._precision import mixed_precision
from sklearn_scan._random import make_generator

CPU = torch.device("cpu")


def measured(run, n_images):
    """``run()`` once to warm up, then timed: images/s, user and system seconds of the process."""
    run()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"images_per_second": n_images / seconds, "seconds": seconds,
            "user_seconds": after.ru_utime - before.ru_utime, "system_seconds": after.ru_stime - before.ru_stime}


def pretext_loop(shape, batch_size, n_images=2048):
    images = torch.randint(0, 256, (n_images,) + shape, dtype=torch.uint8)
    encoder, _ = build_encoder("convnet", shape, CPU, statistics=per_channel_statistics(images, True))

    def run():
        train_pretext(encoder, images, policy=policy_for_images(*shape), epochs=1, batch_size=batch_size,
                      device=CPU, generator=make_generator(0))

    return run, n_images


def embedding_loop(batch_size, n_images=256):
    network = build_pretrained("efficientnet-lite0").module.eval()
    images = torch.rand(n_images, 3, 224, 224)
    return (lambda: predict_in_batches(network, images, CPU, batch_size, images=True)), n_images


def heads_loop(batch_size, n_images=10_000, n_features=1280):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n_images, n_features, generator=generator)
    neighbors = torch.randint(0, n_images, (n_images, 20), generator=generator)
    heads = ClusteringHeads(n_features, 10, 50, 0)

    def run():
        train_scan(heads, features, neighbors, entropy_weight=5.0, epochs=1, batch_size=batch_size, device=CPU,
                   generator=make_generator(0), images=False, learning_rate=1e-2)

    return run, n_images


LOOPS = {  # name -> (builder, batch sizes of the sweep, batch size of the defaults)
    "pretext 8x8x1": (lambda b: pretext_loop((1, 8, 8), b), (64, 128, 256), 128),
    "pretext 28x28x1": (lambda b: pretext_loop((1, 28, 28), b), (64, 128, 256), 128),
    "pretext 32x32x3": (lambda b: pretext_loop((3, 32, 32), b), (64, 128, 256), 128),
    "embedding 224x224x3 (EfficientNet-Lite0)": (embedding_loop, (16, 32, 128), 128),
    "heads on 1,280 features": (heads_loop, (128, 256), 128),
}


def layout(channels_last):
    return contextlib.nullcontext() if channels_last else mock.patch.object(
        _device, "channels_last", lambda device, images: False
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    parser.add_argument("--sweep", action="store_true", help="every layout, batch size and heap setting")
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=list(LOOPS))
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    meta = run_metadata(native_bfloat16=_precision.cpu_has_native_bfloat16(),
                        cpu_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads())
    rows = []
    all_threads = torch.get_num_threads()
    for name in args.loops:
        build, sweep_sizes, default_size = LOOPS[name]
        for precision in args.precisions:
            for channels_last in ((False, True) if args.sweep else (True,)):
                for batch_size in (sweep_sizes if args.sweep else (default_size,)):
                    for reuse in ((False, True) if args.sweep else (True,)):
                        with mixed_precision(precision == "bfloat16"), layout(channels_last):
                            with reuse_freed_memory() if reuse else contextlib.nullcontext():
                                figures = measured(*build(batch_size))
                        rows.append({"loop": name, "precision": precision, "channels_last": channels_last,
                                     "batch_size": batch_size, "heap": "reused" if reuse else "fresh pages",
                                     "threads": all_threads, **figures})
                        print(f"{name:<42}{precision:<10}{'channels-last' if channels_last else 'contiguous':<15}"
                              f"batch {batch_size:<5}{rows[-1]['heap']:<13}{figures['images_per_second']:>8.1f} img/s"
                              f"  user {figures['user_seconds']:6.1f} s  system {figures['system_seconds']:6.1f} s",
                              flush=True)
            if args.sweep and all_threads > 1:  # one thread instead of torch's default of one per core
                torch.set_num_threads(1)
                with mixed_precision(precision == "bfloat16"), reuse_freed_memory():
                    figures = measured(*build(default_size))
                torch.set_num_threads(all_threads)
                rows.append({"loop": name, "precision": precision, "channels_last": True, "batch_size": default_size,
                             "heap": "reused", "threads": 1, **figures})
                print(f"{name:<42}{precision:<10}channels-last  batch {default_size:<5}1 thread     "
                      f"{figures['images_per_second']:>8.1f} img/s", flush=True)
    if args.no_record:
        return
    (ROOT / "docs" / "throughput.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# Throughput of each stage",
        "",
        f"`python benchmarks/throughput.py {' '.join(_arguments(args))}`".replace("  ", " ").replace(" `", "`")
        + f" — {meta['date']}, {meta['cpus']} cores ({meta['cpu_capability']}, native bfloat16: "
        f"{'yes' if meta['native_bfloat16'] else 'no'}), torch {meta['torch']}.",
        "",
        "Images per second of one loop of each stage on random images (a SimCLR image counts once for its two "
        "views), and the CPU time it took: user (computing) and system (the kernel, mostly page faults).",
        "",
        "| loop | precision | layout | batch | heap | threads | images/s | user s | system s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['loop']} | {r['precision']} | {'channels-last' if r['channels_last'] else 'contiguous'} | "
              f"{r['batch_size']} | {r['heap']} | {r['threads']} | {r['images_per_second']:.1f} | {r['user_seconds']:.1f} | "
              f"{r['system_seconds']:.1f} |" for r in rows]
    (ROOT / "docs" / "throughput.md").write_text("\n".join(lines) + "\n")


def _arguments(args):
    chosen = []
    if args.sweep:
        chosen.append("--sweep")
    if args.precisions != ["float32"]:
        chosen += ["--precisions", *args.precisions]
    if args.loops != list(LOOPS):
        chosen += ["--loops", *(f"'{loop}'" for loop in args.loops)]
    return chosen


if __name__ == "__main__":
    main()
