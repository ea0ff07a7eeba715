"""PreAct ResNet-18: dropout placement, shapes, width and the normalisation inside the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmix.data.classes import CIFAR10_CLASSES, FASHION_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.training.config import TrainConfig
from robustmix.training.models import CIFAR_STATS, PreActBlock, build_model, preact_resnet18


def blocks(model) -> list[PreActBlock]:
    return [m for m in model.modules() if isinstance(m, PreActBlock)]


def is_dropout(m: nn.Module) -> bool:
    """nn.Dropout or the project's own dropout module."""
    return isinstance(m, nn.Dropout) or "dropout" in type(m).__name__.lower()


def test_dropout_sits_after_the_middle_relu_and_before_conv2():
    torch.manual_seed(0)
    model = preact_resnet18(width=4, dropout=0.3)
    bs = blocks(model)
    assert len(bs) == 8
    assert all(is_dropout(b.dropout) and b.dropout.p == 0.3 for b in bs)
    assert sum(is_dropout(m) for m in model.modules()) == 8

    calls: list[tuple[int, str]] = []
    seen: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for i, b in enumerate(bs):
        for name in ("bn1", "conv1", "bn2", "dropout", "conv2"):
            def hook(mod, inp, out, key=(i, name)):
                calls.append(key)
                seen[key] = (inp[0].detach().clone(), out.detach().clone())
            handles.append(getattr(b, name).register_forward_hook(hook))
    model.train()
    model(torch.rand(4, 3, 32, 32))
    for h in handles:
        h.remove()

    for i in range(8):
        order = [name for j, name in calls if j == i]
        assert order == ["bn1", "conv1", "bn2", "dropout", "conv2"]
        bn2_out = seen[(i, "bn2")][1]
        drop_in, drop_out = seen[(i, "dropout")]
        # Dropout's input is exactly ReLU(bn2(...)), and conv2 consumes exactly its output.
        assert torch.equal(drop_in, F.relu(bn2_out))
        assert torch.equal(seen[(i, "conv2")][0], drop_out)
        # It really drops in training mode: zeros appear where the ReLU output was positive,
        # and kept units are scaled by 1 / (1 - p).
        kept = drop_out != 0
        assert ((drop_in > 0) & ~kept).any()
        torch.testing.assert_close(drop_out[kept], drop_in[kept] / 0.7)


def test_no_dropout_modules_when_p_is_zero():
    model = preact_resnet18(width=4, dropout=0.0)
    assert not any(is_dropout(m) for m in model.modules())
    assert all(isinstance(b.dropout, nn.Identity) for b in blocks(model))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keeps_one_minus_p_and_rescales(p):
    drop = preact_resnet18(width=2, dropout=p).layers[0].dropout
    x = torch.rand(400_000) + 0.5
    drop.train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the mask comes from torch's global generator
    drop.eval()
    assert torch.equal(drop(x), x)


def test_eval_mode_is_deterministic_and_train_mode_drops():
    torch.manual_seed(0)
    model = preact_resnet18(width=4, dropout=0.5)
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("shape,channels", [((32, 32), 3), ((28, 28), 1)])
def test_output_shape(shape, channels):
    model = preact_resnet18(num_classes=10, width=4, in_channels=channels,
                            mean=[0.5] * channels, std=[0.25] * channels).eval()
    with torch.no_grad():
        out = model(torch.rand(5, channels, *shape))
    assert out.shape == (5, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_width_multiplier():
    model = preact_resnet18(width=6)
    assert model.conv1.out_channels == 6
    assert [b.conv2.out_channels for b in blocks(model)] == [6, 6, 12, 12, 24, 24, 48, 48]
    assert model.linear.in_features == 48
    n4 = sum(p.numel() for p in preact_resnet18(width=4).parameters())
    n8 = sum(p.numel() for p in preact_resnet18(width=8).parameters())
    assert 3.5 < n8 / n4 < 4.1  # parameters grow with width squared


def test_normalisation_happens_inside_the_model():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    torch.manual_seed(0)
    model = preact_resnet18(width=4, mean=mean, std=std).eval()
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(mean))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(std))
    assert {"mean", "std"} <= set(model.state_dict())  # saved with the weights
    plain = preact_resnet18(width=4, mean=(0, 0, 0), std=(1, 1, 1)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in ("mean", "std")},
                          strict=False)
    x = torch.rand(3, 3, 32, 32)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain((x - m) / s), rtol=1e-5, atol=1e-5)
        # and the buffers are what is used: changing them changes the output
        model.mean.fill_(0.0)
        assert not torch.allclose(model(x), plain((x - m) / s))


