"""Training one run: data resident on the device, whole-batch crop/flip/mixup, resumable epochs.

The uint8 training set lives on the device, padded once; each batch is cropped and flipped by a
single gather, so no DataLoader workers or PIL images are involved. All randomness of an epoch
comes from generators seeded by (seed, epoch), which is what makes a resumed run end with exactly
the metrics of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .atomic import atomic_write, save_torch, write_csv, write_json
from .config import TrainConfig
from .data import Dataset
from .errors import UsageError
from .labelnoise import actual_noise_rate, balanced_subset, corrupt_labels
from .mixup import (
    METHODS,
    knn_partners,
    knn_table,
    mix_inputs,
    mix_targets,
    same_class_partners,
    sample_lambda,
    shuffle_partners,
    soft_cross_entropy,
)
from .models import PreActResNet, preact_resnet18
from .runs import BEST, LABELS, LAST, METRICS, SUMMARY

PAD = 4


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available")
    return dev


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def resolve_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_model(cfg: TrainConfig, ds: Dataset) -> PreActResNet:
    mean, std = ds.channel_stats() if ds.name != "cifar10" else CIFAR_STATS
    return preact_resnet18(ds.num_classes, cfg.width, ds.channels, cfg.dropout, mean, std)


# The canonical CIFAR-10 training-set statistics, fixed so models do not depend on the copy used.
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


@dataclass
class Labels:
    """The training set a run sees: indices into the dataset, clean and noisy labels."""

    index: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray

    @property
    def noise_rate(self) -> float:
        return actual_noise_rate(self.clean, self.noisy)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"index": self.index, "clean": self.clean, "noisy": self.noisy})


def make_labels(cfg: TrainConfig, ds: Dataset) -> Labels:
    # Noise is drawn over the whole training set, so a subset sees the same labels as a full run.
    noisy_all = corrupt_labels(ds.y_train, cfg.ratio, cfg.noise, ds.num_classes, cfg.noise_seed, ds.name)
    idx = balanced_subset(ds.y_train, cfg.train_subset, cfg.noise_seed)
    return Labels(idx, ds.y_train[idx], noisy_all[idx])


def test_indices(cfg: TrainConfig, ds: Dataset) -> np.ndarray:
    """The fixed, class-balanced test images a profile evaluates (the same for every run)."""
    return balanced_subset(ds.y_test, cfg.test_n, 0)


def to_device_images(x: np.ndarray, device: torch.device, pad: int = 0) -> torch.Tensor:
    """uint8 N x H x W x C on the device, zero-padded spatially by pad pixels."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if pad:
        t = torch.nn.functional.pad(t, (0, 0, pad, pad, pad, pad))
    return t.to(device)


