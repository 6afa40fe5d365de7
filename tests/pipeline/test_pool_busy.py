"""Pools that serve users' work are ready pools, and nothing in the pipeline deletes, shrinks or requeues them.

Issue 7 item 1 (a busy pool deleted on re-run) and issue 8 item 5 (preempted Spot nodes), at the level of the
waiter's verdicts, the sensor and its repair/cleanup, against the stand-in through the real SDKs. The whole
DAG clear-and-rerun is in tests/reliability/test_faults_pools.py.
"""
from __future__ import annotations

import time

import pytest
from azure.batch import models as bm

from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from _batch_common import RUN_ID, _state, context_for, create, in_dag, pool_spec, run_operator, sensor
from batch_images import pool_facts
from batch_images.hooks.batch import BatchPoolHook
from batch_images.sensors.pool_repair import PoolRepair, PoolRepairFailed
from batch_images.triggers.waiters import batch as steady

LONG = "/bin/bash -c 'sleep 3600000'"   # 1000 simulated hours: outlives any test


# --- one verdict per node state ----------------------------------------------------------------------------------


def test_every_batch_node_state_has_exactly_one_verdict():
    sdk_states = {s.value for s in bm.BatchNodeState}
    assert set(pool_facts.NODE_STATE_VERDICTS) == sdk_states == set(pool_facts.NODE_COUNT_FIELDS)
    assert all(v in (pool_facts.READY, pool_facts.NOT_YET, pool_facts.UNHEALTHY, pool_facts.TOLERATED) and why
               for v, why in pool_facts.NODE_STATE_VERDICTS.values())
    assert pool_facts.UNHEALTHY_NODE_STATES == ("starttaskfailed", "unusable")


@pytest.mark.parametrize("nodes, verdict", [
    ({"running": 4}, "success"),                              # every node busy with users' tasks
    ({"idle": 1, "running": 3}, "success"),
    ({"idle": 3, "offline": 1}, "success"),                   # a user disabled scheduling on one
    ({"idle": 2, "deallocated": 2}, "success"),               # a user stopped two
    ({"running": 3, "creating": 1}, "retry"),
    ({"idle": 3, "starting": 1}, "retry"),
    ({"idle": 3, "waitingforstarttask": 1}, "retry"),
    ({"running": 3, "rebooting": 1}, "retry"),
    ({"idle": 3, "reimaging": 1}, "retry"),
    ({"idle": 3, "upgradingos": 1}, "retry"),
    ({"idle": 3, "unknown": 1}, "retry"),
    ({"idle": 3}, "retry"),                                   # /nodecounts not caught up with the pool yet
    ({"offline": 4}, "success"),
    ({"idle": 3, "unusable": 1}, "failure"),
])
def test_node_states_decide_readiness(nodes, verdict):
    assert steady.classify(_state(nodes=nodes))[0] == verdict, nodes


def test_preempted_spot_nodes_are_tolerated_and_named():
    state = _state(target_dedicated_nodes=0, current_dedicated_nodes=0, target_low_priority_nodes=6, current_low_priority_nodes=6,
                   nodes={"idle": 5, "preempted": 1})
    status, reason, message = steady.classify(state)
    assert (status, reason) == ("success", steady.STEADY)
    assert "5/6 nodes ready (idle 5)" in message and "1 preempted (Spot/low-priority" in message
    assert "preempted 1" in steady.progress(state)
    # all of them preempted: nothing can run there yet - wait (and time out) rather than call it ready
    gone = dict(state, nodes={"preempted": 6})
    assert steady.classify(gone)[0] == "retry"
    # dedicated nodes that cannot be had still fail as before (a resize error), preempted Spot nodes or not
    quota = dict(state, target_dedicated_nodes=2, resize_errors=[{"code": "AccountCoreQuotaReached", "message": "m"}])
    assert steady.classify(quota)[:2] == ("failure", steady.QUOTA)


# --- against the stand-in ---------------------------------------------------------------------------------------


