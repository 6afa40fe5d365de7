"""Notifications in the pipeline config and their text (rules/config.py NotificationsConfig, rules/notify.py)."""
from pathlib import Path

import pytest
import yaml

from batch_images.rules import config as cfg
from batch_images.rules import notify
from batch_images.rules.errors import InvalidInput

DEMO = Path(__file__).resolve().parents[2] / "include" / "pipelines" / "demo.yaml"


def with_notifications(value) -> dict:
    raw = yaml.safe_load(DEMO.read_text())["pipelines"][0]
    return {**raw, "notifications": value}


def test_notifications_default_to_every_event_and_the_text_format():
    p = cfg.parse_pipeline(with_notifications({"email": {"to": ["ops@contoso.com"]},
                                               "webhook": {"conn_id": "teams_ops", "format": "Teams_Workflow"}}))
    assert p.notifications.to_dict() == {
        "email": {"to": ["ops@contoso.com"], "smtp_conn_id": "smtp_default", "from_email": None},
        "webhook": {"conn_id": "teams_ops", "format": "teams_workflow"},
        "events": ["failure", "roll", "approval"], "deadline_minutes": None}
    assert cfg.parse_pipeline(with_notifications(None)).notifications is None
    cut_off = cfg.parse_pipeline(with_notifications({"webhook": {"conn_id": "hook"}, "deadline_minutes": 240}))
    assert cut_off.notifications.deadline_minutes == 240


@pytest.mark.parametrize(("value", "field", "fragment"), [
    ({}, "notifications.email", "notifications names no target"),
    ({"email": {"to": []}}, "notifications.email.to", "non-empty list of e-mail addresses"),
    ({"email": {"to": ["ops"]}}, "notifications.email.to[0]", "write an address such as ops@contoso.com"),
    ({"webhook": {"conn_id": "https://hooks.slack.com/services/T/B/x"}}, "notifications.webhook.conn_id",
     "keep the webhook URL (a secret) in an Airflow connection's password"),
    ({"webhook": {"conn_id": "hook", "format": "card"}}, "notifications.webhook.format", "text, teams_workflow"),
    ({"webhook": {"conn_id": "hook"}, "events": ["failure", "late"]}, "notifications.events[1]",
     "failure, roll, approval"),
    ({"webhook": {"conn_id": "hook"}, "deadline_minutes": 0}, "notifications.deadline_minutes",
     "give minutes between 1 and 1440 after the run was queued"),
    ({"webhook": {"conn_id": "hook"}, "deadline_minutes": 1441}, "notifications.deadline_minutes",
     "give minutes between 1 and 1440 after the run was queued"),
    ({"webhook": {"conn_id": "hook"}, "deadline_minutes": "4h"}, "notifications.deadline_minutes",
     "give minutes between 1 and 1440 after the run was queued"),
])
def test_bad_notifications_name_the_field_and_the_fix(value, field, fragment):
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(with_notifications(value))
    assert info.value.field == f"pipeline.{field}" and fragment in str(info.value), str(info.value)


ROLL = {"logical_pool": "ubuntu2204", "pool_id": "ubuntu2204-2026-1125-0", "version": "2026.1125.0",
        "account": "batchimages", "moved_schedules": ["nightly"], "moved_jobs": ["job-1", "job-2"],
        "deleted_pools": ["ubuntu2204-2026-1124-0"], "nodes": 4}
DECISION = {"roll_action": "roll", "strategy": "blue_green", "serving_pool_id": "ubuntu2204-2026-1124-0",
            "serving_version": "2026.1124.0"}


def test_roll_message_tells_what_moved():
    m = notify.roll("d", "scheduled__x", ROLL, DECISION, "https://portal.azure.com/#@t/resource/p")
    assert m.subject == "[d] logical pool ubuntu2204 now on 2026.1125.0"
    assert m.lines == ["Run: scheduled__x",
                       "Logical pool ubuntu2204 in Batch account batchimages: rolled from ubuntu2204-2026-1124-0 "
                       "(2026.1124.0) to ubuntu2204-2026-1125-0 (2026.1125.0)",
                       "Strategy: blue_green", "Job schedules moved: nightly", "Jobs moved: job-1, job-2",
                       "Old pools deleted: ubuntu2204-2026-1124-0", "Nodes on the new version: 4",
                       "Azure portal: https://portal.azure.com/#@t/resource/p"]


