"""Training one run: device-resident data, whole-batch crop/flip/mixup, resumable epochs.

train_run writes the run directory's training files in an order that keeps them consistent
after a kill at any point: metrics.csv, then last.pt (the commit point of an epoch), then best.pt;
a resume reconciles best.pt with what last.pt committed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_write, write_csv, write_json
from ..data.datasets import Dataset
from ..data.transition import transition_counts
from ..errors import UsageError
from ..evaluation.device import autocast, configure_backends, place_model
from ..evaluation.images import to_device_images
from ..evaluation.predict import predict_logits, test_indices
from ..runs.checkpoint_names import ALL as CHECKPOINTS
from ..runs.checkpoint_names import KINDS, LAST_CK, SELECTED_CK, TEST_SELECTED_CK
from ..runs.checkpoints import load_checkpoint, save_checkpoint
from ..runs.files import BEST, KNN, LABELS, LAST, METRICS, NOISE, PREDICTIONS, SELECTED, SUMMARY
from .api import Batch
from .batches import BatchPlan, EpochPlan, crop_flip, crop_pad, device_epoch_plan
from .config import TrainConfig
from .labels import Labels, make_labels, noise_record
from .methods import METHODS
from .mixing import knn_table
from .models import build_model
from .plugins import method_for

__all__ = ["Trainer", "train_run", "summarise", "lr_at", "make_labels", "Labels"]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append .npy to a path
        np.save(f, array, allow_pickle=False)


def lr_at(cfg: TrainConfig, epoch: int, progress: float = 0.0) -> float:
    """The learning rate at `progress` (in [0, 1)) through epoch `epoch` (from 0): the step
    schedule changes only between epochs; the linear one rises from 0 to cfg.lr over the first
    cfg.warmup of training and falls back to 0 at its end."""
    if (cfg.schedule or "step") == "step":
        return cfg.lr * 0.1 ** sum(epoch >= m for m in cfg.milestones)
    t = (epoch + progress) / cfg.epochs
    warm = cfg.warmup or 0.0
    return cfg.lr * (t / warm if t < warm else (1.0 - t) / (1.0 - warm))


class Trainer:
    """Holds the device-resident data of one run and trains it epoch by epoch."""

    def __init__(self, cfg: TrainConfig, ds: Dataset, labels: Labels, device: torch.device,
                 run: Path | None = None, show_progress: bool = True, compile: bool = False) -> None:
        self.cfg, self.ds, self.labels, self.device, self.run = cfg, ds, labels, device, run
        self.backend = {**configure_backends(device), "compile": compile}
        self.show_progress = show_progress
        self.size = ds.x_train.shape[1:3]
        self.padded = to_device_images(ds.x_train[labels.index], device, crop_pad(cfg))
        self.noisy = torch.from_numpy(labels.noisy).to(device)
        t_idx = test_indices(ds.y_test, cfg.test_n)
        self.x_test = to_device_images(ds.x_test[t_idx], device)
        self.y_test = torch.from_numpy(ds.y_test[t_idx]).to(device)
        # A fixed sample of the training subset, evaluated unaugmented, measures memorisation.
        rng = np.random.default_rng(np.random.SeedSequence([cfg.noise_seed, 0x6D656D6F]))
        ev = np.sort(rng.permutation(len(labels.index))[: cfg.train_eval_n])
        self.x_train_eval = to_device_images(ds.x_train[labels.index[ev]], device)
        self.y_eval_noisy = torch.from_numpy(labels.noisy[ev]).to(device)
        self.y_eval_clean = torch.from_numpy(labels.clean[ev]).to(device)
        # The null of memorisation: for a corrupted example of true class c that the network
        # predicts as k, the chance that the noise process gave it label k, P(noisy = k | clean =
        # c, corrupted), from the run's own labels (symmetric noise: 1/(K-1) for k != c). A
        # network that never fitted the corrupted labels still "memorises" this share by its
        # own mistakes.
        flips = transition_counts(labels.clean, labels.noisy, ds.num_classes).astype(np.float64)
        np.fill_diagonal(flips, 0.0)
        rows = flips.sum(1, keepdims=True)
        self.flip_probs = torch.from_numpy(np.divide(flips, rows, out=np.zeros_like(flips),
                                                     where=rows > 0)).float().to(device)
        self.x_val = to_device_images(ds.x_train[labels.val_index], device)
        self.y_val_noisy = torch.from_numpy(labels.val_noisy).to(device)
        self.y_val_clean = torch.from_numpy(labels.val_clean).to(device)
        self.method = method_for(cfg)  # registers a plugin method this process has not met
        self.knn = self._knn_table() if METHODS[cfg.method].partner == "knn" else None
        # Initial weights come from the run's seed alone, whatever ran before in this process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = build_model(cfg, ds, ds.x_train[labels.index])
        self.model = place_model(model, device)
        # Training steps go through the compiled module; state_dict and evaluation use the model.
        self.forward = torch.compile(self.model) if compile else self.model
        # Frozen parameters (FastNet's whitening filters) stay out of the optimiser.
        self.opt = torch.optim.SGD([p for p in self.model.parameters() if p.requires_grad],
                                   lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, nesterov=bool(cfg.nesterov))

    def _knn_table(self) -> np.ndarray:
        path = self.run / KNN if self.run else None
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
        t = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731  (device slices pass as they are)
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
        x, targets = self.method.inputs_targets(
            Batch(x, y, xp, yp, plan.lam, self.ds.num_classes, idx))
        want = (len(plan.idx), self.ds.num_classes)
        if tuple(targets.shape) != want:
            raise UsageError(f"method {self.cfg.method} returned targets of shape "
                             f"{tuple(targets.shape)}, not {want} (one row of class "
                             "probabilities per image)")
        return x, targets

    def epoch_plan(self, epoch: int) -> EpochPlan | list[BatchPlan]:
        """The epoch's batches, on the device before the first step (see batches.py)."""
        return device_epoch_plan(self.cfg, epoch, self.labels.noisy, self.knn, self.device)

    def train_epoch(self, epoch: int) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout masks, replayable on resume
        lr = lr_at(cfg, epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.model.train()
        plans = self.epoch_plan(epoch)
        total_loss, seen = torch.zeros((), device=self.device), 0
        t0 = time.perf_counter()
        bar = tqdm(plans, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                   disable=not self.show_progress)
        stepwise = (cfg.schedule or "step") != "step"
        for i, plan in enumerate(bar):
            if stepwise:
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(cfg, epoch, i / len(plans))
            x, targets = self.batch_tensors(plan)
            with autocast(self.device, cfg.precision):
                logits = self.forward(x)
            loss = self.method.loss(logits, targets)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total_loss += loss.detach() * len(plan.idx)
            seen += len(plan.idx)
        train_loss = float(total_loss) / seen
        if not math.isfinite(train_loss):
            raise UsageError(f"training diverged at epoch {epoch + 1} (loss {train_loss}, "
                             f"method {cfg.method})")
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
        null = self.flip_probs[self.y_eval_clean[corrupted], tp[corrupted]]
        val = {"val_acc_noisy": float("nan"), "val_acc_clean": float("nan")}
        if len(self.y_val_noisy):
            vp, _ = self.predict(self.x_val)
            val = {"val_acc_noisy": (vp == self.y_val_noisy).float().mean().item(),
                   "val_acc_clean": (vp == self.y_val_clean).float().mean().item()}
        return {
            "test_acc": test_acc, "test_error": 1.0 - test_acc, "test_loss": test_loss,
            "train_acc_noisy": (tp == self.y_eval_noisy).float().mean().item(),
            "train_acc_clean": (tp == self.y_eval_clean).float().mean().item(),
            "memorised": memorised if corrupted.any() else float("nan"),
            "memorised_null": null.mean().item() if corrupted.any() else float("nan"),
            **val,
        }

    def state(self, epoch: int, best: tuple[float, int], selected: tuple[float, int]) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "epoch": epoch, "best_acc": best[0], "best_epoch": best[1],
                "selected_acc": selected[0], "selected_epoch": selected[1]}


