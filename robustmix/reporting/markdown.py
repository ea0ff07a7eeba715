"""The report: figures, tables and report.md from stored results only (no training, no attacks).

Writes under --out: report.md; fig_noise, fig_curves, fig_attack and fig_ablation as .png
(150 dpi) and .pdf, each with the tidy .csv it was drawn from; table_noise, table_memorisation,
table_attack, table_ablation, table_sweep and table_runs as .csv. Figures and tables whose data
are absent (no attack.csv, no ablation methods, a single setting per method) are not written,
and stale copies of them from an earlier report in the same folder are removed.
"""

from __future__ import annotations

import datetime as _dt
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_text
from ..runs.provenance import git_commit
from ..training.methods import PAPER_METHODS, method_label
from . import paper
from . import results as R

FIGURES = ("fig_noise", "fig_curves", "fig_attack", "fig_ablation")
TABLES = ("table_noise", "table_memorisation", "table_attack", "table_ablation", "table_sweep",
          "table_runs")
OWNED = ("report.md", *(f"{f}.{e}" for f in FIGURES for e in ("png", "pdf", "csv")),
         *(f"{t}.csv" for t in TABLES))
THRESHOLD = 1.0  # points: a change smaller than this is "flat" in the written reading




# --------------------------------------------------------------------------- formatting


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def fmt(x, digits: int = 1) -> str:
    return f"{x:.{digits}f}" if _isnum(x) else "–"


def fmt_pm(mean, std, digits: int = 1) -> str:
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}" if _isnum(std) else fmt(mean, digits)


def fmt_diff(x) -> str:
    return f"{x:+.1f}" if _isnum(x) else "–"


def fmt_ratio(r: float) -> str:
    return f"{100 * r:g}%"


def name(method: str) -> str:
    return method_label(method)


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _conditions(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["condition"]))


def _by_condition(df: pd.DataFrame, render, level: str = "####") -> str:
    """render(sub-frame) for each condition, with a heading only when there are several."""
    conds = _conditions(df)
    if len(conds) == 1:
        return render(df)
    return "\n\n".join(f"{level} {c}\n\n{render(df[df['condition'] == c])}" for c in conds)


# --------------------------------------------------------------------------- tables as Markdown


def md_noise(t: pd.DataFrame) -> str:
    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), f"{r['alpha']:g}", f"{r['dropout']:g}",
             r["n_seeds"], fmt_pm(r["best_error_mean"], r["best_error_std"]),
             fmt(r["paper_best_error"]), fmt_diff(r["best_diff"]),
             fmt_pm(r["last_error_mean"], r["last_error_std"]), fmt(r["paper_last_error"]),
             fmt_diff(r["last_diff"])] for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "dropout p", "seeds", "best error (%)", "paper best",
                     "Δ best", "last error (%)", "paper last", "Δ last"], rows)


def md_sweep(t: pd.DataFrame) -> str:
    def b(v, best):
        return f"**{v}**" if best else v

    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), b(f"{r['alpha']:g}", r["best"]),
             b(f"{r['dropout']:g}", r["best"]), r["n_seeds"],
             b(fmt_pm(r["best_error_mean"], r["best_error_std"]), r["best"]),
             fmt_pm(r["last_error_mean"], r["last_error_std"]), "best" if r["best"] else ""]
            for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "dropout p", "seeds", "best error (%)",
                     "last error (%)", "setting"], rows)


def md_ablation(t: pd.DataFrame) -> str:
    rows = [[fmt_ratio(r["ratio"]), name(r["method"]) + (" (ablation)" if r["ablation"] else ""),
             f"{r['alpha']:g}", f"{r['dropout']:g}", r["n_seeds"],
             fmt_pm(r["best_error_mean"], r["best_error_std"]),
             fmt_pm(r["last_error_mean"], r["last_error_std"])] for _, r in t.iterrows()]
    return md_table(["noise", "method", "α", "dropout p", "seeds", "best error (%)",
                     "last error (%)"], rows)


