"""Helpers of the real-services tests (tests/services): the unscheduled demo pipeline, a run triggered through
the REST API v2 and followed to its end, and the checks of its outcome (Airflow's API and the SDKs)."""
from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from include.services.stack import ApiClient, postgres_bindir, redis_binary
from tests.run_states import not_succeeded

logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request of the checks at INFO

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "batch_image_ubuntu2204"
# The waits take seconds, not milliseconds, at this scale: the version's replication is still pending at its
# first probe, so a run defers (the sensors, which start seconds after their resource, usually find it ready).
SERVICES_TIME_SCALE = 300.0


# The Debian packages these tests need beyond Python and make (.ci/run installs them), and how each is found.
PACKAGES = {
    "postgresql": lambda: postgres_bindir(required=False) is not None,
    "redis-server": lambda: redis_binary() is not None,
    "chromium": lambda: bool(shutil.which("chromium")),
    "chromium-driver": lambda: bool(shutil.which("chromedriver")),
}


def require(*packages: str) -> None:
    """Skip the calling test when one of ``packages`` (keys of PACKAGES) is not installed.

    The reason names every package of PACKAGES that is missing, so all the skipped tests of the folder share one
    reason and pytest's ``-rs`` summary (pytest.ini) folds them into one line with the command that installs them.
    """
    missing = [name for name, installed in PACKAGES.items() if not installed()]
    if set(packages) & set(missing):
        pytest.skip(f"not installed: {', '.join(missing)}; install with `sudo apt-get install -y {' '.join(missing)}` "
                    "(.ci/run does) to run the real-services tests that need them")


def demo_pipelines_dir(directory: Path, notifications: dict | None = None) -> Path:
    """demo.yaml's pipelines, unscheduled, as a BATCH_IMAGES_PIPELINES_DIR (``notifications``: DAG_ID's)."""
    from batch_images.rules.config import load_pipelines

    cfgs = [p.to_dict() for p in load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")]
    for cfg in cfgs:
        cfg["schedule"] = None
        if notifications and cfg["dag_id"] == DAG_ID:
            cfg["notifications"] = notifications
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo.yaml").write_text(json.dumps({"pipelines": cfgs}, indent=2, default=str))
    return directory


def wait_for_dag(api: ApiClient, dag_id: str, timeout: float = 180) -> dict:
    """The DAG as the API shows it, once the dag-processor has parsed it (import errors fail at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = api.get("/api/v2/importErrors")
        assert not errors["import_errors"], errors["import_errors"]
        dags = api.get("/api/v2/dags", dag_id_pattern=dag_id)["dags"]
        if any(d["dag_id"] == dag_id for d in dags):
            return api.get(f"/api/v2/dags/{dag_id}")
        time.sleep(2)
    raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f} s")


LOGICAL_DATE = "2026-11-25T00:00:00Z"
REBUILD = 1
VERSION = f"2026.1125.{REBUILD}"
RUN_TIMEOUT = 600  # seconds; a run takes 1-3 minutes on a loaded 2-core machine
DEFERRED_BY_WORKER = "Pausing task as DEFERRED"
# triggers/base.py: every in-worker wait ends with this line; the probe before deferring is one with 1 poll
WAITED_IN_WORKER = re.compile(r"Waited \d+\.\d+ s in the worker for \S+ \((\d+) polls?\)")
PROBE_ANSWERED = "The first probe found"
FIRED_IN_TRIGGERER = "Trigger fired event"


@dataclass
class TriggeredRun:
    run: dict
    tis: list[dict]
    waiting: list[dict]
    logs: dict = field(default_factory=dict)   # (task_id, map_index) -> log text of its last try (every task)
    seen: dict = field(default_factory=dict)   # (task_id, map_index) -> states seen while polling
    wall_seconds: float = 0.0


def _log_text(api: ApiClient, run_id: str, ti: dict) -> str:
    """The task instance's log for its last try through the API (worker and triggerer parts merged)."""
    doc = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                  f"{ti['try_number']}", map_index=ti["map_index"], full_content="true")
    content = doc.get("content") if isinstance(doc, dict) else doc
    if isinstance(content, list):
        return "\n".join(str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content)
    return str(content)


def _is_waiting_task(task: dict) -> bool:
    """A task that waits on Azure: a sensor, or one named wait_* (the project's naming rule for waits)."""
    cls = (task.get("class_ref") or {}).get("class_name") or task.get("operator_name") or ""
    return cls.endswith("Sensor") or task["task_id"].startswith("wait_")


