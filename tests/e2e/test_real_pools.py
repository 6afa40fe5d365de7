"""Real pools through two nights (issue 19, "Tests"): the real DAG (`airflow dags test`, include/pipeline_runner.py)
against the stand-in, checked through the azure-batch SDK and the data plane's JSON (BatchPoolHook.get_pool_json).

One pipeline with three logical pools in the seeded Batch account, run for two nights (2026-11-25, 2026-11-26):

- ``fullpool``: a template with every data-plane property the stand-in accepts (subnet, task slots, scheduling
  policy, a start task with resource files / environment / user identity, user accounts, a mount, metadata, data
  disks, application packages, upgrade policy). After night 2 its serving pool equals the template except the owned
  fields; the night-1 pool is gone.
- ``adoptpool``: ``adopt_pool_id`` of a pool made by hand with the SDK from a JSON body (marketplace Ubuntu: the
  pipeline replaces the image, an owned field). Night 1 adopts it and rolls it to a pool of the run's version; each
  night's new pool equals the adopted pool except the owned fields; the adopted pool is drained and deleted.
- ``autopool``: an autoscaled template (formula, interval) with ``canary_nodes: 1``. Between the nights a user job is
  put on its serving pool; during night 2, once the new pool exists, a long task is added to it so that the roll finds
  it running. The task finishes on the old pool (exit 0, never requeued); the new pool runs the template's formula
  (evaluated without error, its target the formula's, not the canary's); the old pool is gone.

After each night no job or schedule names a missing pool (tests/job_invariants.py).
"""
from __future__ import annotations

import copy

import pytest
from azure.batch import models as bm

from batch_images.hooks.batch import BatchPoolHook
from batch_images.rules import naming
from batch_images.rules import pool_template as pt
from include.pipeline_runner import run_dag_test
from tests.e2e._fresh_pipeline import demo_pipeline, fresh_pipeline, long_tasks_when_pools_exist
from tests.job_invariants import jobs_on_missing_pools

NIGHT1, NIGHT2 = "2026-11-25T00:00:00+00:00", "2026-11-26T00:00:00+00:00"
V1, V2 = "2026.1125.0", "2026.1126.0"
LONG_TASK_REAL_SECONDS = 20  # the autoscaled pool's task runs this long (real time) after it is added
ADOPTED = "handmade-pool"
FORMULA = "$TargetDedicatedNodes = 2; $TargetLowPriorityNodes = 0;"
SHORT_FIELDS = ("vm_size", "target_dedicated_nodes", "target_low_priority_nodes", "resize_timeout_minutes",
                "start_task")

