"""Trusted Launch in the stand-in, through the unmodified SDKs: the seeded Trusted Launch VM and its disks, the
snapshot that keeps the security type, and each refusal Azure makes (managed image from a Trusted Launch snapshot,
a Trusted Launch version in a definition without the SecurityType feature, a pool whose securityProfile does not
fit its image).
"""
from __future__ import annotations

import time

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

GALLERY = "galtl"
NODE_AGENT = "batch.node.ubuntu 22.04"


def _code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None) if getattr(err, "error", None) else None


def _text(value) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _snapshots_of(standin, compute, vm_name: str, prefix: str) -> tuple[str, str]:
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    vm = compute.virtual_machines.get(rg, vm_name)
    out = []
    for role, disk_id in (("os", vm.properties.storage_profile.os_disk.managed_disk.id),
                          ("data", vm.properties.storage_profile.data_disks[0].managed_disk.id)):
        out.append(compute.snapshots.begin_create_or_update(rg, f"{prefix}-{role}", {
            "location": loc, "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}},
        }).result().id)
    return out[0], out[1]


def _definition(standin, compute, name: str, security_type: str | None) -> str:
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute.galleries.begin_create_or_update(rg, GALLERY, {"location": loc, "properties": {}}).result()
    props = {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
             "identifier": {"publisher": "contoso", "offer": "tl", "sku": name}}
    if security_type:
        props["features"] = [{"name": "SecurityType", "value": security_type}]
    return compute.gallery_images.begin_create_or_update(rg, GALLERY, name, {"location": loc, "properties": props}
                                                         ).result().id


def _version_from_snapshots(standin, compute, definition: str, version: str, os_snap: str, data_snap: str):
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    return compute.gallery_image_versions.begin_create_or_update(rg, GALLERY, definition, version, {
        "location": loc, "properties": {
            "storageProfile": {"osDiskImage": {"source": {"id": os_snap}},
                               "dataDiskImages": [{"lun": 0, "source": {"id": data_snap}}]},
            "publishingProfile": {"targetRegions": [{"name": loc, "regionalReplicaCount": 1}]}}}).result()


def _wait_replicated(standin, compute, definition: str, version: str, timeout: float = 30.0) -> None:
    rg = standin.endpoints["demo"]["resource_group"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = compute.gallery_image_versions.get(rg, GALLERY, definition, version, expand="ReplicationStatus")
        if _text(v.properties.replication_status.aggregated_state).lower() == "completed":
            return
        time.sleep(0.1)
    raise AssertionError(f"{definition}/{version} did not replicate")


def _pool(pool_id: str, image_id: str, security_type: str | None = None) -> bm.BatchPoolCreateOptions:
    profile = None
    if security_type:
        profile = bm.SecurityProfile(security_type=security_type, uefi_settings=bm.BatchUefiSettings(
            secure_boot_enabled=True, vtpm_enabled=True))
    return bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=0,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=image_id),
            node_agent_sku_id=NODE_AGENT, security_profile=profile))


def _batch_reason(err: HttpResponseError) -> str:
    values = getattr(getattr(err, "model", None), "values_property", None) or []
    return " ".join(f"{v.key}={v.value}" for v in values) + " " + str(err)


def test_seeded_trusted_launch_and_gen1_vms(standin):
    demo = standin.endpoints["demo"]
    compute = standin.compute()
    rg = demo["resource_group"]
    tl = compute.virtual_machines.get(rg, demo["trusted_launch_vm_id"].rsplit("/", 1)[1], expand="instanceView")
    sp = tl.properties.security_profile
    assert _text(sp.security_type) == "TrustedLaunch"
    assert sp.uefi_settings.secure_boot_enabled is True and sp.uefi_settings.v_tpm_enabled is True
    assert tl.properties.instance_view.hyper_v_generation == "V2"
    os_disk = compute.disks.get(rg, tl.properties.storage_profile.os_disk.managed_disk.id.rsplit("/", 1)[1])
    assert _text(os_disk.properties.security_profile.security_type) == "TrustedLaunch"
    data_disk = compute.disks.get(rg, tl.properties.storage_profile.data_disks[0].managed_disk.id.rsplit("/", 1)[1])
    assert data_disk.properties.security_profile is None

    gen1 = compute.virtual_machines.get(rg, demo["gen1_vm_id"].rsplit("/", 1)[1], expand="instanceView")
    assert gen1.properties.security_profile is None
    assert gen1.properties.instance_view.hyper_v_generation == "V1"
    assert gen1.properties.storage_profile.image_reference.sku == "22_04-lts"
    assert len(gen1.properties.storage_profile.data_disks) == 1
    compute.close()


