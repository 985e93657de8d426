import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from sklearn_scan import SCANClusterer, _pipeline
from sklearn_scan.metrics import SCORERS, accuracy_scorer, clustering_accuracy_score

from .conftest import fast_params

# scikit-learn's generic checks force n_clusters=1 in these; SCANClusterer
# rejects n_clusters < 2 on purpose (one cluster is no clustering, and the
# entropy term is zero). What they check otherwise is tested below with
# n_clusters=2: test_one_sample_message, test_one_feature,
# test_predict_rejects_1d, test_subset_invariance, test_fit_does_not_add_public_attributes.
N_CLUSTERS_1_REASON = "forces n_clusters=1, which SCANClusterer rejects by design"
EXPECTED_FAILED_CHECKS = {
    name: N_CLUSTERS_1_REASON
    for name in (
        "check_dont_overwrite_parameters",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_fit2d_predict1d",
    )
}


@parametrize_with_checks(
    [SCANClusterer(**fast_params())], expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def small_images(n=60, size=8, channels=None, seed=0):
    """Two kinds of synthetic images: a bright top half or a bright bottom half."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.2, size=(n, size, size)).astype(np.float32)
    images[: n // 2, : size // 2] += 0.7
    images[n // 2 :, size // 2 :] += 0.7
    if channels:
        images = np.repeat(images[..., None], channels, axis=-1)
    return images, np.repeat([0, 1], n // 2)


def image_params(**overrides):
    return fast_params(**{"n_clusters": 2, "pretext_epochs": 2, "scan_epochs": 20, "batch_size": 32, **overrides})


def test_one_sample_message():
    with pytest.raises(ValueError, match="1 sample"):
        SCANClusterer(n_clusters=2).fit(np.zeros((1, 3)))


def test_one_feature(blobs):
    X, _ = blobs
    model = SCANClusterer(**fast_params(n_clusters=2)).fit(X[:, :1])
    assert model.predict(X[:5, :1]).shape == (5,)


def test_predict_rejects_1d(blobs):
    X, _ = blobs
    model = SCANClusterer(**fast_params(n_clusters=2)).fit(X)
    with pytest.raises(ValueError, match="2-D features with 2 columns"):
        model.predict(X[0])


def test_subset_invariance(blobs):
    X, _ = blobs
    model = SCANClusterer(**fast_params(n_clusters=2)).fit(X)
    full = model.predict_proba(X)
    parts = np.concatenate([model.predict_proba(X[i : i + 7]) for i in range(0, len(X), 7)])
    np.testing.assert_allclose(full, parts, atol=1e-5)
    np.testing.assert_array_equal(model.predict(X), np.concatenate([model.predict(X[i : i + 7]) for i in range(0, len(X), 7)]))


def test_fit_does_not_add_public_attributes(blobs):
    X, _ = blobs
    model = SCANClusterer(**fast_params(n_clusters=2))
    before = set(vars(model))
    model.fit(X)
    added = set(vars(model)) - before
    assert added and all(name.endswith("_") for name in added)


@pytest.mark.numerics
def test_outputs_on_features(blobs):
    X, y = blobs
    model = SCANClusterer(**fast_params())
    labels = model.fit_predict(X)
    assert clustering_accuracy_score(y, labels) > 0.95
    np.testing.assert_array_equal(labels, model.labels_)
    proba = model.predict_proba(X)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), model.predict(X))
    assert model.transform(X).shape == (90, 256)
    assert model.neighbors_.shape == (90, 5)
    assert model.head_losses_.shape == (2,) and model.best_head_ == int(np.argmin(model.head_losses_))
    # Labels are numbered by cluster size, largest first.
    sizes = np.bincount(model.labels_)
    assert list(sizes) == sorted(sizes, reverse=True)
    assert np.isfinite(model.score(X))


@pytest.fixture
def train_scan_calls(monkeypatch):
    """The keyword arguments of every ``train_scan`` call the pipeline makes, which still runs."""
    import sklearn_scan._pipeline as pipeline

    calls = []
    original = pipeline.train_scan

    def recording_train_scan(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_scan", recording_train_scan)
    return calls


@pytest.mark.parametrize("n_features, params, expected", [
    (128, {}, 1e-1),  # unit-length rows: their own rate
    (128, {"scan_params": {"learning_rate": 3e-3}}, 3e-3),  # the user's rate wins
    (16, {}, 1e-3),  # the MLP trains as a whole network
])
def test_clustering_step_learning_rate_by_route(train_scan_calls, n_features, params, expected):
    X, _ = make_blobs(n_samples=60, n_features=n_features, centers=3, random_state=0)
    SCANClusterer(**fast_params(scan_epochs=2, **params)).fit(X)
    assert [call["learning_rate"] for call in train_scan_calls] == [expected]


@pytest.mark.parametrize("pretext, expected", [
    ("simclr", 100),  # heads on an encoder the pretext trained: PRETEXT_ENCODER_SCAN_IMAGES anchors
    ("none", 30),  # heads on a fixed encoder: SCAN_IMAGES anchors
])
def test_auto_head_epochs_by_route(monkeypatch, train_scan_calls, pretext, expected):
    import sklearn_scan._pipeline as pipeline

    # 20 images: 2,000 anchors are 100 epochs, 600 are 30 (the real budgets are 1,000,000 and 300,000).
    monkeypatch.setattr(pipeline, "PRETEXT_ENCODER_SCAN_IMAGES", 2_000)
    monkeypatch.setattr(pipeline, "SCAN_IMAGES", 600)
    images, _ = small_images(n=20)
    SCANClusterer(**image_params(pretext=pretext, pretext_epochs=1, scan_epochs="auto", selflabel_epochs=0)).fit(images)
    assert [call["epochs"] for call in train_scan_calls] == [expected]


@pytest.mark.numerics
def test_embedding_features_get_linear_heads_on_unit_rows(tmp_path):
    X, y = make_blobs(n_samples=120, n_features=128, centers=3, random_state=0)
    model = SCANClusterer(**fast_params(selflabel_epochs="auto")).fit(X)
    assert model.backbone_name_ == "normalized"
    assert clustering_accuracy_score(y, model.labels_) > 0.95
    embedding = model.transform(X)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embedding[0], X[0] / np.linalg.norm(X[0]), rtol=1e-4, atol=1e-5)
    # Nothing to train but the heads: no self-labeling under "auto".
    assert [entry["stage"] for entry in model.history_].count("selflabel") == 0
    model.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(SCANClusterer.load(tmp_path / "model.pt").predict(X), model.predict(X))


class QuadrantMeans(nn.Module):
    """A fixed encoder: the mean of each image quadrant, (B, C, H, W) -> (B, 4 C)."""

    def forward(self, images):
        h, w = images.shape[2] // 2, images.shape[3] // 2
        parts = [images[:, :, :h, :w], images[:, :, :h, w:], images[:, :, h:, :w], images[:, :, h:, w:]]
        return torch.cat([part.mean(dim=(2, 3)) for part in parts], dim=1)


@pytest.mark.parametrize("pretext, channels, augmentation, views", [
    ("none", 3, {}, 2),  # a fixed encoder on colour images: heads train on two weak views of every image
    ("none", None, {}, 0),  # grayscale images: none by default
    ("none", None, {"scan_views": 2}, 2),
    ("none", 3, {"scan_views": 0}, 0),
    ("none", 3, {"augment_scan": False}, 0),
    ("simclr", None, {"scan_views": 1}, 1),  # asked for on a SimCLR encoder
])
@pytest.mark.numerics
def test_frozen_heads_train_on_weak_views_of_fixed_features(pretext, channels, augmentation, views):
    X, y = small_images(channels=channels)
    backbone = QuadrantMeans() if pretext == "none" else "auto"
    params = image_params(backbone=backbone, pretext=pretext, augmentation_params=augmentation, n_heads=10,
                          scan_epochs=100, selflabel_epochs=0)
    model = SCANClusterer(**params).fit(X)
    neighbors = [entry for entry in model.history_ if entry["stage"] == "neighbors"]
    assert neighbors[0]["views"] == views
    assert clustering_accuracy_score(y, model.labels_) > 0.9
    if pretext == "none":  # the images' own features, not a view's, are what transform gives
        images = X[:4, None] if channels is None else X[:4].transpose(0, 3, 1, 2)
        expected = QuadrantMeans()(torch.from_numpy(np.ascontiguousarray(images))).numpy()
        np.testing.assert_allclose(model.transform(X[:4]), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("views", [-1, 1.5, "two", True])
def test_bad_scan_views_are_refused_before_the_fit(views):
    X, _ = small_images()
    with pytest.raises(ValueError, match="scan_views"):
        SCANClusterer(**image_params(augmentation_params={"scan_views": views})).fit(X)


def test_history_records_every_stage():
    X, _ = small_images()
    model = SCANClusterer(**image_params(selflabel_epochs=3)).fit(X)
    stages = [entry["stage"] for entry in model.history_]
    assert stages.count("pretext") == 2 and stages.count("scan") == 20 and stages.count("selflabel") == 3
    neighbors = [entry for entry in model.history_ if entry["stage"] == "neighbors"]
    # An encoder SimCLR trained is invariant to weak views already: the heads train on the images' features.
    assert neighbors == [{"stage": "neighbors", "n_neighbors": 5, "metric": "cosine", "views": 0}]
    assert all("confident_share" in entry for entry in model.history_ if entry["stage"] == "selflabel")
    assert all(np.isfinite(entry["loss"]) for entry in model.history_ if "loss" in entry)


@pytest.mark.parametrize(
    "make_input",
    [
        lambda images: images,  # (N, H, W) float
        lambda images: images[..., None],  # (N, H, W, 1)
        lambda images: np.repeat(images[..., None], 3, axis=-1),  # RGB float
        lambda images: (np.repeat(images[..., None], 3, axis=-1) * 255).astype(np.uint8),  # RGB uint8
    ],
    ids=["gray-3d", "gray-4d", "rgb-float", "rgb-uint8"],
)
@pytest.mark.numerics
def test_image_inputs(make_input):
    images, y = small_images()
    X = make_input(images)
    original = X.copy()
    # The whole network starts from a pretext, as in the paper: 2 epochs leave the encoder of 8x8 images random.
    model = SCANClusterer(**image_params(freeze_backbone=False, pretext_epochs=10)).fit(X)
    np.testing.assert_array_equal(X, original)
    assert model.labels_.shape == (60,)
    assert clustering_accuracy_score(y, model.predict(X)) > 0.9
    assert model.predict_proba(X[:3]).shape == (3, 2)


def test_refit_is_identical_with_fixed_random_state():
    images, _ = small_images(seed=3)
    first = SCANClusterer(**image_params(random_state=7, selflabel_epochs=3)).fit(images)
    second = SCANClusterer(**image_params(random_state=7, selflabel_epochs=3)).fit(images)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.predict_proba(images), second.predict_proba(images))
    assert first.history_ == second.history_
    assert set(first.stage_seconds_) == {"pretext", "embedding and neighbours", "clustering step", "self-labeling"}
    np.testing.assert_allclose(first.confidence_, first.predict_proba(images).max(axis=1), atol=1e-2)
    assert all(seconds >= 0 for seconds in first.stage_seconds_.values())


def test_fit_leaves_global_torch_rng_alone(blobs):
    X, _ = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SCANClusterer(**fast_params()).fit(X)
    np.testing.assert_array_equal(torch.rand(3), expected)


@pytest.mark.parametrize("save", ["pickle", "joblib"])
def test_pickle_round_trip(save, tmp_path):
    images, _ = small_images()
    model = SCANClusterer(**image_params()).fit(images)
    if save == "pickle":
        restored = pickle.loads(pickle.dumps(model))
    else:
        joblib.dump(model, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(restored.predict(images), model.predict(images))
    np.testing.assert_allclose(restored.transform(images), model.transform(images))
    # The fitted network is stored on the CPU, so the pickle loads anywhere.
    assert all(p.device.type == "cpu" for p in restored.model_.parameters())


@pytest.mark.parametrize("kind", ["images", "features", "custom backbone", "hidden head layer"])
def test_save_and_load_with_weights_only(kind, tmp_path, blobs):
    if kind == "features":
        X, _ = blobs
        model = SCANClusterer(**fast_params(random_state=np.random.RandomState(0))).fit(X)
    else:
        X, _ = small_images()
        extra = {"custom backbone": {"backbone": nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())},
                 "hidden head layer": {"head_hidden_size": 8}}.get(kind, {})
        model = SCANClusterer(**image_params(**extra)).fit(X)
    path = tmp_path / "model.pt"
    model.save(path)
    # The file loads with torch's safe loader, which rejects pickled objects.
    assert torch.load(path, weights_only=True)["format"] == "sklearn-scan-model"
    if kind == "custom backbone":
        with pytest.raises(ValueError, match="pass the same backbone"):
            SCANClusterer.load(path)
        restored = SCANClusterer.load(path, backbone=nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    else:
        restored = SCANClusterer.load(path)
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    np.testing.assert_array_equal(restored.labels_, model.labels_)
    np.testing.assert_array_equal(restored.confidence_, model.confidence_)
    np.testing.assert_array_equal(restored.neighbors_, model.neighbors_)
    assert restored.history_ == model.history_
    assert restored.input_shape_ == model.input_shape_
    assert restored.get_params()["n_clusters"] == model.n_clusters


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a model saved with SCANClusterer.save"):
        SCANClusterer.load(path)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a model saved"):
        SCANClusterer.load(tmp_path / "text.pt")
    with pytest.raises(NotFittedError):
        SCANClusterer().save(tmp_path / "unfitted.pt")


def test_model_fitted_on_gpu_predicts_on_cpu_with_warning(blobs):
    X, _ = blobs
    model = SCANClusterer(**fast_params()).fit(X)
    expected = model.predict(X)
    restored = pickle.loads(pickle.dumps(model))
    restored.device_ = "cuda"
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the fallback is not exercised")
    with pytest.warns(RuntimeWarning, match="predicting on the CPU"):
        np.testing.assert_array_equal(restored.predict(X), expected)


@pytest.mark.numerics
def test_pipeline_grid_search_and_cross_validate(blobs):
    X, y = blobs
    # A fast learning rate lets heads without the entropy term collapse within 60 epochs.
    params = fast_params(scan_epochs=60, scan_params={"learning_rate": 1e-2})
    pipeline = make_pipeline(StandardScaler(), SCANClusterer(**params))
    assert clustering_accuracy_score(y, pipeline.fit(X).predict(X)) > 0.95
    grid = {"scanclusterer__entropy_weight": [0.0, 5.0]}
    with_labels = GridSearchCV(pipeline, grid, scoring=accuracy_scorer, cv=3).fit(X, y)
    assert with_labels.cv_results_["mean_test_score"][0] < 0.9
    # Without the entropy term the heads collapse; both scorers must see that.
    assert with_labels.best_params_ == {"scanclusterer__entropy_weight": 5.0}
    label_free = GridSearchCV(pipeline, grid, cv=3).fit(X)
    assert label_free.best_params_ == {"scanclusterer__entropy_weight": 5.0}
    assert label_free.cv_results_["mean_test_score"][1] > label_free.cv_results_["mean_test_score"][0] + 1
    scores = cross_validate(SCANClusterer(**fast_params()), X, y, scoring=SCORERS, cv=3)
    assert scores["test_accuracy"].mean() > 0.9
    assert clone(pipeline).get_params()["scanclusterer__n_clusters"] == 3


def test_verbose_shows_progress_and_silence_otherwise(capsys):
    images, _ = small_images()
    SCANClusterer(**image_params(verbose=0)).fit(images)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    SCANClusterer(**image_params(verbose=1)).fit(images)
    err = capsys.readouterr().err
    for stage in ("pretext", "scan", "selflabel"):
        assert stage in err
    assert "loss=" in err


class InterruptingBackbone(nn.Module):
    """Raises KeyboardInterrupt on its third forward pass in training mode."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.training_calls = 0

    def forward(self, x):
        if self.training:
            self.training_calls += 1
            if self.training_calls == 3:
                raise KeyboardInterrupt
        return self.layers(x)


def test_interrupted_fit_keeps_a_usable_model(tmp_path):
    images, _ = small_images()
    backbone = InterruptingBackbone()
    with pytest.warns(RuntimeWarning, match="interrupted during the pretext stage"):
        model = SCANClusterer(**image_params(backbone=backbone, pretext_epochs=5, memory=str(tmp_path))).fit(images)
    # A half-trained encoder is not cached.
    assert not list(tmp_path.rglob("output.pkl"))
    assert {"stage": "pretext", "epoch": None, "interrupted": True} in model.history_
    assert model.predict(images).shape == (60,)
    # The user's module was copied, not trained in place.
    assert backbone.training_calls == 0


def test_custom_backbone_callable_and_errors():
    images, _ = small_images()

    def make_backbone():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten())

    model = SCANClusterer(**image_params(backbone=make_backbone)).fit(images)
    assert model.transform(images).shape == (60, 4 * 6 * 6)
    with pytest.raises(ValueError, match="features of shape"):
        SCANClusterer(**image_params(backbone=nn.Conv2d(1, 4, 3))).fit(images)
    with pytest.raises(ValueError, match="failed on a batch"):
        SCANClusterer(**image_params(backbone=nn.Linear(5, 5))).fit(images)
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        SCANClusterer(**image_params(backbone=lambda: "resnet")).fit(images)
    with pytest.raises(ValueError, match="not a known backbone"):
        SCANClusterer(**image_params(backbone="vgg")).fit(images)


