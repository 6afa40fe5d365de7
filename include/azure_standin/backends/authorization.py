"""Azure RBAC (Microsoft.Authorization): role definitions, role assignments, and the check every ARM and Batch
data-plane request made with an Entra ID token goes through when enforcement is on.

Rules, from Microsoft Learn's Azure RBAC pages (learn.microsoft.com/azure/role-based-access-control/...):
- "overview" / "scope-overview": an assignment at a scope applies to that scope and every scope below it
  (management group > subscription > resource group > resource, and a resource's child resources).
- "role-definitions": ``Actions`` may use ``*`` anywhere ("Microsoft.Compute/*", "*/read",
  "Microsoft.Compute/galleries/*/read"); "NotActions ... are subtracted from the Actions" of the same permission
  entry (not a deny); ``DataActions`` / ``NotDataActions`` do the same for data operations; the effective rights
  are the union over every assignment that applies. Operation strings are case-insensitive.
- Custom roles carry ``assignableScopes``: an assignment is allowed only at or below one of them.
- Deny assignments, conditions (ABAC), PIM, management groups and groups as principals are not modelled.

Built-in roles: ids, actions and data actions copied from Microsoft's built-in roles reference (the page per role
is named beside it). Kinds: ``role_definition`` (custom roles; key the definition's GUID) and ``role_assignment``
(key the assignment's full id, lower-cased). Enforcement is a switch (``enforcing`` / ``set_enforce``): off by
default, so the stand-in behaves as before unless a test, the CLI (``--rbac``) or the control API turns it on.
"""
from __future__ import annotations

import re
import uuid
from functools import lru_cache

from ..core.errors import (
    AuthorizationFailed, AuthorizationFailure, InvalidRoleAssignmentScope, LinkedAuthorizationFailed,
    RoleAssignmentExists, RoleAssignmentNotFound, RoleDefinitionDoesNotExist, RoleDefinitionNotFound,
)

_PRIV = "learn.microsoft.com/azure/role-based-access-control/built-in-roles/privileged"
_GENERAL = "learn.microsoft.com/azure/role-based-access-control/built-in-roles/general"
_COMPUTE = "learn.microsoft.com/azure/role-based-access-control/built-in-roles/compute"
_NETWORK = "learn.microsoft.com/azure/role-based-access-control/built-in-roles/networking"
# Disk Snapshot Contributor: the pre-split built-in-roles page (MicrosoftDocs/azure-docs
# articles/role-based-access-control/built-in-roles.md), same role id.
_BUILTIN_ROLES_PAGE = "learn.microsoft.com/azure/role-based-access-control/built-in-roles"


def _builtin(guid, name, description, actions, not_actions=(), data_actions=(), not_data_actions=(), source=""):
    return {"name": guid, "roleName": name, "description": description, "source": source,
            "permissions": [{"actions": list(actions), "notActions": list(not_actions),
                             "dataActions": list(data_actions), "notDataActions": list(not_data_actions)}]}


_DEPLOY_READ = ("Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read")

