"""Facts about Batch pools and nodes, read from SDK models and errors without importing the SDK.

Constants (Batch's node state names) and pure helpers shared by the hook (``hooks/batch.py``), the
``batch_pool_steady`` waiter, the pool operator and its repair, the steady-state sensor and preflight.
Everything here is duck-typed on the SDK's models (``BatchPool``, ``BatchNode``, ``BatchNodeCounts``)
and exceptions (``HttpResponseError``), so importing this module loads no Azure SDK: DAG files import
the operators, which import this, and DAG parsing must stay fast (tests/test_dag_integrity.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import isodate

from batch_images.rules import naming
from batch_images.rules.errors import InvalidInput

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError

# Batch node states (as the REST API spells them) <-> BatchNodeCounts attribute names.
NODE_COUNT_FIELDS: dict[str, str] = {
    "creating": "creating",
    "starting": "starting",
    "waitingforstarttask": "waiting_for_start_task",
    "starttaskfailed": "start_task_failed",
    "idle": "idle",
    "running": "running",
    "rebooting": "rebooting",
    "reimaging": "reimaging",
    "leavingpool": "leaving_pool",
    "offline": "offline",
    "preempted": "preempted",
    "unusable": "unusable",
    "unknown": "unknown",
    "upgradingos": "upgrading_os",
    "deallocating": "deallocating",
    "deallocated": "deallocated",
}

# What each node state means for "is the pool ready?" - one verdict per state Batch defines (BatchNodeState in
# azure-rest-api-specs specification/batch/Azure.Batch; the same 16 names as NODE_COUNT_FIELDS). A test checks
# that both tables name the same states and that every SDK enum value has a verdict.
READY = "ready"            # the node serves users' work (or is free to)
NOT_YET = "not_yet"        # on its way to ready: wait
UNHEALTHY = "unhealthy"    # cannot run tasks: counts against max_unhealthy_node_share, repair target
TOLERATED = "tolerated"    # out of service by a user's (or Spot capacity's) decision: the pool is still ready

NODE_STATE_VERDICTS: dict[str, tuple[str, str]] = {
    "idle": (READY, "allocated, booted, start task done, no task running"),
    "running": (READY, "running users' tasks: a healthy node, never a reason to wait or to touch the pool"),
    "creating": (NOT_YET, "the VM is being allocated"),
    "starting": (NOT_YET, "the VM boots and the Batch agent starts"),
    "waitingforstarttask": (NOT_YET, "the start task runs (waitForSuccess) and no task is scheduled yet"),
    "rebooting": (NOT_YET, "rebooted by a user or a repair; comes back as idle"),
    "reimaging": (NOT_YET, "reimaged by a user; comes back as idle"),
    "upgradingos": (NOT_YET, "an automatic OS upgrade (upgradePolicy) runs; comes back as idle"),
    "leavingpool": (NOT_YET, "being removed (resize down, removenodes); the pool is resizing meanwhile"),
    "unknown": (NOT_YET, "Batch lost contact with the node; it recovers or Batch marks it unusable"),
    "starttaskfailed": (UNHEALTHY, "the start task failed (waitForSuccess): no task is scheduled on it"),
    "unusable": (UNHEALTHY, "the node cannot run tasks (agent, image or disk failure)"),
    "offline": (TOLERATED, "a user disabled task scheduling on it; running tasks go on"),
    "preempted": (TOLERATED, "a Spot/low-priority node taken back by Azure; Batch replaces it when capacity "
                             "returns (dedicated nodes are never preempted)"),
    "deallocating": (TOLERATED, "a user is stopping the node (Deallocate node); their choice, not a failure"),
    "deallocated": (TOLERATED, "a user stopped the node (Deallocate node); Start node brings it back"),
}
UNHEALTHY_NODE_STATES = tuple(s for s, (v, _) in NODE_STATE_VERDICTS.items() if v == UNHEALTHY)


def node_state_verdict(state: str) -> str:
    """The verdict of a node state (any spelling: Batch compares case-insensitively); an unknown name waits."""
    return NODE_STATE_VERDICTS.get((state or "").lower(), (NOT_YET, ""))[0]


def nodes_by_verdict(nodes: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{state: n}`` -> ``{verdict: {state: n}}`` (zero counts left out)."""
    out: dict[str, dict[str, int]] = {READY: {}, NOT_YET: {}, UNHEALTHY: {}, TOLERATED: {}}
    for state, n in (nodes or {}).items():
        if n:
            out[node_state_verdict(state)][state.lower()] = int(n)
    return out



