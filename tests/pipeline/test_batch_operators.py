"""The Batch half against the stand-in: BatchPoolHook, the batch_pool_steady waiter, BatchPoolOperator and
BatchPoolSteadySensor (deferrable through the real trigger, and in-worker), repairs and clean-up.

Nothing the stand-in serves is mocked. Image versions are built with azure-mgmt-compute directly; results are
checked with the azure-batch SDK; faults come from the stand-in's control API.
"""
from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import pytest
from azure.batch import models as bm
from azure.core.exceptions import ResourceNotFoundError

from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from _batch_common import (
    DAG_ID,
    POLL,
    RUN_ID,
    VERSION,
    _state,
    build_image_version,
    context_for,
    create,
    in_dag,
    pipeline_dict,
    pool_spec,
    run_operator,
    sensor,
    set_connections,
)
from batch_images.hooks.batch import BatchPoolHook
from batch_images.pool_facts import iso_duration, parse_duration
from batch_images.sensors.pool import BatchPoolSteadySensor
from batch_images.triggers.base import AzureBaseWaiterTrigger, run_waiter_sync
from batch_images.triggers.waiters import get_waiter
from batch_images.triggers.waiters import batch as steady

# fixtures (env, version_id) are in conftest.py; the pool operator and sensor helpers in _batch_common.py


def batch(env):
    return env.batch()


def assert_deleted(env, pool_id: str) -> None:
    """Deleting, or already gone (deletion takes 30 simulated seconds: milliseconds at test speed)."""
    try:
        state = batch(env).get_pool(pool_id).state
    except ResourceNotFoundError:
        return
    assert state == bm.BatchPoolState.DELETING


def counts(env, since: int = 0) -> dict:
    return env.control.requests(since=since)["counts"]


# --- hook ------------------------------------------------------------------------------------------------------


def test_hook_entra_id_and_reads(env):
    hook = BatchPoolHook()
    assert not hook.uses_shared_key
    assert hook.credential_conn_id == "azure_default"
    assert "Entra ID from connection azure_default" in hook.describe()
    images = hook.list_supported_images()
    assert any(i["node_agent_sku_id"] == "batch.node.ubuntu 22.04" and i["os_type"] == "linux" for i in images)
    assert hook.get_pool("nosuchpool") is None
    assert hook.pool_node_counts("nosuchpool") == {"dedicated": {}, "low_priority": {}, "total": {}}


def test_hook_shared_key_detected(env, monkeypatch):
    set_connections(monkeypatch, env.endpoints, shared_key=True)
    assert BatchPoolHook().uses_shared_key


def test_duration_helpers():
    assert iso_duration(timedelta(minutes=15)) == "PT15M"
    assert parse_duration("PT15M00S") == timedelta(minutes=15)
    assert parse_duration("PT1H30M") == timedelta(minutes=90)


# --- waiter (pure) ---------------------------------------------------------------------------------------------


def test_waiter_is_registered_and_evaluates():
    w = get_waiter("batch_pool_steady")
    assert w.hook == "batch"
    assert w.evaluate(_state())[0] == "success"
    s = _state(allocation_state="resizing", current_dedicated_nodes=3,
               nodes={"idle": 2, "starting": 1, "waitingforstarttask": 1})
    assert w.evaluate(s)[0] == "retry"
    assert w.progress(s) == "allocation resizing; 3/4 dedicated; idle 2, starting 1, waitingforstarttask 1"
    # steady at target, but a node still starting: keep waiting
    assert w.evaluate(_state(nodes={"idle": 3, "starting": 1}))[0] == "retry"


def test_waiter_fails_fast_with_reasons():
    quota = _state(current_dedicated_nodes=2, resize_errors=[{
        "code": "AccountVMSeriesCoreQuotaReached", "message": "8 more cores needed, 48 of 50 in use",
        "values": {"CoreQuota": "50"}}])
    status, reason, message = steady.classify(quota)
    assert (status, reason) == ("failure", steady.QUOTA)
    assert "48 of 50" in message and "CoreQuota=50" in message and "2/4 dedicated" in message
    status, reason, _ = steady.classify(_state(resize_errors=[{"code": "AllocationTimedout", "message": "m"}]))
    assert (status, reason) == ("failure", steady.ALLOCATION_TIMED_OUT)
    unhealthy = _state(allocation_state="resizing", nodes={"idle": 2, "starttaskfailed": 1, "unusable": 1})
    status, reason, message = steady.classify(unhealthy)
    assert (status, reason) == ("failure", steady.UNHEALTHY_NODES)
    assert "2 of 4 nodes are unhealthy (starttaskfailed 1, unusable 1); at most 0 tolerated" in message
    # a tolerated share: 1 of 4 nodes may stay unhealthy
    ok = _state(max_unhealthy_node_share=0.25, nodes={"idle": 3, "starttaskfailed": 1})
    assert steady.classify(ok)[0] == "success"
    assert steady.classify(_state(current_dedicated_nodes=3, nodes={"idle": 3}))[1] == steady.SIZE_MISMATCH
    assert steady.classify({"pool_id": "p", "found": False})[1] == steady.POOL_MISSING


