"""A pool's wait for the image version's replica in its own Batch account's region (issue 10, step 2).

``publish_image_version`` returns once the version's replica in the gallery's own region is Completed; each
``create_pool[i]`` then waits (deferred, through the generic waiter trigger: ``gallery_replication`` with
``regions=[the pool's account region]``) for the one replica its pool needs, and creates the pool as soon as that
region is Completed: pools in regions that finish early start allocating early. ``promote_image_version`` still
waits for every region.

Why the wait is part of ``create_pool`` and not a mapped task of its own: in Airflow 3.3 a mapped task depends on
*every* map index of a mapped upstream unless both sit in one mapped task group
(``airflow.models.taskinstance._get_relevant_map_indexes``: no common mapped group -> the "whole" upstream), so a
separate ``wait_for_replica[i] >> create_pool[i]`` would make every pool wait for every region again.

Failed regions (Microsoft's workaround: remove the region from ``targetRegions``, wait for the update, add it back;
up to ``max_region_retries`` times, then fail naming the region and Azure's details), with several pools per region
and several regions failing at once:

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

from batch_images.operators._arm import ArmWaitingOperator
from batch_images.waiting import AzureWaitFailed
from batch_images.rules import replica_retry, states
from batch_images.rules.ids import region_key
from batch_images.rules.plan import Plan
from batch_images.triggers.base import budget_deadline

# A pool waiting for another task's retry of its region looks at that task's state every this many polls.
RECHECK_POLLS = 20
# Task states in which the retrier is not working on the region now (not started, or between tries).
_NOT_RUNNING = {None, "none", "scheduled", "queued", "up_for_retry", "up_for_reschedule"}
_GAVE_UP = {"failed", "upstream_failed"}
_DONE = {"success", "skipped"}


def _failed_entry(state: Mapping[str, Any], region: str) -> dict | None:
    """The replicationStatus summary entry of ``region`` when it is Failed."""
    return next((r for r in state.get("regions") or []
                 if region_key(r.get("region")) == region_key(region) and states.is_failed(r.get("state"))), None)


def _retries(n: int) -> str:
    return f"{n} remove/re-add retr{'y' if n == 1 else 'ies'}"


class ReplicaWaitingOperator(ArmWaitingOperator):
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

    timeout_key = "replication"

    def __init__(self, *, plan: Any = None, max_region_retries: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.max_region_retries = max_region_retries

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
            self.finish_interrupted_retry(version_id, region)
        return self.wait(context, waiter_name="gallery_replication",
                         waiter_args={"version_id": version_id, "regions": [region]},
                         timeout=self.timeout_seconds(plan), phase="replica", return_value=version_id,
                         extra={"attempt": attempt, "region": region})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        region = extra.get("region") or self.replica_region()
        attempt = int(extra.get("attempt", 0))
        version_id = self.replica_version_id()
        what = f"image version {version_id} in {region}"
        if phase == "replica":
            if event.get("status") == "success":
                self.log.info("%s", event.get("message"))
                return self.replica_ready(context)
            failed = _failed_entry(event.get("state") or {}, region) if event.get("status") == "failure" else None
            if failed is None:
                self.check_event(event, what)  # raises: timeout, version gone, ...
                return self.replica_ready(context)
            return self.region_failed(context, region, failed, attempt)
        if phase == "region_removed":
            self.check_event(event, f"removing {region} from {version_id}")
            version = self.hook.get_version(version_id, replication_status=False)
            if replica_retry.targets_region(self._targets(version), region):
                self.log.info("%s is in targetRegions again (another pool's retry wrote the full list): waiting "
                              "for it", region)
            else:
                self.log.info("Adding %s back to %s (retry %d of %d)", region, version_id, attempt + 1,
                              self.max_region_retries)
                self._write_targets(version_id, retrying=None)
            return self.wait_for_replica(context, attempt + 1)
        if phase == "retrier_wait":
            if event.get("status") == "timeout" and time.time() < float(extra.get("budget_deadline") or 0):
                return self.wait_for_replica(context, attempt)  # the re-check interval, not the budget, ran out
            self.check_event(event, what)
            return self.wait_for_replica(context, attempt)
        return super().after_wait(context, event, phase, extra)

    # -- a Failed region ------------------------------------------------------------------------------------------

    def region_failed(self, context: Any, region: str, failed: Mapping[str, Any], attempt: int) -> Any:
        plan = self.typed_plan
        version_id = self.replica_version_id()
        details = failed.get("details") or "no details"
        if region_key(region) == region_key(plan.gallery.location):
            raise AzureWaitFailed(f"image version {version_id}: replication failed in the gallery's own region "
                                     f"{failed.get('region')} ({details}); that region cannot be removed and re-added")
        if not self.is_retrier(context, region):
            retrier = self.retrier_of(region)
            state = self.task_state(context, retrier)
            if state not in _DONE:
                return self.await_retrier(context, region, failed, attempt, retrier, state)
            self.log.warning("%s failed again after %s[%s] finished (%s): this task retries it", region,
                             self.task_id, retrier, state)
        if attempt >= self.max_region_retries:
            raise AzureWaitFailed(
                f"image version {version_id}: replication in {failed.get('region')} still failed after "
                f"{_retries(attempt)} ({details}); the pool of this task needs a replica there")
        return self.remove_region(context, region, attempt, details)

    def remove_region(self, context: Any, region: str, attempt: int, details: str) -> Any:
        """Write the configured list without ``region`` (after a fresh read shows it still Failed), then wait until
        the update is done (``gallery_region_settled``)."""
        from azure.core.exceptions import HttpResponseError

        version_id = self.replica_version_id()
        version = self.hook.get_version(version_id, replication_status=True)
        summary = ((version.get("properties") or {}).get("replicationStatus") or {}).get("summary") or []
        still = _failed_entry({"regions": summary}, region)
        if still is not None and replica_retry.targets_region(self._targets(version), region):
            self.log.warning("Replication failed in %s (%s); removing it from targetRegions and adding it back "
                             "(retry %d of %d)", region, details, attempt + 1, self.max_region_retries)
            try:
                self._write_targets(version_id, retrying=region)
            except HttpResponseError as err:
                if err.status_code != 409:
                    raise
                # another update in flight (ARM's transient 409): wait for the version again and look anew (the
                # replication waiter answers once no create/update is in flight); no retry spent
                self.log.warning("Removing %s was refused for now (409: %s); waiting for the version, then looking "
                                 "again", region, err.message if hasattr(err, "message") else err)
                return self.wait_for_replica(context, attempt, look_again=True)
        return self.wait(context, waiter_name="gallery_region_settled",
                         waiter_args={"version_id": version_id, "regions": [region]},
                         timeout=self.timeout_seconds(self.typed_plan), phase="region_removed",
                         return_value=version_id, extra={"attempt": attempt, "region": region})

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

    def finish_interrupted_retry(self, version_id: str, region: str) -> None:
        """A try of the region's retrier that died between the remove and the re-add left the region out of
        targetRegions: add it back before waiting (nobody else would)."""
        version = self.hook.find_resource(version_id)
        if version is None or replica_retry.targets_region(self._targets(version), region):
            return
        self.log.warning("%s is not in the targetRegions of %s (an earlier try stopped between removing and adding "
                         "it back): adding it back", region, version_id)
        self._write_targets(version_id, retrying=None)

    # -- helpers --------------------------------------------------------------------------------------------------

    def retrier_of(self, region: str) -> int | None:
        plan = self.typed_plan
        return replica_retry.retrier_index([replica_retry.pool_region(p.to_dict()) for p in plan.pools], region)

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

    @staticmethod
    def _targets(version: Mapping[str, Any]) -> list[dict]:
        return list(((version.get("properties") or {}).get("publishingProfile") or {}).get("targetRegions") or [])

    def _write_targets(self, version_id: str, retrying: str | None) -> None:
        from batch_images.operators.gallery import wire_target_regions

        self.hook.update_version_target_regions(
            version_id, replica_retry.retry_target_regions(wire_target_regions(self.typed_plan), retrying))