def test_mean_and_std_need_one_value_per_channel():
    with pytest.raises(ValueError):
        preact_resnet18(in_channels=1, mean=(0.5, 0.5, 0.5), std=(0.25,))


def test_build_model_uses_fixed_cifar_stats_and_measured_fashion_stats():
    x = np.full((20, 32, 32, 3), 200, dtype=np.uint8)
    y = np.arange(20) % 10
    ds = Dataset("cifar10", CIFAR10_CLASSES, x, y, x[:10], y[:10], "mem", "CIFAR-10")
    cfg = TrainConfig(width=4, dropout=0.2)
    model = build_model(cfg, ds)
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(CIFAR_STATS[0]))
    torch.testing.assert_close(model.std.flatten(), torch.tensor(CIFAR_STATS[1]))
    assert model.conv1.out_channels == 4
    assert all(b.dropout.p == 0.2 for b in blocks(model))

    g = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    fds = Dataset("fashion-mnist", FASHION_CLASSES, g, y, g[:10], y[:10], "mem", "Fashion-MNIST")
    fm = build_model(TrainConfig(dataset="fashion-mnist", width=4), fds)
    assert fm.conv1.in_channels == 1
    assert fm.mean.flatten().tolist() == pytest.approx([g.mean() / 255], rel=1e-6)
    assert fm.std.flatten().tolist() == pytest.approx([g.std() / 255], rel=1e-6)


NARROW_STEP = """
import torch
from robustmix.evaluation.device import place_model
from robustmix.training.models import preact_resnet18
torch.manual_seed(0)
c = {channels}
model = preact_resnet18(num_classes=10, width={width}, in_channels=c, mean=[0.5] * c, std=[0.25] * c)
model = place_model(model, torch.device("cpu")).train()
# as training feeds it: an N x H x W x C batch permuted to N x C x H x W (channels-last strides)
x = torch.rand(60, {size}, {size}, c).permute(0, 3, 1, 2)
for _ in range(3):
    model(x).sum().backward()
print("trained")
"""
NARROW = [(4, 3, 32), (6, 3, 32), (16, 3, 32), (4, 1, 28)]  # (width, channels, size)


@pytest.fixture(scope="module")
def narrow_steps() -> dict[tuple[int, int, int], tuple[bool, str]]:
    """NARROW_STEP of every NARROW setting in one subprocess (one torch import, not four), each
    step as it runs alone (it seeds itself); a process that crashes is started again on the
    settings after the one it crashed in, so a crash fails that setting's test only. Each
    setting: (trained and the process exited 0, the stderr of its process)."""
    import os
    import subprocess
    import sys

    results: dict[tuple[int, int, int], tuple[bool, str]] = {}
    todo = list(NARROW)
    while todo:
        code = "".join(NARROW_STEP.format(width=w, channels=c, size=s) for w, c, s in todo)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        done = r.stdout.splitlines().count("trained")
        results.update({setting: (True, "") for setting in todo[:done]})
        if r.returncode != 0 or done < len(todo):  # the step that did not finish (or the last)
            crashed = todo[min(done, len(todo) - 1)]
            results[crashed] = (False, r.stderr[-2000:] or f"exit status {r.returncode}")
            done = max(done, todo.index(crashed) + 1)
        todo = todo[done:]
    return results


@pytest.mark.parametrize("width,channels,size", NARROW)
def test_narrow_network_trains_on_cpu(narrow_steps, width, channels, size):
    """A 1x1 strided convolution with under 8 input channels (PreAct ResNet-18's first shortcut
    at width 4 or 6) crashed the process in channels-last backward (torch 2.14.1, AVX2 CPU);
    place_model computes such a network in NCHW, even for a channels-last batch or a one-channel
    batch whose strides only look channels-last (Fashion-MNIST). A subprocess (narrow_steps), so
    that a crash fails this test instead of killing the test run."""
    from robustmix.evaluation.device import memory_format

    model = preact_resnet18(num_classes=10, width=width)
    want = torch.channels_last if width >= 8 else torch.contiguous_format
    assert memory_format(model, torch.device("cpu")) == want
    assert memory_format(model, torch.device("cuda")) == torch.channels_last
    trained, err = narrow_steps[(width, channels, size)]
    assert trained, err
