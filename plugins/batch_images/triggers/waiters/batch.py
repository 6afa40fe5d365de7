"""Waiter ``batch_pool_steady``: a Batch pool is steady at its target size with its nodes ready.

Args: ``pool_id``, ``target_dedicated_nodes``, ``target_low_priority_nodes``, ``max_unhealthy_node_share``.

One poll = ``GET /pools/{id}`` + ``GET /nodecounts`` filtered to the pool: two requests whatever the
pool size (nodes are never listed here).

* success - ``allocationState`` steady, current dedicated / low-priority == target, no node still on its
  way (creating, starting, waitingforstarttask, rebooting, ...), at least one node ready, and at most
  ``floor(max_unhealthy_node_share * target nodes)`` unhealthy ones. Each Batch node state has one verdict in
  :data:`batch_images.pool_facts.NODE_STATE_VERDICTS`: ``idle`` and ``running`` are ready (a pool busy with
  users' tasks is a ready pool), ``preempted`` Spot/low-priority nodes, ``offline`` and deallocated nodes
  are tolerated and named in the message.
* failure, fast and with the reason in the message:
  - ``resizeErrors``: quota (``...QuotaReached``, Batch's message with its numbers), ``AllocationTimedout``,
    any other code;
  - starttaskfailed + unusable nodes above what ``max_unhealthy_node_share`` tolerates (counts listed);
  - steady at a size other than the target without a resize error (a stopped or shrunk resize);
  - the pool is gone or being deleted.
* retry otherwise. Progress line: ``allocation resizing; 3/4 dedicated; idle 2, starting 1, waitingforstarttask 1``.

:func:`classify` gives the same verdict plus a machine-readable reason, which the sensor's repair uses
(``operators/pool.py``); :func:`read_pool_state` is the sync twin of the probe.
"""

from __future__ import annotations

import math
from typing import Any

from batch_images.pool_facts import NOT_YET, READY, TOLERATED, UNHEALTHY, nodes_by_verdict, pool_summary

WAITER_NAME = "batch_pool_steady"

# Reasons (classify()[1]).
STEADY = "steady"
IN_PROGRESS = "in_progress"
QUOTA = "quota"
ALLOCATION_TIMED_OUT = "allocation_timed_out"
RESIZE_ERROR = "resize_error"
UNHEALTHY_NODES = "unhealthy_nodes"
SIZE_MISMATCH = "size_mismatch"
POOL_MISSING = "pool_missing"
POOL_DELETING = "pool_deleting"

# Order of node states in progress lines: the way a node walks, then the bad ones.
_STATE_ORDER = ("idle", "running", "creating", "starting", "waitingforstarttask", "rebooting", "reimaging",
                "starttaskfailed", "unusable", "leavingpool", "offline", "preempted", "unknown", "upgradingos",
                "deallocating", "deallocated")


def is_quota_error(code: str | None) -> bool:
    return bool(code) and "quota" in code.lower()  # type: ignore[union-attr]


def _args(pool_id: str, target_dedicated_nodes: int = 0, target_low_priority_nodes: int = 0,
          max_unhealthy_node_share: float = 0.0) -> dict:
    return {
        "pool_id": pool_id,
        "target_dedicated_nodes": int(target_dedicated_nodes or 0),
        "target_low_priority_nodes": int(target_low_priority_nodes or 0),
        "max_unhealthy_node_share": float(max_unhealthy_node_share or 0.0),
    }


def build_state(args: dict, pool: Any, counts: dict | None) -> dict:
    """The JSON-able state the evaluator reads: the waiter args, the pool's facts, node counts by state."""
    state = dict(args)
    if pool is None:
        state["found"] = False
        return state
    state["found"] = True
    state.update(pool_summary(pool))
    state["nodes"] = dict((counts or {}).get("total") or {})
    return state


