"""Speed of robustmix against reference implementations, measured side by side in one run.

    python experiments/bench.py                  # on a GPU: width 64, 50,000 images, 10,000 attacked
    python experiments/bench.py --device cpu     # on a CPU: the quick profile's width (16)
    python experiments/bench.py --device cpu --quick --out /tmp/b   # tiny: checks it runs

Times, on the same machine, model, width and batch size:
  1. a training epoch: robustmix (uint8 data resident on the device, the epoch's random plan
     moved to the device once, whole-batch crop/flip/mixup, channels-last, bf16 autocast where
     supported), the same with the per-batch plan it replaced (before/after in one run), in
     fp32, and with torch.compile, against a reference loop in the style of the official
     mixup-cifar10 script (Dataset of PIL images, RandomCrop(32, 4) + RandomHorizontalFlip +
     ToTensor + Normalize, DataLoader with the machine's workers, fp32, NCHW, mixup on the
     batch); all set up first, then timed interleaved;
  2. test-set evaluation (robustmix's batched evaluation against a DataLoader at batch 100);
  3. an FGSM sweep over 8 ε: the fast path against torchattacks.FGSM looped per ε;
  4. I-FGSM: robustmix against torchattacks.BIM looped per ε;
  5. PGD: robustmix (several ε in one batch on a GPU) against torchattacks.PGD looped per ε,
     the same random starts on both sides; AutoAttack (the standard ensemble robustmix runs,
     100 iterations per stage) and torchattacks.AutoAttack(version='standard') (10
     iterations) at one ε, seconds per image beside PGD's, and how many images each stage
     still had to attack;
then how cost grows (img/s against batch size and width; time against training-set size and
number of ε), test accuracy of a short run with and without bf16, and torch.profiler's table of
where a training epoch's time goes. Writes reports/benchmarks/<device>.md (cpu.md, or the GPU's
name) and a tidy CSV beside it, with the device, versions, backend settings, date and command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robustmix.atomic import write_csv, write_text
from robustmix.data.datasets import Dataset, load_dataset
from robustmix.evaluation.device import (
    autocast,
    configure_backends,
    resolve_device,
    resolve_precision,
)
from robustmix.evaluation.predict import predict_logits
from robustmix.runs.provenance import device_name
from robustmix.training.batches import epoch_plans
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

def reference_trainer(ds: Dataset, width: int, batch: int, n: int, device, alpha: float,
                      workers: int) -> tuple[Callable[[int], dict], float]:
    """The mixup-cifar10 style loop, warmed up (workers, kernels): (timed epochs, warm-up s)."""
    model = reference_model(width, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = reference_loader(ds.x_train[:n], ds.y_train[:n], batch, True, workers)
    t = time.perf_counter()
    reference_epoch(model, loader, opt, device, alpha)
    sync(device)
    warm = time.perf_counter() - t

    def run(epochs: int) -> dict:
        t = time.perf_counter()
        seen = sum(reference_epoch(model, loader, opt, device, alpha) for _ in range(epochs))
        sync(device)
        return {"seconds": time.perf_counter() - t, "images": seen}

    return run, warm


def robustmix_trainer(ds: Dataset, width: int, batch: int, n: int, device, precision: str,
                      alpha: float, compile: bool = False) -> tuple[Trainer, float]:
    """robustmix's Trainer on the same data, warmed up: (trainer, warm-up seconds)."""
    cfg = make_config(method="mixup", ratio=0.0, profile="quick", alpha=alpha, width=width,
                      batch_size=batch, train_subset=n, precision=precision, test_n=100,
                      train_eval_n=100, epochs=2, val_n=0)
    trainer = Trainer(cfg, ds, make_labels(cfg, ds), device, None, show_progress=False,
                      compile=compile)
    trainer.evaluate = lambda: {}  # time the training part of the epoch only
    t = time.perf_counter()
    trainer.train_epoch(0)  # warm-up (and, with compile, compilation)
    sync(device)
    return trainer, time.perf_counter() - t


def timed_epochs(trainer: Trainer, device, plan: str = "epoch") -> Callable[[int], dict]:
    """Timed training epochs of trainer. plan "epoch" is the loop as it runs (the epoch's plan
    moved to the device once); "batch" the per-batch path it replaced (each batch's host arrays
    copied to the device when used). One trainer can serve both, so that the before/after
    comparison differs in nothing else."""
    cfg = trainer.cfg
    plans = {"epoch": Trainer.epoch_plan.__get__(trainer),
             "batch": lambda e: epoch_plans(cfg, e, trainer.labels.noisy, trainer.knn)}[plan]

    def run(epochs: int) -> dict:
        trainer.epoch_plan = plans
        sync(device)
        t = time.perf_counter()
        for _ in range(epochs):
            trainer.bench_epoch = getattr(trainer, "bench_epoch", 1) + 1
            trainer.train_epoch(trainer.bench_epoch)
        sync(device)
        return {"seconds": time.perf_counter() - t, "images": len(trainer.labels.index) * epochs}

    return run


