"""What the pipeline needs from Azure RBAC: ONE table of (scope kind, action, why, least-privilege built-in role),
the scopes and actions of one run, and the check of ARM's Permissions API answers against them. Pure: no Airflow
or Azure import.

The table is the single source of the README's least-privilege table (``python -m tools.gen_roles_table``) and of
preflight's permission check (:mod:`batch_images.operators.preflight_permissions`). Its actions are what the hooks
call (``hooks/arm.py``, ``hooks/batch.py``, ``hooks/batch_mgmt.py``), named as the stand-in's action table names
them (``GET /_control/rbac/actions``: ARM's ``{namespace}/{type path}/{read|write|delete|<verb>/action}``; Batch
pools are actions, jobs and job schedules data actions: learn.microsoft.com/azure/batch/batch-role-based-access-
control).

Roles (actions copied from Microsoft's built-in roles reference, learn.microsoft.com/azure/role-based-access-control/
built-in-roles/{general,compute,networking}; the stand-in carries the same lists, backends/authorization.py):

- *Reader* (``*/read``) at the subscription: the reads (preflight's Resource SKUs, provider registration, virtual
  networks; the marketplace base version; every resource the run reads). No narrower built-in role grants
  ``Microsoft.Compute/skus/read``, which ARM checks at the subscription.
- *Disk Snapshot Contributor* (``snapshots/*`` verbs, ``disks/beginGetAccess/action``): the temporary snapshots in the
  work resource group, and the linked check of the disk a snapshot copies (a snapshot's PUT is refused with
  LinkedAuthorizationFailed naming ``Microsoft.Compute/disks/beginGetAccess/action`` on the source disk:
  Azure/OpenShift issue 186). The stand-in does not model that linked check (actions.py says so).
- *Compute Gallery Artifacts Publisher* (``galleries/*``, ``images/*``, not ``galleries/share/action``): the gallery,
  the image definition and its versions, and the managed image in the work resource group.
- *Virtual Machine Contributor* (``virtualMachines/*``, ``networkInterfaces/*``, ``disks/write|read|delete``): the
  build VM of a ``base_image`` pipeline, its NIC and disks, in the build resource group.
- *Network Contributor* (``Microsoft.Network/*``) on a subnet: ``subnets/join/action``, which a build VM's NIC and a
  Batch pool in a virtual network need (learn.microsoft.com/azure/batch/batch-virtual-network: "Network Contributor"
  or a custom role with the join action; the stand-in's LinkedAuthorizationFailed / Batch's AuthorizationFailure).
  A custom role with that one action is narrower; Network Contributor is the least built-in one.
- *Azure Batch Data Contributor* (actions ``batchAccounts/read``, ``batchAccounts/pools/*``; data actions
  ``jobs/*``, ``jobSchedules/*``) on each Batch account: pools, the smoke test's jobs, moving jobs on a roll, the
  sweep. It does not modify the account (Azure Batch Account Contributor, ``Microsoft.Batch/*``, is more than needed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

READER = "Reader"
SNAPSHOTS = "Disk Snapshot Contributor"
PUBLISHER = "Compute Gallery Artifacts Publisher"
VM_CONTRIBUTOR = "Virtual Machine Contributor"
NETWORK = "Network Contributor"
BATCH = "Azure Batch Data Contributor"

# Scope kinds, in the README's order, with how the table names them.
SUBSCRIPTION, SOURCE_RG, WORK_RG, BUILD_RG = "subscription", "source VM's resource group", "work resource group", \
    "build VM's resource group"
GALLERY, DEFINITION, BUILD_SUBNET = "gallery", "image definition", "build VM subnet"
BATCH_ACCOUNT, POOL_SUBNET = "each Batch account", "each pool's subnet"
KINDS = (SUBSCRIPTION, SOURCE_RG, WORK_RG, BUILD_RG, GALLERY, DEFINITION, BUILD_SUBNET, BATCH_ACCOUNT, POOL_SUBNET)

# When a row applies: every run, a prepared-VM pipeline, a base_image pipeline (build VM), or a subnet to read.
ALWAYS, PREPARED, BUILD, SUBNETS = "always", "prepared", "build", "subnets"


@dataclass(frozen=True)
class Need:
    """One row: ``action`` (``data``: a data action) at a scope of ``kind``, why the run needs it, and the least
    built-in role that grants it there."""
    kind: str
    action: str
    why: str
    role: str
    when: str = ALWAYS
    data: bool = False


_C, _N, _B = "Microsoft.Compute", "Microsoft.Network", "Microsoft.Batch/batchAccounts"

TABLE: tuple[Need, ...] = (
    Need(SUBSCRIPTION, f"{_C}/skus/read", "preflight: VM sizes, zones and quotas (Resource SKUs)", READER),
    Need(SUBSCRIPTION, "Microsoft.Resources/subscriptions/providers/read",
         "preflight: Microsoft.Batch registered in the gallery's subscription", READER),
    Need(SUBSCRIPTION, f"{_C}/locations/operations/read", "every wait on a Compute operation (its status)", READER),
    Need(SUBSCRIPTION, f"{_C}/locations/publishers/artifacttypes/offers/skus/versions/read",
         "preflight: resolve and check the marketplace base version", READER, BUILD),
    Need(SUBSCRIPTION, f"{_N}/virtualNetworks/read", "preflight: each subnet's virtual network (region)", READER,
         SUBNETS),
    Need(SOURCE_RG, f"{_C}/virtualMachines/read", "preflight: the source VM, its disks and base image", READER,
         PREPARED),
    Need(SOURCE_RG, f"{_C}/virtualMachines/extensions/read", "preflight: the source VM has no extensions", READER,
         PREPARED),
    Need(SOURCE_RG, f"{_C}/disks/read", "preflight: the source VM's managed disks", READER, PREPARED),
    Need(SOURCE_RG, f"{_C}/disks/beginGetAccess/action", "snapshot_disks: a snapshot copies the VM's disks", SNAPSHOTS,
         PREPARED),
    Need(BUILD_RG, f"{_C}/virtualMachines/write", "prepare_build_vm: create the build VM", VM_CONTRIBUTOR, BUILD),
    Need(BUILD_RG, f"{_C}/virtualMachines/read", "prepare_build_vm, sweep_leftovers: the build VM", VM_CONTRIBUTOR,
         BUILD),
    Need(BUILD_RG, f"{_C}/virtualMachines/deallocate/action", "generalize_build_vm: deallocate it", VM_CONTRIBUTOR,
         BUILD),
    Need(BUILD_RG, f"{_C}/virtualMachines/generalize/action", "generalize_build_vm: generalize it", VM_CONTRIBUTOR,
         BUILD),
    Need(BUILD_RG, f"{_C}/virtualMachines/delete", "delete_build_vm, sweep_leftovers: remove it", VM_CONTRIBUTOR,
         BUILD),
    Need(BUILD_RG, f"{_N}/networkInterfaces/write", "prepare_build_vm: the VM's NIC", VM_CONTRIBUTOR, BUILD),
    Need(BUILD_RG, f"{_N}/networkInterfaces/delete", "delete_build_vm: the VM's NIC goes with it", VM_CONTRIBUTOR,
         BUILD),
    Need(BUILD_RG, f"{_C}/disks/write", "prepare_build_vm: the VM's OS and data disks", VM_CONTRIBUTOR, BUILD),
    Need(BUILD_RG, f"{_C}/disks/delete", "delete_build_vm: its disks go with it", VM_CONTRIBUTOR, BUILD),
    Need(BUILD_RG, f"{_C}/disks/beginGetAccess/action", "snapshot_disks: a snapshot copies the build VM's disks",
         SNAPSHOTS, BUILD),
    Need(WORK_RG, f"{_C}/snapshots/write", "snapshot_disks: the temporary snapshots", SNAPSHOTS),
    Need(WORK_RG, f"{_C}/snapshots/read", "wait_for_snapshots, sweep_leftovers: list and wait", SNAPSHOTS),
    Need(WORK_RG, f"{_C}/snapshots/delete", "delete_temporary_resources, sweep_leftovers", SNAPSHOTS),
    Need(WORK_RG, f"{_C}/images/write", "create_managed_image: the temporary managed image", PUBLISHER),
    Need(WORK_RG, f"{_C}/images/read", "create_managed_image, sweep_leftovers", PUBLISHER),
    Need(WORK_RG, f"{_C}/images/delete", "delete_temporary_resources, sweep_leftovers", PUBLISHER),
    Need(GALLERY, f"{_C}/galleries/read", "preflight, publish_image_version: the gallery", PUBLISHER),
    Need(GALLERY, f"{_C}/galleries/write", "publish_image_version: create or update the gallery", PUBLISHER),
    Need(DEFINITION, f"{_C}/galleries/images/read", "preflight: the image definition", PUBLISHER),
    Need(DEFINITION, f"{_C}/galleries/images/write", "publish_image_version: create the image definition", PUBLISHER),
    Need(DEFINITION, f"{_C}/galleries/images/versions/read",
         "publish, retire_old_versions; create_pool (Batch reads the version: a linked check)", PUBLISHER),
    Need(DEFINITION, f"{_C}/galleries/images/versions/write",
         "publish_image_version, promote_image_version (exclude from latest, end of life)", PUBLISHER),
    Need(DEFINITION, f"{_C}/galleries/images/versions/delete", "retire_old_versions: retention", PUBLISHER),
    Need(BUILD_SUBNET, f"{_N}/virtualNetworks/subnets/read", "preflight: the build VM's subnet", READER, BUILD),
    Need(BUILD_SUBNET, f"{_N}/virtualNetworks/subnets/join/action", "prepare_build_vm: the NIC joins the subnet",
         NETWORK, BUILD),
    Need(BATCH_ACCOUNT, f"{_B}/read", "preflight: supported images, quotas; pool node counts", BATCH),
    Need(BATCH_ACCOUNT, f"{_B}/pools/read", "plan_roll, wait_for_pool_steady, sweep_leftovers", BATCH),
    Need(BATCH_ACCOUNT, f"{_B}/pools/write", "create_pool, roll_pool (autoscale, metadata)", BATCH),
    Need(BATCH_ACCOUNT, f"{_B}/pools/delete", "roll_pool, discard_canaries, sweep_leftovers", BATCH),
    Need(BATCH_ACCOUNT, f"{_B}/jobs/read", "plan_roll, smoke_test, sweep_leftovers: jobs on the pools", BATCH,
         data=True),
    Need(BATCH_ACCOUNT, f"{_B}/jobs/write", "smoke_test (its job and tasks), roll_pool (move jobs)", BATCH, data=True),
    Need(BATCH_ACCOUNT, f"{_B}/jobs/delete", "smoke_test, sweep_leftovers: remove the smoke job", BATCH, data=True),
    Need(BATCH_ACCOUNT, f"{_B}/jobSchedules/read", "plan_roll: schedules targeting the pool", BATCH, data=True),
    Need(BATCH_ACCOUNT, f"{_B}/jobSchedules/write", "roll_pool: repoint schedules to the new pool", BATCH, data=True),
    Need(POOL_SUBNET, f"{_N}/virtualNetworks/subnets/read", "preflight: room in each pool's subnet", READER, SUBNETS),
    Need(POOL_SUBNET, f"{_N}/virtualNetworks/subnets/join/action", "create_pool: the nodes join the subnet", NETWORK,
         SUBNETS),
)


@dataclass(frozen=True)
class RunFacts:
    """The scopes of one run (ARM ids). ``source_vm_id`` None for a ``base_image`` pipeline, ``build_rg_id`` /
    ``build_subnet_id`` None without a build VM; ``pool_subnet_ids`` the subnets of the rolled pools' templates."""
    subscription_id: str
    work_rg_id: str
    gallery_id: str
    definition_id: str
    batch_account_ids: tuple[str, ...] = ()
    source_vm_id: str | None = None
    build_rg_id: str | None = None
    build_subnet_id: str | None = None
    pool_subnet_ids: tuple[str, ...] = field(default=())

    def scopes(self, kind: str) -> list[str]:
        """The scope ids of ``kind`` in this run ([] when the run has none)."""
        rg = _resource_group(self.source_vm_id) if self.source_vm_id else None
        one = {SUBSCRIPTION: f"/subscriptions/{self.subscription_id}", SOURCE_RG: rg, WORK_RG: self.work_rg_id,
               BUILD_RG: self.build_rg_id, GALLERY: self.gallery_id, DEFINITION: self.definition_id,
               BUILD_SUBNET: self.build_subnet_id}
        if kind in one:
            return [one[kind]] if one[kind] else []
        return list(dict.fromkeys(self.batch_account_ids if kind == BATCH_ACCOUNT else self.pool_subnet_ids))


