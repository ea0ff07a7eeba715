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
  5. PGD: robustmix (several ε in one batch on a GPU) against torchattacks.PGD looped per ε,
     the same random starts on both sides; AutoAttack (the standard ensemble robustmix runs,
     100 iterations per stage) and torchattacks.AutoAttack(version='standard') (10
     iterations) at one ε, seconds per image beside PGD's, and how many images each stage
     still had to attack;
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

from robustmix.data.datasets import Dataset, load_dataset
from robustmix.evaluation.device import autocast, resolve_device, resolve_precision
from robustmix.evaluation.predict import predict_logits
from robustmix.runs.provenance import device_name
from robustmix.training.config import make_config
from robustmix.training.labels import make_labels
from robustmix.training.models import CIFAR_STATS, preact_resnet18
from robustmix.training.trainer import Trainer, train_run


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
    trainer.train_epoch(1)
    sync(device)
    return {"seconds": time.perf_counter() - t, "images": len(trainer.labels.index)}


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


def time_attacks(width: int, device, precision: str, n: int, batch: int, eps255: list[float],
                 steps: int, repeats: int, attacks=("fgsm", "ifgsm")) -> list[dict]:
    """robustmix's attacks against torchattacks looped per ε, interleaved, fastest of repeats
    (functions shared with experiments/bench_fgsm.py)."""
    from bench_fgsm import loop_torchattacks, ours, timed_pair

    torch.manual_seed(0)
    model = preact_resnet18(10, width).to(device).to(memory_format=torch.channels_last).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    eps = [e / 255 for e in eps255]
    ours("fgsm", model, x[:batch], y[:batch], eps[:1], batch, 1, precision, device)  # warm-up
    rows = []
    for name in attacks:
        common = (name, model, x, y, eps, batch, steps, precision, device)
        (t_ours, c_ours), (t_ref, c_ref) = timed_pair(repeats, device, (ours, common),
                                                      (loop_torchattacks, common))
        task = f"{name} sweep, {len(eps)} eps" + (f", {steps} steps" if name != "fgsm" else "")
        for impl, t in (("reference", t_ref), ("robustmix", t_ours)):
            rows.append({"task": task, "impl": impl if impl == "robustmix" else "torchattacks loop",
                         "seconds": t, "images": n, "same_result": c_ours == c_ref})
    return rows


def time_autoattack(width: int, device, precision: str, n: int, batch: int, eps255: float,
                    steps: int) -> list[dict]:
    """Seconds per image of AutoAttack at one ε, robustmix's standard ensemble (100 iterations
    per stage, built from torchattacks' stages) and torchattacks.AutoAttack('standard', 10
    iterations), beside PGD's on the same model and images. A stage attacks only the images
    every earlier stage left correctly classified: `stages` counts them."""
    import copy

    import torchattacks
    from torchattacks import MultiAttack

    from robustmix.attacks.autoattack import AutoAttack
    from robustmix.attacks.pgd import PGD
    from robustmix.attacks.sweep import Target, robust_accuracy

    torch.manual_seed(0)
    model = preact_resnet18(10, width).to(device).to(memory_format=torch.channels_last).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g).to(device)
    with torch.no_grad():  # labels the model gets right: every image is attacked
        y = model(x.permute(0, 3, 1, 2).float().div(255)).argmax(1)
    eps = eps255 / 255
    records: list[int] = []  # images, then images still correct after each stage
    real_forward = MultiAttack.forward

    def counting(self, images, labels):
        self._accumulate_multi_atk_records = True
        self._multi_atk_records = [0.0] * (len(self.attacks) + 1)
        out = real_forward(self, images, labels)
        counts = [int(v) for v in self._multi_atk_records]
        records[:] = [a + b for a, b in zip(records or [0] * len(counts), counts, strict=True)]
        return out

    rows = []
    MultiAttack.forward = counting
    try:
        for impl, attack in (("robustmix PGD", PGD(model, steps, None, 1, 0, precision)),
                             ("robustmix AutoAttack (100 it.)", AutoAttack(model, 0, precision)),
                             ("torchattacks AutoAttack (10 it.)", None)):
            records.clear()
            sync(device)
            t = time.perf_counter()
            if attack is None:  # NCHW model and images: torchattacks' FAB needs them
                plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
                correct = 0
                for s in range(0, n, batch):
                    xb = x[s:s + batch].permute(0, 3, 1, 2).float().div(255).contiguous()
                    adv = torchattacks.AutoAttack(plain, norm="Linf", eps=eps, version="standard",
                                                  n_classes=10, seed=0)(xb, y[s:s + batch])
                    with torch.no_grad():
                        correct += int((model(adv).argmax(1) == y[s:s + batch]).sum())
            else:
                correct = robust_accuracy(attack, [Target(model, precision)], x, y, [eps],
                                          batch)[0][0][0]
            sync(device)
            rows.append({"task": f"AutoAttack vs PGD ({steps} steps), eps {eps255:g}/255",
                         "impl": impl, "seconds": time.perf_counter() - t, "images": n,
                         "accuracy": correct / n, "stages": " ".join(map(str, records))})
    finally:
        MultiAttack.forward = real_forward
    return rows