BUILTIN_ROLES: dict[str, dict] = {r["name"]: r for r in [
    _builtin("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", "Grants full access to manage all resources, including "
          "the ability to assign roles in Azure RBAC.", ["*"], source=_PRIV),
    _builtin("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", "Grants full access to manage all resources, but "
          "does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image "
          "galleries.", ["*"],
          ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
           "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
           "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
           "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
           "Microsoft.Resources/deploymentStacks/manageDenySetting/action", "Microsoft.Subscription/cancel/action",
           "Microsoft.Subscription/enable/action"], source=_PRIV),
    _builtin("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "View all resources, but does not allow you to make any "
          "changes.", ["*/read"], source=_GENERAL),
    _builtin("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator", "Lets you manage user access to Azure "
          "resources.", ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], source=_PRIV),
    _builtin("9980e02c-c2be-4d73-94e8-173b1dc7cf3c", "Virtual Machine Contributor", "Lets you manage virtual machines, "
          "but not access to them, and not the virtual network or storage account they're connected to.",
          ["Microsoft.Authorization/*/read", "Microsoft.Compute/availabilitySets/*", "Microsoft.Compute/locations/*",
           "Microsoft.Compute/virtualMachines/*", "Microsoft.Compute/virtualMachineScaleSets/*",
           "Microsoft.Compute/cloudServices/*", "Microsoft.Compute/disks/write", "Microsoft.Compute/disks/read",
           "Microsoft.Compute/disks/delete", "Microsoft.DevTestLab/schedules/*", "Microsoft.Insights/alertRules/*",
           "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
           "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
           "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
           "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
           "Microsoft.Network/loadBalancers/probes/join/action", "Microsoft.Network/loadBalancers/read",
           "Microsoft.Network/locations/*", "Microsoft.Network/networkInterfaces/*",
           "Microsoft.Network/networkSecurityGroups/join/action", "Microsoft.Network/networkSecurityGroups/read",
           "Microsoft.Network/publicIPAddresses/join/action", "Microsoft.Network/publicIPAddresses/read",
           "Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/join/action",
           "Microsoft.RecoveryServices/locations/*",
           "Microsoft.RecoveryServices/Vaults/backupFabrics/backupProtectionIntent/write",
           "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/*/read",
           "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/read",
           "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/protectedItems/write",
           "Microsoft.RecoveryServices/Vaults/backupPolicies/read",
           "Microsoft.RecoveryServices/Vaults/backupPolicies/write", "Microsoft.RecoveryServices/Vaults/read",
           "Microsoft.RecoveryServices/Vaults/usages/read", "Microsoft.RecoveryServices/Vaults/write",
           "Microsoft.ResourceHealth/availabilityStatuses/read", "Microsoft.Resources/deployments/*",
           "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.SerialConsole/serialPorts/connect/action",
           "Microsoft.SqlVirtualMachine/*", "Microsoft.Storage/storageAccounts/listKeys/action",
           "Microsoft.Storage/storageAccounts/read", "Microsoft.Support/*"], source=_BUILTIN_ROLES_PAGE),
    _builtin("7efff54f-a5b4-42b5-a1c5-5411624893ce", "Disk Snapshot Contributor", "Provides permission to backup vault to "
          "manage disk snapshots.",
          ["Microsoft.Authorization/*/read", "Microsoft.Resources/subscriptions/resourceGroups/read",
           "Microsoft.Compute/snapshots/delete", "Microsoft.Compute/snapshots/write", "Microsoft.Compute/snapshots/read",
           "Microsoft.Compute/snapshots/beginGetAccess/action", "Microsoft.Compute/snapshots/endGetAccess/action",
           "Microsoft.Compute/disks/beginGetAccess/action", "Microsoft.Storage/storageAccounts/listkeys/action",
           "Microsoft.Storage/storageAccounts/write", "Microsoft.Storage/storageAccounts/read",
           "Microsoft.Storage/storageAccounts/delete"], source=_BUILTIN_ROLES_PAGE),
    _builtin("85a2d0d9-2eba-4c9c-b355-11c2cc0788ab", "Compute Gallery Artifacts Publisher", "This is the role for "
          "publishing gallery artifacts.",
          ["Microsoft.Compute/galleries/*", "Microsoft.Compute/locations/capsOperations/read",
           "Microsoft.Compute/locations/communityGalleries/*", "Microsoft.Compute/locations/sharedGalleries/*",
           "Microsoft.Compute/images/*", "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/disks/write",
           "Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.Resources/deployments/*",
           "Microsoft.Resources/subscriptions/resourceGroups/read"],
          ["Microsoft.Compute/galleries/share/action"], source=_COMPUTE),
    _builtin("29fe4964-1e60-436b-bd3a-77fd4c178b3c", "Azure Batch Account Contributor", "Grants full access to manage all "
          "Batch resources, including Batch accounts, pools and jobs.",
          ["Microsoft.Authorization/*/read", "Microsoft.Batch/*", "Microsoft.Insights/alertRules/*",
           "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read"],
          data_actions=["Microsoft.Batch/*"], source=_COMPUTE),
    _builtin("11076f67-66f6-4be0-8f6b-f0609fd05cc9", "Azure Batch Account Reader", "Lets you view all resources including "
          "pools and jobs in the Batch account.",
          ["Microsoft.Batch/*/read", "Microsoft.Resources/subscriptions/resourceGroups/read"],
          data_actions=["Microsoft.Batch/*/read"], source=_COMPUTE),
    _builtin("6aaa78f1-f7de-44ca-8722-c64a23943cae", "Azure Batch Data Contributor", "Grants permissions to manage Batch "
          "pools and jobs but not to modify accounts.",
          ["Microsoft.Authorization/*/read", "Microsoft.Batch/batchAccounts/read",
           "Microsoft.Batch/batchAccounts/applications/*", "Microsoft.Batch/batchAccounts/certificates/*",
           "Microsoft.Batch/batchAccounts/certificateOperationResults/*", "Microsoft.Batch/batchAccounts/pools/*",
           "Microsoft.Batch/batchAccounts/poolOperationResults/*", "Microsoft.Batch/locations/*/read",
           "Microsoft.Insights/alertRules/*", "Microsoft.Resources/deployments/*",
           "Microsoft.Resources/subscriptions/resourceGroups/read"],
          data_actions=["Microsoft.Batch/batchAccounts/jobSchedules/*", "Microsoft.Batch/batchAccounts/jobs/*"],
          source=_COMPUTE),
    _builtin("48e5e92e-a480-4e71-aa9c-2778f4c13781", "Azure Batch Job Submitter", "Lets you submit and manage jobs in the "
          "Batch account.",
          ["Microsoft.Batch/batchAccounts/applications/read", "Microsoft.Batch/batchAccounts/applications/versions/read",
           "Microsoft.Batch/batchAccounts/pools/read", "Microsoft.Insights/alertRules/*",
           "Microsoft.Resources/subscriptions/resourceGroups/read"],
          data_actions=["Microsoft.Batch/batchAccounts/jobSchedules/*", "Microsoft.Batch/batchAccounts/jobs/*"],
          source=_COMPUTE),
    _builtin("4d97b98b-1d4f-4787-a291-c67834d212e7", "Network Contributor", "Lets you manage networks, but not access to "
          "them.", [*_DEPLOY_READ, "Microsoft.Network/*", "Microsoft.ResourceHealth/availabilityStatuses/read",
                    "Microsoft.Support/*"], source=_NETWORK),
]}

