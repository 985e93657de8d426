"""Each stage's central function on small data, without the estimator."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from sklearn_scan._augment import policy_for_images, strong_views
from sklearn_scan._backbones import ClusteringHeads, ClusterModel, Encoder, Standardize, convnet, mlp
from sklearn_scan._neighbors import mine_neighbors
from sklearn_scan._pretext import train_pretext
from sklearn_scan._scan import choose_heads, scan_loss_of_predictions, train_scan
from sklearn_scan._scan_loss import SCANLoss
from sklearn_scan._selflabel import balanced_cross_entropy, train_selflabel
from sklearn_scan._batching import predict_in_batches
from sklearn_scan._random import make_generator
from sklearn_scan._trainer import Training
from sklearn_scan.metrics import clustering_accuracy_score

pytestmark = pytest.mark.numerics  # every test here depends on floating-point numerics

CPU = torch.device("cpu")


def training(batch_size, seed=0, history=None):
    """How a stage trains in these tests: on the CPU, one generator, entries appended to ``history``."""
    return Training(batch_size, CPU, make_generator(seed), history=[] if history is None else history)


def test_pretext_loss_goes_down(digits):
    images, _ = digits
    inputs = torch.from_numpy(images[:256, None].astype(np.float32))
    torch.manual_seed(0)
    network, out_features = convnet(1, 8, width=8)
    encoder = Encoder(Standardize([0.3], [0.4]), network, out_features)
    history = []
    encoder, interrupted = train_pretext(
        encoder, inputs, policy=policy_for_images(1, 8, 8), epochs=6, training=training(128, 0, history))
    losses = [entry["loss"] for entry in history]
    assert not interrupted and len(losses) == 6 and losses[-1] < losses[0]
    assert not encoder.training


def blobs_problem(seed=0):
    X, y = make_blobs(n_samples=300, centers=4, cluster_std=0.6, random_state=seed)
    return torch.from_numpy(X.astype(np.float32)), y


def test_train_scan_finds_the_clusters_and_lowest_loss_head_is_good():
    X, y = blobs_problem()
    neighbors = mine_neighbors(X, 10, metric="euclidean")
    torch.manual_seed(0)
    network, out_features = mlp(2, hidden=32)
    model = ClusterModel(Encoder(Standardize(X.mean(0), X.std(0)), network, out_features), ClusteringHeads(32, 4, 3))
    history = []
    model, _ = train_scan(
        model, X, neighbors, entropy_weight=5.0, epochs=40, images=False, learning_rate=1e-2, training=training(64, 0, history))
    logits = predict_in_batches(model, X, CPU, 128, images=False)
    total, consistency, entropy = scan_loss_of_predictions(logits, neighbors, 5.0)
    best = int(np.argmin(total))
    assert clustering_accuracy_score(y, logits[:, best].argmax(1)) > 0.95
    assert history[-1]["best_head_loss"] < history[0]["best_head_loss"]
    assert total.shape == (3,) and np.all(entropy <= np.log(4) + 1e-6)


def test_scan_loss_of_predictions_averages_all_neighbours():
    logits = torch.randn(12, 2, 3, generator=torch.Generator().manual_seed(0))
    neighbors = np.stack([np.roll(np.arange(12), 1), np.roll(np.arange(12), 2)], axis=1)
    total, consistency, _ = scan_loss_of_predictions(logits.numpy(), neighbors, 5.0)
    loss = SCANLoss(5.0)
    expected = (loss(logits, logits[neighbors[:, 0]])[0] + loss(logits, logits[neighbors[:, 1]])[0]) / 2
    np.testing.assert_allclose(total, expected.numpy(), rtol=1e-5)


def test_balanced_cross_entropy_weighs_clusters_equally():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    per_sample = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (per_sample[:4].mean() + per_sample[4:].mean()) / 2
    torch.testing.assert_close(balanced_cross_entropy(logits, labels, 3), expected)


def test_selflabel_keeps_confident_labels_and_sharpens(digits):
    X, y = blobs_problem(1)
    torch.manual_seed(0)
    network, out_features = mlp(2, hidden=16)
    encoder = Encoder(Standardize(X.mean(0), X.std(0)), network, out_features)
    model = ClusterModel(encoder, torch.nn.Linear(16, 4))
    # Pretend a clustering stage learned the right labels, though not confidently.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X) / 20 * 3, torch.as_tensor(y)).backward()
        optimizer.step()
    history = []
    model, _ = train_selflabel(
        model, X, n_clusters=4, confidence_threshold=0.9, epochs=10, images=False, learning_rate=1e-3, training=training(64, 0, history))
    shares = [entry["confident_share"] for entry in history]
    assert shares[-1] >= shares[0] > 0
    assert clustering_accuracy_score(y, predict_in_batches(model, X, CPU, 128, False).argmax(1)) > 0.95


def test_selflabel_with_augmentations_runs_on_images(digits):
    images, _ = digits
    inputs = torch.from_numpy(images[:128, None].astype(np.float32))
    torch.manual_seed(0)
    network, out_features = convnet(1, 8, width=8)
    model = ClusterModel(Encoder(Standardize([0.3], [0.4]), network, out_features), torch.nn.Linear(out_features, 3))
    policy = policy_for_images(1, 8, 8)
    history = []
    train_selflabel(
        model, inputs, n_clusters=3, confidence_threshold=0.34, epochs=2, strong_augment=lambda b, g: strong_views(b, policy, g), training=training(64, 0, history))
    assert len(history) == 2 and history[0]["confident_share"] > 0


def two_groups(n=256):
    """1-D features: half at -5, half at +5 (labels 0 and 1)."""
    X = torch.cat([torch.full((n // 2, 1), -5.0), torch.full((n // 2, 1), 5.0)]) + 0.1 * torch.randn(n, 1)
    return X, np.repeat([0, 1], n // 2)


def skewed_model(X):
    """Batch norm, then logits [-6x - 3, 0]: the +5 group is confident (p > 0.999), the -5 group is not (p < 0.96).

    Batch norm starts with the running statistics of the clean data.
    """
    norm, head = torch.nn.BatchNorm1d(1), torch.nn.Linear(1, 2)
    with torch.no_grad():
        norm.running_mean.copy_(X.mean(0))
        norm.running_var.copy_(X.var(0))
        head.weight.copy_(torch.tensor([[-6.0], [0.0]]))
        head.bias.copy_(torch.tensor([-3.0, 0.0]))
    return torch.nn.Sequential(norm, head)


def test_selflabel_confidence_comes_from_the_images_as_they_are():
    X, _ = two_groups()
    history = []
    # Views that carry nothing: were confidence judged on them, no sample would ever be confident.
    train_selflabel(skewed_model(X), X, n_clusters=2, confidence_threshold=0.99, epochs=1, strong_augment=lambda batch, g: torch.zeros_like(batch),
                    images=False, learning_rate=1e-6, training=training(64, 0, history))
    assert 0.45 < history[0]["confident_share"] <= 0.5  # the +5 group, judged on the inputs as they are


def test_selflabel_keeps_batch_norm_statistics_of_the_clean_data():
    X, _ = two_groups()
    model = skewed_model(X)
    confident = torch.softmax(model.eval()(X), dim=1).max(dim=1).values > 0.99
    # The setting is skewed: the confident samples alone have a mean far from the data's.
    assert abs(X[confident].mean() - X.mean()) > 4
    train_selflabel(model, X, n_clusters=2, confidence_threshold=0.99, epochs=1, images=False, learning_rate=1e-6, training=training(32, 0))
    norm = model[0]
    # The whole batch goes through batch norm, so its running statistics stay those of the clean data.
    assert abs(norm.running_mean.item() - X.mean().item()) < 0.5
    assert abs(norm.running_var.item() / X.var().item() - 1) < 0.1


def test_selflabel_with_ema_decay_returns_the_moving_average_of_the_weights():
    X, _ = two_groups()
    start = skewed_model(X)
    plain, averaged = copy.deepcopy(start), copy.deepcopy(start)
    common = dict(n_clusters=2, confidence_threshold=0.99, epochs=2, images=False, learning_rate=0.05)
    train_selflabel(plain, X, training=training(32), **common)
    train_selflabel(averaged, X, training=training(32), ema_decay=0.9, **common)

    def moved(model):
        return float((model[1].weight - start[1].weight).abs().sum())

    # The average trails the weights it averages: it moved, but less than the weights trained alone.
    assert 0 < moved(averaged) < moved(plain)


def test_selflabel_rolls_back_when_the_confident_share_collapses():
    X, _ = two_groups()
    model = torch.nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.2], [0.0]]))  # both groups confident (p > 0.997)
        model.bias.zero_()
    history = []
    # Views of pure noise carry no label: learning them flattens the predictions, and confidence collapses.
    train_selflabel(model, X, n_clusters=2, confidence_threshold=0.99, epochs=20, strong_augment=lambda batch, g: 5 * torch.randn(batch.shape, generator=g),
                    images=False, learning_rate=0.5, training=training(32, 0, history))
    assert history[-1]["stopped"] and history[-1]["confident_share"] < 0.5 and len(history) < 20
    # The weights of the last good epoch (here those it started with) came back.
    torch.testing.assert_close(model.weight, torch.tensor([[-1.2], [0.0]]))


def test_selflabel_guard_keeps_the_starting_weights_when_no_epoch_improves_the_criterion():
    X, _ = two_groups()
    model = skewed_model(X)
    start = copy.deepcopy(model.state_dict())
    history = []
    calls = []

    def criterion(module):  # worse after every epoch
        calls.append(1)
        return float(len(calls))

    train_selflabel(model, X, n_clusters=2, confidence_threshold=0.99, epochs=3, images=False, learning_rate=0.05, criterion=criterion, training=training(32, 0, history))
    assert len(calls) == 4  # before training and after each epoch
    assert history[-1] == {"stage": "selflabel_guard", "kept_epoch": 0, "start_criterion": 1.0, "kept_criterion": 1.0}
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, start[name])


def test_selflabel_guard_keeps_the_epoch_with_the_lowest_criterion():
    X, _ = two_groups()
    model = skewed_model(X)
    weights = []

    def criterion(module):  # lowest after the second epoch
        weights.append(module[1].weight.detach().clone())
        return [3.0, 2.0, 1.0, 2.5][len(weights) - 1]

    history = []
    train_selflabel(model, X, n_clusters=2, confidence_threshold=0.99, epochs=3, images=False, learning_rate=0.05, criterion=criterion, training=training(32, 0, history))
    assert history[-1]["kept_epoch"] == 2 and [entry.get("criterion") for entry in history[:3]] == [2.0, 1.0, 2.5]
    assert not torch.equal(weights[2], weights[3])  # the last epoch moved the weights...
    torch.testing.assert_close(model[1].weight, weights[2])  # ...and the second epoch's came back


def test_mixed_precision_setting_decides_bfloat16():
    from sklearn_scan._precision import autocast, mixed_precision, uses_bfloat16

    cpu = torch.device("cpu")
    with mixed_precision(False):
        assert not uses_bfloat16(cpu) and not uses_bfloat16(torch.device("cuda"))
    with mixed_precision(True):
        assert uses_bfloat16(cpu)
        with autocast(cpu):
            assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16
    assert not uses_bfloat16(torch.device("mps"))


@pytest.mark.parametrize("value, native", [("0", False), ("off", False)])
def test_environment_variable_switches_off_native_bfloat16(monkeypatch, value, native):
    from sklearn_scan import _precision

    monkeypatch.setenv(_precision.BFLOAT16_ENVIRONMENT_VARIABLE, value)
    _precision.cpu_has_native_bfloat16.cache_clear()
    try:
        assert _precision.cpu_has_native_bfloat16() is native
        with _precision.mixed_precision("auto"):
            assert not _precision.uses_bfloat16(torch.device("cpu"))
    finally:
        monkeypatch.undo()
        _precision.cpu_has_native_bfloat16.cache_clear()


def test_cpu_held_to_avx2_has_no_native_bfloat16(monkeypatch):
    from sklearn_scan import _precision

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    _precision.cpu_has_native_bfloat16.cache_clear()
    try:
        assert not _precision.cpu_has_native_bfloat16()
    finally:
        monkeypatch.undo()
        _precision.cpu_has_native_bfloat16.cache_clear()


def test_reusing_freed_memory_changes_no_result_and_nests():
    from sklearn_scan import _memory

    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = predict_in_batches(network, images, CPU, 16, True)
    with _memory.reuse_freed_memory():
        with _memory.reuse_freed_memory():
            inner = predict_in_batches(network, images, CPU, 16, True)
        assert _memory._HEAP_USERS == (1 if _memory._glibc() else 0)
    assert _memory._HEAP_USERS == 0
    np.testing.assert_array_equal(plain, inner)


def test_a_module_caps_its_inference_batch_on_the_cpu():
    class Capped(torch.nn.Module):
        cpu_batch_size = 4

        def __init__(self):
            super().__init__()
            self.linear, self.batches = torch.nn.Linear(3, 2), []

        def forward(self, x):
            self.batches.append(len(x))
            return self.linear(x)

    module = Capped()
    outputs = predict_in_batches(torch.nn.Sequential(module), torch.ones(10, 3), CPU, 128, False)
    assert outputs.shape == (10, 2) and module.batches == [4, 4, 2]


def test_fits_in_float32_and_bfloat16_agree():
    from sklearn_scan import SCANClusterer

    from .test_estimator import image_params, small_images

    images, y = small_images()
    # 20 pretext epochs settle batch norm's running statistics (after 2, float32 reached 0.917 here).
    exact = SCANClusterer(**image_params(mixed_precision=False, pretext_epochs=20, scan_epochs=100)).fit(images)
    fast = SCANClusterer(**image_params(mixed_precision=True, pretext_epochs=20, scan_epochs=100)).fit(images)
    assert clustering_accuracy_score(y, exact.labels_) == clustering_accuracy_score(y, fast.labels_) == 1.0
    assert exact.history_ != fast.history_


def test_choose_heads_ranks_by_loss_and_matches_clusters():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 20)
    neighbors = np.stack([rng.permutation(np.flatnonzero(truth == label))[:5] for label in truth])
    confident = np.eye(3)[truth] * 8.0  # (60, 3) logits of a clean head
    # Head 0 is noisy; heads 1 and 2 are the clean one with their clusters renumbered.
    logits = np.stack([rng.normal(size=(60, 3)), confident[:, [2, 0, 1]], confident[:, [1, 2, 0]]], axis=1)
    losses, kept, orders = choose_heads(logits, neighbors, entropy_weight=5.0, n_averaged=2)
    assert losses.shape == (3,) and set(kept) == {1, 2} and losses[0] > losses[1:].max()
    # After matching, both kept heads name every cluster as the lowest-loss head does.
    reference = logits[:, kept[0]].argmax(axis=1)
    for head, order in zip(kept, orders):
        np.testing.assert_array_equal(logits[:, head][:, order].argmax(axis=1), reference)


def test_batch_norm_recalibration_takes_the_inputs_statistics_and_draws_nothing():
    from sklearn_scan._batch_norm import recalibrate_batch_norm

    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(4))
    inputs = torch.randn(256, 3, generator=torch.Generator().manual_seed(0)) * 3 + 1
    state = torch.get_rng_state()
    recalibrate_batch_norm(network, inputs, CPU, 64, images=False)
    assert torch.equal(torch.get_rng_state(), state)  # dropout stayed off
    with torch.no_grad():
        features = network[0](inputs)
    torch.testing.assert_close(network[2].running_mean, features.mean(0), rtol=0.02, atol=0.02)  # bfloat16 here
    assert not network.training and network[2].momentum == 0.1
