"""Two nights in a row through the real DAG (`airflow dags test`, include/pipeline_runner.py) against the stand-in.

Two logical pools in one Batch account: ``drainpool`` (active_jobs: drain) and ``movepool`` (active_jobs: move).
Night 1 (2026-11-25) makes each its first serving pool. Between the nights a user points a job schedule and an
active job at each serving pool. During night 2 (2026-11-26), when promotion starts, a long task is added to each
job, so that the roll finds it running. On drainpool's serving pool there are also a long-lived job (the pattern of
TES, Cromwell on Azure and Nextflow: ``onAllTasksComplete`` noaction, one task done, tasks added for days) and the
job a second schedule made at once. Checked through the SDKs afterwards: the version was published excluded and
promoted, each schedule points at the new pool, the moved job points at the new pool, the drained job's task
finished on the old pool (exit 0, never requeued) and then the job was moved to the new pool with the long-lived and
the schedule's jobs, before the old pool was deleted; a task added to the long-lived job after the roll runs on the
new pool; no job or schedule names a deleted pool (checked after each night); one pool per logical pool, every
node on version 2, metadata roles right, the roll lease released, the Asset event recorded.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from azure.batch import models as bm

from batch_images.rules import naming
from tests.e2e._fresh_pipeline import demo_pipeline, fresh_pipeline, long_tasks_when_pools_exist, meta
from tests.job_invariants import jobs_on_missing_pools
from tests.summary_text import block, read_summary
from include.pipeline_runner import run_dag_test

NIGHT1, NIGHT2 = "2026-11-25T00:00:00+00:00", "2026-11-26T00:00:00+00:00"
V1, V2 = "2026.1125.0", "2026.1126.0"
LONG_TASK_REAL_SECONDS = 25  # the drained task runs this long (real time) after it is added


def pipeline(ep: dict, dag_id: str) -> dict:
    cfg, base = demo_pipeline(ep, dag_id)
    base.update(target_low_priority_nodes=0, smoke_test=None)
    drain = {**base, "pool_id_prefix": "drainpool", "roll": {"active_jobs": "drain"}}
    move = {**base, "pool_id_prefix": "movepool", "roll": {"active_jobs": "move"}}
    cfg["pools"] = [drain, move]
    return cfg


@pytest.fixture(scope="module")
def two_nights(standin_session, tmp_path_factory):
    s, ep, tmp, dag_id, cfg, env = fresh_pipeline(standin_session, tmp_path_factory, "roll", pipeline)
    out = {"cfg": cfg, "dag_id": dag_id}
    out["night1"] = run_dag_test(dag_id, NIGHT1, tmp / "night1.log", env=env, pipelines_dir=tmp / "pipelines")
    batch = s.batch()
    old = {p: naming.pool_id(p, V1) for p in ("drainpool", "movepool")}
    out["old"] = old
    if out["night1"].exit_code == 0:
        for prefix, pool_id in old.items():
            batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
                id=f"sched-{prefix}", schedule=bm.BatchJobScheduleConfiguration(
                    do_not_run_until=datetime(2099, 1, 1, tzinfo=timezone.utc)),
                job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=pool_id))))
            batch.create_job(bm.BatchJobCreateOptions(id=f"job-{prefix}", pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
        serving = old["drainpool"]
        batch.create_job(bm.BatchJobCreateOptions(id="job-longlived", pool_info=bm.BatchPoolInfo(pool_id=serving),
                                                  all_tasks_complete_mode="noaction"))
        batch.create_task("job-longlived", bm.BatchTaskCreateOptions(id="first", command_line="/bin/bash -c 'echo 1'"))
        out["first_task"] = task_completed(batch, "job-longlived", "first")
        batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(  # makes its job at once (no doNotRunUntil)
            id="sched-now", schedule=bm.BatchJobScheduleConfiguration(),
            job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=serving))))
        out["sched_job"] = until(lambda: next((j.id for j in batch.list_jobs() if j.id.startswith("sched-now:")),
                                              None))
    out["missing_after_night1"] = jobs_on_missing_pools(s)
    added: dict = {}
    # Once the canaries exist, give each old pool's job a task that outlives the roll's start.
    add_long_tasks = long_tasks_when_pools_exist(s, batch, [naming.pool_id(p, V2) for p in old],
                                                 [f"job-{p}" for p in old], LONG_TASK_REAL_SECONDS, added)

    out["night2"] = run_dag_test(dag_id, NIGHT2, tmp / "night2.log", env=env, pipelines_dir=tmp / "pipelines",
                                 kill_when=add_long_tasks)
    out["added"] = added
    out["batch"] = batch
    out["standin"] = s
    out["missing_after_night2"] = jobs_on_missing_pools(s)
    if out["night2"].exit_code == 0:  # the long-lived job goes on after the roll: a new task
        batch.create_task("job-longlived", bm.BatchTaskCreateOptions(id="after-roll",
                                                                     command_line="/bin/bash -c 'echo 2'"))
        out["after_roll_task"] = task_completed(batch, "job-longlived", "after-roll")
    return out


def until(fn, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    return None


def task_completed(batch, job_id: str, task_id: str):
    """The task once completed, else None after a minute."""
    return until(lambda: (lambda t: t if str(getattr(t.state, "value", t.state)) == "completed" else None)(
        batch.get_task(job_id, task_id)))


def test_night1_creates_the_first_serving_pool_per_logical_pool(two_nights):
    r = two_nights["night1"]
    assert r.exit_code == 0, r.log[-4000:]
    rolls = [r.xcoms[f"roll_pool[{i}]:return_value"] for i in range(2)]
    assert {x["pool_id"] for x in rolls} == set(two_nights["old"].values())
    assert two_nights["missing_after_night1"] == []
    lines, _ = read_summary(r)
    assert block(lines, "Rolls (per logical pool):", 2) == [
        f"  {prefix}: first pool {two_nights['old'][prefix]} ({V1})" for prefix in ("drainpool", "movepool")]
    assert two_nights["first_task"] is not None and two_nights["sched_job"], "the long-lived jobs were not set up"


def test_night2_rolls_both_logical_pools(two_nights):
    r = two_nights["night2"]
    assert r.exit_code == 0, r.log[-6000:]
    assert two_nights["added"], "the long tasks were never added (promotion not seen in the log)"
    batch = two_nights["batch"]
    new = {p: naming.pool_id(p, V2) for p in ("drainpool", "movepool")}
    pools = {p.id: p for p in batch.list_pools()}
    # exactly one pool per logical pool, the new one, serving, all nodes on version 2
    assert set(pools) == set(new.values())
    plan = r.xcoms["preflight:return_value"]
    for prefix, pool_id in new.items():
        md = meta(pools[pool_id])
        assert md[naming.TAG_LOGICAL_POOL] == prefix
        assert md[naming.TAG_ROLE] == naming.ROLE_SERVING
        assert md[naming.TAG_IMAGE_VERSION] == V2
        assert naming.TAG_LEASE not in md and md.get(naming.TAG_SERVING_SINCE)
        nodes = list(batch.list_nodes(pool_id))
        assert len(nodes) == 2
        assert all(n.virtual_machine_info.image_reference.virtual_machine_image_id.lower() == plan["version_id"].lower()
                   for n in nodes)
        # the job schedule follows the logical pool
        assert batch.get_job_schedule(f"sched-{prefix}").job_specification.pool_info.pool_id == pool_id
    # move: the job was moved; drain: the job's task finished on the old pool, never requeued; then, before the old
    # pool was deleted, the job was moved to the new pool (it is still active: no job is left on a deleted pool)
    assert batch.get_job("job-movepool").pool_info.pool_id == new["movepool"]
    assert batch.get_job("job-drainpool").pool_info.pool_id == new["drainpool"]
    drained = batch.get_task("job-drainpool", "long")
    assert str(drained.state) in ("completed", "BatchTaskState.COMPLETED")
    assert drained.execution_info.exit_code == 0 and drained.execution_info.requeue_count == 0
    assert drained.node_info.pool_id == two_nights["old"]["drainpool"]
    assert two_nights["missing_after_night2"] == []
    moved = batch.get_task("job-movepool", "long")
    assert moved.execution_info.requeue_count == 0  # disable with "wait": it finished before the move


def test_night2_moves_the_long_lived_jobs_and_a_task_added_later_runs_on_the_new_pool(two_nights):
    r = two_nights["night2"]
    assert r.exit_code == 0, r.log[-6000:]
    batch = two_nights["batch"]
    new = naming.pool_id("drainpool", V2)
    roll = next(x for x in (r.xcoms[f"roll_pool[{i}]:return_value"] for i in range(2)) if x["pool_id"] == new)
    assert set(roll["moved_jobs"]) == {"job-drainpool", "job-longlived", two_nights["sched_job"]}, roll
    for job_id in roll["moved_jobs"]:
        job = batch.get_job(job_id)
        assert job.pool_info.pool_id == new and str(getattr(job.state, "value", job.state)) == "active", job_id
    assert two_nights["first_task"].node_info.pool_id == two_nights["old"]["drainpool"]
    task = two_nights.get("after_roll_task")
    assert task is not None, "the task added to the long-lived job after the roll never completed"
    assert task.execution_info.exit_code == 0 and task.node_info.pool_id == new
    # run_summary lists the moved jobs under the logical pool's serving pool, and tells each logical pool's roll
    lines, summary = read_summary(r)
    listed = {p["id"]: p.get("moved_jobs") for p in summary["pools"]}
    assert set(listed[new]) == set(roll["moved_jobs"])
    assert f"    jobs moved to it by the roll: {', '.join(roll['moved_jobs'])}" in lines
    rolls = {x["logical_pool"]: x for x in (r.xcoms[f"roll_pool[{i}]:return_value"] for i in range(2))}
    assert set(rolls["drainpool"]["moved_schedules"]) >= {"sched-drainpool"}
    assert block(lines, "Rolls (per logical pool):", 2) == [
        f"  {prefix}: rolled from {two_nights['old'][prefix]} ({V1}) to {naming.pool_id(prefix, V2)} ({V2}); job "
        f"schedules moved: {', '.join(rolls[prefix]['moved_schedules'])}; jobs moved: "
        f"{', '.join(rolls[prefix]['moved_jobs'])}; old pools drained and deleted: {two_nights['old'][prefix]}"
        for prefix in ("drainpool", "movepool")]
    assert block(lines, "Versions:", 1) == ["  retired (deleted): none"]  # keep_versions 3: both kept


def test_night2_published_excluded_then_promoted(two_nights):
    r = two_nights["night2"]
    log = r.log
    assert "excludeFromLatest=False" in log or "promoted" in log
    standin = two_nights["standin"]
    compute = standin.compute()
    plan = r.xcoms["preflight:return_value"]
    g, d = plan["gallery"], plan["image_definition"]
    v = compute.gallery_image_versions.get(g["resource_group"], g["name"], d["name"], V2)
    assert v.publishing_profile.exclude_from_latest is False
    reqs = standin.control.requests()
    assert reqs is not None


def test_night2_emitted_asset_events(two_nights):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetModel.uri, AssetEvent.extra).join(AssetEvent, AssetEvent.asset_id == AssetModel.id) \
            .filter(AssetModel.uri.like("batch-pool://%")).all()
    account = two_nights["standin"].endpoints["demo"]["batch_account"]
    seen = {(uri, (extra or {}).get("version")) for uri, extra in rows}
    assert (f"batch-pool://{account}/drainpool", V2) in seen
    assert (f"batch-pool://{account}/movepool", V2) in seen