def _busy(env, pool_id: str, job_id: str = "users-job", nodes: int = 4) -> list[str]:
    """A user's job with a long task on every node of the pool; returns the task ids once all run."""
    client = env.batch()
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    ids = [f"t{i}" for i in range(nodes)]
    client.create_task_collection(job_id, bm.BatchTaskGroup(
        task_values=[bm.BatchTaskCreateOptions(id=t, command_line=LONG) for t in ids]))
    deadline = time.monotonic() + 30
    while [client.get_task(job_id, t).state for t in ids] != ["running"] * nodes:
        assert time.monotonic() < deadline, [client.get_task(job_id, t).state for t in ids]
        time.sleep(0.05)
    return ids


def _untouched(env, pool_id: str, job_id: str, ids: list[str]) -> None:
    client = env.batch()
    pool = client.get_pool(pool_id)
    assert (pool.state, pool.current_dedicated_nodes, pool.target_dedicated_nodes) == ("active", 4, 4)
    tasks = [client.get_task(job_id, t) for t in ids]
    assert [(t.state, t.execution_info.requeue_count) for t in tasks] == [("running", 0)] * len(ids)


def _ready(env, spec, version_id) -> None:
    create(spec, version_id)
    run_operator(sensor(spec), context_for())


def test_sensor_reports_a_pool_busy_on_every_node_as_ready(env, version_id):
    spec = pool_spec(env)
    _ready(env, spec, version_id)
    ids = _busy(env, spec["pool_id"])
    mark = env.control.requests()["last_id"]
    result, events = run_operator(sensor(spec), context_for())   # a clear-and-rerun of the wait
    assert result == spec["pool_id"] and events[-1]["status"] == "success"
    assert "4/4 nodes ready (running 4)" in events[-1]["message"]
    writes = [r for r in env.control.requests(since=mark, items=True)["items"] if r["write"]]
    assert writes == []
    _untouched(env, spec["pool_id"], "users-job", ids)


def _repair(env, spec) -> PoolRepair:
    return PoolRepair(BatchPoolHook(spec["batch_conn_id"]), pool_id=spec["pool_id"],
                      target_dedicated_nodes=spec["target_dedicated_nodes"], target_low_priority_nodes=0,
                      resize_timeout=spec["resize_timeout"])


def test_cleanup_leaves_a_pool_running_users_tasks_and_says_so(env, version_id):
    spec = pool_spec(env)
    _ready(env, spec, version_id)
    ids = _busy(env, spec["pool_id"])
    mark = env.control.requests()["last_id"]
    text = _repair(env, spec).cleanup(sensor(spec).dag_id, RUN_ID)
    assert "was left in place because it is in use" in text
    assert "4 node(s) running tasks" in text and "job users-job (active)" in text
    ops = env.control.requests(since=mark)["counts"]
    batch_ops = {op: n for op, n in ops.items() if op.startswith("batch:")}
    assert batch_ops == {"batch:Pool_Get": 1, "batch:Account_ListPoolNodeCounts": 1, "batch:Job_List": 1,
                         "batch:JobSchedule_List": 1}   # a check costs four reads whatever the account holds
    _untouched(env, spec["pool_id"], "users-job", ids)


@pytest.mark.parametrize("pointer", ["job", "job schedule"])
def test_cleanup_leaves_a_pool_that_a_job_or_schedule_points_at(env, version_id, pointer):
    spec = pool_spec(env)
    _ready(env, spec, version_id)
    client = env.batch()
    info = bm.BatchPoolInfo(pool_id=spec["pool_id"])
    if pointer == "job":   # created, no task yet: nothing runs, but the user means to use the pool
        client.create_job(bm.BatchJobCreateOptions(id="nightly", pool_info=info))
    else:
        client.create_job_schedule(bm.BatchJobScheduleCreateOptions(
            id="nightly", schedule=bm.BatchJobScheduleConfiguration(recurrence_interval="P1D",
                                                                    do_not_run_until="2099-01-01T00:00:00Z"),
            job_specification=bm.BatchJobSpecification(pool_info=info)))
    text = _repair(env, spec).cleanup(sensor(spec).dag_id, RUN_ID)
    assert f"{pointer} nightly (active)" in text and "left in place" in text
    assert client.get_pool(spec["pool_id"]).state == "active"