ROLE_IDS_BY_NAME = {r["roleName"].lower(): guid for guid, r in BUILTIN_ROLES.items()}
_DEFS = "/providers/Microsoft.Authorization/roleDefinitions/"
_ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments/"


# --- the switch --------------------------------------------------------------------------------------------

def enforcing(ctx) -> bool:
    """Whether requests are checked: the control API's setting, else the server's start-up switch (``--rbac``)."""
    return bool(ctx.store.meta_get("rbac_enforce", ctx.config.extra.get("rbac", False)))


def set_enforce(ctx, on: bool) -> None:
    ctx.store.meta_set("rbac_enforce", bool(on))


# --- matching -------------------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _pattern(action: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(p) for p in action.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """ARM's operation match: ``*`` stands for any run of characters (slashes included), case-insensitive."""
    return _pattern(pattern).fullmatch(action) is not None


def _allows(entry: dict, action: str, data: bool) -> bool:
    grant, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return (any(action_matches(p, action) for p in entry.get(grant) or [])
            and not any(action_matches(p, action) for p in entry.get(deny) or []))


def scope_contains(outer: str, inner: str) -> bool:
    """An assignment at ``outer`` applies at ``inner``: equal, or ``inner`` below it (ARM ids, case-insensitive)."""
    o, i = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return o == "" or i == o or i.startswith(o + "/")