@pytest.mark.parametrize(
    "X, params, message",
    [
        (np.zeros((0, 4)), {}, "0 sample"),
        (np.zeros((1, 4)), {}, "1 sample"),
        (np.zeros((5, 2, 2, 2, 2)), {}, "got an array with 5 dimensions"),
        (np.zeros((10, 8, 8, 2)), {}, "1 or 3 channels"),
        (np.zeros((10, 3, 8, 8)), {}, "channels-first"),
        (np.full((10, 8, 8), 2.0), {}, r"Float images must hold values in \[0, 1\]"),
        (np.full((10, 8, 8), 300), {}, "0-255"),
        (np.zeros((10, 3, 3)), {}, "smaller than the 4x4"),
        (np.zeros((10, 2)), {"n_clusters": 1}, "n_clusters"),
        (np.zeros((10, 2)), {"n_clusters": 11}, "n_clusters=11 must be at most n_samples=10"),
        (np.zeros((10, 2)), {"n_neighbors": 10}, "n_neighbors=10 must be below n_samples=10"),
        (np.zeros((10, 2)), {"scan_params": {"lr": 1}}, "unknown keys"),
        (np.zeros((10, 8, 8)), {"augmentation_params": {"mirror": True}}, "unknown keys.*flip"),
        (np.zeros((10, 8, 8)), {"augmentation_params": {"gamma": 0.5}}, r"gamma'\] must be a finite number"),
        (np.zeros((10, 8, 8)), {"augmentation_params": {"gamma": float("inf")}}, r"gamma'\] must be a finite number"),
        (np.zeros((10, 2)), {"selflabel_params": {"ema_decay": 1.0}}, r"ema_decay'\] must be None or a number"),
        (np.zeros((10, 2)), {"selflabel_params": {"guard": "yes"}}, r"guard'\] must be True or False"),
        (np.zeros((10, 8, 8)), {"augmentation_params": {"strong_recipe": "fancy"}}, r"strong_recipe'\] must be one of"),
        (np.zeros((10, 2)), {"device": "cuda:7" if not torch.cuda.is_available() else "tpu"}, "device"),
    ],
)
def test_bad_input_gets_a_clear_value_error(X, params, message):
    with pytest.raises(ValueError, match=message):
        SCANClusterer(**fast_params(**{"n_clusters": 2, **params})).fit(X)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_and_inf_are_rejected(value):
    X = np.zeros((10, 2))
    X[3, 1] = value
    with pytest.raises(ValueError, match="NaN|infinity"):
        SCANClusterer(**fast_params(n_clusters=2)).fit(X)


