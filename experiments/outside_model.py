"""A model robustmix did not train, for the end-to-end check of `python -m robustmix.evaluate`
(issue 28): torchvision's ResNet-18, unchanged (ImageNet stem: a 7x7 stride-2 convolution and a
max-pool, so a 32x32 image is 8x8 after the stem: cheap on a CPU, and less accurate than a CIFAR
stem), trained by the short plain-PyTorch loop below: SGD with Nesterov momentum 0.9, one-cycle
learning rate up to 0.1, weight decay 5e-4, batch 256, random crops (4-pixel zero padding) and
mirror flips, fp32, cross-entropy, on all 50,000 CIFAR-10 training images (the JPEG q75 copy).
Only the decoding of the image archive is robustmix's (robustmix.data.load_dataset).

    OMP_NUM_THREADS=2 python experiments/outside_model.py --epochs 3 \\
        --data ../shared/data/cifar10-jpeg.tar.gz --out runs/outside/resnet18_tv.pt
    python -m robustmix.evaluate --factory experiments.outside_model:net \\
        --weights runs/outside/resnet18_tv.pt --data ../shared/data/cifar10-jpeg.tar.gz \\
        --attacks fgsm,pgd,autoattack,square --eps 0,2,8 --corruptions all --out evals/resnet18_tv

`net(num_classes, channels)` is the factory `--factory experiments.outside_model:net` names
(run from the repository root): the ResNet-18 behind a normalisation layer, since robustmix
gives models images in [0, 1].
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

# CIFAR-10's channel statistics (the training images'): inside the model, as robustmix expects
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class Normalised(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def net(num_classes: int = 10, channels: int = 3) -> nn.Module:
    if channels != 3:
        raise ValueError(f"torchvision's ResNet-18 takes RGB images, not {channels} channels")
    return Normalised(torchvision.models.resnet18(num_classes=num_classes))


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded batch, and mirror flips of half of it."""
    n = len(x)
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2, n), generator=g)
    rows = (dy[:, None] + torch.arange(32))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(32))[:, None, None, :]
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
                 rows, cols]
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="training epochs")
    p.add_argument("--batch", type=int, default=256, help="batch size")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (one-cycle)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and augmentation")
    p.add_argument("--data", default=None, help="CIFAR-10 (any format robustmix reads)")
    p.add_argument("--out", type=Path, default=Path("runs/outside/resnet18_tv.pt"),
                   help="the state dict written (refused if it exists)")
    a = p.parse_args(argv)
    if a.out.exists():
        print(f"error: {a.out} exists; choose another --out", file=sys.stderr)
        return 2
    from robustmix.data.datasets import load_dataset

    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    ds = load_dataset("cifar10", a.data)
    x = torch.from_numpy(ds.x_train).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(ds.y_train).long()
    xt = torch.from_numpy(ds.x_test).permute(0, 3, 1, 2).float().div(255)
    yt = torch.from_numpy(ds.y_test).long()
    model = net().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    steps = a.epochs * (len(y) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps)
    t0 = time.perf_counter()
    print(f"{len(y)} training images from {ds.source}; {steps} steps", flush=True)
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(len(y) // a.batch):
            idx = order[i * a.batch:(i + 1) * a.batch]
            xb = augment(x[idx], g).contiguous(memory_format=torch.channels_last)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if i % 50 == 0:
                print(f"  epoch {epoch + 1} step {i} loss {loss.item():.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(xt[s:s + 1000].contiguous(memory_format=torch.channels_last))
                              .argmax(1) for s in range(0, len(yt), 1000)])
        print(f"epoch {epoch + 1}: test accuracy {(pred == yt).float().mean():.4f} on "
              f"{len(yt)} images ({time.perf_counter() - t0:.0f} s)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(a.out)
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
