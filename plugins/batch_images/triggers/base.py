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

Retry-After is read by :func:`retry_after_seconds`, which never raises: seconds, an HTTP date, the
``retry-after-ms`` headers, or a list such as ``81,120`` (what a gateway sends when it joins two
headers; the largest value wins) are honoured; a negative, empty, NaN or unreadable value counts as
absent and the loop waits a fallback delay (:data:`THROTTLE_FALLBACK_SECONDS`, doubling on each
throttled poll in a row); any value is capped at :data:`MAX_RETRY_AFTER_SECONDS` and by the deadline.

The waiter clients run with ``retry_total=0`` (:data:`WAITER_CLIENT_OPTIONS`): this loop, not
azure-core's ``RetryPolicy``, retries a wait. Why (azure-core 1.41, ``pipeline/policies/_retry.py`` and
``_utils.py``): the policy retries any >= 400 answer carrying Retry-After and sleeps what
``parse_retry_after`` returns, which raises ``ValueError("Invalid HTTP date")`` on a value such as
``81,120`` (an exception that is not an ``AzureError`` and ended waits as "crashed"), and sleeps a huge
value in full, blind to the wait's deadline; its sleeps are also invisible in the task log. With
``retry_total=0`` the policy gives up before it reads the header (``increment`` finds the budget
exhausted), so the 429/5xx reaches this loop, which parses Retry-After safely, logs it and keeps to
the deadline. Connection errors are retried here too (up to :data:`MAX_CONSECUTIVE_ERRORS` in a row).
Anything else raised from inside azure-core's pipeline is treated like a transient error, never as a
crash.

Budgets across task retries: :func:`budget_deadline` keeps the first try's deadline in the task
instance's ``task_state_store`` (Airflow 3.3), so a retry of a task continues the same budget instead
of starting a fresh one.

Event payload: ``{"status": "success"|"failure"|"timeout", "message", "waiter", "state": last state, "polls",
"value": <return_value>}``, the same shape :func:`run_waiter_sync` and :func:`probe_before_defer` return (with
``value`` None); the operators' side of the contract is :mod:`batch_images.waiting`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from batch_images.rules.retry_after import MAX_RETRY_AFTER_SECONDS, retry_after_from_headers
from batch_images.triggers.waiters import get_waiter, make_hook

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
MAX_CONSECUTIVE_ERRORS = 5
# Retries belong to the loop in wait_for (see the module docstring for why).
WAITER_CLIENT_OPTIONS = {"retry_total": 0}
# A throttled answer whose Retry-After is missing or unreadable: wait this long (doubled per throttled poll
# in a row, up to the cap). ARM's throttling windows are counted per minute or so; 10 s is a polite first step.
THROTTLE_FALLBACK_SECONDS = 10.0
def retry_after_seconds(err: BaseException) -> float | None:
    """Seconds an error's response asks us to wait (``retry-after-ms``, ``x-ms-retry-after-ms``, then
    ``Retry-After``, read by :func:`~batch_images.rules.retry_after.parse_retry_after`); None when absent
    or unusable. Never raises."""
    return retry_after_from_headers(getattr(getattr(err, "response", None), "headers", None))


def throttle_delay(retry_after: float | None, poll_interval: float, throttled_in_a_row: int) -> float:
    """Seconds to wait after a throttled answer: Retry-After when usable, else the fallback (doubling with
    each throttled poll in a row); never below ``poll_interval``, never above :data:`MAX_RETRY_AFTER_SECONDS`
    unless ``poll_interval`` itself is longer."""
    if retry_after is None:
        wait = THROTTLE_FALLBACK_SECONDS * (2 ** max(throttled_in_a_row - 1, 0))
    else:
        wait = retry_after
    return max(poll_interval, min(wait, MAX_RETRY_AFTER_SECONDS))


def is_throttled(err: BaseException) -> bool:
    status = getattr(getattr(err, "response", None), "status_code", None) or getattr(err, "status_code", None)
    return status == 429 or (status in (503, 502, 504) and retry_after_seconds(err) is not None)