# Every property of Batch's pool create body (2025-06-01) the stand-in's data plane takes, owned fields aside.
FULL_TEMPLATE = {
    "vmSize": "Standard_D2s_v3",
    "targetDedicatedNodes": 2,
    "targetLowPriorityNodes": 0,
    "resizeTimeout": "PT20M",
    "enableInterNodeCommunication": False,
    "taskSlotsPerNode": 3,
    "taskSchedulingPolicy": {"nodeFillType": "pack"},
    "startTask": {
        "commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True, "maxTaskRetryCount": 2,
        "resourceFiles": [{"httpUrl": "https://example.com/setup.sh", "filePath": "setup.sh"}],
        "environmentSettings": [{"name": "STAGE", "value": "e2e"}],
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
    },
    "userAccounts": [{"name": "runner", "password": "secret:variable/e2e_runner_password", "elevationLevel": "nonadmin"}],
    "mountConfiguration": [{"azureFileShareConfiguration": {
        "accountName": "sa", "azureFileUrl": "https://sa.file.core.windows.net/share", "accountKey": "secret:variable/e2e_files_key",
        "relativeMountPath": "share"}}],
    "virtualMachineConfiguration": {"dataDisks": [{"lun": 0, "diskSizeGB": 16}]},
    "applicationPackageReferences": [{"applicationId": "tools", "version": "1.0"}],
    "upgradePolicy": {"mode": "manual"},
    "metadata": [{"name": "team", "value": "platform"}],
}
AUTO_TEMPLATE = {
    "vmSize": "Standard_D2s_v3",
    "enableAutoScale": True, "autoScaleFormula": FORMULA, "autoScaleEvaluationInterval": "PT5M",
    "startTask": {"commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True},
}
# Through ARM (identity and tags are ARM-only): a small pool with a user-assigned identity and the pool's ARM tags.
ID_TEMPLATE = {
    "vmSize": "Standard_D2s_v3", "targetDedicatedNodes": 1, "taskSlotsPerNode": 2,
    "startTask": {"commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True},
    "tags": {"cost-center": "research"},
}
UBUNTU = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
          "version": "latest"}
# The hand-made pool, as a JSON body (what `az batch pool create --json-file` takes).
ADOPTED_BODY = {
    "id": ADOPTED, "vmSize": "Standard_D2s_v3", "targetDedicatedNodes": 1, "taskSlotsPerNode": 2,
    "taskSchedulingPolicy": {"nodeFillType": "pack"},
    "virtualMachineConfiguration": {"imageReference": UBUNTU, "nodeAgentSKUId": "batch.node.ubuntu 22.04"},
    "startTask": {"commandLine": "/bin/bash -c 'echo by hand'", "waitForSuccess": True, "maxTaskRetryCount": 1,
                  "environmentSettings": [{"name": "MADE", "value": "by-hand"}]},
    "metadata": [{"name": "owner", "value": "research"}],
}


def subnet_id(ep: dict) -> str:
    demo = ep["demo"]
    return (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
            "Microsoft.Network/virtualNetworks/vnet-batch/subnets/pools")


def full_template(ep: dict) -> dict:
    return {**copy.deepcopy(FULL_TEMPLATE), "networkConfiguration": {"subnetId": subnet_id(ep)}}


def identity_id(ep: dict) -> str:
    demo = ep["demo"]
    return (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/id-batch-pools")


def id_template(ep: dict) -> dict:
    return {**copy.deepcopy(ID_TEMPLATE),
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id(ep): {}}}}


def pipeline(ep: dict, dag_id: str) -> dict:
    cfg, base = demo_pipeline(ep, dag_id)
    base.update(smoke_test=None)
    for key in SHORT_FIELDS:
        base.pop(key, None)
    cfg["pools"] = [
        {**base, "pool_id_prefix": "fullpool", "template": full_template(ep)},
        {**base, "pool_id_prefix": "adoptpool", "adopt_pool_id": ADOPTED},
        {**base, "pool_id_prefix": "autopool", "template": copy.deepcopy(AUTO_TEMPLATE), "canary_nodes": 1},
        {**base, "pool_id_prefix": "idpool", "template": id_template(ep)},
    ]
    return cfg


def state(value) -> str:
    return str(getattr(value, "value", value)).lower()


def pool_json(pool_id: str) -> dict | None:
    hook = BatchPoolHook()
    try:
        return hook.get_pool_json(pool_id)
    finally:
        hook.close_sync()


SECRETS = {"AIRFLOW_VAR_E2E_RUNNER_PASSWORD": "N0t-a-real-one!", "AIRFLOW_VAR_E2E_FILES_KEY": "a2V5"}


