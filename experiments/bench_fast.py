"""Speed of the fast profile: one whole clean short-schedule run, and training throughput of
FastNet against the quick profile's width-16 PreAct ResNet-18, in one process.

    OMP_NUM_THREADS=2 python experiments/bench_fast.py            # CIFAR-10 from the default place
    python experiments/bench_fast.py --quick --out /tmp/b         # tiny: checks that it runs

Measures, on this machine:
  1. the bf16 (and fp32) matmul peak, as the best of a few 4096^3 products (torch.matmul): the
     denominator of "share of peak" below;
  2. a training step (forward, backward, Nesterov SGD; bf16 autocast where the device has it,
     channels-last) on random 32x32 images, for FastNet at several widths and batch sizes and
     PreAct ResNet-18 at width 16, batch 128: images/s, FLOP per image (counted by
     torch.utils.flop_counter on one step: convolutions and matmuls, forward and backward),
     achieved FLOP/s and its share of the measured peak;
  3. one whole run of the `fast` profile (ERM on clean labels, 45,000 training images, the
     profile's epochs and evaluation), through train_run as `python -m robustmix.noise` trains:
     wall time, training images/s, its last-epoch accuracy on all 10,000 test images;
  4. from the FLOP count, the time the same run's training steps would take on an H100 SXM and
     an A100 at an assumed 40 % of their dense bf16 peak (989 and 312 TFLOP/s): an estimate,
     not a measurement.
Writes fast-<device>.md and .csv into --out (default reports/benchmarks; <device> e.g.
amd-epyc-cpu or nvidia-h100-80gb-hbm3) with device, instruction sets, versions, date and
command: machines differ (an AMX Xeon, an AVX512-BF16 EPYC, an AVX2-only EPYC trained the same
run at very different speeds), so each keeps its own file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from robustmix.atomic import write_csv, write_text
from robustmix.data.datasets import load_dataset
from robustmix.evaluation.device import autocast, cpu_has_bf16, resolve_device
from robustmix.runs.provenance import CPU_FEATURES, cpu_features, device_name, git_commit
from robustmix.training.config import make_config
from robustmix.training.models import fastnet, preact_resnet18
from robustmix.training.trainer import train_run

GPU_PEAK_BF16 = {"H100 SXM": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks (datasheets)
GPU_SHARE = 0.40  # an assumed share of peak for a small convnet at batch 512


def device_slug(device: torch.device) -> str:
    """A file-name form of the device's model: 'AMD EPYC CPU, 2 threads' -> 'amd-epyc-cpu'."""
    name = device_name(device).split(",")[0].lower()
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(r\)|\(tm\)", "", name)).strip("-")


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def step_flops(model: torch.nn.Module, batch: int, device: torch.device, precision: str) -> float:
    """FLOP of one training step per image (forward and backward)."""
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(device, precision):
            out = model(x)
        torch.nn.functional.cross_entropy(out.float(), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def step_speed(model: torch.nn.Module, batch: int, device: torch.device, precision: str,
               steps: int) -> float:
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9, nesterov=True)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def one() -> None:
        with autocast(device, precision):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python experiments/bench_fast.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--data", default=None, help="CIFAR-10 path (default: robustmix's default "
                   "places, e.g. ../shared/data/cifar10-jpeg.tar.gz)")
    p.add_argument("--profile", default="fast", help="profile of the whole run (default: fast)")
    p.add_argument("--widths", default="32,48,64", help="FastNet widths timed (default: 32,48,64)")
    p.add_argument("--batches", default="256,512", help="FastNet batch sizes timed "
                   "(default: 256,512)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per setting (default: 8)")
    p.add_argument("--quick", action="store_true",
                   help="tiny: 2 steps, a 512-image run of 1 epoch on the data; checks it runs "
                        "(default: False)")
    p.add_argument("--skip-run", action="store_true", help="time steps only, no whole run "
                   "(default: False)")
    p.add_argument("--out", type=Path, default=Path("reports/benchmarks"),
                   help="output folder (default: reports/benchmarks)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    precision = "bf16" if (device.type == "cuda" or cpu_has_bf16()) else "fp32"
    steps = 2 if args.quick else args.steps
    n = 1024 if args.quick else 4096
    rows = []
    # A CPU without native bf16 (AVX2 only) emulates it: a 4096^3 bf16 product there took over
    # 8 minutes without finishing (AMD EPYC, 2026-12-02), and nothing runs in bf16 on it anyway.
    peak16 = (matmul_peak(device, torch.bfloat16, n, 1 if args.quick else 4)
              if precision == "bf16" else float("nan"))
    peak32 = matmul_peak(device, torch.float32, n, 1 if args.quick else 3)
    print(f"matmul peak {n}^3: bf16 {peak16 / 1e12:.3f} TFLOP/s, fp32 {peak32 / 1e12:.3f}",
          flush=True)
    peak = peak16 if precision == "bf16" else peak32
    settings = [("preact_resnet18", 16, 128)] + [
        ("fastnet", int(w), int(b)) for w in args.widths.split(",") for b in args.batches.split(",")]
    for name, width, batch in settings:
        torch.manual_seed(0)
        make = (lambda w=width: preact_resnet18(10, w)) if name == "preact_resnet18" else (
            lambda w=width: fastnet(10, w))
        flops = step_flops(make().to(device, memory_format=torch.channels_last), batch, device,
                           precision)
        ips = step_speed(make(), batch, device, precision, steps)
        rows.append({"part": "step", "model": name, "width": width, "batch": batch,
                     "precision": precision, "images_per_s": ips,
                     "gflop_per_image": flops / 1e9, "tflop_per_s": ips * flops / 1e12,
                     "share_of_peak": ips * flops / peak})
        print(rows[-1], flush=True)
    run_row = {}
    if not args.skip_run:
        ds = load_dataset("cifar10", args.data)
        extra = dict(epochs=1, train_subset=512, val_n=100, test_n=200) if args.quick else {}
        cfg = make_config(method="erm", ratio=0.0, profile=args.profile, precision=precision,
                          **extra)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            s = train_run(cfg, ds, Path(tmp), device, show_progress=not args.quick)
            wall = time.perf_counter() - t0
            metrics = pd.read_csv(Path(tmp) / "metrics.csv")
        timed = [r for r in rows if r["model"] == "fastnet" and r["width"] == cfg.width
                 and r["batch"] == cfg.batch_size]
        flops = (timed[0]["gflop_per_image"] * 1e9 if timed else
                 step_flops(fastnet(10, cfg.width).to(device, memory_format=torch.channels_last),
                            cfg.batch_size, device, precision))
        train_flop = flops * s["train_images"] * cfg.epochs
        run_row = {"part": "run", "model": cfg.model, "width": cfg.width,
                   "batch": cfg.batch_size, "precision": precision,
                   "epochs": cfg.epochs, "train_images": s["train_images"],
                   "wall_s": wall, "train_s": s["train_seconds"],
                   "images_per_s": s["images_per_second"],
                   "tflop_per_s": train_flop / s["train_seconds"] / 1e12,
                   "share_of_peak": train_flop / s["train_seconds"] / peak,
                   "train_pflop": train_flop / 1e15,
                   "last_full_test_acc": 1 - s["last_full_test_error"],
                   "epoch_test_acc": ";".join(f"{a:.4f}" for a in metrics["test_acc"]),
                   "data": s["data"]}
        for gpu, gpeak in GPU_PEAK_BF16.items():
            run_row[f"est_{gpu.split()[0]}_train_s"] = train_flop / (GPU_SHARE * gpeak)
        rows.append(run_row)
        print(run_row, flush=True)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"fast-{device_slug(device)}"
    write_csv(args.out / f"{stem}.csv", df)
    command = " ".join(["python experiments/bench_fast.py",
                        *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Fast profile: speed on this machine", "",
        f"- device: {device_name(device)} ({platform.machine()}"
        + (f"; {', '.join(cpu_features()) or 'none'} of {', '.join(CPU_FEATURES)}"
           if device.type == "cpu" else "") + f"); torch {torch.__version__}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {git_commit()}",
        f"- command: `{command}`",
        f"- measured matmul peak ({n}^3, best of a few): bf16 {peak16 / 1e12:.3f} TFLOP/s, fp32 "
        f"{peak32 / 1e12:.3f} TFLOP/s; shares of peak below are against the {precision} one",
        "- FLOP per image: torch.utils.flop_counter over one training step (forward + backward "
        "of convolutions and matmuls; element-wise work not counted)", "",
        "## Training step on random images", "",
        "| model | width | batch | images/s | GFLOP/image | TFLOP/s | share of peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["part"] == "step":
            lines.append(f"| {r['model']} | {r['width']} | {r['batch']} | {r['images_per_s']:.0f} "
                         f"| {r['gflop_per_image']:.3f} | {r['tflop_per_s']:.3f} "
                         f"| {100 * r['share_of_peak']:.0f} % |")
    if run_row:
        lines += [
            "", f"## One whole `{args.profile}` run: ERM on clean labels", "",
            f"- {run_row['train_images']:,} training images, {run_row['epochs']} epochs, "
            f"FastNet width {run_row['width']}, batch {run_row['batch']}, {precision}; data: "
            f"{run_row['data']}",
            f"- wall time {run_row['wall_s']:.0f} s ({run_row['wall_s'] / 60:.1f} min, "
            f"evaluation included); training steps {run_row['train_s']:.0f} s at "
            f"{run_row['images_per_s']:.0f} images/s, {run_row['tflop_per_s']:.3f} TFLOP/s = "
            f"{100 * run_row['share_of_peak']:.0f} % of the measured peak; "
            f"{run_row['train_pflop']:.3f} PFLOP of training",
            f"- last-epoch accuracy on all 10,000 test images: "
            f"{100 * run_row['last_full_test_acc']:.2f} % (per-epoch accuracy on the profile's "
            f"fixed test images: {run_row['epoch_test_acc']})",
            f"- estimated training time from the FLOP count at {100 * GPU_SHARE:.0f} % of peak: "
            + ", ".join(f"{gpu} {run_row[f'est_{gpu.split()[0]}_train_s']:.1f} s"
                        for gpu in GPU_PEAK_BF16)
            + " (an estimate, not measured; data movement and evaluation not included)",
        ]
    if any(r["share_of_peak"] > 1 for r in rows):
        lines += ["", "A share above 100 %: the 4096^3 matmul is not this machine's peak for "
                  "these kernels (its convolutions ran faster than torch.matmul), so read the "
                  "shares as relative to one another, not as a fraction of the hardware's peak."]
    write_text(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