def _resource_group(resource_id: str) -> str:
    m = re.match(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+)", resource_id, re.IGNORECASE)
    return m.group(1) if m else resource_id


def _applies(need: Need, facts: RunFacts) -> bool:
    return {ALWAYS: True, PREPARED: facts.source_vm_id is not None, BUILD: facts.build_rg_id is not None,
            SUBNETS: bool(facts.pool_subnet_ids or facts.build_subnet_id)}[need.when]


def required(facts: RunFacts) -> list[tuple[str, Need]]:
    """(scope id, row) for every action the run needs, in table order; one entry per distinct (scope, action)."""
    out: dict[tuple[str, str], tuple[str, Need]] = {}
    for need in TABLE:
        if _applies(need, facts):
            for scope in facts.scopes(need.kind):
                out.setdefault((scope.lower(), need.action.lower()), (scope, need))
    return list(out.values())


def scope_contains(outer: str, inner: str) -> bool:
    """A role assigned at ``outer`` applies at ``inner``: equal, or below it (ARM ids, case-insensitive)."""
    o, i = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return i == o or i.startswith(o + "/")


def assignments(*runs: RunFacts) -> list[tuple[str, str]]:
    """The least-privilege role assignments [(role, scope)] of one or more runs: each row's role at its scope, minus
    those the same role at a containing scope already gives (Reader at the subscription covers Reader at a group)."""
    pairs = list(dict.fromkeys((need.role, scope) for facts in runs for scope, need in required(facts)))
    return [(role, scope) for role, scope in pairs
            if not any(r == role and s != scope and scope_contains(s, scope) for r, s in pairs)]


