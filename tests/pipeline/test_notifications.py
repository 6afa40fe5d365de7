"""Notifications (issue 22): a pipeline's ``notifications`` send e-mail (SMTP connection) and a webhook POST (URL in
a connection) for a roll and for a task that failed for good, received by a local SMTP server and webhook receiver.

Two real `airflow dags test` runs of the demo pipeline against the stand-in: the first finds a previous night's
serving pool and rolls it (roll_pool's on_success_callback); the second gets a 400 from Azure on the image version's
PUT (publish_image_version fails at once, its on_failure_callback). The callbacks run in the task runner as in a
deployment; nothing is mocked.
"""
from __future__ import annotations

import json
import uuid

import pytest

from include.pipeline_runner import connection_env, run_dag_test, write_pipeline
from tests.pipeline._demo_run import LOGICAL_DATE, demo_pipeline
from tests.receivers import SmtpReceiver, WebhookReceiver
from tests.serving_pools import create_serving_pool

OLD_VERSION = "2026.1124.0"
NEW_VERSION = "2026.1125.0"  # LOGICAL_DATE's first version
HOOK_PATH = "/webhook/T000/B000/not-in-any-message"


@pytest.fixture(scope="module")
def receivers():
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        yield smtp, hook


def run(standin_session, receivers, tmp, fault: dict | None = None, serving: bool = False):
    """The demo pipeline with notifications to the receivers; returns (RunResult, mails, webhook posts, pipeline)."""
    smtp, hook = receivers
    s = standin_session
    if s.proc is None or s.proc.poll() is not None:
        s.start()
    s.reset()
    dag_id = f"notify_{uuid.uuid4().hex[:8]}"
    cfg = demo_pipeline(s.endpoints, dag_id)
    cfg["notifications"] = {"email": {"to": ["ops@contoso.example"], "smtp_conn_id": "notify_smtp"},
                            "webhook": {"conn_id": "notify_hook"}}
    if serving:
        create_serving_pool(s.batch(), cfg["pools"][0]["pool_id_prefix"], OLD_VERSION, nodes=1)
    if fault:
        s.control.add_fault("http", **fault)
    write_pipeline(tmp / "pipelines", cfg)
    env = {**connection_env(s.endpoints), "BATCH_IMAGES_RETRY_DELAY_SECONDS": "1",
           "AIRFLOW_CONN_NOTIFY_SMTP": json.dumps({
               "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
               "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@contoso.example"}}),
           "AIRFLOW_CONN_NOTIFY_HOOK": json.dumps({"conn_type": "http", "password": hook.url(HOOK_PATH)})}
    before = (len(smtp.mails()), len(hook.posts))
    result = run_dag_test(dag_id, LOGICAL_DATE, tmp / "run.log", env=env, pipelines_dir=tmp / "pipelines")
    return result, smtp.mails()[before[0]:], hook.posts[before[1]:], cfg


def no_secret(text: str, standin_session) -> None:
    assert standin_session.endpoints["client_secret"] not in text
    assert "not-in-any-message" not in text


def test_a_roll_is_told_by_email_and_webhook(standin_session, receivers, tmp_path):
    r, mails, posts, cfg = run(standin_session, receivers, tmp_path, serving=True)
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    logical = cfg["pools"][0]["pool_id_prefix"]
    result = r.xcoms["roll_pool[0]:return_value"]
    old_pool = f"{logical}-{OLD_VERSION.replace('.', '-')}"
    assert result["deleted_pools"] == [old_pool]

    # one message per target, nothing about a failure
    assert [m["subject"] for m in mails] == [f"[{cfg['dag_id']}] logical pool {logical} now on {NEW_VERSION}"]
    assert [p for p, _ in posts] == [HOOK_PATH]
    mail, text = mails[0], posts[0][1]["text"]
    assert mail["to"] == ["<ops@contoso.example>"] and mail["from"] == "<airflow@contoso.example>"
    run_id = r.run["run_id"]
    for body in (mail["body"], text):
        assert f"Run: {run_id}" in body
        assert (f"Logical pool {logical} in Batch account {result['account']}: rolled from {old_pool} "
                f"({OLD_VERSION}) to {result['pool_id']} ({NEW_VERSION})") in body
        assert f"Old pools deleted: {old_pool}" in body
        pool_arm = f"{cfg['pools'][0]['batch_account_id']}/pools/{result['pool_id']}"
        assert f"https://portal.azure.com/#@{standin_session.endpoints['tenant_id']}/resource{pool_arm}" in body
        no_secret(body, standin_session)
    assert text.startswith(f"[{cfg['dag_id']}] logical pool {logical} now on {NEW_VERSION}\n")


def test_a_failed_task_is_told_with_azures_error_and_the_portal_link(standin_session, receivers, tmp_path):
    fault = {"count": 5, "match": {"op": "GalleryImageVersions_CreateOrUpdate"}, "status": 400}
    r, mails, posts, cfg = run(standin_session, receivers, tmp_path, fault=fault)
    assert r.state == "failed", r.log[-4000:]
    assert r.task_state("publish_image_version") == "failed"
    assert [m["subject"] for m in mails] == [f"[{cfg['dag_id']}] task publish_image_version failed"], mails
    assert len(posts) == 1
    version_id = r.xcoms["preflight:return_value"]["version_id"]
    for body in (mails[0]["body"], posts[0][1]["text"]):
        assert f"Run: {r.run['run_id']}" in body
        assert "Failed task: publish_image_version (try 1)" in body
        error = next(line for line in body.splitlines() if line.startswith("Error: "))
        assert "400 " in error and version_id in error, error  # Azure's status, code and message, on the version
        tenant = standin_session.endpoints["tenant_id"]
        assert f"Azure portal: https://portal.azure.com/#@{tenant}/resource{version_id}" in body
        no_secret(body, standin_session)