def test_augmentation_params_change_the_views():
    images, _ = small_images()
    plain = SCANClusterer(**image_params()).fit(images)
    flipped = SCANClusterer(**image_params(augmentation_params={"flip": True, "rotation_degrees": 0.0})).fit(images)
    assert plain.history_[0]["loss"] != flipped.history_[0]["loss"]


def test_predict_checks_the_images_match_the_fit():
    images, _ = small_images()
    model = SCANClusterer(**image_params()).fit(images)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    with pytest.raises(ValueError, match="1 channel"):
        model.predict(rgb)
    with pytest.raises(ValueError, match="8x8 images, got 10x10"):
        model.predict(np.zeros((4, 10, 10)))
    with pytest.raises(ValueError, match="fitted on 8x8 images"):
        model.predict(np.zeros((4, 64)))
    features_model = SCANClusterer(**fast_params()).fit(np.random.default_rng(0).normal(size=(30, 4)))
    with pytest.raises(ValueError, match="2-D features"):
        features_model.predict(images)
    with pytest.raises(ValueError, match="at least 2 samples"):
        model.score(images[:1])


def test_frozen_backbone_is_never_trained_after_the_pretext():
    images, _ = small_images()
    without_selflabel = SCANClusterer(**image_params(selflabel_epochs=0, freeze_backbone=True)).fit(images)
    frozen = SCANClusterer(**image_params(selflabel_epochs=3, freeze_backbone=True)).fit(images)
    np.testing.assert_array_equal(frozen.transform(images), without_selflabel.transform(images))
    # Freezing lasts for the fit only: the fitted encoder's parameters require gradients, as a module's do.
    assert all(parameter.requires_grad for parameter in frozen.model_.parameters())
    fine_tuned = SCANClusterer(**image_params(selflabel_epochs=3, freeze_backbone=False)).fit(images)
    assert not np.allclose(fine_tuned.transform(images), without_selflabel.transform(images))


