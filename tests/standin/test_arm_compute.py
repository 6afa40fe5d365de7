"""Microsoft.Compute on the stand-in, driven only through the unmodified azure-mgmt-compute SDK:
VMs (image reference, disks, instance view, extensions), managed disks, snapshots and managed images,
plus the ARM plumbing around them (resource groups, api-version, provider registration, Batch accounts).
"""
from __future__ import annotations

import asyncio
import re

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

FAST = 0.05  # polling_interval: Retry-After rules the first wait, this one the following ones


def _demo(standin) -> dict:
    return standin.endpoints["demo"]


def _rg(standin) -> str:
    return _demo(standin)["resource_group"]


def _vm_name(standin) -> str:
    return _demo(standin)["source_vm_id"].rsplit("/", 1)[1]


def _disk_name(disk_id: str) -> str:
    return disk_id.rsplit("/", 1)[1]


def _snapshot_body(location: str, source_id: str, **extra) -> dict:
    return {"location": location, "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": source_id}, **extra}}


def _error_code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None) if err.error is not None else None


# --- virtual machines ----------------------------------------------------------------------------------

def test_vm_get_shows_marketplace_image_managed_disks_and_profiles(standin):
    client = standin.compute()
    vm = client.virtual_machines.get(_rg(standin), _vm_name(standin))
    ref = vm.properties.storage_profile.image_reference
    assert (ref.publisher, ref.offer, ref.sku, ref.version) == (
        "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "latest")
    assert re.fullmatch(r"22\.04\.\d{9}", ref.exact_version)
    os_disk = vm.properties.storage_profile.os_disk
    assert os_disk.os_type == "Linux" and os_disk.create_option == "FromImage" and os_disk.disk_size_gb == 30
    assert os_disk.managed_disk.id.lower().startswith(
        f"/subscriptions/{standin.endpoints['subscription_id']}/resourcegroups/{_rg(standin)}/providers/microsoft.compute/disks/")
    [data] = vm.properties.storage_profile.data_disks
    assert (data.lun, data.disk_size_gb) == (0, 64) and data.managed_disk.id
    assert vm.properties.hardware_profile.vm_size == "Standard_D4s_v5"
    assert vm.properties.os_profile.linux_configuration.disable_password_authentication is True
    assert vm.plan is None and not vm.resources
    assert vm.location == "westeurope"


def test_vm_instance_view_reports_power_state_and_generation(standin):
    client = standin.compute()
    vm = client.virtual_machines.get(_rg(standin), _vm_name(standin), expand="instanceView")
    codes = [s.code for s in vm.properties.instance_view.statuses]
    assert codes == ["ProvisioningState/succeeded", "PowerState/running"]
    assert vm.properties.instance_view.hyper_v_generation == "V2"
    view = client.virtual_machines.instance_view(_rg(standin), _vm_name(standin))
    assert [s.display_status for s in view.statuses] == ["Provisioning succeeded", "VM running"]
    assert len(view.disks) == 2
    # the control API can stop it; the instance view follows
    standin.control.call("PUT", "/arm/vm_power", {"id": vm.id, "state": "deallocated"})
    view = client.virtual_machines.instance_view(_rg(standin), _vm_name(standin))
    assert view.statuses[1].code == "PowerState/deallocated"


def test_vm_extensions_and_negative_vms(standin):
    client = standin.compute()
    rg = _rg(standin)
    negatives = _demo(standin)["negative_vms"]
    assert list(client.virtual_machine_extensions.list(rg, _vm_name(standin)).value or []) == []

    with_ext = negatives["with_extension"].rsplit("/", 1)[1]
    [ext] = client.virtual_machine_extensions.list(rg, with_ext).value
    assert (ext.name, ext.properties.publisher, ext.properties.type) == (
        "CustomScript", "Microsoft.Azure.Extensions", "CustomScript")
    vm = client.virtual_machines.get(rg, with_ext)
    assert [r.name for r in vm.resources] == ["CustomScript"]

    unmanaged = client.virtual_machines.get(rg, negatives["unmanaged_disks"].rsplit("/", 1)[1])
    assert unmanaged.properties.storage_profile.os_disk.managed_disk is None
    assert unmanaged.properties.storage_profile.os_disk.vhd.uri.startswith("https://")

    plan_vm = client.virtual_machines.get(rg, negatives["thirdparty_plan"].rsplit("/", 1)[1])
    assert plan_vm.plan.publisher == plan_vm.properties.storage_profile.image_reference.publisher != "canonical"
    assert plan_vm.plan.name and plan_vm.plan.product

    names = {v.name for v in client.virtual_machines.list(rg)}
    assert names == {_vm_name(standin), with_ext, "vm-unmanaged-disks", "vm-thirdparty-plan",
                     "vm-prepared-ubuntu2204-tl", "vm-prepared-ubuntu2204-gen1"}
    assert names <= {v.name for v in client.virtual_machines.list_all()}


def test_unknown_vm_and_resource_group_are_404_with_arm_codes(standin):
    client = standin.compute()
    with pytest.raises(ResourceNotFoundError) as err:
        client.virtual_machines.get(_rg(standin), "no-such-vm")
    assert _error_code(err.value) == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as err:
        client.snapshots.get("rg-does-not-exist", "snap")
    assert _error_code(err.value) == "ResourceGroupNotFound"
    assert "rg-does-not-exist" in err.value.message


# --- disks ---------------------------------------------------------------------------------------------

def test_disks_carry_marketplace_lineage_and_attached_disks_cannot_be_deleted(standin):
    client = standin.compute()
    rg = _rg(standin)
    vm = client.virtual_machines.get(rg, _vm_name(standin))
    os_disk = client.disks.get(rg, _disk_name(vm.properties.storage_profile.os_disk.managed_disk.id))
    assert os_disk.properties.os_type == "Linux" and os_disk.properties.hyper_v_generation == "V2"
    assert os_disk.properties.disk_size_gb == 30
    assert os_disk.managed_by.lower() == vm.id.lower()
    image_id = os_disk.properties.creation_data.image_reference.id
    assert re.fullmatch(
        r"/Subscriptions/[0-9a-f-]+/Providers/Microsoft\.Compute/Locations/westeurope/Publishers/canonical/"
        r"ArtifactTypes/VMImage/Offers/0001-com-ubuntu-server-jammy/Skus/22_04-lts-gen2/Versions/22\.04\.\d+",
        image_id)

    in_rg = {d.name for d in client.disks.list_by_resource_group(rg)}
    assert os_disk.name in in_rg and len(in_rg) == 9  # 2 + 2 (Trusted Launch) + 2 (Gen1) + 2 + 1 (the unmanaged VM has none)
    assert in_rg <= {d.name for d in client.disks.list()}

    with pytest.raises(HttpResponseError) as err:
        client.disks.begin_delete(rg, os_disk.name, polling_interval=FAST).result()
    assert err.value.status_code == 409 and _error_code(err.value) == "OperationNotAllowed"
    # deleting what does not exist is a no-op (204), as in Azure
    assert client.disks.begin_delete(rg, "no-such-disk", polling_interval=FAST).result() is None


# --- snapshots -----------------------------------------------------------------------------------------

def test_snapshot_lifecycle_copies_disk_properties(standin):
    client = standin.compute()
    rg = _rg(standin)
    vm = client.virtual_machines.get(rg, _vm_name(standin))
    disk_id = vm.properties.storage_profile.os_disk.managed_disk.id
    poller = client.snapshots.begin_create_or_update(
        rg, "snap-os", _snapshot_body("westeurope", disk_id, incremental=True), polling_interval=FAST)
    snap = poller.result()
    assert snap.properties.provisioning_state == "Succeeded"
    assert snap.properties.completion_percent == 100
    assert (snap.properties.os_type, snap.properties.hyper_v_generation, snap.properties.disk_size_gb) == ("Linux", "V2", 30)
    assert snap.properties.incremental is True
    assert snap.properties.creation_data.source_resource_id.lower() == disk_id.lower()

    assert [s.name for s in client.snapshots.list_by_resource_group(rg)] == ["snap-os"]
    assert "snap-os" in [s.name for s in client.snapshots.list()]
    log = standin.control.requests()["counts"]
    assert log["arm:Snapshots_CreateOrUpdate"] == 1 and log["arm:Operations_GetStatus"] >= 1

    client.snapshots.begin_delete(rg, "snap-os", polling_interval=FAST).result()
    with pytest.raises(ResourceNotFoundError):
        client.snapshots.get(rg, "snap-os")


def test_snapshot_copy_takes_longer_for_bigger_disks(standin):
    client = standin.compute()
    rg = _rg(standin)
    standin.control.set_scale(1)  # slow enough to watch the copy progress
    vm = client.virtual_machines.get(rg, _vm_name(standin))
    sp = vm.properties.storage_profile
    client.snapshots.begin_create_or_update(rg, "small", _snapshot_body("westeurope", sp.os_disk.managed_disk.id), polling=False)
    client.snapshots.begin_create_or_update(rg, "big", _snapshot_body("westeurope", sp.data_disks[0].managed_disk.id), polling=False)
    standin.control.advance(120)
    small, big = client.snapshots.get(rg, "small"), client.snapshots.get(rg, "big")
    assert small.properties.provisioning_state == big.properties.provisioning_state == "Creating"
    assert 0 < big.properties.completion_percent < small.properties.completion_percent < 100
    standin.control.advance(60)
    assert client.snapshots.get(rg, "small").properties.provisioning_state == "Succeeded"
    assert client.snapshots.get(rg, "big").properties.provisioning_state == "Creating"
    standin.control.advance(60)
    assert client.snapshots.get(rg, "big").properties.provisioning_state == "Succeeded"


def test_snapshot_of_a_missing_disk_is_not_found(standin):
    client = standin.compute()
    rg = _rg(standin)
    missing = f"/subscriptions/{standin.endpoints['subscription_id']}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/gone"
    with pytest.raises(ResourceNotFoundError) as err:
        client.snapshots.begin_create_or_update(rg, "snap-x", _snapshot_body("westeurope", missing))
    assert _error_code(err.value) == "NotFound" and "Resource gone is not found." in err.value.message


def test_snapshot_lro_failure_surfaces_through_the_poller(standin):
    client = standin.compute()
    rg = _rg(standin)
    standin.control.add_fault("lro_failed", match={"resource_type": "snapshots", "name_regex": "^snap-fail"},
                              code="InternalDiskManagementError", message="Injected: the disk copy failed.")
    vm = client.virtual_machines.get(rg, _vm_name(standin))
    poller = client.snapshots.begin_create_or_update(
        rg, "snap-fail-1", _snapshot_body("westeurope", vm.properties.storage_profile.os_disk.managed_disk.id),
        polling_interval=FAST)
    with pytest.raises(HttpResponseError) as err:
        poller.result()
    assert "Injected: the disk copy failed." in str(err.value)
    assert client.snapshots.get(rg, "snap-fail-1").properties.provisioning_state == "Failed"


# --- managed images ------------------------------------------------------------------------------------

def _snapshots_of(client, rg, vm_name, prefix):
    vm = client.virtual_machines.get(rg, vm_name)
    sp = vm.properties.storage_profile
    os_p = client.snapshots.begin_create_or_update(rg, f"{prefix}-os", _snapshot_body("westeurope", sp.os_disk.managed_disk.id), polling_interval=FAST)
    data_p = client.snapshots.begin_create_or_update(rg, f"{prefix}-data0", _snapshot_body("westeurope", sp.data_disks[0].managed_disk.id), polling_interval=FAST)
    return os_p.result(), data_p.result()


def _image_body(os_snap_id: str, data_snap_id: str | None, hyper_v: str = "V2") -> dict:
    sp = {"osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": os_snap_id}}}
    if data_snap_id:
        sp["dataDisks"] = [{"lun": 0, "snapshot": {"id": data_snap_id}}]
    return {"location": "westeurope", "properties": {"storageProfile": sp, "hyperVGeneration": hyper_v}}


