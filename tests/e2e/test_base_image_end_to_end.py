"""End to end: a base_image pipeline (include/pipelines/base-ubuntu2204.yaml, pointed at the stand-in) run with
`airflow dags test` against the stand-in. Checked through the SDKs and the stand-in's request log: the build VM was
created from exactly the resolved base version and removed with its NIC and disks, the version carries its lineage in
its tags, the pool is steady. And a customisation script that never finishes: the run fails within the configured
timeout with the VM's serial console, and nothing is left behind. And a Trusted-Launch-only base (image feature
SecurityType=TrustedLaunch): a Trusted Launch build VM (the stand-in refuses a standard one), the snapshot path, a
SecurityType=TrustedLaunch definition and a steady Trusted Launch pool.
"""
from __future__ import annotations

import json
import uuid

from azure.core.rest import HttpRequest

from batch_images.rules import naming
from batch_images.rules.config import load_pipelines
from include.pipeline_runner import ROOT, connection_env, run_dag_test, write_pipeline
from tests.run_states import not_succeeded

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
VERSION = "2026.1125.0"
NEWEST = "22.04.202411010"  # the newest seeded Ubuntu 22.04 gen2 version: what latest resolves to
BUILD_TASKS = {"prepare_build_vm", "generalize_build_vm", "delete_build_vm"}
# seeded with image feature SecurityType=TrustedLaunch (include/azure_standin/backends/seed.py)
NOBLE_TL_ONLY = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest",
                 "watch_interval_seconds": None}


def _pipeline(ep: dict, dag_id: str, base: dict | None = None, definition: str | None = None, **build) -> dict:
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id, poll_interval_seconds=1)
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    cfg["pools"][0].update(batch_account_id=demo["batch_account_id"])
    cfg["build"].update(build)
    if base is not None:
        cfg["base_image"] = base
    if definition is not None:
        cfg["image_definition"].update(name=definition, sku=definition)
    return cfg


def _run(standin, tmp_path, conf: dict | None = None, base: dict | None = None, definition: str | None = None,
         **build):
    ep = standin.endpoints
    dag_id = f"e2e_base_{uuid.uuid4().hex[:6]}"
    cfg = _pipeline(ep, dag_id, base, definition, **build)
    write_pipeline(tmp_path / "pipelines", cfg)
    mark = standin.control.requests()["last_id"]
    result = run_dag_test(dag_id, LOGICAL_DATE, tmp_path / "run.log", env=connection_env(ep),
                          pipelines_dir=tmp_path / "pipelines", timeout=600, conf=conf)
    items = standin.control.requests(since=mark, items=True)["items"]
    return cfg, result, items


def _left_behind(standin, rg: str, vm_name: str) -> list[str]:
    """Everything of the build (VM, disks, NIC) and every temporary snapshot/image still in the resource group."""
    compute = standin.compute()
    left = [v.name for v in compute.virtual_machines.list(rg) if v.name.startswith("bvm-")]
    left += [d.name for d in compute.disks.list_by_resource_group(rg) if d.name.startswith(vm_name)]
    left += [s.name for s in compute.snapshots.list_by_resource_group(rg)]
    left += [i.name for i in compute.images.list_by_resource_group(rg)]
    nic = (f"/subscriptions/{standin.endpoints['subscription_id']}/resourceGroups/{rg}/providers/Microsoft.Network"
           f"/networkInterfaces/{naming.build_vm_nic_name(vm_name)}")
    if compute.send_request(HttpRequest("GET", nic, params={"api-version": "2024-05-01"})).status_code != 404:
        left.append(nic)
    return left


def test_base_image_pipeline_builds_from_the_resolved_version_and_cleans_up(standin, tmp_path):
    standin.control.set_scale(600)  # the guest's 8-minute script: under a second
    cfg, result, items = _run(standin, tmp_path)
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.exit_code == 0 and result.state == "success", (states, result.log[-3000:])
    assert BUILD_TASKS <= set(states) and not_succeeded(states) == {}, states
    rg = standin.endpoints["demo"]["resource_group"]
    vm_name = naming.build_vm_name(cfg["image_definition"]["name"], VERSION)

    # The build VM was created once, from exactly the resolved version, with the script as custom data.
    puts = [r for r in items if r["op"] == "VirtualMachines_CreateOrUpdate" and r["status"] in (200, 201)]
    assert [r["path"].rsplit("/", 1)[-1] for r in puts] == [vm_name]
    ops = [r["op"] for r in items]
    assert ops.index("VirtualMachines_Deallocate") < ops.index("VirtualMachines_Generalize") < \
        ops.index("Snapshots_CreateOrUpdate")
    plan = result.xcoms["preflight:return_value"]
    assert plan["build"]["base"]["version"] == NEWEST and plan["build"]["base_version_source"] == "latest"
    # The build tasks link to the VM's portal page (the XCom the UI reads); the delete task does not.
    tenant, vm_id = standin.endpoints["tenant_id"], plan["build"]["vm_id"]
    for task in ("prepare_build_vm", "generalize_build_vm"):
        assert result.xcoms.get(f"{task}:_link_azure_portal_build_vm") == \
            f"https://portal.azure.com/#@{tenant}/resource{vm_id}", task
    assert "delete_build_vm:_link_azure_portal_build_vm" not in result.xcoms

    compute = standin.compute()
    # The version records its lineage; made from the build VM's disks (snapshots of its OS and data disk).
    version = compute.gallery_image_versions.get(rg, cfg["gallery"]["name"], cfg["image_definition"]["name"], VERSION)
    assert {k: version.tags[k] for k in ("base-publisher", "base-offer", "base-sku", "base-version")} == {
        "base-publisher": "canonical", "base-offer": "0001-com-ubuntu-server-jammy", "base-sku": "22_04-lts-gen2",
        "base-version": NEWEST}
    snaps = [r["path"].rsplit("/", 1)[-1] for r in items if r["op"] == "Snapshots_CreateOrUpdate"]
    assert sorted(snaps) == sorted([naming.snapshot_name(vm_name, "os", VERSION),
                                    naming.snapshot_name(vm_name, "data-lun0", VERSION)])
    # Removed with its NIC and disks; no temporary resource left.
    assert _left_behind(standin, rg, vm_name) == []
    # The pool is steady on that version, and its nodes run the build's lineage.
    batch = standin.batch()
    pool = batch.get_pool(naming.pool_id(cfg["pools"][0]["pool_id_prefix"], VERSION))
    assert str(getattr(pool.allocation_state, "value", pool.allocation_state)) == "steady"
    assert pool.virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() == version.id.lower()
    # The run summary shows the lineage.
    summary = result.xcoms["run_summary:return_value"]
    text = summary if isinstance(summary, str) else json.dumps(summary)
    assert f"canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:{NEWEST}" in text


