"""End to end: the real DAG, built by dags/batch_image_pipelines.py from a pipeline YAML, run with
`airflow dags test` in a child process (include/pipeline_runner.py) against the stand-in; the outcome is
checked through the unmodified SDKs, not through what the pipeline says about itself.

The pipeline is include/pipelines/demo.yaml's, with a unique dag_id, poll_interval_seconds 1, three target
regions and one pool of 1300 dedicated nodes, so that the sizing rules give numbers that are not their
minimums: per300 -> ceil(1300 / 300) = 5 replicas in the Batch account's region (1 elsewhere), and a
resizeTimeout of 15 min per 1000 VMs rounded up = 20 min.

The three tests share one stand-in state, in file order: the first run (module fixture), a clear-and-rerun
of the same logical date, then a rebuild (`rebuild` param 1) of that date.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from batch_images.rules import naming, sizing
from batch_images.rules.config import load_pipelines, parse_pipeline
from include.pipeline_fixtures import short_field_pool
from include.pipeline_runner import ROOT, RunResult, connection_env, read_run, run_dag_test, write_pipeline
from tests.run_states import not_succeeded

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
VERSION = "2026.1125.0"
NODES = 1300
REGIONS = ("westeurope", "northeurope", "swedencentral")  # westeurope: the gallery's and the Batch account's
DISKS = 2  # the seeded VM: OS disk + one data disk

# Writes that create a durable resource: a clear-and-rerun must make none of them.
DURABLE_CREATES = ("arm:Galleries_CreateOrUpdate", "arm:GalleryImages_CreateOrUpdate",
                   "arm:GalleryImageVersions_CreateOrUpdate", "batch:Pool_Add")
DURABLE_CHANGES = ("arm:GalleryImageVersions_Delete", "arm:GalleryImages_Delete", "arm:Galleries_Delete",
                   "batch:Pool_Delete", "batch:Pool_Resize", "batch:Pool_Patch", "batch:Pool_UpdateProperties")
ALL_TASKS = {"preflight", "dry_run_gate", "build_gate", "ready_existing_versions", "sweep_leftovers", "pool_specs",
             "snapshot_disks", "wait_for_snapshots",
             "create_managed_image", "publish_image_version", "plan_roll[0]", "create_pool[0]",
             "wait_for_pool_steady[0]", "smoke_test[0]", "promote_image_version", "roll_pool[0]",
             "retire_old_versions", "delete_temporary_resources", "discard_canaries", "run_summary"}


def e2e_pipeline(ep: dict, dag_id: str) -> dict:
    """demo.yaml's pipeline pointed at this stand-in's fixture, resized for the end-to-end run."""
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id, poll_interval_seconds=1, source_vm_id=demo["source_vm_id"],
               target_regions=[{"name": r} for r in REGIONS])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    # short fields: 1300 fixed nodes (the demo's template pool is autoscaled, in a /24 subnet too small for them)
    cfg["pools"] = [short_field_pool(cfg["pools"][0], batch_account_id=demo["batch_account_id"],
                                     batch_account_location=demo["location"], target_dedicated_nodes=NODES)]
    return cfg


def created(items: list[dict], op: str) -> list[str]:
    """Paths that `op` ("family:Operation") created: ARM answers 201 (202 for snapshots) to a create and 200 to a PUT
    that updates (a version's promotion or endOfLifeDate is a PUT back of its publishing profile); Pool_Add 201."""
    return [r["path"] for r in items if f"{r['family']}:{r['op']}" == op and r["status"] in (201, 202)]


def raise_core_quota(standin, cores: int = 10_000) -> None:
    """What an approved quota request does (the seeded account allows 50 DSv3 cores; 1300 x D2s_v3 need 2600)."""
    standin.control.call("PUT", "/batch/quotas", {
        "account": standin.endpoints["demo"]["batch_account"], "dedicatedCoreQuota": cores,
        "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": cores}]})


def dags_test_with_conf(dag_id: str, logical_date: str, log_path: Path, env: dict, pipelines_dir: Path,
                        conf: dict, timeout: float = 600) -> tuple[int, RunResult]:
    """`airflow dags test DAG DATE --conf JSON`: what a trigger through the Params form does.

    run_dag_test has no conf argument; this is the same child process (same env, same PYTHONPATH) plus --conf.
    """
    child_env = {**os.environ, **env, "BATCH_IMAGES_PIPELINES_DIR": str(pipelines_dir)}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), child_env.get("PYTHONPATH")]))
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date,
                                 "--conf", json.dumps(conf)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    result = RunResult(rc, time.monotonic() - start, log_path)
    result.run, result.tasks, result.xcoms = read_run(dag_id, logical_date)
    return rc, result


