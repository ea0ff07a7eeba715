"""Two reports' verdicts side by side: which claims hold at both scales, which reverse, which
are decided at one only (issue 25: the fast study's verdict table beside the quick study's).

Reads each report folder's table_verdicts.csv and table_runs.csv, nothing else. It tests
nothing: every verdict is the one its own report reached, with the false-discovery control of
that report's families. The comparison names a pair of verdicts:

  holds        both decided the same way (both supported, or both contradicted)
  reverses     one supported, the other contradicted: the two intervals exclude zero on
               opposite sides, so they are disjoint and the effect differs between the studies
  decided at A only / decided at B only
               one interval excludes zero, the other does not; not evidence that the effect
               changed (absence of a decision is not a decision of absence)
  undecided at both
               neither excludes zero (inconclusive, or described with fewer than 3 seeds)

A claim is matched on its family, noise ratio, checkpoint and wording, less parenthesised
details that differ between studies by construction (a mean memorised share, the list of
attacks a worst case ran over). tests/test_compare.py checks each outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..training.methods import method_label, method_rank
from .columns import ratios_text, setting_text
from .verdicts import CONTRADICTED, SUPPORTED

VERDICTS_CSV, RUNS_CSV = "table_verdicts.csv", "table_runs.csv"
HOLDS, REVERSES, UNDECIDED = "holds", "reverses", "undecided at both"
KEY = ["family", "claim_key", "ratio", "checkpoint"]
DECIDED = (SUPPORTED, CONTRADICTED)


@dataclass(frozen=True)
class Study:
    """One report folder's verdicts and runs, under a short name (quick, fast)."""

    name: str
    folder: Path
    verdicts: pd.DataFrame
    runs: pd.DataFrame


def load_study(folder: Path, name: str | None = None) -> Study:
    """A report folder written by robustmix.report; a one-line UsageError if it is not one."""
    folder = Path(folder)
    tables = {}
    for file in (VERDICTS_CSV, RUNS_CSV):
        path = folder / file
        if not path.is_file():
            raise UsageError(f"{folder} is not a robustmix report folder (no {file})")
        try:
            tables[file] = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise UsageError(f"cannot read {path}: {e}") from None
    missing = {"family", "claim", "ratio", "checkpoint", "verdict", "effect", "lo", "hi",
               "n_seeds"} - set(tables[VERDICTS_CSV])
    if missing:
        raise UsageError(f"{folder / VERDICTS_CSV} lacks column(s) {', '.join(sorted(missing))}")
    return Study(name or folder.name, folder, tables[VERDICTS_CSV], tables[RUNS_CSV])


def claim_key(claim: str) -> str:
    """The claim's wording without its parenthesised details, spaces collapsed."""
    text, prev = str(claim), None
    while text != prev:  # innermost first: "(worst case over fgsm (bb), pgd)"
        text, prev = re.sub(r"\s*\([^()]*\)", "", text), text
    return " ".join(text.split())


def outcome(a: str | float, b: str | float, name_a: str = "A", name_b: str = "B") -> str:
    """What a pair of verdicts says (module docstring); a missing verdict is 'only in ...'."""
    if not isinstance(a, str):
        return f"only in {name_b}"
    if not isinstance(b, str):
        return f"only in {name_a}"
    if a in DECIDED and b in DECIDED:
        return HOLDS if a == b else REVERSES
    if a in DECIDED:
        return f"decided at {name_a} only"
    if b in DECIDED:
        return f"decided at {name_b} only"
    return UNDECIDED


def compare(a: Study, b: Study) -> pd.DataFrame:
    """One row per claim of either study: both verdicts, effects, intervals, seeds, outcome."""
    cols = ["family", "claim", "ratio", "checkpoint", "verdict", "effect", "lo", "hi", "n_seeds"]
    frames = []
    for s in (a, b):
        v = s.verdicts[cols].copy()
        v["claim_key"] = v["claim"].map(claim_key)
        v["ratio"] = v["ratio"].astype(float).round(6)
        frames.append(v.drop_duplicates(KEY))
    m = frames[0].merge(frames[1], on=KEY, how="outer", suffixes=("_a", "_b"))
    m["claim"] = m["claim_key"]
    m["outcome"] = [outcome(x, y, a.name, b.name) for x, y in zip(m["verdict_a"], m["verdict_b"],
                                                                 strict=True)]
    order = {f: i for i, f in enumerate(dict.fromkeys(pd.concat([frames[1]["family"],
                                                                  frames[0]["family"]])))}
    m["_f"] = m["family"].map(order)
    m = m.sort_values(["_f", "ratio", "checkpoint", "claim"], kind="stable")
    return m.drop(columns=["_f", "claim_key"]).reset_index(drop=True)


