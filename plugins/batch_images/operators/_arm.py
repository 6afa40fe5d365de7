"""Shared plumbing of the ARM operators: adoption checks and waiting (the plan is :class:`~batch_images.rules.plan.Plan`).

Waiting is :class:`~batch_images.waiting.WaitingMixin`'s (the project's one waiting contract):
:meth:`ArmWaitingOperator.wait` is its ``wait_for`` with the ARM connection by default, and every event lands in
:meth:`~batch_images.waiting.WaitingMixin.after_wait` with the ``phase`` the operator named, so multi-step
operators (the gallery's failed-region retry) are one state machine for both modes.

Timeouts: an operator's timeout (``timeout=`` or the plan's ``timeouts``) is the budget of its whole wait,
every phase and every retry of the task included; a wait that runs out of it raises ``AirflowSensorTimeout``,
which the Airflow 3.3 task runner does not retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from batch_images.rules import naming
from batch_images.rules.plan import Plan
from batch_images.triggers.base import default_deferrable, run_waiter_sync
from batch_images.waiting import WaitingMixin

if TYPE_CHECKING:
    from batch_images.hooks.arm import ArmComputeHook

DEFAULT_TIMEOUTS = {"snapshot": 3600.0, "image": 3600.0, "replication": 6 * 3600.0, "delete": 1800.0}


class ResourceConflict(AirflowException):
    """A resource under this run's name exists but is not this project's (no ``managed-by`` tag), or is this run's
    but does not match the plan (another source, another disk); the message names it and the fix."""


def is_ours(resource: Mapping[str, Any] | None) -> bool:
    return ((resource or {}).get("tags") or {}).get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY


def iso_end_of_life(value: Any) -> str | None:
    """``2026-02-23`` (or a date/datetime) -> ``2026-02-23T00:00:00Z``; None stays None."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    text = str(value)
    try:
        return f"{date.fromisoformat(text).isoformat()}T00:00:00Z"
    except ValueError:
        return text


class ArmWaitingOperator(WaitingMixin, BaseOperator):
    """Base of the ARM operators: connection, deferral/in-process waiting, timeouts from the plan."""

    timeout_key = "snapshot"
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        arm_conn_id: str = "azure_default",
        wait_for_completion: bool = True,
        deferrable: bool | None = None,  # default: Airflow's [operators] default_deferrable, else True
        poll_interval: float = 15.0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.arm_conn_id = arm_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = poll_interval
        self.timeout = timeout

    @cached_property
    def hook(self) -> ArmComputeHook:
        from batch_images.hooks.arm import ArmComputeHook  # the Azure SDK loads in the worker, not at DAG parse

        return ArmComputeHook(azure_conn_id=self.arm_conn_id, lro_poll_interval=min(float(self.poll_interval), 5.0))

    def timeout_seconds(self, plan: Plan | None, key: str | None = None) -> float:
        """``timeout=`` if given, else the plan's ``timeouts[key]``, else :data:`DEFAULT_TIMEOUTS` (seconds)."""
        key = key or self.timeout_key
        if self.timeout is not None:
            return float(self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout)
        default = DEFAULT_TIMEOUTS.get(key, 3600.0)
        return plan.timeout(key, default) if plan is not None else default

    # -- waiting --------------------------------------------------------------------------------------------------

    def wait(self, context: Any, *, conn_id: str | None = None, **kwargs: Any) -> Any:
        """:meth:`~batch_images.waiting.WaitingMixin.wait_for` on the ARM connection unless ``conn_id`` names
        another (a Batch waiter takes the Batch connection)."""
        return self.wait_for(context, conn_id=conn_id or self.arm_conn_id, **kwargs)

    def delete_and_wait(self, resource_ids: list[str], timeout: float = 900.0) -> None:
        """Delete resources and wait until they are gone, in the worker (used to replace stale leftovers)."""
        for rid in resource_ids:
            self.hook.begin_delete(rid)
        event = run_waiter_sync("arm_deleted", {"resource_ids": resource_ids}, self.arm_conn_id,
                                min(self.poll_interval, 10.0), timeout, logger=self.log)
        self.check_event(event, "deleting " + ", ".join(resource_ids))
