"""rules/pool_template.py and the config's template / template_file / adopt_pool_id (pure; no Azure)."""

from __future__ import annotations

import copy

import pytest

from batch_images.rules import config as cfg
from batch_images.rules import pool_template as pt
from batch_images.rules.errors import InvalidInput
from tests.rules.test_rules_config import _demo_raw

VERSION_ID = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/"
              "2026.1201.0")
SUBNET = ("/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/resourceGroups/rg-batch-images/providers/"
          "Microsoft.Network/virtualNetworks/vnet-batch/subnets/pools")
TEMPLATE = {
    "vmSize": "Standard_D2s_v3",
    "networkConfiguration": {"subnetId": SUBNET},
    "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 2;", "autoScaleEvaluationInterval": "PT5M",
    "taskSlotsPerNode": 2, "taskSchedulingPolicy": {"nodeFillType": "pack"},
    "startTask": {"commandLine": "echo hi", "environmentSettings": [{"name": "A", "value": "1"}]},
    "metadata": [{"name": "team", "value": "platform"}],
}


def _with_pool(**pool) -> dict:
    raw = _demo_raw()
    p = raw["pools"][0]
    for key in ("vm_size", "target_dedicated_nodes", "target_low_priority_nodes", "resize_timeout_minutes",
                "start_task", "template", "canary_nodes"):
        p.pop(key, None)
    p.update(pool)
    return raw


@pytest.mark.parametrize("owned", ["virtualMachineConfiguration.imageReference",
                                   "virtualMachineConfiguration.nodeAgentSKUId",
                                   "virtualMachineConfiguration.securityProfile", "id"])
def test_an_owned_field_is_refused_at_parse_naming_its_path(owned):
    template = copy.deepcopy(TEMPLATE)
    value = {"imageReference": {"virtualMachineImageId": VERSION_ID}, "nodeAgentSKUId": "batch.node.ubuntu 22.04",
             "securityProfile": {"securityType": "trustedLaunch"}, "id": "mine"}[owned.rsplit(".", 1)[-1]]
    if owned == "id":
        template["id"] = value
    else:
        template["virtualMachineConfiguration"] = {owned.rsplit(".", 1)[-1]: value}
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(_with_pool(template=template), "pipelines[0]")
    assert info.value.field == f"pipelines[0].pools[0].template.{owned}"
    assert "owns" in info.value.reason


@pytest.mark.parametrize("change, field, words", [
    ({"bogus": 1}, "template.bogus", "not a property"),
    ({"taskSlotsPerNode": "two"}, "template.taskSlotsPerNode", "not of type 'integer'"),
    ({"startTask": {"commandLine": "x", "userIdentity": {"autoUser": {"scope": "everywhere"}}}},
     "template.startTask.userIdentity.autoUser.scope", "not one of"),
    ({"targetDedicatedNodes": 3}, "template.targetDedicatedNodes", "fixed node counts"),
    ({"autoScaleEvaluationInterval": "PT1M"}, "template.autoScaleEvaluationInterval", "between 5 minutes"),
    ({"taskSlotsPerNode": 300}, "template.taskSlotsPerNode", "1..256"),
    ({"metadata": [{"name": "role", "value": "x"}]}, "template.metadata[0].name", "pipeline writes"),
])
def test_bad_templates_name_path_value_reason_and_fix(change, field, words):
    template = {**copy.deepcopy(TEMPLATE), **change}
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(_with_pool(template=template), "p")
    assert info.value.field == f"p.pools[0].{field}"
    assert words in info.value.reason and info.value.fix


def test_a_template_refuses_the_short_fields_and_sources_are_exclusive():
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(_with_pool(template=TEMPLATE, vm_size="Standard_D2s_v3"), "p")
    assert info.value.field == "p.pools[0].vm_size" and "template" in info.value.reason
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(_with_pool(template=TEMPLATE, adopt_pool_id="mine"), "p")
    assert info.value.field == "p.pools[0].adopt_pool_id"


