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
from . import paper  # noqa: E402
from . import statistics as S  # noqa: E402
from .columns import attacks_text, setting_text  # noqa: E402

DPI = 150
VECTOR = "pdf"

CONDITION_STYLES = ("-", "--", ":", "-.")
# Where several conditions (profiles) share a panel, the points of one method keep its colour and
# marker shape but differ in fill (never "none": open markers are the paper's numbers) and are
# set apart on x, so no two conditions' points look the same or hide each other. Every
# (condition, method) pair at a ratio gets its own slot, so that neither two conditions nor two
# methods with close accuracies draw their bars on one line; each slot's per-seed dots sit
# between its own mean and the next slot's (test_plots).
CONDITION_FILLS = ("full", "bottom", "left", "top", "right")  # the other half light grey
SLOT_WIDTH = 3.0  # percentage points of noise ratio between neighbouring slots, at most
SLOT_SHARE = 0.75  # of the smallest gap between ratios that one ratio's slots may span


def _fill(conditions: list[str], c: str) -> str:
    return CONDITION_FILLS[conditions.index(c) % len(CONDITION_FILLS)]


def _slot_width(ratios: Sequence[float], n_slots: int) -> float:
    """The x distance (percentage points) between slots: SLOT_WIDTH, or less where the ratios
    lie so close that one ratio's slots would run into the next ratio's."""
    gaps = np.diff(sorted(set(100 * np.asarray(ratios, dtype=float))))
    if not len(gaps) or n_slots < 2:
        return SLOT_WIDTH
    return min(SLOT_WIDTH, SLOT_SHARE * float(gaps.min()) / n_slots)


def _slot(pairs: list[tuple[str, str]], pair: tuple[str, str], width: float) -> float:
    return width * (pairs.index(pair) - (len(pairs) - 1) / 2)


def _methods(df: pd.DataFrame) -> list[str]:
    return sorted(dict.fromkeys(df["method"]), key=method_rank)


def _style(conditions: list[str], c: str) -> str:
    return CONDITION_STYLES[conditions.index(c) % len(CONDITION_STYLES)]


def _label(method: str, condition: str, conditions: list[str],
           rows: pd.DataFrame | None = None) -> str:
    text = method_label(method) + (f", {condition}" if len(conditions) > 1 else "")
    setting = setting_text(rows, unit="%") if rows is not None and not rows.empty else ""
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


SEED_SHARE = 0.4  # of the slot width between a mean and its per-seed dots
SEED_DX = SEED_SHARE * SLOT_WIDTH  # percentage points, where slots have their full width
ONE_SEED_ALPHA = 0.45  # a one-seed mean is drawn faded, its bar dashed: described, not tested


# The per-seed dots of a figure whose runs come from several noise draws: one marker per noise
# seed, so a reader sees whether a mean's spread is between draws or within one.
DRAW_MARKERS = (".", "x", "+", "1", "2", "3")


def _draw_marker(i: int) -> str:
    """The marker of the i-th noise draw (by noise seed) of a figure."""
    return DRAW_MARKERS[min(i, len(DRAW_MARKERS) - 1)]


def _seed_points(ax, seeds: pd.DataFrame | None, c: str, m: str, kind: str, x0: float,
                 ratio: float, dx: float = SEED_DX, draws: Sequence[int] = ()) -> set[int]:
    """The per-seed accuracies of one mean, as small dots just right of it; with several noise
    draws in the figure (draws: their noise seeds, sorted), each draw's dots in its own marker.
    Returns the noise seeds drawn ({-1} for dots of one undistinguished draw)."""
    if seeds is None or seeds.empty or f"{kind}_acc" not in seeds:
        return set()
    d = seeds[(seeds["condition"] == c) & (seeds["method"] == m)
              & ((seeds["ratio"] - ratio).abs() < 1e-9)]
    d = d[d[f"{kind}_acc"].notna()]
    several = len(draws) > 1
    drawn = set()
    for i, draw in enumerate(draws if several else [-1]):
        y = (d[d["noise_seed"] == draw] if several else d)[f"{kind}_acc"].to_numpy(float)
        if not len(y):
            continue
        # draws side by side within the dots' column (0.75-1.25 dx), so they never overlap
        at = dx * (0.75 + 0.5 * i / (len(draws) - 1)) if several else dx
        marker = _draw_marker(i) if several else "."
        ax.plot(np.full(len(y), x0 + at), y, linestyle="none", marker=marker,
                markersize=3.5 if marker == "." else 4, color=method_color(m), alpha=0.8,
                gid=f"seeds:{m}:noise{draw}" if several else f"seeds:{m}")
        drawn.add(int(draw))
    return drawn


