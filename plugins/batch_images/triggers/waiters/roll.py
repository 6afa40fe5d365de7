"""Batch waiters of the roll (operators/roll.py): a draining pool runs nothing, a pool is empty or gone.

* ``batch_pool_drained`` - args ``pool_id``, ``job_ids`` (jobs left to finish on it, ``active_jobs: drain``).
  One poll = ``GET /nodecounts`` (filtered to the pool) + ``GET /jobs/{id}/taskcounts`` per job. Success when no
  node of the pool runs a task and those jobs have no active (queued) or running task; the pool being gone is
  success too. The drain bound is the trigger's deadline (``drain_timeout_minutes``): on timeout the operator
  keeps or deletes the pool (``on_drain_timeout``).
* ``batch_pool_empty`` - args ``pool_id``. Success when the pool is steady with zero nodes (after a resize to
  zero with ``taskcompletion``: running tasks finish first); a resize error fails.
* ``batch_pool_gone`` - args ``pool_id``. Success when ``GET /pools/{id}`` answers 404.
* ``batch_pool_autoscaled`` - args ``pool_id``. One poll = ``GET /pools/{id}``. Success when the pool reports an
  ``autoScaleRun`` without ``error`` (its first evaluation after ``enableautoscale``); an evaluation error or the
  pool being gone fails, naming Batch's code and message.
"""

from __future__ import annotations

from typing import Any

from batch_images.pool_facts import enum_text
from batch_images.rules import roll


async def probe_drained(hook: Any, pool_id: str, job_ids: list[str] | None = None) -> dict:
    pool = await hook.async_get_pool(pool_id)
    if pool is None:
        return {"pool_id": pool_id, "found": False, "running_nodes": 0, "jobs": {}}
    counts = await hook.async_pool_node_counts(pool_id)
    client = await hook.get_async_conn()
    jobs = {}
    for job_id in job_ids or []:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            result = await client.get_job_task_counts(job_id)
        except ResourceNotFoundError:
            continue
        tc = result.task_counts
        jobs[job_id] = {"active": tc.active or 0, "running": tc.running or 0}
    return {"pool_id": pool_id, "found": True, "running_nodes": int((counts.get("total") or {}).get("running", 0)),
            "jobs": jobs}


def _left(state: dict) -> tuple[int, int]:
    jobs = state.get("jobs") or {}
    running = int(state.get("running_nodes") or 0) + sum(j.get("running", 0) for j in jobs.values())
    return running, sum(j.get("active", 0) for j in jobs.values())


def evaluate_drained(state: dict) -> tuple[str, str]:
    if not state.get("found"):
        return "success", f"pool {state['pool_id']} is gone"
    running, active = _left(state)
    if roll.drained(running, active):
        return "success", f"pool {state['pool_id']} runs no task and its drained jobs have none queued"
    return "retry", progress_drained(state)


def progress_drained(state: dict) -> str:
    jobs = state.get("jobs") or {}
    text = f"pool {state['pool_id']}: {state.get('running_nodes', 0)} node(s) running tasks"
    if jobs:
        text += "; " + ", ".join(f"job {j}: {c['running']} running, {c['active']} queued" for j, c in jobs.items())
    return text


async def probe_empty(hook: Any, pool_id: str) -> dict:
    pool = await hook.async_get_pool(pool_id)
    if pool is None:
        return {"pool_id": pool_id, "found": False}
    errors = [{"code": e.code, "message": e.message} for e in (pool.resize_errors or [])]
    return {"pool_id": pool_id, "found": True, "allocation_state": enum_text(pool.allocation_state),
            "current": (pool.current_dedicated_nodes or 0) + (pool.current_low_priority_nodes or 0),
            "target": (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0),
            "resize_errors": errors}


def evaluate_empty(state: dict) -> tuple[str, str]:
    if not state.get("found"):
        return "failure", f"pool {state['pool_id']} does not exist"
    steady = (state.get("allocation_state") or "").lower() == "steady"
    if steady and state.get("current") == 0:
        return "success", f"pool {state['pool_id']} has zero nodes"
    if steady and state.get("resize_errors"):
        return "failure", f"pool {state['pool_id']}: resize to zero stopped: " + "; ".join(
            f"{e['code']}: {e['message']}" for e in state["resize_errors"])
    return "retry", progress_empty(state)


def progress_empty(state: dict) -> str:
    return f"pool {state['pool_id']}: allocation {state.get('allocation_state')}, {state.get('current')} node(s) left"


async def probe_gone(hook: Any, pool_id: str) -> dict:
    pool = await hook.async_get_pool(pool_id)
    return {"pool_id": pool_id, "found": pool is not None, "state": enum_text(pool.state) if pool else None}


def evaluate_gone(state: dict) -> tuple[str, str]:
    if not state.get("found"):
        return "success", f"pool {state['pool_id']} deleted"
    return "retry", progress_gone(state)


def progress_gone(state: dict) -> str:
    return f"pool {state['pool_id']}: {state.get('state')}" if state.get("found") else f"pool {state['pool_id']} gone"


async def probe_autoscaled(hook: Any, pool_id: str) -> dict:
    pool = await hook.async_get_pool(pool_id)
    if pool is None:
        return {"pool_id": pool_id, "found": False}
    run, wire = pool.auto_scale_run, None
    if run is not None:  # Batch's wire shape, JSON-able (the state travels in the trigger's event)
        err = run.error
        wire = {"timestamp": str(run.timestamp) if run.timestamp else None, "results": run.results,
                "error": None if err is None else {"code": err.code, "message": err.message,
                                                   "values": [{"name": v.name, "value": v.value}
                                                              for v in err.error_values or []]}}
    return {"pool_id": pool_id, "found": True, "enable_auto_scale": bool(pool.enable_auto_scale),
            "auto_scale_run": wire}


def evaluate_autoscaled(state: dict) -> tuple[str, str]:
    if not state.get("found"):
        return "failure", f"pool {state['pool_id']} does not exist"
    if not state.get("enable_auto_scale"):
        return "failure", f"pool {state['pool_id']}: autoscale is not enabled"
    verdict, text = roll.autoscale_run_verdict(state.get("auto_scale_run"))
    status = {roll.DONE: "success", roll.WAIT: "retry"}.get(verdict, "failure")
    return status, f"pool {state['pool_id']}: {text}"


def progress_autoscaled(state: dict) -> str:
    return f"pool {state['pool_id']}: {roll.autoscale_run_verdict(state.get('auto_scale_run'))[1]}"


def _register() -> None:
    from batch_images.triggers import waiters
    from batch_images.triggers.waiters import batch  # noqa: F401  registers the "batch" hook kind

    waiters.register(waiters.Waiter(name="batch_pool_drained", hook="batch", probe=probe_drained,
                                    evaluate=evaluate_drained, progress=progress_drained,
                                    description="a pool runs no task and its drained jobs have none queued"))
    waiters.register(waiters.Waiter(name="batch_pool_empty", hook="batch", probe=probe_empty,
                                    evaluate=evaluate_empty, progress=progress_empty,
                                    description="a pool is steady at zero nodes"))
    waiters.register(waiters.Waiter(name="batch_pool_gone", hook="batch", probe=probe_gone,
                                    evaluate=evaluate_gone, progress=progress_gone,
                                    description="a pool is deleted"))
    waiters.register(waiters.Waiter(name="batch_pool_autoscaled", hook="batch", probe=probe_autoscaled,
                                    evaluate=evaluate_autoscaled, progress=progress_autoscaled,
                                    description="a pool's first autoscale evaluation succeeded"))


_register()