def test_auto_epochs_follow_the_number_of_samples():
    from sklearn_scan._config import PRETEXT_IMAGES, PRETEXT_MAX_EPOCHS, auto_epochs, auto_pretext_epochs

    assert auto_pretext_epochs(7, 10_000) == 7
    assert auto_pretext_epochs("auto", 60_000) == 10 and auto_pretext_epochs("auto", 10_000) == 60
    assert auto_pretext_epochs("auto", 2_000) == auto_pretext_epochs("auto", 1_797) == 100
    assert auto_pretext_epochs("auto", 1_000) == 180 and auto_pretext_epochs("auto", 20) == PRETEXT_MAX_EPOCHS
    assert auto_epochs("auto", 100, PRETEXT_IMAGES, (10, 200)) == 200
    images, _ = small_images()
    model = SCANClusterer(**image_params(pretext_epochs="auto", scan_epochs="auto", selflabel_epochs=0,
                                         freeze_backbone=True)).fit(images[:20])
    stages = [entry["stage"] for entry in model.history_]
    assert stages.count("pretext") == PRETEXT_MAX_EPOCHS and stages.count("scan") == 200
    # Heads alone on fixed features follow the same rule: 300,000 anchors are 100 epochs of 3,000 rows.
    features = np.random.default_rng(0).normal(size=(3000, 128)).astype(np.float32)
    heads = SCANClusterer(n_clusters=3, n_heads=2, batch_size=512, random_state=0).fit(features)
    assert heads.backbone_name_ == "normalized"
    assert [entry["stage"] for entry in heads.history_].count("scan") == 100


