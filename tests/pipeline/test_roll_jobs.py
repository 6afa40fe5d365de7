"""roll_pool (RollPoolOperator) against the stand-in, driven like the triggerer drives it: no job is left on a deleted
pool, and autoscaled pools through the roll (issue 19).

A serving pool of the previous version (made with azure-batch, carrying the metadata a previous night leaves) and
this run's canary (made by BatchPoolOperator on a gallery image version, waited steady) are in place; roll_pool is
then executed with plan_roll's decision for a blue/green roll. Checks go through the SDK.
"""
from __future__ import annotations

import pytest
from azure.batch import models as bm

from _batch_common import _wait as wait_for
from _batch_common import build_image_version, context_for, in_dag, pipeline_dict, run_operator, set_connections
from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import PreflightOperator
from batch_images.operators.roll import RollPoolOperator
from batch_images.sensors.pool import BatchPoolSteadySensor
from tests.job_invariants import jobs_on_missing_pools
from tests.serving_pools import create_serving_pool

OLD_VERSION = "2026.1124.0"
FORMULA = "$TargetDedicatedNodes = 1; $TargetLowPriorityNodes = 0;"


@pytest.fixture
def env(standin, monkeypatch):
    set_connections(monkeypatch, standin.endpoints)
    return standin


def state(value) -> str:
    return str(getattr(value, "value", value)).lower()


def plan_pool(env, template: dict | None = None) -> dict:
    """The plan's pool entry (PreflightOperator against the stand-in), with a template when given."""
    op = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=pipeline_dict(env.endpoints)))
    spec = dict(op.execute(context_for())["pools"][0])
    if template is not None:  # the demo's template with these settings (an autoscaled one has no fixed targets)
        fixed = ("targetDedicatedNodes", "targetLowPriorityNodes") if template.get("enableAutoScale") else ()
        spec["template"] = {**{k: v for k, v in spec["template"].items() if k not in fixed}, **template}
        if template.get("enableAutoScale"):
            spec["canary_nodes"] = spec["target_dedicated_nodes"]
    return spec


def make_canary(spec: dict, version_id: str) -> str:
    pool_id = in_dag(lambda: BatchPoolOperator(task_id="create_pool", pool_spec=spec,
                                               image_version_id=version_id)).execute(context_for())
    run_operator(in_dag(lambda: BatchPoolSteadySensor(task_id="wait_for_pool", pool_spec=spec, poll_interval=0.05)),
                 context_for())
    return pool_id


def make_serving(env, logical_pool: str, nodes: int = 1, autoscale: str | None = None) -> str:
    """The previous night's serving pool of `logical_pool`, steady with idle nodes (autoscaled by `autoscale`)."""
    pool_id = create_serving_pool(env.batch(), logical_pool, OLD_VERSION, nodes, autoscale)

    def steady():
        p = env.batch().get_pool(pool_id)
        return state(p.allocation_state) == "steady" and (p.current_dedicated_nodes or 0) >= 1
    wait_for(steady, f"pool {pool_id} steady")
    return pool_id


def roll(spec: dict, serving: str, version_id: str) -> RollPoolOperator:
    decision = {**spec, "roll_action": "roll", "strategy": spec["roll"]["strategy"], "serving_pool_id": serving,
                "serving_version": OLD_VERSION, "version": "2026.1125.0", "image_version_id": version_id,
                "account": spec["batch_account_id"].rsplit("/", 1)[-1]}
    return in_dag(lambda: RollPoolOperator(task_id="roll_pool", pool_spec=decision, poll_interval=0.05))


def completed(batch, job_id: str, task_id: str):
    def done():
        t = batch.get_task(job_id, task_id)
        return t if state(t.state) == "completed" else None
    return wait_for(done, f"task {task_id} of job {job_id} completed")


class TaskStateStore(dict):
    """The task instance's ``task_state_store`` as a try sees it (get / set), kept across the tries of one test."""

    def set(self, key, value):
        self[key] = value


def pool_gone(batch, pool_id: str) -> bool:
    return all(p.id != pool_id or state(p.state) == "deleting" for p in batch.list_pools())


# --- no job left on a deleted pool ----------------------------------------------------------------------------------


