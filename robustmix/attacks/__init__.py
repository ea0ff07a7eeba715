"""Adversarial attacks on models that take images in [0, 1]: one small base, one module per
attack family, a registry of names, and the sweep that measures accuracy under attack."""
