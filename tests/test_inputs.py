import numpy as np
import pytest
import torch

from sklearn_scan._inputs import per_channel_statistics, to_model_inputs


def test_uint8_images_are_copied_unless_the_library_owns_them():
    images = np.random.default_rng(0).integers(0, 256, size=(5, 6, 7, 3), dtype=np.uint8)
    copied, is_images = to_model_inputs(images)
    shared, _ = to_model_inputs(images, copy=False)
    assert is_images and copied.shape == shared.shape == (5, 3, 6, 7)
    assert torch.equal(copied, shared)
    assert not np.shares_memory(copied.numpy(), images)
    assert np.shares_memory(shared.numpy(), images)


@pytest.mark.parametrize("chunk_elements", [1, 300, 2**24])
@pytest.mark.parametrize("kind", ["uint8 images", "float images", "features"])
def test_statistics_in_chunks_match_the_whole_array(kind, chunk_elements):
    generator = torch.Generator().manual_seed(0)
    if kind == "uint8 images":
        inputs = torch.randint(0, 256, (50, 3, 4, 5), generator=generator, dtype=torch.uint8)
        values, dims = inputs.double() / 255, (0, 2, 3)
    elif kind == "float images":
        inputs = torch.rand(50, 1, 4, 5, generator=generator)
        values, dims = inputs.double(), (0, 2, 3)
    else:
        inputs = torch.rand(50, 6, generator=generator) * 100
        values, dims = inputs.double(), (0,)
    mean, std = per_channel_statistics(inputs, images=kind != "features", chunk_elements=chunk_elements)
    assert mean.dtype == std.dtype == torch.float32
    torch.testing.assert_close(mean.double(), values.mean(dim=dims), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(std.double(), values.std(dim=dims), rtol=1e-5, atol=1e-6)


def test_a_constant_channel_gets_unit_std():
    inputs = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    inputs[:, 1] = torch.arange(36, dtype=torch.uint8).view(4, 3, 3)
    mean, std = per_channel_statistics(inputs, images=True)
    assert std[0] == 1 and 0 < std[1] < 1 and mean[0] == 0
