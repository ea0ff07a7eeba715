"""The report's figures, drawn with matplotlib's object API (Agg for PNG; no pyplot state).

Every figure is saved as PNG (150 dpi) and PDF, and every method has one colour and one marker
in every figure (`METHOD_COLORS`, `METHOD_MARKERS`). The functions take the tidy tables of
robustmix.results and return the paths they wrote.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from ..training.methods import method_color, method_label, method_marker, method_rank  # noqa: E402

DPI = 150
VECTOR = "pdf"

CONDITION_STYLES = ("-", "--", ":", "-.")
ATTACK_NAMES = {"fgsm": "FGSM", "ifgsm": "I-FGSM"}


def _methods(df: pd.DataFrame) -> list[str]:
    return sorted(dict.fromkeys(df["method"]), key=method_rank)


def _style(conditions: list[str], c: str) -> str:
    return CONDITION_STYLES[conditions.index(c) % len(CONDITION_STYLES)]


def _label(method: str, condition: str, conditions: list[str]) -> str:
    return method_label(method) + (f" ({condition})" if len(conditions) > 1 else "")


def _pct_ratio(r: float) -> str:
    return f"{100 * r:g}% noise"


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write stem.png (DPI) and stem.pdf atomically; return both paths."""
    paths = []
    for ext in ("png", VECTOR):
        path = stem.with_suffix(f".{ext}")
        meta = {"Software": None} if ext == "png" else {"CreationDate": None, "Creator": None}
        atomic_write(path, lambda p, ext=ext, meta=meta: fig.savefig(
            p, format=ext, dpi=DPI, bbox_inches="tight", metadata=meta))
        paths.append(path)
    return paths


def _legend_below(fig: Figure, handles: list, ncol: int) -> None:
    fig.legend(handles=handles, loc="lower center", ncol=max(1, min(ncol, len(handles))),
               frameon=False, bbox_to_anchor=(0.5, 0.0), fontsize=8)


