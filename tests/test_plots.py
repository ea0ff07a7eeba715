"""The figures of issue 26's "Figures" list, checked on the drawn matplotlib objects (caught
before saving): the paper's Table 2 on its own axis, per-seed points and faded few-seed means,
a categorical ε axis with ε = 0, attack × mode columns by noise rows, curve titles naming their
images, and no panel for clean labels in fig_transition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustmix.reporting import plots
from robustmix.reporting import statistics as S


@pytest.fixture
def caught(monkeypatch):
    figs = {}
    monkeypatch.setattr(plots, "save", lambda fig, stem: figs.setdefault("fig", fig) and [])
    return figs


def _noise_rows(n_seeds: dict[float, int]) -> pd.DataFrame:
    rows = []
    for m in ("erm", "mixup"):
        for r, n in n_seeds.items():
            acc = 50.0 - 20 * r + (5 if m == "mixup" else 0)
            row = {"condition": "quick", "ratio": r, "method": m, "alpha": 0.0 if m == "erm"
                   else 4.0, "dropout": 0.0, "n_seeds": n, "dataset": "cifar10", "noise": "sym"}
            for k in ("last", "selected", "test_selected"):
                row.update({f"{k}_acc_mean": acc, f"{k}_acc_lo": acc - 2, f"{k}_acc_hi": acc + 2})
            row.update({"paper_last_acc": np.nan, "paper_test_selected_acc": np.nan})
            rows.append(row)
    return pd.DataFrame(rows)


def _seeds(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in table.iterrows():
        for s in range(int(r["n_seeds"])):
            rows.append({"condition": r["condition"], "ratio": r["ratio"], "method": r["method"],
                         "seed": s, "noise_seed": 0,
                         **{f"{k}_acc": r["last_acc_mean"] + s - 1
                            for k in ("last", "selected", "test_selected")}})
    return pd.DataFrame(rows)


def test_fig_noise_puts_the_paper_on_its_own_axis_and_shows_each_seed(caught, tmp_path):
    table = _noise_rows({0.2: 1, 0.5: 3, 0.8: 3})
    plots.plot_noise(table, tmp_path / "fig_noise", seeds=_seeds(table))
    fig = caught["fig"]
    ours, paper = fig.axes[0], fig.axes[-1]
    assert len(fig.axes) == 4 and "Table 2" in paper.get_title()
    # the paper's accuracies (up to about 94 %) never stretch our axis (ours: 29-49 %)
    assert ours.get_ylim()[1] < 60 and paper.get_ylim()[1] > 90
    paper_y = np.concatenate([ln.get_ydata() for ln in paper.get_lines()])
    assert paper_y.max() == pytest.approx(100 - 5.9)  # mixup's "best" at 20 %
    assert not any(np.any(np.asarray(ln.get_ydata(), dtype=float) > 60)
                   for ln in ours.get_lines())
    dots = [ln for ln in ours.get_lines() if str(ln.get_gid()).startswith("seeds:")]
    assert sum(len(ln.get_ydata()) for ln in dots) == 2 * (1 + 3 + 3)
    # the one-seed means (20 %) are drawn faded; the three-seed ones are not
    faded = [ln for ln in ours.get_lines() if ln.get_alpha() == plots.ONE_SEED_ALPHA]
    assert faded and all(np.all(np.abs(ln.get_xdata() - 20) < 5) for ln in faded)
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any(f"fewer than {S.MIN_SEEDS} seeds" in t for t in labels)
    # our mixup runs use α = 4 (legend); the paper panel, in the same colour, says its own α
    assert any("mixup (α = 4)" in t for t in labels)
    (note,) = [t for t in paper.texts if t.get_gid() == "paper-settings"]
    assert "mixup: α = 8 at 20%, 32 at 50/80%" in note.get_text()
    assert "ERM:" not in note.get_text()  # nothing to set


def test_fig_noise_has_no_paper_panel_for_other_noise(caught, tmp_path):
    plots.plot_noise(_noise_rows({0.2: 3, 0.5: 3}).assign(noise="cifar10n-worst"),
                     tmp_path / "fig_noise")
    assert not any("Table 2" in ax.get_title() for ax in caught["fig"].axes)


def test_fig_noise_marks_which_noise_draw_each_seed_dot_comes_from(caught, tmp_path):
    table = _noise_rows({0.5: 6})
    seeds = _seeds(table)
    seeds["noise_seed"] = seeds["seed"] % 2  # 3 training seeds on each of two draws
    plots.plot_noise(table, tmp_path / "fig_noise", seeds=seeds)
    fig = caught["fig"]
    dots = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()
            if str(ln.get_gid()).startswith("seeds:")}
    assert set(dots) == {f"seeds:{m}:noise{n}" for m in ("erm", "mixup") for n in (0, 1)}
    assert dots["seeds:erm:noise0"].get_marker() != dots["seeds:erm:noise1"].get_marker()
    assert len(dots["seeds:mixup:noise1"].get_ydata()) == 3
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "each seed, noise seed 0" in labels and "each seed, noise seed 1" in labels
    assert "dots: each seed" not in labels


def test_fig_noise_has_no_paper_panel_for_clean_labels_only(caught, tmp_path):
    """Table 2 has no 0 % row: a clean-label study gets no panel of 20-80 % numbers."""
    plots.plot_noise(_noise_rows({0.0: 3}), tmp_path / "fig_noise")
    assert not any("Table 2" in ax.get_title() for ax in caught.pop("fig").axes)
    plots.plot_noise(_noise_rows({0.0: 3, 0.2: 3}), tmp_path / "fig_noise")
    assert any("Table 2" in ax.get_title() for ax in caught["fig"].axes)


def test_fig_noise_gives_each_noise_source_its_own_slot(caught, tmp_path):
    """Three sources × 4 methods: a categorical source axis and a legend of the 4 methods, not
    12 entries on two crowded ratios."""
    rows = []
    for cond, noise, rate in (("aggre", "cifar10n-aggre", 0.09), ("worst", "cifar10n-worst", 0.402),
                              ("matrix", "matrix-T", 0.402)):
        t = _noise_rows({rate: 3}).assign(condition=cond, noise=noise)
        rows.append(t)
    table = pd.concat(rows, ignore_index=True)
    plots.plot_noise(table, tmp_path / "fig_noise")
    ax = caught["fig"].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert [t.split("\n")[0] for t in ticks] == ["aggre", "worst", "matrix"]
    labels = [t.get_text() for leg in caught["fig"].legends for t in leg.get_texts()]
    assert len(labels) == 2  # ERM, mixup


def _attack_rows() -> pd.DataFrame:
    rows = []
    for ratio in (0.5, 0.8):
        for attack, mode in (("fgsm", "white-box"), ("fgsm", "black-box"), ("pgd", "white-box")):
            for m in ("erm", "mixup"):
                for eps in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0):
                    acc = 40.0 / (1 + eps)
                    rows.append({"condition": "quick", "ratio": ratio, "method": m, "alpha": 0.0,
                                 "dropout": 0.0, "attack": attack, "mode": mode, "eps": eps,
                                 "accuracy_mean": acc, "accuracy_lo": acc - 1,
                                 "accuracy_hi": acc + 1, "relative_mean": 100 * acc / 40,
                                 "relative_lo": np.nan, "relative_hi": np.nan,
                                 "sources": "erm" if mode == "black-box" else "itself"})
    return pd.DataFrame(rows)


def test_fig_attack_is_attack_by_mode_columns_noise_rows_on_a_categorical_eps(caught, tmp_path):
    plots.plot_attack(_attack_rows(), tmp_path / "fig_attack")
    fig = caught["fig"]
    grid = fig.axes[0].get_gridspec()
    assert (grid.nrows, grid.ncols) == (2, 3)
    ax = fig.axes[3]  # bottom row, first column: the row that labels the shared ε axis
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "4", "8", "16"]
    assert list(ax.get_xticks()) == [0, 1, 2, 3, 4, 5]  # evenly spaced, ε = 0 at its own slot
    assert ax.get_xscale() == "linear"
    line = next(ln for ln in ax.get_lines() if len(ln.get_xdata()) == 6)
    assert list(line.get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert "80% noise" in fig.axes[3].get_ylabel()


def test_fig_curves_titles_say_what_each_curve_is_measured_on(caught, tmp_path):
    rows = [{"condition": "c", "ratio": 0.5, "method": m, "alpha": 0.0, "dropout": 0.0,
             "epoch": e, "test_acc": 50.0, "train_acc_noisy": 60.0, "train_acc_clean": 55.0,
             "memorised": 20.0, "memorised_null": 5.0, "n_seeds": n, "train_eval_images": 500,
             "test_images": 1000, "corrupted_eval_images": 225}
            for m, n in (("erm", 4), ("mixup", 3)) for e in (1, 2)]
    plots.plot_curves(pd.DataFrame(rows), tmp_path / "fig_curves", {})
    titles = [ax.get_title() for ax in caught["fig"].axes]
    assert "on 1,000 test images, 3–4 seeds" in titles[0]
    assert "on 500 training images" in titles[1]
    assert "≈225 corrupted of 500 train images" in titles[3]


def test_fig_transition_leaves_out_clean_labels(caught, tmp_path):
    rows = []
    for label, rate in (("sym 0%", 0.0), ("sym 50%", 45.0)):
        for i in range(3):
            for j in range(3):
                frac = (1.0 if i == j else 0.0) if rate == 0 else (0.55 if i == j else 0.225)
                rows.append({"source_label": label, "noise": "sym", "clean": i, "noisy": j,
                             "count": int(100 * frac), "fraction": frac, "class_rate": rate,
                             "rate": rate, "images": 300, "label_draws": 1})
    plots.plot_transitions(pd.DataFrame(rows), tmp_path / "fig_transition", ["a", "b", "c"])
    shown = [ax for ax in caught["fig"].axes if ax.get_visible() and ax.images]
    assert [ax.get_title().split(":")[0] for ax in shown] == ["sym 50%"]
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.plot_transitions(pd.DataFrame([r for r in rows if r["rate"] == 0]),
                               tmp_path / "x", ["a", "b", "c"])


def test_fig_noise_at_one_ratio_keeps_the_seed_dots_inside(caught, tmp_path):
    table = _noise_rows({0.5: 3})
    plots.plot_noise(table, tmp_path / "fig_noise", seeds=_seeds(table))
    ax = caught["fig"].axes[0]
    lo, hi = ax.get_xlim()
    dots = [x for ln in ax.get_lines() if str(ln.get_gid()).startswith("seeds:")
            for x in ln.get_xdata()]
    assert dots and lo < 50 - plots.SEED_DX and max(dots) < hi - plots.SEED_DX


def test_fig_noise_sets_methods_at_one_ratio_apart(caught, tmp_path):
    """Methods with close accuracies at the same ratio: each has its own x, its seed dots
    between its mean and the next method's, so no two error bars share a line."""
    table = _noise_rows({0.5: 3})
    table.loc[table["method"] == "mixup", [c for c in table if c.endswith(("_mean", "_lo", "_hi"))
                                          and c.startswith(("last", "selected", "test"))]] -= 4.5
    plots.plot_noise(table, tmp_path / "fig_noise", seeds=_seeds(table))
    ax = caught["fig"].axes[0]
    mean_x = {m: sorted({x for ln in ax.get_lines() if ln.get_gid() is None
                         and ln.get_label().startswith(plots.method_label(m))
                         for x in ln.get_xdata()}) for m in ("erm", "mixup")}
    dots = {m: sorted(x for ln in ax.get_lines() if ln.get_gid() == f"seeds:{m}"
                      for x in ln.get_xdata()) for m in ("erm", "mixup")}
    (erm,), (mix,) = mean_x["erm"], mean_x["mixup"]
    assert mix - erm == pytest.approx(plots.SLOT_WIDTH)
    assert erm < min(dots["erm"]) and max(dots["erm"]) < mix < min(dots["mixup"])
    lo, hi = ax.get_xlim()
    assert lo < erm and max(dots["mixup"]) < hi


