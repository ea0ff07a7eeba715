"""Methods and models from outside robustmix: found by import path or entry point, checked,
their parameters parsed, and built for a run.

A method is named by a built-in name (erm, mixup, gce, ...), by an import path
`package.module:Class` to a subclass of `api.Method`, or by the name of an entry point of the
group `robustmix.methods` (declared by an installed package, as pytest finds its plugins). A
model is a registered name (`MODELS`) or an import path to a factory
`(num_classes, in_channels) -> torch.nn.Module` taking images in [0, 1].

Every error here is a UsageError naming the plugin: one line, exit status 2. Importing this
module imports no torch (the plugin's own module may).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from .api import Method
from .methods import (
    BUILTIN_METHODS,
    METHODS,
    MIXUP_ALPHA,
    PARTNER_RULES,
    MethodSpec,
    method_color,
    method_marker,
    register,
)

ENTRY_POINT_GROUP = "robustmix.methods"
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")  # no "_": run names separate fields with it
STRING_VALUE = re.compile(r"[A-Za-z0-9.+-]{1,32}\Z")  # spelt as is in run names

# Registered models (built by robustmix.training.models.make_model), as --help describes them.
DEFAULT_MODEL = "preact_resnet18"
MODELS = {
    "preact_resnet18": "PreAct ResNet-18 of the mixup paper (width, dropout; the default)",
    "resnet18": "torchvision's ResNet-18 with a 3x3 stem and no max-pool for 32x32 inputs "
                "(width: 64 is torchvision's)",
    "fastnet": "FastNet, a small VGG-like network after airbench94: whitened 2x2 stem, three "
               "conv blocks of widths (w, 4w, 4w), dropout between each block's convolutions "
               "(width 64: airbench94's; the fast profiles' network)",
}
# The registered models with dropout layers (the dropout methods train on these).
DROPOUT_MODELS = ("preact_resnet18", "fastnet")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def load_object(path: str, what: str) -> Any:
    """The object an import path `package.module:name` names; UsageError naming `what` and the
    path when it is malformed, cannot be imported or has no such name."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr or any(not p.isidentifier() for p in attr.split(".")):
        raise UsageError(f"{what} '{path}' is not an import path of the form package.module:Name")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise UsageError(f"{what} '{path}': no module named '{e.name}' (is it installed, or "
                             "on PYTHONPATH / in the current folder?)") from None
        raise UsageError(f"{what} '{path}': importing {module} failed: {_first_line(e)}") from None
    except Exception as e:  # a plugin's own import-time error: report it, never a traceback
        raise UsageError(f"{what} '{path}': importing {module} failed: {_first_line(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{what} '{path}': module {module} has no '{attr}'")
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- methods


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points  # only when a name is not built in: --help is fast

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def spec_from_class(cls: Any, path: str, default_name: str | None = None) -> MethodSpec:
    """The table row of a method class from outside robustmix (not yet registered)."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UsageError(f"method '{path}' is not a method class: it must subclass "
                         "robustmix.training.api.Method")
    name = cls.__dict__.get("name") or default_name or cls.__name__.lower()
    if not isinstance(name, str) or not NAME.match(name):
        raise UsageError(f"method '{path}': its name {name!r} must match [a-z][a-z0-9_]* (set the "
                         "class attribute `name`)")
    if name in BUILTIN_METHODS:
        raise UsageError(f"method '{path}': its name '{name}' is robustmix's own method; set the "
                         "class attribute `name` to another one")
    if cls.partner not in PARTNER_RULES:
        raise UsageError(f"method '{path}': partner {cls.partner!r} is not one of "
                         f"{', '.join(PARTNER_RULES)}")
    params = cls.params
    if not isinstance(params, Mapping):
        raise UsageError(f"method '{path}': `params` must be a dict of names and default values")
    for key, value in params.items():
        if not (isinstance(key, str) and PARAM_NAME.match(key)):
            raise UsageError(f"method '{path}': parameter name {key!r} must be letters and digits "
                             "(run names use '_' between fields)")
        _check_value(path, key, value, value)
    mixes = cls.partner != "none"
    return MethodSpec(
        name=name, label=cls.label or name, color=cls.color or method_color(name),
        marker=cls.marker or method_marker(name), partner=cls.partner, target="method",
        help=cls.help or f"from {path}", alpha=MIXUP_ALPHA if mixes else (0.0,) * 4,
        factory=path, params=tuple(params.items()), compare=True, builtin=False)


def resolve_method(ref: str) -> MethodSpec:
    """The table row of a method named by a built-in or registered name, an import path or an
    entry point; methods from outside robustmix are registered in `methods.METHODS`."""
    if ref in METHODS:
        return METHODS[ref]
    if ":" in ref:
        return register(spec_from_class(load_object(ref, "method"), ref))
    eps = _entry_points()
    if ref in eps:
        ep = eps[ref]
        try:
            cls = ep.load()
        except Exception as e:
            raise UsageError(f"method '{ref}' (entry point {ep.value}): loading it failed: "
                             f"{_first_line(e)}") from None
        return register(spec_from_class(cls, ep.value, default_name=ref))
    choices = [*BUILTIN_METHODS, *sorted(eps)]
    raise UsageError(f"unknown method '{ref}' (choose from {', '.join(choices)}, or give an "
                     "import path package.module:Class)")


def spec_of(cfg) -> MethodSpec:
    """The method of a run's config, registering it again from its recorded import path if this
    process has not met it yet (a resumed run, another worker)."""
    spec = METHODS.get(cfg.method)
    path = getattr(cfg, "method_path", "")
    if spec is not None and (not path or spec.factory == path):
        return spec
    if not path:
        raise UsageError(f"unknown method '{cfg.method}'")
    spec = spec_from_class(load_object(path, "method"), path, default_name=cfg.method)
    if spec.name != cfg.method:
        raise UsageError(f"method '{path}' is now named '{spec.name}', not '{cfg.method}' as "
                         "the run records")
    return register(spec)


def _check_value(where: str, key: str, value: Any, default: Any) -> Any:
    """value as the type of default (an int is taken for a float); UsageError otherwise."""
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str) and bool(STRING_VALUE.match(value))
    else:
        raise UsageError(f"method '{where}': parameter '{key}' has a default of type "
                         f"{kind.__name__}; use a number, a boolean or a short string")
    if not ok:
        want = ("a string of letters, digits and . + - (up to 32)" if kind is str
                else f"a {kind.__name__}")
        raise UsageError(f"method '{where}': parameter '{key}' must be {want}, got {value!r}")
    return value


def parse_value(text: str, default: Any) -> Any:
    """A command-line value (--method-param key=value) as the type of the parameter's default."""
    kind = type(default)
    try:
        if kind is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise UsageError(f"cannot read '{text}' as a {kind.__name__}") from None
    return text