# --- role definitions ---------------------------------------------------------------------------------------

def _definition_body(guid: str, role: dict, scope: str, role_type: str, assignable: list[str]) -> dict:
    return {
        "id": f"{scope.rstrip('/')}{_DEFS}{guid}", "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {"roleName": role["roleName"], "type": role_type, "description": role.get("description", ""),
                       "assignableScopes": assignable, "permissions": role["permissions"]},
    }


def role_definition_guid(role_definition_id: str) -> str:
    """``/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/<guid>`` (or the bare GUID) -> guid."""
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _role(ctx, guid: str) -> dict | None:
    """{roleName, permissions, assignableScopes, type} of a built-in or custom role, or None."""
    guid = guid.lower()
    if guid in BUILTIN_ROLES:
        return {**BUILTIN_ROLES[guid], "assignableScopes": ["/"], "type": "BuiltInRole"}
    doc = ctx.store.get("role_definition", guid)
    if doc is None:
        return None
    p = doc["properties"]
    return {"roleName": p["roleName"], "permissions": p["permissions"], "assignableScopes": p["assignableScopes"],
            "type": "CustomRole"}


def get_role_definition(ctx, scope: str, guid: str) -> dict:
    """RoleDefinitions_Get: the role as seen from ``scope``; RoleDefinitionNotFound (404) if unknown."""
    role = _role(ctx, guid)
    if role is None:
        raise RoleDefinitionNotFound(f"The role definition '{guid}' could not be found.")
    return _definition_body(guid.lower(), role, _subscription_of(scope), role["type"], role["assignableScopes"])


def list_role_definitions(ctx, scope: str, role_name: str | None = None) -> list[dict]:
    """RoleDefinitions_List: built-in roles and the custom roles assignable at ``scope`` (and above); with
    ``role_name`` (``$filter=roleName eq '...'``) only that role."""
    rows = [get_role_definition(ctx, scope, g) for g in BUILTIN_ROLES]
    for doc in ctx.store.list("role_definition"):
        if any(scope_contains(s, scope) or scope_contains(scope, s) for s in doc["properties"]["assignableScopes"]):
            rows.append(get_role_definition(ctx, scope, doc["name"]))
    if role_name:
        rows = [r for r in rows if r["properties"]["roleName"].lower() == role_name.lower()]
    return rows


def put_role_definition(ctx, scope: str, guid: str, body: dict) -> tuple[dict, bool]:
    """RoleDefinitions_CreateOrUpdate: a custom role. ``body.properties``: roleName, description, permissions
    [{actions, notActions, dataActions, notDataActions}], assignableScopes (default ``[scope]``). A built-in role
    cannot be changed (InvalidRoleAssignmentScope, a guess at the code)."""
    guid = guid.lower()
    if guid in BUILTIN_ROLES:
        raise InvalidRoleAssignmentScope(f"The role definition '{guid}' is a built-in role and cannot be changed.")
    props = (body or {}).get("properties") or {}
    perms = [{k: list(p.get(k) or []) for k in ("actions", "notActions", "dataActions", "notDataActions")}
             for p in props.get("permissions") or []]
    doc = {"name": guid, "properties": {
        "roleName": props.get("roleName") or guid, "description": props.get("description", ""),
        "permissions": perms, "assignableScopes": props.get("assignableScopes") or [scope], "type": "CustomRole"}}
    created = ctx.store.get("role_definition", guid) is None
    ctx.store.put("role_definition", guid, doc)
    return get_role_definition(ctx, scope, guid), created


def delete_role_definition(ctx, scope: str, guid: str) -> dict | None:
    """RoleDefinitions_Delete: the deleted role, or None (204) when there was none."""
    doc = ctx.store.get("role_definition", guid.lower())
    if doc is None:
        return None
    body = get_role_definition(ctx, scope, guid)
    ctx.store.delete("role_definition", guid.lower())
    return body


def _subscription_of(scope: str) -> str:
    m = re.match(r"^(/subscriptions/[^/]+)", scope, re.IGNORECASE)
    return m.group(1) if m else ""


