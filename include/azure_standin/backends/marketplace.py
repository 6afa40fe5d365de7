"""Microsoft.Compute marketplace (platform) images: publishers / offers / skus / versions, the bases a build VM starts
from. Read-only on the ARM wire (VirtualMachineImages_List and _Get); the seed and the control API publish versions.

Documents: vmimage (key ``publisher/offer/sku/version`` lower-cased). A version is offered in every region the
stand-in knows (Azure publishes the common bases everywhere; per-region availability is not modelled).

Rules and shapes (azure-rest-api-specs, Compute ``virtualMachineImage.json``; azure-mgmt-compute's
``virtual_machine_images.list(location, publisher_name, offer, skus, expand=, top=, orderby=)`` and ``.get``):
- List answers a bare JSON array of ``{location, name, id}`` (VirtualMachineImageResource), ``$orderby=name desc``
  first by name *as text* (so ``8.10`` sorts before ``8.9``: Azure/azure-rest-api-specs#30142,
  ansible-collections/azure#1667), ``$top`` N. The spec has no ``$filter`` on this operation. Without
  ``$orderby`` the stand-in answers in version order (the parts as numbers; Azure's default order is a guess).
- Get answers ``properties``: ``osDiskImage {operatingSystem, sizeInGb}``, ``dataDiskImages``, ``hyperVGeneration``,
  ``architecture``, ``features`` (e.g. ``SecurityType``), ``plan`` for an image sold with a purchase plan,
  ``automaticOSUpgradeProperties``, ``imageDeprecationStatus``.
- ``features`` (VirtualMachineImageFeature {name, value} in the spec; azure-mgmt-compute 39's
  ``VirtualMachineImage.features``): ``SecurityType`` is ``TrustedLaunchSupported`` (standard or Trusted Launch VMs),
  ``TrustedLaunchAndConfidentialVmSupported``, ``ConfidentialVmSupported``, or ``TrustedLaunch``: an image that only
  makes Trusted Launch VMs (backends/vms.py refuses a standard VM from it, errors.TrustedLaunchRequired). Gen1 images
  carry no SecurityType (Trusted Launch needs Gen2, azure-cli#17599).
- Unknown publisher / offer / sku / version: 404 ``NotFound`` "Artifact: VMImage was not found." (verified, see
  errors.ArtifactNotFound). ``latest`` is resolved by clients from the list (az vm image show does); a VM PUT accepts
  it (backends/vms.py resolves it here).
"""
from __future__ import annotations

import re
from typing import Any

from ..core.errors import ArtifactNotFound
from .arm_common import REGIONS, canonical_region
from .disks import platform_image_id

KIND = "vmimage"


def _key(publisher: str, offer: str, sku: str, version: str = "") -> str:
    return "/".join(p.lower() for p in (publisher, offer, sku, version))


def version_key(version: str) -> tuple:
    """Sort key of a marketplace version: its dotted parts as numbers (text parts after numbers)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.]", version))


def publish_version(ctx, publisher: str, offer: str, sku: str, version: str, *, os_type: str = "Linux",
                    hyper_v_generation: str = "V2", os_disk_gb: int = 30, data_disks_gb: list[int] | None = None,
                    plan: dict | None = None, security_type: str | None = "TrustedLaunchSupported",
                    architecture: str = "x64") -> dict:
    """Store (or replace) a marketplace image version; returns its document. ``plan`` {name, publisher, product}
    marks an image sold with a purchase plan (Batch refuses those as a custom image's base); ``security_type`` is its
    ``SecurityType`` feature (Gen2 only; ``TrustedLaunch``: a Trusted-Launch-only base)."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){2,3}", version or ""):
        raise ValueError(f"a marketplace version is 3 or 4 dotted integers, not {version!r}")
    features = [{"name": "IsAcceleratedNetworkSupported", "value": "True"},
                {"name": "DiskControllerTypes", "value": "SCSI, NVMe"}]
    if security_type and hyper_v_generation == "V2":
        features.insert(0, {"name": "SecurityType", "value": security_type})
    props: dict[str, Any] = {
        # sizeInGb / sizeInBytes: not in the spec's OSDiskImage, but Azure's answers carry them (az vm image show).
        "osDiskImage": {"operatingSystem": os_type, "sizeInBytes": int(os_disk_gb) * 1024 ** 3 + 512,
                        "sizeInGb": int(os_disk_gb)},
        "dataDiskImages": [{"lun": lun} for lun, _ in enumerate(data_disks_gb or [])],
        "hyperVGeneration": hyper_v_generation,
        "architecture": architecture,
        "features": features,
        "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
        "imageDeprecationStatus": {"imageState": "Active"},
    }
    if plan:
        props["plan"] = {"publisher": plan["publisher"], "name": plan["name"], "product": plan["product"]}
    doc = {"publisher": publisher, "offer": offer, "sku": sku, "name": version, "properties": props,
           "_sim": {"published_at": ctx.clock.now()}}
    ctx.store.put(KIND, _key(publisher, offer, sku, version), doc)
    return doc


def image_security_type(doc: dict) -> str | None:
    """The version's ``SecurityType`` feature value (e.g. ``TrustedLaunch``), or None."""
    for feature in doc["properties"].get("features") or []:
        if str(feature.get("name", "")).lower() == "securitytype":
            return feature.get("value")
    return None


def _versions(ctx, location: str, publisher: str, offer: str, sku: str) -> list[dict]:
    """The versions of publisher/offer/sku, oldest first; 404 NotFound when the region, sku, offer or publisher is
    unknown (Azure answers the same for each)."""
    if canonical_region(location) not in REGIONS:
        raise ArtifactNotFound()
    docs = ctx.store.list(KIND, _key(publisher, offer, sku))
    if not docs:
        raise ArtifactNotFound()
    return sorted(docs, key=lambda d: version_key(d["name"]))


def _resource(sub: str, location: str, doc: dict) -> dict:
    loc = canonical_region(location)
    return {"location": loc, "name": doc["name"],
            "id": platform_image_id(sub, loc, doc["publisher"], doc["offer"], doc["sku"], doc["name"])}


def list_versions(ctx, sub: str, location: str, publisher: str, offer: str, sku: str, *,
                  top: int | None = None, orderby: str | None = None) -> list[dict]:
    """VirtualMachineImages_List: [{location, name, id}], in version order, or by name as text, descending, with
    ``orderby`` ``name desc``."""
    docs = _versions(ctx, location, publisher, offer, sku)
    if orderby and orderby.strip().lower().split() == ["name", "desc"]:
        docs = sorted(docs, key=lambda d: d["name"], reverse=True)  # text order, as ARM (see the module docstring)
    if top is not None:
        docs = docs[:max(0, int(top))]
    return [_resource(sub, location, d) for d in docs]


def resolve(ctx, location: str, publisher: str, offer: str, sku: str, version: str) -> dict:
    """The document of an exact version, or of the newest one for ``latest`` (case-insensitive); 404 NotFound."""
    docs = _versions(ctx, location, publisher, offer, sku)
    if version.lower() == "latest":
        return docs[-1]
    for doc in docs:
        if doc["name"] == version:
            return doc
    raise ArtifactNotFound()


def get_version(ctx, sub: str, location: str, publisher: str, offer: str, sku: str, version: str) -> dict:
    """VirtualMachineImages_Get: {location, name, id, properties}. ``latest`` is not an exact version: 404 (guess:
    clients resolve it from the list)."""
    if version.lower() == "latest":
        raise ArtifactNotFound()
    doc = resolve(ctx, location, publisher, offer, sku, version)
    return {**_resource(sub, location, doc), "properties": doc["properties"]}