def test_memory_caches_the_pretext_for_later_stage_changes(tmp_path):
    images, _ = small_images()
    first = SCANClusterer(**image_params(memory=str(tmp_path))).fit(images)
    cached = SCANClusterer(**image_params(memory=str(tmp_path))).fit(images)
    uncached = SCANClusterer(**image_params()).fit(images)
    # Same result with or without the cache, and the pretext history is kept.
    np.testing.assert_array_equal(cached.labels_, uncached.labels_)
    assert cached.history_ == first.history_ == uncached.history_
    # Changing a later-stage parameter reuses the cached encoder: same embedding.
    other = SCANClusterer(**image_params(memory=str(tmp_path), entropy_weight=2.0)).fit(images)
    np.testing.assert_array_equal(other.transform(images), first.transform(images))
    entries = list(tmp_path.rglob("output.pkl"))
    assert len(entries) == 1


def test_memory_retrains_when_a_default_of_the_views_changes(tmp_path, monkeypatch):
    images, _ = small_images()
    SCANClusterer(**image_params(memory=str(tmp_path))).fit(images)
    original = _pipeline.policy_for_images

    def dimmer_by_default(*shape, **changes):
        return original(*shape, **{"brightness": 0.1, **changes})

    monkeypatch.setattr(_pipeline, "policy_for_images", dimmer_by_default)
    SCANClusterer(**image_params(memory=str(tmp_path))).fit(images)
    assert len(list(tmp_path.rglob("output.pkl"))) == 2