# --- role assignments ---------------------------------------------------------------------------------------

def assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}{_ASSIGNMENTS}{name}"


def put_role_assignment(ctx, scope: str, name: str, body: dict) -> tuple[dict, bool]:
    """RoleAssignments_Create at ``scope`` (any ARM id: subscription, group, resource, child resource).
    ``body.properties``: roleDefinitionId (full id or GUID), principalId, principalType (default
    ServicePrincipal), description. Raises RoleDefinitionDoesNotExist, InvalidRoleAssignmentScope (a custom role
    outside its assignableScopes), RoleAssignmentExists (the same role, principal and scope under another name)."""
    props = (body or {}).get("properties") or {}
    guid = role_definition_guid(str(props.get("roleDefinitionId") or ""))
    role = _role(ctx, guid)
    if role is None:
        raise RoleDefinitionDoesNotExist(f"The specified role definition with ID '{guid}' does not exist.")
    if not any(scope_contains(s, scope) for s in role["assignableScopes"]):
        raise InvalidRoleAssignmentScope(
            f"The role '{role['roleName']}' cannot be assigned at scope '{scope}': it is assignable only at "
            f"{', '.join(role['assignableScopes'])}.")
    principal = str(props.get("principalId") or "").lower()
    rid = assignment_id(scope, name)
    for other in ctx.store.list("role_assignment"):
        p = other["properties"]
        if (other["id"].lower() != rid.lower() and p["scope"].lower() == scope.rstrip("/").lower()
                and p["principalId"] == principal and role_definition_guid(p["roleDefinitionId"]) == guid):
            raise RoleAssignmentExists("The role assignment already exists.")
    existing = ctx.store.get("role_assignment", rid.lower())
    now = ctx.clock.now_iso()
    doc = {"id": rid, "name": name, "type": "Microsoft.Authorization/roleAssignments", "properties": {
        "scope": scope.rstrip("/"), "roleDefinitionId": f"{_subscription_of(scope)}{_DEFS}{guid}",
        "principalId": principal, "principalType": props.get("principalType") or "ServicePrincipal",
        "description": props.get("description"), "condition": None, "conditionVersion": None,
        "createdOn": (existing or {}).get("properties", {}).get("createdOn", now), "updatedOn": now}}
    ctx.store.put("role_assignment", rid.lower(), doc)
    return doc, existing is None


def assign(ctx, principal_id: str, role: str, scope: str, name: str | None = None) -> dict:
    """Assign ``role`` (a built-in role's name, or a role definition GUID) to ``principal_id`` at ``scope``: what
    ``az role assignment create --assignee-object-id ... --role ... --scope ...`` does. The assignment's name is
    deterministic unless given, so assigning twice is the same assignment."""
    guid = ROLE_IDS_BY_NAME.get(role.lower(), role)
    name = name or str(uuid.uuid5(uuid.NAMESPACE_URL, f"ra:{principal_id.lower()}:{guid.lower()}:{scope.lower()}"))
    return put_role_assignment(ctx, scope, name, {"properties": {"roleDefinitionId": guid,
                                                                 "principalId": principal_id}})[0]


def get_role_assignment(ctx, scope: str, name: str) -> dict:
    doc = ctx.store.get("role_assignment", assignment_id(scope, name).lower())
    if doc is None:
        raise RoleAssignmentNotFound(f"The role assignment '{name}' is not found.")
    return doc


def delete_role_assignment(ctx, scope: str, name: str) -> dict | None:
    """RoleAssignments_Delete: the deleted assignment, or None (204)."""
    key = assignment_id(scope, name).lower()
    doc = ctx.store.get("role_assignment", key)
    if doc is not None:
        ctx.store.delete("role_assignment", key)
    return doc