def crop_flip(padded: torch.Tensor, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
              flip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Random crop (offsets dy, dx into the padded image) and horizontal flip as one gather.

    Returns float images in [0, 1], logically N x C x H x W and stored channels-last.
    """
    h, w = size
    rows = dy[:, None] + torch.arange(h, device=padded.device)
    base = torch.arange(w, device=padded.device)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - base, base)
    out = padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2).float().div_(255.0)


def plain_images(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class BatchPlan:
    """Every random draw of one batch, so tests can replay a batch through another path."""

    idx: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    flip: np.ndarray
    lam: float
    partner: np.ndarray  # positions in the batch, or dataset positions for knn
    partner_dy: np.ndarray | None = None
    partner_dx: np.ndarray | None = None
    partner_flip: np.ndarray | None = None


def epoch_plans(cfg: TrainConfig, epoch: int, noisy: np.ndarray, knn: np.ndarray | None) -> list[BatchPlan]:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, epoch, 0x65706F63]))
    n = len(noisy)
    order = rng.permutation(n)
    bs = cfg.batch_size
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] < 2:  # BatchNorm cannot train on a batch of one
        starts.pop()
    spec = METHODS[cfg.method]
    plans = []
    for s in starts:
        idx = order[s:s + bs]
        b = len(idx)
        offs = rng.integers(0, 2 * PAD + 1, size=(2, b)) if cfg.augment else np.full((2, b), PAD)
        flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        lam = sample_lambda(rng, cfg.alpha) if spec.partner != "none" or spec.target == "labels_only" else 1.0
        plan = BatchPlan(idx, offs[0], offs[1], flip, lam, np.arange(b))
        if spec.partner == "shuffle" or spec.target == "labels_only":
            plan.partner = shuffle_partners(rng, b)
        elif spec.partner == "same_class":
            plan.partner = same_class_partners(rng, noisy[idx])
        elif spec.partner == "knn":
            plan.partner = knn_partners(rng, knn, idx)
            poffs = rng.integers(0, 2 * PAD + 1, size=(2, b)) if cfg.augment else np.full((2, b), PAD)
            plan.partner_dy, plan.partner_dx = poffs[0], poffs[1]
            plan.partner_flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        plans.append(plan)
    return plans


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to a path
        np.save(f, array, allow_pickle=False)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    return cfg.lr * 0.1 ** sum(epoch >= m for m in cfg.milestones)


class Trainer:
    """Holds the device-resident data of one run and trains it epoch by epoch."""

    def __init__(self, cfg: TrainConfig, ds: Dataset, labels: Labels, device: torch.device,
                 run: Path | None = None, show_progress: bool = True) -> None:
        self.cfg, self.ds, self.labels, self.device, self.run = cfg, ds, labels, device, run
        self.show_progress = show_progress
        self.size = ds.x_train.shape[1:3]
        self.padded = to_device_images(ds.x_train[labels.index], device, PAD)
        self.noisy = torch.from_numpy(labels.noisy).to(device)
        t_idx = test_indices(cfg, ds)
        self.x_test = to_device_images(ds.x_test[t_idx], device)
        self.y_test = torch.from_numpy(ds.y_test[t_idx]).to(device)
        # A fixed sample of the training subset, evaluated unaugmented, measures memorisation.
        rng = np.random.default_rng(np.random.SeedSequence([cfg.noise_seed, 0x6D656D6F]))
        ev = np.sort(rng.permutation(len(labels.index))[: cfg.train_eval_n])
        self.x_train_eval = to_device_images(ds.x_train[labels.index[ev]], device)
        self.y_eval_noisy = torch.from_numpy(labels.noisy[ev]).to(device)
        self.y_eval_clean = torch.from_numpy(labels.clean[ev]).to(device)
        self.knn = self._knn_table() if METHODS[cfg.method].partner == "knn" else None
        # Initial weights come from the run's seed alone, whatever ran before in this process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = build_model(cfg, ds)
        self.model = model.to(device).to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)

    def _knn_table(self) -> np.ndarray:
        path = self.run / "knn.npy" if self.run else None
        if path is not None and path.exists():
            table = np.load(path)
            if table.shape == (len(self.labels.index), self.cfg.knn_k):
                return table
        table = knn_table(self.ds.x_train[self.labels.index], self.labels.noisy, self.cfg.knn_k)
        if path is not None:
            atomic_write(path, lambda p: _save_npy(p, table))
        return table

    def batch_tensors(self, plan: BatchPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and soft targets of one planned batch."""
        dev = self.device
        spec = METHODS[self.cfg.method]
        t = lambda a: torch.from_numpy(np.asarray(a)).to(dev)  # noqa: E731
        idx = t(plan.idx)
        x = crop_flip(self.padded, idx, t(plan.dy), t(plan.dx), t(plan.flip), self.size)
        y = self.noisy[idx]
        if spec.partner == "knn":
            pidx = t(plan.partner)
            xp = crop_flip(self.padded, pidx, t(plan.partner_dy), t(plan.partner_dx),
                           t(plan.partner_flip), self.size)
            yp = self.noisy[pidx]
        else:
            perm = t(plan.partner)
            xp, yp = x[perm], y[perm]
        targets = mix_targets(y, yp, plan.lam, self.ds.num_classes, spec.target, self.cfg.smoothing)
        return mix_inputs(x, xp, plan.lam, spec.target), targets

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout masks, replayable on resume
        lr = lr_at(cfg, epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        plans = epoch_plans(cfg, epoch, self.labels.noisy, self.knn)
        total_loss, seen = torch.zeros((), device=self.device), 0
        t0 = time.perf_counter()
        bar = tqdm(plans, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                   disable=not self.show_progress)
        for plan in bar:
            x, targets = self.batch_tensors(plan)
            with autocast(self.device, cfg.precision):
                logits = self.model(x)
            loss = soft_cross_entropy(logits, targets)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total_loss += loss.detach() * len(plan.idx)
            seen += len(plan.idx)
        train_loss = float(total_loss) / seen
        if not math.isfinite(train_loss):
            raise UsageError(f"training diverged at epoch {epoch + 1} (loss {train_loss})")
        train_seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, **self.evaluate(),
               "train_seconds": train_seconds, "seconds": time.perf_counter() - t0,
               "images_per_second": seen / train_seconds}
        return row

    def predict(self, x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = predict_logits(self.model, x_uint8, self.device, self.cfg.precision)
        return logits.argmax(1), logits

    def evaluate(self) -> dict:
        pred, logits = self.predict(self.x_test)
        test_loss = torch.nn.functional.cross_entropy(logits, self.y_test).item()
        test_acc = (pred == self.y_test).float().mean().item()
        tp, _ = self.predict(self.x_train_eval)
        corrupted = self.y_eval_noisy != self.y_eval_clean
        memorised = ((tp == self.y_eval_noisy) & corrupted).sum().item() / max(int(corrupted.sum()), 1)
        return {
            "test_acc": test_acc, "test_error": 1.0 - test_acc, "test_loss": test_loss,
            "train_acc_noisy": (tp == self.y_eval_noisy).float().mean().item(),
            "train_acc_clean": (tp == self.y_eval_clean).float().mean().item(),
            "memorised": memorised if corrupted.any() else float("nan"),
        }

    def state(self, epoch: int, best: tuple[float, int]) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "epoch": epoch, "best_acc": best[0], "best_epoch": best[1]}


def eval_batch_size(device: torch.device) -> int:
    return 4096 if device.type == "cuda" else 1000


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                   precision: str) -> torch.Tensor:
    """fp32 logits of the model in eval mode for uint8 N x H x W x C images (or float N x C x H x W
    images in [0, 1]), in batches of eval_batch_size, exactly as training evaluates."""
    model.eval()
    bs = eval_batch_size(device)
    out = []
    for s in range(0, len(x), bs):
        xb = x[s:s + bs].to(device)
        xb = plain_images(xb) if xb.dtype == torch.uint8 else xb
        with autocast(device, precision):
            out.append(model(xb.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out)


def train_run(cfg: TrainConfig, ds: Dataset, run: Path, device: torch.device,
              show_progress: bool = True) -> dict:
    """Train (or resume) the run in directory run; return its summary."""
    labels = make_labels(cfg, ds)
    if not (run / LABELS).exists():
        write_csv(run / LABELS, labels.to_frame())
    trainer = Trainer(cfg, ds, labels, device, run, show_progress)
    start, best, rows = 0, (-1.0, 0), []
    if (run / LAST).exists():
        ck = torch.load(run / LAST, map_location=device, weights_only=True)
        trainer.model.load_state_dict(ck["model"])
        trainer.opt.load_state_dict(ck["optimizer"])
        start, best = int(ck["epoch"]), (float(ck["best_acc"]), int(ck["best_epoch"]))
        if (run / METRICS).exists():
            # metrics.csv is written before last.pt, so it may hold one epoch more: drop it.
            rows = pd.read_csv(run / METRICS).query("epoch <= @start").to_dict("records")
    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, unit="epoch",
               desc=cfg.run_name, disable=not show_progress)
    for epoch in bar:
        row = trainer.train_epoch(epoch)
        rows.append(row)
        if row["test_acc"] > best[0]:
            best = (row["test_acc"], epoch + 1)
            save_torch(run / BEST, {"model": trainer.model.state_dict(), "epoch": epoch + 1})
        write_csv(run / METRICS, pd.DataFrame(rows))
        save_torch(run / LAST, trainer.state(epoch + 1, best))
        bar.set_postfix(test=f"{row['test_acc']:.3f}", noisy=f"{row['train_acc_noisy']:.3f}")
    metrics = pd.DataFrame(rows)
    summary = summarise(cfg, metrics, labels, ds)
    write_json(run / SUMMARY, summary)
    return summary