def iso_duration(value: timedelta) -> str:
    """``timedelta(minutes=15)`` -> ``"PT15M"``."""
    return isodate.duration_isoformat(value)


def parse_duration(value: str | timedelta | int | float, field: str = "resize_timeout") -> timedelta:
    """An ISO 8601 duration (``PT15M``, ``PT15M00S``, ``P1DT2H``), a timedelta, or seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        try:
            parsed = isodate.parse_duration(value.strip())
        except (isodate.ISO8601Error, ValueError):
            parsed = None
        if isinstance(parsed, timedelta):
            return parsed
    raise InvalidInput(field, value, "not an ISO 8601 duration", "write it like PT15M (15 minutes) or PT1H30M")


def enum_text(value: Any) -> str | None:
    """An SDK enum (``OSType.LINUX``) or plain string -> its wire value (``"linux"``); None stays None."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def batch_error_code(err: HttpResponseError) -> str | None:
    """Batch's error code (``PoolExists``, ``PoolBeingDeleted``, ...) of an SDK exception."""
    error = getattr(err, "error", None)
    code = getattr(error, "code", None)
    if code:
        return str(code)
    model = getattr(err, "model", None)
    return getattr(model, "code", None)


def batch_error_text(err: HttpResponseError) -> str:
    """``"Code: message (key=value, ...)"`` of a Batch error, for messages a person reads."""
    error = getattr(err, "error", None)
    code = batch_error_code(err) or getattr(err, "status_code", "") or "Error"
    message = getattr(error, "message", None) or getattr(err, "message", None) or str(err)
    message = str(message).split("\nRequestId:")[0].strip()
    details = [f"{d.code}={d.message}" for d in (getattr(error, "details", None) or []) if getattr(d, "code", None)]
    return f"{code}: {message}" + (f" ({', '.join(details)})" if details else "")


def created_by_run(metadata: dict[str, str], dag_id: str | None, run_id: str | None) -> bool:
    """Did this DAG run create the pool? (pool metadata written by the pool operator: ``dag_id``, ``run_id``)."""
    return bool(run_id) and metadata.get(naming.TAG_RUN_ID) == run_id and metadata.get(naming.TAG_DAG_ID) == dag_id


def node_counts_dict(counts: Any) -> dict[str, int]:
    """A ``BatchNodeCounts`` model -> ``{state: count}`` with Batch's state names, zeros dropped."""
    if counts is None:
        return {}
    out: dict[str, int] = {}
    for state, attr in NODE_COUNT_FIELDS.items():
        n = getattr(counts, attr, None) or 0
        if n:
            out[state] = int(n)
    return out


def resize_errors_list(pool: Any) -> list[dict]:
    """A pool's ``resizeErrors`` as plain dicts ``{code, message, values: {name: value}}``."""
    out = []
    for err in getattr(pool, "resize_errors", None) or []:
        values = {v.name: v.value for v in (getattr(err, "error_values", None) or []) if getattr(v, "name", None)}
        out.append({"code": err.code, "message": err.message, "values": values})
    return out


def pool_image_id(pool: Any) -> str | None:
    vmc = getattr(pool, "virtual_machine_configuration", None)
    ref = getattr(vmc, "image_reference", None)
    return getattr(ref, "virtual_machine_image_id", None)


def pool_metadata(pool: Any) -> dict[str, str]:
    return {m.name: m.value for m in (getattr(pool, "metadata", None) or []) if getattr(m, "name", None)}


def pool_summary(pool: Any) -> dict:
    """The JSON-able facts of a pool that waiters, repair and reports use."""
    return {
        "pool_id": pool.id,
        "state": enum_text(pool.state),
        "allocation_state": enum_text(pool.allocation_state),
        "current_dedicated_nodes": pool.current_dedicated_nodes or 0,
        "current_low_priority_nodes": pool.current_low_priority_nodes or 0,
        "resize_errors": resize_errors_list(pool),
        "image_id": pool_image_id(pool),
        "metadata": pool_metadata(pool),
    }


def node_report(node: Any) -> dict:
    """One node's state and its errors (start task failure, node errors), as plain data."""
    errors = [f"{e.code}: {e.message}" for e in (getattr(node, "errors", None) or []) if getattr(e, "code", None)]
    info = getattr(node, "start_task_info", None)
    failure = getattr(info, "failure_info", None)
    if failure is not None and getattr(failure, "code", None):
        exit_code = getattr(info, "exit_code", None)
        errors.append(f"start task {failure.code}: {failure.message}" + (f" (exit code {exit_code})" if exit_code is not None else ""))
    return {"id": node.id, "state": enum_text(node.state), "errors": errors}