def reconcile(run: Path, name: str, epoch: int, last: dict, device: torch.device) -> None:
    """Make the checkpoint file `name` hold `epoch`, the epoch last.pt names for it.

    best.pt and selected.pt are written after last.pt, so a kill between them leaves one of
    them an improvement behind; that epoch is then the last committed one, whose weights last.pt
    holds. epoch 0 means the run has none yet (no validation set, for selected.pt).
    """
    if epoch == 0:
        return
    if (run / name).exists():
        if int(load_checkpoint(run / name, device)["epoch"]) == epoch:
            return
    if epoch == int(last["epoch"]):
        save_checkpoint(run / name, {"model": last["model"], "epoch": epoch})
        return
    raise UsageError(f"{run}: {name} does not hold epoch {epoch} that {LAST} names for it "
                     "(written by an older robustmix?); use --force to retrain this run")


def train_run(cfg: TrainConfig, ds: Dataset, run: Path, device: torch.device,
              show_progress: bool = True, compile: bool = False) -> dict:
    """Train (or resume) the run in directory run; return its summary."""
    labels = make_labels(cfg, ds)
    if not (run / LABELS).exists():
        write_csv(run / LABELS, labels.to_frame())
    if not (run / NOISE).exists():
        write_json(run / NOISE, noise_record(cfg, labels, ds))
    trainer = Trainer(cfg, ds, labels, device, run, show_progress, compile)
    start, best, selected, rows = 0, (-1.0, 0), (-1.0, 0), []
    if (run / LAST).exists():
        ck = load_checkpoint(run / LAST, device)
        trainer.model.load_state_dict(ck["model"])
        trainer.opt.load_state_dict(ck["optimizer"])
        start, best = int(ck["epoch"]), (float(ck["best_acc"]), int(ck["best_epoch"]))
        selected = (float(ck.get("selected_acc", -1.0)), int(ck.get("selected_epoch", 0)))
        reconcile(run, BEST, best[1], ck, device)
        reconcile(run, SELECTED, selected[1], ck, device)
        if (run / METRICS).exists():
            # metrics.csv is written before last.pt, so it may hold one epoch more: drop it.
            rows = pd.read_csv(run / METRICS).query("epoch <= @start").to_dict("records")
    bar = tqdm(range(start, cfg.epochs), initial=start, total=cfg.epochs, unit="epoch",
               desc=cfg.run_name, disable=not show_progress)
    for epoch in bar:
        row = trainer.train_epoch(epoch)
        rows.append(row)
        improved = row["test_acc"] > best[0]
        if improved:
            best = (row["test_acc"], epoch + 1)
        # Selection sees only what a practitioner has: accuracy on noisily labelled held-out data.
        chosen = math.isfinite(row["val_acc_noisy"]) and row["val_acc_noisy"] > selected[0]
        if chosen:
            selected = (row["val_acc_noisy"], epoch + 1)
        write_csv(run / METRICS, pd.DataFrame(rows))
        state = trainer.state(epoch + 1, best, selected)
        save_checkpoint(run / LAST, state)
        if improved:
            save_checkpoint(run / BEST, {"model": state["model"], "epoch": epoch + 1})
        if chosen:
            save_checkpoint(run / SELECTED, {"model": state["model"], "epoch": epoch + 1})
        bar.set_postfix(test=f"{row['test_acc']:.3f}", noisy=f"{row['train_acc_noisy']:.3f}")
    metrics = pd.DataFrame(rows)
    full = evaluate_full_test(trainer, run, selected[1] > 0)
    summary = summarise(cfg, metrics, labels, ds, full)
    write_json(run / SUMMARY, summary)
    return summary


