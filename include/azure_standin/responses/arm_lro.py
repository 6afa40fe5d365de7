"""ARM long-running operations on the wire: what azure-mgmt-core's ARMPolling expects.

A create answers 201/200 with the resource (provisioningState Creating/Updating), an
`Azure-AsyncOperation` URL for an operation-status resource, and Retry-After. A delete answers 202
with `Location` (204 when done) and `Azure-AsyncOperation`. Operation records are documents of kind
`operation`; their status is derived from the target, so they too survive a restart.
"""
from __future__ import annotations

import uuid

from starlette.routing import Route

from ..core import timings
from ..core.errors import ArmError, NotFound
from .routing import ApiRequest, json_response, op_route

TERMINAL = {"Succeeded", "Failed", "Canceled"}


def _op_urls(ctx, req: ApiRequest, location: str, op_id: str) -> tuple[str, str]:
    sub = req.path_params.get("subscription_id") or ctx.config.subscription_id
    api = req.api_version or "2024-03-01"
    base = f"{ctx.config.base_url}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}"
    return (
        f"{base}/operations/{op_id}?api-version={api}",
        f"{base}/operationResults/{op_id}?api-version={api}",
    )


def _new_operation(ctx, kind: str, key: str, op_type: str, location: str) -> str:
    op_id = str(uuid.uuid4())
    ctx.store.put("operation", op_id, {
        "id": op_id, "kind": kind, "key": key.lower(), "type": op_type, "location": location,
        "start": ctx.clock.now(),
    })
    return op_id


def begin_create(ctx, req: ApiRequest, kind: str, body: dict, *, location: str, created: bool = True):
    """Answer a PUT whose resource is now Creating/Updating (already stored by the backend)."""
    op_id = _new_operation(ctx, kind, body["id"], "create", location)
    async_url, _ = _op_urls(ctx, req, location, op_id)
    headers = {
        "Azure-AsyncOperation": async_url,
        "Retry-After": ctx.clock.retry_after(timings.ARM_RETRY_AFTER),
    }
    return json_response(body, 201 if created else 200, headers)


def begin_delete(ctx, req: ApiRequest, kind: str, key: str, *, location: str, duration: float = timings.DELETE):
    """Mark the document as Deleting; it disappears when simulated time passes `duration`."""
    body = ctx.store.get(kind, key)
    if body is None:
        return json_response(None, 204)
    body.setdefault("_sim", {})["delete_at"] = ctx.clock.now() + duration
    body.setdefault("properties", {})["provisioningState"] = "Deleting"
    ctx.store.put(kind, key, body)
    return accept_delete(ctx, req, kind, key, location=location)


def accept_delete(ctx, req: ApiRequest, kind: str, key: str, *, location: str):
    """Answer a DELETE whose document the backend already set going (it disappears from the store when done): 202
    with Location and Azure-AsyncOperation, polled until the document is gone."""
    op_id = _new_operation(ctx, kind, key, "delete", location)
    async_url, result_url = _op_urls(ctx, req, location, op_id)
    return json_response(None, 202, {
        "Azure-AsyncOperation": async_url,
        "Location": result_url,
        "Retry-After": ctx.clock.retry_after(timings.ARM_RETRY_AFTER),
    })


def begin_action(ctx, req: ApiRequest, kind: str, key: str, *, location: str, want: str):
    """Answer a POST action (VM deallocate) that runs until the resource's power state is `want`: 202 with
    Azure-AsyncOperation and Location, as the SDK's begin_deallocate polls them."""
    op_id = _new_operation(ctx, kind, key, "power", location)
    op = ctx.store.get("operation", op_id)
    op["want"] = want
    ctx.store.put("operation", op_id, op)
    async_url, result_url = _op_urls(ctx, req, location, op_id)
    return json_response(None, 202, {
        "Azure-AsyncOperation": async_url, "Location": result_url,
        "Retry-After": ctx.clock.retry_after(timings.ARM_RETRY_AFTER),
    })


def operation_status(ctx, op_id: str) -> dict:
    op = ctx.store.get("operation", op_id)
    if op is None:
        raise NotFound(f"The operation '{op_id}' could not be found.")
    target = ctx.store.get(op["kind"], op["key"])
    out = {"name": op_id, "startTime": ctx.clock.iso(op["start"])}
    if op["type"] == "delete":
        out["status"] = "Succeeded" if target is None else "InProgress"
    elif op["type"] == "power":  # a VM action (deallocate): done when the VM reaches the wanted power state
        out["status"] = "Failed" if target is None else (
            "Succeeded" if (target.get("_sim") or {}).get("power_state") == op["want"] else "InProgress")
        if target is None:
            out["error"] = {"code": "ResourceNotFound", "message": "The VM was deleted during the operation."}
    elif target is None:
        out["status"] = "Failed"
        out["error"] = {"code": "ResourceNotFound", "message": "The resource was deleted while it was being created."}
    else:
        state = (target.get("properties") or {}).get("provisioningState", "Succeeded")
        out["status"] = state if state in TERMINAL else "InProgress"
        if state == "Failed":
            err = (target.get("_sim") or {}).get("error") or {}
            out["error"] = {"code": err.get("code", "InternalOperationError"),
                            "message": err.get("message", "The operation failed.")}
    if out["status"] in TERMINAL:
        out["endTime"] = ctx.clock.now_iso()
    return out


def _get_status(ctx, req: ApiRequest):
    status = operation_status(ctx, req.path_params["op_id"])
    # While running, say when to look again: without Retry-After, azure-core waits its 30 s default.
    headers = {"Retry-After": ctx.clock.retry_after(timings.ARM_RETRY_AFTER)} if status["status"] == "InProgress" else None
    return json_response(status, headers=headers)


def _get_result(ctx, req: ApiRequest):
    status = operation_status(ctx, req.path_params["op_id"])
    if status["status"] == "InProgress":
        return json_response(None, 202, {"Location": req.url, "Retry-After": ctx.clock.retry_after(timings.ARM_RETRY_AFTER)})
    if status["status"] == "Failed":
        raise ArmError(400, status["error"]["code"], status["error"]["message"])
    return json_response(None, 204)


_OPS = "/subscriptions/{subscription_id}/providers/Microsoft.Compute/locations/{location}"
ROUTES: list[Route] = [
    op_route(_OPS + "/operations/{op_id}", {"GET": ("Operations_GetStatus", _get_status)}),
    op_route(_OPS + "/operationResults/{op_id}", {"GET": ("Operations_GetResult", _get_result)}),
]
