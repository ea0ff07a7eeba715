"""Mixup maths and its ablations, as pure functions and through the training batch path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import cifar_arrays

from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.training.batches import PAD, epoch_plans
from robustmix.training.config import TrainConfig
from robustmix.training.labels import make_labels
from robustmix.training.methods import METHODS
from robustmix.training.mixing import (
    knn_partners,
    knn_table,
    mix_inputs,
    mix_targets,
    same_class_partners,
    sample_lambda,
    shuffle_partners,
    soft_cross_entropy,
)
from robustmix.training.trainer import Trainer

K = 10
CPU = torch.device("cpu")


# --- λ ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.2, 1.0, 8.0, 32.0])
def test_lambda_is_beta_alpha_alpha(alpha):
    # One Beta(α, α) draw per call from the caller's generator, nothing else: a batch plan's λ
    # is replayable from the plan's generator, and no other draw shifts.
    rng = np.random.default_rng(0)
    lam = [sample_lambda(rng, alpha) for _ in range(200)]
    assert all(type(v) is float for v in lam)
    ref = np.random.default_rng(0)
    assert lam == [float(ref.beta(alpha, alpha)) for _ in range(200)]
    assert rng.random() == ref.random()


def test_mixing_methods_draw_a_lambda_per_batch_from_seed_and_epoch():
    noisy = np.repeat(np.arange(K), 20)
    cfg = TrainConfig(method="mixup", alpha=1.0, batch_size=16, seed=5)
    lams = [p.lam for p in epoch_plans(cfg, 0, noisy, None)]
    assert len(lams) == 13 and len(set(lams)) == len(lams)
    assert all(0 < v < 1 for v in lams)
    # The same (seed, epoch) replays the same λ, order and partners; another epoch or seed does not.
    again = epoch_plans(cfg, 0, noisy, None)
    assert [p.lam for p in again] == lams
    for a, b in zip(epoch_plans(cfg, 0, noisy, None), again, strict=True):
        np.testing.assert_array_equal(a.idx, b.idx)
        np.testing.assert_array_equal(a.partner, b.partner)
    assert [p.lam for p in epoch_plans(cfg, 1, noisy, None)] != lams
    assert [p.lam for p in epoch_plans(dataclasses.replace(cfg, seed=6), 0, noisy, None)] != lams
    # A larger α concentrates λ around 1/2; a method that does not mix never draws one.
    sharp = [p.lam for p in epoch_plans(dataclasses.replace(cfg, alpha=32.0), 0, noisy, None)]
    assert max(abs(v - 0.5) for v in sharp) < max(abs(v - 0.5) for v in lams)
    for method in ("erm", "dropout", "label_smoothing"):
        plans = epoch_plans(dataclasses.replace(cfg, method=method), 0, noisy, None)
        assert all(p.lam == 1.0 for p in plans)
        assert all(np.array_equal(p.partner, np.arange(len(p.idx))) for p in plans)


def test_alpha_zero_is_lambda_one_and_draws_nothing():
    rng = np.random.default_rng(0)
    assert all(sample_lambda(rng, 0.0) == 1.0 for _ in range(10))
    assert rng.random() == np.random.default_rng(0).random()


# --- targets and inputs ------------------------------------------------------------------------

def test_blended_targets_and_inputs():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, K, (64,), generator=g)
    x = torch.rand(64, 3, 8, 8, generator=g)
    perm = torch.from_numpy(shuffle_partners(np.random.default_rng(0), 64))
    # The test blends real pairs: some partners carry another label.
    assert (y[perm] != y).any()
    lam = 0.3
    t = mix_targets(y, y[perm], lam, K, "blend")
    eye = torch.eye(K)
    torch.testing.assert_close(t, lam * eye[y] + (1 - lam) * eye[y[perm]])
    # With these targets the soft cross-entropy is the mixup loss of the paper:
    # λ CE(f(x̃), y) + (1 − λ) CE(f(x̃), y_partner).
    logits = torch.randn(64, K, generator=g)
    torch.testing.assert_close(soft_cross_entropy(logits, t),
                               lam * F.cross_entropy(logits, y)
                               + (1 - lam) * F.cross_entropy(logits, y[perm]))
    torch.testing.assert_close(mix_inputs(x, x[perm], lam, "blend"), lam * x + (1 - lam) * x[perm])
    # λ = 1 is no mixing at all.
    assert torch.equal(mix_inputs(x, x[perm], 1.0, "blend"), x)
    assert torch.equal(mix_targets(y, y[perm], 1.0, K, "blend"), eye[y])


def test_pick_takes_the_heavier_component():
    y = torch.arange(K)
    yp = (y + 3) % K
    eye = torch.eye(K)
    for lam, want in ((0.7, y), (0.5, y), (0.2, yp)):
        t = mix_targets(y, yp, lam, K, "pick")
        assert torch.equal(t, eye[want])
        x, xp = torch.zeros(K, 1), torch.ones(K, 1)
        heavier = torch.where(mix_inputs(x, xp, lam, "pick") < 0.5, y[:, None], yp[:, None])[:, 0]
        if lam != 0.5:
            assert torch.equal(t.argmax(1), heavier)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_label_smoothing_targets(eps):
    y = torch.arange(K).repeat(3)
    t = mix_targets(y, y.flip(0), 0.2, K, "smooth", smoothing=eps)
    torch.testing.assert_close(t.sum(1), torch.ones(len(y)))
    torch.testing.assert_close(t[torch.arange(len(y)), y], torch.full((len(y),), 1 - eps + eps / K))
    off = t.clone()
    off[torch.arange(len(y)), y] = 0
    torch.testing.assert_close(off.sum(1), torch.full((len(y),), eps * (K - 1) / K))
    x = torch.rand(len(y), 3)
    assert torch.equal(mix_inputs(x, x.flip(0), 0.2, "smooth"), x)


def test_labels_only_blends_targets_not_inputs():
    y = torch.arange(K)
    x = torch.rand(K, 3)
    t = mix_targets(y, y.flip(0), 0.25, K, "labels_only")
    torch.testing.assert_close(t, 0.25 * torch.eye(K)[y] + 0.75 * torch.eye(K)[y.flip(0)])
    assert torch.equal(mix_inputs(x, x.flip(0), 0.25, "labels_only"), x)


def test_unknown_target_rule():
    with pytest.raises(ValueError):
        mix_targets(torch.arange(3), torch.arange(3), 0.5, 3, "bogus")


def test_soft_cross_entropy_with_one_hot_equals_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(32, K, generator=g, requires_grad=True)
    y = torch.randint(0, K, (32,), generator=g)
    ours = soft_cross_entropy(logits, F.one_hot(y, K).float())
    ref = F.cross_entropy(logits, y)
    torch.testing.assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1, g2)
    # Soft targets: the mean over rows of -Σ t log softmax.
    t = torch.softmax(torch.randn(32, K, generator=g), 1)
    want = -(t * torch.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, t), want)
    # bf16 logits are upcast: the loss is fp32.
    assert soft_cross_entropy(logits.bfloat16(), t).dtype == torch.float32


# --- partners --------------------------------------------------------------------------------

def test_same_class_partners_share_the_label():
    rng = np.random.default_rng(0)
    labels = np.random.default_rng(1).integers(0, K, 128)
    labels[0] = 11  # a label that occurs once pairs with itself
    perm = same_class_partners(rng, labels)
    assert sorted(perm) == list(range(128))
    np.testing.assert_array_equal(labels[perm], labels)
    assert perm[0] == 0
    assert np.mean(perm != np.arange(128)) > 0.5


def _brute_force_knn(x: np.ndarray, labels: np.ndarray):
    flat = x.reshape(len(x), -1).astype(np.float64) / 255
    d = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)
    d[labels[:, None] != labels[None, :]] = np.inf
    np.fill_diagonal(d, np.inf)
    return d


def test_knn_partners_are_among_the_k_nearest_of_the_same_class():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 4, 4, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)
    k = 4
    table = knn_table(x, labels, k)
    assert table.shape == (60, k) and table.dtype == np.int64
    d = _brute_force_knn(x, labels)
    for i in range(60):
        want = set(np.argsort(d[i], kind="stable")[:k])
        assert set(table[i]) == want, i
        assert labels[table[i]].tolist() == [labels[i]] * k
        assert i not in table[i]
    batch = np.arange(0, 60, 3)
    partners = knn_partners(np.random.default_rng(1), table, batch)
    assert all(p in table[b] for p, b in zip(partners, batch, strict=True))
    np.testing.assert_array_equal(labels[partners], labels[batch])


def test_knn_small_classes():
    x = np.random.default_rng(0).integers(0, 256, (6, 2, 2, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 2, 2, 2])
    table = knn_table(x, labels, 5)
    np.testing.assert_array_equal(table[0], [0] * 5)  # alone: mixes with itself
    np.testing.assert_array_equal(table[1], [2] * 5)  # one neighbour, repeated
    for i in (3, 4, 5):
        assert set(table[i]) == {3, 4, 5} - {i}


# --- through the trainer's batch path ------------------------------------------------------------

@pytest.fixture(scope="module")
def mem_ds() -> Dataset:
    a = cifar_arrays(8, 2, seed=3)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def tiny_cfg(method: str, **kw) -> TrainConfig:
    base = dict(method=method, ratio=0.5, alpha=1.0 if METHODS[method].partner != "none" else 0.0,
                dropout=0.0, width=2, train_subset=None, test_n=None, train_eval_n=20,
                batch_size=32, epochs=2, milestones=[1], precision="fp32")
    base.update(kw)
    return TrainConfig(**base).validate()


def reference_crop(x: np.ndarray, idx, dy, dx, flip) -> torch.Tensor:
    """Pad, crop and flip in plain numpy: N x C x H x W float in [0, 1]."""
    p = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    h, w = x.shape[1:3]
    out = []
    for i, y0, x0, f in zip(idx, dy, dx, flip, strict=True):
        c = p[i, y0:y0 + h, x0:x0 + w]
        out.append(c[:, ::-1] if f else c)
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255)


@pytest.mark.parametrize("method", list(METHODS))
def test_batch_tensors_match_a_plain_reference(mem_ds, method):
    cfg = tiny_cfg(method)
    labels = make_labels(cfg, mem_ds)
    tr = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    spec = METHODS[method]
    x_sub, noisy = mem_ds.x_train[labels.index], labels.noisy
    plan = epoch_plans(cfg, 1, noisy, tr.knn)[0]
    x, t = tr.batch_tensors(plan)

    xa = reference_crop(x_sub, plan.idx, plan.dy, plan.dx, plan.flip)
    ya = torch.from_numpy(noisy[plan.idx])
    if spec.partner == "knn":
        assert all(p in tr.knn[i] for p, i in zip(plan.partner, plan.idx, strict=True))
        xb = reference_crop(x_sub, plan.partner, plan.partner_dy, plan.partner_dx, plan.partner_flip)
        yb = torch.from_numpy(noisy[plan.partner])
    else:
        xb, yb = xa[plan.partner], ya[plan.partner]
    lam = plan.lam
    eye = torch.eye(K)
    if spec.partner == "none" and spec.target != "labels_only":
        assert lam == 1.0
    else:
        assert 0 < lam < 1
    if spec.partner in ("same_class", "knn"):
        assert torch.equal(yb, ya)

    # Methods with their own loss (target "method": gce, sce) train on one-hot labels.
    target = "hard" if spec.target == "method" else spec.target
    want_x = xa if target in ("hard", "smooth", "labels_only") else lam * xa + (1 - lam) * xb
    want_t = {
        "hard": eye[ya],
        "smooth": eye[ya] * (1 - cfg.smoothing) + cfg.smoothing / K,
        "blend": lam * eye[ya] + (1 - lam) * eye[yb],
        "labels_only": lam * eye[ya] + (1 - lam) * eye[yb],
        "pick": eye[ya] if lam >= 0.5 else eye[yb],
    }[target]
    assert x.shape == (len(plan.idx), 3, 32, 32)
    torch.testing.assert_close(x, want_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(t, want_t, rtol=0, atol=1e-6)
    if spec.partner in ("same_class", "knn"):
        # Same-label partners: only the inputs mix, each target is its own one-hot label.
        torch.testing.assert_close(t, eye[ya], rtol=0, atol=1e-6)
        assert not torch.equal(x, xa)
    elif spec.partner == "shuffle" and spec.target == "blend":
        assert (t.max(1).values < 1).any()  # partners of other labels really blend targets
    if spec.target == "labels_only":
        assert torch.equal(x, xa)  # inputs exactly unmixed
        assert (t.max(1).values < 1).any()  # while some targets are blended
    if spec.target == "pick":
        assert torch.equal(t.max(1).values, torch.ones(len(t)))


def _loss_and_grads(tr: Trainer, plan) -> tuple[torch.Tensor, list[torch.Tensor]]:
    tr.model.train()
    x, t = tr.batch_tensors(plan)
    tr.model.zero_grad()
    loss = soft_cross_entropy(tr.model(x), t)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in tr.model.parameters()]


def test_mixup_with_alpha_zero_is_exactly_erm(mem_ds):
    erm_cfg = tiny_cfg("erm")
    mix_cfg = tiny_cfg("mixup", alpha=0.0)
    labels = make_labels(erm_cfg, mem_ds)
    erm = Trainer(erm_cfg, mem_ds, labels, CPU, show_progress=False)
    mix = Trainer(mix_cfg, mem_ds, labels, CPU, show_progress=False)
    mix.model.load_state_dict(erm.model.state_dict())
    plan = epoch_plans(mix_cfg, 0, labels.noisy, None)[0]
    assert plan.lam == 1.0 and not np.array_equal(plan.partner, np.arange(len(plan.idx)))
    le, ge = _loss_and_grads(erm, plan)
    lm, gm = _loss_and_grads(mix, plan)
    assert torch.equal(le, lm)
    assert all(torch.equal(a, b) for a, b in zip(ge, gm, strict=True))
    # The comparison can fail: the same plan with λ = 0.6 gives another loss.
    lx, _ = _loss_and_grads(mix, dataclasses.replace(plan, lam=0.6))
    assert not torch.equal(le, lx)