def evaluate_full_test(trainer: Trainer, run: Path, has_selected: bool) -> dict:
    """Predictions of the last, selected and test-selected checkpoints on every test image,
    written to predictions.csv (one row per test image, -1 where a checkpoint does not exist);
    returns their error rates on the full test set."""
    ds, device = trainer.ds, trainer.device
    x = to_device_images(ds.x_test, device)
    y = torch.from_numpy(ds.y_test).to(device)
    table = {"index": np.arange(len(ds.y_test)), "label": ds.y_test}
    errors = {}
    names = [c for c in (LAST_CK, TEST_SELECTED_CK, SELECTED_CK)
             if has_selected or c is not SELECTED_CK]
    for c in names:
        key = c.kind
        trainer.model.load_state_dict(load_checkpoint(run / c.file, device)["model"])
        pred = predict_logits(trainer.model, x, device, trainer.cfg.precision).argmax(1)
        table[key] = pred.cpu().numpy()
        # As training computes test_acc: an fp32 mean of 0/1 on the device.
        errors[key] = 1.0 - (pred == y).float().mean().item()
    if not has_selected:
        table[SELECTED_CK.kind] = np.full(len(ds.y_test), -1)
    write_csv(run / PREDICTIONS, pd.DataFrame(table)[["index", "label", *KINDS]])
    return errors


