"""A new marketplace base version starts the base-image pipeline through its Asset, under the real services.

The stack (scheduler, triggerer, dag-processor, api-server; SQLite + LocalExecutor) runs
include/pipelines/base-ubuntu2204.yaml as committed except ``schedule: null`` (so that the only run is the one
the Asset starts: unpausing an ``@daily`` DAG makes the scheduler start one of its own) and
``watch_interval_seconds: 60`` (the config's minimum). The test unpauses the DAG, waits until the triggerer's
watcher has looked once (first sight: the seeded newest version, recorded without firing), publishes a newer base
version through the stand-in's control API, and checks that:

* a run of the pipeline is created by the Asset (``run_type`` ``asset_triggered``) within one poll interval plus
  scheduling slack, and exactly one;
* its triggering Asset event is the watcher's (``extra.from_trigger``) and names exactly the published version
  (``extra.payload.version``, what the run builds from);
* its first task starts, and the run succeeds having built from exactly that version: the image version it made
  carries the lineage tag ``base-version`` = the published version, and its build VM is gone;
* after a triggerer restart during which another version is published, that version starts a second run (the
  watcher's memory is the Asset's state store, not the process), and nothing fires twice.

It prints the seconds from the publish to the run's creation and to its first task's start.
"""
from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from _services import ROOT, wait_for_dag
from batch_images.rules import base_watch, naming
from include.services.stack import AirflowStack

pytestmark = pytest.mark.services

DAG_ID = "batch_image_ubuntu2204_base"
WATCH_INTERVAL = 60  # seconds; the config's minimum
SLACK = 60  # seconds for the triggerer to hand the event over and the scheduler to create and queue the run
RUN_TIMEOUT = 600  # seconds; a base-image run takes minutes on a loaded 2-core machine
NEW_VERSION = "22.04.202412050"
WHILE_DOWN_VERSION = "22.04.202501140"


def base_pipelines_dir(directory):
    from batch_images.rules.config import load_pipelines

    cfgs = [p.to_dict() for p in load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")]
    for cfg in cfgs:
        cfg["schedule"] = None
        cfg["base_image"]["watch_interval_seconds"] = WATCH_INTERVAL
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "base.yaml").write_text(json.dumps({"pipelines": cfgs}, indent=2, default=str))
    return cfgs[0]


@pytest.fixture(scope="module")
def base_stack(standin_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("base-asset-stack")
    cfg = base_pipelines_dir(tmp / "pipelines")
    stack = AirflowStack(home=tmp / "home", standin=standin_session.endpoints,
                         extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(tmp / "pipelines")})
    stack.start()
    try:
        yield stack, cfg
    finally:
        stack.stop()


def _when(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def _wait(check, timeout: float, what: str, stack: AirflowStack):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        got = check()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout:.0f} s; triggerer log tail:\n{stack.log('triggerer')[-3000:]}")


def _asset_run(api, stack: AirflowStack, nth: int, timeout: float) -> tuple[dict, dict]:
    """The pipeline's ``nth`` run once it exists, checked to be started by the watcher's Asset event; and that
    event (the run's only triggering one)."""
    def runs():
        found = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", order_by="run_after")["dag_runs"]
        return found if len(found) >= nth else None

    found = _wait(runs, timeout, f"run {nth} of the pipeline", stack)
    assert len(found) == nth, [r["dag_run_id"] for r in found]
    run = found[-1]
    assert run["run_type"] == "asset_triggered", run
    # Airflow 3.3.2's upstreamAssetEvents answers 500 while a run the event created has not started
    # (AssetEventResponse.created_dagruns[].start_date must be a datetime); with max_active_runs=1 a run waits
    # for the one before it
    _wait(lambda: api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")["start_date"], 300,
          f"run {nth} starting", stack)
    events = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")["asset_events"]
    assert len(events) == 1, events
    assert events[0]["extra"].get("from_trigger") is True, events
    return run, events[0]


def _asset_events(api, asset_id: int, at_least: int) -> list[dict] | None:
    try:
        found = api.get("/api/v2/assets/events", asset_id=asset_id, order_by="timestamp")["asset_events"]
    except RuntimeError as err:  # the 500 of a created run that has not started yet (see _asset_run): ask again
        if "HTTP 500" not in str(err):
            raise
        return None
    return found if len(found) >= at_least else None


def _ended(api, run: dict) -> dict | None:
    got = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}")
    return got if got["state"] in ("success", "failed") else None


def _first_task_start(api, run: dict) -> float | None:
    tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances", limit=100)["task_instances"]
    starts = [_when(t.get("start_date")) for t in tis if t.get("start_date")]
    return min(starts) if starts else None


