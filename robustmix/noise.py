"""`python -m robustmix.noise --ratio 0.5`: train methods on label-noisy data and compare with
Table 2 of the mixup paper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from . import paper
from .cli import Parser, csv_list, entry
from .config import PROFILES, TrainConfig, make_config
from .data import DATASETS, load_dataset
from .errors import UsageError
from .labelnoise import NOISE_TYPES
from .mixup import METHODS, PAPER_METHODS
from .runs import check_writable, device_name, plan_run, read_json, start_run
from .train import resolve_device, resolve_precision, train_run

# Rough training throughput (images/s) for the width-16 network; cost grows with width².
# CPU figures were measured on this project's 2-core development machine; the CUDA one is the
# H100 goal of issue 6, not yet a measurement.
THROUGHPUT = {("cpu", "bf16"): 1250.0, ("cpu", "fp32"): 650.0,
              ("cuda", "bf16"): 20000.0 * 16, ("cuda", "fp32"): 8000.0 * 16}


def estimate_seconds(cfgs: list[TrainConfig], device: torch.device) -> float:
    total = 0.0
    for c in cfgs:
        speed = THROUGHPUT[(device.type, c.precision)] * (16 / c.width) ** 2
        n_train = c.train_subset or 50000
        n_eval = (c.test_n or 10000) + c.train_eval_n
        total += c.epochs * (n_train + n_eval / 3) / speed  # evaluation costs about 1/3 of a step
    return total


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.noise",
               description="Train ERM, dropout, mixup and mixup+dropout (or the ablations) on "
                           "a dataset with corrupted training labels; print best/last test error "
                           "beside the paper's Table 2.")
    p.add_argument("--ratio", type=float, nargs="+", default=[0.5],
                   help="noise ratio(s) r in [0, 1]: each training label is replaced with probability r")
    p.add_argument("--methods", type=csv_list(str), default=list(PAPER_METHODS),
                   help="comma-separated methods: " + "; ".join(f"{k} = {v.help}" for k, v in METHODS.items()))
    p.add_argument("--profile", choices=["auto", *PROFILES], default="auto",
                   help="paper = 200 epochs, width 64, all data; quick = width 16, 2,000-image "
                        "subset, 80 epochs, 1,000 test images; auto = paper on CUDA, quick otherwise")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the profile's epochs (lr steps stay at 50%% and 75%%)")
    p.add_argument("--alpha", type=float, default=None,
                   help="mixup α for every mixing method (default: paper's best for the ratio)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout p for every method (default: paper's best for dropout methods, else 0)")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing ε for label_smoothing")
    p.add_argument("--k", type=int, default=5, help="neighbours for mixup_knn")
    p.add_argument("--noise", choices=NOISE_TYPES, default="sym",
                   help="sym = uniform over all classes; asym = CIFAR-10 class-pair flips")
    p.add_argument("--noise-seed", type=int, default=0,
                   help="seed of the noisy labels (and training subset), separate from --seed")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="dataset")
    p.add_argument("--data", type=Path, default=None,
                   help="data path (default: $ROBUSTMIX_DATA, ./data/, or ../shared/data/cifar10-jpeg.tar.gz)")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10 with torchvision into --data (or ./data)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder of run directories")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="training seed(s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto = bf16 autocast where the GPU or CPU computes bf16 natively, else fp32")
    p.add_argument("--width", type=int, default=None, help="override the profile's network width")
    p.add_argument("--train-subset", type=int, default=None,
                   help="override the profile's training subset size (0 = all)")
    p.add_argument("--force", action="store_true", help="retrain runs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def configs_from_args(args, device: torch.device) -> list[TrainConfig]:
    profile = args.profile if args.profile != "auto" else ("paper" if device.type == "cuda" else "quick")
    precision = resolve_precision(args.precision, device)
    for r in args.ratio:
        if not 0.0 <= r <= 1.0:
            raise UsageError(f"--ratio {r} is outside [0, 1]")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        raise UsageError(f"unknown method {', '.join(unknown) or '(none)'} (choose from {', '.join(METHODS)})")
    cfgs: list[TrainConfig] = []
    for ratio in args.ratio:
        for method in args.methods:
            for seed in args.seed:
                cfgs.append(make_config(
                    method=method, ratio=ratio, profile=profile, alpha=args.alpha,
                    dropout=args.dropout, epochs=args.epochs, dataset=args.dataset,
                    noise=args.noise, noise_seed=args.noise_seed, seed=seed,
                    precision=precision, smoothing=args.smoothing, knn_k=args.k, width=args.width))
                if args.train_subset is not None:
                    cfgs[-1].train_subset = args.train_subset or None
                    cfgs[-1].validate()
                if any(c.run_name == cfgs[-1].run_name for c in cfgs[:-1]):
                    cfgs.pop()  # a repeated value (--seed 0 0) names the same run once
    return cfgs


def results_table(runs: list[Path]) -> pd.DataFrame:
    rows = []
    for run in runs:
        s = read_json(run / "summary.json")
        ref = paper.lookup(s["ratio"], s["method"]) if s["noise"] == "sym" else None
        rows.append({
            "ratio": s["ratio"], "method": s["method"], "alpha": s["alpha"], "p": s["dropout"],
            "seed": s["seed"], "noise_rate": round(100 * s["actual_noise_rate"], 1),
            "best_err": round(100 * s["best_test_error"], 1), "best_ep": s["best_epoch"],
            "last_err": round(100 * s["last_test_error"], 1),
            "paper_best": ref[0] if ref else float("nan"), "paper_last": ref[1] if ref else float("nan"),
            "min": round(s["total_seconds"] / 60, 1),
        })
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    cfgs = configs_from_args(args, device)
    check_writable(args.out)
    plans = [(cfg, *plan_run(args.out, cfg, args.force)) for cfg in cfgs]
    todo = [c for c, _, action in plans if action != "done"]
    est = estimate_seconds(todo, device)
    print(f"robustmix.noise: profile {cfgs[0].profile}, device {device} ({device_name(device)}, "
          f"{cfgs[0].precision}), {len(todo)} of {len(cfgs)} runs to train, "
          f"estimated {est / 60:.0f} min", flush=True)
    ds = load_dataset(args.dataset, args.data, args.download) if todo else None
    if ds is not None:
        print(f"data: {ds.description} from {ds.source} "
              f"({len(ds.y_train)} train / {len(ds.y_test)} test)", flush=True)
    for cfg, run, action in plans:
        if action == "done":
            s = read_json(run / "summary.json")
            print(f"{run}: finished earlier (best error {100 * s['best_test_error']:.1f}%, "
                  f"last {100 * s['last_test_error']:.1f}%); --force retrains", flush=True)
            continue
        start_run(run, cfg, device, fresh=action in ("new", "force"),
                  data={"source": str(Path(ds.source).resolve()), "description": ds.description})
        verb = "resuming" if action == "resume" else "training"
        print(f"{verb} {run}", flush=True)
        s = train_run(cfg, ds, run, device, show_progress=not args.quiet)
        print(f"  noise actually wrong: {100 * s['actual_noise_rate']:.1f}%, best error "
              f"{100 * s['best_test_error']:.1f}% (epoch {s['best_epoch']}), last "
              f"{100 * s['last_test_error']:.1f}%, {s['images_per_second']:.0f} img/s", flush=True)
    table = results_table([run for _, run, _ in plans])
    print()
    print("test error (%) on", "the full test set" if not cfgs[0].test_n else
          f"{cfgs[0].test_n} test images", "- paper: Table 2 of Zhang et al. 2018 (PreAct ResNet-18, 200 epochs)")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    entry(main)