@pytest.fixture(scope="module")
def nights(standin_session, tmp_path_factory, monkeypatch_module):
    s, ep, tmp, dag_id, cfg, env = fresh_pipeline(standin_session, tmp_path_factory, "realpools", pipeline)
    env = {**env, **SECRETS}  # the template's secret references name these Airflow Variables
    for key, value in env.items():  # this process's BatchPoolHook reads the same connections as the DAG's
        monkeypatch_module.setenv(key, value)
    batch = s.batch()
    batch.create_pool(bm.BatchPoolCreateOptions(copy.deepcopy(ADOPTED_BODY)))  # the SDK model from the JSON body
    out = {"batch": batch, "standin": s, "adopted_before": pool_json(ADOPTED)}
    out["night1"] = run_dag_test(dag_id, NIGHT1, tmp / "night1.log", env=env, pipelines_dir=tmp / "pipelines")
    out["missing_after_night1"] = jobs_on_missing_pools(s)
    out["pools_after_night1"] = {p: pool_json(naming.pool_id(p, V1))
                                 for p in ("fullpool", "adoptpool", "autopool", "idpool")}
    out["adopted_after_night1"] = pool_json(ADOPTED)
    old_auto = naming.pool_id("autopool", V1)
    if out["night1"].exit_code == 0:  # a user's job on the autoscaled serving pool
        batch.create_job(bm.BatchJobCreateOptions(id="job-auto", pool_info=bm.BatchPoolInfo(pool_id=old_auto)))
    added: dict = {}
    # Once the new autoscaled pool exists, a task on the old one that outlives the roll's start.
    add_long_task = long_tasks_when_pools_exist(s, batch, [naming.pool_id("autopool", V2)],
                                                ["job-auto"] if out["night1"].exit_code == 0 else [],
                                                LONG_TASK_REAL_SECONDS, added)

    out["night2"] = run_dag_test(dag_id, NIGHT2, tmp / "night2.log", env=env, pipelines_dir=tmp / "pipelines",
                                 kill_when=add_long_task)
    out["added"] = added
    out["missing_after_night2"] = jobs_on_missing_pools(s)
    out["ep"] = ep
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def ran(result) -> None:
    assert result.exit_code == 0, result.log[-6000:]


def listed(batch) -> set[str]:
    return {p.id for p in batch.list_pools() if state(p.state) != "deleting"}


def test_night1_makes_a_serving_pool_per_logical_pool(nights):
    ran(nights["night1"])
    after = nights["pools_after_night1"]
    assert all(after.values()), {k: bool(v) for k, v in after.items()}
    for prefix, got in after.items():
        md = pt.metadata_dict(got["metadata"])
        assert (md[naming.TAG_LOGICAL_POOL], md[naming.TAG_ROLE]) == (prefix, naming.ROLE_SERVING), prefix
    assert nights["missing_after_night1"] == []


def test_a_template_with_every_data_plane_property_survives_two_nights(nights):
    ran(nights["night2"])
    template = full_template(nights["ep"])
    old, new = naming.pool_id("fullpool", V1), naming.pool_id("fullpool", V2)
    assert pt.drift(template, nights["pools_after_night1"]["fullpool"]) == []
    got = pool_json(new)
    assert got is not None and pt.drift(template, got) == []
    back = pt.template_from_pool(got)  # read back as a template: every property as the template has it
    back.pop("displayName", None)
    for key, value in template.items():
        if key != "metadata":
            assert pt.drift({key: value}, {key: back.get(key)}) == [], key
    assert pt.metadata_dict(got["metadata"])["team"] == "platform"
    sdk = nights["batch"].get_pool(new)  # the SDK reads the same pool
    assert sdk.network_configuration.subnet_id.lower() == subnet_id(nights["ep"]).lower()
    assert sdk.task_slots_per_node == 3 and state(sdk.task_scheduling_policy.node_fill_type) == "pack"
    assert sdk.start_task.resource_files[0].file_path == "setup.sh"
    assert sdk.start_task.environment_settings[0].value == "e2e"
    assert state(sdk.start_task.user_identity.auto_user.elevation_level) == "admin"
    assert sdk.user_accounts[0].name == "runner"
    # the secrets reached Batch from the Variables (the stand-in returns them; the plan held only the references)
    assert got["userAccounts"][0]["password"] == SECRETS["AIRFLOW_VAR_E2E_RUNNER_PASSWORD"]
    assert got["mountConfiguration"][0]["azureFileShareConfiguration"]["accountKey"] == SECRETS["AIRFLOW_VAR_E2E_FILES_KEY"]
    assert sdk.mount_configuration[0].azure_file_share_configuration.relative_mount_path == "share"
    assert sdk.virtual_machine_configuration.data_disks[0].disk_size_gb == 16
    assert sdk.application_package_references[0].application_id == "tools"
    assert state(sdk.upgrade_policy.mode) == "manual"
    assert sdk.target_dedicated_nodes == 2 and sdk.resize_timeout.total_seconds() == 20 * 60
    image = sdk.virtual_machine_configuration.image_reference.virtual_machine_image_id
    assert image.lower() == nights["night2"].xcoms["preflight:return_value"]["version_id"].lower()
    assert old not in listed(nights["batch"]) and new in listed(nights["batch"])
    assert nights["missing_after_night2"] == []


