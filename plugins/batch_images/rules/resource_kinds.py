"""The ARM resource kinds this project reads and writes: one row per type, for the hook and the waiters.

A row names the type (ARM's spelling), the label a person reads in wait messages ("image version"), the
API version :meth:`~batch_images.hooks.arm.ArmComputeHook.arm_get` sends for it, and the operations group
of azure-mgmt-compute's ``ComputeManagementClient`` that serves it (``None``: no typed SDK operations; read
it with ``arm_get``). The hook's typed calls, its API-version lookup and the ARM waiters' labels all come
from :data:`RESOURCE_KINDS`, so a new kind is one new row.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ids
from .errors import InvalidInput


@dataclass(frozen=True)
class ResourceKind:
    """One ARM resource type: ``resource_type`` (e.g. ``Microsoft.Compute/galleries/images``), ``label``
    (``"image definition"``), ``api_version`` (``"2026-03-03"``), ``sdk_operations`` (attribute of the
    compute client, e.g. ``"gallery_images"``, or None)."""

    resource_type: str
    label: str
    api_version: str
    sdk_operations: str | None = None


RESOURCE_KINDS: dict[str, ResourceKind] = {k.resource_type.lower(): k for k in (
    ResourceKind(ids.SNAPSHOT, "snapshot", "2026-03-02", "snapshots"),
    ResourceKind(ids.DISK, "disk", "2026-03-02", "disks"),
    ResourceKind(ids.IMAGE, "managed image", "2026-04-01", "images"),
    ResourceKind(ids.VIRTUAL_MACHINE, "virtual machine", "2026-04-01", "virtual_machines"),
    ResourceKind(ids.GALLERY, "gallery", "2026-03-03", "galleries"),
    ResourceKind(ids.GALLERY_IMAGE, "image definition", "2026-03-03", "gallery_images"),
    ResourceKind(ids.GALLERY_IMAGE_VERSION, "image version", "2026-03-03", "gallery_image_versions"),
    ResourceKind(ids.BATCH_ACCOUNT, "Batch account", "2024-07-01"),
    # A build VM's NIC (made and deleted with the VM; no Network SDK: read with arm_get).
    ResourceKind(ids.NETWORK_INTERFACE, "network interface", "2024-05-01"),
)}

# Provider-level reads (``/subscriptions/{sub}/providers/{namespace}``: the registration state), keyed by
# the lower-cased namespace.
PROVIDER_API_VERSIONS: dict[str, str] = {"microsoft.batch": "2021-04-01"}


def kind_of(resource_type: str) -> ResourceKind | None:
    """The row of ``resource_type`` (any casing), or None for a type this project does not know."""
    return RESOURCE_KINDS.get(resource_type.lower())


def label_of(resource_id: str) -> str:
    """What a person calls the resource an id names: ``"image version"``, ``"snapshot"``; the ARM type for
    an unknown kind, ``"resource"`` for a string that is not an ARM id."""
    try:
        arm_id = ids.parse_arm_id(resource_id, "resource_id")
    except InvalidInput:
        return "resource"
    kind = kind_of(arm_id.resource_type)
    return kind.label if kind else arm_id.resource_type


def api_version_for(path: str) -> str | None:
    """The API version for an ARM resource id or a ``/subscriptions/{sub}/providers/{namespace}`` path;
    None when the kind is unknown."""
    try:
        arm_id = ids.parse_arm_id(path, "resource_id")
    except InvalidInput:
        segments = path.strip("/").split("/")
        if len(segments) == 4 and segments[2].lower() == "providers":
            return PROVIDER_API_VERSIONS.get(segments[3].lower())
        return None
    kind = kind_of(arm_id.resource_type)
    return kind.api_version if kind else None
