"""The ARM half of the operator library against the stand-in: hooks, the waiter trigger, operators, sensor.

Everything the stand-in serves is real HTTP through the unmodified SDKs; nothing here is mocked. Results
are checked afterwards with the SDK (names, tags, properties, regions and replica counts, leftovers).
Deferrable operators are driven like the triggerer would: the deferral's trigger is serialised,
re-instantiated from its classpath and kwargs, run with asyncio, and its event handed back.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError

from _arm_common import (
    DAG_ID,
    DEFINITION,
    GALLERY,
    POLL,
    RUN_ID,
    VERSION,
    assert_gone,
    build_image,
    gallery_op,
    image_op,
    last_request_id,
    make_plan,
    ops,
    promote_op,
    requests_since,
    run_operator,
    run_trigger,
    sdk_get,
    snapshots_op,
    trigger_from,
)
from _probes import recorded_probes
from batch_images.hooks.arm import ArmComputeHook
from batch_images.hooks.credentials import PROJECT_ROOT, client_kwargs, credential_from_connection, describe_connection
from batch_images.operators._arm import ResourceConflict
from batch_images.waiting import AzureWaitFailed
from batch_images.operators.cleanup import DeleteTemporaryResourcesOperator
from batch_images.rules import ids, naming
from batch_images.rules.errors import InvalidInput
from batch_images.sensors.arm import ArmResourcesSensor
from batch_images.triggers.base import AzureBaseWaiterTrigger, run_waiter_sync
from batch_images.triggers.waiters import waiter_names
from batch_images.triggers.waiters.arm import evaluate_replication, progress_replication

# the `arm` fixture is in conftest.py; the shared helpers in _arm_common.py


class FakeConn:
    """What Airflow's Connection gives the credential helpers (only for the pure unit tests)."""

    def __init__(self, login=None, password=None, extra=None, conn_id="c"):
        self.login, self.password, self.extra_dejson, self.conn_id = login, password, extra or {}, conn_id


# --- credentials (pure) ---------------------------------------------------------------------------------------


