"""The attack library against torchattacks, its invariants, and white- vs black-box semantics."""

from __future__ import annotations

import pytest
import torch
import torchattacks

from robustmix.attacks.base import check_perturbation
from robustmix.attacks.fgsm import FGSM, IFGSM
from robustmix.attacks.registry import make_attack
from robustmix.attacks.sweep import Target, count_correct, robust_accuracy
from robustmix.evaluation.images import float_images
from robustmix.training.models import preact_resnet18

EPS = [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models


def tiny_model(seed: int, dropout: float = 0.3, channels_last: bool = True) -> torch.nn.Module:
    """A width-4 PreAct ResNet-18 with random weights and non-trivial BatchNorm running stats."""
    torch.manual_seed(seed)
    m = preact_resnet18(width=4, dropout=dropout)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(16, 3, 32, 32))
    m.eval()
    return m.to(memory_format=torch.channels_last) if channels_last else m


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(24, 3, 32, 32, generator=g)
    x[:4] = (x[:4] > 0.5).float()  # pixels on the [0, 1] border exercise the clamps
    return x, torch.randint(0, 10, (24,), generator=g)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fgsm_sweep_equals_torchattacks(batch, channels_last):
    model = tiny_model(0, channels_last=channels_last)
    x, y = batch
    x = float_images(x) if channels_last else x
    advs = FGSM(model).sweep(x, y, [0.0, *EPS, 1.0])
    for e, adv in zip([0.0, *EPS, 1.0], advs, strict=True):
        ref = torchattacks.FGSM(model, eps=e)(x, y)
        assert (adv - ref).abs().max().item() <= 1e-6, e
    assert not model.training


@pytest.mark.parametrize("step_size,steps,stack", [(None, 10, None), (None, 3, 2), (1 / 255, 4, 1)])
def test_ifgsm_equals_torchattacks_bim(batch, step_size, steps, stack):
    model = tiny_model(0)
    x, y = batch
    x = float_images(x)
    advs = IFGSM(model, steps=steps, step_size=step_size, stack=stack).sweep(x, y, EPS)
    for e, adv in zip(EPS, advs, strict=True):
        alpha = e / steps if step_size is None else step_size
        ref = torchattacks.BIM(model, eps=e, alpha=alpha, steps=steps)(x, y)
        assert (adv - ref).abs().max().item() <= 1e-6, e
    assert not model.training


def test_ifgsm_default_step_is_eps_over_steps():
    model = tiny_model(0)
    assert IFGSM(model).settings(8 / 255) == (10, 8 / 255 / 10)
    assert IFGSM(model, steps=20, step_size=1 / 255).settings(8 / 255) == (20, 1 / 255)
    assert FGSM(model).settings(8 / 255) == (1, 8 / 255)


@pytest.mark.parametrize("name", ["fgsm", "ifgsm"])
def test_perturbation_within_eps_and_unit_range(batch, name):
    model = tiny_model(2)
    x, y = batch
    eps = [0.0, 0.5 / 255, 3 / 255, 64 / 255, 1.0]
    attack = make_attack(name, model, steps=3, step_size=None if name == "fgsm" else 40 / 255)
    for e, adv in zip(eps, attack.sweep(x, y, eps), strict=True):
        assert (adv - x).abs().max().item() <= e + 1e-6
        assert adv.min().item() >= 0 and adv.max().item() <= 1
        if e == 0:
            assert torch.equal(adv, x)


def test_check_perturbation_catches_violations():
    x = torch.full((2, 3, 4, 4), 0.5)
    check_perturbation(x + 0.01, x, 0.01)
    with pytest.raises(AssertionError):
        check_perturbation(x + 0.02, x, 0.01)
    with pytest.raises(AssertionError):
        check_perturbation(x * 3, x, 2.0)  # within ε but outside [0, 1]


def test_eps_outside_unit_range_is_refused(batch):
    x, y = batch
    for attack in (FGSM(tiny_model(0)), IFGSM(tiny_model(0), steps=1)):
        with pytest.raises(ValueError):
            attack.sweep(x, y, [-1 / 255])
        with pytest.raises(ValueError):
            attack.sweep(x, y, [2.0])


def test_eval_mode_is_required_and_preserved(batch):
    model = tiny_model(3, dropout=0.5)
    x, y = batch
    before = model(x).detach()
    FGSM(model).sweep(x, y, EPS)
    IFGSM(model, steps=2).sweep(x, y, EPS)
    robust_accuracy(FGSM(model), [Target(model)], x, y, [0.0, 2 / 255], batch=10)
    assert not any(m.training for m in model.modules())
    # dropout off and BatchNorm on running statistics: the same input gives the same logits
    assert torch.equal(model(x).detach(), before)
    model.train()
    with pytest.raises(AssertionError, match="eval mode"):
        FGSM(model).sweep(x, y, EPS)
    assert model.training  # refused, not silently switched


def test_black_box_uses_source_gradients_and_target_predictions(batch):
    source, target, other = tiny_model(4), tiny_model(5), tiny_model(6)
    x, y = batch
    eps = [0.0, 2 / 255, 8 / 255]
    correct, seconds = robust_accuracy(FGSM(source), [Target(target), Target(other)], x, y, eps,
                                       batch=10)
    # the examples are those crafted white-box on the source ...
    crafted = FGSM(source).sweep(float_images(x), y, eps)
    white_on_target = FGSM(target).sweep(float_images(x), y, eps)
    assert not torch.equal(crafted[2], white_on_target[2])
    # ... and each target's accuracy is its own prediction on them
    for t, model in enumerate([target, other]):
        for j, adv in enumerate(crafted):
            assert correct[t][j] == count_correct(Target(model), adv, y)
    assert all(s >= 0 for row in seconds for s in row)
    # white-box on the source is the source's accuracy on the same images
    wb, _ = robust_accuracy(FGSM(source), [Target(source)], x, y, eps, batch=10)
    assert wb[0] == [count_correct(Target(source), adv, y) for adv in crafted]


def test_batched_accuracy_equals_whole_set_and_eps0_is_clean(batch):
    model = tiny_model(7)
    x, y = batch
    xu8 = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    eps = [0.0, 4 / 255]
    for attack in (FGSM(model), IFGSM(model, steps=2)):
        c7, _ = robust_accuracy(attack, [Target(model)], xu8, y, eps, batch=7)
        c24, _ = robust_accuracy(attack, [Target(model)], xu8, y, eps, batch=24)
        assert c7 == c24
        assert c7[0][0] == count_correct(Target(model), xu8, y)


def test_bf16_crafting_respects_bounds(batch):
    model = tiny_model(8)
    x, y = batch
    for attack in (FGSM(model, "bf16"), IFGSM(model, steps=2, precision="bf16")):
        for e, adv in zip(EPS, attack.sweep(x, y, EPS), strict=True):
            assert (adv - x).abs().max().item() <= e + 1e-6
            assert adv.min().item() >= 0 and adv.max().item() <= 1
    # A bf16-crafted attack is still an attack: it raises the loss of the fp32 model, and its
    # gradient signs mostly agree with the fp32 ones.
    adv16 = FGSM(model, "bf16").sweep(x, y, [0.03])[0]
    adv32 = FGSM(model).sweep(x, y, [0.03])[0]
    with torch.no_grad():
        ce = [torch.nn.functional.cross_entropy(model(v), y).item() for v in (x, adv16)]
    assert ce[1] > ce[0]
    agree = ((adv16 - x).sign() == (adv32 - x).sign()).float().mean().item()
    assert agree > 0.8