def test_cleanup_still_deletes_an_unused_pool_of_this_run(env, version_id):
    spec = pool_spec(env)
    _ready(env, spec, version_id)
    client = env.batch()   # a job on another pool, and a finished one on this pool, do not count
    client.create_job(bm.BatchJobCreateOptions(id="elsewhere", pool_info=bm.BatchPoolInfo(pool_id="other-pool")))
    client.create_job(bm.BatchJobCreateOptions(id="done", pool_info=bm.BatchPoolInfo(pool_id=spec["pool_id"])))
    client.begin_terminate_job("done", {"terminateReason": "done"}).result()
    text = _repair(env, spec).cleanup(sensor(spec).dag_id, RUN_ID)
    assert "was deleted" in text, text
    assert client.get_pool(spec["pool_id"]).state == "deleting"


def test_repair_never_shrinks_a_busy_pool(env, version_id):
    spec = pool_spec(env)
    _ready(env, spec, version_id)
    ids = _busy(env, spec["pool_id"])
    small = PoolRepair(BatchPoolHook(spec["batch_conn_id"]), pool_id=spec["pool_id"], target_dedicated_nodes=2,
                       target_low_priority_nodes=0, resize_timeout=spec["resize_timeout"])
    with pytest.raises(PoolRepairFailed) as info:
        small.attempt(steady.SIZE_MISMATCH, "steady at 4, target 2", {}, {})
    assert "not shrinking it" in str(info.value) and "4 node(s) running tasks" in str(info.value)
    _untouched(env, spec["pool_id"], "users-job", ids)


def test_sensor_on_a_pool_with_preempted_spot_nodes_succeeds(env, version_id):
    env.control.add_fault("node_preempted", match={"pool_regex": ".*"}, nodes=1)
    spec = pool_spec(env, target_dedicated_nodes=0, target_low_priority_nodes=6)
    _ready(env, spec, version_id)
    env.control.advance(600)   # the doomed node is preempted a while after it became idle
    result, events = run_operator(sensor(spec), context_for())
    assert result == spec["pool_id"]
    message = events[-1]["message"]
    assert "5/6 nodes ready (idle 5)" in message and "1 preempted" in message, message


# --- timeout: AirflowSensorTimeout, one budget across task retries ----------------------------------------------


class _Store:
    """The task state store's interface (get/set), kept in a dict for a context built by hand."""

    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value, **_):
        self.data[key] = value


def test_timeout_budget_spans_task_retries_and_raises_sensor_timeout(env, version_id):
    env.control.set_scale(1)   # nothing moves in real time
    spec = pool_spec(env)
    create(spec, version_id)
    store = _Store()
    ctx = context_for()
    ctx["task_state_store"] = store
    ctx["ti"].max_tries = 2
    ctx["ti"].try_number = 1
    op = sensor(spec, timeout=30, retries=2)
    with pytest.raises(TaskDeferred):   # try 1 starts the budget and defers
        op.execute(ctx)
    [record] = store.data.values()
    record["started"] -= 31             # ... and the worker died; try 2 starts after the budget ran out
    ctx["ti"].try_number = 2
    mark = env.control.requests()["last_id"]
    with pytest.raises(AirflowSensorTimeout) as info:
        run_operator(op, ctx)
    assert not isinstance(info.value, AirflowFailException)
    assert "did not reach steady state" in str(info.value) and "task retries included" in str(info.value)
    # the pool this run created and nobody uses is cleaned up as before
    assert "was deleted" in str(info.value)
    assert env.control.requests(since=mark)["counts"].get("batch:Pool_Delete") == 1


def test_deferrable_defaults_from_airflow_config(monkeypatch):
    from batch_images.sensors.pool import BatchPoolSteadySensor

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert in_dag(lambda: BatchPoolSteadySensor(task_id="w", pool_id="p")).deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert in_dag(lambda: BatchPoolSteadySensor(task_id="w", pool_id="p")).deferrable is True
    assert in_dag(lambda: BatchPoolSteadySensor(task_id="w", pool_id="p", deferrable=False)).deferrable is False
