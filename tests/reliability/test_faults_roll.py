"""The roll (issue 10) through the real DAG (`airflow dags test` in a child process) against the stand-in, one table
row per situation: in_place with a running task, a roll while another run holds the lease (and an expired lease
taken over), a rejected approval, the drain timeout (keep and requeue), a backfill that must not roll back, and two
nights whose second is SIGKILLed in each new step and resumed.

Serving pools are made with azure-batch beforehand, carrying the roll metadata a previous night would have written
(``logical-pool``, ``image-version``, ``role`` serving): the roll reads its state from Batch alone, so this is the
state a real first night leaves (the two-nights case makes it with a real night 1). Checks go through the SDKs.
Runs are shared: one DAG run carries several logical pools where their outcomes do not depend on each other.
"""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import models as bm
from azure.core.exceptions import ResourceNotFoundError

from include.pipeline_runner import run_dag_test
from pipeline_harness import (
    NODE_AGENT,
    UBUNTU_2204,
    VERSION,
    PipelineHarness,
    dag_id_for,
    dump,
    pipeline_config,
    pool_facts,
    request_seen,
)
from batch_images.operators.smoke import smoke_job_id
from batch_images.rules import naming
from include.pipeline_fixtures import short_field_pool
from tests.job_invariants import jobs_on_missing_pools

OLD_VERSION = "2026.1124.0"


# --- set-up helpers ------------------------------------------------------------------------------------------------


def logical_pool(base: dict, prefix: str, *, roll: dict | None = None, smoke: bool = False, approval: bool = False,
                 nodes: int = 1) -> dict:
    """A pools[] entry: demo.yaml's pool with the short fields (include/pipeline_fixtures.py) under another prefix (its
    logical pool) with roll settings and ``nodes`` nodes."""
    return {**short_field_pool(base), "pool_id_prefix": prefix, "target_dedicated_nodes": nodes,
            "target_low_priority_nodes": 0, "roll": {**base.get("roll", {}), **(roll or {})}, "require_approval": approval,
            "smoke_test": ({"command_line": "/bin/bash -c 'echo smoke ok'", "tasks": None, "timeout_minutes": 10}
                           if smoke else None)}


@pytest.fixture
def roll_harness(standin, tmp_path, request):
    """make(pools=[...]) -> a PipelineHarness whose pipeline has these logical pools (no pre-made serving pool)."""

    def make(pools: list[dict], **top) -> PipelineHarness:
        dag_id = dag_id_for(request.node.name)
        cfg = pipeline_config(standin.endpoints, dag_id, **top)
        base = cfg["pools"][0]
        cfg["pools"] = [logical_pool(base, **p) for p in pools]
        return PipelineHarness(standin, dag_id, tmp_path, cfg, serving_pool=False)

    return make


def seed_serving_pool(standin, prefix: str, version: str = OLD_VERSION, nodes: int = 1, **metadata: str) -> str:
    """The serving physical pool of logical pool `prefix`, as a previous night leaves it; steady with idle nodes."""
    pool_id = naming.pool_id(prefix, version)
    md = {naming.TAG_LOGICAL_POOL: prefix, naming.TAG_IMAGE_VERSION: version, naming.TAG_ROLE: naming.ROLE_SERVING,
          naming.TAG_SERVING_SINCE: "2026-11-24T03:00:00Z", **metadata}
    standin.batch().create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=nodes,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(**UBUNTU_2204), node_agent_sku_id=NODE_AGENT),
        metadata=[bm.BatchMetadataItem(name=k, value=v) for k, v in md.items()]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        facts = pool_facts(standin, pool_id)
        if facts and facts["allocation_state"] == "steady" and facts["nodes"].get("idle") == nodes:
            return pool_id
        time.sleep(0.1)
    raise AssertionError(f"seeded pool {pool_id} not steady: {pool_facts(standin, pool_id)}")


def sleep_command(standin, real_seconds: float) -> str:
    scale = standin.control.call("GET", "/clock").get("scale", 3000)
    return f"/bin/bash -c 'sleep {int(real_seconds * scale)}'"