def resolve_params(spec: MethodSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of the method, given values (checked) over its defaults, in its order."""
    defaults = spec.defaults
    unknown = [k for k in given if k not in defaults]
    if unknown:
        takes = f"it takes {', '.join(defaults)}" if defaults else "it takes none"
        raise UsageError(f"method {spec.name}: unknown parameter '{unknown[0]}' ({takes})")
    out = {k: _check_value(spec.name, k, given[k], d) if k in given else d
           for k, d in defaults.items()}
    if spec.factory:  # the class checks its own values (a ValueError names the bad one)
        make_method(spec, out)
    return out


def make_method(spec: MethodSpec, params: Mapping[str, Any], smoothing: float = 0.0) -> Method:
    """An instance of the method for one run."""
    if not spec.factory:
        from .mixing import MixingMethod

        return MixingMethod(spec.target, smoothing)
    cls = load_object(spec.factory, "method")
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise UsageError(f"method {spec.name} ({spec.factory}): {_first_line(e)}") from None


def method_for(cfg) -> Method:
    """The method instance a run trains with (its config's method, parameters, smoothing)."""
    return make_method(spec_of(cfg), cfg.method_params, cfg.smoothing)


# --------------------------------------------------------------------------- models


def is_builtin_model(ref: str) -> bool:
    return ref in MODELS


def check_model(ref: str) -> None:
    """A registered model name, or an import path to a callable (imported now)."""
    if ref in MODELS:
        return
    if ":" not in ref:
        raise UsageError(f"unknown model '{ref}' (choose from {', '.join(MODELS)}, or give an "
                         "import path package.module:factory)")
    if not callable(load_object(ref, "model factory")):
        raise UsageError(f"model factory '{ref}' is not callable: it must be a function "
                         "(num_classes, in_channels) -> torch.nn.Module")


def model_tag(ref: str, normalize: bool) -> str:
    """How a run name spells a model other than the default: its name (the factory's, for an
    import path), '-norm' where robustmix normalises a factory's inputs, '-raw' where it does
    not normalise a built-in's."""
    name = ref.rpartition(":")[2].rpartition(".")[2] if ":" in ref else ref
    if ref in MODELS:
        return name + ("" if normalize else "-raw")
    return name + ("-norm" if normalize else "")
