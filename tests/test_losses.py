import math

import pytest
import torch

from sklearn_scan._ntxent import NTXentLoss
from sklearn_scan._scan_loss import SCANLoss


def slow_ntxent(view_a, view_b, temperature):
    """NT-Xent written out pair by pair, as in the SimCLR paper."""
    z = torch.cat([view_a, view_b]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = len(z)
    batch = n // 2
    total = 0.0
    for i in range(n):
        partner = (i + batch) % n
        numerator = math.exp(float(z[i] @ z[partner]) / temperature)
        denominator = sum(math.exp(float(z[i] @ z[k]) / temperature) for k in range(n) if k != i)
        total += -math.log(numerator / denominator)
    return total / n


def slow_scan(anchor_logits, neighbor_logits, entropy_weight):
    """SCAN loss for one head, sample by sample."""
    anchors = torch.softmax(anchor_logits.double(), dim=1)
    neighbors = torch.softmax(neighbor_logits.double(), dim=1)
    n, c = anchors.shape
    consistency = sum(-math.log(float(anchors[i] @ neighbors[i])) for i in range(n)) / n
    mean = [float(anchors[:, j].sum()) / n for j in range(c)]
    entropy = -sum(p * math.log(p) for p in mean if p > 0)
    return consistency - entropy_weight * entropy, consistency, entropy


@pytest.mark.parametrize("batch, dim", [(2, 3), (5, 8), (16, 4)])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5, 1.0])
def test_ntxent_matches_slow_reference(batch, dim, temperature):
    generator = torch.Generator().manual_seed(batch * 100 + dim)
    view_a = torch.randn(batch, dim, generator=generator)
    view_b = torch.randn(batch, dim, generator=generator)
    loss = NTXentLoss(temperature)(view_a, view_b)
    assert loss.item() == pytest.approx(slow_ntxent(view_a, view_b, temperature), rel=1e-4)


def test_ntxent_is_low_for_identical_views_and_rejects_bad_input():
    generator = torch.Generator().manual_seed(0)
    view = torch.randn(8, 16, generator=generator)
    loss_fn = NTXentLoss(0.1)
    assert loss_fn(view, view) < loss_fn(view, torch.randn(8, 16, generator=generator))
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(view, view[:4])
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)


@pytest.mark.parametrize("batch, n_clusters", [(3, 2), (7, 5), (20, 10)])
@pytest.mark.parametrize("entropy_weight", [0.0, 1.0, 5.0])
def test_scan_loss_matches_slow_reference(batch, n_clusters, entropy_weight):
    generator = torch.Generator().manual_seed(batch + n_clusters)
    anchors = torch.randn(batch, n_clusters, generator=generator) * 3
    neighbors = torch.randn(batch, n_clusters, generator=generator) * 3
    total, consistency, entropy = SCANLoss(entropy_weight)(anchors, neighbors)
    expected = slow_scan(anchors, neighbors, entropy_weight)
    assert total.item() == pytest.approx(expected[0], rel=1e-4, abs=1e-5)
    assert consistency.item() == pytest.approx(expected[1], rel=1e-4, abs=1e-5)
    assert entropy.item() == pytest.approx(expected[2], rel=1e-4, abs=1e-5)


def test_scan_loss_keeps_one_value_per_head():
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(6, 3, 4, generator=generator)
    neighbors = torch.randn(6, 3, 4, generator=generator)
    total, consistency, entropy = SCANLoss(2.0)(anchors, neighbors)
    assert total.shape == consistency.shape == entropy.shape == (3,)
    for head in range(3):
        expected = slow_scan(anchors[:, head], neighbors[:, head], 2.0)
        assert total[head].item() == pytest.approx(expected[0], rel=1e-4, abs=1e-5)


def test_scan_loss_prefers_confident_agreement_and_balance():
    loss_fn = SCANLoss(5.0)
    # Two samples, confidently in different clusters, each agreeing with its neighbour.
    good = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    # Both samples collapsed into one cluster.
    collapsed = torch.tensor([[10.0, -10.0], [10.0, -10.0]])
    # Neighbours disagree.
    disagreeing = torch.tensor([[-10.0, 10.0], [10.0, -10.0]])
    assert loss_fn(good, good)[0] < loss_fn(collapsed, collapsed)[0]
    assert loss_fn(good, good)[0] < loss_fn(good, disagreeing)[0]
    # Extreme logits stay finite.
    huge = torch.tensor([[1e4, -1e4], [-1e4, 1e4]])
    assert torch.isfinite(loss_fn(huge, huge.flip(0))[0])
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(good, good[:1])


def test_ntxent_default_temperature_is_the_pretext_stage_one():
    import inspect

    from sklearn_scan._pretext import train_pretext

    pretext_default = inspect.signature(train_pretext).parameters["temperature"].default
    assert NTXentLoss().temperature == pretext_default == 0.5
