"""What the steady-state sensor (:mod:`batch_images.sensors.pool`) does when its waiter reports a failure.

:class:`PoolRepair`, one step per failure the ``batch_pool_steady`` waiter reports:

* ``AllocationTimedout`` -> one more resize to the target (``max_allocation_retries``);
* starttaskfailed / unusable nodes beyond the tolerated share -> reboot them, then remove them and
  resize back to the target ("re-add"), up to ``max_node_repairs`` rounds; then fail listing the nodes
  and their errors;
* steady below/above target without a resize error -> resize to the target (also the "re-add" step);
* quota -> fatal at once, Batch's message with its numbers.

When the sensor gives up it deletes the pool if - and only if - this DAG run created it (pool metadata
``dag_id`` / ``run_id``) *and* nobody uses it: no node runs a task and no job or job schedule points at
it (:meth:`PoolRepair.users`). So a failed run leaves no half-made pool behind, never touches a pool it did
not make, and never kills users' tasks (a clear-and-rerun of a run whose pool already serves jobs). The same
check guards the one repair that could shrink a pool (a resize down to the target); node repairs touch only
starttaskfailed/unusable nodes, and reboot/remove them with ``taskcompletion``, so even a node that started
a task meanwhile finishes it first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from batch_images.pool_facts import (
    UNHEALTHY_NODE_STATES,
    batch_error_text,
    created_by_run,
    enum_text,
    node_report,
    pool_metadata,
)

if TYPE_CHECKING:
    from batch_images.hooks.batch import BatchPoolHook

_MAX_NODES_IN_MESSAGE = 20


class PoolRepairFailed(Exception):
    """The pool cannot reach steady state; the message says why (and lists unhealthy nodes)."""


class PoolRepair:
    """One repair step per waiter failure, with limits kept in ``attempts`` (a JSON dict the sensor carries).

    :meth:`attempt` either performs an action and returns a description of it (the sensor then waits
    again), or raises :class:`PoolRepairFailed`.
    """

    def __init__(self, hook: BatchPoolHook, *, pool_id: str, target_dedicated_nodes: int, target_low_priority_nodes: int,
                 resize_timeout: timedelta | str | None = None, max_allocation_retries: int = 1,
                 max_node_repairs: int = 2, max_resizes: int = 3, log=None) -> None:
        self.hook = hook
        self.pool_id = pool_id
        self.target_dedicated_nodes = int(target_dedicated_nodes)
        self.target_low_priority_nodes = int(target_low_priority_nodes)
        self.resize_timeout = resize_timeout
        self.max_allocation_retries = max_allocation_retries
        self.max_node_repairs = max_node_repairs
        self.max_resizes = max_resizes
        self.log = log or hook.log

    def attempt(self, reason: str, message: str, state: dict, attempts: dict) -> str:
        from batch_images.triggers.waiters import batch as waiter

        if reason == waiter.ALLOCATION_TIMED_OUT:
            n = self._counted_resize(attempts, "allocation_retries", self.max_allocation_retries, message,
                                     lambda used: f"{used} resize retr{'y' if used == 1 else 'ies'}")
            return f"allocation timed out; resize retry {n}/{self.max_allocation_retries} to the target"
        if reason == waiter.SIZE_MISMATCH:
            n = self._counted_resize(attempts, "resizes", self.max_resizes, message, lambda used: f"{used} resizes")
            return f"pool steady off target; resize {n}/{self.max_resizes} to the target"
        if reason == waiter.UNHEALTHY_NODES:
            return self._repair_nodes(message, state, attempts)
        raise PoolRepairFailed(message)

    def _counted_resize(self, attempts: dict, key: str, limit: int, message: str, spent) -> int:
        """Resize to the target as attempt ``attempts[key] + 1`` of ``limit``; give up (``spent(used)`` says what
        was tried) when the limit is reached. Returns the attempt's number."""
        used = attempts.get(key, 0)
        if used >= limit:
            raise PoolRepairFailed(f"{message} (gave up after {spent(used)})")
        attempts[key] = used + 1
        self._resize()
        return used + 1

    def _resize(self) -> None:
        from azure.core.exceptions import HttpResponseError

        pool = self.hook.get_pool(self.pool_id)
        shrinks = pool is not None and (
            (pool.current_dedicated_nodes or 0) > self.target_dedicated_nodes
            or (pool.current_low_priority_nodes or 0) > self.target_low_priority_nodes)
        if shrinks:
            users = self.users()
            if users:  # a resize down requeues the tasks of the nodes it removes
                raise PoolRepairFailed(
                    f"Batch pool {self.pool_id} has {pool.current_dedicated_nodes} dedicated + "
                    f"{pool.current_low_priority_nodes} low-priority nodes, more than the target "
                    f"{self.target_dedicated_nodes} + {self.target_low_priority_nodes}, and is in use ({'; '.join(users)}): not "
                    "shrinking it, which would requeue users' tasks. Fix: resize it yourself when its work allows, "
                    "or raise the pipeline's node counts to the pool's size.")
        try:
            self.hook.resize_pool(self.pool_id, self.target_dedicated_nodes, self.target_low_priority_nodes, self.resize_timeout)
        except HttpResponseError as err:
            raise PoolRepairFailed(f"Batch pool {self.pool_id}: the resize to the target failed: "
                                   f"{batch_error_text(err)}") from None

    def unhealthy_nodes(self) -> list[dict]:
        return [node_report(n) for n in self.hook.list_nodes(self.pool_id, UNHEALTHY_NODE_STATES)]

    def describe_nodes(self, nodes: list[dict]) -> str:
        lines = [f"  {n['id']}: {n['state']}" + (f" - {'; '.join(n['errors'])}" if n["errors"] else "")
                 for n in nodes[:_MAX_NODES_IN_MESSAGE]]
        if len(nodes) > _MAX_NODES_IN_MESSAGE:
            lines.append(f"  ... and {len(nodes) - _MAX_NODES_IN_MESSAGE} more")
        return "\n".join(lines)

    def _repair_nodes(self, message: str, state: dict, attempts: dict) -> str:
        from azure.core.exceptions import HttpResponseError

        used = attempts.get("node_repairs", 0)
        nodes = self.unhealthy_nodes()
        if used >= self.max_node_repairs:
            raise PoolRepairFailed(f"{message}\nGave up after {used} repair round(s) (reboot, then remove and "
                                   f"re-add). Unhealthy nodes:\n{self.describe_nodes(nodes)}")
        if not nodes:  # recovered between the poll and now
            return "no unhealthy nodes any more"
        attempts["node_repairs"] = used + 1
        steady = (state.get("allocation_state") or "").lower() == "steady"
        node_ids = [n["id"] for n in nodes]
        if used == 0 or not steady:
            rebooted, refused = [], []
            for nid in node_ids:
                try:  # taskcompletion: a node that took a task since the listing finishes it first
                    self.hook.reboot_node(self.pool_id, nid, "taskcompletion")
                    rebooted.append(nid)
                except HttpResponseError as err:
                    refused.append(f"{nid} ({batch_error_text(err)})")
            if rebooted:
                return (f"repair {used + 1}/{self.max_node_repairs}: rebooted {len(rebooted)} unhealthy node(s)"
                        + (f"; reboot refused for {', '.join(refused)}" if refused else ""))
            if not steady:
                raise PoolRepairFailed(f"{message}\nReboot was refused for every unhealthy node: "
                                       f"{', '.join(refused)}")
        try:
            self.hook.remove_nodes(self.pool_id, node_ids, self.resize_timeout,
                                   node_deallocation_option="taskcompletion")
        except HttpResponseError as err:
            raise PoolRepairFailed(f"{message}\nRemoving the unhealthy nodes failed: {batch_error_text(err)}. "
                                   f"Unhealthy nodes:\n{self.describe_nodes(nodes)}") from None
        return (f"repair {used + 1}/{self.max_node_repairs}: removed {len(node_ids)} unhealthy node(s); the pool is "
                "resized back to its target once steady")

    def users(self) -> list[str]:
        """What uses the pool, for a person to read; empty when nothing does.

        Three requests whatever the account's size: ``/nodecounts`` for the pool (nodes running tasks),
        ``GET /jobs`` filtered on ``executionInfo/poolId`` (a filterable property of List Jobs, see
        learn.microsoft.com/rest/api/batchservice/odata-filters-in-batch), and ``GET /jobschedules`` of the
        active and disabled schedules (poolInfo is not filterable there, so it is compared here). Jobs and
        schedules that are completed or being deleted or terminated no longer point anywhere. A read that
        fails counts as "in use": when unsure, leave the pool.
        """
        from azure.core.exceptions import HttpResponseError

        found: list[str] = []
        pool_id = self.pool_id.lower()
        try:
            running = (self.hook.pool_node_counts(self.pool_id).get("total") or {}).get("running", 0)
            if running:
                found.append(f"{running} node(s) running tasks")
            flt = "executionInfo/poolId eq '{}'".format(self.pool_id.replace("'", "''"))
            jobs = [j for j in self.hook.list_jobs(filter=flt, select=["id", "state", "poolInfo", "executionInfo"])
                    if (enum_text(j.state) or "").lower() in _LIVE_JOB_STATES
                    and _points_at(j.pool_info, j.execution_info, pool_id)]
            found += [f"job {j.id} ({enum_text(j.state)})" for j in jobs[:_MAX_NODES_IN_MESSAGE]]
            if len(jobs) > _MAX_NODES_IN_MESSAGE:
                found.append(f"{len(jobs) - _MAX_NODES_IN_MESSAGE} more job(s)")
            schedules = [s for s in self.hook.list_job_schedules(filter="state eq 'active' or state eq 'disabled'",
                                                                 select=["id", "state", "jobSpecification"])
                         if _points_at(getattr(s.job_specification, "pool_info", None), None, pool_id)]
            found += [f"job schedule {s.id} ({enum_text(s.state)})" for s in schedules[:_MAX_NODES_IN_MESSAGE]]
        except HttpResponseError as err:
            found.append(f"could not check who uses it: {batch_error_text(err)}")
        return found

    def cleanup(self, dag_id: str | None, run_id: str | None) -> str:
        """Delete the pool if this run created it and nobody uses it; say what was done (for the failure message)."""
        from azure.core.exceptions import HttpResponseError

        try:
            pool = self.hook.get_pool(self.pool_id)
        except HttpResponseError as err:
            return f"Could not read pool {self.pool_id} to clean it up: {batch_error_text(err)}."
        if pool is None:
            return f"Pool {self.pool_id} no longer exists."
        if not created_by_run(pool_metadata(pool), dag_id, run_id):
            return f"Pool {self.pool_id} was left in place: this run did not create it."
        if (enum_text(pool.state) or "").lower() == "deleting":
            return f"Pool {self.pool_id} is already being deleted."
        users = self.users()
        if users:
            return (f"Pool {self.pool_id} (created by this run) was left in place because it is in use: "
                    f"{'; '.join(users)}. Deleting it would kill and requeue those tasks. Delete it yourself once "
                    "its work is done, if it should go.")
        try:
            self.hook.delete_pool(self.pool_id)
        except HttpResponseError as err:
            return f"Deleting pool {self.pool_id} (created by this run) failed: {batch_error_text(err)}."
        return f"Pool {self.pool_id} (created by this run) was deleted, so no half-made pool is left behind."


# Job states in which a job can still run tasks on its pool (BatchJobState: completed, deleting and terminating
# jobs schedule nothing more).
_LIVE_JOB_STATES = ("active", "disabling", "disabled", "enabling")


def _points_at(pool_info: Any, execution_info: Any, pool_id: str) -> bool:
    """A job's / job specification's poolInfo.poolId (or the job's executionInfo.poolId) is this pool."""
    ids_ = (getattr(pool_info, "pool_id", None), getattr(execution_info, "pool_id", None))
    return any((i or "").lower() == pool_id for i in ids_)