def _cell(verdict: object, effect: float, lo: float, hi: float, n: float) -> str:
    if not isinstance(verdict, str):
        return "–"
    seeds = "" if pd.isna(n) else f", {int(n)} seed{'s' if int(n) != 1 else ''}"
    return f"{verdict} {effect:+.1f} [{lo:+.1f}, {hi:+.1f}]{seeds}"


def settings(s: Study) -> str:
    """What a study trained, one line: network, data, schedule, each method's α/p, seeds."""
    r = s.runs
    if r.empty:
        return f"**{s.name}**: no runs"
    first = r.iloc[0]
    parts = [f"{first.get('model', '?')} width {first.get('width', '?')}",
             f"{int(first['train_images']):,} training images" if "train_images" in r else "",
             f"{first.get('epochs', '?')} epochs",
             str(first["data"]) if isinstance(first.get("data"), str) else ""]
    methods = []
    for m, d in sorted(r.groupby("method"), key=lambda kv: method_rank(kv[0])):
        setting = setting_text(d)
        seeds = d.groupby("ratio")["seed"].nunique() if "seed" in d else pd.Series(dtype=int)
        seed_text = ", ".join(f"{n} at {ratios_text([q])}" for q, n in seeds.items())
        methods.append(f"{method_label(m)}" + (f" ({setting})" if setting else "")
                       + (f": seeds {seed_text}" if seed_text else ""))
    return f"**{s.name}**: " + ", ".join(p for p in parts if p) + "; " + "; ".join(methods)


def markdown(a: Study, b: Study, table: pd.DataFrame, *, everything: bool = False,
             command: str = "", commit: str = "") -> str:
    """The comparison as Markdown: what each study is, the counts, the table, how to read it."""
    both = table[~table["outcome"].str.startswith("only in ")]
    shown = table if everything else both
    counts = table["outcome"].value_counts()
    order = [HOLDS, REVERSES, f"decided at {a.name} only", f"decided at {b.name} only",
             UNDECIDED, f"only in {a.name}", f"only in {b.name}"]
    lines = [f"# Verdicts side by side: {a.name} and {b.name}", "",
             f"From `{a.folder}` ({a.name}) and `{b.folder}` ({b.name}): each report's own "
             "verdicts, with the false-discovery control of its own families. Nothing is "
             "tested here. Effects in points, + in the claim's direction, 95 % intervals "
             "as each report gives them.", "",
             "- " + settings(a), "- " + settings(b), "",
             "| outcome | claims |", "|---|---:|"]
    lines += [f"| {o} | {int(counts.get(o, 0))} |" for o in order]
    flips = sign_changes(table)
    lines += ["", f"Point estimates of opposite sign: {len(flips)} claim(s), "
              f"{int((flips['outcome'] == REVERSES).sum())} of them decided at both (reverses)."]
    lines += ["", "How to read it: *holds*, both studies decided the claim the same way; "
              "*reverses*, one supported and the other contradicted it, so the two intervals "
              "are disjoint and the effect differs between the studies; *decided at one only* "
              "is not evidence that the effect changed; *undecided at both*, neither interval "
              "excludes zero (or fewer than 3 seeds: described).", ""]
    if shown.empty:
        lines += ["No claim is in both reports."]
    else:
        lines += [f"| family | claim | noise | checkpoint | {a.name} | {b.name} | outcome |",
                  "|---|---|---|---|---|---|---|"]
        for i, r in shown.iterrows():
            ca = _cell(r["verdict_a"], r["effect_a"], r["lo_a"], r["hi_a"], r["n_seeds_a"])
            cb = _cell(r["verdict_b"], r["effect_b"], r["lo_b"], r["hi_b"], r["n_seeds_b"])
            bold = f"**{r['outcome']}**" if r["outcome"] in (HOLDS, REVERSES) else r["outcome"]
            if r["outcome"] != REVERSES and i in flips.index:
                bold += "; point estimates of opposite sign"
            lines.append(f"| {r['family']} | {r['claim']} | {ratios_text([r['ratio']])} | "
                         f"{r['checkpoint']} | {ca} | {cb} | {bold} |")
    if not everything and len(shown) < len(table):
        lines += ["", f"{len(table) - len(shown)} claim(s) in one report only are counted above, "
                      "not listed (--all lists them)."]
    lines += [""]
    if commit:
        lines += [f"- Written by robustmix commit `{commit}`"]
    if command:
        lines += ["- Regenerate (from the repository root):", "", "```", command, "```"]
    return "\n".join(lines) + "\n"


def sign_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Claims both studies hold a point estimate of, whose signs differ (decided or not)."""
    t = table.dropna(subset=["effect_a", "effect_b"])
    return t[np.sign(t["effect_a"]) * np.sign(t["effect_b"]) < 0]
