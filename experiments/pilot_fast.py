"""The pilot that chose the fast profile's recipe: FastNet trained by a minimal loop (no run
directory) on 45,000 CIFAR-10 training images, per-epoch accuracy on all 10,000 test images and
the fit of 5,000 training images to their (possibly noisy) labels.

    OMP_NUM_THREADS=2 python experiments/pilot_fast.py --width 64 --epochs 10 --lr 0.2
    OMP_NUM_THREADS=1 python experiments/pilot_fast.py --width 32 --pad 2 --threads 1

Its test accuracy chose between recipes, so the recipe is test-selected (experiments/
fast.notes.md says so); it is one recipe for every method, so the selection favours none.
The loop is the trainer's: crop/flip by one gather, bf16 autocast where the CPU has it natively
(--precision), channels-last, Nesterov SGD, linear warm-up then linear decay per step.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from robustmix.data.datasets import load_dataset
from robustmix.evaluation.device import autocast, resolve_precision
from robustmix.evaluation.images import to_device_images
from robustmix.training.batches import crop_flip
from robustmix.training.models import CIFAR_STATS, fastnet


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python experiments/pilot_fast.py", description=__doc__)
    p.add_argument("--width", type=int, default=64, help="FastNet width (default: 64)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    p.add_argument("--lr", type=float, default=0.2, help="peak learning rate (default: 0.2)")
    p.add_argument("--wd", type=float, default=5e-4, help="weight decay (default: 5e-4)")
    p.add_argument("--bs", type=int, default=512, help="batch size (default: 512)")
    p.add_argument("--ratio", type=float, default=0.0,
                   help="symmetric noise ratio of the training labels (default: 0)")
    p.add_argument("--warm", type=float, default=0.2, help="warm-up fraction (default: 0.2)")
    p.add_argument("--pad", type=int, default=4, help="crop padding in pixels (default: 4)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--bias-scale", type=float, default=1.0,
                   help="learning-rate multiplier of BN biases, their weight decay divided by it "
                        "so the decay per step is unchanged (default: 1)")
    p.add_argument("--bn-momentum", type=float, default=0.1,
                   help="torch BatchNorm momentum (default: 0.1)")
    p.add_argument("--freeze-bn-weight", action="store_true",
                   help="BN scales fixed at 1 (default: trained)")
    p.add_argument("--dirac", action="store_true",
                   help="the first c_in filters of each block convolution start as identity "
                        "(default: PyTorch's init)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="also evaluate an exponential moving average of the weights and BN "
                        "buffers with this per-step decay; 0 turns it off (default: 0)")
    p.add_argument("--tta", action="store_true",
                   help="also report accuracy averaged over the image and its mirror (default: off)")
    p.add_argument("--smooth", type=float, default=0.0,
                   help="label smoothing of the loss, to measure its effect only (default: 0)")
    p.add_argument("--reflect", action="store_true",
                   help="pad the crops by reflection instead of zeros (default: zeros)")
    p.add_argument("--data", default=None, help="CIFAR-10 path (default: robustmix's default)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto = bf16 where the CPU computes it natively (AVX512-BF16 or AMX), "
                        "else fp32, as robustmix's training chooses (default: auto)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    print(a, flush=True)
    # Emulated bf16 (an AVX2-only CPU) made one epoch take over 15 minutes instead of about one.
    precision = resolve_precision(a.precision, torch.device("cpu"))
    print(f"precision {precision}", flush=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ds = load_dataset("cifar10", a.data)
    dev = torch.device("cpu")
    rng = np.random.default_rng(0)
    tr = rng.permutation(len(ds.y_train))[:45000]
    y = ds.y_train[tr].copy()
    if a.ratio > 0:
        flip = rng.random(len(y)) < a.ratio
        y[flip] = rng.integers(0, 10, flip.sum())
    corrupt = y != ds.y_train[tr]
    m = fastnet(10, a.width, 3, 0.0, *CIFAR_STATS)
    m.whiten(ds.x_train[tr[:5000]])
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = a.bn_momentum
            if a.freeze_bn_weight:
                mod.weight.requires_grad_(False)
        if a.dirac and isinstance(mod, torch.nn.Conv2d) and mod is not m.stem:
            with torch.no_grad():
                torch.nn.init.dirac_(mod.weight[:mod.weight.shape[1]])
    m = m.to(memory_format=torch.channels_last)
    bn_bias = [p for n, p in m.named_parameters() if p.requires_grad and ".bn" in n]
    other = [p for n, p in m.named_parameters() if p.requires_grad and ".bn" not in n]
    # Each step sets every group's lr to the schedule times its scale.
    groups = [dict(params=other, weight_decay=a.wd, scale=1.0),
              dict(params=bn_bias, weight_decay=a.wd / a.bias_scale, scale=a.bias_scale)]
    opt = torch.optim.SGD(groups, lr=a.lr, momentum=a.momentum, nesterov=True)
    if a.reflect:
        t = torch.from_numpy(ds.x_train[tr]).permute(0, 3, 1, 2).float()
        padded = torch.nn.functional.pad(t, (a.pad,) * 4, mode="reflect")
        padded = padded.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    else:
        padded = to_device_images(ds.x_train[tr], dev, a.pad)
    ema = copy.deepcopy(m) if a.ema > 0 else None
    labels = torch.from_numpy(y)
    x_test = to_device_images(ds.x_test, dev)
    y_test = torch.from_numpy(ds.y_test)
    ev = np.arange(0, 45000, 9)[:5000]
    x_fit = to_device_images(ds.x_train[tr[ev]], dev)
    steps, k = a.epochs * (45000 // a.bs), 0

    def predict(x: torch.Tensor, net: torch.nn.Module | None = None,
                mirror: bool = False) -> torch.Tensor:
        net = m if net is None else net
        net.eval()
        out = []
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            for i in range(0, len(x), 1000):
                xb = x[i:i + 1000].permute(0, 3, 1, 2).float().div(255)
                xb = xb.contiguous(memory_format=torch.channels_last)
                logits = net(xb).float()
                if mirror:
                    logits = logits.softmax(1) + net(xb.flip(3)).float().softmax(1)
                out.append(logits.argmax(1))
        net.train()
        return torch.cat(out)

    t0 = time.time()
    print("start", flush=True)
    for ep in range(a.epochs):
        g = np.random.default_rng(ep)
        order = torch.from_numpy(g.permutation(45000))
        for s in range(0, 45000 - a.bs + 1, a.bs):
            f = k / steps
            lr = a.lr * (f / a.warm if f < a.warm else (1 - f) / (1 - a.warm))
            k += 1
            for pg in opt.param_groups:
                pg["lr"] = lr * pg["scale"]
            idx = order[s:s + a.bs]
            b = len(idx)
            dy = torch.from_numpy(g.integers(0, 2 * a.pad + 1, b))
            dx = torch.from_numpy(g.integers(0, 2 * a.pad + 1, b))
            fl = torch.from_numpy(g.random(b) < 0.5)
            x = crop_flip(padded, idx, dy, dx, fl, (32, 32))
            with autocast(torch.device("cpu"), precision):
                out = m(x)
            loss = torch.nn.functional.cross_entropy(out.float(), labels[idx],
                                                     label_smoothing=a.smooth)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for pe_, pm in zip(ema.state_dict().values(), m.state_dict().values(),
                                       strict=True):
                        if pe_.dtype.is_floating_point:
                            pe_.lerp_(pm, 1 - a.ema)
                        else:
                            pe_.copy_(pm)
        pt, pe = predict(x_test), predict(x_fit).numpy()
        mem = ((pe == y[ev]) & corrupt[ev]).sum() / max(corrupt[ev].sum(), 1)
        print(f"ep {ep + 1} t={time.time() - t0:.0f}s loss={loss.item():.3f} "
              f"test={(pt == y_test).float().mean():.4f} trainfit={(pe == y[ev]).mean():.3f} "
              f"mem={mem:.3f}", flush=True)
        extra = []
        if a.tta:
            extra.append(f"test_tta={(predict(x_test, mirror=True) == y_test).float().mean():.4f}")
        if ema is not None:
            extra.append(f"test_ema={(predict(x_test, ema) == y_test).float().mean():.4f}")
            if a.tta:
                acc = (predict(x_test, ema, mirror=True) == y_test).float().mean()
                extra.append(f"test_ema_tta={acc:.4f}")
        if extra:
            print("   ", " ".join(extra), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
