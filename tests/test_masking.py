"""Gradient-masking flags: a model whose forward pass rounds its input (zero gradient almost
everywhere, no straight-through estimator) raises them; the same model without rounding does not.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import class_images
from torch import nn

from robustmix.attacks.flags import COLUMNS, check_flags, tolerance
from robustmix.attacks.registry import make_attack, settings
from robustmix.attacks.sweep import Target, attack_outcomes

EPS = [0.0, 4.0, 16.0, 64.0]  # /255


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models


class Net(nn.Module):
    """A small CNN on 8 x 8 colour images; quantise = round the input to 9 grey levels first,
    a non-differentiable step whose gradient is zero almost everywhere."""

    def __init__(self, quantise: bool) -> None:
        super().__init__()
        self.quantise = quantise
        self.conv, self.fc = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(16, 10)

    def forward(self, x):
        if self.quantise:
            x = torch.round(x * 8) / 8
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def images(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = class_images(per_class, seed, size=8)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y)


@pytest.fixture(scope="module")
def models():
    x, y = images(20, 0)
    out = {}
    for name, quantise, seed in (("normal", False, 0), ("other", False, 1), ("masked", True, 0)):
        torch.manual_seed(seed)
        m = Net(quantise)
        opt = torch.optim.Adam(m.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        out[name] = m.eval()
    return out


def rows(models, target: str, attacks, source: str | None = None) -> list[dict]:
    """attack.csv-shaped rows of target under attacks (crafted on source, or on itself)."""
    x, y = images(4, 1)
    src = models[source or target]
    out = []
    for name in attacks:
        atk = make_attack(name, src, steps=10, queries=300, seed=0)
        masks, _ = attack_outcomes(atk, [Target(models[target])], x, y, [e / 255 for e in EPS],
                                   batch=len(y))
        for e, m in zip(EPS, masks[0], strict=True):
            out.append({"run": target, "checkpoint": "last", "n": len(y), "precision": "fp32",
                        "mode": "black-box" if source else "white-box",
                        "source": source or target, "attack": name, "eps": e,
                        **settings(name, e, 10, None, 1, 300, 0),
                        "correct": int(m.sum()), "accuracy": float(m.float().mean())})
    return out


def evaluation(models, target: str, source: str) -> pd.DataFrame:
    return pd.DataFrame(rows(models, target, ["fgsm", "ifgsm", "pgd", "square"])
                        + rows(models, target, ["fgsm", "pgd"], source))


def test_masking_model_raises_flags(models):
    table = evaluation(models, "masked", "normal")
    clean = table.loc[table["eps"] == 0, "accuracy"].iloc[0]
    assert clean > 0.8, "the masked model must classify its clean images"
    flags = check_flags(table)
    assert list(flags.columns) == COLUMNS
    raised = set(flags["flag"])
    assert {"square_beats_gradients", "pgd_not_near_zero", "black_box_below_white_box"} <= raised, \
        flags[["flag", "detail"]].to_string()
    # every flag carries the numbers that raised it
    for r in flags.to_dict("records"):
        assert r["run"] == "masked" and r["detail"] and "%" in r["detail"]
        assert r["accuracy"] != r["reference"]
    pgd = flags[flags["flag"] == "pgd_not_near_zero"].iloc[0]
    assert pgd["eps"] == 64.0 and pgd["accuracy"] > 0.1


def test_normal_model_raises_none(models):
    table = evaluation(models, "normal", "other")
    assert table.loc[table["eps"] == 0, "accuracy"].iloc[0] > 0.8
    pgd64 = table[(table["attack"] == "pgd") & (table["mode"] == "white-box") & (table["eps"] == 64)]
    assert pgd64["accuracy"].item() <= 0.1
    flags = check_flags(table)
    assert flags.empty, flags[["flag", "detail"]].to_string()


def test_flag_rules_on_hand_built_rows():
    def r(attack, eps, correct, mode="white-box", source="t", n=200, **kw):
        return {"run": "t", "checkpoint": "last", "n": n, "precision": "fp32", "attack": attack,
                "mode": mode, "source": source, "eps": eps, "correct": correct,
                "accuracy": correct / n, **settings(attack, eps), **kw}

    assert tolerance(200) == 1 and tolerance(1000) == 5 and tolerance(20) == 1
    table = pd.DataFrame([
        r("fgsm", 0, 150), r("fgsm", 8, 8), r("fgsm", 16, 10),       # +2 images > 1: rises
        r("ifgsm", 8, 9),                                            # +1 image: within tolerance
        r("pgd", 8, 30),                                             # weaker than FGSM
        r("fgsm", 8, 4, "black-box", "s"),                           # below white-box FGSM (8)
        r("ifgsm", 8, 12, "black-box", "s"),  # transfers worse than FGSM (4): expected, no flag
        r("fgsm", 16, 9, "black-box", "s"),   # transferred, rises from 4 at ε = 8: no flag
        r("square", 8, 2), r("square", 16, 3),                       # below every gradient attack
    ])
    got = {(f["flag"], f["attack"], f["eps"]) for f in check_flags(table).to_dict("records")}
    assert got == {("accuracy_rises_with_eps", "fgsm", 16.0),
                   ("iterative_weaker_than_fgsm", "pgd", 8.0),
                   ("black_box_below_white_box", "fgsm", 8.0),
                   ("square_beats_gradients", "square", 8.0),
                   ("square_beats_gradients", "square", 16.0)}
    # another precision or checkpoint is never compared with these rows
    other = table.assign(checkpoint="best", correct=table["correct"][::-1].values)
    assert len(check_flags(other)) == len(check_flags(other[other["checkpoint"] == "best"]))
    assert check_flags(table.iloc[0:0]).empty and check_flags(None).empty


def test_report_applies_current_rules_to_stored_rows(tmp_path):
    """The report recomputes each run's flags from its attack.csv, so a stale attack_flags.csv
    (written by an older robustmix, or kept beside a report) does not decide what it shows."""
    from robustmix.attacks.flags import FLAGS
    from robustmix.reporting.results import read_flags
    from robustmix.runs.files import ATTACK

    def r(attack, eps, correct, mode="white-box", source="t", n=200):
        return {"run": "t", "checkpoint": "last", "n": n, "precision": "fp32", "attack": attack,
                "mode": mode, "source": source, "eps": eps, "correct": correct,
                "accuracy": correct / n, **settings(attack, eps)}

    rows = pd.DataFrame([r("fgsm", 0, 150), r("fgsm", 8, 8), r("pgd", 8, 30),
                         r("fgsm", 8, 4, "black-box", "s"), r("ifgsm", 8, 12, "black-box", "s")])
    rows.to_csv(tmp_path / ATTACK, index=False)
    stale = check_flags(rows).assign(flag="iterative_weaker_than_fgsm", mode="black-box")
    pd.concat([check_flags(rows), stale]).to_csv(tmp_path / FLAGS, index=False)
    got = read_flags(tmp_path)
    assert sorted(zip(got["flag"], got["mode"], got["attack"], strict=True)) == [
        ("black_box_below_white_box", "black-box", "fgsm"),
        ("iterative_weaker_than_fgsm", "white-box", "pgd")]
    (tmp_path / ATTACK).unlink()  # no rows: the stored file is all there is
    assert len(read_flags(tmp_path)) == 2 * len(got)
