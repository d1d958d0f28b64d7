"""Models. The paper does not state its initialization; ours is a parameter.

With PyTorch's default ``nn.Linear`` initialization the 5×500 ReLU MLP on Fashion-MNIST barely
leaves chance accuracy at lr 0.001, batch 8 within hundreds of steps, so ``init="he"``
(He-normal weights, zero biases) is the default; ``"lecun"`` is the JAX/Flax default and
``"torch"`` keeps PyTorch's own.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

__all__ = ["INITS", "mlp"]

INITS = ("he", "lecun", "torch")


def _init_linear(layer: nn.Linear, init: str, generator: torch.Generator) -> None:
    if init == "torch":
        return
    gain = 2.0 if init == "he" else 1.0
    std = math.sqrt(gain / layer.in_features)
    with torch.no_grad():
        layer.weight.normal_(0.0, std, generator=generator)
        layer.bias.zero_()


def mlp(
    in_dim: int,
    out_dim: int,
    depth: int,
    width: int,
    *,
    activation: str = "relu",
    init: str = "he",
    seed: int = 0,
) -> nn.Module:
    """``depth`` hidden layers of ``width`` units (the paper's "5 layers of 500" is 5, 500).

    Inputs are flattened, so images can be fed directly.
    """
    for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("depth", depth), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if init not in INITS:
        raise ValueError(f"init: unknown initialization {init!r}; choose one of {INITS}")
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    if activation not in acts:
        raise ValueError(f"activation: unknown activation {activation!r}; choose one of {tuple(acts)}")
    torch.manual_seed(seed)  # PyTorch's own init (init="torch") draws from the global generator
    layers: list[nn.Module] = [nn.Flatten()]
    dims = [in_dim] + [width] * depth
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), acts[activation]()]
    layers.append(nn.Linear(dims[-1], out_dim))
    net = nn.Sequential(*layers)
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            _init_linear(m, init, g)
    return net


def _widths(base: tuple[int, ...], width: float) -> list[int]:
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return [max(1, round(c * width)) for c in base]


def _torchvision_init(net: nn.Module) -> None:
    """torchvision's ResNet/VGG initialization (He-normal fan-out convolutions, unit BN)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def cifar_resnet(
    depth: int = 18, num_classes: int = 10, *, width: float = 1.0, in_channels: int = 3, seed: int = 0
) -> nn.Module:
    """torchvision's ResNet-18/50 for 32×32 images: 3×3 stride-1 stem, no max-pool.

    ``width`` multiplies every stage's channels (64, 128, 256, 512 at width 1), so the
    ``book`` profile can run a narrow network of the same architecture on a CPU.
    """
    from torchvision.models import resnet

    blocks = {18: (resnet.BasicBlock, [2, 2, 2, 2]), 50: (resnet.Bottleneck, [3, 4, 6, 3])}
    if depth not in blocks:
        raise ValueError(f"depth must be 18 or 50 for cifar_resnet, got {depth!r}")
    block, layers = blocks[depth]
    c = _widths((64, 128, 256, 512), width)
    torch.manual_seed(seed)
    net = resnet.ResNet(block, layers, num_classes=num_classes)
    net.inplanes = c[0]  # _make_layer reads the running channel count from here
    net.conv1 = nn.Conv2d(in_channels, c[0], 3, 1, 1, bias=False)
    net.bn1 = nn.BatchNorm2d(c[0])
    net.maxpool = nn.Identity()
    net.layer1 = net._make_layer(block, c[0], layers[0])
    net.layer2 = net._make_layer(block, c[1], layers[1], stride=2)
    net.layer3 = net._make_layer(block, c[2], layers[2], stride=2)
    net.layer4 = net._make_layer(block, c[3], layers[3], stride=2)
    net.fc = nn.Linear(c[3] * block.expansion, num_classes)
    _torchvision_init(net)
    return net


def cifar_vgg19(
    num_classes: int = 10, *, width: float = 1.0, in_channels: int = 3, batch_norm: bool = True, seed: int = 0
) -> nn.Module:
    """torchvision's VGG-19 feature stack (configuration "E") with a linear head for 32×32 inputs.

    Five max-pools bring 32×32 to 1×1, so the 4096-wide ImageNet classifier is replaced by
    one linear layer, as CIFAR implementations of VGG do. BatchNorm by default (say so).
    """
    from torchvision.models import vgg

    cfg = [v if v == "M" else max(1, round(v * width)) for v in vgg.cfgs["E"]]
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    torch.manual_seed(seed)
    features = vgg.make_layers(cfg, batch_norm=batch_norm)
    if in_channels != 3:
        features[0] = nn.Conv2d(in_channels, cfg[0], 3, padding=1)
    net = nn.Sequential(features, nn.Flatten(), nn.Linear(cfg[-2], num_classes))
    _torchvision_init(net)
    return net


NAMES = ("mlp", "resnet18", "resnet50", "vgg19")


def get(
    name: str,
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    width: float = 1.0,
    depth: int = 5,
    hidden: int = 500,
    init: str = "he",
    seed: int = 0,
) -> nn.Module:
    """A model by name for inputs of shape ``in_shape`` (C, H, W) or (D,).

    ``mlp`` uses ``depth`` hidden layers of ``round(hidden * width)`` units; the CNNs scale
    their channels by ``width``.
    """
    if name == "mlp":
        size = 1
        for s in in_shape:
            size *= s
        return mlp(size, num_classes, depth, max(1, round(hidden * width)), init=init, seed=seed)
    if name in ("resnet18", "resnet50"):
        return cifar_resnet(int(name[6:]), num_classes, width=width, in_channels=in_shape[0], seed=seed)
    if name == "vgg19":
        return cifar_vgg19(num_classes, width=width, in_channels=in_shape[0], seed=seed)
    raise ValueError(f"model: unknown model {name!r}; choose one of {NAMES}")
