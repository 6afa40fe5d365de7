"""Shared ARM helpers of the Microsoft.Compute / Microsoft.Batch backends (moto's `core` for this stand-in):
resource types and ids (built here, parsed with azure-mgmt-core's `parse_resource_id`), regions and ARM's location
check, the resource-group precondition every resource shares, tracked-resource reads and lists, and the records of
long-running creates (`_sim.lro`) that advancers finish as simulated time passes.

Private bookkeeping lives under `_sim` and never reaches the wire:
  _sim.lro        {"start", "done_at", "error"}: a create/update in flight (advance_provisioning finishes it)
  _sim.error      {"code", "message"}: why provisioningState is Failed (read by responses/arm_lro.py)
"""
from __future__ import annotations

import uuid

from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id

from ..core.errors import LocationNotAvailableForResourceType, LocationRequired, ResourceGroupNotFound, ResourceNotFound

# ---------------------------------------------------------------------------------------------------
# resource types, regions
# ---------------------------------------------------------------------------------------------------

T_VM = "Microsoft.Compute/virtualMachines"
T_VM_EXTENSION = "Microsoft.Compute/virtualMachines/extensions"
T_DISK = "Microsoft.Compute/disks"
T_SNAPSHOT = "Microsoft.Compute/snapshots"
T_IMAGE = "Microsoft.Compute/images"
T_GALLERY = "Microsoft.Compute/galleries"
T_GALLERY_IMAGE = "Microsoft.Compute/galleries/images"
T_GALLERY_IMAGE_VERSION = "Microsoft.Compute/galleries/images/versions"
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
        raise LocationRequired()
    loc = canonical_region(location)
    if loc not in REGIONS:
        raise LocationNotAvailableForResourceType(location, resource_type, [REGIONS[r] for r in sorted(REGIONS)])
    return loc


# ---------------------------------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------------------------------

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
    """An ARM resource id as {"subscription", "resource_group" (None at subscription scope), "namespace",
    "type": "Namespace/t1/t2" (the names between left out), "parent": "t1/n1/" (the path between namespace and the
    last type, "" for a top-level resource), "name": the last name}; None when it names no resource (parsing is
    case-insensitive for the fixed segments, as ARM's is; a trailing slash is ignored)."""
    if not isinstance(resource_id, str):
        return None
    rid = resource_id.strip().rstrip("/")
    if not rid or not is_valid_resource_id(rid):
        return None
    p = parse_resource_id(rid)
    if not p.get("namespace"):
        return None
    children = range(1, (p.get("last_child_num") or 0) + 1)
    types = [p["type"]] + [p[f"child_type_{i}"] for i in children]
    return {"subscription": p["subscription"], "resource_group": p.get("resource_group"),
            "namespace": p["namespace"], "type": "/".join([p["namespace"], *types]),
            "parent": p["resource_parent"], "names": [p["name"]] + [p[f"child_name_{i}"] for i in children],
            "name": p["resource_name"]}


def id_is(resource_id: str | None, rtype: str) -> dict | None:
    """parse_id(resource_id) when it names a resource of type `rtype` in a resource group (case-insensitive)."""
    p = parse_id(resource_id)
    if p and p["resource_group"] and p["type"].lower() == rtype.lower():
        return p
    return None


def new_uuid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------------------------------------------
# tracked resources: the resource-group precondition, reads, lists, deletes
# ---------------------------------------------------------------------------------------------------

def require_rg(ctx, sub: str, rg: str) -> dict:
    """The resource group (ResourceGroups_Get), or ARM's 404 ResourceGroupNotFound."""
    body = ctx.store.get("resource_group", rg_id(sub, rg))
    if body is None:
        raise ResourceGroupNotFound(rg)
    return body


def get_in_rg(ctx, kind: str, rtype: str, sub: str, rg: str, *names: str) -> dict:
    """The resource `names` of type `rtype` (store kind `kind`), or ARM's ResourceGroupNotFound / ResourceNotFound."""
    require_rg(ctx, sub, rg)
    body = ctx.store.get(kind, arm_id(sub, rg, rtype, *names))
    if body is None:
        raise ResourceNotFound(rtype, names[-1], rg)
    return body


def list_in(ctx, kind: str, rtype: str, sub: str, rg: str | None = None) -> list[dict]:
    """Resources of one type in a resource group, or in the whole subscription when rg is None."""
    if rg is not None:
        require_rg(ctx, sub, rg)
        return ctx.store.list(kind, f"{rg_id(sub, rg)}/providers/{rtype}/")
    return ctx.store.list(kind, f"/subscriptions/{sub}/")


def delete_target(ctx, kind: str, rtype: str, sub: str, rg: str, *names: str) -> tuple[str, str] | None:
    """(store key, location) of a resource a DELETE may remove; None when there is none (ARM answers 204)."""
    require_rg(ctx, sub, rg)
    body = ctx.store.get(kind, arm_id(sub, rg, rtype, *names))
    return None if body is None else (body["id"], body["location"])


# ---------------------------------------------------------------------------------------------------
# long-running creates
# ---------------------------------------------------------------------------------------------------

def start_lro(ctx, body: dict, state: str, duration: float, error: dict | None = None) -> None:
    """Put `body` into Creating/Updating; an advancer ends it Succeeded (or Failed with `error`)."""
    now = ctx.clock.now()
    body.setdefault("properties", {})["provisioningState"] = state
    sim = body.setdefault("_sim", {})
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
