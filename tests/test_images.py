import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sklearn_scan import SCANClusterer
from sklearn_scan._images import list_image_files, load_image_collection, resize_and_crop

from .conftest import fast_params


def two_kinds(n=40, size=8, seed=0):
    """RGB uint8 images of two kinds: a bright top half or a bright bottom half."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 50, size=(n, size, size, 3), dtype=np.uint8)
    images[: n // 2, : size // 2] += 180
    images[n // 2 :, size // 2 :] += 180
    return images


@pytest.fixture
def photo_folder(tmp_path):
    """A folder tree of PNGs (exact pixels), plus odd modes, a corrupt file and a text file."""
    images = two_kinds()
    for index, pixels in enumerate(images):
        sub = tmp_path / ("top" if index < 20 else "bottom")
        sub.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(sub / f"{index:03d}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "top" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return tmp_path, images


def test_listing_is_recursive_sorted_and_ignores_other_files(photo_folder):
    folder, _ = photo_folder
    files = list_image_files(folder)
    assert len(files) == 41 and files == sorted(files)
    assert not any(name.endswith(".txt") for name in files)
    with pytest.raises(ValueError, match="No image files"):
        list_image_files(folder / "bottom" / "none")


def test_decoding_skips_broken_files_with_a_warning(photo_folder):
    folder, images = photo_folder
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        pixels, all_names, kept, skipped = load_image_collection(folder, 8, n_jobs=2)
    names = [all_names[index] for index in kept]
    assert pixels.shape == (40, 8, 8, 3) and pixels.dtype == np.uint8
    assert len(all_names) == 41 and len(names) == 40 and skipped[0][0].endswith("broken.jpg")
    assert all_names[[i for i in range(41) if i not in kept][0]] == skipped[0][0]
    # PNG is lossless and the size already matches: the pixels come back exactly.
    np.testing.assert_array_equal(pixels[names.index(str(folder / "top" / "003.png"))], images[3])
    with pytest.raises(ValueError, match="does not exist"):
        load_image_collection(folder / "missing", 8)


def test_a_dangling_link_is_reported_with_the_unreadable_files(photo_folder):
    folder, _ = photo_folder
    (folder / "bottom" / "gone.png").symlink_to(folder / "deleted.png")
    with pytest.warns(UserWarning, match="Skipped 2 image"):
        _, all_names, kept, skipped = load_image_collection(folder, 8, n_jobs=2)
    assert len(all_names) == 42 and len(kept) == 40
    assert sorted(name.rsplit("/", 1)[-1] for name, _ in skipped) == ["broken.jpg", "gone.png"]


def test_resize_policy_scales_the_shorter_side_and_crops_the_centre():
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # a white centre third
    out = np.asarray(resize_and_crop(Image.fromarray(wide), 5))
    assert out.shape == (5, 5, 3)
    assert out.min() > 200  # only the white centre survives the crop


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    image = Image.new(mode, (12, 9))
    path = tmp_path / ("image.tif" if mode in ("I;16", "CMYK") else "image.png")
    image.save(path)
    pixels, _, _, skipped = load_image_collection([path], 6)
    assert pixels.shape == (1, 6, 6, 3) and not skipped
    if mode in ("RGBA", "LA"):
        assert pixels.min() == 255  # fully transparent pixels are composited onto white


def test_large_jpeg_is_decoded_at_the_small_size(tmp_path):
    big = np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=80)
    pixels, _, _, _ = load_image_collection(tmp_path, 32)
    assert pixels.shape == (1, 32, 32, 3)


class PairDataset(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if index == 5:
            raise OSError("unreadable item")
        return torch.from_numpy(self.images[index]).permute(2, 0, 1).float() / 255, index % 2


@pytest.mark.numerics
def test_fit_on_a_folder_matches_fit_on_the_same_pixels(photo_folder):
    folder, _ = photo_folder
    # 20 pretext epochs (40 steps) settle batch norm's running statistics; after 2 or 5 the CNN's eval-mode
    # features of these 40 images were nearly constant on most seeds, and every head predicted one cluster.
    params = fast_params(n_clusters=2, pretext_epochs=20, scan_epochs=50, batch_size=32, image_size=8)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        from_files = SCANClusterer(**params).fit(folder)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        pixels, all_names, kept, _ = load_image_collection(folder, 8)
    names = [all_names[index] for index in kept]
    from_array = SCANClusterer(**params).fit(pixels)
    np.testing.assert_array_equal(from_files.labels_, from_array.labels_)
    assert from_files.image_names_ == names and from_array.image_names_ is None
    assert [name for name, _ in from_files.skipped_images_] == [str(folder / "top" / "broken.jpg")]
    # Clusters follow the two kinds of images.
    kinds = np.array(["top" in name for name in names])
    assert abs(np.corrcoef(kinds, from_files.labels_)[0, 1]) > 0.9

    # predict on the folder: one row per file, -1 (and NaN rows) for the broken one.
    files = from_files.image_names(folder)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        labels = from_files.predict(folder)
    with pytest.warns(UserWarning):
        proba = from_files.predict_proba(folder)
    broken = files.index(str(folder / "top" / "broken.jpg"))
    assert len(labels) == len(files) == 41 and labels[broken] == -1
    assert np.isnan(proba[broken]).all() and np.allclose(np.delete(proba, broken, 0).sum(axis=1), 1)
    np.testing.assert_array_equal(np.delete(labels, broken), from_files.labels_)
    # A list of paths works too, and is left as it was.
    chosen = files[:3]
    before = list(chosen)
    np.testing.assert_array_equal(from_files.predict(chosen), labels[:3])
    assert chosen == before
    # The same file twice gets two rows, both filled.
    twice = from_files.predict([files[0], files[0]])
    assert twice[0] == twice[1] == labels[0]


def test_fit_on_a_dataset_skips_failing_items():
    images = two_kinds(seed=1)
    params = fast_params(n_clusters=2, pretext_epochs=1, scan_epochs=10, batch_size=32, image_size=8)
    with pytest.warns(UserWarning, match="unreadable item"):
        model = SCANClusterer(**params).fit(PairDataset(images))
    assert len(model.labels_) == 39 and model.skipped_images_[0][0] == 5
    assert model.image_names_ == [i for i in range(40) if i != 5]


def test_grayscale_model_predicts_image_files(tmp_path):
    images = two_kinds()
    model = SCANClusterer(**fast_params(n_clusters=2, pretext_epochs=1, scan_epochs=10, batch_size=32))
    model.fit(images[..., :1])
    for index in range(4):
        Image.fromarray(images[index * 10]).save(tmp_path / f"{index}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = model.predict(tmp_path)
    assert labels.shape == (4,) and set(labels) <= {0, 1}
    features = SCANClusterer(**fast_params()).fit(np.random.default_rng(0).normal(size=(30, 4)))
    with pytest.raises(ValueError, match="not fitted on square images"):
        features.predict(tmp_path)


def test_a_folder_of_grayscale_scans_is_fitted_as_grayscale(tmp_path):
    images = two_kinds()
    for index, pixels in enumerate(images):
        Image.fromarray(pixels[..., 0]).save(tmp_path / f"{index:03d}.png")  # mode "L"
    model = SCANClusterer(**fast_params(n_clusters=2, pretext_epochs=1, scan_epochs=10, batch_size=32, image_size=8))
    model.fit(tmp_path)
    # One channel, as a grayscale array gets: the grayscale policy (no flips, no colour jitter) and network.
    assert model.input_shape_ == (1, 8, 8) and model.predict(tmp_path).shape == (40,)


class TinyEncoder(torch.nn.Module):
    """A fixed feature extractor: mean colour of each image half, (B, 3, H, W) -> (B, 6)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, images):
        half = images.shape[2] // 2
        top, bottom = images[:, :, :half].mean(dim=(2, 3)), images[:, :, half:].mean(dim=(2, 3))
        return torch.cat([top, bottom], dim=1) * self.scale


