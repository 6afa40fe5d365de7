import copy
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from batch_images.rules import config as cfg
from batch_images.rules.errors import InvalidInput
from batch_images.rules.sizing import ReplicaRule
from include.pipeline_fixtures import short_field_pool

DEMO = Path(__file__).resolve().parents[2] / "include" / "pipelines" / "demo.yaml"
SUB = "2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/rg-batch-images"
VM_ID = f"{RG_ID}/providers/Microsoft.Compute/virtualMachines/vm-prepared-ubuntu2204"
ACCOUNT_ID = f"{RG_ID}/providers/Microsoft.Batch/batchAccounts/batchimages"
SUBNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnet-batch/subnets/pools"


def _demo_raw() -> dict:
    return yaml.safe_load(DEMO.read_text())["pipelines"][0]


def _short_raw() -> dict:
    """The demo pipeline with its pool written with the short fields instead of a template."""
    raw = _demo_raw()
    raw["pools"] = [short_field_pool(pool) for pool in raw["pools"]]
    return raw


# --- the demo file -------------------------------------------------------------------------------------------------


def test_demo_yaml_loads_with_the_fixture_values():
    [p] = cfg.load_pipelines(DEMO)
    assert p.dag_id == "batch_image_ubuntu2204"
    assert p.schedule == "@daily"
    assert p.start_date == date(2026, 11, 1)
    assert p.source_vm_id == VM_ID
    assert p.source_vm.name == "vm-prepared-ubuntu2204"
    assert p.gallery == cfg.GalleryConfig(subscription_id=SUB, resource_group="rg-batch-images",
                                          name="galbatchimages", location="westeurope")
    assert p.image_definition == cfg.ImageDefinitionConfig(name="ubuntu2204-batch", os_type="Linux",
                                                           hyper_v_generation="V2", publisher="contoso",
                                                           offer="batch-nodes", sku="ubuntu2204-gen2")
    assert p.all_regions() == ("westeurope", "northeurope")
    assert p.replica_rule is ReplicaRule.PER300
    assert p.work_rg == "rg-batch-images"
    [pool] = p.pools
    assert pool.batch_account_id == ACCOUNT_ID
    assert pool.account_name == "batchimages"
    assert pool.batch_account_location == "westeurope"
    # the pool is a template (Batch's REST shape): in the seeded subnet, autoscaled, 2 task slots per node packed;
    # its canary runs 4 nodes until it serves and the formula takes over (at least 4 dedicated nodes)
    t = pool.pool_template
    assert (pool.pool_id_prefix, pool.vm_size, pool.canary_nodes, pool.vm_count) == ("ubuntu2204", None, 4, 4)
    assert (t["vmSize"], t["networkConfiguration"], t["taskSlotsPerNode"], t["taskSchedulingPolicy"]) == (
        "Standard_D2s_v3", {"subnetId": SUBNET_ID}, 2, {"nodeFillType": "pack"})
    assert (t["enableAutoScale"], t["autoScaleEvaluationInterval"]) == (True, "PT5M")
    assert t["autoScaleFormula"].startswith("$TargetDedicatedNodes = max(4, ")
    assert "targetDedicatedNodes" not in t  # Batch refuses fixed counts beside a formula
    assert t["startTask"]["commandLine"].startswith("/bin/bash -c 'echo")
    assert t["startTask"]["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    assert pool.roll == cfg.RollConfig(strategy="blue_green", active_jobs="drain", drain_timeout_minutes=120,
                                       on_drain_timeout="keep")
    assert pool.smoke_test == cfg.SmokeTestConfig(command_line="/bin/bash -c 'test -f /etc/os-release'", tasks=None,
                                                  timeout_minutes=10)
    assert pool.require_approval is False


