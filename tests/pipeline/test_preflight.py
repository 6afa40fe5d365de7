"""PreflightOperator against the stand-in: the plan on the seeded VM, and every refusal - each naming the
config field, the value and the fix, and each leaving the stand-in's request log without a single write.

Nothing the stand-in serves is mocked: the operator reads ARM and Batch over HTTPS with the unmodified SDKs.
"""
from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone

import pytest

from airflow.sdk.exceptions import AirflowFailException

from _batch_common import (
    DAG_ID,
    azure_conn,
    batch_conn,
    LOGICAL_DATE,
    RUN_ID,
    VERSION,
    context_for,
    create_definition,
    in_dag,
    pipeline_dict,
    set_connections,
)
from batch_images.operators.preflight import PreflightOperator
from include.pipeline_fixtures import short_field_pool


def preflight(pipeline: dict, **kwargs) -> PreflightOperator:
    return in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=pipeline, **kwargs))


def run(op: PreflightOperator, context: dict | None = None):
    context = context or context_for()
    return op.execute(context), context


def assert_no_writes(standin, since: int = 0) -> None:
    log = standin.control.requests(since=since, items=True)
    writes = [f"{r['method']} {r['path']} ({r['op']})" for r in log["items"]
              if r["write"] and r["family"] in ("arm", "batch")]
    assert log["write_attempts"] == 0 and log["writes"] == 0, f"preflight wrote: {writes}"


# --- the good case ---------------------------------------------------------------------------------------------


def test_preflight_passes_on_seeded_vm_and_plans(conns, capsys):
    ep = conns.endpoints
    demo = ep["demo"]
    conns.control.clear_requests()
    plan, context = run(preflight(pipeline_dict(ep), rebuild="0"))

    sub, rg = demo["subscription_id"], demo["resource_group"]
    assert plan["version"] == VERSION == "2026.1125.0"
    assert plan["dag_id"] == DAG_ID and plan["run_id"] == RUN_ID
    assert plan["location"] == "westeurope"
    assert plan["work_resource_group"] == rg and plan["work_subscription_id"] == sub
    src = plan["source"]
    assert src["vm_id"].lower() == demo["source_vm_id"].lower() and src["vm_name"] == "vm-prepared-ubuntu2204"
    assert src["os_type"] == "Linux" and src["hyper_v_generation"] == "V2"
    assert src["os_disk_id"] and src["os_disk_size_gb"] == 30
    assert src["data_disks"] == [{"lun": 0, "disk_id": src["data_disks"][0]["disk_id"], "size_gb": 64}]
    assert src["base_image"]["publisher"] == "canonical" and src["base_image"]["sku"] == "22_04-lts-gen2"
    assert plan["gallery"]["id"].endswith("/galleries/galbatchimages")
    assert plan["image_definition"]["id"].endswith("/galleries/galbatchimages/images/ubuntu2204-batch")
    assert plan["version_id"] == plan["image_definition"]["id"] + "/versions/2026.1125.0"
    assert plan["image_name"] == "img-ubuntu2204-batch-2026-1125-0"
    assert plan["image_id"].endswith(f"/resourceGroups/{rg}/providers/Microsoft.Compute/images/img-ubuntu2204-batch-2026-1125-0")
    assert plan["snapshot_names"] == {"os": "snap-vm-prepared-ubuntu2204-os-2026-1125-0",
                                      "data-lun0": "snap-vm-prepared-ubuntu2204-data-lun0-2026-1125-0"}
    assert [r["name"] for r in plan["target_regions"]] == ["westeurope", "northeurope"]
    assert all(r["regional_replica_count"] == 1 and r["storage_account_type"] == "Standard_LRS"
               for r in plan["target_regions"])
    assert plan["replica_sizing"]["rule"] == "per300"
    assert plan["replica_sizing"]["per_region"]["westeurope"]["vm_count"] == 4
    assert "per300" in plan["replica_sizing"]["per_region"]["westeurope"]["explanation"]
    assert plan["node_agent_sku_id"] == "batch.node.ubuntu 22.04"
    # 90 days after the later of the logical date (2026-11-25) and today: never a date Azure would refuse
    assert plan["end_of_life_date"] >= "2027-02-23" and plan["keep_versions"] == 3
    assert date.fromisoformat(plan["end_of_life_date"]) > datetime.now(timezone.utc).date()
    assert plan["tags"] == {"managed-by": "airflow-batch-images", "dag_id": DAG_ID, "run_id": RUN_ID,
                            "image-version": VERSION}
    assert set(plan["timeouts"]) == {"snapshot", "image", "replication", "allocation"}
    assert plan["timeouts"]["allocation"] == (15 + 30) * 60

    (pool,) = plan["pools"]
    assert context["ti"].xcom["pools"] == plan["pools"]
    assert pool["pool_id"] == "ubuntu2204-2026-1125-0"
    assert pool["batch_conn_id"] == "azure_batch_default"
    assert pool["batch_account_id"].lower() == demo["batch_account_id"].lower()
    assert "account_location" not in pool  # one spelling: batch_account_location (below)
    assert pool["vm_size"] == "Standard_D2s_v3"
    assert (pool["target_dedicated_nodes"], pool["target_low_priority_nodes"]) == (4, 0)
    assert pool["resize_timeout"] == "PT15M"
    # the demo's pool is a template: the plan carries it whole (subnet, autoscale, task slots, start task) and
    # sizes the new pool as its canary (canary_nodes 4) until the formula takes over at promotion
    assert pool["template"]["startTask"]["commandLine"] == "/bin/bash -c 'echo ready'"
    assert pool["template"]["networkConfiguration"]["subnetId"].endswith("/virtualNetworks/vnet-batch/subnets/pools")
    assert (pool["template"]["enableAutoScale"], pool["template"]["taskSlotsPerNode"]) == (True, 2)
    assert pool["node_agent_sku_id"] == "batch.node.ubuntu 22.04"
    assert pool["metadata"]["image-version"] == VERSION and pool["metadata"]["managed-by"] == "airflow-batch-images"
    assert pool["max_unhealthy_node_share"] == 0.0
    # the roll's inputs (issue 10): the logical pool, the account's region and the demo's roll settings
    assert (pool["logical_pool"], pool["batch_account_location"]) == ("ubuntu2204", "westeurope")
    assert pool["roll"] == {"strategy": "blue_green", "active_jobs": "drain", "drain_timeout_minutes": 120,
                            "on_drain_timeout": "keep"}
    assert pool["smoke_test"] == {"command_line": "/bin/bash -c 'test -f /etc/os-release'", "tasks": None,
                                  "timeout_minutes": 10}
    assert pool["require_approval"] is False

    # The replica rule and its numbers are logged; preflight made no write.
    out = capsys.readouterr().out
    assert "Replica sizing rule per300" in out and "westeurope: 1 replica(s) for 4 VM(s)" in out
    assert_no_writes(conns)
    counts = conns.control.requests()["counts"]
    assert counts.get("batch:Account_ListSupportedImages") == 1