def summarise(cfg: TrainConfig, metrics: pd.DataFrame, labels: Labels, ds: Dataset) -> dict:
    best = metrics.loc[metrics["test_acc"].idxmax()]
    last = metrics.iloc[-1]
    return {
        "run": cfg.run_name, "dataset": cfg.dataset, "data": ds.description,
        "noise": cfg.noise, "ratio": cfg.ratio, "method": cfg.method, "alpha": cfg.alpha,
        "dropout": cfg.dropout, "seed": cfg.seed, "profile": cfg.profile,
        "best_test_error": float(best["test_error"]), "best_epoch": int(best["epoch"]),
        "last_test_error": float(last["test_error"]), "last_epoch": int(last["epoch"]),
        "last_train_acc_noisy": float(last["train_acc_noisy"]),
        "last_train_acc_clean": float(last["train_acc_clean"]),
        # No corrupted labels (ratio 0) means nothing to memorise: None, not NaN, in JSON.
        "last_memorised": None if pd.isna(last["memorised"]) else float(last["memorised"]),
        "actual_noise_rate": labels.noise_rate, "train_images": len(labels.index),
        "test_images": int(min(cfg.test_n or len(ds.y_test), len(ds.y_test))),
        "train_seconds": float(metrics["train_seconds"].sum()),
        "total_seconds": float(metrics["seconds"].sum()),
        "images_per_second": float(len(labels.index) * len(metrics) / metrics["train_seconds"].sum()),
    }