def test_demo_derived_ids_and_names():
    [p] = cfg.load_pipelines(DEMO)
    v = "2026.1125.0"
    assert p.pool_ids(v) == ["ubuntu2204-2026-1125-0"]
    assert p.image_version_id(v) == (
        f"{RG_ID}/providers/Microsoft.Compute/galleries/galbatchimages/images/ubuntu2204-batch/versions/{v}")
    assert p.snapshot_id("os", v) == (
        f"{RG_ID}/providers/Microsoft.Compute/snapshots/snap-vm-prepared-ubuntu2204-os-2026-1125-0")
    assert p.image_id(v) == f"{RG_ID}/providers/Microsoft.Compute/images/img-ubuntu2204-batch-2026-1125-0"
    assert p.publishing_target_regions() == [
        {"name": "westeurope", "regional_replica_count": 1, "storage_account_type": "Standard_LRS"},
        {"name": "northeurope", "regional_replica_count": 1, "storage_account_type": "Standard_LRS"},
    ]
    assert p.end_of_life_date(date(2026, 11, 25)) == date(2027, 2, 23)
    # issue 7 item 2: a backfill (logical date 2026-08-01 built on 2026-11-29) counts from the build day, so
    # Azure never sees an end-of-life date in the past; a run of a future or current date keeps its own.
    assert p.end_of_life_date(date(2026, 8, 1), today=date(2026, 11, 29)) == date(2027, 2, 27)
    assert p.end_of_life_date(date(2026, 11, 25), today=date(2026, 11, 24)) == date(2027, 2, 23)
    with pytest.raises(InvalidInput):
        p.image_version_id("2026.1125")


def test_to_dict_is_json_and_round_trips():
    [p] = cfg.load_pipelines(DEMO)
    data = json.loads(json.dumps(p.to_dict()))
    assert data["start_date"] == "2026-11-01"
    assert data["replica_rule"] == "per300"
    assert data["pools"][0]["template"]["startTask"]["userIdentity"]["autoUser"]["elevationLevel"] == "admin"
    assert cfg.parse_pipeline(data) == p
    assert cfg.PipelineConfig.from_dict(data) == p


def test_configs_are_frozen():
    [p] = cfg.load_pipelines(DEMO)
    with pytest.raises(AttributeError):
        p.dag_id = "other"  # type: ignore[misc]


def test_short_field_pool_is_a_template_with_few_properties():
    p = cfg.parse_pipeline(_short_raw())
    pool = p.pools[0]
    assert (pool.pool_id_prefix, pool.vm_size, pool.target_dedicated_nodes, pool.vm_count) == (
        "ubuntu2204", "Standard_D2s_v3", 4, 4)
    assert pool.start_task.command_line.startswith("/bin/bash -c 'echo")
    assert pool.resize_timeout == timedelta(minutes=15)
    assert pool.pool_template["targetDedicatedNodes"] == 4 and pool.pool_template["enableAutoScale"] is False
    assert json.loads(json.dumps(p.to_dict()))["pools"][0]["start_task"]["elevated"] is True


def test_defaults_of_a_minimal_pipeline():
    raw = _short_raw()
    for key in ("description", "schedule", "tags", "owner", "arm_conn_id", "work_resource_group", "replica_rule",
                "storage_account_type", "node_agent_sku_id", "keep_versions", "end_of_life_days"):
        raw.pop(key)
    pool = raw["pools"][0]
    for key in ("batch_conn_id", "batch_account_location", "target_low_priority_nodes", "resize_timeout_minutes",
                "start_task", "max_unhealthy_node_share", "roll", "smoke_test", "require_approval"):
        pool.pop(key)
    p = cfg.parse_pipeline(raw)
    assert (p.schedule, p.tags, p.owner, p.arm_conn_id, p.replica_rule, p.storage_account_type, p.keep_versions,
            p.end_of_life_days, p.node_agent_sku_id, p.work_resource_group) == (
        "@daily", (), "airflow", "azure_default", ReplicaRule.PER300, "Standard_LRS", 3, 90, None, None)
    assert (p.pools[0].batch_conn_id, p.pools[0].start_task, p.pools[0].max_unhealthy_node_share) == (
        "azure_batch_default", None, 0.0)
    # the roll's defaults (the shared design): blue/green, active jobs drain for 2 h then stay; no smoke test
    assert p.pools[0].roll.to_dict() == {"strategy": "blue_green", "active_jobs": "drain",
                                         "drain_timeout_minutes": 120, "on_drain_timeout": "keep"}
    assert (p.pools[0].smoke_test, p.pools[0].require_approval) == (None, False)
    raw["pools"][0]["roll"] = {"strategy": "In_Place"}
    raw["pools"][0]["smoke_test"] = {"command_line": "exit 0"}
    p = cfg.parse_pipeline(raw)
    assert (p.pools[0].roll.strategy, p.pools[0].roll.active_jobs) == ("in_place", "drain")
    assert (p.pools[0].smoke_test.tasks, p.pools[0].smoke_test.timeout_minutes) == (None, 10)


