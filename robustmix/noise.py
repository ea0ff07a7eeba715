"""`python -m robustmix.noise --ratio 0.5`: train methods on label-noisy data and compare with
Table 2 of the mixup paper. Parses, validates and prints; training is robustmix.studies.local's."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import Parser, csv_list, entry
from .data.classes import CIFAR10_CLASSES, DATASETS, FASHION_CLASSES
from .data.labelnoise import (
    CIFAR10N_LABEL_SETS,
    NOISE_HELP,
    NOISE_TYPES,
    TAKES_RATIO,
    NoiseSpec,
    resolve_file,
)
from .errors import UsageError
from .runs.checkpoint_names import LAST_CK, SELECTED_CK, TEST_SELECTED_CK, error_line
from .training.config import PROFILES, TrainConfig, config_grid
from .training.methods import METHODS, PAPER_METHODS
from .training.plugins import DEFAULT_MODEL, MODELS, parse_value, resolve_method

if TYPE_CHECKING:
    import pandas as pd
    import torch


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.noise",
               description="Train ERM, dropout, mixup and mixup+dropout (or the ablations) on "
                           "a dataset with corrupted training labels; print best/last test error "
                           "beside the paper's Table 2.")
    p.add_argument("--ratio", type=float, nargs="+", default=None,
                   help="noise ratio(s) r in [0, 1] of sym, asym and idn noise (default 0.5); "
                        "matrix and cifar10n take none: their rate is measured")
    p.add_argument("--methods", type=csv_list(str), default=list(PAPER_METHODS),
                   help="comma-separated methods: " + "; ".join(f"{k} = {v.help}" for k, v in METHODS.items())
                   + "; or a method of your own: an import path package.module:Class to a "
                   "subclass of robustmix.training.api.Method, or the name of an entry point of "
                   "the group robustmix.methods")
    p.add_argument("--method-param", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                   help="a parameter of a method that declares it (e.g. gce's q = 0.7, sce's "
                        "alpha = 0.1, beta = 1, A = -4); KEY=VALUE sets it for every named method "
                        "that takes KEY, METHOD.KEY=VALUE for one; repeat for several. Stored in "
                        "config.json and spelt in the run name")
    p.add_argument("--model", default=None,
                   help="the network (default: the profile's: fastnet for fast and fast-long, "
                        f"{DEFAULT_MODEL} otherwise): " + "; ".join(f"{k} = {v}" for k, v in MODELS.items())
                        + "; or an import path package.module:factory to a function "
                        "(num_classes, in_channels) -> torch.nn.Module taking images in [0, 1]")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise the inputs by the dataset's channel statistics inside the "
                        "model (None: yes for the built-in models, no for a factory's)")
    p.add_argument("--profile", choices=["auto", *PROFILES], default="auto",
                   help="paper = 200 epochs, width 64, all data; quick = width 16, 2,000-image "
                        "subset, 80 epochs, 1,000 test images; fast = FastNet on all 45,000 "
                        "training images, 15 epochs (early-stopping regime); fast-long = the "
                        "same, 60 epochs (memorising regime); auto = paper on CUDA, fast otherwise")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the profile's epochs (step schedules keep their lr steps at 50%% and 75%%, "
                        "linear ones their warm-up fraction)")
    p.add_argument("--hparams", choices=["auto", "paper", "tuned"], default="auto",
                   help="default α and p: paper = Table 2's best per noise level (α = 1 for "
                        "clean labels); tuned = chosen per profile on noisy validation accuracy "
                        "(quick: reports/sweep_quick; fast: reports/fast_sweep; none elsewhere); "
                        "auto = tuned for the quick profile, paper for the others")
    p.add_argument("--alpha", type=float, default=None,
                   help="mixup α for every mixing method (default: paper's best for the ratio)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout p for every method (default: paper's best for dropout methods, else 0)")
    p.add_argument("--smoothing", type=float, default=0.1, help="label smoothing ε for label_smoothing")
    p.add_argument("--k", type=int, default=5, help="neighbours for mixup_knn")
    p.add_argument("--noise", choices=NOISE_TYPES, default="sym",
                   help="noise source: " + "; ".join(f"{k} = {v}" for k, v in NOISE_HELP.items()))
    p.add_argument("--noise-labels", choices=list(CIFAR10N_LABEL_SETS), default=None,
                   help="CIFAR-10N label set, required with --noise cifar10n: aggre = majority "
                        "vote of three workers (9.01%% wrong), rand1/rand2/rand3 = one worker "
                        "each (17-18%%), worst = a wrong worker label wherever there is one "
                        "(40.21%%)")
    p.add_argument("--noise-file", type=Path, default=None,
                   help="with --noise cifar10n: CIFAR-10_human.pt from the CIFAR-N repository "
                        "(github.com/UCSC-REAL/cifar-10-100n, data/); with --noise matrix: the "
                        "transition matrix T as CSV or .npy (rows = true class, summing to 1)")
    p.add_argument("--write-matrix", type=Path, default=None, metavar="CSV",
                   help="write the transition matrix of the chosen noise over the whole "
                        "training set (e.g. T estimated from CIFAR-10N's worst labels) to this "
                        ".csv, usable as --noise matrix --noise-file, and stop; trains nothing")
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
                   help="run training steps through torch.compile (default off until "
                        "experiments/bench.py, which times it on and off, shows a gain on the "
                        "device; recorded in config.json as backend.compile)")
    p.add_argument("--force", action="store_true", help="retrain runs that already exist")
    p.add_argument("--wait", action="store_true",
                   help="wait for runs another process is training instead of skipping them")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def noise_from_args(args) -> tuple[NoiseSpec, list[float]]:
    """The noise source with its file resolved and read (bad files fail here, before anything is
    written), and the ratios it is trained at ([0.0] for sources that take none)."""
    if args.noise in TAKES_RATIO:
        ratios = args.ratio if args.ratio is not None else [0.5]
    elif args.ratio is not None:
        raise UsageError(f"--ratio does not apply to --noise {args.noise}: its noise rate is "
                         "measured, not set")
    else:
        ratios = [0.0]
    spec = NoiseSpec(args.noise, 0.0, args.noise_labels,
                     str(args.noise_file) if args.noise_file is not None else None)
    spec.check(args.dataset)
    classes = CIFAR10_CLASSES if args.dataset == "cifar10" else FASHION_CLASSES
    return resolve_file(spec, len(classes)), ratios


def configs_from_args(args, device: torch.device, precision: str) -> list[TrainConfig]:
    profile = args.profile if args.profile != "auto" else ("paper" if device.type == "cuda" else "fast")
    source, ratios = noise_from_args(args)
    args.ratio = ratios
    for r in args.ratio:
        if not 0.0 <= r <= 1.0:
            raise UsageError(f"--ratio {r} is outside [0, 1]")
    if not args.methods:
        raise UsageError(f"unknown method (none) (choose from {', '.join(METHODS)})")
    specs = [resolve_method(m) for m in args.methods]
    params = method_params(args.method_param, specs)
    for name, seeds in (("--seed", args.seed), ("--noise-seed", args.noise_seed)):
        if not seeds or any(s < 0 for s in seeds):
            raise UsageError(f"{name} needs one or more integers >= 0, got {seeds}")
    if args.val_n is not None and args.val_n < 0:
        raise UsageError(f"--val-n must be >= 0, got {args.val_n}")
    common = dict(model=args.model, normalize=args.normalize, profile=profile, alpha=args.alpha,
                  dropout=args.dropout, epochs=args.epochs, dataset=args.dataset,
                  noise=args.noise, noise_labels=source.labels, noise_file=source.file,
                  noise_sha256=source.sha256, val_n=args.val_n, hparams=args.hparams,
                  precision=precision, smoothing=args.smoothing, knn_k=args.k, width=args.width,
                  train_subset=args.train_subset)
    return config_grid(common, [{"ratio": r} for r in args.ratio],
                       [{"method": s.name, "method_params": params[s.name]} for s in specs],
                       [{"noise_seed": s} for s in args.noise_seed],
                       [{"seed": s} for s in args.seed])


def method_params(items: list[str], specs: list) -> dict[str, dict]:
    """--method-param values per method name: KEY=VALUE for every named method that declares KEY
    (at least one must), METHOD.KEY=VALUE for that one."""
    out: dict[str, dict] = {s.name: {} for s in specs}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--method-param {item!r} is not KEY=VALUE or METHOD.KEY=VALUE")
        name, dot, key = key.rpartition(".")
        targets = [s for s in specs if s.name == name] if dot else \
            [s for s in specs if key in s.defaults]
        if dot and not targets:
            raise UsageError(f"--method-param {item!r}: method '{name}' is not in --methods")
        if not targets:
            takes = "; ".join(f"{s.name}: {', '.join(s.defaults) or 'none'}" for s in specs)
            raise UsageError(f"--method-param {item!r}: no method in --methods has a parameter "
                             f"'{key}' ({takes})")
        for s in targets:
            if key not in s.defaults:
                raise UsageError(f"method {s.name}: unknown parameter '{key}' (it takes "
                                 f"{', '.join(s.defaults) or 'none'})")
            try:
                out[s.name][key] = parse_value(text, s.defaults[key])
            except UsageError as e:
                raise UsageError(f"--method-param {item!r} for {s.name}: {e}") from None
    return out


def _percent(fraction: float | None) -> float:
    return float("nan") if fraction is None else round(100 * fraction, 1)


def results_table(runs: list[Path]) -> pd.DataFrame:
    import pandas as pd

    from .reporting import paper
    from .runs.files import read_json
    from .runs.rundir import load_train_config

    rows = []
    for run in runs:
        s = read_json(run / "summary.json")
        cfg = load_train_config(run)
        ref = paper.lookup(s["ratio"], s["method"], dataset=s["dataset"], noise=s["noise"],
                           alpha=s["alpha"], dropout=s["dropout"])
        rows.append({
            "noise": cfg.noise_spec.tag, "method": s["method"], "alpha": s["alpha"], "p": s["dropout"],
            "seed": s["seed"], "noise_rate": round(100 * s["actual_noise_rate"], 1),
            # the paper's Table 2 "best" column is the test-selected checkpoint
            "best_err": round(100 * s[TEST_SELECTED_CK.summary_key("test_error")], 1),
            "best_ep": s[TEST_SELECTED_CK.summary_key("epoch")],
            "last_err": round(100 * s[LAST_CK.summary_key("test_error")], 1),
            # on the whole test set, where the profile tests a subset per epoch (NaN otherwise)
            "full_sel": _percent(s.get(SELECTED_CK.full_error_key)),
            "full_last": _percent(s.get(LAST_CK.full_error_key)),
            "paper_best": ref[0] if ref else float("nan"), "paper_last": ref[1] if ref else float("nan"),
            "min": round(s["total_seconds"] / 60, 1),
        })
    return pd.DataFrame(rows)


def write_matrix(args, cfg: TrainConfig) -> int:
    """--write-matrix: the empirical transition matrix of cfg's noise over the whole training
    set (the label file alone for cifar10n), written as CSV; nothing else is written."""
    from .data.cifar10n import load_human_labels
    from .data.labelnoise import noisy_labels
    from .data.transition import per_class_rate, row_normalise, transition_counts, write_matrix
    from .runs.rundir import check_writable

    path = args.write_matrix
    if path.suffix.lower() != ".csv":
        raise UsageError(f"--write-matrix writes CSV: give a path ending in .csv, not {path}")
    if len(args.ratio) > 1 or len(args.noise_seed) > 1:
        raise UsageError("--write-matrix writes one matrix: give one --ratio and one --noise-seed")
    spec = cfg.noise_spec
    if spec.source == "cifar10n":
        human = load_human_labels(spec.file, spec.sha256)
        clean, noisy = human.labels["clean_label"], human.label_set(spec.labels)
        classes, where = CIFAR10_CLASSES, f"{spec.file} ({len(clean)} images)"
    else:
        from .data.datasets import load_dataset

        ds = load_dataset(args.dataset, args.data, args.download)
        clean, noisy = ds.y_train, noisy_labels(spec, ds, cfg.noise_seed)
        classes, where = ds.classes, f"{ds.description} from {ds.source} ({len(clean)} images)"
    counts = transition_counts(clean, noisy, len(classes))
    check_writable(path.parent if str(path.parent) else Path("."))
    write_matrix(path, row_normalise(counts), classes)
    rates = ", ".join(f"{c} {100 * r:.1f}" for c, r in zip(classes, per_class_rate(counts),
                                                          strict=True))
    print(f"{path}: transition matrix of {spec.tag} noise on {where}; "
          f"{100 * (clean != noisy).mean():.2f}% of the labels wrong (per true class, %: {rates})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data.datasets import load_dataset
    from .evaluation.device import choose_precision, resolve_device
    from .runs.files import SUMMARY, read_json
    from .runs.provenance import device_name
    from .runs.rundir import check_writable, plan_run
    from .studies.local import Planned, train_planned
    from .training.estimate import estimate_text

    device = resolve_device(args.device)
    precision, why = choose_precision(args.precision, device)
    cfgs = configs_from_args(args, device, precision)
    if args.write_matrix is not None:
        return write_matrix(args, cfgs[0])
    check_writable(args.out)
    plans = [Planned(cfg, *plan_run(args.out, cfg, args.force, args.precision == "auto"))
             for cfg in cfgs]
    todo = [p.cfg for p in plans if p.action != "done"]
    print(f"robustmix.noise: profile {cfgs[0].profile}, device {device} ({device_name(device)}, "
          f"{precision}: {why}), {len(todo)} of {len(cfgs)} runs to train, "
          f"{estimate_text(todo, device, args.out)}", flush=True)
    for p in plans:
        if p.action == "done":
            s = read_json(p.run / SUMMARY)
            print(f"{p.run}: finished earlier ({error_line(s)}); --force retrains", flush=True)

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
        print(f"  {s['run']}: noise actually wrong {100 * s['actual_noise_rate']:.1f}%, "
              f"{error_line(s)}, {s['images_per_second']:.0f} img/s", flush=True)
    finished = [p.run for p in plans if (p.run / SUMMARY).exists()]
    table = results_table(finished)
    print()
    print("test error (%) on", "the full test set" if not cfgs[0].test_n else
          f"{cfgs[0].test_n} test images")
    if len(table) == 0:
        print("(no finished runs)")
        return 0
    if table["full_last"].isna().all():
        table = table.drop(columns=["full_sel", "full_last"])
    else:
        print("(best_err: the test-selected epoch, as the paper's \"best\"; full_sel, full_last: "
              "on the whole test set at the noisy-validation-selected and the last epoch)")
    print(table.to_string(index=False))
    if table["paper_best"].notna().any():
        print("paper: Table 2 of Zhang et al. 2018 (PreAct ResNet-18, width 64, 200 epochs, all "
              "50,000 images), shown only beside runs of the same dataset, noise, ratio, α and p"
              + ("" if cfgs[0].profile == "paper" else f"; these runs use the {cfgs[0].profile} "
                 "profile (another network, schedule or scale), so absolute numbers differ"))
    else:
        print("paper: no run here is comparable with Table 2 (it covers CIFAR-10, symmetric noise "
              "at 20/50/80 %, each method at the paper's α and p)")
    return 0


if __name__ == "__main__":
    entry(main)