def test_version_from_logical_date_and_rebuild(conns):
    ep = conns.endpoints
    plan, _ = run(preflight(pipeline_dict(ep), rebuild=3),
                  context_for(logical_date=LOGICAL_DATE.replace(month=1, day=5)))
    assert plan["version"] == "2026.105.3"
    assert plan["pools"][0]["pool_id"] == "ubuntu2204-2026-105-3"


def test_backfill_end_of_life_counts_from_today(conns, capsys):
    """Issue 7 item 2: a run for 2026-08-01 made later than 90 days after it (a backfill, a late manual run)
    gets an end-of-life date 90 days after the day it builds, not one Azure refuses as past."""
    old = datetime(2026, 8, 1, tzinfo=timezone.utc)
    today = datetime.now(timezone.utc).date()
    plan, _ = run(preflight(pipeline_dict(conns.endpoints)), context_for(logical_date=old))
    assert plan["version"] == "2026.801.0"
    assert plan["end_of_life_date"] in {(today + timedelta(days=90)).isoformat(),  # the day may turn mid-test
                                        (today + timedelta(days=91)).isoformat()}
    assert "90 days after today, which is later than the logical date 2026-08-01" in capsys.readouterr().out


@pytest.mark.parametrize("conn_id", ["azure_default", "azure_batch_default"])
def test_invalid_connection_extra_fails_at_once(conns, monkeypatch, conn_id):
    """Issue 12: a bad connection value (here a ca_bundle that names no file) is bad input: an
    AirflowFailException (never retried) naming the extra, its value and the fix, and no write."""
    ep = conns.endpoints
    conn = azure_conn(ep) if conn_id == "azure_default" else batch_conn(ep)
    conn["extra"]["ca_bundle"] = "no/such/ca.pem"
    set_connections(monkeypatch, ep, **{conn_id: conn})
    conns.control.clear_requests()
    with pytest.raises(AirflowFailException) as info:
        run(preflight(pipeline_dict(ep)))
    text = str(info.value)
    assert "connection extra ca_bundle: 'no/such/ca.pem' is not valid" in text and "Fix:" in text, text
    assert_no_writes(conns)


