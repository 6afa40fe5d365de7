"""One lane per pool (issue 21): a slow pool does not hold another pool's steady wait or smoke test.

Two logical pools in two regions: ``fastpool`` in the seeded West Europe Batch account, ``slowpool`` in the North
Europe one (connection ``azure_batch_ne``). North Europe's Batch account answers slowpool's pool create
(``Pool_Add``) ``SLOW_SECONDS`` late (the stand-in's ``http`` fault with ``delay``: served, then held back), so
slowpool's ``create_pool`` lasts that long. The run goes through the real services (scheduler, LocalExecutor with
8 slots, triggerer, dag-processor, api-server; include/services/stack.py), triggered through the REST API v2:
``airflow dags test`` runs one task instance after another, so no two lanes could overlap there. From the
metadata DB's task instances: fastpool's ``wait_for_pool_steady`` and ``smoke_test`` start before slowpool's
``create_pool`` ends. With one mapped task per step (the DAG before the lanes) Airflow starts
``wait_for_pool_steady[i]`` only after every ``create_pool[*]``, and this test fails.

Why not the ``replication_slow`` fault: since issue 20 ``publish_image_version`` waits for the version's whole
operation (every region) before any lane starts, so a slow region's replication delays every pool alike.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import datetime

import pytest

from include.services.stack import AirflowStack
from tests.e2e._fresh_pipeline import demo_pipeline, fresh_pipeline

LOGICAL_DATE = "2026-11-25T00:00:00Z"
SLOW_SECONDS = 60.0   # real seconds North Europe's Batch account holds back slowpool's Pool_Add answer
TIME_SCALE = 300.0    # the real-services tests' scale (tests/services/_services.py)
RUN_TIMEOUT = 600.0


def pipeline(ep: dict, dag_id: str) -> dict:
    cfg, base = demo_pipeline(ep, dag_id)
    demo = ep["demo"]
    cfg["schedule"] = None  # only the run the test triggers
    cfg["pools"] = [
        {**base, "pool_id_prefix": "fastpool"},
        {**base, "pool_id_prefix": "slowpool", "batch_conn_id": "azure_batch_ne",
         "batch_account_id": demo["batch_account_ne_id"], "batch_account_location": demo["batch_account_ne_location"]},
    ]
    return cfg


def ne_connection(ep: dict) -> str:
    account = ep["batch_accounts"][ep["demo"]["batch_account_ne"]]
    return json.dumps({"conn_type": "azure_batch", "extra": {
        "account_url": account["endpoint"], "credential_conn_id": "azure_default", "ca_bundle": ep["ca_bundle"]}})


def task_instances(db, dag_id: str, run_id: str) -> dict[tuple[str, int], dict]:
    """(task_id, map_index) -> state, start and end (datetimes) of the run's task instances, from the metadata DB."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute("SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)).fetchall()
    when = lambda v: datetime.fromisoformat(v) if v else None  # noqa: E731
    return {(t, i): {"state": s, "start": when(a), "end": when(b)} for t, i, s, a, b in rows}


@pytest.fixture(scope="module")
def lanes_run(standin_session, tmp_path_factory):
    s, ep, tmp, dag_id, cfg, _ = fresh_pipeline(standin_session, tmp_path_factory, "lanes", pipeline)
    s.control.set_scale(TIME_SCALE)
    stack = AirflowStack(home=tmp / "home", standin=ep, extra_env={
        "BATCH_IMAGES_PIPELINES_DIR": str(tmp / "pipelines"), "BATCH_IMAGES_RETRY_DELAY_SECONDS": "1",
        "AIRFLOW_CONN_AZURE_BATCH_NE": ne_connection(ep)})
    stack.start()
    try:
        api = stack.client()
        deadline = time.monotonic() + 300
        while not any(d["dag_id"] == dag_id for d in api.get("/api/v2/dags", dag_id_pattern=dag_id)["dags"]):
            errors = api.get("/api/v2/importErrors")["import_errors"]
            assert not errors, [e.get("stack_trace", e)[-2000:] for e in errors]
            assert time.monotonic() < deadline, f"{dag_id} not parsed; logs in {stack.log_dir}"
            time.sleep(1)
        s.control.add_fault("http", count=1, delay=SLOW_SECONDS, match={
            "method": "POST", "path_regex": f"/batch/{ep['demo']['batch_account_ne']}/pools$"})
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": LOGICAL_DATE, "conf": {}})
        deadline = time.monotonic() + RUN_TIMEOUT
        while run["state"] not in ("success", "failed"):
            stack.check_alive()
            assert time.monotonic() < deadline, f"run still {run['state']}; logs in {stack.log_dir}"
            time.sleep(1)
            run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}")
        yield {"run": run, "tis": task_instances(stack.home / "airflow.db", dag_id, run["dag_run_id"]),
               "faults": s.control.faults(), "logs": stack.log_dir}
    finally:
        stack.stop()
        s.control.clear_faults()


def test_a_slow_pool_does_not_hold_another_pools_steady_wait_and_smoke_test(lanes_run):
    run, tis = lanes_run["run"], lanes_run["tis"]
    bad = {k: v["state"] for k, v in tis.items() if v["state"] != "success"}
    assert run["state"] == "success", f"run {run['state']}: {bad}; logs in {lanes_run['logs']}"
    fast, slow = 0, 1  # the pools' order in the config is the map index of their lane
    slow_create = tis[("create_pool", slow)]
    # the fault acted: slowpool's create_pool lasted at least the held-back answer
    assert (slow_create["end"] - slow_create["start"]).total_seconds() >= SLOW_SECONDS, slow_create
    print(f"\nslowpool create_pool {slow_create['start']} -> {slow_create['end']}; fastpool: " + ", ".join(
        f"{t} {tis[(t, fast)]['start']} -> {tis[(t, fast)]['end']}" for t in ("create_pool", "wait_for_pool_steady",
                                                                           "smoke_test")))
    for task in ("wait_for_pool_steady", "smoke_test"):
        started = tis[(task, fast)]["start"]
        assert started < slow_create["end"], (
            f"fastpool's {task} started at {started}, after slowpool's create_pool ended at {slow_create['end']}: "
            "one pool held the other")
    # the run went on as one: promotion once, after both lanes, then both pools rolled
    promote = tis[("promote_image_version", -1)]
    assert promote["start"] >= max(tis[("smoke_test", i)]["end"] for i in (fast, slow))
    assert all(tis[("roll_pool", i)]["state"] == "success" for i in (fast, slow))
