"""A pipeline's notifications (``notifications:`` in its YAML; README, "Notifications") as Airflow notifiers.

:class:`PipelineNotifier` is one ``airflow.sdk.BaseNotifier`` per event, wired by the DAG file (:func:`wiring`):

* ``failure``: every task's ``on_failure_callback`` (default_args). It runs in the worker once the task failed for
  good (retries go to ``on_retry_callback``, which is not set), where the context holds the exception - Azure's
  error text - and the rendered task, hence its portal link. A DAG-level callback would not do: Airflow 3 runs it in
  the dag-processor with a task instance rebuilt from the database, which has no exception.
* ``roll``: roll_pool's ``on_success_callback``: its XCom result says whether the logical pool moved.
* ``approval``: approve_roll's ``notifiers`` (HITLOperator calls them only when it really waits).
* ``deadline``: the DAG's Deadline Alert (queued time + ``deadline_minutes``), an ``AsyncCallback`` the triggerer
  runs with a small context (``dag_run`` as JSON, ``deadline``).

Targets: e-mail through the smtp provider's ``SmtpNotifier`` (an Airflow SMTP connection), and a JSON POST to the
URL held in an Airflow connection (no webhook notifier is installed: the http provider is not in the lock). Each
target is tried on its own and a failed delivery is logged, never raised: a notification must not fail a task (an
approval's notifier runs inside the task). The text (rules/notify.py) goes through Airflow's secrets masker first.
No Azure import.
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseNotifier
from batch_images import links
from batch_images.rules import notify as text

WEBHOOK_TIMEOUT_SECONDS = 30
# Airflow's Deadline Alerts stay armed when a run fails (apache/airflow#60927, still so in 3.3.2:
# DagRun.update_state prunes deadlines on success only), so the callback itself stays silent for a finished run.
FINISHED_STATES = ("success", "failed")


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
    """Tell a pipeline's targets about one ``event`` (``failure``, ``roll``, ``approval``, ``deadline``).

    :param event: what happened; picks how the message is read from the context (rules/notify.py).
    :param email: ``{"to": [...], "smtp_conn_id", "from_email"}`` (EmailTargetConfig.to_dict()) or None.
    :param webhook: ``{"conn_id", "format"}`` (WebhookTargetConfig.to_dict()) or None.
    :param deadline_minutes: the cut-off, for the deadline message.
    :param context: given by the triggerer for a Deadline Alert (``dag_run``, ``deadline``).
    """

    template_fields = ()  # no Jinja: Azure's error text may hold braces

    def __init__(self, *, event: str, email: Mapping | None = None, webhook: Mapping | None = None,
                 deadline_minutes: int | None = None, context: Any = None) -> None:
        super().__init__(context=context)
        self.event, self.email, self.webhook, self.deadline_minutes = event, email, webhook, deadline_minutes

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

    def _deadline(self, context: Mapping[str, Any]) -> text.Message | None:
        run = context.get("dag_run") or {}
        if run.get("state") in FINISHED_STATES:
            self.log.info("Run %s is %s: no deadline message (apache/airflow#60927)", run.get("run_id"),
                          run.get("state"))
            return None
        dl = context.get("deadline") or {}
        return text.deadline(run.get("dag_id", "?"), run.get("run_id", "?"), run.get("state"),
                             run.get("queued_at"), str(dl.get("deadline_time") or "") or None, self.deadline_minutes)

    # -- sending -----------------------------------------------------------------------------------------------

    def notify(self, context: Any) -> None:
        msg = self.message(context)
        if msg is None:
            return
        msg = text.Message(_redact(msg.subject), tuple(_redact(line) for line in msg.lines))
        for name, target, send in (("e-mail", self.email, self._send_email),
                                   ("webhook", self.webhook, self._send_webhook)):
            if not target:
                continue
            try:
                send(msg, target, context)
                self.log.info("Notification %r sent by %s", msg.subject, name)
            except Exception:  # noqa: BLE001 - logged; a notification never fails the task
                self.log.exception("Notification %r by %s failed", msg.subject, name)

    async def async_notify(self, context: Any) -> None:
        """The triggerer's path (Deadline Alerts): the same sending, in a thread (SMTP and HTTP are blocking)."""
        await asyncio.to_thread(self.notify, context)

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


class Wiring:
    """What the DAG file attaches for a pipeline's ``notifications`` (a NotificationsConfig.to_dict(), or None):
    empty lists / None for an event not asked for, so a pipeline without notifications gets nothing."""

    def __init__(self, notifications: Mapping | None) -> None:
        self.cfg = dict(notifications or {})
        self.events = set(self.cfg.get("events") or ()) if self.cfg else set()

    def _kwargs(self, event: str) -> dict:
        return {"event": event, "email": self.cfg.get("email"), "webhook": self.cfg.get("webhook"),
                "deadline_minutes": self.cfg.get("deadline_minutes")}

    def notifiers(self, event: str) -> list[PipelineNotifier]:
        """``[PipelineNotifier]`` for ``event`` when the pipeline asks for it, else ``[]``."""
        return [PipelineNotifier(**self._kwargs(event))] if event in self.events else []

    def deadline(self) -> Any:
        """The DAG's ``deadline``: a DeadlineAlert at queued time + ``deadline_minutes`` whose AsyncCallback is
        PipelineNotifier(event="deadline"); None without a cut-off or without the deadline event."""
        minutes = self.cfg.get("deadline_minutes")
        if not minutes or "deadline" not in self.events:
            return None
        from airflow.sdk.definitions.callback import AsyncCallback
        from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

        return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(minutes=minutes),
                             callback=AsyncCallback(PipelineNotifier, kwargs=self._kwargs("deadline")))