def test_a_script_that_never_finishes_fails_within_the_timeout_with_the_serial_log(standin, tmp_path):
    standin.control.set_scale(600)
    standin.control.add_fault("build_vm_never_stops", match={"name_regex": "^bvm-"},
                              message="E: Unable to locate package nosuchpackage")
    # the wait's budget is wall time (Airflow's clock, not the stand-in's): the smallest, one minute
    cfg, result, items = _run(standin, tmp_path, timeout_minutes=1)
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.state == "failed" and states["prepare_build_vm"] == "failed", states
    assert states["delete_build_vm"] == "success" and states["snapshot_disks"] == "upstream_failed", states
    assert "did not power off within build.timeout_minutes (1 min)" in result.log
    assert "E: Unable to locate package nosuchpackage" in result.log  # the serial console's last lines
    ti = next(t for t in result.tasks if t["task"] == "prepare_build_vm")
    assert ti["try"] == 1  # a timeout is not retried
    assert "waiting for vm_power_state (poll every 1s, 59s left of the 60s budget)" in result.log  # the configured minute
    rg = standin.endpoints["demo"]["resource_group"]
    vm_name = naming.build_vm_name(cfg["image_definition"]["name"], VERSION)
    assert _left_behind(standin, rg, vm_name) == []
    assert not [r for r in items if r["op"] == "GalleryImageVersions_CreateOrUpdate"]


def test_the_trigger_forms_base_image_version_is_built_and_recorded(standin, tmp_path):
    """`--conf '{"base_image_version": ...}'` (what the trigger form sends): an older exact base, not latest."""
    standin.control.set_scale(600)
    cfg, result, items = _run(standin, tmp_path, conf={"base_image_version": "22.04.202409120"})
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.state == "success", (states, result.log[-3000:])
    build = result.xcoms["preflight:return_value"]["build"]
    assert (build["base"]["version"], build["base_version_source"]) == ("22.04.202409120", "param")
    rg = standin.endpoints["demo"]["resource_group"]
    version = standin.compute().gallery_image_versions.get(rg, cfg["gallery"]["name"], cfg["image_definition"]["name"],
                                                           VERSION)
    assert version.tags["base-version"] == "22.04.202409120"
    assert "base_image_version 22.04.202409120 from the trigger form" in json.dumps(
        result.xcoms["run_summary:return_value"])


def test_a_trusted_launch_only_base_builds_through_a_trusted_launch_vm_to_a_steady_pool(standin, tmp_path):
    standin.control.set_scale(600)
    cfg, result, items = _run(standin, tmp_path, base=NOBLE_TL_ONLY, definition="ubuntu2404-tl-batch")
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.exit_code == 0 and result.state == "success", (states, result.log[-3000:])
    plan = result.xcoms["preflight:return_value"]
    assert (plan["build"]["base"]["version"], plan["build"]["security_type"]) == ("24.04.202411030", "TrustedLaunch")
    # The stand-in refuses a standard VM from this base (400 BadRequest): one accepted create is the Trusted Launch VM.
    puts = [r for r in items if r["op"] == "VirtualMachines_CreateOrUpdate"]
    assert [r["status"] for r in puts] in ([200], [201]), puts
    ops = [r["op"] for r in items]
    assert "Images_CreateOrUpdate" not in ops  # no managed image can capture a Trusted Launch VM: from the snapshots
    rg = standin.endpoints["demo"]["resource_group"]
    compute = standin.compute()
    definition = compute.gallery_images.get(rg, cfg["gallery"]["name"], "ubuntu2404-tl-batch")
    assert {f.name: f.value for f in definition.features or []}.get("SecurityType") == "TrustedLaunch"
    version = compute.gallery_image_versions.get(rg, cfg["gallery"]["name"], "ubuntu2404-tl-batch", VERSION)
    assert version.tags["base-offer"] == "ubuntu-24_04-lts" and version.tags["base-version"] == "24.04.202411030"
    assert _left_behind(standin, rg, naming.build_vm_name("ubuntu2404-tl-batch", VERSION)) == []
    pool = standin.batch().get_pool(naming.pool_id(cfg["pools"][0]["pool_id_prefix"], VERSION))
    assert str(getattr(pool.allocation_state, "value", pool.allocation_state)) == "steady"
    security = pool.virtual_machine_configuration.security_profile
    assert str(getattr(security.security_type, "value", security.security_type)).lower() == "trustedlaunch"
    assert pool.virtual_machine_configuration.node_agent_sku_id == "batch.node.ubuntu 24.04"