def test_image_from_snapshots_lifecycle(standin):
    client = standin.compute()
    rg = _rg(standin)
    os_snap, data_snap = _snapshots_of(client, rg, _vm_name(standin), "s1")
    image = client.images.begin_create_or_update(rg, "img-1", _image_body(os_snap.id, data_snap.id), polling_interval=FAST).result()
    assert image.properties.provisioning_state == "Succeeded"
    assert image.properties.hyper_v_generation == "V2"
    osd = image.properties.storage_profile.os_disk
    assert (osd.os_type, osd.os_state, osd.disk_size_gb) == ("Linux", "Generalized", 30)
    assert osd.snapshot.id.lower() == os_snap.id.lower()
    [dd] = image.properties.storage_profile.data_disks
    assert (dd.lun, dd.disk_size_gb) == (0, 64)
    assert [i.name for i in client.images.list_by_resource_group(rg)] == ["img-1"]
    assert "img-1" in [i.name for i in client.images.list()]
    client.images.begin_delete(rg, "img-1", polling_interval=FAST).result()
    with pytest.raises(ResourceNotFoundError):
        client.images.get(rg, "img-1")


def test_image_refuses_missing_and_unfinished_snapshots(standin):
    client = standin.compute()
    rg = _rg(standin)
    sub = standin.endpoints["subscription_id"]
    missing = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/snapshots/nope"
    with pytest.raises(HttpResponseError) as err:
        client.images.begin_create_or_update(rg, "img-x", _image_body(missing, None))
    assert err.value.status_code == 400 and _error_code(err.value) == "InvalidParameter"
    assert missing in err.value.message

    standin.control.set_scale(1)
    vm = client.virtual_machines.get(rg, _vm_name(standin))
    client.snapshots.begin_create_or_update(
        rg, "slow", _snapshot_body("westeurope", vm.properties.storage_profile.os_disk.managed_disk.id), polling=False)
    slow_id = client.snapshots.get(rg, "slow").id
    with pytest.raises(HttpResponseError) as err:
        client.images.begin_create_or_update(rg, "img-y", _image_body(slow_id, None))
    assert _error_code(err.value) == "InvalidParameter" and slow_id in err.value.message and "Creating" in err.value.message


