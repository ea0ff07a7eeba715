"""The Ray executor: a study's runs and attacks as Ray tasks, on one machine or a cluster.

Each training run is one task asking for the study's [executor] resources; each target's attack
is one task, submitted once its target and its black-box source are trained; the driver writes
the report at the end. The tasks run studies/tasks.py's units of work, so finished runs
(summary.json) and computed attack rows are skipped exactly as the local executor skips them,
and a run is written only by the task holding its run lock.

Run directories live under the study's output folder, which every node must see: before any
work, a probe task on every node reads a file the driver wrote there and writes one back, and
the driver refuses to start if a node cannot. A task whose worker dies (SIGKILL, a lost node) or
that raises is run again up to max_retries times and resumes from its run's last finished epoch;
a bad input (UsageError) is not retried. A run that keeps failing is reported with its error
while every other run finishes. Ctrl-C cancels every task (their workers are killed, which
releases the run locks) and leaves every run resumable.

Ray is optional: nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import UsageError
from ..runs.checkpoint_names import error_line
from ..runs.files import SUMMARY, is_finished, read_json
from ..runs.lock import RunBusy
from .spec import Study
from .tasks import AttackTarget, Planned, attack, attack_targets, check_data, plan_runs, train_one

INSTALL = 'pip install -e ".[ray]"'


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


# --- what runs inside the tasks -----------------------------------------------------------------

def use_threads(cpus: float) -> int:
    """Compute with as many threads as the task has CPUs: a worker otherwise takes every core,
    and two runs of 2 threads each on 2 cores were measured ~40x slower than 1 thread each."""
    n = max(1, int(cpus))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)
    return n


def _announce(events, key: str) -> None:
    if events is not None:
        events.put((key, socket.gethostname()))


def train_task(p: Planned, dataset: str, data: str | None, device: str, precision_reason: str,
               wait: bool, cpus: float, command: list[str], events=None, key: str = "") -> dict:
    """Train one run on this worker. Bad input and a run held by another process are results,
    not exceptions, so that Ray retries only what a retry can mend."""
    from ..data.datasets import load_dataset
    from ..evaluation.device import resolve_device

    sys.argv = list(command)  # config.json records the command: the driver's, not the worker's
    use_threads(cpus)
    _announce(events, key)
    try:
        ds = load_dataset(dataset, data)
        summary = train_one(p, ds, resolve_device(device), wait=wait, show_progress=False,
                            precision_reason=precision_reason)
    except RunBusy as e:
        return {"status": "skipped", "detail": f"another process is training it ({e.holder})"}
    except UsageError as e:
        return {"status": "failed", "detail": str(e)}
    if summary is None:
        return {"status": "done", "summary": read_json(p.run / SUMMARY),
                "detail": "finished by another process meanwhile"}
    return {"status": "done", "summary": summary, "detail": ""}


def attack_task(target: AttackTarget, cpus: float, events=None, key: str = "") -> dict:
    """Attack one target; run_attacks holds its run lock (one writer of its attack.csv at a
    time), so this task must not take it too: a second flock in one process waits forever."""
    use_threads(cpus)
    _announce(events, key)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            res = attack([target.run], target.opts, quiet=True)
    except UsageError as e:
        return {"status": "failed", "detail": str(e)}
    return {"status": "done", "log": log.getvalue().strip(),
            "table": res.table.to_string(index=False, na_rep="-") if len(res.table) else "",
            "flags": res.flags.to_dict("records")}


def probe_task(probe: str, token: str, data: str | None) -> tuple[str, str | None]:
    """On one node: read the driver's probe file and write a reply beside it. (host, error)."""
    host = socket.gethostname()
    path = Path(probe)
    try:
        seen = path.read_text()
    except OSError as e:
        return host, f"cannot read {path} ({e.strerror or e})"
    if seen != token:
        return host, f"{path} holds something else than the driver wrote"
    try:
        path.with_name(f"{path.name}.{host}.{os.getpid()}").write_text(token)
    except OSError as e:
        return host, f"cannot write into {path.parent} ({e.strerror or e})"
    if data is not None and not Path(data).exists():
        return host, f"the study's data {data} does not exist there"
    return host, None


