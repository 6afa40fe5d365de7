"""ARM waits against answers real Azure (or a proxy in front of it) gives (issue 8, items 1-4 and 6).

Odd Retry-After values, provisioningState spellings, a 404 right after our own create, wait timeouts and
their budget across task retries, and adoption of an existing version that differs from the plan. Every
answer comes from the stand-in through the unmodified SDKs (faults `http` with `retry_after_header`,
`state_spelling`, `not_found_after_create`); nothing is mocked.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from azure.core.exceptions import HttpResponseError

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred
from batch_images.hooks.arm import ArmComputeHook
from batch_images.rules import ids
from batch_images.sensors.arm import ArmResourcesSensor
from batch_images.triggers import base
from batch_images.triggers.base import AzureBaseWaiterTrigger, run_waiter_sync, wait_for
from _arm_common import (
    GALLERY,
    POLL,
    build_image,
    gallery_op,
    promote_op,
    make_plan,
    requests_since,
    last_request_id,
    run_operator,
    run_trigger,
    sdk_get,
    snapshots_op,
)


def new_snapshot(plan, name: str) -> str:
    """Start a snapshot copy of the source VM's OS disk (no wait); its id."""
    snap_id = ids.snapshot_id(plan["work_subscription_id"], plan["work_resource_group"], name).id
    ArmComputeHook().begin_create_snapshot(snap_id, {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": plan["source"]["os_disk_id"]}}})
    return snap_id


def throttled_get_error(hook: ArmComputeHook, resource_id: str) -> BaseException:
    """What one GET of ``resource_id`` raises through the waiter's async client."""
    async def get():
        try:
            await hook.async_get_resource(resource_id)
        except BaseException as err:  # noqa: BLE001 - the point is to see what escapes
            return err
        finally:
            await hook.close()
        return None
    return asyncio.run(get())


# --- 1. Retry-After of any shape --------------------------------------------------------------------------------

ODD_RETRY_AFTER = [
    ("81,120", 120.0),            # two gateway hops joined into a list: the larger is honoured
    ("7", 7.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # an HTTP date in the past
    ("garbage", None),
    ("-5", None),
    ("", None),
    ("nan", None),
    ("86400000", base.MAX_RETRY_AFTER_SECONDS),  # capped
]


@pytest.mark.slow   # a wall-clock Retry-After wait: about 2 minutes
def test_hook_clients_wait_out_a_list_retry_after_and_waiter_clients_leave_it_to_the_loop(arm):
    """azure-core's own parser raises ValueError("Invalid HTTP date") on `81,120`. The hooks' clients read
    Retry-After with our parser (hooks/retry.py), so with the SDK's retries on, a read outside a wait (sync and
    async) is retried after the 429 and answers; the waiter clients (retry_total=0) hand the 429 to our loop."""
    from azure.core.pipeline.policies import _utils

    with pytest.raises(ValueError, match="Invalid HTTP date"):
        _utils.parse_retry_after("81,120")
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-ra")
    since = last_request_id(arm)
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, status=429, retry_after_header="81,120")
    assert ArmComputeHook(client_options={"retry_total": 2}).get_resource(snap)["name"] == "snap-ra"
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, status=429, retry_after_header="garbage")
    assert throttled_get_error(ArmComputeHook(client_options={"retry_total": 2}), snap) is None
    statuses = [r["status"] for r in requests_since(arm, since) if r["op"] == "Snapshots_Get"]
    assert statuses == [429, 200, 429, 200], statuses
    assert base.WAITER_CLIENT_OPTIONS["retry_total"] == 0
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, status=429, retry_after_header="81,120")
    err = throttled_get_error(ArmComputeHook(client_options=base.WAITER_CLIENT_OPTIONS), snap)
    assert isinstance(err, HttpResponseError) and err.status_code == 429


@pytest.mark.parametrize("header,seconds", ODD_RETRY_AFTER)
def test_retry_after_read_from_a_real_429(arm, header, seconds):
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-ra")
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, status=429, retry_after_header=header)
    err = throttled_get_error(ArmComputeHook(client_options=base.WAITER_CLIENT_OPTIONS), snap)
    assert isinstance(err, HttpResponseError) and err.status_code == 429
    got = base.retry_after_seconds(err)
    assert got == pytest.approx(seconds, abs=1e-6) if seconds is not None else got is None
    # the delay the loop then waits: Retry-After when usable, else the fallback, doubling per throttle in a row
    delay = base.throttle_delay(got, 1.0, 2)
    assert delay == (max(1.0, seconds) if seconds is not None else 2 * base.THROTTLE_FALLBACK_SECONDS)