def test_batch_account_region_outside_targets_is_added_with_warning(conns, capsys):
    ep = conns.endpoints
    cfg = pipeline_dict(ep)
    cfg["gallery"]["location"] = "northeurope"
    cfg["target_regions"] = [{"name": "northeurope", "regional_replica_count": None, "storage_account_type": None}]
    cfg["pools"][0]["batch_account_location"] = None
    plan, _ = run(preflight(cfg))
    assert [r["name"] for r in plan["target_regions"]] == ["northeurope", "westeurope"]
    assert plan["replica_sizing"]["per_region"]["westeurope"]["vm_count"] == 4
    warnings = [line for line in capsys.readouterr().out.splitlines() if "[warning" in line]
    assert any("westeurope, which is not among target_regions" in w for w in warnings), warnings


def test_node_agent_override_that_matches_is_used(conns):
    plan, _ = run(preflight(pipeline_dict(conns.endpoints), node_agent_sku_id="batch.node.ubuntu 22.04"))
    assert plan["node_agent_sku_id"] == "batch.node.ubuntu 22.04"


def test_replica_rule_per600_is_applied(conns):
    # 1300 x D2s_v3 need 2600 cores: an approved quota request first (preflight refuses a pool over the quota)
    conns.control.call("PUT", "/batch/quotas", {"account": conns.endpoints["demo"]["batch_account"],
                                                "dedicatedCoreQuota": 3000,
                                                "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family",
                                                                                   "coreQuota": 3000}]})
    cfg = pipeline_dict(conns.endpoints, replica_rule="per600")
    cfg["pools"][0] = short_field_pool(cfg["pools"][0], target_dedicated_nodes=1300)
    plan, _ = run(preflight(cfg))
    assert plan["replica_sizing"]["rule"] == "per600"
    assert plan["replica_sizing"]["per_region"]["westeurope"]["count"] == 3
    assert plan["pools"][0]["resize_timeout"] == "PT20M"  # 15 min per 1000 VMs, rounded up


# --- refusals: field, value and fix named; zero writes ---------------------------------------------------------


def _vm(kind: str):
    def change(ep, cfg, kwargs, standin, monkeypatch):
        cfg["source_vm_id"] = ep["demo"]["negative_vms"][kind]
    return change


def _specialized(ep, cfg, kwargs, standin, monkeypatch):
    create_definition(standin, "ubuntu2204-specialized", os_state="Specialized")
    cfg["image_definition"]["name"] = "ubuntu2204-specialized"


def _shared_key(ep, cfg, kwargs, standin, monkeypatch):
    set_connections(monkeypatch, ep, shared_key=True)


def _agent_mismatch(ep, cfg, kwargs, standin, monkeypatch):
    kwargs["node_agent_sku_id"] = "batch.node.windows amd64"


def _agent_wrong_lineage(ep, cfg, kwargs, standin, monkeypatch):
    cfg["node_agent_sku_id"] = "batch.node.el 9"


def _bad_prefix(ep, cfg, kwargs, standin, monkeypatch):
    cfg["pools"][0]["pool_id_prefix"] = "ubuntu 22.04!"


def _long_prefix(ep, cfg, kwargs, standin, monkeypatch):
    cfg["pools"][0]["pool_id_prefix"] = "p" * 60


def _version_out_of_range(ep, cfg, kwargs, standin, monkeypatch):
    kwargs["rebuild"] = 2147483648


def _negative_rebuild(ep, cfg, kwargs, standin, monkeypatch):
    kwargs["rebuild"] = "-1"


def _not_registered(ep, cfg, kwargs, standin, monkeypatch):
    standin.control.call("PUT", "/arm/providers", {"namespace": "Microsoft.Batch", "registrationState": "NotRegistered"})


