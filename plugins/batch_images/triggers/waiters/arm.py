"""ARM waiters: provisioning of snapshots/images/versions, deletion, gallery replication.

* ``arm_provisioning`` - args ``resource_ids`` (list of ARM ids), optional ``operations``
  (``{resource_id: Azure-AsyncOperation url}`` to fetch Azure's error when a resource ends Failed),
  optional ``created_at`` (``{resource_id: epoch seconds}`` of this task's own creates) and
  ``not_found_grace`` (seconds, default :data:`NOT_FOUND_GRACE_SECONDS`).
  Success when every resource says provisioningState Succeeded; Failed/Canceled -> failure naming the
  resource and Azure's error; a resource that does not exist -> failure, except within the grace
  period after our own create (see below).
* ``vm_power_state`` - args ``vm_id``, ``power_states`` (e.g. ``["stopped", "deallocated"]``), optional
  ``created_at`` / ``not_found_grace`` as above. Reads the VM with its instance view: success when it is
  provisioned and its ``PowerState/<x>`` is one of ``power_states`` (a build VM whose custom-data script ended with
  poweroff); provisioningState Failed -> failure with Azure's error. Progress shows the guest agent's message.
* ``arm_deleted`` - args ``resource_ids``. Success when none of them exists any more.
* ``gallery_replication`` - args ``version_id``, optional ``created_at`` (epoch seconds of our create or
  update), ``not_found_grace`` and ``regions`` (these regions only: a pool's wait for the replica in its own Batch
  account's region; publish and promotion wait for every region). Reads the version with
  ``$expand=ReplicationStatus``: success when every target region (of ``regions``) is Completed and the version's
  operation has ended (provisioningState Succeeded; with ``regions``, not Creating/Updating: Azure's create/update
  covers replication to every region, and no pool starts on a version whose operation still runs); a Failed region
  -> failure naming the region(s) and details.
* ``gallery_region_settled`` - args ``version_id``, ``regions`` (the ones being retried). The step between the
  remove and the re-add of failed regions (``operators/region_retry.py``): success once no operation is in flight on
  the version (provisioningState not Creating/Updating) and no region of ``regions`` is both in targetRegions and
  Failed (each is out, or another writer added it back); a version that does not exist -> failure.

States are read with :mod:`batch_images.rules.states`: case-insensitively, ``Canceled`` and
``Cancelled`` alike, so every spelling Azure uses is terminal at the first poll.

Read-after-write 404: right after a successful PUT, ARM can answer a GET of the new resource with
``404 ResourceNotFound`` while its caches catch up (azure-rest-api-specs issue 10148, azure-sdk-for-python
issue 14282). A resource this task created less than ``not_found_grace`` seconds before the poll is
therefore "not visible yet" and polled again; after that, or for a resource we did not just create, a
404 fails the wait as before (it was deleted while we waited).
"""

from __future__ import annotations

import asyncio
from typing import Any

import time

from batch_images.rules import ids, resource_kinds, states
from batch_images.rules.ids import region_key
from batch_images.triggers.waiters import Waiter, register

# How long after our own create a 404 still means "not visible yet". ARM's read-after-write lag is seconds
# to about a minute in the reports above; two minutes leaves room without hiding a real deletion for long.
NOT_FOUND_GRACE_SECONDS = 120.0


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

    entry: dict[str, Any] = {"id": resource_id, "name": _name(resource_id), "type": resource_kinds.label_of(resource_id)}
    try:
        body = await hook.async_get_resource(resource_id)
    except ResourceNotFoundError:
        entry["provisioningState"] = "NotFound"
        return entry
    props = body.get("properties") or {}
    entry["provisioningState"] = props.get("provisioningState")
    if props.get("completionPercent") is not None:
        entry["completionPercent"] = props["completionPercent"]
    if states.is_failed(entry["provisioningState"]):
        error = props.get("error") or body.get("error")
        if not error and operation_url:
            status = await hook.async_get_operation_status(operation_url, resource_id)
            error = (status or {}).get("error")
        entry["error"] = error
    return entry


