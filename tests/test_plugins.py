"""Bring your own method and model: the method interface every method trains through (the
built-in methods train exactly as before it), GCE and SCE against their closed forms, plugins by
import path and entry point, the model registry, the README example, and each bad input."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import torchvision
from attack_fixtures import ROOT, env, snapshot
from helpers import cifar_arrays

import robustmix.training.methods as M
from robustmix import attack as attack_cli
from robustmix import noise, report, study
from robustmix.cli import run_main
from robustmix.data.classes import CIFAR10_CLASSES
from robustmix.data.datasets import Dataset
from robustmix.evaluation.device import autocast
from robustmix.runs.checkpoints import load_model
from robustmix.training import losses, plugins
from robustmix.training.batches import crop_flip, epoch_plans
from robustmix.training.config import TrainConfig, make_config
from robustmix.training.labels import make_labels
from robustmix.training.mixing import mix_inputs, mix_targets, soft_cross_entropy
from robustmix.training.models import CifarResNet18, build_model
from robustmix.training.trainer import Trainer, lr_at

CPU = torch.device("cpu")
TESTS = Path(__file__).resolve().parent
K = 10
# Tiny settings; --width only for the built-in models (a factory sets its own size).
SCALE = ["--epochs", "1", "--train-subset", "60", "--val-n", "20", "--quiet", "--precision",
         "fp32", "--device", "cpu", "--profile", "quick"]
TINY = [*SCALE, "--width", "4"]
ATTACK_TINY = ["--eps", "0,8", "--steps", "2", "--n", "20", "--quiet", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _restore_method_table():
    """Plugins register themselves in the method table: each test starts from the built-ins."""
    before = dict(M.METHODS)
    yield
    M.METHODS.clear()
    M.METHODS.update(before)


def subprocess_env() -> dict:
    """The test process's environment plus tests/ on the path, where plugin_examples lives."""
    e = env(Path(os.environ["ROBUSTMIX_CACHE"]))
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), e.get("PYTHONPATH", "")])
    return e


def one_line_error(rc: int, err: str, *fragments: str) -> str:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- one path, same numbers


@pytest.fixture(scope="module")
def mem_ds() -> Dataset:
    a = cifar_arrays(8, 2, seed=3)
    return Dataset("cifar10", CIFAR10_CLASSES, a.x_train, a.y_train, a.x_test, a.y_test,
                   "memory", "CIFAR-10")


def reference_epoch(tr: Trainer, epoch: int) -> float:
    """One epoch as robustmix trained before the method interface (commit b699d74): the batch
    path written out with the mixing rules of the method's table row and soft cross-entropy,
    no Method object. Returns the epoch's mean training loss."""
    cfg, spec = tr.cfg, M.METHODS[tr.cfg.method]
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)
    for g in tr.opt.param_groups:
        g["lr"] = lr_at(cfg, epoch)
    tr.model.train()
    total, seen = torch.zeros(()), 0

    def t(a):
        return torch.from_numpy(np.asarray(a))

    for plan in epoch_plans(cfg, epoch, tr.labels.noisy, tr.knn):
        idx = t(plan.idx)
        x = crop_flip(tr.padded, idx, t(plan.dy), t(plan.dx), t(plan.flip), tr.size)
        y = tr.noisy[idx]
        if spec.partner == "knn":
            pidx = t(plan.partner)
            xp = crop_flip(tr.padded, pidx, t(plan.partner_dy), t(plan.partner_dx),
                           t(plan.partner_flip), tr.size)
            yp = tr.noisy[pidx]
        else:
            xp, yp = x[t(plan.partner)], y[t(plan.partner)]
        targets = mix_targets(y, yp, plan.lam, K, spec.target, cfg.smoothing)
        x = mix_inputs(x, xp, plan.lam, spec.target)
        with autocast(CPU, cfg.precision):
            logits = tr.model(x)
        loss = soft_cross_entropy(logits, targets)
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        tr.opt.step()
        total += loss.detach() * len(plan.idx)
        seen += len(plan.idx)
    return float(total) / seen


