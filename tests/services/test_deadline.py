"""The nightly cut-off (``notifications.deadline_minutes``) under the real services: Airflow's Deadline Alert from
the run's queued time, its AsyncCallback run by the triggerer, a webhook received by a local receiver.

One stack (SQLite + LocalExecutor, as `make airflow`) with the demo pipeline cut off after 2 minutes:

1. a run that fails before its cut-off (a 400 from Azure on the snapshot's PUT fails create_snapshot at once). Its
   deadline stays armed in Airflow 3.3.2 (apache/airflow#60927) and passes while the next run goes on: the callback
   runs and sends nothing, as the run is no longer running;
2. a run still going at its cut-off (its image version replicates for 10 more minutes): exactly one message, naming
   it. It is then marked failed through the REST API and the receiver is watched a while longer: nothing more comes.
"""
from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from _services import DAG_ID, SERVICES_TIME_SCALE, demo_pipelines_dir, wait_for_dag
from include.services.stack import AirflowStack
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.services

CUT_OFF_MINUTES = 2
# The late run's image version replicates this much longer (simulated seconds; a `replication_slow` fault): 10
# real minutes at the services' time scale, so the run is surely still waiting at its cut-off.
SLOW_REPLICATION = SERVICES_TIME_SCALE * 600
HOOK_PATH = "/cut-off"
STILL_RUNNING = f"still running {CUT_OFF_MINUTES} minutes after it was queued"


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _deadlines(api, run_id: str) -> list[dict]:
    return api.get(f"/ui/dags/{DAG_ID}/dagRuns/{run_id}/deadlines")["deadlines"]


def _wait(what: str, check, timeout: float, stack: AirflowStack):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        stack.check_alive()
        if (value := check()):
            return value
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout:.0f} s; triggerer log:\n{stack.log('triggerer')[-3000:]}")


def test_the_cut_off_tells_a_late_run_once_and_a_run_that_failed_never(standin_session, tmp_path, record_property):
    s = standin_session
    if s.proc is None or s.proc.poll() is not None:
        s.start()
    s.reset(scale=SERVICES_TIME_SCALE)
    with WebhookReceiver() as hook:
        pipelines = demo_pipelines_dir(tmp_path / "pipelines", notifications={
            "webhook": {"conn_id": "cut_off_hook"}, "deadline_minutes": CUT_OFF_MINUTES})
        env = {"BATCH_IMAGES_PIPELINES_DIR": str(pipelines), "BATCH_IMAGES_RETRY_DELAY_SECONDS": "1",
               "AIRFLOW_CONN_CUT_OFF_HOOK": json.dumps({"conn_type": "http", "password": hook.url(HOOK_PATH)})}
        with AirflowStack(home=tmp_path / "home", standin=s.endpoints, extra_env=env) as stack:
            api = stack.client()
            dag = wait_for_dag(api, DAG_ID)
            api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

            def cut_offs() -> list[str]:
                return [b["text"] for p, b in hook.posts if p == HOOK_PATH and STILL_RUNNING in b["text"]]

            # 1. a run that fails before its cut-off
            s.control.add_fault("http", count=5, match={"op": "Snapshots_CreateOrUpdate"}, status=400)
            failed = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": "2026-11-24T00:00:00Z",
                                                                 "conf": {"rebuild": 1}})
            failed_id = failed["dag_run_id"]
            failed = _wait("the first run's failure", lambda: (
                r if (r := api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{failed_id}"))["state"] in ("success", "failed")
                else None), 240, stack)
            assert failed["state"] == "failed", failed
            [armed] = _deadlines(api, failed_id)
            assert _when(failed["end_date"]) < _when(armed["deadline_time"]), (failed, armed)
            s.control.clear_faults()

            # 2. a run still going at its cut-off: waiting for its image version's replication
            s.control.add_fault("replication_slow", count=-1, match={}, extra_seconds=SLOW_REPLICATION)
            started = time.monotonic()
            late = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": "2026-11-25T00:00:00Z",
                                                               "conf": {"rebuild": 1}})
            late_id = late["dag_run_id"]
            [message] = _wait("the cut-off message", cut_offs, CUT_OFF_MINUTES * 60 + 180, stack)
            told_after = time.monotonic() - started
            assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{late_id}")["state"] == "running"
            assert message.splitlines()[0] == f"[{DAG_ID}] run {late_id} {STILL_RUNNING}"
            assert f"Run: {late_id}" in message
            api.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{late_id}", {"state": "failed"})

            # The failed run's deadline passed too (Airflow handled it: missed) and its callback said nothing.
            _wait("the failed run's deadline handled", lambda: _deadlines(api, failed_id)[0]["missed"], 120, stack)
            _wait("the failed run's callback", lambda: f"Run {failed_id} is failed" in stack.log("triggerer"),
                  60, stack)
            time.sleep(20)  # nothing more after the late run ended
            assert cut_offs() == [message], cut_offs()
            assert [d["missed"] for d in _deadlines(api, late_id)] == [True]
            assert not any(failed_id in b.get("text", "") and STILL_RUNNING in b.get("text", "")
                           for _, b in hook.posts)
            record_property("cut_off_told_after_seconds", round(told_after, 1))
            print(f"\n{dag['dag_id']}, cut-off {CUT_OFF_MINUTES} min: told {told_after:.1f} s after the trigger")