def time_batch_prep(ds: Dataset, width: int, batch: int, n: int, device, precision: str,
                    repeats: int) -> list[dict]:
    """An epoch's batches prepared without the network (plan, crop, flip, mixup, targets) by the
    per-batch path and by the epoch plan: the part of the loop the plan changed, timed alone
    (interleaved, fastest of repeats) so that load on a shared machine blurs it less."""
    cfg = make_config(method="mixup", ratio=0.0, profile="quick", alpha=1.0, width=width,
                      batch_size=batch, train_subset=n, precision=precision, test_n=100,
                      train_eval_n=100, epochs=2, val_n=0)
    trainer = Trainer(cfg, ds, make_labels(cfg, ds), device, None, show_progress=False)
    paths = {"robustmix per-batch plan": lambda e: epoch_plans(cfg, e, trainer.labels.noisy, None),
             "robustmix": trainer.epoch_plan}
    best = {name: float("inf") for name in paths}
    for r in range(repeats + 1):  # the first round warms up
        for name, plan in list(paths.items())[::-1 if r % 2 else 1]:
            sync(device)
            t = time.perf_counter()
            for p in plan(r):
                trainer.batch_tensors(p)
            sync(device)
            if r:
                best[name] = min(best[name], time.perf_counter() - t)
    return [{"task": f"batch preparation, no network ({n:,} images)", "impl": name,
             "seconds": sec, "images": len(trainer.labels.index)} for name, sec in best.items()]


def time_train(ds: Dataset, width: int, batch: int, n: int, device, precision: str,
               alpha: float, workers: int, reference: bool) -> dict:
    """One timed epoch after a warm-up one (the scaling rows)."""
    if reference:
        run, _ = reference_trainer(ds, width, batch, n, device, alpha, workers)
    else:
        run = timed_epochs(robustmix_trainer(ds, width, batch, n, device, precision, alpha)[0],
                           device)
    return run(1)


def time_train_contenders(contenders: dict[str, Callable[[], tuple[Callable[[int], dict], float]]],
                          epochs: int, repeats: int) -> list[dict]:
    """Every contender set up (and warmed up) first, then timed `repeats` times, interleaved in
    alternating order so that load from other processes hits all of them alike; the fastest
    timing of each is kept."""
    ready = {name: make() for name, make in contenders.items()}
    best: dict[str, dict] = {}
    for i in range(repeats):
        for name in list(ready)[::-1 if i % 2 else 1]:
            r = ready[name][0](epochs)
            if name not in best or r["seconds"] < best[name]["seconds"]:
                best[name] = r
    return [{"impl": name, "warmup_seconds": ready[name][1], **best[name]} for name in ready]


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


