"""robustmix: how much does a training method protect a classifier against label noise and
adversarial inputs? A reproduction and extension of Zhang et al., "mixup: Beyond Empirical Risk
Minimization" (ICLR 2018)."""

__version__ = "0.1.0"
