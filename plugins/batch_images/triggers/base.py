"""One generic waiter trigger for every long wait of the project (modelled on the Amazon provider's
``AwsBaseWaiterTrigger``): what to wait for is a small :class:`~batch_images.triggers.waiters.Waiter`
config looked up by name; this module owns the loop.

The loop (:func:`wait_for`) is the only implementation: the trigger runs it on the triggerer's event
loop (``deferrable=True``), :func:`run_waiter_sync` runs it in the worker with ``asyncio.run``
(``deferrable=False``).

Each poll: probe (observed state, plain JSON) -> evaluate -> log progress -> sleep. Throttling
(HTTP 429, or a 503 with Retry-After) is waited out: the next poll comes no sooner than Retry-After
says, and never faster than ``poll_interval``. The deadline is absolute (epoch seconds), computed once
when the operator defers and carried through :meth:`AzureBaseWaiterTrigger.serialize`, so a triggerer
restart resumes with the same deadline instead of a fresh timeout.

Event payload: ``{"status": "success"|"failure"|"timeout", "message", "waiter", "state": last state,
<return_key>: <return_value>}``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from batch_images.triggers.waiters import get_waiter, make_hook

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
MAX_CONSECUTIVE_ERRORS = 5
# Clients used while waiting retry little themselves, so throttling reaches the loop (which honours
# Retry-After and logs it) instead of hiding inside the SDK's retry policy.
WAITER_CLIENT_OPTIONS = {"retry_total": 2}


def retry_after_seconds(err: BaseException) -> float | None:
    """Seconds an error's response asks us to wait (Retry-After seconds or HTTP date, or *retry-after-ms)."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) / 1000.0, 0.0)
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def is_throttled(err: BaseException) -> bool:
    status = getattr(getattr(err, "response", None), "status_code", None) or getattr(err, "status_code", None)
    return status == 429 or (status in (503, 502, 504) and retry_after_seconds(err) is not None)