def test_fixed_encoder_fit_embeds_a_collection_batch_by_batch(photo_folder, monkeypatch):
    folder, _ = photo_folder
    params = dict(n_clusters=2, backbone=TinyEncoder(), pretext="none", selflabel_epochs=0, n_neighbors=5,
                  n_heads=3, scan_epochs=30, batch_size=16, image_size=8, random_state=0)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        pixels, all_names, kept, _ = load_image_collection(folder, 8)
    from_array = SCANClusterer(**params).fit(pixels)

    # Only the heads train, so the whole collection is never decoded into one array.
    import sklearn_scan._sources as sources_module

    def refuse(*args, **kwargs):
        raise AssertionError("the collection was decoded whole")

    monkeypatch.setattr(sources_module.DecodedImages, "write", refuse)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        streamed = SCANClusterer(**params).fit(folder)
    assert streamed.image_names_ == [all_names[index] for index in kept]
    assert streamed.input_shape_ == from_array.input_shape_ == (3, 8, 8)
    assert streamed.n_features_in_ == from_array.n_features_in_ == 8
    assert len(streamed.skipped_images_) == 1
    np.testing.assert_array_equal(streamed.labels_, from_array.labels_)
    np.testing.assert_allclose(streamed.transform(pixels), from_array.transform(pixels), rtol=1e-5)
    # predict streams too, one row per file.
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        labels = streamed.predict(folder)
    assert len(labels) == 41 and (labels == -1).sum() == 1
    np.testing.assert_array_equal(labels[labels >= 0], streamed.labels_)
    # With self-labeling the images are needed (augmented views), so they are decoded once.
    with pytest.raises(AssertionError, match="decoded whole"):
        SCANClusterer(**dict(params, selflabel_epochs=1)).fit(folder)