def device_task(device: str, precision: str) -> tuple[str, str] | str:
    """Where a run's task lands: (precision, why), or the error when its device is missing."""
    from ..evaluation.device import choose_precision, resolve_device

    try:
        return choose_precision(precision, resolve_device(device))
    except UsageError as e:
        return str(e)


# --- the driver ---------------------------------------------------------------------------------

@dataclass
class Job:
    kind: Literal["train", "attack"]  # what the driver does with its result
    key: str  # its name in messages: "train RUN" or "attack RUN [attacks]"
    run: Path
    needs: list[Path]  # runs that must be trained before it starts
    submit: Callable[[], object]  # -> its ObjectRef


def absolute(study: Study) -> Study:
    """The study with the paths tasks open made absolute: workers do not share our cwd."""
    return dataclasses.replace(study, out=study.out.resolve(),
                               data=study.data.resolve() if study.data is not None else None)


def connect(ray, address: str | None) -> bool:
    """Join the cluster at address, or start a local Ray instance sized to this machine; True
    when this call started Ray (and so shuts it down at the end)."""
    if ray.is_initialized():
        return False
    try:
        if address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=address)
    except Exception as e:  # Ray raises bare Exceptions too (e.g. a raylet start timing out)
        with contextlib.suppress(Exception):
            ray.shutdown()
        where = f"at {address}" if address else "locally"
        raise UsageError(f"cannot start or join Ray {where}: {str(e).splitlines()[0]}") from None
    return True


def task_resources(ray, study: Study) -> dict:
    """Ray options of one run's task; refuses a request no node of the cluster can meet (Ray
    would wait for it forever)."""
    res = study.resources
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpus = res.gpus_per_run
    if gpus is None:
        gpus = 1.0 if study.device != "cpu" and any(n.get("GPU", 0) > 0 for n in nodes) else 0.0
    if not any(n.get("CPU", 0) >= res.cpus_per_run and n.get("GPU", 0) >= gpus for n in nodes):
        have = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes)
        raise UsageError(f"no node of the Ray cluster ({have}) has {res.cpus_per_run:g} CPU and "
                         f"{gpus:g} GPU for one run: lower executor.cpus_per_run or "
                         "executor.gpus_per_run in the study file")
    return {"num_cpus": res.cpus_per_run, "num_gpus": gpus, "max_retries": res.max_retries,
            "retry_exceptions": True}


def probe(ray, study: Study, opts: dict) -> tuple[str, str]:
    """Check that every node sees the output folder (and the data), and find the precision runs
    train in where their tasks land: (precision, why)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ..atomic import write_text

    created = not study.out.exists()
    study.out.mkdir(parents=True, exist_ok=True)
    path = study.out / f".robustmix-probe-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    try:
        write_text(path, token)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        remote = ray.remote(probe_task)
        refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    n["NodeID"], soft=False)).remote(str(path), token,
                                                     str(study.data) if study.data else None)
                for n in nodes]
        device = ray.remote(device_task).options(**opts).remote(study.device, study.precision)
        try:
            answers = ray.get(refs)
        except ray.exceptions.RayError as e:
            raise UsageError(f"the probe of Ray's nodes failed: {one_line(ray, e, 0)}") from None
        for host, error in answers:
            if error is not None:
                raise UsageError(f"Ray node {host}: {error}; every node must see the study's "
                                 f"output folder {study.out} on a shared filesystem")
        replies = list(study.out.glob(f"{path.name}.*"))
        if len(replies) < len(answers) or any(r.read_text() != token for r in replies):
            raise UsageError(f"files Ray nodes wrote into {study.out} do not appear here: the "
                             "output folder must be one shared filesystem on every node")
        found = ray.get(device)
    finally:
        for p in [path, *study.out.glob(f"{path.name}.*")]:
            p.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):  # left in place once something else is in it
                study.out.rmdir()
    if isinstance(found, str):
        raise UsageError(f"{study.path}: {found} (in a task with executor.gpus_per_run = "
                         f"{opts['num_gpus']:g})")
    return found


def one_line(ray, e: Exception, retries: int) -> str:
    if isinstance(e, ray.exceptions.RayTaskError):
        cause = e.cause
        text = f"{type(cause).__name__}: {cause}" if cause is not None else str(e)
        return text.strip().splitlines()[0] if text.strip() else type(e).__name__
    if isinstance(e, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return (f"its worker died {retries + 1} time(s) (killed, out of memory or node lost); "
                "executor.max_retries in the study file allows more attempts")
    return str(e).strip().splitlines()[0]


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def run_study_ray(study: Study, *, address: str | None = None, skip_attacks: bool = False,
                  skip_report: bool = False, wait: bool = False, quiet: bool = False) -> int:
    """Run the study's missing work as Ray tasks; the number of tasks that failed."""
    from ..runs.rundir import check_writable

    ray = import_ray()
    check_writable(study.out)
    if not skip_report:
        check_writable(study.report)
    study = absolute(study)
    started = connect(ray, address)
    try:
        return _drive(ray, study, skip_attacks=skip_attacks, skip_report=skip_report, wait=wait,
                      quiet=quiet)
    finally:
        if started:
            ray.shutdown()


