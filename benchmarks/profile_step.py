"""Where the CPU time of a fit goes: augmentation against the network, float32 against bfloat16.

Prints the median time of the parts of a SimCLR step of the default CNN (one
thread) and of one pretext epoch on 10,000 random images (all threads), for
28x28x1 (MNIST) and 32x32x3 (CIFAR-10) images.

    python benchmarks/profile_step.py
"""

import statistics
import time

import torch

from sklearn_scan._augment import policy_for_images, strong_views, weak_views
from sklearn_scan._backbones import build_encoder, convnet
from sklearn_scan._inputs import per_channel_statistics
from sklearn_scan._pretext import train_pretext
from sklearn_scan._precision import mixed_precision
from sklearn_scan._random import make_generator

SHAPES = {"28x28x1": (1, 28, 28), "32x32x3": (3, 32, 32)}


def median_seconds(function, repeats=5):
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_parts(shape):
    """Milliseconds of augmenting 256 images and of forward+backward of 512, in four precisions/layouts."""
    generator, policy = make_generator(0), policy_for_images(*shape)
    images = torch.rand((256,) + shape)
    parts = {
        "weak augmentation of 256 images": median_seconds(lambda: weak_views(images, policy, generator)),
        "strong augmentation of 256 images": median_seconds(lambda: strong_views(images, policy, generator)),
    }
    batch = torch.rand((512,) + shape)
    for bf16 in (False, True):
        for channels_last in (False, True):
            network, _ = convnet(shape[0], shape[1])
            inputs = batch
            if channels_last:
                network = network.to(memory_format=torch.channels_last)
                inputs = batch.contiguous(memory_format=torch.channels_last)

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = network(inputs).float().sum()
                loss.backward()

            name = f"forward+backward of 512, {'bfloat16' if bf16 else 'float32'}{', channels-last' if channels_last else ''}"
            parts[name] = median_seconds(step, repeats=3)
    return {name: seconds * 1000 for name, seconds in parts.items()}


def epoch_seconds(shape, bf16):
    """Seconds of one pretext epoch on 10,000 random uint8 images, batches of 128."""
    images = torch.randint(0, 256, (10_000,) + shape, dtype=torch.uint8)
    with mixed_precision(bf16):
        encoder, _ = build_encoder("convnet", shape, torch.device("cpu"), statistics=per_channel_statistics(images, True))
        start = time.perf_counter()
        train_pretext(encoder, images, policy=policy_for_images(*shape), epochs=1, batch_size=128,
                      device=torch.device("cpu"), generator=make_generator(0))
    return time.perf_counter() - start


def main():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = {name: step_parts(shape) for name, shape in SHAPES.items()}
    print("one thread, milliseconds (median)")
    for part in next(iter(rows.values())):
        print(f"  {part:<58}" + "".join(f"{rows[name][part]:>10.0f}" for name in SHAPES))
    torch.set_num_threads(threads)
    print(f"pretext epoch on 10,000 images, batches of 128, {threads} threads, seconds")
    for bf16 in (False, True):
        print(f"  {'bfloat16 + channels-last' if bf16 else 'float32':<58}"
              + "".join(f"{epoch_seconds(shape, bf16):>10.1f}" for shape in SHAPES.values()))


if __name__ == "__main__":
    main()
