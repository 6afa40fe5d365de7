"""The fault suite's harness: a test pipeline per test, runs (and same-run resumes) of its DAG, invariants.

* :func:`pipeline_config` - include/pipelines/demo.yaml's pipeline pointed at the stand-in, with a unique
  ``dag_id``, ``poll_interval_seconds: 1`` and optional region / pool overrides.
* :class:`PipelineHarness` - writes that pipeline to its own BATCH_IMAGES_PIPELINES_DIR, creates a
  "serving" pool with the SDK beforehand (yesterday's pool of the same prefix, on a marketplace image,
  steady with idle nodes), and runs the DAG with ``airflow dags test`` in a child process
  (:meth:`~PipelineHarness.run`), optionally SIGKILLing it at a log line or once the stand-in has logged a
  given request (:func:`request_seen`; with a held-back answer the worker is certainly inside that request
  when it dies). :meth:`~PipelineHarness.resume`
  goes on with the *same* DagRun the way Airflow does after a worker dies: the killed task instance is
  marked up_for_retry (what the scheduler does on a heartbeat timeout) and ``resume_dag_run.py`` runs
  ``airflow dags test`` without deleting the run (same run_id, try_number + 1, upstream XComs kept).
* :meth:`~PipelineHarness.invariants` - the issue's invariants, measured against the stand-in with the
  unmodified SDKs: no temporary snapshot / managed image / disk left in the work resource group beyond
  the seeded ones; versions in the definition (exactly one, the run's, on success); pools (exactly one
  per configured pool on success, none of this run on failure); the serving pool unchanged (id, image,
  targets, state, eTag, node counts). Returns a :class:`Report` whose ``leaked`` count is what the
  table shows.

Task retries are made fast for the suite with BATCH_IMAGES_RETRY_DELAY_SECONDS (read by the DAG factory);
production keeps the 1-minute exponential backoff.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from include.pipeline_fixtures import SHORT_FIELDS, short_field_pool
from include.pipeline_runner import RunResult, connection_env, read_run, write_pipeline

logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request of the checks at INFO

ROOT = Path(__file__).resolve().parents[2]
RESUME_SCRIPT = Path(__file__).resolve().parent / "resume_dag_run.py"
LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
VERSION = "2026.1125.0"
POOL_PREFIX = "ubuntu2204"
POOL_ID = f"{POOL_PREFIX}-2026-1125-0"
SERVING_POOL_ID = f"{POOL_PREFIX}-2026-1124-0"   # yesterday's pool of the same pipeline: must survive any run
FAST_RETRIES = {"BATCH_IMAGES_RETRY_DELAY_SECONDS": "1"}
UBUNTU_2204 = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
               "version": "latest"}
NODE_AGENT = "batch.node.ubuntu 22.04"
# Operations that create the run's resources (see PipelineHarness.creations).
CREATE_OPS = ("Snapshots_CreateOrUpdate", "Images_CreateOrUpdate", "GalleryImageVersions_CreateOrUpdate",
              "Pool_Add")


def pipeline_config(endpoints: dict, dag_id: str, *, regions: list[str] | None = None,
                    pool: dict | None = None, **top) -> dict:
    """demo.yaml's pipeline for this stand-in: unique dag_id, poll every second, optional overrides. A ``pool``
    override that sets a short field (vm_size, target_*_nodes, start_task, ...) gets the demo's pool written with
    the short fields (include/pipeline_fixtures.py), else the demo's template pool is kept."""
    from batch_images.rules.config import load_pipelines

    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = endpoints["demo"]
    cfg["dag_id"] = dag_id
    cfg["source_vm_id"] = demo["source_vm_id"]
    cfg["gallery"]["subscription_id"] = demo["subscription_id"]
    cfg["gallery"]["resource_group"] = demo["resource_group"]
    cfg["pools"][0]["batch_account_id"] = demo["batch_account_id"]
    cfg["poll_interval_seconds"] = 1
    if regions:
        cfg["target_regions"] = [{"name": r, "regional_replica_count": None, "storage_account_type": None}
                                 for r in regions]
    if pool and set(pool) & set(SHORT_FIELDS):
        cfg["pools"][0] = short_field_pool(cfg["pools"][0], **pool)
    elif pool:
        cfg["pools"][0].update(pool)
    cfg.update(top)
    return cfg


