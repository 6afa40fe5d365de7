"""Sweep: delete this project's own leftovers of runs that are over, so that a run that crashed anywhere is cleaned
up by a later one.

What it looks at (and nothing else):

* snapshots and managed images in the plan's work resource group tagged ``managed-by=airflow-batch-images``;
* build VMs of a base_image pipeline (``plan.build``'s resource group) tagged the same: deleted with their NIC and
  disks (created with ``deleteOption: Delete``);
* Batch pools whose metadata says ``role=canary`` (a new physical pool not yet serving, :mod:`batch_images.rules.roll`)
  and smoke-test jobs (metadata ``role=smoke-test``, :mod:`batch_images.operators.smoke`), tagged the same, in the
  Batch accounts of the plan's pools.

Each one is removed only when :func:`batch_images.rules.retention.sweep_verdict` allows it: made by another run than
the current one, older than ``min_age``, and its run not queued or running in Airflow (pools and jobs: only when
Airflow said so). A canary pool is then deleted only if nothing uses it (:meth:`PoolRepair.users`: no node running a
task, no live job or job schedule pointing at it) - deleting a pool would requeue its users' tasks. Serving and
draining pools are the roll's, never the sweep's; untagged resources are never touched.

Deletes are started, not waited for (Azure finishes them; a resource already deleting is skipped next time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from batch_images.operators._arm import is_ours
from batch_images.operators.smoke import ROLE_SMOKE_TEST, delete_job
from batch_images.pool_facts import enum_text, pool_metadata
from batch_images.rules import ids, naming, retention
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan

DEFAULT_MIN_AGE = timedelta(hours=6)


def _aware(value: Any) -> datetime | None:
    when = retention.parse_time(value)
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


class SweepLeftoversOperator(BaseOperator):
    """Delete leftovers of earlier runs (snapshots, managed images, canary pools, smoke-test jobs) older than
    ``min_age`` whose run is over; list what was removed and what was kept, and why.

    :param plan: the preflight plan (``work_subscription_id``, ``work_resource_group``, ``pools[].batch_conn_id``).
    :param arm_conn_id: the ARM connection (default ``azure_default``).
    :param min_age: a ``timedelta`` or hours (number); default 6 hours. Younger leftovers may belong to a run in
        flight that Airflow cannot tell about (another Airflow, a run being retried).
    :return: ``{"removed": [{"kind", "id", "run_id"}], "kept": [{"kind", "id", "reason"}], "not_ours": n}``;
        ``not_ours`` counts the snapshots/images of the resource group without this project's tag (never touched).
    :raises AirflowFailException: an unreadable plan or ``min_age``. A listing that fails raises the SDK's error
        (the task retries); a delete that fails is reported under ``kept``.
    """

    template_fields: Sequence[str] = ("plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    ui_color = "#eeeeee"

    def __init__(self, *, plan: Any, arm_conn_id: str = "azure_default",
                 min_age: timedelta | float | int = DEFAULT_MIN_AGE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.arm_conn_id = arm_conn_id
        self.min_age = min_age

    def _min_age(self) -> timedelta:
        age = self.min_age if isinstance(self.min_age, timedelta) else None
        if age is None and isinstance(self.min_age, (int, float)) and not isinstance(self.min_age, bool):
            age = timedelta(hours=float(self.min_age))
        if age is None or age < timedelta(0):
            raise AirflowFailException(str(InvalidInput("min_age", self.min_age, "not a duration of 0 or more",
                                                        "pass a timedelta or a number of hours, e.g. 6")))
        return age

    def execute(self, context: Any) -> dict:
        try:
            plan = Plan.from_dict(self.plan) if isinstance(self.plan, Mapping) else Plan.from_dict({})
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None
        self._context = context
        self._states: dict[tuple[str, str], str | None] = {}
        self._now = datetime.now(timezone.utc)
        self._min = self._min_age()
        self._current = context.get("run_id")
        # A canary of this run's version (a canary_only run left it) is what this run adopts: never swept by it.
        self._adopt = {(p.logical_pool, plan.version) for p in plan.rolled_pools()}
        self.removed: list[dict] = []
        self.kept: list[dict] = []
        not_ours = self._sweep_arm(plan)
        for conn_id in sorted({p.batch_conn_id for p in plan.pools}):
            self._sweep_batch(conn_id)
        for item in self.removed:
            self.log.info("Removed %s %s (run %s)", item["kind"], item["id"], item["run_id"])
        for item in self.kept:
            self.log.info("Kept %s %s: %s", item["kind"], item["id"], item["reason"])
        self.log.info("Sweep: %d removed, %d kept, %d resource(s) of the resource group not ours (untouched)",
                      len(self.removed), len(self.kept), not_ours)
        return {"removed": self.removed, "kept": self.kept, "not_ours": not_ours}

    # -- what Airflow knows of a run --------------------------------------------------------------------------------

    def run_state(self, dag_id: str | None, run_id: str | None) -> str | None:
        """The Airflow state of a DAG run (``running``, ``failed``, ...), or None when it cannot be learnt (no such
        run, or not inside a supervised task). Through the Task SDK (``RuntimeTaskInstance.get_dagrun_state``), one
        request per run."""
        if not dag_id or not run_id:
            return None
        key = (dag_id, run_id)
        if key not in self._states:
            try:
                state = self._context["ti"].get_dagrun_state(dag_id=dag_id, run_id=run_id)
            except Exception as err:  # noqa: BLE001 - unknown is an answer: the verdict keeps what needs one
                self.log.info("Could not learn the state of run %s of %s: %s", run_id, dag_id, err)
                state = None
            self._states[key] = enum_text(state) if state is not None else None
        return self._states[key]

    def _judge(self, item: retention.Leftover) -> str | None:
        return retention.sweep_verdict(item, current_run_id=self._current, now=self._now, min_age=self._min,
                                       run_state=self.run_state(item.dag_id, item.run_id))

    def _sweep_one(self, item: retention.Leftover, remove: Callable[[], str | None]) -> None:
        """Judge ``item``; if it may go, ``remove()`` it (which answers why it stayed after all, or None)."""
        reason = self._judge(item)
        self._settle(item, remove() if reason is None else reason)

    def _settle(self, item: retention.Leftover, kept_because: str | None) -> None:
        if kept_because is None:
            self.removed.append({"kind": item.kind, "id": item.id, "run_id": item.run_id})
        else:
            self.kept.append({"kind": item.kind, "id": item.id, "reason": kept_because})

    # -- snapshots and managed images -------------------------------------------------------------------------------

    def _sweep_arm(self, plan: Plan) -> int:
        from batch_images.hooks.arm import ArmComputeHook

        hook = ArmComputeHook(azure_conn_id=self.arm_conn_id)
        sub, rg = plan.work_subscription_id, plan.work_resource_group
        snapshots, answered = hook.list_in_resource_group(sub, rg, ids.SNAPSHOT)
        images, _ = hook.list_in_resource_group(sub, rg, ids.IMAGE)
        if answered is not None:  # ages by Azure's clock, not the worker's
            self._now = answered
        # A managed image carries no creation time of its own (unless ARM sends systemData); it is made from its
        # run's snapshots minutes after them, so their creation time stands in for it.
        run_started: dict[str, datetime] = {}
        for snap in snapshots:
            created = _aware((snap.get("properties") or {}).get("timeCreated"))
            run = (snap.get("tags") or {}).get(naming.TAG_RUN_ID)
            if run and created and (run not in run_started or created < run_started[run]):
                run_started[run] = created
        not_ours = 0
        build_vms: list[dict] = []
        if plan.build is not None:  # leftover build VMs (a run that crashed before its teardown)
            build_vms = [vm for vm in hook.list_in_resource_group(plan.build.subscription_id,
                                                                   plan.build.resource_group, ids.VIRTUAL_MACHINE)[0]
                         if is_ours(vm)]
        # images first: they were made from the snapshots
        for kind, resources in (("build VM", build_vms), ("managed image", images), ("snapshot", snapshots)):
            for res in resources:
                if not is_ours(res):
                    not_ours += 1
                    continue
                tags = res.get("tags") or {}
                created = _aware((res.get("properties") or {}).get("timeCreated")
                                 or (res.get("systemData") or {}).get("createdAt"))
                if created is None and kind == "managed image":
                    created = run_started.get(tags.get(naming.TAG_RUN_ID))
                item = retention.Leftover(kind=kind, id=res["id"], dag_id=tags.get(naming.TAG_DAG_ID),
                                          run_id=tags.get(naming.TAG_RUN_ID), created=created, ours=True)
                if (res.get("properties") or {}).get("provisioningState", "").lower() == "deleting":
                    continue
                self._sweep_one(item, lambda rid=item.id: self._delete_arm(hook, rid))
        return not_ours

    @staticmethod
    def _delete_arm(hook: Any, resource_id: str) -> str | None:
        from azure.core.exceptions import HttpResponseError

        try:
            hook.begin_delete(resource_id)
        except HttpResponseError as err:
            return f"delete failed: {err.message}"
        return None

    # -- canary pools and smoke-test jobs --------------------------------------------------------------------------

    def _sweep_batch(self, conn_id: str) -> None:
        from batch_images.hooks.batch import BatchPoolHook

        hook = BatchPoolHook(azure_batch_conn_id=conn_id)
        # smoke-test jobs first: a leftover one points at its canary pool, which would count as in use
        for job in hook.list_jobs(select=["id", "state", "metadata", "creationTime"]):
            md = pool_metadata(job)
            if md.get(naming.TAG_ROLE) != ROLE_SMOKE_TEST or (enum_text(job.state) or "").lower() == "deleting":
                continue
            item = retention.Leftover(kind="smoke-test job", id=job.id, dag_id=md.get(naming.TAG_DAG_ID),
                                      run_id=md.get(naming.TAG_RUN_ID), created=_aware(job.creation_time),
                                      ours=md.get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY, needs_run_state=True)
            self._sweep_one(item, lambda jid=item.id: self._delete_job(hook, jid))
        for pool in hook.list_pools(select=["id", "state", "metadata", "creationTime"]):
            md = pool_metadata(pool)
            if md.get(naming.TAG_ROLE) != naming.ROLE_CANARY or (enum_text(pool.state) or "").lower() == "deleting":
                continue  # serving / draining pools are the roll's; users' own pools carry no role
            item = retention.Leftover(kind="canary pool", id=pool.id, dag_id=md.get(naming.TAG_DAG_ID),
                                      run_id=md.get(naming.TAG_RUN_ID), created=_aware(pool.creation_time),
                                      ours=md.get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY, needs_run_state=True)
            if (md.get(naming.TAG_LOGICAL_POOL), md.get(naming.TAG_IMAGE_VERSION)) in self._adopt:
                self._settle(item, "a canary of this run's version: this run adopts it")
                continue
            self._sweep_one(item, lambda pid=pool.id: self._delete_unused_pool(hook, pid))

    @staticmethod
    def _delete_job(hook: Any, job_id: str) -> str | None:
        problem = delete_job(hook, job_id)
        return f"delete failed: {problem}" if problem else None

    @staticmethod
    def _delete_unused_pool(hook: Any, pool_id: str) -> str | None:
        """Delete the pool unless something uses it (then say what); never kills or requeues a task."""
        from azure.core.exceptions import HttpResponseError

        from batch_images.pool_facts import batch_error_text
        from batch_images.sensors.pool_repair import PoolRepair

        users = PoolRepair(hook, pool_id=pool_id, target_dedicated_nodes=0, target_low_priority_nodes=0).users()
        if users:
            return f"in use: {'; '.join(users)}"
        try:
            hook.delete_pool(pool_id)
        except HttpResponseError as err:
            return f"delete failed: {batch_error_text(err)}"
        return None