class TI:
    """The task instance fields the approval message reads (the worker's RuntimeTaskInstance has them)."""

    dag_id, run_id, task_id, map_index = "notify_approval", "scheduled__2026-11-25T00:00:00+00:00", "approve_roll", 0
    id = "0199b1c0-0000-7000-8000-000000000000"


def test_an_approval_waiting_is_told_and_a_pass_through_is_not(conns, receivers, monkeypatch):
    """approve_roll (RollApprovalOperator) with the DAG's notifiers: its execute() calls them only when the roll
    really waits. The Human-in-the-loop row Airflow would write through the Execution API is not written here
    (upsert_hitl_detail replaced): the notifier and the operator's own logic run as in a worker."""
    from _batch_common import context_for, in_dag, pipeline_dict, reset_secret_cache
    from airflow.sdk.exceptions import TaskAwaitingInput

    from batch_images.notifications import Wiring
    from batch_images.operators.preflight import PreflightOperator
    from batch_images.operators.roll import RollApprovalOperator

    smtp, hook = receivers
    monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@contoso.example"}}))
    monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_HOOK", json.dumps({"conn_type": "http", "password": hook.url(HOOK_PATH)}))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.contoso.example")
    reset_secret_cache()
    monkeypatch.setattr("airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kw: None)
    wiring = Wiring({"email": {"to": ["ops@contoso.example"], "smtp_conn_id": "notify_smtp"},
                     "webhook": {"conn_id": "notify_hook", "format": "teams_workflow"},
                     "events": ["approval"]})
    assert wiring.notifiers("failure") == [] and wiring.notifiers("roll") == []
    plan = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=pipeline_dict(conns.endpoints))
                  ).execute(context_for())
    spec = {**plan["pools"][0], "require_approval": True, "roll_action": "roll", "strategy": "blue_green",
            "serving_pool_id": "ubuntu2204-2026-1124-0", "serving_version": "2026.1124.0", "version": "2026.1125.0",
            "image_version_id": plan["version_id"], "account": "batchimages"}
    before = (len(smtp.mails()), len(hook.posts))

    def approve(decision):
        op = in_dag(lambda: RollApprovalOperator(task_id="approve_roll", pool_spec=decision,
                                                 notifiers=wiring.notifiers("approval")), TI.dag_id)
        return op.execute({**context_for(run_id=TI.run_id), "ti": TI(), "task_instance": TI(), "task": op})

    assert approve({**spec, "roll_action": "first"})["auto"] is True  # nothing to approve: no message
    assert (len(smtp.mails()), len(hook.posts)) == before
    with pytest.raises(TaskAwaitingInput):
        approve(spec)
    [mail], [(path, card)] = smtp.mails()[before[0]:], hook.posts[before[1]:]
    subject = f"[{TI.dag_id}] approval waiting: Roll a Batch pool to a new image version?"
    assert mail["subject"] == subject and path == HOOK_PATH
    texts = [b["text"] for b in card["attachments"][0]["content"]["body"]]
    assert texts[0] == subject
    url = (f"https://airflow.contoso.example/dags/{TI.dag_id}/runs/{TI.run_id}/tasks/approve_roll/required_actions"
           "?map_index=0")
    for body in (mail["body"], "\n".join(texts)):
        assert f"Run: {TI.run_id}" in body and "Task: approve_roll[0]" in body
        assert ("Logical pool **ubuntu2204** in account batchimages: move work from ubuntu2204-2026-1124-0 "
                "(2026.1124.0)") in body
        assert f"Approve or reject: {url}" in body


def test_the_cut_off_is_a_deadline_alert_only_when_configured():
    """deadline_minutes: a Deadline Alert from the run's queued time, its callback run by the triggerer; without it
    the DAG gets no deadline (`airflow dags test` of a DAG with one ends in apache/airflow#73428)."""
    from datetime import timedelta

    from airflow.sdk import AsyncCallback, DeadlineReference

    from batch_images.notifications import Wiring

    assert Wiring({"webhook": {"conn_id": "notify_hook"}}).deadline() is None
    assert Wiring(None).deadline() is None
    alert = Wiring({"webhook": {"conn_id": "notify_hook"}, "deadline_minutes": 240}).deadline()
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT and alert.interval == timedelta(minutes=240)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.serialize() == {"path": "batch_images.notifications.deadline_missed", "kwargs": {
        "minutes": 240, "email": None, "webhook": {"conn_id": "notify_hook"}}}


@pytest.mark.parametrize("state", ["failed", "success"])
def test_the_cut_off_of_a_run_that_ended_sends_nothing(receivers, monkeypatch, state):
    """Airflow 3.3.2 runs a failed run's deadline callback at the cut-off anyway (apache/airflow#60927): the
    callback reads the state the scheduler saw then and tells nothing. (A run still running: tests/services.)"""
    import asyncio

    from _batch_common import reset_secret_cache

    from batch_images.notifications import deadline_missed

    smtp, hook = receivers
    monkeypatch.setenv("AIRFLOW_CONN_NOTIFY_HOOK", json.dumps({"conn_type": "http", "password": hook.url(HOOK_PATH)}))
    reset_secret_cache()
    before = len(hook.posts)
    context = {"dag_run": {"dag_id": "d", "dag_run_id": "scheduled__x", "state": state,
                           "queued_at": "2026-11-25T00:00:05Z"},
               "deadline": {"id": "0199b1c0-0000-7000-8000-000000000001", "deadline_time": "2026-11-25T04:00:05Z"}}
    assert asyncio.run(deadline_missed(minutes=240, webhook={"conn_id": "notify_hook"}, context=context)) is False
    assert hook.posts[before:] == []