def dag_id_for(test_name: str) -> str:
    return "rel_" + re.sub(r"[^A-Za-z0-9_]+", "_", test_name).strip("_").lower()[:200]


# --- the serving pool -------------------------------------------------------------------------------------------


def create_serving_pool(standin, pool_id: str = SERVING_POOL_ID, nodes: int = 2, timeout: float = 30.0) -> dict:
    """A pool that serves jobs before the run (marketplace Ubuntu 22.04, steady, every node idle)."""
    from azure.batch import models as bm

    batch = standin.batch()
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=nodes,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(**UBUNTU_2204), node_agent_sku_id=NODE_AGENT),
        metadata=[bm.BatchMetadataItem(name="purpose", value="serving")],
    ))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        facts = pool_facts(standin, pool_id)
        if facts and facts["allocation_state"] == "steady" and facts["nodes"].get("idle") == nodes:
            return facts
        time.sleep(0.1)
    raise AssertionError(f"serving pool {pool_id} did not become steady: {pool_facts(standin, pool_id)}")


def _text(value) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def pool_facts(standin, pool_id: str) -> dict | None:
    """What a run must not change about a pool it does not own."""
    from azure.core.exceptions import ResourceNotFoundError

    batch = standin.batch()
    try:
        pool = batch.get_pool(pool_id)
    except ResourceNotFoundError:
        return None
    ref = pool.virtual_machine_configuration.image_reference
    counts = {}
    for c in batch.list_pool_node_counts():
        if c.pool_id == pool_id and c.dedicated:
            counts = {k: v for k, v in c.dedicated.as_dict().items() if isinstance(v, int) and v and k != "total"}
    return {
        "id": pool.id, "state": _text(pool.state), "allocation_state": _text(pool.allocation_state),
        "image": ref.virtual_machine_image_id or f"{ref.publisher}:{ref.offer}:{ref.sku}:{ref.version}",
        "target_dedicated_nodes": pool.target_dedicated_nodes,
        "target_low_priority_nodes": pool.target_low_priority_nodes,
        "current_dedicated_nodes": pool.current_dedicated_nodes, "etag": pool.etag,
        "last_modified": str(pool.last_modified), "resize_errors": len(pool.resize_errors or []),
        "metadata": {m.name: m.value for m in pool.metadata or []}, "nodes": counts,
    }


# --- running the DAG ---------------------------------------------------------------------------------------------


def _run_child(cmd: list[str], log_path: Path, env: dict[str, str], kill_at: str | None,
               kill_when: Callable[[], bool] | None, timeout: float) -> tuple[int | None, float]:
    """Run `cmd` with its output in log_path; SIGKILL its process group as soon as regex `kill_at` shows up
    in the log (read incrementally every 20 ms) or `kill_when()` says so (asked as often)."""
    pattern = re.compile(kill_at, re.MULTILINE) if kill_at else None
    start = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log, open(log_path, errors="replace") as reader:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        text, checked = "", 0
        while True:
            try:
                return proc.wait(timeout=0.02), time.monotonic() - start
            except subprocess.TimeoutExpired:
                pass
            kill = False
            if pattern is not None:
                text += reader.read()
                kill = bool(pattern.search(text, max(0, checked - 4000)))
                checked = len(text)
            if kill or (kill_when is not None and kill_when()):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None, time.monotonic() - start
            if time.monotonic() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise TimeoutError(f"{' '.join(cmd[-4:])} ran over {timeout}s; log: {log_path}")


@dataclass
class Report:
    """What :meth:`PipelineHarness.invariants` measured. ``leaked`` counts every violation."""

    leaked: int = 0
    problems: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def add(self, count: int, problem: str) -> None:
        if count:
            self.leaked += count
            self.problems.append(problem)

    def __str__(self) -> str:
        return "; ".join(self.problems) or "all invariants hold"