@pytest.mark.parametrize("deferrable", [True, False])
@pytest.mark.parametrize("header", ["81,120", "garbage", "-5", "", "99999999"])
def test_wait_outlasts_odd_retry_after_with_fallback_and_cap(arm, monkeypatch, header, deferrable):
    """Three 429s with an odd Retry-After in a row while snapshots copy: the wait succeeds (no crash), and
    each throttled read is repeated no sooner than the fallback or the (capped) value."""
    monkeypatch.setattr(base, "THROTTLE_FALLBACK_SECONDS", 0.2)
    monkeypatch.setattr(base, "MAX_RETRY_AFTER_SECONDS", 0.3)
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-ra")
    since = last_request_id(arm)
    arm.control.add_fault("http", count=3, match={"op": "Snapshots_Get"}, status=429, retry_after_header=header)
    if deferrable:
        event = run_trigger(AzureBaseWaiterTrigger(waiter_name="arm_provisioning",
                                                   waiter_args={"resource_ids": [snap]}, poll_interval=POLL,
                                                   timeout_seconds=60))
    else:
        event = run_waiter_sync("arm_provisioning", {"resource_ids": [snap]}, "azure_default", POLL, 60)
    assert event["status"] == "success", event
    rows = [r for r in requests_since(arm, since) if r["op"] == "Snapshots_Get"]
    assert [r["status"] for r in rows[:3]] == [429, 429, 429]
    gaps = [b["real_ts"] - a["real_ts"] for a, b in zip(rows, rows[1:4])]
    assert all(g >= 0.19 for g in gaps), gaps


@pytest.mark.slow   # two wall-clock Retry-After waits: about 4 minutes
def test_an_exception_from_azure_cores_retry_machinery_is_not_a_crash(arm):
    """With the SDK's retries switched back on in the waiter's client, a list Retry-After is retried inside
    the client (hooks/retry.py) and nothing escapes the poll: the trigger does not end 'crashed'."""
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-ra")
    arm.control.add_fault("http", count=2, match={"op": "Snapshots_Get"}, status=429, retry_after_header="81,120")
    event = run_trigger(AzureBaseWaiterTrigger(waiter_name="arm_provisioning", waiter_args={"resource_ids": [snap]},
                                               poll_interval=POLL, timeout_seconds=60,
                                               client_options={"retry_total": 2}))
    assert event["status"] == "success", event
    assert "crashed" not in event["message"]


# --- 2. provisioningState spellings -----------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["Cancelled", "canceled", "FAILED", "failed"])
def test_failed_or_canceled_in_any_spelling_fails_at_the_first_poll(arm, spelling):
    plan = make_plan(arm)
    arm.control.add_fault("lro_failed", match={"resource_type": "snapshots", "name_regex": "snap-sp"},
                          code="InternalDiskManagementError", message="copy failed")
    snap = new_snapshot(plan, "snap-sp")
    arm.control.advance(3600)  # the copy has ended Failed
    arm.control.add_fault("state_spelling", count=-1, match={"resource_type": "snapshots", "state": "Failed"},
                          spelling=spelling)
    assert sdk_get(arm.compute(), snap).properties.provisioning_state == spelling  # on the wire
    event = run_waiter_sync("arm_provisioning", {"resource_ids": [snap]}, "azure_default", POLL, 60)
    assert event["status"] == "failure" and event["polls"] == 1, event
    assert f"provisioningState {spelling}" in event["message"] and "snap-sp" in event["message"]


def test_lower_case_succeeded_and_completed_are_success(arm):
    """Snapshots, image and version all answer `succeeded`, regions `completed`: the whole chain finishes."""
    arm.control.add_fault("state_spelling", count=-1, match={"state": "Succeeded"}, spelling="succeeded")
    arm.control.add_fault("state_spelling", count=-1, match={"state": "Completed"}, spelling="completed")
    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 1)))
    snaps, image_id = build_image(arm, plan, deferrable=False)
    version_id, _ = run_operator(gallery_op(plan, image_id))
    assert version_id == plan["version_id"]
    fired = {f["match"].get("state"): f["fired"] for f in arm.control.faults()}
    assert fired["Succeeded"] > 0 and fired["Completed"] > 0


