"""Common corruptions in the style of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019), offline.

The 15 corruptions x 5 severities of the benchmark are generated on the fly from the test
images (uint8 N x 32 x 32 x 3), deterministically from a seed, and cached on disk like the
decoded dataset (keyed by a fingerprint of the images, corruption, severity, n, seed and the
constants). `corruption_accuracy` scores a model on them as a tidy table with Wilson intervals
over the test images; `mce` turns a model's and a baseline's (ERM's) tables into the paper's
corruption errors: CE_c = sum_s E_{s,c}^model / sum_s E_{s,c}^baseline, mCE = mean_c CE_c, and the
relative CE_c = sum_s (E_{s,c}^model - E_clean^model) / sum_s (E_{s,c}^baseline - E_clean^baseline).

Package. The corruptions come from `imagecorruptions-imaug` (1.1.5, the maintained fork of
bethgelab's `imagecorruptions`; optional extra `corruptions`). Checked on numpy 2.4, scikit-image
0.26 and setuptools 84: bethgelab's `imagecorruptions` 1.1.2 (2020, unmaintained) does not import
at all (it imports `pkg_resources`, which setuptools no longer ships), and with an old setuptools
on the path glass_blur (and gaussian_blur) fail because scikit-image removed `gaussian`'s
`multichannel` argument and fog fails because numpy 2 removed `np.float_`. The fork passes
`channel_axis`, uses float32 and importlib.resources, and runs all 15 on 32 x 32 images.

Constants: what matches CIFAR-10-C and what does not. The package's constants are ImageNet-C's
(for 224-pixel images) and it does not scale them for 32 x 32: only fog (fractal size), frost
(texture resize) and elastic (smoothing) depend on the image size, while e.g. defocus_blur's disk
of radius 3-10 pixels and motion_blur's radius 10-20 wipe a 32 x 32 image out, and its noise
levels are ImageNet's. So `constants="cifar10-c"` (the default) applies CIFAR-10-C's constants,
those of Hendrycks' `make_cifar_c.py` (hendrycks/robustness, ImageNet-C/create_c/, read at commit
ca36008; every constant of the 15 checked against it on 2026-12-02, which corrected
motion_blur's radii and sigmas), with the package's helpers (disk kernel, plasma fractal, frost
textures, numpy motion blur). Known differences from the released CIFAR-10-C arrays:
  * motion_blur and snow: the original blurs with ImageMagick (Wand); the package's numpy
    reimplementation of that motion blur (same radius, sigma, angle) is used instead;
  * fog uses the package's float32 plasma fractal (the original float64);
  * glass_blur's pixel shuffle is the original loop in plain Python with its random offsets
    drawn in one call (the package compiles it with numba, 5-25 s per process);
  * frost draws one of the first 5 textures as the original (randint(5)) from the package's
    copies, resized by 0.2 as make_cifar_c.py does;
  * random draws: the same distributions, but from numpy's global RNG seeded per image (see
    below), so no image equals its CIFAR-10-C counterpart; nor could it, because:
  * the images. CIFAR-10-C corrupts the original PNG-exact test set; robustmix's shared offline
    copy (cifar10-jpeg.tar.gz) is JPEG quality 75, itself a corruption, stronger than CIFAR-10-C's
    jpeg_compression severity 1 (quality 80), so "clean" accuracy on it is already corrupted
    accuracy and every corruption here is applied on top of it.
`constants="package"` runs the package's own functions with their ImageNet-C constants, as
they are, for comparison. Accuracies and mCE here are comparable between models scored with
the same constants, images and seed, not with published CIFAR-10-C numbers to the decimal.

Determinism. The package draws from numpy's global RNG (and, for glass_blur and impulse_noise,
from a seed argument that otherwise defaults to fresh OS entropy). Image i of a
(corruption, severity, seed) gets its own 32-bit seed from numpy's SeedSequence((seed,
corruption index, severity)): the global RNG is seeded with it before the image (and it is
passed to glass_blur and impulse_noise), and the caller's global RNG state is restored
afterwards. An image's corruption thus depends on its position, not on n: the first 100 of
1,000 images are those of n = 100. (With constants="package", glass_blur's numba shuffle
compiles once per process, 5-25 s.)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..errors import UsageError

# The 15 corruptions of the benchmark, in the paper's order (noise, blur, weather, digital).
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
               "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
               "elastic_transform", "pixelate", "jpeg_compression")
# Those that draw random numbers (the others are deterministic functions of the image).
RANDOM = frozenset({"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur",
                    "snow", "frost", "fog", "elastic_transform"})
SEVERITIES = (1, 2, 3, 4, 5)
CONSTANTS = ("cifar10-c", "package")
PACKAGE = "imagecorruptions-imaug"
EXTRA = "corruptions"
CLEAN = "clean"  # the corruption name of the uncorrupted row (severity 0) of a table
# Bump when the images generated for the same key change: it is part of the cache key.
GENERATOR_VERSION = 2  # 2: motion_blur's CIFAR-10-C constants corrected
# ece (15 equal-width bins) and nll: the calibration of the same predictions
# (evaluation/calibration.py), point values: one model's interval over images is the accuracy's
# Wilson interval; a study's intervals over training seeds come from the report.
COLUMNS = ["corruption", "severity", "n", "correct", "accuracy", "ci_low", "ci_high", "ece",
           "nll", "seed", "constants", "package", "images", "seconds"]

# ///// the package /////


@lru_cache(maxsize=1)
def package() -> tuple[object, str]:
    """(imagecorruptions.corruptions module of the maintained fork, its version); a one-line
    UsageError naming the extra when it is missing or shadowed by the unmaintained original."""
    from importlib.metadata import PackageNotFoundError, version

    hint = f'pip install -e ".[{EXTRA}]"'
    try:
        ver = version(PACKAGE)
    except PackageNotFoundError:
        raise UsageError(f"common corruptions need the optional package {PACKAGE}: {hint}") from None
    try:
        version("imagecorruptions")
    except PackageNotFoundError:
        pass
    else:  # both install the module `imagecorruptions`: which one is imported is left to chance
        raise UsageError(f"the unmaintained package imagecorruptions is installed beside {PACKAGE} "
                         f"and shares its module: pip uninstall imagecorruptions, then {hint}")
    try:
        from imagecorruptions import corruptions as ic
    except Exception as e:  # a broken dependency (opencv, numba, scikit-image)
        raise UsageError(f"cannot import {PACKAGE} {ver}: {type(e).__name__}: {e}; {hint}") from None
    return ic, ver


def package_label() -> str:
    return f"{PACKAGE} {package()[1]}"


# ///// CIFAR-10-C's corruptions (constants of make_cifar_c.py, from memory: see above) /////

SIZE = 32


def _clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """make_cifar_c.py's clipped_zoom: the central crop zoomed back to full size, trimmed
    centrally (the package's version trims at the top left)."""
    from scipy.ndimage import zoom as scizoom

    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def _gaussian(x: np.ndarray, sigma: float, **kw) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=sigma, **kw)


