"""Fault suite, Batch pools that serve users' work (issue 7 item 1, issue 8 item 5).

The real DAG with `airflow dags test` against the stand-in (pipeline_harness), then what a user of the pool
would notice, measured with the SDKs: the pool still there, their tasks still running and never requeued.
"""
from __future__ import annotations

import time

import pytest
from azure.batch import models as bm

from batch_images.rules import naming
from pipeline_harness import LOGICAL_DATE, POOL_ID, PipelineHarness, dag_id_for, pipeline_config, summary

# Writes that would touch a pool or its nodes (the stand-in's operation names, Azure's operationIds).
POOL_WRITES = ("Pool_Delete", "Pool_Resize", "Pool_RemoveNodes", "Pool_StopResize", "ComputeNode_Reboot",
               "ComputeNode_Reimage", "Pool_Patch", "Pool_UpdateProperties")
LONG = "/bin/bash -c 'sleep 36000000'"   # simulated seconds: outlives any run at the suite's time scale


@pytest.fixture
def harness(standin, tmp_path, request):
    def make(*, pool=None, **top) -> PipelineHarness:
        dag_id = dag_id_for(request.node.name)
        cfg = pipeline_config(standin.endpoints, dag_id, pool=pool, **top)
        return PipelineHarness(standin, dag_id, tmp_path, cfg)

    return make


def clear_dag_run(dag_id: str, logical_date: str) -> None:
    """What "Clear" on a DAG run does in the UI: every task instance back to no state, max_tries raised."""
    from datetime import datetime

    from airflow.models import DagRun, TaskInstance
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id,
                                           DagRun.logical_date == datetime.fromisoformat(logical_date)).one()
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id == run.run_id).all()
        clear_task_instances(tis, session)


def _tasks_on_every_node(standin, pool_id: str, nodes: int) -> list[str]:
    client = standin.batch()
    client.create_job(bm.BatchJobCreateOptions(id="users-work", pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    ids = [f"render-{i}" for i in range(nodes)]
    client.create_task_collection("users-work", bm.BatchTaskGroup(
        task_values=[bm.BatchTaskCreateOptions(id=t, command_line=LONG) for t in ids]))
    deadline = time.monotonic() + 30
    while [client.get_task("users-work", t).state for t in ids] != ["running"] * nodes:
        assert time.monotonic() < deadline, "the users' tasks did not start"
        time.sleep(0.05)
    return ids


def test_busy_pool_clear_and_rerun_while_tasks_run_on_every_node(harness, standin, reliability_row):
    """Run 1 makes the pool; a user's job then runs a long task on every node; run 2 is a clear-and-rerun of
    the same DAG run (same run_id, so the pool's metadata says this run created it). Before the fix the
    sensor waited for idle nodes until its timeout and the cleanup deleted the pool, requeueing the tasks."""
    h = harness()
    first = h.run()
    assert first.state == "success", first.log_path
    nodes = h.plan["pools"][0]["target_dedicated_nodes"]
    ids = _tasks_on_every_node(standin, POOL_ID, nodes)
    mark = standin.control.requests()["last_id"]

    clear_dag_run(h.dag_id, LOGICAL_DATE)
    second = h.run(resume=True)   # the same DagRun, every task again (resume_dag_run.py reuses the run)
    report = h.invariants(success=True)
    assert second.run["run_id"] == first.run["run_id"]   # the same run again: the pool is "this run's"
    client = standin.batch()
    writes = [r for r in standin.control.requests(since=mark, items=True)["items"]
              if r["op"] in POOL_WRITES and r["path"].lower().find(POOL_ID) >= 0]
    tasks = [client.get_task("users-work", t) for t in ids]
    requeued = [t.id for t in tasks if t.execution_info.requeue_count or t.state != "running"]
    pool = client.get_pool(POOL_ID)
    deleted = int(pool.state != "active")
    reliability_row("busy pool: clear-and-rerun while tasks run on every node", runs=2,
                    survived=second.state == "success" and not (writes or requeued or report.problems),
                    leaked=report.leaked + deleted + len(requeued),
                    note=f"pool writes {len(writes)}, tasks requeued {len(requeued)}")
    assert second.state == "success", summary(report, second)
    assert not report.problems, summary(report, second)
    assert writes == [] and requeued == [] and not deleted, (writes, requeued, pool.state)
    # The rerun finds the logical pool served by this run's version (plan_roll: current), so it makes and waits for
    # no pool; roll_pool checks every node's image while the users' tasks run. (The sensor's verdict on a pool busy
    # on every node is tests/pipeline/test_pool_busy.py's.)
    assert f"is already served by {POOL_ID} on" in second.log, second.log_path
    assert f"Pool {POOL_ID} serves logical pool" in second.log and f"all {nodes} node(s) on" in second.log, \
        second.log_path


def test_spot_nodes_preempted_one_of_six(harness, standin, reliability_row):
    """Six Spot/low-priority nodes, one preempted by Azure once it is up: the pool is ready, the log says
    how many were preempted, and nothing is repaired, resized or deleted."""
    h = harness(pool={"target_dedicated_nodes": 0, "target_low_priority_nodes": 6})
    standin.control.add_fault("node_preempted", match={"pool_regex": POOL_ID}, nodes=1)
    mark = standin.control.requests()["last_id"]
    result = h.run()
    report = h.invariants(success=True)
    [counts] = [c for c in standin.batch().list_pool_node_counts() if c.pool_id == POOL_ID]
    writes = [r for r in standin.control.requests(since=mark, items=True)["items"] if r["op"] in POOL_WRITES]
    # The run's one pool write is roll_pool marking its new pool serving (a metadata PATCH): nothing is repaired,
    # resized or deleted.
    role_flips = [r for r in writes if r["op"] == "Pool_Patch"]
    repairs = [r for r in writes if r["op"] != "Pool_Patch"]
    role = {m.name: m.value for m in standin.batch().get_pool(POOL_ID).metadata or []}.get(naming.TAG_ROLE)
    reliability_row("Spot/low-priority nodes preempted (1 of 6)", runs=1,
                    survived=result.state == "success" and not report.problems and not repairs, leaked=report.leaked)
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert (counts.low_priority.preempted, counts.low_priority.total) == (1, 6), standin.control.faults()
    assert repairs == [], repairs
    assert len(role_flips) == 1 and role == naming.ROLE_SERVING, (role_flips, role)
    assert "5/6 nodes ready (idle 5); 1 preempted" in result.log, result.log_path
