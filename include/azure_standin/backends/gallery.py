"""Azure Compute Gallery (Shared Image Gallery): galleries, image definitions, image versions and their
per-region replication.

Store kinds (keys: lower-cased ARM ids): gallery, gallery_image, gallery_image_version.

Replication model (a pure function of simulated time, see `_region_status`):
- every target region of a version has a record in `_sim.regions` {key, name, replicas, start,
  duration, fail_at, details}; duration = timings.region_replication(image size, replicas, index);
- a region is Replicating (progress 0..99) until start+duration, then Completed (100);
- a `replication_failed` fault (match: region = canonical region name, name = version name) decided at
  creation makes the region end Failed half-way, with `details`; a `replication_slow` fault (same match) adds
  `extra_seconds` to that region's duration (a region far from the source, or busy);
- a target region stored as Standard_ZRS (or Premium_ZRS) in a region without availability zones
  (`resource_skus.region_zones`) ends Failed early in its copy (`_zrs_unavailable`);
- the version's create operation covers replication: provisioningState reads Creating (and the LRO is not done)
  until EVERY target region is Completed (and at least timings.version_create() has passed), then Succeeded; it
  reads Failed (the LRO ends Failed, with `_sim.error`) as soon as one region has failed. Sources, in
  `_advance_version`'s docstring;
- PUT of an existing version may change publishingProfile (targetRegions, replica counts,
  excludeFromLatest, endOfLifeDate): Updating until every region is Completed, then Succeeded; regions removed
  disappear, regions added (or whose replica count / storage type changed) replicate again from zero, the others
  keep their state. Removing a failed region and adding it back is the workaround for a failed replication.
- replacing the source of an existing version -> 409 PropertyChangeNotAllowed (Azure's, verified).
- PATCH (GalleryImageVersions_Update) merges publishingProfile / safetyProfile into the version (promotion by
  `excludeFromLatest: false`, `endOfLifeDate`, target regions); `safetyProfile.allowDeletionOfReplicatedLocations`
  false refuses dropping a region whose replication completed (a Failed or still replicating one may go),
  `blockDeletionBeforeEndOfLife` refuses a delete before `endOfLifeDate`.

Region names on the wire are Azure display names ("West Europe"), as the real service reports
them in targetRegions and replicationStatus.summary; `version_for_pool` keys them canonically
("westeurope").
"""
from __future__ import annotations

import copy
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from ..core.errors import (
    CannotDeleteResource, Conflict, InvalidParameter, InvalidResourceLocation, LocationNotAvailableForResourceType,
    NotFound, OperationNotAllowed, ParentResourceNotFound, PropertyChangeNotAllowed, RequiredParameterMissing,
    ResourceNotFound,
)
from ..core import timings
from . import arm_common as arm
from .disks import disk_security_type
from .resource_skus import region_zones

T_GALLERY, T_DEF, T_VERSION = arm.T_GALLERY, arm.T_GALLERY_IMAGE, arm.T_GALLERY_IMAGE_VERSION

INT32_MAX = 2_147_483_647

NESTED_DELETE_MESSAGE = "Can not delete resource before nested resources are deleted."


# ---------------------------------------------------------------------------------------------------
# ids and shared helpers
# ---------------------------------------------------------------------------------------------------

def gallery_id(sub: str, rg: str, gallery: str) -> str:
    return arm.arm_id(sub, rg, T_GALLERY, gallery)


def definition_id(sub: str, rg: str, gallery: str, definition: str) -> str:
    return arm.arm_id(sub, rg, T_DEF, gallery, definition)


def version_id(sub: str, rg: str, gallery: str, definition: str, version: str) -> str:
    return arm.arm_id(sub, rg, T_VERSION, gallery, definition, version)


def _require_gallery(ctx, sub: str, rg: str, gallery: str, *, as_parent: bool = False) -> dict:
    arm.require_rg(ctx, sub, rg)
    body = ctx.store.get("gallery", gallery_id(sub, rg, gallery))
    if body is None:
        raise ParentResourceNotFound(gallery) if as_parent else ResourceNotFound(T_GALLERY, gallery, rg)
    return body


def _require_definition(ctx, sub: str, rg: str, gallery: str, definition: str, *, as_parent: bool = False) -> dict:
    _require_gallery(ctx, sub, rg, gallery, as_parent=True)
    body = ctx.store.get("gallery_image", definition_id(sub, rg, gallery, definition))
    if body is None:
        if as_parent:
            raise ParentResourceNotFound(f"{gallery}/{definition}")
        raise ResourceNotFound(f"{T_GALLERY}/{gallery}/images", definition, rg)
    return body


# ---------------------------------------------------------------------------------------------------
# galleries
# ---------------------------------------------------------------------------------------------------

_GALLERY_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._]{0,78}[A-Za-z0-9])?$")
_ENTITY_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?$")
_ASSET_RE = re.compile(r"^[A-Za-z0-9._-]+$")


