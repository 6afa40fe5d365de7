"""The failed-region retry of an image version's replication: one implementation for every task that waits for it.

Microsoft's workaround for a target region whose replica ends Failed: remove the region from
``publishingProfile.targetRegions``, wait for the update, add it back, wait for replication again; at most
``max_region_retries`` times, then fail naming the region and Azure's details. Its users:

* :class:`~batch_images.operators.gallery.GalleryImageVersionOperator` and
  :class:`~batch_images.operators.gallery.PromoteImageVersionOperator` retry every failed region they wait for;
* :class:`~batch_images.operators.replica.ReplicaWaitingOperator` (``create_pool``) retries its pool's region only
  when it is that region's retrier, else it waits on the retrier's task (:meth:`RegionRetryingOperator.defer_to_retrier`).

The steps, one state machine through :meth:`ArmWaitingOperator.wait` / ``after_wait`` (phase :data:`REGION_REMOVED`):

1. the operator's replication wait ended ``failure``: :meth:`~RegionRetryingOperator.failed_in` names the failed
   regions among those it waits for, and it calls :meth:`~RegionRetryingOperator.retry_failed_regions`;
2. the gallery's own region cannot be removed: fail; the operator may leave the regions to another task; no retry
   left: fail; else a fresh read, and the regions still Failed and in targetRegions are removed (the configured list
   minus them, :func:`~batch_images.rules.replica_retry.retry_target_regions`). A 409 (another update in flight)
   waits for replication again, no retry spent. Then ``gallery_region_settled`` waits until no update is in flight
   and each region is out of targetRegions (or no longer Failed: another writer's full list added it back);
3. a fresh read; the regions not in targetRegions are added back (the full configured list), and the operator waits
   for replication again with one retry more (:meth:`~RegionRetryingOperator.wait_replication_again`).

A try that stopped between 2 and 3 leaves a region out of targetRegions: the next try's
:meth:`~RegionRetryingOperator.finish_interrupted_retry` adds it back before it waits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batch_images.operators._arm import ArmWaitingOperator
from batch_images.rules import replica_retry
from batch_images.rules.plan import Plan
from batch_images.waiting import AzureWaitFailed

REGION_REMOVED = "region_removed"  # the phase of the wait between the remove and the re-add
RETRY_HERE = object()  # defer_to_retrier's answer when this task retries the regions itself


def wire_target_regions(plan: Plan) -> list[dict]:
    """``plan.target_regions`` (snake_case) -> ``publishingProfile.targetRegions`` (ARM wire format)."""
    out = []
    for region in plan.target_regions:
        entry = {"name": region.name, "regionalReplicaCount": int(region.regional_replica_count or 1)}
        sat = region.storage_account_type or plan.storage_account_type
        if sat:
            entry["storageAccountType"] = sat
        out.append(entry)
    return out


def version_target_regions(version: Mapping[str, Any]) -> list[dict]:
    """An existing version's ``publishingProfile.targetRegions`` (wire format)."""
    return list(((version.get("properties") or {}).get("publishingProfile") or {}).get("targetRegions") or [])


def _it(regions: Sequence[str]) -> str:
    return "it" if len(regions) == 1 else "them"


def _are(regions: Sequence[str]) -> str:
    return f"{', '.join(regions)} {'is' if len(regions) == 1 else 'are'}"