def _created_at(created_at: Any, resource_id: str) -> float | None:
    """Epoch seconds of our own create of ``resource_id`` from ``{id: epoch}`` (ids compare case-insensitively)."""
    if not isinstance(created_at, dict):
        return None
    for rid, when in created_at.items():
        if ids.same_id(str(rid), resource_id) and isinstance(when, (int, float)):
            return float(when)
    return None


def not_visible_yet(entry: dict, observed_at: float | None, grace: float | None) -> bool:
    """A 404 of a resource this task created less than ``grace`` seconds before the poll (ARM's read-after-write
    lag), not a deletion."""
    created = entry.get("created_at")
    if not states.is_state(entry.get("provisioningState"), states.NOT_FOUND) or created is None:
        return False
    grace = NOT_FOUND_GRACE_SECONDS if grace is None else float(grace)
    return (observed_at if observed_at is not None else time.time()) - float(created) <= grace


async def probe_provisioning(hook: Any, resource_ids: list[str], operations: dict[str, str] | None = None,
                             created_at: dict[str, float] | None = None,
                             not_found_grace: float | None = None) -> dict:
    operations = {ids.id_key(k): v for k, v in (operations or {}).items()}
    entries = await asyncio.gather(*(_probe_one(hook, rid, operations.get(ids.id_key(rid))) for rid in resource_ids))
    for entry in entries:
        when = _created_at(created_at, entry["id"])
        if when is not None:
            entry["created_at"] = when
    return {"resources": list(entries), "observed_at": time.time(), "not_found_grace": not_found_grace}


def evaluate_provisioning(state: dict) -> tuple[str, str]:
    resources = state.get("resources") or []
    if not resources:
        return "success", "no resources to wait for"
    bad = [r for r in resources if states.is_failed(r.get("provisioningState"))]
    if bad:
        return "failure", "; ".join(
            f"{r['type']} {r['name']} ({r['id']}) ended with provisioningState {r['provisioningState']}: "
            f"{_error_text(r.get('error'))}" for r in bad)
    grace = state.get("not_found_grace")
    missing = [r for r in resources if states.is_state(r.get("provisioningState"), states.NOT_FOUND)
               and not not_visible_yet(r, state.get("observed_at"), grace)]
    if missing:
        return "failure", "; ".join(f"{r['type']} {r['name']} ({r['id']}) does not exist (deleted while it was "
                                    "being created?)" for r in missing)
    if all(states.is_succeeded(r.get("provisioningState")) for r in resources):
        return "success", f"{len(resources)} resource(s) Succeeded: " + ", ".join(r["name"] for r in resources)
    return "retry", progress_provisioning(state)


def progress_provisioning(state: dict) -> str:
    parts = []
    for r in state.get("resources") or []:
        pct = f" ({r['completionPercent']:.0f}%)" if isinstance(r.get("completionPercent"), (int, float)) else ""
        lag = " (not visible yet after our create)" if not_visible_yet(
            r, state.get("observed_at"), state.get("not_found_grace")) else ""
        parts.append(f"{r['name']} {r.get('provisioningState')}{pct}{lag}")
    return ", ".join(parts) or "no resources"


ARM_PROVISIONING = register(Waiter(
    name="arm_provisioning", hook="arm", probe=probe_provisioning, evaluate=evaluate_provisioning,
    progress=progress_provisioning, description="ARM resources reach provisioningState Succeeded",
))


# --- vm_power_state ----------------------------------------------------------------------------------------------


async def probe_vm_power(hook: Any, vm_id: str, power_states: list[str], created_at: float | None = None,
                         not_found_grace: float | None = None) -> dict:
    from azure.core.exceptions import ResourceNotFoundError  # not at import: DAG parsing loads this module

    state: dict[str, Any] = {"id": vm_id, "name": _name(vm_id), "type": "virtual machine", "wanted": list(power_states),
                             "created_at": created_at, "observed_at": time.time(), "not_found_grace": not_found_grace}
    try:
        body = await hook.async_get_resource(vm_id, "instanceView")
    except ResourceNotFoundError:
        state["provisioningState"] = states.NOT_FOUND
        return state
    props = body.get("properties") or {}
    view = props.get("instanceView") or {}
    codes = [s.get("code") or "" for s in view.get("statuses") or []]
    state["provisioningState"] = props.get("provisioningState")
    state["power"] = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), None)
    agent = ((view.get("vmAgent") or {}).get("statuses") or [{}])[0]
    state["agent"] = agent.get("message") or agent.get("displayStatus")
    if states.is_failed(state["provisioningState"]):
        state["error"] = props.get("error") or next(
            ({"code": s.get("code"), "message": s.get("message")} for s in view.get("statuses") or []
             if str(s.get("level")).lower() == "error"), None)
    return state