def md_memorisation(t: pd.DataFrame) -> str:
    def arrow(r, c):
        return f"{fmt(r[c + '_best'])} → {fmt(r[c + '_last'])}"

    rows = [[fmt_ratio(r["ratio"]), name(r["method"]), r["n_seeds"], f"{r['best_epoch']:g}",
             arrow(r, "test_acc"), arrow(r, "train_acc_noisy"), arrow(r, "train_acc_clean"),
             arrow(r, "memorised")] for _, r in t.iterrows()]
    return md_table(["noise", "method", "seeds", "best epoch", "test acc (%)",
                     "train acc, noisy labels (%)", "train acc, true labels (%)",
                     "memorised (%)"], rows)


def md_attack(t: pd.DataFrame) -> str:
    eps = sorted(set(t["eps"]))
    rows = []
    keys = ["ratio", "method", "alpha", "dropout", "attack", "mode"]
    for key, g in t.groupby(keys, sort=False):
        r = dict(zip(keys, key, strict=True))
        cells = {e: fmt_pm(a, s) for e, a, s in zip(g["eps"], g["accuracy_mean"], g["accuracy_std"],
                                                    strict=True)}
        rows.append([fmt_ratio(r["ratio"]), name(r["method"]), f"{r['alpha']:g}",
                     f"{r['dropout']:g}", r["attack"].upper().replace("IFGSM", "I-FGSM"),
                     r["mode"], g["sources"].iloc[0], int(g["n_runs"].max()),
                     *[cells.get(e, "–") for e in eps]])
    return md_table(["noise", "method", "α", "p", "attack", "mode", "source", "runs",
                     *[f"ε={e:g}" for e in eps]], rows)


# --------------------------------------------------------------------------- the reading


def _compare(a: pd.Series, b: pd.Series, col: str) -> str:
    """How sure a difference of means is: only with ≥2 seeds on both sides."""
    na, nb = a["n_seeds"], b["n_seeds"]
    sa, sb = a[f"{col}_std"], b[f"{col}_std"]
    if na < 2 or nb < 2 or not (_isnum(sa) and _isnum(sb)):
        return "one seed on at least one side, so no estimate of seed-to-seed spread"
    se = math.sqrt(sa ** 2 / na + sb ** 2 / nb)
    diff = abs(a[f"{col}_mean"] - b[f"{col}_mean"])
    return (f"{'larger' if diff > 2 * se else 'not larger'} than twice its standard error "
            f"({se:.1f} points, {na} and {nb} seeds)")


def _order(t: pd.DataFrame, col: str) -> list[str]:
    return list(t.sort_values(col, kind="stable")["method"])


def _pairs_agree(ours: list[str], ref: list[str]) -> tuple[int, int]:
    common = [m for m in ref if m in ours]
    agree = total = 0
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            total += 1
            agree += ours.index(common[i]) < ours.index(common[j])
    return agree, total