def test_load_a_file_saved_before_the_cnn_pooled_first(tmp_path):
    images, _ = small_images()
    model = SCANClusterer(**image_params()).fit(images)
    expected = model.predict_proba(images)
    path = tmp_path / "model.pt"
    model.save(path)
    state = torch.load(path, weights_only=True)
    # Format 1 numbered the CNN's layers with max-pooling after batch norm and ReLU: the same layers in that order.
    layers = list(model.model_.encoder.backbone)
    old_order = []
    for layer in layers:
        if old_order and isinstance(old_order[-1], nn.MaxPool2d) and isinstance(layer, (nn.BatchNorm2d, nn.ReLU)):
            old_order.insert(len(old_order) - 1, layer)
        else:
            old_order.append(layer)
    assert [type(layer) for layer in old_order] != [type(layer) for layer in layers]
    model.model_.encoder.backbone = nn.Sequential(*old_order)
    state["state_dict"], state["format_version"] = model.model_.state_dict(), 1
    torch.save(state, path)
    restored = SCANClusterer.load(path)
    np.testing.assert_allclose(restored.predict_proba(images), expected, rtol=1e-6)


def test_every_parameter_and_attribute_is_documented():
    docscrape = pytest.importorskip("numpydoc.docscrape")
    doc = docscrape.ClassDoc(SCANClusterer)
    documented = {name.strip() for entry in doc["Parameters"] for name in entry.name.split(",")}
    assert documented == set(SCANClusterer().get_params())
    attributes = {entry.name for entry in doc["Attributes"]}
    assert {"labels_", "confidence_", "neighbors_", "model_", "history_", "n_features_in_"} <= attributes


