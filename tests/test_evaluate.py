"""robustmix.evaluate: any model, tidy tables, the same attacks and flags as for runs, guarded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import robustmix
from robustmix.errors import UsageError
from robustmix.evaluation.external import eval_mode

pytestmark = pytest.mark.usefixtures("one_thread")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def data(n: int = 40):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_docs_example_runs():
    text = (Path(__file__).resolve().parents[1] / "docs" / "attacks.md").read_text()
    code = text.split("## From Python: any model", 1)[1].split("```python", 1)[1].split("```")[0]
    scope: dict = {}
    exec(compile(code, "docs/attacks.md", "exec"), scope)  # noqa: S102
    assert len(scope["result"].attacks) == 6 and isinstance(scope["result"].reliable, bool)


def test_evaluate_gives_tidy_tables():
    model, (x, y) = small_net(), data()
    result = robustmix.evaluate(model, x, y, attacks=["fgsm", "pgd"], eps=[0, 2, 8])
    t = result.attacks
    assert list(t["attack"]) == ["fgsm"] * 3 + ["pgd"] * 3
    assert set(t["eps"]) == {0.0, 2.0, 8.0} and (t["n"] == 40).all()
    assert ((t["ci_low"] <= t["accuracy"]) & (t["accuracy"] <= t["ci_high"])).all()
    clean = t[t["eps"] == 0]["accuracy"]
    assert clean.nunique() == 1  # ε = 0 is the clean accuracy, whatever the attack
    assert t["library"].str.startswith("torchattacks ").all()
    # Robust accuracy: an image counts only when every attack left it correct.
    r = result.robust.set_index("eps")
    worst = t.groupby("eps")["correct"].min()
    assert (r["correct"] <= worst).all()
    assert set(result.checks["check"]) == {"deterministic_forward", "nonzero_input_gradient"}
    assert result.checks["passed"].all() and result.reliable == (len(result.flags) == 0)


def test_train_mode_is_restored_even_on_error():
    model = small_net().train()
    model[3].eval()  # a submodule with its own flag
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not any(m.training for m in model.modules())
            raise RuntimeError("boom")
    assert model.training and not model[3].training and model[1].training
    x, y = data(8)
    robustmix.evaluate(model, x, y, attacks=["fgsm"], eps=[0, 1])
    assert model.training and not model[3].training


def test_images_outside_unit_range_are_a_one_line_error():
    x, y = data(8)
    with pytest.raises(UsageError, match=r"\[0, 1\]; saw \[-0\.4999, 0\.9998\]"):
        robustmix.evaluate(small_net(), x * 1.5 - 0.5, y, attacks=["fgsm"], eps=[0])


class Noisy(nn.Module):
    """A forward pass that is not deterministic (noise at test time)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_net()

    def forward(self, x):
        return self.net(x) + torch.randn(len(x), 10)


class Flat(nn.Module):
    """Zero input gradients (a quantising front end, the textbook masking)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_net()

    def forward(self, x):
        return self.net(torch.round(x))


def test_nondeterministic_and_zero_gradient_models_are_flagged():
    x, y = data(8)
    noisy = robustmix.evaluate(Noisy(), x, y, attacks=["fgsm"], eps=[0])
    flat = robustmix.evaluate(Flat(), x, y, attacks=["fgsm"], eps=[0])
    by = lambda r: r.checks.set_index("check")["passed"]  # noqa: E731
    assert not by(noisy)["deterministic_forward"] and by(noisy)["nonzero_input_gradient"]
    assert by(flat)["deterministic_forward"] and not by(flat)["nonzero_input_gradient"]
    assert not noisy.reliable and not flat.reliable


def test_unknown_attack_and_bad_eps_are_usage_errors():
    x, y = data(4)
    with pytest.raises(UsageError, match="unknown attack 'cw'"):
        robustmix.evaluate(small_net(), x, y, attacks=["cw"])
    with pytest.raises(UsageError, match="0..255"):
        robustmix.evaluate(small_net(), x, y, eps=[300])


def test_calibration_of_the_clean_predictions():
    from robustmix.evaluation.calibration import ece, nll

    model, (x, y) = small_net(), data()
    result = robustmix.evaluate(model, x, y, attacks=["fgsm"], eps=[0], resamples=100)
    c = result.calibration.set_index("metric")
    assert list(c.index) == ["ece", "ece_debiased", "nll", "brier"] and (c["n"] == 40).all()
    assert c.loc["ece", "bins"] == 15
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x).double(), 1).numpy()
    assert c.loc["ece", "value"] == pytest.approx(ece(probs, y.numpy()), abs=1e-6)
    assert c.loc["nll", "value"] == pytest.approx(nll(probs, y.numpy()), abs=1e-6)
    assert (c["ci_low"] <= c["ci_high"]).all()
    off = robustmix.evaluate(model, x, y, attacks=["fgsm"], eps=[0], calibration=False)
    assert not len(off.calibration)


def test_outputs_with_too_few_classes_are_a_usage_error():
    x, y = data(8)
    y[0] = 9
    narrow = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 5))
    with pytest.raises(UsageError, match="5 classes"):
        robustmix.evaluate(narrow, x, y, attacks=["fgsm"], eps=[0])