def trigger_and_wait(api: ApiClient, conf: dict) -> TriggeredRun:
    """Unpause the pipeline, trigger it through the REST API v2, poll until the run ends."""
    wait_for_dag(api, DAG_ID)
    api.patch(f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    start = time.monotonic()
    run = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL_DATE, "conf": conf})
    run_id = run["dag_run_id"]
    seen: dict = {}
    deadline = start + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        for ti in tis:
            seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
        if run["state"] in ("success", "failed"):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"run {run_id} still {run['state']} after {RUN_TIMEOUT} s; task states: "
                    f"{ {k: sorted(map(str, v)) for k, v in seen.items()} }")
    wall = time.monotonic() - start
    tasks = api.get(f"/api/v2/dags/{DAG_ID}/tasks")["tasks"]
    waiting_ids = {t["task_id"] for t in tasks if _is_waiting_task(t)}
    out = TriggeredRun(run, tis, [ti for ti in tis if ti["task_id"] in waiting_ids], seen=seen, wall_seconds=wall)
    for ti in tis:
        out.logs[(ti["task_id"], ti["map_index"])] = _log_text(api, run_id, ti)
    return out


def leftovers(standin) -> list[str]:
    """Temporary snapshots and managed images in the demo's work resource group."""
    compute, rg = standin.compute(), standin.endpoints["demo"]["resource_group"]
    return [s.id for s in compute.snapshots.list_by_resource_group(rg)] + \
           [i.id for i in compute.images.list_by_resource_group(rg)]


def assert_run_and_azure_state(result: TriggeredRun, standin, before: list[str]) -> None:
    run = result.run
    failed = not_succeeded({(t["task_id"], t["map_index"]): t["state"] for t in result.tis})
    assert run["state"] == "success", f"run {run['dag_run_id']}: {run['state']}; tasks not successful: {failed}"
    assert not failed, failed
    assert run["conf"] == {"rebuild": REBUILD}
    assert run["run_type"] == "manual"

    # No wait held its worker slot: every wait of every task (the sensors, and the operators that start an Azure
    # operation and wait for it) looked once in the worker (one poll) and either had its answer then (already
    # done: no deferral, no second execution) or deferred, and the triggerer (not the worker) fired its event.
    # At this scale the sensors usually find their resource ready; the version's replication (minutes,
    # simulated) makes at least one wait of a run defer.
    assert result.waiting, "the pipeline has no waiting task (no sensor, no wait_* task)"
    for ti in result.waiting:
        key = (ti["task_id"], ti["map_index"])
        assert WAITED_IN_WORKER.search(result.logs[key]), f"{key} never waited:\n{result.logs[key][-3000:]}"
    deferred = []
    for key, log in result.logs.items():
        in_worker = [int(m.group(1)) for m in WAITED_IN_WORKER.finditer(log)]
        if not in_worker:
            continue
        assert all(polls == 1 for polls in in_worker), \
            f"{key} waited in its worker slot (polls per in-worker wait: {in_worker}); its log:\n{log[-3000:]}"
        if DEFERRED_BY_WORKER not in log:
            assert PROBE_ANSWERED in log, f"{key}: neither answered by its first probe nor deferred:\n{log[-3000:]}"
            continue
        assert FIRED_IN_TRIGGERER in log, f"{key}: no trigger event from the triggerer in its log:\n{log[-3000:]}"
        deferred.append(key)
    assert deferred, "no wait of the run deferred to the triggerer"

    # Azure, through the SDKs: the version of rebuild 1 published and replicated, the run's pools steady
    compute, batch = standin.compute(), standin.batch()
    from batch_images.rules.config import load_pipelines
    from batch_images.rules.naming import TAG_RUN_ID

    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0]
    version = compute.gallery_image_versions.get(cfg.gallery.resource_group, cfg.gallery.name,
                                                 cfg.image_definition.name, VERSION, expand="ReplicationStatus")
    assert version.provisioning_state == "Succeeded"
    replication = {s.region.replace(" ", "").lower(): getattr(s.state, "value", s.state)
                   for s in version.replication_status.summary}
    assert replication == {r.name: "Completed" for r in cfg.target_regions}
    pools = [p for p in batch.list_pools()
             if any(m.name == TAG_RUN_ID and m.value == run["dag_run_id"] for m in p.metadata or [])]
    assert pools, f"no pool carries metadata {TAG_RUN_ID}={run['dag_run_id']}"
    for pool in pools:
        assert getattr(pool.allocation_state, "value", pool.allocation_state) == "steady", pool.id
        assert pool.current_dedicated_nodes == pool.target_dedicated_nodes > 0, pool.id
        assert VERSION in pool.virtual_machine_configuration.image_reference.virtual_machine_image_id
    assert leftovers(standin) == before