def test_image_lro_failure_ends_failed(standin):
    client = standin.compute()
    rg = _rg(standin)
    os_snap, _ = _snapshots_of(client, rg, _vm_name(standin), "s2")
    standin.control.add_fault("lro_failed", match={"resource_type": "images"}, code="InternalExecutionError",
                              message="Injected: image creation failed.")
    with pytest.raises(HttpResponseError, match="Injected: image creation failed."):
        client.images.begin_create_or_update(rg, "img-f", _image_body(os_snap.id, None), polling_interval=FAST).result()
    assert client.images.get(rg, "img-f").properties.provisioning_state == "Failed"


def test_async_client_snapshot_and_image(standin):
    async def flow():
        async with standin.compute(aio=True) as client:
            rg = _rg(standin)
            vm = await client.virtual_machines.get(rg, _vm_name(standin))
            poller = await client.snapshots.begin_create_or_update(
                rg, "aio-os", _snapshot_body("westeurope", vm.properties.storage_profile.os_disk.managed_disk.id),
                polling_interval=FAST)
            snap = await poller.result()
            poller = await client.images.begin_create_or_update(rg, "aio-img", _image_body(snap.id, None), polling_interval=FAST)
            image = await poller.result()
            names = [s.name async for s in client.snapshots.list_by_resource_group(rg)]
            poller = await client.snapshots.begin_delete(rg, "aio-os", polling_interval=FAST)
            await poller.result()
            await client._config.credential.close()  # its own HTTP session stays open otherwise
            return snap, image, names

    snap, image, names = asyncio.run(flow())
    assert snap.properties.provisioning_state == "Succeeded" and image.properties.provisioning_state == "Succeeded"
    assert names == ["aio-os"]
    with pytest.raises(ResourceNotFoundError):
        standin.compute().snapshots.get(_rg(standin), "aio-os")


