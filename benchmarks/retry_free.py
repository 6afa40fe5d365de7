"""Consecutive runs of the demo pipeline under the real Airflow services, checking that no task is retried.

    python -m benchmarks.retry_free --runs 10            # make airflow's stack: LocalExecutor, SQLite
    python -m benchmarks.retry_free --runs 5 --celery    # PostgreSQL + CeleryExecutor (2 workers), Redis broker

Starts a stand-in (temp state dir, ``--time-scale``, default 60 as ``make airflow``) and the stack of
include/services/stack.py over it (scheduler, triggerer, dag-processor, api-server; for ``--celery`` PostgreSQL,
Redis and two Celery workers as tests/services/test_celery_executor.py). The pipeline is include/pipelines/demo.yaml
with ``schedule: null`` (only the runs triggered here). Unpauses the DAG, then triggers N runs one after another
through the REST API v2, each on its own logical date (one day apart: each builds and publishes its own version
and rolls the pool from the previous run's), and waits for each to end before the next.

Prints, and writes to ``benchmarks/results/<date>-retry-free[-celery].md``: per run its state, wall seconds
(trigger to end), task instances, how many deferred, and every task instance with ``try_number > 1`` (task id,
map index, tries, and the matching lines of the scheduler's log and of the task's log: Airflow's
"state mismatch" / "Failed to report terminal task state"). Exit status 1 when a run failed or a task was
retried, 2 when the stack could not start or a run did not end in time.

The race it watches for: apache/airflow#72716 (and #71580): the executor's "success" for a task's deferring
execution, drained by the scheduler after the resumed execution is already running, fails the task
("Executor ... reported that the task instance ... finished with state success, but the task instance's state
attribute is running"); the resumed execution then finds its task instance gone ("Failed to report terminal task
state ... Task Instance not found") and the task is retried.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from benchmarks.common import RESULTS_DIR, ROOT, StandIn, machine
from benchmarks.services import _task_instances, _wait_for_dag, task_log_executions

if str(ROOT / "plugins") not in sys.path:  # the pipeline's config rules (batch_images), as `make` and Airflow set
    sys.path.insert(0, str(ROOT / "plugins"))

DAG_ID = "batch_image_ubuntu2204"
FIRST_LOGICAL_DATE = datetime(2026, 11, 10, tzinfo=timezone.utc)
RUN_TIMEOUT = 1800.0  # seconds per run
# Airflow's lines around a spurious retry (scheduler_job_runner.py, the task SDK's task_runner.py / supervisor.py)
RACE_LINES = re.compile(r"state mismatch|finished with state \w+, but the task instance's state|"
                        r"Failed to report terminal task state|Task Instance not found|"
                        r"Marking task as UP_FOR_RETRY|Server indicated the task shouldn't be running")
DEFERRED = "Pausing task as DEFERRED"
HEARTBEAT_ENV = "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"
# A task execution's closing "::endgroup::" (the task runner's last line, with its ti_id: in the task's log file as
# JSON, and in the scheduler's log too for LocalExecutor) and the supervisor's "Workload finished" for it (the
# scheduler's or a Celery worker's log): the time between them is how late its end reached the executor.
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d\.\d+)")
_LAST_LINE = re.compile(r"::endgroup::.*loc=task_runner\.py:\d+.*\bti_id=([0-9a-f-]{36})")
_LAST_LINE_JSON = re.compile(r'^\{"timestamp":"([^"]+)".*"event":"::endgroup::".*"ti_id":"([0-9a-f-]{36})"')
_FINISHED = re.compile(r"Workload finished .*workload_id=([0-9a-f-]{36})")
LATE_SECONDS = 2.0


@dataclass
class RunOutcome:
    run_id: str
    logical_date: str
    state: str
    wall: float
    tis: int
    deferred: int
    retried: list[dict] = field(default_factory=list)   # {"task", "tries", "state", "lines"}


def ti_name(ti: dict) -> str:
    return ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")


def retried_text(o: RunOutcome) -> str:
    return ", ".join(f"{r['task']} ({r['tries']} tries)" for r in o.retried)


def matching_lines(text: str, *needles: str) -> list[str]:
    """Lines of ``text`` matching :data:`RACE_LINES` and containing every one of ``needles``."""
    return [line.strip()[:800] for line in text.splitlines()
            if RACE_LINES.search(line) and all(n in line for n in needles)]


def follow_run(stack, api, logical_date: datetime) -> RunOutcome:
    """Trigger one run of the demo DAG and poll it to its end (TimeoutError after RUN_TIMEOUT)."""
    start = time.monotonic()
    run = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": logical_date.isoformat(), "conf": {}})
    run_id = run["dag_run_id"]
    while run["state"] not in ("success", "failed"):
        if time.monotonic() - start > RUN_TIMEOUT:
            raise TimeoutError(f"run {run_id} still {run['state']} after {RUN_TIMEOUT:.0f} s; logs in {stack.log_dir}")
        stack.check_alive()
        time.sleep(1.0)
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
    wall = time.monotonic() - start
    tis = _task_instances(api, DAG_ID, run_id)
    log_root = stack.home / "logs"
    scheduler_log = stack.log("scheduler")
    out = RunOutcome(run_id, logical_date.date().isoformat(), run["state"], wall, len(tis), 0)
    for ti in tis:
        tries = int(ti.get("try_number") or 1)
        executions = task_log_executions(log_root, DAG_ID, run_id, ti["task_id"], ti["map_index"], tries)
        task_log = "\n".join(executions)
        out.deferred += DEFERRED in task_log
        if tries > 1:
            # the scheduler names the task instance as <TaskInstance: dag.task run_id ...>
            lines = matching_lines(scheduler_log, f"{DAG_ID}.{ti['task_id']} {run_id}") + matching_lines(task_log)
            out.retried.append({"task": ti_name(ti), "tries": tries, "state": ti["state"], "lines": lines})
    return out


def _epoch(text: str) -> float:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    return stamp.replace(tzinfo=timezone.utc).timestamp()


def exit_report_delays(stack) -> list[float]:
    """Seconds from each task execution's last line to its supervisor's "Workload finished" (the report to the
    executor), from the services' logs and the task log files."""
    ends: dict[str, list[float]] = {}
    finished: list[tuple[str, float]] = []
    paths = sorted(stack.log_dir.glob("*.log")) + sorted((stack.home / "logs").rglob("attempt=*.log"))
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if m := _LAST_LINE_JSON.match(line):
                ends.setdefault(m.group(2), []).append(_epoch(m.group(1)))
            elif stamp := _STAMP.match(line):
                t = _epoch(f"{stamp.group(1)}T{stamp.group(2)}")
                if m := _LAST_LINE.search(line):
                    ends.setdefault(m.group(1), []).append(t)
                elif m := _FINISHED.search(line):
                    finished.append((m.group(1), t))
    out = []
    for ti_id, t in finished:
        before = [e for e in ends.get(ti_id, []) if e <= t]
        if before:
            out.append(t - max(before))
    return out