# --- ARM's Permissions API answer ---------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _pattern(action: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(p) for p in action.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """ARM's match of a permission entry's operation: ``*`` is any run of characters, case-insensitive
    (learn.microsoft.com/azure/role-based-access-control/role-definitions, "Actions" / "Wildcard permissions")."""
    return _pattern(pattern).fullmatch(action) is not None


def granted(permissions: list[dict], action: str, data: bool = False) -> bool:
    """Whether a Permissions API answer's ``value`` grants ``action``: some entry's ``actions`` (``dataActions``
    for a data action) matches it and that same entry's ``notActions`` (``notDataActions``) does not - NotActions
    subtract within their entry, they are not a deny (role-definitions, "NotActions")."""
    grant, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return any(any(action_matches(p, action) for p in entry.get(grant) or [])
               and not any(action_matches(p, action) for p in entry.get(deny) or [])
               for entry in permissions)


def missing(facts: RunFacts, permissions_by_scope: dict[str, list[dict]]) -> list[tuple[str, Need]]:
    """(scope id, row) of every needed action the caller's effective permissions at that scope do not grant.
    ``permissions_by_scope``: scope id (any case) -> the Permissions API's ``value`` there."""
    by_scope = {k.lower(): v for k, v in permissions_by_scope.items()}
    return [(scope, need) for scope, need in required(facts)
            if not granted(by_scope.get(scope.lower(), []), need.action, need.data)]


