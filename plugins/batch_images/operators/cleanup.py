"""Teardown: delete the run's temporary snapshots and managed image; retire old image versions (rules/retention.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from batch_images.operators._arm import ArmWaitingOperator, ResourceConflict, is_ours, iso_end_of_life
from batch_images.rules.ids import ids_of
from batch_images.operators.image import planned_image_id
from batch_images.operators.snapshot import planned_snapshots
from batch_images.pool_facts import pool_image_id
from batch_images.rules import ids, naming, retention
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan

TEMPORARY_TYPES = (ids.SNAPSHOT, ids.IMAGE)


class DeleteTemporaryResourcesOperator(ArmWaitingOperator):
    """Delete the temporary snapshots and managed image of a run, and wait until they are gone.

    Meant as the DAG's teardown task (``.as_teardown(setups=...)``): it must work when upstream tasks
    failed, so besides explicit ids (``resource_ids``, ``snapshots``, ``image_id`` - None is fine, that is
    what an upstream that never ran gives) it takes ``plan`` and derives the run's deterministic snapshot
    and image ids from it, so a snapshot task that failed half-way is cleaned up too.

    Only snapshots and managed images tagged ``managed-by=airflow-batch-images`` are deleted; any other
    type, or an untagged resource, is refused before anything is deleted. Resources already gone are fine.

    :return: ``{"deleted": [ids], "already_gone": [ids]}``
    """

    template_fields: Sequence[str] = ("resource_ids", "snapshots", "image_id", "plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json", "snapshots": "json", "resource_ids": "json"}
    timeout_key = "delete"

    def __init__(self, *, resource_ids: Any = None, snapshots: Any = None, image_id: Any = None,
                 plan: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource_ids = resource_ids
        self.snapshots = snapshots
        self.image_id = image_id
        self.plan = plan

    def _plan(self) -> Plan | None:
        """The plan, or None when none was given (preflight itself failed: nothing was created)."""
        return Plan.from_dict(self.plan) if isinstance(self.plan, Mapping) else None

    def targets(self) -> list[str]:
        found: list[str] = []
        found += ids_of(self.resource_ids, "resource_ids")
        found += ids_of(self.snapshots, "snapshots")
        found += ids_of(self.image_id, "image_id")
        plan = self._plan()
        if plan is not None:
            found += [s["id"] for s in planned_snapshots(plan)]
            found.append(planned_image_id(plan))
        unique: dict[str, str] = {}
        for rid in found:
            unique.setdefault(rid.lower(), rid)
        # Images first: they were made from the snapshots.
        return sorted(unique.values(), key=lambda r: (0 if "/images/" in r.lower() else 1, r.lower()))

    def execute(self, context: Any) -> dict:
        plan = self._plan()
        if plan is not None and plan.options.dry_run:
            raise AirflowSkipException("Dry run: no snapshot or managed image was made, nothing to delete")
        if plan is not None and plan.options.roll_only:
            raise AirflowSkipException(f"Mode {plan.options.mode}: nothing was built, nothing to delete")
        targets = self.targets()
        for rid in targets:
            arm_id = ids.parse_arm_id(rid, "resource_ids")
            if not any(arm_id.is_type(t) for t in TEMPORARY_TYPES):
                raise InvalidInput("resource_ids", rid, f"{arm_id.resource_type} is not a temporary resource of this "
                                   "pipeline; only snapshots and managed images are deleted here",
                                   "pass only the snapshot and image ids of the run")
        present: list[str] = []
        gone: list[str] = []
        refused: list[str] = []
        for rid in targets:
            resource = self.hook.find_resource(rid)
            if resource is None:
                gone.append(rid)
            elif not is_ours(resource):
                refused.append(rid)
            else:
                present.append(rid)
        if refused:
            raise ResourceConflict(
                f"refusing to delete {', '.join(refused)}: not tagged {naming.TAG_MANAGED_BY}={naming.MANAGED_BY} "
                "(not made by this project). Nothing was deleted. Fix: remove them from the task's inputs")
        for rid in gone:
            self.log.info("Already gone: %s", rid)
        for rid in present:
            started = self.hook.begin_delete(rid)
            if started.status_code == 404:
                gone.append(rid)
        present = [r for r in present if r not in gone]
        result = {"deleted": present, "already_gone": gone}
        if not present or not self.wait_for_completion:
            return result
        return self.wait(context, waiter_name="arm_deleted", waiter_args={"resource_ids": present},
                         timeout=self.timeout_seconds(self._plan()), phase="delete", return_value=result)


class RetireOldVersionsOperator(ArmWaitingOperator):
    """After a successful roll: delete the image versions nothing uses any more, beyond the newest ``keep_versions``;
    set ``endOfLifeDate`` on the ones that stopped serving.

    The rule is :func:`batch_images.rules.retention.select` (its docstring lists every protection): never the
    newest, never this run's version, never "latest", never one that a pool or job schedule in the configured
    Batch accounts references (whoever made it), never one inside ``blockDeletionBeforeEndOfLife``, never one this
    project did not make. What the accounts reference is read first - every pool's
    ``virtualMachineConfiguration.imageReference.virtualMachineImageId`` and every active or disabled job
    schedule's ``autoPoolSpecification`` - one list request per account each; a read that fails fails the task
    before anything is changed (when unsure, delete nothing).

    :param plan: the preflight plan (definition, this run's version, ``keep_versions``, ``end_of_life_days``,
        and the Batch connections of its pools).
    :param keep_versions: overrides the plan's (>= 1).
    :param end_of_life_days: overrides the plan's (None in both: no end-of-life dates are set).
    :param batch_conn_ids: more Batch accounts whose pools may use the definition (the plan's pools' connections
        are always read).
    :param protect_version_ids: version ids kept whatever the rule says.
    :return: ``{"deleted": [ids], "kept": {id: why}, "end_of_life": {id: "YYYY-MM-DD"}, "refused": {id: why}}``
        (``refused``: deletes Azure answered with an error; they are logged as warnings, not retried).
    """

    template_fields: Sequence[str] = ("plan", "protect_version_ids", "keep_versions", "end_of_life_days",
                                      "batch_conn_ids", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    timeout_key = "delete"

    def __init__(self, *, plan: Any, keep_versions: int | None = None, end_of_life_days: int | None = None,
                 batch_conn_ids: Any = None, protect_version_ids: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.keep_versions = keep_versions
        self.end_of_life_days = end_of_life_days
        self.batch_conn_ids = batch_conn_ids
        self.protect_version_ids = protect_version_ids

    def references(self, plan: Plan, versions: Sequence[Mapping[str, Any]] = ()
                   ) -> tuple[list[retention.Reference], list[retention.Reference]]:
        """What the configured Batch accounts' pools and job schedules reference (see the class docstring), and each
        serving pool's rollback target among ``versions`` (:func:`rollback_target_references`)."""
        from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker, not at DAG parse

        conn_ids = list(dict.fromkeys([p.batch_conn_id for p in plan.pools] + list(
            [self.batch_conn_ids] if isinstance(self.batch_conn_ids, str) else self.batch_conn_ids or [])))
        found = [retention.Reference(v, "protect_version_ids")
                 for v in ids_of(self.protect_version_ids, "protect_version_ids")]
        targets: list[retention.Reference] = []
        for conn_id in conn_ids:
            hook = BatchPoolHook(azure_batch_conn_id=conn_id)
            try:
                found += batch_image_references(hook, conn_id)
                targets += rollback_target_references(hook.list_pool_listing(), conn_id, versions)
            finally:
                hook.close_sync()
        return found, targets

    def execute(self, context: Any) -> dict:
        plan = Plan.from_dict(self.plan)
        if plan.options.canary_only:
            raise AirflowSkipException("Canary only: nothing was promoted or rolled, so no version is retired")
        keep = self.keep_versions if self.keep_versions is not None else plan.keep_versions
        days = self.end_of_life_days if self.end_of_life_days is not None else plan.end_of_life_days
        versions = self.hook.list_versions(plan.image_definition.id)
        references, targets = self.references(plan, versions)
        today = datetime.now(timezone.utc).date()
        # a roll-only run built nothing: its plan's version is only kept if something else keeps it
        decision = retention.select(versions, keep_versions=keep, references=references, today=today,
                                    this_run_version_id=None if plan.options.roll_only else plan.version_id,
                                    end_of_life_days=days, rollback_targets=targets)
        short = lambda vid: vid.rsplit("/", 1)[-1]  # noqa: E731
        for vid, why in decision.keep.items():
            self.log.info("Keeping %s: %s", short(vid), why)
        for vid, eol in decision.end_of_life.items():
            self.log.info("%s stopped serving: endOfLifeDate %s", short(vid), eol)
        self.log.info("Deleting %d version(s): %s", len(decision.delete), [short(v) for v in decision.delete])
        result = {**decision.to_dict(), "refused": {}}
        for vid, eol in decision.end_of_life.items():
            self.hook.update_version_end_of_life(vid, iso_end_of_life(eol))
        if decision.end_of_life and self.wait_for_completion:
            return self.wait(context, waiter_name="arm_provisioning",
                             waiter_args={"resource_ids": list(decision.end_of_life)},
                             timeout=self.timeout_seconds(plan), phase="end_of_life", return_value=result)
        return self._delete(context, plan, result)

    def _delete(self, context: Any, plan: Plan, result: dict) -> dict:
        from azure.core.exceptions import HttpResponseError

        started = []
        for vid in result["deleted"]:
            try:
                if self.hook.delete_version(vid).status_code != 404:
                    started.append(vid)
            except HttpResponseError as err:  # e.g. a safety profile this run could not see; never retried here
                result["refused"][vid] = f"{err.status_code} {getattr(err.error, 'code', None) or ''} {err.message}"
                self.log.warning("Azure refused to delete %s: %s", vid, result["refused"][vid])
        result["deleted"] = [v for v in result["deleted"] if v not in result["refused"]]
        if not started or not self.wait_for_completion:
            return result
        return self.wait(context, waiter_name="arm_deleted", waiter_args={"resource_ids": started},
                         timeout=self.timeout_seconds(plan), phase="delete", return_value=result)

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        self.check_event(event, "retiring image versions")
        if phase == "end_of_life":
            return self._delete(context, Plan.from_dict(self.plan), event.get("value"))
        return event.get("value")


