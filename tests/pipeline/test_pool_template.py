"""Template pools against the stand-in: preflight plans the template, create_pool sends it whole, the SDK reads the
same pool back (owned fields aside); bad templates are refused with zero writes."""

from __future__ import annotations

import pytest

from airflow.sdk.exceptions import AirflowFailException

from _batch_common import build_image_version, context_for, in_dag, pipeline_dict, set_connections
from batch_images.hooks.batch import BatchPoolHook
from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import PreflightOperator
from batch_images.rules import pool_template as pt
from batch_images.rules.config import parse_pipeline
from batch_images.rules.errors import InvalidInput
from tests.request_log import write_counts
from tests.serving_pools import create_serving_pool

TEMPLATE = {
    "vmSize": "Standard_D2s_v3",
    "targetDedicatedNodes": 2,
    "resizeTimeout": "PT20M",
    "enableInterNodeCommunication": False,
    "taskSlotsPerNode": 2,
    "taskSchedulingPolicy": {"nodeFillType": "pack"},
    "startTask": {
        "commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True, "maxTaskRetryCount": 2,
        "resourceFiles": [{"httpUrl": "https://example.com/setup.sh", "filePath": "setup.sh"}],
        "environmentSettings": [{"name": "STAGE", "value": "test"}],
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
    },
    "userAccounts": [{"name": "runner", "password": "secret:variable/runner_password", "elevationLevel": "nonadmin"}],
    "mountConfiguration": [{"azureFileShareConfiguration": {
        "accountName": "sa", "azureFileUrl": "https://sa.file.core.windows.net/share", "accountKey": "secret:variable/files_key",
        "relativeMountPath": "share"}}],
    "virtualMachineConfiguration": {"dataDisks": [{"lun": 0, "diskSizeGB": 16}]},
    "metadata": [{"name": "team", "value": "platform"}],
}


SECRETS = {"runner_password": "N0t-a-real-one!", "files_key": "a2V5"}


@pytest.fixture
def env(standin, monkeypatch):
    set_connections(monkeypatch, standin.endpoints)
    for name, value in SECRETS.items():  # the Airflow Variables the template's secret references name
        monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)
    return standin


def _cfg(env, **pool) -> dict:
    cfg = pipeline_dict(env.endpoints)
    p = cfg["pools"][0]
    for key in ("vm_size", "target_dedicated_nodes", "target_low_priority_nodes", "resize_timeout_minutes",
                "start_task"):
        p.pop(key, None)
    p.update(pool)
    return cfg


def _subnet(env, vnet: str = "vnet-batch", name: str = "pools") -> str:
    demo = env.endpoints["demo"]
    return (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
            f"Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}")


# Properties beyond TEMPLATE that real pools carry: containers, an ephemeral OS disk, placement, accelerated networking.
MORE = {
    "virtualMachineConfiguration": {
        "dataDisks": [{"lun": 0, "diskSizeGB": 16}],
        "containerConfiguration": {"type": "dockerCompatible",
                                   "containerImageNames": ["mcr.microsoft.com/azurelinux/base/core:3.0"]},
        "osDisk": {"ephemeralOSDiskSettings": {"placement": "cachedisk"}, "caching": "readonly"},
        "nodePlacementConfiguration": {"policy": "regional"},
    },
}


def test_a_template_pool_round_trips_every_property(env):
    version_id = build_image_version(env)
    template = {**TEMPLATE, **MORE, "networkConfiguration": {"subnetId": _subnet(env),
                                                             "enableAcceleratedNetworking": True}}
    plan = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, template=template))).execute(
        context_for())
    spec = plan["pools"][0]
    assert spec["template"] == template and spec["vm_size"] == "Standard_D2s_v3"
    assert spec["target_dedicated_nodes"] == 2
    pool_id = in_dag(lambda: BatchPoolOperator(task_id="create_pool", pool_spec=spec,
                                               image_version_id=version_id)).execute(context_for())
    got = BatchPoolHook().get_pool_json(pool_id)
    assert got["virtualMachineConfiguration"]["imageReference"]["virtualMachineImageId"].lower() == version_id.lower()
    back = pt.template_from_pool(got)
    back.pop("displayName", None)  # the pipeline's, when the template has none
    assert pt.drift(template, got) == []
    for key, value in pt.without_secrets(template).items():
        if key != "metadata":
            assert back.get(key) == value, key
    assert SECRETS["runner_password"] not in str(plan) and SECRETS["files_key"] not in str(plan)  # references only
    assert "secret:variable/runner_password" in str(plan)
    assert got["userAccounts"][0]["password"] == SECRETS["runner_password"]  # Batch got the Variable's value
    assert pt.metadata_dict(got["metadata"])["team"] == "platform"
    sdk = env.batch().get_pool(pool_id)  # the SDK reads the same pool
    assert sdk.task_slots_per_node == 2 and sdk.start_task.environment_settings[0].value == "test"
    assert sdk.mount_configuration[0].azure_file_share_configuration.relative_mount_path == "share"


