"""Wait for ARM resources (snapshots, images, image versions) to reach provisioningState Succeeded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from batch_images import links
from batch_images.rules.ids import ids_of
from batch_images.triggers.base import default_deferrable
from batch_images.waiting import WaitingMixin


class ArmResourcesSensor(WaitingMixin, BaseSensorOperator):
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
        if self.reschedule and not self.deferrable:
            return super().execute(context)  # BaseSensorOperator keeps reschedule mode's own clock
        timeout = float(self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout)
        return self.wait_for(context, waiter_name="arm_provisioning", waiter_args=self._args(),
                             conn_id=self.arm_conn_id, timeout=timeout, return_value=resource_ids) or []

    def poke(self, context: Any) -> bool:
        """One probe (used with mode="reschedule"): True when all Succeeded, raise on Failed."""
        return self.poke_waiter("arm_provisioning", self._args(), self.arm_conn_id)