def _paper_panel(ax, methods: list[str]) -> None:
    """The paper's Table 2 (all four methods, its own settings) on an axis of its own, so that
    its much higher accuracies never set the range of ours. The panel writes out Table 2's α and
    p, since a method's colour there is the colour of our runs of it, whose settings the legend
    gives and may differ (mixup at α = 1 here, α = 32 in Table 2 at 50 %)."""
    t = paper.table2()
    notes = []
    for m in [m for m in methods if m in set(t["method"])] or list(dict.fromkeys(t["method"])):
        d = t[t["method"] == m].sort_values("ratio")
        if setting := setting_text(d.rename(columns={"paper_alpha": "alpha",
                                                     "paper_dropout": "dropout"}), unit="%"):
            # one line per hyperparameter, so the note stays inside the panel
            notes.append(f"{method_label(m)}: " + "\n    ".join(setting.split("; ")))
        x = 100 * d["ratio"].to_numpy()
        ax.plot(x, 100 - d["paper_last_error"].to_numpy(), color=method_color(m),
                marker=method_marker(m), markersize=5, linestyle="-", linewidth=1.2)
        ax.plot(x, 100 - d["paper_best_error"].to_numpy(), color=method_color(m),
                marker=method_marker(m), markersize=6, markerfacecolor="none", linestyle="--",
                linewidth=0.9)
    if notes:
        ax.text(0.03, 0.03, "Table 2's own settings:\n" + "\n".join(notes), transform=ax.transAxes,
                fontsize=6.5, va="bottom", ha="left", color="dimgrey", gid="paper-settings",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1.5))
    ax.set_title("paper, Table 2 (own axis)\nPreAct ResNet-18, 200 epochs", fontsize=9)
    ax.set_xlabel("label noise ratio (%)")
    ax.set_xticks(sorted(100 * t["ratio"].unique()))
    ax.grid(alpha=0.3)
    ax.set_ylabel("test accuracy (%)", fontsize=8)