def _is_transient(err: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(err, (ServiceRequestError, ServiceResponseError)):
        return True
    status = getattr(getattr(err, "response", None), "status_code", None)
    return isinstance(err, HttpResponseError) and status in (408, 500, 502, 503, 504)


def _describe(err: BaseException) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    text = str(getattr(err, "message", None) or err).splitlines()[0] if str(err) else type(err).__name__
    return f"{type(err).__name__}{f' (HTTP {status})' if status else ''}: {text}"


async def _close(hook: Any) -> None:
    close = getattr(hook, "close", None)
    if close is None:
        return
    try:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    except Exception:  # pragma: no cover - best effort
        log.debug("closing the waiter's hook failed", exc_info=True)


async def wait_for(
    waiter_name: str,
    waiter_args: dict | None,
    *,
    conn_id: str,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    deadline: float | None = None,
    hook: Any = None,
    logger: logging.Logger | Any = None,
    client_options: dict | None = None,
) -> dict:
    """Poll the named waiter until success, failure or the deadline; return the event payload (no return key).

    ``hook``: an already built hook to use (and not close); by default one is built and closed here.
    """
    # azure-core is imported here, not at module level: DAG files import the operators, which import this
    # module, and DAG parsing must not load the Azure SDK.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    logger = logger or log
    waiter = get_waiter(waiter_name)
    args = dict(waiter_args or {})
    own_hook = hook is None
    if own_hook:
        hook = make_hook(waiter, conn_id, dict(WAITER_CLIENT_OPTIONS, **(client_options or {})))
    poll_interval = max(float(poll_interval), 0.0)
    state: dict = {}
    errors = 0
    polls = 0

    def payload(status: str, message: str) -> dict:
        return {"status": status, "message": message, "waiter": waiter_name, "state": state, "polls": polls}

    try:
        while True:
            delay = poll_interval
            floor = 0.0  # Retry-After: never poll sooner than this
            try:
                state = await waiter.probe(hook, **args)
                polls += 1
                errors = 0
                status, message = waiter.evaluate(state)
                logger.info("[%s] %s", waiter_name, waiter.progress(state))
                if status in ("success", "failure"):
                    return payload(status, message)
            except (ClientAuthenticationError,) as err:
                return payload("failure", f"authentication failed while waiting: {_describe(err)}")
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as err:
                polls += 1
                wait = retry_after_seconds(err)
                if is_throttled(err):
                    floor = wait or 0.0
                    delay = max(poll_interval, floor)
                    logger.warning("[%s] throttled (%s); Retry-After %ss, next poll in %.1fs",
                                   waiter_name, _describe(err), "?" if wait is None else f"{wait:g}", delay)
                    if deadline is not None and time.time() + (wait or 0.0) > deadline:
                        return payload("timeout", f"timed out while throttled: {_describe(err)}; "
                                       f"last state: {waiter.progress(state) if state else 'none'}")
                elif _is_transient(err) and errors + 1 < MAX_CONSECUTIVE_ERRORS:
                    errors += 1
                    floor = wait or 0.0
                    delay = max(poll_interval, floor)
                    logger.warning("[%s] transient error %d/%d: %s", waiter_name, errors,
                                   MAX_CONSECUTIVE_ERRORS, _describe(err))
                else:
                    return payload("failure", f"error while waiting: {_describe(err)}")
            now = time.time()
            if deadline is not None:
                remaining = deadline - now
                if remaining <= 0:
                    return payload("timeout", f"timed out waiting for {waiter_name}: "
                                   f"{waiter.progress(state) if state else 'no state observed'}")
                if delay > remaining:
                    delay = max(remaining, floor)  # one last look at the deadline, if Retry-After allows
            await asyncio.sleep(delay)
    finally:
        if own_hook:
            await _close(hook)


def compute_deadline(timeout_seconds: float | None) -> float | None:
    return None if timeout_seconds is None else time.time() + float(timeout_seconds)


def run_waiter_sync(
    waiter_name: str,
    args: dict | None,
    conn_id: str,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float | None = None,
    *,
    deadline: float | None = None,
    logger: Any = None,
    client_options: dict | None = None,
) -> dict:
    """The same loop as the trigger, run in-process (``deferrable=False``). Returns the event payload.

    The connection is read synchronously first (the task's normal way), so the event loop never
    needs the task supervisor.
    """
    waiter = get_waiter(waiter_name)
    hook = make_hook(waiter, conn_id, dict(WAITER_CLIENT_OPTIONS, **(client_options or {})))
    load = getattr(hook, "load_connection", None)
    if callable(load):
        load()
    if deadline is None:
        deadline = compute_deadline(timeout)

    async def main() -> dict:
        try:
            return await wait_for(waiter_name, args, conn_id=conn_id, poll_interval=poll_interval,
                                  deadline=deadline, hook=hook, logger=logger)
        finally:
            await _close(hook)

    return asyncio.run(main())


class AzureBaseWaiterTrigger(BaseTrigger):
    """Poll a registered waiter until success, failure or an absolute deadline.

    :param waiter_name: key in the waiter registry (``arm_provisioning``, ``gallery_replication``,
        ``batch_pool_steady``, ...).
    :param waiter_args: JSON-serialisable keyword arguments of the waiter's probe.
    :param conn_id: Airflow connection the waiter's hook uses.
    :param poll_interval: seconds between polls (Retry-After may make it longer, never shorter).
    :param timeout_seconds: how long to wait from the moment the trigger is first built (at defer).
    :param deadline: absolute epoch-seconds deadline; set by :meth:`serialize` so restarts keep it.
    :param return_key: / :param return_value: put into the event, e.g. the resource ids being waited on.
    :param resume_kwargs: the deferral's ``kwargs``, also carried in the event (key ``resume_kwargs``):
        ``airflow dags test`` (``dag.test()``'s in-line triggers, Airflow 3.3) resumes the task with
        ``{"event": ...}`` only, dropping the deferral's kwargs that the triggerer keeps, so multi-step
        operators read their phase and limits from the event when their kwargs are missing.
    """

    def __init__(
        self,
        *,
        waiter_name: str,
        waiter_args: dict | None = None,
        conn_id: str = "azure_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout_seconds: float | None = None,
        deadline: float | None = None,
        return_key: str = "value",
        return_value: Any = None,
        client_options: dict | None = None,
        resume_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.waiter_name = waiter_name
        self.waiter_args = dict(waiter_args or {})
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = None if timeout_seconds is None else float(timeout_seconds)
        self.deadline = float(deadline) if deadline is not None else compute_deadline(self.timeout_seconds)
        self.return_key = return_key
        self.return_value = return_value
        self.client_options = dict(client_options or {})
        self.resume_kwargs = resume_kwargs
        self._hook: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "waiter_name": self.waiter_name,
                "waiter_args": self.waiter_args,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "timeout_seconds": self.timeout_seconds,
                "deadline": self.deadline,
                "return_key": self.return_key,
                "return_value": self.return_value,
                "client_options": self.client_options,
                "resume_kwargs": self.resume_kwargs,
            },
        )

    def remaining_seconds(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.time(), 0.0)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        waiter = get_waiter(self.waiter_name)
        self._hook = make_hook(waiter, self.conn_id, dict(WAITER_CLIENT_OPTIONS, **self.client_options))
        try:
            result = await wait_for(self.waiter_name, self.waiter_args, conn_id=self.conn_id,
                                    poll_interval=self.poll_interval, deadline=self.deadline,
                                    hook=self._hook, logger=self.log)
        except Exception as err:  # an unexpected bug must still end the task with a message
            self.log.exception("waiter %s crashed", self.waiter_name)
            result = {"status": "failure", "message": f"waiter {self.waiter_name} crashed: {_describe(err)}",
                      "waiter": self.waiter_name, "state": {}}
        finally:
            await self.cleanup()
        result[self.return_key] = self.return_value
        if self.resume_kwargs is not None:
            result["resume_kwargs"] = self.resume_kwargs
        yield TriggerEvent(result)

    async def cleanup(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            await _close(hook)