@pytest.mark.parametrize(
    "X, params, named",
    [
        (np.random.default_rng(0).random((40, 3)), {"pretext_epochs": 5, "augmentation_params": {"flip": True}},
         ["augmentation_params", "pretext_epochs"]),
        (np.random.default_rng(0).random((40, 8, 8)), {"image_size": 32, "n_jobs": 2}, ["image_size", "n_jobs"]),
        (np.random.default_rng(0).random((40, 3)),
         {"selflabel_epochs": 0, "selflabel_params": {"guard": False}, "confidence_threshold": 0.9},
         ["confidence_threshold", "selflabel_params"]),
    ],
)
def test_a_parameter_with_no_effect_on_the_route_gets_a_warning(X, params, named):
    with pytest.warns(UserWarning, match="no effect on this fit") as record:
        SCANClusterer(**fast_params(n_clusters=2, **params)).fit(X)
    message = str(next(w.message for w in record if "no effect on this fit" in str(w.message)))
    for name in named:
        assert name in message


def test_no_warning_for_parameters_the_route_uses():
    import warnings

    X = np.random.default_rng(0).random((40, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SCANClusterer(**fast_params(n_clusters=2, pretext="none", pretext_epochs=0, selflabel_epochs=1,
                                    confidence_threshold=0.5)).fit(X)


def test_strong_view_settings_the_paper_recipe_ignores_get_a_warning():
    images, _ = small_images(n=40)
    with pytest.warns(UserWarning, match="no effect on this fit") as record:
        SCANClusterer(**image_params(pretext_epochs=1, scan_epochs=1, selflabel_epochs=1,
                                     augmentation_params={"strong_ops": 2, "cutout_fraction": 0.2})).fit(images)
    message = str(next(w.message for w in record if "no effect on this fit" in str(w.message)))
    assert "augmentation_params['strong_ops']" in message and "augmentation_params['cutout_fraction']" in message
    import warnings

    with warnings.catch_warnings():  # the library's recipe uses them
        warnings.simplefilter("error", UserWarning)
        SCANClusterer(**image_params(pretext_epochs=1, scan_epochs=1, selflabel_epochs=1, augmentation_params={
            "strong_ops": 2, "cutout_fraction": 0.2, "strong_recipe": "library"})).fit(images)


class Projection(nn.Module):
    """A user's network for 2-D features, with dropout: (B, D) -> (B, 8)."""

    def __init__(self, n_features=2):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_features, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 8))

    def forward(self, features):
        return self.layers(features)


