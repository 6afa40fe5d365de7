"""A pipeline's notifications (``notifications:`` in its YAML; docs/operations.md, Notifications) as Airflow notifiers.

:class:`PipelineNotifier` is one ``airflow.sdk.BaseNotifier`` per event, wired by the DAG file through :class:`Wiring`:

* ``failure``: every task's ``on_failure_callback`` (default_args). It runs in the worker once the task failed for
  good (retries go to ``on_retry_callback``, which is not set), where the context holds the exception - Azure's
  error text - and the rendered task, hence its portal link. A DAG-level callback would not do: Airflow 3 runs it in
  the dag-processor with a task instance rebuilt from the database, which has no exception.
* ``roll``: roll_pool's ``on_success_callback``: its XCom result says whether the logical pool moved.
* ``approval``: approve_roll's ``notifiers`` (HITLOperator calls them only when it really waits).

No nightly cut-off: Airflow 3.3.2's Deadline Alerts were tried and left out (docs/operations.md says why): a failed
run's deadline stays armed and fires later (apache/airflow#60927; DagRun.update_state prunes deadlines on success
only), and ``airflow dags test`` of a DAG with a deadline ends a successful run with an error (dag.test hands
DagRun.update_state the SDK DAG, whose ``deadline`` holds DeadlineAlert objects where alert ids are expected).

Targets: e-mail through the smtp provider's ``SmtpNotifier`` (an Airflow SMTP connection), and a JSON POST to the
URL held in an Airflow connection (no webhook notifier is installed: the http provider is not in the lock). Each
target is tried on its own and a failed delivery is logged, never raised: a notification must not fail a task (an
approval's notifier runs inside the task). The text (rules/notify.py) goes through Airflow's secrets masker first.
No Azure import.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier
from batch_images import links
from batch_images.rules import notify as text

WEBHOOK_TIMEOUT_SECONDS = 30


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
        return {"event": event, "email": self.cfg.get("email"), "webhook": self.cfg.get("webhook")}

    def notifiers(self, event: str) -> list[PipelineNotifier]:
        """``[PipelineNotifier]`` for ``event`` when the pipeline asks for it, else ``[]``."""
        return [PipelineNotifier(**self._kwargs(event))] if event in self.events else []
