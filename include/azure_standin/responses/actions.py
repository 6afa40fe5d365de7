"""The RBAC action an ARM or Batch data-plane request needs, derived from its path and method, and the check
``routing.op_route`` runs after authentication when enforcement is on (backends/authorization.py).

ARM (Microsoft Learn, "Azure resource provider operations" and "role-definitions": an operation string is
``{namespace}/{resource type path}/{read|write|delete|<name>/action}``): the types after the last ``providers``
segment, the names dropped; GET / HEAD -> ``read``, PUT / PATCH -> ``write``, DELETE -> ``delete``, POST
``.../{resource}/{name}`` -> ``{name}/action`` (``Microsoft.Compute/virtualMachines/generalize/action``,
``Microsoft.Batch/batchAccounts/listKeys/action``). The scope is the resource (its parent for a collection GET or a
POST action's verb segment). Resource groups are ``Microsoft.Resources/subscriptions/resourceGroups/*``.

Batch data plane (learn.microsoft.com/azure/batch/batch-role-based-access-control, "Assign a custom role"): pools
are *actions* ``Microsoft.Batch/batchAccounts/pools/read|write|delete``; jobs and job schedules are *data actions*
``Microsoft.Batch/batchAccounts/jobs/...`` / ``.../jobSchedules/...``; "Microsoft.Batch/batchAccounts/read, for any
read operation" (account-level reads here). The page names no action for tasks, nodes or a pool's POST verbs: tasks
and task files take their job's read / write, nodes their pool's read / write, a pool verb (resize, autoscale,
remove nodes, evaluate) ``pools/write`` (guesses). The scope is the account's ARM id plus ``/pools/{id}`` (as a real
refusal names it, Azure/Batch issue 154) or ``/jobs/{id}`` / ``/jobSchedules/{id}`` (a guess, by analogy).

Linked checks (the rights a write needs on another resource):
- a VM's NIC in a subnet, a Batch pool in a subnet (data plane or ARM): ``Microsoft.Network/virtualNetworks/subnets/
  join/action`` on the subnet (Virtual Machine Contributor grants it for that reason; learn.microsoft.com/azure/
  batch/batch-virtual-network; public LinkedAuthorizationFailed answers for AKS subnets);
- a pool or VM from a gallery image version: ``Microsoft.Compute/galleries/images/versions/read`` on the version
  (learn.microsoft.com/azure/batch/batch-sig-images, MicrosoftDocs/azure-docs PR 118562: "minimum actions required
  for using compute gallery images on pool creation"); from a managed image: ``Microsoft.Compute/images/read`` (guess).
Not modelled (the stand-in does not check them): read of a snapshot's source disk, of an image's source snapshots,
of a version's source image.

Not checked (any authenticated principal, as ``EXEMPT`` says): subscriptions, locations and tenants lists (ARM
lists what the caller can see; the stand-in has one subscription), Providers_Get, the Permissions API (it reports the
caller's own rights), and polls of an operation the caller started (its authorization was the start's; a guess).
"""
from __future__ import annotations

import re
from typing import Iterable

from ..backends import authorization as rbac

EXEMPT = frozenset({
    "Subscriptions_List", "Subscriptions_Get", "Subscriptions_ListLocations", "Tenants_List", "Providers_Get",
    "Operations_GetStatus", "Operations_GetResult", "Permissions_ListForSubscription",
    "Permissions_ListForResourceGroup", "Permissions_ListForResource",
})
_VERB = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete", "POST": "write"}
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
VERSION_READ = "Microsoft.Compute/galleries/images/versions/read"
IMAGE_READ = "Microsoft.Compute/images/read"


def arm_action(method: str, path: str) -> tuple[str, str] | None:
    """(action, scope) an ARM request needs; None when the path names no resource type (subscriptions, tenants)."""
    segs = [s for s in path.split("/") if s]
    idx = [i for i, s in enumerate(segs) if s.lower() == "providers"]
    if not idx:
        if len(segs) >= 3 and segs[0].lower() == "subscriptions" and segs[2].lower() == "resourcegroups":
            scope = "/" + "/".join(segs[:4] if len(segs) >= 4 else segs[:2])
            return f"Microsoft.Resources/subscriptions/resourceGroups/{_VERB[method]}", scope
        return None
    i = idx[-1]
    prefix, rest = "/" + "/".join(segs[:i]), segs[i + 2:]
    namespace = segs[i + 1] if len(segs) > i + 1 else ""
    if not rest:                                   # Providers_Get
        return f"Microsoft.Resources/subscriptions/providers/{_VERB[method]}", prefix
    if len(rest) == 1 and method == "POST":        # Providers_Register: {namespace}/register/action
        return f"{namespace}/{rest[0]}/action", prefix
    types = rest[0::2]
    if len(rest) % 2 == 0:                         # an item
        return "/".join([namespace, *types, _VERB[method]]), "/" + "/".join(segs)
    parent = "/".join(segs[:-1]) if len(rest) > 1 else prefix.lstrip("/")   # a top-level collection: its group
    if method == "POST":                           # {resource}/{name} -> {type}/{name}/action
        return "/".join([namespace, *types, "action"]), "/" + parent
    return "/".join([namespace, *types, _VERB[method]]), "/" + parent   # a collection, or a read-only child