def test_nulls_that_mean_something():
    raw = _demo_raw()
    raw["schedule"] = None
    raw["end_of_life_days"] = None
    raw["work_resource_group"] = "rg-work"
    raw["node_agent_sku_id"] = "batch.node.ubuntu 22.04"
    p = cfg.parse_pipeline(raw)
    assert p.schedule is None and p.end_of_life_days is None and p.end_of_life_date(date(2026, 1, 1)) is None
    assert p.work_rg == "rg-work"
    assert "/resourceGroups/rg-work/" in p.image_id("2026.1125.0")
    assert p.node_agent_sku_id == "batch.node.ubuntu 22.04"


def test_choices_are_canonicalised():
    raw = _demo_raw()
    raw["image_definition"]["os_type"] = "linux"
    raw["image_definition"]["hyper_v_generation"] = "v2"
    raw["storage_account_type"] = "standard_zrs"
    raw["replica_rule"] = "PER600"
    p = cfg.parse_pipeline(raw)
    assert (p.image_definition.os_type, p.image_definition.hyper_v_generation, p.storage_account_type,
            p.replica_rule) == ("Linux", "V2", "Standard_ZRS", ReplicaRule.PER600)


@pytest.mark.parametrize("schedule", ["@daily", "@weekly", "@once", "30 2 * * *", "0 0 * * MON-FRI"])
def test_schedules_accepted(schedule):
    raw = _demo_raw()
    raw["schedule"] = schedule
    assert cfg.parse_pipeline(raw).schedule == schedule


def test_yaml_date_object_is_accepted():
    raw = _demo_raw()
    raw["start_date"] = date(2026, 11, 1)
    assert cfg.parse_pipeline(raw).start_date == date(2026, 11, 1)


# --- replicas in the config ----------------------------------------------------------------------------------------


def test_replica_plan_sums_pools_and_respects_overrides():
    raw = _short_raw()
    raw["pools"][0]["target_dedicated_nodes"] = 3000
    raw["pools"].append({**copy.deepcopy(raw["pools"][0]), "pool_id_prefix": "second", "target_dedicated_nodes": 301})
    raw["target_regions"][1]["regional_replica_count"] = 4
    p = cfg.parse_pipeline(raw)
    plan = p.replica_plan()
    assert plan["westeurope"].count == 12 and plan["westeurope"].vm_count == 3301
    assert plan["northeurope"].count == 4 and "set in config" in plan["northeurope"].explanation
    assert p.pools[0].resize_timeout == timedelta(minutes=45)


def test_replica_plan_with_account_regions_looked_up_at_run_time():
    raw = _short_raw()
    raw["pools"][0].pop("batch_account_location")
    raw["pools"][0]["target_dedicated_nodes"] = 900
    p = cfg.parse_pipeline(raw)
    with pytest.raises(InvalidInput) as info:
        p.replica_plan()
    assert info.value.field == "pools[0].batch_account_location"
    plan = p.replica_plan({ACCOUNT_ID.upper(): "northeurope"})
    assert (plan["northeurope"].count, plan["westeurope"].count) == (3, 1)
    with pytest.raises(InvalidInput) as info:
        p.replica_plan({ACCOUNT_ID: "eastus"})
    assert "eastus" in info.value.fix


# --- errors --------------------------------------------------------------------------------------------------------


def _set(path: str, value):
    """A mutation: set raw[path] (dots and [i]) to value; value _DEL deletes the key."""

    def apply(raw):
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        target = raw
        for key in keys[:-1]:
            target = target[key]
        if value is _DEL:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return apply


_DEL = object()
P = "pipelines[0]"