def create_gallery(ctx, sub: str, rg: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """Galleries_CreateOrUpdate: (body, created)."""
    arm.require_rg(ctx, sub, rg)
    req = req or {}
    if not _GALLERY_NAME_RE.match(name):
        # Message verified (Azure's gallery troubleshooting page); code is a guess.
        raise InvalidParameter(
            "Gallery name is invalid. Allowed characters are English alphanumeric characters, with "
            "underscores, and periods allowed in the middle, up to 80 characters total. All other "
            "special characters, including dashes, are disallowed.")
    gid = gallery_id(sub, rg, name)
    existing = ctx.store.get("gallery", gid)
    rprops = req.get("properties") or {}
    if existing is not None:
        if req.get("location") and arm.canonical_region(req["location"]) != existing["location"]:
            raise InvalidResourceLocation(
                f"The resource '{name}' already exists in location '{existing['location']}' in resource "
                f"group '{rg}'. A resource with the same name cannot be created in location "
                f"'{arm.canonical_region(req['location'])}'. Please select a new resource name.")
        if "description" in rprops:
            existing["properties"]["description"] = rprops.get("description")
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
        arm.start_lro(ctx, existing, "Updating", timings.SMALL_CREATE)
        ctx.store.put("gallery", gid, existing)
        return existing, False
    loc = arm.check_location(req.get("location"), T_GALLERY)
    props: dict[str, Any] = {"identifier": {"uniqueName": f"{sub}-{name.upper()}"}}
    if rprops.get("description") is not None:
        props["description"] = rprops["description"]
    body = {"id": gid, "name": name, "type": T_GALLERY, "location": loc, "tags": req.get("tags") or {},
            "properties": props, "_sim": {}}
    arm.start_lro(ctx, body, "Creating", timings.SMALL_CREATE, arm.lro_fault(ctx, "galleries", name))
    ctx.store.put("gallery", gid, body)
    return body, True


def get_gallery(ctx, sub: str, rg: str, name: str) -> dict:
    return _require_gallery(ctx, sub, rg, name)


def list_galleries(ctx, sub: str, rg: str | None = None) -> list[dict]:
    if rg is not None:
        arm.require_rg(ctx, sub, rg)
        return ctx.store.list("gallery", f"{arm.rg_id(sub, rg)}/providers/{T_GALLERY}/")
    return [g for g in ctx.store.list("gallery", f"/subscriptions/{sub}/")]


def prepare_delete_gallery(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    arm.require_rg(ctx, sub, rg)
    body = ctx.store.get("gallery", gallery_id(sub, rg, name))
    if body is None:
        return None
    if ctx.store.list("gallery_image", body["id"] + "/images/"):
        # Verified: 409 CannotDeleteResource with ARM's nested-resources message.
        raise CannotDeleteResource(NESTED_DELETE_MESSAGE)
    return body["id"], body["location"]


# ---------------------------------------------------------------------------------------------------
# image definitions
# ---------------------------------------------------------------------------------------------------

_ASSET_LIMITS = {"publisher": 128, "offer": 64, "sku": 64}


def _check_identifier(ident: dict | None) -> dict:
    if not ident:
        raise RequiredParameterMissing("galleryImage.properties.identifier")
    out = {}
    for key, limit in _ASSET_LIMITS.items():
        val = ident.get(key)
        if not val or not _ASSET_RE.match(val) or val.endswith(".") or len(val) > limit:
            # Message verified (troubleshooting page); code is a guess.
            raise InvalidParameter(
                f"Asset name galleryImage.properties.identifier.{key} is not valid. It cannot be empty. "
                "Allowed characters are uppercase or lowercase letters, digits, hyphen(-), period (.), "
                "underscore (_). Names are not allowed to end with period(.). The length of the name "
                f"cannot exceed {limit} characters.")
        out[key] = val
    return out


def create_definition(ctx, sub: str, rg: str, gallery: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """GalleryImages_CreateOrUpdate: (body, created)."""
    gal = _require_gallery(ctx, sub, rg, gallery, as_parent=True)
    req = req or {}
    if not _ENTITY_NAME_RE.match(name):
        raise InvalidParameter(
            f"The entity name '{name}' is invalid according to its validation rule: "
            r"^[^_\W][\w-._]{0,79}(?<![-.])$.")
    rprops = req.get("properties") or {}
    for key in ("osType", "osState"):
        if not rprops.get(key):
            raise RequiredParameterMissing(f"galleryImage.properties.{key}")
    if rprops["osType"] not in ("Linux", "Windows"):
        raise InvalidParameter(
            f"The value '{rprops['osType']}' of parameter 'galleryImage.properties.osType' is invalid.")
    if rprops["osState"] not in ("Generalized", "Specialized"):
        raise InvalidParameter(
            f"The value '{rprops['osState']}' of parameter 'galleryImage.properties.osState' is invalid.")
    hv = rprops.get("hyperVGeneration") or "V1"
    if hv not in ("V1", "V2"):
        raise InvalidParameter(
            f"The value '{hv}' of parameter 'galleryImage.properties.hyperVGeneration' is invalid.")
    ident = _check_identifier(rprops.get("identifier"))
    _check_security_feature(rprops.get("features"), hv)
    did = definition_id(sub, rg, gallery, name)
    existing = ctx.store.get("gallery_image", did)
    for other in ctx.store.list("gallery_image", gal["id"] + "/images/"):
        oid = other["properties"]["identifier"]
        if other["id"].lower() != did.lower() and all(oid[k].lower() == ident[k].lower() for k in _ASSET_LIMITS):
            # Wording verified from Azure support material ("OperationNotAllowed HTTP 409").
            raise OperationNotAllowed(
                f"Gallery image: '{other['name']}' identified by (publisher: '{ident['publisher']}', "
                f"offer: '{ident['offer']}', sku: '{ident['sku']}') already exists. Choose a different "
                "publisher, offer, sku combination.")
    if existing is not None:
        ep = existing["properties"]
        for key, new in (("osType", rprops["osType"]), ("osState", rprops["osState"]), ("hyperVGeneration", hv)):
            if (ep.get(key) or "").lower() != new.lower():
                raise PropertyChangeNotAllowed(f"galleryImage.properties.{key}")
        for key in _ASSET_LIMITS:
            if ep["identifier"][key].lower() != ident[key].lower():
                raise PropertyChangeNotAllowed(f"galleryImage.properties.identifier.{key}")
        for key in ("description", "eula", "endOfLifeDate", "recommended", "disallowed", "features",
                    "privacyStatementUri", "releaseNoteUri"):
            if key in rprops:
                ep[key] = copy.deepcopy(rprops[key])
        if "tags" in req:
            existing["tags"] = req.get("tags") or {}
        arm.start_lro(ctx, existing, "Updating", timings.SMALL_CREATE)
        ctx.store.put("gallery_image", did, existing)
        return existing, False
    loc = arm.check_location(req.get("location") or gal["location"], T_DEF)
    props: dict[str, Any] = {
        "osType": rprops["osType"], "osState": rprops["osState"], "hyperVGeneration": hv,
        "identifier": ident, "architecture": rprops.get("architecture") or "x64",
    }
    for key in ("description", "eula", "endOfLifeDate", "recommended", "disallowed", "features",
                "privacyStatementUri", "releaseNoteUri", "purchasePlan"):
        if rprops.get(key) is not None:
            props[key] = copy.deepcopy(rprops[key])
    body = {"id": did, "name": name, "type": T_DEF, "location": loc, "tags": req.get("tags") or {},
            "properties": props, "_sim": {}}
    arm.start_lro(ctx, body, "Creating", timings.SMALL_CREATE, arm.lro_fault(ctx, "gallery_images", name))
    ctx.store.put("gallery_image", did, body)
    return body, True


def get_definition(ctx, sub: str, rg: str, gallery: str, name: str) -> dict:
    return _require_definition(ctx, sub, rg, gallery, name)


def list_definitions(ctx, sub: str, rg: str, gallery: str) -> list[dict]:
    gal = _require_gallery(ctx, sub, rg, gallery, as_parent=True)
    return ctx.store.list("gallery_image", gal["id"] + "/images/")


def prepare_delete_definition(ctx, sub: str, rg: str, gallery: str, name: str) -> tuple[str, str] | None:
    _require_gallery(ctx, sub, rg, gallery, as_parent=True)
    body = ctx.store.get("gallery_image", definition_id(sub, rg, gallery, name))
    if body is None:
        return None
    if ctx.store.list("gallery_image_version", body["id"] + "/versions/"):
        raise CannotDeleteResource(NESTED_DELETE_MESSAGE)
    return body["id"], body["location"]


# ---------------------------------------------------------------------------------------------------
# image versions
# ---------------------------------------------------------------------------------------------------

def valid_version_name(name: str) -> bool:
    parts = name.split(".")
    return len(parts) == 3 and all(p.isdigit() and p.isascii() and int(p) <= INT32_MAX for p in parts)


def _version_key(name: str) -> tuple[int, int, int]:
    return tuple(int(p) for p in name.split("."))  # type: ignore[return-value]


def _check_count(value: Any, param: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"The value '{value}' of parameter '{param}' is invalid.") from None
    if not 1 <= n <= 100:
        # Message pattern verified (troubleshooting page); the parameter path is ours.
        raise InvalidParameter(
            f"The value {n} of parameter '{param}' is out of range. The value must be between 1 and 100, "
            "inclusive.")
    return n


def _parse_date(value: str) -> float | None:
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _resolve_source(ctx, sp: dict, location: str, definition: dict) -> dict:
    """What the version is made from: {"kind", "id", "os_type", "os_state", "hyper_v", "os_gb",
    "data": [(lun, gb)], "base_image", "purchase_plan", "plan_checked"}; raises Azure's errors."""
    source = sp.get("source") or {}
    src_id = source.get("id")
    vm_ref = source.get("virtualMachineId")
    os_img = (sp.get("osDiskImage") or {}).get("source") or {}
    disk_sources = [os_img.get("id")] + [((d.get("source") or {}).get("id")) for d in sp.get("dataDiskImages") or []]
    given = [x for x in (src_id, vm_ref) if x] + ([os_img.get("id")] if os_img.get("id") else [])
    if (src_id and vm_ref) or not given:
        # Message verified (troubleshooting page); code is a guess.
        raise InvalidParameter(
            "The gallery artifact version source can only be specified either directly under "
            "storageProfile or within individual OS or data disks. One and only one source type "
            "(user image, snapshot, disk, virtual machine) can be provided.")
    defp = definition["properties"]
    ref = src_id or vm_ref
    if ref and arm.id_is(ref, arm.T_IMAGE):
        img = ctx.store.get("image", ref)
        if img is None or img["location"] != location:
            # Verified wording ("NotFound: Source Image '<>' is not found. ...").
            raise NotFound(
                f"Source Image '{ref}' is not found. Please check source image exists, and is in the same "
                "region as gallery image version being created.")
        state = img["properties"].get("provisioningState")
        if state != "Succeeded":
            # guess
            raise Conflict(
                f"Source Image '{ref}' is not ready to be used as a source: its provisioningState is '{state}'.")
        osd = img["properties"]["storageProfile"]["osDisk"]
        sim = img.get("_sim") or {}
        return {"kind": "image", "id": img["id"], "os_type": osd["osType"], "os_state": osd["osState"],
                "hyper_v": img["properties"].get("hyperVGeneration", "V1"), "os_gb": int(osd.get("diskSizeGB") or 0),
                "data": [(d["lun"], int(d.get("diskSizeGB") or 0)) for d in img["properties"]["storageProfile"].get("dataDisks", [])],
                "base_image": copy.deepcopy(sim.get("base_image")), "purchase_plan": copy.deepcopy(sim.get("purchase_plan")),
                "plan_checked": False}
    if ref and arm.id_is(ref, arm.T_VM):
        vm = ctx.store.get("vm", ref)
        if vm is None or vm["location"] != location:
            # pattern of the image case; wording for VMs is a guess
            raise NotFound(
                f"Source {ref} is not found. Please check source exists, and is in the same region as "
                "gallery image version being created.")
        vsp = vm["properties"]["storageProfile"]
        if not (vsp["osDisk"].get("managedDisk") or {}).get("id") or any(
                not (d.get("managedDisk") or {}).get("id") for d in vsp.get("dataDisks", [])):
            # message verified, code a guess
            raise InvalidParameter(
                f"Source virtual machine {vm['id']} must be created from Managed Disks.")
        sim = vm.get("_sim") or {}
        generalized = sim.get("power_state") == "generalized" or sim.get("generalized")
        return {"kind": "vm", "id": vm["id"], "os_type": vsp["osDisk"].get("osType", "Linux"),
                "os_state": "Generalized" if generalized else "Specialized",
                "hyper_v": sim.get("hyper_v_generation", "V1"), "os_gb": int(vsp["osDisk"].get("diskSizeGB") or 0),
                "data": [(d["lun"], int(d.get("diskSizeGB") or 0)) for d in vsp.get("dataDisks", [])],
                "base_image": copy.deepcopy(sim.get("base_image")), "purchase_plan": copy.deepcopy(sim.get("purchase_plan")),
                "plan_checked": True}
    if ref and arm.id_is(ref, T_VERSION):
        ver = ctx.store.get("gallery_image_version", ref)
        if ver is None:
            raise NotFound(
                f"Source {ref} is not found. Please check source exists, and is in the same region as "
                "gallery image version being created.")
        vsim = ver.get("_sim") or {}
        vdef = ctx.store.get("gallery_image", ref.rsplit("/versions/", 1)[0]) or definition
        return {"kind": "version", "id": ver["id"], "os_type": vdef["properties"]["osType"],
                "os_state": vdef["properties"]["osState"], "hyper_v": vdef["properties"].get("hyperVGeneration", "V1"),
                "os_gb": int(vsim.get("os_gb") or 0), "data": [tuple(x) for x in vsim.get("data") or []],
                "base_image": copy.deepcopy(vsim.get("base_image")),
                "purchase_plan": copy.deepcopy(vsim.get("purchase_plan")), "plan_checked": False}
    if ref:
        # message verified, code a guess
        raise InvalidParameter(
            f"The source id: {ref} must either be a managed image, virtual machine or another gallery image version")
    # Disks/snapshots per disk (osDiskImage.source.id, dataDiskImages[].source.id).
    ids = [x for x in disk_sources if x]
    if len({x.lower() for x in ids}) != len(ids):
        raise InvalidParameter(
            "Duplicated source ids are found in the input disks. Source id should be unique for each disk.")
    luns = [d.get("lun") for d in sp.get("dataDiskImages") or []]
    if len(set(luns)) != len(luns):
        raise InvalidParameter(
            "Duplicated lun numbers have been detected in the input data disks. Lun number must be "
            "unique for each data disk.")

    def disk_or_snapshot(rid: str) -> dict:
        kind = "snapshot" if arm.id_is(rid, arm.T_SNAPSHOT) else "disk" if arm.id_is(rid, arm.T_DISK) else None
        if kind is None:
            raise InvalidParameter(f"The source id: {rid} must be a managed disk or snapshot.")
        doc = ctx.store.get(kind, rid)
        if doc is None or doc["location"] != location:
            raise NotFound(f"Source was not found: {rid}. Please make sure the source exists.")
        if doc["properties"].get("provisioningState") != "Succeeded":
            # guess
            raise Conflict(
                f"Source {rid} is not ready to be used as a source: its provisioningState is "
                f"'{doc['properties'].get('provisioningState')}'.")
        return doc

    osdoc = disk_or_snapshot(os_img["id"])
    data = []
    for d in sp.get("dataDiskImages") or []:
        did = (d.get("source") or {}).get("id")
        if did:
            data.append((d["lun"], int(disk_or_snapshot(did)["properties"].get("diskSizeGB") or 0)))
    sim = osdoc.get("_sim") or {}
    return {"kind": "disks", "id": osdoc["id"], "os_type": osdoc["properties"].get("osType") or defp["osType"],
            "os_state": defp["osState"], "hyper_v": osdoc["properties"].get("hyperVGeneration") or "V1",
            "os_gb": int(osdoc["properties"].get("diskSizeGB") or 0), "data": data,
            "base_image": copy.deepcopy(sim.get("base_image")), "purchase_plan": copy.deepcopy(sim.get("purchase_plan")),
            "plan_checked": True}


def _check_source_against_definition(src: dict, definition: dict) -> None:
    defp = definition["properties"]
    rid = src["id"]
    if src["os_type"].lower() != defp["osType"].lower():
        # message verified (troubleshooting page), code a guess
        raise InvalidParameter(
            f"The resource with id '{rid}' has a different OS type ['{src['os_type']}'] than the parent "
            f"gallery image OS type generation ['{defp['osType']}']")
    if src["os_state"].lower() != defp["osState"].lower():
        raise InvalidParameter(
            f"Cannot create Gallery Image Version from: {rid} since the OS State in the parent gallery "
            f"image ('{defp['osState']}') is not '{src['os_state']}'.")
    if src["plan_checked"] and src.get("purchase_plan") and not defp.get("purchasePlan"):
        plan = json.dumps({k: src["purchase_plan"].get(k) for k in ("name", "publisher", "product")},
                          separators=(",", ":"))
        raise InvalidParameter(
            f"The resource with id '{rid}' has a different plan ['{plan}'] than the parent gallery image "
            "plan ['null'].")


# -- security types (Trusted Launch) -----------------------------------------------------------------------------

# Definition features SecurityType values (GalleryRP spec, GalleryImageFeature; azure-cli#26632 for their meaning).
TRUSTED_LAUNCH_CAPABLE = frozenset({"trustedlaunchsupported", "trustedlaunch", "trustedlaunchandconfidentialvmsupported"})
CONFIDENTIAL_CAPABLE = frozenset({"confidentialvmsupported", "confidentialvm", "trustedlaunchandconfidentialvmsupported"})
SECURITY_TYPE_VALUES = TRUSTED_LAUNCH_CAPABLE | CONFIDENTIAL_CAPABLE | {"standard"}


def definition_security_type(defn: dict | None) -> str | None:
    """The value of a definition's `features` entry named SecurityType, or None."""
    for f in ((defn or {}).get("properties") or {}).get("features") or []:
        if str(f.get("name") or "").lower() == "securitytype":
            return f.get("value")
    return None


def _check_security_feature(features: Any, hyper_v: str) -> None:
    """A SecurityType feature must be a known value, and Trusted Launch / confidential ones need Gen2.

    The values are the spec's; the codes and wording of both refusals are guesses (InvalidParameter, as Compute
    answers other bad definition properties).
    """
    for f in features or []:
        if str((f or {}).get("name") or "").lower() != "securitytype":
            continue
        value = str(f.get("value") or "")
        if value.lower() not in SECURITY_TYPE_VALUES:
            raise InvalidParameter(
                f"The value '{value}' of feature 'SecurityType' in 'galleryImage.properties.features' is "
                "invalid.")
        if value.lower() != "standard" and hyper_v != "V2":
            raise InvalidParameter(
                f"The feature 'SecurityType' with value '{value}' is only supported for images with "
                "'hyperVGeneration' 'V2'.")


def _source_security_type(ctx, src: dict) -> str | None:
    """securityType of what a version is made from: the OS disk/snapshot's, the VM's, or the source version's
    definition feature (managed images cannot be Trusted Launch: compute refuses to make them)."""
    if src["kind"] == "disks":
        return disk_security_type(ctx.store.get("snapshot" if arm.id_is(src["id"], arm.T_SNAPSHOT) else "disk",
                                                  src["id"]))
    if src["kind"] == "vm":
        vm = ctx.store.get("vm", src["id"]) or {}
        kind = ((vm.get("properties") or {}).get("securityProfile") or {}).get("securityType")
        return None if not kind or kind.lower() == "standard" else kind
    if src["kind"] == "version":
        value = definition_security_type(ctx.store.get("gallery_image", src["id"].rsplit("/versions/", 1)[0]))
        return "TrustedLaunch" if value and value.lower() == "trustedlaunch" else None
    return None


def _check_source_security(ctx, src: dict, definition: dict) -> None:
    """A Trusted Launch (or confidential) source needs a definition whose SecurityType feature supports it.

    Guess: the code (InvalidParameter) and wording; Azure documents the rule ("TrustedLaunch VMs can only be captured
    into an image definition with SecurityType TrustedLaunch or TrustedLaunchSupported") but no public report shows
    the error body.
    """
    kind = _source_security_type(ctx, src)
    if not kind:
        return
    have = definition_security_type(definition)
    capable = CONFIDENTIAL_CAPABLE if kind.lower().startswith("confidentialvm") else TRUSTED_LAUNCH_CAPABLE
    if have and have.lower() in capable:
        return
    raise InvalidParameter(
        f"The source '{src['id']}' has security type '{kind}', which is not supported by the gallery image "
        f"'{definition['name']}' (features SecurityType: {have or 'not set'}). Use a gallery image whose "
        "features include SecurityType 'TrustedLaunchSupported' or 'TrustedLaunch'.")


def _generation_conflict(src: dict, definition: dict) -> dict | None:
    """The error a version create ends with when its source's Hyper-V generation differs from the definition's.

    Verified: Azure accepts the PUT and the operation fails at once (StartTime == EndTime) with code Conflict and
    this message (".'" closing it): MicrosoftDocs/azure-docs#118774 (2024, New-AzGalleryImageVersion: "Long running
    operation failed with status 'Failed' ... ErrorCode: Conflict", a V2 VM into a V1 definition); the same code
    and message from Packer (hashicorp/packer-plugin-azure#42, 2019: V1 image into V2), Azure/az-hop#1044 (2022,
    az sig image-version create: V2 image into V1) and confidential-containers/cloud-api-adaptor#928 (2023).
    """
    want = definition["properties"].get("hyperVGeneration") or "V1"
    if src["hyper_v"].lower() == want.lower():
        return None
    return {"code": "Conflict",
            "message": f"The resource with id '{src['id']}' has a different Hypervisor generation ['{src['hyper_v']}'] "
                       f"than the parent gallery image Hypervisor generation ['{want}']."}


def _target_regions(req_pp: dict, location: str, name_for_errors: str) -> list[dict]:
    """Validated target regions as [{key, name, replicas, storageAccountType, excludeFromLatest, extra}]."""
    default_replicas = _check_count(req_pp.get("replicaCount", 1),
                                    "galleryImageVersion.properties.publishingProfile.replicaCount")
    default_sat = req_pp.get("storageAccountType") or "Standard_LRS"
    raw = req_pp.get("targetRegions")
    if not raw:
        raw = [{"name": location}]
    out: list[dict] = []
    seen: set[str] = set()
    for tr in raw:
        name = tr.get("name")
        if not name:
            raise RequiredParameterMissing("galleryImageVersion.properties.publishingProfile.targetRegions.name")
        key = arm.canonical_region(name)
        if key not in arm.REGIONS:
            raise LocationNotAvailableForResourceType(name, T_GALLERY, [arm.REGIONS[r] for r in sorted(arm.REGIONS)])
        if key in seen:
            # message verified, code a guess
            raise InvalidParameter(
                "Duplicate regions are not allowed in target publishing regions.")
        seen.add(key)
        replicas = default_replicas
        if tr.get("regionalReplicaCount") is not None:
            replicas = _check_count(tr["regionalReplicaCount"],
                                    "galleryImageVersion.properties.publishingProfile.targetRegions.regionalReplicaCount")
        extra = {k: copy.deepcopy(v) for k, v in tr.items()
                 if k not in ("name", "regionalReplicaCount", "storageAccountType", "excludeFromLatest")}
        out.append({"key": key, "name": arm.region_display_name(key), "replicas": replicas,
                    "storageAccountType": tr.get("storageAccountType") or default_sat,
                    "excludeFromLatest": bool(tr.get("excludeFromLatest", False)), "extra": extra})
    if location not in seen:
        # Message verified (troubleshooting page); code a guess.
        raise InvalidParameter(
            f"Gallery image version publishing profile regions '{', '.join(r['name'] for r in out)}' "
            f"must contain the location of image version '{location}'.")
    return out


def _start_region(ctx, version_name: str, tr: dict, size_gb: int, index: int, now: float) -> dict:
    duration = timings.region_replication(size_gb, tr["replicas"], index)
    rec = {"key": tr["key"], "name": tr["name"], "replicas": tr["replicas"],
           "storageAccountType": tr["storageAccountType"], "start": now, "duration": duration,
           "fail_at": None, "details": ""}
    # Replication time differs per region in Azure (distance from the source region, the regional storage's load),
    # and nothing in the API sets it: a `replication_slow` fault adds `extra_seconds` (simulated) to one region's
    # copy, so a test can make one region finish well after another. The figure is the test's, not Azure's.
    slow = ctx.faults.take("replication_slow", region=tr["key"], name=version_name)
    if slow is not None:
        rec["duration"] += max(float(slow.get("extra_seconds") or 0.0), 0.0)
    zrs = _zrs_unavailable(tr)
    if zrs is not None:
        rec["fail_at"] = now + ZRS_FAIL_SHARE * rec["duration"]
        rec["details"] = zrs
        return rec
    fault = ctx.faults.take("replication_failed", region=tr["key"], name=version_name)
    if fault is not None:
        reason = fault.get("message") or "The replication job failed with an internal error. Please retry."
        rec["fail_at"] = now + 0.5 * duration
        rec["details"] = f"Replication failed in this region due to '{reason}'"
    return rec


# Zone-redundant storage account types: their replicas need a region with availability zones.
ZRS_TYPES = frozenset({"standard_zrs", "premium_zrs"})
# How far into a region's copy a ZRS replica in a region without zones fails (a guess: Azure reports no timing).
ZRS_FAIL_SHARE = 0.1


def _zrs_unavailable(tr: dict) -> str | None:
    """The replication error `details` of a target region stored as ZRS in a region without availability zones,
    None when the region can hold it.

    The rule: ZRS exists only in regions with availability zones (Microsoft's "Azure regions with availability zone
    support" and Storage's "zone-redundant storage" pages); a gallery image version with a Standard_ZRS region in
    westus failed to build (Azure/avdaccelerator#289, 2023: "My build failed b/c I picked a region that didn't
    support ZRS"), and the gallery docs offer ZRS "in regions that support Availability Zones". Zones come from
    the Resource SKUs table (`resource_skus.region_zones`), as preflight reads them. That the failure shows as the
    region's replicationStatus Failed (not a 400 on the PUT) is what the issue reports; the wording of `details` is a
    guess modelled on Storage's RedundancyConfigurationNotAvailableInRegion message (Esri/arcgis-gitops#160:
    "... redundancy configuration - Sku: Standard_ZRS, Kind: StorageV2 - not available in selected Region -
    westus"): no public report quotes the gallery's own text.
    """
    sat = str(tr.get("storageAccountType") or "")
    if sat.lower() not in ZRS_TYPES or region_zones(tr["key"]):
        return None
    return (f"Replication failed in this region due to 'The storage account type {sat} is not available in region "
            f"{tr['key']}: zone-redundant storage needs a region with availability zones. Use Standard_LRS or "
            f"Premium_LRS for this target region.'")


def _published_profile(ctx, targets: list[dict], req_pp: dict, old_pp: dict | None) -> dict:
    pp: dict[str, Any] = {
        "targetRegions": [{"name": t["name"], "regionalReplicaCount": t["replicas"],
                           "storageAccountType": t["storageAccountType"], "excludeFromLatest": t["excludeFromLatest"],
                           **t["extra"]} for t in targets],
        "replicaCount": int(req_pp.get("replicaCount", (old_pp or {}).get("replicaCount", 1))),
        "excludeFromLatest": bool(req_pp.get("excludeFromLatest", (old_pp or {}).get("excludeFromLatest", False))),
        "publishedDate": (old_pp or {}).get("publishedDate") or ctx.clock.iso(ctx.clock.now()),
        "storageAccountType": req_pp.get("storageAccountType") or (old_pp or {}).get("storageAccountType") or "Standard_LRS",
        "replicationMode": req_pp.get("replicationMode") or (old_pp or {}).get("replicationMode") or "Full",
    }
    eol = req_pp.get("endOfLifeDate", (old_pp or {}).get("endOfLifeDate"))
    if eol:
        pp["endOfLifeDate"] = eol
    for key in ("targetExtendedLocations", "targetExtendedLocationsEnabled"):
        if key in req_pp:
            pp[key] = copy.deepcopy(req_pp[key])
    return pp


def _check_eol(ctx, req_pp: dict) -> None:
    """Azure's endOfLifeDate checks. Messages verified (gallery troubleshooting page: "Could not convert string to
    DateTimeOffset", "EndOfLifeDate must be set to a future date."); status 400 and code InvalidParameter are a
    guess (Compute's code for the other invalid version properties; no public report shows the body).

    "Future" is judged against the wall clock, not the simulated clock: clients derive the date from their own
    calendar (the pipeline from the build day), while simulated time runs ahead of it by design (scale 60 puts it
    60 days ahead after a day of uptime), which would refuse every date a real Azure accepts.
    """
    eol = req_pp.get("endOfLifeDate")
    if eol:
        ts = _parse_date(eol)
        if ts is None:
            raise InvalidParameter(
                f"Could not convert string to DateTimeOffset: {eol}. Path 'properties.publishingProfile.endOfLifeDate'")
        if ts <= time.time():
            raise InvalidParameter("EndOfLifeDate must be set to a future date.")


def create_version(ctx, sub: str, rg: str, gallery: str, definition: str, name: str,
                   req: dict | None) -> tuple[dict, bool]:
    """GalleryImageVersions_CreateOrUpdate: (body, created)."""
    if not valid_version_name(name):
        # Verified wording.
        raise InvalidParameter(
            "The image version name is invalid. The image version name should follow "
            "Major(int).Minor(int).Patch(int) format, for e.g: 1.0.0, 2018.12.1 etc.")
    defn = _require_definition(ctx, sub, rg, gallery, definition, as_parent=True)
    req = req or {}
    rprops = req.get("properties") or {}
    sp = rprops.get("storageProfile") or {}
    req_pp = rprops.get("publishingProfile") or {}
    vid = version_id(sub, rg, gallery, definition, name)
    existing = ctx.store.get("gallery_image_version", vid)
    if existing is not None:
        return _update_version(ctx, existing, req, sp, req_pp), False
    location = arm.check_location(req.get("location"), T_VERSION)
    _check_eol(ctx, req_pp)
    src = _resolve_source(ctx, sp, location, defn)
    _check_source_against_definition(src, defn)
    _check_source_security(ctx, src, defn)
    targets = _target_regions(req_pp, location, name)
    size_gb = src["os_gb"] + sum(gb for _, gb in src["data"])
    now = ctx.clock.now()
    regions = [_start_region(ctx, name, t, size_gb, i, now) for i, t in enumerate(targets)]
    source_out: dict[str, Any] = {}
    if sp.get("source", {}).get("virtualMachineId"):
        source_out = {"virtualMachineId": sp["source"]["virtualMachineId"]}
    elif sp.get("source", {}).get("id"):
        source_out = {"id": sp["source"]["id"]}
    storage: dict[str, Any] = {}
    if source_out:
        storage["source"] = source_out
    os_img: dict[str, Any] = {"sizeInGB": src["os_gb"], "hostCaching": "ReadWrite"}
    if (sp.get("osDiskImage") or {}).get("source"):
        os_img["source"] = copy.deepcopy(sp["osDiskImage"]["source"])
    storage["osDiskImage"] = os_img
    storage["dataDiskImages"] = [{"lun": lun, "sizeInGB": gb, "hostCaching": "None"} for lun, gb in sorted(src["data"])]
    props: dict[str, Any] = {
        "publishingProfile": _published_profile(ctx, targets, req_pp, None),
        "storageProfile": storage,
    }
    if rprops.get("safetyProfile") is not None:
        props["safetyProfile"] = copy.deepcopy(rprops["safetyProfile"])
    body: dict[str, Any] = {
        "id": vid, "name": name, "type": T_VERSION, "location": location, "tags": req.get("tags") or {},
        "properties": props,
        "_sim": {
            "regions": regions,
            "source_kind": src["kind"], "source_id": src["id"],
            "base_image": src["base_image"], "purchase_plan": src["purchase_plan"],
            "os_gb": src["os_gb"], "data": [list(x) for x in src["data"]], "size_gb": size_gb,
        },
    }
    conflict = _generation_conflict(src, defn)
    if conflict is not None:  # Azure fails the operation at once (see _generation_conflict)
        arm.start_lro(ctx, body, "Creating", 1.0, conflict)
    else:
        arm.start_lro(ctx, body, "Creating", timings.version_create(), arm.lro_fault(ctx, "versions", name))
    ctx.store.put("gallery_image_version", vid, body)
    return body, True


def _update_version(ctx, existing: dict, req: dict, sp: dict, req_pp: dict) -> dict:
    """PUT on an existing version: only publishingProfile (and tags, safetyProfile) may change."""
    esp = existing["properties"]["storageProfile"]
    old_src = esp.get("source") or {}
    new_src = sp.get("source") or {}
    for key in ("id", "virtualMachineId"):
        if new_src.get(key) and (old_src.get(key) or "").lower() != new_src[key].lower():
            # Verified for source.id; the virtualMachineId path follows the same pattern.
            raise PropertyChangeNotAllowed(f"galleryImageVersion.properties.storageProfile.source.{key}")
    new_os = ((sp.get("osDiskImage") or {}).get("source") or {}).get("id")
    old_os = ((esp.get("osDiskImage") or {}).get("source") or {}).get("id")
    if new_os and (old_os or "").lower() != new_os.lower():
        raise PropertyChangeNotAllowed("galleryImageVersion.properties.storageProfile.osDiskImage.source.id")
    old_luns = {d["lun"] for d in esp.get("dataDiskImages") or []}
    for d in sp.get("dataDiskImages") or []:
        if d.get("lun") not in old_luns:
            # message verified, code a guess
            raise InvalidParameter(
                "Adding new Data Disks or changing the LUN of a Data Disk in an existing Image is not allowed.")
    _check_eol(ctx, req_pp)
    sim = existing["_sim"]
    old_pp = existing["properties"]["publishingProfile"]
    if req_pp:
        if not req_pp.get("targetRegions"):
            req_pp = dict(req_pp)
            req_pp["targetRegions"] = copy.deepcopy(old_pp["targetRegions"])
        targets = _target_regions(req_pp, existing["location"], existing["name"])
        old = {r["key"]: r for r in sim["regions"]}
        _check_region_removal(ctx, existing, old, {t["key"] for t in targets})
        now = ctx.clock.now()
        regions = []
        fresh = 0
        for t in targets:
            prev = old.get(t["key"])
            if prev is not None and prev["replicas"] == t["replicas"] and \
                    prev.get("storageAccountType") == t["storageAccountType"]:
                regions.append(prev)
            else:
                regions.append(_start_region(ctx, existing["name"], t, sim["size_gb"], fresh, now))
                fresh += 1
        sim["regions"] = regions
        existing["properties"]["publishingProfile"] = _published_profile(ctx, targets, req_pp, old_pp)
    rprops = req.get("properties") or {}
    if rprops.get("safetyProfile") is not None:
        existing["properties"]["safetyProfile"] = copy.deepcopy(rprops["safetyProfile"])
    if "tags" in req:
        existing["tags"] = req.get("tags") or {}
    existing["properties"].pop("replicationStatus", None)
    arm.start_lro(ctx, existing, "Updating", timings.version_create())
    ctx.store.put("gallery_image_version", existing["id"], existing)
    return existing


def update_version(ctx, sub: str, rg: str, gallery: str, definition: str, name: str,
                   req: dict | None) -> tuple[dict, bool]:
    """GalleryImageVersions_Update (PATCH): the given properties change, the others stay.

    publishingProfile is merged key by key (so `{"excludeFromLatest": false}` promotes a version and keeps its
    target regions and their replicas; a targetRegions list replaces the list), safetyProfile likewise; the rules
    of a PUT on an existing version apply (source changes refused, endOfLifeDate in the future, region removal
    guarded by safetyProfile). The update runs as an LRO (Updating -> Succeeded), answering 200 as
    azure-mgmt-compute 39's begin_update expects. A missing version is 404 ResourceNotFound (a PATCH never creates).
    """
    _require_definition(ctx, sub, rg, gallery, definition, as_parent=True)
    existing = ctx.store.get("gallery_image_version", version_id(sub, rg, gallery, definition, name))
    if existing is None:
        raise ResourceNotFound(f"{T_GALLERY}/{gallery}/images/{definition}/versions", name, rg)
    req = copy.deepcopy(req or {})
    rprops = req.setdefault("properties", {})
    # publishingProfile keys left out keep their values in _update_version / _published_profile
    if rprops.get("safetyProfile") is not None:
        merged_sp = dict(existing["properties"].get("safetyProfile") or {})
        merged_sp.update(rprops["safetyProfile"])
        rprops["safetyProfile"] = merged_sp
    return _update_version(ctx, existing, req, rprops.get("storageProfile") or {},
                           rprops.get("publishingProfile") or {}), False


def _check_region_removal(ctx, version: dict, old: dict, new_keys: set) -> None:
    """safetyProfile.allowDeletionOfReplicatedLocations false: a region the version is replicated to cannot be
    dropped from its target regions (GalleryArtifactSafetyProfileBase in the GalleryRP spec / azure-mgmt-compute 39:
    "Indicates whether or not removing this Gallery Image Version from replicated regions is allowed"). Only a
    region whose replication completed counts as "replicated": one still replicating or Failed may be dropped,
    which keeps the remove/re-add retry of a failed region working (a guess from the spec's wording; no doc or
    issue says how the service treats a Failed region). Left out, removal is allowed (a guess at the service
    default). The 409 OperationNotAllowed and its wording are a guess."""
    allowed = (version["properties"].get("safetyProfile") or {}).get("allowDeletionOfReplicatedLocations")
    if allowed is not False:
        return
    removed = sorted(old[k]["name"] for k in old
                     if k not in new_keys and _region_status(ctx, version, old[k])["state"] == "Completed")
    if removed:
        raise OperationNotAllowed(
            f"Removing the replicated region(s) {', '.join(removed)} from gallery image version '{version['name']}' "
            "is not allowed: its safetyProfile.allowDeletionOfReplicatedLocations is false. Set it to true first.")


def _check_block_deletion(version: dict) -> None:
    """safetyProfile.blockDeletionBeforeEndOfLife true: the version cannot be deleted while its endOfLifeDate is
    in the future (GalleryImageVersionSafetyProfile in the GalleryRP spec / azure-mgmt-compute 39: "Indicates
    whether or not the deletion is blocked for this Gallery Image Version if its End Of Life has not expired").
    Without an endOfLifeDate nothing is blocked (a guess). Judged against the wall clock, like _check_eol. The 409
    OperationNotAllowed and its wording are a guess."""
    props = version.get("properties") or {}
    if not (props.get("safetyProfile") or {}).get("blockDeletionBeforeEndOfLife"):
        return
    eol = (props.get("publishingProfile") or {}).get("endOfLifeDate")
    ts = _parse_date(eol) if eol else None
    if ts is not None and ts > time.time():
        raise OperationNotAllowed(
            f"Gallery image version '{version['name']}' cannot be deleted before its end of life ({eol}): its "
            "safetyProfile.blockDeletionBeforeEndOfLife is true.")


def _region_status(ctx, body: dict, rec: dict) -> dict:
    """{"region", "state", "details", "progress"} of one region at the current simulated time."""
    now = ctx.clock.now()
    lro = (body.get("_sim") or {}).get("lro") or {}
    if lro.get("error") and now >= lro["done_at"] and rec["start"] <= lro["start"]:
        return {"region": rec["name"], "state": "Failed", "details": lro["error"]["message"],
                "progress": int(min(99, 100 * (lro["done_at"] - rec["start"]) / rec["duration"]))}
    if rec.get("fail_at") is not None and now >= rec["fail_at"]:
        return {"region": rec["name"], "state": "Failed", "details": rec["details"],
                "progress": int(100 * (rec["fail_at"] - rec["start"]) / rec["duration"])}
    elapsed = now - rec["start"]
    if elapsed >= rec["duration"]:
        return {"region": rec["name"], "state": "Completed", "details": "", "progress": 100}
    if elapsed < 0:
        return {"region": rec["name"], "state": "Unknown", "details": "", "progress": 0}
    return {"region": rec["name"], "state": "Replicating", "details": "",
            "progress": int(min(99, 100 * elapsed / rec["duration"]))}


def replication_status(ctx, body: dict) -> dict:
    summary = [_region_status(ctx, body, r) for r in (body.get("_sim") or {}).get("regions", [])]
    states = {s["state"] for s in summary}
    if not summary:
        agg = "Unknown"
    elif "Failed" in states:
        agg = "Failed"
    elif states == {"Completed"}:
        agg = "Completed"
    else:
        agg = "InProgress"
    return {"aggregatedState": agg, "summary": summary}


def _advance_version(ctx, body: dict) -> dict:
    """Finish a version's create/update operation: it covers replication to every target region.

    Creating/Updating until every region is Completed (and timings.version_create() has passed), then Succeeded;
    Failed as soon as one region has failed. Why the operation includes replication:
    - ARM's review of the first gallery spec (Azure/azure-rest-api-specs#3080, 2018): "when a PUT on a imageVersion
      happens, the PUT will not be complete till the replication in all regions have completed";
    - GalleryImageVersions_CreateOrUpdate is a long-running operation, and azure-mgmt-compute 39's
      begin_create_or_update (generated from the spec) polls it with a plain ARMPolling, no lro_options, i.e. until
      the terminal provisioningState or Azure-AsyncOperation status: whatever ends the operation ends the SDK's wait
      (the spec's own x-ms-long-running-operation-options were not read here: inferred from the generated poller);
    - what users see: the CLI's create blocks for the whole replication (Azure/azure-cli#7363 asks for --no-wait
      because "the replication will get long enough (hours)"; #16632: `az sig image-version update` "still updating
      after one day" across 34 regions; #15539: an update ends after 2 h 17 min with "Gallery replication jobs failed
      in one or more regions"); Packer's `shared_image_gallery_timeout` (default 60m) bounds its wait for the version
      and must be raised for slow replication (hashicorp/packer#8802); Terraform's azurerm_shared_image_version
      "waiting for the image replication to complete" (hashicorp/terraform-provider-azurerm#3517).
    Failed at the first failed region (rather than once the others end too) is a guess; the error message is Azure's
    (azure-cli#15539, region names canonical as there); the code ReplicationFailed is a guess.
    """
    props = body.get("properties") or {}
    lro = (body.get("_sim") or {}).get("lro")
    if not lro or props.get("provisioningState") not in ("Creating", "Updating"):
        return body
    now = ctx.clock.now()
    if lro.get("error"):  # the operation itself failed (generation conflict, an lro_failed fault)
        return arm.advance_provisioning(ctx, body)
    summary = replication_status(ctx, body)["summary"]
    by_name = {r["name"]: r["key"] for r in body["_sim"].get("regions") or []}
    failed = [s for s in summary if s["state"] == "Failed"]
    if failed:
        props["provisioningState"] = "Failed"
        listed = ", ".join(f"{{region:{by_name.get(s['region'], s['region'])}, detail:{s['details']}}}"
                           for s in failed)
        body["_sim"]["error"] = {
            "code": "ReplicationFailed",  # guess
            "message": "Gallery replication jobs failed in one or more regions. The failing regions' details are as "
                       f"follows: '{listed}'. If retry does not work, then please do an update by removing the "
                       "failed regions and update again by adding them back.",
        }
    elif now >= lro["done_at"] and all(s["state"] == "Completed" for s in summary):
        props["provisioningState"] = "Succeeded"
    return body


def get_version(ctx, sub: str, rg: str, gallery: str, definition: str, name: str,
                expand: str | None = None) -> dict:
    _require_definition(ctx, sub, rg, gallery, definition, as_parent=True)
    body = ctx.store.get("gallery_image_version", version_id(sub, rg, gallery, definition, name))
    if body is None:
        raise ResourceNotFound(f"{T_GALLERY}/{gallery}/images/{definition}/versions", name, rg)
    if expand and "replicationstatus" in expand.lower():
        body["properties"]["replicationStatus"] = replication_status(ctx, body)
    return body


def list_versions(ctx, sub: str, rg: str, gallery: str, definition: str) -> list[dict]:
    defn = _require_definition(ctx, sub, rg, gallery, definition, as_parent=True)
    return ctx.store.list("gallery_image_version", defn["id"] + "/versions/")


def prepare_delete_version(ctx, sub: str, rg: str, gallery: str, definition: str, name: str) -> tuple[str, str] | None:
    _require_definition(ctx, sub, rg, gallery, definition, as_parent=True)
    body = ctx.store.get("gallery_image_version", version_id(sub, rg, gallery, definition, name))
    if body is None:
        return None
    _check_block_deletion(body)
    return body["id"], body["location"]


# ---------------------------------------------------------------------------------------------------
# for the Batch backend
# ---------------------------------------------------------------------------------------------------

def latest_version_id(ctx, definition_resource_id: str) -> str | None:
    """What a version-less gallery image reference floats to: the highest version whose
    publishingProfile.excludeFromLatest is false and that is not Failed (per-region
    excludeFromLatest is not modelled)."""
    best = None
    for v in ctx.store.list("gallery_image_version", definition_resource_id.rstrip("/") + "/versions/"):
        pp = v["properties"]["publishingProfile"]
        if pp.get("excludeFromLatest") or v["properties"].get("provisioningState") in ("Failed", "Deleting"):
            continue
        if not valid_version_name(v["name"]):
            continue
        if best is None or _version_key(v["name"]) > _version_key(best["name"]):
            best = v
    return best["id"] if best else None


def version_for_pool(ctx, version_resource_id: str) -> dict | None:
    """Everything the Batch backend needs to judge a pool's virtualMachineImageId, or None if no such
    version exists. A definition id (no /versions/...) resolves to its latest version.

    {"id", "name", "location", "provisioning_state", "os_type", "os_state", "hyper_v_generation",
     "definition_identifier": {publisher, offer, sku}, "base_image": {publisher, offer, sku, version} | None,
     "purchase_plan": {...} | None, "regions": {canonical region: Unknown|Replicating|Completed|Failed},
     "replica_counts": {canonical region: n}, "exclude_from_latest": bool, "end_of_life_date": str | None,
     "security_type": the definition's SecurityType feature value | None}
    """
    p = arm.parse_id(version_resource_id)
    if p is None or not p["resource_group"]:
        return None
    t = p["type"].lower()
    if t == T_DEF.lower():
        vid = latest_version_id(ctx, version_resource_id)
        if vid is None:
            return None
        version_resource_id = vid
    elif t != T_VERSION.lower():
        return None
    body = ctx.store.get("gallery_image_version", version_resource_id)
    if body is None:
        return None
    defn = ctx.store.get("gallery_image", body["id"].rsplit("/versions/", 1)[0])
    if defn is None:
        return None
    dp = defn["properties"]
    status = replication_status(ctx, body)
    by_name = {r["name"]: r for r in body["_sim"]["regions"]}
    regions = {}
    counts = {}
    for s in status["summary"]:
        key = by_name[s["region"]]["key"]
        regions[key] = s["state"]
        counts[key] = by_name[s["region"]]["replicas"]
    pp = body["properties"]["publishingProfile"]
    return {
        "id": body["id"],
        "name": body["name"],
        "location": body["location"],
        "provisioning_state": body["properties"].get("provisioningState"),
        "os_type": dp["osType"],
        "os_state": dp["osState"],
        "hyper_v_generation": dp.get("hyperVGeneration", "V1"),
        "definition_identifier": dict(dp["identifier"]),
        "base_image": copy.deepcopy(body["_sim"].get("base_image")),
        "purchase_plan": copy.deepcopy(body["_sim"].get("purchase_plan")),
        "regions": regions,
        "replica_counts": counts,
        "exclude_from_latest": bool(pp.get("excludeFromLatest")),
        "end_of_life_date": pp.get("endOfLifeDate"),
        "security_type": definition_security_type(defn),
    }


def register(ctx) -> None:
    ctx.store.register_advancer("gallery", arm.advance_provisioning)
    ctx.store.register_advancer("gallery_image", arm.advance_provisioning)
    ctx.store.register_advancer("gallery_image_version", _advance_version)