def _linked_arm(method: str, action: str, body) -> list[tuple[str, str]]:
    if method != "PUT" or not isinstance(body, dict):
        return []
    props = body.get("properties") or {}
    linked: list[tuple[str, str]] = []
    if action.lower() == "microsoft.compute/virtualmachines/write":
        net = props.get("networkProfile") or {}
        for nic in net.get("networkInterfaceConfigurations") or []:
            for ipc in (nic.get("properties") or {}).get("ipConfigurations") or []:
                subnet = ((ipc.get("properties") or {}).get("subnet") or {}).get("id")
                if subnet:
                    linked.append((SUBNET_JOIN, subnet))
        image = ((props.get("storageProfile") or {}).get("imageReference") or {}).get("id")
        linked.extend(_image_read(image))
    elif action.lower() == "microsoft.batch/batchaccounts/pools/write":
        vmc = ((props.get("deploymentConfiguration") or {}).get("virtualMachineConfiguration") or {})
        linked.extend(_image_read((vmc.get("imageReference") or {}).get("id")))
        subnet = (props.get("networkConfiguration") or {}).get("subnetId")
        if subnet:
            linked.append((SUBNET_JOIN, subnet))
    return linked


def _image_read(image_id: str | None) -> list[tuple[str, str]]:
    if not image_id:
        return []
    if "/galleries/" in image_id.lower():
        return [(VERSION_READ, image_id)]
    if "/providers/microsoft.compute/images/" in image_id.lower():
        return [(IMAGE_READ, image_id)]
    return []


_BATCH = re.compile(r"^/batch/(?P<account>[^/]+)(?P<rest>/.*)?$")
_BATCH_TYPES = {"pools": ("pools", False), "jobs": ("jobs", True), "jobschedules": ("jobSchedules", True)}


def batch_action(method: str, path: str) -> tuple[str, str, bool] | None:
    """(action, scope under the account, data action?) a Batch data-plane request needs (see the module docstring);
    the scope is relative: ``""`` (the account), ``/pools/{id}``, ``/jobs/{id}``, ``/jobSchedules/{id}``."""
    m = _BATCH.match(path)
    if m is None:
        return None
    segs = [s for s in (m.group("rest") or "").split("/") if s]
    if not segs or segs[0].lower() not in _BATCH_TYPES:
        return "Microsoft.Batch/batchAccounts/read", "", False
    kind, data = _BATCH_TYPES[segs[0].lower()]
    if kind == "jobSchedules" and len(segs) >= 3 and segs[2].lower() == "jobs":   # a schedule's jobs: a read
        return "Microsoft.Batch/batchAccounts/jobSchedules/read", f"/jobSchedules/{segs[1]}", True
    if kind == "jobs" and len(segs) > 2 and method == "POST" and segs[2].lower() not in ("tasks", "addtaskcollection"):
        verb = "write"                              # disable / enable / terminate
    elif len(segs) > 2:                             # a child (task, file, node) or a POST verb
        verb = "read" if method in ("GET", "HEAD") else "write"
    else:
        verb = _VERB[method]
    scope = f"/{kind}/{segs[1]}" if len(segs) > 1 else ""
    return f"Microsoft.Batch/batchAccounts/{kind}/{verb}", scope, data


def _linked_batch(op: str, body) -> list[tuple[str, str]]:
    if op != "Pool_Add" or not isinstance(body, dict):
        return []
    vmc = body.get("virtualMachineConfiguration") or {}
    linked = _image_read((vmc.get("imageReference") or {}).get("virtualMachineImageId"))
    subnet = (body.get("networkConfiguration") or {}).get("subnetId")
    return linked + ([(SUBNET_JOIN, subnet)] if subnet else [])


def authorize(ctx, req) -> None:
    """The RBAC check of one authenticated request (``routing.op_route``): nothing for Shared Key (the key is full
    access: "The Batch shared key credentials give full permission to the Batch account", Batch's RBAC page), an
    exempt operation or enforcement off; else AuthorizationFailed / LinkedAuthorizationFailed (ARM) or
    AuthorizationFailure (Batch) when the token's principal lacks the action."""
    if req.auth_scheme != "Bearer" or req.op in EXEMPT or not rbac.enforcing(ctx):
        return
    if req.family == "batch":
        derived = batch_action(req.method, req.path)
        if derived is None:
            return
        action, rel, data = derived
        acct = next((a for a in ctx.store.list("batch_account")
                     if a.get("name", "").lower() == (req.account or "").lower()), None)
        if acct is None:        # the handler answers Batch's AccountNotFound / the routing's 404
            return
        rbac.check_batch(ctx, req.claims, action, acct["id"] + rel, data, _linked_batch(req.op, req.body))
        return
    derived = arm_action(req.method, req.path)
    if derived is not None:
        action, scope = derived
        rbac.check(ctx, req.claims, action, scope, _linked_arm(req.method, action, req.body))


def operation_actions(routes: Iterable) -> list[dict]:
    """{family, op, method, path, action, scope, data} for every operation of ``routes`` (op_route routes): the table
    the pipeline's least-privilege rules are built from. Path parameters stay as ``{name}``; exempt operations have
    action None."""
    rows = []
    for route in routes:
        ops = getattr(route.endpoint, "ops", None)
        if not ops:
            continue
        for method, (op, _) in ops.items():
            row = {"family": "batch" if route.path.startswith("/batch/") else "arm", "op": op, "method": method,
                   "path": route.path, "action": None, "scope": None, "data": False}
            if op not in EXEMPT:
                if row["family"] == "batch":
                    derived = batch_action(method, route.path)
                    if derived:
                        row["action"], rel, row["data"] = derived
                        row["scope"] = "{account id}" + rel
                else:
                    derived = arm_action(method, route.path)
                    if derived:
                        row["action"], row["scope"] = derived
            rows.append(row)
    return rows