def test_fig_noise_slots_shrink_where_ratios_lie_close():
    assert plots._slot_width([0.0, 0.2, 0.5], 2) == plots.SLOT_WIDTH
    # 8 slots (2 profiles x 4 methods) at ratios 10 points apart stay within 75 % of the gap
    assert plots._slot_width([0.1, 0.2], 8) * 8 == pytest.approx(plots.SLOT_SHARE * 10)


def test_fig_noise_paper_settings_fit_inside_their_panel(caught, tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    table = _noise_rows({0.5: 3})
    table = pd.concat([table, table[table["method"] == "mixup"].assign(method="mixup_dropout"),
                       table[table["method"] == "erm"].assign(method="dropout")],
                      ignore_index=True)
    plots.plot_noise(table, tmp_path / "fig_noise")
    fig = caught["fig"]
    renderer = FigureCanvasAgg(fig).get_renderer()
    paper = fig.axes[-1]
    (note,) = [t for t in paper.texts if t.get_gid() == "paper-settings"]
    box, frame = note.get_window_extent(renderer), paper.get_window_extent(renderer)
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 <= box.y1 <= frame.y1
    assert "mixup + dropout: α = 4 at 20%, 8 at 50/80%\n    p = 0.1" in note.get_text()


def test_fig_robust_draws_each_runs_robust_accuracy_beside_its_mean(caught, tmp_path):
    """The per-run worst-case accuracies robust_summary averages are the dots beside each mean,
    one per run and ε, only where that setting's mean is drawn."""
    from robustmix.reporting import tables as T

    runs = []
    for m, base in (("erm", 0.0), ("mixup", 6.0)):
        for s in range(3):
            for eps in (1.0, 2.0, 8.0):
                for n in (500, 1000):  # a run attacked twice: the larger image set counts
                    runs.append({"condition": "fast", "ratio": 0.5, "method": m,
                                 "alpha": 1.0 if m == "mixup" else 0.0, "dropout": 0.0,
                                 "eps": eps, "path": f"{m}_s{s}", "seed": s, "noise_seed": 0,
                                 "checkpoint": "last", "n": n, "names": "fgsm+pgd",
                                 "worst": "pgd", "accuracy": max(base - eps, 0) + s
                                 + (0.5 if n == 500 else 0.0)})
    robust = pd.DataFrame(runs)
    table = T.robust_summary(robust)
    per_run = T.robust_per_run(robust)
    assert len(per_run) == 2 * 3 * 3 and set(per_run["n"]) == {1000}
    plots.plot_robust(table, tmp_path / "fig_robust", seeds=per_run)
    ax = caught["fig"].axes[0]
    dots = {ln.get_gid(): ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("seeds:")}
    assert set(dots) == {"seeds:erm", "seeds:mixup"}
    mix = dots["seeds:mixup"]
    assert sorted(mix.get_ydata()) == sorted(per_run[per_run["method"] == "mixup"]["accuracy"])
    assert np.allclose(sorted(set(mix.get_xdata())),
                       np.arange(3) + plots.ATTACK_SEED_DX)  # right of ε slots 0, 1, 2
    labels = [t.get_text() for leg in caught["fig"].legends for t in leg.get_texts()]
    assert "dots: each seed" in labels


def test_fig_noise_keeps_two_conditions_points_apart(caught, tmp_path):
    """Two profiles in one panel: at each ratio, a condition's mean, then its seed dots, then
    the next condition's mean, never interleaved; fills tell them apart beside the x offset."""
    table = pd.concat([_noise_rows({0.0: 3, 0.5: 3}),
                       _noise_rows({0.0: 3, 0.5: 3}).assign(condition="fast")], ignore_index=True)
    plots.plot_noise(table, tmp_path / "fig_noise", seeds=_seeds(table))
    ax = caught["fig"].axes[0]
    for ratio in (0, 50):
        for m in ("erm", "mixup"):
            means = sorted(x for ln in ax.get_lines() if ln.get_label().startswith(
                plots.method_label(m)) for x in ln.get_xdata() if abs(x - ratio) < 10)
            dots = sorted(x for ln in ax.get_lines() if ln.get_gid() == f"seeds:{m}"
                          for x in ln.get_xdata() if abs(x - ratio) < 10)
            assert len(means) == 2 and len(dots) == 6
            assert means[0] < dots[0] and dots[2] < means[1] < dots[3]
    fills = {ln.get_fillstyle() for ln in ax.get_lines() if ln.get_marker() == "o"
             and ln.get_gid() is None}
    assert fills == {"full", "bottom"}


def test_fig_ablation_puts_each_runs_error_on_its_bar(caught, tmp_path):
    rows, runs = [], []
    for k, m in enumerate(("erm", "mixup", "mixup_pick")):
        alpha = 0.0 if m == "erm" else 4.0
        row = {"condition": "quick", "ratio": 0.5, "method": m, "alpha": alpha, "dropout": 0.0,
               "n_seeds": 3, "ablation": m != "erm"}
        for kind in ("last", "selected", "test_selected"):
            row.update({f"{kind}_error_mean": 60.0 - k, f"{kind}_error_lo": 58.0 - k,
                        f"{kind}_error_hi": 62.0 - k})
        rows.append(row)
        for s in range(3):
            runs.append({"condition": "quick", "ratio": 0.5, "method": m, "alpha": alpha,
                         "dropout": 0.0, "seed": s, **{f"{kind}_error": 59.0 - k + s for kind
                                                       in ("last", "selected", "test_selected")}})
    # a run of another setting of mixup is not on mixup's bar
    runs.append({**runs[3], "alpha": 32.0, "seed": 9, "last_error": 99.0})
    plots.plot_ablation(pd.DataFrame(rows), tmp_path / "fig_ablation", seeds=pd.DataFrame(runs))
    ax = caught["fig"].axes[0]
    dots = {ln.get_gid(): ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("seeds:")}
    assert set(dots) == {"seeds:erm", "seeds:mixup", "seeds:mixup_pick"}
    assert sorted(dots["seeds:mixup"].get_ydata()) == [58.0, 59.0, 60.0]
    bars = {round(b.get_height(), 6): b for b in ax.patches}
    bar = bars[59.0]  # mixup's mean: its dots lie within its bar's width
    xs = dots["seeds:mixup"].get_xdata()
    assert bar.get_x() < min(xs) and max(xs) < bar.get_x() + bar.get_width()


def test_fig_sources_draws_each_runs_error_beside_its_mean(caught, tmp_path):
    rows, runs = [], []
    for g, (label, rate) in enumerate((("CIFAR-10N worst", 40.2), ("sym 50%", 45.2))):
        for m in ("erm", "mixup"):
            row = {"condition": label, "ratio": rate / 100, "source_label": label,
                   "measured_rate": rate, "method": m, "alpha": 0.0 if m == "erm" else 4.0,
                   "dropout": 0.0, "n_seeds": 3}
            for kind in ("last", "selected", "test_selected"):
                row.update({f"{kind}_error_mean": 40.0 + g, f"{kind}_error_lo": 39.0 + g,
                            f"{kind}_error_hi": 41.0 + g})
            rows.append(row)
            runs += [{**{k: row[k] for k in ("condition", "ratio", "method", "alpha", "dropout")},
                      "seed": s, **{f"{kind}_error": 39.0 + g + s for kind in
                                    ("last", "selected", "test_selected")}} for s in range(3)]
    plots.plot_sources(pd.DataFrame(rows), tmp_path / "fig_sources", seeds=pd.DataFrame(runs))
    ax = caught["fig"].axes[0]
    dots = [ln for ln in ax.get_lines() if ln.get_gid() == "seeds:mixup"]
    assert sorted(y for ln in dots for y in ln.get_ydata()) == [39, 40, 40, 41, 41, 42]
    assert sorted({round(x) for ln in dots for x in ln.get_xdata()}) == [0, 1]  # one per source


def test_fig_robust_names_attacks_by_eps_and_opens_points_over_fewer_attacks(caught, tmp_path):
    """Square at 8/255 only is named so in the title; mixup's point at 1/255, which lacks the
    AutoAttack ERM's has, is drawn open and the legend says what open means."""
    rows = []
    for m in ("erm", "mixup"):
        for eps in (1.0, 8.0):
            names = ["fgsm", "pgd"] + (["autoattack"] if m == "erm" or eps == 8 else []) \
                + (["square"] if eps == 8 else [])
            rows.append({"condition": "fast", "ratio": 0.5, "method": m,
                         "alpha": 1.0 if m == "mixup" else 0.0, "dropout": 0.0, "eps": eps,
                         "robust_mean": 10.0 / eps, "robust_lo": 8.0 / eps,
                         "robust_hi": 12.0 / eps, "attacks": "+".join(sorted(names))})
    plots.plot_robust(pd.DataFrame(rows), tmp_path / "fig_robust")
    ax = caught["fig"].axes[0]
    title = ax.get_title().replace("\n", " ")
    assert "autoattack, fgsm, pgd, square (ε=8 only)" in title
    opened = {ln.get_gid(): ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("fewer:")}
    assert set(opened) == {"fewer:mixup"}
    assert list(opened["fewer:mixup"].get_ydata()) == [10.0]
    labels = [t.get_text() for leg in caught["fig"].legends for t in leg.get_texts()]
    assert "open: not every attack named" in labels
