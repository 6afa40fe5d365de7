"""The one waiting contract of every operator and sensor of the project (:class:`WaitingMixin`).

A wait is a registered waiter (``triggers/waiters/``) with its arguments and a connection. Whatever the mode, it
goes the same way:

1. **Budget.** The wait's deadline (epoch seconds) is the task's budget for all its tries: the first wait of the
   first try starts it (:func:`~batch_images.triggers.base.budget_deadline`, kept in the task state store), later
   phases and retries continue it. A caller may pass an absolute ``deadline`` instead (a bound read from Azure).
2. **Deferrable** (default: Airflow's ``[operators] default_deferrable``): one look in the worker first
   (:func:`~batch_images.triggers.base.probe_before_defer`, the same one or two requests as one poll). Already
   over (success, or a failure read from the resource) ends the wait there, with no deferral. Otherwise the task
   defers to :class:`~batch_images.triggers.base.AzureBaseWaiterTrigger`, whose first poll comes one poll interval
   later; Airflow's deferral timeout is the remaining budget plus :data:`DEFER_GRACE`, so the trigger's own
   timeout event (which names the last state) arrives first.
3. **Not deferrable**: the same waiter loop runs in the worker (:func:`~batch_images.triggers.base.run_waiter_sync`).
4. **One event shape** from the first look, the trigger and the worker loop: ``{"status": "success" | "failure" |
   "timeout", "message", "waiter", "state", "polls", "value"}`` (``value``: what the caller passed as
   ``return_value``), handed to :meth:`WaitingMixin.after_wait` with the caller's ``phase`` and ``extra``, so a
   multi-step operator is one state machine in both modes.

:meth:`WaitingMixin.check_event` turns an event into the outcome: success returns, timeout raises
``AirflowSensorTimeout`` (not retried: the budget covered the retries), failure raises :class:`AzureWaitFailed`.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from batch_images.triggers import base as waits

# Airflow's deferral timeout is a backstop: the trigger times out at the deadline and reports the last state.
DEFER_GRACE = timedelta(minutes=2)
RESUME_METHOD = "resume_wait"


class AzureWaitFailed(AirflowException):
    """A waited-for Azure resource or operation (ARM or Batch) ended in failure; the message is Azure's or the
    waiter's. Retried like any task error, unless the caller raises a non-retryable failure instead."""


def deferral_timeout(deadline: float) -> timedelta:
    """Airflow's timeout of a deferral whose wait ends at ``deadline`` (epoch seconds): what is left of the budget
    plus :data:`DEFER_GRACE`."""
    return timedelta(seconds=max(deadline - time.time(), 0.0)) + DEFER_GRACE


class WaitingMixin:
    """Waiting for operators and sensors: mix in before ``BaseOperator`` / ``BaseSensorOperator``.

    The class sets ``self.deferrable`` (bool) and ``self.poll_interval`` (seconds). Subclasses override
    :meth:`after_wait` to act on the event (the default checks it and returns its ``value``).
    """

    deferrable: bool
    poll_interval: float

    def wait_for(self, context: Any, *, waiter_name: str, waiter_args: dict, conn_id: str,
                 timeout: float | None = None, deadline: float | None = None, budget_key: str = waits.BUDGET_KEY,
                 phase: str = "", extra: dict | None = None, return_value: Any = None) -> Any:
        """Wait for ``waiter_name`` and return what :meth:`after_wait` returns for its event.

        :param waiter_args: the waiter's probe arguments (plain JSON).
        :param conn_id: the connection the waiter's hook uses (ARM or Batch).
        :param timeout: seconds: the budget of the task's whole wait, every phase and try (kept under
            ``budget_key`` in the task state store); ignored when ``deadline`` is given.
        :param deadline: epoch seconds: an absolute bound to use instead of the budget.
        :param phase: / :param extra: (plain JSON) handed back to :meth:`after_wait`; they survive the deferral.
        :param return_value: (plain JSON) the event's ``value``.
        :raises TaskDeferred: (deferrable) the task defers; it resumes in :meth:`resume_wait`.
        """
        extra = dict(extra or {})
        if deadline is None:
            deadline = waits.budget_deadline(context, timeout, key=budget_key, logger=self.log)
        left = None if deadline is None else int(max(deadline - time.time(), 0.0))
        budget = "no deadline" if left is None else (f"{left}s left of the {int(timeout)}s budget" if timeout
                                                     else f"{left}s left")
        event = None
        if self.deferrable:
            event = waits.probe_before_defer(waiter_name, waiter_args, conn_id, deadline=deadline, logger=self.log)
            if event is None:
                resume = {"phase": phase, "extra": extra}
                trigger = waits.AzureBaseWaiterTrigger(
                    waiter_name=waiter_name, waiter_args=waiter_args, conn_id=conn_id,
                    poll_interval=self.poll_interval, deadline=deadline, return_value=return_value,
                    resume_kwargs=resume, first_poll_delay=self.poll_interval)
                self.log.info("Deferring: waiting for %s (poll every %ss, %s)", waiter_name, self.poll_interval,
                              budget)
                self.defer(trigger=trigger, method_name=RESUME_METHOD, kwargs=resume,
                           timeout=None if deadline is None else deferral_timeout(deadline))
        if event is None:
            self.log.info("Waiting in the worker for %s (poll every %ss, %s)", waiter_name, self.poll_interval,
                          budget)
            event = waits.run_waiter_sync(waiter_name, waiter_args, conn_id, self.poll_interval, deadline=deadline,
                                          logger=self.log)
        event["value"] = return_value
        return self.after_wait(context, event, phase, extra)

    def resume_wait(self, context: Any, event: dict | None = None, phase: str = "", extra: dict | None = None) -> Any:
        """Where a deferred wait comes back (the deferral's ``method_name``)."""
        event = dict(event or {})
        if not phase and not extra:  # `airflow dags test` hands back the event only: take the deferral's kwargs
            carried = event.get("resume_kwargs") or {}
            phase, extra = carried.get("phase", ""), carried.get("extra")
        event.pop("resume_kwargs", None)
        return self.after_wait(context, event, phase, dict(extra or {}))

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        """Act on a wait's event. Default: :meth:`check_event`, then the event's ``value``."""
        self.check_event(event)
        return event.get("value")

    def poke_waiter(self, waiter_name: str, waiter_args: dict, conn_id: str) -> bool:
        """One poll of the waiter in the worker, for a sensor's ``poke`` (``mode="reschedule"``): True when the
        wait is over, False when not yet (or the poll was throttled or failed transiently).

        :raises AzureWaitFailed: the waiter read a failure."""
        event = waits.run_waiter_sync(waiter_name, waiter_args, conn_id, 0.0, logger=self.log, max_polls=1)
        if event.get("status") == "failure":
            raise AzureWaitFailed(event.get("message") or f"{waiter_name} failed")
        return event.get("status") == "success"

    def check_event(self, event: dict, what: str | None = None) -> None:
        """Return on success; raise ``AirflowSensorTimeout`` on a timeout, :class:`AzureWaitFailed` on a failure,
        both with the waiter's message (prefixed by ``what`` when given)."""
        status = event.get("status")
        if status == "success":
            self.log.info("%s", event.get("message"))
            return
        prefix = f"{what}: " if what else ""
        if status == "timeout":
            raise AirflowSensorTimeout(f"{prefix}timed out: {event.get('message')}")
        raise AzureWaitFailed(f"{prefix}{event.get('message') or f'waiter ended with {status!r}'}")
