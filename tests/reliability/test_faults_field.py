"""Field faults (issue 7 item 2, issue 12): answers no retry can change fail the task at once.

* A backfill: a run whose logical date is more than ``end_of_life_days`` ago. Azure refuses an
  ``endOfLifeDate`` that is not in the future (the stand-in does too, 400 InvalidParameter "EndOfLifeDate
  must be set to a future date."), so the version's end of life counts from the build day: the run succeeds.
* Azure refuses the version create with 400: the task fails on try 1 with Azure's code and message, no
  second attempt is sent, and the teardown removes the run's snapshots and managed image.
* A connection value preflight finds invalid: the task fails on try 1 with its message, nothing written.

Each test runs the whole DAG with ``airflow dags test`` (pipeline_harness) and records a table row.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

import pipeline_harness
from include.pipeline_runner import connection_env
from pipeline_harness import PipelineHarness, dag_id_for, pipeline_config, summary

REFUSAL = "The value 'Premium_ZRS' of parameter 'storageAccountType' is not supported in region 'northeurope'."


@pytest.fixture
def harness(standin, tmp_path, request):
    def make(*, env=None, **top) -> PipelineHarness:
        dag_id = dag_id_for(request.node.name)
        cfg = pipeline_config(standin.endpoints, dag_id, **top)
        return PipelineHarness(standin, dag_id, tmp_path, cfg, env=env)

    return make


def tries(result, task: str) -> tuple[str, int]:
    (ti,) = [t for t in result.tasks if t["task"] == task]
    return ti["state"], ti["try"]


def test_backfill_past_end_of_life_goes_through(harness, standin, monkeypatch, reliability_row):
    """The run for 2026-08-01 made today (more than 90 days later): the version gets endOfLifeDate today + 90
    days, which Azure accepts; the run ends with a steady pool and nothing left over."""
    logical = "2026-08-01T00:00:00+00:00"
    monkeypatch.setattr(pipeline_harness, "LOGICAL_DATE", logical)
    monkeypatch.setattr(pipeline_harness, "VERSION", "2026.801.0")
    monkeypatch.setattr(pipeline_harness, "POOL_ID", "ubuntu2204-2026-801-0")
    h = harness(start_date="2026-07-01", end_of_life_days=90)
    assert date(2026, 8, 1) + timedelta(days=90) < datetime.now(timezone.utc).date(), "not a backfill any more"
    result = h.run()
    report = h.invariants(success=True)
    refused = [r for r in h.requests() if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["status"] >= 400]
    reliability_row("end-of-life date past (backfill 2026-08-01, 90 days)", runs=1,
                    survived=result.state == "success" and not report.problems and not refused, leaked=report.leaked,
                    note=f"endOfLifeDate {h.plan.get('end_of_life_date')}")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert not refused, refused
    eol = date.fromisoformat(h.plan["end_of_life_date"])
    assert eol - datetime.now(timezone.utc).date() in (timedelta(days=90), timedelta(days=89)), eol
    version = standin.compute().gallery_image_versions.get(
        h.pipeline["gallery"]["resource_group"], h.pipeline["gallery"]["name"], h.pipeline["image_definition"]["name"],
        "2026.801.0")
    assert version.publishing_profile.end_of_life_date.date() == eol


def test_version_create_refused_400_fails_on_try_1(harness, standin, reliability_row):
    """Azure answers the version create 400 InvalidParameter: publish_image_version fails on try 1 (no retry,
    one create sent) with Azure's code and message, and the teardown deletes the run's snapshots and image."""
    h = harness()
    standin.control.add_fault("http", count=-1, match={"op": "GalleryImageVersions_CreateOrUpdate", "method": "PUT"},
                              status=400, code="InvalidParameter", message=REFUSAL)
    result = h.run()
    report = h.invariants(success=False, versions="none")
    state, try_number = tries(result, "publish_image_version")
    creates = [r for r in h.requests() if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["method"] == "PUT"]
    teardown = tries(result, "delete_temporary_resources")
    reliability_row("version create refused 400 InvalidParameter", runs=1,
                    survived=result.state == "failed" and try_number == 1 and len(creates) == 1 and not report.problems,
                    leaked=report.leaked, writes_before_refusal=h.writes_before_refusal(result),
                    note=f"failed on try {try_number}, {len(creates)} create(s) sent, teardown {teardown[0]}")
    assert result.state == "failed", summary(report, result)
    assert (state, try_number) == ("failed", 1), result.tasks
    assert len(creates) == 1, creates
    assert f"400 InvalidParameter: {REFUSAL}" in result.log and "No retry can change this answer" in result.log
    assert teardown[0] == "success", result.tasks
    assert not report.problems, summary(report, result)  # snapshots and managed image deleted, no version, no pool


def test_invalid_connection_fails_preflight_on_try_1(harness, standin, reliability_row):
    """Issue 12: a connection extra preflight finds invalid (a ca_bundle that names no file) fails preflight on
    try 1 with the extra, its value and the fix; Azure sees no write."""
    arm = json.loads(connection_env(standin.endpoints)["AIRFLOW_CONN_AZURE_DEFAULT"])
    arm["extra"]["ca_bundle"] = ".standin-elsewhere/ca.pem"
    h = harness(env={"AIRFLOW_CONN_AZURE_DEFAULT": json.dumps(arm)})
    result = h.run()
    report = h.invariants(success=False, versions="none")
    state, try_number = tries(result, "preflight")
    writes = [r for r in h.requests() if r["write"]]
    reliability_row("bad input (connection): ca_bundle names no file", runs=1,
                    survived=(state, try_number) == ("failed", 1) and not writes, leaked=report.leaked,
                    writes_before_refusal=len(writes), note=f"preflight failed on try {try_number}")
    assert (state, try_number) == ("failed", 1), result.tasks
    assert "connection extra ca_bundle: '.standin-elsewhere/ca.pem' is not valid" in result.log
    assert not writes, writes
    assert not report.problems, summary(report, result)