def _raised_in_sdk(err: BaseException) -> bool:
    """The exception came out of azure-core's own machinery (e.g. its retry policy), not out of our code."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    filename = last.tb_frame.f_code.co_filename.replace("\\", "/") if last is not None else ""
    return "/azure/core/" in filename


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
    max_polls: int | None = None,
    first_poll_delay: float = 0.0,
) -> dict:
    """Poll the named waiter until success, failure or the deadline; return the event payload (``value`` None).

    ``hook``: an already built hook to use (and not close); by default one is built and closed here.
    ``max_polls``: stop after this many polls with status ``"pending"`` when the wait is not over (used by
    :func:`probe_before_defer`); None polls until success, failure or the deadline.
    ``first_poll_delay``: seconds to sleep before the first poll (capped by the deadline): a trigger started right
    after the task's own probe (:func:`probe_before_defer`) need not ask again at once.
    """
    # azure-core is imported here, not at module level: DAG files import the operators, which import this
    # module, and DAG parsing must not load the Azure SDK.
    from azure.core.exceptions import (
        AzureError,
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
    throttled = 0
    polls = 0

    def payload(status: str, message: str) -> dict:
        return {"status": status, "message": message, "waiter": waiter_name, "state": state, "polls": polls,
                "value": None}

    def transient(err: BaseException) -> dict | None:
        """Count a transient error; the failure payload once too many came in a row, else None."""
        nonlocal errors
        if errors + 1 >= MAX_CONSECUTIVE_ERRORS:
            return payload("failure", f"error while waiting ({errors + 1} in a row): {_describe(err)}")
        errors += 1
        logger.warning("[%s] transient error %d/%d: %s", waiter_name, errors, MAX_CONSECUTIVE_ERRORS,
                       _describe(err))
        return None

    try:
        if first_poll_delay > 0:
            await asyncio.sleep(first_poll_delay if deadline is None
                                else max(min(first_poll_delay, deadline - time.time()), 0.0))
        while True:
            delay = poll_interval
            floor = 0.0  # Retry-After: never poll sooner than this
            try:
                state = await waiter.probe(hook, **args)
                polls += 1
                errors = 0
                throttled = 0
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
                    throttled += 1
                    delay = throttle_delay(wait, poll_interval, throttled)
                    floor = delay if wait is not None else 0.0  # a fallback delay may be cut by the deadline
                    logger.warning("[%s] throttled (%s); Retry-After %s, next poll in %.1fs", waiter_name,
                                   _describe(err), "unusable/absent" if wait is None else f"{wait:g}s", delay)
                    if deadline is not None and time.time() + floor > deadline:
                        return payload("timeout", f"timed out while throttled: {_describe(err)}; "
                                       f"last state: {waiter.progress(state) if state else 'none'}")
                elif _is_transient(err):
                    done = transient(err)
                    if done is not None:
                        return done
                    floor = min(wait or 0.0, MAX_RETRY_AFTER_SECONDS)
                    delay = max(poll_interval, floor)
                else:
                    return payload("failure", f"error while waiting: {_describe(err)}")
            except Exception as err:
                # azure-core's own machinery (its retry policy parsing a header, a decoder) raised something
                # that is not an HTTP answer: a transient error of this poll, not a crash of the wait.
                if not (isinstance(err, AzureError) or _raised_in_sdk(err)):
                    raise
                polls += 1
                done = transient(err)
                if done is not None:
                    return done
            if max_polls is not None and polls >= max_polls:
                return payload("pending", f"not done after {polls} poll(s): "
                               f"{waiter.progress(state) if state else 'no state observed'}")
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


def default_deferrable(deferrable: bool | None = None) -> bool:
    """``deferrable`` when given, else Airflow's ``[operators] default_deferrable`` (True when unset): the default
    of every waiting operator and sensor of the project, as in the Amazon and Azure providers. Read when the
    task is built, not at import, so a config change needs no restart of the DAG processor's imports."""
    if deferrable is not None:
        return bool(deferrable)
    from airflow.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=True)


