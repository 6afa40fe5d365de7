"""Microsoft.Compute (VMs, disks, snapshots, managed images), resource groups, Batch accounts (ARM side)
and resource-provider registration: resource state and Azure's rules.

Documents (store kinds; keys are the lower-cased ARM ids):
  resource_group, vm, vm_extension, disk, snapshot, image, batch_account, provider (key "{sub}/{namespace}").

Private bookkeeping lives under `_sim` and never reaches the wire:
  _sim.lro        {"start", "done_at", "error"}: a create/update in flight (advancers finish it)
  _sim.error      {"code", "message"}: why provisioningState is Failed (read by responses/arm_lro.py)
  _sim.base_image {"publisher", "offer", "sku", "version"}: the marketplace image at the root of the
                  lineage (VM imageReference -> disk creationData.imageReference -> snapshot -> image),
                  carried on so the gallery and Batch backends can check it
  _sim.purchase_plan {"name", "publisher", "product"} | None: the marketplace plan of that lineage
  _sim.size_gb    total disk size behind an image (OS + data disks), drives replication time

Error codes/messages are Azure's where they could be verified (see the module's report in
docs/ or the PR text); the rest follow Azure's patterns and say so in a comment.
"""
from __future__ import annotations

import base64
import copy
import os
import re
import uuid
from typing import Any

from ..core import timings
from ..core.errors import ArmError

# ---------------------------------------------------------------------------------------------------
# ids, regions, common errors
# ---------------------------------------------------------------------------------------------------

COMPUTE = "Microsoft.Compute"
T_VM = "Microsoft.Compute/virtualMachines"
T_DISK = "Microsoft.Compute/disks"
T_SNAPSHOT = "Microsoft.Compute/snapshots"
T_IMAGE = "Microsoft.Compute/images"
T_BATCH = "Microsoft.Batch/batchAccounts"

# Azure public regions: canonical name -> display name (what gallery replication reports).
REGIONS: dict[str, str] = {
    "eastus": "East US", "eastus2": "East US 2", "southcentralus": "South Central US",
    "westus2": "West US 2", "westus3": "West US 3", "australiaeast": "Australia East",
    "southeastasia": "Southeast Asia", "northeurope": "North Europe", "swedencentral": "Sweden Central",
    "uksouth": "UK South", "westeurope": "West Europe", "centralus": "Central US",
    "southafricanorth": "South Africa North", "centralindia": "Central India", "eastasia": "East Asia",
    "japaneast": "Japan East", "koreacentral": "Korea Central", "canadacentral": "Canada Central",
    "francecentral": "France Central", "germanywestcentral": "Germany West Central",
    "italynorth": "Italy North", "norwayeast": "Norway East", "polandcentral": "Poland Central",
    "spaincentral": "Spain Central", "switzerlandnorth": "Switzerland North",
    "mexicocentral": "Mexico Central", "uaenorth": "UAE North", "brazilsouth": "Brazil South",
    "israelcentral": "Israel Central", "qatarcentral": "Qatar Central",
    "northcentralus": "North Central US", "westus": "West US", "westcentralus": "West Central US",
    "southafricawest": "South Africa West", "australiacentral": "Australia Central",
    "australiacentral2": "Australia Central 2", "australiasoutheast": "Australia Southeast",
    "japanwest": "Japan West", "koreasouth": "Korea South", "southindia": "South India",
    "westindia": "West India", "canadaeast": "Canada East", "francesouth": "France South",
    "germanynorth": "Germany North", "norwaywest": "Norway West", "switzerlandwest": "Switzerland West",
    "ukwest": "UK West", "uaecentral": "UAE Central", "brazilsoutheast": "Brazil Southeast",
    "newzealandnorth": "New Zealand North", "indonesiacentral": "Indonesia Central",
    "malaysiawest": "Malaysia West", "chilecentral": "Chile Central", "austriaeast": "Austria East",
    "belgiumcentral": "Belgium Central", "denmarkeast": "Denmark East",
}


def canonical_region(name: str | None) -> str:
    """'West Europe' / 'westeurope' / 'WestEurope' -> 'westeurope' (how ARM stores locations)."""
    return (name or "").replace(" ", "").lower()


def region_display_name(name: str) -> str:
    return REGIONS.get(canonical_region(name), name)


def check_location(location: str | None, resource_type: str) -> str:
    """Validate and normalise a resource location the way ARM does (400s are ARM's own codes)."""
    if not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    loc = canonical_region(location)
    if loc not in REGIONS:
        available = ",".join(REGIONS[r] for r in sorted(REGIONS))
        raise ArmError(400, "LocationNotAvailableForResourceType",
                       f"The provided location '{location}' is not available for resource type "
                       f"'{resource_type}'. List of available regions for the resource type is '{available}'.")
    return loc