def assert_all_tasks_succeeded(result: RunResult) -> None:
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.exit_code == 0 and result.state == "success", (result.run, states, result.log[-3000:])
    assert set(states) == ALL_TASKS, states
    assert not_succeeded(states) == {}, states


def _text(value) -> str:
    return str(getattr(value, "value", value))


def _canonical(region: str) -> str:
    return region.replace(" ", "").lower()


def pool_snapshot(batch, pool_id: str) -> dict:
    pool = batch.get_pool(pool_id)
    return {"creation_time": pool.creation_time, "etag": pool.etag, "pool": pool}


class Scenario:
    """The stand-in, the pipeline, where it lives, and how to run it."""

    def __init__(self, standin, tmp: Path):
        self.standin = standin
        self.ep = standin.endpoints
        self.dag_id = f"e2e_batch_image_{uuid.uuid4().hex[:8]}"
        self.cfg = e2e_pipeline(self.ep, self.dag_id)
        self.config = parse_pipeline(self.cfg)
        self.dir = tmp / "pipelines"
        write_pipeline(self.dir, self.cfg)
        self.tmp = tmp
        self.env = connection_env(self.ep)
        demo = self.ep["demo"]
        self.rg, self.gallery, self.definition = demo["resource_group"], self.cfg["gallery"]["name"], \
            self.cfg["image_definition"]["name"]
        self.pool_id = naming.pool_id(self.cfg["pools"][0]["pool_id_prefix"], VERSION)

    def run(self, name: str) -> RunResult:
        return run_dag_test(self.dag_id, LOGICAL_DATE, self.tmp / f"{name}.log", env=self.env, pipelines_dir=self.dir)


@pytest.fixture(scope="module")
def first_run(standin_session, tmp_path_factory):
    """A fresh stand-in (seeded fixture, quota raised), then the first run of the pipeline."""
    if standin_session.proc is None or standin_session.proc.poll() is not None:
        standin_session.start()
    standin_session.reset()
    raise_core_quota(standin_session)
    standin_session.control.clear_requests()
    s = Scenario(standin_session, tmp_path_factory.mktemp("e2e"))
    s.result = s.run("first-run")
    s.requests = standin_session.control.requests(items=True)
    batch = standin_session.batch()
    s.pool_before = pool_snapshot(batch, s.pool_id) if s.result.exit_code == 0 else None
    return s