def _drive(ray, study: Study, *, skip_attacks: bool, skip_report: bool, wait: bool,
           quiet: bool) -> int:
    from ..data.datasets import load_dataset
    from .spec import source_only

    t0 = time.perf_counter()
    opts = task_resources(ray, study)
    precision, why = probe(ray, study, opts)
    study.set_precision(precision)
    plans = plan_runs(study)
    attacking = study.attack is not None and not skip_attacks
    # Source-only runs are training work: trained under --skip-attacks too, never attacked.
    plans_all = plans + (plan_runs(study, source_only(study)) if study.attack is not None else [])
    check_data(plans_all, lambda: load_dataset(study.dataset, study.data))
    todo = [p for p in plans_all if p.action != "done"]
    cpus = opts["num_cpus"]
    res = ray.cluster_resources()
    print(f"study {study.name}: {len(plans)} runs ({sum(p.action == 'done' for p in plans)} "
          f"finished), {len(todo)} to train; profile {study.configs[0].profile}, precision "
          f"{precision} ({why}); Ray: {res.get('CPU', 0):g} CPU, {res.get('GPU', 0):g} GPU, "
          f"{cpus:g} CPU and {opts['num_gpus']:g} GPU per task, {opts['max_retries']} "
          "retries", flush=True)

    jobs: list[Job] = []
    events = None
    if todo or attacking:
        from ray.util.queue import Queue

        events = Queue(actor_options={"num_cpus": 0})
    train = ray.remote(train_task).options(**opts)
    for p in todo:
        key = f"train {p.run.name}"
        jobs.append(Job("train", key, p.run, [], lambda p=p, key=key: train.remote(
            p, study.dataset, str(study.data) if study.data else None, study.device, why, wait,
            cpus, sys.argv, events, key)))
    n_train = len(jobs)
    if attacking:
        hit = ray.remote(attack_task).options(**opts)
        targets = attack_targets(study, [p.run for p in plans])
        split = len({t.run for t in targets}) < len(targets)  # attack.eps_of: a task per group
        for t in targets:
            key = f"attack {t.run.name}" + (f" [{','.join(t.opts['attacks'])}]" if split else "")
            jobs.append(Job("attack", key, t.run, t.needs, lambda t=t, key=key: hit.remote(
                t, cpus, events, key)))
    failures, skipped = _execute(ray, jobs, events,
                                 {p.run for p in plans_all if p.action == "done"},
                                 opts["max_retries"], study.name, quiet)
    if events is not None:
        events.shutdown()

    runs = [p.run for p in plans if is_finished(p.run)]
    if not skip_report and runs:
        from .tasks import write_study_report

        write_study_report(study, runs + [p.run for p in plans_all[len(plans):]
                                          if is_finished(p.run)])
    print(f"study {study.name}: {n_train} run(s) to train, {len(jobs) - n_train} attack task(s); "
          f"{len(failures)} failed, {len(skipped)} skipped; {_fmt(time.perf_counter() - t0)}; "
          f"runs in {study.out}"
          + (f", report in {study.report}" if not skip_report and runs else ""), flush=True)
    for key, detail in failures.items():
        print(f"  failed: {key}: {detail}", flush=True)
    if failures:
        print("  rerun the same command to retry them; finished work is kept", flush=True)
    return len(failures)


