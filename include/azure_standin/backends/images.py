"""Microsoft.Compute managed images (Images_CreateOrUpdate from snapshots or managed disks): resource state and
Azure's rules.

Documents: image (key: the lower-cased ARM id). `_sim` carries the lineage (base_image, purchase_plan, see
backends/disks.py) and `size_gb`, the total disk size behind the image, which drives replication time.
"""
from __future__ import annotations

import copy
from typing import Any

from ..core import timings
from ..core.errors import InvalidParameter, OperationNotAllowed, PropertyChangeNotAllowed, RequiredParameterMissing
from .arm_common import (
    T_DISK, T_IMAGE, T_SNAPSHOT, advance_provisioning, arm_id, check_location, delete_target, get_in_rg, id_is,
    list_in, lro_fault, require_rg, start_lro,
)
from .disks import disk_security_type


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
            raise InvalidParameter(
                f"The snapshot '{snap_ref}' referenced by '{path}.snapshot.id' does not exist.")
        state = src["properties"].get("provisioningState")
        if state != "Succeeded":
            raise InvalidParameter(
                f"The snapshot '{snap_ref}' referenced by '{path}.snapshot.id' is not ready: "
                f"its provisioningState is '{state}'.")
        return src, src["id"]
    if disk_ref:
        src = ctx.store.get("disk", disk_ref) if id_is(disk_ref, T_DISK) else None
        if src is None:
            raise InvalidParameter(
                f"The managed disk '{disk_ref}' referenced by '{path}.managedDisk.id' does not exist.")
        return src, src["id"]
    if entry.get("blobUri"):
        raise InvalidParameter(
            f"Images from blobUri are not supported by the local stand-in ('{path}.blobUri').")
    raise InvalidParameter(
        f"One of '{path}.snapshot', '{path}.managedDisk' or '{path}.blobUri' must be specified.")


def _refuse_secure_source(src: dict) -> None:
    """Managed images cannot capture Trusted Launch (or confidential) disks.

    Code and wording from Azure's answer to a capture of a Trusted Launch VM ("OperationNotAllowed : Creation of
    managed images are not supported for virtual machine with TrustedLaunch security type.", hashicorp/packer#13189);
    for a disk or snapshot source the wording is adapted and the HTTP status (409) is a guess.
    """
    kind = disk_security_type(src)
    if kind:
        label = "TrustedLaunch" if kind == "TrustedLaunch" else "ConfidentialVM"
        raise OperationNotAllowed(
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
        raise InvalidParameter(
            "Capturing an image from 'sourceVirtualMachine' is not supported by the local stand-in; "
            "use snapshots in 'storageProfile'.")
    if not sp:
        raise RequiredParameterMissing("storageProfile")
    os_disk = sp.get("osDisk")
    if not os_disk:
        raise RequiredParameterMissing("storageProfile.osDisk")
    if not os_disk.get("osType"):
        raise RequiredParameterMissing("osDisk.osType")
    if not os_disk.get("osState"):
        raise RequiredParameterMissing("osDisk.osState")
    if os_disk["osState"] not in ("Generalized", "Specialized"):
        raise InvalidParameter(
            f"The value '{os_disk['osState']}' of parameter 'osDisk.osState' is invalid.")
    luns = [d.get("lun") for d in sp.get("dataDisks") or []]
    if any(lun is None for lun in luns):
        raise RequiredParameterMissing("dataDisks.lun")
    if len(set(luns)) != len(luns):
        raise InvalidParameter(
            "Duplicated lun numbers have been detected in the input data disks. "
            "Lun number must be unique for each data disk.")
    if existing is not None:
        old = (existing["properties"]["storageProfile"]["osDisk"].get("snapshot") or {}).get("id", "")
        new = (os_disk.get("snapshot") or {}).get("id", "")
        if old.lower() != new.lower():
            # Follows CRP's PropertyChangeNotAllowed pattern (guessed property path).
            raise PropertyChangeNotAllowed("osDisk.snapshot.id")
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
    return get_in_rg(ctx, "image", T_IMAGE, sub, rg, name)


def list_images(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return list_in(ctx, "image", T_IMAGE, sub, rg)


def prepare_delete_image(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    return delete_target(ctx, "image", T_IMAGE, sub, rg, name)


def register(ctx) -> None:
    ctx.store.register_advancer("image", advance_provisioning)
