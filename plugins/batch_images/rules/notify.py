"""The text of a pipeline's notifications (what ``batch_images/notifications.py`` sends) and the webhook bodies.

Pure: the caller reads the Airflow context and hands plain values in. A :class:`Message` is a subject and lines of
plain text; :func:`email_html` and :func:`webhook_body` give the two wire forms. Nothing here may carry a secret:
the callers pass ids, states, Azure's error text (already redacted by Airflow's secrets masker) and links only.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Azure's error text can be long (a whole HttpResponseError with its inner errors); a chat message cut there still
# names the code and the message, the task log has the rest.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Message:
    """``subject`` (one line) and ``lines`` (the body, plain text, one fact per line)."""

    subject: str
    lines: Sequence[str] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n".join([self.subject, "", *self.lines])


def _error_text(error: str | None) -> str:
    text = (error or "").strip() or "no error text (the task's process ended without one: see its log)"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " [...] (cut: see the task log)"


def task_label(task_id: str, map_index: int | None) -> str:
    """``create_pool[1]`` for a mapped task instance, ``preflight`` otherwise."""
    return f"{task_id}[{map_index}]" if map_index is not None and map_index >= 0 else task_id


def failure(dag_id: str, run_id: str, task: str, try_number: int | None, error: str | None,
            portal_url: str | None = None, log_url: str | None = None) -> Message:
    """A task failed for good (its retries used up): the run, the task, Azure's error, the portal and log links."""
    lines = [f"Run: {run_id}", f"Failed task: {task}" + (f" (try {try_number})" if try_number else ""),
             f"Error: {_error_text(error)}"]
    if portal_url:
        lines.append(f"Azure portal: {portal_url}")
    if log_url:
        lines.append(f"Task log: {log_url}")
    return Message(f"[{dag_id}] task {task} failed", lines)


def roll(dag_id: str, run_id: str, result: Mapping[str, Any] | None, decision: Mapping[str, Any] | None = None,
         portal_url: str | None = None) -> Message | None:
    """A logical pool now serves a new version: roll_pool's result (``logical_pool``, ``pool_id``, ``version``,
    ``account``, ``moved_schedules``, ``moved_jobs``, ``deleted_pools``, ``nodes``) and plan_roll's decision
    (``roll_action``, ``strategy``, ``serving_pool_id``, ``serving_version``). None when nothing moved: no result
    (skipped, canary only, a newer version serves) or a rerun after the roll had finished (roll action current)."""
    if not isinstance(result, Mapping) or not result.get("pool_id"):
        return None
    d = decision if isinstance(decision, Mapping) else {}
    if d.get("roll_action") == "current":
        return None
    logical, pool_id, version = result.get("logical_pool"), result["pool_id"], result.get("version")
    old_pool, old_version = d.get("serving_pool_id"), d.get("serving_version")
    if d.get("roll_action") == "first" or not old_pool:
        what = f"first pool {pool_id} serves version {version}"
    elif old_pool == pool_id:
        what = f"pool {pool_id} re-imaged in place from {old_version} to {version}"
    else:
        what = f"rolled from {old_pool} ({old_version}) to {pool_id} ({version})"
    lines = [f"Run: {run_id}", f"Logical pool {logical} in Batch account {result.get('account')}: {what}"]
    if d.get("strategy"):
        lines.append(f"Strategy: {d['strategy']}")
    lines += [f"Job schedules moved: {', '.join(result.get('moved_schedules') or []) or 'none'}",
              f"Jobs moved: {', '.join(result.get('moved_jobs') or []) or 'none'}",
              f"Old pools deleted: {', '.join(result.get('deleted_pools') or []) or 'none'}"]
    if result.get("nodes") is not None:
        lines.append(f"Nodes on the new version: {result['nodes']}")
    if portal_url:
        lines.append(f"Azure portal: {portal_url}")
    return Message(f"[{dag_id}] logical pool {logical} now on {version}", lines)


def approval(dag_id: str, run_id: str, task: str, subject: str, body: str | None, url: str | None) -> Message:
    """A roll waits for a human: the approval's subject and body, and where to answer (Required Actions)."""
    lines = [f"Run: {run_id}", f"Task: {task}", *(body or "").splitlines()]
    lines.append(f"Approve or reject: {url}" if url else
                 "Approve or reject in the Airflow UI: the run's task, Required Actions")
    return Message(f"[{dag_id}] approval waiting: {subject}", lines)


def still_running(dag_id: str, run_id: str, minutes: int, queued_at: str | None, cut_off: str | None,
                  grid_url: str | None = None, state: str = "running") -> Message:
    """The nightly cut-off passed and the run has not ended (``state``: running, or queued behind another run):
    ``minutes`` after ``queued_at`` (ISO 8601 times as Airflow gives them, UTC)."""
    lines = [f"Run: {run_id}", f"Still {state} {minutes} minutes after it was queued"
             + (f" ({queued_at})" if queued_at else "") + (f"; cut-off {cut_off}" if cut_off else ""),
             "Nothing was stopped: the run goes on; see its tasks in the Airflow UI"
             + (f": {grid_url}" if grid_url else "")]
    return Message(f"[{dag_id}] run {run_id} still {state} {minutes} minutes after it was queued", lines)


def email_html(message: Message) -> str:
    """The e-mail body: the lines, escaped (Azure's text may hold ``<``), links clickable."""
    out = []
    for line in message.lines:
        label, sep, rest = line.partition(": ")
        if sep and rest.startswith(("https://", "http://")) and " " not in rest:
            out.append(f"{html.escape(label)}: <a href=\"{html.escape(rest)}\">{html.escape(rest)}</a>")
        else:
            out.append(html.escape(line))
    return "<p>" + "<br>\n".join(out) + "</p>"


def webhook_body(message: Message, fmt: str = "text") -> dict:
    """The JSON a webhook gets. ``text``: ``{"text": ...}``, which Slack incoming webhooks and Teams' Office 365
    connectors both show. ``teams_workflow``: a message with one Adaptive Card (Teams Workflows webhooks take
    Adaptive Cards only; learn.microsoft.com, microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using,
    "Known issues"; the card's TextBlocks use Adaptive Cards 1.4, which Teams renders)."""
    if fmt == "text":
        return {"text": message.text}
    if fmt != "teams_workflow":
        raise ValueError(f"unknown webhook format {fmt!r}")
    blocks = [{"type": "TextBlock", "text": message.subject, "weight": "Bolder", "wrap": True}]
    blocks += [{"type": "TextBlock", "text": line, "wrap": True, "spacing": "None"} for line in message.lines]
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                    "version": "1.4", "body": blocks}}]}
