"""Shared plumbing of the ARM operators: adoption checks and waiting (the plan is :class:`~batch_images.rules.plan.Plan`).

Waiting has one shape for both modes: :meth:`ArmWaitingOperator.wait` either defers to
:class:`~batch_images.triggers.base.AzureBaseWaiterTrigger` (``deferrable=True``) or runs the same
waiter in-process with :func:`~batch_images.triggers.base.run_waiter_sync`; either way the event lands
in :meth:`ArmWaitingOperator.after_wait` with the ``phase`` the operator named, so multi-step operators
(the gallery's failed-region retry) are one state machine for both modes.

Timeouts: an operator's timeout (``timeout=`` or the plan's ``timeouts``) is the budget of its whole wait,
every phase and every retry of the task included: the first wait of the first try starts it
(:func:`~batch_images.triggers.base.budget_deadline`, kept in the task state store across tries), and a
wait that runs out of it raises ``AirflowSensorTimeout``, which the Airflow 3.3 task runner does not retry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from batch_images.rules import ids, naming
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan
from batch_images.triggers.base import (AzureBaseWaiterTrigger, budget_deadline, default_deferrable, probe_before_defer,
                                        run_waiter_sync)

if TYPE_CHECKING:
    from batch_images.hooks.arm import ArmComputeHook

DEFAULT_TIMEOUTS = {"snapshot": 3600.0, "image": 3600.0, "replication": 6 * 3600.0, "delete": 1800.0}
# Airflow's own deferral timeout is a backstop only: the trigger reports its own timeout with a message.
DEFER_GRACE = timedelta(minutes=10)


class ArmOperationFailed(AirflowException):
    """An Azure operation ended Failed/timed out, or a same-named resource does not match (message says which)."""


def is_ours(resource: Mapping[str, Any] | None) -> bool:
    return ((resource or {}).get("tags") or {}).get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY


def ids_of(values: Any, field: str) -> list[str]:
    """A list of ARM ids from None, a str, a dict with "id", or a list of those (XCom shapes)."""
    if values is None:
        return []
    if isinstance(values, (str, Mapping)):
        values = [values]
    if not isinstance(values, Sequence):
        raise InvalidInput(field, values, "expected ARM ids: a string, a dict with 'id', or a list of those",
                           "pass the upstream operator's output")
    out: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, Mapping):
            value = value.get("id")
        if value is None:
            continue
        ids.parse_arm_id(value, f"{field}[{i}]")
        out.append(value)
    return out


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


class ArmWaitingOperator(BaseOperator):
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

    def wait(self, context: Any, *, waiter_name: str, waiter_args: dict, timeout: float, phase: str,
             return_value: Any = None, extra: dict | None = None, conn_id: str | None = None,
             deadline: float | None = None) -> Any:
        """Wait for ``waiter_name``; continue in :meth:`after_wait` with ``phase`` and ``extra``.

        ``timeout`` (seconds) is the budget of the task's whole wait: its deadline is set by the first wait of
        the first try and kept for later phases and retries (:func:`budget_deadline`). ``deadline`` (epoch
        seconds), when given, is used instead (a bound read from Azure, e.g. a drain that started at a time
        recorded in pool metadata). ``conn_id``: the waiter's connection (default ``arm_conn_id``; a Batch
        waiter takes the Batch connection).
        """
        extra = dict(extra or {})
        conn_id = conn_id or self.arm_conn_id
        if deadline is None:
            deadline = budget_deadline(context, timeout, logger=self.log)
        left = max(deadline - time.time(), 0.0)
        event = None
        if self.deferrable:
            event = probe_before_defer(waiter_name, waiter_args, conn_id, deadline=deadline, logger=self.log)
        if self.deferrable and event is None:
            trigger = AzureBaseWaiterTrigger(
                waiter_name=waiter_name, waiter_args=waiter_args, conn_id=conn_id,
                poll_interval=self.poll_interval, deadline=deadline, return_key="value",
                return_value=return_value, resume_kwargs={"phase": phase, "extra": extra},
                first_poll_delay=self.poll_interval,
            )
            self.log.info("Deferring: waiting for %s (poll every %ss, %ss left of the %ss budget)", waiter_name,
                          self.poll_interval, int(left), int(timeout))
            self.defer(trigger=trigger, method_name="resume", kwargs={"phase": phase, "extra": extra},
                       timeout=timedelta(seconds=left) + DEFER_GRACE)
        if event is None:
            self.log.info("Waiting in the worker for %s (poll every %ss, %ss left of the %ss budget)", waiter_name,
                          self.poll_interval, int(left), int(timeout))
            event = run_waiter_sync(waiter_name, waiter_args, conn_id, self.poll_interval,
                                    deadline=deadline, logger=self.log)
        event["value"] = return_value
        return self.after_wait(context, event, phase, extra)

    def resume(self, context: Any, event: dict | None = None, phase: str = "", extra: dict | None = None) -> Any:
        """Where a deferred wait comes back (method_name of the deferral)."""
        event = event or {}
        if not phase:  # `airflow dags test` hands back the event only: take the deferral's kwargs from it
            carried = event.get("resume_kwargs") or {}
            phase, extra = carried.get("phase", ""), carried.get("extra")
        return self.after_wait(context, event, phase, extra or {})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        """Default: success returns the event's value; failure and timeout raise with the waiter's message."""
        self.check_event(event)
        return event.get("value")

    def check_event(self, event: dict, what: str | None = None) -> None:
        """Return on success; raise ``AirflowSensorTimeout`` on a timeout (not retried: the budget covers the
        retries), ``ArmOperationFailed`` on a failure, both with the waiter's message."""
        status = event.get("status")
        if status == "success":
            self.log.info("%s", event.get("message"))
            return
        prefix = f"{what}: " if what else ""
        if status == "timeout":
            raise AirflowSensorTimeout(f"{prefix}timed out: {event.get('message')}")
        raise ArmOperationFailed(f"{prefix}{event.get('message') or f'waiter ended with {status!r}'}")

    def delete_and_wait(self, resource_ids: list[str], timeout: float = 900.0) -> None:
        """Delete resources and wait until they are gone, in the worker (used to replace stale leftovers)."""
        for rid in resource_ids:
            self.hook.begin_delete(rid)
        event = run_waiter_sync("arm_deleted", {"resource_ids": resource_ids}, self.arm_conn_id,
                                min(self.poll_interval, 10.0), timeout, logger=self.log)
        self.check_event(event, "deleting " + ", ".join(resource_ids))