async def probe(hook, pool_id: str, target_dedicated_nodes: int = 0, target_low_priority_nodes: int = 0,
                max_unhealthy_node_share: float = 0.0) -> dict:
    """Async probe (triggerer): the pool and its node counts through the hook's async client."""
    args = _args(pool_id, target_dedicated_nodes, target_low_priority_nodes, max_unhealthy_node_share)
    pool = await hook.async_get_pool(pool_id)
    counts = await hook.async_pool_node_counts(pool_id) if pool is not None else None
    return build_state(args, pool, counts)


def read_pool_state(hook, pool_id: str, target_dedicated_nodes: int = 0, target_low_priority_nodes: int = 0,
                    max_unhealthy_node_share: float = 0.0) -> dict:
    """Sync twin of :func:`probe` (operators, repair, tests)."""
    args = _args(pool_id, target_dedicated_nodes, target_low_priority_nodes, max_unhealthy_node_share)
    pool = hook.get_pool(pool_id)
    counts = hook.pool_node_counts(pool_id) if pool is not None else None
    return build_state(args, pool, counts)


def tolerated_unhealthy(state: dict) -> int:
    total = state.get("target_dedicated_nodes", 0) + state.get("target_low_priority_nodes", 0)
    return math.floor(float(state.get("max_unhealthy_node_share") or 0.0) * total + 1e-9)


def _nodes_text(nodes: dict) -> str:
    keys = [s for s in _STATE_ORDER if nodes.get(s)] + sorted(s for s in nodes if s not in _STATE_ORDER and nodes[s])
    return ", ".join(f"{s} {nodes[s]}" for s in keys) or "no nodes yet"


def format_resize_error(err: dict) -> str:
    values = err.get("values") or {}
    extra = f" ({', '.join(f'{k}={v}' for k, v in values.items())})" if values else ""
    return f"{err.get('code')}: {err.get('message')}{extra}"


def progress(state: dict) -> str:
    """``allocation resizing; 3/4 dedicated; idle 2, starting 1, waitingforstarttask 1``."""
    if not state.get("found"):
        return f"pool {state.get('pool_id')} not found"
    parts = [f"allocation {state.get('allocation_state')}",
             f"{state.get('current_dedicated_nodes', 0)}/{state.get('target_dedicated_nodes', 0)} dedicated"]
    if state.get("target_low_priority_nodes") or state.get("current_low_priority_nodes"):
        parts.append(f"{state.get('current_low_priority_nodes', 0)}/{state.get('target_low_priority_nodes', 0)} low-priority")
    parts.append(_nodes_text(state.get("nodes") or {}))
    return "; ".join(parts)


