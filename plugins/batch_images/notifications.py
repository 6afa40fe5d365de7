"""A pipeline's notifications (``notifications:`` in its YAML; docs/operations.md, Notifications) as Airflow notifiers.

:class:`PipelineNotifier` is one ``airflow.sdk.BaseNotifier`` per event, wired by the DAG file through :class:`Wiring`:

* ``failure``: every task's ``on_failure_callback`` (default_args). It runs in the worker once the task failed for
  good (retries go to ``on_retry_callback``, which is not set), where the context holds the exception - Azure's
  error text - and the rendered task, hence its portal link. A DAG-level callback would not do: Airflow 3 runs it in
  the dag-processor with a task instance rebuilt from the database, which has no exception.
* ``roll``: roll_pool's ``on_success_callback``: its XCom result says whether the logical pool moved.
* ``approval``: approve_roll's ``notifiers`` (HITLOperator calls them only when it really waits).

* the nightly cut-off (``deadline_minutes``): an Airflow Deadline Alert from the run's queued time whose
  :class:`~airflow.sdk.AsyncCallback` is :func:`deadline_missed`, run by the triggerer. Airflow 3.3.2 keeps a failed
  run's deadline armed and runs the callback at the cut-off anyway (apache/airflow#60927, open; DagRun.update_state
  prunes deadlines on success only), so the callback asks for the run's state first and sends nothing unless it is
  still running. Attached only when configured: ``airflow dags test`` of a DAG with a deadline ends a successful
  run with an error (apache/airflow#73428, open).

Targets: e-mail through the smtp provider's ``SmtpNotifier`` (an Airflow SMTP connection), and a JSON POST to the
URL held in an Airflow connection (no webhook notifier is installed: the http provider is not in the lock). Each
target is tried on its own and a failed delivery is logged, never raised: a notification must not fail a task (an
approval's notifier runs inside the task). The text (rules/notify.py) goes through Airflow's secrets masker first.
No Azure import.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference
from batch_images import links
from batch_images.rules import notify as text

WEBHOOK_TIMEOUT_SECONDS = 30
# A run not ended at its cut-off: running, or still queued (behind another run: max_active_runs is 1).
NOT_ENDED = ("queued", "running")
_log = logging.getLogger(__name__)


def _redact(value: str) -> str:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - the lock pins Airflow 3.3.2, which has it
        return value
    return str(redact(value))


def webhook_url(conn: Any) -> str:
    """The webhook URL of connection ``conn``: its password when that is a URL (masked in the UI and logs), else its
    host when that is a full URL. Raises ValueError naming the connection otherwise."""
    for value in (conn.password, conn.host):
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    raise ValueError(f"connection {conn.conn_id!r} holds no webhook URL: put the full https:// URL in its password")


class PipelineNotifier(BaseNotifier):
    """Tell a pipeline's targets about one ``event`` (``failure``, ``roll``, ``approval``).

    :param event: what happened; picks how the message is read from the context (rules/notify.py).
    :param email: ``{"to": [...], "smtp_conn_id", "from_email"}`` (EmailTargetConfig.to_dict()) or None.
    :param webhook: ``{"conn_id", "format"}`` (WebhookTargetConfig.to_dict()) or None.
    """

    template_fields = ()  # no Jinja: Azure's error text may hold braces

    def __init__(self, *, event: str, email: Mapping | None = None, webhook: Mapping | None = None) -> None:
        super().__init__()
        self.event, self.email, self.webhook = event, email, webhook

    # -- reading the context -----------------------------------------------------------------------------------

    def message(self, context: Mapping[str, Any]) -> text.Message | None:
        """This event's message, or None when there is nothing to tell (e.g. roll_pool did not move the pool)."""
        return getattr(self, f"_{self.event}")(context)

    @staticmethod
    def _failure(context: Mapping[str, Any]) -> text.Message:
        ti, task = context["ti"], context.get("task")
        error = context.get("exception")
        try:
            log_url = ti.log_url
        except Exception:  # noqa: BLE001 - no api base_url configured: the message goes without the log link
            log_url = None
        return text.failure(ti.dag_id, ti.run_id, text.task_label(ti.task_id, ti.map_index), ti.try_number,
                            str(error) if error is not None else None, links.task_portal_url(task), log_url)

    @staticmethod
    def _roll(context: Mapping[str, Any]) -> text.Message | None:
        ti, task = context["ti"], context["task"]
        result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index, key="return_value")
        decision = getattr(task, "pool_spec", None)
        return text.roll(ti.dag_id, ti.run_id, result, decision,
                         links.task_portal_url(task, result) if isinstance(result, Mapping) else None)

    @staticmethod
    def _approval(context: Mapping[str, Any]) -> text.Message:
        ti, task = context["ti"], context["task"]
        try:
            url = task.generate_link_to_ui_from_context(context=context)
        except Exception:  # noqa: BLE001 - no [api] base_url: the message says where in the UI instead
            url = None
        return text.approval(ti.dag_id, ti.run_id, text.task_label(ti.task_id, ti.map_index),
                             getattr(task, "subject", "approval"), getattr(task, "body", None), url)

    # -- sending -----------------------------------------------------------------------------------------------

    def notify(self, context: Any) -> None:
        msg = self.message(context)
        if msg is None:
            return
        deliver(msg, self.email, self.webhook, context, self.log)

    @staticmethod
    def _send_email(msg: text.Message, target: Mapping, context: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        # subject and html_content given: SmtpNotifier renders no template, so the text is sent as it is.
        SmtpNotifier(to=list(target["to"]), from_email=target.get("from_email"), subject=msg.subject,
                     html_content=text.email_html(msg), smtp_conn_id=target.get("smtp_conn_id") or "smtp_default"
                     ).notify(context)

    @staticmethod
    def _send_webhook(msg: text.Message, target: Mapping, context: Any) -> None:
        import requests
        from airflow.sdk import BaseHook

        url = webhook_url(BaseHook.get_connection(target["conn_id"]))
        answer = requests.post(url, json=text.webhook_body(msg, target.get("format") or "text"),
                               timeout=WEBHOOK_TIMEOUT_SECONDS)
        if answer.status_code >= 300:
            raise RuntimeError(f"webhook of connection {target['conn_id']!r} answered {answer.status_code}: "
                               f"{answer.text[:300]}")


def deliver(msg: text.Message, email: Mapping | None, webhook: Mapping | None, context: Any,
            log: logging.Logger | Any) -> None:
    """Send ``msg`` (redacted first) to each target given; a failed delivery is logged with ``log``, never raised."""
    msg = text.Message(_redact(msg.subject), tuple(_redact(line) for line in msg.lines))
    for name, target, send in (("e-mail", email, PipelineNotifier._send_email),
                               ("webhook", webhook, PipelineNotifier._send_webhook)):
        if not target:
            continue
        try:
            send(msg, target, context)
            log.info("Notification %r sent by %s", msg.subject, name)
        except Exception:  # noqa: BLE001 - logged; a notification never fails the task
            log.exception("Notification %r by %s failed", msg.subject, name)


def _state_name(state: Any) -> str:
    """``running`` for ``running``, ``DagRunState.RUNNING`` or the enum member."""
    return str(getattr(state, "value", state)).rpartition(".")[2].lower()


def _run_state(dag_run: Mapping[str, Any]) -> str | None:
    """The run's state now, through the triggerer's Execution API channel (the Task SDK's GetDagRunState); None when
    it cannot be asked (then the caller keeps the state the scheduler saw when the deadline passed)."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return str(RuntimeTaskInstance.get_dagrun_state(dag_run["dag_id"], dag_run["dag_run_id"]))
    except Exception:  # noqa: BLE001 - outside a triggerer (no supervisor channel): the scheduler's view stands
        _log.warning("Could not ask for the state of run %s; using the state when the cut-off passed",
                     dag_run.get("dag_run_id"), exc_info=True)
        return None


def _cut_off(minutes: int, email: Mapping | None, webhook: Mapping | None, context: Mapping[str, Any]) -> bool:
    dag_run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    run_id, state = dag_run.get("dag_run_id"), _state_name(dag_run.get("state"))
    if state in NOT_ENDED:  # not ended when the scheduler saw the cut-off pass: is it still?
        state = _state_name(_run_state(dag_run) or state)
    if state not in NOT_ENDED:
        # apache/airflow#60927: Airflow 3.3.2 runs the callback of a run that ended (failed) before its cut-off.
        _log.info("Run %s is %s, no longer running: no cut-off message", run_id, state)
        return False
    _log.info("Run %s is still %s at its cut-off: telling the targets", run_id, state)
    from airflow.configuration import conf

    base_url = conf.get("api", "base_url", fallback=None)
    dag_id = dag_run.get("dag_id")
    grid = f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(str(run_id), safe='')}" if base_url else None
    deliver(text.still_running(dag_id, run_id, minutes, dag_run.get("queued_at"), deadline.get("deadline_time"), grid,
                               state), email, webhook, context, _log)
    return True


async def deadline_missed(*, minutes: int, email: Mapping | None = None, webhook: Mapping | None = None,
                          context: Mapping[str, Any]) -> bool:
    """The nightly cut-off's callback (an :class:`~airflow.sdk.AsyncCallback` run by the triggerer when a run's
    deadline passed): tell the targets once that the run is still running (or still queued), or nothing when it has
    ended (success or failure).

    :param minutes: the cut-off, minutes after the run was queued (for the message).
    :param email: / :param webhook: the targets, as for :class:`PipelineNotifier`.
    :param context: what Airflow 3.3.2 hands a deadline callback: ``{"dag_run": DAGRunResponse JSON (dag_id,
        dag_run_id, state, queued_at, ...) as the scheduler saw it when the deadline passed, "deadline": {"id",
        "deadline_time"}}``.
    :returns: True when a message was sent (delivery failures are logged, never raised).
    """
    # SMTP and the webhook POST block, and so do the Task SDK's calls: in a thread, off the triggerer's event loop.
    return await asyncio.to_thread(_cut_off, minutes, email, webhook, context)


class Wiring:
    """What the DAG file attaches for a pipeline's ``notifications`` (a NotificationsConfig.to_dict(), or None):
    empty lists / None for an event not asked for, so a pipeline without notifications gets nothing."""

    def __init__(self, notifications: Mapping | None) -> None:
        self.cfg = dict(notifications or {})
        self.events = set(self.cfg.get("events") or ()) if self.cfg else set()

    def _kwargs(self, event: str) -> dict:
        return {"event": event, "email": self.cfg.get("email"), "webhook": self.cfg.get("webhook")}

    def notifiers(self, event: str) -> list[PipelineNotifier]:
        """``[PipelineNotifier]`` for ``event`` when the pipeline asks for it, else ``[]``."""
        return [PipelineNotifier(**self._kwargs(event))] if event in self.events else []

    def deadline(self) -> DeadlineAlert | None:
        """The DAG's ``deadline``: the nightly cut-off when ``deadline_minutes`` is set, else None (no deadline at
        all, so ``airflow dags test`` of the pipeline does not hit apache/airflow#73428)."""
        minutes = self.cfg.get("deadline_minutes")
        if not minutes:
            return None
        return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(minutes=minutes),
                             callback=AsyncCallback(deadline_missed, kwargs={
                                 "minutes": minutes, "email": self.cfg.get("email"),
                                 "webhook": self.cfg.get("webhook")}))
