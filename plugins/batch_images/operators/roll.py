"""Roll a logical pool to the run's image version (issue 10): decide, approve, move work, drain, verify.

The DAG maps these over the plan's pools (one logical pool each):

* :class:`PlanRollOperator` (``plan_roll``) - reads the logical pool's physical pools from Batch metadata
  (:mod:`batch_images.rules.roll`), decides ``first`` / ``roll`` / ``current`` / ``skip_downgrade`` (never back to
  an older version unless ``allow_downgrade``), takes the roll lease on the serving pool (ETag-conditional metadata
  update) and returns the pool spec with the decision, a :class:`~batch_images.rules.plan.RollDecision` as plain
  JSON (what every later task maps over, as ``pool_spec``).
* :class:`RollApprovalOperator` (``approve_roll``) - the standard provider's ``ApprovalOperator`` for pools with
  ``require_approval``; passes through at once for the others.
* :class:`DiscardCanariesOperator` (``discard_canaries``, a teardown) - deletes the new pools of a roll that stopped
  before it moved work (smoke test failed, approval rejected, promotion failed): only this run's pools still
  ``canary``, and only when nothing uses them.
* :class:`RollPoolOperator` (``roll_pool``) - moves work to the new pool (blue_green) or re-images the serving pool
  (in_place), drains and deletes the old pool, verifies every node's image, and publishes the roll as an Asset
  event ``batch-pool://<account>/<logical pool>`` (extra: pool id, version).

Every step reads where it stands from Batch (metadata roles, job and schedule pool ids, pool states) and is
idempotent, so a retry, a clear or the next run finishes a roll that a killed worker left half-way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException, AirflowException, AirflowFailException

from batch_images import links
from batch_images.operators._arm import ArmWaitingOperator
from batch_images.operators.pool import version_of
from batch_images.rules import ids, naming, roll
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan, PoolSpec, RollDecision

STEP_TIMEOUT = 3600.0  # seconds for the waits that are not the drain (resize to zero, delete, steady)


class JobsDisabledByRoll:
    """The ids of the jobs this task disabled and has not enabled yet, kept in the task instance's
    ``task_state_store`` (Airflow 3.3: kept across tries, unlike XCom, which a new try clears), so the try after a
    killed one enables exactly those: a job a user disabled stays disabled, on whichever pool it ends up.

    An id is recorded *before* its job is disabled and dropped once it is enabled again; a store that cannot be
    written raises (the task retries, and nothing was disabled). Without a store (a bare context in a unit test) the
    record lives for this try only.
    """

    KEY = "jobs_disabled_by_roll"

    def __init__(self, context: Any) -> None:
        self.store = context.get("task_state_store") if isinstance(context, Mapping) else None
        value = self.store.get(self.KEY) if self.store is not None else None
        self.ids: list[str] = [str(v) for v in value] if isinstance(value, list) else []

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.ids

    def add(self, job_id: str) -> None:
        if job_id not in self.ids:
            self._save([*self.ids, job_id])

    def discard(self, job_id: str) -> None:
        if job_id in self.ids:
            self._save([i for i in self.ids if i != job_id])

    def _save(self, ids_: list[str]) -> None:
        if self.store is not None:
            self.store.set(self.KEY, ids_)
        self.ids = ids_


def asset_uri(account: str, logical_pool: str) -> str:
    """``batch-pool://<account>/<logical pool>``: the Asset a roll of that logical pool updates."""
    return f"batch-pool://{account}/{logical_pool}"


def account_name(batch_account_id: str) -> str:
    return ids.parse_arm_id(batch_account_id, "pool_spec.batch_account_id").name


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def read_decision(data: Any, field: str = "pool_spec") -> RollDecision:
    """plan_roll's output as a :class:`RollDecision`; AirflowFailException naming the bad key (no retry helps)."""
    try:
        return RollDecision.from_dict(data, field)
    except InvalidInput as err:
        raise AirflowFailException(str(err)) from None


