"""The build-VM operators against the stand-in, through the SDKs: a retry of prepare_build_vm adopts the VM its first
try made (one PUT), generalize_build_vm leaves it generalized, delete_build_vm removes it with its NIC and disks, and a
script changed after preflight is refused before anything is created."""
from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from azure.core.exceptions import ResourceNotFoundError
from azure.core.rest import HttpRequest

from batch_images.operators.build_vm import BuildVmOperator, DeleteBuildVmOperator, GeneralizeBuildVmOperator
from tests.pipeline._batch_common import (
    base_pipeline, context_for, in_dag, preflight_plan as preflight, run_operator, set_connections,
)


@pytest.fixture
def plan(standin, monkeypatch):
    set_connections(monkeypatch, standin.endpoints)
    standin.control.set_scale(600)  # the guest's 8-minute script: under a second
    return preflight(base_pipeline(standin.endpoints))


def _op(cls, plan, task_id):
    return in_dag(lambda: cls(task_id=task_id, plan=plan, poll_interval=0.2))


def _puts(standin) -> list[str]:
    items = standin.control.requests(items=True)["items"]
    return [r["path"] for r in items if r["op"] == "VirtualMachines_CreateOrUpdate" and r["status"] in (200, 201)]


def test_build_vm_retry_adopts_then_generalize_and_delete_leave_nothing(standin, plan):
    rg, vm_name = standin.endpoints["demo"]["resource_group"], plan["build"]["vm_name"]
    standin.control.clear_requests()
    result, deferrals = run_operator(_op(BuildVmOperator, plan, "prepare_build_vm"), context_for())
    assert result["vm_id"] == plan["build"]["vm_id"] and result["base"]["version"] == "22.04.202411010"
    assert deferrals and deferrals[-1]["status"] == "success"
    compute = standin.compute()
    vm = compute.virtual_machines.get(rg, vm_name, expand="instanceView")
    assert vm.storage_profile.image_reference.exact_version == "22.04.202411010"
    assert vm.tags["base-version"] == "22.04.202411010" and vm.tags["run_id"] == plan["run_id"]
    assert "PowerState/stopped" in [s.code for s in vm.instance_view.statuses]
    assert vm.security_profile.security_type == "Standard"  # explicit: the managed-image path preflight planned
    # a retry of the task (same run): adopts the VM, no second create
    run_operator(_op(BuildVmOperator, plan, "prepare_build_vm"), context_for())
    assert len(_puts(standin)) == 1, _puts(standin)

    assert run_operator(_op(GeneralizeBuildVmOperator, plan, "generalize_build_vm"), context_for())[0] == vm.id
    codes = [s.code for s in compute.virtual_machines.instance_view(rg, vm_name).statuses]
    assert "OSState/generalized" in codes and "PowerState/deallocated" in codes

    standin.control.clear_requests()
    deleted, _ = run_operator(_op(DeleteBuildVmOperator, plan, "delete_build_vm"), context_for())
    assert vm.id in deleted
    for get in (lambda: compute.virtual_machines.get(rg, vm_name),
                lambda: compute.disks.get(rg, f"{vm_name}-osdisk"), lambda: compute.disks.get(rg, f"{vm_name}-data-lun0")):
        with pytest.raises(ResourceNotFoundError):
            get()
    nic = vm.network_profile.network_interfaces[0].id
    assert compute.send_request(HttpRequest("GET", nic, params={"api-version": "2024-05-01"})).status_code == 404
    # delete_build_vm looked for the VM's own NIC (a wrong id would read 404 too and pass as "gone")
    looked = [r["path"] for r in standin.control.requests(items=True)["items"] if r["op"] == "NetworkInterfaces_Get"]
    assert [p.lower() for p in looked][:1] == [nic.lower()], looked


def test_a_script_changed_after_preflight_is_refused_before_any_write(standin, plan):
    changed = {**plan, "build": {**plan["build"], "custom_data_sha256": "0" * 64}}
    since = standin.control.requests()["last_id"]
    with pytest.raises(AirflowFailException, match="changed after preflight checked it; nothing was created"):
        run_operator(_op(BuildVmOperator, changed, "prepare_build_vm"), context_for())
    assert standin.control.requests(since=since)["write_attempts"] == 0
