"""ARM waiters: provisioning of snapshots/images/versions, deletion, gallery replication.

* ``arm_provisioning`` - args ``resource_ids`` (list of ARM ids), optional ``operations``
  (``{resource_id: Azure-AsyncOperation url}`` to fetch Azure's error when a resource ends Failed).
  Success when every resource says provisioningState Succeeded; Failed/Canceled -> failure naming the
  resource and Azure's error; a resource that does not exist -> failure.
* ``arm_deleted`` - args ``resource_ids``. Success when none of them exists any more.
* ``gallery_replication`` - args ``version_id``. Reads the version with ``$expand=ReplicationStatus`` and
  gates on the per-region state (a version can say Succeeded while a region still replicates): success
  when every target region is Completed; a Failed region -> failure naming the region(s) and details.
"""

from __future__ import annotations

import asyncio
from typing import Any

from batch_images.rules import ids
from batch_images.triggers.waiters import Waiter, register

TERMINAL_BAD = ("Failed", "Canceled")


def _short_type(resource_id: str) -> str:
    try:
        arm_id = ids.parse_arm_id(resource_id, "resource_id")
    except ValueError:
        return "resource"
    return {
        "microsoft.compute/snapshots": "snapshot",
        "microsoft.compute/images": "managed image",
        "microsoft.compute/disks": "disk",
        "microsoft.compute/galleries": "gallery",
        "microsoft.compute/galleries/images": "image definition",
        "microsoft.compute/galleries/images/versions": "image version",
    }.get(arm_id.resource_type.lower(), arm_id.resource_type)


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def _error_text(error: dict | None) -> str:
    if not error:
        return "Azure gave no error details"
    code = error.get("code")
    message = error.get("message") or ""
    details = error.get("details") or []
    text = f"{code}: {message}" if code else message
    for d in details[:3]:
        if isinstance(d, dict):
            text += f" ({d.get('code')}: {d.get('message')})"
    return text


# --- arm_provisioning --------------------------------------------------------------------------------------------


async def _probe_one(hook: Any, resource_id: str, operation_url: str | None) -> dict:
    from azure.core.exceptions import ResourceNotFoundError  # not at import: DAG parsing loads this module

    entry: dict[str, Any] = {"id": resource_id, "name": _name(resource_id), "type": _short_type(resource_id)}
    try:
        body = await hook.async_get_resource(resource_id)
    except ResourceNotFoundError:
        entry["provisioningState"] = "NotFound"
        return entry
    props = body.get("properties") or {}
    entry["provisioningState"] = props.get("provisioningState")
    if props.get("completionPercent") is not None:
        entry["completionPercent"] = props["completionPercent"]
    if entry["provisioningState"] in TERMINAL_BAD:
        error = props.get("error") or body.get("error")
        if not error and operation_url:
            status = await hook.async_get_operation_status(operation_url, resource_id)
            error = (status or {}).get("error")
        entry["error"] = error
    return entry


async def probe_provisioning(hook: Any, resource_ids: list[str], operations: dict[str, str] | None = None) -> dict:
    operations = {k.lower(): v for k, v in (operations or {}).items()}
    entries = await asyncio.gather(*(_probe_one(hook, rid, operations.get(rid.lower())) for rid in resource_ids))
    return {"resources": list(entries)}


def evaluate_provisioning(state: dict) -> tuple[str, str]:
    resources = state.get("resources") or []
    if not resources:
        return "success", "no resources to wait for"
    bad = [r for r in resources if r.get("provisioningState") in TERMINAL_BAD]
    if bad:
        return "failure", "; ".join(
            f"{r['type']} {r['name']} ({r['id']}) ended with provisioningState {r['provisioningState']}: "
            f"{_error_text(r.get('error'))}" for r in bad)
    missing = [r for r in resources if r.get("provisioningState") == "NotFound"]
    if missing:
        return "failure", "; ".join(f"{r['type']} {r['name']} ({r['id']}) does not exist (deleted while it was "
                                    "being created?)" for r in missing)
    if resources and all(r.get("provisioningState") == "Succeeded" for r in resources):
        return "success", f"{len(resources)} resource(s) Succeeded: " + ", ".join(r["name"] for r in resources)
    return "retry", progress_provisioning(state)


def progress_provisioning(state: dict) -> str:
    parts = []
    for r in state.get("resources") or []:
        pct = f" ({r['completionPercent']:.0f}%)" if isinstance(r.get("completionPercent"), (int, float)) else ""
        parts.append(f"{r['name']} {r.get('provisioningState')}{pct}")
    return ", ".join(parts) or "no resources"


