"""`python -m robustmix.noise --ratio 0.5`: train methods on label-noisy data and compare with
Table 2 of the mixup paper. Parses, validates and prints; training is robustmix.studies.local's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import Parser, csv_list, entry
from .data.classes import DATASETS
from .data.labelnoise import NOISE_TYPES
from .errors import UsageError
from .training.config import PROFILES, TrainConfig, make_config
from .training.methods import METHODS, PAPER_METHODS

if TYPE_CHECKING:
    import pandas as pd
    import torch


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
    p.add_argument("--hparams", choices=["auto", "paper", "tuned"], default="auto",
                   help="default α and p: paper = Table 2's best per noise level (α = 1 for "
                        "clean labels); tuned = chosen at the quick scale on noisy validation "
                        "accuracy (reports/sweep_quick); auto = tuned for the quick profile, paper "
                        "for the paper profile")
    p.add_argument("--alpha", type=float, default=None,
                   help="mixup α for every mixing method (default: paper's best for the ratio)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout p for every method (default: paper's best for dropout methods, else 0)")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing ε for label_smoothing")
    p.add_argument("--k", type=int, default=5, help="neighbours for mixup_knn")
    p.add_argument("--noise", choices=NOISE_TYPES, default="sym",
                   help="sym = uniform over all classes; asym = CIFAR-10 class-pair flips")
    p.add_argument("--noise-seed", "--noise-seeds", type=int, nargs="+", default=[0],
                   help="seed(s) of the noisy labels, the training subset and the validation "
                        "set, separate from --seed: every method and training seed sees the same "
                        "corrupted labels")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="dataset")
    p.add_argument("--data", type=Path, default=None,
                   help="data path (default: $ROBUSTMIX_DATA, ./data/, or ../shared/data/cifar10-jpeg.tar.gz)")
    p.add_argument("--download", action="store_true",
                   help="download CIFAR-10 with torchvision into --data (or ./data)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder of run directories")
    p.add_argument("--seed", "--seeds", type=int, nargs="+", default=[0],
                   help="training seed(s): initial weights, batch order, augmentation, λ; one "
                        "run per seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto = bf16 autocast where the GPU or CPU computes bf16 natively, else fp32")
    p.add_argument("--width", type=int, default=None, help="override the profile's network width")
    p.add_argument("--train-subset", type=int, default=None,
                   help="override the profile's training subset size (0 = all)")
    p.add_argument("--val-n", type=int, default=None,
                   help="validation images held out of the training pool, labelled noisily, to "
                        "select a checkpoint without the test set (default: the profile's, 5,000 "
                        "for paper, 1,000 for quick; 0 = none, the paper's exact training set)")
    p.add_argument("--compile", action="store_true",
                   help="run training steps through torch.compile (default off: on CPU its "
                        "minutes of compilation outweigh what it saves in a quick-profile run, "
                        "reports/benchmarks/cpu.md; recorded in config.json as backend.compile)")
    p.add_argument("--force", action="store_true", help="retrain runs that already exist")
    p.add_argument("--wait", action="store_true",
                   help="wait for runs another process is training instead of skipping them")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def configs_from_args(args, device: torch.device, precision: str) -> list[TrainConfig]:
    profile = args.profile if args.profile != "auto" else ("paper" if device.type == "cuda" else "quick")
    for r in args.ratio:
        if not 0.0 <= r <= 1.0:
            raise UsageError(f"--ratio {r} is outside [0, 1]")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        raise UsageError(f"unknown method {', '.join(unknown) or '(none)'} (choose from {', '.join(METHODS)})")
    for name, seeds in (("--seed", args.seed), ("--noise-seed", args.noise_seed)):
        if not seeds or any(s < 0 for s in seeds):
            raise UsageError(f"{name} needs one or more integers >= 0, got {seeds}")
    if args.val_n is not None and args.val_n < 0:
        raise UsageError(f"--val-n must be >= 0, got {args.val_n}")
    cfgs: list[TrainConfig] = []
    for ratio in args.ratio:
        for method in args.methods:
            for noise_seed in args.noise_seed:
                for seed in args.seed:
                    cfgs.append(make_config(
                        method=method, ratio=ratio, profile=profile, alpha=args.alpha,
                        dropout=args.dropout, epochs=args.epochs, dataset=args.dataset,
                        noise=args.noise, noise_seed=noise_seed, seed=seed, val_n=args.val_n,
                        hparams=args.hparams,
                        precision=precision, smoothing=args.smoothing, knn_k=args.k,
                        width=args.width))
                    if args.train_subset is not None:
                        cfgs[-1].train_subset = args.train_subset or None
                        cfgs[-1].validate()
                    if any(c.run_name == cfgs[-1].run_name for c in cfgs[:-1]):
                        cfgs.pop()  # a repeated value (--seed 0 0) names the same run once
    return cfgs


def results_table(runs: list[Path]) -> pd.DataFrame:
    import pandas as pd

    from .reporting import paper
    from .runs.files import read_json

    rows = []
    for run in runs:
        s = read_json(run / "summary.json")
        ref = paper.lookup(s["ratio"], s["method"], dataset=s["dataset"], noise=s["noise"],
                           alpha=s["alpha"], dropout=s["dropout"])
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
    from .data.datasets import load_dataset
    from .evaluation.device import choose_precision, resolve_device
    from .runs.files import SUMMARY, read_json
    from .runs.provenance import device_name
    from .runs.rundir import check_writable, plan_run
    from .studies.local import Planned, train_planned
    from .training.estimate import estimate_seconds

    device = resolve_device(args.device)
    precision, why = choose_precision(args.precision, device)
    cfgs = configs_from_args(args, device, precision)
    check_writable(args.out)
    plans = [Planned(cfg, *plan_run(args.out, cfg, args.force)) for cfg in cfgs]
    todo = [p.cfg for p in plans if p.action != "done"]
    print(f"robustmix.noise: profile {cfgs[0].profile}, device {device} ({device_name(device)}, "
          f"{precision}: {why}), {len(todo)} of {len(cfgs)} runs to train, "
          f"estimated {estimate_seconds(todo, device) / 60:.0f} min", flush=True)
    for p in plans:
        if p.action == "done":
            s = read_json(p.run / SUMMARY)
            print(f"{p.run}: finished earlier (best error {100 * s['best_test_error']:.1f}%, "
                  f"last {100 * s['last_test_error']:.1f}%); --force retrains", flush=True)

    def load():
        ds = load_dataset(args.dataset, args.data, args.download)
        print(f"data: {ds.description} from {ds.source} "
              f"({len(ds.y_train)} train / {len(ds.y_test)} test)", flush=True)
        return ds

    def started(_: int, p: Planned) -> None:
        print(f"{'resuming' if p.action == 'resume' else 'training'} {p.run}", flush=True)

    summaries = train_planned(plans, load, device, wait=args.wait, show_progress=not args.quiet,
                              precision_reason=why, compile=args.compile, on_start=started)
    for s in summaries.values():
        print(f"  {s['run']}: noise actually wrong {100 * s['actual_noise_rate']:.1f}%, best error "
              f"{100 * s['best_test_error']:.1f}% (epoch {s['best_epoch']}), last "
              f"{100 * s['last_test_error']:.1f}%, {s['images_per_second']:.0f} img/s", flush=True)
    finished = [p.run for p in plans if (p.run / SUMMARY).exists()]
    table = results_table(finished)
    print()
    print("test error (%) on", "the full test set" if not cfgs[0].test_n else
          f"{cfgs[0].test_n} test images")
    if len(table) == 0:
        print("(no finished runs)")
        return 0
    print(table.to_string(index=False))
    if table["paper_best"].notna().any():
        print("paper: Table 2 of Zhang et al. 2018 (PreAct ResNet-18, width 64, 200 epochs, all "
              "50,000 images), shown only beside runs of the same dataset, noise, ratio, α and p"
              + ("" if cfgs[0].profile == "paper" else f"; these runs use the {cfgs[0].profile} "
                 "profile, a smaller scale, so absolute numbers differ"))
    else:
        print("paper: no run here is comparable with Table 2 (it covers CIFAR-10, symmetric noise "
              "at 20/50/80 %, each method at the paper's α and p)")
    return 0


if __name__ == "__main__":
    entry(main)
