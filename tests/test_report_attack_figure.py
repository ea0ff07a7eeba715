"""fig_attack from fixture runs that stored their per-image outcomes: under the accuracy panels,
each method's accuracy minus ERM's paired by seed and image (attack_pairs), where there are 3
seeds; a method of 2 seeds has no interval, only its seeds as dots, and no paired row."""

from __future__ import annotations

import numpy as np
import pytest
from report_fixtures import Spec, write_fixture, write_nested_outcomes

from robustmix.reporting import plots
from robustmix.reporting import results as R
from robustmix.reporting.attack_pairs import attack_differences
from robustmix.reporting.markdown import _attack_seeds
from robustmix.training.methods import method_color

SPECS = [Spec(0.5, m, a, p, s, peak + 0.01 * s, 3, final + 0.01 * s, 0.9, slope + 0.002 * s)
         for m, a, p, peak, final, slope, seeds in (
             ("erm", 0.0, 0.0, 0.62, 0.40, 0.03, 3), ("mixup", 32.0, 0.0, 0.64, 0.46, 0.02, 3),
             ("dropout", 0.0, 0.7, 0.63, 0.42, 0.025, 2))
         for s in range(seeds)]


def draw(root, out, monkeypatch=None) -> dict:
    """The figure's tables from the runs under root, and fig_attack drawn into out."""
    res = R.load_results([root])
    noise = R.noise_table(res.runs, res.predictions)
    shown = R.attack_plot_table(R.attack_table(res.attacks, "last"), noise)
    paired = attack_differences(res, "last")
    seeds = _attack_seeds(res.attacks, shown, "last")
    figs = {}
    if monkeypatch is not None:  # keep the figure object to look into, as well as the files
        save = plots.save
        monkeypatch.setattr(plots, "save", lambda fig, stem: figs.setdefault("fig", fig)
                            and save(fig, stem))
    paths = plots.plot_attack(shown, out / "fig_attack", seeds=seeds, paired=paired)
    return {"shown": shown, "paired": paired, "paths": paths, "fig": figs.get("fig")}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack_figure")
    write_fixture(root, SPECS, unfinished=False)
    for s in SPECS:
        write_nested_outcomes(root / s.name)
    return root


def test_paired_rows_only_where_three_seeds_share_their_images(root):
    paired = attack_differences(R.load_results([root]), "last")
    assert set(paired["method"]) == {"mixup"}  # dropout: 2 seeds, nothing paired
    assert set(paired["reference"]) == {"erm"}
    r = paired[(paired["attack"] == "fgsm") & (paired["mode"] == "white-box")
               & (paired["eps"] == 8.0)].iloc[0]
    erm = [s for s in SPECS if s.method == "erm"]
    mix = [s for s in SPECS if s.method == "mixup"]
    # nested outcomes on the same 500 images: the difference of the mean accuracies
    want = np.mean([round(500 * max(0.0, m.final - m.slope * 8)) / 5
                    - round(500 * max(0.0, e.final - e.slope * 8)) / 5
                    for m, e in zip(mix, erm, strict=True)])
    assert r["effect"] == pytest.approx(want, abs=1e-3)
    assert r["lo"] < r["effect"] < r["hi"] and r["n_seeds"] == 3
    assert r["interval_over"] == "3 training seeds × 1 noise draw × 500 test images"
    assert "combined variance" in r["interval_method"]


def test_fig_attack_has_a_paired_row_and_dots_for_few_seeds(root, tmp_path, monkeypatch):
    got = draw(root, tmp_path, monkeypatch)
    assert [p.name for p in got["paths"]] == ["fig_attack.png", "fig_attack.pdf"]
    assert all(p.stat().st_size > 0 for p in got["paths"])
    fig = got["fig"]
    grid = fig.axes[0].get_gridspec()
    assert (grid.nrows, grid.ncols) == (2, 4)  # accuracy row, paired row; fgsm/ifgsm × wb/bb
    acc, pair = fig.axes[0], fig.axes[4]
    # dropout (2 seeds): dots, no error bar; ERM and mixup (3 seeds): bars, no dots
    bars = {c.lines[0].get_color(): c.has_yerr for c in acc.containers}
    assert bars[method_color("dropout")] is False
    assert bars[method_color("erm")] and bars[method_color("mixup")]
    gids = {ln.get_gid() for ln in acc.get_lines()}
    assert "seeds:dropout" in gids and "seeds:erm" not in gids
    dots = next(ln for ln in acc.get_lines() if ln.get_gid() == "seeds:dropout")
    assert len(dots.get_xdata()) == 2 * 4  # 2 seeds × 4 ε
    # the paired row: mixup − ERM with its interval, a zero line, the shared ε axis
    assert any(ln.get_gid() == "paired:mixup" for ln in pair.get_lines())
    assert pair.containers and pair.containers[0].has_yerr
    assert "paired" in pair.get_ylabel() and "ERM" in pair.get_ylabel()
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert any("each seed" in t for t in labels)
    assert any("paired by seed and image" in t for t in labels)
