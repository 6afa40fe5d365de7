"""The demo pipeline under the real Airflow services, triggered through the REST API v2.

Unlike `airflow dags test` (which runs triggers in-line in one process), here a scheduler queues the
tasks, an executor runs them in worker processes, the waits defer to a separate triggerer, and the DAG is
parsed by the dag-processor. Two shapes:

1. SQLite + LocalExecutor (what `make airflow` runs);
2. PostgreSQL + CeleryExecutor with a Redis broker and two Celery workers: the tasks of one run are
   executed by both workers, so nothing may depend on a task's local disk or process.

Each test unpauses the pipeline, triggers a run with ``logical_date`` and ``conf`` ({"rebuild": 1}),
waits for it, and checks: the run and every task succeeded; every waiting task (a sensor, or a task named
``wait_*``) was deferred - its log, read through the API, holds the worker's "Pausing task as DEFERRED"
and the triggerer's "Trigger fired event"; and, through the SDKs against the stand-in, the version
YYYY.MMDD.1 is published and replicated, the run's pools are steady at their target, and no temporary
snapshot or managed image is left.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

import pytest

from include.services.stack import AirflowStack, ApiClient, PostgresServer, RedisServer
from _services import DAG_ID, demo_pipelines_dir, wait_for_dag

pytestmark = pytest.mark.services
logging.getLogger("azure").setLevel(logging.WARNING)

LOGICAL_DATE = "2026-11-25T00:00:00Z"
REBUILD = 1
VERSION = f"2026.1125.{REBUILD}"
RUN_TIMEOUT = 600  # seconds; a run takes 1-3 minutes on a loaded 2-core machine
DEFERRED_BY_WORKER = "Pausing task as DEFERRED"
FIRED_IN_TRIGGERER = "Trigger fired event"


@dataclass
class TriggeredRun:
    run: dict
    tis: list[dict]
    waiting: list[dict]
    logs: dict = field(default_factory=dict)   # (task_id, map_index) -> log text of its last try
    seen: dict = field(default_factory=dict)   # (task_id, map_index) -> states seen while polling
    wall_seconds: float = 0.0


def _log_text(api: ApiClient, run_id: str, ti: dict) -> str:
    """The task instance's log for its last try through the API (worker and triggerer parts merged)."""
    doc = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                  f"{ti['try_number']}", map_index=ti["map_index"], full_content="true")
    content = doc.get("content") if isinstance(doc, dict) else doc
    if isinstance(content, list):
        return "\n".join(str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content)
    return str(content)


def _is_waiting_task(task: dict) -> bool:
    """A task that waits on Azure: a sensor, or one named wait_* (the project's naming rule for waits)."""
    cls = (task.get("class_ref") or {}).get("class_name") or task.get("operator_name") or ""
    return cls.endswith("Sensor") or task["task_id"].startswith("wait_")


def trigger_and_wait(api: ApiClient, conf: dict) -> TriggeredRun:
    """Unpause the pipeline, trigger it through the REST API v2, poll until the run ends."""
    wait_for_dag(api, DAG_ID)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    start = time.monotonic()
    run = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL_DATE, "conf": conf})
    run_id = run["dag_run_id"]
    seen: dict = {}
    deadline = start + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        for ti in tis:
            seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
        if run["state"] in ("success", "failed"):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"run {run_id} still {run['state']} after {RUN_TIMEOUT} s; task states: "
                    f"{ {k: sorted(map(str, v)) for k, v in seen.items()} }")
    wall = time.monotonic() - start
    tasks = api.get(f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]
    waiting_ids = {t["task_id"] for t in tasks if _is_waiting_task(t)}
    out = TriggeredRun(run, tis, [ti for ti in tis if ti["task_id"] in waiting_ids], seen=seen, wall_seconds=wall)
    for ti in out.waiting:
        out.logs[(ti["task_id"], ti["map_index"])] = _log_text(api, run_id, ti)
    return out


def leftovers(standin) -> list[str]:
    """Temporary snapshots and managed images in the demo's work resource group."""
    compute, rg = standin.compute(), standin.endpoints["demo"]["resource_group"]
    return [s.id for s in compute.snapshots.list_by_resource_group(rg)] + \
           [i.id for i in compute.images.list_by_resource_group(rg)]