def reading(noise: pd.DataFrame, memo: pd.DataFrame, attack: pd.DataFrame,
            runs: pd.DataFrame, checkpoint: str) -> list[str]:
    """Plain statements generated from the numbers, one bullet each (attack: one setting per
    method, as attack_plot_table gives)."""
    out: list[str] = []
    many = len(_conditions(noise)) > 1
    for (c, ratio), t in noise.groupby(["condition", "ratio"], sort=False):
        at = f"At {fmt_ratio(ratio)} noise" + (f" ({c})" if many else "")
        rows = t.set_index("method")
        if "erm" in rows.index and "mixup" in rows.index:
            e, m = rows.loc["erm"], rows.loc["mixup"]
            for col, label in (("last_error", "last-epoch"), ("best_error", "best-epoch")):
                d = m[f"{col}_mean"] - e[f"{col}_mean"]
                verb = "lower than" if d < 0 else ("higher than" if d > 0 else "equal to")
                out.append(f"{at}, mixup's {label} test error is {verb} ERM's: "
                           f"{fmt(m[f'{col}_mean'])}% vs {fmt(e[f'{col}_mean'])}% "
                           f"({fmt_diff(d)} points; {_compare(m, e, col)}).")
        # the paper's orderings
        pt = paper.table2()
        pt = pt[(pt["ratio"] - ratio).abs() < 1e-9]
        ours_t = t[t["method"].isin(PAPER_METHODS) & t["paper_best_error"].notna()]
        if len(ours_t) >= 2 and not pt.empty:
            for col, pcol, label in (("best_error_mean", "paper_best_error", "best-epoch"),
                                     ("last_error_mean", "paper_last_error", "last-epoch")):
                ref = [m for m in _order(pt, pcol) if m in set(ours_t["method"])]
                ours = _order(ours_t, col)
                agree, total = _pairs_agree(ours, ref)
                verdict = ("holds" if agree == total else
                           "does not hold" if agree == 0 else "holds only in part")
                out.append(f"{at}, the paper's {label} ordering ({' < '.join(name(x) for x in ref)}, "
                           f"lowest error first) {verdict}: ours is "
                           f"{' < '.join(name(x) for x in ours)} ({agree} of {total} pairs agree).")
    # memorisation, from the best epoch to the last
    for _, r in memo[memo["method"].isin(["erm", "mixup"])].iterrows():
        if not (_isnum(r["train_acc_noisy_change"]) and _isnum(r["test_acc_change"])):
            continue  # metrics.csv without training accuracies: nothing to say
        at = f"{name(r['method'])} at {fmt_ratio(r['ratio'])} noise" + (
            f" ({r['condition']})" if many else "")
        up = r["train_acc_noisy_change"] > THRESHOLD
        down = r["test_acc_change"] < -THRESHOLD
        if up and down:
            verdict = ("noisy-label fit rose while test accuracy fell, the pattern of "
                       "memorising the corrupted labels")
        elif up:
            verdict = "noisy-label fit rose, but test accuracy did not fall by more than 1 point"
        elif down:
            verdict = "test accuracy fell without a rise in noisy-label training accuracy"
        else:
            verdict = "no memorisation: neither moved by more than 1 point"
        if r["best_epoch"] >= r["last_epoch"]:
            verdict = "its best epoch is its last, so nothing happens after it"
        out.append(f"{at}: from its best epoch ({r['best_epoch']:g}) to the last "
                   f"({r['last_epoch']:.0f}), training accuracy against the noisy labels went "
                   f"{fmt(r['train_acc_noisy_best'])}% → {fmt(r['train_acc_noisy_last'])}%, the "
                   f"memorised share of corrupted examples {fmt(r['memorised_best'])}% → "
                   f"{fmt(r['memorised_last'])}%, test accuracy {fmt(r['test_acc_best'])}% → "
                   f"{fmt(r['test_acc_last'])}%: {verdict}.")
    # distance from the paper
    d = noise[["best_diff", "last_diff"]].stack().dropna()
    if len(d):
        out.append(f"Against the paper's Table 2, our errors differ by {d.min():+.1f} to "
                   f"{d.max():+.1f} points (mean {d.mean():+.1f}; ours − paper); the paper trained "
                   "PreAct ResNet-18 (width 64) for 200 epochs on all 50,000 images, so absolute "
                   "numbers are not expected to match at a smaller scale, only orderings.")
    # attacks at the largest ε
    if not attack.empty:
        for (c, ratio, atk, mode), g in attack.groupby(["condition", "ratio", "attack", "mode"],
                                                       sort=False):
            emax = g["eps"].max()
            top = g[g["eps"] == emax].sort_values("accuracy_mean", ascending=False)
            clean = g[g["eps"] == 0].set_index("method")["accuracy_mean"]
            parts = []
            for _, r in top.iterrows():
                drop = (f", {r['accuracy_mean'] - clean[r['method']]:+.1f} from ε=0"
                        if r["method"] in clean.index else "")
                parts.append(f"{name(r['method'])} {fmt(r['accuracy_mean'])}%{drop}")
            where = f"{fmt_ratio(ratio)} noise" + (f", {c}" if many else "")
            out.append(f"{atk.upper().replace('IFGSM', 'I-FGSM')} {mode} at ε={emax:g}/255 "
                       f"({where}, {checkpoint} checkpoint): " + "; ".join(parts)
                       + " (highest accuracy first).")
        out.append("Accuracy under attack mixes clean accuracy and robustness: compare the drop "
                   "from ε=0 as well as the level.")
    return out