# --- ARM plumbing through the SDK's own pipeline (send_request) -------------------------------------------

def test_missing_api_version_is_refused_like_arm(standin):
    client = standin.compute()
    url = f"{standin.endpoints['arm']}/subscriptions/{standin.endpoints['subscription_id']}/resourceGroups/{_rg(standin)}/providers/Microsoft.Compute/snapshots"
    resp = client.send_request(HttpRequest("GET", url))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "MissingApiVersionParameter"
    resp = client.send_request(HttpRequest("GET", url, params={"api-version": "2019-07-01"}))
    assert resp.status_code == 200 and resp.json() == {"value": []}


def test_batch_account_and_provider_registration(standin):
    client = standin.compute()
    sub, rg = standin.endpoints["subscription_id"], _rg(standin)
    acct_url = f"{standin.endpoints['arm']}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/batchimages"
    resp = client.send_request(HttpRequest("GET", acct_url, params={"api-version": "2024-07-01"}))
    assert resp.status_code == 200
    acct = resp.json()
    assert acct["properties"]["accountEndpoint"] == f"127.0.0.1:{standin.endpoints['port']}/batch/batchimages"
    assert acct["properties"]["poolAllocationMode"] == "BatchService" and acct["location"] == "westeurope"
    assert "_sim" not in acct
    resp = client.send_request(HttpRequest("GET", acct_url.rsplit("/", 1)[0], params={"api-version": "2024-07-01"}))
    assert [a["name"] for a in resp.json()["value"]] == ["batchimages", "batchimagesne"]  # West Europe and North Europe (seed.py)

    prov = f"{standin.endpoints['arm']}/subscriptions/{sub}/providers/Microsoft.Batch"
    assert client.send_request(HttpRequest("GET", prov, params={"api-version": "2021-04-01"})).json()["registrationState"] == "Registered"
    other = "11111111-2222-4333-8444-555555555555"
    url = f"{standin.endpoints['arm']}/subscriptions/{other}/providers/Microsoft.Batch"
    assert client.send_request(HttpRequest("GET", url, params={"api-version": "2021-04-01"})).json()["registrationState"] == "NotRegistered"
    standin.control.call("PUT", "/arm/providers", {"subscription_id": other, "namespace": "Microsoft.Batch",
                                                   "registrationState": "Registered"})
    assert client.send_request(HttpRequest("GET", url, params={"api-version": "2021-04-01"})).json()["registrationState"] == "Registered"
    # lower-case "resourcegroups" (azure-mgmt-resource's spelling) reaches the same resources
    rg_url = f"{standin.endpoints['arm']}/subscriptions/{sub}/resourcegroups/{rg}"
    assert client.send_request(HttpRequest("GET", rg_url, params={"api-version": "2025-04-01"})).json()["location"] == "westeurope"