# Sizes when a flag is not given: a GPU measures the goals (PreAct ResNet-18 at width 64,
# a 50,000-image epoch, attacks on 10,000 test images); a CPU the quick profile's width and
# sizes that take minutes; --quick a tiny run that only shows that everything works.
SIZES = {
    "cuda": dict(width=64, train_n=50000, test_n=10000, attack_n=10000, iter_n=2000,
                 autoattack_n=100, train_epochs=1, repeats=2, steps=10),
    "cpu": dict(width=16, train_n=4000, test_n=10000, attack_n=1000, iter_n=1000,
                autoattack_n=100, train_epochs=1, repeats=2, steps=10),
    "quick": dict(width=4, train_n=192, test_n=256, attack_n=64, iter_n=32, autoattack_n=0,
                  train_epochs=1, repeats=1, steps=2),
}
PARTS = ("train", "compile", "eval", "attacks", "scaling", "accuracy", "trace")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (width 4, a few hundred images, no compile, scaling or "
                        "accuracy parts): checks that the benchmark runs, measures nothing")
    p.add_argument("--width", type=int, default=None,
                   help="network width (default: 64 on CUDA, the paper's; 16 on CPU, quick's)")
    p.add_argument("--batch", type=int, default=128, help="training batch size")
    p.add_argument("--train-n", type=int, default=None,
                   help="training images per timed epoch (default: 50,000 on CUDA, 4,000 on CPU)")
    p.add_argument("--train-epochs", type=int, default=None,
                   help="epochs per training timing, after one warm-up epoch (default 1)")
    p.add_argument("--test-n", type=int, default=None, help="test images evaluated (default 10,000)")
    p.add_argument("--attack-n", type=int, default=None,
                   help="images of the FGSM timings (default: 10,000 on CUDA, 1,000 on CPU)")
    p.add_argument("--iter-n", type=int, default=None,
                   help="images of the I-FGSM and PGD timings (default: 2,000 on CUDA, 1,000 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="I-FGSM and PGD steps (default 10)")
    p.add_argument("--autoattack-n", type=int, default=None,
                   help="images for the AutoAttack timing (default 100; 0: skip it)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timings per measurement, interleaved; the fastest is kept (default 2)")
    p.add_argument("--data", default=None, help="CIFAR-10 path for the bf16 accuracy check "
                   "(default: the usual locations; skipped when none is found)")
    p.add_argument("--acc-n", type=int, default=2000, help="training images of the accuracy check")
    p.add_argument("--acc-epochs", type=int, default=15, help="epochs of the accuracy check")
    p.add_argument("--precision", default="auto", help="robustmix precision: auto, fp32 or bf16")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks"), help="output folder")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: " + ", ".join(PARTS))
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if skip - set(PARTS):
        p.error(f"unknown part(s) in --skip: {', '.join(sorted(skip - set(PARTS)))}")
    args.skip = skip | ({"compile", "scaling", "accuracy"} if args.quick else set())
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    skip = args.skip
    device = resolve_device(args.device)
    backend = configure_backends(device)
    sizes = SIZES["quick" if args.quick else "cuda" if device.type == "cuda" else "cpu"]
    for k, v in sizes.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    precision = resolve_precision(args.precision, device)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.quick:
        workers = 0  # no worker processes to start: the quick run only checks the code paths
    ds = synthetic_dataset(max(args.train_n, 1000), args.test_n)
    command = " ".join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    command = f"(in {Path.cwd().name}/) {command}"
    print(f"bench: {device_name(device)}, width {args.width}, batch {args.batch}, robustmix "
          f"precision {precision}, {workers} DataLoader workers", flush=True)
    rows: list[dict] = []
    notes: list[str] = []

    def add(r: dict) -> None:
        r.setdefault("width", args.width)
        r.setdefault("batch", args.batch)
        r["images_per_second"] = r["images"] / r["seconds"]
        r["peak_mb"] = peak_mb(device)
        rows.append(r)
        print(f"{r['task']:<40} {r['impl']:<26} w{r['width']:<3} b{r['batch']:<4} "
              f"{r['images_per_second']:>9.0f} img/s", flush=True)

    def best_of(fn, *a):
        return min((fn(*a) for _ in range(args.repeats)), key=lambda r: r["seconds"])

    w, b, n = args.width, args.batch, args.train_n
    if "train" not in skip:
        shared: list[tuple[Trainer, float]] = []  # before and after: one trainer, two plans

        def robustmix(plan: str, prec: str = precision, compile: bool = False):
            def make():
                if prec != precision or compile:
                    trainer, warm = robustmix_trainer(ds, w, b, n, device, prec, 1.0, compile)
                else:
                    shared[:] = shared or [robustmix_trainer(ds, w, b, n, device, prec, 1.0)]
                    trainer, warm = shared[0]
                return timed_epochs(trainer, device, plan), warm
            return make

        contenders = {
            "reference": lambda: reference_trainer(ds, w, b, n, device, 1.0, workers),
            "robustmix fp32": robustmix("epoch", "fp32"),
            "robustmix per-batch plan": robustmix("batch"),
            "robustmix": robustmix("epoch"),
        }
        if "compile" not in skip:
            contenders["robustmix --compile"] = robustmix("epoch", compile=True)
        for r in time_train_contenders(contenders, args.train_epochs, args.repeats):
            add({"task": f"train epoch (mixup, {n:,} images)", **r})
        by = {r["impl"]: r["images_per_second"] for r in rows}
        warm = {r["impl"]: r["warmup_seconds"] for r in rows}
        notes.append(f"training, the epoch's plan on the device against the per-batch path it "
                     f"replaced (same run, interleaved): {by['robustmix']:.0f} against "
                     f"{by['robustmix per-batch plan']:.0f} img/s "
                     f"({by['robustmix'] / by['robustmix per-batch plan']:.3f}x)")
        prep = time_batch_prep(ds, w, b, n, device, precision, 5 * args.repeats)
        for r in prep:
            add(r)
        notes.append(f"batch preparation alone (no network, fastest of {5 * args.repeats}): "
                     f"{prep[1]['seconds'] * 1000:.1f} ms per epoch with the epoch plan against "
                     f"{prep[0]['seconds'] * 1000:.1f} ms with the per-batch path")
        if "robustmix --compile" in by:
            notes.append(f"torch.compile: {by['robustmix --compile']:.0f} against "
                         f"{by['robustmix']:.0f} img/s without "
                         f"({by['robustmix --compile'] / by['robustmix']:.3f}x), after a "
                         f"{warm['robustmix --compile']:.0f} s first epoch (compilation; "
                         f"{warm['robustmix']:.1f} s without)")
        if not args.quick:
            for m in (1000, 2000, 4000):
                if m <= len(ds.y_train):
                    r = time_train(ds, w, b, m, device, precision, 1.0, workers, False)
                    add({"task": f"train epoch, {m} images", "impl": "robustmix", **r})
    if "eval" not in skip:
        for impl, ref in (("reference", True), ("robustmix", False)):
            add({"task": f"test evaluation ({args.test_n:,})", "impl": impl,
                 **best_of(time_eval, ds, w, device, precision, workers, ref)})
    if "attacks" not in skip:
        eps8 = [1, 2, 3, 4, 6, 8, 12, 16]
        batch = 500
        for r in time_attacks(w, device, "fp32", args.attack_n, batch, eps8, args.steps,
                              args.repeats, attacks=("fgsm",)):
            add(r)
        for r in time_attacks(w, device, "fp32", args.iter_n, batch, eps8, args.steps,
                              args.repeats, attacks=("ifgsm", "pgd")):
            add(r)
        if args.autoattack_n:
            for r in time_autoattack(w, device, "fp32", args.autoattack_n, batch, 8, args.steps):
                add(r)
        if not args.quick:
            for k in (1, 2, 4):
                for r in time_attacks(w, device, "fp32", args.attack_n, batch, eps8[:k],
                                      args.steps, 1, attacks=("fgsm",)):
                    add(r)
    if "scaling" not in skip:
        widths = (8, 16, 32) if device.type == "cpu" else (16, 32, 64)
        for r in time_step_scaling(device, precision, widths, (64, 128, 256)):
            add(r)
    if "accuracy" not in skip:
        for r in bf16_accuracy(args, device):
            add(r)
    trace = None if "trace" in skip else profile_training(ds, w, b, n, device, precision)
    write(pd.DataFrame(rows), device, precision, backend, args, command, notes, trace)
    return 0


