"""The networks: PreAct ResNet-18 as in the mixup paper's code, with dropout between the two
convolutions of each block, a width multiplier, and input normalisation inside the model (inputs
in [0, 1]); FastNet, a small VGG-like network shaped after airbench94 for the fast profile;
torchvision's ResNet-18 adapted to 32x32 inputs; and models from a user's factory
(`--model package.module:factory`), wrapped in input normalisation when asked."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import UsageError
from .plugins import DEFAULT_MODEL, load_object


class Dropout(nn.Module):
    """Inverted dropout: each unit kept with probability 1 - p, scaled by 1 / (1 - p).

    On CPU the mask is drawn by torch.rand, faster there than nn.Dropout's bernoulli_
    (reports/benchmarks/cpu.md), and CPU runs stay bit-identical to earlier versions; on CUDA it
    is F.dropout, one fused kernel, with the same law (tests/test_models.py and, on a GPU,
    tests/test_cuda.py check the law). Either way the mask comes from torch's seeded generator,
    so a resumed epoch replays it.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.is_cuda:
            return F.dropout(x, self.p, training=True)
        mask = (torch.rand(x.shape, device=x.device) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # The paper puts dropout after the ReLU that sits between the two convolutions.
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(
        self,
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 10,
        width: int = 64,
        in_channels: int = 3,
        dropout: float = 0.0,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
    ) -> None:
        super().__init__()
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError("mean and std need one value per input channel")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        layers = []
        in_planes = width
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(PreActBlock(in_planes, planes, stride, dropout))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalising inside the model lets attacks work directly on [0, 1] images.
        out = self.conv1((x - self.mean) / self.std)
        out = self.layers(out)
        # Adaptive pooling equals the reference avg_pool2d(4) on 32x32 inputs and also fits 28x28.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def preact_resnet18(
    num_classes: int = 10,
    width: int = 64,
    in_channels: int = 3,
    dropout: float = 0.0,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.25, 0.25, 0.25),
) -> PreActResNet:
    return PreActResNet((2, 2, 2, 2), num_classes, width, in_channels, dropout, mean, std)