def time_step_scaling(device, precision: str, widths, batches) -> list[dict]:
    """Images/s of robustmix's training step on a ready batch, across width and batch size."""
    rows = []
    for width in widths:
        for batch in batches:
            model = preact_resnet18(width=width).to(device).to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (batch,), device=device)

            def step(model=model, opt=opt, x=x, y=y):
                with autocast(device, precision):
                    loss = F.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            for _ in range(2):
                step()
            sync(device)
            k = max(2, 2048 // batch) if device.type == "cpu" else 20
            t = time.perf_counter()
            for _ in range(k):
                step()
            sync(device)
            rows.append({"task": "train step scaling", "impl": "robustmix", "width": width,
                         "batch": batch, "seconds": time.perf_counter() - t, "images": k * batch})
    return rows


def bf16_accuracy(args, device) -> list[dict]:
    """Test accuracy of the same short real-data run in fp32 and in bf16."""
    try:
        ds = load_dataset("cifar10", args.data)
    except Exception as e:  # noqa: BLE001 - no data means no accuracy check, not a failed bench
        print(f"bf16 accuracy check skipped: {e}")
        return []
    import tempfile

    rows = []
    for precision in ("fp32", "bf16"):
        cfg = make_config(method="mixup", ratio=0.0, profile="quick", alpha=1.0, width=args.width,
                          epochs=args.acc_epochs, train_subset=args.acc_n, test_n=2000,
                          train_eval_n=100, precision=precision)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            s = train_run(cfg, ds, Path(tmp), device, show_progress=False)
        rows.append({"task": f"short run accuracy ({args.acc_n} images, {args.acc_epochs} epochs, "
                     "mixup a=1, 2000 test images)", "impl": f"robustmix {precision}",
                     "seconds": time.perf_counter() - t, "images": args.acc_n * args.acc_epochs,
                     "test_acc_best": 1 - s["best_test_error"], "test_acc_last": 1 - s["last_test_error"]})
        print(f"{precision}: last test accuracy {1 - s['last_test_error']:.3f}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--width", type=int, default=16, help="network width (quick profile: 16, paper: 64)")
    p.add_argument("--batch", type=int, default=128, help="training batch size")
    p.add_argument("--train-n", type=int, default=4000, help="training images per timed epoch")
    p.add_argument("--attack-n", type=int, default=1000, help="images for the attack timings")
    p.add_argument("--steps", type=int, default=10, help="I-FGSM and PGD steps")
    p.add_argument("--autoattack-n", type=int, default=100,
                   help="images for the AutoAttack timing (0: skip it)")
    p.add_argument("--repeats", type=int, default=2, help="timings per measurement; the fastest is kept")
    p.add_argument("--data", default=None, help="CIFAR-10 path for the bf16 accuracy check "
                   "(default: the usual locations; skipped when none is found)")
    p.add_argument("--acc-n", type=int, default=2000, help="training images of the accuracy check")
    p.add_argument("--acc-epochs", type=int, default=15, help="epochs of the accuracy check")
    p.add_argument("--precision", default="auto", help="robustmix precision: auto, fp32 or bf16")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks"), help="output folder")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: train, eval, "
                   "attacks, scaling, accuracy")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ds = synthetic_dataset(max(args.train_n, 1000), 10000)
    command = " ".join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    command = f"(in {Path.cwd().name}/) {command}"
    print(f"bench: {device_name(device)}, width {args.width}, batch {args.batch}, robustmix "
          f"precision {precision}, {workers} DataLoader workers", flush=True)
    rows: list[dict] = []

    def add(r: dict) -> None:
        r.setdefault("width", args.width)
        r.setdefault("batch", args.batch)
        r["images_per_second"] = r["images"] / r["seconds"]
        r["peak_mb"] = peak_mb(device)
        rows.append(r)
        print(f"{r['task']:<40} {r['impl']:<18} w{r['width']:<3} b{r['batch']:<4} "
              f"{r['images_per_second']:>9.0f} img/s", flush=True)

    def best_of(fn, *a):
        return min((fn(*a) for _ in range(args.repeats)), key=lambda r: r["seconds"])

    if "train" not in skip:
        for impl, prec, ref in (("reference", "fp32", True), ("robustmix fp32", "fp32", False),
                                ("robustmix", precision, False)):
            r = best_of(time_train, ds, args.width, args.batch, args.train_n, device, prec, 1.0, workers, ref)
            add({"task": "train epoch (mixup)", "impl": impl, **r})
        for n in (1000, 2000, 4000):
            if n <= len(ds.y_train):
                r = time_train(ds, args.width, args.batch, n, device, precision, 1.0, workers, False)
                add({"task": f"train epoch, {n} images", "impl": "robustmix", **r})
    if "eval" not in skip:
        for impl, ref in (("reference", True), ("robustmix", False)):
            add({"task": "test evaluation (10,000)", "impl": impl,
                 **best_of(time_eval, ds, args.width, device, precision, workers, ref)})
    if "attacks" not in skip:
        eps8 = [1, 2, 3, 4, 6, 8, 12, 16]
        for r in time_attacks(args.width, device, "fp32", args.attack_n, 500, eps8, args.steps,
                              args.repeats, attacks=("fgsm", "ifgsm", "pgd")):
            add(r)
        if args.autoattack_n:
            for r in time_autoattack(args.width, device, "fp32", args.autoattack_n, 500, 8,
                                     args.steps):
                add(r)
        for k in (1, 2, 4):
            for r in time_attacks(args.width, device, "fp32", args.attack_n, 500, eps8[:k],
                                  args.steps, 1, attacks=("fgsm",)):
                add(r)
    if "scaling" not in skip:
        widths = (8, 16, 32) if device.type == "cpu" else (16, 32, 64)
        for r in time_step_scaling(device, precision, widths, (64, 128, 256)):
            add(r)
    if "accuracy" not in skip:
        for r in bf16_accuracy(args, device):
            add(r)
    write(pd.DataFrame(rows), device, precision, args, command)
    return 0