def test_an_adopted_pool_is_copied_by_each_night_and_deleted(nights):
    ran(nights["night1"])
    ran(nights["night2"])
    adopted = pt.template_from_pool(nights["adopted_before"])
    assert adopted["startTask"]["environmentSettings"] == [{"name": "MADE", "value": "by-hand"}]
    first, second = nights["pools_after_night1"]["adoptpool"], pool_json(naming.pool_id("adoptpool", V2))
    for got in (first, second):
        assert got is not None and pt.drift(adopted, got) == []
        assert pt.metadata_dict(got["metadata"])["owner"] == "research"
        assert got["taskSlotsPerNode"] == 2 and got["targetDedicatedNodes"] == 1
        ref = got["virtualMachineConfiguration"]["imageReference"]
        assert "virtualMachineImageId" in ref and "publisher" not in ref  # the owned image replaced the marketplace
    # night 1's roll drained and deleted the adopted pool; night 2's deleted night 1's pool
    rolls = [nights["night1"].xcoms[f"roll_pool[{i}]:return_value"] for i in range(3)]
    roll = next(x for x in rolls if x["pool_id"] == naming.pool_id("adoptpool", V1))
    assert roll["deleted_pools"] == [ADOPTED], roll
    assert nights["adopted_after_night1"] is None or state(nights["adopted_after_night1"]["state"]) == "deleting"
    pools = listed(nights["batch"])
    assert ADOPTED not in pools and naming.pool_id("adoptpool", V1) not in pools
    assert naming.pool_id("adoptpool", V2) in pools


def test_an_autoscaled_pool_rolled_while_its_task_runs(nights):
    ran(nights["night2"])
    assert nights["added"], "the long task was never added (the new autoscaled pool was not seen)"
    batch = nights["batch"]
    old, new = naming.pool_id("autopool", V1), naming.pool_id("autopool", V2)
    task = batch.get_task("job-auto", "long")
    assert state(task.state) == "completed", task.state
    assert task.execution_info.exit_code == 0 and task.execution_info.requeue_count == 0
    assert task.node_info.pool_id == old
    pool = batch.get_pool(new)
    assert pool.enable_auto_scale is True and pool.auto_scale_formula == FORMULA
    assert pool.auto_scale_evaluation_interval.total_seconds() == 300
    assert pool.auto_scale_run is not None and pool.auto_scale_run.error is None
    # the formula, not the canary's one node, sets the target after promotion
    assert pool.target_dedicated_nodes == 2, pool.target_dedicated_nodes
    assert pt.drift(AUTO_TEMPLATE, pool_json(new)) == []
    assert old not in listed(batch)
    roll = next(x for x in (nights["night2"].xcoms[f"roll_pool[{i}]:return_value"] for i in range(3))
                if x["pool_id"] == new)
    assert roll["deleted_pools"] == [old], roll
    assert batch.get_job("job-auto").pool_info.pool_id == new  # moved before the old pool was deleted
    assert nights["missing_after_night2"] == []


def test_a_pool_with_a_managed_identity_is_made_through_arm_each_night(nights):
    """identity and tags are ARM-only: each night's pool is created through Microsoft.Batch/batchAccounts/pools and
    carries the identity; the roll (data plane) replaces night 1's pool with night 2's."""
    ran(nights["night2"])
    old, new = naming.pool_id("idpool", V1), naming.pool_id("idpool", V2)
    got = pool_json(new)
    assert got is not None and pt.drift(id_template(nights["ep"]), got) == []
    rids = [i["resourceId"].lower() for i in got["identity"]["userAssignedIdentities"]]
    assert rids == [identity_id(nights["ep"]).lower()]
    assert [i["resourceId"].lower() for i in nights["pools_after_night1"]["idpool"]["identity"][
        "userAssignedIdentities"]] == rids
    assert old not in listed(nights["batch"])