class PipelineHarness:
    def __init__(self, standin, dag_id: str, workdir: Path, pipeline: dict, *, serving_pool: bool = True,
                 env: dict[str, str] | None = None) -> None:
        self.standin = standin
        self.dag_id = dag_id
        self.workdir = workdir
        self.pipeline = pipeline
        self.pipelines_dir = workdir / "pipelines"
        write_pipeline(self.pipelines_dir, pipeline)
        self.env = {**connection_env(standin.endpoints), **FAST_RETRIES, **(env or {})}
        self.runs = 0
        self.last: RunResult | None = None
        compute = standin.compute()
        self.work_rg = pipeline.get("work_resource_group") or pipeline["gallery"]["resource_group"]
        self.before = self._temporaries(compute)
        self.serving = create_serving_pool(standin) if serving_pool else None
        self.request_mark = standin.control.requests()["last_id"]

    # -- runs ----------------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "BATCH_IMAGES_PIPELINES_DIR": str(self.pipelines_dir)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
        return env

    def next_log_path(self, resume: bool = False) -> Path:
        return self.workdir / f"run{self.runs + 1}{'-resume' if resume else ''}.log"

    def run(self, *, kill_at: str | None = None, kill_when: Callable[[], bool] | None = None,
            timeout: float = 240.0, resume: bool = False, conf: dict | None = None) -> RunResult:
        """`airflow dags test` of the pipeline (a fresh run, with ``conf`` as its params if given), or with
        resume=True the same run going on.

        The worker is SIGKILLed when regex `kill_at` shows up in its log or when `kill_when()` is true
        (e.g. :func:`request_seen`); the result then has exit_code None.
        """
        log_path = self.next_log_path(resume)
        self.runs += 1
        if resume:
            cmd = [sys.executable, str(RESUME_SCRIPT), self.dag_id, LOGICAL_DATE]
        else:
            cmd = [sys.executable, "-m", "airflow", "dags", "test", self.dag_id, LOGICAL_DATE,
                   *(["--conf", json.dumps(conf)] if conf else [])]
        rc, wall = _run_child(cmd, log_path, self._env(), kill_at, kill_when, timeout)
        result = RunResult(rc, wall, log_path)
        result.run, result.tasks, result.xcoms = read_run(self.dag_id, LOGICAL_DATE)
        self.last = result
        return result

    def resume(self, **kwargs) -> RunResult:
        """After a SIGKILL: mark the killed task instance(s) up_for_retry and let the same run go on."""
        self.killed_tasks = mark_killed_for_retry(self.dag_id, LOGICAL_DATE)
        return self.run(resume=True, **kwargs)

    # -- what happened -------------------------------------------------------------------------------------------

    @property
    def plan(self) -> dict:
        plan = (self.last.xcoms if self.last else {}).get("preflight:return_value")
        assert plan, f"no preflight plan in XCom; log: {self.last.log_path if self.last else None}"
        return plan

    def requests(self) -> list[dict]:
        """The stand-in's request log since the harness was set up (ARM and Batch only)."""
        items = self.standin.control.requests(since=self.request_mark, items=True)["items"]
        return [r for r in items if r["family"] in ("arm", "batch")]

    def creations(self) -> dict[str, list[str]]:
        """Successful creations per operation: {op: [paths]} (a resource created twice shows twice)."""
        out: dict[str, list[str]] = {op: [] for op in CREATE_OPS}
        for r in self.requests():  # ARM: 201 (202 for snapshots) creates, 200 updates; Batch Pool_Add: 201
            if r["op"] in out and r["status"] in (201, 202):
                out[r["op"]].append(r["path"].lower())
        return out

    def writes_before_refusal(self, result: RunResult) -> int | None:
        """Successful writes (ARM/Batch, not GET) made before the task that failed the run gave up.

        None when the run did not fail. The refusal is the end of the first failed task instance
        (teardown excluded: it is what runs *after* the refusal).
        """
        if result.state == "success":
            return None
        end = failed_task_end(self.dag_id, LOGICAL_DATE)
        return sum(1 for r in self.requests()
                   if r["write"] and r["status"] < 400 and (end is None or r["real_ts"] <= end))

    # -- invariants ----------------------------------------------------------------------------------------------

    def _temporaries(self, compute) -> dict[str, set[str]]:
        rg = self.work_rg
        return {
            "snapshots": {s.id.lower() for s in compute.snapshots.list_by_resource_group(rg)},
            "images": {i.id.lower() for i in compute.images.list_by_resource_group(rg)},
            "disks": {d.id.lower() for d in compute.disks.list_by_resource_group(rg)},
        }

    def versions(self) -> list[dict]:
        from azure.core.exceptions import ResourceNotFoundError

        g, d = self.pipeline["gallery"], self.pipeline["image_definition"]
        try:
            found = list(self.standin.compute().gallery_image_versions.list_by_gallery_image(
                g["resource_group"], g["name"], d["name"]))
        except ResourceNotFoundError:
            return []
        return [{"name": v.name, "id": v.id, "state": v.provisioning_state} for v in found]

    def pools(self) -> dict[str, dict]:
        """Every pool of every seeded Batch account (a pipeline's pools may be in several accounts)."""
        out = {}
        for account in self.standin.endpoints["batch_accounts"]:
            for p in self.standin.batch(account).list_pools():
                out[p.id] = {"state": _text(p.state), "allocation_state": _text(p.allocation_state),
                             "image": p.virtual_machine_configuration.image_reference.virtual_machine_image_id,
                             "current_dedicated_nodes": p.current_dedicated_nodes,
                             "target_dedicated_nodes": p.target_dedicated_nodes,
                             "metadata": {m.name: m.value for m in p.metadata or []}, "account": account}
        return out

    def invariants(self, *, success: bool, versions: str | None = None, settle: float = 20.0) -> Report:
        """Measure the issue's invariants after a run.

        :param success: the run is expected to have succeeded (else: failed).
        :param versions: how many versions of the run's name may exist: "one", "none", "at_most_one"
            (default: "one" on success, "at_most_one" on failure).
        :param settle: seconds to wait for deletions still in flight (a failed run's pool, a teardown's
            snapshots) before counting them as leaks.
        """
        versions = versions or ("one" if success else "at_most_one")
        compute = self.standin.compute()
        report = Report()
        deadline = time.monotonic() + settle
        while True:
            now = self._temporaries(compute)
            pools = self.pools()
            mine = [p for p in pools if p != SERVING_POOL_ID]
            busy = (any(now[k] - self.before[k] for k in now)
                    or (not success and mine))
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        for kind in ("snapshots", "images", "disks"):
            extra = sorted(now[kind] - self.before[kind])
            names = [e.rsplit("/", 1)[-1] for e in extra]
            report.add(len(extra), f"{len(extra)} {kind} left in {self.work_rg}: {names}")
        report.facts["temporaries"] = {k: sorted(v - self.before[k]) for k, v in now.items()}

        found = self.versions()
        report.facts["versions"] = found
        ours = [v for v in found if v["name"] == VERSION]
        others = [v for v in found if v["name"] != VERSION]
        report.add(len(others), f"unexpected versions {[v['name'] for v in others]} (one version per run)")
        want = {"one": (1, 1), "none": (0, 0), "at_most_one": (0, 1)}[versions]
        if not want[0] <= len(ours) <= want[1]:
            report.add(max(1, abs(len(ours) - want[1])), f"{len(ours)} version(s) {VERSION}, expected {versions}")
        if success and ours and ours[0]["state"] != "Succeeded":
            report.add(1, f"version {VERSION} is {ours[0]['state']}")

        report.facts["pools"] = pools
        plan = (self.last.xcoms if self.last else {}).get("preflight:return_value") or {}
        expected = [p["pool_id"] for p in plan.get("pools", [])] or [POOL_ID]
        strays = [p for p in pools if p not in expected and p != SERVING_POOL_ID]
        report.add(len(strays), f"pools nobody configured: {strays}")
        if success:
            for pool_id in expected:
                p = pools.get(pool_id)
                if p is None:
                    report.add(1, f"configured pool {pool_id} missing after a successful run")
                    continue
                version_id = (self.last.xcoms.get("publish_image_version:return_value") or "").lower()
                steady = p["state"] == "active" and p["allocation_state"] == "steady"
                if not steady or (p["image"] or "").lower() != version_id:
                    report.add(1, f"pool {pool_id} is {p['state']}/{p['allocation_state']} on {p['image']}, "
                                  f"expected active/steady on {version_id}")
        else:
            half = [p for p in expected if p in pools]
            report.add(len(half), f"half-made pool(s) left behind by a failed run: "
                                  f"{ {p: pools[p]['state'] for p in half} }")
        if self.serving is not None:
            after = pool_facts(self.standin, SERVING_POOL_ID)
            report.facts["serving_pool"] = after
            if after != self.serving:
                changed = {k: (self.serving.get(k), (after or {}).get(k)) for k in self.serving
                           if (after or {}).get(k) != self.serving.get(k)}
                report.add(1, f"serving pool {SERVING_POOL_ID} changed: {changed if after else 'deleted'}")
        return report


