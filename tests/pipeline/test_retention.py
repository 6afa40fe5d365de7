"""RetireOldVersionsOperator against the stand-in, through the SDKs: what it deletes, what it keeps, and that a
pool still on a kept version can grow afterwards (issue 10's reproduction)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from azure.batch import models as bm

from batch_images.operators.cleanup import RetireOldVersionsOperator
from batch_images.rules import naming
from tests.pipeline._batch_common import DAG_ID, DEFINITION, GALLERY, context_for, plan_for, run_operator

POLL = 0.05
OURS = {naming.TAG_MANAGED_BY: naming.MANAGED_BY, naming.TAG_DAG_ID: DAG_ID}


def publish_versions(standin, names: list[str], ours: bool = True, safety: dict | None = None) -> dict[str, str]:
    """One managed image, then a gallery version per name made from it (tagged as this project's); name -> id."""
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    vm = compute.virtual_machines.get(rg, demo["source_vm_name"])
    snap = compute.snapshots.begin_create_or_update(rg, "snap-retention-test", {
        "location": loc, "properties": {"creationData": {
            "createOption": "Copy", "sourceResourceId": vm.properties.storage_profile.os_disk.managed_disk.id}},
    }).result()
    image = compute.images.begin_create_or_update(rg, "img-retention-test", {
        "location": loc, "properties": {"hyperVGeneration": "V2", "storageProfile": {
            "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": snap.id}}}},
    }).result()
    compute.galleries.begin_create_or_update(rg, GALLERY, {"location": loc, "properties": {}}).result()
    compute.gallery_images.begin_create_or_update(rg, GALLERY, DEFINITION, {
        "location": loc, "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                                        "identifier": {"publisher": "contoso", "offer": "batch", "sku": "2204"}},
    }).result()
    out = {}
    for name in names:
        props = {"storageProfile": {"source": {"id": image.id}},
                 "publishingProfile": {"targetRegions": [{"name": loc, "regionalReplicaCount": 1}]}}
        if safety:
            props["safetyProfile"] = safety
        out[name] = compute.gallery_image_versions.begin_create_or_update(
            rg, GALLERY, DEFINITION, name, {"location": loc, "tags": OURS if ours else {}, "properties": props},
        ).result().id
    compute.close()
    return out


def users_pool(standin, pool_id: str, version_id: str, nodes: int = 0) -> None:
    """A pool this project did not make (no metadata), pinned to a version, as a user would create it."""
    batch = standin.batch()
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=nodes,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version_id),
            node_agent_sku_id="batch.node.ubuntu 22.04")))
    batch.close()


def remaining(standin) -> list[str]:
    rg = standin.endpoints["demo"]["resource_group"]
    compute = standin.compute()
    names = sorted(v.name for v in compute.gallery_image_versions.list_by_gallery_image(rg, GALLERY, DEFINITION))
    compute.close()
    return names


def short(values) -> list[str]:
    return sorted(v.rsplit("/", 1)[-1] for v in values)


def retire(plan: dict, **kw):
    op = RetireOldVersionsOperator(task_id="retire", plan=plan, poll_interval=POLL, **kw)
    return run_operator(op, context_for())[0]


