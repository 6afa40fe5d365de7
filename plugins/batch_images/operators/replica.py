"""A pool's wait for the image version's replica in its own Batch account's region (issue 10, step 2).

``publish_image_version`` returns once the version's create operation has ended, which covers replication to every
target region (Azure/azure-rest-api-specs#3080, azure-cli#7363: see ``GalleryImageVersionOperator``); nothing public
says Batch accepts a pool on a version whose operation still runs (its docs ask only for a replica in the account's
region), so no pool starts early in a region that finished first (issue 20). Each ``create_pool[i]`` still waits
(deferred, through the generic waiter trigger: ``gallery_replication`` with ``regions=[the pool's account region]``,
which also waits for no operation in flight) before it creates its pool: a guard for a version that changed since
(another run's update, a region that failed later) or a publish that did not wait; normally its first poll passes.
``promote_image_version`` waits for every region too.

Failed regions (Microsoft's workaround: remove the region from ``targetRegions``, wait for the update, add it back;
up to ``max_region_retries`` times, then fail naming the region and Azure's details; the steps are
:mod:`batch_images.operators.region_retry`'s, shared with publish/promote), with several pools per region and
several regions failing at once:

* one task per region retries it: the pool with the lowest index in the plan among the pools in that region
  (:func:`~batch_images.rules.replica_retry.retrier_index`, decided from the plan, the same in every task);
* every write is the full configured ``targetRegions`` minus at most the one region its writer retries
  (:func:`~batch_images.rules.replica_retry.retry_target_regions`), sent only after a fresh read showed that region
  Failed, and followed by a wait until no update is in flight (``gallery_region_settled``) and a fresh read that
  decides the next step (add the region back, or find it already added back by another writer's full list). So
  concurrent retries of different regions converge on the full list and never drop a replicated region;
* the other pools of the region wait: while the retrier's task runs (or is deferred) they wait in the triggerer for
  the region to leave Failed, re-checking the retrier's task state every :data:`RECHECK_POLLS` polls; when it has not
  started or is between tries they reschedule themselves (no try spent, the slot freed: under ``airflow dags test``,
  which runs task instances one at a time, this is what lets the retrier run); when it failed (gave up) they fail
  naming the region; when it succeeded and the region failed afterwards, they retry it themselves. Their wait
  budget (``timeouts.replication``) counts throughout, reschedules and retries included.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from batch_images.operators.region_retry import RETRY_HERE, RegionRetryingOperator
from batch_images.rules import replica_retry
from batch_images.rules.ids import region_key
from batch_images.rules.plan import Plan
from batch_images.triggers.base import budget_deadline
from batch_images.waiting import AzureWaitFailed

# A pool waiting for another task's retry of its region looks at that task's state every this many polls.
RECHECK_POLLS = 20
# Task states in which the retrier is not working on the region now (not started, or between tries).
_NOT_RUNNING = {None, "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule"}
_GAVE_UP = {"failed", "upstream_failed"}
_DONE = {"success", "skipped"}


class ReplicaWaitingOperator(RegionRetryingOperator):
    """Base of an operator that first waits for the image version's replica in one region (its pool's Batch account
    region), retrying that region when it ends Failed, then runs :meth:`replica_ready`.

    Subclasses give :meth:`replica_region` and :meth:`replica_ready`. Without a ``plan`` (or a region) there is
    nothing to wait for: :meth:`replica_ready` runs at once.

    :param plan: the preflight plan (configured ``target_regions``, the pools and their regions, ``gallery``,
        ``timeouts.replication``). (templated)
    :param max_region_retries: remove/re-add retries of a Failed region (default 2).
    :raises AzureWaitFailed: the region still Failed after the retries (names it and Azure's details), or the
        task that retries the region gave up; the version does not exist.
    :raises AirflowSensorTimeout: the replication budget ran out.
    """

    retry_give_up_hint = "; the pool of this task needs a replica there"

    def __init__(self, *, plan: Any = None, max_region_retries: int = 2, **kwargs: Any) -> None:
        super().__init__(max_region_retries=max_region_retries, **kwargs)
        self.plan = plan

    # -- what subclasses give -------------------------------------------------------------------------------------

    def replica_region(self) -> str | None:
        raise NotImplementedError

    def replica_version_id(self) -> str:
        raise NotImplementedError

    def replica_ready(self, context: Any) -> Any:
        raise NotImplementedError

    # -- the wait -------------------------------------------------------------------------------------------------

    @property
    def typed_plan(self) -> Plan | None:
        return Plan.from_dict(self.plan) if isinstance(self.plan, Mapping) else None

    def wait_for_replica(self, context: Any, attempt: int = 0, look_again: bool = False) -> Any:
        plan, region = self.typed_plan, self.replica_region()
        if plan is None or not region or not self.wait_for_completion:
            return self.replica_ready(context)
        version_id = self.replica_version_id()
        if not any(region_key(t.name) == region_key(region) for t in plan.target_regions):
            # preflight refuses such a config; a hand-made plan could still say it
            raise AirflowFailException(f"the pool's Batch account region {region} is not a target region of image "
                                       f"version {version_id}: no replica will ever be there. Fix: add "
                                       f"{{name: {region}}} to target_regions")
        if attempt == 0 and not look_again and self.is_retrier(context, region):
            self.finish_interrupted_retry(version_id, [region])
        return self.wait(context, waiter_name="gallery_replication",
                         waiter_args={"version_id": version_id, "regions": [region]},
                         timeout=self.timeout_seconds(plan), phase="replica", return_value=version_id,
                         extra={"attempt": attempt, "region": region})

    def wait_replication_again(self, context: Any, version_id: str, attempt: int) -> Any:
        return self.wait_for_replica(context, attempt, look_again=True)

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        region = extra.get("region") or self.replica_region()
        attempt = int(extra.get("attempt", 0))
        version_id = self.replica_version_id()
        what = f"image version {version_id} in {region}"
        if phase == "replica":
            if event.get("status") == "success":
                self.log.info("%s", event.get("message"))
                return self.replica_ready(context)
            failed = self.failed_in(event, [region])
            if not failed:
                self.check_event(event, what)  # raises: timeout, version gone, ...
                return self.replica_ready(context)
            return self.retry_failed_regions(context, version_id, failed, attempt)
        if phase == "retrier_wait":
            if event.get("status") == "timeout" and time.time() < float(extra.get("budget_deadline") or 0):
                return self.wait_for_replica(context, attempt)  # the re-check interval, not the budget, ran out
            self.check_event(event, what)
            return self.wait_for_replica(context, attempt)
        return super().after_wait(context, event, phase, extra)

    # -- a Failed region ------------------------------------------------------------------------------------------

    def defer_to_retrier(self, context: Any, version_id: str, failed: list[dict], attempt: int) -> Any:
        """This task retries its region when it is the region's retrier, or when the retrier finished and the region
        failed afterwards; else it waits for the retrier (:meth:`await_retrier`)."""
        region = self.replica_region()
        if self.is_retrier(context, region):
            return RETRY_HERE
        retrier = self.retrier_of(region)
        state = self.task_state(context, retrier)
        if state not in _DONE:
            return self.await_retrier(context, region, failed[0], attempt, retrier, state)
        self.log.warning("%s failed again after %s[%s] finished (%s): this task retries it", region, self.task_id,
                         retrier, state)
        return RETRY_HERE

    def await_retrier(self, context: Any, region: str, failed: Mapping[str, Any], attempt: int, retrier: int,
                      state: str | None) -> Any:
        """Another pool's task (``retrier``, in task state ``state``) retries ``region``: wait for it, reschedule, or
        fail when it gave up."""
        version_id = self.replica_version_id()
        who = f"{self.task_id}[{retrier}]"
        details = failed.get("details") or "no details"
        if state in _GAVE_UP:
            raise AzureWaitFailed(
                f"image version {version_id}: replication failed in {failed.get('region')} ({details}); {who}, which "
                f"retries that region for every pool in it, gave up (state {state}): see its log")
        if state in _NOT_RUNNING:
            delay = max(float(self.poll_interval) * 5, 5.0)
            self.log.info("Replication failed in %s (%s); %s retries that region and is %s: rescheduling in %.0f s "
                          "(no try spent; the wait budget goes on)", region, details, who, state or "not started",
                          delay)
            raise AirflowRescheduleException(reschedule_date=datetime.now(timezone.utc) + timedelta(seconds=delay))
        plan = self.typed_plan
        deadline = budget_deadline(context, self.timeout_seconds(plan), logger=self.log)
        recheck = time.time() + RECHECK_POLLS * max(float(self.poll_interval), 1.0)
        self.log.info("Replication failed in %s (%s); %s (%s) retries it: waiting for the region to leave Failed",
                      region, details, who, state)
        return self.wait(context, waiter_name="gallery_region_settled",
                         waiter_args={"version_id": version_id, "regions": [region]},
                         timeout=self.timeout_seconds(plan), phase="retrier_wait", return_value=version_id,
                         deadline=min(deadline, recheck) if deadline else recheck,
                         extra={"attempt": attempt, "region": region, "budget_deadline": deadline})

    # -- helpers --------------------------------------------------------------------------------------------------

    def retrier_of(self, region: str) -> int | None:
        plan = self.typed_plan
        return replica_retry.retrier_index([p.batch_account_location for p in plan.pools], region)

    def is_retrier(self, context: Any, region: str) -> bool:
        """This task instance retries ``region`` (also when its map index is unknown, as outside a DAG run)."""
        retrier, me = self.retrier_of(region), self.map_index_of(context)
        return retrier is None or me is None or me == retrier

    @staticmethod
    def map_index_of(context: Any) -> int | None:
        ti = (context or {}).get("ti") if isinstance(context, Mapping) else None
        index = getattr(ti, "map_index", None)
        return index if isinstance(index, int) and index >= 0 else None

    def task_state(self, context: Any, map_index: int) -> str | None:
        """The state of this task's instance ``map_index`` in the same run (Airflow 3.3 task SDK); "unknown" when
        it cannot be read (no task supervisor, as in unit tests)."""
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            ti = context["ti"]
            found = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, map_index=map_index,
                                                        task_ids=[self.task_id], run_ids=[ti.run_id])
            value = (found.get(ti.run_id) or {}).get(f"{self.task_id}_{map_index}")
            return str(getattr(value, "value", value)).lower() if value is not None else None
        except Exception:  # noqa: BLE001 - an unreadable state means "wait", never a crash
            self.log.debug("could not read the state of %s[%s]", self.task_id, map_index, exc_info=True)
            return "unknown"