def test_a_template_pool_parses_round_trips_and_sizes_its_canary():
    pipeline = cfg.parse_pipeline(_with_pool(template=TEMPLATE, canary_nodes=3), "p")
    pool = pipeline.pools[0]
    assert pool.pool_template == TEMPLATE and pool.vm_count == 3
    assert cfg.parse_pipeline(pipeline.to_dict(), "p").pools[0].pool_template == TEMPLATE
    adopted = cfg.parse_pipeline(_with_pool(adopt_pool_id="made-by-hand"), "p").pools[0]
    assert adopted.pool_template is None and adopted.adopt_pool_id == "made-by-hand"


def test_template_file_is_read_at_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(cfg, "PROJECT_ROOT", tmp_path)
    (tmp_path / "pool.json").write_text('{"vmSize": "Standard_D2s_v3", "taskSlotsPerNode": 4, '
                                        '"targetDedicatedNodes": 3}')
    pool = cfg.parse_pipeline(_with_pool(template_file="pool.json"), "p").pools[0]
    assert pool.pool_template == {"vmSize": "Standard_D2s_v3", "taskSlotsPerNode": 4, "targetDedicatedNodes": 3}
    assert pool.vm_count == 3
    (tmp_path / "bad.json").write_text('{"vmSize": "Standard_D2s_v3", "id": "x"}')
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(_with_pool(template_file="bad.json"), "p")
    assert info.value.field == "p.pools[0].template_file.id"


def test_short_fields_make_the_same_template_as_before():
    pool = cfg.parse_pipeline(_with_pool(vm_size="Standard_D2s_v3", target_dedicated_nodes=4, start_task={
        "command_line": "echo ready"}), "p").pools[0]
    t = pool.pool_template
    assert t["vmSize"] == pool.vm_size and t["targetDedicatedNodes"] == pool.target_dedicated_nodes
    assert t["enableAutoScale"] is False and t["resizeTimeout"] == "PT15M"
    assert t["startTask"]["userIdentity"]["autoUser"]["elevationLevel"] == "admin"
    assert pt.shape_problems(t, "t") == []


def test_pool_body_adds_owned_fields_keeps_user_metadata_and_makes_a_fixed_canary():
    body = pt.pool_body(TEMPLATE, pool_id="p-1", image_version_id=VERSION_ID, node_agent_sku_id="batch.node.x",
                        security_profile={"securityType": "trustedLaunch"}, metadata={"role": "canary"},
                        canary_nodes=2)
    assert body["id"] == "p-1"
    assert body["virtualMachineConfiguration"] == {"imageReference": {"virtualMachineImageId": VERSION_ID},
                                                   "nodeAgentSKUId": "batch.node.x",
                                                   "securityProfile": {"securityType": "trustedLaunch"}}
    assert pt.metadata_dict(body["metadata"]) == {"team": "platform", "role": "canary"}
    assert body["enableAutoScale"] is False and body["targetDedicatedNodes"] == 2
    assert "autoScaleFormula" not in body and "autoScaleEvaluationInterval" not in body
    assert body["networkConfiguration"] == TEMPLATE["networkConfiguration"] and body["taskSlotsPerNode"] == 2
    assert TEMPLATE["enableAutoScale"] is True  # the template itself is not changed


def test_template_from_pool_drops_read_only_owned_and_pipeline_metadata_only():
    get = {**TEMPLATE, "id": "p-1", "url": "u", "eTag": "e", "state": "active", "currentDedicatedNodes": 2,
           "targetDedicatedNodes": 2, "allocationState": "steady", "resizeErrors": [], "autoScaleRun": {},
           "odata.metadata": "m", "identity": {"type": "None"}, "someFutureProperty": {"kept": True},
           "virtualMachineConfiguration": {"imageReference": {"virtualMachineImageId": VERSION_ID},
                                           "nodeAgentSKUId": "a", "dataDisks": [{"lun": 0, "diskSizeGB": 8}]},
           "metadata": [{"name": "team", "value": "platform"}, {"name": "role", "value": "serving"}]}
    template = pt.template_from_pool(get)
    assert template == {**TEMPLATE, "someFutureProperty": {"kept": True},
                        "virtualMachineConfiguration": {"dataDisks": [{"lun": 0, "diskSizeGB": 8}]}}


