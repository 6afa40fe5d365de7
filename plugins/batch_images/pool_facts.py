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
UNHEALTHY_NODE_STATES = ("starttaskfailed", "unusable")



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


def same_image(a: str | None, b: str | None) -> bool:
    """ARM ids compare case-insensitively."""
    return bool(a) and bool(b) and a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()  # type: ignore[union-attr]


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
        "current_dedicated": pool.current_dedicated_nodes or 0,
        "current_low_priority": pool.current_low_priority_nodes or 0,
        "pool_target_dedicated": pool.target_dedicated_nodes or 0,
        "pool_target_low_priority": pool.target_low_priority_nodes or 0,
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