CONFIG_ERRORS = [
    # (mutation, expected field, fragment of reason or fix)
    (_set("colour", "blue"), f"{P}.colour", "unknown key"),
    (_set("pools[0].colour", "blue"), f"{P}.pools[0].colour", "unknown key"),
    (_set("gallery.region", "x"), f"{P}.gallery.region", "unknown key"),
    (_set("dag_id", _DEL), f"{P}.dag_id", "required"),
    (_set("pools[0].vm_size", _DEL), f"{P}.pools[0].vm_size", "required"),
    (_set("dag_id", "bad id!"), f"{P}.dag_id", "DAG id"),
    (_set("dag_id", ""), f"{P}.dag_id", "non-empty"),
    (_set("description", 5), f"{P}.description", "string"),
    (_set("schedule", "@hourly"), f"{P}.schedule", "collide"),
    (_set("schedule", "*/5 * * * *"), f"{P}.schedule", "more than once a day"),
    (_set("schedule", "0 */6 * * *"), f"{P}.schedule", "more than once a day"),
    (_set("schedule", "daily"), f"{P}.schedule", "cron"),
    (_set("schedule", "@fortnightly"), f"{P}.schedule", "unknown preset"),
    (_set("start_date", "2026-13-01"), f"{P}.start_date", "calendar date"),
    (_set("start_date", "01/11/2026"), f"{P}.start_date", "YYYY-MM-DD"),
    (_set("start_date", "20261101"), f"{P}.start_date", "YYYY-MM-DD"),
    (_set("start_date", datetime(2026, 11, 1, 3)), f"{P}.start_date", "without a time"),
    (_set("tags", "azure"), f"{P}.tags", "list"),
    (_set("tags", ["a", "a"]), f"{P}.tags[1]", "duplicate"),
    (_set("owner", None), f"{P}.owner", "owner"),
    (_set("arm_conn_id", "azure default"), f"{P}.arm_conn_id", "connection id"),
    (_set("source_vm_id", f"{RG_ID}/providers/Microsoft.Compute/snapshots/s"), f"{P}.source_vm_id",
     "found Microsoft.Compute/snapshots"),
    (_set("source_vm_id", VM_ID + "/../x"), f"{P}.source_vm_id", ".."),
    (_set("work_resource_group", "rg."), f"{P}.work_resource_group", "end with"),
    (_set("gallery", "galbatchimages"), f"{P}.gallery", "mapping"),
    (_set("gallery.subscription_id", "prod"), f"{P}.gallery.subscription_id", "GUID"),
    (_set("gallery.name", "gal-batch"), f"{P}.gallery.name", "'-'"),
    (_set("gallery.location", "West Europe"), f"{P}.gallery.location", "lowercase"),
    (_set("gallery.location", "eastus"), f"{P}.gallery.location", "target_regions"),
    (_set("image_definition.os_type", "Solaris"), f"{P}.image_definition.os_type", "Linux, Windows"),
    (_set("image_definition.hyper_v_generation", "V3"), f"{P}.image_definition.hyper_v_generation", "V1, V2"),
    (_set("image_definition.name", "-def"), f"{P}.image_definition.name", "start"),
    (_set("image_definition.sku", "sku with space"), f"{P}.image_definition.sku", "image sku"),
    (_set("target_regions", []), f"{P}.target_regions", "non-empty list"),
    (_set("target_regions[1].name", "westeurope"), f"{P}.target_regions[1].name", "duplicate"),
    (_set("target_regions[0].regional_replica_count", 0), f"{P}.target_regions[0].regional_replica_count", ">= 1"),
    (_set("target_regions[0].regional_replica_count", 101), f"{P}.target_regions[0].regional_replica_count",
     "<= 100"),
    (_set("target_regions[0].storage_account_type", "Premium_ZRS"), f"{P}.target_regions[0].storage_account_type",
     "Standard_LRS"),
    (_set("replica_rule", "per1000"), f"{P}.replica_rule", "per300"),
    (_set("storage_account_type", None), f"{P}.storage_account_type", "allowed values"),
    (_set("node_agent_sku_id", "ubuntu 22.04"), f"{P}.node_agent_sku_id", "node agent"),
    (_set("keep_versions", 0), f"{P}.keep_versions", ">= 1"),
    (_set("keep_versions", 2.5), f"{P}.keep_versions", "integer"),
    (_set("end_of_life_days", 0), f"{P}.end_of_life_days", ">= 1"),
    (_set("pools", []), f"{P}.pools", "non-empty list"),
    (_set("pools[0]", "pool"), f"{P}.pools[0]", "mapping"),
    (_set("pools[0].batch_account_id", VM_ID), f"{P}.pools[0].batch_account_id", "Microsoft.Batch/batchAccounts"),
    (_set("pools[0].batch_account_id", ACCOUNT_ID.replace("batchimages", "Batch_Images")),
     f"{P}.pools[0].batch_account_id", "batch account"),
    (_set("pools[0].batch_conn_id", ""), f"{P}.pools[0].batch_conn_id", "connection id"),
    (_set("pools[0].batch_account_location", "eastus"), f"{P}.pools[0].batch_account_location", "target_regions"),
    (_set("pools[0].pool_id_prefix", "bad.prefix"), f"{P}.pools[0].pool_id_prefix", "'.' at position 3"),
    (_set("pools[0].pool_id_prefix", "p" * 52), f"{P}.pools[0].pool_id_prefix", "at most 51"),
    (_set("pools[0].vm_size", "Standard D2s v3"), f"{P}.pools[0].vm_size", "VM size"),
    (_set("pools[0].target_dedicated_nodes", -1), f"{P}.pools[0].target_dedicated_nodes", ">= 0"),
    (_set("pools[0].target_dedicated_nodes", "4"), f"{P}.pools[0].target_dedicated_nodes", "integer"),
    (_set("pools[0].target_dedicated_nodes", True), f"{P}.pools[0].target_dedicated_nodes", "integer"),
    (_set("pools[0].target_low_priority_nodes", 1.0), f"{P}.pools[0].target_low_priority_nodes", "integer"),
    (_set("pools[0].target_dedicated_nodes", 30001), f"{P}.pools[0]", "split"),
    (_set("pools[0].resize_timeout_minutes", 4), f"{P}.pools[0].resize_timeout_minutes", "at least 5"),
    (_set("pools[0].start_task", {"wait_for_success": True}), f"{P}.pools[0].start_task.command_line", "required"),
    (_set("pools[0].start_task.elevated", "yes"), f"{P}.pools[0].start_task.elevated", "true or false"),
    (_set("pools[0].start_task.max_task_retry_count", -2), f"{P}.pools[0].start_task.max_task_retry_count", "-1"),
    (_set("pools[0].max_unhealthy_node_share", 1.5), f"{P}.pools[0].max_unhealthy_node_share", "between 0 and 1"),
    (_set("pools[0].max_unhealthy_node_share", "10%"), f"{P}.pools[0].max_unhealthy_node_share", "between 0 and 1"),
    (_set("pools[0].roll", "blue_green"), f"{P}.pools[0].roll", "mapping"),
    (_set("pools[0].roll.strategy", "rolling"), f"{P}.pools[0].roll.strategy", "blue_green, in_place"),
    (_set("pools[0].roll.active_jobs", "kill"), f"{P}.pools[0].roll.active_jobs", "drain, move"),
    (_set("pools[0].roll.drain_timeout_minutes", 0), f"{P}.pools[0].roll.drain_timeout_minutes", ">= 1"),
    (_set("pools[0].roll.drain_timeout_minutes", 0.5), f"{P}.pools[0].roll.drain_timeout_minutes", "integer"),
    (_set("pools[0].roll.on_drain_timeout", "delete"), f"{P}.pools[0].roll.on_drain_timeout", "keep, requeue"),
    (_set("pools[0].roll.canary", True), f"{P}.pools[0].roll.canary", "unknown key"),
    (_set("pools[0].smoke_test", {"tasks": 2}), f"{P}.pools[0].smoke_test.command_line", "required"),
    (_set("pools[0].smoke_test.command_line", ""), f"{P}.pools[0].smoke_test.command_line", "non-empty"),
    (_set("pools[0].smoke_test.tasks", 0), f"{P}.pools[0].smoke_test.tasks", "one task per node"),
    (_set("pools[0].smoke_test.timeout_minutes", 0), f"{P}.pools[0].smoke_test.timeout_minutes", ">= 1"),
    (_set("pools[0].target_dedicated_nodes", 0), f"{P}.pools[0].smoke_test", "no nodes"),
    (_set("pools[0].require_approval", "no"), f"{P}.pools[0].require_approval", "true or false"),
]