def test_managed_image_from_trusted_launch_snapshot_is_operation_not_allowed(standin):
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    os_snap, data_snap = _snapshots_of(standin, compute, "vm-prepared-ubuntu2204-tl", "snap-tl")
    snap = compute.snapshots.get(rg, "snap-tl-os")
    assert _text(snap.properties.security_profile.security_type) == "TrustedLaunch"  # kept from the OS disk
    with pytest.raises(HttpResponseError) as err:
        compute.images.begin_create_or_update(rg, "img-tl", {"location": loc, "properties": {
            "hyperVGeneration": "V2",
            "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": os_snap}},
                               "dataDisks": [{"lun": 0, "snapshot": {"id": data_snap}}]}}}).result()
    assert err.value.status_code == 409 and _code(err.value) == "OperationNotAllowed"
    assert "TrustedLaunch" in str(err.value)
    assert [i.name for i in compute.images.list_by_resource_group(rg)] == []
    compute.close()


def test_trusted_launch_version_needs_the_security_type_feature(standin):
    compute = standin.compute(polling_interval=0.05)
    os_snap, data_snap = _snapshots_of(standin, compute, "vm-prepared-ubuntu2204-tl", "snap-tl")
    _definition(standin, compute, "plain", None)
    with pytest.raises(HttpResponseError) as err:
        _version_from_snapshots(standin, compute, "plain", "1.0.0", os_snap, data_snap)
    assert err.value.status_code == 400 and _code(err.value) == "InvalidParameter"
    assert "SecurityType" in str(err.value) and "TrustedLaunch" in str(err.value)

    for value in ("TrustedLaunch", "TrustedLaunchSupported"):
        name = f"tl-{value.lower()}"
        _definition(standin, compute, name, value)
        version = _version_from_snapshots(standin, compute, name, "1.0.0", os_snap, data_snap)
        assert version.properties.provisioning_state == "Succeeded"
        assert version.properties.storage_profile.os_disk_image.source.id.lower() == os_snap.lower()
    compute.close()


def test_security_type_feature_needs_gen2(standin):
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    compute.galleries.begin_create_or_update(rg, GALLERY, {"location": loc, "properties": {}}).result()
    with pytest.raises(HttpResponseError) as err:
        compute.gallery_images.begin_create_or_update(rg, GALLERY, "gen1-tl", {"location": loc, "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
            "identifier": {"publisher": "contoso", "offer": "tl", "sku": "gen1"},
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]}}).result()
    assert err.value.status_code == 400 and _code(err.value) == "InvalidParameter" and "V2" in str(err.value)
    compute.close()


def test_pool_security_profile_must_fit_the_image(standin):
    compute = standin.compute(polling_interval=0.05)
    os_snap, data_snap = _snapshots_of(standin, compute, "vm-prepared-ubuntu2204-tl", "snap-tl")
    _definition(standin, compute, "tl", "TrustedLaunch")
    tl_version = _version_from_snapshots(standin, compute, "tl", "1.0.0", os_snap, data_snap).id
    std_os, std_data = _snapshots_of(standin, compute, "vm-prepared-ubuntu2204", "snap-std")
    _definition(standin, compute, "std", None)
    std_version = _version_from_snapshots(standin, compute, "std", "1.0.0", std_os, std_data).id
    _wait_replicated(standin, compute, "tl", "1.0.0")
    _wait_replicated(standin, compute, "std", "1.0.0")
    batch = standin.batch()

    # A TrustedLaunch image without securityProfile: refused, naming the field.
    with pytest.raises(HttpResponseError) as err:
        batch.create_pool(_pool("tl-no-profile", tl_version))
    assert err.value.status_code == 400 and "InvalidPropertyValue" in str(err.value)
    assert "securityProfile.securityType" in _batch_reason(err.value)
    assert "TrustedLaunch" in _batch_reason(err.value)
    # trustedLaunch on an image whose definition has no SecurityType feature: refused.
    with pytest.raises(HttpResponseError) as err:
        batch.create_pool(_pool("std-tl", std_version, "trustedLaunch"))
    assert err.value.status_code == 400 and "Use of TrustedLaunch setting is not supported" in _batch_reason(err.value)
    # uefiSettings without securityType: refused.
    options = _pool("uefi-only", std_version)
    options.virtual_machine_configuration.security_profile = bm.SecurityProfile(
        uefi_settings=bm.BatchUefiSettings(secure_boot_enabled=True, vtpm_enabled=True))
    with pytest.raises(HttpResponseError) as err:
        batch.create_pool(options)
    assert err.value.status_code == 400
    assert {p.id for p in batch.list_pools()} == set()

    # The fitting pairs are accepted and read back with their securityProfile.
    batch.create_pool(_pool("tl-ok", tl_version, "trustedLaunch"))
    batch.create_pool(_pool("std-ok", std_version))
    got = batch.get_pool("tl-ok").virtual_machine_configuration.security_profile
    assert _text(got.security_type) == "trustedLaunch"
    assert got.uefi_settings.secure_boot_enabled is True and got.uefi_settings.vtpm_enabled is True
    assert batch.get_pool("std-ok").virtual_machine_configuration.security_profile is None
    batch.close()
    compute.close()
