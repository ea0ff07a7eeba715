"""The keys a study file may hold, with their types, and the checks every section shares: an
unknown key or a wrong type is refused naming the key as the file spells it. Imports no torch."""

from __future__ import annotations

from ..errors import UsageError

# The schema: every key a study file may hold, with its type. Anything else is rejected.
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "": {"name": str, "description": str, "out": str, "report": str, "keep_runs": bool,
         "data": dict,
         "train": dict, "methods": dict, "attack": dict, "executor": dict},
    "data": {"dataset": str, "path": str},
    "train": {"profile": str, "noise": (str, list), "ratios": list, "seeds": list, "noise_seed": int,
              "noise_seeds": list, "val_n": int, "hparams": str,
              "epochs": int, "width": int, "train_subset": int, "precision": str, "device": str,
              "smoothing": float, "k": int, "model": str, "models": list, "normalize": bool},
    # [methods.NAME]: NAME is a built-in method, an entry point of robustmix.methods or an
    # import path ("package.module:Class"); params holds the method's own parameters (a list
    # value trains one run per value).
    "method": {"alpha": list, "dropout": list, "params": dict},
    # an entry of train.noise given as a table (a plain string names a source with defaults)
    "noise": {"source": str, "labels": str, "file": str, "ratios": list},
    "attack": {"attacks": list, "eps": list, "steps": int, "step_size": float, "n": int,
               "checkpoint": str, "batch": int, "source": dict, "sources": dict,
               "restarts": int, "queries": int, "seed": int, "precision": str,
               "allow_twin": bool, "eps_of": dict, "norm": str},
    "attack.source": {"ratio": float, "method": str, "seed": int, "alpha": float, "dropout": float},
    # [attack.sources]: noise ratio (a string key, e.g. "0.5") -> the run its black-box
    # examples are crafted on, trained at that ratio (by the study, if it is not one of its runs)
    "attack.sources": {"method": str, "seed": int, "alpha": float, "dropout": float,
                       "noise_seed": int},
    # what each Ray task asks for (--executor ray; the local executor ignores it)
    "executor": {"gpus_per_run": float, "cpus_per_run": float, "max_retries": int},
}

def check_keys(table: dict, section: str, prefix: str) -> None:
    """Reject unknown keys and wrong types; the message names the key as the file spells it."""
    schema = SCHEMA[section]
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in schema:
            raise UsageError(f"unknown key '{full}' (allowed: {', '.join(schema)})")
        want = schema[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            kind = " or ".join(t.__name__ for t in want) if isinstance(want, tuple) else want.__name__
            raise UsageError(f"key '{full}' must be a {kind}, got {type(value).__name__} {value!r}")


def numbers(value: list, key: str) -> list[float]:
    if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise UsageError(f"key '{key}' must be a non-empty list of numbers, got {value!r}")
    return [float(v) for v in value]


def ints(value: list, key: str) -> list[int]:
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UsageError(f"key '{key}' must be a non-empty list of integers, got {value!r}")
    return list(value)
