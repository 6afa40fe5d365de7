"""Waiter ``batch_smoke_test``: every task of a smoke-test job has exited 0 (:mod:`batch_images.operators.smoke`).

Args: ``job_id``, ``tasks`` (how many tasks the job holds).

One poll = ``GET /jobs/{id}/taskcounts``: one request whatever the number of tasks. Tasks are listed only
once the counts say the wait is over (to name the failed ones), never on every poll.

* success - ``tasks`` tasks completed, all succeeded (exit code 0);
* failure, fast - any task completed and failed (exit code not 0, or Batch ended it: its maxWallClockTime is the
  smoke test's timeout), or the job is gone; the failed tasks are in the state (``failed``: id, node, exit
  code, Batch's failure code and message);
* retry otherwise. Progress line: ``job smoke-x: 2/4 succeeded, 0 failed, 1 running, 1 queued``.

On timeout (the trigger's deadline) the state still lists what was not done, for the operator's message.
"""

from __future__ import annotations

from typing import Any

from batch_images.pool_facts import enum_text

WAITER_NAME = "batch_smoke_test"


def task_report(task: Any) -> dict:
    """One task as plain JSON: id, state, node, exit code, Batch's failure code and message (SDK BatchTask)."""
    info = task.execution_info
    failure = getattr(info, "failure_info", None)
    return {"id": task.id, "state": enum_text(task.state), "node_id": getattr(task.node_info, "node_id", None),
            "exit_code": getattr(info, "exit_code", None), "result": enum_text(getattr(info, "result", None)),
            "failure": " ".join(filter(None, [getattr(failure, "code", None), getattr(failure, "message", None)]))}


async def probe(hook: Any, job_id: str, tasks: int) -> dict:
    from azure.core.exceptions import ResourceNotFoundError

    client = await hook.get_async_conn()
    try:
        counts = (await client.get_job_task_counts(job_id)).task_counts
    except ResourceNotFoundError:
        return {"job_id": job_id, "tasks": tasks, "found": False}
    state = {"job_id": job_id, "tasks": tasks, "found": True, "active": counts.active or 0,
             "running": counts.running or 0, "completed": counts.completed or 0,
             "succeeded": counts.succeeded or 0, "failed": counts.failed or 0}
    if state["failed"] or state["completed"] >= tasks:
        listed = [task_report(t) async for t in client.list_tasks(
            job_id, select=["id", "state", "executionInfo", "nodeInfo"])]
        state["failed_tasks"] = [t for t in listed if t["state"] == "completed" and t["result"] != "success"]
    return state


def progress(state: dict) -> str:
    if not state.get("found"):
        return f"job {state['job_id']} does not exist"
    return (f"job {state['job_id']}: {state['succeeded']}/{state['tasks']} succeeded, {state['failed']} failed, "
            f"{state['running']} running, {state['active']} queued")


def evaluate(state: dict) -> tuple[str, str]:
    if not state.get("found"):
        return "failure", f"smoke-test job {state['job_id']} does not exist (deleted by someone else?)"
    if state.get("failed"):
        return "failure", f"{state['failed']} of {state['tasks']} smoke-test task(s) failed ({progress(state)})"
    if state.get("succeeded", 0) >= state["tasks"]:
        return "success", f"all {state['tasks']} smoke-test task(s) exited 0"
    return "retry", progress(state)


def _register() -> None:
    from batch_images.triggers import waiters
    from batch_images.triggers.waiters import batch  # noqa: F401 - registers the "batch" hook

    waiters.register(waiters.Waiter(
        name=WAITER_NAME, hook="batch", probe=probe, evaluate=evaluate, progress=progress,
        description="every task of a smoke-test job exited 0"))


_register()