def test_a_region_failed_in_capitals_is_a_failed_region(arm):
    arm.control.add_fault("replication_failed", match={"region": "northeurope"})
    arm.control.add_fault("state_spelling", count=-1, match={"resource_type": "versions", "state": "Failed"},
                          spelling="FAILED")
    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 1)))
    _, image_id = build_image(arm, plan)
    # the remove/re-add workaround runs (it only runs for a region it reads as failed), then succeeds;
    # publish waits for the version's whole operation (every region), so it is publish that retries
    since = last_request_id(arm)
    version_id, deferrals = run_operator(gallery_op(plan, image_id))
    # A phase whose wait is over at the first probe does not defer, so the deferrals are a subsequence of the
    # phases; the writes show the workaround: the create, North Europe removed, added back.
    phases = [d.kwargs["phase"] for d in deferrals]
    expected = ["replication", "region_removed", "replication"]
    rest = iter(expected)
    assert all(phase in rest for phase in phases), phases  # in order, each at most where expected
    writes = [r for r in requests_since(arm, since) if r["op"].startswith("GalleryImageVersions_")
              and r["op"] != "GalleryImageVersions_Get"]
    assert len(writes) == 3, [r["op"] for r in writes]
    assert run_operator(promote_op(plan))[0] == version_id


# --- 3. 404 right after our own create --------------------------------------------------------------------------


def test_404_right_after_our_create_is_polled_again_in_every_step(arm):
    """Snapshots, image and version each answer 404 to their first two reads after the create: the chain
    (operators waiting in the worker and deferred) finishes, and the 404s were really served."""
    for rtype in ("snapshots", "images", "versions"):
        arm.control.add_fault("not_found_after_create", count=-1, match={"resource_type": rtype}, reads=2)
    plan = make_plan(arm, regions=(("westeurope", 1),))
    since = last_request_id(arm)
    snaps, image_id = build_image(arm, plan, deferrable=False)
    version_id, _ = run_operator(gallery_op(plan, image_id))
    assert version_id == plan["version_id"]
    notfound = {r["op"] for r in requests_since(arm, since) if r["status"] == 404}
    assert {"Snapshots_Get", "Images_Get", "GalleryImageVersions_Get"} <= notfound


def test_sensor_takes_created_at_from_the_snapshot_task(arm):
    arm.control.add_fault("not_found_after_create", count=-1, match={"resource_type": "snapshots"}, reads=3)
    plan = make_plan(arm)
    op = snapshots_op(plan, wait_for_completion=False)

    class TI:  # what the operator pushes its XComs to
        pushed: dict = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    ti = TI()
    snaps = op.execute({"ti": ti})
    assert set(ti.pushed["created_at"]) == {s["id"] for s in snaps}
    sensor = ArmResourcesSensor(task_id="wait", resource_ids=snaps, created_at=ti.pushed["created_at"],
                                deferrable=False, poll_interval=POLL, timeout=60)
    assert sensor.execute({}) == [s["id"] for s in snaps]
    # without created_at the same answer is a deletion, as before
    arm.control.add_fault("not_found_after_create", count=-1, match={"resource_type": "snapshots"}, reads=3)
    other = new_snapshot(plan, "snap-unknown")
    with pytest.raises(Exception, match="snap-unknown.*does not exist"):
        ArmResourcesSensor(task_id="wait2", resource_ids=[other], deferrable=False, poll_interval=POLL,
                           timeout=60).execute({})


def test_404_after_the_grace_period_fails_as_before(arm):
    arm.control.add_fault("not_found_after_create", count=1, match={"resource_type": "snapshots"}, reads=5)
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-late")
    event = run_waiter_sync("arm_provisioning", {"resource_ids": [snap], "created_at": {snap: time.time() - 600}},
                            "azure_default", POLL, 60)
    assert event["status"] == "failure" and event["polls"] == 1
    assert "snap-late" in event["message"] and "does not exist" in event["message"]


# --- 4. timeouts: not retried, one budget for all tries ----------------------------------------------------------


@pytest.mark.parametrize("deferrable", [True, False])
def test_sensor_timeout_raises_airflow_sensor_timeout(arm, deferrable):
    plan = make_plan(arm)
    arm.control.set_scale(1)  # the snapshot stays Creating
    snap = new_snapshot(plan, "snap-slow")
    sensor = ArmResourcesSensor(task_id="wait", resource_ids=[snap], deferrable=deferrable, poll_interval=0.2,
                                timeout=1)
    with pytest.raises(AirflowSensorTimeout, match="snap-slow Creating"):
        run_operator(sensor)