def summarise(cfg: TrainConfig, metrics: pd.DataFrame, labels: Labels, ds: Dataset,
              full: dict | None = None) -> dict:
    """summary.json. best_* is the test-selected epoch on the per-epoch test images (the paper's
    "best", an optimistic oracle); selected_* the epoch of best noisy-validation accuracy;
    *_full_test_error the checkpoints' errors on every test image."""
    best = metrics.loc[metrics["test_acc"].idxmax()]
    last = metrics.iloc[-1]
    full = full or {}
    has_val = bool(len(labels.val_index)) and metrics["val_acc_noisy"].notna().any()
    sel = metrics.loc[metrics["val_acc_noisy"].idxmax()] if has_val else None
    return {
        "run": cfg.run_name, "dataset": cfg.dataset, "data": ds.description,
        "noise": cfg.noise, "ratio": cfg.ratio, "method": cfg.method, "alpha": cfg.alpha,
        "dropout": cfg.dropout, "seed": cfg.seed, "profile": cfg.profile,
        TEST_SELECTED_CK.summary_key("test_error"): float(best["test_error"]),
        TEST_SELECTED_CK.summary_key("epoch"): int(best["epoch"]),
        LAST_CK.summary_key("test_error"): float(last["test_error"]),
        LAST_CK.summary_key("epoch"): int(last["epoch"]),
        "last_train_acc_noisy": float(last["train_acc_noisy"]),
        "last_train_acc_clean": float(last["train_acc_clean"]),
        # No corrupted labels (ratio 0) means nothing to memorise: None, not NaN, in JSON.
        "last_memorised": None if pd.isna(last["memorised"]) else float(last["memorised"]),
        # The share the network's own mistakes would give (see Trainer: flip_probs).
        "last_memorised_null": (None if pd.isna(last.get("memorised_null", float("nan")))
                                else float(last["memorised_null"])),
        "actual_noise_rate": labels.noise_rate, "train_images": len(labels.index),
        "test_images": int(min(cfg.test_n or len(ds.y_test), len(ds.y_test))),
        "train_seconds": float(metrics["train_seconds"].sum()),
        "total_seconds": float(metrics["seconds"].sum()),
        "images_per_second": float(len(labels.index) * len(metrics) / metrics["train_seconds"].sum()),
        "val_images": len(labels.val_index),
        SELECTED_CK.summary_key("epoch"): int(sel["epoch"]) if sel is not None else None,
        SELECTED_CK.summary_key("val_acc_noisy"): (float(sel["val_acc_noisy"]) if sel is not None
                                                   else None),
        SELECTED_CK.summary_key("test_error"): float(sel["test_error"]) if sel is not None else None,
        "full_test_images": len(ds.y_test),
        **{c.full_error_key: full.get(c.kind) for c in CHECKPOINTS},
    }