def classify(state: dict) -> tuple[str, str, str]:
    """``(status, reason, message)``; status is ``success`` | ``failure`` | ``retry``."""
    pool_id = state.get("pool_id")
    if not state.get("found"):
        return "failure", POOL_MISSING, f"Batch pool {pool_id} does not exist (deleted, or never created)."
    if (state.get("state") or "").lower() == "deleting":
        return "failure", POOL_DELETING, f"Batch pool {pool_id} is being deleted."

    errors = state.get("resize_errors") or []
    if errors:
        codes = [e.get("code") or "" for e in errors]
        text = "; ".join(format_resize_error(e) for e in errors)
        where = f"Batch pool {pool_id} stopped allocating at {state.get('current_dedicated_nodes', 0)}/" \
                f"{state.get('target_dedicated_nodes', 0)} dedicated, {state.get('current_low_priority_nodes', 0)}/" \
                f"{state.get('target_low_priority_nodes', 0)} low-priority nodes"
        if any(is_quota_error(c) for c in codes):
            return ("failure", QUOTA,
                    f"{where}: the Batch account's quota is exhausted - {text}. Fix: request a higher core quota for "
                    "the account (Azure portal > Batch account > Quotas), lower the pool's node count, or pick a VM "
                    "size in a family with free quota.")
        if any(c.lower() == "allocationtimedout" for c in codes):
            return ("failure", ALLOCATION_TIMED_OUT,
                    f"{where}: {text}. Fix: retry the resize, or raise resize_timeout_minutes (15 min per 1000 VMs "
                    "is the minimum Microsoft recommends).")
        return "failure", RESIZE_ERROR, f"{where}: {text}"

    nodes = state.get("nodes") or {}
    verdicts = nodes_by_verdict(nodes)
    unhealthy = verdicts[UNHEALTHY]
    n_unhealthy = sum(unhealthy.values())
    allowed = tolerated_unhealthy(state)
    target_total = state.get("target_dedicated_nodes", 0) + state.get("target_low_priority_nodes", 0)
    if n_unhealthy > allowed:
        detail = ", ".join(f"{s} {n}" for s, n in unhealthy.items())
        return ("failure", UNHEALTHY_NODES,
                f"Batch pool {pool_id}: {n_unhealthy} of {target_total} nodes are unhealthy ({detail}); at most "
                f"{allowed} tolerated (max_unhealthy_node_share {state.get('max_unhealthy_node_share')}). "
                f"All nodes: {_nodes_text(nodes)}.")

    allocation = (state.get("allocation_state") or "").lower()
    if allocation != "steady":
        return "retry", IN_PROGRESS, progress(state)
    sized = (state.get("current_dedicated_nodes", 0) == state.get("target_dedicated_nodes", 0)
             and state.get("current_low_priority_nodes", 0) == state.get("target_low_priority_nodes", 0))
    if not sized:
        return ("failure", SIZE_MISMATCH,
                f"Batch pool {pool_id} is steady at {state.get('current_dedicated_nodes', 0)} dedicated + "
                f"{state.get('current_low_priority_nodes', 0)} low-priority nodes, not the target "
                f"{state.get('target_dedicated_nodes', 0)} + {state.get('target_low_priority_nodes', 0)}, and reports no resize "
                "error (the resize was stopped or nodes were removed). Fix: resize the pool to its target.")
    # Ready: nothing still on its way (NODE_STATE_VERDICTS), every node of the target counted, and not every node
    # preempted (then the pool has no capacity at all yet). Running tasks are users' work: a busy pool is ready.
    n_ready = sum(verdicts[READY].values())
    n_tolerated = sum(verdicts[TOLERATED].values())
    n_counted = n_ready + n_tolerated + n_unhealthy
    all_preempted = target_total > 0 and verdicts[TOLERATED].get("preempted", 0) == n_counted
    if not verdicts[NOT_YET] and n_counted >= target_total and not all_preempted:
        return "success", STEADY, f"Batch pool {pool_id} is steady: {ready_text(nodes, target_total)}."
    return "retry", IN_PROGRESS, progress(state)


def ready_text(nodes: dict, target_total: int) -> str:
    """``5/6 nodes ready (idle 3, running 2); 1 preempted (Spot/low-priority, Batch brings it back)``."""
    verdicts = nodes_by_verdict(nodes)
    n_ready = sum(verdicts[READY].values())
    parts = [f"{n_ready}/{target_total} nodes ready ({_nodes_text(verdicts[READY])})"]
    for state, n in verdicts[TOLERATED].items():
        parts.append(f"{n} {state}" + _TOLERATED_NOTE.get(state, ""))
    if verdicts[UNHEALTHY]:
        parts.append(f"{_nodes_text(verdicts[UNHEALTHY])} tolerated (max_unhealthy_node_share)")
    return "; ".join(parts)


_TOLERATED_NOTE = {
    "preempted": " (Spot/low-priority, taken back by Azure; Batch brings it back when capacity returns)",
    "offline": " (task scheduling disabled by a user)",
    "deallocated": " (stopped by a user)",
    "deallocating": " (being stopped by a user)",
}


def evaluate(state: dict) -> tuple[str, str]:
    status, _reason, message = classify(state)
    return status, message


def _batch_hook(conn_id: str, client_options: dict | None = None):
    from batch_images.hooks.batch import BatchPoolHook

    return BatchPoolHook(conn_id, client_options=client_options)


def _register() -> None:
    from batch_images.triggers import waiters

    waiters.register_hook("batch", _batch_hook)
    waiters.register(waiters.Waiter(
        name=WAITER_NAME, hook="batch", probe=probe, evaluate=evaluate, progress=progress,
        description="Batch pool steady at its target size with its nodes ready (one /nodecounts call per poll)",
    ))


_register()
