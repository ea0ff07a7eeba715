"""Time to generate each common corruption (robustmix.evaluation.corruptions) for CIFAR-10 test
images on this CPU, single thread, without the cache; prints a markdown table (ms per image per
severity, and seconds per 1,000 images over all five severities).

Data: the shared offline copy ../shared/data/cifar10-jpeg.tar.gz, which is CIFAR-10 re-encoded
as JPEG quality 75: that copy is itself a corruption (stronger than CIFAR-10-C's jpeg_compression
severity 1, quality 80), so every corruption timed here is applied on top of it.

    OMP_NUM_THREADS=1 nice -n 5 python experiments/bench_corruptions.py --n 1000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="test images (the first n)")
    p.add_argument("--data", default="../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--constants", default="cifar10-c")
    args = p.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from robustmix.data.datasets import load_dataset
    from robustmix.evaluation import corruptions as C

    ds = load_dataset("cifar10", args.data)
    x = ds.x_test[:args.n]
    C.corrupt_images(x[:2], "frost", 1)  # load textures and imports before timing
    print(f"{args.n} test images of {ds.description} ({args.data}), constants {args.constants}, "
          f"{C.package_label()}, 1 thread, {platform.processor() or platform.machine()}, "
          f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| corruption | " + " | ".join(f"s{s} ms/img" for s in C.SEVERITIES)
          + " | s per 1,000 images, all 5 |")
    print("|---" * 7 + "|")
    total = 0.0
    for name in C.CORRUPTIONS:
        ms = []
        for s in C.SEVERITIES:
            t = time.perf_counter()
            C.corrupt_images(x, name, s, seed=0, constants=args.constants)
            ms.append(1000 * (time.perf_counter() - t) / len(x))
        total += sum(ms)
        print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {sum(ms):.1f} |",
              flush=True)
    print(f"\nall 15 x 5: {total:.1f} s per 1,000 images (so about {total * 10 / 60:.0f} min "
          "for the 10,000 test images, once: they are cached)")


if __name__ == "__main__":
    main()
