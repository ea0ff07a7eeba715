"""Per-image outcomes of every attack.csv row, and robust accuracy as the per-image worst case.

Each run directory holds attack_outcomes.npz beside attack.csv: for every row, which of its n
test images the attacked model still classified correctly, one bit per image, in the order of
the class-balanced test subset (robustmix.evaluation.predict.test_indices) the row names by its
n and test_fingerprint. Rows are keyed by the same fields as attack.csv's rows (row_key); the
arrays, all loaded without pickle:

    keys  str   (rows,)          JSON list of the row's key fields
    n     int64 (rows,)          images of the row
    bits  uint8 (rows, ⌈max n / 8⌉)  np.packbits of the correct-mask, zero-padded

Robust accuracy of a model at ε (robust_table) is the share of test images that no attack run at
that ε fooled: an image counts only if it is classified correctly clean (the ε = 0 row, when
present) and under every stored row at ε (every attack, white- and black-box, every source),
for one checkpoint, image set, evaluation precision and norm (L∞ and L2 apart). Robust accuracy is therefore never above
any single attack's accuracy at that ε.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..errors import UsageError
from .defaults import DEFAULT_NORM

OUTCOMES = "attack_outcomes.npz"
# Robust accuracy combines rows of one threat model only: an L2 row at ε = 0.5 and an L∞ row at
# ε = 0.5/255 are different budgets, whatever their ε columns say.
GROUP = ["checkpoint", "n", "eval_precision", "norm"]


def key_text(key: Sequence) -> str:
    return json.dumps(list(key))


def norm_of(r) -> str:
    """A row's threat model: its `norm`, or linf for a row written before norms existed."""
    norm = r.get("norm") if hasattr(r, "get") else None
    return norm if isinstance(norm, str) and norm else DEFAULT_NORM


def row_key(r) -> tuple:
    """The fields that identify an attack.csv row (one measurement). The norm ends the key of a
    non-L∞ row only, so an L∞ row's key (and the outcome key stored for it by older versions)
    is what it always was, and an L2 row never shares a key with an L∞ row of the same ε."""
    norm = norm_of(r)
    return (str(r["checkpoint"]), str(r["mode"]), str(r["source"]), str(r["attack"]),
            round(float(r["eps"]), 6), int(r["steps"]), round(float(r["step_size"]), 6),
            int(r["restarts"]), int(r["queries"]), int(r["attack_seed"]), int(r["n"]),
            str(r["precision"])) + (() if norm == DEFAULT_NORM else (norm,))


def outcome_key(r) -> str:
    """The key of a row's per-image outcomes in attack_outcomes.npz."""
    return key_text(row_key(r))


def read_outcomes(run: Path) -> dict[str, np.ndarray]:
    """{key text: bool mask} of a run ({} when it has no outcomes file)."""
    path = Path(run) / OUTCOMES
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, n, bits = z["keys"], z["n"], z["bits"]
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
    return {str(k): np.unpackbits(b, count=int(m)).astype(bool)
            for k, m, b in zip(keys, n, bits, strict=True)}


def write_outcomes(run: Path, outcomes: Mapping[str, np.ndarray]) -> None:
    """Write every mask of outcomes to the run's attack_outcomes.npz, atomically."""
    keys = sorted(outcomes)
    n = np.array([len(outcomes[k]) for k in keys], dtype=np.int64)
    width = (int(n.max()) + 7) // 8 if len(n) else 0
    bits = np.zeros((len(keys), width), dtype=np.uint8)
    for i, k in enumerate(keys):
        packed = np.packbits(np.asarray(outcomes[k], dtype=bool))
        bits[i, :len(packed)] = packed

    def write(p: Path) -> None:
        with open(p, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez_compressed(f, keys=np.array(keys, dtype=str), n=n, bits=bits)

    atomic_write(Path(run) / OUTCOMES, write)


def worst_case(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per image, correct under every mask (the per-image worst case over attacks)."""
    if not masks:
        raise ValueError("worst_case needs at least one mask")
    sizes = {len(m) for m in masks}
    if len(sizes) != 1:
        raise ValueError(f"masks over different image sets (sizes {sorted(sizes)})")
    return np.logical_and.reduce([np.asarray(m, dtype=bool) for m in masks])


def eval_precision(label: str) -> str:
    """The precision the target was evaluated in: 'fp32', or the part after '/' of 'bf16/fp32'."""
    return str(label).split("/")[-1]


def robust_table(rows: pd.DataFrame, outcomes: Mapping[str, np.ndarray], key_of) -> pd.DataFrame:
    """Robust accuracy per run, checkpoint, image set (n), evaluation precision, norm and ε > 0.

    rows: attack.csv rows (one run or several); key_of(row) -> key text of a row. Rows without
    stored outcomes are left out and counted in `missing`. Columns: run, checkpoint, n,
    eval_precision, norm, eps (in the norm's units), correct, accuracy (fraction), attacks (rows combined), names (the
    attacks combined, '+'-joined, black-box ones marked '(bb)'), clean (whether the ε = 0 row was
    among them), missing, worst (the attack row of lowest accuracy).
    """
    cols = ["run", *GROUP, "eps", "correct", "accuracy", "attacks", "names", "clean", "missing",
            "worst"]
    if rows is None or not len(rows):
        return pd.DataFrame(columns=cols)
    records = rows.to_dict("records")
    df = rows.assign(eval_precision=[eval_precision(p) for p in rows["precision"]],
                     norm=[norm_of(r) for r in records], _key=[key_of(r) for r in records])
    out = []
    for (run, *group), g in df.groupby(["run", *GROUP], sort=False):
        clean = [k for k in g.loc[g["eps"] == 0, "_key"] if k in outcomes][:1]
        for e, ge in g[g["eps"] > 0].groupby("eps", sort=True):
            have = [k for k in ge["_key"] if k in outcomes]
            if not have:
                continue
            lowest = ge.sort_values("accuracy", kind="stable").iloc[0]
            used = ge[ge["_key"].isin(have)]
            names = "+".join(sorted({a + (" (bb)" if m == "black-box" else "")
                                     for a, m in zip(used["attack"], used["mode"], strict=True)}))
            mask = worst_case([outcomes[k] for k in have + clean])
            out.append({"run": run, **dict(zip(GROUP, group, strict=True)), "eps": float(e),
                        "correct": int(mask.sum()), "accuracy": float(mask.mean()) if len(mask) else 0.0,
                        "attacks": len(have), "names": names, "clean": bool(clean),
                        "missing": len(ge) - len(have),
                        "worst": f"{lowest['attack']} {lowest['mode']}"
                                 + (f" from {lowest['source']}" if lowest["mode"] == "black-box" else "")})
    return pd.DataFrame(out, columns=cols)