def rg_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def arm_id(sub: str, rg: str, rtype: str, *names: str) -> str:
    """arm_id(sub, rg, "Microsoft.Compute/galleries/images", "g", "def") -> full id."""
    ns, *types = rtype.split("/")
    if len(types) != len(names):
        raise ValueError(f"{rtype} needs {len(types)} names, got {names}")
    parts = "/".join(f"{t}/{n}" for t, n in zip(types, names))
    return f"{rg_id(sub, rg)}/providers/{ns}/{parts}"


def parse_id(resource_id: str | None) -> dict | None:
    """Parse an ARM id: {"subscription", "resource_group", "namespace", "types": [...], "names": [...],
    "type": "Namespace/t1/t2", "name": last name}. None when it is not a resource id."""
    if not resource_id or not isinstance(resource_id, str):
        return None
    segs = [s for s in resource_id.strip().split("/") if s]
    out: dict[str, Any] = {"subscription": None, "resource_group": None, "namespace": None, "types": [], "names": []}
    i = 0
    while i + 1 < len(segs):
        key = segs[i].lower()
        if key == "subscriptions" and out["subscription"] is None:
            out["subscription"] = segs[i + 1]
            i += 2
        elif key == "resourcegroups" and out["resource_group"] is None:
            out["resource_group"] = segs[i + 1]
            i += 2
        elif key == "providers" and out["namespace"] is None:
            out["namespace"] = segs[i + 1]
            i += 2
            rest = segs[i:]
            if len(rest) % 2:
                return None
            out["types"] = [rest[j] for j in range(0, len(rest), 2)]
            out["names"] = [rest[j + 1] for j in range(0, len(rest), 2)]
            break
        else:
            return None
    if not out["subscription"] or not out["namespace"] or not out["types"]:
        return None
    out["type"] = "/".join([out["namespace"], *out["types"]])
    out["name"] = out["names"][-1]
    return out


def id_is(resource_id: str | None, rtype: str) -> dict | None:
    """parse_id(resource_id) when it names a resource of type `rtype` (case-insensitive), else None."""
    p = parse_id(resource_id)
    if p and p["resource_group"] and p["type"].lower() == rtype.lower():
        return p
    return None


def not_found(rtype: str, name: str, rg: str) -> ArmError:
    """ARM's 404 for a missing tracked resource (verified wording)."""
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def rg_not_found(rg: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def required_missing(param: str) -> ArmError:
    # CRP's wording for a missing required property (verified pattern: "Required parameter 'x' is missing (null).")
    return ArmError(400, "InvalidParameter", f"Required parameter '{param}' is missing (null).")


def new_uuid() -> str:
    return str(uuid.uuid4())


def _props(body: dict) -> dict:
    return body.setdefault("properties", {})


def _sim(body: dict) -> dict:
    return body.setdefault("_sim", {})


def start_lro(ctx, body: dict, state: str, duration: float, error: dict | None = None) -> None:
    """Put `body` into Creating/Updating; an advancer ends it Succeeded (or Failed with `error`)."""
    now = ctx.clock.now()
    _props(body)["provisioningState"] = state
    sim = _sim(body)
    sim["lro"] = {"start": now, "done_at": now + float(duration), "error": error}
    sim.pop("error", None)


def lro_fault(ctx, resource_type: str, name: str) -> dict | None:
    """An `lro_failed` fault for this create, as {"code", "message"} (None when none applies)."""
    spec = ctx.faults.take("lro_failed", resource_type=resource_type, name=name)
    if spec is None:
        return None
    return {"code": spec.get("code") or "InternalOperationError",
            "message": spec.get("message") or "An internal execution error occurred. Please retry later."}


def advance_provisioning(ctx, body: dict) -> dict:
    """Finish an in-flight create/update once simulated time passes its deadline."""
    props = body.get("properties") or {}
    lro = (body.get("_sim") or {}).get("lro")
    if not lro or props.get("provisioningState") not in ("Creating", "Updating"):
        return body
    if ctx.clock.now() >= lro["done_at"]:
        if lro.get("error"):
            props["provisioningState"] = "Failed"
            body["_sim"]["error"] = lro["error"]
        else:
            props["provisioningState"] = "Succeeded"
    return body


def lro_progress(ctx, body: dict) -> float:
    """0..100 progress of the in-flight create (100 when none)."""
    lro = (body.get("_sim") or {}).get("lro")
    if not lro:
        return 100.0
    span = max(1e-9, lro["done_at"] - lro["start"])
    return max(0.0, min(100.0, 100.0 * (ctx.clock.now() - lro["start"]) / span))


def public(body: dict | None) -> dict | None:
    """A copy without `_sim` (the responses layer strips it too; this is for in-process callers)."""
    if body is None:
        return None
    return {k: copy.deepcopy(v) for k, v in body.items() if k != "_sim"}


# ---------------------------------------------------------------------------------------------------
# marketplace image references
# ---------------------------------------------------------------------------------------------------

_PLATFORM_IMAGE_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.compute/locations/(?P<loc>[^/]+)/publishers/"
    r"(?P<publisher>[^/]+)/artifacttypes/vmimage/offers/(?P<offer>[^/]+)/skus/(?P<sku>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)


def platform_image_id(sub: str, location: str, publisher: str, offer: str, sku: str, version: str) -> str:
    """The id Azure records in a marketplace-created disk's creationData.imageReference.id."""
    return (f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}/Publishers/{publisher}"
            f"/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions/{version}")