def not_found_verdict(state: dict, label: str, progress, while_: str) -> tuple[str, str] | None:
    """A single resource's 404: ``retry`` within the read-after-write grace of our create, else ``failure``; None
    when it exists."""
    if not states.is_state(state.get("provisioningState"), states.NOT_FOUND):
        return None
    if not_visible_yet(state, state.get("observed_at"), state.get("not_found_grace")):
        return "retry", progress(state)
    return "failure", f"{label} {state.get('name')} ({state.get('id')}) does not exist (deleted while {while_}?)"


def evaluate_vm_power(state: dict) -> tuple[str, str]:
    name = state.get("name")
    missing = not_found_verdict(state, "virtual machine", progress_vm_power, "we waited")
    if missing is not None:
        return missing
    if states.is_failed(state.get("provisioningState")):
        return "failure", (f"virtual machine {name} ended with provisioningState {state['provisioningState']}: "
                           f"{_error_text(state.get('error'))}")
    if states.is_succeeded(state.get("provisioningState")) and state.get("power") in (state.get("wanted") or []):
        return "success", f"virtual machine {name} is {state['power']}"
    return "retry", progress_vm_power(state)


def progress_vm_power(state: dict) -> str:
    agent = f"; guest agent: {state['agent']}" if state.get("agent") else ""
    return (f"{state.get('name')} provisioningState {state.get('provisioningState')}, PowerState/{state.get('power')} "
            f"(waiting for {' or '.join(state.get('wanted') or [])}){agent}")


VM_POWER_STATE = register(Waiter(
    name="vm_power_state", hook="arm", probe=probe_vm_power, evaluate=evaluate_vm_power, progress=progress_vm_power,
    description="a VM is provisioned and in one of the wanted power states (a build VM's guest powered off)",
))


# --- arm_deleted -------------------------------------------------------------------------------------------------


async def probe_deleted(hook: Any, resource_ids: list[str]) -> dict:
    entries = await asyncio.gather(*(_probe_one(hook, rid, None) for rid in resource_ids))
    return {"resources": list(entries)}


def evaluate_deleted(state: dict) -> tuple[str, str]:
    remaining = [r for r in state.get("resources") or []
                 if not states.is_state(r.get("provisioningState"), states.NOT_FOUND)]
    if not remaining:
        return "success", f"{len(state.get('resources') or [])} resource(s) deleted"
    return "retry", progress_deleted(state)


def progress_deleted(state: dict) -> str:
    return ", ".join(
        f"{r['name']} {'gone' if states.is_state(r.get('provisioningState'), states.NOT_FOUND) else r.get('provisioningState')}"
        for r in state.get("resources") or []) or "nothing to delete"


ARM_DELETED = register(Waiter(
    name="arm_deleted", hook="arm", probe=probe_deleted, evaluate=evaluate_deleted,
    progress=progress_deleted, description="ARM resources are gone (404)",
))


# --- gallery_replication -----------------------------------------------------------------------------------------