def caveats(runs: pd.DataFrame, noise: pd.DataFrame, sweep: pd.DataFrame) -> list[str]:
    out = []
    nmax = int(noise["n_seeds"].max())
    nmin = int(noise["n_seeds"].min())
    out.append(f"Seeds per setting: {nmin}" + (f" to {nmax}" if nmax != nmin else "") + "; "
               + ("with a single seed, no difference can be separated from seed-to-seed "
                  "variation." if nmin < 2 else "standard deviations over so few seeds are rough."))
    for s in dict.fromkeys(runs["setup"]):
        out.append(f"Scale: {s}.")
    n_test = runs["test_images"].dropna()
    if len(n_test):
        n = int(n_test.min())
        se = 100 * math.sqrt(0.25 / n)
        out.append(f"Test set: {n} images, so a test accuracy near 50% carries a sampling "
                   f"standard error of about {se:.1f} points on its own; differences of a couple "
                   "of points are within that noise.")
    if set(runs["profile"]) != {"paper"}:
        out.append("Short schedules and small subsets change when (and whether) memorisation "
                   "sets in; the paper's 200-epoch curves need not look the same.")
    if not sweep.empty:
        out.append("Where several (α, dropout) settings were trained, each method is shown at "
                   "its best setting by best-epoch test error, as the paper's Table 2 did; this "
                   "selects on the test set and favours methods with more settings tried.")
    return out


# --------------------------------------------------------------------------- the report


def attack_settings(attacks: pd.DataFrame, checkpoint: str) -> str:
    """Steps, step sizes, images and black-box sources of the attack rows reported."""
    a = attacks[attacks["checkpoint"] == checkpoint]
    parts = []
    for atk, g in a.groupby("attack", sort=True):
        steps = sorted({int(x) for x in g["steps"].dropna()})
        label = atk.upper().replace("IFGSM", "I-FGSM")
        if steps:
            per = (g["step_size"] - g["eps"] / g["steps"]).abs().max()
            size = (" of ε/steps" if _isnum(per) and per < 1e-6 else
                    f" of {', '.join(f'{x:g}' for x in sorted(set(g['step_size'].dropna())))}/255")
            label += f" ({'/'.join(map(str, steps))} step{'s' if steps != [1] else ''}"
            label += (size if steps != [1] else "") + ")"
        parts.append(label)
    n = sorted({int(x) for x in a["n"].dropna()})
    srcs = sorted(set(a.loc[a["mode"] == "black-box", "source"]))
    text = ", ".join(parts)
    if n:
        text += f"; {'/'.join(map(str, n))} test images per attacked model"
    if srcs:
        text += f"; black-box examples crafted on {', '.join(f'`{s}`' for s in srcs)}"
    return text


def _git_toplevel() -> Path | None:
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse",
                              "--show-toplevel"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _dates(started: list[str]) -> str:
    days = sorted({d[:10] for d in started if d})
    if not days:
        return "on unrecorded dates"
    return f"on {days[0]}" if len(days) == 1 else f"from {days[0]} to {days[-1]}"


def _fig_md(stem: str, caption: str) -> str:
    return (f"![{caption}]({stem}.png)\n\n"
            f"[{stem}.png]({stem}.png) · [{stem}.pdf]({stem}.pdf) · data: [{stem}.csv]({stem}.csv)")


