"""The report's figures, drawn with matplotlib's object API (Agg for PNG; no pyplot state).

Every figure is saved as PNG (150 dpi) and PDF, and every method has one colour and one marker
in every figure (from robustmix.training.methods). Points are means over seeds; error bars and
bands are the 95 % intervals of the tables (robustmix.reporting.statistics), drawn wherever a
table has one. Legends give each line's α and dropout p, per noise level where they change.
The functions take the tidy tables of robustmix.reporting.results and return the paths they
wrote.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from ..attacks.registry import attack_label  # noqa: E402
from ..runs import checkpoint_names as CK  # noqa: E402
from ..training.methods import method_color, method_label, method_marker, method_rank  # noqa: E402

DPI = 150
VECTOR = "pdf"

CONDITION_STYLES = ("-", "--", ":", "-.")
# Where several conditions (profiles) share a panel, the points of one method keep its colour and
# marker shape but differ in fill (never "none": open markers are the paper's numbers) and are
# set slightly apart on x, so no two conditions' points look the same or hide each other.
CONDITION_FILLS = ("full", "bottom", "left", "top", "right")  # the other half light grey
CONDITION_DODGE = 0.8  # percentage points of noise ratio between conditions' points


def _fill(conditions: list[str], c: str) -> str:
    return CONDITION_FILLS[conditions.index(c) % len(CONDITION_FILLS)]


def _dodge(conditions: list[str], c: str) -> float:
    return CONDITION_DODGE * (conditions.index(c) - (len(conditions) - 1) / 2)


def _methods(df: pd.DataFrame) -> list[str]:
    return sorted(dict.fromkeys(df["method"]), key=method_rank)


def _style(conditions: list[str], c: str) -> str:
    return CONDITION_STYLES[conditions.index(c) % len(CONDITION_STYLES)]


def _fmt_ratios(ratios: list[float]) -> str:
    return "/".join(f"{100 * r:g}" for r in ratios) + "%"


def setting_text(rows: pd.DataFrame) -> str:
    """α and p of one method's line: 'α = 32' when constant, 'α = 8 at 20%, 32 at 50/80%' when
    they change with the noise ratio; '' for a method with neither (ERM)."""
    rows = rows.drop_duplicates(subset=["ratio", "alpha", "dropout"]).sort_values("ratio")
    parts = []
    for col, sym in (("alpha", "α"), ("dropout", "p")):
        vals = rows[col].astype(float)
        if not (vals != 0).any():
            continue
        if vals.nunique() == 1:
            parts.append(f"{sym} = {vals.iloc[0]:g}")
            continue
        groups: dict[float, list[float]] = {}
        for r, v in zip(rows["ratio"], vals, strict=True):
            groups.setdefault(v, []).append(r)
        parts.append(f"{sym} = " + ", ".join(f"{v:g} at {_fmt_ratios(rs)}"
                                               for v, rs in groups.items()))
    return "; ".join(parts)


def _label(method: str, condition: str, conditions: list[str],
           rows: pd.DataFrame | None = None) -> str:
    text = method_label(method) + (f", {condition}" if len(conditions) > 1 else "")
    setting = setting_text(rows) if rows is not None and not rows.empty else ""
    return text + (f" ({setting})" if setting else "")


def _yerr(d: pd.DataFrame, mean: str, lo: str, hi: str) -> np.ndarray | None:
    """Asymmetric error bars from interval columns; None where there is no interval at all."""
    if lo not in d.columns or d[lo].isna().all():
        return None
    m = d[mean].to_numpy(dtype=float)
    return np.vstack([m - d[lo].to_numpy(dtype=float), d[hi].to_numpy(dtype=float) - m]).clip(0)


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


KIND_TITLES = CK.TITLES


def plot_noise(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Test accuracy (%) against the noise ratio for each checkpoint kind the runs have (last,
    selected on noisy validation, test-selected): one line per method, mean over seeds with its
    95 % interval; open markers at the paper's Table 2 (last epoch; its "best", test-selected)."""
    conditions = list(dict.fromkeys(table["condition"]))
    kinds = [k for k in CK.KINDS
             if table[f"{k}_acc_mean"].notna().any()]
    fig = Figure(figsize=(4.2 * len(kinds) + 0.6, 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    handles, has_paper, drawn = [], False, set()
    for ax, kind in zip(axes, kinds, strict=True):
        for c in conditions:
            for m in _methods(table[table["condition"] == c]):
                d = table[(table["condition"] == c) & (table["method"] == m)].sort_values("ratio")
                d = d[d[f"{kind}_acc_mean"].notna()]
                if d.empty:
                    continue
                x = 100 * d["ratio"].to_numpy() + _dodge(conditions, c)
                h = ax.errorbar(x, d[f"{kind}_acc_mean"].to_numpy(dtype=float),
                                yerr=_yerr(d, f"{kind}_acc_mean", f"{kind}_acc_lo",
                                           f"{kind}_acc_hi"),
                                color=method_color(m), marker=method_marker(m),
                                fillstyle=_fill(conditions, c), markerfacecoloralt="lightgrey",
                                linestyle=_style(conditions, c), capsize=3,
                                markersize=5 if len(conditions) == 1 else 6,
                                label=_label(m, c, conditions, d))
                if kind == kinds[0]:
                    handles.append(h)
                pcol = {"last": "paper_last_acc", "test_selected": "paper_test_selected_acc"}.get(kind)
                if pcol is None:
                    continue
                py = d[pcol].to_numpy(dtype=float)
                ok = np.isfinite(py)
                if ok.any() and (kind, m) not in drawn:  # once per method, whatever the condition
                    drawn.add((kind, m))
                    has_paper = True
                    px = 100 * d["ratio"].to_numpy()  # at the ratio itself, not dodged
                    ax.plot(px[ok], py[ok], linestyle="none", marker=method_marker(m),
                            markerfacecolor="none", markeredgecolor=method_color(m), markersize=8)
        ax.set_title(f"test accuracy, {KIND_TITLES[kind]}", fontsize=10)
        ax.set_xlabel("label noise ratio (%)")
        ax.set_xticks(sorted(set(100 * table["ratio"])))
        ax.grid(alpha=0.3)
        ax.tick_params(labelleft=True)
    axes[0].set_ylabel("test accuracy (%)")
    if has_paper:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="black",
                              label="open markers: paper, Table 2 (last; \"best\" = test-selected)"))
    ncol = 3 if len(conditions) == 1 else 2
    _legend_below(fig, handles, ncol)
    fig.subplots_adjust(bottom=0.22 + 0.05 * ((len(handles) - 1) // ncol), wspace=0.15)
    return save(fig, stem)


def eps_axis(ax, eps: Sequence[float]) -> None:
    """ε on a log₂ axis that still shows ε = 0 (linear between 0 and 1/255): the differences
    between methods sit at the small ε, which a linear axis squeezes together."""
    ax.set_xscale("symlog", base=2, linthresh=1, linscale=0.5)
    ticks = sorted({float(e) for e in eps})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{e:g}" for e in ticks])
    ax.minorticks_off()


def plot_attack(table: pd.DataFrame, stem: Path, value: str = "accuracy") -> list[Path]:
    """Accuracy under attack against ε (/255): rows = attack × mode, columns = condition ×
    noise ratio, one line per method (mean over seeds with its 95 % interval), as measured.
    value = "accuracy" (%) or "relative" (% of the model's own clean accuracy)."""
    rows = [(a, m) for a in ("fgsm", "ifgsm", *sorted(set(table["attack"]) - {"fgsm", "ifgsm"}))
            for m in ("white-box", "black-box", *sorted(set(table["mode"]) - {"white-box", "black-box"}))
            if ((table["attack"] == a) & (table["mode"] == m)).any()]
    cols = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(3.3 * len(cols) + 0.6, 2.7 * len(rows) + 1.3))
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), sharex=True, sharey=True, squeeze=False))
    seen = {}
    for i, (attack, mode) in enumerate(rows):
        for j, (c, ratio) in enumerate(cols):
            ax = axes[i, j]
            d = table[(table["attack"] == attack) & (table["mode"] == mode)
                      & (table["condition"] == c) & (table["ratio"] == ratio)]
            for m in _methods(d):
                dm = d[d["method"] == m].sort_values("eps")
                h = ax.errorbar(dm["eps"], dm[f"{value}_mean"],
                                yerr=_yerr(dm, f"{value}_mean", f"{value}_lo", f"{value}_hi"),
                                color=method_color(m), marker=method_marker(m), markersize=4,
                                capsize=2, linestyle="-", label=method_label(m))
                seen.setdefault(m, h)
            where = f"{_pct_ratio(ratio)}" + (f", {c}" if len(conditions) > 1 else "")
            src = ""
            if mode != "white-box" and not d.empty:
                src = " (from " + "/".join(sorted(set("+".join(d["sources"]).split("+")))) + ")"
            ax.set_title(f"{attack_label(attack)} {mode}{src}\n{where}", fontsize=9)
            ax.grid(alpha=0.3)
            eps_axis(ax, table["eps"])
            if i == len(rows) - 1:
                ax.set_xlabel("ε (/255, log₂ scale)")
            if j == 0:
                ax.set_ylabel("accuracy (%)" if value == "accuracy" else "% of clean accuracy")
            ax.tick_params(labelbottom=True)
    methods = _methods(pd.DataFrame({"method": list(seen)}))
    for m in methods:
        seen[m].set_label(_label(m, "", [], table[table["method"] == m]))
    handles = [seen[m] for m in methods]
    _legend_below(fig, handles, 3)
    fig.subplots_adjust(hspace=0.55, bottom=(1.0 + 0.25 * ((len(handles) - 1) // 3))
                        / (2.7 * len(rows) + 1.3))
    return save(fig, stem)


def plot_robust(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Robust accuracy (%: images no attack fooled) against ε, one panel per condition × noise
    ratio, one line per method (mean over seeds with its 95 % interval)."""
    cols = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(3.3 * len(cols) + 0.6, 4.0))
    axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    seen = {}
    for ax, (c, ratio) in zip(axes, cols, strict=True):
        d = table[(table["condition"] == c) & (table["ratio"] == ratio)]
        for m in _methods(d):
            dm = d[d["method"] == m].sort_values("eps")
            seen.setdefault(m, ax.errorbar(
                dm["eps"], dm["robust_mean"], yerr=_yerr(dm, "robust_mean", "robust_lo", "robust_hi"),
                color=method_color(m), marker=method_marker(m), markersize=4, capsize=2,
                label=method_label(m)))
        attacks = "+".join(sorted({a for s in d["attacks"] for a in str(s).split("+")}))
        ax.set_title(f"{_pct_ratio(ratio)}" + (f", {c}" if len(conditions) > 1 else "")
                     + f"\nworst case over {attacks.replace('+', ', ')}", fontsize=8)
        ax.grid(alpha=0.3)
        eps_axis(ax, d["eps"])
        ax.set_xlabel("ε (/255, log₂ scale)")
    axes[0].set_ylabel("robust accuracy (%)")
    methods = _methods(pd.DataFrame({"method": list(seen)}))
    _legend_below(fig, [seen[m] for m in methods], 4)
    fig.subplots_adjust(bottom=0.3, top=0.8)
    return save(fig, stem)


CURVE_PANELS = (
    ("test_acc", "test accuracy (%)"),
    ("train_acc_noisy", "train accuracy, noisy labels (%)"),
    ("train_acc_clean", "train accuracy, true labels (%)"),
    ("memorised", "corrupted examples fit to noisy label (%)"),
)


def plot_curves(table: pd.DataFrame, stem: Path, milestones: dict | None = None,
                chance: float | None = 10.0) -> list[Path]:
    """Per epoch: test accuracy, training accuracy against the noisy and the true labels, and
    the memorised fraction; rows = condition × noise ratio, one line per method (mean over
    seeds, band = 95 % t-interval over seeds where there are several). Dotted verticals mark
    the learning-rate steps (milestones: condition → epochs). On the memorisation panels a
    dashed line in each method's colour is its null (column memorised_null of the curves table:
    the share its own mistakes give under the noise process, which the memorisation verdicts
    test against), not 1/K; only a method without one gets `chance` (grey dash-dot), as the
    verdicts fall back to it."""
    rows = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(14, 2.8 * len(rows) + 1.2))
    axes = fig.subplots(len(rows), len(CURVE_PANELS), sharex=True, squeeze=False)
    seen, banded, has_null, has_chance = {}, False, False, False
    for i, (c, ratio) in enumerate(rows):
        d = table[(table["condition"] == c) & (table["ratio"] == ratio)]
        fallback_here = False
        for j, (col, label) in enumerate(CURVE_PANELS):
            ax = axes[i, j]
            for m in _methods(d):
                dm = d[d["method"] == m].sort_values("epoch")
                (h,) = ax.plot(dm["epoch"], dm[col], color=method_color(m), linewidth=1.4,
                               label=method_label(m))
                lo, hi = dm.get(f"{col}_lo"), dm.get(f"{col}_hi")
                if lo is not None and lo.notna().any():
                    ax.fill_between(dm["epoch"], lo, hi, color=method_color(m), alpha=0.18,
                                    linewidth=0)
                    banded = True
                seen.setdefault(m, h)
            for e in (milestones or {}).get(c, []):
                ax.axvline(e, color="grey", linestyle=":", linewidth=0.8)
            if col == "memorised" and ratio > 0:
                for m in _methods(d):
                    dm = d[d["method"] == m].sort_values("epoch")
                    null = (dm["memorised_null"] if "memorised_null" in dm
                            else pd.Series(np.nan, index=dm.index))
                    if null.notna().any():
                        ax.plot(dm["epoch"], null, color=method_color(m), linestyle="--",
                                linewidth=0.9, gid=f"null:{m}")
                        has_null = True
                    elif chance is not None and not fallback_here:
                        ax.axhline(chance, color="grey", linestyle="-.", linewidth=0.9,
                                   gid="chance")
                        fallback_here = has_chance = True
            if col == "memorised" and ratio <= 0:
                ax.text(0.5, 0.5, "no corrupted labels", transform=ax.transAxes, ha="center",
                        va="center", fontsize=8, color="grey")
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.set_ylabel(label, fontsize=8)
            if i == 0 or len(rows) > 1:
                where = _pct_ratio(ratio) + (f", {c}" if len(conditions) > 1 else "")
                ax.set_title(where, fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("epoch")
    methods = _methods(pd.DataFrame({"method": list(seen)}))
    for m in methods:
        seen[m].set_label(_label(m, "", [], table[table["method"] == m]))
    handles = [seen[m] for m in methods]
    if milestones:
        handles.append(Line2D([], [], color="grey", linestyle=":", label="learning-rate step (÷10)"))
    if has_null:
        handles.append(Line2D([], [], color="black", linestyle="--",
                              label="dashed, method colour: its null (its own mistakes' share "
                                    "under the noise process)"))
    if has_chance:
        handles.append(Line2D([], [], color="grey", linestyle="-.",
                              label=f"chance ({chance:g}%): runs without a null"))
    if banded:
        handles.append(Patch(color="grey", alpha=0.3, label="band: 95% interval over seeds"))
    _legend_below(fig, handles, 3)
    fig.subplots_adjust(hspace=0.45, wspace=0.3,
                        bottom=(1.0 + 0.25 * ((len(handles) - 1) // 3)) / (2.8 * len(rows) + 1.2))
    return save(fig, stem)


def plot_ablation(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Test error (%) of every method at the noise ratios with ablations, for each checkpoint
    kind the runs have: grouped bars (mean over seeds, error bar = 95 % interval)."""
    groups = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    methods = _methods(table)
    kinds = [k for k in CK.KINDS
             if table[f"{k}_error_mean"].notna().any()]
    fig = Figure(figsize=(max(4.5, 1.0 + 0.45 * len(methods) * len(groups)) * len(kinds), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    width = 0.8 / len(methods)
    handles = []
    for ax, kind in zip(axes, kinds, strict=True):
        for k, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for g, (c, ratio) in enumerate(groups):
                d = table[(table["condition"] == c) & (table["ratio"] == ratio) & (table["method"] == m)]
                if d.empty:
                    continue
                xs.append(g - 0.4 + width * (k + 0.5))
                ys.append(float(d[f"{kind}_error_mean"].iloc[0]))
                lo.append(float(d[f"{kind}_error_lo"].iloc[0]))
                hi.append(float(d[f"{kind}_error_hi"].iloc[0]))
            y = np.asarray(ys, dtype=float)
            err = np.nan_to_num(np.vstack([y - np.asarray(lo), np.asarray(hi) - y]).clip(0))
            h = ax.bar(xs, ys, width=width, yerr=err, capsize=2, color=method_color(m),
                       label=_label(m, "", [], table[table["method"] == m]), edgecolor="black",
                       linewidth=0.4)
            if kind == kinds[0]:
                handles.append(h)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_pct_ratio(r) + (f"\n{c}" if len(conditions) > 1 else "")
                            for c, r in groups])
        ax.set_title(f"test error, {KIND_TITLES[kind]}", fontsize=10)
        ax.set_xlabel("label noise ratio")
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelleft=True)
    axes[0].set_ylabel("test error (%)")
    _legend_below(fig, handles, 3)
    fig.subplots_adjust(bottom=0.22 + 0.05 * ((len(handles) - 1) // 3), wspace=0.15)
    return save(fig, stem)


def plot_transitions(table: pd.DataFrame, stem: Path, classes: list[str] | tuple[str, ...]
                     ) -> list[Path]:
    """The transition matrix of each noise source's training labels as a heatmap: row = true
    class, column = noisy label, cell = % of the true class given that label (row-normalised,
    annotated where at least 0.5 %), one panel per source."""
    labels = list(dict.fromkeys(table["source_label"]))
    cols = min(len(labels), 3)
    rows = -(-len(labels) // cols)
    fig = Figure(figsize=(5.0 * cols + 1.0, 4.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(wspace=0.45, hspace=0.55)
    image = None
    for n, (ax, label) in enumerate(zip(axes.flat, labels, strict=False)):
        d = table[table["source_label"] == label]
        k = int(max(d["clean"].max(), d["noisy"].max())) + 1
        m = np.zeros((k, k))
        m[d["clean"].to_numpy(), d["noisy"].to_numpy()] = 100 * d["fraction"].to_numpy(dtype=float)
        image = ax.imshow(m, vmin=0, vmax=100, cmap="Blues")
        for i in range(k):
            for j in range(k):
                if m[i, j] >= 0.5:
                    ax.text(j, i, f"{m[i, j]:.0f}" if m[i, j] >= 9.5 else f"{m[i, j]:.1f}",
                            ha="center", va="center", fontsize=5.5,
                            color="white" if m[i, j] > 55 else "black")
        names = list(classes)[:k] if len(classes) >= k else [str(c) for c in range(k)]
        ax.set_xticks(range(k))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.set_yticks(range(k))
        ax.set_yticklabels(names, fontsize=7)
        ax.set_xlabel("noisy label", fontsize=8)
        if n % cols == 0:
            ax.set_ylabel("true class", fontsize=8)
        first = d.iloc[0]
        draws = int(first["label_draws"])
        ax.set_title(f"{label}: {first['rate']:.1f}% wrong\n{int(first['images'])} training labels"
                     + (f" ({draws} noise seeds)" if draws > 1 else ""), fontsize=9)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), fraction=0.025, pad=0.02,
                     label="% of the true class")
    return save(fig, stem)


def plot_sources(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Test error (%) of each method across noise sources, for each checkpoint kind the runs
    have: x = noise source, annotated with its measured rate of wrong training labels (sources
    in order of that rate); points = mean over seeds, bars = 95 % interval."""
    groups = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    methods = _methods(table)
    kinds = [k for k in CK.KINDS
             if table[f"{k}_error_mean"].notna().any()]
    fig = Figure(figsize=(max(4.8, 1.2 + 1.5 * len(groups)) * len(kinds), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    step = 0.7 / max(len(methods), 1)
    handles = []
    ticks = []
    for c, ratio in groups:
        r = table[(table["condition"] == c) & (table["ratio"] == ratio)].iloc[0]
        # wrapped: a matrix file's name beside its neighbours' labels would run into them
        name = textwrap.fill(r["source_label"], 20, break_long_words=False,
                             break_on_hyphens=False)
        ticks.append(f"{name}\n{r['measured_rate']:.1f}% wrong")
    for ax, kind in zip(axes, kinds, strict=True):
        for k, m in enumerate(methods):
            d = table[table["method"] == m]
            xs, rows = [], []
            for g, (c, ratio) in enumerate(groups):
                hit = d[(d["condition"] == c) & (d["ratio"] == ratio)]
                if not hit.empty:
                    xs.append(g - 0.35 + step * (k + 0.5))
                    rows.append(hit.iloc[0])
            if not rows:
                continue
            dm = pd.DataFrame(rows)
            h = ax.errorbar(xs, dm[f"{kind}_error_mean"].to_numpy(dtype=float),
                            yerr=_yerr(dm, f"{kind}_error_mean", f"{kind}_error_lo",
                                       f"{kind}_error_hi"),
                            color=method_color(m), marker=method_marker(m), linestyle="none",
                            capsize=3, markersize=6,
                            label=_label(m, "", [], table[table["method"] == m]))
            if kind == kinds[0]:
                handles.append(h)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(f"test error, {KIND_TITLES[kind]}", fontsize=10)
        ax.set_xlabel("noise source (measured rate of wrong training labels)")
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelleft=True)
    axes[0].set_ylabel("test error (%)")
    _legend_below(fig, handles, 2)
    fig.subplots_adjust(bottom=0.26 + 0.05 * ((len(handles) - 1) // 2), wspace=0.15)
    return save(fig, stem)



VERDICT_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "inconclusive": "#57606a",
                   "described": "#8c959f"}
FOREST_KINDS = CK.SHORT
_SHORT = (
    (r" has lower test error than ", " < "),
    (r" keeps more test images robust than (\S+) \(worst case over .*\) at", r" > \1 robust at"),
    (r" keeps more accuracy than ", " > "),
    (r"under white-box ", "wb "),
    (r"under black-box ", "bb "),
    (r"ε = (\S+)/255", r"ε \1"),
    (r"ERM's rise in error from its (test-selected|selected) epoch to the last is larger than "
     r"mixup's", r"gap \1→last: ERM > mixup"),
    (r"ERM memorises the corrupted labels \(share above chance, ([^)]*)\)",
     r"ERM memorised > chance \1"),
    (r"mixup does not memorise them \(share not above chance, ([^)]*)\)",
     r"mixup memorised ≤ chance \1"),
    (r"mixup does not memorise them \(share at most (\S+) points above chance, ([^)]*)\)",
     r"mixup memorised ≤ chance \2 + \1"),
    (r"ERM memorises the corrupted labels \(share above its own mistakes' share, ([^)]*)\)",
     r"ERM memorised > its null (\1)"),
    (r"mixup does not memorise them \(share not above its own mistakes' share, ([^)]*)\)",
     r"mixup memorised ≤ its null (\1)"),
    (r"mixup does not memorise them \(share at most (\S+) points above its own mistakes' "
     r"share, ([^)]*)\)", r"mixup memorised ≤ its null + \1 (\2)"),
    (r"ERM memorises more of them than mixup", "memorised: ERM > mixup"),
    (r"CIFAR-10N (\S+) labels give higher test error than matrix noise from (\S+)",
     r"real \1 > its matrix twin (error)"),
)


def short_claim(claim: str) -> str:
    """A claim in few words for a forest-plot row: 'mixup < ERM' for lower test error, '>' for
    more accuracy under an attack, wb / bb for white- and black-box."""
    import re

    for pat, rep in _SHORT:
        claim = re.sub(pat, rep, claim)
    return claim


def _forest_columns(groups: list[tuple[str, pd.DataFrame]], cols: int, head: int
                    ) -> list[list[tuple[str, pd.DataFrame]]]:
    """Families split into cols columns of about equal rows, at family boundaries."""
    if cols == 1:
        return [groups]
    sizes = [len(g) + head for _, g in groups]
    total = sum(sizes)
    best = min(range(1, len(groups)), key=lambda k: abs(sum(sizes[:k]) - total / 2))
    return [groups[:best], groups[best:]]


def plot_forest(t: pd.DataFrame, stem: Path, families: Sequence[str] | None = None) -> list[Path]:
    """The evidence itself: one row per claim of the verdict table, its paired effect (points,
    + = the paper's direction) and 95 % interval, coloured by its verdict after the false-
    discovery adjustment, grouped by false-discovery family (headed by its counts). Claims with
    fewer than 3 seeds (described, not tested) are open markers on a dashed line: their interval
    covers test images only. Sized for a paper page (7 in wide, at most 9.5 in high); with many
    claims the families are set in two columns, each with its own effect axis. Claims without an
    effect (nothing paired) are left out."""
    t = t[t["effect"].notna()].copy()
    fams = list(families) if families is not None else []
    fams += [f for f in dict.fromkeys(t["fdr_family"]) if f not in fams]
    groups = [(f, t[t["fdr_family"] == f]) for f in fams if (t["fdr_family"] == f).any()]
    several = t["condition"].nunique() > 1
    head = 2  # rows of a family's heading
    n_rows = sum(len(g) + head for _, g in groups)
    cols = 2 if n_rows > 62 and len(groups) > 1 else 1
    columns = _forest_columns(groups, cols, head)
    per_col = max(sum(len(g) + head for _, g in c) for c in columns)
    size = 5.5 if cols == 2 else 6.5
    row_in = 0.105 if cols == 2 else 0.13
    top_in, bottom_in = 0.3, 0.4
    height = min(9.5, top_in + bottom_in + row_in * per_col)
    fig = Figure(figsize=(7.0, height))
    label_in = 2.25 if cols == 2 else 4.2  # room for the row labels, left of each axis
    axis_in = (7.0 - cols * label_in - 0.1) / cols
    axes = []
    for k in range(cols):
        left = (k * (label_in + axis_in) + label_in) / 7.0
        axes.append(fig.add_axes((left, bottom_in / height, axis_in / 7.0,
                                  1 - (top_in + bottom_in) / height)))
    wrap = int((label_in + axis_in) * 72 / (0.62 * size))  # bold characters across a column
    width = int(label_in * 72 / (0.56 * size))  # characters of a row label
    ratios = t.groupby("condition")["ratio"].nunique()
    for ax, col in zip(axes, columns, strict=True):
        labels, y = [], 0
        d = pd.concat([g for _, g in col])
        lim = np.nanmax(np.abs(d[["lo", "hi", "effect"]].to_numpy(dtype=float)))
        lim = 1.1 * (lim if np.isfinite(lim) and lim > 0 else 1.0)
        for f, g in col:
            c = {v: int((g["verdict"] == v).sum()) for v in VERDICT_COLOURS}
            text = (f"{f}: {c['supported']} supported, {c['contradicted']} contradicted, "
                    f"{c['inconclusive']} inconclusive"
                    + (f", {c['described']} described" if c["described"] else ""))
            ax.text(-label_in / axis_in, y + 0.5 * (head - 1), textwrap.fill(text, wrap),
                    transform=ax.get_yaxis_transform(), fontsize=size, fontweight="bold",
                    va="center", ha="left", linespacing=1.0, zorder=5,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
            labels += [""] * head
            y += head
            for _, r in g.iterrows():
                colour = VERDICT_COLOURS.get(r["verdict"], "black")
                described = r["verdict"] == "described"
                if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
                    ax.plot([r["lo"], r["hi"]], [y, y], color=colour, linewidth=1.0,
                            linestyle=(0, (2, 1)) if described else "-")
                ax.plot([r["effect"]], [y], marker="o", markersize=3.0, color=colour,
                        markerfacecolor="white" if described else colour, linestyle="none")
                cond = str(r["condition"]).removesuffix(" noise")
                where = (f"{cond}" + (f" {100 * r['ratio']:g}%" if ratios[r["condition"]] > 1
                                      else "") if several else f"{100 * r['ratio']:g}%")
                label = (f"{short_claim(str(r['claim']))} · "
                         f"{FOREST_KINDS.get(r['checkpoint'], r['checkpoint'])} · {where}")
                labels.append(textwrap.shorten(label, width, placeholder="…"))
                y += 1
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=size)
        ax.set_ylim(per_col - 0.4, -0.6)  # the same row spacing in every column
        ax.set_xlim(-lim, lim)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=size + 0.5)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("paired effect (points; + = paper's direction)", fontsize=size + 0.5)
    handles = [Line2D([], [], color=VERDICT_COLOURS[v], marker="o", markersize=4,
                      markerfacecolor="white" if v == "described" else VERDICT_COLOURS[v],
                      linestyle=(0, (2, 1)) if v == "described" else "-",
                      label=v + (" (< 3 seeds: interval over test images only)"
                                 if v == "described" else " (adjusted p)"
                                 if v == "supported" else ""))
               for v in VERDICT_COLOURS]
    fig.legend(handles=handles, loc="upper center", ncol=4, frameon=False, fontsize=size + 0.5,
               bbox_to_anchor=(0.5, 1.0), handlelength=2.5)
    return save(fig, stem)
