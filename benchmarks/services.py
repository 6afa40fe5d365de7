"""Pipeline runs under the real Airflow services, for benchmarks 2, 4 and 5 (``make bench --services``).

The stack is include/services/stack.py's: scheduler, triggerer, dag-processor and api-server, LocalExecutor
(parallelism 8, so mapped tasks run side by side) on a SQLite metadata DB in a temp ``AIRFLOW_HOME``; runs are
triggered through the REST API v2 (``POST /api/v2/dags/{dag_id}/dagRuns``) and followed there to their end.
The waits defer to the triggerer (``[operators] default_deferrable`` True, the project's default); the
synchronous run restarts the same services with ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=False``, which is how
a user turns deferral off for every waiting operator and sensor of the project. The Azure-speed pair runs on two
stacks at once (benchmarks/pipelines.py ``run_side_by_side``), each over its own stand-in in its own home; a
:class:`ProcSampler` reads only its own stack's scheduler's workers, so the two never mix.

What is sampled while a run goes (from ``/proc``, every :data:`SAMPLE_SECONDS`):

* **worker slots**: a LocalExecutor worker process is one executor slot. While it runs a workload its process
  title is ``airflow worker -- LocalExecutor: <task instance id>`` (Airflow's local_executor.py sets it when it
  takes the workload off the queue and puts ``<idle>`` back once the task process has exited and the result is
  reported). A task instance's *slot seconds* are the sum, over every execution of it (the first one and each
  resume after a deferral), of the time a worker's title named it. The DAG's own wait time in the triggerer
  is not in it; the worker's process start, DAG parse, connection reads and the API calls of the task are.
  Each execution is one busy span; with the task's own log (``<AIRFLOW_HOME>/logs/dag_id=.../attempt=<try>.log``,
  written by the task process, cut at each execution's start) its ``Waited ... in the worker`` lines give the
  seconds it spent in an in-worker wait loop (benchmarks/waiting.py).
* **triggerer memory**: the resident set (``VmRSS``) of the ``airflow triggerer`` process and every process
  under it (the trigger runner), summed; the peak of that sum over the run.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from benchmarks.common import StandIn
from benchmarks.waiting import execution, split_executions

WORKER_TITLE = "airflow worker -- LocalExecutor:"
# the task runner's line after it parsed the DAG file (the LocalExecutor's task processes log to the scheduler's log):
# its parse time, and which task instance (each try has its own id) is which task
_PARSED = re.compile(r"Worker startup parse complete .*")
_FIELD = re.compile(r"\b(dag_file_parse_ms|map_index|task_id|ti_id)=(\S+)")
SAMPLE_SECONDS = 0.05
RUN_TIMEOUT = 1800.0


def _ts(text: str | None) -> float | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc/<pid>/stat."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    children = children if children is not None else _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcSampler:
    """Samples the scheduler's LocalExecutor workers (busy intervals per task instance id) and the triggerer's
    resident memory (its process tree, summed) in a thread, until stopped."""

    def __init__(self, scheduler_pid: int, triggerer_pid: int):
        self.scheduler_pid, self.triggerer_pid = scheduler_pid, triggerer_pid
        self.busy: dict[str, list[list[float]]] = {}   # ti id -> [[start, end], ...]
        self.triggerer_peak = 0
        self.triggerer_samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-proc-sampler")

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        current: dict[int, str | None] = {}     # worker pid -> ti id it runs now
        workers: list[int] = []
        trig: list[int] = []
        next_scan = next_rss = 0.0
        while not self._stop.is_set():
            now = time.time()
            if now >= next_scan:  # the process trees change rarely (a task process, a trigger runner restart)
                kids = _children()
                # the LocalExecutor's workers are the scheduler's children; not their task processes, which are
                # forked with the worker's title and keep it until the task runner sets its own
                workers = kids.get(self.scheduler_pid, [])
                trig = descendants(self.triggerer_pid, kids)
                next_scan = now + 1.0
            for pid in workers:
                title = _title(pid)
                ti = title.split(WORKER_TITLE, 1)[1].strip() if WORKER_TITLE in title else None
                ti = None if ti in (None, "", "<idle>") else ti
                was = current.get(pid)
                if ti != was:
                    if was is not None:
                        self.busy[was][-1][1] = now
                    if ti is not None:
                        self.busy.setdefault(ti, []).append([now, now])
                    current[pid] = ti
                elif ti is not None:
                    self.busy[ti][-1][1] = now
            if now >= next_rss:
                total = sum(_rss(p) for p in trig)
                self.triggerer_samples.append(total)
                self.triggerer_peak = max(self.triggerer_peak, total)
                next_rss = now + 0.5
            self._stop.wait(SAMPLE_SECONDS)

    def slot_seconds(self, ti_id: str) -> tuple[float, int]:
        """``(slot seconds, executions)`` of one task instance id."""
        spans = self.busy.get(ti_id, [])
        return sum(e - s for s, e in spans), len(spans)


@dataclass
class ServicesRun:
    """One triggered run: its task instances, slot seconds and wall times."""

    dag_id: str
    run: dict
    tis: list[dict]
    slots: dict = field(default_factory=dict)      # "task" / "task[i]" -> {"slot", "executions", "deferred", "parse",
    #                                                  "tries"}
    trigger_to_end: float = 0.0                    # POST dagRuns -> state success seen (seconds)
    dag_seconds: float | None = None               # first task start -> last task end (the dags-test measure)
    triggerer_peak: int = 0                        # bytes
    triggerer_idle: int = 0                        # bytes, sampled before the trigger


class ServicesStack:
    """The real services over one stand-in, one stack at a time (deferrable or synchronous), home
    ``<workdir>/services-home``."""

    def __init__(self, standin: StandIn, workdir: Path, pipelines_dir: Path):
        self.standin, self.workdir, self.pipelines_dir = standin, Path(workdir), pipelines_dir
        self.stack = None
        self.deferrable: bool | None = None
        self.start_seconds: list[float] = []

    def ensure(self, deferrable: bool) -> None:
        if self.stack is not None and self.deferrable == deferrable:
            return
        self.close()
        from include.services.stack import AirflowStack

        t0 = time.monotonic()
        self.stack = AirflowStack(
            home=self.workdir / "services-home", standin=self.standin.endpoints,
            extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(self.pipelines_dir),
                       "BATCH_IMAGES_RETRY_DELAY_SECONDS": "1",
                       "AIRFLOW__CORE__PARALLELISM": "8",
                       "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable)})
        self.stack.start()
        self.deferrable = deferrable
        self.start_seconds.append(time.monotonic() - t0)

    def close(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def run(self, dag_id: str, logical_date: str, timeout: float = RUN_TIMEOUT) -> ServicesRun:
        """Trigger ``dag_id`` through the REST API v2 and follow it to its end (RuntimeError unless success;
        TimeoutError when it has not ended after ``timeout`` seconds)."""
        stack = self.stack
        api = stack.client()
        _wait_for_dag(api, dag_id, stack)
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        seen: dict[tuple[str, int], set] = {}
        procs = stack.procs
        log_from = (stack.log_dir / "scheduler.log").stat().st_size
        with ProcSampler(procs["scheduler"].pid, procs["triggerer"].pid) as sampler:
            time.sleep(1.0)
            idle = sampler.triggerer_peak
            start = time.monotonic()
            run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": {}})
            run_id = run["dag_run_id"]
            while True:
                stack.check_alive()
                run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
                for ti in _task_instances(api, dag_id, run_id):
                    seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
                if run["state"] in ("success", "failed"):
                    break
                if time.monotonic() - start > timeout:
                    raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s; "
                                       f"logs in {stack.log_dir}")
                time.sleep(1.0)
            wall = time.monotonic() - start
            time.sleep(2 * SAMPLE_SECONDS)
        tis = _task_instances(api, dag_id, run_id)
        parse: dict[str, float] = {}       # ti id -> DAG parse seconds, every execution
        ids: dict[str, set] = {}            # "task[i]" -> ti ids of every try
        with open(stack.log_dir / "scheduler.log", "rb") as fh:
            fh.seek(log_from)
            for m in _PARSED.finditer(fh.read().decode(errors="replace")):
                f = dict(_FIELD.findall(m.group(0)))
                if "ti_id" not in f:
                    continue
                parse[f["ti_id"]] = parse.get(f["ti_id"], 0.0) + int(f.get("dag_file_parse_ms", 0)) / 1000
                ids.setdefault(_name(f.get("task_id", ""), int(f.get("map_index", -1))), set()).add(f["ti_id"])
        if run["state"] != "success":
            bad = {(t["task_id"], t["map_index"]): t["state"] for t in tis if t["state"] != "success"}
            raise RuntimeError(f"{dag_id} run {run_id} ended {run['state']}: {bad}; logs in {stack.log_dir}")
        out = ServicesRun(dag_id, run, tis, trigger_to_end=wall, triggerer_peak=sampler.triggerer_peak,
                          triggerer_idle=idle)
        for ti in tis:
            name = _name(ti["task_id"], ti["map_index"])
            tries = ti.get("try_number") or 1
            every = ids.get(name, set()) | {ti["id"]}
            slot = sum(sampler.slot_seconds(i)[0] for i in every)
            executions = sum(sampler.slot_seconds(i)[1] for i in every)
            # each try runs once, and once more after each deferral; the polled states show a deferral too
            deferred = executions > tries or "deferred" in seen.get((ti["task_id"], ti["map_index"]), set())
            spans = sorted(span for i in every for span in sampler.busy.get(i, []))
            logs = task_log_executions(stack.home / "logs", dag_id, run_id, ti["task_id"], ti["map_index"], tries)
            execs = [execution(spans[k][1] - spans[k][0] if k < len(spans) else None, logs[k] if k < len(logs) else "")
                     for k in range(max(len(spans), len(logs)))]
            out.slots[name] = {"slot": slot, "executions": executions, "deferred": deferred,
                               "parse": sum(parse.get(i, 0.0) for i in every), "tries": tries,
                               "execs": execs}
        starts = [_ts(t["start_date"]) for t in tis if t.get("start_date")]
        ends = [_ts(t["end_date"]) for t in tis if t.get("end_date")]
        out.dag_seconds = (max(ends) - min(starts)) if starts and ends else None
        return out


def task_log_executions(log_root: Path, dag_id: str, run_id: str, task_id: str, map_index: int,
                        tries: int) -> list[str]:
    """The log text of each execution of a task instance, every try in order (Airflow 3's local task log
    files: ``<log_root>/dag_id=<d>/run_id=<r>/task_id=<t>[/map_index=<i>]/attempt=<n>.log``); a missing file
    adds nothing."""
    folder = Path(log_root) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    out: list[str] = []
    for attempt in range(1, max(int(tries), 1) + 1):
        path = folder / f"attempt={attempt}.log"
        if path.exists():
            out += split_executions(path.read_text(errors="replace"))
    return out


def _name(task_id: str, map_index: int) -> str:
    return task_id + (f"[{map_index}]" if map_index >= 0 else "")


def _wait_for_dag(api, dag_id: str, stack, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        errors = api.get("/api/v2/importErrors")["import_errors"]
        if errors:
            raise RuntimeError(f"DAG import errors: {errors}")
        if any(d["dag_id"] == dag_id for d in api.get("/api/v2/dags", dag_id_pattern=dag_id)["dags"]):
            return
        time.sleep(1)
    raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f} s; logs in {stack.log_dir}")


def _task_instances(api, dag_id: str, run_id: str) -> list[dict]:
    out: list[dict] = []
    while True:
        page = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(out))
        out += page["task_instances"]
        if not page["task_instances"] or len(out) >= page["total_entries"]:
            return out