def test_client_kwargs_resolve_relative_ca_bundle_and_endpoint(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    conn = FakeConn(extra={"arm_endpoint": "https://arm.example/", "ca_bundle": str(ca)})
    assert client_kwargs(conn) == {"base_url": "https://arm.example", "connection_verify": str(ca)}
    # a relative path is relative to the project root, whatever the working directory
    relative = os.path.relpath(ca, PROJECT_ROOT)
    assert not os.path.isabs(relative)
    assert client_kwargs(FakeConn(extra={"ca_bundle": relative})) == {"connection_verify": str(ca.resolve())}
    assert client_kwargs(FakeConn()) == {}
    with pytest.raises(InvalidInput) as err:
        client_kwargs(FakeConn(extra={"ca_bundle": "no/such/ca.pem"}))
    assert "ca_bundle" in str(err.value) and str(PROJECT_ROOT) in str(err.value)


def test_credential_from_connection_kinds_and_no_secret_in_description(tmp_path):
    from azure.identity import ClientSecretCredential, DefaultAzureCredential
    from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    sp = FakeConn("client-id", "s3cr3t-value", {"tenantId": "t", "authority": "https://login.example/",
                                               "ca_bundle": str(ca), "subscriptionId": "sub"})
    cred = credential_from_connection(sp)
    assert isinstance(cred, ClientSecretCredential)
    assert isinstance(credential_from_connection(sp, aio=True), AsyncClientSecretCredential)
    assert isinstance(credential_from_connection(FakeConn(extra={"tenantId": "t"})), DefaultAzureCredential)
    # legacy prefixed extras work too
    legacy = FakeConn("id", "pw", {"extra__azure__tenantId": "t"})
    assert isinstance(credential_from_connection(legacy), ClientSecretCredential)
    text = describe_connection(sp)
    assert "s3cr3t" not in text and "client-id" in text and "https://login.example/" in text


# --- hook -----------------------------------------------------------------------------------------------------


def test_hook_reads_vm_extensions_disks_and_generic_arm(arm):
    demo = arm.endpoints["demo"]
    hook = ArmComputeHook()
    assert hook.subscription_id == demo["subscription_id"]
    vm = hook.get_vm(demo["source_vm_id"])
    statuses = [s["code"] for s in vm["properties"]["instanceView"]["statuses"]]
    assert "PowerState/running" in statuses
    assert hook.list_vm_extensions(demo["source_vm_id"]) == []
    assert [e["name"] for e in hook.list_vm_extensions(demo["negative_vms"]["with_extension"])] == ["CustomScript"]
    disk = hook.get_disk(vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"])
    assert disk["properties"]["diskSizeGB"] == 30
    account = hook.arm_get(demo["batch_account_id"])
    assert account["location"] == "westeurope" and account["name"] == demo["batch_account"]
    provider = hook.arm_get(f"/subscriptions/{demo['subscription_id']}/providers/Microsoft.Batch")
    assert provider["registrationState"] == "Registered"
    with pytest.raises(ResourceNotFoundError):
        hook.get_snapshot(ids.snapshot_id(demo["subscription_id"], demo["resource_group"], "nope").id)
    with pytest.raises(InvalidInput):
        hook.arm_get(demo["batch_account_id"] + "/../../x")


def test_hook_builds_a_client_per_subscription(arm):
    hook = ArmComputeHook()
    other = "0f0e0d0c-0b0a-4998-8776-655443322110"
    mine = hook.get_conn()
    theirs = hook.client_for(f"/subscriptions/{other}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g")
    assert theirs is not mine and hook.get_conn(other) is theirs
    assert theirs._config.subscription_id == other and mine._config.subscription_id == hook.subscription_id

    async def both():
        a = await hook.get_async_conn()
        b = await hook.async_client_for(f"/subscriptions/{other}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g")
        assert a is not b and b._config.subscription_id == other
        # a request in the other subscription goes out with that subscription in the URL
        try:
            await hook.async_get_resource(f"/subscriptions/{other}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g")
        except Exception as err:  # the stand-in knows only the seeded subscription
            assert other in str(getattr(err, "message", err)) or getattr(err, "status_code", None) in (403, 404)
        await hook.close()
        assert not hook._async_clients

    asyncio.run(both())


# --- trigger ----------------------------------------------------------------------------------------------------


def test_registry_has_arm_waiters_and_trigger_serialize_round_trip():
    assert {"arm_provisioning", "arm_deleted", "gallery_replication"} <= set(waiter_names())
    trigger = AzureBaseWaiterTrigger(waiter_name="arm_provisioning", waiter_args={"resource_ids": ["/x"]},
                                     conn_id="azure_default", poll_interval=7, timeout_seconds=600,
                                     return_value=[{"id": "/x"}])
    classpath, kwargs = trigger.serialize()
    assert classpath == "batch_images.triggers.base.AzureBaseWaiterTrigger"
    assert 590 < kwargs["deadline"] - time.time() <= 600
    time.sleep(0.05)
    again = trigger_from((classpath, kwargs))  # a triggerer restart: same absolute deadline, not a fresh one
    assert again.deadline == trigger.deadline
    assert again.serialize() == (classpath, kwargs)


def test_replication_evaluation_gates_on_regions_not_provisioning_state():
    state = {"name": "1.0.0", "provisioningState": "Succeeded", "target_regions": [
        {"name": "West Europe"}, {"name": "North Europe"}], "regions": [
        {"region": "West Europe", "state": "Completed", "progress": 100},
        {"region": "North Europe", "state": "Replicating", "progress": 40}]}
    assert evaluate_replication(state)[0] == "retry"
    assert progress_replication(state) == "West Europe 100% Completed, North Europe 40% Replicating"
    state["regions"][1].update(state="Completed", progress=100)
    assert evaluate_replication(state)[0] == "success"
    state["regions"][1].update(state="Failed", details="boom")
    state["provisioningState"] = "Failed"
    status, message = evaluate_replication(state)
    assert status == "failure" and "North Europe" in message and "boom" in message


def test_trigger_success_failure_and_timeout(arm):
    plan = make_plan(arm)
    client = arm.compute()
    # failure: the OS snapshot's copy fails; the event names the resource and Azure's error
    arm.control.add_fault("lro_failed", match={"resource_type": "snapshots", "name_regex": "-os-"},
                          code="InternalDiskManagementError", message="Simulated copy failure")
    op = snapshots_op(plan, wait_for_completion=False)
    snaps = op.execute({})
    snap_ids = [s["id"] for s in snaps]
    failure = run_trigger(AzureBaseWaiterTrigger(
        waiter_name="arm_provisioning", waiter_args={"resource_ids": snap_ids}, poll_interval=POLL,
        timeout_seconds=60, return_value=snaps))
    assert failure["status"] == "failure" and failure["value"] == snaps
    os_name = plan["snapshot_names"]["os"]
    assert os_name in failure["message"] and "Failed" in failure["message"]
    states = {r["name"]: r["provisioningState"] for r in failure["state"]["resources"]}
    assert states[os_name] == "Failed"
    # the same with the operation URLs the operator records: Azure's error code and message come through
    arm.control.add_fault("lro_failed", match={"resource_type": "images"}, code="ImageCreateFailed",
                          message="Simulated image failure")
    data = {s["lun"]: s["id"] for s in snaps if s["role"] == "data"}
    image_id = plan["image_id"]
    started = ArmComputeHook().begin_create_image(image_id, {
        "location": "westeurope", "tags": naming.resource_tags(DAG_ID, RUN_ID, VERSION),
        "properties": {"storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                                      "snapshot": {"id": data[0]}}},
                       "hyperVGeneration": "V2"}})
    image_failure = run_trigger(AzureBaseWaiterTrigger(
        waiter_name="arm_provisioning", poll_interval=POLL, timeout_seconds=60,
        waiter_args={"resource_ids": [image_id], "operations": {image_id: started.operation_url}}))
    assert image_failure["status"] == "failure"
    assert "ImageCreateFailed" in image_failure["message"] and "Simulated image failure" in image_failure["message"]
    # success: the data disk snapshot
    success = run_trigger(AzureBaseWaiterTrigger(
        waiter_name="arm_provisioning", waiter_args={"resource_ids": [data[0]]}, poll_interval=POLL,
        timeout_seconds=60))
    assert success["status"] == "success"
    # timeout: time nearly stopped, a fresh snapshot stays Creating
    arm.control.set_scale(1)
    new_id = ids.snapshot_id(plan["work_subscription_id"], plan["work_resource_group"], "snap-timeout").id
    ArmComputeHook().begin_create_snapshot(new_id, {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": plan["source"]["os_disk_id"]}}})
    t0 = time.monotonic()
    timeout = run_trigger(AzureBaseWaiterTrigger(
        waiter_name="arm_provisioning", waiter_args={"resource_ids": [new_id]}, poll_interval=0.2,
        timeout_seconds=1.0))
    assert timeout["status"] == "timeout" and "snap-timeout Creating" in timeout["message"]
    assert 0.9 <= time.monotonic() - t0 < 5
    assert sdk_get(client, new_id).properties.provisioning_state == "Creating"


def test_trigger_waits_out_a_429_storm_and_honours_retry_after(arm):
    plan = make_plan(arm)
    snaps = snapshots_op(plan, wait_for_completion=False).execute({})
    since = last_request_id(arm)
    retry_after_sim = 1500  # simulated seconds: 0.5 s real at scale 3000
    arm.control.add_fault("http", count=6, match={"method": "GET", "op": "Snapshots_Get"}, status=429,
                          retry_after=retry_after_sim)
    event = run_trigger(AzureBaseWaiterTrigger(
        waiter_name="arm_provisioning", waiter_args={"resource_ids": [s["id"] for s in snaps]},
        poll_interval=POLL, timeout_seconds=120))
    assert event["status"] == "success", event
    rows = [r for r in requests_since(arm, since) if r["op"] == "Snapshots_Get"]
    throttled = [r for r in rows if r["status"] == 429]
    assert len(throttled) == 6
    # after every 429, the next read of the same snapshot came no sooner than Retry-After said
    for i, row in enumerate(rows):
        if row["status"] != 429:
            continue
        later = [r for r in rows[i + 1:] if r["path"] == row["path"]]
        assert later, "the throttled read was never repeated"
        assert later[0]["real_ts"] - row["real_ts"] >= row["retry_after"] * 0.95


def test_run_waiter_sync_is_the_same_loop(arm):
    plan = make_plan(arm)
    snaps = snapshots_op(plan, wait_for_completion=False).execute({})
    event = run_waiter_sync("arm_provisioning", {"resource_ids": [s["id"] for s in snaps]}, "azure_default",
                            POLL, 60)
    assert event["status"] == "success" and event["waiter"] == "arm_provisioning"
    assert {r["provisioningState"] for r in event["state"]["resources"]} == {"Succeeded"}


# --- operators --------------------------------------------------------------------------------------------------


def test_snapshot_operator_defers_and_creates_tagged_snapshots(arm):
    arm.control.set_scale(60)  # the copies take a few seconds of wall time: still Creating at the first probe
    plan = make_plan(arm)
    result, deferrals = run_operator(snapshots_op(plan))
    assert len(deferrals) == 1
    assert deferrals[0].trigger.waiter_name == "arm_provisioning"
    assert deferrals[0].timeout >= timedelta(seconds=120)
    assert [(s["role"], s["lun"]) for s in result] == [("os", None), ("data", 0)]
    client = arm.compute()
    source = plan["source"]
    for snap, disk_id in zip(result, [source["os_disk_id"], source["data_disks"][0]["disk_id"]]):
        body = sdk_get(client, snap["id"])
        assert body.name == plan["snapshot_names"]["os" if snap["role"] == "os" else "data-lun0"]
        assert body.location == "westeurope"
        assert body.properties.provisioning_state == "Succeeded"
        assert body.properties.creation_data.create_option == "Copy"
        assert body.properties.creation_data.source_resource_id.lower() == disk_id.lower()
        assert body.properties.incremental is False
        assert body.tags == {"team": "hpc", "managed-by": "airflow-batch-images", "dag_id": DAG_ID, "run_id": RUN_ID,
                             "image-version": VERSION}


def test_retried_operators_adopt_instead_of_duplicating(arm):
    plan = make_plan(arm, regions=(("westeurope", 1),))
    snaps, image_id = build_image(arm, plan)
    version_id, _ = run_operator(gallery_op(plan, image_id))
    since = last_request_id(arm)
    # a retry of every task of the same run
    snaps2, _ = run_operator(snapshots_op(plan))
    image2, _ = run_operator(image_op(plan, snaps2))
    version2, _ = run_operator(gallery_op(plan, image2))
    assert (snaps2, image2, version2) == (snaps, image_id, version_id)
    writes = [r for r in requests_since(arm, since) if r["write"]]
    assert writes == [], ops(writes)
    client = arm.compute()
    assert len(list(client.snapshots.list_by_resource_group(plan["work_resource_group"]))) == 2
    assert len(list(client.gallery_image_versions.list_by_gallery_image(
        plan["gallery"]["resource_group"], GALLERY, DEFINITION))) == 1


def test_snapshot_of_another_run_is_replaced_and_foreign_one_refused(arm):
    plan = make_plan(arm)
    first, _ = run_operator(snapshots_op(plan, deferrable=False))
    client = arm.compute()
    before = sdk_get(client, first[0]["id"]).properties.time_created
    rerun = make_plan(arm, run_id="manual__2026-11-25T10:00:00+00:00")
    second, _ = run_operator(snapshots_op(rerun, deferrable=False))
    assert [s["id"] for s in second] == [s["id"] for s in first]
    replaced = sdk_get(client, second[0]["id"])
    assert replaced.tags["run_id"] == rerun["run_id"] and replaced.properties.time_created != before
    # a same-named snapshot nobody tagged: refused, untouched
    rg = plan["work_resource_group"]
    name = plan["snapshot_names"]["os"]
    client.snapshots.begin_delete(rg, name, polling_interval=POLL).result()
    client.snapshots.begin_create_or_update(rg, name, {"location": "westeurope", "properties": {"creationData": {
        "createOption": "Copy", "sourceResourceId": plan["source"]["os_disk_id"]}}}, polling_interval=POLL).result()
    with pytest.raises(ResourceConflict, match="not made by this project"):
        snapshots_op(plan, deferrable=False).execute({})
    assert not sdk_get(client, second[0]["id"]).tags


def test_full_chain_snapshot_image_version_then_cleanup(arm):
    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 3)))
    client = arm.compute()
    snaps, image_id = build_image(arm, plan)
    image = sdk_get(client, image_id)
    assert image.name == plan["image_name"] and image.location == "westeurope"
    assert image.properties.provisioning_state == "Succeeded"
    assert image.properties.hyper_v_generation == "V2"
    os_disk = image.properties.storage_profile.os_disk
    assert (os_disk.os_type, os_disk.os_state) == ("Linux", "Generalized")
    assert os_disk.snapshot.id.lower() == snaps[0]["id"].lower()
    [data] = image.properties.storage_profile.data_disks
    assert data.lun == 0 and data.snapshot.id.lower() == snaps[1]["id"].lower()
    assert image.tags["managed-by"] == "airflow-batch-images"

    # West Europe replicates a simulated hour longer, so the first probe finds it Replicating and the task defers
    arm.control.add_fault("replication_slow", match={"region": "westeurope"}, extra_seconds=3600)
    version_id, deferrals = run_operator(gallery_op(plan, image_id))
    assert version_id == plan["version_id"]
    assert [d.trigger.waiter_name for d in deferrals] == ["gallery_replication"]
    gallery = sdk_get(client, plan["gallery"]["id"])
    assert gallery.tags["managed-by"] == "airflow-batch-images" and gallery.location == "westeurope"
    definition = sdk_get(client, plan["image_definition"]["id"])
    assert (definition.properties.os_type, definition.properties.os_state,
            definition.properties.hyper_v_generation) == ("Linux", "Generalized", "V2")
    ident = definition.properties.identifier
    assert (ident.publisher, ident.offer, ident.sku) == ("contoso", "batch-ubuntu", "2204")
    version = sdk_get(client, version_id, expand="ReplicationStatus")
    pp = version.properties.publishing_profile
    assert {(t.name, t.regional_replica_count, t.storage_account_type) for t in pp.target_regions} == {
        ("West Europe", 1, "Standard_LRS"), ("North Europe", 3, "Standard_LRS")}
    assert pp.exclude_from_latest is True   # published excluded; promote_image_version sets it false
    assert version.properties.safety_profile.allow_deletion_of_replicated_locations is False
    assert str(pp.end_of_life_date).startswith("2027-02-23")
    assert version.properties.storage_profile.source.id.lower() == image_id.lower()
    # publish waits for the pools' region only (West Europe: the gallery's and the Batch account's) ...
    assert {s.region: s.state for s in version.properties.replication_status.summary}["West Europe"] == "Completed"
    # ... promotion for every region, then the version may float to "latest"
    assert run_operator(promote_op(plan))[0] == version_id
    version = sdk_get(client, version_id, expand="ReplicationStatus")
    assert {s.state for s in version.properties.replication_status.summary} == {"Completed"}
    assert version.properties.publishing_profile.exclude_from_latest is False
    assert version.tags["image-version"] == VERSION

    cleanup = DeleteTemporaryResourcesOperator(task_id="cleanup", snapshots=snaps, image_id=image_id,
                                               poll_interval=POLL)
    result, deferrals = run_operator(cleanup)
    assert sorted(result["deleted"]) == sorted([image_id] + [s["id"] for s in snaps])
    # the deletes may be over by the first probe (then no deferral): either way, one wait for arm_deleted at most
    assert [d.trigger.waiter_name for d in deferrals] in ([], ["arm_deleted"])
    for rid in result["deleted"]:
        assert_gone(client, rid)
    assert list(client.snapshots.list_by_resource_group(plan["work_resource_group"])) == []
    assert list(client.images.list_by_resource_group(plan["work_resource_group"])) == []
    # the version survives its temporary sources
    assert sdk_get(client, version_id).properties.provisioning_state == "Succeeded"
    # cleanup again (a retried teardown): everything already gone is fine
    again, _ = run_operator(DeleteTemporaryResourcesOperator(task_id="cleanup", plan=plan, poll_interval=POLL))
    assert again["deleted"] == [] and len(again["already_gone"]) == 3


def test_cleanup_from_the_plan_after_a_half_failed_run_and_refuses_foreign(arm):
    plan = make_plan(arm)
    arm.control.add_fault("lro_failed", match={"resource_type": "snapshots", "name_regex": "-data-"})
    with pytest.raises(AzureWaitFailed, match="data-lun0"):
        run_operator(snapshots_op(plan))
    # upstream failed: no XCom (None), only the plan
    result, _ = run_operator(DeleteTemporaryResourcesOperator(task_id="cleanup", snapshots=None, image_id=None,
                                                              plan=plan, poll_interval=POLL))
    assert len(result["deleted"]) == 2 and result["already_gone"] == [plan["image_id"]]
    client = arm.compute()
    assert list(client.snapshots.list_by_resource_group(plan["work_resource_group"])) == []
    # something not ours: refused before anything is deleted
    rg = plan["work_resource_group"]
    client.snapshots.begin_create_or_update(rg, "snap-foreign", {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": plan["source"]["os_disk_id"]}}},
        polling_interval=POLL).result()
    ours, _ = run_operator(snapshots_op(plan, deferrable=False))
    foreign = ids.snapshot_id(plan["work_subscription_id"], rg, "snap-foreign").id
    with pytest.raises(ResourceConflict, match="snap-foreign"):
        DeleteTemporaryResourcesOperator(task_id="c", resource_ids=[foreign, *ours], poll_interval=POLL).execute({})
    assert sdk_get(client, ours[0]["id"]).properties.provisioning_state == "Succeeded"
    with pytest.raises(InvalidInput, match="not a temporary resource"):
        DeleteTemporaryResourcesOperator(task_id="c", resource_ids=[plan["gallery"]["id"]]).execute({})


def test_existing_definition_that_does_not_fit_is_refused_before_creating_anything(arm):
    plan = make_plan(arm)
    client = arm.compute()
    rg = plan["gallery"]["resource_group"]
    client.galleries.begin_create_or_update(rg, GALLERY, {"location": "westeurope"}, polling_interval=POLL).result()
    client.gallery_images.begin_create_or_update(rg, GALLERY, DEFINITION, {"location": "westeurope", "properties": {
        "osType": "Linux", "osState": "Specialized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}, polling_interval=POLL).result()
    image_id = plan["image_id"]
    since = last_request_id(arm)
    with pytest.raises(InvalidInput) as err:
        gallery_op(plan, image_id).execute({})
    assert err.value.field == "image_definition.os_state" and err.value.value == "Specialized"
    assert "Generalized" in str(err.value) and "Fix:" in str(err.value)
    assert [r for r in requests_since(arm, since) if r["write"]] == []

    client.gallery_images.begin_create_or_update(rg, GALLERY, "gen1-def", {"location": "westeurope", "properties": {
        "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s1"}}},
        polling_interval=POLL).result()
    gen1 = make_plan(arm, image_definition={**plan["image_definition"], "name": "gen1-def",
                                            "id": plan["image_definition"]["id"].replace(DEFINITION, "gen1-def")})
    with pytest.raises(InvalidInput) as err:
        gallery_op(gen1, image_id).execute({})
    assert err.value.field == "image_definition.hyper_v_generation" and err.value.value == "V1"


def test_existing_version_from_another_source_is_a_clear_error(arm):
    plan = make_plan(arm, regions=(("westeurope", 1),))
    snaps, image_id = build_image(arm, plan)
    run_operator(gallery_op(plan, image_id))
    other_image = image_id.replace(plan["image_name"], "img-other")
    since = last_request_id(arm)
    with pytest.raises(ResourceConflict, match="already exists from source") as err:
        gallery_op(plan, other_image).execute({})
    assert "rebuild" in str(err.value)
    assert [r for r in requests_since(arm, since) if r["write"]] == []


def test_failed_region_is_removed_and_added_back(arm):
    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 2)))
    _, image_id = build_image(arm, plan)
    arm.control.add_fault("replication_failed", match={"region": "northeurope"},
                          message="Simulated replication failure")
    since = last_request_id(arm)
    with recorded_probes() as probes:  # every wait probes first, whether it then defers or not
        version_id, _ = run_operator(gallery_op(plan, image_id))
    # publish waits for the version's whole operation (every region): it retries North Europe itself
    assert [waiter for waiter, _ in probes] == ["gallery_replication", "gallery_region_settled",
                                                "gallery_replication"]
    version = sdk_get(arm.compute(), version_id, expand="ReplicationStatus")
    assert version.properties.provisioning_state == "Succeeded"
    with recorded_probes() as probes:
        run_operator(promote_op(plan))
    assert [waiter for waiter, _ in probes] == ["gallery_replication", "arm_provisioning"]  # nothing left to retry
    puts = [r for r in requests_since(arm, since) if r["op"] == "GalleryImageVersions_CreateOrUpdate"]
    assert len(puts) == 4  # create, remove North Europe, add it back, promote
    version = sdk_get(arm.compute(), version_id, expand="ReplicationStatus")
    assert {(s.region, s.state) for s in version.properties.replication_status.summary} == {
        ("West Europe", "Completed"), ("North Europe", "Completed")}
    assert {(t.name, t.regional_replica_count) for t in version.properties.publishing_profile.target_regions} == {
        ("West Europe", 1), ("North Europe", 2)}
    assert version.properties.provisioning_state == "Succeeded"


def test_failed_region_gives_up_after_max_retries_naming_region(arm):
    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 1)))
    _, image_id = build_image(arm, plan)
    arm.control.add_fault("replication_failed", count=5, match={"region": "northeurope"},
                          message="Simulated replication failure")
    with pytest.raises(AzureWaitFailed) as err:  # publish waits for every region, so it is the one that gives up
        run_operator(gallery_op(plan, image_id, max_region_retries=1, deferrable=False))
    text = str(err.value)
    assert "North Europe" in text and "Simulated replication failure" in text and "1 remove/re-add" in text