def test_roll_message_first_pool_in_place_and_nothing_moved():
    first = notify.roll("d", "r", {**ROLL, "deleted_pools": []}, {"roll_action": "first"})
    assert "first pool ubuntu2204-2026-1125-0 serves version 2026.1125.0" in first.text
    in_place = notify.roll("d", "r", {**ROLL, "pool_id": "ubuntu2204-2026-1124-0"}, {**DECISION, "strategy": "in_place"})
    assert "pool ubuntu2204-2026-1124-0 re-imaged in place from 2026.1124.0 to 2026.1125.0" in in_place.text
    # roll_pool returned None (skipped, canary only, newer version serving) or a rerun of a finished roll
    assert notify.roll("d", "r", None, DECISION) is None
    assert notify.roll("d", "r", ROLL, {**DECISION, "roll_action": "current"}) is None


def test_still_running_message_names_the_run_and_the_cut_off():
    m = notify.still_running("d", "scheduled__x", 240, "2026-11-25T00:00:05Z", "2026-11-25T04:00:05Z",
                             "https://airflow.contoso.com/dags/d/runs/scheduled__x")
    assert m.subject == "[d] run scheduled__x still running 240 minutes after it was queued"
    assert m.lines == ["Run: scheduled__x",
                       "Still running 240 minutes after it was queued (2026-11-25T00:00:05Z); cut-off "
                       "2026-11-25T04:00:05Z",
                       "Nothing was stopped: the run goes on; see its tasks in the Airflow UI: "
                       "https://airflow.contoso.com/dags/d/runs/scheduled__x"]


def test_still_queued_message_says_so_and_goes_without_a_link():
    m = notify.still_running("d", "manual__y", 60, None, None, None, state="queued")
    assert m.subject == "[d] run manual__y still queued 60 minutes after it was queued"
    assert m.lines == ["Run: manual__y", "Still queued 60 minutes after it was queued",
                       "Nothing was stopped: the run goes on; see its tasks in the Airflow UI"]


def test_failure_message_cuts_a_long_error_and_says_when_there_is_none():
    m = notify.failure("d", "r", notify.task_label("create_pool", 1), 3, "x" * 5000)
    assert m.subject == "[d] task create_pool[1] failed" and "Failed task: create_pool[1] (try 3)" in m.lines
    error = m.lines[2]
    assert len(error) < 2100 and error.endswith("[...] (cut: see the task log)")
    assert "no error text" in notify.failure("d", "r", "preflight", 1, None).lines[2]
    assert notify.task_label("preflight", -1) == "preflight"


def test_email_escapes_azures_text_and_links_urls():
    m = notify.failure("d", "r", "t", 1, "<Code>Conflict</Code>", "https://portal.azure.com/#@/resource/a b")
    html = notify.email_html(m)
    assert "&lt;Code&gt;Conflict&lt;/Code&gt;" in html and "<Code>" not in html
    assert "Azure portal: https://portal.azure.com/#@/resource/a b" in html  # a space: not a link, still shown
    m = notify.failure("d", "r", "t", 1, "e", "https://portal.azure.com/#@/resource/x")
    assert '<a href="https://portal.azure.com/#@/resource/x">' in notify.email_html(m)


def test_webhook_bodies_for_slack_and_teams():
    m = notify.approval("d", "r", "approve_roll[0]", "Roll?", "Move **p**", None)
    assert notify.webhook_body(m) == {"text": m.text}
    assert m.text.splitlines()[-1] == "Approve or reject in the Airflow UI: the run's task, Required Actions"
    card = notify.webhook_body(m, "teams_workflow")
    [attachment] = card["attachments"]
    assert card["type"] == "message" and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    body = attachment["content"]["body"]
    assert attachment["content"]["type"] == "AdaptiveCard" and body[0]["text"] == "[d] approval waiting: Roll?"
    assert [b["text"] for b in body[1:]] == list(m.lines)
    with pytest.raises(ValueError):
        notify.webhook_body(m, "card")