def test_pipeline_publishes_replicated_version_and_steady_pool_pinned_to_it(first_run):
    s = first_run
    result = s.result
    assert_all_tasks_succeeded(result)
    ep, cfg, demo = s.ep, s.cfg, s.ep["demo"]

    # The replica counts the sizing rules give for this config, and what that is in numbers.
    expected = {region: sizing_.count for region, sizing_ in s.config.replica_plan().items()}
    assert expected["westeurope"] == sizing.replicas_for(NODES, "per300").count == 5
    assert expected == {"westeurope": 5, "northeurope": 1, "swedencentral": 1}
    expected_resize = sizing.resize_timeout_for(NODES)
    assert expected_resize == timedelta(minutes=20)

    plan = result.xcoms["preflight:return_value"]
    assert plan["version"] == VERSION
    version_id = result.xcoms["publish_image_version:return_value"]
    assert version_id.lower() == s.config.image_version_id(VERSION).lower()
    assert result.xcoms["create_pool[0]:return_value"] == s.pool_id
    assert "Replica sizing rule per300" in result.log and "westeurope: 5 replica(s) for 1300 VM(s)" in result.log

    # --- the image version, through azure-mgmt-compute --------------------------------------------------------
    compute = s.standin.compute()
    version = compute.gallery_image_versions.get(s.rg, s.gallery, s.definition, VERSION, expand="ReplicationStatus")
    assert version.id.lower() == version_id.lower()
    assert _text(version.provisioning_state) == "Succeeded"
    status = version.replication_status
    assert _text(status.aggregated_state) == "Completed"
    summary = {_canonical(r.region): (_text(r.state), r.progress) for r in status.summary}
    assert summary == {r: ("Completed", 100) for r in REGIONS}, summary
    targets = {_canonical(t.name): t for t in version.publishing_profile.target_regions}
    assert {r: t.regional_replica_count for r, t in targets.items()} == expected
    assert {_text(t.storage_account_type) for t in targets.values()} == {"Standard_LRS"}

    # --- the pool, through azure-batch ----------------------------------------------------------------------------
    batch = s.standin.batch()
    pool = batch.get_pool(s.pool_id)
    vmc = pool.virtual_machine_configuration
    # Pinned to that exact version (a definition id would float to the latest version).
    assert vmc.image_reference.virtual_machine_image_id.lower() == version_id.lower()
    assert vmc.image_reference.virtual_machine_image_id.endswith(f"/versions/{VERSION}")
    # The node agent Batch pairs with the VM's base image (what preflight derived from /supportedimages).
    base = compute.virtual_machines.get(s.rg, demo["source_vm_name"]).storage_profile.image_reference
    paired = {i.node_agent_sku_id for i in batch.list_supported_images()
              if (i.image_reference.publisher.lower(), i.image_reference.offer.lower(), i.image_reference.sku.lower())
              == (base.publisher.lower(), base.offer.lower(), base.sku.lower())}
    assert paired == {"batch.node.ubuntu 22.04"}
    assert vmc.node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert pool.resize_timeout == expected_resize
    assert pool.vm_size.lower() == cfg["pools"][0]["vm_size"].lower()
    metadata = {m.name: m.value for m in pool.metadata or []}
    assert metadata[naming.TAG_IMAGE_VERSION] == VERSION
    assert metadata[naming.TAG_DAG_ID] == s.dag_id and metadata[naming.TAG_MANAGED_BY] == naming.MANAGED_BY
    # The logical pool had no serving pool: this one became it (roll_pool), and its version is promoted.
    assert metadata[naming.TAG_ROLE] == naming.ROLE_SERVING, metadata
    assert version.publishing_profile.exclude_from_latest is False
    assert _text(pool.allocation_state) == "steady" and not pool.resize_errors
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (NODES, NODES)

    counts = {c.pool_id: c for c in batch.list_pool_node_counts()}
    dedicated, low = counts[s.pool_id].dedicated, counts[s.pool_id].low_priority
    assert dedicated.idle == dedicated.total == NODES, dedicated.as_dict()
    assert (dedicated.start_task_failed, dedicated.unusable, dedicated.creating, dedicated.starting) == (0, 0, 0, 0)
    assert low.total == 0

    # --- nothing temporary left behind --------------------------------------------------------------------------
    work_rg = plan["work_resource_group"]
    assert [x.id for x in compute.snapshots.list_by_resource_group(work_rg)] == []
    assert [x.id for x in compute.images.list_by_resource_group(work_rg)] == []

    # --- the request log: each resource created once, each temporary one deleted --------------------------------
    c = s.requests["counts"]
    assert s.requests["faults"] == 0
    assert c.get("arm:Snapshots_CreateOrUpdate") == DISKS and c.get("arm:Snapshots_Delete") == DISKS, c
    assert c.get("arm:Images_CreateOrUpdate") == 1 and c.get("arm:Images_Delete") == 1, c
    for op in DURABLE_CREATES:
        assert len(created(s.requests["items"], op)) == 1, (op, c)
    # The version's other PUT is its promotion (publishingProfile.excludeFromLatest false), an update (200).
    version_puts = [r["status"] for r in s.requests["items"] if r["op"] == "GalleryImageVersions_CreateOrUpdate"]
    assert sorted(version_puts) == [200, 201], version_puts
    # The one change to a durable resource: roll_pool marks the run's own pool serving (a metadata PATCH); a first
    # pool replaces nothing, so no pool is resized or deleted and no version deleted.
    patched = {r["path"].rstrip("/").rsplit("/", 1)[-1] for r in s.requests["items"] if r["op"] == "Pool_Patch"}
    assert patched == {s.pool_id}, patched
    for op in DURABLE_CHANGES:
        assert op == "batch:Pool_Patch" or op not in c, (op, c)