class PlanRollOperator(BaseOperator):
    """Decide what this run does with one logical pool, and take the roll lease.

    :param pool_spec: one entry of the plan's ``pools`` (with ``logical_pool`` and ``roll``). (templated)
    :param image_version_id: the version this run published. (templated)
    :param allow_downgrade: the run's ``allow_downgrade`` param (roll even to an older version). (templated)
    :param strategy: the run's ``strategy`` param (None/empty: the config's). (templated)
    :return: ``RollDecision.to_dict()``: the pool spec plus ``roll_action``, ``strategy``, ``serving_pool_id``,
        ``serving_version``, ``version``, ``image_version_id``, ``account`` (plain JSON; ``pool_id`` the serving
        pool when the run makes no new one).
    :raises AirflowFailException: bad input (unknown strategy, no logical pool).
    :raises AirflowException: another run holds the lease (retried: it may finish meanwhile).
    """

    template_fields: Sequence[str] = ("pool_spec", "image_version_id", "allow_downgrade", "strategy")

    def __init__(self, *, pool_spec: Any, image_version_id: str, allow_downgrade: Any = False,
                 strategy: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_spec = pool_spec
        self.image_version_id = image_version_id
        self.allow_downgrade = allow_downgrade
        self.strategy = strategy

    def execute(self, context: Any) -> dict:
        from batch_images.hooks.batch import BatchPoolHook

        try:
            spec = PoolSpec.from_dict(self.pool_spec)
            if not spec.logical_pool:
                raise InvalidInput("pool_spec.logical_pool", None, "the plan names no logical pool",
                                   "run the preflight of this version of the project")
            strategy = roll.effective_strategy(spec.roll.strategy, self.strategy or None)
            # a roll-only run's target for this pool (preflight chose it), else the version this run built
            image_version_id = spec.target_version_id or self.image_version_id
            version = version_of(image_version_id)
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None
        run_id = context["run_id"]
        hook = BatchPoolHook(spec.batch_conn_id)
        pools = roll.physical_pools(hook.list_pool_listing(), spec.logical_pool)
        serving = roll.serving_pool(pools)
        roll_only = spec.run_mode != "build"  # rollback / roll_to_existing / revoke imply allow_downgrade
        action = roll.decide(version, serving, _truthy(self.allow_downgrade) or roll_only, spec.revoked_versions)
        if spec.canary_only:
            strategy = "blue_green"  # a canary is a new pool; in_place has none
        # What the pool serving `version` keeps as previous-versions (what a later rollback goes back to).
        history = roll.history_value(roll.next_history(serving, version, rollback=spec.run_mode == "rollback",
                                                       revoked=spec.revoked_versions))
        metadata = roll.metadata_update(spec.metadata, {naming.TAG_PREVIOUS_VERSIONS: history or None})
        decision = RollDecision(**{**dict(spec), "metadata": metadata}, roll_action=action, strategy=strategy,
                                serving_pool_id=serving.pool_id if serving else None,
                                serving_version=serving.version if serving else None, version=version,
                                image_version_id=image_version_id, account=account_name(spec.batch_account_id))
        if serving is not None and serving.version in spec.revoked_versions and action == roll.ROLL:
            self.log.warning("Logical pool %s is served by %s on the REVOKED version %s: moving it to %s",
                             spec.logical_pool, serving.pool_id, serving.version, version)
        if action == roll.SKIP_DOWNGRADE:
            self.log.warning("Logical pool %s: NOT rolled - it is served by %s on version %s, newer than this run's %s "
                             "(a backfill never rolls back; set the allow_downgrade param to roll anyway). The version "
                             "is still published, excluded from latest.", spec.logical_pool, serving.pool_id,
                             serving.version, version)
            return decision.to_dict()
        if action == roll.FIRST:
            self.log.info("Logical pool %s has no serving pool yet: %s becomes its first", spec.logical_pool,
                          spec.pool_id)
            return decision.to_dict()
        if action == roll.CURRENT:
            self.log.info("Logical pool %s is already served by %s on %s", spec.logical_pool, serving.pool_id, version)
            return decision.model_copy(update={"pool_id": serving.pool_id}).to_dict()
        if spec.canary_only:
            self.log.info("Logical pool %s: canary only - %s is made and smoke-tested beside the serving %s (%s), "
                          "which is left untouched (no lease, no roll)", spec.logical_pool, spec.pool_id,
                          serving.pool_id, serving.version)
            return decision.to_dict()
        self.take_lease(hook, serving, run_id, spec.roll.drain_timeout_minutes)
        if decision.re_images:
            decision = decision.model_copy(update={"pool_id": serving.pool_id})  # the same pool id, re-imaged
        self.log.info("Logical pool %s: rolling %s (%s) to %s, strategy %s", spec.logical_pool, serving.pool_id,
                      serving.version, version, strategy)
        return decision.to_dict()

    def take_lease(self, hook: Any, serving: roll.PhysicalPool, run_id: str, drain_minutes: int) -> None:
        """Write ``roll-lease`` on the serving pool with If-Match; fail (retried) when another run holds it."""
        from azure.core.exceptions import ResourceModifiedError

        now = _now()
        holder = roll.lease_holder(serving.lease, now)
        if holder and holder != run_id:
            raise AirflowException(f"logical pool {serving.logical_pool} is being rolled by run {holder} (lease "
                                   f"{serving.lease!r} on pool {serving.pool_id}); this task retries later")
        current = hook.pool_listing(serving.pool_id) or {}
        value = roll.lease_value(run_id, now, roll.lease_duration(drain_minutes))
        metadata = roll.metadata_update(current.get("metadata") or {}, {naming.TAG_LEASE: value})
        try:
            hook.update_pool_metadata(serving.pool_id, metadata, current.get("etag") or serving.etag)
        except ResourceModifiedError:
            raise AirflowException(f"pool {serving.pool_id} changed while this run took the roll lease (412 "
                                   "ConditionNotMet): another run may be rolling it; this task retries") from None
        self.log.info("Roll lease on %s taken until %s", serving.pool_id, value.rpartition("|")[2])


try:  # the standard provider's human-in-the-loop approval (Airflow 3.1+)
    from airflow.providers.standard.operators.hitl import ApprovalOperator as _Approval
except ImportError:  # pragma: no cover - the lock pins apache-airflow-providers-standard 1.21.0, which has it
    _Approval = None


if _Approval is not None:
    class RollApprovalOperator(_Approval):
        """``ApprovalOperator`` for a logical pool with ``require_approval: true``; a pass-through for the others
        (and for a run that makes no change to the pool). Rejecting skips the roll (nothing touched).

        :param pool_spec: plan_roll's output for this logical pool (a RollDecision dict). (templated)
        """

        template_fields: Sequence[str] = (*_Approval.template_fields, "pool_spec")

        def __init__(self, *, pool_spec: Any, **kwargs: Any) -> None:
            kwargs.setdefault("subject", "Roll a Batch pool to a new image version?")
            super().__init__(**kwargs)
            self.pool_spec = pool_spec

        def execute(self, context: Any) -> Any:
            d = read_decision(self.pool_spec)
            if not d.needs_approval:
                self.log.info("Logical pool %s: no approval needed (require_approval %s, roll %s)",
                              d.logical_pool, d.require_approval, d.roll_action)
                return {"chosen_options": [self.APPROVE], "params_input": {}, "auto": True}
            self.body = (f"Logical pool **{d.logical_pool}** in account {d.account}: move work from "
                         f"{d.serving_pool_id} ({d.serving_version}) to {d.pool_id} ({d.version}), strategy "
                         f"{d.strategy}.")
            return super().execute(context)

        def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
            # ApprovalOperator's "Reject" skips downstream tasks of the same map index only: this task is mapped and
            # promote_image_version is not, so the roll went on. Skipping this task instead skips promotion (and so
            # every roll_pool) through the trigger rules; discard_canaries still runs (teardown).
            from airflow.sdk.exceptions import AirflowSkipException

            result = super().execute_complete(context, event)
            if self.REJECT in (result or {}).get("chosen_options", []):
                raise AirflowSkipException(f"Roll of logical pool {read_decision(self.pool_spec).logical_pool} "
                                           "rejected: promotion and the move skipped; the serving pool is left as it "
                                           "is")
            return result
else:  # pragma: no cover
    RollApprovalOperator = None  # type: ignore[assignment,misc]


class DiscardCanariesOperator(BaseOperator):
    """Delete this run's canary pools that never became serving (the roll's teardown: it runs also when a step
    before ``roll_pool`` failed, and does nothing after a successful roll).

    Reads every pool of the plan's Batch accounts (one list request per account) and picks the pools this DAG run
    made whose ``role`` is still ``canary`` (:func:`batch_images.rules.roll.run_canaries`); each is deleted only if
    nothing uses it (:meth:`batch_images.sensors.pool_repair.PoolRepair.cleanup`: no node running a task, no live
    job, no job schedule naming it) - a pool a user already submitted work to is left, and the log says so. The
    serving pool is not deleted (it is not this run's canary), so a failed smoke test, a rejected approval or a failed
    promotion leave the logical pool as it was. Deletion is not waited for. Only the roll lease this run still holds
    on the serving pool is dropped (else it would block the next run until it expires).

    :param plan: the preflight plan (its pools' ``batch_conn_id``). (templated)
    :return: ``{pool id: what was done}`` (empty when no canary was left).
    """

    template_fields: Sequence[str] = ("plan",)
    template_fields_renderers = {"plan": "json"}
    ui_color = "#f3d6d6"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> dict[str, str]:
        from batch_images.hooks.batch import BatchPoolHook
        from batch_images.sensors.pool_repair import PoolRepair

        if not self.plan:
            self.log.info("No plan (preflight did not finish): no pool was made")
            return {}
        plan = Plan.from_dict(self.plan)
        if plan.options.dry_run or plan.options.canary_only:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("Dry run: nothing was made" if plan.options.dry_run else
                                       "Canary only: this run's canary pools are kept (role canary) for you to try; a "
                                       "later run of the same version adopts them, else the sweep removes them")
        run_id = context["run_id"]
        done: dict[str, str] = {}
        for conn_id in dict.fromkeys(p.batch_conn_id for p in plan.pools):
            hook = BatchPoolHook(conn_id)
            try:
                listing = hook.list_pool_listing()
                for pool_id in roll.run_canaries(listing, self.dag_id, run_id):
                    done[pool_id] = PoolRepair(hook, pool_id=pool_id, target_dedicated_nodes=0, target_low_priority_nodes=0,
                                               log=self.log).cleanup(self.dag_id, run_id)
                    self.log.warning("Canary pool %s of this run never became serving: %s", pool_id, done[pool_id])
                self.release_leases(hook, listing, run_id)
            finally:
                hook.close_sync()
        if not done:
            self.log.info("No canary pool of this run is left")
        return done

    def release_leases(self, hook: Any, listing: Sequence[Mapping[str, Any]], run_id: str) -> None:
        """Drop the roll lease this run still holds (a roll that stopped before roll_pool released it), so the next
        run need not wait for it to expire. A pool changed meanwhile keeps it (412): the lease expires anyway."""
        from azure.core.exceptions import ResourceModifiedError

        now = _now()
        for entry in listing:
            md = dict(entry.get("metadata") or {})
            if roll.lease_holder(md.get(naming.TAG_LEASE), now) != run_id:
                continue
            try:
                hook.update_pool_metadata(entry["id"], roll.metadata_update(md, {naming.TAG_LEASE: None}),
                                          entry.get("etag"))
                self.log.info("Released this run's roll lease on pool %s", entry["id"])
            except ResourceModifiedError:
                self.log.warning("Pool %s changed meanwhile: its roll lease (this run's) is left to expire", entry["id"])


class RollPoolOperator(ArmWaitingOperator):
    """Move a logical pool's work to the new physical pool and retire the old one (steps 6 and 7 of the roll).

    ``blue_green``: job schedules naming an old pool (``poolInfo.poolId``) are repointed to the new pool; schedules
    whose ``autoPoolSpecification`` pool carries this logical pool's ``logical-pool`` metadata get the new version;
    active jobs on the old pool finish there (``active_jobs: drain``) or are moved (``move``: disable with
    ``wait``, PATCH ``poolInfo``, enable). Roles: the new pool ``serving`` (lease dropped), the old ``draining``. The
    old pool is then waited for (deferred) until it runs no task and its drained jobs have none queued, bounded by
    ``drain_timeout_minutes`` counted from its ``draining-since`` metadata. Once it runs no task, every job still
    naming it (a long-lived job with ``onAllTasksComplete: noaction``, a job its schedule made before the schedule
    moved) is moved to the new pool (disable with ``wait``, PATCH ``poolInfo``, enable), so no job is left on a
    deleted pool; then the old pool's autoscale is disabled (Batch refuses a resize while it is enabled), it is
    resized to zero with ``taskcompletion``, jobs put on it meanwhile are moved too, and it is deleted. On drain
    timeout: ``keep`` fails the task naming the counts and leaves the pool ``draining`` (the next run finishes it);
    ``requeue`` moves its jobs (disable with requeue) and deletes it.

    Autoscale (the template's ``enableAutoScale``, ``autoScaleFormula``, ``autoScaleEvaluationInterval``): the canary
    was made at a fixed size; when it becomes serving its formula is enabled, and the roll ends only after Batch's
    first evaluation succeeded (``autoScaleRun`` without ``error``; waiter ``batch_pool_autoscaled``).

    ``in_place``: the serving pool keeps its id: its jobs are disabled (``wait``: running tasks finish), its autoscale
    disabled, it is resized to zero, its image PATCHed to the new version, resized back to its target (or its
    autoscale formula enabled again and evaluated) and waited steady; jobs enabled. Users' work pauses for that
    whole time (docs/concepts.md, "Rolling pools to a new version").

    Then every node of the serving pool must report the new version in ``virtualMachineInfo.imageReference``, and the
    roll is published as an Asset event on the outlet ``batch-pool://<account>/<logical pool>``.

    :param pool_spec: plan_roll's output for this logical pool (a RollDecision dict). (templated)
    :return: ``{"logical_pool", "pool_id", "version", "account", "moved_schedules", "moved_jobs",
        "deleted_pools", "nodes"}`` (``moved_jobs``: ids of the jobs moved to the new pool, by ``active_jobs: move``
        or before an old pool was deleted) or None when the pool was not rolled.
    """

    operator_extra_links = links.POOL_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("pool_spec",)
    ui_color = "#cfe8ff"

    def __init__(self, *, pool_spec: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_spec = pool_spec

    # -- helpers --------------------------------------------------------------------------------------------------

    @cached_property
    def spec(self) -> RollDecision:
        """``pool_spec`` read once per execution (a resumed deferral is a new one)."""
        return read_decision(self.pool_spec)

    def batch_hook(self):
        from batch_images.hooks.batch import BatchPoolHook

        return BatchPoolHook(self.spec.batch_conn_id)

    def bwait(self, context: Any, waiter: str, args: dict, phase: str, extra: dict,
              deadline: float | None = None) -> Any:
        return self.wait(context, waiter_name=waiter, waiter_args=args, timeout=STEP_TIMEOUT, phase=phase,
                         extra=extra, conn_id=self.spec.batch_conn_id,
                         deadline=deadline if deadline is not None else time.time() + STEP_TIMEOUT)

    @property
    def template(self) -> dict:
        """The logical pool's Batch pool body (``PoolSpec.template``; empty for a spec without one)."""
        return getattr(self.spec, "template", None) or {}

    def enable_template_autoscale(self, hook: Any, pool_id: str) -> None:
        """Enable the template's autoscale formula and interval on ``pool_id`` (a canary made at a fixed size, or an
        in_place pool just re-imaged). Nothing for a fixed-size template, or when the pool already has that formula
        (a retry: Batch refuses a second enableautoscale within 30 seconds)."""
        scale = roll.autoscale_of(self.template)
        if scale is None:
            return
        pool = hook.get_pool(pool_id)
        if pool is not None and pool.enable_auto_scale and pool.auto_scale_formula == scale.formula:
            return
        hook.enable_auto_scale(pool_id, scale.formula, scale.evaluation_interval)

    @staticmethod
    def disable_autoscale(hook: Any, pool_id: str, listing: Mapping[str, Any] | None = None) -> None:
        """Disable autoscale on a pool about to be emptied (Batch refuses a resize while it is enabled); ``listing``:
        the pool as :meth:`BatchPoolHook.pool_listing` read it just now (saves a GET)."""
        enabled = listing.get("enable_auto_scale") if listing is not None else hook.auto_scale_enabled(pool_id)
        if enabled:
            hook.disable_auto_scale(pool_id)

    def set_metadata(self, hook: Any, pool_id: str, changes: Mapping[str, str | None]) -> None:
        """Apply metadata changes with If-Match, re-reading once if the pool changed in between."""
        from azure.core.exceptions import ResourceModifiedError

        for attempt in range(3):
            current = hook.pool_listing(pool_id)
            if current is None:
                return
            have = current.get("metadata") or {}
            want = roll.metadata_update(have, changes)
            if want == have:
                return
            try:
                hook.update_pool_metadata(pool_id, want, current.get("etag"))
                return
            except ResourceModifiedError:
                if attempt == 2:
                    raise

    # -- execute --------------------------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        d = self.spec
        if d.roll_action == roll.SKIP_DOWNGRADE:
            self.log.info("Logical pool %s not rolled: a newer version (%s) serves it", d.logical_pool,
                          d.serving_version)
            return None
        if d.canary_only:  # the whole run rolls nothing: skipped, so the grid shows it (retire is skipped too)
            raise AirflowSkipException(f"Logical pool {d.logical_pool} not rolled (canary only): {d.pool_id} stays "
                                       f"canary, {d.serving_pool_id or 'no pool'} keeps serving")
        hook = self.batch_hook()
        if d.re_images:
            return self.in_place_start(context, hook)
        return self.blue_green(context, hook)

    # -- blue/green -----------------------------------------------------------------------------------------------

    def blue_green(self, context: Any, hook: Any) -> Any:
        spec = self.spec
        new_id = spec.pool_id
        pools = roll.physical_pools(hook.list_pool_listing(), spec.logical_pool)
        if not any(p.pool_id == new_id for p in pools):
            raise AirflowException(f"pool {new_id} of logical pool {spec.logical_pool} does not exist (deleted "
                                   "since create_pool?); clear create_pool to make it again")
        old = [p for p in pools if p.pool_id != new_id and p.role in (naming.ROLE_SERVING, naming.ROLE_DRAINING)]
        old_ids = [p.pool_id for p in old]
        moved_schedules = self.move_schedules(hook, old_ids, new_id)
        moved_jobs, drained_jobs = self.handle_active_jobs(context, hook, old_ids, new_id, spec.roll.active_jobs)
        now = roll.iso(_now())
        # New pool serving first: a crash in between leaves two serving pools, and the newest wins (rules/roll.py).
        self.set_metadata(hook, new_id, {naming.TAG_ROLE: naming.ROLE_SERVING, naming.TAG_LEASE: None,
                                         naming.TAG_SERVING_SINCE: self._keep(pools, new_id, naming.TAG_SERVING_SINCE)
                                         or now})
        self.enable_template_autoscale(hook, new_id)
        for p in old:
            self.set_metadata(hook, p.pool_id, {naming.TAG_ROLE: naming.ROLE_DRAINING, naming.TAG_LEASE: None,
                                                naming.TAG_DRAINING_SINCE: self._draining_since(hook, p.pool_id) or now})
        state = {"new": new_id, "old": old_ids, "drained_jobs": drained_jobs, "moved_schedules": moved_schedules,
                 "moved_jobs": moved_jobs, "deleted": []}
        return self.next_old(context, hook, state)

    @staticmethod
    def _keep(pools: Sequence[roll.PhysicalPool], pool_id: str, key: str) -> str | None:
        for p in pools:
            if p.pool_id == pool_id and key == naming.TAG_SERVING_SINCE:
                return p.serving_since
        return None

    @staticmethod
    def _draining_since(hook: Any, pool_id: str) -> str | None:
        return ((hook.pool_listing(pool_id) or {}).get("metadata") or {}).get(naming.TAG_DRAINING_SINCE)

    def move_schedules(self, hook: Any, old_ids: Sequence[str], new_id: str) -> list[str]:
        """Repoint job schedules from the old pools to ``new_id``; auto-pool schedules of this logical pool get the
        new version. Returns the schedule ids changed (already pointing at the new pool: left alone)."""
        d = self.spec
        moved = []
        old_lower = {p.lower() for p in old_ids}
        for sched in hook.list_job_schedules_json():
            spec = dict(sched.get("jobSpecification") or {})
            info = dict(spec.get("poolInfo") or {})
            if (info.get("poolId") or "").lower() in old_lower:
                spec["poolInfo"] = {"poolId": new_id}
                hook.set_schedule_job_specification(sched["id"], spec, sched.get("eTag"))
                self.log.info("Job schedule %s: poolInfo.poolId %s -> %s", sched["id"], info["poolId"], new_id)
                moved.append(sched["id"])
                continue
            auto = info.get("autoPoolSpecification") or {}
            pool = dict(auto.get("pool") or {})
            md = {m.get("name"): m.get("value") for m in pool.get("metadata") or []}
            if md.get(naming.TAG_LOGICAL_POOL) != d.logical_pool:
                continue
            vmc = dict(pool.get("virtualMachineConfiguration") or {})
            ref = dict(vmc.get("imageReference") or {})
            if ids.same_id(ref.get("virtualMachineImageId"), d.image_version_id):
                continue
            ref["virtualMachineImageId"] = d.image_version_id
            vmc["imageReference"] = ref
            pool["virtualMachineConfiguration"] = vmc
            pool["metadata"] = [{"name": k, "value": v} for k, v in
                                roll.metadata_update(md, {naming.TAG_IMAGE_VERSION: d.version}).items()]
            spec["poolInfo"] = {**info, "autoPoolSpecification": {**auto, "pool": pool}}
            hook.set_schedule_job_specification(sched["id"], spec, sched.get("eTag"))
            self.log.info("Job schedule %s: auto pool image -> %s", sched["id"], d.image_version_id)
            moved.append(sched["id"])
        return moved

    def handle_active_jobs(self, context: Any, hook: Any, old_ids: Sequence[str], new_id: str, mode: str,
                           disable_tasks: str = "wait") -> tuple[list[str], list[str]]:
        """``move``: disable (``disable_tasks``), PATCH poolInfo, enable each job on an old pool. ``drain``: leave
        them. Returns (moved job ids, job ids left to drain). A job a killed try left disabled is picked up."""
        old_lower = {p.lower() for p in old_ids}
        jobs = [j for j in hook.list_active_jobs() if (j.get("pool_id") or "").lower() in old_lower]
        if mode != "move":
            for j in jobs:
                self.log.info("Job %s stays on %s until it finishes (active_jobs: drain)", j["id"], j["pool_id"])
            return [], [j["id"] for j in jobs]
        return self.move_jobs_off(context, hook, old_ids, new_id, disable_tasks), []

    def move_jobs_off(self, context: Any, hook: Any, old_ids: Sequence[str], new_id: str,
                      disable_tasks: str = "wait") -> list[str]:
        """Move every job not completed (active, disabling, disabled) whose ``poolInfo.poolId`` names one of
        ``old_ids`` to ``new_id`` (:meth:`move_job`), jobs a job schedule made before its move included; then enable
        the jobs a killed try disabled and moved but did not enable (:class:`JobsDisabledByRoll`). A job a user had
        disabled is moved and stays disabled. Returns the ids moved now.

        Called before an old pool is deleted (after its drain, and again just before the delete), so no job is left
        naming a deleted pool: a long-lived job (``onAllTasksComplete: noaction``, tasks added for days) would
        otherwise never run a task again."""
        disabled = JobsDisabledByRoll(context)
        old_lower = {p.lower() for p in old_ids}
        jobs = hook.list_active_jobs()
        moving = [j for j in jobs if (j.get("pool_id") or "").lower() in old_lower]
        for j in moving:
            self.move_job(hook, j, new_id, disable_tasks, disabled)
        for j in jobs:
            if j["id"] in disabled and (j.get("pool_id") or "").lower() == new_id.lower() \
                    and j.get("state") == "disabled":
                hook.enable_job(j["id"])
                disabled.discard(j["id"])
        return [j["id"] for j in moving]

    @staticmethod
    def _add_moved(state: dict, moved: Sequence[str]) -> dict:
        return {**state, "moved_jobs": list(dict.fromkeys([*(state.get("moved_jobs") or []), *moved]))}

    def move_job(self, hook: Any, job: dict, new_id: str, disable_tasks: str, disabled: JobsDisabledByRoll) -> None:
        """Disable (when active), wait until disabled, PATCH ``poolInfo`` to ``new_id``, enable if the roll disabled
        it (``disabled`` records it first)."""
        if job.get("state") == "active":
            disabled.add(job["id"])
            hook.disable_job(job["id"], disable_tasks)
        deadline = time.time() + STEP_TIMEOUT
        while True:  # disabling -> disabled once running tasks finished (wait) or were requeued
            state = (hook.get_job_json(job["id"]) or {}).get("state")
            if state == "disabled" or state is None:
                break
            if time.time() > deadline:
                raise AirflowException(f"job {job['id']} still {state} after {STEP_TIMEOUT:.0f} s")
            time.sleep(min(self.poll_interval, 5.0))
        if state is None:  # deleted meanwhile
            disabled.discard(job["id"])
            return
        hook.set_job_pool(job["id"], new_id)
        if job["id"] not in disabled:
            self.log.info("Job %s moved from %s to %s; left disabled, as it was before the roll", job["id"],
                          job.get("pool_id"), new_id)
            return
        hook.enable_job(job["id"])
        disabled.discard(job["id"])
        self.log.info("Job %s moved from %s to %s", job["id"], job.get("pool_id"), new_id)

    def next_old(self, context: Any, hook: Any, state: dict) -> Any:
        """Drain, empty and delete the next old pool; verify when none is left."""
        left = [p for p in state["old"] if p not in state["deleted"]]
        if not left:
            if roll.autoscale_of(self.template) is not None:
                return self.bwait(context, "batch_pool_autoscaled", {"pool_id": state["new"]}, "autoscaled", state)
            return self.verify(context, hook, state)
        pool_id = left[0]
        current = hook.pool_listing(pool_id)
        if current is None:
            state["deleted"].append(pool_id)
            return self.next_old(context, hook, state)
        since = roll.parse_iso((current.get("metadata") or {}).get(naming.TAG_DRAINING_SINCE)) or _now()
        deadline = (since + timedelta(minutes=self.spec.roll.drain_timeout_minutes)).timestamp()
        self.log.info("Draining pool %s (until %s at the latest)", pool_id, roll.iso(datetime.fromtimestamp(deadline,
                                                                                                          timezone.utc)))
        return self.bwait(context, "batch_pool_drained", {"pool_id": pool_id, "job_ids": state["drained_jobs"]},
                          "drained", {**state, "current": pool_id}, deadline=max(deadline, time.time() + 1))

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        hook = self.batch_hook()
        state = dict(extra)
        pool_id = state.get("current")
        status = event.get("status")
        if phase == "drained":
            if status == "timeout":
                return self.drain_timed_out(context, hook, state, event)
            self.check_event(event, f"draining pool {pool_id}")
            state = self._add_moved(state, self.move_jobs_off(context, hook, [pool_id], state["new"]))
            return self.empty_and_delete(context, hook, state)
        if phase == "emptied":
            self.check_event(event, f"resizing pool {pool_id} to zero")
            # a job a user put on the old pool meanwhile: moved too (the pool has no node: nothing runs there)
            state = self._add_moved(state, self.move_jobs_off(context, hook, [pool_id], state["new"]))
            hook.delete_pool(pool_id)
            return self.bwait(context, "batch_pool_gone", {"pool_id": pool_id}, "deleted", state)
        if phase == "deleted":
            self.check_event(event, f"deleting pool {pool_id}")
            state["deleted"] = [*state["deleted"], pool_id]
            return self.next_old(context, hook, state)
        if phase == "autoscaled":
            self.check_event(event, f"the first autoscale evaluation of pool {state['new']}")
            return self.verify(context, hook, state)
        if phase.startswith("inplace_"):
            return self.in_place_continue(context, hook, phase, event, state)
        return super().after_wait(context, event, phase, extra)

    def empty_and_delete(self, context: Any, hook: Any, state: dict) -> Any:
        pool_id = state["current"]
        current = hook.pool_listing(pool_id)
        if current is None:
            state["deleted"] = [*state["deleted"], pool_id]
            return self.next_old(context, hook, state)
        self.disable_autoscale(hook, pool_id, current)
        if current["target_dedicated_nodes"] + current["target_low_priority_nodes"] > 0:
            if (current.get("allocation_state") or "").lower() == "steady":
                hook.resize_pool(pool_id, 0, 0, node_deallocation_option="taskcompletion")
        return self.bwait(context, "batch_pool_empty", {"pool_id": pool_id}, "emptied", state)

    def drain_timed_out(self, context: Any, hook: Any, state: dict, event: dict) -> Any:
        pool_id = state["current"]
        on_timeout = self.spec.roll.on_drain_timeout
        message = event.get("message") or ""
        if on_timeout == "keep":
            raise AirflowFailException(
                f"pool {pool_id} did not drain within {self.spec.roll.drain_timeout_minutes} minutes ({message}); "
                f"it is left with role draining and keeps running its tasks (on_drain_timeout: keep). The new pool "
                f"{state['new']} serves. Clear this task (or let the next run) finish the drain.")
        self.log.warning("Pool %s did not drain in time (%s): requeueing its work on %s and deleting it "
                         "(on_drain_timeout: requeue)", pool_id, message, state["new"])
        state = self._add_moved(state, self.move_jobs_off(context, hook, [pool_id], state["new"], "requeue"))
        hook.delete_pool(pool_id)  # its running tasks are requeued by Batch
        return self.bwait(context, "batch_pool_gone", {"pool_id": pool_id}, "deleted", state)

    # -- in place -------------------------------------------------------------------------------------------------

    def in_place_start(self, context: Any, hook: Any) -> Any:
        d = self.spec
        pool_id = d.pool_id
        current = hook.pool_listing(pool_id)
        if current is None:
            raise AirflowFailException(f"pool {pool_id} (serving logical pool {d.logical_pool}) is gone")
        if ids.same_id(current.get("image_id"), d.image_version_id):
            self.log.info("Pool %s already on %s: growing it back if needed", pool_id, d.image_version_id)
            return self.in_place_grow(context, hook, {"new": pool_id, "old": [], "deleted": [], "drained_jobs": [],
                                                       "moved_schedules": [], "moved_jobs": [], "current": pool_id})
        # Stop new work: disable the pool's jobs with "wait" (running tasks finish), then empty the pool. Only the
        # jobs the roll disabled (this try or a killed one) are enabled again; a job a user disabled stays so.
        disabled = JobsDisabledByRoll(context)
        jobs = [j for j in hook.list_active_jobs() if (j.get("pool_id") or "").lower() == pool_id.lower()]
        for j in jobs:
            if j.get("state") == "active":
                disabled.add(j["id"])
                hook.disable_job(j["id"], "wait")
        state = {"new": pool_id, "old": [], "deleted": [], "drained_jobs": [], "moved_schedules": [],
                 "moved_jobs": [], "paused_jobs": [j["id"] for j in jobs if j["id"] in disabled], "current": pool_id}
        self.log.info("In-place roll of %s: jobs %s paused; running tasks finish, then the pool empties (downtime "
                      "starts)", pool_id, ", ".join(state["paused_jobs"]) or "(none)")
        self.disable_autoscale(hook, pool_id, current)
        if current["target_dedicated_nodes"] + current["target_low_priority_nodes"] > 0 and \
                (current.get("allocation_state") or "").lower() == "steady":
            hook.resize_pool(pool_id, 0, 0, node_deallocation_option="taskcompletion")
        return self.bwait(context, "batch_pool_empty", {"pool_id": pool_id}, "inplace_emptied", state)

    def in_place_grow(self, context: Any, hook: Any, state: dict) -> Any:
        spec = self.spec
        pool_id = state["current"]
        if roll.autoscale_of(self.template) is not None:  # the formula sizes it again, not the fixed targets
            self.enable_template_autoscale(hook, pool_id)
            return self.bwait(context, "batch_pool_autoscaled", {"pool_id": pool_id}, "inplace_steady", state)
        current = hook.pool_listing(pool_id) or {}
        if current.get("target_dedicated_nodes", 0) + current.get("target_low_priority_nodes", 0) == 0 and \
                (current.get("allocation_state") or "").lower() == "steady":
            hook.resize_pool(pool_id, spec.target_dedicated_nodes, spec.target_low_priority_nodes,
                             spec.resize_timeout)
        from batch_images.triggers.waiters import batch as steady

        return self.bwait(context, steady.WAITER_NAME,
                          {"pool_id": pool_id, "target_dedicated_nodes": spec.target_dedicated_nodes,
                           "target_low_priority_nodes": spec.target_low_priority_nodes,
                           "max_unhealthy_node_share": spec.max_unhealthy_node_share}, "inplace_steady", state)

    def in_place_continue(self, context: Any, hook: Any, phase: str, event: dict, state: dict) -> Any:
        d = self.spec
        pool_id = state["current"]
        if phase == "inplace_emptied":
            self.check_event(event, f"emptying pool {pool_id}")
            hook.patch_pool_image(pool_id, d.image_version_id, d.node_agent_sku_id, d.security_profile)
            self.set_metadata(hook, pool_id, {naming.TAG_IMAGE_VERSION: d.version,
                                              naming.TAG_RUN_ID: context["run_id"],
                                              naming.TAG_PREVIOUS_VERSIONS:
                                                  d.metadata.get(naming.TAG_PREVIOUS_VERSIONS) or None})
            return self.in_place_grow(context, hook, state)
        if phase == "inplace_steady":
            self.check_event(event, f"growing pool {pool_id} back")
            disabled = JobsDisabledByRoll(context)
            for job_id in state.get("paused_jobs") or []:
                job = hook.get_job_json(job_id)
                if job and job.get("state") == "disabled":
                    hook.enable_job(job_id)
                disabled.discard(job_id)
            self.set_metadata(hook, pool_id, {naming.TAG_ROLE: naming.ROLE_SERVING, naming.TAG_LEASE: None,
                                              naming.TAG_SERVING_SINCE: roll.iso(_now())})
            return self.verify(context, hook, state)
        raise AirflowException(f"unknown phase {phase}")

    # -- verify ---------------------------------------------------------------------------------------------------

    def verify(self, context: Any, hook: Any, state: dict) -> dict:
        d = self.spec
        pool_id = state["new"]
        if d.roll_action in (roll.FIRST, roll.CURRENT) or state.get("old") == []:
            # a first pool (or a finished roll) becomes / stays serving
            pools = roll.physical_pools(hook.list_pool_listing(), d.logical_pool)
            self.set_metadata(hook, pool_id, {naming.TAG_ROLE: naming.ROLE_SERVING, naming.TAG_LEASE: None,
                                              naming.TAG_SERVING_SINCE: self._keep(pools, pool_id,
                                                                                   naming.TAG_SERVING_SINCE)
                                              or roll.iso(_now())})
        nodes = [{"id": n.id, "image_id": getattr(getattr(getattr(n, "virtual_machine_info", None), "image_reference",
                                                           None), "virtual_machine_image_id", None),
                  "exact_version": getattr(getattr(getattr(n, "virtual_machine_info", None), "image_reference", None),
                                           "exact_version", None)}
                 for n in hook.list_nodes(pool_id)]
        off = roll.nodes_off_version(nodes, d.image_version_id)
        if off:
            raise AirflowException(f"pool {pool_id}: node(s) {', '.join(off)} do not report image "
                                   f"{d.image_version_id} in virtualMachineInfo.imageReference")
        self.log.info("Pool %s serves logical pool %s: all %d node(s) on %s", pool_id, d.logical_pool, len(nodes),
                      d.version)
        result = {"logical_pool": d.logical_pool, "pool_id": pool_id, "version": d.version,
                  "account": d.account, "moved_schedules": state.get("moved_schedules") or [],
                  "moved_jobs": state.get("moved_jobs") or [], "deleted_pools": state.get("deleted") or [],
                  "nodes": len(nodes)}
        self.publish_asset_event(context, result)
        return result

    def publish_asset_event(self, context: Any, result: dict) -> None:
        """Add an event for ``batch-pool://<account>/<logical pool>`` through this task's AssetAlias outlet."""
        from airflow.sdk import Asset, AssetAlias

        aliases = [o for o in (self.outlets or []) if isinstance(o, AssetAlias)]
        if not aliases:
            return
        uri = asset_uri(result["account"], result["logical_pool"])
        context["outlet_events"][aliases[0]].add(Asset(uri=uri, name=uri),
                                                 extra={"pool_id": result["pool_id"], "version": result["version"]})
        self.log.info("Asset event %s: pool %s, version %s", uri, result["pool_id"], result["version"])
