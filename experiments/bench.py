"""Speed of robustmix against reference implementations, measured side by side in one run.

    python experiments/bench.py                     # CPU, quick-profile width (16)
    python experiments/bench.py --device cuda --width 64 --train-n 50000   # a GPU

Times, on the same machine, model, width and batch size:
  1. a training epoch: robustmix (uint8 data resident on the device, whole-batch crop/flip/mixup,
     channels-last, bf16 autocast where supported) against a reference loop in the style of the
     official mixup-cifar10 script (Dataset of PIL images, RandomCrop(32, 4) +
     RandomHorizontalFlip + ToTensor + Normalize, DataLoader with the machine's workers, fp32,
     NCHW, mixup on the batch);
  2. test-set evaluation (robustmix's batched evaluation against a DataLoader at batch 100);
  3. an FGSM sweep over 8 ε: the fast path against torchattacks.FGSM looped per ε;
  4. I-FGSM: robustmix against torchattacks.BIM looped per ε;
then how cost grows (img/s against batch size and width; time against training-set size and
number of ε), and test accuracy of a short run with and without bf16. Writes
reports/benchmarks/<device>.md and a tidy CSV beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robustmix.config import make_config
from robustmix.data import Dataset, load_dataset
from robustmix.models import preact_resnet18
from robustmix.runs import device_name
from robustmix.train import (
    CIFAR_STATS,
    Trainer,
    make_labels,
    predict_logits,
    resolve_device,
    resolve_precision,
    train_run,
)


def synthetic_dataset(n_train: int, n_test: int) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n_train + n_test, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=n_train + n_test)
    return Dataset("cifar10", tuple(str(i) for i in range(10)), x[:n_train], y[:n_train],
                   x[n_train:], y[n_train:], "synthetic", "synthetic uint8 images")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- reference implementations ------------------------------------------------------------

class PILDataset(torch.utils.data.Dataset):
    """torchvision-style: returns (PIL image, label), transforms applied per image."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def reference_loader(x, y, batch: int, train: bool, workers: int):
    import torchvision.transforms as T

    tf = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
    tf += [T.ToTensor(), T.Normalize(*CIFAR_STATS)]
    return torch.utils.data.DataLoader(PILDataset(x, y, T.Compose(tf)), batch_size=batch,
                                       shuffle=train, num_workers=workers,
                                       persistent_workers=workers > 0)


def reference_epoch(model, loader, opt, device, alpha: float) -> int:
    """The mixup-cifar10 training step: mixup on the batch, fp32, NCHW."""
    model.train()
    seen = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        lam = float(np.random.beta(alpha, alpha)) if alpha > 0 else 1.0
        idx = torch.randperm(x.size(0), device=device)
        mixed = lam * x + (1 - lam) * x[idx]
        out = model(mixed)
        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    return seen


def reference_model(width: int, device):
    # The reference normalises in its transforms, so its model sees standardised inputs.
    return preact_resnet18(width=width, mean=(0, 0, 0), std=(1, 1, 1)).to(device)


# --- measurements --------------------------------------------------------------------------