def test_drift_lists_what_differs_beyond_owned_defaults_and_pipeline_metadata():
    pool = pt.pool_body(TEMPLATE, pool_id="p-1", image_version_id=VERSION_ID, node_agent_sku_id="a",
                        security_profile=None, metadata={"role": "serving"}, display_name="p-1 (image x)")
    pool.update({"state": "active", "enableInterNodeCommunication": False, "resizeTimeout": "PT15M"})
    assert pt.drift(TEMPLATE, pool) == ["enableAutoScale: template true, pool false"] or pt.drift(TEMPLATE, {
        **pool, "enableAutoScale": True, "autoScaleFormula": TEMPLATE["autoScaleFormula"],
        "autoScaleEvaluationInterval": "PT5M"}) == []
    changed = {**pool, "enableAutoScale": True, "autoScaleFormula": TEMPLATE["autoScaleFormula"],
               "autoScaleEvaluationInterval": "PT5M", "taskSlotsPerNode": 4}
    assert pt.drift(TEMPLATE, changed) == ["taskSlotsPerNode: template 2, pool 4"]


@pytest.mark.parametrize("template, fields", [
    ({"vmSize": "x", "enableAutoScale": True}, ["autoScaleFormula"]),
    ({"vmSize": "x", "enableAutoScale": True, "autoScaleFormula": "f", "targetLowPriorityNodes": 1},
     ["targetLowPriorityNodes"]),
    ({"vmSize": "x", "autoScaleFormula": "f"}, ["autoScaleFormula"]),
    ({"vmSize": "x", "enableAutoScale": True, "autoScaleFormula": "f", "autoScaleEvaluationInterval": "PT169H"},
     ["autoScaleEvaluationInterval"]),
    ({"vmSize": "x", "taskSlotsPerNode": 0}, ["taskSlotsPerNode"]),
    ({"vmSize": "x", "enableAutoScale": True, "autoScaleFormula": "f", "autoScaleEvaluationInterval": "PT168H"}, []),
])
def test_template_problems(template, fields):
    assert [e.field.split(".", 1)[1] for e in pt.template_problems(template, "t")] == fields


def test_owned_fields_and_read_only_properties_are_declared_once():
    assert pt.OWNED_FIELDS[0] == "id" and "virtualMachineConfiguration.imageReference" in pt.OWNED_FIELDS
    assert not set(pt.READ_ONLY_POOL_PROPERTIES) & set(pt.schema()["properties"])
    assert "source" not in pt.schema() and "2025-06-01" in pt.schema()["$comment"]


def test_drift_ignores_the_start_tasks_defaults_batch_fills_in():
    template = {"vmSize": "x", "startTask": {"commandLine": "c"}}
    pool = {"vmSize": "x", "startTask": {"commandLine": "c", "maxTaskRetryCount": 0, "waitForSuccess": True}}
    assert pt.drift(template, pool) == []
    assert pt.drift(template, {**pool, "startTask": {"commandLine": "c", "maxTaskRetryCount": 2}}) == [
        "startTask.maxTaskRetryCount: template (unset), pool 2"]


def test_drift_ignores_the_resize_timeout_of_an_autoscaled_template():
    template = {"vmSize": "Standard_D2s_v3", "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 2;",
                "autoScaleEvaluationInterval": "PT5M", "resizeTimeout": "PT15M"}
    pool = {"id": "p", "vmSize": "Standard_D2s_v3", "enableAutoScale": True,
            "autoScaleFormula": "$TargetDedicatedNodes = 2;", "autoScaleEvaluationInterval": "PT5M",
            "targetDedicatedNodes": 2, "targetLowPriorityNodes": 0}
    assert pt.drift(template, pool) == []
    assert pt.drift({**template, "autoScaleFormula": "$TargetDedicatedNodes = 3;"}, pool) != []
