"""Microsoft.Batch/batchAccounts/pools on the management plane (ARM, api-version 2024-07-01: Pool in
specification/batch/resource-manager/Microsoft.Batch/stable/2024-07-01/BatchManagement.json, as azure-mgmt-batch 18.0.0
sends it) over the SAME pool documents as the data plane: a translation layer, no pool state of its own.

- PUT (Pool_Create): ARM body -> data-plane body -> batch_pools.add_pool; the pool is then listed and read by the data
  plane in its own shape. Answers 200 with the pool (the spec's only success code: the create is synchronous).
- GET / list (Pool_Get, Pool_ListByBatchAccount): data-plane document -> ARM body, so a data-plane pool is readable
  through ARM too.
- DELETE (Pool_Delete): batch_pools.delete_pool; 202 + Location (the spec: x-ms-long-running-operation,
  final-state-via location), 204 when there is no such pool.

What only ARM carries, kept on the pool document after add_pool returns:
- `identity` (BatchPoolIdentity, user-assigned identities keyed by resource id). The data plane's BatchPool.identity is
  read-only, a list of {resourceId, clientId, principalId}; it is stored in that shape under the pool's `identity`
  key, which the data plane's GET returns. A data-plane create may not carry it: "Creating pools with managed
  identities can only be performed with the Batch Management Plane APIs or SDKs using Entra authentication. It is not
  possible to create pools with managed identities using the Batch Service APIs or SDKs" (learn.microsoft.com/azure/
  batch/managed-identity-pools; azure-batch 15.1's BatchPoolCreateOptions has no identity). clientId / principalId
  are derived from the identity id here (the stand-in has no Microsoft.ManagedIdentity resources: any well-formed
  user-assigned identity id is accepted, a guess at leniency).
- the pool resource's ARM `tags` (Pool.tags in the 2024-07-01 spec), kept in `_sim.arm_tags` (no data-plane
  property). `properties.resourceTags` is the data plane's `resourceTags` and passes through.

Spelling differences (ARM spec vs data-plane spec): deploymentConfiguration.virtualMachineConfiguration vs
virtualMachineConfiguration; nodeAgentSkuId vs nodeAgentSKUId; imageReference.id vs virtualMachineImageId;
scaleSettings {fixedScale | autoScale} vs targetDedicatedNodes/... and enableAutoScale/autoScaleFormula/...;
interNodeCommunication Enabled/Disabled vs enableInterNodeCommunication; applicationPackages [{id}] vs
applicationPackageReferences [{applicationId}]; userName vs username; dynamicVnetAssignmentScope vs
dynamicVNetAssignmentScope; and enum values PascalCase in ARM (Spread, TaskWorkingDirectory, ReadOnly, BatchManaged)
vs the data plane's (spread, taskWorkingDirectory, readonly, batchmanaged). Data-plane errors are answered in ARM's
error shape with the same status and code (how Batch RP wraps them: a guess).
"""
from __future__ import annotations

import uuid
from typing import Any

from ..core.errors import ArmError, BatchError, InvalidPropertyValue
from . import batch_pools
from .arm_common import id_is
from .batch_accounts import get_batch_account

T_POOL = "Microsoft.Batch/batchAccounts/pools"
T_USER_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"