# The demo's template pool: its own rules (the template's, rules/pool_template.py, are tested in test_rules_pool_template).
TEMPLATE_ERRORS = [
    (_set("pools[0].vm_size", "Standard_D2s_v3"), f"{P}.pools[0].vm_size", "ignored"),
    (_set("pools[0].template.targetDedicatedNodes", 4), f"{P}.pools[0].template.targetDedicatedNodes",
     "enableAutoScale"),
    (_set("pools[0].template.autoScaleEvaluationInterval", "PT1M"),
     f"{P}.pools[0].template.autoScaleEvaluationInterval", "5 minutes"),
    (_set("pools[0].template.id", "mine"), f"{P}.pools[0].template.id", "owns"),
    (_set("pools[0].template.networkConfiguration.subnet", SUBNET_ID), f"{P}.pools[0].template.networkConfiguration.subnet", "not a property"),
    (_set("pools[0].canary_nodes", 0), f"{P}.pools[0].canary_nodes", ">= 1"),
]


@pytest.mark.parametrize(("raw_of", "mutate", "field", "fragment"),
                         [(_short_raw, *case) for case in CONFIG_ERRORS] + [(_demo_raw, *case) for case in TEMPLATE_ERRORS])
def test_config_errors_name_field_value_and_fix(raw_of, mutate, field, fragment):
    raw = raw_of()  # the short-field pool for the short fields' rules; the demo's template pool for its own
    mutate(raw)
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    err = info.value
    assert err.field == field
    assert fragment in f"{err.reason} | {err.fix}"
    assert err.fix
    assert str(err).startswith(f"{field}: ")
    assert ". Fix: " in str(err)