def time_train(ds: Dataset, width: int, batch: int, n: int, device, precision: str,
               alpha: float, workers: int, reference: bool) -> dict:
    cfg = make_config(method="mixup", ratio=0.0, profile="quick", alpha=alpha, width=width,
                      batch_size=batch, train_subset=n, precision=precision, test_n=100,
                      train_eval_n=100, epochs=2)
    if reference:
        model = reference_model(width, device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        loader = reference_loader(ds.x_train[:n], ds.y_train[:n], batch, True, workers)
        reference_epoch(model, loader, opt, device, alpha)  # warm-up (workers, kernels)
        sync(device)
        t = time.perf_counter()
        seen = reference_epoch(model, loader, opt, device, alpha)
        sync(device)
        return {"seconds": time.perf_counter() - t, "images": seen}
    trainer = Trainer(cfg, ds, make_labels(cfg, ds), device, None, show_progress=False)
    trainer.evaluate = lambda: {}  # time the training part of the epoch only
    trainer.train_epoch(0)  # warm-up
    sync(device)
    t = time.perf_counter()
    row = trainer.train_epoch(1)
    sync(device)
    return {"seconds": time.perf_counter() - t, "images": row["train_seconds"] and len(trainer.labels.index)}


def time_eval(ds: Dataset, width: int, device, precision: str, workers: int, reference: bool) -> dict:
    n = len(ds.y_test)
    if reference:
        model = reference_model(width, device).eval()
        loader = reference_loader(ds.x_test, ds.y_test, 100, False, workers)
        t = time.perf_counter()
        with torch.no_grad():
            for x, _ in loader:
                model(x.to(device))
        sync(device)
        return {"seconds": time.perf_counter() - t, "images": n}
    model = preact_resnet18(width=width).to(device).to(memory_format=torch.channels_last)
    x = torch.from_numpy(ds.x_test).to(device)
    predict_logits(model, x[:1000], device, precision)
    sync(device)
    t = time.perf_counter()
    predict_logits(model, x, device, precision)
    sync(device)
    return {"seconds": time.perf_counter() - t, "images": n}


def time_attacks(width: int, device, precision: str, n: int, batch: int, n_eps: int) -> list[dict]:
    """FGSM sweep and I-FGSM, robustmix against torchattacks, on the same model and images."""
    import torchattacks

    from robustmix import attacks

    torch.manual_seed(0)
    model = preact_resnet18(width=width).to(device).to(memory_format=torch.channels_last).eval()
    x = torch.rand(n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    eps = [e / 255 for e in (0, 1, 2, 3, 4, 6, 8, 16, 24, 32)[:n_eps]]
    rows = []

    def evaluate(xa, ya):
        with torch.no_grad():
            return (predict_logits(model, xa, device, precision).argmax(1) == ya).sum().item()

    # torchattacks computes in fp32: both sides run fp32 for the attack comparison.
    sync(device)
    t = time.perf_counter()
    for e in eps:
        atk = torchattacks.FGSM(model, eps=e)
        for s in range(0, n, batch):
            evaluate(atk(x[s:s + batch], y[s:s + batch]), y[s:s + batch])
    sync(device)
    rows.append({"task": f"fgsm sweep ({len(eps)} eps)", "impl": "torchattacks", "seconds": time.perf_counter() - t, "images": n})
    t = time.perf_counter()
    for s in range(0, n, batch):
        advs = attacks.fgsm_sweep(model, x[s:s + batch], y[s:s + batch], eps)
        for xa in advs.values() if isinstance(advs, dict) else advs:
            evaluate(xa, y[s:s + batch])
    sync(device)
    rows.append({"task": f"fgsm sweep ({len(eps)} eps)", "impl": "robustmix", "seconds": time.perf_counter() - t, "images": n})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--width", type=int, default=16, help="network width (quick profile: 16, paper: 64)")
    p.add_argument("--batch", type=int, default=128, help="training batch size")
    p.add_argument("--train-n", type=int, default=5000, help="training images timed per epoch")
    p.add_argument("--attack-n", type=int, default=1000, help="images for the attack timings")
    p.add_argument("--data", default=None, help="CIFAR-10 path for the bf16 accuracy check "
                   "(default: the usual locations; skipped when none is found)")
    p.add_argument("--precision", default="auto", help="robustmix precision: auto, fp32 or bf16")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks"), help="output folder")
    p.add_argument("--skip-scaling", action="store_true", help="skip the scaling measurements")
    p.add_argument("--skip-accuracy", action="store_true", help="skip the bf16 accuracy check")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ds = synthetic_dataset(max(args.train_n, 1000), 10000)
    rows = []

    def add(task, impl, r, **extra):
        rows.append({"task": task, "impl": impl, "seconds": r["seconds"], "images": r["images"],
                     "images_per_second": r["images"] / r["seconds"], "peak_mb": peak_mb(device), **extra})
        print(f"{task:<28} {impl:<13} {r['images'] / r['seconds']:>9.0f} img/s", flush=True)

    for ref in (True, False):
        add("train epoch", "reference" if ref else "robustmix",
            time_train(ds, args.width, args.batch, args.train_n, device, precision, 1.0, workers, ref))
    for ref in (True, False):
        add("test evaluation", "reference" if ref else "robustmix",
            time_eval(ds, args.width, device, precision, workers, ref))
    for r in time_attacks(args.width, device, "fp32", args.attack_n, 500, 8):
        add(r["task"], r["impl"], r)
    df = pd.DataFrame(rows)
    write(df, device, precision, args, " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))
    return 0


def write(df: pd.DataFrame, device, precision: str, args, command: str) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device).replace(" ", "-")
    df.to_csv(args.out / f"{name}.csv", index=False)
    lines = [f"# robustmix benchmark: {device_name(device)}", "",
             f"- date: {dt.date.today()}, command: `{command}`",
             f"- torch {torch.__version__}, python {platform.python_version()}, precision {precision}",
             "", df.to_markdown(index=False) if hasattr(df, "to_markdown") else df.to_string()]
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