def test_drain_moves_every_job_left_on_the_old_pool_before_deleting_it(env):
    """active_jobs: drain (the default). On the old pool when the roll starts: a long-lived job (onAllTasksComplete
    noaction, one task done, the pattern of TES / Cromwell / Nextflow), the job a job schedule made before the roll
    moved the schedule, a job a killed try left disabled there, and a job its user disabled; on the new pool, a job a
    killed try moved but never enabled, and a job its user disabled. The killed try's record is in the task state
    store, as a real try leaves it. After the roll: the old pool is deleted, every one of those jobs is on the new
    pool, active except the two the user disabled (still disabled), the result lists the moved ones, and a task
    added afterwards to the long-lived job runs there."""
    version_id = build_image_version(env)
    spec = plan_pool(env)
    assert spec["roll"]["active_jobs"] == "drain"
    new = make_canary(spec, version_id)
    old = make_serving(env, spec["logical_pool"])
    batch = env.batch()
    batch.create_job(bm.BatchJobCreateOptions(id="job-longlived", pool_info=bm.BatchPoolInfo(pool_id=old),
                                              all_tasks_complete_mode="noaction"))
    batch.create_task("job-longlived", bm.BatchTaskCreateOptions(id="first", command_line="/bin/bash -c 'echo 1'"))
    assert completed(batch, "job-longlived", "first").node_info.pool_id == old
    batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
        id="sched-now", schedule=bm.BatchJobScheduleConfiguration(),
        job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=old))))
    sched_job = wait_for(lambda: next((j.id for j in batch.list_jobs() if j.id.startswith("sched-now:")), None),
                         "the schedule's job")
    batch.create_job(bm.BatchJobCreateOptions(id="job-killed", pool_info=bm.BatchPoolInfo(pool_id=old)))
    batch.begin_disable_job("job-killed", bm.BatchJobDisableOptions(disable_tasks="wait")).result()
    batch.create_job(bm.BatchJobCreateOptions(id="job-half", pool_info=bm.BatchPoolInfo(pool_id=new)))
    batch.begin_disable_job("job-half", bm.BatchJobDisableOptions(disable_tasks="wait")).result()
    for job_id, pool_id in (("job-user-paused", old), ("job-user-paused-new", new)):
        batch.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
        batch.begin_disable_job(job_id, bm.BatchJobDisableOptions(disable_tasks="wait")).result()
    paused = ("job-killed", "job-half", "job-user-paused", "job-user-paused-new")
    wait_for(lambda: all(state(batch.get_job(j).state) == "disabled" for j in paused), "jobs disabled")
    store = TaskStateStore(jobs_disabled_by_roll=["job-killed", "job-half"])  # what the killed try recorded

    result, _ = run_operator(roll(spec, old, version_id), {**context_for(), "task_state_store": store})

    assert result["pool_id"] == new and result["deleted_pools"] == [old]
    assert set(result["moved_jobs"]) == {"job-longlived", sched_job, "job-killed", "job-user-paused"}, result
    assert store["jobs_disabled_by_roll"] == []
    assert {"logical_pool", "version", "account", "moved_schedules", "nodes"} <= set(result)  # keys kept
    assert result["moved_schedules"] == ["sched-now"]
    assert pool_gone(batch, old)
    for job_id in ("job-longlived", sched_job, "job-killed", "job-half"):
        job = batch.get_job(job_id)
        assert (job.pool_info.pool_id, state(job.state)) == (new, "active"), (job_id, job.as_dict())
    for job_id in ("job-user-paused", "job-user-paused-new"):  # the user's choice outlives the roll
        job = batch.get_job(job_id)
        assert (job.pool_info.pool_id, state(job.state)) == (new, "disabled"), (job_id, job.as_dict())
    assert jobs_on_missing_pools(env) == []
    # the long-lived job goes on: a task added after the roll runs on the new pool
    batch.create_task("job-longlived", bm.BatchTaskCreateOptions(id="after-roll", command_line="/bin/bash -c 'echo 2'"))
    task = completed(batch, "job-longlived", "after-roll")
    assert task.execution_info.exit_code == 0 and task.node_info.pool_id == new


def test_a_retry_after_the_roll_moved_the_jobs_changes_nothing(env):
    """roll_pool run twice (a clear after success): the second run finds no old pool and no job to move."""
    version_id = build_image_version(env)
    spec = plan_pool(env)
    new = make_canary(spec, version_id)
    old = make_serving(env, spec["logical_pool"])
    batch = env.batch()
    batch.create_job(bm.BatchJobCreateOptions(id="job-longlived", pool_info=bm.BatchPoolInfo(pool_id=old)))
    first, _ = run_operator(roll(spec, old, version_id), context_for())
    assert first["moved_jobs"] == ["job-longlived"]
    mark = env.control.requests()["last_id"]
    again, _ = run_operator(roll(spec, old, version_id), context_for())
    writes = [r["op"] for r in env.control.requests(since=mark, items=True)["items"]
              if r["family"] == "batch" and r["method"] != "GET"]
    assert again["moved_jobs"] == [] and again["pool_id"] == new
    assert not [w for w in writes if w.startswith("Job_")], writes
    assert (batch.get_job("job-longlived").pool_info.pool_id, state(batch.get_job("job-longlived").state)) == (
        new, "active")
    assert jobs_on_missing_pools(env) == []


# --- autoscale through the roll ---------------------------------------------------------------------------------------


def autoscale_template() -> dict:
    return {"enableAutoScale": True, "autoScaleFormula": FORMULA, "autoScaleEvaluationInterval": "PT5M"}


def batch_writes(env, since: int) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in env.control.requests(since=since, items=True)["items"]
            if r["family"] == "batch" and r["method"] != "GET"]