def plot_noise(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Best- and last-epoch test accuracy (%) against the noise ratio: one line per method
    (mean over seeds, error bar = std where there are several seeds); open markers at the
    paper's Table 2 numbers."""
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(10, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    handles, has_paper, drawn = [], False, set()
    for ax, which, title in ((axes[0], "best", "best epoch"), (axes[1], "last", "last epoch")):
        for c in conditions:
            for m in _methods(table[table["condition"] == c]):
                d = table[(table["condition"] == c) & (table["method"] == m)].sort_values("ratio")
                x = 100 * d["ratio"].to_numpy()
                y = d[f"{which}_acc_mean"].to_numpy()
                err = d[f"{which}_error_std"].to_numpy(dtype=float)  # NaN (one seed): no bar
                h = ax.errorbar(x, y, yerr=err, color=method_color(m), marker=method_marker(m),
                                linestyle=_style(conditions, c), capsize=3, markersize=5,
                                label=_label(m, c, conditions))
                if which == "best":
                    handles.append(h)
                py = d[f"paper_{which}_acc"].to_numpy()
                ok = np.isfinite(py)
                if ok.any() and (which, m) not in drawn:  # once per method, whatever the condition
                    drawn.add((which, m))
                    has_paper = True
                    ax.plot(x[ok], py[ok], linestyle="none", marker=method_marker(m),
                            markerfacecolor="none", markeredgecolor=method_color(m), markersize=8)
        ax.set_title(f"test accuracy at the {title}")
        ax.set_xlabel("label noise ratio (%)")
        ax.set_xticks(sorted(set(100 * table["ratio"])))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].tick_params(labelleft=True)
    if has_paper:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="black", label="open markers: paper, Table 2"))
    ncol = 5 if len(conditions) == 1 else 3
    _legend_below(fig, handles, ncol)
    fig.subplots_adjust(bottom=0.25 + 0.045 * (len(handles) // ncol))
    return save(fig, stem)


def plot_attack(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Accuracy (%) under attack against ε (/255): rows = attack × mode, columns = condition ×
    noise ratio, one line per method (mean over seeds, error bars = std), as measured."""
    rows = [(a, m) for a in ("fgsm", "ifgsm", *sorted(set(table["attack"]) - {"fgsm", "ifgsm"}))
            for m in ("white-box", "black-box", *sorted(set(table["mode"]) - {"white-box", "black-box"}))
            if ((table["attack"] == a) & (table["mode"] == m)).any()]
    cols = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(3.3 * len(cols) + 0.6, 2.7 * len(rows) + 1.0))
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), sharex=True, sharey=True, squeeze=False))
    seen = {}
    for i, (attack, mode) in enumerate(rows):
        for j, (c, ratio) in enumerate(cols):
            ax = axes[i, j]
            d = table[(table["attack"] == attack) & (table["mode"] == mode)
                      & (table["condition"] == c) & (table["ratio"] == ratio)]
            for m in _methods(d):
                dm = d[d["method"] == m].sort_values("eps")
                h = ax.errorbar(dm["eps"], dm["accuracy_mean"], yerr=dm["accuracy_std"].to_numpy(dtype=float),
                                color=method_color(m), marker=method_marker(m), markersize=4,
                                capsize=2, linestyle="-", label=method_label(m))
                seen.setdefault(m, h)
            where = f"{_pct_ratio(ratio)}" + (f", {c}" if len(conditions) > 1 else "")
            src = ""
            if mode != "white-box" and not d.empty:
                src = " (from " + "/".join(sorted(set("+".join(d["sources"]).split("+")))) + ")"
            ax.set_title(f"{ATTACK_NAMES.get(attack, attack)} {mode}{src}\n{where}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(rows) - 1:
                ax.set_xlabel("ε (/255)")
            if j == 0:
                ax.set_ylabel("accuracy (%)")
            ax.tick_params(labelbottom=True)
    handles = [seen[m] for m in _methods(pd.DataFrame({"method": list(seen)}))]
    _legend_below(fig, handles, 5)
    fig.subplots_adjust(hspace=0.55, bottom=(0.95 + 0.25 * (len(handles) // 5)) / (2.7 * len(rows) + 1.0))
    return save(fig, stem)


CURVE_PANELS = (
    ("test_acc", "test accuracy (%)"),
    ("train_acc_noisy", "train accuracy, noisy labels (%)"),
    ("train_acc_clean", "train accuracy, true labels (%)"),
    ("memorised", "corrupted examples fit to noisy label (%)"),
)


def plot_curves(table: pd.DataFrame, stem: Path, milestones: dict | None = None) -> list[Path]:
    """Per epoch: test accuracy, training accuracy against the noisy and the true labels, and
    the memorised fraction; rows = condition × noise ratio, one line per method (mean over
    seeds). Dotted verticals mark the learning-rate steps (milestones: condition → epochs)."""
    rows = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(14, 2.8 * len(rows) + 1.0))
    axes = fig.subplots(len(rows), len(CURVE_PANELS), sharex=True, squeeze=False)
    seen = {}
    for i, (c, ratio) in enumerate(rows):
        d = table[(table["condition"] == c) & (table["ratio"] == ratio)]
        for j, (col, label) in enumerate(CURVE_PANELS):
            ax = axes[i, j]
            for m in _methods(d):
                dm = d[d["method"] == m].sort_values("epoch")
                (h,) = ax.plot(dm["epoch"], dm[col], color=method_color(m), linewidth=1.4,
                               label=method_label(m))
                seen.setdefault(m, h)
            for e in (milestones or {}).get(c, []):
                ax.axvline(e, color="grey", linestyle=":", linewidth=0.8)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.set_ylabel(label, fontsize=8)
            if i == 0 or len(rows) > 1:
                where = _pct_ratio(ratio) + (f", {c}" if len(conditions) > 1 else "")
                ax.set_title(where, fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("epoch")
    handles = [seen[m] for m in _methods(pd.DataFrame({"method": list(seen)}))]
    if milestones:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="learning-rate step (÷10)"))
    _legend_below(fig, handles, 6)
    fig.subplots_adjust(hspace=0.45, wspace=0.3,
                        bottom=(0.95 + 0.25 * (len(handles) // 6)) / (2.8 * len(rows) + 1.0))
    return save(fig, stem)


def plot_ablation(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Best- and last-epoch test error (%) of every method at the noise ratios with ablations:
    grouped bars (mean over seeds, error bar = std)."""
    groups = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    methods = _methods(table)
    fig = Figure(figsize=(max(7.0, 1.0 + 0.5 * len(methods) * len(groups)) * 1.6, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(methods)
    handles = []
    for ax, which in ((axes[0], "best"), (axes[1], "last")):
        for k, m in enumerate(methods):
            xs, ys, es = [], [], []
            for g, (c, ratio) in enumerate(groups):
                d = table[(table["condition"] == c) & (table["ratio"] == ratio) & (table["method"] == m)]
                if d.empty:
                    continue
                xs.append(g - 0.4 + width * (k + 0.5))
                ys.append(float(d[f"{which}_error_mean"].iloc[0]))
                es.append(float(d[f"{which}_error_std"].iloc[0]))
            h = ax.bar(xs, ys, width=width, yerr=es, capsize=2, color=method_color(m),
                       label=method_label(m), edgecolor="black", linewidth=0.4)
            if which == "best":
                handles.append(h)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_pct_ratio(r) + (f"\n{c}" if len(conditions) > 1 else "")
                            for c, r in groups])
        ax.set_title(f"test error at the {which} epoch")
        ax.set_xlabel("label noise ratio")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test error (%)")
    axes[1].tick_params(labelleft=True)
    _legend_below(fig, handles, 5)
    fig.subplots_adjust(bottom=0.25 + 0.04 * (len(handles) // 5))
    return save(fig, stem)
