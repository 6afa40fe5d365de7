"""Preflight's pure checks (rules/preflight.py) and the typed plan (rules/plan.py): facts as Azure answers them
+ the pipeline config -> problems naming field, value and fix; no stand-in, no Airflow."""

from __future__ import annotations

import copy

import pytest

from batch_images.rules import preflight as checks
from batch_images.rules.config import PipelineConfig
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan, PoolSpec

SUB = "2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
RG = "rg-images"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-prep"
OS_DISK = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/vm-prep-os"
DATA_DISK = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/vm-prep-data0"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Batch/batchAccounts/batchacct"
UBUNTU = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
          "node_agent_sku_id": "batch.node.ubuntu 22.04", "os_type": "linux", "verification_type": "verified"}
WINDOWS = {"publisher": "microsoftwindowsserver", "offer": "windowsserver", "sku": "2022-datacenter",
           "node_agent_sku_id": "batch.node.windows amd64", "os_type": "windows", "verification_type": "verified"}


def config(**changes) -> PipelineConfig:
    data = {
        "dag_id": "batch_image_test", "start_date": "2026-11-01", "source_vm_id": VM_ID, "arm_conn_id": "azure_default",
        "gallery": {"subscription_id": SUB, "resource_group": RG, "name": "gal", "location": "westeurope"},
        "image_definition": {"name": "ubuntu-batch", "os_type": "Linux", "hyper_v_generation": "V2",
                             "publisher": "contoso", "offer": "batch", "sku": "2204"},
        "target_regions": [{"name": "westeurope"}],
        "pools": [{"batch_account_id": ACCOUNT, "batch_account_location": None, "batch_conn_id": "azure_batch_default",
                   "pool_id_prefix": "ubuntu", "vm_size": "Standard_D2s_v3", "target_dedicated_nodes": 4}],
    }
    for key, value in changes.items():
        data[key] = value
    return PipelineConfig.from_dict(data, "pipeline")


def vm(**props) -> dict:
    body = {
        "id": VM_ID, "name": "vm-prep", "location": "West Europe",
        "properties": {
            "storageProfile": {
                "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                                   "sku": "22_04-lts-gen2", "version": "latest"},
                "osDisk": {"osType": "Linux", "diskSizeGB": 30, "managedDisk": {"id": OS_DISK}},
                "dataDisks": [{"lun": 0, "diskSizeGB": 64, "managedDisk": {"id": DATA_DISK}}],
            },
            "instanceView": {"hyperVGeneration": "V2"},
        },
    }
    body["properties"].update(props)
    return body