@pytest.mark.parametrize("deferrable", [True, False])
def test_operator_wait_timeout_raises_airflow_sensor_timeout(arm, deferrable):
    plan = make_plan(arm)
    arm.control.set_scale(1)
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        run_operator(snapshots_op(plan, deferrable=deferrable, timeout=1))


BUDGET_DAG = '''
import json, os
from datetime import datetime, timedelta
from airflow.sdk import DAG
from batch_images.sensors.arm import ArmResourcesSensor

with DAG("wait_budget", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         default_args={"retries": 10, "retry_delay": timedelta(seconds=0)}):
    ArmResourcesSensor(task_id="wait", resource_ids=[os.environ["BUDGET_SNAPSHOT"]], poll_interval=0.2,
                       timeout=float(os.environ["BUDGET_TIMEOUT"]))
'''


def test_retries_share_the_first_tries_wait_budget(arm, tmp_path, monkeypatch):
    """Each try of the sensor fails after 5 server errors in a row (~1 s) and is retried (10 retries allowed);
    the budget is 3 s for all tries: a retry gets what is left, the try that finds none ends with
    AirflowSensorTimeout (not retried), about 3 s after the first try started. Fresh budgets would run all
    11 tries (> 10 s)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    plan = make_plan(arm)
    arm.control.set_scale(1)
    snap = new_snapshot(plan, "snap-budget")
    arm.control.add_fault("http", count=-1, match={"op": "Snapshots_Get"}, status=500)
    (tmp_path / "wait_budget.py").write_text(BUDGET_DAG)
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "wait-budget", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(tmp_path), "refresh_interval": 0}}]))
    monkeypatch.setenv("BUDGET_SNAPSHOT", snap)
    monkeypatch.setenv("BUDGET_TIMEOUT", "3")
    dag = BundleDagBag(dag_folder=str(tmp_path), bundle_path=str(tmp_path), bundle_name="wait-budget").dags[
        "wait_budget"]
    since = last_request_id(arm)
    run = dag.test()
    ti = run.get_task_instances()[0]
    assert ti.state == "failed"
    assert ti.try_number < 8, f"{ti.try_number} tries: the retries got fresh budgets"
    reads = [r["real_ts"] for r in requests_since(arm, since) if r["op"] == "Snapshots_Get"]
    assert reads[-1] - reads[0] < 3 + 1.5, reads  # every poll of every try within the one 3 s budget


# --- 6. adoption converges to the plan --------------------------------------------------------------------------


def test_adopted_version_is_updated_to_the_plans_regions_and_replicas(arm):
    plan = make_plan(arm, regions=(("westeurope", 2),))
    _, image_id = build_image(arm, plan)
    version_id, _ = run_operator(gallery_op(plan, image_id))
    # a re-run whose plan now asks westeurope x3 and a new region
    grown = make_plan(arm, regions=(("westeurope", 3), ("northeurope", 1)))
    since = last_request_id(arm)
    again, deferrals = run_operator(gallery_op(grown, image_id))
    assert again == version_id
    writes = [r["op"] for r in requests_since(arm, since) if r["write"]]
    assert writes == ["GalleryImageVersions_CreateOrUpdate"]  # one update, no new version
    version = sdk_get(arm.compute(), version_id, expand="ReplicationStatus")
    regions = {t.name.replace(" ", "").lower(): t.regional_replica_count
               for t in version.publishing_profile.target_regions}
    assert regions == {"westeurope": 3, "northeurope": 1}
    assert {s.state for s in version.replication_status.summary} == {"Completed"}
    # a third run with the same plan changes nothing
    since = last_request_id(arm)
    run_operator(gallery_op(grown, image_id))
    assert [r for r in requests_since(arm, since) if r["write"]] == []


@pytest.mark.slow   # about 1 minute
def test_adoption_of_a_version_still_creating_converges_after_the_wait(arm):
    """A retry finds the version still Creating: it is not updated mid-operation; once replication is done
    the task updates it to the plan's replica count and waits again."""
    from airflow.sdk.exceptions import TaskDeferred

    plan = make_plan(arm, regions=(("westeurope", 1),))
    _, image_id = build_image(arm, plan)
    arm.control.set_scale(1)  # the version stays Creating while the retry looks at it
    gallery_op(plan, image_id, wait_for_completion=False).execute({})
    grown = make_plan(arm, regions=(("westeurope", 2),))
    op = gallery_op(grown, image_id)
    since = last_request_id(arm)
    with pytest.raises(TaskDeferred) as first:
        op.execute({})
    assert first.value.kwargs["extra"]["converged"] is False
    assert [r for r in requests_since(arm, since) if r["write"]] == []  # no update while Creating
    arm.control.set_scale(3000)
    event = run_trigger(first.value.trigger)
    with pytest.raises(TaskDeferred) as second:
        op.resume_wait({}, event=event, **first.value.kwargs)
    assert second.value.kwargs["extra"]["converged"] is True
    assert op.resume_wait({}, event=run_trigger(second.value.trigger), **second.value.kwargs) == plan["version_id"]
    version = sdk_get(arm.compute(), plan["version_id"])
    assert [t.regional_replica_count for t in version.publishing_profile.target_regions] == [2]