def fix_command(role: str, scope: str) -> str:
    """The ``az`` command that grants ``role`` at ``scope`` to the pipeline's principal."""
    return f'az role assignment create --assignee <pipeline principal> --role "{role}" --scope {scope}'


# --- the README's table ---------------------------------------------------------------------------------------

def markdown_table() -> str:
    """The least-privilege table as Markdown: one row per (scope kind, role) with its actions and why."""
    rows: dict[tuple[str, str], list[Need]] = {}
    for need in TABLE:
        rows.setdefault((need.kind, need.role), []).append(need)
    when = {ALWAYS: "", PREPARED: "prepared-VM pipelines", BUILD: "base_image pipelines",
            SUBNETS: "pools or a build VM in a subnet"}
    lines = ["| scope | built-in role | actions (data actions marked *data*) | needed by |", "| --- | --- | --- | --- |"]
    for kind in KINDS:
        for (k, role), needs in rows.items():
            if k != kind:
                continue
            whens = {n.when for n in needs}
            actions = ", ".join(f"`{n.action}`" + (" *data*" if n.data else "")
                                + (f" ({when[n.when]})" if len(whens) > 1 and n.when != ALWAYS else "")
                                for n in needs)
            why = "; ".join(dict.fromkeys(n.why for n in needs))
            only = when[next(iter(whens))] if len(whens) == 1 else ""
            lines.append(f"| {kind} | *{role}* | {actions} | {why}{f' ({only} only)' if only else ''} |")
    return "\n".join(lines) + "\n"