def list_role_assignments(ctx, scope: str = "", *, at_scope: bool = False, principal_id: str | None = None,
                          role: str | None = None) -> list[dict]:
    """RoleAssignments_ListForScope: the assignments that apply at ``scope`` (at or above it) and, unless
    ``at_scope`` (``$filter=atScope()``), those below it; ``principal_id`` (``$filter=principalId eq '...'``) and
    ``role`` (a name or GUID) narrow it."""
    rows = []
    guid = ROLE_IDS_BY_NAME.get(role.lower(), role).lower() if role else None
    for doc in ctx.store.list("role_assignment"):
        p = doc["properties"]
        if not (scope_contains(p["scope"], scope) or (not at_scope and scope_contains(scope, p["scope"]))):
            continue
        if principal_id and p["principalId"] != principal_id.lower():
            continue
        if guid and role_definition_guid(p["roleDefinitionId"]) != guid:
            continue
        rows.append(doc)
    return rows


def replace_assignments(ctx, principal_id: str, roles: list[tuple[str, str]]) -> list[dict]:
    """Drop every assignment of ``principal_id`` and give it ``roles`` [(role name or GUID, scope)]: how a caller
    (the seed, a test, the demo) replaces a principal's rights in one step."""
    for doc in list_role_assignments(ctx, "", principal_id=principal_id):
        ctx.store.delete("role_assignment", doc["id"].lower())
    return [assign(ctx, principal_id, role, scope) for role, scope in roles]


# --- the check ---------------------------------------------------------------------------------------------

def effective_permissions(ctx, principal_id: str, scope: str) -> list[dict]:
    """What ARM's Permissions API (``GET {scope}/providers/Microsoft.Authorization/permissions``) answers for the
    caller: one {actions, notActions, dataActions, notDataActions} entry per permission of every role assigned to
    ``principal_id`` at ``scope`` or above."""
    out = []
    for doc in list_role_assignments(ctx, scope, at_scope=True, principal_id=principal_id):
        role = _role(ctx, role_definition_guid(doc["properties"]["roleDefinitionId"]))
        if role is not None:
            out.extend({k: list(p.get(k) or []) for k in ("actions", "notActions", "dataActions", "notDataActions")}
                       for p in role["permissions"])
    return out


def allowed(ctx, principal_id: str, action: str, scope: str, data: bool = False) -> bool:
    """Whether ``principal_id`` may perform ``action`` (a data action when ``data``) at ``scope``."""
    return any(_allows(e, action, data) for e in effective_permissions(ctx, principal_id, scope))


def _who(claims: dict) -> tuple[str, str]:
    oid = str(claims.get("oid") or claims.get("sub") or "")
    return str(claims.get("appid") or claims.get("upn") or oid), oid


def check(ctx, claims: dict, action: str, scope: str, linked: list[tuple[str, str]] = ()) -> None:
    """ARM: raise AuthorizationFailed (403) unless the token's principal may perform ``action`` at ``scope``, then
    LinkedAuthorizationFailed for the first (action, scope) of ``linked`` it may not."""
    client, oid = _who(claims)
    if not allowed(ctx, oid, action, scope):
        raise AuthorizationFailed(client, oid, action, scope)
    for linked_action, linked_scope in linked:
        if not allowed(ctx, oid, linked_action, linked_scope):
            raise LinkedAuthorizationFailed(client, oid, action, scope, linked_action, linked_scope)


def check_batch(ctx, claims: dict, action: str, scope: str, data: bool,
                linked: list[tuple[str, str]] = ()) -> None:
    """Batch data plane: raise AuthorizationFailure (403, Batch's body) unless the principal may perform ``action``
    (a data action when ``data``: jobs and job schedules; pools are control-plane actions, Batch's RBAC page) at
    ``scope`` under the account, or one of ``linked`` (e.g. read of the gallery image version a pool boots)."""
    oid = _who(claims)[1]
    if not allowed(ctx, oid, action, scope, data):
        raise AuthorizationFailure(action, scope)
    for linked_action, linked_scope in linked:
        if not allowed(ctx, oid, linked_action, linked_scope):
            raise AuthorizationFailure(linked_action, linked_scope)