def assert_run_and_azure_state(result: TriggeredRun, standin, before: list[str]) -> None:
    run = result.run
    failed = {(t["task_id"], t["map_index"]): t["state"] for t in result.tis if t["state"] != "success"}
    assert run["state"] == "success", f"run {run['dag_run_id']}: {run['state']}; tasks not successful: {failed}"
    assert not failed, failed
    assert run["conf"] == {"rebuild": REBUILD}
    assert run["run_type"] == "manual"

    # every wait deferred to the triggerer, and the triggerer (not the worker) fired its event
    assert result.waiting, "the pipeline has no waiting task (no sensor, no wait_* task)"
    for ti in result.waiting:
        key = (ti["task_id"], ti["map_index"])
        log = result.logs[key]
        assert DEFERRED_BY_WORKER in log, f"{key} was never deferred; its log:\n{log[-3000:]}"
        assert FIRED_IN_TRIGGERER in log, f"{key}: no trigger event from the triggerer in its log:\n{log[-3000:]}"

    # Azure, through the SDKs: the version of rebuild 1 published and replicated, the run's pools steady
    compute, batch = standin.compute(), standin.batch()
    from batch_images.rules.config import load_pipelines
    from include.pipeline_runner import ROOT

    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0]
    version = compute.gallery_image_versions.get(cfg.gallery.resource_group, cfg.gallery.name,
                                                 cfg.image_definition.name, VERSION, expand="ReplicationStatus")
    assert version.provisioning_state == "Succeeded"
    replication = {s.region.replace(" ", "").lower(): getattr(s.state, "value", s.state)
                   for s in version.replication_status.summary}
    assert replication == {r.name: "Completed" for r in cfg.target_regions}
    from batch_images.rules.naming import TAG_RUN_ID

    pools = [p for p in batch.list_pools()
             if any(m.name == TAG_RUN_ID and m.value == run["dag_run_id"] for m in p.metadata or [])]
    assert pools, f"no pool carries metadata {TAG_RUN_ID}={run['dag_run_id']}"
    for pool in pools:
        assert getattr(pool.allocation_state, "value", pool.allocation_state) == "steady", pool.id
        assert pool.current_dedicated_nodes == pool.target_dedicated_nodes > 0, pool.id
        assert VERSION in pool.virtual_machine_configuration.image_reference.virtual_machine_image_id
    assert leftovers(standin) == before


def test_sqlite_local_executor_run_from_the_rest_api(sqlite_stack, services_standin, record_property):
    before = leftovers(services_standin)
    result = trigger_and_wait(sqlite_stack.client(), {"rebuild": REBUILD})
    record_property("wall_seconds", round(result.wall_seconds, 1))
    print(f"\nreal services, SQLite + LocalExecutor: run {result.run['state']} in {result.wall_seconds:.1f} s")
    assert_run_and_azure_state(result, services_standin, before)


@pytest.fixture
def celery_stack(services_standin, tmp_path):
    """PostgreSQL metadata DB, Redis broker, CeleryExecutor with two workers (2 slots each)."""
    pg = PostgresServer().start()
    redis = RedisServer(tmp_path / "redis").start()
    stack = AirflowStack(home=tmp_path / "home", standin=services_standin.endpoints, sql_alchemy_conn=pg.url,
                         executor="CeleryExecutor", broker_url=redis.url, celery_workers=2,
                         extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(demo_pipelines_dir(tmp_path / "pipelines"))})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        redis.stop()
        pg.stop()


def test_postgres_celery_two_workers_run_from_the_rest_api(celery_stack, services_standin, record_property):
    before = leftovers(services_standin)
    result = trigger_and_wait(celery_stack.client(), {"rebuild": REBUILD})
    record_property("wall_seconds", round(result.wall_seconds, 1))
    print(f"\nreal services, PostgreSQL + CeleryExecutor (2 workers): run {result.run['state']} in "
          f"{result.wall_seconds:.1f} s")
    assert_run_and_azure_state(result, services_standin, before)

    # the tasks of this one run were executed by both workers (each worker logs the workloads it runs)
    run_id = result.run["dag_run_id"]
    ran_on = {}
    for worker in ("worker1", "worker2"):
        log = celery_stack.log(worker)
        ran_on[worker] = {m for m in re.findall(r"task_id='([^']+)'", "\n".join(
            line for line in log.splitlines() if "Executing workload" in line and run_id in line))}
    assert ran_on["worker1"] and ran_on["worker2"], f"tasks per worker: {ran_on}"
    assert ran_on["worker1"] | ran_on["worker2"] >= {ti["task_id"] for ti in result.tis}, ran_on