def rollback_target_references(listing: Sequence[Mapping[str, Any]], account: str,
                               versions: Sequence[Mapping[str, Any]]) -> list[retention.Reference]:
    """Each serving pool's rollback target (:func:`batch_images.rules.roll.rollback_target` of its
    ``previous-versions`` among ``versions`` that are not revoked), as a Reference naming the logical pool.

    :param listing: the account's pools as ``BatchPoolHook.list_pool_listing`` returns them."""
    from batch_images.rules import roll

    facts = [retention.version_facts(v) for v in versions]
    available = {f.name: f.id for f in facts if not f.revoked}
    out = []
    for entry in listing:
        pool = roll.PhysicalPool.from_listing(entry)
        if pool.role != naming.ROLE_SERVING or not pool.history:
            continue
        target, _ = roll.rollback_target(pool.history, available)
        if target is not None:
            out.append(retention.Reference(available[target], f"logical pool {pool.logical_pool} (serving pool "
                                                              f"{pool.pool_id} in {account})"))
    return out


def batch_image_references(hook: Any, account: str) -> list[retention.Reference]:
    """Every gallery image a Batch account's pools and live job schedules reference (``hook``: a BatchPoolHook;
    ``account`` names it in the users' descriptions). Raises the SDK's HttpResponseError when a read fails."""
    found = []
    for pool in hook.list_pools(select=["id", "virtualMachineConfiguration"]):
        image = pool_image_id(pool)
        if image:
            found.append(retention.Reference(image, f"pool {pool.id} ({account})"))
    for schedule in hook.list_job_schedules(filter="state eq 'active' or state eq 'disabled'",
                                            select=["id", "jobSpecification"]):
        auto = getattr(getattr(schedule.job_specification, "pool_info", None), "auto_pool_specification", None)
        image = pool_image_id(getattr(auto, "pool", None))
        if image:
            found.append(retention.Reference(image, f"job schedule {schedule.id} auto pool ({account})"))
    return found
