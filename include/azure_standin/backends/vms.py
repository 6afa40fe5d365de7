"""Microsoft.Compute virtual machines and their extensions: the seed creates the prepared VMs as a marketplace
deployment leaves them (with their managed disks); the control API sets a VM's power state. Build VMs (a PUT from a
marketplace image with custom data, VM-managed NICs, deallocate, generalize, delete with deleteOption) are below.

Documents: vm, vm_extension (keys: the lower-cased ARM ids). `_sim` of a VM: power_state, hyper_v_generation,
os_name/os_version (instance view), base_image and purchase_plan (the lineage root, see backends/disks.py).
"""
from __future__ import annotations

import base64 as _base64
import binascii as _binascii
import re
import uuid
from typing import Any

from ..core import timings as _timings
from ..core.errors import (
    ArmError, ImageNotFound, InvalidParameter, OperationNotAllowed, RequiredParameterMissing, ResourceNotFound,
    TrustedLaunchRequired,
)
from . import marketplace as _marketplace
from . import resource_skus as _resource_skus
from .arm_common import (
    T_VM, T_VM_EXTENSION, advance_provisioning, arm_id, canonical_region, check_location, get_in_rg, list_in,
    lro_fault, new_uuid, require_rg, start_lro,
)
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
    state = vm["properties"].get("provisioningState", "Succeeded")
    if state != "Succeeded":
        view["statuses"][0] = {"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                               "displayStatus": f"Provisioning {state.lower()}"}
    if sim.get("generalized"):
        view["statuses"].insert(1, {"code": "OSState/generalized", "level": "Info",
                                    "displayStatus": "VM generalized"})
    if sim.get("guest") and power == "running" and state == "Succeeded":
        # cloud-init still runs the custom data: the agent reports Ready, the last serial line says where it is
        tail = serial_log(ctx, vm).strip().rsplit("\n", 1)[-1]
        view["vmAgent"]["statuses"][0]["message"] = f"Guest Agent is running; serial console: {tail}"
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


# ---------------------------------------------------------------------------------------------------
# build VMs: VirtualMachines_CreateOrUpdate from a marketplace image, deallocate, generalize, delete
# ---------------------------------------------------------------------------------------------------
# What a build VM needs (azure-mgmt-compute models; Compute spec virtualMachine.json):
# - storageProfile.imageReference {publisher, offer, sku, version}: an exact version or "latest" (resolved to the
#   newest; the VM reports it in imageReference.exactVersion). An unknown image: 404 ImageNotFound (errors.py).
# - osProfile.customData: base64, at most 87,380 characters (the base64 of Azure's 64 KB limit): CRP answers 400
#   InvalidParameter, target customData, "Custom data in OSProfile must be in Base64 encoding and with a maximum
#   length of 87380 characters." (verified: the response bodies quoted in Azure/aks-engine issue 1663 and
#   Azure/acs-engine issue 4149).
# - A Linux osProfile needs an SSH key or a password (400 InvalidParameter; the wording is from memory, not checked).
# - A marketplace image sold with a plan needs `plan` in the request (400 VMMarketplaceInvalidInput; code from public
#   reports, wording a paraphrase).
# - An image whose SecurityType feature is TrustedLaunch makes only Trusted Launch VMs: a request without
#   securityProfile.securityType TrustedLaunch (Standard, or no securityProfile; Azure's "Trusted Launch as default"
#   for new Gen2 VMs is not modelled) is refused with 400 BadRequest (errors.TrustedLaunchRequired: Azure's answer for a
#   gallery image; applied to marketplace images the same way, as no public report shows the marketplace wording).
# - networkProfile.networkInterfaceConfigurations (VM-managed NICs, networkApiVersion 2020-11-01 or later) makes one
#   NIC per configuration, named as the configuration; deleteOption Delete on a NIC / disk removes it with the VM,
#   Detach (the default) keeps it (DeleteOptions / DiskDeleteOptionTypes in the SDK models). Subnets (Network RP)
#   are not modelled: any subnet id of the subscription is accepted.
# - The guest: a custom-data script whose last command powers the VM off (poweroff / shutdown -h / systemctl
#   poweroff) stops it after timings.GUEST_BUILD; the instance view then reads PowerState/stopped, as Azure's does for
#   a guest-initiated shutdown (the VM stays allocated and billed). A script without one, or the fault
#   build_vm_never_stops, keeps it running. The serial console log (retrieveBootDiagnosticsData) shows the script.
# - deallocate: 202 + Azure-AsyncOperation, PowerState/deallocating then deallocated. generalize: 200, only when the
#   VM is stopped or deallocated, else 409 "Operation 'generalize' is not allowed on VM '<name>' since the VM is
#   running..." (the wording's start as quoted in MicrosoftDocs/azure-docs issue 86809; the code OperationNotAllowed
#   and the 409 are a guess, after CRP's other "not allowed" answers); the instance view then has OSState/generalized.

T_NIC = "Microsoft.Network/networkInterfaces"
MAX_CUSTOM_DATA = 87380
_POWEROFF = re.compile(r"^\s*(sudo\s+)?(poweroff|shutdown\s+(-h|-P|--poweroff)|systemctl\s+poweroff|halt\s+-p)\b", re.M)


def _delete_option(entry: dict) -> str:
    return ((entry.get("properties") or entry).get("deleteOption") or "Detach")


def _custom_script(custom_data: str | None) -> str | None:
    if custom_data is None:
        return None
    message = ("Custom data in OSProfile must be in Base64 encoding and with a maximum length of "
               f"{MAX_CUSTOM_DATA} characters.")
    if not isinstance(custom_data, str) or len(custom_data) > MAX_CUSTOM_DATA:
        raise ArmError(400, "InvalidParameter", message, target="customData")
    try:
        return _base64.b64decode(custom_data, validate=True).decode("utf-8", "replace")
    except (_binascii.Error, ValueError):
        raise ArmError(400, "InvalidParameter", message, target="customData") from None


def create_vm(ctx, sub: str, rg: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """VirtualMachines_CreateOrUpdate of a VM from a marketplace image: (body, created). An existing VM answers 200
    with its tags updated (changing its image or disks is not modelled)."""
    require_rg(ctx, sub, rg)
    req = req or {}
    vid = vm_id(sub, rg, name)
    existing = ctx.store.get("vm", vid)
    if existing is not None:
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
            ctx.store.put("vm", vid, existing)
        return existing, False
    loc = check_location(req.get("location"), T_VM)
    props = req.get("properties") or {}
    vm_size = (props.get("hardwareProfile") or {}).get("vmSize")
    if not vm_size:
        raise RequiredParameterMissing("hardwareProfile.vmSize")
    _resource_skus.require_offered(ctx, sub, vid, vm_size, loc, req.get("zones"))
    storage = props.get("storageProfile") or {}
    ref = storage.get("imageReference") or {}
    if not all(ref.get(k) for k in ("publisher", "offer", "sku", "version")):
        raise RequiredParameterMissing("storageProfile.imageReference")
    try:
        image = _marketplace.resolve(ctx, loc, ref["publisher"], ref["offer"], ref["sku"], ref["version"])
    except ArmError:
        raise ImageNotFound(f"The platform image '{ref['publisher']}:{ref['offer']}:{ref['sku']}:{ref['version']}' "
                            "is not available. Verify that all fields in the storage profile are correct.") from None
    iprops = image["properties"]
    plan = iprops.get("plan")
    if plan and not req.get("plan"):
        raise ArmError(400, "VMMarketplaceInvalidInput", "Creating a virtual machine from Marketplace image or a "
                       "custom image sourced from a Marketplace image requires Plan information in the request.")
    os_profile = dict(props.get("osProfile") or {})
    if not os_profile.get("adminUsername"):
        raise RequiredParameterMissing("osProfile.adminUsername")
    linux = os_profile.get("linuxConfiguration") or {}
    if not os_profile.get("adminPassword") and not ((linux.get("ssh") or {}).get("publicKeys")):
        raise InvalidParameter("Authentication using either SSH or by user name and password must be enabled in "
                               "Linux profile.")
    script = _custom_script(os_profile.get("customData"))
    network = props.get("networkProfile") or {}
    configs = network.get("networkInterfaceConfigurations") or []
    if not configs and not network.get("networkInterfaces"):
        raise RequiredParameterMissing("networkProfile")
    if configs and not network.get("networkApiVersion"):
        raise InvalidParameter("networkProfile.networkApiVersion is required when networkInterfaceConfigurations "
                               "are given (guess at the wording).")
    exact = image["name"]
    os_type = iprops["osDiskImage"]["operatingSystem"]
    gen = iprops.get("hyperVGeneration", "V1")
    img_id = platform_image_id(sub, loc, image["publisher"], image["offer"], image["sku"], exact)
    req_os = storage.get("osDisk") or {}
    security = dict(props.get("securityProfile") or {})
    sec_type = str(security.get("securityType") or "").lower()
    if sec_type == "trustedlaunch" and gen != "V2":
        raise InvalidParameter("Trusted Launch needs a generation 2 image (guess at the wording).")
    if str(_marketplace.image_security_type(image) or "").lower() == "trustedlaunch" and sec_type != "trustedlaunch":
        raise TrustedLaunchRequired()  # Standard or no securityProfile from a Trusted-Launch-only image (errors.py)
    os_name = req_os.get("name") or f"{name}_OsDisk_1_{uuid.uuid4().hex}"
    os_size = max(int(req_os.get("diskSizeGB") or 0), int(iprops["osDiskImage"].get("sizeInGb") or 30))
    sku = ((req_os.get("managedDisk") or {}).get("storageAccountType")) or "Premium_LRS"
    d = put_disk_doc(ctx, sub, rg, os_name, location=loc, size_gb=os_size, os_type=os_type, hyper_v_generation=gen,
                     image_reference_id=img_id, purchase_plan=plan, managed_by=vid, sku=sku,
                     security_type="TrustedLaunch" if sec_type == "trustedlaunch" else None)
    os_disk = {"osType": os_type, "name": os_name, "createOption": "FromImage",
               "caching": req_os.get("caching") or "ReadWrite", "deleteOption": req_os.get("deleteOption") or "Detach",
               "diskSizeGB": os_size, "managedDisk": {"storageAccountType": sku, "id": d["id"]}}
    data_disks = []
    for dd in storage.get("dataDisks") or []:
        if str(dd.get("createOption", "")).lower() != "empty" or not dd.get("diskSizeGB"):
            raise InvalidParameter("Only empty data disks with diskSizeGB are modelled for a new VM (guess).")
        dd_name = dd.get("name") or f"{name}_disk{int(dd['lun']) + 2}_{uuid.uuid4().hex}"
        dsku = ((dd.get("managedDisk") or {}).get("storageAccountType")) or "Premium_LRS"
        disk = put_disk_doc(ctx, sub, rg, dd_name, location=loc, size_gb=int(dd["diskSizeGB"]), managed_by=vid, sku=dsku)
        data_disks.append({"lun": int(dd["lun"]), "name": dd_name, "createOption": "Empty",
                           "caching": dd.get("caching") or "None", "deleteOption": dd.get("deleteOption") or "Detach",
                           "diskSizeGB": int(dd["diskSizeGB"]), "toBeDetached": False,
                           "managedDisk": {"storageAccountType": dsku, "id": disk["id"]}})
    nics = []
    for cfg in configs:
        nic_id = arm_id(sub, rg, T_NIC, cfg["name"])
        cprops = cfg.get("properties") or {}
        ctx.store.put("network_interface", nic_id, {
            "id": nic_id, "name": cfg["name"], "type": T_NIC, "location": loc, "tags": {},
            "properties": {"provisioningState": "Succeeded", "primary": bool(cprops.get("primary", True)),
                           "virtualMachine": {"id": vid},
                           "ipConfigurations": [{"name": ip.get("name"), "properties": {
                               "privateIPAllocationMethod": "Dynamic", "privateIPAddress": "10.0.0.4",
                               "subnet": (ip.get("properties") or {}).get("subnet")}}
                               for ip in cprops.get("ipConfigurations") or []]}})
        nics.append({"id": nic_id, "properties": {"primary": bool(cprops.get("primary", True)),
                                                  "deleteOption": cprops.get("deleteOption") or "Detach"}})
    os_profile.pop("customData", None)  # Azure never returns customData
    os_profile.pop("adminPassword", None)
    os_profile.setdefault("computerName", name[:64])
    never_stops = ctx.faults.take("build_vm_never_stops", name=name)
    body: dict[str, Any] = {
        "id": vid, "name": name, "type": T_VM, "location": loc, "tags": req.get("tags") or {},
        "properties": {
            "vmId": new_uuid(),
            "hardwareProfile": {"vmSize": vm_size},
            "storageProfile": {"imageReference": {**{k: ref[k] for k in ("publisher", "offer", "sku", "version")},
                                                  "exactVersion": exact},
                               "osDisk": os_disk, "dataDisks": data_disks, "diskControllerType": "SCSI"},
            "osProfile": os_profile,
            "networkProfile": {**({"networkApiVersion": network["networkApiVersion"]} if configs else {}),
                               "networkInterfaceConfigurations": configs,
                               "networkInterfaces": nics or network.get("networkInterfaces")},
            "diagnosticsProfile": props.get("diagnosticsProfile") or {"bootDiagnostics": {"enabled": False}},
            "timeCreated": ctx.clock.iso(ctx.clock.now()),
        },
        "_sim": {
            "power_state": "starting", "hyper_v_generation": gen, "os_name": "ubuntu", "os_version": "22.04",
            "base_image": {"publisher": image["publisher"], "offer": image["offer"], "sku": image["sku"],
                           "version": exact},
            "purchase_plan": dict(plan) if plan else None,
            "guest": {"script": script or "", "powers_off": bool(script and _POWEROFF.search(script)),
                      "never_stops": bool(never_stops),
                      "hang": (never_stops or {}).get("message") or "apt-get update: Waiting for cache lock: Could not "
                      "get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)",
                      "build_seconds": float((never_stops or {}).get("build_seconds") or _timings.GUEST_BUILD)},
        },
    }
    if req.get("plan"):
        body["plan"] = dict(req["plan"])
    if security:  # kept as sent (Standard explicitly, or TrustedLaunch with its uefiSettings)
        body["properties"]["securityProfile"] = security
    start_lro(ctx, body, "Creating", _timings.VM_CREATE, lro_fault(ctx, "virtualMachines", name))
    ctx.store.put("vm", vid, body)
    return body, True


def _advance_vm(ctx, vm: dict) -> dict:
    """Provisioning, then the guest: booted when Succeeded; a script that powers off stops it after its build time."""
    was = (vm.get("properties") or {}).get("provisioningState")
    advance_provisioning(ctx, vm)
    sim = vm.get("_sim") or {}
    guest = sim.get("guest")
    if not guest or vm["properties"].get("provisioningState") != "Succeeded":
        return vm
    lro = sim.get("lro") or {}
    booted_at = lro.get("done_at", 0.0)
    if was == "Creating" or sim.get("power_state") == "starting":
        sim["power_state"] = "running"
    if sim.get("power_state") == "running" and guest.get("powers_off") and not guest.get("never_stops") \
            and ctx.clock.now() >= booted_at + guest["build_seconds"]:
        sim["power_state"] = "stopped"
        guest["stopped_at"] = booted_at + guest["build_seconds"]
    power_op = sim.get("power_op")
    if power_op and ctx.clock.now() >= power_op["done_at"]:
        sim["power_state"] = power_op["state"]
        sim.pop("power_op")
    return vm


def serial_log(ctx, vm: dict) -> str:
    """The serial console as the guest has written it so far: cloud-init running the custom-data script."""
    sim = vm.get("_sim") or {}
    guest = sim.get("guest") or {}
    booted = ((sim.get("lro") or {}).get("done_at")) or 0.0
    now = ctx.clock.now()
    if vm["properties"].get("provisioningState") != "Succeeded":
        return ""
    t = ctx.clock.iso
    lines = [f"[    0.000000] Linux version 5.15.0-1074-azure (buildd@lcy02-amd64) {t(booted)}",
             f"cloud-init[812]: Cloud-init v. 24.3.1 running 'modules:final' at {t(booted + 20)}."]
    echoes = re.findall(r"^\s*echo\s+[\"']?(.*?)[\"']?\s*$", guest.get("script") or "", re.M)
    for line in echoes:
        lines.append(f"cloud-init[812]: {line}")
    if guest.get("never_stops"):
        lines.append(f"cloud-init[812]: {guest.get('hang')}")
    elif guest.get("stopped_at") and now >= guest["stopped_at"]:
        lines.append(f"cloud-init[812]: Cloud-init v. 24.3.1 finished at {t(guest['stopped_at'])}. Up "
                     f"{guest['build_seconds']:.2f} seconds")
        lines.append("[  OK  ] Reached target System Power Off.")
        lines.append("reboot: Power down")
    elif not guest.get("powers_off"):
        lines.append("cloud-init[812]: Cloud-init v. 24.3.1 finished. The script did not power the VM off.")
    return "\n".join(lines) + "\n"


def begin_deallocate(ctx, sub: str, rg: str, name: str) -> dict:
    """POST deallocate: PowerState/deallocating, deallocated after timings.VM_DEALLOCATE."""
    vm = _require_vm(ctx, sub, rg, name)
    if vm["_sim"].get("power_state") != "deallocated":
        vm["_sim"]["power_state"] = "deallocating"
        vm["_sim"]["power_op"] = {"state": "deallocated", "done_at": ctx.clock.now() + _timings.VM_DEALLOCATE}
        ctx.store.put("vm", vm["id"], vm)
    return vm


def generalize(ctx, sub: str, rg: str, name: str) -> None:
    """POST generalize: only a stopped or deallocated VM (409 OperationNotAllowed otherwise; wording a guess)."""
    vm = _require_vm(ctx, sub, rg, name)
    power = vm["_sim"].get("power_state")
    if power not in ("stopped", "deallocated"):
        raise OperationNotAllowed(f"Operation 'generalize' is not allowed on VM '{name}' since the VM is {power}. "
                                  "Stop or deallocate the VM first.")
    vm["_sim"]["generalized"] = True
    ctx.store.put("vm", vm["id"], vm)


def prepare_delete_vm(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    """(store key, location) of the VM to delete; its disks and NICs with deleteOption Delete go with it (same
    duration), those with Detach are detached (managedBy cleared)."""
    require_rg(ctx, sub, rg)
    vm = ctx.store.get("vm", vm_id(sub, rg, name))
    if vm is None:
        return None
    at = ctx.clock.now() + _timings.DELETE
    sp = vm["properties"]["storageProfile"]
    for entry in [sp["osDisk"], *sp.get("dataDisks", [])]:
        disk_key = (entry.get("managedDisk") or {}).get("id")
        disk = ctx.store.get("disk", disk_key) if disk_key else None
        if disk is None:
            continue
        if _delete_option(entry) == "Delete":
            disk.setdefault("_sim", {})["delete_at"] = at
        else:
            disk.pop("managedBy", None)
            disk["properties"]["diskState"] = "Unattached"
        ctx.store.put("disk", disk["id"], disk)
    for nic_ref in vm["properties"]["networkProfile"].get("networkInterfaces") or []:
        nic = ctx.store.get("network_interface", nic_ref["id"])
        if nic is None:
            continue
        if _delete_option(nic_ref) == "Delete":
            nic.setdefault("_sim", {})["delete_at"] = at
        else:
            nic["properties"].pop("virtualMachine", None)
        ctx.store.put("network_interface", nic["id"], nic)
    return vm["id"], vm["location"]


def get_nic(ctx, sub: str, rg: str, name: str) -> dict:
    return get_in_rg(ctx, "network_interface", T_NIC, sub, rg, name)


def list_nics(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return list_in(ctx, "network_interface", T_NIC, sub, rg)


def register(ctx) -> None:
    ctx.store.register_advancer("vm", _advance_vm)