def definition(**props) -> dict:
    return {"id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal/images/ubuntu-batch",
            "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                           "identifier": {"publisher": "contoso", "offer": "batch", "sku": "2204"}, **props}}


def source_of(body: dict, **facts) -> tuple[checks.SourceFacts | None, checks.Findings]:
    found = checks.Findings()
    return checks.check_source_vm(checks.VmFacts(vm_id=VM_ID, vm=body, **facts), found), found


def fields(found: checks.Findings) -> list[str]:
    return [e.field for e in found.items]


# -- the source VM ----------------------------------------------------------------------------------------------


def test_a_prepared_vm_passes_and_reads_as_the_plan_source():
    source, found = source_of(vm(), os_disk={"properties": {"hyperVGeneration": "V2", "diskSizeGB": 32}})
    assert not found and source.usable and source.base_ok
    assert (source.location, source.os_type, source.hyper_v_generation, source.os_disk_size_gb) == \
        ("westeurope", "Linux", "V2", 32)
    assert source.to_source().data_disks[0].disk_id == DATA_DISK


@pytest.mark.parametrize("body, facts, reason, fix", [
    (None, {}, "no such virtual machine", "az vm show"),
    (vm(storageProfile={**vm()["properties"]["storageProfile"], "osDisk": {"osType": "Linux", "vhd": {"uri": "x"}}}),
     {}, "unmanaged disks (OS disk", "managed disks"),
    (vm(), {"extensions": ["CustomScript"]}, "VM extensions installed (CustomScript)", "az vm extension delete"),
    (vm(), {"os_disk_missing": True}, f"OS disk {OS_DISK} does not exist", "prepare a new one"),
])
def test_source_vm_refusals_name_the_vm_and_the_fix(body, facts, reason, fix):
    _source, found = source_of(body, **facts)
    (err,) = found.items
    assert err.field == "source_vm_id" and err.value == VM_ID and reason in err.reason and fix in err.fix


def test_third_party_base_image_with_a_purchase_plan_is_refused():
    body = vm()
    body["plan"] = {"publisher": "fabrikam", "product": "hpc", "name": "gold"}
    source, found = source_of(body)
    assert not source.base_ok and "purchase plan (fabrikam/hpc/gold)" in found.items[0].reason


# -- Batch's supported images -----------------------------------------------------------------------------------


def test_node_agent_is_derived_from_supported_images_and_a_wrong_override_is_refused():
    source, _ = source_of(vm())
    found = checks.Findings()
    assert checks.check_supported_image(source, [UBUNTU, WINDOWS], "conn", None, found) == "batch.node.ubuntu 22.04"
    assert checks.check_supported_image(source, [UBUNTU, WINDOWS], "conn", "batch.node.windows amd64", found) is None
    (err,) = found.items
    assert err.field == "node_agent_sku_id" and "windows images, but the image is Linux" in err.reason
    assert "'batch.node.ubuntu 22.04'" in err.fix


def test_base_image_batch_does_not_list_is_refused():
    source, _ = source_of(vm())
    found = checks.Findings()
    assert checks.check_supported_image(source, [WINDOWS], "conn", None, found) is None
    assert "not in Batch's supported images" in found.items[0].reason


# -- the existing image definition: one rule, two callers -------------------------------------------------------


@pytest.mark.parametrize("props, config_field, config_value, definition_field, definition_value, words", [
    ({"osState": "Specialized"}, "image_definition.name", "ubuntu-batch", "image_definition.os_state", "Specialized",
     "is Specialized"),
    ({"osType": "Windows"}, "image_definition.os_type", "Linux", "image_definition.os_type", "Windows",
     "has osType Windows"),
    ({"hyperVGeneration": "V1"}, "image_definition.hyper_v_generation", "V2", "image_definition.hyper_v_generation",
     "V1", "has hyperVGeneration V1"),
])
def test_existing_definition_rule_same_reason_and_fix_for_both_callers(props, config_field, config_value,
                                                                       definition_field, definition_value, words):
    kwargs = dict(name="ubuntu-batch", definition_id=definition()["id"], os_type="Linux", hyper_v_generation="V2",
                  security=None)
    (by_config,) = checks.existing_definition_problems(definition(**props), blame="config", **kwargs)
    (by_definition,) = checks.existing_definition_problems(definition(**props), blame="definition", **kwargs)
    assert (by_config.field, by_config.value) == (config_field, config_value)
    assert (by_definition.field, by_definition.value) == (definition_field, definition_value)
    assert by_config.reason == by_definition.reason and words in by_config.reason
    assert by_config.fix == by_definition.fix and "new" in by_config.fix and "definition name" in by_config.fix


def test_existing_definition_rule_checks_the_security_feature_only_with_a_decision():
    tl = {"security_type": "TrustedLaunch", "image_path": "snapshots", "definition_feature": "TrustedLaunch",
          "pool_security_profile": {"securityType": "trustedLaunch"}}
    kwargs = dict(name="ubuntu-batch", definition_id=definition()["id"], os_type="Linux", hyper_v_generation="V2",
                  blame="config")
    (err,) = checks.existing_definition_problems(definition(), security=tl, **kwargs)
    assert err.field == "image_definition.name" and "no SecurityType feature" in err.reason
    assert checks.existing_definition_problems(definition(), security=None, **kwargs) == []
    fits = definition(features=[{"name": "SecurityType", "value": "TrustedLaunch"}])
    assert checks.existing_definition_problems(fits, security=tl, **kwargs) == []


def test_preflight_reports_definition_problems_before_the_security_decision():
    """A Trusted Launch Gen1 VM into a Specialized definition: both problems, the definition's first (as before)."""
    source, _ = source_of(vm(securityProfile={"securityType": "TrustedLaunch"}, instanceView={"hyperVGeneration": "V1"}))
    found = checks.Findings()
    assert checks.check_security_and_definition(config(), source, definition(osState="Specialized"), found) is None
    assert fields(found) == ["image_definition.name", "source_vm_id"]
    assert "Trusted Launch exists only for generation V2" in found.items[1].reason


def test_gallery_in_another_region_is_refused_and_a_missing_one_noted():
    found = checks.Findings()
    checks.check_gallery(config(), {"location": "North Europe"}, definition(), found)
    (err,) = found.items
    assert (err.field, err.value) == ("gallery.location", "westeurope") and "northeurope" in err.fix
    found = checks.Findings()
    checks.check_gallery(config(), None, None, found)
    assert not found and "will be created in westeurope" in found.notes[0][1]


# -- provider, pools, version -----------------------------------------------------------------------------------


def test_batch_provider_must_be_registered():
    found = checks.Findings()
    checks.check_batch_provider(SUB, None, found)
    assert found.items[0].field == "gallery.subscription_id" and "NotRegistered" in found.items[0].reason
    found = checks.Findings()
    checks.check_batch_provider(SUB, "Registered", found)
    assert not found


def test_pools_account_region_added_with_a_warning_and_connection_refusals():
    account = {"location": "North Europe", "properties": {"accountEndpoint": "batchacct.northeurope.batch.azure.com"}}
    found = checks.Findings()
    regions, extra = checks.check_pools(config(), [checks.PoolFacts(
        account=account, account_url="https://batchacct.northeurope.batch.azure.com/")], found)
    assert not found and regions == {ACCOUNT: "northeurope"} and extra == ["northeurope"]
    assert any(level == "warning" and "not among target_regions" in text for level, text in found.notes)

    found = checks.Findings()
    checks.check_pools(config(), [checks.PoolFacts(account=None, uses_shared_key=True,
                                                   account_url="https://other.westeurope.batch.azure.com")], found)
    assert fields(found) == ["pools[0].batch_account_id", "pools[0].batch_conn_id"]
    assert "Shared Key" in found.items[1].reason
    found = checks.Findings()
    checks.check_pools(config(), [checks.PoolFacts(account=account, conn_found=False)], found)
    assert found.items[-1].reason == checks.NO_BATCH_CONN


def test_version_and_pool_ids():
    from datetime import date

    found = checks.Findings()
    assert checks.check_version("3", date(2026, 1, 5), found) == "2026.105.3"
    assert checks.check_pool_ids(config(), "2026.105.3", found) == ["ubuntu-2026-105-3"]
    assert checks.check_version(-1, date(2026, 1, 5), found) is None
    assert found.items[0].field == "params.rebuild"


def test_findings_keep_one_line_per_problem():
    found = checks.Findings()
    found.add("f", 1, "r", "x")
    found.add("f", 1, "r", "x")
    assert len(found.items) == 1


# -- the typed plan ---------------------------------------------------------------------------------------------


def plan_dict() -> dict:
    source, _ = source_of(vm())
    return {
        "dag_id": "d", "run_id": "r", "version": "2026.1125.0", "location": "westeurope",
        "work_resource_group": RG, "work_subscription_id": SUB, "source": source.to_source().to_dict(),
        "gallery": {"subscription_id": SUB, "resource_group": RG, "name": "gal", "location": "westeurope",
                    "id": "g"},
        "image_definition": {"name": "ubuntu-batch", "os_type": "Linux", "hyper_v_generation": "V2",
                             "publisher": "p", "offer": "o", "sku": "s", "id": definition()["id"]},
        "version_id": "v", "target_regions": [{"name": "westeurope", "regional_replica_count": 1}],
        "tags": {"team": "hpc"},
    }


def test_plan_round_trips_and_defaults_to_the_managed_image_path():
    plan = Plan.from_dict(plan_dict())
    assert plan.image_path == "managed_image" and not plan.uses_snapshots and plan.security is None
    assert Plan.from_dict(plan.to_dict()) == plan
    assert plan.run_tags()["team"] == "hpc" and plan.run_tags()["image-version"] == "2026.1125.0"
    assert plan.timeout("snapshot", 60.0) == 60.0


@pytest.mark.parametrize("change, field", [
    (lambda p: p["source"].pop("os_disk_id"), "plan.source.os_disk_id"),
    (lambda p: p.update(version=None), "plan.version"),
    (lambda p: p["source"]["data_disks"][0].update(lun="zero"), "plan.source.data_disks[0].lun"),
    (lambda p: p.update(target_regions="westeurope"), "plan.target_regions"),
])
def test_a_missing_or_ill_typed_plan_field_is_named(change, field):
    data = copy.deepcopy(plan_dict())
    change(data)
    with pytest.raises(InvalidInput) as err:
        Plan.from_dict(data)
    assert err.value.field == field and "PreflightOperator" in err.value.fix
    with pytest.raises(InvalidInput) as err:
        Plan.from_dict(None)
    assert err.value.field == "plan"


def test_pool_spec_names_the_missing_key():
    with pytest.raises(InvalidInput) as err:
        PoolSpec.from_dict({"pool_id": "p"})
    assert err.value.field.startswith("pool_spec.") and "missing" in err.value.reason


def test_pool_spec_carries_the_roll_with_the_config_defaults():
    """A plan written before the roll existed reads with the config's defaults; a full one round-trips."""
    spec = PoolSpec.from_dict({"batch_conn_id": "c", "batch_account_id": ACCOUNT, "pool_id": "ubuntu-2026-1125-0",
                               "vm_size": "Standard_D2s_v3", "target_dedicated_nodes": 1,
                               "target_low_priority_nodes": 0, "resize_timeout": "PT15M",
                               "node_agent_sku_id": "batch.node.ubuntu 22.04"})
    assert (spec.roll.strategy, spec.roll.active_jobs, spec.roll.drain_timeout_minutes,
            spec.roll.on_drain_timeout) == ("blue_green", "drain", 120, "keep")
    assert (spec.smoke_test, spec.require_approval, spec.logical_pool) == (None, False, None)
    data = spec.to_dict() | {"roll": {"strategy": "in_place"}, "smoke_test": {"command_line": "exit 0"},
                             "logical_pool": "ubuntu"}
    again = PoolSpec.from_dict(data)
    assert (again.roll.strategy, again.smoke_test.command_line, again.smoke_test.tasks) == ("in_place", "exit 0", None)
    assert PoolSpec.from_dict(again.to_dict()) == again
    with pytest.raises(InvalidInput) as err:
        PoolSpec.from_dict(data | {"roll": {"strategy": "rolling"}})
    assert err.value.field == "pool_spec.roll.strategy"