def add_job(standin, job_id: str, pool_id: str, tasks: dict[str, float]) -> None:
    """A user's job on `pool_id` with tasks {id: real seconds each runs}."""
    batch = standin.batch()
    batch.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    for task_id, seconds in tasks.items():
        batch.create_task(job_id, bm.BatchTaskCreateOptions(id=task_id, command_line=sleep_command(standin, seconds)))


def running_on(standin, job_id: str, task_id: str, timeout: float = 10.0) -> bm.BatchTask:
    deadline = time.monotonic() + timeout
    while True:
        task = standin.batch().get_task(job_id, task_id)
        if state(task.state) == "running" or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def state(value) -> str:
    return str(getattr(value, "value", value)).lower()


def meta(standin, pool_id: str) -> dict | None:
    try:
        pool = standin.batch().get_pool(pool_id)
    except ResourceNotFoundError:
        return None
    return {m.name: m.value for m in pool.metadata or []}


def pool_ids(standin) -> set[str]:
    return {p.id for p in standin.batch().list_pools() if state(p.state) != "deleting"}


def wait_gone(standin, pool_id: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pool_id not in pool_ids(standin):
            return True
        time.sleep(0.2)
    return False


def version_excluded(standin, h: PipelineHarness, name: str) -> bool | None:
    g, d = h.pipeline["gallery"], h.pipeline["image_definition"]
    try:
        v = standin.compute().gallery_image_versions.get(g["resource_group"], g["name"], d["name"], name)
    except ResourceNotFoundError:
        return None
    return v.publishing_profile.exclude_from_latest


def node_images(standin, pool_id: str) -> list[str]:
    return [(n.virtual_machine_info.image_reference.virtual_machine_image_id or "").lower()
            for n in standin.batch().list_nodes(pool_id)]


def task_of(result, name: str) -> dict:
    return next((t for t in result.tasks if t["task"] == name), {})


def mark_requests(h: PipelineHarness) -> None:
    """Count the run's requests from here (after the test's own set-up writes)."""
    h.request_mark = h.standin.control.requests()["last_id"]


def orphan_note(missing: list[str]) -> str:
    """The reliability table's note when jobs or schedules were left naming a deleted pool (counted as leaked)."""
    return f"{len(missing)} job(s)/schedule(s) left on a deleted pool: {', '.join(missing)}" if missing else ""


def pools_added(h: PipelineHarness) -> int:
    """Pools created (Pool_Add 201) since :func:`mark_requests`."""
    return sum(1 for r in h.requests() if r["op"] == "Pool_Add" and r["status"] == 201)


# --- in_place with a running task; an expired lease taken over ------------------------------------------------------


def test_in_place_with_running_task_and_expired_lease(roll_harness, standin, reliability_row):
    """One run, two logical pools. ``inplace`` (strategy in_place) has a user's task running when the roll starts:
    the task finishes (exit 0, never requeued), the pool keeps its id and comes back on the new version with every
    node reporting it. ``expired`` (blue_green) carries another run's lease that expired: it is taken over and the
    pool rolled."""
    h = roll_harness([{"prefix": "inplace", "roll": {"strategy": "in_place"}, "nodes": 2},
                      {"prefix": "expired"}])
    inplace = seed_serving_pool(standin, "inplace", nodes=2)
    expired = seed_serving_pool(standin, "expired", **{naming.TAG_LEASE: "scheduled__2026-11-23T00:00:00+00:00|"
                                                                         "2026-11-23T06:00:00Z"})
    batch = standin.batch()
    batch.create_job(bm.BatchJobCreateOptions(id="job-inplace", pool_info=bm.BatchPoolInfo(pool_id=inplace)))
    added: dict = {}
    mark_requests(h)

    def add_task_when_leased() -> bool:
        # plan_roll took the lease on the in_place pool: the roll is about to start; the task must outlive that
        if not added and naming.TAG_LEASE in (meta(standin, inplace) or {}):
            batch.create_task("job-inplace", bm.BatchTaskCreateOptions(id="long",
                                                                       command_line=sleep_command(standin, 15)))
            added["at"] = time.monotonic()
        return False

    result = h.run(kill_when=add_task_when_leased, timeout=300)
    version_id = (result.xcoms.get("publish_image_version:return_value") or "").lower()
    long = batch.get_task("job-inplace", "long") if added else None
    ok_inplace = (result.state == "success" and long is not None and state(long.state) == "completed"
                  and long.execution_info.exit_code == 0 and long.execution_info.requeue_count == 0)
    pools_now = pool_ids(standin)
    md = meta(standin, inplace) or {}
    wait_gone(standin, expired)
    orphans = jobs_on_missing_pools(standin)
    reliability_row("roll in_place, a user task running", runs=1, survived=ok_inplace and inplace in pools_now,
                    leaked=len(pools_now - {inplace, naming.pool_id("expired", VERSION)}) + len(orphans),
                    note=orphan_note(orphans))
    assert result.state == "success", f"run {result.state}; log {result.log_path}"
    assert added, "the in_place pool was never leased (plan_roll did not run?)"
    # the task that was running finished where it ran, exit 0, never requeued
    assert state(long.state) == "completed", long.as_dict()
    assert long.execution_info.exit_code == 0 and long.execution_info.requeue_count == 0, long.as_dict()
    assert long.node_info.pool_id == inplace
    # same pool id, new image, every node on it, metadata updated, lease released, job back to active
    assert naming.pool_id("inplace", VERSION) not in pools_now
    assert inplace in pools_now
    pool = batch.get_pool(inplace)
    assert pool.virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() == version_id
    assert pool.current_dedicated_nodes == 2
    assert node_images(standin, inplace) == [version_id] * 2
    assert md[naming.TAG_IMAGE_VERSION] == VERSION and md[naming.TAG_ROLE] == naming.ROLE_SERVING
    assert naming.TAG_LEASE not in md
    assert state(batch.get_job("job-inplace").state) == "active"
    roll = result.xcoms["roll_pool[0]:return_value"]
    assert roll["pool_id"] == inplace and roll["version"] == VERSION
    # the expired lease of another run was taken over: rolled, old pool deleted, new one serving without lease
    new = naming.pool_id("expired", VERSION)
    assert wait_gone(standin, expired), pool_ids(standin)
    new_md = meta(standin, new)
    assert new_md[naming.TAG_ROLE] == naming.ROLE_SERVING and naming.TAG_LEASE not in new_md
    assert "is being rolled by run" not in result.log
    assert pools_added(h) == 1  # only expired's new pool; in_place made none
    assert orphans == [], orphans  # no job or schedule names a deleted pool
    downtime = re.search(r"In-place roll of .*", result.log)
    print(f"in_place: task added {added}, log: {downtime.group(0) if downtime else None}")


# --- a second roll while another run holds the lease -----------------------------------------------------------------


def test_lease_held_by_another_run_blocks_the_roll(roll_harness, standin, reliability_row):
    """The serving pool carries an unexpired lease written by another run: plan_roll refuses (retried, then failed),
    naming the holder; nothing is rolled: no new pool, the serving pool and its metadata untouched, the version
    published but left excluded from latest."""
    h = roll_harness([{"prefix": "leased"}])
    holder = "manual__2026-11-25T01:00:00+00:00"
    lease = f"{holder}|{(datetime.now(timezone.utc) + timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    serving = seed_serving_pool(standin, "leased", **{naming.TAG_LEASE: lease})
    before = pool_facts(standin, serving)
    mark_requests(h)
    result = h.run(timeout=300)
    after = pool_facts(standin, serving)
    new_pools = pool_ids(standin) - {serving}
    plan_roll = task_of(result, "plan_roll[0]")
    survived = result.state == "failed" and after == before and not new_pools
    orphans = jobs_on_missing_pools(standin)
    reliability_row("second roll while another run holds the lease", runs=1, survived=survived,
                    leaked=len(new_pools) + (after != before) + len(orphans), note=orphan_note(orphans))
    assert result.state == "failed", f"run {result.state}; log {result.log_path}"
    assert plan_roll.get("state") == "failed" and plan_roll.get("try") == 3, dump(result.tasks)
    assert f"is being rolled by run {holder}" in result.log, result.log_path
    assert after == before, dump({"before": before, "after": after})
    assert after["metadata"][naming.TAG_LEASE] == lease
    assert not new_pools, new_pools
    assert not [r for r in h.requests() if r["op"] in ("Pool_Add", "Pool_Patch", "Pool_Delete", "Job_Disable",
                                                        "JobSchedule_Patch") and r["status"] < 400]
    assert version_excluded(standin, h, VERSION) is True
    assert orphans == [], orphans


# --- approval rejected ----------------------------------------------------------------------------------------------


def respond_to_approval(dag_id: str, option: str, timeout: float = 240.0) -> dict:
    """Wait until approve_roll[0] is parked in AWAITING_INPUT, then answer it through the Core API's HITL handler
    (the function behind PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map}/hitlDetails), sharing
    this metadata DB with `airflow dags test` - which waits for exactly that (dag.test() never answers HITL)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as S

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            ti = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.task_id == "approve_roll",
                                                    TaskInstance.state == S.AWAITING_INPUT).first()
            if ti is not None:
                response = update_hitl_detail(dag_id=dag_id, dag_run_id=ti.run_id, task_id="approve_roll",
                                              update_hitl_detail_payload=UpdateHITLDetailPayload(
                                                  chosen_options=[option], params_input={}),
                                              user=SimpleAuthManagerUser(username="approver", role="admin"),
                                              session=session, map_index=ti.map_index)
                return {"run_id": ti.run_id, "map_index": ti.map_index, "response": response.model_dump()}
        time.sleep(0.5)
    return {}


def test_approval_rejected_leaves_the_serving_pool(roll_harness, standin, reliability_row):
    """require_approval: the run parks in approve_roll (Airflow 3.3 HITL, AWAITING_INPUT) until a human answers;
    "Reject" skips promotion and the move: the serving pool and its job untouched, the canary pool deleted, the
    version left excluded from latest."""
    h = roll_harness([{"prefix": "approved", "approval": True}])
    serving = seed_serving_pool(standin, "approved")
    standin.batch().create_job(bm.BatchJobCreateOptions(id="job-approved", pool_info=bm.BatchPoolInfo(pool_id=serving)))
    before = pool_facts(standin, serving)
    mark_requests(h)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(respond_to_approval(h.dag_id, "Reject")), daemon=True)
    thread.start()
    result = h.run(timeout=300)
    thread.join(timeout=5)
    canary = naming.pool_id("approved", VERSION)
    gone = wait_gone(standin, canary)
    after = pool_facts(standin, serving) or {"metadata": {}}
    orphans = jobs_on_missing_pools(standin)
    reliability_row("approval rejected", runs=1,
                    survived=bool(answer) and gone and after["image"] == before["image"]
                    and after["metadata"].get(naming.TAG_ROLE) == naming.ROLE_SERVING,
                    leaked=(not gone) + (naming.TAG_LEASE in after["metadata"]) + len(orphans),
                    note=orphan_note(orphans))
    assert answer, f"approve_roll never waited for input; log {result.log_path}"
    assert after.get("id") == serving, f"the serving pool {serving} is gone; log {result.log_path}"
    assert answer["response"]["chosen_options"] == ["Reject"]
    states = {t["task"]: t["state"] for t in result.tasks}
    assert states.get("approve_roll[0]") == "skipped", dump(result.tasks)  # rejected: skipped, not failed
    # roll_pool is never expanded when promotion is skipped: its unexpanded task instance is skipped
    assert states.get("promote_image_version") == "skipped" and states.get("roll_pool") == "skipped", \
        dump(result.tasks)
    assert pools_added(h) == 1, "the canary pool was never made"
    assert gone, f"canary {canary} left after the rejection: {pool_ids(standin)}"
    # the serving pool: same image, nodes, role; its job still on it; no lease left blocking the next run
    for key in ("image", "target_dedicated_nodes", "current_dedicated_nodes", "state", "allocation_state"):
        assert after[key] == before[key], (key, before, after)
    assert after["metadata"][naming.TAG_ROLE] == naming.ROLE_SERVING
    assert naming.TAG_LEASE not in after["metadata"], f"a rejected roll left its lease: {after['metadata']}"
    assert standin.batch().get_job("job-approved").pool_info.pool_id == serving
    assert version_excluded(standin, h, VERSION) is True
    assert orphans == [], orphans


# --- drain timeout: keep and requeue ----------------------------------------------------------------------------------


def test_drain_timeout_keep_and_requeue(roll_harness, standin, reliability_row):
    """Two logical pools with drain_timeout_minutes 1 (the least the config takes: a real minute each) and a task
    that outlives it on the old pool. ``keep``: the old pool stays ``draining`` with its task running and roll_pool
    fails naming the counts; ``requeue``: the old pool is deleted and its running task requeued onto the new pool."""
    h = roll_harness([{"prefix": "keeppool", "roll": {"drain_timeout_minutes": 1, "on_drain_timeout": "keep"}},
                      {"prefix": "requeuepool", "roll": {"drain_timeout_minutes": 1, "on_drain_timeout": "requeue"}}])
    old = {p: seed_serving_pool(standin, p) for p in ("keeppool", "requeuepool")}
    for prefix, pool_id in old.items():
        add_job(standin, f"job-{prefix}", pool_id, {"long": 400})
        assert state(running_on(standin, f"job-{prefix}", "long").state) == "running"
    new = {p: naming.pool_id(p, VERSION) for p in old}
    result = h.run(timeout=420)
    batch = standin.batch()
    keep_md = meta(standin, old["keeppool"]) or {}
    keep_task = batch.get_task("job-keeppool", "long")
    requeue_gone = wait_gone(standin, old["requeuepool"])
    moved = batch.get_task("job-requeuepool", "long")
    keep_ok = (task_of(result, "roll_pool[0]").get("state") == "failed"
               and keep_md.get(naming.TAG_ROLE) == naming.ROLE_DRAINING and state(keep_task.state) == "running")
    requeue_ok = (task_of(result, "roll_pool[1]").get("state") == "success" and requeue_gone
                  and batch.get_job("job-requeuepool").pool_info.pool_id == new["requeuepool"]
                  and (moved.execution_info.requeue_count or 0) >= 1)
    orphans = jobs_on_missing_pools(standin)
    reliability_row("drain timeout 1 min, on_drain_timeout keep", runs=1, survived=keep_ok, leaked=0,
                    note="old pool left draining by design")
    reliability_row("drain timeout 1 min, on_drain_timeout requeue", runs=1, survived=requeue_ok,
                    leaked=(0 if requeue_gone else 1) + len(orphans), note=orphan_note(orphans))
    # keep: fails with the counts, leaves the old pool draining with its task still running there
    assert task_of(result, "roll_pool[0]").get("state") == "failed", dump(result.tasks)
    assert re.search(r"pool keeppool-2026-1124-0 did not drain within 1 minutes .*\d", result.log), result.log_path
    assert "on_drain_timeout: keep" in result.log
    assert keep_md.get(naming.TAG_ROLE) == naming.ROLE_DRAINING, keep_md
    assert state(keep_task.state) == "running" and keep_task.node_info.pool_id == old["keeppool"]
    assert (keep_task.execution_info.requeue_count or 0) == 0
    assert meta(standin, new["keeppool"])[naming.TAG_ROLE] == naming.ROLE_SERVING
    # requeue: the old pool deleted, the job moved, its task requeued to run on the new pool
    assert task_of(result, "roll_pool[1]").get("state") == "success", dump(result.tasks)
    assert requeue_gone, pool_ids(standin)
    assert batch.get_job("job-requeuepool").pool_info.pool_id == new["requeuepool"]
    assert (moved.execution_info.requeue_count or 0) >= 1, moved.as_dict()
    moved = running_on(standin, "job-requeuepool", "long")
    assert state(moved.state) == "running" and moved.node_info.pool_id == new["requeuepool"], moved.as_dict()
    assert result.state == "failed"  # the keep pool's roll_pool failed
    assert orphans == [], orphans  # the kept pool still exists: its job names a live pool


# --- backfill: never roll back ---------------------------------------------------------------------------------------

BACKFILL = ["2026-11-20T00:00:00+00:00", "2026-11-21T00:00:00+00:00", "2026-11-22T00:00:00+00:00"]


def test_backfill_never_rolls_back_unless_allowed(roll_harness, standin, reliability_row, tmp_path):
    """Version 2026.1201.0 serves. Three past dates run: three versions published (excluded from latest), the pool
    not rolled back (same id, version, metadata, eTag) and each run logs the skip. A fourth past date with the
    ``allow_downgrade`` param rolls it."""
    h = roll_harness([{"prefix": "bf"}])
    serving = seed_serving_pool(standin, "bf", version="2026.1201.0")
    before = pool_facts(standin, serving)
    mark_requests(h)
    env = h.env
    results = [run_dag_test(h.dag_id, date, tmp_path / f"backfill{i}.log", env=env, pipelines_dir=h.pipelines_dir,
                            timeout=300) for i, date in enumerate(BACKFILL)]
    after = pool_facts(standin, serving)
    names = [naming.version_name(datetime.fromisoformat(d).date(), 0) for d in BACKFILL]
    excluded = [version_excluded(standin, h, n) for n in names]
    skipped = [f"Logical pool bf: NOT rolled - it is served by {serving} on version 2026.1201.0" in r.log
               for r in results]
    adds = pools_added(h)
    reliability_row("backfill of 3 past dates after a newer version", runs=3,
                    survived=all(r.state == "success" for r in results) and after == before and all(skipped),
                    leaked=adds + (after != before))
    assert [r.state for r in results] == ["success"] * 3, [str(r.log_path) for r in results]
    assert excluded == [True, True, True], dict(zip(names, excluded))
    assert all(skipped), [str(r.log_path) for r in results]
    assert after == before, dump({"before": before, "after": after})
    assert adds == 0 and pool_ids(standin) == {serving}
    for r in results:
        assert r.xcoms["plan_roll[0]:return_value"]["roll_action"] == "skip_downgrade"
        assert r.xcoms.get("roll_pool[0]:return_value") is None
    # allow_downgrade: the older version is rolled out
    down = run_dag_test(h.dag_id, "2026-11-23T00:00:00+00:00", tmp_path / "downgrade.log", env=env,
                        pipelines_dir=h.pipelines_dir, conf={"allow_downgrade": True}, timeout=300)
    new = naming.pool_id("bf", "2026.1123.0")
    assert down.state == "success", down.log_path
    assert down.xcoms["plan_roll[0]:return_value"]["roll_action"] == "roll"
    assert wait_gone(standin, serving), pool_ids(standin)
    md = meta(standin, new)
    assert md[naming.TAG_ROLE] == naming.ROLE_SERVING and md[naming.TAG_IMAGE_VERSION] == "2026.1123.0"
    assert version_excluded(standin, h, "2026.1123.0") is False
    assert jobs_on_missing_pools(standin) == []


# --- two nights, the second SIGKILLed in each new step and resumed ---------------------------------------------------

NIGHT1 = "2026-11-24T00:00:00+00:00"
# step -> (operation the worker is inside when it dies, path regex); the stand-in holds that answer back 30 s
ROLL_KILL_POINTS = {
    "plan_roll[0]": ("Pool_Patch", r"/pools/ubuntu2204-2026-1124-0$"),  # the lease write
    "smoke_test[0]": ("Task_AddCollection", None),  # the smoke job exists, its tasks are being added
    # excludeFromLatest false sent (a PUT of the version: the hook rewrites its publishingProfile)
    "promote_image_version": ("GalleryImageVersions_CreateOrUpdate", r"/versions/2026\.1125\.0$"),
    "roll_pool[0]": ("Job_Disable", r"/jobs/job-user/disable"),  # schedule moved, the job being disabled
}


def test_two_nights_killed_in_each_roll_step(roll_harness, standin, reliability_row, tmp_path):
    """Night 1 makes the first serving pool (a real DAG run). A user then puts a job schedule and a job on it.
    Night 2 is SIGKILLed inside plan_roll, smoke_test, promote_image_version and roll_pool (each resumed as the
    scheduler would: same run, next try). At the end: one pool (the new one, every node on version 2), the schedule
    and the job on it, no smoke job left, the user's running task finished once (exit 0, never requeued), no pool
    made twice."""
    h = roll_harness([{"prefix": "ubuntu2204", "roll": {"active_jobs": "move"}, "smoke": True, "nodes": 2}])
    night1 = run_dag_test(h.dag_id, NIGHT1, tmp_path / "night1.log", env=h.env, pipelines_dir=h.pipelines_dir,
                          timeout=300)
    old = naming.pool_id("ubuntu2204", OLD_VERSION)
    new = naming.pool_id("ubuntu2204", VERSION)
    assert night1.state == "success", night1.log_path
    assert night1.xcoms["plan_roll[0]:return_value"]["roll_action"] == "first"
    assert meta(standin, old)[naming.TAG_ROLE] == naming.ROLE_SERVING
    batch = standin.batch()
    batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
        id="sched-user", schedule=bm.BatchJobScheduleConfiguration(
            do_not_run_until=datetime(2099, 1, 1, tzinfo=timezone.utc)),
        job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=old))))
    batch.create_job(bm.BatchJobCreateOptions(id="job-user", pool_info=bm.BatchPoolInfo(pool_id=old)))
    mark_requests(h)

    outcomes: dict[str, dict] = {}
    resumed = None
    for i, (step, (op, path)) in enumerate(ROLL_KILL_POINTS.items()):
        if step == "roll_pool[0]":  # a user task running on the old pool when the roll disables its job
            batch.create_task("job-user", bm.BatchTaskCreateOptions(id="long", command_line=sleep_command(standin, 8)))
            running_on(standin, "job-user", "long")
        mark = standin.control.requests()["last_id"]
        standin.control.add_fault("http", count=1, delay=30, match={"op": op, **({"path_regex": path} if path else {})})
        kill = request_seen(standin, op, 1, path, since=mark)
        killed = h.run(kill_when=kill, timeout=300) if i == 0 else h.resume(kill_when=kill, timeout=300)
        outcomes[step] = {"killed": killed.exit_code is None, "log": str(killed.log_path)}
        if i:  # the previous kill landed in the previous step
            outcomes[list(ROLL_KILL_POINTS)[i - 1]]["marked"] = list(h.killed_tasks)
        if killed.exit_code is not None:
            break
    if all(o["killed"] for o in outcomes.values()) and len(outcomes) == len(ROLL_KILL_POINTS):
        resumed = h.resume(timeout=300)
        outcomes[list(ROLL_KILL_POINTS)[-1]]["marked"] = list(h.killed_tasks)
    killed_steps = list(outcomes)
    final_tasks = resumed.tasks if resumed else []
    tries = {t["task"]: t["try"] for t in final_tasks}
    states = {t["task"]: t["state"] for t in final_tasks}

    # what must hold at the end
    problems = []
    if not wait_gone(standin, old):
        problems.append(f"old pool {old} still there")
    pools_now = pool_ids(standin)
    if pools_now != {new}:
        problems.append(f"pools {sorted(pools_now)}, expected only {new}")
    if pools_added(h) != 1:
        problems.append(f"{pools_added(h)} pools created in night 2")
    smoke_jobs = [j.id for j in batch.list_jobs() if j.id == smoke_job_id(new) and state(j.state) != "deleting"]
    if smoke_jobs:
        problems.append(f"orphaned smoke job {smoke_jobs}")
    long = batch.get_task("job-user", "long")
    if not (state(long.state) == "completed" and long.execution_info.exit_code == 0
            and long.execution_info.requeue_count == 0):
        problems.append(f"user task: {state(long.state)} exit {long.execution_info.exit_code} "
                        f"requeued {long.execution_info.requeue_count}")
    if batch.get_job("job-user").pool_info.pool_id != new or state(batch.get_job("job-user").state) != "active":
        problems.append("job-user not active on the new pool")
    if batch.get_job_schedule("sched-user").job_specification.pool_info.pool_id != new:
        problems.append("sched-user not on the new pool")
    problems.extend(f"left on a deleted pool: {o}" for o in jobs_on_missing_pools(standin))
    leaked = len(problems)
    for step in ROLL_KILL_POINTS:
        ok = bool(resumed) and resumed.state == "success" and states.get(step) == "success" and tries.get(step) == 2
        reliability_row(f"SIGKILL mid-task, resumed: {step.split('[')[0]} (roll)", runs=2,
                        survived=ok and not problems, leaked=0)
    reliability_row("two nights: first pool, then a roll killed 4x and resumed", runs=2 + len(outcomes),
                    survived=bool(resumed) and resumed.state == "success" and not problems, leaked=leaked)

    assert all(o["killed"] for o in outcomes.values()) and killed_steps == list(ROLL_KILL_POINTS), dump(outcomes)
    assert all(step in o.get("marked", []) for step, o in outcomes.items()), dump(outcomes)
    assert resumed is not None and resumed.state == "success", resumed.log_path if resumed else outcomes
    for step in ROLL_KILL_POINTS:
        assert states.get(step) == "success" and tries.get(step) == 2, (step, dump(final_tasks))
    assert not problems, problems
    assert node_images(standin, new) == [resumed.xcoms["publish_image_version:return_value"].lower()] * 2
    md = meta(standin, new)
    assert md[naming.TAG_ROLE] == naming.ROLE_SERVING and naming.TAG_LEASE not in md
    assert version_excluded(standin, h, VERSION) is False


def test_a_rollback_killed_in_its_roll_step_and_resumed(roll_harness, standin, reliability_row, tmp_path):
    """Two real nights (2026.1124.0, then 2026.1126.0 with a user's job moved onto its pool), then a rollback run
    (params.mode rollback) SIGKILLed in roll_pool while it disables the user's job, resumed as the scheduler would:
    one pool for the logical pool (night 1's version again), the job on it, nothing left on a deleted pool, nothing
    built (no snapshot, image or version write in the rollback)."""
    h = roll_harness([{"prefix": "ubuntu2204", "roll": {"active_jobs": "move"}, "nodes": 1}])
    v2 = "2026.1126.0"
    for name, date in (("night1", NIGHT1), ("night2", "2026-11-26T00:00:00+00:00")):
        night = run_dag_test(h.dag_id, date, tmp_path / f"{name}.log", env=h.env, pipelines_dir=h.pipelines_dir,
                             timeout=300)
        assert night.state == "success", night.log_path
    old, serving = naming.pool_id("ubuntu2204", OLD_VERSION), naming.pool_id("ubuntu2204", v2)
    assert pool_ids(standin) == {serving}
    standin.batch().create_job(bm.BatchJobCreateOptions(id="job-user", pool_info=bm.BatchPoolInfo(pool_id=serving)))
    mark_requests(h)
    mark = standin.control.requests()["last_id"]
    standin.control.add_fault("http", count=1, delay=30, match={"op": "Job_Disable", "path_regex": r"/jobs/job-user/"})
    killed = h.run(kill_when=request_seen(standin, "Job_Disable", 1, r"/jobs/job-user/", since=mark), timeout=300,
                   conf={"mode": "rollback"})
    resumed = h.resume(timeout=300) if killed.exit_code is None else None
    problems = []
    if not wait_gone(standin, serving):
        problems.append(f"night 2's pool {serving} still there")
    if pool_ids(standin) != {old}:
        problems.append(f"pools {sorted(pool_ids(standin))}, expected only {old}")
    if standin.batch().get_job("job-user").pool_info.pool_id != old:
        problems.append("job-user not on the rolled-back pool")
    problems.extend(f"left on a deleted pool: {o}" for o in jobs_on_missing_pools(standin))
    built = [r["op"] for r in h.requests() if r["write"] and r["status"] < 400
             and r["op"].startswith(("Snapshots_", "Images_", "VirtualMachines_", "GalleryImageVersions_"))]
    problems.extend(f"built in a rollback: {op}" for op in built)
    ok = killed.exit_code is None and resumed is not None and resumed.state == "success"
    reliability_row("SIGKILL in a rollback's roll_pool, resumed", runs=2, survived=ok and not problems,
                    leaked=len(problems))
    assert killed.exit_code is None, killed.log_path
    assert resumed is not None and resumed.state == "success", resumed.log_path if resumed else None
    assert not problems, problems
    assert meta(standin, old)[naming.TAG_ROLE] == naming.ROLE_SERVING
