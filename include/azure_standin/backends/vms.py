"""Microsoft.Compute virtual machines and their extensions, read-only: the seed creates them as a marketplace
deployment leaves them (with their managed disks); the control API sets a VM's power state.

Documents: vm, vm_extension (keys: the lower-cased ARM ids). `_sim` of a VM: power_state, hyper_v_generation,
os_name/os_version (instance view), base_image and purchase_plan (the lineage root, see backends/disks.py).
"""
from __future__ import annotations

import re
import uuid
from typing import Any

from ..core.errors import ResourceNotFound
from .arm_common import T_VM, T_VM_EXTENSION, arm_id, canonical_region, get_in_rg, list_in, new_uuid
from .disks import platform_image_id, put_disk_doc

POWER_STATES = {
    "running": "VM running", "stopped": "VM stopped", "deallocated": "VM deallocated",
    "starting": "VM starting", "stopping": "VM stopping", "deallocating": "VM deallocating",
}


def vm_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_VM, name)


def put_vm_doc(ctx, sub: str, rg: str, name: str, *, location: str, vm_size: str,
               image_reference: dict, os_type: str = "Linux", hyper_v_generation: str = "V2",
               os_disk_gb: int = 30, data_disks_gb: list[int] | None = None, managed: bool = True,
               plan: dict | None = None, admin_username: str = "azureuser", power_state: str = "running",
               extensions: list[dict] | None = None, os_name: str = "ubuntu", os_version: str = "22.04",
               security_type: str | None = None) -> dict:
    """Store a VM as a marketplace deployment leaves it, with its managed disks (seed helper).

    `image_reference` is {publisher, offer, sku, version, exactVersion}; the disks record the platform
    image id (lineage root). `managed=False` gives an unmanaged (VHD in a storage account) OS disk.
    `security_type` "TrustedLaunch" gives `properties.securityProfile` {securityType, uefiSettings {secureBootEnabled,
    vTpmEnabled}} (both on, Azure's Trusted Launch default) and the OS disk's securityProfile; Gen2 only, as in Azure.
    """
    if security_type and hyper_v_generation != "V2":
        raise ValueError(f"seed: {security_type} needs a Gen2 VM, not {hyper_v_generation}")
    vid = vm_id(sub, rg, name)
    loc = canonical_region(location)
    suffix = uuid.uuid4().hex
    ref = dict(image_reference)
    exact = ref.get("exactVersion") or ref.get("version")
    img_id = platform_image_id(sub, loc, ref["publisher"], ref["offer"], ref["sku"], exact)
    os_disk_name = f"{name}_OsDisk_1_{suffix}"
    os_disk: dict[str, Any] = {
        "osType": os_type, "name": os_disk_name, "createOption": "FromImage", "caching": "ReadWrite",
        "deleteOption": "Detach", "diskSizeGB": int(os_disk_gb),
    }
    if managed:
        d = put_disk_doc(ctx, sub, rg, os_disk_name, location=loc, size_gb=os_disk_gb, os_type=os_type,
                         hyper_v_generation=hyper_v_generation, image_reference_id=img_id,
                         purchase_plan=plan, managed_by=vid, security_type=security_type)
        os_disk["managedDisk"] = {"storageAccountType": "Premium_LRS", "id": d["id"]}
    else:
        account = re.sub(r"[^a-z0-9]", "", name.lower())[:16] or "vhds"
        os_disk["vhd"] = {"uri": f"https://st{account}.blob.core.windows.net/vhds/{os_disk_name}.vhd"}
    data_disks = []
    for lun, size in enumerate(data_disks_gb or []):
        dd_name = f"{name}_DataDisk_{lun}"
        entry: dict[str, Any] = {
            "lun": lun, "name": dd_name, "createOption": "Empty", "caching": "ReadOnly",
            "deleteOption": "Detach", "diskSizeGB": int(size), "toBeDetached": False,
        }
        if managed:
            d = put_disk_doc(ctx, sub, rg, dd_name, location=loc, size_gb=size, managed_by=vid)
            entry["managedDisk"] = {"storageAccountType": "Premium_LRS", "id": d["id"]}
        else:
            entry["vhd"] = {"uri": os_disk["vhd"]["uri"].replace(os_disk_name, dd_name)}
        data_disks.append(entry)
    computer_name = name[:15]
    body: dict[str, Any] = {
        "id": vid, "name": name, "type": T_VM, "location": loc, "tags": {},
        "properties": {
            "vmId": new_uuid(),
            "hardwareProfile": {"vmSize": vm_size},
            "storageProfile": {
                "imageReference": ref,
                "osDisk": os_disk,
                "dataDisks": data_disks,
                "diskControllerType": "SCSI",
            },
            "osProfile": {
                "computerName": computer_name,
                "adminUsername": admin_username,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": True,
                    "ssh": {"publicKeys": [{
                        "path": f"/home/{admin_username}/.ssh/authorized_keys",
                        "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandInDemoKeyOnlyNotARealKey standin@local",
                    }]},
                    "provisionVMAgent": True,
                    "patchSettings": {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"},
                    "enableVMAgentPlatformUpdates": False,
                } if os_type == "Linux" else None,
                "secrets": [],
                "allowExtensionOperations": True,
                "requireGuestProvisionSignal": True,
            },
            "networkProfile": {"networkInterfaces": [{
                "id": arm_id(sub, rg, "Microsoft.Network/networkInterfaces", f"{name}-nic"),
                "properties": {"deleteOption": "Detach"},
            }]},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "provisioningState": "Succeeded",
            "timeCreated": ctx.clock.iso(ctx.clock.now()),
        },
        "_sim": {
            "power_state": power_state,
            "hyper_v_generation": hyper_v_generation,
            "os_name": os_name, "os_version": os_version,
            "base_image": {"publisher": ref["publisher"], "offer": ref["offer"], "sku": ref["sku"], "version": exact},
            "purchase_plan": dict(plan) if plan else None,
        },
    }
    if body["properties"]["osProfile"]["linuxConfiguration"] is None:
        del body["properties"]["osProfile"]["linuxConfiguration"]
        body["properties"]["osProfile"]["windowsConfiguration"] = {"provisionVMAgent": True, "enableAutomaticUpdates": True}
    if plan:
        body["plan"] = dict(plan)
    if security_type:
        body["properties"]["securityProfile"] = {
            "securityType": security_type, "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    ctx.store.put("vm", vid, body)
    for ext in extensions or []:
        put_vm_extension_doc(ctx, sub, rg, name, ext)
    return body


def put_vm_extension_doc(ctx, sub: str, rg: str, vm_name: str, ext: dict) -> dict:
    """ext: {name, publisher, type, typeHandlerVersion, settings?}."""
    vid = vm_id(sub, rg, vm_name)
    vm = ctx.store.get("vm", vid)
    eid = f"{vid}/extensions/{ext['name']}"
    body = {
        "id": eid, "name": ext["name"], "type": T_VM_EXTENSION,
        "location": vm["location"] if vm else "westeurope",
        "properties": {
            "autoUpgradeMinorVersion": True,
            "provisioningState": "Succeeded",
            "publisher": ext["publisher"],
            "type": ext["type"],
            "typeHandlerVersion": ext.get("typeHandlerVersion", "1.0"),
            "settings": ext.get("settings") or {},
        },
    }
    ctx.store.put("vm_extension", eid, body)
    return body


def _require_vm(ctx, sub: str, rg: str, name: str) -> dict:
    return get_in_rg(ctx, "vm", T_VM, sub, rg, name)


def list_vm_extensions(ctx, sub: str, rg: str, vm_name: str) -> list[dict]:
    vm = _require_vm(ctx, sub, rg, vm_name)
    return ctx.store.list("vm_extension", vm["id"] + "/extensions/")


def get_vm_extension(ctx, sub: str, rg: str, vm_name: str, ext_name: str) -> dict:
    vm = _require_vm(ctx, sub, rg, vm_name)
    body = ctx.store.get("vm_extension", f"{vm['id']}/extensions/{ext_name}")
    if body is None:
        raise ResourceNotFound(T_VM_EXTENSION, f"{vm['name']}/{ext_name}", rg)
    return body


def _instance_view(ctx, vm: dict) -> dict:
    sim = vm.get("_sim") or {}
    now_iso = ctx.clock.iso(ctx.clock.now())
    created = vm["properties"].get("timeCreated", now_iso)
    power = sim.get("power_state", "running")
    ok = {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
          "time": created}
    sp = vm["properties"]["storageProfile"]
    disks = [{"name": d["name"], "statuses": [dict(ok)]} for d in [sp["osDisk"], *sp.get("dataDisks", [])]]
    exts = ctx.store.list("vm_extension", vm["id"] + "/extensions/")
    view: dict[str, Any] = {
        "computerName": vm["properties"]["osProfile"]["computerName"],
        "osName": sim.get("os_name", "ubuntu"),
        "osVersion": sim.get("os_version", "22.04"),
        "vmAgent": {
            "vmAgentVersion": "2.12.0.2",
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                          "message": "Guest Agent is running", "time": now_iso}] if power == "running" else [],
            "extensionHandlers": [{"type": f"{e['properties']['publisher']}.{e['properties']['type']}",
                                   "typeHandlerVersion": e["properties"]["typeHandlerVersion"],
                                   "status": {"code": "ProvisioningState/succeeded", "level": "Info",
                                              "displayStatus": "Ready"}} for e in exts],
        },
        "hyperVGeneration": sim.get("hyper_v_generation", "V1"),
        "disks": disks,
        "bootDiagnostics": {},
        "statuses": [ok, {"code": f"PowerState/{power}", "level": "Info",
                          "displayStatus": POWER_STATES.get(power, f"VM {power}")}],
    }
    if exts:
        view["extensions"] = [{
            "name": e["name"], "type": f"{e['properties']['publisher']}.{e['properties']['type']}",
            "typeHandlerVersion": e["properties"]["typeHandlerVersion"],
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                          "displayStatus": "Provisioning succeeded", "message": "Enable succeeded"}],
        } for e in exts]
    return view


def get_vm(ctx, sub: str, rg: str, name: str, expand: str | None = None) -> dict:
    """VirtualMachines_Get; `expand` "instanceView" adds properties.instanceView."""
    vm = _require_vm(ctx, sub, rg, name)
    exts = ctx.store.list("vm_extension", vm["id"] + "/extensions/")
    if exts:
        vm["resources"] = exts
    if expand and expand.lower() == "instanceview":
        vm["properties"]["instanceView"] = _instance_view(ctx, vm)
    return vm


def vm_instance_view(ctx, sub: str, rg: str, name: str) -> dict:
    return _instance_view(ctx, _require_vm(ctx, sub, rg, name))


def list_vms(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return list_in(ctx, "vm", T_VM, sub, rg)


def set_power_state(ctx, resource_id: str, state: str) -> dict:
    """Control helper: running | stopped | deallocated | ..."""
    if state not in POWER_STATES:
        raise ValueError(f"power state must be one of {sorted(POWER_STATES)}")
    vm = ctx.store.get("vm", resource_id)
    if vm is None:
        raise KeyError(resource_id)
    vm["_sim"]["power_state"] = state
    ctx.store.put("vm", vm["id"], vm)
    return vm