def test_promotion_adds_back_a_region_an_interrupted_retry_left_out(arm):
    """A try of promote_image_version that stopped between removing a Failed region and adding it back left the
    version without that region: the next try adds it back, waits for its replica, then promotes - the version is
    never promoted with a configured region missing (create_pool's retrier did this already; now promotion too)."""
    from batch_images.operators.region_retry import wire_target_regions
    from batch_images.rules.plan import Plan

    plan = make_plan(arm, regions=(("westeurope", 1), ("northeurope", 2)))
    _, image_id = build_image(arm, plan)
    arm.control.add_fault("replication_failed", match={"region": "northeurope"},
                          message="Simulated replication failure")
    version_id, _ = run_operator(gallery_op(plan, image_id, wait_for_completion=False))  # publish would retry it
    # the interrupted try: North Europe ended Failed and was removed, then the try stopped
    event = run_waiter_sync("gallery_replication", {"version_id": version_id}, "azure_default", POLL, 60)
    assert event["status"] == "failure" and "North Europe" in event["message"], event
    ArmComputeHook(azure_conn_id="azure_default").update_version_target_regions(
        version_id, wire_target_regions(Plan.from_dict(plan))[:1])
    event = run_waiter_sync("gallery_region_settled", {"version_id": version_id, "regions": ["northeurope"]},
                            "azure_default", POLL, 60)
    assert event["status"] == "success", event
    since = last_request_id(arm)
    assert run_operator(promote_op(plan))[0] == version_id
    version = sdk_get(arm.compute(), version_id, expand="ReplicationStatus")
    assert {(t.name, t.regional_replica_count) for t in version.properties.publishing_profile.target_regions} == {
        ("West Europe", 1), ("North Europe", 2)}
    assert {(s.region, s.state) for s in version.properties.replication_status.summary} == {
        ("West Europe", "Completed"), ("North Europe", "Completed")}
    assert version.properties.publishing_profile.exclude_from_latest is False
    puts = [r for r in requests_since(arm, since) if r["op"] == "GalleryImageVersions_CreateOrUpdate"]
    assert len(puts) == 2  # North Europe added back, then the promotion

