"""Wait for ARM resources (snapshots, images, image versions) to reach provisioningState Succeeded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import time

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from batch_images import links
from batch_images.operators._arm import DEFER_GRACE, ids_of
from batch_images.triggers.base import (AzureBaseWaiterTrigger, budget_deadline, default_deferrable, probe_before_defer,
                                        run_waiter_sync)
from batch_images.triggers.waiters import get_waiter


class ArmResourcesSensor(BaseSensorOperator):
    """Wait until every resource in ``resource_ids`` says provisioningState Succeeded (``arm_provisioning``).

    ``resource_ids``: ARM ids, as strings or dicts with ``"id"`` (e.g. the SnapshotDisksOperator's output).
    A resource that ends Failed fails the task, naming it and Azure's error.

    ``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``, else True) defers to :class:`~batch_images.triggers.base.AzureBaseWaiterTrigger`;
    otherwise the same waiter runs in the worker (:func:`~batch_images.triggers.base.run_waiter_sync`), or,
    with ``mode="reschedule"``, one probe per poke.

    ``operations``: optional ``{resource id: Azure-AsyncOperation URL}`` of the creates (the
    SnapshotDisksOperator's XCom ``operations``), so that a resource ending Failed is reported with Azure's
    error: a Failed resource's own body does not say why.

    ``created_at``: optional ``{resource id: epoch seconds}`` of the creates the upstream task made (the
    SnapshotDisksOperator's XCom ``created_at``): such a resource that answers 404 within the waiter's grace
    period after its create is not visible yet (ARM's read-after-write lag) and is polled again.

    ``timeout`` (seconds) is the budget of the whole wait, the task's retries included: a retry continues
    the first try's deadline (kept in the task state store). Running out of it raises
    ``AirflowSensorTimeout`` in every mode, which Airflow does not retry.

    :return: the list of resource ids.
    """

    operator_extra_links = links.WAITED_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("resource_ids", "operations", "created_at", "arm_conn_id")

    def __init__(self, *, resource_ids: Any, operations: Any = None, created_at: Any = None,
                 arm_conn_id: str = "azure_default", deferrable: bool | None = None, poll_interval: float = 15.0,
                 timeout: float = 3600.0, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(timeout=timeout, **kwargs)
        self.resource_ids = resource_ids
        self.operations = operations
        self.created_at = created_at
        self.arm_conn_id = arm_conn_id
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = poll_interval

    def _ids(self) -> list[str]:
        return ids_of(self.resource_ids, "resource_ids")

    def _args(self) -> dict:
        args: dict = {"resource_ids": self._ids()}
        if isinstance(self.operations, Mapping) and self.operations:
            args["operations"] = {str(k): str(v) for k, v in self.operations.items() if v}
        if isinstance(self.created_at, Mapping) and self.created_at:
            args["created_at"] = {str(k): float(v) for k, v in self.created_at.items()
                                  if isinstance(v, (int, float))}
        return args

    def execute(self, context: Any) -> list[str]:
        resource_ids = self._ids()
        if not resource_ids:
            self.log.info("No resources to wait for")
            return []
        timeout = float(self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout)
        args = self._args()
        if self.reschedule and not self.deferrable:
            return super().execute(context)  # BaseSensorOperator keeps reschedule mode's own clock
        deadline = budget_deadline(context, timeout, logger=self.log)
        if self.deferrable:
            event = probe_before_defer("arm_provisioning", args, self.arm_conn_id, deadline=deadline, logger=self.log)
            if event is not None:
                event["value"] = resource_ids
                return self.execute_complete(context, event)
            self.defer(
                trigger=AzureBaseWaiterTrigger(waiter_name="arm_provisioning", waiter_args=args,
                                               conn_id=self.arm_conn_id, poll_interval=self.poll_interval,
                                               deadline=deadline, return_key="value",
                                               return_value=resource_ids, first_poll_delay=self.poll_interval),
                method_name="execute_complete",
                timeout=timedelta(seconds=max(deadline - time.time(), 0.0)) + DEFER_GRACE)
        event = run_waiter_sync("arm_provisioning", args, self.arm_conn_id, self.poll_interval,
                                deadline=deadline, logger=self.log)
        event["value"] = resource_ids
        return self.execute_complete(context, event)

    def poke(self, context: Any) -> bool:
        """One probe (used with mode="reschedule"): True when all Succeeded, raise on Failed."""
        waiter = get_waiter("arm_provisioning")
        event = asyncio.run(self._one_probe(waiter))
        self.log.info("%s", waiter.progress(event["state"]))
        if event["status"] == "failure":
            raise AirflowException(event["message"])
        return event["status"] == "success"

    async def _one_probe(self, waiter) -> dict:
        from batch_images.triggers.waiters import make_hook

        hook = make_hook(waiter, self.arm_conn_id)
        hook.load_connection()
        try:
            state = await waiter.probe(hook, **self._args())
        finally:
            await hook.close()
        status, message = waiter.evaluate(state)
        return {"status": status, "message": message, "state": state}

    def execute_complete(self, context: Any, event: dict | None = None) -> list[str]:
        event = event or {}
        if event.get("status") == "success":
            self.log.info("%s", event.get("message"))
            return event.get("value") or []
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(f"timed out: {event.get('message')}")
        raise AirflowException(event.get("message") or f"waiter ended with {event.get('status')!r}")