@pytest.mark.parametrize("template, field", [
    ({**TEMPLATE, "virtualMachineConfiguration": {"nodeAgentSKUId": "batch.node.ubuntu 22.04"}},
     "template.virtualMachineConfiguration.nodeAgentSKUId"),
    ({**TEMPLATE, "notAPoolProperty": True}, "template.notAPoolProperty"),
    ({**TEMPLATE, "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 2;"},
     "template.targetDedicatedNodes"),
])
def test_bad_templates_are_refused_with_zero_writes(env, template, field):
    env.control.clear_requests()
    with pytest.raises(InvalidInput) as info:
        parse_pipeline(_cfg(env, template=template), "pipelines[0]")
    assert info.value.field == f"pipelines[0].pools[0].{field}"
    with pytest.raises(AirflowFailException) as failed:  # preflight refuses the same config before any write
        in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, template=template))).execute(
            context_for())
    assert field in str(failed.value)
    log = env.control.requests()
    assert log["writes"] == 0 and log["write_attempts"] == 0, log


def test_adopt_pool_id_of_a_missing_pool_is_refused_naming_the_field(env):
    build_image_version(env)
    env.control.clear_requests()
    with pytest.raises(AirflowFailException) as failed:
        in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, adopt_pool_id="nosuchpool"))).execute(
            context_for())
    assert "pools[0].adopt_pool_id" in str(failed.value) and "nosuchpool" in str(failed.value)
    assert env.control.requests()["writes"] == 0


@pytest.mark.parametrize("vnet, subnet, reason", [
    ("vnet-batch", "tiny", "free addresses"),             # a /29: 3 usable, the template wants 2 + 4 (blue/green)
    ("vnet-northeurope", "pools", "Batch needs them in one region"),
    ("vnet-batch", "missing", "no such subnet"),
])
def test_a_subnet_that_cannot_take_the_roll_is_refused_before_any_write(env, vnet, subnet, reason):
    build_image_version(env)
    template = {**TEMPLATE, "targetDedicatedNodes": 4, "networkConfiguration": {"subnetId": _subnet(env, vnet, subnet)}}
    env.control.clear_requests()
    with pytest.raises(AirflowFailException) as failed:
        in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, template=template))).execute(
            context_for())
    text = str(failed.value)
    assert "pools[0].template.networkConfiguration.subnetId" in text and reason in text, text
    log = env.control.requests()
    assert log["writes"] == 0 and log["write_attempts"] == 0, log


def test_a_template_with_a_managed_identity_and_arm_tags_is_created_through_arm(env):
    """identity and tags are ARM-only: create_pool makes the pool through Microsoft.Batch/batchAccounts/pools; the data
    plane then reads the same pool with the identity and every template property; the roll's next pool keeps it."""
    version_id = build_image_version(env)
    demo = env.endpoints["demo"]
    identity_id = (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
                   "Microsoft.ManagedIdentity/userAssignedIdentities/id-batch-pools")
    template = {**TEMPLATE, "networkConfiguration": {"subnetId": _subnet(env)},
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}},
                "tags": {"cost-center": "research"}}
    plan = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, template=template))).execute(
        context_for())
    spec = plan["pools"][0]
    mark = env.control.requests()["last_id"]
    pool_id = in_dag(lambda: BatchPoolOperator(task_id="create_pool", pool_spec=spec,
                                               image_version_id=version_id)).execute(context_for())
    creates = [r for r in env.control.requests(since=mark, items=True)["items"] if r["write"]]
    assert [r["family"] for r in creates if r["method"] in ("PUT", "POST")] == ["arm"], creates
    got = BatchPoolHook().get_pool_json(pool_id)
    assert [i["resourceId"].lower() for i in got["identity"]["userAssignedIdentities"]] == [identity_id.lower()]
    assert pt.drift(template, got) == []
    assert pt.template_from_pool(got)["identity"] == {"type": "UserAssigned",
                                                      "userAssignedIdentities": {identity_id: {}}}


def test_an_identity_that_is_not_a_user_assigned_identity_is_refused_at_parse(env):
    template = {**TEMPLATE, "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/not/an/id": {}}}}
    with pytest.raises(InvalidInput) as info:
        parse_pipeline(_cfg(env, template=template), "pipelines[0]")
    assert info.value.field.startswith("pipelines[0].pools[0].template.identity")