def write(df: pd.DataFrame, device, precision: str, args, command: str) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device).replace(" ", "-")
    df.to_csv(args.out / f"{name}.csv", index=False)
    lines = [f"# robustmix speed benchmark: {device_name(device)}", "",
             f"- date: {dt.date.today()}; command: `{command}`",
             f"- torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, "
             f"torchattacks {__import__('torchattacks').__version__}, python {platform.python_version()}",
             f"- robustmix precision: {precision}; reference loop: fp32, NCHW, PIL transforms, "
             "DataLoader with one worker per core; peak_mb: process peak RSS on CPU, "
             "peak allocated GPU memory on CUDA", ""]
    ratios = []
    for task, g in df.groupby("task", sort=False):
        ref = g[g["impl"].isin(["reference", "torchattacks loop", "robustmix PGD"])]
        if len(ref):
            base = ref["images_per_second"].iloc[0]
            for _, r in g.iterrows():
                if r["impl"] not in ("reference", "torchattacks loop", "robustmix PGD"):
                    ratios.append(f"| {task} | {r['impl']} | {r['images_per_second']:.0f} | "
                                  f"{base:.0f} | {r['images_per_second'] / base:.2f}x |")
    if ratios:
        lines += ["## Against the reference", "", "| task | robustmix | img/s | reference img/s | ratio |",
                  "|---|---|---|---|---|", *ratios, ""]
    lines += ["## All measurements", "", table_md(df), ""]
    (args.out / f"{name}.md").write_text("\n".join(lines))
    print(f"wrote {args.out / name}.md and .csv")


def table_md(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
