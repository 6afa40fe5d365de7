"""Preflight's permission check: the caller's effective rights at every scope the run reads or writes, against the
table of :mod:`batch_images.rules.permissions`, before anything is written.

Reads: one ARM Permissions API GET (``GET {scope}/providers/Microsoft.Authorization/permissions?api-version=
2022-04-01``: azure-rest-api-specs, Microsoft.Authorization stable/2022-04-01, ``Permissions_ListForResourceGroup`` /
``Permissions_ListForResource``; ARM answers the subscription's too) per distinct scope: the subscription, the source
VM's resource group, the work (and build) resource group, the gallery, the image definition, the build VM's subnet,
each Batch account and each rolled pool's subnet - scopes that are the same id are asked once. The answer lists the
permissions of every role assigned to the caller at that scope or above, so a right granted at the scope the
table names (or above it) is seen.

Each missing action is one problem in preflight's findings: field the scope kind, value the scope id, reason the
action and why the run needs it, fix the ``az role assignment create`` that grants the table's built-in role there.
Preflight then fails at once with every problem listed, before any write.

``BATCH_IMAGES_TEST_SKIP_PERMISSION_CHECK=1`` skips the check: for tests only (they prove that Azure itself - the
stand-in - refuses the write the check would have caught). Never set it in a deployment.
"""
from __future__ import annotations

import os
from typing import Any

from batch_images.rules import permissions as perms
from batch_images.rules import preflight as checks

API_VERSION = "2022-04-01"
PERMISSIONS_PATH = "/providers/Microsoft.Authorization/permissions"
SKIP_ENV = "BATCH_IMAGES_TEST_SKIP_PERMISSION_CHECK"


def run_facts(cfg: Any, options: Any, reads: dict) -> perms.RunFacts:
    """The scopes of this run from the config and preflight's reads: ``reads`` (pool index -> PoolReads) holds the
    template each rolled pool gets (the config's, or an adopted pool's); the ``pools`` option narrows the pools."""
    sub = cfg.gallery.subscription_id
    chosen = set(getattr(options, "pools", None) or [])
    pools = [(i, p) for i, p in enumerate(cfg.pools) if not chosen or p.pool_id_prefix in chosen]
    subnets = []
    for i, pool in pools:
        read = reads.get(i)
        template = (read.template if read is not None else None) or getattr(pool, "pool_template", None) or {}
        subnet = (template.get("networkConfiguration") or {}).get("subnetId")
        if subnet:
            subnets.append(subnet)
    build = cfg.build if cfg.base_image is not None else None
    return perms.RunFacts(
        subscription_id=sub, work_rg_id=f"/subscriptions/{sub}/resourceGroups/{cfg.work_rg}",
        gallery_id=cfg.gallery_id, definition_id=cfg.image_definition_id,
        batch_account_ids=tuple(p.batch_account_id for _, p in pools),
        source_vm_id=cfg.source_vm_id if cfg.base_image is None else None,
        build_rg_id=f"/subscriptions/{sub}/resourceGroups/{cfg.build_rg}" if build is not None else None,
        build_subnet_id=build.subnet_id if build is not None else None, pool_subnet_ids=tuple(subnets))


def read_permissions(arm: Any, scopes: list[str]) -> dict[str, list[dict]]:
    """scope -> the Permissions API's ``value`` there, one GET per distinct scope (case-insensitive). A scope that
    does not exist yet (404) answers nothing: every action there counts as missing."""
    from azure.core.exceptions import ResourceNotFoundError  # the Azure SDK loads in the worker, not at DAG parse

    out: dict[str, list[dict]] = {}
    for scope in scopes:
        if scope.lower() in out:
            continue
        try:
            out[scope.lower()] = list(arm.arm_get(scope.rstrip("/") + PERMISSIONS_PATH, API_VERSION).get("value")
                                      or [])
        except ResourceNotFoundError:
            out[scope.lower()] = []
    return out


def check_permissions(arm: Any, cfg: Any, options: Any, reads: dict, found: checks.Findings, log: Any) -> None:
    """Add one problem to ``found`` per action the caller lacks (see the module docstring); reads only."""
    if os.environ.get(SKIP_ENV) == "1":
        log.warning("Preflight: the permission check is skipped (%s=1, a test-only switch)", SKIP_ENV)
        return
    facts = run_facts(cfg, options, reads)
    needed = perms.required(facts)
    granted = read_permissions(arm, [scope for scope, _ in needed])
    lacking = perms.missing(facts, granted)
    for scope, need in lacking:
        kind = "data action" if need.data else "action"
        found.add(f"permissions ({need.kind})", scope,
                  f"the pipeline's principal may not perform {kind} {need.action} here, which {need.why} needs",
                  f'assign the built-in role "{need.role}" at this scope: {perms.fix_command(need.role, scope)}')
    found.info(f"Permissions: {len(needed)} action(s) checked at {len(granted)} scope(s) (one Permissions API read "
               f"each); {len(lacking)} missing")
