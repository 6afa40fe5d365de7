"""SweepLeftoversOperator against the stand-in, through the SDKs: a crashed run's snapshot, managed image, canary pool
and smoke-test job are removed by a later run's sweep; what is fresh, in use, still running, the current run's,
serving, or not this project's stays - and the result says why."""

from __future__ import annotations


import pytest
from azure.batch import models as bm
from azure.core.exceptions import ResourceNotFoundError

from batch_images.operators.sweep import SweepLeftoversOperator
from batch_images.pool_facts import enum_text
from batch_images.rules import naming
from tests.pipeline._batch_common import (
    DAG_ID, RUN_ID, FakeTI, build_image_version, context_for, in_dag, plan_for, run_operator,
)

CRASHED = "manual__2026-11-20T03:00:00+00:00"   # Airflow says: failed
LIVE = "manual__2026-11-24T03:00:00+00:00"      # Airflow says: running (a long replication, an approval...)
FRESH = "manual__2026-11-25T01:00:00+00:00"     # Airflow says: failed, but minutes ago


class AirflowRuns(FakeTI):
    """The task instance's view of Airflow's DAG runs (RuntimeTaskInstance.get_dagrun_state): what the metadata
    database would answer. A run it does not know raises, as the Task SDK does."""

    STATES = {CRASHED: "failed", LIVE: "running", FRESH: "failed", RUN_ID: "running"}

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        if dag_id != DAG_ID or run_id not in self.STATES:
            raise RuntimeError(f"DagRun {dag_id}/{run_id} not found")
        return self.STATES[run_id]


def tags(run_id: str, ours: bool = True) -> dict:
    return naming.resource_tags(DAG_ID, run_id, "2026.1120.0") if ours else {"owner": "someone-else"}


def snapshot_and_image(standin, name: str, run_id: str, ours: bool = True) -> tuple[str, str]:
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    disk = compute.virtual_machines.get(rg, demo["source_vm_name"]).properties.storage_profile.os_disk.managed_disk.id
    snap = compute.snapshots.begin_create_or_update(rg, f"snap-{name}", {
        "location": loc, "tags": tags(run_id, ours),
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk}}}).result()
    image = compute.images.begin_create_or_update(rg, f"img-{name}", {
        "location": loc, "tags": tags(run_id, ours), "properties": {"hyperVGeneration": "V2", "storageProfile": {
            "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": snap.id}}}}}).result()
    compute.close()
    return snap.id, image.id


def pool(batch, pool_id: str, version_id: str, run_id: str, role: str, nodes: int = 0, ours: bool = True) -> None:
    md = {**tags(run_id, ours), naming.TAG_ROLE: role, naming.TAG_LOGICAL_POOL: "ubuntu2204"}
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=nodes,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version_id),
            node_agent_sku_id="batch.node.ubuntu 22.04"),
        metadata=[bm.BatchMetadataItem(name=k, value=v) for k, v in md.items()]))


def exists(fn) -> bool:
    try:
        fn()
    except ResourceNotFoundError:
        return False
    return True