def test_sensor_deferrable_and_in_worker(arm):
    plan = make_plan(arm)
    snaps = snapshots_op(plan, wait_for_completion=False).execute({})
    in_worker = ArmResourcesSensor(task_id="wait2", resource_ids=[s["id"] for s in snaps], deferrable=False,
                                   poll_interval=POLL, timeout=60)
    assert in_worker.execute({}) == [s["id"] for s in snaps]
    # Deferrable, and the snapshots are already there: the first probe answers, so the task does not defer
    # (no second execution) and costs one read per snapshot.
    since = last_request_id(arm)
    sensor = ArmResourcesSensor(task_id="wait", resource_ids=snaps, poll_interval=POLL, timeout=60)
    result, deferrals = run_operator(sensor)
    assert result == [s["id"] for s in snaps] and deferrals == []
    assert [op for op in ops(requests_since(arm, since)) if op.startswith("Snapshots_")] == \
        ["Snapshots_Get"] * len(snaps)
    # mode="reschedule": one probe per poke
    assert ArmResourcesSensor(task_id="poke", resource_ids=snaps, deferrable=False, mode="reschedule").poke({})
    arm.control.add_fault("lro_failed", match={"resource_type": "snapshots"}, code="Boom", message="no")
    bad = ids.snapshot_id(plan["work_subscription_id"], plan["work_resource_group"], "snap-bad").id
    ArmComputeHook().begin_create_snapshot(bad, {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": plan["source"]["os_disk_id"]}}})
    with pytest.raises(Exception, match="snap-bad"):
        ArmResourcesSensor(task_id="w3", resource_ids=[bad], deferrable=False, poll_interval=POLL,
                           timeout=60).execute({})


ARM_DAG = """
import json, os
from airflow.sdk import DAG
from batch_images.operators.cleanup import DeleteTemporaryResourcesOperator
from batch_images.operators.gallery import GalleryImageVersionOperator
from batch_images.operators.image import ManagedImageOperator
from batch_images.operators.snapshot import SnapshotDisksOperator

plan = json.loads(os.environ.get("ARM_E2E_PLAN", "{}"))
with DAG("arm_half_e2e", schedule=None, catchup=False) as dag:
    snaps = SnapshotDisksOperator(task_id="snapshots", plan=plan, poll_interval=0.05)
    image = ManagedImageOperator(task_id="image", plan=plan, snapshots=snaps.output, poll_interval=0.05)
    version = GalleryImageVersionOperator(task_id="version", plan=plan, image_id=image.output, poll_interval=0.05)
    cleanup = DeleteTemporaryResourcesOperator(task_id="cleanup", snapshots=snaps.output, image_id=image.output,
                                               plan=plan, poll_interval=0.05)
    snaps >> image >> version >> cleanup.as_teardown(setups=[snaps, image])
"""


def test_operators_in_a_dag_with_dag_test(arm, tmp_path, monkeypatch):
    """The chain as a DAG run by dag.test(): deferrals go through Airflow's own trigger handling, and the
    plan's templated run_id/dag_id are rendered by Airflow."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils.state import DagRunState

    plan = make_plan(arm, run_id="{{ run_id }}", dag_id="{{ dag.dag_id }}", regions=(("westeurope", 1),))
    (tmp_path / "arm_half_e2e.py").write_text(ARM_DAG)
    # dag.test() in Airflow 3.3 syncs the DAG from a bundle before it creates the run: a bundle of this one file.
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "arm-half-e2e", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(tmp_path), "refresh_interval": 0}}]))
    monkeypatch.setenv("ARM_E2E_PLAN", json.dumps(plan))
    dag = BundleDagBag(dag_folder=str(tmp_path), bundle_path=str(tmp_path), bundle_name="arm-half-e2e").dags[
        "arm_half_e2e"]
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == DagRunState.SUCCESS, states
    assert set(states.values()) == {"success"}, states
    client = arm.compute()
    version = sdk_get(client, plan["version_id"], expand="ReplicationStatus")
    assert version.properties.provisioning_state == "Succeeded"
    assert version.tags["run_id"] == run.run_id and version.tags["dag_id"] == "arm_half_e2e"
    assert list(client.snapshots.list_by_resource_group(plan["work_resource_group"])) == []
    assert list(client.images.list_by_resource_group(plan["work_resource_group"])) == []