def compute_deadline(timeout_seconds: float | None) -> float | None:
    return None if timeout_seconds is None else time.time() + float(timeout_seconds)


BUDGET_KEY = "wait_budget"


def budget_deadline(context: Any, timeout_seconds: float | None, *, key: str = BUDGET_KEY,
                    logger: Any = None) -> float | None:
    """Absolute deadline (epoch seconds) of a wait whose ``timeout_seconds`` budget covers every try of the task.

    The first try records when the budget started in the task instance's ``task_state_store`` (Airflow 3.3:
    scoped to dag_id/run_id/task_id/map_index, kept across retries - unlike XCom, which Airflow clears when
    a new try starts). A retry reads it back and gets what is left of the budget (possibly nothing: the
    waiter then looks once and times out). The record names the "series" of tries (``ti.max_tries``): a
    clear of the task by a user raises max_tries, so a deliberate re-run gets a fresh budget while the
    scheduler's retries share one. Without a task state store (a bare context in a unit test) the budget
    starts now. Never raises.

    :param context: the task's Airflow context.
    :param timeout_seconds: the budget in seconds; None means no deadline.
    :param key: the task state store key (one budget per key and task instance).
    """
    if timeout_seconds is None:
        return None
    now = time.time()
    logger = logger or log
    try:
        store = context["task_state_store"]
        series = int(getattr(context["ti"], "max_tries", 0) or 0)
    except (KeyError, TypeError):
        return now + float(timeout_seconds)
    try:
        record = store.get(key)
        if isinstance(record, dict) and record.get("series") == series and \
                isinstance(record.get("started"), (int, float)):
            started = float(record["started"])
            logger.info("Wait budget %ss started at try %s (%.0fs ago); %.0fs left", int(float(timeout_seconds)),
                        record.get("try", "?"), now - started, max(started + float(timeout_seconds) - now, 0.0))
            return started + float(timeout_seconds)
        store.set(key, {"series": series, "started": now, "try": getattr(context["ti"], "try_number", None)})
    except Exception:  # the budget is best effort: never fail a task because the store is unavailable
        logger.warning("could not read or record the wait budget in task_state_store; the budget starts now",
                       exc_info=True)
    return now + float(timeout_seconds)


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
    max_polls: int | None = None,
) -> dict:
    """The same loop as the trigger, run in-process (``deferrable=False``). Returns the event payload.

    The connection is read synchronously first (the task's normal way), so the event loop never
    needs the task supervisor. Ends with one log line, ``Waited <s> s in the worker for <waiter> (<n> polls):
    <status>``: the seconds this task held its worker slot waiting (the benchmarks read it).
    """
    logger = logger or log
    started = time.monotonic()
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
                                  deadline=deadline, hook=hook, logger=logger, max_polls=max_polls)
        finally:
            await _close(hook)

    event = asyncio.run(main())
    polls = event.get("polls", 0)
    logger.info("Waited %.3f s in the worker for %s (%d poll%s): %s", time.monotonic() - started, waiter_name,
                polls, "" if polls == 1 else "s", event.get("status"))
    return event


def probe_before_defer(
    waiter_name: str,
    args: dict | None,
    conn_id: str,
    *,
    deadline: float | None = None,
    logger: Any = None,
) -> dict | None:
    """One poll in the worker before a deferrable wait defers: the event payload when the wait is already over
    (``success`` or ``failure``), None when the task should defer.

    Why: a deferral costs a second execution of the task (process start, DAG parse) even when the resource is
    already there, and Airflow 3.3's scheduler can fail a task whose trigger fires within a second or two of
    deferring (apache/airflow#72716, #71580, open when this was written). Looking once first saves the second
    execution in the common "already done" case and never hands that race a trigger that fires at once. A
    throttled or failed poll (HTTP 429/5xx, a connection error) is not an answer: the task defers and the
    trigger's loop handles it. Costs the same one or two requests as one poll of the trigger.
    """
    logger = logger or log
    event = run_waiter_sync(waiter_name, args, conn_id, 0.0, deadline=deadline, logger=logger, max_polls=1)
    if event.get("status") in ("success", "failure") and event.get("state"):
        logger.info("The first probe found %s %s: not deferring", waiter_name, event.get("status"))
        return event
    return None