def test_sweep_removes_a_crashed_runs_leftovers_and_keeps_everything_else(conns, standin):
    demo = standin.endpoints["demo"]
    rg = demo["resource_group"]
    version_id = build_image_version(standin)   # also leaves an untagged snapshot and image in the resource group
    batch = standin.batch()
    crashed_snap, crashed_img = snapshot_and_image(standin, "crashed", CRASHED)
    current_snap, _ = snapshot_and_image(standin, "current", RUN_ID)
    foreign_snap, foreign_img = snapshot_and_image(standin, "foreign", CRASHED, ours=False)
    pool(batch, "ubuntu2204-crashed", version_id, CRASHED, naming.ROLE_CANARY)
    pool(batch, "ubuntu2204-busy", version_id, CRASHED, naming.ROLE_CANARY, nodes=1)
    pool(batch, "ubuntu2204-live", version_id, LIVE, naming.ROLE_CANARY)
    pool(batch, "ubuntu2204-serving", version_id, CRASHED, naming.ROLE_SERVING)
    pool(batch, "users-own-pool", version_id, CRASHED, naming.ROLE_CANARY, ours=False)
    batch.create_job(bm.BatchJobCreateOptions(
        id="smoke-ubuntu2204-crashed", pool_info=bm.BatchPoolInfo(pool_id="ubuntu2204-crashed"),
        metadata=[bm.BatchMetadataItem(name=k, value=v) for k, v in
                  {**tags(CRASHED), naming.TAG_ROLE: "smoke-test"}.items()]))
    # a user's long task on the busy canary (someone moved work there before the crash)
    batch.create_job(bm.BatchJobCreateOptions(id="users-job", pool_info=bm.BatchPoolInfo(pool_id="ubuntu2204-busy")))
    batch.create_task("users-job", bm.BatchTaskCreateOptions(id="long", command_line="/bin/bash -c 'sleep 90000'"))
    standin.control.advance(7 * 3600)            # all of the above is 7 hours old now
    standin.control.set_scale(60)                # ... and what follows stays minutes old while the test runs
    fresh_snap, fresh_img = snapshot_and_image(standin, "fresh", FRESH)
    pool(batch, "ubuntu2204-fresh", version_id, FRESH, naming.ROLE_CANARY)
    assert enum_text(batch.get_task("users-job", "long").state) == "running"

    op = in_dag(lambda: SweepLeftoversOperator(task_id="sweep", plan=plan_for(standin, "2026.1125.0", 3)))
    context = context_for()
    context["ti"] = AirflowRuns()
    result, _ = run_operator(op, context)

    removed = {r["id"].lower(): r for r in result["removed"]}
    kept = {k["id"].lower(): k["reason"] for k in result["kept"]}
    assert set(removed) == {crashed_snap.lower(), crashed_img.lower(), "ubuntu2204-crashed",
                            "smoke-ubuntu2204-crashed"}, result
    assert all(r["run_id"] == CRASHED for r in removed.values())
    assert "made by the current run" in kept[current_snap.lower()]
    assert "younger than 6:00:00" in kept[fresh_snap.lower()] and "younger" in kept[fresh_img.lower()]
    assert "younger" in kept["ubuntu2204-fresh"]
    assert kept["ubuntu2204-busy"].startswith("in use: 1 node(s) running tasks"), kept
    assert "job users-job" in kept["ubuntu2204-busy"]
    assert f"its run {LIVE} is still running" in kept["ubuntu2204-live"]
    assert "not tagged managed-by" in kept["users-own-pool"]
    assert "ubuntu2204-serving" not in kept and "ubuntu2204-serving" not in removed   # the roll's, not the sweep's
    assert foreign_snap.lower() not in kept and result["not_ours"] >= 4   # + build_image_version's snapshot/image

    # what Azure and Batch say afterwards
    compute = standin.compute(polling_interval=0.05)
    standin.control.set_scale(3000)
    standin.control.advance(600)
    for rid in (crashed_snap, crashed_img):
        getter = compute.snapshots.get if "/snapshots/" in rid else compute.images.get
        assert not exists(lambda g=getter, r=rid: g(rg, r.rsplit("/", 1)[1])), rid
    for rid in (current_snap, fresh_snap, fresh_img, foreign_snap, foreign_img):
        getter = compute.snapshots.get if "/snapshots/" in rid else compute.images.get
        assert exists(lambda g=getter, r=rid: g(rg, r.rsplit("/", 1)[1])), rid
    pools = {p.id for p in batch.list_pools()}
    assert "ubuntu2204-crashed" not in pools
    assert {"ubuntu2204-busy", "ubuntu2204-live", "ubuntu2204-serving", "users-own-pool", "ubuntu2204-fresh"} <= pools
    assert enum_text(batch.get_task("users-job", "long").state) == "running"   # the user's task was not killed
    assert "smoke-ubuntu2204-crashed" not in {j.id for j in batch.list_jobs()}
    compute.close()
    batch.close()