def mark_killed_for_retry(dag_id: str, logical_date: str) -> list[str]:
    """What the scheduler does when a task's worker dies (heartbeat timeout): up_for_retry, same run.

    Task instances still running / queued / deferred / scheduled in the run are set up_for_retry
    (their deferral, if any, forgotten: a retry starts with execute()). Their end is dated a minute
    back: the scheduler notices a dead worker only after the heartbeat timeout, so the retry delay has
    passed by then.
    """
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as S

    wanted = datetime.fromisoformat(logical_date)
    marked = []
    with create_session() as session:
        run = (session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.logical_date == wanted)
               .order_by(DagRun.id.desc()).first())
        assert run is not None, f"no run of {dag_id} at {logical_date}"
        for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id):
            if ti.state in (S.RUNNING, S.QUEUED, S.DEFERRED, S.SCHEDULED, S.RESTARTING):
                ti.state = S.UP_FOR_RETRY
                ti.end_date = datetime.now(timezone.utc) - timedelta(minutes=1)
                ti.next_method = None
                ti.next_kwargs = None
                ti.trigger_id = None
                marked.append(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]")
    return marked


def failed_task_end(dag_id: str, logical_date: str) -> float | None:
    """Epoch seconds at which the first failed (non-teardown) task instance of the run ended."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as S

    wanted = datetime.fromisoformat(logical_date)
    with create_session() as session:
        run = (session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.logical_date == wanted)
               .order_by(DagRun.id.desc()).first())
        if run is None:
            return None
        ends = [ti.end_date.timestamp() for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id, TaskInstance.state == S.FAILED,
            TaskInstance.task_id != "delete_temporary_resources") if ti.end_date]
    return min(ends) if ends else None


# --- request-log checks ------------------------------------------------------------------------------------------


def request_seen(standin, op: str, nth: int = 1, path_regex: str | None = None, since: int = 0) -> Callable[[], bool]:
    """A kill_when predicate: the stand-in has logged the nth request of operation `op` (path matching).

    With an `http` fault that holds that request's answer back (`delay`), the worker is then certainly
    blocked inside it: Azure did the work, the worker dies before hearing so.
    """
    regex = re.compile(path_regex, re.IGNORECASE) if path_regex else None
    seen = {"since": since, "count": 0}

    def check() -> bool:
        log = standin.control.requests(since=seen["since"], items=True)
        seen["count"] += sum(1 for r in log["items"] if r["op"] == op and (regex is None or regex.search(r["path"])))
        seen["since"] = log["last_id"] or seen["since"]
        return seen["count"] >= nth

    return check



def retry_after_gaps(items: list[dict]) -> list[dict]:
    """For every throttled answer with Retry-After: the gap until the same method + path was asked again."""
    out = []
    for i, r in enumerate(items):
        if r["status"] in (429, 503) and r.get("retry_after"):
            nxt = next((x for x in items[i + 1:] if x["method"] == r["method"] and x["path"] == r["path"]), None)
            out.append({"op": r["op"], "method": r["method"], "status": r["status"], "retry_after": r["retry_after"],
                        "gap": None if nxt is None else round(nxt["real_ts"] - r["real_ts"], 3)})
    return out


def watch_log(path: Path, pattern: str, action: Callable[[], None], timeout: float = 240.0) -> threading.Thread:
    """Run `action` once, in a thread, when regex `pattern` first shows up in the log at `path`."""
    regex = re.compile(pattern, re.MULTILINE)

    def loop() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and regex.search(path.read_text(errors="replace")):
                action()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def summary(report: Report, result: RunResult) -> str:
    """One line for assertion messages: run state, failed tasks, invariant problems, log path."""
    failed = [t["task"] for t in result.tasks if t["state"] not in ("success", "skipped")]
    return (f"run {result.state} (exit {result.exit_code}), not successful: {failed}; {report}; "
            f"log {result.log_path}")


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