def write_report(res: R.Results, out: Path, *, title: str, notes: str | None, checkpoint: str,
                 command: str) -> list[Path]:
    """Write every table, figure and report.md under out; return the paths written."""
    from . import plots  # matplotlib only when there is something to draw

    runs = res.runs
    written: list[Path] = []

    def csv(stem: str, df: pd.DataFrame) -> str:
        path = out / f"{stem}.csv"
        write_csv(path, df)
        written.append(path)
        return path.name

    noise = R.noise_table(runs)
    sweep = R.sweep_table(runs)
    ablation = R.ablation_table(runs)
    memo = R.memorisation_table(runs, res.metrics)
    curves = R.curves_table(runs, res.metrics)
    attack = R.attack_table(res.attacks, checkpoint)
    attack_fig = R.attack_plot_table(attack, noise)

    csv("table_runs", runs.drop(columns=["path", "setup"]))
    csv("table_noise", noise)
    csv("table_memorisation", memo)
    if not attack.empty:
        csv("table_attack", attack)
    if not ablation.empty:
        csv("table_ablation", ablation)
    if not sweep.empty:
        csv("table_sweep", sweep)

    fig_noise_cols = ["condition", "ratio", "method", "alpha", "dropout", "n_seeds",
                      "best_acc_mean", "best_error_std", "last_acc_mean", "last_error_std",
                      "paper_best_acc", "paper_last_acc"]
    csv("fig_noise", noise[fig_noise_cols].rename(
        columns={"best_error_std": "best_acc_std", "last_error_std": "last_acc_std"}))
    written += plots.plot_noise(noise, out / "fig_noise")
    csv("fig_curves", curves)
    milestones = {}
    for c, g in runs.groupby("condition", sort=False):
        try:
            milestones[c] = [int(x) for x in g["milestones"].iloc[0].strip("[]").split(",") if x.strip()]
        except ValueError:
            milestones[c] = []
    written += plots.plot_curves(curves, out / "fig_curves", milestones)
    if not attack_fig.empty:
        csv("fig_attack", attack_fig)
        written += plots.plot_attack(attack_fig, out / "fig_attack")
    if not ablation.empty:
        csv("fig_ablation", ablation[["condition", "ratio", "method", "alpha", "dropout", "ablation",
                                      "n_seeds", "best_error_mean", "best_error_std",
                                      "last_error_mean", "last_error_std"]])
        written += plots.plot_ablation(ablation, out / "fig_ablation")

    prov = R.provenance(runs)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    top = _git_toplevel()
    where = ("the repository root" if top is not None and Path.cwd().resolve() == top.resolve()
             else f"`{Path.cwd()}`")
    hours = runs["total_minutes"].sum() / 60
    md: list[str] = [f"# {title}", ""]
    md += ["## Setup", ""]
    md += [f"- Data: {'; '.join(prov['data'])}",
           f"- Runs: {len(runs)} finished ({', '.join(fmt_ratio(r) for r in sorted(set(runs['ratio'])))} "
           f"noise; methods {', '.join(sorted(set(runs['method']), key=R.method_rank))}); per-run numbers in "
           f"[table_runs.csv](table_runs.csv)"]
    for s in prov["setup"]:
        k = int((runs["setup"] == s).sum())
        md.append(f"- Profile: {s} ({k} run{'s' if k != 1 else ''})")
    md += [f"- Hardware: {'; '.join(prov['device_name'])} "
           f"(precision {', '.join(prov['precision'])}); {hours:.1f} h of training and evaluation "
           "in total",
           f"- Runs trained: {_dates(prov['started'])} with robustmix commit(s) "
           f"{', '.join(f'`{c}`' for c in prov['git_commit'])}",
           f"- Report generated: {now} by robustmix commit `{git_commit()}`",
           f"- Attack results: {checkpoint} checkpoint"
           + (f"; {attack_settings(res.attacks, checkpoint)}" if not attack.empty
              else " — none found (no attack.csv with such rows)"),
           f"- Regenerate (from {where}):", "", "```", command, "```", ""]
    if res.skipped:
        md += ["Left out:", "", *[f"- {s}" for s in res.skipped], ""]

    md += ["## What the numbers show", ""]
    md += [f"- {s}" for s in reading(noise, memo, attack_fig, runs, checkpoint)]
    md += ["", "What cannot be concluded at this scale:", ""]
    md += [f"- {s}" for s in caveats(runs, noise, sweep)]
    md += [""]

    md += ["## Test error under label noise", "",
           _fig_md("fig_noise", "test accuracy against label noise ratio"), "",
           "Test accuracy (%) at the best and at the last epoch, mean over seeds (error bars: "
           "standard deviation where there are several seeds); open markers: the paper's Table 2.",
           "", "Test error (%) beside the paper's Table 2 (PreAct ResNet-18, 200 epochs, all "
           "data; symmetric CIFAR-10 noise only); Δ = ours − paper in points; mean ± std over "
           "seeds. Table: [table_noise.csv](table_noise.csv)", "",
           _by_condition(noise, md_noise), ""]
    if not sweep.empty:
        md += ["### Hyper-parameter sweep", "",
               "Every (α, dropout) setting trained for a method at a noise level; the best one "
               "by best-epoch error (bold) is the one shown elsewhere, as in the paper's "
               "Table 2. Table: [table_sweep.csv](table_sweep.csv)", "",
               _by_condition(sweep, md_sweep), ""]
    if not ablation.empty:
        md += ["### Ablations", "", _fig_md("fig_ablation", "test error of every method"), "",
               "Best- and last-epoch test error (%) of every method at the noise levels where "
               "methods outside the paper's four were trained. Table: "
               "[table_ablation.csv](table_ablation.csv)", "",
               _by_condition(ablation, md_ablation), ""]

    md += ["## Training curves and memorisation", "",
           _fig_md("fig_curves", "training curves"), "",
           "Per epoch, mean over seeds: test accuracy, training accuracy against the noisy "
           "labels the model was trained on and against the true labels, and the share of the "
           "corrupted training examples predicted as their noisy label (memorised). Dotted "
           "lines: learning-rate steps.", "",
           "From the best epoch to the last (mean over seeds). Table: "
           "[table_memorisation.csv](table_memorisation.csv)", "",
           _by_condition(memo, md_memorisation), ""]

    md += ["## Adversarial attacks", ""]
    if attack.empty:
        kinds = sorted(set(res.attacks["checkpoint"])) if not res.attacks.empty else []
        md += ["No attack results for the " + checkpoint + " checkpoint"
               + (f" (found: {', '.join(kinds)}; see --checkpoint)." if kinds else
                  " (no run has an attack.csv yet)."), ""]
    else:
        md += [_fig_md("fig_attack", "accuracy under FGSM and I-FGSM"), "",
               "Accuracy (%) on adversarial test images against the perturbation size ε (in "
               "/255 of the pixel range), as measured (no smoothing); white-box: crafted on the "
               "model itself; black-box: crafted on the source model named in the panel. One "
               "setting per method (the one shown above where it was attacked).", "",
               f"Accuracy (%) by ε, {checkpoint} checkpoint, mean ± std over attacked runs. "
               "Table: [table_attack.csv](table_attack.csv)", "",
               _by_condition(attack, md_attack), ""]
    if notes:
        md += ["## Notes", "", notes.strip(), ""]
    md += ["## Files", "",
           *[f"- [{p.name}]({p.name})" for p in sorted(written, key=lambda p: p.name)], ""]
    path = out / "report.md"
    write_text(path, "\n".join(md))
    written.append(path)
    return written


def remove_stale(out: Path, written: list[Path]) -> None:
    """Remove report files of an earlier report in out that this one did not write."""
    keep = {p.name for p in written}
    for n in OWNED:
        p = out / n
        if n not in keep and p.is_file():
            p.unlink()