def profile_training(ds: Dataset, width: int, batch: int, n: int, device, precision: str,
                     steps: int = 20) -> str:
    """Where a training epoch's time goes: torch.profiler's table of the costliest operators over
    the first `steps` steps of an epoch, after a warm-up epoch."""
    from torch.profiler import ProfilerActivity, profile

    cfg = make_config(method="mixup", ratio=0.0, profile="quick", alpha=1.0, width=width,
                      batch_size=batch, train_subset=min(n, steps * batch), precision=precision,
                      test_n=100, train_eval_n=100, epochs=2, val_n=0)
    trainer = Trainer(cfg, ds, make_labels(cfg, ds), device, None, show_progress=False)
    trainer.evaluate = lambda: {}
    trainer.train_epoch(0)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        trainer.train_epoch(1)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=15)


def write(df: pd.DataFrame, device, precision: str, backend: dict, args, command: str,
          notes: list[str], trace: str | None) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device).replace(" ", "-")
    write_csv(args.out / f"{name}.csv", df)
    cuda = (f", CUDA {backend['cuda_version']}, cuDNN {backend['cudnn_version']}"
            if device.type == "cuda" else "")
    settings = ", ".join(f"{k} {v}" for k, v in backend.items()
                         if v is not None and k not in ("cuda_version", "cudnn_version"))
    lines = [f"# robustmix speed benchmark: {device_name(device)}", "",
             f"- date: {dt.date.today()}; command: `{command}`"
             + (" (--quick: tiny sizes, the numbers mean nothing)" if args.quick else ""),
             f"- torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, "
             f"torchattacks {__import__('torchattacks').__version__}, python "
             f"{platform.python_version()}{cuda}; OMP_NUM_THREADS "
             f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {torch.get_num_threads()} torch threads",
             f"- robustmix precision: {precision}; backend: {settings}; attacks in fp32",
             "- reference loop: fp32, NCHW, PIL transforms, DataLoader with one worker per core; "
             "peak_mb: process peak RSS on CPU, peak allocated GPU memory on CUDA", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
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
    if trace is not None:
        lines += ["## Where a training epoch's time goes (torch.profiler, robustmix, first "
                  "steps of an epoch)", "", "```", trace.rstrip(), "```", ""]
    write_text(args.out / f"{name}.md", "\n".join(lines))
    print(f"wrote {args.out / name}.md and .csv")


def table_md(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
