"""FastNet (the fast profiles' network) and the fast profiles: shape, whitening, dropout law,
the 45,000 + 5,000 split, a tiny run end to end, exact resume after a kill, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import memory_cifar

from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.errors import UsageError
from robustmix.training import trainer
from robustmix.training.config import PROFILES, make_config
from robustmix.training.labels import make_labels
from robustmix.training.models import CIFAR_STATS, FastBlock, FastNet, build_model
from robustmix.training.models import Dropout as RMDropout
from robustmix.training.trainer import lr_at, train_run

CPU = torch.device("cpu")
TIMING = ["seconds", "train_seconds", "images_per_second"]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return memory_cifar(20, 5, seed=4)


def test_shape_widths_and_frozen_stem():
    net = FastNet(10, width=8)
    widths = [b.conv2.out_channels for b in net.blocks]
    assert widths == [8, 32, 32]
    assert net.stem.weight.shape == (24, 3, 2, 2) and not net.stem.weight.requires_grad
    assert net.stem.bias.requires_grad
    assert net(torch.rand(5, 3, 32, 32)).shape == (5, 10)
    grey = FastNet(10, width=4, in_channels=1, mean=(0.5,), std=(0.25,))
    assert grey(torch.rand(2, 1, 28, 28)).shape == (2, 10)  # Fashion-MNIST's size works too
    assert net.head.bias is None


def test_whitened_stem_decorrelates_patches():
    rng = np.random.default_rng(0)
    # Strongly correlated channels and neighbouring pixels: a smooth base image plus colour.
    base = rng.integers(0, 200, size=(400, 16, 16, 1)).repeat(2, 1).repeat(2, 2)
    x = np.clip(base + rng.integers(0, 50, size=(400, 32, 32, 3)), 0, 255).astype(np.uint8)
    net = FastNet(10, width=4, mean=CIFAR_STATS[0], std=CIFAR_STATS[1])
    net.whiten(x, eps=0.0)
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - net.mean) / net.std
    with torch.no_grad():
        out = torch.nn.functional.conv2d(xt, net.stem.weight[:12]).permute(0, 2, 3, 1)
    flat = out.reshape(-1, 12).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.double), atol=0.05)
    assert torch.equal(net.stem.weight[12:], -net.stem.weight[:12])


def test_dropout_sits_between_each_blocks_convolutions_with_its_law():
    net = FastNet(10, width=4, dropout=0.3)
    drops = [b.dropout for b in net.blocks]
    assert all(isinstance(d, RMDropout) and d.p == 0.3 for d in drops)
    assert all(isinstance(b.dropout, torch.nn.Identity) for b in FastNet(10, width=4).blocks)
    # The law: units kept with probability 1 - p, scaled by 1 / (1 - p).
    torch.manual_seed(0)
    block = FastBlock(4, 4, dropout=0.3).train()
    x = torch.ones(200, 4, 8, 8)
    out = block.dropout(x)
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))
    net.eval()
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(net(x), net(x))  # eval mode: no dropout


def test_build_model_whitens_on_the_runs_training_images(ds):
    cfg = make_config(method="erm", ratio=0.5, profile="fast", width=4)
    a = build_model(cfg, ds, ds.x_train[:100])
    b = build_model(cfg, ds, ds.x_train[100:])
    assert isinstance(a, FastNet)
    assert not torch.equal(a.stem.weight, b.stem.weight)


def test_fast_profiles_record_their_regularisers():
    for name in ("fast", "fast-long"):
        cfg = make_config(method="mixup_dropout", ratio=0.5, profile=name)
        assert cfg.model == "fastnet" and cfg.train_subset is None and cfg.val_n == 5000
        assert cfg.test_n == 2000 and cfg.schedule == "linear" and cfg.nesterov
        assert cfg.dropout > 0 and cfg.alpha > 0
        d = cfg.to_dict()
        assert d["schedule"] == "linear" and d["nesterov"] is True and d["warmup"] == cfg.warmup
        assert d["translate"] == 2
        assert "_fastnet_" in cfg.run_name and cfg.run_name.endswith(f"_{name}_s0")
    assert PROFILES["fast-long"]["epochs"] > PROFILES["fast"]["epochs"]
    erm = make_config(method="erm", ratio=0.5, profile="fast")
    assert erm.alpha == 0 and erm.dropout == 0  # ERM stays plain cross-entropy
    # The older profiles keep their identity: no new keys in their configs.
    quick = make_config(method="erm", ratio=0.5, profile="quick").to_dict()
    assert not {"schedule", "warmup", "nesterov", "translate"} & set(quick)


def test_translation_sets_the_crop_range(ds):
    from robustmix.training.batches import epoch_plans

    cfg = tiny_fast()
    offsets = np.concatenate([p.dy for p in epoch_plans(cfg, 0, ds.y_train[:170], None)])
    assert offsets.min() == 0 and offsets.max() == 2 * cfg.translate


def test_linear_schedule_warms_up_and_decays_to_zero():
    cfg = make_config(method="erm", ratio=0.5, profile="fast", epochs=10)
    assert lr_at(cfg, 0, 0.0) == 0.0
    assert lr_at(cfg, 2, 0.0) == pytest.approx(cfg.lr)  # the end of the 20 % warm-up
    assert lr_at(cfg, 1, 0.0) == pytest.approx(cfg.lr / 2)
    assert lr_at(cfg, 6, 0.0) == pytest.approx(cfg.lr / 2)
    assert lr_at(cfg, 9, 0.99) == pytest.approx(cfg.lr * 0.001 / 0.8)
    quick = make_config(method="erm", ratio=0.5, profile="quick", epochs=4)
    assert [lr_at(quick, e, 0.5) for e in range(4)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


class FullSized:
    """Labels of a 50,000-image training set (images are not needed to draw the split)."""

    def __init__(self):
        self.y_train = np.repeat(np.arange(10), 5000)
        np.random.default_rng(0).shuffle(self.y_train)
        self.num_classes = 10
        self.name = "cifar10"
        self.classes = CIFAR10_CLASSES


def test_fast_split_is_45000_plus_5000_balanced_and_from_the_noise_seed_alone():
    ds = FullSized()
    cfg = make_config(method="erm", ratio=0.5, profile="fast")
    lab = make_labels(cfg, ds)
    assert len(lab.index) == 45000 and len(lab.val_index) == 5000
    assert not set(lab.index) & set(lab.val_index)
    assert np.bincount(ds.y_train[lab.val_index], minlength=10).tolist() == [500] * 10
    assert 0.43 < lab.noise_rate < 0.47  # 50 % symmetric noise: about 45 % wrong labels
    other_seed = make_labels(make_config(method="mixup", ratio=0.5, profile="fast", seed=7), ds)
    assert np.array_equal(other_seed.val_index, lab.val_index)
    assert np.array_equal(other_seed.noisy, lab.noisy)
    other_noise = make_labels(make_config(method="erm", ratio=0.5, profile="fast",
                                          noise_seed=1), ds)
    assert not np.array_equal(other_noise.val_index, lab.val_index)
    assert not np.array_equal(other_noise.noisy, lab.noisy)


def test_train_subset_that_would_eat_the_validation_set_is_refused():
    cfg = make_config(method="erm", ratio=0.5, profile="fast", train_subset=48000)
    with pytest.raises(UsageError, match="validation"):
        make_labels(cfg, FullSized())


def tiny_fast(**kw):
    # A tiny FastNet on the synthetic images, with the fast profile's schedule and optimiser.
    base = dict(method="mixup_dropout", ratio=0.2, profile="fast", epochs=3, width=4,
                precision="fp32", batch_size=32, val_n=30, test_n=None, train_eval_n=50)
    return make_config(**{**base, **kw})


@pytest.mark.usefixtures("one_thread")  # conftest.py
def test_tiny_fast_run_end_to_end(ds, tmp_path):
    s = train_run(tiny_fast(), ds, tmp_path, CPU, show_progress=False)
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert len(m) == 3 and m["train_loss"].notna().all()
    assert s["val_images"] == 30 and s["train_images"] == 170
    # The whitening stem is frozen: training leaves it as built from the run's training images.
    cfg = tiny_fast()
    built = build_model(cfg, ds, ds.x_train[make_labels(cfg, ds).index])
    last = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert torch.equal(last["stem.weight"], built.stem.weight)
    assert not torch.equal(last["stem.bias"], built.stem.bias)
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert len(pred) == len(ds.y_test) and (pred["selected"] >= 0).all()


@pytest.mark.usefixtures("one_thread")
def test_fast_run_resumes_exactly_after_a_kill(ds, tmp_path):
    cfg = tiny_fast(method="mixup", dropout=0.0)
    straight = tmp_path / "straight"
    straight.mkdir()
    train_run(cfg, ds, straight, CPU, show_progress=False)
    run = tmp_path / "cut"
    run.mkdir()
    real = trainer.save_checkpoint
    writes = [0]

    def dies_at_second_epoch(path, state):
        if path.name == "last.pt":
            writes[0] += 1
            if writes[0] == 2:
                raise KeyboardInterrupt
        real(path, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "save_checkpoint", dies_at_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, ds, run, CPU, show_progress=False)
    train_run(cfg, ds, run, CPU, show_progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(run / "metrics.csv").drop(columns=TIMING),
                                  pd.read_csv(straight / "metrics.csv").drop(columns=TIMING),
                                  check_exact=True)
    a = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