def test_autoscaled_waiter_waits_for_the_first_evaluation_and_fails_on_batchs_error():
    from batch_images.triggers.waiters import get_waiter

    w = get_waiter("batch_pool_autoscaled")
    base = {"pool_id": "p", "found": True, "enable_auto_scale": True}
    assert w.evaluate({**base, "auto_scale_run": None})[0] == "retry"
    assert w.evaluate({**base, "auto_scale_run": {"timestamp": "t", "results": "$TargetDedicatedNodes=1"}})[0] == \
        "success"
    status, text = w.evaluate({**base, "auto_scale_run": {"timestamp": "t", "error": {
        "code": "AutoScalingFormulaEvaluationError", "message": "division by zero", "values": []}}})
    assert status == "failure" and "AutoScalingFormulaEvaluationError: division by zero" in text
    assert w.evaluate({**base, "enable_auto_scale": False, "auto_scale_run": None})[0] == "failure"
    assert w.evaluate({"pool_id": "p", "found": False})[0] == "failure"


def test_blue_green_enables_the_formula_on_the_new_pool_and_drains_the_autoscaled_old_one(env):
    """The old pool is autoscaled: its autoscale is disabled before it is resized to zero (Batch refuses the resize
    otherwise), then it is deleted. The canary (fixed size) gets the template's formula and interval when it becomes
    serving, and roll_pool ends after Batch's first evaluation of it (autoScaleRun without error)."""
    version_id = build_image_version(env)
    spec = plan_pool(env, autoscale_template())
    new = make_canary(spec, version_id)
    old = make_serving(env, spec["logical_pool"], autoscale=FORMULA)
    mark = env.control.requests()["last_id"]
    result, _ = run_operator(roll(spec, old, version_id), context_for())
    writes = batch_writes(env, mark)
    assert result["pool_id"] == new and result["deleted_pools"] == [old]
    old_paths = [path for _, path in writes if f"/pools/{old}/" in path or path.endswith(f"/pools/{old}")]
    disable = next(i for i, p in enumerate(old_paths) if p.endswith("/disableautoscale"))
    resize = next(i for i, p in enumerate(old_paths) if p.endswith("/resize"))
    assert disable < resize, old_paths
    pool = env.batch().get_pool(new)
    assert pool.enable_auto_scale is True and pool.auto_scale_formula == FORMULA
    assert pool.auto_scale_evaluation_interval.total_seconds() == 300
    assert pool.auto_scale_run is not None and pool.auto_scale_run.error is None
    assert pool_gone(env.batch(), old)
    assert jobs_on_missing_pools(env) == []


def test_in_place_on_an_autoscaled_pool_disables_empties_patches_and_enables_again(env):
    """in_place: autoscale disabled, the pool emptied, its image patched, the formula enabled again (same id); the
    pool's active job is paused and enabled again, a job its user disabled stays disabled."""
    version_id = build_image_version(env)
    spec = plan_pool(env, autoscale_template())
    spec["roll"] = {**spec["roll"], "strategy": "in_place"}
    serving = make_serving(env, spec["logical_pool"], autoscale=FORMULA)
    spec["pool_id"] = serving
    batch = env.batch()
    for job_id in ("job-active", "job-user-paused"):
        batch.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=serving)))
    batch.begin_disable_job("job-user-paused", bm.BatchJobDisableOptions(disable_tasks="wait")).result()
    mark = env.control.requests()["last_id"]
    store = TaskStateStore()
    result, _ = run_operator(roll(spec, serving, version_id), {**context_for(), "task_state_store": store})
    assert {j: state(batch.get_job(j).state) for j in ("job-active", "job-user-paused")} == {
        "job-active": "active", "job-user-paused": "disabled"}
    assert store["jobs_disabled_by_roll"] == []
    paths = [path.rsplit("/", 1)[-1] for _, path in batch_writes(env, mark) if f"/pools/{serving}" in path]
    order = [p for p in paths if p in ("disableautoscale", "resize", serving, "enableautoscale")]
    assert order.index("disableautoscale") < order.index("resize") < order.index("enableautoscale"), order
    pool = env.batch().get_pool(serving)
    assert result["pool_id"] == serving
    assert pool.virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() == version_id.lower()
    assert pool.enable_auto_scale is True and pool.auto_scale_formula == FORMULA
    assert pool.auto_scale_run is not None and pool.auto_scale_run.error is None


def test_a_formula_batch_refuses_at_promotion_fails_the_roll_naming_batchs_error(env):
    """The canary's first evaluation fails (a formula that divides by zero): roll_pool fails with Batch's code."""
    from airflow.sdk.exceptions import AirflowException

    version_id = build_image_version(env)
    spec = plan_pool(env, {**autoscale_template(), "autoScaleFormula": "$TargetDedicatedNodes = 1 / 0;"})
    make_canary(spec, version_id)
    old = make_serving(env, spec["logical_pool"])
    with pytest.raises(AirflowException, match="autoscale"):
        run_operator(roll(spec, old, version_id), context_for())