@pytest.mark.parametrize("method", [m for m in M.BUILTIN_METHODS if not M.METHODS[m].factory])
def test_builtin_methods_train_bit_for_bit_as_before_the_interface(mem_ds, method):
    spec = M.METHODS[method]
    cfg = TrainConfig(method=method, ratio=0.5, alpha=1.0 if spec.mixes else 0.0,
                      dropout=0.3 if "dropout" in method else 0.0, width=2, train_subset=None,
                      test_n=None, train_eval_n=20, batch_size=16, epochs=2, milestones=[1],
                      knn_k=3, precision="fp32").validate()
    labels = make_labels(cfg, mem_ds)
    new = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    old = Trainer(cfg, mem_ds, labels, CPU, show_progress=False)
    for epoch in range(2):
        row = new.train_epoch(epoch)
        loss = reference_epoch(old, epoch)
        assert row["train_loss"] == loss
        ref = old.evaluate()
        assert {k: row[k] for k in ref} == pytest.approx(ref, rel=0, abs=0, nan_ok=True)
    for (name, a), (_, b) in zip(new.model.state_dict().items(),
                                 old.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


# --------------------------------------------------------------------------- GCE and SCE


def test_gce_matches_its_closed_form_and_its_limits():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, K, generator=g) * 3
    y = torch.randint(0, K, (64,), generator=g)
    onehot = F.one_hot(y, K).float()
    p_y = F.softmax(logits.double(), 1)[torch.arange(64), y]
    for q in (0.7, 0.3, 1.0):
        want = ((1 - p_y ** q) / q).mean()
        torch.testing.assert_close(losses.gce_loss(logits, onehot, q).double(), want,
                                   rtol=1e-5, atol=1e-6)
    # q = 1 is MAE-like 1 - p_y; q -> 0 tends to cross-entropy.
    torch.testing.assert_close(losses.gce_loss(logits, onehot, 1.0).double(), (1 - p_y).mean(),
                               rtol=1e-5, atol=1e-6)
    ce = F.cross_entropy(logits, y)
    assert abs(losses.gce_loss(logits, onehot, 1e-4) - ce) < 1e-2 * ce
    # A true class of vanishing probability keeps the gradient finite.
    far = torch.tensor([[200.0, 0.0, -200.0]], requires_grad=True)
    losses.gce_loss(far, torch.tensor([[0.0, 0.0, 1.0]]), 0.7).backward()
    assert torch.isfinite(far.grad).all()


def test_sce_matches_its_closed_form():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, K, generator=g) * 2
    y = torch.randint(0, K, (64,), generator=g)
    onehot = F.one_hot(y, K).float()
    p_y = F.softmax(logits.double(), 1)[torch.arange(64), y]
    ce = -torch.log(p_y)
    for alpha, beta, A in ((0.1, 1.0, -4.0), (1.0, 0.5, -6.0)):
        # For a one-hot label RCE = -sum_k p_k log q_k = -A (1 - p_y).
        want = (alpha * ce + beta * (-A) * (1 - p_y)).mean()
        got = losses.SCE(alpha=alpha, beta=beta, A=A).loss(logits, onehot)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses.reverse_cross_entropy(logits, onehot, -4.0).double(),
                               (4 * (1 - p_y)).mean(), rtol=1e-5, atol=1e-6)


def test_gce_and_sce_rows_repeat_their_classes_defaults_and_train_on_one_hot_labels():
    for name, cls in (("gce", losses.GCE), ("sce", losses.SCE)):
        spec = M.METHODS[name]
        assert spec.defaults == cls.params and spec.factory.endswith(f":{cls.__name__}")
        assert plugins.load_object(spec.factory, "method") is cls
        assert spec.partner == "none" and spec.compare and not M.is_ablation(name)
    assert make_config(method="gce", ratio=0.5, profile="quick").method_params == {"q": 0.7}
    cfg = make_config(method="sce", ratio=0.5, profile="quick", method_params={"A": -6})
    assert cfg.method_params == {"alpha": 0.1, "beta": 1.0, "A": -6.0}
    assert cfg.run_name == "cifar10_sym0.5_sce_alpha0.1_beta1_A-6_a0_p0_quick_s0"


# --------------------------------------------------------------------------- models