def start_services(started: ExitStack, workdir: Path, celery: bool, time_scale: float, extra_env: dict):
    """The stand-in and the Airflow stack (and PostgreSQL, Redis for ``celery``); each stopped by ``started``."""
    from include.services.stack import AirflowStack, PostgresServer, RedisServer
    from tests.services._services import demo_pipelines_dir

    standin = started.enter_context(StandIn(time_scale=time_scale, workdir=workdir))
    kwargs: dict = {}
    if celery:
        pg = PostgresServer().start()
        started.callback(pg.stop)
        redis = RedisServer(workdir / "redis").start()
        started.callback(redis.stop)
        kwargs = {"sql_alchemy_conn": pg.url, "executor": "CeleryExecutor", "broker_url": redis.url,
                  "celery_workers": 2}
    stack = AirflowStack(home=workdir / "home", standin=standin.endpoints,
                         extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(demo_pipelines_dir(workdir / "pipelines")),
                                    **extra_env},
                         **kwargs)
    started.callback(stack.stop)
    stack.start()
    return stack


def report(outcomes: list[RunOutcome], args, stack_name: str, started_at: datetime, error: str | None,
           delays: list[float]) -> str:
    retried = [r for o in outcomes for r in o.retried]
    failed = [o for o in outcomes if o.state != "success"]
    m = machine()
    command = f"python -m benchmarks.retry_free --runs {args.runs}" + (" --celery" if args.celery else "") + \
        ("" if args.time_scale == 60 else f" --time-scale {args.time_scale:g}") + \
        ("" if args.min_heartbeat_interval is None else f" --min-heartbeat-interval {args.min_heartbeat_interval}")
    load_now = os.getloadavg()[0]
    lines = [f"# Retry-free runs, {stack_name}", "",
             f"`{command}`, started {started_at:%Y-%m-%d %H:%M} UTC on {m['cores']} cores ({m['cpu']}), "
             f"1-minute load {args.load_at_start:.1f} at the start and {load_now:.1f} at the end; stand-in at "
             f"{args.time_scale:g}x; `[workers] min_heartbeat_interval` {args.heartbeat} s; the demo pipeline with "
             "`schedule: null`, runs one after another, one logical date each.", "",
             "| run | logical date | state | wall (s) | task instances | deferred | retried |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for i, o in enumerate(outcomes, 1):
        lines.append(f"| {i} | {o.logical_date} | {o.state} | {o.wall:.1f} | {o.tis} | {o.deferred} | "
                     f"{retried_text(o) or 0} |")
    walls = [o.wall for o in outcomes]
    lines += ["", f"Runs: {len(outcomes)} of {args.runs}, {len(outcomes) - len(failed)} succeeded; task instances: "
                  f"{sum(o.tis for o in outcomes)} ({sum(o.deferred for o in outcomes)} deferred); retried: "
                  f"{len(retried)}; wall per run: "
                  + (f"min {min(walls):.1f} s, max {max(walls):.1f} s, total {sum(walls):.0f} s" if walls else "-")]
    if delays:
        late = [d for d in delays if d > LATE_SECONDS]
        lines += ["", f"Task executions whose end reached the executor more than {LATE_SECONDS:g} s after the task's "
                      f"last line: {len(late)} of {len(delays)} (longest {max(delays):.2f} s)."]
    if error:
        lines += ["", f"Stopped early: {error}"]
    for o in outcomes:
        for r in o.retried:
            lines += ["", f"## {o.run_id}: {r['task']}, {r['tries']} tries, ended {r['state']}", "", "```",
                      *(r["lines"] or ["(no matching line in the scheduler's or the task's log)"]), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="consecutive runs (default 10)")
    parser.add_argument("--celery", action="store_true", help="PostgreSQL + CeleryExecutor (2 workers) + Redis")
    parser.add_argument("--time-scale", type=float, default=60.0, help="the stand-in's time scale (make airflow: 60)")
    parser.add_argument("--min-heartbeat-interval", type=int, default=None,
                        help="[workers] min_heartbeat_interval for the services (default: include/services/stack.py's; "
                             "5, Airflow's default, shows the race)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    stack_name = ("PostgreSQL + CeleryExecutor (2 workers, Redis)" if args.celery
                  else "SQLite + LocalExecutor (make airflow)")
    out = args.out or RESULTS_DIR / f"{date.today():%Y-%m-%d}-retry-free{'-celery' if args.celery else ''}.md"
    started_at = datetime.now(timezone.utc)
    args.load_at_start = os.getloadavg()[0]
    outcomes: list[RunOutcome] = []
    error = None
    args.heartbeat = "?"
    delays: list[float] = []
    extra_env = {} if args.min_heartbeat_interval is None else {HEARTBEAT_ENV: str(args.min_heartbeat_interval)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retry-free-") as tmp, ExitStack() as started:
        try:
            print(f"starting the stand-in and {stack_name} in {tmp} ...", flush=True)
            stack = start_services(started, Path(tmp), args.celery, args.time_scale, extra_env)
            args.heartbeat = stack.env()[HEARTBEAT_ENV]
            api = stack.client()
            _wait_for_dag(api, DAG_ID, stack)
            api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
            for i in range(args.runs):
                o = follow_run(stack, api, FIRST_LOGICAL_DATE + timedelta(days=i))
                outcomes.append(o)
                print(f"run {i + 1}/{args.runs} {o.run_id}: {o.state} in {o.wall:.1f} s, {o.tis} task instances "
                      f"({o.deferred} deferred), retried: "
                      f"{retried_text(o) or 'none'}", flush=True)
                for r in o.retried:
                    print("\n".join(f"    {line}" for line in r["lines"]), flush=True)
                delays = exit_report_delays(stack)
                out.write_text(report(outcomes, args, stack_name, started_at, None, delays))  # kept if stopped later
        except (RuntimeError, TimeoutError, OSError) as err:
            error = str(err)[:3000]
            print(f"error: {error}", file=sys.stderr, flush=True)
    text = report(outcomes, args, stack_name, started_at, error, delays)
    out.write_text(text)
    print(text.split("\n\n", 3)[-1] if outcomes else text, flush=True)
    print(f"written: {out}", flush=True)
    if error:
        return 2
    return 1 if any(o.state != "success" or o.retried for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