def parse_platform_image_id(image_id: str | None) -> dict | None:
    m = _PLATFORM_IMAGE_RE.match(image_id or "")
    if not m:
        return None
    return {k: m.group(k) for k in ("publisher", "offer", "sku", "version")}


# ---------------------------------------------------------------------------------------------------
# resource groups
# ---------------------------------------------------------------------------------------------------

def get_resource_group(ctx, sub: str, rg: str) -> dict:
    body = ctx.store.get("resource_group", rg_id(sub, rg))
    if body is None:
        raise rg_not_found(rg)
    return body


def require_rg(ctx, sub: str, rg: str) -> dict:
    return get_resource_group(ctx, sub, rg)


def resource_group_exists(ctx, sub: str, rg: str) -> bool:
    return ctx.store.get("resource_group", rg_id(sub, rg)) is not None


def put_resource_group(ctx, sub: str, rg: str, req: dict | None) -> tuple[dict, bool]:
    req = req or {}
    existing = ctx.store.get("resource_group", rg_id(sub, rg))
    if existing is not None:
        if req.get("location") and canonical_region(req["location"]) != existing["location"]:
            # ARM's wording for a location change of an existing group.
            raise ArmError(409, "InvalidResourceGroupLocation",
                           f"Invalid resource group location '{canonical_region(req['location'])}'. "
                           f"The Resource group already exists in location '{existing['location']}'.")
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
        ctx.store.put("resource_group", existing["id"], existing)
        return existing, False
    loc = check_location(req.get("location"), "resourceGroups")
    body = {
        "id": rg_id(sub, rg), "name": rg, "type": "Microsoft.Resources/resourceGroups", "location": loc,
        "tags": req.get("tags") or {}, "properties": {"provisioningState": "Succeeded"},
    }
    ctx.store.put("resource_group", body["id"], body)
    return body, True


def list_resource_groups(ctx, sub: str) -> list[dict]:
    return ctx.store.list("resource_group", f"/subscriptions/{sub}/resourcegroups/")


# ---------------------------------------------------------------------------------------------------
# managed disks
# ---------------------------------------------------------------------------------------------------

def disk_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_DISK, name)