async def probe_replication(hook: Any, version_id: str, created_at: float | None = None,
                            not_found_grace: float | None = None, regions: list[str] | None = None) -> dict:
    from azure.core.exceptions import ResourceNotFoundError  # not at import: DAG parsing loads this module

    try:
        body = await hook.async_get_version(version_id, replication_status=True)
    except ResourceNotFoundError:
        return {"id": version_id, "name": _name(version_id), "provisioningState": states.NOT_FOUND,
                "created_at": created_at, "observed_at": time.time(), "not_found_grace": not_found_grace,
                "target_regions": [], "regions": []}
    props = body.get("properties") or {}
    publishing = props.get("publishingProfile") or {}
    status = props.get("replicationStatus") or {}
    return {
        "id": body.get("id") or version_id,
        "name": body.get("name") or _name(version_id),
        "provisioningState": props.get("provisioningState"),
        "created_at": created_at,
        "observed_at": time.time(),
        "not_found_grace": not_found_grace,
        "only_regions": list(regions) if regions else None,
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
    return [r for r in state.get("regions") or [] if states.is_failed(r.get("state"))]


def evaluate_replication(state: dict) -> tuple[str, str]:
    name = state.get("name")
    missing = not_found_verdict(state, "image version", progress_replication, "it replicated")
    if missing is not None:
        return missing
    only = {region_key(r) for r in state.get("only_regions") or []}
    failed = [r for r in failed_regions(state) if not only or region_key(r.get("region")) in only]
    if failed and states.is_state(state.get("provisioningState"), "Creating", "Updating"):
        # Let the create/update finish first: changing the version while an operation is in flight
        # would be refused (and its provisioningState is what tells the update went through).
        return "retry", progress_replication(state) + " (failure reported, operation still finishing)"
    if failed:
        return "failure", f"image version {name}: replication failed in " + "; ".join(
            f"{r['region']} ({r.get('details') or 'no details'})" for r in failed)
    # A version reads Failed once any region failed: a wait for some regions only ignores failures outside them
    # (the wait for every region, promote_image_version's, retries those).
    failed_elsewhere = bool(only) and any(region_key(r.get("region")) not in only for r in failed_regions(state))
    if states.is_failed(state.get("provisioningState")) and not failed_elsewhere:
        return "failure", (f"image version {name} ended with provisioningState {state['provisioningState']} "
                           f"(replication: {progress_replication(state)})")
    by_region = {region_key(r.get("region")): r for r in state.get("regions") or []}
    targets = [region_key(t.get("name")) for t in state.get("target_regions") or []]
    if not targets:
        targets = list(by_region)
    if only:  # a pool waits for the replica in its own region only (its account's region)
        targets = [t for t in targets if t in only] or sorted(only)
        done = all(states.is_state((by_region.get(t) or {}).get("state"), "Completed") for t in targets)
        if done and states.is_in_progress(state.get("provisioningState")):
            return "retry", progress_replication(state) + \
                f" (provisioningState {state.get('provisioningState')}: the version's operation still runs)"
        if done:
            return "success", f"image version {name} replicated in {', '.join(sorted(only))}: " \
                              f"{progress_replication(state)}"
        return "retry", progress_replication(state)
    done = bool(targets) and all(
        states.is_state((by_region.get(t) or {}).get("state"), "Completed") for t in targets)
    if done and (state.get("provisioningState") is None or states.is_succeeded(state.get("provisioningState"))):
        return "success", f"image version {name} replicated: {progress_replication(state)}"
    return "retry", progress_replication(state)


def progress_replication(state: dict) -> str:
    regions = state.get("regions") or []
    if not_visible_yet(state, state.get("observed_at"), state.get("not_found_grace")):
        return "NotFound (not visible yet after our create)"
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


def evaluate_region_settled(state: dict) -> tuple[str, str]:
    name = state.get("name")
    missing = not_found_verdict(state, "image version", progress_replication, "it replicated")
    if missing is not None:
        return missing
    if states.is_in_progress(state.get("provisioningState")):
        return "retry", progress_replication(state) + f" (provisioningState {state.get('provisioningState')})"
    only = {region_key(r) for r in state.get("only_regions") or []}
    targeted = only & {region_key(t.get("name")) for t in state.get("target_regions") or []}
    if not targeted:
        return "success", f"image version {name}: {', '.join(sorted(only))} out of targetRegions, no update in flight"
    failed = {region_key(r.get("region")) for r in failed_regions(state)} & targeted
    if not failed:
        return "success", f"image version {name}: {', '.join(sorted(only))} no longer Failed: " \
                          f"{progress_replication(state)}"
    return "retry", progress_replication(state)


GALLERY_REGION_SETTLED = register(Waiter(
    name="gallery_region_settled", hook="arm", probe=probe_replication, evaluate=evaluate_region_settled,
    progress=progress_replication, description="a retried region is out of targetRegions (or no longer Failed) and "
                                               "no update is in flight",
))


GALLERY_REPLICATION = register(Waiter(
    name="gallery_replication", hook="arm", probe=probe_replication, evaluate=evaluate_replication,
    progress=progress_replication, description="an image version is Completed in every target region",
))