def test_a_collection_with_one_readable_image_is_refused(tmp_path):
    Image.fromarray(two_kinds(n=2)[0]).save(tmp_path / "only.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    model = SCANClusterer(n_clusters=2, backbone=TinyEncoder(), pretext="none", selflabel_epochs=0, image_size=8)
    # Two files are too few for 20 neighbours: said before anything is decoded.
    with pytest.raises(ValueError, match="n_neighbors=20 must be below n_samples=2"):
        model.fit(tmp_path)
    model.set_params(n_neighbors=1)
    with pytest.warns(UserWarning, match="Skipped 1 image"), pytest.raises(ValueError, match="n_samples=1"):
        model.fit(tmp_path)


def test_decoded_images_index_like_the_pixels_they_hold(tmp_path):
    from sklearn_scan._sources import DecodedImages

    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 5, 6, 3), dtype=np.uint8)
    batches = [(pixels[:4], np.arange(4), []), (pixels[4:], np.arange(5, 8), [("broken.png", "not an image")])]
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    for directory in (None, tmp_path):
        images, kept, skipped = DecodedImages.write(iter(batches), (3, 5, 6), directory, "images")
        assert kept == [0, 1, 2, 3, 5, 6, 7] and skipped == [("broken.png", "not an image")]
        assert images.shape == expected.shape and len(images) == 7 and images.numel() == expected.numel()
        for index in (2, -1, slice(1, 5), slice(None, None, 3), torch.tensor([6, 0, 6]), np.array([3, -2]), []):
            np.testing.assert_array_equal(images[index].numpy(), expected[index].numpy())
        with pytest.raises(IndexError):
            images[torch.tensor([7])]
    # Kept in a directory, the file is read again without decoding.
    stored, kept, skipped = DecodedImages.open(tmp_path, "images")
    np.testing.assert_array_equal(stored[:].numpy(), expected.numpy())
    assert skipped == [("broken.png", "not an image")]
    assert DecodedImages.open(tmp_path, "other") is None
    (tmp_path / "images.u8").write_bytes(b"truncated")
    assert DecodedImages.open(tmp_path, "images") is None


def test_a_folder_fit_keeps_its_decoded_images_in_the_checkpoint_dir(photo_folder, tmp_path_factory, monkeypatch):
    folder, _ = photo_folder
    checkpoint_dir = tmp_path_factory.mktemp("checkpoints")
    params = fast_params(n_clusters=2, pretext_epochs=2, scan_epochs=2, batch_size=16, image_size=8,
                         checkpoint_dir=checkpoint_dir)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        first = SCANClusterer(**params).fit(folder)
    assert (checkpoint_dir / "images.u8").stat().st_size == 40 * 8 * 8 * 3

    import sklearn_scan._sources as sources_module

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(sources_module, "iter_image_batches", refuse)
    again = SCANClusterer(**params).fit(folder)
    np.testing.assert_array_equal(again.labels_, first.labels_)
    assert again.image_names_ == first.image_names_ and again.skipped_images_ == first.skipped_images_


def test_a_folder_fit_through_the_memory_cache_trains_the_pretext_once(photo_folder, tmp_path_factory):
    folder, _ = photo_folder
    params = fast_params(n_clusters=2, pretext_epochs=3, scan_epochs=2, batch_size=16, image_size=8,
                         memory=str(tmp_path_factory.mktemp("cache")))
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        first = SCANClusterer(**params).fit(folder)
    with pytest.warns(UserWarning, match="Skipped 1 image"):
        cached = SCANClusterer(**params).fit(folder)
    np.testing.assert_array_equal(cached.labels_, first.labels_)
    assert cached.stage_seconds_["pretext"] < first.stage_seconds_["pretext"] / 3
