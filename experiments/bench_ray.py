"""Wall time of a study with the local executor against --executor ray, and Ray's overhead.

    python experiments/bench_ray.py                                  # experiments/ray_subset.toml
    python experiments/bench_ray.py experiments/cpu.toml             # the whole CPU study
    python experiments/bench_ray.py --epochs 2 --out /tmp/ray.md     # a quick smoke measurement

Runs the study twice from scratch, each into a fresh temporary folder, one after the other on
this machine: `python -m robustmix.study FILE` (the local executor: one run at a time, torch's
default thread count) and `python -m robustmix.study FILE --executor ray` (a local Ray instance
sized to the machine; one task per run with the file's [executor] resources, threads =
cpus_per_run). Then measures Ray's own costs in this process: starting a local instance, the
first task on a fresh worker (process start and imports), the round trip of an empty task on a
warm worker, and shutting down. Writes a Markdown report (default reports/benchmarks/ray.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("study", type=Path, nargs="?", default=REPO / "experiments" / "ray_subset.toml",
                   help="the study file to time")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the profile's epochs (a quick measurement of the overhead; "
                        "default: the study's own)")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "benchmarks" / "ray.md",
                   help="the Markdown report to write")
    p.add_argument("--train-only", action="store_true",
                   help="time the training only (--skip-attacks --skip-report)")
    p.add_argument("--tasks", type=int, default=20, help="empty tasks timed for the overhead")
    return p.parse_args(argv)


def study_copy(study: Path, folder: Path, epochs: int | None) -> Path:
    """The study file writing into folder (runs and report), with epochs overridden if given."""
    text = study.read_text()
    text = re.sub(r'(?m)^out = ".*"$', f'out = "{folder / "runs"}"', text)
    text = re.sub(r'(?m)^report = ".*"$', f'report = "{folder / "report"}"', text)
    if epochs is not None:
        if re.search(r"(?m)^epochs = ", text):
            text = re.sub(r"(?m)^epochs = .*$", f"epochs = {epochs}", text)
        else:
            text = text.replace("[train]\n", f"[train]\nepochs = {epochs}\n", 1)
    path = folder / study.name
    folder.mkdir(parents=True)
    path.write_text(text)
    return path


def timed_study(path: Path, executor: str, log: Path, extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "robustmix.study", str(path), "--quiet",
                               "--executor", executor, *extra], cwd=REPO, env=env, stdout=f,
                              stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{executor} executor failed (exit {proc.returncode}); see {log}")
    return wall


def run_seconds(runs: Path) -> tuple[int, float]:
    """(number of runs, their training seconds summed, from summary.json)."""
    summaries = [json.loads(p.read_text()) for p in runs.glob("*/summary.json")]
    return len(summaries), sum(s["total_seconds"] for s in summaries)


def ray_overhead(n: int) -> dict[str, float]:
    import ray

    def noop() -> int:
        return os.getpid()

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    out = {"init": time.perf_counter() - t0}
    task = ray.remote(num_cpus=1)(noop)
    t0 = time.perf_counter()
    ray.get(task.remote())
    out["first task after init (workers prestarted by init)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(task.remote())
    out["empty task round trip (warm worker)"] = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    ray.shutdown()
    out["shutdown"] = time.perf_counter() - t0
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    import ray
    import torch

    from robustmix.runs.provenance import cpu_model, pin_commit

    commit = pin_commit()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        walls, seconds = {}, {}
        for executor in ("local", "ray"):
            path = study_copy(args.study, tmp / executor, args.epochs)
            print(f"{executor}: python -m robustmix.study {path} --executor {executor}", flush=True)
            walls[executor] = timed_study(path, executor, tmp / f"{executor}.log",
                                          ["--skip-attacks", "--skip-report"] if args.train_only
                                          else [])
            seconds[executor] = run_seconds(tmp / executor / "runs")
            print(f"  {walls[executor]:.1f} s wall; {seconds[executor][0]} runs trained in "
                  f"{seconds[executor][1]:.1f} s summed", flush=True)
        overhead = ray_overhead(args.tasks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cpus = os.cpu_count()
    lines = [
        "# Study wall time: local executor against --executor ray", "",
        f"Study `{args.study.relative_to(REPO) if args.study.is_relative_to(REPO) else args.study}`"
        + (f" with epochs = {args.epochs}" if args.epochs else "")
        + (", training only" if args.train_only else ", training, attacks and report")
        + "; each executor from "
        "scratch into a fresh folder, one after the other.", "",
        "| executor | wall (s) | runs | training seconds summed over runs |",
        "|---|---|---|---|",
        *(f"| {e} | {walls[e]:.1f} | {seconds[e][0]} | {seconds[e][1]:.1f} |" for e in walls),
        "", f"ray / local wall: {walls['ray'] / walls['local']:.2f}", "",
        "Ray's own costs (local instance, this process):", "",
        "| step | seconds |", "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in overhead.items()),
        "", "The local executor trains one run at a time with torch's default thread count "
        f"({torch.get_num_threads()} here); the Ray executor runs one task per run with the "
        "study's cpus_per_run CPUs (and as many threads) each, so several runs share the machine. "
        "Training seconds are each run's own epoch time (summary.json), which grows when runs "
        "share cores.", "",
        f"Machine: {cpu_model()}, {cpus} CPUs, load average {load_before:.1f} before the first "
        f"study; robustmix commit {commit}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, ray {ray.__version__}; "
        f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}.", "",
        f"Command: `python {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}` (from experiments/"
        " or the repository root).", "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