def test_unknown_key_lists_the_allowed_keys():
    raw = _demo_raw()
    raw["pools"][0]["pool_prefix"] = "x"
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    assert info.value.value == "pool_prefix"
    assert "pool_id_prefix" in info.value.fix and "vm_size" in info.value.fix


def test_several_unknown_keys_are_all_named():
    raw = _demo_raw()
    raw["foo"] = raw["bar"] = 1
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    assert info.value.field == P
    assert "'foo'" in info.value.reason and "'bar'" in info.value.reason


def test_duplicate_prefix_on_the_same_account_case_insensitive():
    raw = _demo_raw()
    raw["pools"].append({**copy.deepcopy(raw["pools"][0]), "pool_id_prefix": "UBUNTU2204"})
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    assert info.value.field == f"{P}.pools[1].pool_id_prefix"
    assert "pools[0]" in info.value.reason


def test_override_below_the_computed_minimum_is_an_error_unless_the_rule_allows_it():
    raw = _short_raw()
    raw["pools"][0]["target_dedicated_nodes"] = 3000
    raw["target_regions"][0]["regional_replica_count"] = 5
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    err = info.value
    assert err.field == f"{P}.target_regions[0].regional_replica_count"
    assert err.value == 5
    assert "at least 10" in err.reason and "per600" in err.fix
    raw["replica_rule"] = "per600"  # the seed document's rule: 3000 VMs -> 5
    assert cfg.parse_pipeline(raw, P).replica_plan()["westeurope"].count == 5


def test_too_many_vms_in_one_region_across_pools():
    raw = _short_raw()
    raw["pools"][0]["target_dedicated_nodes"] = 20000
    raw["pools"].append({**copy.deepcopy(raw["pools"][0]), "pool_id_prefix": "second"})
    with pytest.raises(InvalidInput) as info:
        cfg.parse_pipeline(raw, P)
    assert info.value.field == f"{P}.pools"
    assert "split" in info.value.fix