def test_sweep_without_airflow_state_keeps_canary_pools_and_refuses_a_bad_min_age(conns, standin):
    version_id = build_image_version(standin)
    batch = standin.batch()
    pool(batch, "ubuntu2204-crashed", version_id, CRASHED, naming.ROLE_CANARY)
    standin.control.advance(7 * 3600)
    op = in_dag(lambda: SweepLeftoversOperator(task_id="sweep", plan=plan_for(standin, "2026.1125.0", 3), min_age=1))
    result, _ = run_operator(op, context_for())   # a FakeTI: Airflow cannot be asked
    assert result["removed"] == []
    assert result["kept"] == [{"kind": "canary pool", "id": "ubuntu2204-crashed",
                               "reason": f"could not learn whether its run {CRASHED} is over"}]
    assert "ubuntu2204-crashed" in {p.id for p in batch.list_pools()}
    bad = in_dag(lambda: SweepLeftoversOperator(task_id="sweep2", plan=plan_for(standin, "2026.1125.0", 3),
                                                min_age="six hours"))
    with pytest.raises(Exception, match="min_age.*six hours.*timedelta or a number of hours"):
        run_operator(bad, context_for())
    batch.close()


def test_sweep_removes_a_crashed_runs_build_vm_with_its_nic_and_disks(conns, standin):
    """A base_image run that crashed before its teardown left its build VM: a later run's sweep deletes it (and,
    through deleteOption Delete, its NIC and disks); a younger build VM stays."""
    import base64

    from azure.core.rest import HttpRequest

    from batch_images.operators.build_vm import build_vm_body
    from batch_images.rules.plan import Plan
    from tests.pipeline._batch_common import base_pipeline, preflight_plan as preflight

    rg = standin.endpoints["demo"]["resource_group"]
    plan = preflight(base_pipeline(standin.endpoints))
    compute = standin.compute(polling_interval=0.05)

    def make_vm(name: str, run_id: str) -> str:
        p = Plan.from_dict(plan)
        vm_id = p.build.vm_id.rsplit("/", 1)[0] + f"/{name}"
        build = p.build.model_copy(update={"vm_id": vm_id, "vm_name": name, "os_disk_name": f"{name}-osdisk",
                                           "nic_name": f"{name}-nic", "data_disks": []})
        body = build_vm_body(p.model_copy(update={"build": build, "run_id": run_id}), b"#!/bin/bash\npoweroff\n")
        compute.virtual_machines.begin_create_or_update(rg, name, body).result()
        return vm_id

    crashed = make_vm("bvm-crashed", CRASHED)
    standin.control.advance(7 * 3600)
    standin.control.set_scale(60)
    fresh = make_vm("bvm-fresh", FRESH)
    op = in_dag(lambda: SweepLeftoversOperator(task_id="sweep", plan=plan))
    context = context_for()
    context["ti"] = AirflowRuns()
    result, _ = run_operator(op, context)
    removed = {r["id"].lower(): r for r in result["removed"] if r["kind"] == "build VM"}
    kept = {k["id"].lower(): k["reason"] for k in result["kept"]}
    assert set(removed) == {crashed.lower()}, result
    assert "younger" in kept[fresh.lower()]
    standin.control.set_scale(3000)
    standin.control.advance(600)
    assert not exists(lambda: compute.virtual_machines.get(rg, "bvm-crashed"))
    assert not exists(lambda: compute.disks.get(rg, "bvm-crashed-osdisk"))
    nic = crashed.rsplit("/providers/", 1)[0] + "/providers/Microsoft.Network/networkInterfaces/bvm-crashed-nic"
    assert compute.send_request(HttpRequest("GET", nic, params={"api-version": "2024-05-01"})).status_code == 404
    assert exists(lambda: compute.virtual_machines.get(rg, "bvm-fresh"))
    compute.close()