def test_five_versions_one_on_a_foreign_pool_exactly_the_unreferenced_old_ones_are_deleted(conns):
    ids_ = publish_versions(conns, ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"])
    users_pool(conns, "users-own-pool", ids_["1.0.1"])
    result = retire(plan_for(conns, "1.0.4", keep_versions=2))
    assert short(result["deleted"]) == ["1.0.0", "1.0.2"]
    assert remaining(conns) == ["1.0.1", "1.0.3", "1.0.4"]
    assert result["kept"][ids_["1.0.1"]] == "used by pool users-own-pool (azure_batch_default)"
    # 1.0.3 stopped serving when 1.0.4 was published: its end of life is set (30 days after), the used one not
    rg = conns.endpoints["demo"]["resource_group"]
    compute = conns.compute()
    published = compute.gallery_image_versions.get(rg, GALLERY, DEFINITION, "1.0.4").properties \
        .publishing_profile.published_date.date()
    eol = {n: compute.gallery_image_versions.get(rg, GALLERY, DEFINITION, n).properties.publishing_profile
           .end_of_life_date for n in ("1.0.1", "1.0.3")}
    compute.close()
    assert result["end_of_life"] == {ids_["1.0.3"]: (published + timedelta(days=30)).isoformat()}
    assert eol["1.0.1"] is None and eol["1.0.3"].date() == published + timedelta(days=30)
    # a second run changes nothing
    again = retire(plan_for(conns, "1.0.4", keep_versions=2))
    assert again["deleted"] == [] and again["end_of_life"] == {}


def test_issue_reproduction_the_oldest_version_of_a_live_pool_survives_and_the_pool_still_grows(conns):
    """Versions 1.0.0-1.0.3, keep_versions 3, a pool on 1.0.0: the old operator deleted 1.0.0 and growing the pool
    failed with AllocationFailed."""
    ids_ = publish_versions(conns, ["1.0.0", "1.0.1", "1.0.2", "1.0.3"])
    users_pool(conns, "legacy", ids_["1.0.0"])
    result = retire(plan_for(conns, "1.0.3", keep_versions=3))
    assert result["deleted"] == [] and remaining(conns) == ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]
    batch = conns.batch()
    batch.begin_resize_pool("legacy", bm.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0.05
                            ).result()
    pool = batch.get_pool("legacy")
    batch.close()
    assert pool.current_dedicated_nodes == 1 and not pool.resize_errors


def test_a_job_schedule_auto_pool_and_foreign_versions_are_kept(conns):
    ids_ = publish_versions(conns, ["1.0.0", "1.0.1", "1.0.2"])
    foreign = publish_versions(conns, ["0.9.0"], ours=False)
    batch = conns.batch()
    batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
        id="nightly-report", schedule=bm.BatchJobScheduleConfiguration(recurrence_interval=timedelta(days=1)),
        job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(
            auto_pool_specification=bm.BatchAutoPoolSpecification(
                pool_lifetime_option="job", pool=bm.BatchPoolSpecification(
                    vm_size="Standard_D2s_v3", target_dedicated_nodes=1,
                    virtual_machine_configuration=bm.VirtualMachineConfiguration(
                        image_reference=bm.BatchVmImageReference(virtual_machine_image_id=ids_["1.0.0"]),
                        node_agent_sku_id="batch.node.ubuntu 22.04")))))))
    batch.close()
    result = retire(plan_for(conns, "1.0.2", keep_versions=1, end_of_life_days=None))
    assert short(result["deleted"]) == ["1.0.1"]
    assert "job schedule nightly-report auto pool" in result["kept"][ids_["1.0.0"]]
    assert "not made by this project" in result["kept"][foreign["0.9.0"]]
    assert remaining(conns) == ["0.9.0", "1.0.0", "1.0.2"]
    assert result["end_of_life"] == {}  # end_of_life_days None: no dates set


def test_a_failed_batch_read_deletes_nothing(conns):
    """When unsure what the pools use, delete nothing: the job schedules cannot be listed -> the task fails."""
    publish_versions(conns, ["1.0.0", "1.0.1", "1.0.2"])
    conns.control.add_fault("http", count=-1, match={"op": "JobSchedule_List"}, status=403,
                            code="AuthorizationFailure", message="This request is not authorized")
    conns.control.clear_requests()
    with pytest.raises(Exception, match="AuthorizationFailure|not authorized"):
        retire(plan_for(conns, "1.0.2", keep_versions=1))
    conns.control.clear_faults()
    assert conns.control.requests()["writes"] == 0
    assert remaining(conns) == ["1.0.0", "1.0.1", "1.0.2"]