def test_a_secret_written_into_the_template_is_refused_without_echoing_it(env):
    template = {**TEMPLATE, "userAccounts": [{"name": "runner", "password": "Plain-text-1!"}]}
    with pytest.raises(InvalidInput) as info:
        parse_pipeline(_cfg(env, template=template), "pipelines[0]")
    assert info.value.field == "pipelines[0].pools[0].template.userAccounts[0].password"
    assert "Plain-text-1!" not in str(info.value) and "secret:variable/" in str(info.value)


def test_a_secret_reference_to_a_missing_variable_is_refused_in_preflight(env, monkeypatch):
    build_image_version(env)
    monkeypatch.delenv("AIRFLOW_VAR_FILES_KEY")
    env.control.clear_requests()
    with pytest.raises(AirflowFailException) as failed:
        in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=_cfg(env, template=TEMPLATE))).execute(
            context_for())
    assert "secret:variable/files_key" in str(failed.value) and "no Airflow Variable" in str(failed.value)
    assert env.control.requests()["writes"] == 0


@pytest.mark.parametrize("formula, error", [
    ("$TargetDedicatedNodes = ;", "AutoScalingFormulaSyntaxError"),
    ("$TargetDedicatedNodes = min(3, $PendingTasks.GetSample(1)); $TargetLowPriorityNodes = 0;", None),
])
def test_preflight_evaluates_the_templates_formula_on_the_autoscaled_serving_pool(env, formula, error):
    """Where Batch allows it (the serving pool has autoscale enabled), preflight evaluates the template's formula
    there (evaluateautoscale: nothing changes) and refuses one Batch rejects, naming Batch's error."""
    build_image_version(env)
    template = {k: v for k, v in TEMPLATE.items() if k != "targetDedicatedNodes"}
    template.update(enableAutoScale=True, autoScaleFormula=formula, autoScaleEvaluationInterval="PT5M")
    cfg = _cfg(env, template=template)
    serving = create_serving_pool(env.batch(), cfg["pools"][0]["pool_id_prefix"], "2026.1124.0",
                                  autoscale="$TargetDedicatedNodes = 1;")
    env.control.clear_requests()
    op = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=cfg))
    if error is None:
        assert op.execute(context_for())["pools"][0]["template"]["autoScaleFormula"] == formula
    else:
        with pytest.raises(AirflowFailException) as failed:
            op.execute(context_for())
        text = str(failed.value)
        assert "pools[0].template.autoScaleFormula" in text and formula in text and error in text, text
        assert f"evaluating it on the serving pool {serving}" in text and "Fix: correct the formula" in text, text
    ops = [r["op"] for r in env.control.requests(items=True)["items"]]
    assert ops.count("Pool_EvaluateAutoScale") == 1, ops
    measured = write_counts(env)
    assert measured["write_attempts"] == 0 and measured["writes"] == 0, measured
    assert env.batch().get_pool(serving).auto_scale_formula == "$TargetDedicatedNodes = 1;"  # unchanged


def test_an_adopted_pool_made_through_arm_keeps_its_arm_tags_in_the_plan(env):
    """A pool made by hand through ARM with tags on the pool resource, then adopt_pool_id: the data plane does not
    return ARM tags, so preflight reads them with ARM's Pool_Get; the plan's template carries them (the next pool is
    then made through ARM with the same tags)."""
    from batch_images.hooks.batch_mgmt import BatchManagementHook
    from batch_images.rules import arm_pool_body
    from tests.serving_pools import UBUNTU

    build_image_version(env)
    cfg = _cfg(env, adopt_pool_id="byhand")
    cfg["pools"][0].pop("template", None)
    account_id = cfg["pools"][0]["batch_account_id"]
    body = {"vmSize": "Standard_D2s_v3", "targetDedicatedNodes": 1, "taskSlotsPerNode": 2,
            "virtualMachineConfiguration": {"imageReference": UBUNTU, "nodeAgentSKUId": "batch.node.ubuntu 22.04"}}
    hook = BatchManagementHook()
    try:
        assert hook.create_pool(account_id, "byhand", arm_pool_body.arm_pool_body(
            body, tags={"cost-center": "research", "owner": "genomics"}))
    finally:
        hook.close_sync()
    plan = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=cfg)).execute(context_for())
    template = plan["pools"][0]["template"]
    assert template["tags"] == {"cost-center": "research", "owner": "genomics"}
    assert template["taskSlotsPerNode"] == 2 and template["vmSize"] == "Standard_D2s_v3"