class RegionRetryingOperator(ArmWaitingOperator):
    """Base of an operator that waits for an image version's replication and retries its failed regions.

    Subclasses give ``typed_plan`` (the :class:`~batch_images.rules.plan.Plan`: configured ``target_regions``,
    ``gallery.location``, ``timeouts.replication``) and :meth:`wait_replication_again`, and may override
    :meth:`home_region_failed`, :meth:`defer_to_retrier` and :attr:`retry_give_up_hint`. A subclass's ``after_wait``
    passes the phases it does not know to ``super().after_wait`` (:data:`REGION_REMOVED` is handled here).

    :param max_region_retries: remove/re-add retries of a Failed region per try of the task (default 2).
    """

    timeout_key = "replication"
    retry_give_up_hint = ""  # appended to the message when no retry is left

    def __init__(self, *, max_region_retries: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_region_retries = max_region_retries

    # -- what subclasses give -------------------------------------------------------------------------------------

    typed_plan: Plan | None

    def wait_replication_again(self, context: Any, version_id: str, attempt: int) -> Any:
        """Wait for replication again (``attempt``: the remove/re-add retries done so far); its ``after_wait`` calls
        :meth:`retry_failed_regions` with that ``attempt`` when a region fails again."""
        raise NotImplementedError

    def home_region_failed(self, version_id: str) -> str:
        """Called before failing because the gallery's own region failed: what was done about the version, for the
        message ("" for nothing)."""
        return ""

    def defer_to_retrier(self, context: Any, version_id: str, failed: list[dict], attempt: int) -> Any:
        """:data:`RETRY_HERE` when this task retries ``failed`` itself; else what the task does instead (the result
        of a wait for another task's retry), which :meth:`retry_failed_regions` returns."""
        return RETRY_HERE

    # -- the retry ------------------------------------------------------------------------------------------------

    @staticmethod
    def failed_in(event: Mapping[str, Any], regions: Sequence[str] | None) -> list[dict]:
        """The failed summary entries (``region``, ``state``, ``details``) of a ``gallery_replication`` event that
        ended ``failure``, among ``regions`` (None: every region); [] for any other event."""
        if event.get("status") != "failure":
            return []
        return replica_retry.failed_among((event.get("state") or {}).get("regions"), regions)

    def retry_failed_regions(self, context: Any, version_id: str, failed: list[dict], attempt: int) -> Any:
        """Remove the ``failed`` regions (entries of :meth:`failed_in`, not empty) from targetRegions and wait for the
        update (phase :data:`REGION_REMOVED`), then add them back; ``attempt``: retries already done.

        :raises AzureWaitFailed: the gallery's own region failed (it cannot be removed), or ``attempt`` reached
            ``max_region_retries`` (names the regions and Azure's details).
        """
        plan = self.typed_plan
        home = replica_retry.home_region_entry(failed, plan.gallery.location)
        if home is not None:
            done = self.home_region_failed(version_id)
            raise AzureWaitFailed(
                f"image version {version_id}: replication failed in the gallery's own region {home.get('region')} "
                f"({home.get('details') or 'no details'}); that region cannot be removed and re-added"
                + (f": {done}" if done else ""))
        instead = self.defer_to_retrier(context, version_id, failed, attempt)
        if instead is not RETRY_HERE:
            return instead
        names, details = replica_retry.describe_failed(failed)
        if attempt >= self.max_region_retries:
            raise AzureWaitFailed(f"image version {version_id}: replication in {names} still failed after "
                                     f"{replica_retry.retries_text(attempt)} ({details}){self.retry_give_up_hint}")
        regions = [r["region"] for r in failed]
        # a fresh read: write only when a region is still Failed and targeted (another writer may have moved on)
        version = self.hook.get_version(version_id, replication_status=True)
        summary = ((version.get("properties") or {}).get("replicationStatus") or {}).get("summary")
        remove = replica_retry.still_to_remove(summary, version_target_regions(version), regions)
        if remove:
            names, details = replica_retry.describe_failed([r for r in failed if r["region"] in remove])
            self.log.warning("Replication failed in %s (%s); removing %s from targetRegions and adding %s back "
                             "(retry %d of %d)", names, details, _it(remove), _it(remove), attempt + 1,
                             self.max_region_retries)
            if not self._write_or_conflict(version_id, without=remove):
                # another update in flight (ARM's transient 409): the replication waiter answers once none is, and
                # the regions are looked at anew; no retry spent
                return self.wait_replication_again(context, version_id, attempt)
        return self.wait(context, waiter_name="gallery_region_settled",
                         waiter_args={"version_id": version_id, "regions": regions},
                         timeout=self.timeout_seconds(plan), phase=REGION_REMOVED, return_value=version_id,
                         extra={"attempt": attempt, "version_id": version_id, "regions": regions})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        if phase != REGION_REMOVED:
            return super().after_wait(context, event, phase, extra)
        version_id = extra.get("version_id") or event.get("value")
        attempt = int(extra.get("attempt", 0))
        # deferrals made before the retry was shared carry "removed" (gallery) or "region" (create_pool)
        regions = list(extra.get("regions") or extra.get("removed") or [extra.get("region")])
        self.check_event(event, f"removing {', '.join(regions)} from {version_id}")
        version = self.hook.get_version(version_id, replication_status=False)
        missing = replica_retry.missing_regions(version_target_regions(version), regions)
        back = [r for r in regions if r not in missing]
        if back:
            self.log.info("%s in targetRegions again (another task's retry wrote the full list): waiting for %s",
                          _are(back), _it(back))
        if missing:
            self.log.info("Adding %s back to %s (retry %d of %d)", ", ".join(missing), version_id, attempt + 1,
                          self.max_region_retries)
            self.write_target_regions(version_id)
        return self.wait_replication_again(context, version_id, attempt + 1)

    def finish_interrupted_retry(self, version_id: str, regions: Sequence[str]) -> None:
        """Add back those of ``regions`` (the ones this task retries) that are out of the version's targetRegions:
        a try that stopped between the remove and the re-add left them out, and nobody else would add them back."""
        version = self.hook.find_resource(version_id)
        missing = replica_retry.missing_regions(version_target_regions(version), regions) if version else []
        if not missing:
            return
        self.log.warning("%s not in the targetRegions of %s (an earlier try stopped between removing and adding %s "
                         "back): adding %s back", _are(missing), version_id, _it(missing), _it(missing))
        self.write_target_regions(version_id)

    # -- writes ---------------------------------------------------------------------------------------------------

    def write_target_regions(self, version_id: str, without: Sequence[str] | None = None) -> None:
        """PUT the plan's configured targetRegions, minus ``without`` (the regions being retried) when given."""
        self.hook.update_version_target_regions(
            version_id, replica_retry.retry_target_regions(wire_target_regions(self.typed_plan), without))

    def _write_or_conflict(self, version_id: str, without: Sequence[str]) -> bool:
        """:meth:`write_target_regions`; False when ARM refused it with 409 (an update in flight)."""
        from azure.core.exceptions import HttpResponseError  # the Azure SDK loads in the worker, not at DAG parse

        try:
            self.write_target_regions(version_id, without=without)
        except HttpResponseError as err:
            if err.status_code != 409:
                raise
            self.log.warning("Removing %s was refused for now (409: %s); waiting for the version, then looking "
                             "again", ", ".join(without), getattr(err, "message", err))
            return False
        return True
