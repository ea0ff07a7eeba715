"""The local executor: trains planned runs one after another in this process.

Each run is trained under its run directory's lock, so two processes given the same output
folder never write the same run: the second skips it (or, with wait, waits and then finds it
finished). The units of work are studies/tasks.py's, which the Ray executor runs too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..data.datasets import Dataset
from ..runs.checkpoint_names import error_line
from ..runs.lock import RunBusy
from .tasks import Planned, check_data, plan_runs, precision_text, resolve_study_device, train_one

__all__ = ["Planned", "train_planned", "plan_study", "check_study", "run_study"]


def train_planned(plans: list[Planned], load_data: Callable[[], Dataset], device: torch.device, *,
                  wait: bool = False, show_progress: bool = True, precision_reason: str = "",
                  compile: bool = False,
                  log: Callable[[str], None] = print,
                  on_start: Callable[[int, Planned], None] | None = None) -> dict[Path, dict]:
    """Train every plan that is not done; return the summaries of the runs trained here.

    load_data is called once, before anything is written, when some run needs training: bad data
    then fails with nothing on disk changed. compile runs training steps through torch.compile.
    """
    summaries: dict[Path, dict] = {}
    todo = [p for p in plans if p.action != "done"]
    ds = check_data(plans, load_data)
    for i, p in enumerate(todo):
        try:
            summary = train_one(p, ds, device, wait=wait, show_progress=show_progress,
                                precision_reason=precision_reason, compile=compile,
                                on_start=None if on_start is None else lambda p, i=i: on_start(i, p))
        except RunBusy as e:
            log(f"{p.run}: skipped, another process is training it ({e.holder}); "
                "--wait waits for it instead")
            continue
        if summary is None:
            log(f"{p.run}: finished by another process meanwhile")
        else:
            summaries[p.run] = summary
    return summaries


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plan_study(study) -> tuple[torch.device | None, list[Planned], str]:
    """(device or None when it is not available here, plans, precision reason)."""
    from ..errors import UsageError

    try:
        device, why = resolve_study_device(study)
    except UsageError:
        return None, [Planned(c, study.out / c.run_name, "new") for c in study.configs], ""
    return device, plan_runs(study), why


def check_study(study) -> None:
    """Print what the study would do; validation already happened in load_study."""
    from ..runs.rundir import check_writable
    from ..training.estimate import estimate_text

    check_writable(study.out)
    check_writable(study.report)
    device, plans, why = plan_study(study)
    todo = [p.cfg for p in plans if p.action != "done"]
    where = (f"device {device}, {precision_text(study, device, why, plans)}; "
             f"{estimate_text(todo, device, study.out)}" if device is not None else
             f"device {study.device} (not available on this machine: precision resolved there)")
    print(f"study {study.name} ({study.path}): valid. {len(plans)} runs "
          f"({len(plans) - len(todo)} finished), profile {study.configs[0].profile}, {where}")
    for p in plans:
        print(f"  {p.action:>6}  {p.run}")
    for f in study.missing_files:
        print(f"  note: noise file {f} is not here; it is read when the study runs")
    if study.attack is not None:
        from .spec import attack_options, attack_sources, eps_groups, source_only

        a = attack_options(study)
        units = "/255" if a["norm"] == "linf" else " (L2)"
        print("attacks: " + "; ".join(f"{','.join(names)} at eps "
                                      f"{','.join(f'{e:g}' for e in eps)}{units}"
                                      for names, eps in eps_groups(study))
              + f" on checkpoint {a['checkpoint']}"
              + (f"; black-box source {a['source']}" if "source" in a else ""))
        if study.source is not None:
            twins = [c.run_name for c in study.configs if c.run_name != study.source.run_name
                     and c.seed == study.source.seed and c.method == study.source.method]
            if twins:
                print(f"  note: the source shares seed and method with {len(twins)} target(s) "
                      f"({twins[0]}, ...): their black-box rows are marked twin; name a source "
                      "of another seed per ratio with [attack.sources]")
        extra = {c.run_name for c in source_only(study)}
        for ratio, src in attack_sources(study).items():
            print(f"  noise {ratio:g}: black-box source {study.out / src.run_name}"
                  + (" (trained for the attack stage)" if src.run_name in extra else ""))
    r = study.resources
    gpus = (f"{r.gpus_per_run:g}" if r.gpus_per_run is not None else "0" if study.device == "cpu"
            else "1 where the cluster has GPUs")
    print(f"report: {study.report}\nwith --executor ray: per task {r.cpus_per_run:g} CPU "
          f"(and threads), GPU {gpus}; {r.max_retries} retries")


def _show(res) -> None:
    print(res.table.to_string(index=False, na_rep="-") if len(res.table) else "(no attack rows)")
    for r in res.flags.to_dict("records"):
        print(f"  flag {r['run']}: {r['flag']}: {r['detail']}")


def run_study(study, *, skip_attacks: bool = False, skip_report: bool = False, wait: bool = False,
              quiet: bool = False) -> None:
    import time

    from ..data.datasets import load_dataset
    from ..errors import UsageError
    from ..runs.files import is_finished
    from ..runs.rundir import check_writable
    from ..training.estimate import estimate_text

    check_writable(study.out)
    if not skip_report:
        check_writable(study.report)
    device, plans, why = plan_study(study)
    if device is None:
        raise UsageError(f"{study.path}: device {study.device} is not available on this machine")
    if study.attack is not None:
        from .spec import source_only

        # [attack.sources] runs that are not targets are training work: trained with the targets
        # (also under --skip-attacks, so a later attack stage finds its sources), never attacked.
        sources = plan_runs(study, source_only(study))
    else:
        sources = []
    todo = [p for p in plans + sources if p.action != "done"]
    done = sum(p.action == "done" for p in plans)
    print(f"study {study.name}: {len(plans)} runs ({done} finished)"
          + (f" and {len(sources)} black-box source run(s)" if sources else "") + ", "
          f"profile {study.configs[0].profile}, device {device}, "
          f"{precision_text(study, device, why, plans + sources)}; "
          f"{estimate_text([p.cfg for p in todo], device, study.out)}", flush=True)
    t0 = time.perf_counter()

    def started(i: int, p: Planned) -> None:
        print(f"[{i + 1}/{len(todo)} to train] {p.run.name} ({p.action}); elapsed "
              f"{_fmt(time.perf_counter() - t0)}", flush=True)

    summaries = train_planned(
        plans + sources, lambda: load_dataset(study.dataset, study.data), device, wait=wait,
        show_progress=not quiet, precision_reason=why, on_start=started)
    for run, s in summaries.items():
        print(f"    {run.name}: {error_line(s)}", flush=True)
    runs = [p.run for p in plans if is_finished(p.run)]
    if study.attack is not None and not skip_attacks and runs:
        from .spec import attack_jobs
        from .tasks import attack

        print(f"attacks: {len(runs)} runs, elapsed {_fmt(time.perf_counter() - t0)}", flush=True)
        from ..runs.lock import RunBusy

        # Within a job, groups whose targets another process holds (a second study process
        # attacking them, or one still training a target) are done last; if still held then, the
        # job is put off, not waited for: two processes of one study then share the attack
        # stage group by group instead of the second idling behind the first. Runs with nothing
        # left to compute are never locked (attacks/runner.run_attacks).
        deferred = []
        for targets, opts in attack_jobs(study, runs):
            try:
                res = attack(targets, opts, quiet=quiet, wait=False)
            except RunBusy as e:
                print(f"attacks on {len(targets)} run(s) put off: {e}", flush=True)
                deferred.append((targets, opts))
                continue
            _show(res)
        for targets, opts in deferred:
            _show(attack(targets, opts, quiet=quiet))
    if not skip_report and runs:
        from .tasks import write_study_report

        write_study_report(study, runs + [p.run for p in sources if is_finished(p.run)])
    print(f"study {study.name} complete in {_fmt(time.perf_counter() - t0)}; "
          f"runs in {study.out}, report in {study.report}")
