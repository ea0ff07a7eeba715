"""robustmix: how much does a training method protect a classifier against label noise and
adversarial inputs? A reproduction and extension of Zhang et al., "mixup: Beyond Empirical Risk
Minimization" (ICLR 2018)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # robustmix.evaluate(model, x, y) without importing torch for `python -m robustmix`.
    if name in ("evaluate", "Evaluation"):
        from .evaluation import external

        return getattr(external, name)
    raise AttributeError(f"module 'robustmix' has no attribute {name!r}")