# --- operator: create, verify, adopt, mismatch ------------------------------------------------------------------


def test_pool_operator_creates_pinned_pool(env, version_id):
    spec = pool_spec(env)
    before = env.control.requests()["last_id"]
    assert create(spec, version_id) == spec["pool_id"] == "ubuntu2204-2026-1125-0"

    pool = batch(env).get_pool(spec["pool_id"])
    vmc = pool.virtual_machine_configuration
    assert vmc.image_reference.virtual_machine_image_id.lower() == version_id.lower()
    assert version_id.endswith("/versions/2026.1125.0")
    assert vmc.node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert pool.resize_timeout == timedelta(minutes=15)
    assert pool.vm_size.lower() == "standard_d2s_v3"
    assert (pool.target_dedicated_nodes, pool.target_low_priority_nodes) == (4, 0)
    assert pool.start_task.command_line == "/bin/bash -c 'echo ready'" and pool.start_task.wait_for_success
    meta = {m.name: m.value for m in pool.metadata}
    assert meta["image-version"] == VERSION and meta["managed-by"] == "airflow-batch-images"
    assert meta["dag_id"] == DAG_ID and meta["run_id"] == RUN_ID
    assert counts(env, before).get("batch:Pool_Add") == 1


def test_pool_operator_resize_timeout_never_under_15_minutes(env, version_id):
    spec = pool_spec(env, resize_timeout="PT5M")
    create(spec, version_id)
    assert batch(env).get_pool(spec["pool_id"]).resize_timeout == timedelta(minutes=15)