class FastBlock(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> dropout -> conv3x3 -> BN -> GELU (airbench94's
    conv group, with dropout where PreAct ResNet-18 has it: between the two convolutions)."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.dropout = Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(self.dropout(x))))


class FastNet(nn.Module):
    """A whitening stem (2x2 convolution, no padding), three FastBlocks of widths
    (width, 4 width, 4 width), global max-pooling and a bias-free linear head whose logits are
    scaled by 1/9, as in airbench94 (Jordan 2024) at width 64. Inputs in [0, 1], normalised inside.

    The stem is set once from the training images' 2x2 patches (`whiten`: the eigenvectors of
    their covariance, scaled to unit variance, each with its negation) and frozen, which is what
    lets the network train in a few epochs; its bias trains. tests/test_models.py checks the shape
    and that whitened patches have identity covariance.
    """

    def __init__(self, num_classes: int = 10, width: int = 64, in_channels: int = 3,
                 dropout: float = 0.0, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.25, 0.25, 0.25)) -> None:
        super().__init__()
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError("mean and std need one value per input channel")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        stem = 2 * in_channels * 4  # every eigenvector of a 2x2 patch and its negation
        self.stem = nn.Conv2d(in_channels, stem, 2, padding=0, bias=True)
        self.stem.weight.requires_grad_(False)
        widths = (width, 4 * width, 4 * width)
        self.blocks = nn.Sequential(FastBlock(stem, widths[0], dropout),
                                    FastBlock(widths[0], widths[1], dropout),
                                    FastBlock(widths[1], widths[2], dropout))
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = 1 / 9

    @torch.no_grad()
    def whiten(self, x_uint8, eps: float = 5e-4) -> None:
        """Set the stem from images (uint8 N x H x W x C): its filters whiten their 2x2 patches
        (after the model's own normalisation)."""
        x = torch.as_tensor(x_uint8).permute(0, 3, 1, 2).float().div(255.0)
        x = (x - self.mean.cpu()) / self.std.cpu()
        c = x.shape[1]
        patches = F.unfold(x, 2).transpose(1, 2).reshape(-1, c * 4).double()
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov)
        filters = (evecs.T / torch.sqrt(evals + eps)[:, None]).float().view(-1, c, 2, 2)
        self.stem.weight.copy_(torch.cat([filters, -filters]).to(self.stem.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.gelu(self.stem((x - self.mean) / self.std))
        out = self.blocks(out)
        out = F.adaptive_max_pool2d(out, 1).flatten(1)
        return self.head(out) * self.scale


def fastnet(num_classes: int = 10, width: int = 64, in_channels: int = 3, dropout: float = 0.0,
            mean: Sequence[float] = (0.5, 0.5, 0.5),
            std: Sequence[float] = (0.25, 0.25, 0.25)) -> FastNet:
    return FastNet(num_classes, width, in_channels, dropout, mean, std)


class CifarResNet18(ResNet):
    """torchvision's ResNet-18 (post-activation BasicBlocks) for 32x32 inputs: a 3x3 stride-1
    stem without max-pooling, as is usual for CIFAR, and a width multiplier. At width 64 its
    layers are torchvision's; a narrower width scales every layer as PreAct ResNet-18's does,
    so the two architectures can be compared at the quick profile's width."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64) -> None:
        self._width = width  # read by _make_layer, which ResNet.__init__ calls
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.Identity()
        self.fc = nn.Linear(8 * width, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
        if planes == 64:  # the first stage starts from the stem's width
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks, stride, dilate)


class Normalized(nn.Module):
    """(x - mean) / std per channel in front of a network that takes images in [0, 1]; the
    statistics are buffers, stored with the weights."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


# The canonical CIFAR-10 training-set statistics, fixed so models do not depend on the copy used.
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def make_model(cfg, num_classes: int, channels: int, mean: Sequence[float],
               std: Sequence[float]) -> nn.Module:
    """The network of a config (model, normalize, width, dropout) for images of `channels`
    channels standardised by (mean, std). A factory's failure is a UsageError naming it."""
    model = getattr(cfg, "model", DEFAULT_MODEL)
    normalize = getattr(cfg, "normalize", True)
    if model == DEFAULT_MODEL:
        if not normalize:
            mean, std = [0.0] * channels, [1.0] * channels
        return preact_resnet18(num_classes, cfg.width, channels, cfg.dropout, mean, std)
    if model == "fastnet":
        if not normalize:
            mean, std = [0.0] * channels, [1.0] * channels
        return fastnet(num_classes, cfg.width, channels, cfg.dropout, mean, std)
    if model == "resnet18":
        net: nn.Module = CifarResNet18(num_classes, channels, cfg.width)
    else:
        net = call_factory(model, num_classes, channels)
    return Normalized(net, mean, std) if normalize else net


def call_factory(path: str, num_classes: int, channels: int) -> nn.Module:
    """The network a `package.module:function` factory builds for (num_classes, channels); its
    failure, or a result that is not an nn.Module, is a UsageError naming it (the training CLI's
    --model and the evaluate CLI's --factory both call it)."""
    factory = load_object(path, "model factory")
    try:
        net = factory(num_classes, channels)
    except Exception as e:  # the user's code: one line naming it, never a traceback
        first = (str(e).strip().splitlines() or [""])[0]
        raise UsageError(f"model factory {path} failed: {type(e).__name__}: {first}") from None
    if not isinstance(net, nn.Module):
        raise UsageError(f"model factory {path} returned {type(net).__name__}, not a "
                         "torch.nn.Module")
    return net


# FastNet's stem is whitened on this many training images (more changes the filters little).
WHITEN_IMAGES = 5000


def build_model(cfg, ds, train_images=None) -> nn.Module:
    """A fresh model for a run's config (model, width, dropout) and dataset (classes, channels,
    stats). FastNet's stem is whitened on the first WHITEN_IMAGES of `train_images` (uint8
    N x H x W x C, the run's training images: never validation or test images)."""
    mean, std = ds.channel_stats() if ds.name != "cifar10" else CIFAR_STATS
    net = make_model(cfg, ds.num_classes, ds.channels, mean, std)
    if isinstance(net, FastNet):
        net.whiten(ds.x_train[:WHITEN_IMAGES] if train_images is None
                   else train_images[:WHITEN_IMAGES])
    return net


def model_from_config(cfg) -> nn.Module:
    """An untrained model of a stored run's architecture; its mean/std buffers are placeholders
    that the checkpoint's weights overwrite."""
    channels = 1 if cfg.dataset == "fashion-mnist" else 3
    return make_model(cfg, 10, channels, [0.5] * channels, [0.25] * channels)