def _execute(ray, jobs: list[Job], events, trained: set[Path], retries: int, name: str,
             quiet: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Submit jobs as their needs are trained and follow them on one bar. Returns {key: error}
    of the jobs that failed (or need a run that failed) and {key: why} of those skipped because
    another process holds their run (or a run they need)."""
    from tqdm.auto import tqdm

    waiting = list(jobs)
    inflight: dict[object, Job] = {}
    failures: dict[str, str] = {}
    skipped: dict[str, str] = {}
    busy: set[Path] = set()  # runs another process is training
    running: set[str] = set()
    starts: Counter[str] = Counter()
    done = 0
    bar = tqdm(total=len(jobs), unit="task", desc=f"study {name}", disable=quiet or not jobs)
    say = bar.write if not bar.disable else (lambda s: print(s, flush=True))

    def submit_ready() -> None:
        training = {j.run for j in [*inflight.values(), *waiting] if j.kind == "train"}
        for j in list(waiting):
            if all(n in trained for n in j.needs):
                waiting.remove(j)
                inflight[j.submit()] = j
            elif any(n not in trained and n not in training for n in j.needs):
                waiting.remove(j)
                missing = next(n for n in j.needs if n not in trained and n not in training)
                why = f"not started: {missing.name} is not trained"
                (skipped if missing in busy else failures)[j.key] = why
                bar.update()

    try:
        while waiting or inflight:
            submit_ready()
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0.5)
            if events is not None and events.qsize():
                for key, host in events.get_nowait_batch(events.qsize()):
                    running.add(key)
                    starts[key] += 1
                    if starts[key] > 1:
                        say(f"    {key}: started again on {host} (attempt {starts[key]}): the "
                            "previous attempt's worker died or it raised")
            for ref in ready:
                job = inflight.pop(ref)
                running.discard(job.key)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:
                    out = {"status": "failed", "detail": one_line(ray, e, retries)}
                _report(job, out, say)
                if out["status"] == "done":
                    done += 1
                    if job.kind == "train":
                        trained.add(job.run)
                elif out["status"] == "skipped":
                    skipped[job.key] = out["detail"]
                    busy.add(job.run)
                else:
                    failures[job.key] = out["detail"]
                bar.update()
            bar.set_postfix(done=done, running=len(running), failed=len(failures),
                            **({"skipped": len(skipped)} if skipped else {}), refresh=False)
    except KeyboardInterrupt:
        for ref in inflight:  # force: kill the workers, which releases their run locks
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    return failures, skipped


def _report(job: Job, out: dict, say: Callable[[str], None]) -> None:
    """The line (or table) the driver prints when a task ends."""
    name = job.run.name
    if out["status"] == "skipped":
        say(f"    {name}: skipped, {out['detail']}; --wait waits for it instead")
    elif out["status"] == "failed":
        say(f"    {job.key}: FAILED: {out['detail']}")
    elif job.kind == "train":
        s = out["summary"]
        say(f"    {name}: {error_line(s)}" + (f" ({out['detail']})" if out["detail"] else ""))
    else:
        say(f"    attacked {name}: {out['log'].splitlines()[-1] if out['log'] else ''}")
        if out["table"]:
            say(out["table"])
        for r in out["flags"]:
            say(f"  flag {r['run']}: {r['flag']}: {r['detail']}")