def test_a_frozen_custom_module_on_features_is_not_trained(blobs):
    X, _ = blobs
    module = Projection()
    before = copy.deepcopy(module.state_dict())
    model = SCANClusterer(**fast_params(backbone=module, freeze_backbone=True)).fit(X)
    for name, value in model.model_.encoder.backbone.state_dict().items():
        torch.testing.assert_close(value, before[name.removeprefix("module.")])
    trained = SCANClusterer(**fast_params(backbone=Projection(), freeze_backbone=False)).fit(X)
    assert any(not torch.equal(value, before[name]) for name, value in trained.model_.encoder.backbone.state_dict().items())


def test_random_state_covers_dropout_in_every_stage(blobs):
    """A backbone's dropout draws from torch's global generator: the seed covers it, whatever its state."""
    X, _ = blobs
    module, fits = Projection(), []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fits.append(SCANClusterer(**fast_params(backbone=module, freeze_backbone=False, random_state=3)).fit(X))
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))


def test_score_mines_neighbours_where_the_fit_mined_them():
    """For the MLP on 2-D features the fit mined the standardised features: score on the training set agrees."""
    from sklearn_scan._scan_loss import scan_loss_of_predictions

    X, _ = make_blobs(n_samples=90, n_features=16, centers=3, random_state=0)
    model = SCANClusterer(**fast_params(scan_epochs=5, selflabel_epochs=0)).fit(X)
    assert model.backbone_name_ == "mlp"
    logits = np.log(model.predict_proba(X))
    expected, _, _ = scan_loss_of_predictions(logits, model.neighbors_, 5.0)
    np.testing.assert_allclose(model.score(X), -float(expected), rtol=1e-4)


@pytest.mark.parametrize("method", ["exact", "pynndescent"])
def test_neighbor_method_reaches_the_mining(monkeypatch, blobs, method):
    import sklearn_scan._pipeline as pipeline

    methods = []
    original = pipeline.mine_neighbors

    def recording(*args, **kwargs):
        methods.append(kwargs["method"])
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "mine_neighbors", recording)
    X, _ = blobs
    SCANClusterer(**fast_params(neighbor_method=method, selflabel_epochs=0)).fit(X)
    assert methods == [method]


def test_stage_labels_hold_every_stage_that_ran(blobs):
    X, y = blobs
    model = SCANClusterer(**fast_params()).fit(X)
    assert set(model.stage_labels_) == {"kmeans", "scan", "selflabel"}
    np.testing.assert_array_equal(model.stage_labels_["selflabel"], model.labels_)
    for labels in model.stage_labels_.values():
        assert labels.shape == (len(X),) and clustering_accuracy_score(y, labels) > 0.9
    without = SCANClusterer(**fast_params(selflabel_epochs=0)).fit(X)
    assert set(without.stage_labels_) == {"kmeans", "scan"}
    np.testing.assert_array_equal(without.stage_labels_["scan"], without.labels_)