# (data-plane spelling, ARM spelling) of enum values, by property name (BatchManagement.json 2024-07-01 enums vs
# azure-batch 15.1 models/_enums.py).
_ENUMS: dict[str, list[tuple[str, str]]] = {
    "nodeFillType": [("spread", "Spread"), ("pack", "Pack")],
    "scope": [("task", "Task"), ("pool", "Pool")],
    "elevationLevel": [("nonadmin", "NonAdmin"), ("admin", "Admin")],
    "workingDirectory": [("taskWorkingDirectory", "TaskWorkingDirectory"),
                         ("containerImageDefault", "ContainerImageDefault")],
    "caching": [("none", "None"), ("readonly", "ReadOnly"), ("readwrite", "ReadWrite")],
    "storageAccountType": [("standard_lrs", "Standard_LRS"), ("premium_lrs", "Premium_LRS"),
                           ("standardssd_lrs", "StandardSSD_LRS")],
    "provision": [("batchmanaged", "BatchManaged"), ("usermanaged", "UserManaged"),
                  ("nopublicipaddresses", "NoPublicIPAddresses")],
    "protocol": [("tcp", "TCP"), ("udp", "UDP")],
    "access": [("allow", "Allow"), ("deny", "Deny")],
    "placement": [("cachedisk", "CacheDisk")],
    "targetNodeCommunicationMode": [("default", "Default"), ("classic", "Classic"), ("simplified", "Simplified")],
    "loginMode": [("batch", "Batch"), ("interactive", "Interactive")],
    "policy": [("regional", "Regional"), ("zonal", "Zonal")],
    "targets": [("osdisk", "OsDisk"), ("temporarydisk", "TemporaryDisk")],
    "nodeDeallocationOption": [("requeue", "Requeue"), ("terminate", "Terminate"),
                               ("taskcompletion", "TaskCompletion"), ("retaineddata", "RetainedData")],
    "securityType": [("trustedLaunch", "trustedLaunch"), ("confidentialVM", "confidentialVM")],
    "allocationState": [("steady", "Steady"), ("resizing", "Resizing"), ("stopping", "Stopping")],
}
_CONTAINER_TYPE = [("dockerCompatible", "DockerCompatible"), ("criCompatible", "CriCompatible")]

# (parent properties, or () for anywhere; data-plane name; ARM name)
_RENAMES = [((), "nodeAgentSKUId", "nodeAgentSkuId"), ((), "dynamicVNetAssignmentScope", "dynamicVnetAssignmentScope"),
            ((), "username", "userName"), (("imageReference",), "virtualMachineImageId", "id"),
            (("applicationPackageReferences", "applicationPackages"), "applicationId", "id"),
            (("endpointConfiguration",), "inboundNATPools", "inboundNatPools")]
# ContainerRegistry keeps `username` in both specs.
_KEEP_USERNAME = ("containerRegistries", "registry")


def _spell(pairs: list[tuple[str, str]], value: Any, to_arm: bool) -> Any:
    if not isinstance(value, str):
        return value
    for dp, arm in pairs:
        if value.lower() in (dp.lower(), arm.lower()):
            return arm if to_arm else dp
    return value


def _rename(key: str, parent: str | None, to_arm: bool) -> str:
    if key in ("username", "userName") and parent in _KEEP_USERNAME:
        return key
    for parents, dp, arm in _RENAMES:
        if parents and parent not in parents:
            continue
        if key == (dp if to_arm else arm):
            return arm if to_arm else dp
    return key