ARM_PROVISIONING = register(Waiter(
    name="arm_provisioning", hook="arm", probe=probe_provisioning, evaluate=evaluate_provisioning,
    progress=progress_provisioning, description="ARM resources reach provisioningState Succeeded",
))


# --- arm_deleted -------------------------------------------------------------------------------------------------


async def probe_deleted(hook: Any, resource_ids: list[str]) -> dict:
    entries = await asyncio.gather(*(_probe_one(hook, rid, None) for rid in resource_ids))
    return {"resources": list(entries)}


def evaluate_deleted(state: dict) -> tuple[str, str]:
    remaining = [r for r in state.get("resources") or [] if r.get("provisioningState") != "NotFound"]
    if not remaining:
        return "success", f"{len(state.get('resources') or [])} resource(s) deleted"
    return "retry", progress_deleted(state)


def progress_deleted(state: dict) -> str:
    return ", ".join(
        f"{r['name']} {'gone' if r.get('provisioningState') == 'NotFound' else r.get('provisioningState')}"
        for r in state.get("resources") or []) or "nothing to delete"


ARM_DELETED = register(Waiter(
    name="arm_deleted", hook="arm", probe=probe_deleted, evaluate=evaluate_deleted,
    progress=progress_deleted, description="ARM resources are gone (404)",
))


# --- gallery_replication -----------------------------------------------------------------------------------------


def region_key(name: str | None) -> str:
    """``"West Europe"`` and ``"westeurope"`` are the same region."""
    return (name or "").replace(" ", "").lower()


async def probe_replication(hook: Any, version_id: str) -> dict:
    body = await hook.async_get_version(version_id, replication_status=True)
    props = body.get("properties") or {}
    publishing = props.get("publishingProfile") or {}
    status = props.get("replicationStatus") or {}
    return {
        "id": body.get("id") or version_id,
        "name": body.get("name") or _name(version_id),
        "provisioningState": props.get("provisioningState"),
        "aggregatedState": status.get("aggregatedState"),
        "target_regions": [
            {"name": t.get("name"), "regionalReplicaCount": t.get("regionalReplicaCount"),
             "storageAccountType": t.get("storageAccountType")}
            for t in publishing.get("targetRegions") or []
        ],
        "regions": [
            {"region": s.get("region"), "state": s.get("state"), "progress": s.get("progress"),
             "details": s.get("details")}
            for s in status.get("summary") or []
        ],
    }


def failed_regions(state: dict) -> list[dict]:
    """The summary entries (region, state, details) of regions whose replication Failed."""
    return [r for r in state.get("regions") or [] if (r.get("state") or "").lower() == "failed"]


def evaluate_replication(state: dict) -> tuple[str, str]:
    name = state.get("name")
    failed = failed_regions(state)
    if failed and state.get("provisioningState") in ("Creating", "Updating"):
        # Let the create/update finish first: changing the version while an operation is in flight
        # would be refused (and its provisioningState is what tells the update went through).
        return "retry", progress_replication(state) + " (failure reported, operation still finishing)"
    if failed:
        return "failure", f"image version {name}: replication failed in " + "; ".join(
            f"{r['region']} ({r.get('details') or 'no details'})" for r in failed)
    if state.get("provisioningState") in TERMINAL_BAD:
        return "failure", (f"image version {name} ended with provisioningState {state['provisioningState']} "
                           f"(replication: {progress_replication(state)})")
    by_region = {region_key(r.get("region")): r for r in state.get("regions") or []}
    targets = [region_key(t.get("name")) for t in state.get("target_regions") or []]
    if not targets:
        targets = list(by_region)
    done = bool(targets) and all(
        (by_region.get(t) or {}).get("state", "").lower() == "completed" for t in targets)
    if done and state.get("provisioningState") in ("Succeeded", None):
        return "success", f"image version {name} replicated: {progress_replication(state)}"
    return "retry", progress_replication(state)


def progress_replication(state: dict) -> str:
    regions = state.get("regions") or []
    if not regions:
        return f"provisioningState {state.get('provisioningState')}, no replication status yet"
    parts = []
    for r in regions:
        pct = r.get("progress")
        pct_text = f"{pct:.0f}% " if isinstance(pct, (int, float)) else ""
        parts.append(f"{r.get('region')} {pct_text}{r.get('state')}")
    seen = {region_key(r.get("region")) for r in regions}
    parts += [f"{t['name']} not started" for t in state.get("target_regions") or [] if region_key(t["name"]) not in seen]
    return ", ".join(parts)


GALLERY_REPLICATION = register(Waiter(
    name="gallery_replication", hook="arm", probe=probe_replication, evaluate=evaluate_replication,
    progress=progress_replication, description="an image version is Completed in every target region",
))
