import pytest
import torch
from torch import nn

from sklearn_scan._backbones import (
    ClusteringHeads,
    build_backbone,
    convnet,
    resnet18,
    resolve_backbone_name,
)


@pytest.mark.parametrize("side", [4, 8, 28, 32, 64])
def test_convnet_output_shape(side):
    network, out_features = convnet(3, side)
    assert network(torch.rand(2, 3, side, side)).shape == (2, out_features)


@pytest.mark.parametrize("side, channels", [(32, 3), (8, 1), (64, 3)])
def test_resnet18_output_shape(side, channels):
    network, out_features = resnet18(channels, side)
    network.eval()
    assert network(torch.rand(2, channels, side, side)).shape == (2, 512) and out_features == 512


def test_auto_backbone_depends_on_input_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backbone_name("auto", (2,), cpu) == "mlp"
    assert resolve_backbone_name("auto", (127,), cpu) == "mlp"
    assert resolve_backbone_name("auto", (128,), cpu) == "normalized"
    assert resolve_backbone_name("auto", (3, 32, 32), cpu) == "convnet"
    assert resolve_backbone_name("auto", (3, 32, 32), cuda) == "resnet18"
    assert resolve_backbone_name("auto", (1, 8, 8), cuda) == "convnet"


def test_user_module_is_copied_and_sized():
    module = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    built, out_features, name = build_backbone(module, (1, 8, 8), torch.device("cpu"))
    assert built is not module and out_features == 3 and name == "custom"
    assert module.training  # probing the module left its mode as it was


def test_build_backbone_errors():
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="takes 2-D features"):
        build_backbone("mlp", (1, 8, 8), cpu)
    with pytest.raises(ValueError, match="takes images"):
        build_backbone("resnet18", (10,), cpu)
    with pytest.raises(ValueError, match="smaller than the 8x8"):
        build_backbone("resnet18", (1, 6, 6), cpu)
    with pytest.raises(ValueError, match="got int"):
        build_backbone(3, (1, 8, 8), cpu)


@pytest.mark.parametrize("hidden_size", [0, 6])
def test_heads_and_selected_outputs(hidden_size):
    heads = ClusteringHeads(5, n_clusters=3, n_heads=4, hidden_size=hidden_size).eval()
    features = torch.rand(7, 5)
    logits = heads(features)
    assert logits.shape == (7, 4, 3)
    identity = torch.arange(3)
    torch.testing.assert_close(heads.mean_head([2], [identity])(features), logits[:, 2])
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(heads.mean_head([1], [identity]).reorder(order)(features), logits[:, 1][:, order])
    # A selected head is a copy: training it leaves the heads as they were.
    head = heads.mean_head([0], [identity])
    with torch.no_grad():
        head.linear.weight.add_(1.0)
    torch.testing.assert_close(heads(features), logits)
    # The mean head's logits are the mean of the heads' logits, each in its matched cluster order.
    orders = [torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])]
    mean = heads.mean_head([3, 1, 0], orders)
    expected = (logits[:, 3][:, orders[0]] + logits[:, 1][:, orders[1]] + logits[:, 0][:, orders[2]]) / 3
    torch.testing.assert_close(mean(features), expected)