def put_disk_doc(ctx, sub: str, rg: str, name: str, *, location: str, size_gb: int, os_type: str | None = None,
                 hyper_v_generation: str | None = None, image_reference_id: str | None = None,
                 purchase_plan: dict | None = None, sku: str = "Premium_LRS", managed_by: str | None = None,
                 security_type: str | None = None) -> dict:
    """Store a managed disk as a VM deployment leaves it (used by the seed: there is no disk PUT here).

    `security_type` ("TrustedLaunch") is the OS disk's `securityProfile.securityType`, as Azure sets it on the OS
    disk of a Trusted Launch VM (DiskSecurityTypes in the Disk RP spec; data disks have none).
    """
    did = disk_id(sub, rg, name)
    created = ctx.clock.iso(ctx.clock.now())
    props: dict[str, Any] = {}
    if os_type:
        props["osType"] = os_type
    if hyper_v_generation:
        props["hyperVGeneration"] = hyper_v_generation
    if purchase_plan:
        props["purchasePlan"] = dict(purchase_plan)
    if security_type:
        props["securityProfile"] = {"securityType": security_type}
    if image_reference_id:
        props["creationData"] = {"createOption": "FromImage", "imageReference": {"id": image_reference_id}}
    else:
        props["creationData"] = {"createOption": "Empty"}
    props.update({
        "diskSizeGB": int(size_gb),
        "diskSizeBytes": int(size_gb) * 1024 ** 3,
        "uniqueId": new_uuid(),
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        "timeCreated": created,
        "provisioningState": "Succeeded",
        "diskState": "Attached" if managed_by else "Unattached",
        "diskIOPSReadWrite": 120 if size_gb <= 32 else 240,
        "diskMBpsReadWrite": 25 if size_gb <= 32 else 50,
        "tier": "P4" if size_gb <= 32 else "P6",
    })
    body: dict[str, Any] = {
        "id": did, "name": name, "type": T_DISK, "location": canonical_region(location),
        "sku": {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"},
        "properties": props,
        "_sim": {"base_image": None, "purchase_plan": dict(purchase_plan) if purchase_plan else None},
    }
    if managed_by:
        body["managedBy"] = managed_by
    base = parse_platform_image_id(image_reference_id)
    if base:
        body["_sim"]["base_image"] = base
    ctx.store.put("disk", did, body)
    return body


def _get_in_rg(ctx, kind: str, rtype: str, rid: str, sub: str, rg: str, name: str) -> dict:
    """A resource of a resource group, or Azure's ResourceGroupNotFound / ResourceNotFound."""
    require_rg(ctx, sub, rg)
    body = ctx.store.get(kind, rid)
    if body is None:
        raise not_found(rtype, name, rg)
    return body


def _list_in(ctx, kind: str, rtype: str, sub: str, rg: str | None) -> list[dict]:
    """Resources of one type in a resource group, or in the whole subscription when rg is None."""
    if rg is not None:
        require_rg(ctx, sub, rg)
        return ctx.store.list(kind, f"{rg_id(sub, rg)}/providers/{rtype}/")
    return ctx.store.list(kind, f"/subscriptions/{sub}/")


def get_disk(ctx, sub: str, rg: str, name: str) -> dict:
    return _get_in_rg(ctx, "disk", T_DISK, disk_id(sub, rg, name), sub, rg, name)


def list_disks(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return _list_in(ctx, "disk", T_DISK, sub, rg)


def prepare_delete_disk(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    """(store key, location) of a disk that may be deleted now; None when it does not exist."""
    require_rg(ctx, sub, rg)
    body = ctx.store.get("disk", disk_id(sub, rg, name))
    if body is None:
        return None
    if body.get("managedBy"):
        # Disk RP refuses to delete an attached disk (code verified; wording follows Azure's message).
        raise ArmError(409, "OperationNotAllowed",
                       f"Disk {body['name']} is attached to VM {body['managedBy']}.")
    return body["id"], body["location"]


# ---------------------------------------------------------------------------------------------------
# virtual machines (read-only here: created by the seed)
# ---------------------------------------------------------------------------------------------------

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
        "id": eid, "name": ext["name"], "type": "Microsoft.Compute/virtualMachines/extensions",
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
    require_rg(ctx, sub, rg)
    body = ctx.store.get("vm", vm_id(sub, rg, name))
    if body is None:
        raise not_found(T_VM, name, rg)
    return body


def list_vm_extensions(ctx, sub: str, rg: str, vm_name: str) -> list[dict]:
    vm = _require_vm(ctx, sub, rg, vm_name)
    return ctx.store.list("vm_extension", vm["id"] + "/extensions/")


def get_vm_extension(ctx, sub: str, rg: str, vm_name: str, ext_name: str) -> dict:
    vm = _require_vm(ctx, sub, rg, vm_name)
    body = ctx.store.get("vm_extension", f"{vm['id']}/extensions/{ext_name}")
    if body is None:
        raise not_found("Microsoft.Compute/virtualMachines/extensions", f"{vm['name']}/{ext_name}", rg)
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
    if rg is not None:
        require_rg(ctx, sub, rg)
        vms = ctx.store.list("vm", f"{rg_id(sub, rg)}/providers/{T_VM}/")
    else:
        vms = ctx.store.list("vm", f"/subscriptions/{sub}/")
    return vms


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
# snapshots
# ---------------------------------------------------------------------------------------------------

def snapshot_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_SNAPSHOT, name)


def _lookup_copy_source(ctx, source_id: str) -> dict | None:
    if id_is(source_id, T_DISK):
        return ctx.store.get("disk", source_id)
    if id_is(source_id, T_SNAPSHOT):
        return ctx.store.get("snapshot", source_id)
    return None


def create_snapshot(ctx, sub: str, rg: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """Snapshots_CreateOrUpdate: returns (body, created). Creating -> Succeeded after a copy whose
    length grows with the disk size (timings.snapshot_copy)."""
    require_rg(ctx, sub, rg)
    req = req or {}
    rprops = req.get("properties") or {}
    sid = snapshot_id(sub, rg, name)
    existing = ctx.store.get("snapshot", sid)
    cd = rprops.get("creationData")
    if not cd:
        raise required_missing("creationData")
    option = (cd.get("createOption") or "")
    if option.lower() != "copy":
        # Only copies of managed disks/snapshots are modelled here (guess at the wording).
        raise ArmError(400, "InvalidParameter",
                       f"The value '{option}' of parameter 'creationData.createOption' is not supported "
                       "by this service: only 'Copy' is.")
    source_id = cd.get("sourceResourceId")
    if not source_id:
        raise required_missing("sourceResourceId")
    if existing is not None:
        old = existing["properties"]["creationData"].get("sourceResourceId", "")
        if old.lower() != source_id.lower():
            # Disk RP's answer (verified for sourceUri; same pattern for sourceResourceId).
            raise ArmError(400, "BadRequest",
                           f"Changing property 'sourceResourceId' is not allowed for existing disk '{existing['name']}'.")
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
        ctx.store.put("snapshot", sid, existing)
        return existing, False
    loc = check_location(req.get("location"), T_SNAPSHOT)
    source = _lookup_copy_source(ctx, source_id)
    if source is None:
        # Verified: (NotFound) Resource <name> is not found.
        src_name = (parse_id(source_id) or {}).get("name") or source_id
        raise ArmError(404, "NotFound", f"Resource {src_name} is not found.")
    sprops = source.get("properties") or {}
    size = int(sprops.get("diskSizeGB") or 0)
    incremental = bool(rprops.get("incremental", False))
    sku_name = ((req.get("sku") or {}).get("name")) or ("Standard_ZRS" if incremental else "Standard_LRS")
    props: dict[str, Any] = {}
    # securityProfile: a snapshot of a Trusted Launch OS disk keeps securityType TrustedLaunch (Snapshot has
    # securityProfile in the Disk RP spec, 2021-12-01 and later).
    for key in ("osType", "hyperVGeneration", "purchasePlan", "supportedCapabilities", "supportsHibernation",
                "securityProfile"):
        if rprops.get(key) is not None:
            props[key] = rprops[key]
        elif sprops.get(key) is not None:
            props[key] = copy.deepcopy(sprops[key])
    props.update({
        "creationData": {"createOption": "Copy", "sourceResourceId": source["id"],
                         "sourceUniqueId": sprops.get("uniqueId")},
        "diskSizeGB": size,
        "diskSizeBytes": size * 1024 ** 3,
        "uniqueId": new_uuid(),
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "incremental": incremental,
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        "diskState": "Unattached",
        "timeCreated": ctx.clock.iso(ctx.clock.now()),
        "completionPercent": 0.0,
    })
    if incremental:
        props["incrementalSnapshotFamilyId"] = new_uuid()
    src_sim = source.get("_sim") or {}
    body: dict[str, Any] = {
        "id": sid, "name": name, "type": T_SNAPSHOT, "location": loc, "tags": req.get("tags") or {},
        "sku": {"name": sku_name, "tier": "Standard"},
        "properties": props,
        "_sim": {"base_image": copy.deepcopy(src_sim.get("base_image")),
                 "purchase_plan": copy.deepcopy(src_sim.get("purchase_plan"))},
    }
    start_lro(ctx, body, "Creating", timings.snapshot_copy(size), lro_fault(ctx, "snapshots", name))
    ctx.store.put("snapshot", sid, body)
    return body, True


def _advance_snapshot(ctx, body: dict) -> dict:
    advance_provisioning(ctx, body)
    props = body.get("properties") or {}
    state = props.get("provisioningState")
    if state == "Creating":
        props["completionPercent"] = round(lro_progress(ctx, body), 1)
    elif state == "Succeeded":
        props["completionPercent"] = 100.0
    return body


def get_snapshot(ctx, sub: str, rg: str, name: str) -> dict:
    return _get_in_rg(ctx, "snapshot", T_SNAPSHOT, snapshot_id(sub, rg, name), sub, rg, name)


def list_snapshots(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return _list_in(ctx, "snapshot", T_SNAPSHOT, sub, rg)


def prepare_delete_snapshot(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    require_rg(ctx, sub, rg)
    body = ctx.store.get("snapshot", snapshot_id(sub, rg, name))
    return None if body is None else (body["id"], body["location"])


# ---------------------------------------------------------------------------------------------------
# managed images
# ---------------------------------------------------------------------------------------------------

def image_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_IMAGE, name)


def _image_disk_source(ctx, entry: dict, path: str) -> tuple[dict, str]:
    """The ready snapshot (or managed disk) behind an image disk entry, and its id."""
    snap_ref = (entry.get("snapshot") or {}).get("id")
    disk_ref = (entry.get("managedDisk") or {}).get("id")
    if snap_ref:
        src = ctx.store.get("snapshot", snap_ref) if id_is(snap_ref, T_SNAPSHOT) else None
        if src is None:
            # Guess at CRP's wording; the code is the InvalidParameter Compute uses for bad references.
            raise ArmError(400, "InvalidParameter",
                           f"The snapshot '{snap_ref}' referenced by '{path}.snapshot.id' does not exist.")
        state = src["properties"].get("provisioningState")
        if state != "Succeeded":
            raise ArmError(400, "InvalidParameter",
                           f"The snapshot '{snap_ref}' referenced by '{path}.snapshot.id' is not ready: "
                           f"its provisioningState is '{state}'.")
        return src, src["id"]
    if disk_ref:
        src = ctx.store.get("disk", disk_ref) if id_is(disk_ref, T_DISK) else None
        if src is None:
            raise ArmError(400, "InvalidParameter",
                           f"The managed disk '{disk_ref}' referenced by '{path}.managedDisk.id' does not exist.")
        return src, src["id"]
    if entry.get("blobUri"):
        raise ArmError(400, "InvalidParameter",
                       f"Images from blobUri are not supported by the local stand-in ('{path}.blobUri').")
    raise ArmError(400, "InvalidParameter",
                   f"One of '{path}.snapshot', '{path}.managedDisk' or '{path}.blobUri' must be specified.")


def disk_security_type(doc: dict | None) -> str | None:
    """`properties.securityProfile.securityType` of a disk or snapshot (None: a standard disk)."""
    return (((doc or {}).get("properties") or {}).get("securityProfile") or {}).get("securityType") or None


def _refuse_secure_source(src: dict) -> None:
    """Managed images cannot capture Trusted Launch (or confidential) disks.

    Code and wording from Azure's answer to a capture of a Trusted Launch VM ("OperationNotAllowed : Creation of
    managed images are not supported for virtual machine with TrustedLaunch security type.", hashicorp/packer#13189);
    for a disk or snapshot source the wording is adapted and the HTTP status (409) is a guess.
    """
    kind = disk_security_type(src)
    if kind:
        label = "TrustedLaunch" if kind == "TrustedLaunch" else "ConfidentialVM"
        raise ArmError(409, "OperationNotAllowed",
                       f"Creation of managed images are not supported for virtual machine with {label} security "
                       f"type. The source '{src['id']}' has securityProfile.securityType '{kind}'; publish it to an "
                       "Azure Compute Gallery image version instead.")


def create_image(ctx, sub: str, rg: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """Images_CreateOrUpdate from snapshots (or managed disks): (body, created)."""
    require_rg(ctx, sub, rg)
    req = req or {}
    rprops = req.get("properties") or {}
    iid = image_id(sub, rg, name)
    existing = ctx.store.get("image", iid)
    sp = rprops.get("storageProfile")
    if rprops.get("sourceVirtualMachine") and not sp:
        raise ArmError(400, "InvalidParameter",
                       "Capturing an image from 'sourceVirtualMachine' is not supported by the local stand-in; "
                       "use snapshots in 'storageProfile'.")
    if not sp:
        raise required_missing("storageProfile")
    os_disk = sp.get("osDisk")
    if not os_disk:
        raise required_missing("storageProfile.osDisk")
    if not os_disk.get("osType"):
        raise required_missing("osDisk.osType")
    if not os_disk.get("osState"):
        raise required_missing("osDisk.osState")
    if os_disk["osState"] not in ("Generalized", "Specialized"):
        raise ArmError(400, "InvalidParameter",
                       f"The value '{os_disk['osState']}' of parameter 'osDisk.osState' is invalid.")
    luns = [d.get("lun") for d in sp.get("dataDisks") or []]
    if any(lun is None for lun in luns):
        raise required_missing("dataDisks.lun")
    if len(set(luns)) != len(luns):
        raise ArmError(400, "InvalidParameter",
                       "Duplicated lun numbers have been detected in the input data disks. "
                       "Lun number must be unique for each data disk.")
    if existing is not None:
        old = (existing["properties"]["storageProfile"]["osDisk"].get("snapshot") or {}).get("id", "")
        new = (os_disk.get("snapshot") or {}).get("id", "")
        if old.lower() != new.lower():
            # Follows CRP's PropertyChangeNotAllowed pattern (guessed property path).
            raise ArmError(409, "PropertyChangeNotAllowed", "Changing property 'osDisk.snapshot.id' is not allowed.")
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
        ctx.store.put("image", iid, existing)
        return existing, False
    loc = check_location(req.get("location"), T_IMAGE)
    os_src, _ = _image_disk_source(ctx, os_disk, "storageProfile.osDisk")
    _refuse_secure_source(os_src)
    total = int(os_disk.get("diskSizeGB") or os_src["properties"].get("diskSizeGB") or 0)
    out_os = {
        "osType": os_disk["osType"], "osState": os_disk["osState"],
        "caching": os_disk.get("caching", "ReadWrite"),
        "storageAccountType": os_disk.get("storageAccountType", "Standard_LRS"),
        "diskSizeGB": total,
    }
    for ref in ("snapshot", "managedDisk"):
        if os_disk.get(ref):
            out_os[ref] = {"id": os_disk[ref]["id"]}
    out_data = []
    for entry in sorted(sp.get("dataDisks") or [], key=lambda d: d["lun"]):
        src, _ = _image_disk_source(ctx, entry, f"storageProfile.dataDisks[lun {entry['lun']}]")
        _refuse_secure_source(src)
        size = int(entry.get("diskSizeGB") or src["properties"].get("diskSizeGB") or 0)
        total += size
        d = {"lun": int(entry["lun"]), "caching": entry.get("caching", "None"),
             "storageAccountType": entry.get("storageAccountType", "Standard_LRS"), "diskSizeGB": size}
        for ref in ("snapshot", "managedDisk"):
            if entry.get(ref):
                d[ref] = {"id": entry[ref]["id"]}
        out_data.append(d)
    src_sim = os_src.get("_sim") or {}
    body: dict[str, Any] = {
        "id": iid, "name": name, "type": T_IMAGE, "location": loc, "tags": req.get("tags") or {},
        "properties": {
            "storageProfile": {"osDisk": out_os, "dataDisks": out_data,
                               "zoneResilient": bool(sp.get("zoneResilient", False))},
            "hyperVGeneration": rprops.get("hyperVGeneration") or "V1",
        },
        "_sim": {"base_image": copy.deepcopy(src_sim.get("base_image")),
                 "purchase_plan": copy.deepcopy(src_sim.get("purchase_plan")),
                 "size_gb": total},
    }
    start_lro(ctx, body, "Creating", timings.image_create(total), lro_fault(ctx, "images", name))
    ctx.store.put("image", iid, body)
    return body, True


def get_image(ctx, sub: str, rg: str, name: str) -> dict:
    return _get_in_rg(ctx, "image", T_IMAGE, image_id(sub, rg, name), sub, rg, name)


def list_images(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return _list_in(ctx, "image", T_IMAGE, sub, rg)


def prepare_delete_image(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    require_rg(ctx, sub, rg)
    body = ctx.store.get("image", image_id(sub, rg, name))
    return None if body is None else (body["id"], body["location"])


# ---------------------------------------------------------------------------------------------------
# Batch accounts (management plane, read-only) and resource providers
# ---------------------------------------------------------------------------------------------------

def batch_account_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_BATCH, name)


def put_batch_account_doc(ctx, sub: str, rg: str, name: str, *, location: str,
                          dedicated_core_quota: int = 500, low_priority_core_quota: int = 100,
                          pool_quota: int = 100) -> dict:
    """Store a Batch account (seed helper) with two random base64 account keys in _sim.keys."""
    bid = batch_account_id(sub, rg, name)
    keys = [base64.b64encode(os.urandom(64)).decode() for _ in range(2)]
    body = {
        "id": bid, "name": name, "type": T_BATCH, "location": canonical_region(location), "tags": {},
        "identity": {"type": "None"},
        "properties": {
            "accountEndpoint": "",
            "provisioningState": "Succeeded",
            "poolAllocationMode": "BatchService",
            "publicNetworkAccess": "Enabled",
            "dedicatedCoreQuota": dedicated_core_quota,
            "lowPriorityCoreQuota": low_priority_core_quota,
            "dedicatedCoreQuotaPerVMFamilyEnforced": True,
            "dedicatedCoreQuotaPerVMFamily": [
                {"name": "standardDv5Family", "coreQuota": 100},
                {"name": "standardDSv5Family", "coreQuota": 100},
                {"name": "standardDDSv5Family", "coreQuota": 50},
                {"name": "standardEv5Family", "coreQuota": 50},
                {"name": "standardDSv3Family", "coreQuota": 50},
                {"name": "standardFSv2Family", "coreQuota": 50},
            ],
            "poolQuota": pool_quota,
            "activeJobAndJobScheduleQuota": 300,
            "allowedAuthenticationModes": ["SharedKey", "AAD", "TaskAuthenticationToken"],
        },
        "_sim": {"keys": keys},
    }
    ctx.store.put("batch_account", bid, body)
    return body


def _with_endpoint(ctx, body: dict) -> dict:
    body["properties"]["accountEndpoint"] = f"{ctx.config.netloc}/batch/{body['name']}"
    return body


def get_batch_account(ctx, sub: str, rg: str, name: str) -> dict:
    require_rg(ctx, sub, rg)
    body = ctx.store.get("batch_account", batch_account_id(sub, rg, name))
    if body is None:
        raise not_found(T_BATCH, name, rg)
    return _with_endpoint(ctx, body)


def list_batch_accounts(ctx, sub: str, rg: str | None = None) -> list[dict]:
    if rg is not None:
        require_rg(ctx, sub, rg)
        rows = ctx.store.list("batch_account", f"{rg_id(sub, rg)}/providers/{T_BATCH}/")
    else:
        rows = ctx.store.list("batch_account", f"/subscriptions/{sub}/")
    return [_with_endpoint(ctx, b) for b in rows]


def batch_account_keys(ctx, sub: str, rg: str, name: str) -> dict:
    """BatchAccount_GetKeys."""
    body = get_batch_account(ctx, sub, rg, name)
    keys = body["_sim"]["keys"]
    return {"accountName": body["name"], "primary": keys[0], "secondary": keys[1]}


_ALWAYS_REGISTERED = {"microsoft.compute", "microsoft.resources", "microsoft.network", "microsoft.storage",
                      "microsoft.authorization"}
_PROVIDER_TYPES = {
    "microsoft.batch": ["batchAccounts", "batchAccounts/pools", "operations", "locations", "locations/quotas"],
    "microsoft.compute": ["virtualMachines", "disks", "snapshots", "images", "galleries", "galleries/images",
                          "galleries/images/versions", "locations", "locations/operations"],
}
_PROVIDER_NAMES = {"microsoft.batch": "Microsoft.Batch", "microsoft.compute": "Microsoft.Compute",
                   "microsoft.resources": "Microsoft.Resources", "microsoft.network": "Microsoft.Network",
                   "microsoft.storage": "Microsoft.Storage"}


def _provider_key(sub: str, namespace: str) -> str:
    return f"{sub}/{namespace}".lower()


def set_provider_registration(ctx, sub: str, namespace: str, state: str) -> dict:
    """Seed/control: registrationState Registered | NotRegistered | Registering | Unregistered."""
    if state not in ("Registered", "NotRegistered", "Registering", "Unregistered"):
        raise ValueError(f"bad registrationState {state!r}")
    doc = {"subscription": sub, "namespace": _PROVIDER_NAMES.get(namespace.lower(), namespace),
           "registrationState": state, "_sim": {}}
    if state == "Registering":
        doc["_sim"]["registered_at"] = ctx.clock.now() + 60.0
    ctx.store.put("provider", _provider_key(sub, namespace), doc)
    return doc


def _advance_provider(ctx, doc: dict) -> dict:
    at = (doc.get("_sim") or {}).get("registered_at")
    if doc.get("registrationState") == "Registering" and at is not None and ctx.clock.now() >= at:
        doc["registrationState"] = "Registered"
    return doc


def provider_registration_state(ctx, sub: str, namespace: str) -> str:
    doc = ctx.store.get("provider", _provider_key(sub, namespace))
    if doc is not None:
        return doc["registrationState"]
    return "Registered" if namespace.lower() in _ALWAYS_REGISTERED else "NotRegistered"


def get_provider(ctx, sub: str, namespace: str) -> dict:
    """Providers_Get for /subscriptions/{sub}/providers/{namespace}."""
    ns = _PROVIDER_NAMES.get(namespace.lower(), namespace)
    state = provider_registration_state(ctx, sub, namespace)
    locations = [REGIONS[r] for r in ("westeurope", "northeurope", "eastus", "eastus2", "westus2", "uksouth",
                                      "swedencentral", "francecentral", "germanywestcentral")]
    return {
        "id": f"/subscriptions/{sub}/providers/{ns}",
        "namespace": ns,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [{"resourceType": t, "locations": locations, "apiVersions": ["2024-07-01"]}
                          for t in _PROVIDER_TYPES.get(namespace.lower(), [])],
    }


def register_provider(ctx, sub: str, namespace: str) -> dict:
    """Providers_Register: Registering, then Registered a minute (simulated) later."""
    if provider_registration_state(ctx, sub, namespace) != "Registered":
        set_provider_registration(ctx, sub, namespace, "Registering")
    return get_provider(ctx, sub, namespace)


# ---------------------------------------------------------------------------------------------------

def register(ctx) -> None:
    """Called by server.build_context: advancers for documents that move with simulated time."""
    ctx.store.register_advancer("snapshot", _advance_snapshot)
    ctx.store.register_advancer("image", advance_provisioning)
    ctx.store.register_advancer("provider", _advance_provider)