def test_pool_operator_retry_adopts(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    before = env.control.requests()["last_id"]
    assert create(spec, version_id) == spec["pool_id"]  # a retry of the same task
    assert "batch:Pool_Add" not in counts(env, before)


def test_pool_operator_fails_on_pool_with_other_image(env, version_id):
    other = build_image_version(env, version="2026.1125.1")
    spec = pool_spec(env)
    create(dict(spec, metadata=dict(spec["metadata"], **{"image-version": "2026.1125.1"})), other)
    with pytest.raises(AirflowFailException) as info:
        create(spec, version_id)
    message = str(info.value)
    assert "pool_spec.pool_id: 'ubuntu2204-2026-1125-0'" in message
    assert "/versions/2026.1125.1" in message and "/versions/2026.1125.0" in message
    assert "Fix:" in message


def test_pool_operator_refuses_shared_key_without_writing(env, version_id, monkeypatch):
    spec = pool_spec(env)
    set_connections(monkeypatch, env.endpoints, shared_key=True)
    before = env.control.requests()["last_id"]
    with pytest.raises(AirflowFailException, match="Shared Key"):
        create(spec, version_id)
    assert env.control.requests(since=before)["write_attempts"] == 0


def test_pool_operator_refuses_floating_image_id(env, version_id):
    spec = pool_spec(env)
    definition_id = version_id.rsplit("/versions/", 1)[0]
    with pytest.raises(AirflowFailException, match="image_version_id"):
        create(spec, definition_id)


# --- sensor: steady, repairs, failures --------------------------------------------------------------------------


def test_sensor_deferrable_reaches_steady_with_idle_nodes(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    before = env.control.requests()["last_id"]
    result, events = run_operator(sensor(spec), context_for())
    assert result == spec["pool_id"]
    assert events and events[-1]["status"] == "success" and events[-1]["value"] == spec["pool_id"]
    (pc,) = [c for c in batch(env).list_pool_node_counts() if c.pool_id == spec["pool_id"]]
    assert pc.dedicated.idle == 4 and pc.dedicated.total == 4
    pool = batch(env).get_pool(spec["pool_id"])
    assert pool.allocation_state == bm.AllocationState.STEADY and pool.current_dedicated_nodes == 4
    seen = counts(env, before)
    assert "batch:ComputeNode_List" not in seen  # polling never lists nodes
    assert seen["batch:Account_ListPoolNodeCounts"] == seen["batch:Pool_Get"]  # one /nodecounts per poll


def test_sensor_in_worker_reaches_steady(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    assert sensor(spec, deferrable=False).execute(context_for()) == spec["pool_id"]


def test_trigger_serializes_and_runs(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    trigger = AzureBaseWaiterTrigger(waiter_name="batch_pool_steady", waiter_args={
        "pool_id": spec["pool_id"], "target_dedicated_nodes": 4, "target_low_priority_nodes": 0, "max_unhealthy_node_share": 0.0},
        conn_id="azure_batch_default", poll_interval=POLL, timeout_seconds=60, return_value=spec["pool_id"])
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)
    again = AzureBaseWaiterTrigger(**kwargs)

    async def first():
        async for event in again.run():
            return event.payload

    payload = asyncio.run(first())
    assert payload["status"] == "success" and payload["value"] == spec["pool_id"]
    assert payload["state"]["nodes"] == {"idle": 4}


def test_sensor_fails_fast_on_quota_and_deletes_its_pool(env, version_id):
    spec = pool_spec(env)  # preflight: the pool fits the quota then (it refuses one that does not)
    env.control.call("PUT", "/batch/quotas", {"account": env.endpoints["demo"]["batch_account"],
                                              "dedicatedCoreQuota": 4})
    create(spec, version_id)
    with pytest.raises(AirflowFailException) as info:
        run_operator(sensor(spec), context_for())
    message = str(info.value)
    assert "quota" in message.lower() and "CoreQuota=4" in message, message
    assert "2/4 dedicated" in message
    assert "(created by this run) was deleted" in message
    assert_deleted(env, spec["pool_id"])


def test_sensor_retries_once_after_allocation_timeout(env, version_id):
    env.control.add_fault("resize_error", count=1, code="AllocationTimedout",
                          message="Allocation timed out (injected)")
    spec = pool_spec(env)
    create(spec, version_id)
    before = env.control.requests()["last_id"]
    result, events = run_operator(sensor(spec), context_for())
    assert result == spec["pool_id"]
    assert [e["status"] for e in events] == ["failure", "success"]
    assert counts(env, before).get("batch:Pool_Resize") == 1
    assert batch(env).get_pool(spec["pool_id"]).current_dedicated_nodes == 4


def test_sensor_gives_up_after_second_allocation_timeout(env, version_id):
    env.control.add_fault("resize_error", count=2, code="AllocationTimedout",
                          message="Allocation timed out (injected)")
    spec = pool_spec(env)
    create(spec, version_id)
    with pytest.raises(AirflowFailException) as info:
        run_operator(sensor(spec), context_for())
    message = str(info.value)
    assert "AllocationTimedout" in message and "gave up after 1 resize retry" in message
    assert "was deleted" in message
    assert_deleted(env, spec["pool_id"])


def test_sensor_reboots_start_task_failures(env, version_id):
    env.control.add_fault("start_task_failed", count=1, nodes=1)
    spec = pool_spec(env)
    create(spec, version_id)
    before = env.control.requests()["last_id"]
    result, events = run_operator(sensor(spec), context_for())
    assert result == spec["pool_id"]
    assert events[0]["status"] == "failure" and "starttaskfailed 1" in events[0]["message"]
    seen = counts(env, before)
    assert seen.get("batch:ComputeNode_Reboot") == 1
    assert seen.get("batch:ComputeNode_List") == 1  # nodes are listed only to repair


def test_sensor_fails_listing_unusable_nodes_and_cleans_up(env, version_id):
    env.control.add_fault("node_unusable", count=1, nodes=2, code="NodeUnusable",
                          message="The node agent could not start (injected)")
    spec = pool_spec(env)
    create(spec, version_id)
    with pytest.raises(AirflowFailException) as info:
        run_operator(sensor(spec, max_node_repairs=0), context_for())
    message = str(info.value)
    # fail fast: the first unusable node ends the wait, the others may still be starting
    assert re.search(r"[12] of 4 nodes are unhealthy \(unusable [12]\); at most 0 tolerated", message), message
    assert "Gave up after 0 repair round(s)" in message
    assert "tvmps_" in message and ": unusable - NodeUnusable: The node agent could not start (injected)" in message
    assert "was deleted" in message


def test_sensor_removes_and_readds_nodes_that_stay_unusable(env, version_id):
    # A node agent that does not list the image's lineage: every node of every allocation ends unusable,
    # reboots do not help. Repair 1 reboots, repair 2 removes and re-adds, then the sensor gives up.
    spec = pool_spec(env, node_agent_sku_id="batch.node.ubuntu 20.04", target_dedicated_nodes=2)
    create(spec, version_id)
    before = env.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as info:
        run_operator(sensor(spec), context_for(), max_deferrals=30)
    seen = counts(env, before)
    assert seen.get("batch:ComputeNode_Reboot", 0) >= 1  # round 1
    assert seen.get("batch:Pool_RemoveNodes") == 1  # round 2
    assert seen.get("batch:Pool_Resize") == 1  # re-add: back to the target once steady
    message = str(info.value)
    assert "Gave up after 2 repair round(s)" in message and "tvmps_" in message
    assert "was deleted" in message


def test_sensor_leaves_a_pool_it_did_not_create(env, version_id):
    env.control.add_fault("resize_error", count=-1, code="AllocationTimedout", message="injected")
    spec = pool_spec(env)
    client = batch(env)
    client.create_pool(bm.BatchPoolCreateOptions(
        id=spec["pool_id"], vm_size=spec["vm_size"], target_dedicated_nodes=4,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version_id),
            node_agent_sku_id=spec["node_agent_sku_id"])))  # by hand, as a user would
    with pytest.raises(AirflowFailException) as info:
        run_operator(sensor(spec), context_for())
    assert "left in place: this run did not create it" in str(info.value)
    assert client.get_pool(spec["pool_id"]).state == bm.BatchPoolState.ACTIVE


def test_sensor_times_out_and_cleans_up(env, version_id):
    env.control.set_scale(1)  # nothing moves in real time
    spec = pool_spec(env)
    create(spec, version_id)
    with pytest.raises(AirflowSensorTimeout) as info:  # not retried by the task runner; not a "fail" either
        run_operator(sensor(spec, timeout=1), context_for())
    assert not isinstance(info.value, AirflowFailException)
    message = str(info.value)
    assert "did not reach steady state" in message and "was deleted" in message


def test_waiter_sync_runner(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    result = run_waiter_sync("batch_pool_steady", {"pool_id": spec["pool_id"], "target_dedicated_nodes": 4},
                             "azure_batch_default", poll_interval=POLL, timeout=60)
    assert result["status"] == "success"


def test_sensor_given_only_a_pool_id_uses_the_pools_targets(env, version_id):
    spec = pool_spec(env)
    create(spec, version_id)
    op = in_dag(lambda: BatchPoolSteadySensor(task_id="wait_for_pool", pool_spec=spec["pool_id"], poll_interval=POLL))
    result, events = run_operator(op, context_for())
    assert result == spec["pool_id"] and events[-1]["state"]["target_dedicated_nodes"] == 4


# --- the real Airflow path: dag.test() with mapped tasks and the triggerer inline --------------------------------

E2E_DAG = """
import json, os
from datetime import datetime, timezone
from airflow.sdk import DAG
from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import PoolSpecsOperator, PreflightOperator
from batch_images.sensors.pool import BatchPoolSteadySensor

with DAG(dag_id="batch_half_e2e", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
         catchup=False, params={"rebuild": 0}, render_template_as_native_obj=True) as dag:
    preflight = PreflightOperator(task_id="preflight", pipeline=json.loads(os.environ["E2E_PIPELINE"]),
                                  rebuild="{{ params.rebuild }}")
    # Airflow 3 maps only over return values: the plan's pools come out of a one-line task.
    specs = PoolSpecsOperator(task_id="pool_specs", plan=preflight.output).output
    pools = BatchPoolOperator.partial(task_id="create_pool", image_version_id=os.environ["E2E_VERSION_ID"]).expand(
        pool_spec=specs)
    waits = BatchPoolSteadySensor.partial(task_id="wait_for_pool_steady", poll_interval=0.05).expand(pool_spec=specs)
    pools >> waits
"""


def test_dag_preflight_pool_and_sensor_mapped(env, version_id, tmp_path, monkeypatch):
    from airflow.utils.state import DagRunState

    from _batch_common import LOGICAL_DATE

    (tmp_path / "batch_half_e2e.py").write_text(E2E_DAG)
    # dag.test() in Airflow 3.3 syncs the DAG from a bundle before it creates the run: a bundle of this one file.
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "batch-half-e2e", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(tmp_path), "refresh_interval": 0}}]))
    monkeypatch.setenv("E2E_PIPELINE", json.dumps(pipeline_dict(env.endpoints)))
    monkeypatch.setenv("E2E_VERSION_ID", version_id)
    from airflow.dag_processing.dagbag import BundleDagBag

    dag = BundleDagBag(dag_folder=str(tmp_path), bundle_path=str(tmp_path), bundle_name="batch-half-e2e").dags[
        "batch_half_e2e"]
    run = dag.test(logical_date=LOGICAL_DATE)
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert run.state == DagRunState.SUCCESS, states
    assert states[("wait_for_pool_steady", 0)] == "success"
    pool = batch(env).get_pool("ubuntu2204-2026-1125-0")
    meta = {m.name: m.value for m in pool.metadata}
    assert meta["dag_id"] == "batch_half_e2e" and meta["run_id"] == run.run_id
    (pc,) = [c for c in batch(env).list_pool_node_counts() if c.pool_id == pool.id]
    assert pc.dedicated.idle == 4