def test_new_base_version_triggers_the_pipeline_through_its_asset(base_stack, services_standin, record_property):
    stack, cfg = base_stack
    api = stack.client()
    base = cfg["base_image"]
    location = cfg["build"].get("location") or cfg["gallery"]["location"]
    uri = naming.base_image_asset_uri(location, base["publisher"], base["offer"], base["sku"])
    wait_for_dag(api, DAG_ID)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    # the watcher runs in the triggerer once the dag-processor registers it for the unpaused DAG; its first poll
    # records the seeded newest version without firing
    seeded = base_watch.newest_version(
        v.name for v in services_standin.compute().virtual_machine_images.list(
            location, base["publisher"], base["offer"], base["sku"]))
    _wait(lambda: f"first sight, newest version {seeded}" in stack.log("triggerer"), 180,
          "the watcher's first poll", stack)
    assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 0

    published = time.time()
    services_standin.control.publish_base_image_version(base["publisher"], base["offer"], base["sku"], NEW_VERSION)
    run, event = _asset_run(api, stack, 1, WATCH_INTERVAL + SLACK)
    assert event["uri"] == uri and base_watch.event_base_version(event["extra"]) == NEW_VERSION, event
    assert event["extra"]["payload"]["previous"] == seeded
    started = _wait(lambda: _first_task_start(api, run), 120, "the run's first task starting", stack)
    created, fired = _when(run.get("queued_at")) or _when(run.get("run_after")), _when(event["timestamp"])
    figures = {"publish_to_event": fired - published, "publish_to_run": created - published,
               "publish_to_first_task": started - published, "event_to_run": created - fired,
               "event_to_first_task": started - fired}
    for name, seconds in figures.items():
        record_property(f"{name}_seconds", round(seconds, 1))
    print("\nbase-image Asset (watch interval %d s): %s" % (
        WATCH_INTERVAL, ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in figures.items())))
    assert figures["publish_to_run"] <= WATCH_INTERVAL + SLACK

    # A triggerer restart: a version published while it is down fires once it is back (the version acted on is in
    # the Asset's state store, not in the old process: a watcher without memory would take it for "first sight"),
    # and the version already acted on does not fire again.
    restarted = {}

    def publish_while_down():
        services_standin.control.publish_base_image_version(base["publisher"], base["offer"], base["sku"],
                                                            WHILE_DOWN_VERSION)
        restarted["published"] = time.time()

    stack.restart("triggerer", while_down=publish_while_down)
    # The event comes at the restarted watcher's first poll; its run waits for the first run to end
    # (max_active_runs=1: the scheduler creates an Asset-triggered run only below the limit; the event is kept)
    [asset] = api.get("/api/v2/assets", uri_pattern="azure-vmimage")["assets"]
    events = _wait(lambda: _asset_events(api, asset["id"], 2), SLACK + 60, "the event after the restart", stack)
    assert [base_watch.event_base_version(e["extra"]) for e in events] == [NEW_VERSION, WHILE_DOWN_VERSION], events
    assert events[1]["extra"]["payload"]["previous"] == NEW_VERSION, events[1]
    print(f"after a triggerer restart: version published while it was down -> event "
          f"{_when(events[1]['timestamp']) - restarted['published']:.1f} s")

    # the first run built from exactly the version its event named: the image version's lineage tag says so, and
    # its build VM is gone
    first = _wait(lambda: _ended(api, run), RUN_TIMEOUT, "the first run's end", stack)
    assert first["state"] == "success", first
    compute = services_standin.compute()
    gallery, definition = cfg["gallery"], cfg["image_definition"]["name"]
    built = [v for v in compute.gallery_image_versions.list_by_gallery_image(
        gallery["resource_group"], gallery["name"], definition) if (v.tags or {}).get(naming.TAG_RUN_ID) == run["dag_run_id"]]
    assert len(built) == 1, [v.name for v in built]
    assert built[0].tags[naming.TAG_BASE_VERSION] == NEW_VERSION, built[0].tags
    build_vms = [vm.name for vm in compute.virtual_machines.list(gallery["resource_group"])
                 if vm.name == naming.build_vm_name(definition, built[0].name)]
    assert build_vms == [], build_vms
    # and it took that version from its Asset event (not from resolving latest, which names the same version here)
    entry = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/preflight/xcomEntries/"
                    "return_value")
    plan = entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])
    assert (plan["build"]["base"]["version"], plan["build"]["base_version_source"]) == (NEW_VERSION, "asset event")
    print(f"first run: {first['state']} in {_when(first['end_date']) - _when(first['start_date']):.1f} s, "
          f"version {built[0].name} tagged base-version {built[0].tags[naming.TAG_BASE_VERSION]}")

    # then the second event's run; one run per event: nothing fired twice
    run2, event2 = _asset_run(api, stack, 2, SLACK + 60)
    assert event2["id"] == events[1]["id"], (event2, events[1])
    time.sleep(5)
    assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 2
    assert len(_asset_events(api, asset["id"], 2)) == 2
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