class AzureBaseWaiterTrigger(BaseTrigger):
    """Poll a registered waiter until success, failure or an absolute deadline.

    :param waiter_name: key in the waiter registry (``arm_provisioning``, ``gallery_replication``,
        ``batch_pool_steady``, ...).
    :param waiter_args: JSON-serialisable keyword arguments of the waiter's probe.
    :param conn_id: Airflow connection the waiter's hook uses.
    :param poll_interval: seconds between polls (Retry-After may make it longer, never shorter).
    :param timeout_seconds: how long to wait from the moment the trigger is first built (at defer).
    :param deadline: absolute epoch-seconds deadline; set by :meth:`serialize` so restarts keep it.
    :param return_value: the event's ``value``, e.g. the resource ids being waited on (plain JSON).
    :param first_poll_delay: seconds before the first poll; the deferring task passes its poll interval when it
        has just probed (:func:`probe_before_defer`), so the trigger does not repeat that read at once - and does
        not fire within a second of the deferral, the window of apache/airflow#72716.
    :param resume_kwargs: the deferral's ``kwargs``, also carried in the event (key ``resume_kwargs``):
        ``airflow dags test`` (``dag.test()``'s in-line triggers) resumes the task with ``{"event": ...}``
        only, dropping the deferral's kwargs that the triggerer keeps, so multi-step operators read their
        phase and limits from the event when their kwargs are missing. Checked 2026-11-29 against the
        installed Airflow 3.3.2 (task SDK 1.3.2): ``airflow/sdk/definitions/dag.py`` still sets
        ``ti.next_kwargs = {"event": ...} if event else msg.next_kwargs``. Fixed upstream by apache/airflow
        PR 69942 (merged July 2026, "dag.test() dropping defer-time kwargs when trigger yields an event"):
        remove this, and the fallback in ``WaitingMixin.resume_wait``, once the pinned Airflow carries it.
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
        return_value: Any = None,
        client_options: dict | None = None,
        resume_kwargs: dict | None = None,
        first_poll_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.waiter_name = waiter_name
        self.waiter_args = dict(waiter_args or {})
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.timeout_seconds = None if timeout_seconds is None else float(timeout_seconds)
        self.deadline = float(deadline) if deadline is not None else compute_deadline(self.timeout_seconds)
        self.return_value = return_value
        self.client_options = dict(client_options or {})
        self.resume_kwargs = resume_kwargs
        self.first_poll_delay = max(float(first_poll_delay or 0.0), 0.0)
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
                "return_value": self.return_value,
                "client_options": self.client_options,
                "resume_kwargs": self.resume_kwargs,
                "first_poll_delay": self.first_poll_delay,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        waiter = get_waiter(self.waiter_name)
        self._hook = make_hook(waiter, self.conn_id, dict(WAITER_CLIENT_OPTIONS, **self.client_options))
        try:
            result = await wait_for(self.waiter_name, self.waiter_args, conn_id=self.conn_id,
                                    poll_interval=self.poll_interval, deadline=self.deadline,
                                    hook=self._hook, logger=self.log, first_poll_delay=self.first_poll_delay)
        except Exception as err:  # an unexpected bug must still end the task with a message
            self.log.exception("waiter %s crashed", self.waiter_name)
            result = {"status": "failure", "message": f"waiter {self.waiter_name} crashed: {_describe(err)}",
                      "waiter": self.waiter_name, "state": {}, "polls": 0}
        finally:
            await self.cleanup()
        result["value"] = self.return_value
        if self.resume_kwargs is not None:
            result["resume_kwargs"] = self.resume_kwargs
        yield TriggerEvent(result)

    async def cleanup(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            await _close(hook)