def test_resnet18_is_torchvisions_with_a_cifar_stem():
    ours = CifarResNet18(10, 3, 64)
    tv = torchvision.models.resnet18(num_classes=10)
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    assert a.keys() == b.keys()
    assert {k for k in a if a[k] != b[k]} == {"conv1.weight"}  # 3x3 stem instead of 7x7
    assert a["conv1.weight"] == (64, 3, 3, 3) and isinstance(ours.maxpool, torch.nn.Identity)
    narrow = CifarResNet18(10, 1, 4)
    assert narrow.state_dict()["layer4.1.conv2.weight"].shape == (32, 32, 3, 3)
    assert narrow(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert narrow(torch.rand(2, 1, 32, 32)).shape == (2, 10)


def test_models_by_name_or_factory_with_normalisation_when_asked(mem_ds):
    x = torch.rand(3, 3, 32, 32)
    pre = build_model(make_config(method="erm", ratio=0.5, profile="quick", width=2), mem_ds)
    res = build_model(make_config(method="erm", ratio=0.5, profile="quick", width=2,
                                  model="resnet18"), mem_ds)
    assert res.net.__class__ is CifarResNet18 and res(x).shape == (3, 10)
    raw = make_config(method="erm", ratio=0.5, profile="quick", model="plugin_examples:tiny_cnn")
    assert raw.width == 0 and raw.normalize is False
    assert raw.run_name == "cifar10_sym0.5_erm_a0_p0_tiny_cnn_quick_s0"
    assert isinstance(build_model(raw, mem_ds), torch.nn.Sequential)
    normed = make_config(method="erm", ratio=0.5, profile="quick", normalize=True,
                         model="plugin_examples:tiny_cnn")
    net = build_model(normed, mem_ds)
    inner_out = net.net((x - net.mean) / net.std)
    assert torch.equal(net(x), inner_out) and net.mean.flatten().tolist() == pytest.approx(
        [0.4914, 0.4822, 0.4465])
    assert normed.run_name.endswith("_tiny_cnn-norm_quick_s0")
    assert pre.mean.flatten().tolist() == pytest.approx([0.4914, 0.4822, 0.4465])


def test_model_flags_that_cannot_apply_are_refused():
    from robustmix.errors import UsageError

    with pytest.raises(UsageError, match="dropout p = 0.1 needs preact_resnet18"):
        make_config(method="dropout", ratio=0.5, profile="quick", model="resnet18")
    with pytest.raises(UsageError, match="sets its own size"):
        make_config(method="erm", ratio=0.5, profile="quick", width=8,
                    model="plugin_examples:tiny_cnn")
    with pytest.raises(UsageError, match="unknown model 'vgg'"):
        make_config(method="erm", ratio=0.5, profile="quick", model="vgg")


# --------------------------------------------------------------------------- plugins


def test_import_path_names_registers_and_parametrises_a_method():
    spec = plugins.resolve_method("plugin_examples:Bootstrap")
    assert (spec.name, spec.label, spec.partner, spec.builtin) == ("bootstrap", "soft bootstrap",
                                                                   "shuffle", False)
    assert M.METHODS["bootstrap"] is spec and spec.mixes and spec.compare
    assert plugins.resolve_method("bootstrap") is spec  # later by its name
    cfg = make_config(method="plugin_examples:Bootstrap", ratio=0.5, profile="quick",
                      method_params={"beta": 1})
    assert cfg.method == "bootstrap" and cfg.method_path == "plugin_examples:Bootstrap"
    assert cfg.method_params == {"beta": 1.0, "mix": True}
    assert cfg.alpha == 4.0  # mixup's tuned α at the quick profile, as for the ablations
    assert cfg.run_name == "cifar10_sym0.5_bootstrap_beta1_mixtrue_a4_p0_quick_s0"
    assert plugins.resolve_method("plugin_examples:Unnamed").name == "unnamed"


def test_entry_point_of_an_installed_package(tmp_path, monkeypatch):
    dist = tmp_path / "mine_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[robustmix.methods]\nmine = plugin_examples:Unnamed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = plugins.resolve_method("mine")
    assert spec.name == "mine" and spec.factory == "plugin_examples:Unnamed"
    assert make_config(method="mine", ratio=0.5, profile="quick").method_path == \
        "plugin_examples:Unnamed"


def test_a_run_of_a_plugin_trains_in_a_process_that_never_named_it(mem_ds):
    cfg = make_config(method="plugin_examples:Bootstrap", ratio=0.5, profile="quick", width=2,
                      epochs=1, train_subset=None, val_n=0)
    del M.METHODS["bootstrap"]  # a resumed run or another worker: only the config is known
    cfg = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    tr = Trainer(cfg, mem_ds, make_labels(cfg, mem_ds), CPU, show_progress=False)
    assert M.METHODS["bootstrap"].factory == "plugin_examples:Bootstrap"
    assert tr.method.beta == 0.95 and tr.method.mix is True
    assert np.isfinite(tr.train_epoch(0)["train_loss"])


def test_report_names_draws_and_orders_methods_it_does_not_know():
    assert M.method_label("gce (q=0.5)") == "GCE (q=0.5)"
    assert M.method_label("someone_elses") == "someone_elses"
    builtin = {M.METHODS[m].color for m in M.BUILTIN_METHODS}
    markers = {M.METHODS[m].marker for m in M.BUILTIN_METHODS}
    for name in ("someone_elses", "gce (q=0.5)", "bootstrap"):
        assert M.method_color(name) not in builtin and M.method_marker(name) not in markers
        assert M.method_color(name) == M.method_color(name)  # stable
    assert M.method_rank("gce (q=0.5)") == M.method_rank("gce") < M.method_rank("someone_elses")


# --------------------------------------------------------------------------- end to end


def tiny_args(extra: list[str]) -> list[str]:
    return [*(SCALE if "--model" in extra else TINY), "--ratio", "0.5", *extra]


def _train_cli(tiny, out: Path, *extra: str) -> None:
    argv = [*tiny_args(list(extra)), "--data", str(tiny.pickles), "--out", str(out), *extra]
    assert run_main(noise.main, argv) == 0


def test_plugin_method_and_model_train_attack_and_reach_the_verdicts(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    _train_cli(tiny, out, "--methods", "erm,mixup,plugin_examples:Bootstrap",
               "--method-param", "beta=0.8", "--model", "plugin_examples:tiny_cnn")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cifar10_sym0.5_bootstrap_beta0.8_mixtrue_a4_p0_tiny_cnn_quick_s0",
                     "cifar10_sym0.5_erm_a0_p0_tiny_cnn_quick_s0",
                     "cifar10_sym0.5_mixup_a4_p0_tiny_cnn_quick_s0"]
    cfg = json.loads((out / names[0] / "config.json").read_text())["train"]
    assert cfg["method"] == "bootstrap" and cfg["method_params"] == {"beta": 0.8, "mix": True}
    assert cfg["method_path"] == "plugin_examples:Bootstrap"
    assert cfg["model"] == "plugin_examples:tiny_cnn" and cfg["width"] == 0
    model, _ = load_model(out / names[0], "last")
    assert isinstance(model, torch.nn.Sequential)
    assert run_main(attack_cli.main, [str(out), "--attacks", "fgsm", *ATTACK_TINY]) == 0
    assert (out / names[0] / "attack.csv").exists()
    rep = tmp_path / "report"
    assert run_main(report.main, [str(out), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    verdicts = pd.read_csv(rep / "table_verdicts.csv")
    other = verdicts[verdicts["family"] == "other methods"]
    claims = set(other["claim"])
    assert "soft bootstrap has lower test error than ERM" in claims
    assert "soft bootstrap has lower test error than mixup" in claims
    assert any(c.startswith("soft bootstrap keeps more accuracy than ERM under white-box FGSM")
               for c in claims)
    assert "### Other methods" in md and "model plugin_examples:tiny_cnn" in md
    noise_table = pd.read_csv(rep / "table_noise.csv")
    assert set(noise_table["method"]) == {"erm", "mixup", "bootstrap"}


def test_plugin_through_a_study_file_with_a_parameter_sweep(tmp_path, study_toml, capsys):
    path = study_toml(name="mine", file="mine.toml", dataset=False,
                      train={"seeds": None, "models": '["preact_resnet18", "resnet18"]'},
                      methods='[methods.erm]\n[methods.gce]\nparams = { q = 0.5 }\n'
                              '[methods."plugin_examples:Bootstrap"]\n'
                              'params = { beta = [0.8, 0.9], mix = false }',
                      attack='attacks = ["fgsm"]\neps = [0, 8]\nn = 20')
    assert run_main(study.main, [str(path), "--quiet"]) == 0, capsys.readouterr().err
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 8
    assert "cifar10_sym0.5_bootstrap_beta0.9_mixfalse_a4_p0_resnet18_quick_s0" in runs
    assert "cifar10_sym0.5_gce_q0.5_a0_p0_quick_s0" in runs
    t = pd.read_csv(tmp_path / "report" / "table_noise.csv")
    assert set(t["method"]) == {"erm", "gce", "bootstrap (beta=0.8, mix=False)",
                                "bootstrap (beta=0.9, mix=False)"}
    assert set(t["condition"]) == {"preact_resnet18", "resnet18"}
    v = pd.read_csv(tmp_path / "report" / "table_verdicts.csv")
    # The plugin's label, with the parameters that tell its two settings apart.
    assert "soft bootstrap (beta=0.9, mix=False) has lower test error than ERM" in set(v["claim"])
    assert "GCE has lower test error than ERM" in set(v["claim"])
    assert set(v.loc[v["claim"] == "GCE has lower test error than ERM", "condition"]) == \
        {"preact_resnet18", "resnet18"}


def test_attack_names_a_model_factory_that_can_no_longer_be_imported(tiny, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(TESTS / "plugin_examples.py", lib / "gone_models.py")
    out = tmp_path / "runs"
    e = subprocess_env()
    e["PYTHONPATH"] = os.pathsep.join([str(lib), e["PYTHONPATH"]])
    r = subprocess.run([sys.executable, "-m", "robustmix.noise", *SCALE, "--methods", "erm",
                        "--model", "gone_models:tiny_cnn", "--data", str(tiny.pickles),
                        "--out", str(out)], env=e, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (lib / "gone_models.py").unlink()
    before = snapshot(out)
    r = subprocess.run([sys.executable, "-m", "robustmix.attack", str(out), "--attacks", "fgsm",
                        *ATTACK_TINY], env=e, capture_output=True, text=True, timeout=600)
    one_line_error(r.returncode, r.stderr, "gone_models:tiny_cnn", "no module named 'gone_models'")
    assert snapshot(out) == before


# --------------------------------------------------------------------------- bad input


BAD_CLI = {
    "no such module": (["--methods", "erm,nosuchpkg.mod:X"], ["nosuchpkg.mod:X", "no module"]),
    "no such class": (["--methods", "plugin_examples:Nothing"],
                      ["plugin_examples:Nothing", "has no 'Nothing'"]),
    "not a method": (["--methods", "plugin_examples:tiny_cnn"],
                     ["plugin_examples:tiny_cnn", "is not a method class"]),
    "taken name": (["--methods", "plugin_examples:Mixup"], ["plugin_examples:Mixup", "'mixup'"]),
    "malformed path": (["--methods", "plugin_examples:"], ["not an import path"]),
    "unknown parameter": (["--methods", "erm,gce", "--method-param", "z=1"],
                          ["'z'", "gce: q"]),
    "unknown parameter of one": (["--methods", "gce", "--method-param", "gce.alpha=1"],
                                 ["method gce: unknown parameter 'alpha'", "it takes q"]),
    "parameter of a method not named": (["--methods", "gce", "--method-param", "sce.A=-3"],
                                        ["'sce' is not in --methods"]),
    "bad parameter value": (["--methods", "gce", "--method-param", "q=abc"],
                            ["cannot read 'abc' as a float"]),
    "value the method refuses": (["--methods", "gce", "--method-param", "q=2"],
                                 ["method gce", "0 < q <= 1, got 2.0"]),
    "plugin refuses a value": (["--methods", "plugin_examples:Picky", "--method-param", "k=0"],
                               ["method picky", "k must be at least 1"]),
    "targets of the wrong shape": (["--methods", "plugin_examples:BadShape"],
                                   ["badshape (plugin_examples:BadShape)", "targets of shape (4, 3)",
                                    "(4, 10)"]),
    "non-finite loss": (["--methods", "plugin_examples:NanLoss"],
                        ["nanloss (plugin_examples:NanLoss)", "non-finite loss"]),
    "model that refuses the images": (["--methods", "erm", "--model", "plugin_examples:mlp_28"],
                                      ["model plugin_examples:mlp_28",
                                       "does not take the dataset's 3x32x32 images"]),
    "model factory missing": (["--methods", "erm", "--model", "nosuchpkg:net"],
                              ["model factory 'nosuchpkg:net'", "no module"]),
    "factory returns no module": (["--methods", "erm", "--model", "plugin_examples:not_a_module"],
                                  ["plugin_examples:not_a_module", "not a torch.nn.Module"]),
}


@pytest.mark.parametrize("case", BAD_CLI)
def test_bad_plugin_input_is_one_line_and_writes_nothing(tiny, tmp_path, capsys, case):
    extra, fragments = BAD_CLI[case]
    argv = [*tiny_args(extra), "--data", str(tiny.pickles), "--out", str(tmp_path / "runs")]
    capsys.readouterr()
    rc = run_main(noise.main, argv)
    one_line_error(rc, capsys.readouterr().err, *fragments)
    assert list(tmp_path.iterdir()) == []


# A plugin that cannot be imported in a fresh process and one that fails while training; every
# case, these included, runs in this process above (a subprocess costs seconds of torch import).
@pytest.mark.parametrize("case", ["no such module", "targets of the wrong shape"])
def test_bad_plugin_input_through_the_real_entry_point(tiny, tmp_path, case):
    extra, fragments = BAD_CLI[case]
    r = subprocess.run([sys.executable, "-m", "robustmix.noise", *tiny_args(extra),
                        "--data", str(tiny.pickles), "--out", str(tmp_path / "runs")],
                       cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True,
                       timeout=600)
    one_line_error(r.returncode, r.stderr, *fragments)
    assert list(tmp_path.iterdir()) == []


BAD_STUDY = {
    "unknown parameter": ('[methods.gce]\nparams = { z = 1 }', ["methods.gce", "'z'"]),
    "wrong type": ('[methods.gce]\nparams = { q = "x" }', ["parameter 'q' must be a float"]),
    "no such method": ('[methods."nosuchpkg:M"]', ["methods.nosuchpkg:M", "no module"]),
    "models and model": ('[methods.erm]\n', ["'train.model' or 'train.models'"]),
}


@pytest.mark.parametrize("case", BAD_STUDY)
def test_bad_plugin_keys_in_a_study_file(tiny, tmp_path, capsys, case):
    methods, fragments = BAD_STUDY[case]
    train_extra = 'model = "resnet18"\nmodels = ["resnet18"]\n' if case == "models and model" else ""
    path = tmp_path / "bad.toml"
    path.write_text(f'out = "{tmp_path / "runs"}"\nreport = "{tmp_path / "rep"}"\n[data]\n'
                    f'path = "{tiny.pickles}"\n[train]\nepochs = 1\n{train_extra}{methods}\n')
    capsys.readouterr()
    rc = run_main(study.main, [str(path), "--check"])
    one_line_error(rc, capsys.readouterr().err, *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


# --------------------------------------------------------------------------- README


def readme_example() -> tuple[str, str, list[str]]:
    """(file name, Python source, shell commands) of docs/plugins.md's "A method of your own"
    (README links to it)."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text.split("## A method of your own", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    (source,) = [b for lang, b in blocks if lang == "python"]
    (shell,) = [b for lang, b in blocks if lang == "bash"]
    name = re.match(r"# (\S+\.py)\n", source).group(1)
    return name, source, [line for line in shell.splitlines() if line.strip()]


def test_readme_example_runs_as_written(tiny, tmp_path):
    name, source, commands = readme_example()
    assert 15 <= len(source.splitlines()) + len(commands) <= 30  # "about 20 lines"
    (tmp_path / name).write_text(source)
    # Only the scale changes: tiny data, one seed, one epoch, a few test images.
    scale = {"robustmix.noise": [*TINY, "--seeds", "0", "--data", str(tiny.pickles)],
             "robustmix.attack": ATTACK_TINY, "robustmix.report": []}
    e = subprocess_env()
    for line in commands:
        argv = shlex.split(line)
        assert argv[:2] == ["python", "-m"], line
        r = subprocess.run([sys.executable, *argv[1:], *scale[argv[2]]], cwd=tmp_path, env=e,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (line, r.stdout[-2000:], r.stderr[-2000:])
    runs = sorted(p.name for p in (tmp_path / "runs" / "mine").iterdir())
    assert "cifar10_sym0.5_bootstrap_beta0.8_a0_p0_quick_s0" in runs and len(runs) == 3
    v = pd.read_csv(tmp_path / "reports" / "mine" / "table_verdicts.csv")
    assert {"bootstrap has lower test error than ERM",
            "bootstrap has lower test error than mixup"} <= set(v["claim"])
    assert any(c.startswith("bootstrap keeps more accuracy than mixup under white-box PGD")
               for c in v["claim"])


def test_runs_made_before_these_config_keys_are_still_found_finished(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    _train_cli(tiny, out, "--methods", "erm")
    (run,) = out.iterdir()
    cfg = json.loads((run / "config.json").read_text())
    for key in ("method_params", "method_path", "model", "normalize"):
        del cfg["train"][key]  # as an earlier robustmix wrote it
    (run / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    _train_cli(tiny, out, "--methods", "erm")
    assert "finished earlier" in capsys.readouterr().out
    model, loaded = load_model(run, "last")
    assert loaded.model == "preact_resnet18" and loaded.normalize
