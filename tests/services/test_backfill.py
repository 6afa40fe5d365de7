"""`airflow backfill create` over the pipeline, under the real services (scheduler, triggerer, dag-processor,
api-server; include/services/stack.py), after a newer version serves.

Metadata DB PostgreSQL (the CLI and the scheduler write at once). The pipeline is demo.yaml's, scheduled ``@daily`` (a backfill needs a periodic schedule), with ``keep_versions: 6`` so
that retention keeps every version the test makes. Unpausing it starts no run (issue 22: the first scheduled run is
the next midnight; the API's ``next_dagrun_run_after`` says so); the latest interval is then triggered through the
REST API as a user does: that version serves. Then a backfill over three earlier dates, ``--max-active-runs 1`` (a backfill's own limit; the DAG's
``max_active_runs`` does not apply to it): three versions published in date order, one run at a time, the serving
pool untouched (no-downgrade rule of the roll: each run publishes, excluded from latest, and rolls nothing). Then a
backfill of one of those dates with ``--dag-run-conf '{"rebuild": 1}' --reprocess-behavior completed`` (Airflow re-runs
that date's run: same run id, cleared, conf replaced): that date gets a new version ``.1``. Wall times are printed (pytest -s) and kept in .artifacts/backfill.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from _services import ROOT, SERVICES_TIME_SCALE, require, wait_for_dag
from batch_images.rules import naming
from batch_images.rules.config import load_pipelines
from include.pipeline_fixtures import short_field_pool
from include.services.stack import AirflowStack, PostgresServer

pytestmark = pytest.mark.services

DAG_ID = "backfill_ubuntu2204"
DATES = ("2026-11-20", "2026-11-22")  # three days, inclusive
BACKFILLED = ("2026.1120.0", "2026.1121.0", "2026.1122.0")
RUN_TIMEOUT = 900
UNPAUSED_WATCH = 20  # seconds after unpausing in which no run may appear (dag-processor refresh: 5 s)


def pipeline_dir(directory):
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    cfg.update(dag_id=DAG_ID, schedule="@daily", keep_versions=6)
    # the backfill is about versions: a small fixed-size pool (short fields, include/pipeline_fixtures.py)
    cfg["pools"] = [short_field_pool(cfg["pools"][0], target_dedicated_nodes=1, smoke_test=None)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "backfill.yaml").write_text(json.dumps({"pipelines": [cfg]}, indent=2, default=str))
    return directory, cfg


def runs_of(api) -> list[dict]:
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", limit=100, order_by="logical_date")["dag_runs"]


def wait_runs(api, want: int, timeout: float = RUN_TIMEOUT) -> list[dict]:
    """Until ``want`` runs exist and all ended; also checks, while polling, that never two run at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(api)
        running = [r for r in runs if r["state"] == "running"]
        assert len(running) <= 1, f"two runs at once: {[r['dag_run_id'] for r in running]}"
        if len(runs) >= want and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(1)
    raise TimeoutError(f"runs of {DAG_ID}: {[(r['dag_run_id'], r['state']) for r in runs_of(api)]}")


def unpause_outside_the_grace(api) -> datetime:
    """Unpause the DAG, not within the 5 minutes after midnight UTC (there a cron time is still due:
    batch_images/timetables.py); returns when (UTC)."""
    now = datetime.now(timezone.utc)
    since_midnight = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    if since_midnight < timedelta(minutes=6):
        time.sleep((timedelta(minutes=6) - since_midnight).total_seconds())
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    return datetime.now(timezone.utc)