# --- files ---------------------------------------------------------------------------------------------------------


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_load_pipelines_file_errors(tmp_path):
    demo = DEMO.read_text()
    cases = [
        ("", "(top level)", "mapping"),
        ("- a\n", "(top level)", "mapping"),
        ("pipeline: []\n", "pipeline", "unknown key"),
        ("pipelines: []\n", "pipelines", "non-empty list"),
        ("pipelines: [\n", str(tmp_path / "p.yaml"), "not valid YAML"),
        (demo + demo.split("\n", 2)[2].replace("pipelines:\n", ""), "pipelines[1].dag_id", "same dag_id"),
        (demo.replace("    owner: platform\n", "    owner: platform\n    owner: other\n"), "line", "duplicate key"),
    ]
    for text, field, fragment in cases:
        with pytest.raises(InvalidInput) as info:
            cfg.load_pipelines(_write(tmp_path, text))
        assert info.value.field.startswith(field), (text[:40], info.value)
        assert fragment in str(info.value), (text[:40], info.value)
    with pytest.raises(InvalidInput) as info:
        cfg.load_pipelines(tmp_path / "missing.yaml")
    assert info.value.field == "path"


def test_load_pipelines_uses_list_paths(tmp_path):
    text = DEMO.read_text().replace("canary_nodes: 4 ", "canary_nodes: 0 ")
    with pytest.raises(InvalidInput) as info:
        cfg.load_pipelines(_write(tmp_path, text))
    assert info.value.field == "pipelines[0].pools[0].canary_nodes"


def test_a_dag_id_in_two_pipelines_files_names_both_files_and_the_fix(tmp_path):
    """Issue 22: demo.yaml copied to contoso.yaml without a new dag_id used to leave one DAG, silently."""
    (tmp_path / "demo.yaml").write_text(DEMO.read_text())
    (tmp_path / "contoso.yaml").write_text(DEMO.read_text())
    (tmp_path / "schema.json").write_text("{}")  # only *.yaml files are pipelines files
    with pytest.raises(InvalidInput) as info:
        cfg.load_pipelines_dir(tmp_path)
    err = info.value
    assert (err.field, err.value) == ("dag_id", "batch_image_ubuntu2204")
    assert f"declared in both {tmp_path / 'contoso.yaml'} and {tmp_path / 'demo.yaml'}" in err.reason
    assert "its own dag_id" in err.fix and "BATCH_IMAGES_PIPELINES_DIR" in err.fix
    # the fix: the copy's own dag_id
    (tmp_path / "contoso.yaml").write_text(DEMO.read_text().replace("batch_image_ubuntu2204", "batch_image_contoso"))
    assert [p.dag_id for p in cfg.load_pipelines_dir(tmp_path)] == ["batch_image_contoso", "batch_image_ubuntu2204"]


# --- JSON Schema for editors (include/pipelines/schema.json) ---------------------------------------------------------

SCHEMA = DEMO.parent / "schema.json"


def test_committed_schema_is_what_the_command_prints():
    """The file editors read is generated from the models: regenerate it when the config changes."""
    result = subprocess.run([sys.executable, "-m", "batch_images.rules.config", "--schema"], capture_output=True,
                            text=True, timeout=120, cwd=DEMO.parents[2],
                            env={**os.environ, "PYTHONPATH": str(DEMO.parents[2] / "plugins")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == cfg.json_schema()
    assert SCHEMA.read_text() == result.stdout, (
        "include/pipelines/schema.json is stale: run "
        "python -m batch_images.rules.config --schema > include/pipelines/schema.json")


def test_demo_yaml_points_editors_at_the_schema():
    assert DEMO.read_text().splitlines()[0] == "# yaml-language-server: $schema=./schema.json"


def test_schema_accepts_the_demo_and_flags_typos_and_wrong_types():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    demo = yaml.safe_load(DEMO.read_text())
    demo["pipelines"][0]["start_date"] = str(demo["pipelines"][0]["start_date"])  # as an editor sees the text
    assert list(validator.iter_errors(demo)) == []
    bad = copy.deepcopy(demo)
    bad["pipelines"][0]["pools"][0]["pool_prefix"] = "x"  # a misspelt key
    bad["pipelines"][0]["target_regions"][0]["regional_replica_count"] = 101  # Azure's limit is 100
    bad["pipelines"][0]["image_definition"]["os_type"] = "Solaris"
    flagged = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad))
    assert flagged == ["pipelines.0.image_definition.os_type", "pipelines.0.pools.0",
                       "pipelines.0.target_regions.0.regional_replica_count"], flagged