def test_a_storage_account_type_azure_cannot_change_fails_before_any_write(arm):
    plan = make_plan(arm, regions=(("westeurope", 1),))
    _, image_id = build_image(arm, plan)
    run_operator(gallery_op(plan, image_id))
    premium = make_plan(arm, regions=(("westeurope", 1),), storage_account_type="Premium_LRS")
    premium["target_regions"][0]["storage_account_type"] = "Premium_LRS"
    since = last_request_id(arm)
    with pytest.raises(AirflowFailException) as err:
        gallery_op(premium, image_id).execute({})
    text = str(err.value)
    assert "Standard_LRS" in text and "Premium_LRS" in text and "rebuild N+1" in text
    assert [r for r in requests_since(arm, since) if r["write"]] == []


# --- the probe before deferring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status,header", [(429, "30"), (503, "30"), (500, None)])
def test_a_throttled_or_failed_first_probe_defers_at_once(arm, status, header):
    """The one poll a deferrable wait makes before deferring is not an answer when Azure throttles it or fails
    it: the task defers at once (it does not sit out Retry-After in its worker slot), and the trigger's loop,
    which honours Retry-After, takes over and finds the snapshot Succeeded."""
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-probe")
    run_waiter_sync("arm_provisioning", {"resource_ids": [snap]}, "azure_default", POLL, 60)  # it is there now
    fault = {"status": status, **({"retry_after_header": header} if header else {})}
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, **fault)
    started = time.monotonic()
    assert base.probe_before_defer("arm_provisioning", {"resource_ids": [snap]}, "azure_default") is None
    assert time.monotonic() - started < 5  # not Retry-After's 30 s
    sensor = ArmResourcesSensor(task_id="wait", resource_ids=[snap], poll_interval=POLL, timeout=60)
    arm.control.add_fault("http", count=1, match={"op": "Snapshots_Get"}, **fault)
    with pytest.raises(TaskDeferred):
        sensor.execute({})


def test_the_first_probe_answers_a_failed_resource_without_deferring(arm):
    """A resource that already reads Failed ends the wait at the first probe with Azure's message: no deferral,
    no trigger, the same error the trigger would have raised."""
    arm.control.add_fault("lro_failed", match={"resource_type": "snapshots"}, code="DiskCopyFailed",
                          message="the source disk is gone")
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-failed")
    event = run_waiter_sync("arm_provisioning", {"resource_ids": [snap]}, "azure_default", POLL, 60)
    assert event["status"] == "failure"
    sensor = ArmResourcesSensor(task_id="wait", resource_ids=[snap], poll_interval=POLL, timeout=60)
    with pytest.raises(AirflowException, match="snap-failed"):
        sensor.execute({})


def test_a_trigger_started_after_a_probe_waits_one_interval_before_its_first_poll(arm):
    """``first_poll_delay``: the deferring task has just read the resource, so its trigger's first read comes one
    poll interval later (not at once), and the delay survives the trigger's serialisation (a triggerer restart)."""
    plan = make_plan(arm)
    snap = new_snapshot(plan, "snap-delay")
    trigger = AzureBaseWaiterTrigger(waiter_name="arm_provisioning", waiter_args={"resource_ids": [snap]},
                                     poll_interval=0.1, timeout_seconds=60, first_poll_delay=1.0)
    classpath, kwargs = trigger.serialize()
    assert kwargs["first_poll_delay"] == 1.0
    since = last_request_id(arm)
    started = time.monotonic()
    event = asyncio.run(_first_event(AzureBaseWaiterTrigger(**kwargs)))
    assert event["status"] == "success"
    assert time.monotonic() - started >= 1.0
    reads = [r for r in requests_since(arm, since) if r["op"] == "Snapshots_Get"]
    assert len(reads) == 1  # the snapshot (186 s simulated, 62 ms here) was done by then: one read, not two


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