def test_clear_and_rerun_of_the_same_logical_date_reuses_version_and_pool(first_run):
    s = first_run
    assert_all_tasks_succeeded(s.result)  # the first run must have made the version and the pool
    s.standin.control.clear_requests()
    rerun = s.run("rerun")
    requests = s.standin.control.requests()
    assert_all_tasks_succeeded(rerun)
    assert rerun.run["run_id"] != s.result.run["run_id"]  # `dags test` replaced the run: a clear-and-rerun

    # Same version and pool, by name and by identity.
    assert rerun.xcoms["preflight:return_value"]["version"] == VERSION
    assert rerun.xcoms["publish_image_version:return_value"] == s.result.xcoms["publish_image_version:return_value"]
    # The logical pool is already served by this run's version: plan_roll says so and create_pool makes no pool.
    roll = rerun.xcoms["plan_roll[0]:return_value"]
    assert (roll["roll_action"], roll["pool_id"]) == ("current", s.pool_id), roll
    assert rerun.xcoms.get("create_pool[0]:return_value") is None
    after = pool_snapshot(s.standin.batch(), s.pool_id)
    assert after["creation_time"] == s.pool_before["creation_time"]  # not deleted and made again
    assert _text(after["pool"].allocation_state) == "steady" and after["pool"].current_dedicated_nodes == NODES

    # No write that creates (or replaces, resizes, deletes) a durable resource.
    c = requests["counts"]
    for op in DURABLE_CREATES + DURABLE_CHANGES:
        assert op not in c, (op, c)
    assert requests["faults"] == 0
    # Temporaries: whatever the rerun made it also removed (see the report: it re-snapshots today).
    assert c.get("arm:Snapshots_CreateOrUpdate", 0) == c.get("arm:Snapshots_Delete", 0), c
    assert c.get("arm:Images_CreateOrUpdate", 0) == c.get("arm:Images_Delete", 0), c
    compute = s.standin.compute()
    work_rg = rerun.xcoms["preflight:return_value"]["work_resource_group"]
    assert [x.id for x in compute.snapshots.list_by_resource_group(work_rg)] == []
    assert [x.id for x in compute.images.list_by_resource_group(work_rg)] == []
    versions = [v.name for v in compute.gallery_image_versions.list_by_gallery_image(s.rg, s.gallery, s.definition)]
    assert versions == [VERSION]
    assert [p.id for p in s.standin.batch().list_pools()] == [s.pool_id]


def test_params_form_rebuild_builds_version_n(first_run, monkeypatch):
    """The trigger form's `rebuild` is the N of YYYY.MMDD.N: rebuild 1 of the same date is a new version and pool."""
    s = first_run
    from airflow.models import DagBag

    monkeypatch.setenv("BATCH_IMAGES_PIPELINES_DIR", str(s.dir))
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[s.dag_id]
    schema = dag.params.get_param("rebuild").schema
    assert dag.params["rebuild"] == 0
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 0, naming.INT32_MAX)

    s.standin.control.clear_requests()
    rc, result = dags_test_with_conf(s.dag_id, LOGICAL_DATE, s.tmp / "rebuild-1.log", s.env, s.dir, {"rebuild": 1})
    assert_all_tasks_succeeded(result)
    rebuilt = "2026.1125.1"
    assert rebuilt == naming.version_name(naming.parse_version_name(VERSION).logical_date, 1)
    plan = result.xcoms["preflight:return_value"]
    assert plan["version"] == rebuilt
    pool_id = naming.pool_id(s.cfg["pools"][0]["pool_id_prefix"], rebuilt)
    assert result.xcoms["create_pool[0]:return_value"] == pool_id == f"{s.cfg['pools'][0]['pool_id_prefix']}-2026-1125-1"

    compute, batch = s.standin.compute(), s.standin.batch()
    version = compute.gallery_image_versions.get(s.rg, s.gallery, s.definition, rebuilt, expand="ReplicationStatus")
    assert _text(version.replication_status.aggregated_state) == "Completed"
    assert batch.get_pool(pool_id).virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() \
        == version.id.lower()
    # The earlier version is kept (retention keeps the newest keep_versions); the roll moved the logical pool to
    # the new pool and retired the earlier one (it ran no task: drained at once, then deleted).
    names = sorted(v.name for v in compute.gallery_image_versions.list_by_gallery_image(s.rg, s.gallery, s.definition))
    assert names == [VERSION, rebuilt]
    roll = result.xcoms["roll_pool[0]:return_value"]
    assert roll["pool_id"] == pool_id and s.pool_id in roll["deleted_pools"], roll
    meta = {m.name: m.value for m in batch.get_pool(pool_id).metadata or []}
    assert meta[naming.TAG_ROLE] == naming.ROLE_SERVING, meta
    assert [p.id for p in batch.list_pools() if _text(p.state) != "deleting"] == [pool_id]
    items = s.standin.control.requests(items=True)["items"]
    assert [p.rsplit("/", 1)[-1] for p in created(items, "arm:GalleryImageVersions_CreateOrUpdate")] == [rebuilt]
    assert len(created(items, "batch:Pool_Add")) == 1, created(items, "batch:Pool_Add")