def _no_account(ep, cfg, kwargs, standin, monkeypatch):
    cfg["pools"][0]["batch_account_id"] = ep["demo"]["batch_account_id"].rsplit("/", 1)[0] + "/nosuchaccount"


def _definition_generation(ep, cfg, kwargs, standin, monkeypatch):
    cfg["image_definition"]["hyper_v_generation"] = "V1"


def _account_location(ep, cfg, kwargs, standin, monkeypatch):
    cfg["pools"][0]["batch_account_location"] = "northeurope"


REFUSALS = [
    # id, change, expected field, expected value (substring), words of the reason, words of the fix
    ("vm-with-extension", _vm("with_extension"), "source_vm_id", "vm-with-extension", "CustomScript",
     "az vm extension delete"),
    ("vm-unmanaged-disks", _vm("unmanaged_disks"), "source_vm_id", "vm-unmanaged-disks", "unmanaged disks",
     "managed disks"),
    ("vm-thirdparty-plan", _vm("thirdparty_plan"), "source_vm_id", "vm-thirdparty-plan", "purchase plan",
     "first-party image"),
    ("specialized-definition", _specialized, "image_definition.name", "ubuntu2204-specialized", "Specialized",
     "new image definition name"),
    ("shared-key-connection", _shared_key, "pools[0].batch_conn_id", "azure_batch_default", "Shared Key",
     "credential_conn_id"),
    ("node-agent-os-mismatch", _agent_mismatch, "node_agent_sku_id", "batch.node.windows amd64",
     "windows images, but the image is Linux", "batch.node.ubuntu 22.04"),
    ("node-agent-wrong-lineage", _agent_wrong_lineage, "node_agent_sku_id", "batch.node.el 9",
     "does not pair this node agent", "batch.node.ubuntu 22.04"),
    ("bad-pool-prefix", _bad_prefix, "pipeline.pools[0].pool_id_prefix", "ubuntu 22.04!", "not allowed in a pool id",
     "letters, digits"),
    ("pool-id-too-long", _long_prefix, "pipeline.pools[0].pool_id_prefix", "ppppp", "Batch allows 64",
     "shorten the prefix"),
    ("version-out-of-range", _version_out_of_range, "params.rebuild", "2147483648", "0..2147483647", "rebuild 0"),
    ("negative-rebuild", _negative_rebuild, "params.rebuild", "-1", "whole number", "rebuild 0"),
    ("batch-not-registered", _not_registered, "gallery.subscription_id", "2b8c7d6e", "NotRegistered",
     "az provider register --namespace Microsoft.Batch"),
    ("no-batch-account", _no_account, "pools[0].batch_account_id", "nosuchaccount", "no such Batch account",
     "existing Batch account"),
    ("definition-generation", _definition_generation, "image_definition.hyper_v_generation", "V1",
     "generation V2", "hyper_v_generation: V2"),
    ("account-location", _account_location, "pools[0].batch_account_location", "northeurope",
     "is in westeurope", "batch_account_location: westeurope"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_preflight_refuses(conns, monkeypatch, case):
    _id, change, field, value, reason, fix = case
    ep = conns.endpoints
    cfg = copy.deepcopy(pipeline_dict(ep))
    kwargs: dict = {}
    change(ep, cfg, kwargs, conns, monkeypatch)
    conns.control.clear_requests()  # setup writes (a Specialized definition) are not preflight's
    with pytest.raises(AirflowFailException) as info:
        run(preflight(cfg, **kwargs))
    message = str(info.value)
    assert f"{field}: " in message, message
    assert value in message, message
    assert reason in message, message
    assert "Fix: " in message and fix in message, message
    assert_no_writes(conns)


def test_all_problems_are_reported_together(conns):
    ep = conns.endpoints
    cfg = pipeline_dict(ep)
    cfg["source_vm_id"] = ep["demo"]["negative_vms"]["with_extension"]
    cfg["image_definition"]["hyper_v_generation"] = "V1"
    cfg["pools"][0]["batch_account_location"] = "northeurope"
    conns.control.clear_requests()
    with pytest.raises(AirflowFailException) as info:
        run(preflight(cfg, node_agent_sku_id="batch.node.windows amd64"))
    message = str(info.value)
    assert "Preflight found 4 problem(s)" in message, message
    for field in ("source_vm_id", "node_agent_sku_id", "image_definition.hyper_v_generation",
                  "pools[0].batch_account_location"):
        assert f"{field}: " in message
    assert "nothing was changed in Azure" in message
    assert_no_writes(conns)


def test_missing_batch_connection_is_named(conns, monkeypatch):
    cfg = pipeline_dict(conns.endpoints)
    cfg["pools"][0]["batch_conn_id"] = "azure_batch_nosuch"
    with pytest.raises(AirflowFailException) as info:
        run(preflight(cfg))
    message = str(info.value)
    assert "Preflight found 1 problem(s)" in message
    assert "pools[0].batch_conn_id: 'azure_batch_nosuch'" in message and "no such Airflow connection" in message
    assert_no_writes(conns)


# --- the run's options (the trigger form / --conf), validated again here -------------------------------------


@pytest.mark.parametrize("options, field, value, fix", [
    ({"version": "1.2"}, "params.version", "'1.2'", "Major.Minor.Patch"),
    ({"version": "2147483648.0.0"}, "params.version", "'2147483648.0.0'", "at most 2147483647"),
    ({"version": "2026.1201.0", "rebuild": 1}, "params.version", "'2026.1201.0'", "set rebuild to 0"),
    ({"target_regions": ["eastus"]}, "params.target_regions", "['eastus']", "pick from westeurope, northeurope"),
    ({"pools": ["gpu"]}, "params.pools", "['gpu']", "pick from ubuntu2204"),
    ({"strategy": "rolling"}, "params.strategy", "'rolling'", "blue_green, in_place"),
    ({"dry_run": "yes"}, "params.dry_run", "'yes'", "dry_run: true"),
    ({"rebuid": 1}, "params.rebuid", "1", "rebuild"),
], ids=["version-two-parts", "version-over-32-bits", "version-and-rebuild", "region-not-configured",
        "pool-unknown", "strategy-unknown", "dry-run-not-bool", "unknown-param"])
def test_preflight_refuses_bad_run_options(conns, options, field, value, fix):
    """What the form's schema refuses, preflight refuses too (the REST API and --conf can pass anything)."""
    conns.control.clear_requests()
    rebuild = options.pop("rebuild", 0)
    with pytest.raises(AirflowFailException) as info:
        run(preflight(pipeline_dict(conns.endpoints), rebuild=rebuild, options=options))
    text = str(info.value)
    assert "nothing was changed in Azure" in text and f"{field}: {value} is not valid" in text, text
    assert f"Fix: " in text and fix in text, text
    assert_no_writes(conns)


def test_preflight_refuses_regions_without_the_gallery_region(conns):
    conns.control.clear_requests()
    with pytest.raises(AirflowFailException) as info:
        run(preflight(pipeline_dict(conns.endpoints), options={"target_regions": ["northeurope"]}))
    text = str(info.value)
    assert "params.target_regions: ['northeurope'] is not valid: the gallery's own region westeurope" in text, text
    assert "pool ubuntu2204's Batch account is in westeurope" in text and "add westeurope" in text
    assert_no_writes(conns)


def test_preflight_plans_the_options(conns):
    plan, _ = run(preflight(pipeline_dict(conns.endpoints), options={
        "version": "7.0.1", "target_regions": ["westeurope"], "canary_only": True, "dry_run": True}))
    assert plan["version"] == "7.0.1" and plan["version_id"].endswith("/versions/7.0.1")
    assert plan["pools"][0]["pool_id"] == "ubuntu2204-7-0-1"
    assert [r["name"] for r in plan["target_regions"]] == ["westeurope"]
    assert set(plan["replica_sizing"]["per_region"]) == {"westeurope"}
    assert plan["options"]["canary_only"] is True and plan["options"]["dry_run"] is True
    assert plan["roll_decisions"] == {"ubuntu2204": "first: ubuntu2204-7-0-1 becomes its first serving pool; canary "
                                                    "only: the canary stays, nothing moves"}


def test_native_rendering_keeps_the_pipelines_plain_strings_as_written():
    """The DAG renders natively (render_template_as_native_obj): a template's "1.0" or "8080" stays a string, while
    Jinja is still rendered to native values."""
    from airflow.sdk import DAG

    with DAG(dag_id="native_render", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
             render_template_as_native_obj=True):
        op = PreflightOperator(task_id="preflight", rebuild="{{ params.rebuild }}", pipeline={"pools": [{"template": {
            "applicationPackageReferences": [{"applicationId": "tools", "version": "1.0"}],
            "startTask": {"environmentSettings": [{"name": "PORT", "value": "8080"}]}}}], "n": "{{ 1 + 1 }}"})
    op.render_template_fields({"params": {"rebuild": 3}})
    template = op.pipeline["pools"][0]["template"]
    assert template["applicationPackageReferences"][0]["version"] == "1.0"
    assert template["startTask"]["environmentSettings"][0]["value"] == "8080"
    assert op.pipeline["n"] == 2 and op.rebuild == 3


# --- Resource SKUs and quotas (issue 20) -----------------------------------------------------------------------


def _sku_reads(standin, since: int) -> list[str]:
    log = standin.control.requests(since=since, items=True)
    return [r["path"] for r in log["items"] if r["method"] == "GET" and "/providers/Microsoft.Compute/skus" in r["path"]]


def test_resource_skus_are_read_once_per_region_in_the_rest_shape(conns):
    from batch_images.hooks.arm import ArmComputeHook

    hook = ArmComputeHook(azure_conn_id="azure_default")
    since = conns.control.requests()["last_id"]
    westeurope = hook.list_resource_skus("westeurope")
    assert hook.list_resource_skus("West Europe") is westeurope  # cached: the same region, spelled as ARM shows it
    westus = hook.list_resource_skus("westus")
    assert len(_sku_reads(conns, since)) == 2
    d2s = next(s for s in westeurope if s["name"] == "Standard_D2s_v3")
    assert d2s["resourceType"] == "virtualMachines" and d2s["locationInfo"][0]["zones"] == ["1", "2", "3"]
    assert {"name": "vCPUs", "value": "2"} in d2s["capabilities"]
    assert all(not info["zones"] for s in westus for info in s["locationInfo"])


def test_preflight_reads_skus_once_and_logs_the_capabilities(conns, capsys):
    since = conns.control.requests()["last_id"]
    run(preflight(pipeline_dict(conns.endpoints)))
    assert len(_sku_reads(conns, since)) == 1  # the demo's pools and regions: westeurope only, no Standard_ZRS
    out = capsys.readouterr().out
    assert "VM size Standard_D2s_v3 in westeurope: vCPUs 2, HyperVGenerations V1,V2" in out
    assert "Batch account batchimages: 0 pool(s), 1 new in this run, poolQuota 100" in out


def test_the_smoke_tests_jobs_must_fit_the_accounts_job_quota(conns, capsys):
    """activeJobAndJobScheduleQuota (300 in the seeded account): 299 jobs in use leave room for the demo pool's smoke
    test job; at 300 the run is refused naming the quota, with zero writes."""
    from azure.batch import models as bm

    batch = conns.batch()
    for n in range(299):
        batch.create_job(bm.BatchJobCreateOptions(id=f"user-job-{n}", pool_info=bm.BatchPoolInfo(pool_id="elsewhere")))
    run(preflight(pipeline_dict(conns.endpoints)))
    assert "299 active job(s) and job schedule(s), 1 smoke-test job(s) in this run, activeJobAndJobScheduleQuota 300" \
        in capsys.readouterr().out
    batch.create_job(bm.BatchJobCreateOptions(id="user-job-299", pool_info=bm.BatchPoolInfo(pool_id="elsewhere")))
    since = conns.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as failed:
        run(preflight(pipeline_dict(conns.endpoints)))
    assert "activeJobAndJobScheduleQuota) of 300; 300 are in use" in str(failed.value)
    assert_no_writes(conns, since)


@pytest.mark.parametrize("zones, refused", [(None, True), (["1", "2", "3"], True), (["1"], False)],
                         ids=["location", "every-zone", "one-zone"])
def test_size_restricted_for_the_subscription(conns, zones, refused):
    conns.control.call("PUT", "/arm/sku_restrictions", {"location": "westeurope", "name": "Standard_D2s_v3",
                                                        **({"zones": zones} if zones else {})})
    op = preflight(pipeline_dict(conns.endpoints))
    if not refused:
        run(op)
        return
    since = conns.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as err:
        run(op)
    assert "pools[0].template.vmSize: 'Standard_D2s_v3' is not valid: the VM size Standard_D2s_v3 is not available " \
           "to this subscription in westeurope (restrictions: NotAvailableForSubscription" in str(err.value)
    assert_no_writes(conns, since)
