"""Preflight reads the source VM's security type (issue 7 item 3): a Trusted Launch VM gets the snapshots path, a
definition feature and pool securityProfiles in the plan; combinations Azure cannot build are refused before any
write, naming the field and the fix. Driven against the stand-in's seeded VMs with the unmodified SDKs.
"""
from __future__ import annotations

import pytest

from airflow.sdk.exceptions import AirflowFailException

from _batch_common import DEFINITION, GALLERY, context_for, create_definition, in_dag, pipeline_dict
from batch_images.operators.preflight import PreflightOperator


def run_preflight(pipeline: dict) -> dict:
    op = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=pipeline, rebuild="0"))
    return op.execute(context_for())


def writes_since(standin, mark: int) -> list[str]:
    log = standin.control.requests(since=mark, items=True)
    return [f"{r['method']} {r['path']}" for r in log["items"] if r["write"] and r["family"] in ("arm", "batch")]


def trusted_launch_pipeline(ep: dict) -> dict:
    return pipeline_dict(ep, source_vm_id=ep["demo"]["trusted_launch_vm_id"])


def test_trusted_launch_vm_plans_the_snapshot_path(conns):
    conns.control.clear_requests()
    plan = run_preflight(trusted_launch_pipeline(conns.endpoints))
    assert plan["source"]["security_type"] == "TrustedLaunch"
    assert plan["image_path"] == "snapshots"
    assert plan["security"]["definition_feature"] == "TrustedLaunch"
    profile = {"securityType": "trustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    assert plan["pools"] and all(p["security_profile"] == profile for p in plan["pools"])
    assert writes_since(conns, 0) == []


def test_standard_vms_keep_the_managed_image_path(conns):
    ep = conns.endpoints
    plan = run_preflight(pipeline_dict(ep))
    assert plan["source"]["security_type"] == "Standard" and plan["image_path"] == "managed_image"
    assert all(p["security_profile"] is None for p in plan["pools"])
    cfg = pipeline_dict(ep, source_vm_id=ep["demo"]["gen1_vm_id"])
    cfg["image_definition"]["hyper_v_generation"] = "V1"
    plan = run_preflight(cfg)
    assert plan["source"]["hyper_v_generation"] == "V1" and plan["image_path"] == "managed_image"


def test_existing_definition_without_the_feature_is_refused_before_any_write(conns):
    create_definition(conns, DEFINITION)  # a standard Gen2 definition, no features
    mark = conns.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as err:
        run_preflight(trusted_launch_pipeline(conns.endpoints))
    text = str(err.value)
    assert "image_definition.name" in text and "no SecurityType feature" in text and "Trusted" in text
    assert "SecurityType=TrustedLaunch" in text  # the fix
    assert writes_since(conns, mark) == []


def test_standard_vm_into_a_trusted_launch_only_definition_is_refused(conns):
    ep = conns.endpoints
    demo = ep["demo"]
    compute = conns.compute(polling_interval=0.05)
    compute.galleries.begin_create_or_update(demo["resource_group"], GALLERY,
                                             {"location": demo["location"], "properties": {}}).result()
    compute.gallery_images.begin_create_or_update(demo["resource_group"], GALLERY, DEFINITION, {
        "location": demo["location"], "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
            "identifier": {"publisher": "contoso", "offer": "batch-nodes", "sku": DEFINITION},
            "features": [{"name": "SecurityType", "value": "TrustedLaunch"}]}}).result()
    compute.close()
    mark = conns.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as err:
        run_preflight(pipeline_dict(ep))
    assert "image_definition.name" in str(err.value) and "SecurityType TrustedLaunch" in str(err.value)
    assert writes_since(conns, mark) == []
    # ... while the Trusted Launch VM fits that definition.
    plan = run_preflight(trusted_launch_pipeline(ep))
    assert plan["image_path"] == "snapshots"
