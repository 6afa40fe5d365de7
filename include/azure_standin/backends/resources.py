"""Microsoft.Resources: resource groups and resource-provider registration.

Documents: resource_group (key: the group's id, lower-cased), provider (key "{sub}/{namespace}", lower-cased;
`_sim.registered_at` is when a Registering provider turns Registered).
"""
from __future__ import annotations

from ..core.errors import InvalidResourceGroupLocation
from .arm_common import REGIONS, canonical_region, check_location, require_rg, rg_id

# ---------------------------------------------------------------------------------------------------
# resource groups (ResourceGroups_Get is arm_common.require_rg: every resource needs its group)
# ---------------------------------------------------------------------------------------------------

get_resource_group = require_rg


def resource_group_exists(ctx, sub: str, rg: str) -> bool:
    return ctx.store.get("resource_group", rg_id(sub, rg)) is not None


def put_resource_group(ctx, sub: str, rg: str, req: dict | None) -> tuple[dict, bool]:
    req = req or {}
    existing = ctx.store.get("resource_group", rg_id(sub, rg))
    if existing is not None:
        if req.get("location") and canonical_region(req["location"]) != existing["location"]:
            # ARM's wording for a location change of an existing group.
            raise InvalidResourceGroupLocation(
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
# resource providers
# ---------------------------------------------------------------------------------------------------

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


def register(ctx) -> None:
    ctx.store.register_advancer("provider", _advance_provider)