def backfill(stack: AirflowStack, *extra: str) -> None:
    """`airflow backfill create --dag-id DAG_ID EXTRA...` as a user types it, next to the running services."""
    out = subprocess.run([sys.executable, "-m", "airflow", "backfill", "create", "--dag-id", DAG_ID, *extra],
                         cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def wait_backfills_done(api, timeout: float = 180) -> None:
    """Until every backfill of the DAG has ``completed_at`` (the scheduler sets it after its last run ended; a new
    backfill is refused with AlreadyRunningBackfill until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(b.get("completed_at") for b in api.get("/api/v2/backfills", dag_id=DAG_ID)["backfills"]):
            return
        time.sleep(1)
    raise TimeoutError(f"a backfill of {DAG_ID} is still not completed after {timeout:.0f} s")


def when(run: dict, key: str) -> datetime:
    return datetime.fromisoformat(run[key].replace("Z", "+00:00"))


def test_backfill_publishes_one_version_per_date_in_order_and_rolls_nothing_back(services_standin, tmp_path):
    standin = services_standin
    pipelines, cfg = pipeline_dir(tmp_path / "pipelines")
    # PostgreSQL, not SQLite: `airflow backfill create` inserts its runs while the scheduler writes, and SQLite
    # answers "database is locked" at once to a reader upgrading to a writer (no busy timeout helps).
    require("postgresql")
    pg = PostgresServer()
    figures = {}
    stack = None
    try:
        pg.start()
        stack = AirflowStack(home=tmp_path / "home", standin=standin.endpoints, sql_alchemy_conn=pg.url,
                             extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(pipelines)})
        stack.start()
        api = stack.client()
        wait_for_dag(api, DAG_ID)
        # 1. unpausing starts no build: no run appears and the next scheduled run is the next midnight
        unpaused_at = unpause_outside_the_grace(api)
        time.sleep(UNPAUSED_WATCH)  # the stock timetable's run appeared within seconds (scheduler loop ~1 s)
        assert runs_of(api) == [], [(r["dag_run_id"], r["run_type"]) for r in runs_of(api)]
        next_run = datetime.fromisoformat(api.get(f"/api/v2/dags/{DAG_ID}")["next_dagrun_run_after"])
        assert next_run == unpaused_at.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1), next_run
        # the latest interval, triggered as a user does: its version serves
        start = time.monotonic()
        latest = unpaused_at.strftime("%Y-%m-%dT00:00:00Z")
        api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": latest, "conf": {}})
        nightly = wait_runs(api, 1)
        assert [r["state"] for r in nightly] == ["success"], nightly
        figures["nightly_s"] = round(time.monotonic() - start, 1)
        newest = naming.version_name(when(nightly[0], "logical_date"))
        batch = standin.batch()
        serving_id = naming.pool_id("ubuntu2204", newest)
        before = batch.get_pool(serving_id)

        # 2. the backfill: three dates before it, one run at a time
        start = time.monotonic()
        backfill(stack, "--from-date", DATES[0], "--to-date", DATES[1], "--max-active-runs", "1")
        runs = wait_runs(api, 4)
        figures["backfill_3_dates_s"] = round(time.monotonic() - start, 1)
        filled = sorted((r for r in runs if r["run_type"] == "backfill"), key=lambda r: when(r, "start_date"))
        assert [r["state"] for r in filled] == ["success"] * 3, [(r["dag_run_id"], r["state"]) for r in filled]
        assert [naming.version_name(when(r, "logical_date")) for r in filled] == list(BACKFILLED)  # date order
        for a, b in zip(filled, filled[1:]):
            assert when(a, "end_date") <= when(b, "start_date"), (a, b)  # one at a time

        compute = standin.compute()
        g, d = cfg["gallery"], cfg["image_definition"]
        versions = {v.name: v for v in compute.gallery_image_versions.list_by_gallery_image(
            g["resource_group"], g["name"], d["name"])}
        assert set(versions) == {newest, *BACKFILLED}, sorted(versions)
        published = [versions[v].publishing_profile.published_date for v in BACKFILLED]
        assert published == sorted(published)
        for v in BACKFILLED:  # published, never promoted: "latest" stays the serving version
            assert versions[v].publishing_profile.exclude_from_latest is True, v
        assert versions[newest].publishing_profile.exclude_from_latest is False

        # no pool rolled back: the serving pool is the same, untouched; no pool of an older version exists
        after = batch.get_pool(serving_id)
        assert after.etag == before.etag and after.virtual_machine_configuration.image_reference \
            .virtual_machine_image_id.endswith(f"/versions/{newest}")
        meta = {m.name: m.value for m in after.metadata}
        assert meta[naming.TAG_ROLE] == naming.ROLE_SERVING and naming.TAG_LEASE not in meta
        assert [p.id for p in batch.list_pools()] == [serving_id]

        # 3. a date that has a version, with rebuild 1: a new version for that date
        wait_backfills_done(api)
        start = time.monotonic()
        backfill(stack, "--from-date", "2026-11-21", "--to-date", "2026-11-21", "--max-active-runs", "1",
                 "--reprocess-behavior", "completed", "--dag-run-conf", json.dumps({"rebuild": 1}))
        # --reprocess-behavior completed re-runs the date's run (same run id, cleared, conf replaced), no 5th run
        run_id = "backfill__2026-11-21T00:00:00+00:00"
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            rerun = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
            if (rerun.get("conf") or {}).get("rebuild") == 1 and rerun["state"] in ("success", "failed"):
                break
            time.sleep(1)
        figures["backfill_rebuild_s"] = round(time.monotonic() - start, 1)
        assert rerun["state"] == "success" and rerun["conf"] == {"rebuild": 1}, rerun
        names = {v.name for v in compute.gallery_image_versions.list_by_gallery_image(
            g["resource_group"], g["name"], d["name"])}
        assert "2026.1121.1" in names and set(BACKFILLED) <= names
        assert [p.id for p in batch.list_pools()] == [serving_id]
        assert batch.get_pool(serving_id).etag == before.etag
    finally:
        if stack is not None:
            stack.stop()
        pg.stop()
        figures["time_scale"] = SERVICES_TIME_SCALE
        out = ROOT / ".artifacts" / "backfill.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print("backfill figures:", figures)