def gaussian_noise(x, severity, seed):
    c = [0.04, 0.06, .08, .09, .10][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + np.random.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, seed):
    c = [500, 250, 100, 75, 50][severity - 1]
    x = np.array(x) / 255.
    return np.clip(np.random.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x, severity, seed):
    import skimage.util

    c = [.01, .02, .03, .05, .07][severity - 1]
    x = skimage.util.random_noise(np.array(x) / 255., mode="s&p", rng=seed, amount=c)
    return np.clip(x, 0, 1) * 255


def defocus_blur(x, severity, seed):
    import cv2

    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    x = np.array(x) / 255.
    kernel = package()[0].disk(radius=c[0], alias_blur=c[1])
    channels = np.stack([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)], axis=2)
    return np.clip(channels, 0, 1) * 255


def glass_blur(x, severity, seed):
    # sigma, max_delta, iterations
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(_gaussian(np.array(x) / 255., c[0], channel_axis=-1) * 255)
    x = _shuffle_pixels(x, c[1], c[2])
    return np.clip(_gaussian(x / 255., c[0], channel_axis=-1), 0, 1) * 255


def _shuffle_pixels(x: np.ndarray, delta: int, iterations: int) -> np.ndarray:
    """make_cifar_c.py's local pixel shuffle, in plain Python on a list of pixels. Its "swap"
    `x[h, w], x[h', w'] = x[h', w'], x[h, w]` of two numpy views copies (the second assignment
    reads the pixel the first just overwrote), so each step is x[h, w] = x[h + dy, w + dx]; the
    package's numba version does the same but compiles for 5-25 s in each process."""
    hw = x.shape[0] * x.shape[1]
    px = [tuple(p) for p in x.reshape(hw, -1).tolist()]
    span = range(SIZE - delta, delta, -1)
    steps = iterations * len(span) ** 2
    d = np.random.randint(-delta, delta, size=(steps, 2)).tolist()  # (dx, dy) per step
    k = 0
    for _ in range(iterations):
        for h in span:
            for w in span:
                dx, dy = d[k]
                k += 1
                px[h * SIZE + w] = px[(h + dy) * SIZE + w + dx]
    return np.array(px, dtype=np.uint8).reshape(x.shape)


