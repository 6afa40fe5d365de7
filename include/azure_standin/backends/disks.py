"""Microsoft.Compute managed disks (read and delete; the seed makes them with their VMs) and snapshots
(Snapshots_CreateOrUpdate copies a disk or snapshot): resource state and Azure's rules.

Documents: disk, snapshot (keys: the lower-cased ARM ids). Lineage bookkeeping under `_sim`, carried from VM to
disk to snapshot to image to gallery image version so the gallery and Batch backends can check it:
  _sim.base_image    {"publisher", "offer", "sku", "version"}: the marketplace image at the root of the lineage
                     (VM imageReference -> disk creationData.imageReference -> snapshot -> image)
  _sim.purchase_plan {"name", "publisher", "product"} | None: the marketplace plan of that lineage

Error codes/messages are Azure's where a comment says verified; the rest follow Azure's patterns and say so.
"""
from __future__ import annotations

import copy
from typing import Any

from ..core import timings
from ..core.errors import BadRequest, InvalidParameter, NotFound, OperationNotAllowed, RequiredParameterMissing
from .arm_common import (
    T_DISK, T_SNAPSHOT, advance_provisioning, arm_id, canonical_region, check_location, delete_target, get_in_rg,
    id_is, list_in, lro_fault, lro_progress, new_uuid, parse_id, require_rg, start_lro,
)

# ---------------------------------------------------------------------------------------------------
# marketplace image references
# ---------------------------------------------------------------------------------------------------

_PLATFORM_IMAGE_TYPE = "microsoft.compute/locations/publishers/artifacttypes/offers/skus/versions"


def platform_image_id(sub: str, location: str, publisher: str, offer: str, sku: str, version: str) -> str:
    """The id Azure records in a marketplace-created disk's creationData.imageReference.id."""
    return (f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}/Publishers/{publisher}"
            f"/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions/{version}")


def parse_platform_image_id(image_id: str | None) -> dict | None:
    """{"publisher", "offer", "sku", "version"} of a platform image id; None for any other id."""
    p = parse_id(image_id)
    if not p or p["resource_group"] or p["type"].lower() != _PLATFORM_IMAGE_TYPE or p["names"][2].lower() != "vmimage":
        return None
    _, publisher, _, offer, sku, version = p["names"]
    return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}


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


def get_disk(ctx, sub: str, rg: str, name: str) -> dict:
    return get_in_rg(ctx, "disk", T_DISK, sub, rg, name)


def list_disks(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return list_in(ctx, "disk", T_DISK, sub, rg)


def prepare_delete_disk(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    """(store key, location) of a disk that may be deleted now; None when it does not exist."""
    require_rg(ctx, sub, rg)
    body = ctx.store.get("disk", disk_id(sub, rg, name))
    if body is None:
        return None
    if body.get("managedBy"):
        # Disk RP refuses to delete an attached disk (code verified; wording follows Azure's message).
        raise OperationNotAllowed(
            f"Disk {body['name']} is attached to VM {body['managedBy']}.")
    return body["id"], body["location"]


def disk_security_type(doc: dict | None) -> str | None:
    """`properties.securityProfile.securityType` of a disk or snapshot (None: a standard disk)."""
    return (((doc or {}).get("properties") or {}).get("securityProfile") or {}).get("securityType") or None


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
        raise RequiredParameterMissing("creationData")
    option = (cd.get("createOption") or "")
    if option.lower() != "copy":
        # Only copies of managed disks/snapshots are modelled here (guess at the wording).
        raise InvalidParameter(
            f"The value '{option}' of parameter 'creationData.createOption' is not supported "
            "by this service: only 'Copy' is.")
    source_id = cd.get("sourceResourceId")
    if not source_id:
        raise RequiredParameterMissing("sourceResourceId")
    if existing is not None:
        old = existing["properties"]["creationData"].get("sourceResourceId", "")
        if old.lower() != source_id.lower():
            # Disk RP's answer (verified for sourceUri; same pattern for sourceResourceId).
            raise BadRequest(
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
        raise NotFound(f"Resource {src_name} is not found.")
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
    return get_in_rg(ctx, "snapshot", T_SNAPSHOT, sub, rg, name)


def list_snapshots(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return list_in(ctx, "snapshot", T_SNAPSHOT, sub, rg)


def prepare_delete_snapshot(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    return delete_target(ctx, "snapshot", T_SNAPSHOT, sub, rg, name)


def register(ctx) -> None:
    ctx.store.register_advancer("snapshot", _advance_snapshot)