def plot_noise(table: pd.DataFrame, stem: Path, seeds: pd.DataFrame | None = None) -> list[Path]:
    """Test accuracy (%) against the noise ratio for each checkpoint kind the runs have (last,
    selected on noisy validation, test-selected): one line per method and condition, mean over
    seeds with its 95 % interval, its per-seed values as small dots beside it (seeds: one row
    per run with condition, ratio, method, noise_seed and <kind>_acc; one marker per noise seed
    where there are several); a one-seed mean faded with a dashed bar (its interval covers test
    images only). Where some runs are symmetric-noise CIFAR-10 at
    a level of the paper's Table 2 (20, 50 or 80 %), Table 2 for its four methods in a panel of
    its own (solid: last epoch; open, dashed: its "best", test-selected), never on our axes."""
    conditions = list(dict.fromkeys(table["condition"]))
    kinds = [k for k in CK.KINDS
             if table[f"{k}_acc_mean"].notna().any()]
    methods = _methods(table)
    # Several noise sources (CIFAR-10N label sets, matrix noise): their "ratio" is a measured
    # rate, two sources can share it, and 3 sources × 4 methods on one ratio axis pile up; each
    # source gets its own slot on a categorical axis instead, methods side by side within it.
    slots = (list(dict.fromkeys(zip(table.sort_values("ratio")["condition"],
                                    table.sort_values("ratio")["ratio"], strict=True)))
             if "noise" in table and table["noise"].nunique() > 1 else None)
    step = 0.8 / max(len(methods), 1)
    pairs = [(c, m) for c in conditions for m in _methods(table[table["condition"] == c])]
    width = _slot_width(table["ratio"], len(pairs))
    comparable = paper.covers(table)  # a clean-label study has nothing to set beside Table 2
    n_panels = len(kinds) + (1 if comparable else 0)
    fig = Figure(figsize=(4.0 * n_panels + 0.6, 4.8))
    axes = np.atleast_1d(fig.subplots(1, n_panels))
    ours = axes[:len(kinds)]
    for ax in ours[1:]:
        ax.sharey(ours[0])
    handles, drawn_seeds, one_seed = {}, set(), False
    draws = (sorted(int(n) for n in seeds["noise_seed"].dropna().unique())
             if seeds is not None and "noise_seed" in seeds else [])
    for ax, kind in zip(ours, kinds, strict=True):
        for c in conditions:
            for m in _methods(table[table["condition"] == c]):
                d = table[(table["condition"] == c) & (table["method"] == m)].sort_values("ratio")
                d = d[d[f"{kind}_acc_mean"].notna()]
                if d.empty:
                    continue
                if slots is None:
                    x = 100 * d["ratio"].to_numpy() + _slot(pairs, (c, m), width)
                else:
                    x = np.asarray([slots.index((c, r)) - 0.4 + step * methods.index(m)
                                    + 0.3 * step for r in d["ratio"]], dtype=float)
                fill = _fill(conditions, c) if slots is None else "full"
                y = d[f"{kind}_acc_mean"].to_numpy(dtype=float)
                n = (d["n_seeds"].to_numpy() if "n_seeds" in d
                     else np.full(len(d), S.MIN_SEEDS))
                single = n < S.MIN_SEEDS
                size = 5 if len(conditions) == 1 else 7  # half fills need room
                (h,) = ax.plot(x, y, color=method_color(m), marker=method_marker(m),
                               fillstyle=fill, markerfacecolor=method_color(m),
                               markerfacecoloralt="lightgrey", linestyle=_style(conditions, c),
                               markersize=size, label=_label(m, c, conditions, d),
                               markevery=list(np.flatnonzero(~single)))
                handles.setdefault((c, m), h)
                yerr = _yerr(d, f"{kind}_acc_mean", f"{kind}_acc_lo", f"{kind}_acc_hi")
                if yerr is not None and (~single).any():
                    ax.errorbar(x[~single], y[~single], yerr=yerr[:, ~single], fmt="none",
                                ecolor=method_color(m), capsize=3)
                if single.any():
                    # fewer than MIN_SEEDS seeds: a description, so drawn faded, its bar dashed
                    one_seed = True
                    eb = ax.errorbar(x[single], y[single],
                                     yerr=None if yerr is None else yerr[:, single],
                                     linestyle="none", marker=method_marker(m), fillstyle=fill,
                                     color=method_color(m), markerfacecoloralt="lightgrey",
                                     markersize=size, capsize=3, alpha=ONE_SEED_ALPHA)
                    for bar in eb[2]:
                        bar.set_linestyle((0, (2, 1.5)))
                dx = SEED_SHARE * (width if slots is None else step)
                for xi, r in zip(x, d["ratio"], strict=True):
                    drawn_seeds |= _seed_points(ax, seeds, c, m, kind, float(xi), float(r), dx,
                                                draws)
        ax.set_title(f"test accuracy, {KIND_TITLES[kind]}", fontsize=10)
        if slots is None:
            ax.set_xlabel("label noise ratio (%)")
            ticks = sorted(set(100 * table["ratio"]))
            ax.set_xticks(ticks)
            if len(ticks) == 1:  # one ratio: autoscaling would pin the seed dots to the edge
                half = width * ((len(pairs) - 1) / 2 + 1.5)
                ax.set_xlim(ticks[0] - half, ticks[0] + half)
        else:
            ax.set_xlabel("noise source")
            ax.set_xticks(range(len(slots)))
            ax.set_xticklabels([textwrap.fill(f"{str(c).removesuffix(' noise')}", 16,
                                              break_long_words=False)
                                + f"\n{100 * r:.1f}% wrong" for c, r in slots], fontsize=7)
            ax.set_xlim(-0.6, len(slots) - 0.4)
        ax.grid(alpha=0.3)
        ax.tick_params(labelleft=True)
    ours[0].set_ylabel("test accuracy (%)")
    if comparable:
        _paper_panel(axes[-1], _methods(table))
    if len(conditions) == 1:
        legend = [handles[(c, m)] for c, m in handles]
    elif slots is not None:  # the x axis names the sources: the legend needs only the methods
        legend = [Line2D([], [], color=method_color(m), marker=method_marker(m),
                         linestyle="none", label=_label(m, "", [], table[table["method"] == m]))
                  for m in methods]
    else:
        # one entry per method and one per condition, not one per pair: 3 conditions × 4
        # methods would be 12 entries a reader has to match by colour and fill at once
        legend = [Line2D([], [], color=method_color(m), marker=method_marker(m),
                         label=_label(m, "", [], table[table["method"] == m])) for m in methods]
        legend += [Line2D([], [], color="dimgrey", marker="o", fillstyle=_fill(conditions, c),
                          markerfacecoloralt="lightgrey", linestyle=_style(conditions, c),
                          label=c) for c in conditions]
    if drawn_seeds == {-1}:
        legend.append(Line2D([], [], color="dimgrey", marker=".", linestyle="none",
                             label="dots: each seed"))
    elif drawn_seeds:
        legend += [Line2D([], [], color="dimgrey", marker=_draw_marker(i), linestyle="none",
                          label=f"each seed, noise seed {n}")
                   for i, n in enumerate(draws) if n in drawn_seeds]
    if one_seed:
        legend.append(Line2D([], [], color="dimgrey", marker="o", alpha=ONE_SEED_ALPHA,
                             linestyle=(0, (2, 1.5)),
                             label=f"faded, dashed bar: fewer than {S.MIN_SEEDS} seeds "
                                   "(bar over test images only; described, not tested)"))
    if comparable:
        legend.append(Line2D([], [], color="dimgrey", marker="o", markerfacecolor="none",
                             linestyle="--", label="paper panel: solid = last epoch, open/dashed "
                                                    "= its \"best\" (test-selected)"))
    ncol = 3 if len(conditions) == 1 else 2
    _legend_below(fig, legend, ncol)
    fig.subplots_adjust(bottom=0.22 + 0.05 * ((len(legend) - 1) // ncol), wspace=0.25)
    return save(fig, stem)


def eps_positions(eps: Sequence[float]) -> dict[float, int]:
    """ε values → their slot on a categorical axis: evenly spaced, so ε = 0 (no attack) sits
    at its own honest place and the small ε, where methods differ, are not squeezed together
    as on a linear axis, nor is 0 faked as on a log one."""
    return {e: i for i, e in enumerate(sorted({round(float(v), 6) for v in eps}))}


def eps_axis(ax, eps: Sequence[float]) -> dict[float, int]:
    """A categorical ε axis (eps_positions) with a tick per value; returns the positions."""
    pos = eps_positions(eps)
    ax.set_xticks(list(pos.values()))
    ax.set_xticklabels([f"{e:g}" for e in pos])
    ax.set_xlim(-0.5, len(pos) - 0.5)
    ax.minorticks_off()
    return pos


def _at(pos: dict[float, int], eps: pd.Series) -> np.ndarray:
    return np.asarray([pos[round(float(e), 6)] for e in eps], dtype=float)


REFERENCE = "erm"  # the method paired differences are taken against (attack_pairs.REFERENCE)
ATTACK_SEED_DX = 0.18  # ε slots between a few-seed mean and its per-seed dots
PAIRED_HEIGHT = 0.65  # a paired-difference panel's height, relative to an accuracy panel's


def _attack_seed_dots(ax, seeds: pd.DataFrame | None, pos: dict[float, int], m: str,
                      where: dict, value: str) -> bool:
    """The per-seed values of a method's few-seed means in one panel, as dots right of them."""
    if seeds is None or seeds.empty or value not in seeds:
        return False
    d = seeds[(seeds["method"] == m) & (seeds["attack"] == where["attack"])
              & (seeds["mode"] == where["mode"]) & (seeds["condition"] == where["condition"])
              & ((seeds["ratio"] - where["ratio"]).abs() < 1e-9)
              & seeds["eps"].round(6).isin(where["eps"])]
    d = d[d[value].notna()]
    if d.empty:
        return False
    ax.plot(_at(pos, d["eps"]) + ATTACK_SEED_DX, d[value], linestyle="none", marker=".",
            markersize=3.5, color=method_color(m), alpha=0.8, gid=f"seeds:{m}")
    return True


def plot_attack(table: pd.DataFrame, stem: Path, value: str = "accuracy",
                seeds: pd.DataFrame | None = None,
                paired: pd.DataFrame | None = None) -> list[Path]:
    """Accuracy under attack against ε (/255, categorical, ε = 0 the clean accuracy on the
    same images): small multiples, one column per attack × mode and one row per condition ×
    noise ratio, one line per method, as measured. value = "accuracy" (%) or "relative" (% of
    the model's own clean accuracy).

    A mean of MIN_SEEDS or more seeds has its 95 % interval (over seeds, widened to the
    binomial one over the images: tables.attack_table); a mean of fewer has none, its seeds
    drawn as dots beside it (seeds: attack_per_run rows, one per run). paired
    (attack_pairs.attack_differences): under each noise row that has them, a row of each
    method's accuracy minus ERM's, paired by seed and image, with its interval: the
    comparison the accuracy panels' overlapping intervals cannot make."""
    attacks = ("fgsm", "ifgsm", *sorted(set(table["attack"]) - {"fgsm", "ifgsm"}))
    modes = ("white-box", "black-box", *sorted(set(table["mode"]) - {"white-box", "black-box"}))
    cols = [(a, m) for a in attacks for m in modes
            if ((table["attack"] == a) & (table["mode"] == m)).any()]
    rows = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    has_pairs = {k for k in rows if paired is not None and not paired.empty
                 and ((paired["condition"] == k[0]) & (paired["ratio"] == k[1])).any()}
    layout = [(kind, k) for k in rows for kind in ("value", "paired")
              if kind == "value" or k in has_pairs]
    heights = [1.0 if kind == "value" else PAIRED_HEIGHT for kind, _ in layout]
    width, height = 2.05 * len(cols) + 0.7, 2.3 * sum(heights) + 1.3
    fig = Figure(figsize=(width, height))
    grid = fig.add_gridspec(len(layout), len(cols), height_ratios=heights)
    axes = np.empty((len(layout), len(cols)), dtype=object)
    first: dict[str, object] = {}  # the axis each kind of panel shares its y range with
    seen, dotted = {}, False
    all_eps = table["eps"] if paired is None or paired.empty else pd.concat(
        [table["eps"], paired["eps"]])
    for i, (kind, (c, ratio)) in enumerate(layout):
        for j, (attack, mode) in enumerate(cols):
            ax = fig.add_subplot(grid[i, j], sharex=axes[0, 0] if i or j else None,
                                 sharey=first.get(kind))
            first.setdefault(kind, ax)
            axes[i, j] = ax
            pos = eps_axis(ax, all_eps)
            here = {"attack": attack, "mode": mode, "condition": c, "ratio": ratio}
            if kind == "value":
                d = table[(table["attack"] == attack) & (table["mode"] == mode)
                          & (table["condition"] == c) & (table["ratio"] == ratio)]
                for m in _methods(d):
                    dm = d[d["method"] == m].sort_values("eps")
                    n = (dm["n_runs"].to_numpy() if "n_runs" in dm
                         else np.full(len(dm), S.MIN_SEEDS))
                    few = n < S.MIN_SEEDS
                    yerr = _yerr(dm, f"{value}_mean", f"{value}_lo", f"{value}_hi")
                    if yerr is not None:
                        yerr = np.where(few, 0.0, yerr)  # no interval over so few seeds
                        yerr = None if not yerr.any() else yerr
                    h = ax.errorbar(_at(pos, dm["eps"]), dm[f"{value}_mean"], yerr=yerr,
                                    color=method_color(m), marker=method_marker(m),
                                    markersize=3.5, capsize=1.5, linewidth=1.1, elinewidth=0.8,
                                    linestyle="-", label=method_label(m))
                    seen.setdefault(m, h)
                    if few.any():
                        eps = set(dm.loc[few, "eps"].round(6))
                        dotted |= _attack_seed_dots(ax, seeds, pos, m, {**here, "eps": eps},
                                                    value)
                empty = d.empty
            else:
                d = paired[(paired["attack"] == attack) & (paired["mode"] == mode)
                           & (paired["condition"] == c) & (paired["ratio"] == ratio)]
                ax.axhline(0, color="black", linewidth=0.6)
                for m in _methods(d):
                    dm = d[d["method"] == m].sort_values("eps")
                    ax.errorbar(_at(pos, dm["eps"]), dm["effect"],
                                yerr=_yerr(dm, "effect", "lo", "hi"), color=method_color(m),
                                marker=method_marker(m), markersize=3.0, capsize=1.5,
                                linewidth=0.9, elinewidth=0.8, linestyle="-",
                                gid=f"paired:{m}")
                empty = d.empty
            if i == 0:
                src = ""
                if mode != "white-box":
                    names = sorted(set("+".join(table[(table["attack"] == attack)
                                                      & (table["mode"] == mode)]["sources"])
                                       .split("+")))
                    src = "\nfrom " + "/".join(names)
                short = "wb" if mode == "white-box" else "bb" if mode == "black-box" else mode
                ax.set_title(f"{attack_label(attack)} {short}{src}", fontsize=8)
            if j == 0:
                where = _pct_ratio(ratio) + (f"\n{c}" if len(conditions) > 1 else "")
                if kind == "paired":
                    ylabel = f"method − {method_label(REFERENCE)}\n(points, paired)"
                else:
                    ylabel = "accuracy (%)" if value == "accuracy" else "% of clean acc."
                ax.set_ylabel(f"{where}\n{ylabel}", fontsize=8)
            else:
                ax.tick_params(labelleft=False)
            if i == len(layout) - 1:
                ax.set_xlabel("ε (/255)", fontsize=8)
            else:
                ax.tick_params(labelbottom=False)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if empty:
                ax.text(0.5, 0.5, "not run" if kind == "value" else "not paired by image",
                        transform=ax.transAxes, ha="center", va="center", fontsize=7,
                        color="grey")
    methods = _methods(pd.DataFrame({"method": list(seen)}))
    for m in methods:
        seen[m].set_label(_label(m, "", [], table[table["method"] == m]))
    handles = [seen[m] for m in methods]
    if dotted:
        handles.append(Line2D([], [], color="dimgrey", marker=".", linestyle="none",
                              label=f"dots: each seed (fewer than {S.MIN_SEEDS} seeds: no "
                                    "interval)"))
    if has_pairs:
        handles.append(Line2D([], [], color="black", linewidth=0.6,
                              label=f"lower rows: each method − {method_label(REFERENCE)}, "
                                    "paired by seed and image, 95 % interval"))
    ncol = 4 if len(handles) <= 4 else 2  # the long notes need the width of two columns
    _legend_below(fig, handles, ncol)
    fig.subplots_adjust(hspace=0.25, wspace=0.12,
                        bottom=(0.85 + 0.2 * ((len(handles) - 1) // ncol)) / height,
                        top=1 - 0.55 / height)
    return save(fig, stem)


def plot_robust(table: pd.DataFrame, stem: Path, seeds: pd.DataFrame | None = None
                ) -> list[Path]:
    """Robust accuracy (%: images no attack fooled) against ε, one panel per condition × noise
    ratio, one line per method (mean over seeds with its 95 % interval), each run's value as a
    small dot right of its mean (seeds: tables.robust_per_run rows)."""
    cols = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(3.3 * len(cols) + 0.6, 4.0))
    axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    seen, dotted, fewer = {}, False, False
    for ax, (c, ratio) in zip(axes, cols, strict=True):
        d = table[(table["condition"] == c) & (table["ratio"] == ratio)]
        pos = eps_axis(ax, table["eps"])
        per_eps: dict[float, set[str]] = {}
        for e, a in zip(d["eps"], d["attacks"], strict=True):
            per_eps.setdefault(float(e), set()).update(str(a).split("+"))
        for m in _methods(d):
            dm = d[d["method"] == m].sort_values("eps")
            seen.setdefault(m, ax.errorbar(
                _at(pos, dm["eps"]), dm["robust_mean"], yerr=_yerr(dm, "robust_mean", "robust_lo", "robust_hi"),
                color=method_color(m), marker=method_marker(m), markersize=4, capsize=2,
                label=method_label(m)))
            # A point over fewer attacks than the panel names reads higher: drawn open.
            short = [set(str(a).split("+")) != per_eps[float(e)]
                     for e, a in zip(dm["eps"], dm["attacks"], strict=True)]
            if any(short):
                ds = dm[short]
                ax.plot(_at(pos, ds["eps"]), ds["robust_mean"], linestyle="none",
                        marker=method_marker(m), markersize=4, markerfacecolor="white",
                        color=method_color(m), gid=f"fewer:{m}",
                        zorder=2.2)  # above errorbar's own markers (2.1)
                fewer = True
            if seeds is not None and not seeds.empty:
                ds = seeds.merge(dm[["condition", "ratio", "method", "alpha", "dropout"]]
                                 .drop_duplicates(), on=["condition", "ratio", "method",
                                                         "alpha", "dropout"])
                ds = ds[ds["eps"].round(6).isin(dm["eps"].round(6))]
                if not ds.empty:
                    ax.plot(_at(pos, ds["eps"]) + ATTACK_SEED_DX, ds["accuracy"],
                            linestyle="none", marker=".", markersize=3.5, color=method_color(m),
                            alpha=0.8, gid=f"seeds:{m}")
                    dotted = True
        attacks = attacks_text({e: sorted(a) for e, a in sorted(per_eps.items())})
        ax.set_title(f"{_pct_ratio(ratio)}" + (f", {c}" if len(conditions) > 1 else "")
                     + "\n" + textwrap.fill(f"worst case over {attacks}", 44), fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_xlabel("ε (/255)")
    axes[0].set_ylabel("robust accuracy (%)")
    methods = _methods(pd.DataFrame({"method": list(seen)}))
    legend = [seen[m] for m in methods]
    if dotted:
        legend.append(Line2D([], [], color="dimgrey", marker=".", linestyle="none",
                             label="dots: each seed"))
    if fewer:
        legend.append(Line2D([], [], color="dimgrey", marker="o", markerfacecolor="white",
                             linestyle="none", label="open: not every attack named"))
    _legend_below(fig, legend, 5)
    fig.subplots_adjust(bottom=0.3, top=0.72)
    return save(fig, stem)


CURVE_PANELS = (
    ("test_acc", "test accuracy (%)"),
    ("train_acc_noisy", "train accuracy, noisy labels (%)"),
    ("train_acc_clean", "train accuracy, true labels (%)"),
    ("memorised", "corrupted examples fit to noisy label (%)"),
)


def _count(v: float) -> str:
    return f"{int(v):,}" if pd.notna(v) else "?"


def _curve_images(d: pd.DataFrame, col: str) -> str:
    """What a panel's curves are measured on: test images per epoch, or the training-
    evaluation subset (and of it about how many corrupted examples, for the memorised share);
    with the seeds behind the mean."""
    lo, hi = ((int(d["n_seeds"].min()), int(d["n_seeds"].max())) if "n_seeds" in d and len(d)
              else (0, 0))
    runs = (f", {lo}–{hi} seeds" if lo != hi else
            f", {hi} seed{'s' if hi != 1 else ''}" if hi else "")
    if col == "test_acc":
        n = d["test_images"].min() if "test_images" in d else np.nan
        return f"on {_count(n)} test images{runs}"
    n = d["train_eval_images"].min() if "train_eval_images" in d else np.nan
    if col == "memorised" and len(d) and float(d["ratio"].iloc[0]) <= 0:
        return f"{_count(n)} training images{runs}"
    if col == "memorised":
        k = d["corrupted_eval_images"].min() if "corrupted_eval_images" in d else np.nan
        return f"on ≈{_count(k)} corrupted of {_count(n)} train images{runs}"
    return f"on {_count(n)} training images{runs}"


def _seed_curves(ax, seeds: pd.DataFrame | None, c: str, ratio: float, m: str, col: str) -> bool:
    """Each seed's own curve of a group of fewer than MIN_SEEDS seeds, thin beside its mean:
    with so few seeds there is no interval over them to draw, so the seeds themselves are."""
    if seeds is None or seeds.empty or col not in seeds:
        return False
    d = seeds[(seeds["condition"] == c) & (seeds["method"] == m)
              & ((seeds["ratio"] - ratio).abs() < 1e-9) & (seeds["n_seeds"] < S.MIN_SEEDS)]
    drawn = False
    for _, g in d.groupby(["seed", "noise_seed"], sort=True):
        g = g.sort_values("epoch")
        if g[col].notna().any():
            ax.plot(g["epoch"], g[col], color=method_color(m), linewidth=0.6, alpha=0.55,
                    gid=f"seeds:{m}")
            drawn = True
    return drawn


def plot_curves(table: pd.DataFrame, stem: Path, milestones: dict | None = None,
                chance: float | None = 10.0, seeds: pd.DataFrame | None = None) -> list[Path]:
    """Per epoch: test accuracy, training accuracy against the noisy and the true labels, and
    the memorised fraction; rows = condition × noise ratio, one line per method (mean over
    seeds, band = 95 % t-interval over seeds from MIN_SEEDS seeds on; with fewer, each seed's
    own curve thin beside the mean, from seeds: tables.curve_seeds). Dotted verticals mark
    the learning-rate steps (milestones: condition → epochs). On the memorisation panels a
    dashed line in each method's colour is its null (column memorised_null of the curves table:
    the share its own mistakes give under the noise process, which the memorisation verdicts
    test against), not 1/K; only a method without one gets `chance` (grey dash-dot), as the
    verdicts fall back to it."""
    rows = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    fig = Figure(figsize=(14, 2.8 * len(rows) + 1.2))
    axes = fig.subplots(len(rows), len(CURVE_PANELS), sharex=True, squeeze=False)
    seen, banded, has_null, has_chance, thin = {}, False, False, False, False
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
                thin |= _seed_curves(ax, seeds, c, ratio, m, col)
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
                ax.set_title(f"{where}\n{_curve_images(d, col)}", fontsize=8)
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
    if thin:
        handles.append(Line2D([], [], color="grey", linewidth=0.6,
                              label=f"thin: each seed (fewer than {S.MIN_SEEDS} seeds: no "
                                    "interval over seeds)"))
    _legend_below(fig, handles, 3)
    fig.subplots_adjust(hspace=0.45, wspace=0.3,
                        bottom=(1.0 + 0.25 * ((len(handles) - 1) // 3)) / (2.8 * len(rows) + 1.2))
    return save(fig, stem)


def plot_ablation(table: pd.DataFrame, stem: Path, seeds: pd.DataFrame | None = None
                  ) -> list[Path]:
    """Test error (%) of every method at the noise ratios with ablations, for each checkpoint
    kind the runs have: grouped bars (mean over seeds, error bar = 95 % interval), each run's
    error a small dot on its bar (seeds: one row per run with condition, ratio, method, alpha,
    dropout and <kind>_error)."""
    groups = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    conditions = list(dict.fromkeys(table["condition"]))
    methods = _methods(table)
    kinds = [k for k in CK.KINDS
             if table[f"{k}_error_mean"].notna().any()]
    fig = Figure(figsize=(max(4.5, 1.0 + 0.45 * len(methods) * len(groups)) * len(kinds), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    width = 0.8 / len(methods)
    handles, dotted = [], False
    for ax, kind in zip(axes, kinds, strict=True):
        for k, m in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for g, (c, ratio) in enumerate(groups):
                d = table[(table["condition"] == c) & (table["ratio"] == ratio) & (table["method"] == m)]
                if d.empty:
                    continue
                xs.append(g - 0.4 + width * (k + 0.5))
                ys.append(float(d[f"{kind}_error_mean"].iloc[0]))
                if seeds is not None and f"{kind}_error" in seeds:
                    keys = ["condition", "ratio", "method", "alpha", "dropout"]
                    ds = seeds.merge(d[keys].head(1), on=keys)[f"{kind}_error"].dropna()
                    if len(ds):
                        spread = np.linspace(-width / 4, width / 4, len(ds)) if len(ds) > 1 else [0.0]
                        ax.plot(xs[-1] + np.asarray(spread), ds.to_numpy(dtype=float),
                                linestyle="none", marker=".", markersize=3.5, color="black",
                                alpha=0.7, zorder=3, gid=f"seeds:{m}")
                        dotted = True
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
    if dotted:
        handles.append(Line2D([], [], color="black", marker=".", linestyle="none", alpha=0.7,
                              label="dots: each seed"))
    _legend_below(fig, handles, 3)
    fig.subplots_adjust(bottom=0.22 + 0.05 * ((len(handles) - 1) // 3), wspace=0.15)
    return save(fig, stem)


def plot_transitions(table: pd.DataFrame, stem: Path, classes: list[str] | tuple[str, ...]
                     ) -> list[Path]:
    """The transition matrix of each noise source's training labels as a heatmap: row = true
    class, column = noisy label, cell = % of the true class given that label (row-normalised,
    annotated where at least 0.5 %), one panel per source that changes any label: a clean
    source's panel (0 %, the identity) shows nothing a reader needs."""
    labels = list(dict.fromkeys(table.loc[table["rate"] > 0, "source_label"]))
    if not labels:
        raise ValueError("no noise source changes a label: nothing to draw")
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


def plot_sources(table: pd.DataFrame, stem: Path, seeds: pd.DataFrame | None = None
                 ) -> list[Path]:
    """Test error (%) of each method across noise sources, for each checkpoint kind the runs
    have: x = noise source, annotated with its measured rate of wrong training labels (sources
    in order of that rate); points = mean over seeds, bars = 95 % interval, each run's error a
    small dot right of its mean (seeds: one row per run with condition, ratio, method, alpha,
    dropout and <kind>_error)."""
    groups = list(dict.fromkeys(zip(table["condition"], table["ratio"], strict=True)))
    methods = _methods(table)
    kinds = [k for k in CK.KINDS
             if table[f"{k}_error_mean"].notna().any()]
    fig = Figure(figsize=(max(4.8, 1.2 + 1.5 * len(groups)) * len(kinds), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    step = 0.7 / max(len(methods), 1)
    handles, dotted = [], False
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
            if seeds is not None and f"{kind}_error" in seeds:
                keys = ["condition", "ratio", "method", "alpha", "dropout"]
                for x, (_, r) in zip(xs, dm.iterrows(), strict=True):
                    ds = seeds.merge(pd.DataFrame([r[keys]]), on=keys)[f"{kind}_error"].dropna()
                    if len(ds):
                        ax.plot(np.full(len(ds), x + 0.3 * step), ds.to_numpy(dtype=float),
                                linestyle="none", marker=".", markersize=3.5,
                                color=method_color(m), alpha=0.8, gid=f"seeds:{m}")
                        dotted = True
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(f"test error, {KIND_TITLES[kind]}", fontsize=10)
        ax.set_xlabel("noise source (measured rate of wrong training labels)")
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelleft=True)
    axes[0].set_ylabel("test error (%)")
    if dotted:
        handles.append(Line2D([], [], color="dimgrey", marker=".", linestyle="none",
                              label="dots: each seed"))
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
    (r"mixup > ERM under common corruptions \(mean over (\d+) sets\)",
     r"corruptions (\1 sets): mixup > ERM"),
    (r"mixup has lower ECE than ERM on corrupted \(mean over (\d+) sets\) test images",
     r"ECE, corrupted (\1 sets): mixup < ERM"),
    (r"mixup has lower ECE than ERM on (\S+) test images", r"ECE, \1: mixup < ERM"),
    # NLL effects are in nats, not points: the row says so, since they share the points axis
    (r"mixup has lower NLL than ERM on (\S+) test images", r"NLL (nats), \1: mixup < ERM"),
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