def motion_blur(x, severity, seed):
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    angle = np.random.uniform(-45, 45)
    # ImageMagick's motion blur in the original; the package's numpy version of it here
    x = package()[0]._motion_blur(np.array(x), radius=c[0], sigma=c[1], angle=angle)
    return np.clip(x, 0, 255)


def zoom_blur(x, severity, seed):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += _clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def snow(x, severity, seed):
    import cv2

    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95),
         (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    layer = np.random.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer[..., np.newaxis], c[2])
    layer[layer < c[3]] = 0
    layer = np.clip(layer.squeeze(), 0, 1)
    # ImageMagick's motion blur of the (8-bit) snow layer in the original
    layer = package()[0]._motion_blur(np.round(layer * 255).astype(np.uint8), radius=c[4],
                                      sigma=c[5], angle=np.random.uniform(-135, -45))
    layer = (np.round(np.clip(layer, 0, 255)).astype(np.uint8) / 255.)[..., np.newaxis]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(SIZE, SIZE, 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


@lru_cache(maxsize=1)
def _frost_textures() -> tuple[np.ndarray, ...]:
    """The first five of the package's frost textures (BGR), resized by 0.2 as for CIFAR-10-C."""
    import importlib.resources

    import cv2

    out = []
    for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"):
        ref = importlib.resources.files("imagecorruptions") / "frost" / name
        with importlib.resources.as_file(ref) as path:
            img = cv2.imread(str(path))
        if img is None:
            raise UsageError(f"{PACKAGE} lacks its frost texture {name}; reinstall it")
        out.append(cv2.resize(img, (0, 0), fx=0.2, fy=0.2))
    return tuple(out)


def frost(x, severity, seed):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    tex = _frost_textures()[np.random.randint(5)]
    x0, y0 = np.random.randint(0, tex.shape[0] - SIZE), np.random.randint(0, tex.shape[1] - SIZE)
    tex = tex[x0:x0 + SIZE, y0:y0 + SIZE][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(x) + c[1] * tex, 0, 255)


def fog(x, severity, seed):
    c = [(.2, 3), (.5, 3), (.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * package()[0].plasma_fractal(mapsize=SIZE, wibbledecay=c[1])[:SIZE, :SIZE][
        ..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x, severity, seed):
    import skimage.color

    c = [.05, .1, .15, .2, .3][severity - 1]
    x = skimage.color.rgb2hsv(np.array(x) / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(skimage.color.hsv2rgb(x), 0, 1) * 255


def contrast(x, severity, seed):
    c = [.75, .5, .4, .3, 0.15][severity - 1]
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x, severity, seed):
    import cv2
    from scipy.ndimage import map_coordinates

    s = SIZE  # (alpha, sigma, affine jitter), in pixels
    c = [(s * 0, s * 0, s * 0.08), (s * 0.05, s * 0.2, s * 0.07), (s * 0.08, s * 0.06, s * 0.06),
         (s * 0.1, s * 0.04, s * 0.05), (s * 0.1, s * 0.03, s * 0.03)][severity - 1]
    image = np.array(x, dtype=np.float32) / 255.
    shape = image.shape
    size = shape[:2]
    # random affine
    center = np.float32(size) // 2
    square = min(size) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square],
                       center - square])
    pts2 = pts1 + np.random.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, m, size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(np.random.uniform(-1, 1, size=size), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)[..., np.newaxis]
    dy = (_gaussian(np.random.uniform(-1, 1, size=size), c[1], mode="reflect", truncate=3)
          * c[0]).astype(np.float32)[..., np.newaxis]
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    idx = (np.reshape(gy + dy, (-1, 1)), np.reshape(gx + dx, (-1, 1)), np.reshape(gz, (-1, 1)))
    return np.clip(map_coordinates(image, idx, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def pixelate(x, severity, seed):
    from PIL import Image

    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    img = Image.fromarray(np.asarray(x))
    img = img.resize((int(SIZE * c), int(SIZE * c)), Image.BOX)
    return img.resize((SIZE, SIZE), Image.BOX)  # the package upsamples with NEAREST


def jpeg_compression(x, severity, seed):
    from PIL import Image

    c = [80, 65, 58, 50, 40][severity - 1]
    buf = BytesIO()
    Image.fromarray(np.asarray(x)).save(buf, "JPEG", quality=c)
    return Image.open(buf)


CIFAR10_C: dict[str, Callable] = {name: globals()[name] for name in CORRUPTIONS}


def _package_function(name: str) -> Callable:
    """The package's own corruption (ImageNet-C constants), seeded where it takes a seed."""

    def run(x, severity, seed):
        kw = {"seed": seed} if name in ("glass_blur", "impulse_noise") else {}
        return package()[0].__dict__[name](_pil(x), severity, **kw)

    return run


def _pil(x):
    from PIL import Image

    return Image.fromarray(np.asarray(x))


# ///// generation, seeding, checks /////


def check_request(corruptions: Sequence[str], severities: Sequence[int],
                  constants: str = "cifar10-c") -> None:
    """One-line UsageErrors for an unknown corruption, severity or set of constants."""
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    if unknown or not len(corruptions):
        raise UsageError(f"unknown corruption {', '.join(map(str, unknown)) or '(none)'} "
                         f"(choose from {', '.join(CORRUPTIONS)})")
    bad = [s for s in severities if isinstance(s, bool) or not isinstance(s, int | np.integer)
           or s not in SEVERITIES]
    if bad or not len(severities):
        raise UsageError(f"unknown severity {', '.join(map(str, bad)) or '(none)'} "
                         f"(choose from {', '.join(map(str, SEVERITIES))})")
    if constants not in CONSTANTS:
        raise UsageError(f"unknown corruption constants '{constants}' "
                         f"(choose from {', '.join(CONSTANTS)})")


def check_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (SIZE, SIZE, 3) or not len(x):
        raise UsageError(f"common corruptions take uint8 N x {SIZE} x {SIZE} x 3 images (CIFAR-10), "
                         f"got {x.shape} {x.dtype}")
    return x


def image_seeds(seed: int, corruption: str, severity: int, n: int) -> np.ndarray:
    """The 32-bit seed of each of n images (a prefix of those of any larger n)."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(f"the corruption seed must be 0 or a positive integer, got {seed}")
    ss = np.random.SeedSequence((int(seed), CORRUPTIONS.index(corruption), int(severity)))
    return ss.generate_state(n, dtype=np.uint32)


def corrupt_images(x: np.ndarray, corruption: str, severity: int, seed: int = 0,
                   constants: str = "cifar10-c") -> np.ndarray:
    """The images x (uint8 N x 32 x 32 x 3) under one corruption at one severity: uint8, same
    shape; deterministic from seed; numpy's global RNG state is as it was afterwards."""
    check_request([corruption], [severity], constants)
    x = check_images(x)
    package()
    fn = CIFAR10_C[corruption] if constants == "cifar10-c" else _package_function(corruption)
    seeds = image_seeds(seed, corruption, severity, len(x))
    out = np.empty_like(x)
    state = np.random.get_state()
    try:
        for i in range(len(x)):
            s = int(seeds[i])
            np.random.seed(s)
            out[i] = np.uint8(fn(x[i], severity, s))  # uint8 truncation, as make_cifar_c.py
    finally:
        np.random.set_state(state)
    return out


def images_fingerprint(x: np.ndarray) -> str:
    """sha256 (16 hex digits) of the images' shape and pixels."""
    h = hashlib.sha256(str(x.shape).encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:16]


def cache_path(fingerprint: str, corruption: str, severity: int, n: int, seed: int,
               constants: str) -> Path:
    from ..data.datasets import cache_dir

    ver = package()[1]
    return (cache_dir() / "corruptions" /
            f"{fingerprint}-{corruption}-s{severity}-n{n}-seed{seed}-{constants}-"
            f"{PACKAGE}{ver}-v{GENERATOR_VERSION}.npy")


def corrupted(x: np.ndarray, corruption: str, severity: int, seed: int = 0,
              constants: str = "cifar10-c", use_cache: bool = True,
              fingerprint: str | None = None) -> np.ndarray:
    """corrupt_images, read from the cache when it was generated before (and written to it,
    atomically, when not); a damaged or unwritable cache is never fatal."""
    check_request([corruption], [severity], constants)
    x = check_images(x)
    if not use_cache:
        return corrupt_images(x, corruption, severity, seed, constants)
    path = cache_path(fingerprint or images_fingerprint(x), corruption, severity, len(x), seed,
                      constants)
    if path.exists():
        try:
            out = np.load(path, allow_pickle=False)
            if out.shape == x.shape and out.dtype == np.uint8:
                return out
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass
        path.unlink(missing_ok=True)
    out = corrupt_images(x, corruption, severity, seed, constants)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: _save_npy(p, out))
    except (OSError, UsageError):
        pass  # caching is an optimisation
    return out


def _save_npy(p: Path, a: np.ndarray) -> None:
    with open(p, "wb") as f:  # a file object: np.save would append .npy to the temp name
        np.save(f, a, allow_pickle=False)


# ///// accuracy and mCE /////


def _row(corruption: str, severity: int, correct: int, n: int, seed: int, constants: str,
         fingerprint: str, seconds: float, ece: float, nll: float) -> dict:
    from ..reporting.statistics import wilson

    lo, hi = wilson(correct, n)
    return {"corruption": corruption, "severity": severity, "n": n, "correct": correct,
            "accuracy": correct / n, "ci_low": lo, "ci_high": hi, "ece": ece, "nll": nll,
            "seed": seed,
            "constants": constants, "package": package_label(), "images": fingerprint,
            "seconds": seconds}


def corruption_accuracy(model, x: np.ndarray, y, corruptions: Sequence[str] = CORRUPTIONS,
                        severities: Sequence[int] = SEVERITIES, *, seed: int = 0,
                        constants: str = "cifar10-c", clean: bool = True,
                        precision: str = "fp32", use_cache: bool = True,
                        progress: Callable[[str, int], None] | None = None,
                        on_row: Callable[[dict], None] | None = None,
                        skip: Callable[[str, int], bool] | None = None,
                        on_probs: Callable[[str, int, np.ndarray], None] | None = None
                        ) -> pd.DataFrame:
    """Accuracy of model (a torch module taking float N x C x H x W images in [0, 1], computing
    on its parameters' device) on images x (uint8 N x 32 x 32 x 3) with labels y under each
    corruption and severity; with clean, a first row 'clean' (severity 0) on x itself.

    One tidy row per (corruption, severity): n, correct, accuracy with its Wilson 95 % interval
    over the test images (the only source of variation in one model's evaluation), the
    calibration of the same predictions (ECE over 15 equal-width bins, NLL), the seed,
    constants, package version, fingerprint of x and seconds (generation + prediction).
    on_row(row) is called after each row (to save it), skip(corruption, severity) leaves out
    rows computed before, progress(label, i) reports each one; on_probs(corruption, severity,
    probabilities N x K) is called before on_row, with the row's predicted probabilities."""
    import torch

    from . import calibration as cal
    from .external import eval_mode
    from .predict import predict_logits

    check_request(corruptions, severities, constants)
    x = check_images(x)
    labels = np.asarray(y).astype(np.int64)
    if labels.shape != (len(x),):
        raise UsageError(f"{len(x)} images but labels of shape {labels.shape}")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    fp = images_fingerprint(x)
    yt = torch.from_numpy(labels).to(device)
    todo = ([(CLEAN, 0)] if clean else []) + [(c, s) for c in corruptions for s in severities]
    rows = []
    with eval_mode(model):
        for i, (c, s) in enumerate(todo):
            if skip is not None and skip(c, s):
                continue
            if progress is not None:
                progress(f"{c} {s}", i)
            t0 = time.perf_counter()
            xc = x if c == CLEAN else corrupted(x, c, s, seed, constants, use_cache, fp)
            logits = predict_logits(model, torch.from_numpy(xc), device, precision)
            if logits.ndim != 2 or logits.shape[0] != len(x):
                raise UsageError(f"model outputs have shape {tuple(logits.shape)}, not N x classes")
            correct = int((logits.argmax(1) == yt).sum())
            probs = torch.softmax(logits, 1).cpu().numpy()
            if on_probs is not None:
                on_probs(c, s, probs)
            row = _row(c, s, correct, len(x), seed, constants, fp, time.perf_counter() - t0,
                       cal.ece(probs, labels), cal.nll(probs, labels))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass
class CorruptionError:
    """The paper's corruption errors of a model relative to a baseline (ERM): per corruption
    CE and relative CE (ratios, 1 = the baseline's), and their means mCE and relative mCE."""

    per_corruption: pd.DataFrame
    mce: float
    relative_mce: float


def _errors(t: pd.DataFrame, who: str) -> tuple[pd.Series, float, int]:
    missing = [c for c in ("corruption", "severity", "accuracy", "n") if c not in t.columns]
    if missing:
        raise UsageError(f"the {who} table lacks columns {', '.join(missing)}")
    corr = t[t["corruption"] != CLEAN]
    if corr.duplicated(["corruption", "severity"]).any():
        raise UsageError(f"the {who} table has more than one row per corruption and severity")
    if not len(corr):
        raise UsageError(f"the {who} table has no corrupted rows")
    err = (1.0 - corr.set_index(["corruption", "severity"])["accuracy"].astype(float)).sort_index()
    cl = t[t["corruption"] == CLEAN]
    clean_err = float(1.0 - cl["accuracy"].iloc[0]) if len(cl) == 1 else float("nan")
    ns = set(int(v) for v in t["n"])
    if len(ns) != 1:
        raise UsageError(f"the {who} table mixes numbers of test images {sorted(ns)}")
    return err, clean_err, ns.pop()


def mce(table_model: pd.DataFrame, table_baseline: pd.DataFrame) -> CorruptionError:
    """Mean corruption error of a model relative to a baseline (Hendrycks & Dietterich 2019):
    CE_c = sum_s E_{s,c}^model / sum_s E_{s,c}^baseline, mCE = mean_c CE_c; relative CE_c =
    sum_s (E_{s,c}^model - E_clean^model) / sum_s (E_{s,c}^baseline - E_clean^baseline), which
    needs each table's clean row (NaN without). E = 1 - accuracy. Both tables must hold the
    same corruptions and severities, on the same number of images (and the same images, where
    their fingerprints are recorded). A CE whose baseline sum is 0 is NaN, and so is its mean."""
    em, cm, nm = _errors(table_model, "model")
    eb, cb, nb = _errors(table_baseline, "baseline")
    if set(em.index) != set(eb.index):
        only = sorted(set(em.index) ^ set(eb.index))[0]
        raise UsageError(f"the model and baseline tables cover different corruptions or "
                         f"severities (e.g. {only[0]} {only[1]} is in only one)")
    if nm != nb:
        raise UsageError(f"the model was scored on {nm} images and the baseline on {nb}")
    if "images" in table_model.columns and "images" in table_baseline.columns:
        a, b = set(table_model["images"].astype(str)), set(table_baseline["images"].astype(str))
        if a != b:
            raise UsageError("the model and baseline were scored on different test images "
                             f"(fingerprints {', '.join(sorted(a))} and {', '.join(sorted(b))})")
    eb = eb.loc[em.index]
    rows = []
    names = set(em.index.get_level_values(0))
    for c in [c for c in CORRUPTIONS if c in names] + sorted(names - set(CORRUPTIONS)):
        m, b = em.loc[c], eb.loc[c]
        sb, rb = float(b.sum()), float((b - cb).sum())
        rows.append({"corruption": c, "severities": len(m), "model_error": float(m.sum()),
                     "baseline_error": float(b.sum()),
                     "ce": float(m.sum()) / sb if sb > 0 else float("nan"),
                     "relative_ce": float((m - cm).sum()) / rb if rb > 0 else float("nan")})
    per = pd.DataFrame(rows)
    return CorruptionError(per, float(per["ce"].mean(skipna=False)),
                           float(per["relative_ce"].mean(skipna=False)))