def _convert(value: Any, to_arm: bool, parent: str | None = None) -> Any:
    """Respell a data-plane sub-object as ARM's (to_arm) or back, recursively."""
    if isinstance(value, list):
        return [_convert(v, to_arm, parent) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        pairs = _CONTAINER_TYPE if (k == "type" and parent == "containerConfiguration") else _ENUMS.get(k)
        if pairs is not None and (isinstance(v, str) or isinstance(v, list)):
            v = [_spell(pairs, x, to_arm) for x in v] if isinstance(v, list) else _spell(pairs, v, to_arm)
        else:
            v = _convert(v, to_arm, k)
        out[_rename(k, parent, to_arm)] = v
    if parent == "dataDisks":  # ARM DataDisk.storageAccountType is the data plane's managedDisk.storageAccountType
        _move_storage_account_type(out, to_arm)
    return out


def _move_storage_account_type(disk: dict, to_arm: bool) -> None:
    """BatchManagement.json 2024-07-01 DataDisk has ``storageAccountType``; the 2025-06-01 data plane's DataDisk has it
    under ``managedDisk`` (models.tsp ManagedDisk)."""
    if to_arm:
        managed = disk.get("managedDisk")
        if isinstance(managed, dict) and "storageAccountType" in managed:
            disk["storageAccountType"] = managed.pop("storageAccountType")
            if not managed:
                disk.pop("managedDisk")
    elif "storageAccountType" in disk:
        disk.setdefault("managedDisk", {})["storageAccountType"] = disk.pop("storageAccountType")


# ---------------------------------------------------------------------------------------------------
# ARM -> data plane
# ---------------------------------------------------------------------------------------------------

# Pool properties the ARM spec marks readOnly: ignored in a PUT body (ARM ignores read-only properties).
_ARM_READ_ONLY = {"lastModified", "creationTime", "provisioningState", "provisioningStateTransitionTime",
                  "allocationState", "allocationStateTransitionTime", "currentDedicatedNodes",
                  "currentLowPriorityNodes", "autoScaleRun", "resizeOperationStatus", "currentNodeCommunicationMode"}


def _scale_to_dataplane(scale: Any) -> dict:
    """scaleSettings -> the data plane's fields. Neither fixedScale nor autoScale: a fixed pool of 0 nodes (the spec:
    "If omitted, the default value is fixedScale with 0 targetDedicatedNodes"); both: refused (the spec: "fixedScale
    ... If this property is specified, autoScale must not be"; the error code is a guess)."""
    scale = scale if isinstance(scale, dict) else {}
    fixed, auto = scale.get("fixedScale"), scale.get("autoScale")
    if fixed is not None and auto is not None:
        raise InvalidPropertyValue("scaleSettings", None, "Specify only one of scaleSettings.fixedScale and "
                                   "scaleSettings.autoScale.")
    if auto is not None:
        out = {"enableAutoScale": True, "autoScaleFormula": auto.get("formula")}
        if auto.get("evaluationInterval") is not None:
            out["autoScaleEvaluationInterval"] = auto["evaluationInterval"]
        return out
    fixed = fixed or {}
    out = {"enableAutoScale": False, "targetDedicatedNodes": fixed.get("targetDedicatedNodes") or 0,
           "targetLowPriorityNodes": fixed.get("targetLowPriorityNodes") or 0}
    if fixed.get("resizeTimeout") is not None:
        out["resizeTimeout"] = fixed["resizeTimeout"]
    return out


def arm_to_dataplane(name: str, arm: dict) -> dict:
    """An ARM Pool PUT body -> the data plane's pool create body (id = the pool name). identity and tags are not in
    it (the data plane cannot take them): see identity_to_dataplane."""
    props = (arm or {}).get("properties") or {}
    body: dict[str, Any] = {"id": name}
    for k, v in props.items():
        if k in _ARM_READ_ONLY or v is None:
            continue
        if k == "deploymentConfiguration":
            vmc = (v or {}).get("virtualMachineConfiguration")
            if vmc is not None:
                body["virtualMachineConfiguration"] = _convert(vmc, False, "virtualMachineConfiguration")
        elif k == "scaleSettings":
            body.update(_scale_to_dataplane(v))
        elif k == "interNodeCommunication":
            body["enableInterNodeCommunication"] = str(v).lower() == "enabled"
        elif k == "applicationPackages":
            body["applicationPackageReferences"] = _convert(v, False, "applicationPackages")
        else:
            body[k] = _convert({k: v}, False)[k]  # through its key, so a top-level enum is respelled too
    if "scaleSettings" not in props:
        body.update(_scale_to_dataplane(None))
    return body


def _derived_uuid(kind: str, resource_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}:{resource_id.lower()}"))


def identity_to_dataplane(identity: Any) -> dict | None:
    """ARM BatchPoolIdentity -> the data plane's BatchPool.identity ({type, userAssignedIdentities: [{resourceId,
    clientId, principalId}]}); None for no identity or type None. Raises InvalidPropertyValue for another type or an
    id that is not a user-assigned identity (codes: guesses)."""
    if not identity:
        return None
    kind = str(identity.get("type") or "")
    if kind.lower() == "none":
        return None
    if kind.lower() != "userassigned":
        raise InvalidPropertyValue("identity.type", kind, "A pool identity type must be UserAssigned or None.")
    ids = identity.get("userAssignedIdentities") or {}
    if not isinstance(ids, dict) or not ids:
        raise InvalidPropertyValue("identity.userAssignedIdentities", None,
                                   "identity.type UserAssigned needs at least one user-assigned identity.")
    out = []
    for rid in ids:
        if id_is(rid, T_USER_IDENTITY) is None:
            raise InvalidPropertyValue("identity.userAssignedIdentities", rid,
                                       f"'{rid}' is not a user-assigned managed identity resource id "
                                       f"(/subscriptions/.../resourceGroups/.../providers/{T_USER_IDENTITY}/<name>).")
        out.append({"resourceId": rid, "clientId": _derived_uuid("client", rid),
                    "principalId": _derived_uuid("principal", rid)})
    return {"type": "UserAssigned", "userAssignedIdentities": out}


# ---------------------------------------------------------------------------------------------------
# data plane -> ARM
# ---------------------------------------------------------------------------------------------------

_PASS_THROUGH = ("displayName", "lastModified", "creationTime", "vmSize", "currentDedicatedNodes",
                 "currentLowPriorityNodes", "networkConfiguration", "taskSlotsPerNode", "taskSchedulingPolicy",
                 "userAccounts", "metadata", "startTask", "mountConfiguration", "targetNodeCommunicationMode",
                 "currentNodeCommunicationMode", "upgradePolicy", "resourceTags", "allocationState",
                 "allocationStateTransitionTime", "autoScaleRun")


def pool_arm_id(sub: str, rg: str, account: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Batch/batchAccounts/{account}/pools/{name}"


def dataplane_to_arm(sub: str, rg: str, account: str, pool: dict) -> dict:
    """A data-plane pool document -> the ARM Pool body (Pool_Get)."""
    props: dict[str, Any] = {}
    for k in _PASS_THROUGH:
        if pool.get(k) is not None:
            props[k] = _convert({k: pool[k]}, True)[k]
    props["provisioningState"] = "Deleting" if pool.get("state") == "deleting" else "Succeeded"
    if pool.get("stateTransitionTime"):
        props["provisioningStateTransitionTime"] = pool["stateTransitionTime"]
    if pool.get("virtualMachineConfiguration") is not None:
        props["deploymentConfiguration"] = {
            "virtualMachineConfiguration": _convert(pool["virtualMachineConfiguration"], True,
                                                    "virtualMachineConfiguration")}
    if pool.get("enableAutoScale"):
        auto = {"formula": pool.get("autoScaleFormula")}
        if pool.get("autoScaleEvaluationInterval"):
            auto["evaluationInterval"] = pool["autoScaleEvaluationInterval"]
        props["scaleSettings"] = {"autoScale": auto}
    else:
        props["scaleSettings"] = {"fixedScale": {
            "targetDedicatedNodes": int(pool.get("targetDedicatedNodes") or 0),
            "targetLowPriorityNodes": int(pool.get("targetLowPriorityNodes") or 0),
            "resizeTimeout": pool.get("resizeTimeout")}}
    props["interNodeCommunication"] = "Enabled" if pool.get("enableInterNodeCommunication") else "Disabled"
    if pool.get("applicationPackageReferences") is not None:
        props["applicationPackages"] = _convert(pool["applicationPackageReferences"], True,
                                                "applicationPackageReferences")
    if pool.get("allocationState") == "resizing" or pool.get("resizeErrors"):
        status = {"targetDedicatedNodes": int(pool.get("targetDedicatedNodes") or 0),
                  "targetLowPriorityNodes": int(pool.get("targetLowPriorityNodes") or 0),
                  "resizeTimeout": pool.get("resizeTimeout"),
                  "startTime": pool.get("allocationStateTransitionTime")}
        if pool.get("resizeErrors"):
            status["errors"] = pool["resizeErrors"]
        props["resizeOperationStatus"] = status
    body: dict[str, Any] = {
        "id": pool_arm_id(sub, rg, account, pool["id"]), "name": pool["id"], "type": T_POOL,
        "etag": pool.get("eTag"), "properties": props,
    }
    tags = (pool.get("_sim") or {}).get("arm_tags")
    if tags:
        body["tags"] = tags
    ident = pool.get("identity") or {}
    if ident.get("userAssignedIdentities"):
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {
            u["resourceId"]: {"principalId": u.get("principalId"), "clientId": u.get("clientId")}
            for u in ident["userAssignedIdentities"]}}
    return body


# ---------------------------------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------------------------------

def _as_arm(e: BatchError) -> ArmError:
    target = next((v for k, v in e.values if k in ("PropertyName", "PropertyValue")), None)
    return ArmError(e.status, e.code, e.message, target=target)


def _account(ctx, sub: str, rg: str, account: str) -> str:
    """The account's data-plane name; ARM's ResourceGroupNotFound / ResourceNotFound when it does not exist."""
    return get_batch_account(ctx, sub, rg, account)["name"]


def get_pool(ctx, sub: str, rg: str, account: str, name: str) -> dict:
    """Pool_Get: the ARM body of the pool (made through either plane); 404 PoolNotFound in ARM's error shape."""
    acct = _account(ctx, sub, rg, account)
    try:
        pool = batch_pools.get_pool(ctx, acct, name)
    except BatchError as e:
        raise _as_arm(e)
    return dataplane_to_arm(sub, rg, acct, pool)


def list_pools(ctx, sub: str, rg: str, account: str) -> list[dict]:
    """Pool_ListByBatchAccount: every pool of the account (one page)."""
    acct = _account(ctx, sub, rg, account)
    return [dataplane_to_arm(sub, rg, acct, p) for p in ctx.store.list(batch_pools.KIND, prefix=f"{acct.lower()}/")]


def _keep_arm_only(ctx, acct: str, name: str, arm: dict, identity: dict | None) -> dict:
    """Store what only ARM carries (identity, tags) on the pool document; returns the document."""
    key = batch_pools.pool_key(acct, name)
    pool = ctx.store.get(batch_pools.KIND, key)
    if identity is not None:
        pool["identity"] = identity
    else:
        pool.pop("identity", None)
    pool["_sim"]["arm_tags"] = dict(arm.get("tags") or {})
    ctx.store.put(batch_pools.KIND, key, pool)
    return pool


def create_pool(ctx, sub: str, rg: str, account: str, name: str, arm: Any, *, auth_scheme: str | None = None,
                if_none_match: str | None = None) -> tuple[dict, bool]:
    """Pool_Create: returns (ARM body, created). A new pool goes through batch_pools.add_pool (every data-plane rule
    applies); an existing one is updated in place with the data plane's patch rules (batch_pools.patch_pool: fields
    that need an empty pool are refused on a non-empty one), unless If-None-Match: * (412, code a guess)."""
    acct = _account(ctx, sub, rg, account)
    arm = arm if isinstance(arm, dict) else {}
    try:
        identity = identity_to_dataplane(arm.get("identity"))
        body = arm_to_dataplane(name, arm)
        exists = batch_pools.pool_exists(ctx, acct, name, auth_scheme)
        if exists and (if_none_match or "").strip() == "*":
            raise ArmError(412, "ConditionNotMet", f"The pool {name} already exists (If-None-Match: *).")
        if exists:
            changes = {k: v for k, v in body.items() if k not in ("id", "enableAutoScale", "autoScaleFormula",
                                                               "autoScaleEvaluationInterval", "targetDedicatedNodes",
                                                               "targetLowPriorityNodes", "resizeTimeout")}
            batch_pools.patch_pool(ctx, acct, name, changes, auth_scheme)
        else:
            batch_pools.add_pool(ctx, acct, body, auth_scheme=auth_scheme)
    except BatchError as e:
        raise _as_arm(e)
    pool = _keep_arm_only(ctx, acct, name, arm, identity)
    return dataplane_to_arm(sub, rg, acct, pool), not exists


def delete_pool(ctx, sub: str, rg: str, account: str, name: str, *,
                auth_scheme: str | None = None) -> tuple[str, str] | None:
    """Pool_Delete: starts the data plane's delete; returns (the pool's store key, the account's region), None when
    there is no such pool."""
    acct = get_batch_account(ctx, sub, rg, account)
    if not batch_pools.pool_exists(ctx, acct["name"], name, auth_scheme):
        return None
    try:
        batch_pools.delete_pool(ctx, acct["name"], name, auth_scheme)
    except BatchError as e:
        raise _as_arm(e)
    return batch_pools.pool_key(acct["name"], name), acct["location"]
