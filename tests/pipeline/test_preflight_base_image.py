"""PreflightOperator for a base_image pipeline against the stand-in: the exact base version (latest resolved, the
trigger form's base_image_version, a triggering Asset event's version), the planned build VM, and the node agent's
end-of-life warning and refusal (both source kinds), a Trusted-Launch-only base (a Trusted Launch build VM and
definition) - refusals naming the field, with no write in the request log."""
from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from _batch_common import ROOT, base_pipeline, pipeline_dict, preflight_plan as run

JAMMY_URI = "azure-vmimage://westeurope/canonical/0001-com-ubuntu-server-jammy/22_04-lts-gen2"
# seeded with image feature SecurityType=TrustedLaunch (include/azure_standin/backends/seed.py)
NOBLE_TL_ONLY = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest",
                 "watch_interval_seconds": None}
TL_POOL_PROFILE = {"securityType": "trustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}


def refused(standin, pipeline: dict, **kwargs) -> str:
    since = standin.control.requests()["last_id"]
    with pytest.raises(AirflowFailException) as err:
        run(pipeline, **kwargs)
    log = standin.control.requests(since=since)
    assert log["write_attempts"] == 0, "preflight wrote"
    return str(err.value)


class _Event:
    def __init__(self, version):
        self.extra = {"version": version}


def test_latest_is_resolved_and_the_build_vm_planned(conns):
    plan = run(base_pipeline(conns.endpoints))
    build = plan["build"]
    assert build["base"] == {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                             "sku": "22_04-lts-gen2", "version": "22.04.202411010"}
    assert build["base_version_source"] == "latest" and "latest resolved to 22.04.202411010" in build["base_version_detail"]
    assert build["vm_name"] == "bvm-ubuntu2204-base-batch-2026-1125-0" and build["location"] == "westeurope"
    src = plan["source"]
    assert src["vm_id"] == build["vm_id"] and src["os_disk_id"].endswith("/disks/bvm-ubuntu2204-base-batch-2026-1125-0-osdisk")
    assert [d["size_gb"] for d in src["data_disks"]] == [32]
    assert build["custom_data_bytes"] == (ROOT / "include/build/ubuntu2204-batch.sh").stat().st_size
    assert plan["node_agent_sku_id"] == "batch.node.ubuntu 22.04"
    assert plan["timeouts"]["build"] == 3600.0


def test_param_wins_over_asset_event_which_wins_over_config(conns):
    ep = conns.endpoints
    pinned = base_pipeline(ep, base_image__version="22.04.202409120")
    assert run(pinned)["build"]["base"]["version"] == "22.04.202409120"
    event = {JAMMY_URI: [_Event("22.04.202410020")]}
    plan = run(pinned, events=event)
    assert (plan["build"]["base"]["version"], plan["build"]["base_version_source"]) == ("22.04.202410020", "asset event")
    plan = run(pinned, params={"base_image_version": "22.04.202411010"}, events=event)
    assert (plan["build"]["base"]["version"], plan["build"]["base_version_source"]) == ("22.04.202411010", "param")


@pytest.mark.parametrize("change, params, field, words", [
    ({"base_image__offer": "no-such-offer"}, None, "base_image:", "has no image"),
    ({}, {"base_image_version": "22.04.209912310"}, "params.base_image_version:", "has no image"),
    ({}, {"base_image_version": "22.04"}, "params.base_image_version:", "not an exact marketplace version"),
    ({"base_image": {"publisher": "center-for-internet-security-inc", "offer": "cis-ubuntu-linux-2204-l1",
                     "sku": "cis-ubuntu-linux-2204-l1-gen2", "version": "latest", "watch_interval_seconds": None}},
     None, "base_image:", "purchase plan"),
    ({"build__custom_data_file": "include/build/no-such-script.sh"}, None, "build.custom_data_file:",
     "no such file"),
], ids=["unknown-base", "unknown-param-version", "malformed-param-version", "purchase-plan", "missing-script"])
def test_bad_base_inputs_are_refused_before_any_write(conns, change, params, field, words):
    text = refused(conns, base_pipeline(conns.endpoints, **change), params=params)
    assert field in text and words in text


def _script_of(size: int) -> bytes:
    return (b"#!/bin/bash\n" + b"# padding\n" * (size // 10))[:size - 1] + b"\n"


def test_custom_data_limit_is_65535_bytes(conns):
    """Azure takes 87,380 base64 characters: a 65,535-byte script is planned, a 65,536-byte one refused."""
    script = ROOT / "include" / "build" / "_test_custom_data_boundary.sh"
    pipeline = base_pipeline(conns.endpoints, build__custom_data_file="include/build/_test_custom_data_boundary.sh")
    try:
        script.write_bytes(_script_of(65535))
        assert run(pipeline)["build"]["custom_data_bytes"] == 65535
        script.write_bytes(_script_of(65536))
        text = refused(conns, pipeline)
    finally:
        script.unlink()
    assert "build.custom_data_file:" in text and "65536 bytes" in text and "at most 65535 bytes" in text


@pytest.mark.parametrize("kind", ["base_image", "source_vm"])
def test_node_agent_end_of_life_warns_then_refuses(conns, capsys, kind):
    from datetime import date, timedelta

    pipeline = base_pipeline(conns.endpoints) if kind == "base_image" else pipeline_dict(conns.endpoints)
    soon = (date.today() + timedelta(days=30)).isoformat() + "T00:00:00Z"
    conns.control.set_batch_support_end_of_life("batch.node.ubuntu 22.04", soon)
    capsys.readouterr()
    run(pipeline)
    out = capsys.readouterr().out
    assert f"[warning  ] WARNING: Batch ends support for the node agent 'batch.node.ubuntu 22.04' on {soon[:10]}" in out
    past = (date.today() - timedelta(days=1)).isoformat() + "T00:00:00Z"
    conns.control.set_batch_support_end_of_life("batch.node.ubuntu 22.04", past)
    text = refused(conns, pipeline)
    field = "base_image:" if kind == "base_image" else "pipeline.source_vm_id"
    assert f"Batch ended support for the node agent 'batch.node.ubuntu 22.04' on {past[:10]}" in text
    assert field in text or ("base_image" in text if kind == "base_image" else "source_vm_id" in text)


def test_latest_is_the_numerically_newest_not_the_text_first(conns):
    """ARM's $orderby=name sorts as text: 22.04.9 would come first; latest is still 22.04.202411010."""
    conns.control.publish_base_image_version("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "22.04.9")
    plan = run(base_pipeline(conns.endpoints))
    assert plan["build"]["base"]["version"] == "22.04.202411010"


@pytest.mark.parametrize("built_from, expected", [("22.04.202409120", "2026.1125.1"), ("22.04.202411010", "2026.1125.0")],
                         ids=["other-base-next-N", "same-base-adopted"])
def test_a_date_whose_version_came_from_another_base_gets_the_next_n(conns, built_from, expected):
    """A base-image Asset event on a date that already has a version builds from the new base under the next N;
    the same base (a retry, a second trigger) keeps the name so the run adopts what exists."""
    from _batch_common import GALLERY, build_image_version

    demo = conns.endpoints["demo"]
    build_image_version(conns, "2026.1125.0", "ubuntu2204-base-batch")
    compute = conns.compute(polling_interval=0.05)
    compute.gallery_image_versions.begin_update(demo["resource_group"], GALLERY, "ubuntu2204-base-batch", "2026.1125.0",
                                                {"tags": {"base-version": built_from}}).result()
    compute.close()
    since = conns.control.requests()["last_id"]
    plan = run(base_pipeline(conns.endpoints), events={JAMMY_URI: [_Event("22.04.202411010")]})
    assert plan["version"] == expected
    assert plan["build"]["vm_name"] == f"bvm-ubuntu2204-base-batch-{expected.replace('.', '-')}"
    assert all(p["pool_id"].endswith(expected.replace(".", "-")) for p in plan["pools"])
    assert conns.control.requests(since=since)["write_attempts"] == 0


def test_trusted_launch_only_base_plans_a_trusted_launch_build_vm_and_definition(conns):
    from batch_images.operators.build_vm import build_vm_body
    from batch_images.rules.plan import Plan

    since = conns.control.requests()["last_id"]
    plan = run(base_pipeline(conns.endpoints, base_image=NOBLE_TL_ONLY, image_definition__name="ubuntu2404-base-batch"))
    assert conns.control.requests(since=since)["write_attempts"] == 0
    build = plan["build"]
    assert build["base"]["version"] == "24.04.202411030" and build["security_type"] == "TrustedLaunch"
    assert plan["source"]["security_type"] == "TrustedLaunch"
    assert plan["image_path"] == "snapshots"  # no managed image can capture a Trusted Launch VM
    assert plan["security"]["definition_feature"] == "TrustedLaunch"
    assert [p["security_profile"] for p in plan["pools"]] == [TL_POOL_PROFILE]
    assert plan["node_agent_sku_id"] == "batch.node.ubuntu 24.04"
    body = build_vm_body(Plan.from_dict(plan), b"#!/bin/bash\npoweroff\n")
    assert body["properties"]["securityProfile"] == {
        "securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}

    # a base that only *supports* Trusted Launch keeps the standard build VM and the managed-image path
    plan = run(base_pipeline(conns.endpoints))
    assert (plan["build"]["security_type"], plan["image_path"], plan["security"]["definition_feature"]) == (
        "Standard", "managed_image", None)
    assert build_vm_body(Plan.from_dict(plan), b"poweroff\n")["properties"]["securityProfile"] == {
        "securityType": "Standard"}


def test_trusted_launch_only_base_into_a_standard_definition_is_refused(conns):
    from _batch_common import GALLERY

    demo = conns.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = conns.compute(polling_interval=0.05)
    compute.galleries.begin_create_or_update(rg, GALLERY, {"location": loc, "properties": {}}).result()
    compute.gallery_images.begin_create_or_update(rg, GALLERY, "ubuntu2404-standard", {
        "location": loc, "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                                        "identifier": {"publisher": "contoso", "offer": "batch", "sku": "2404"}}}).result()
    compute.close()
    text = refused(conns, base_pipeline(conns.endpoints, base_image=NOBLE_TL_ONLY,
                                        image_definition__name="ubuntu2404-standard"))
    assert "image_definition.name:" in text and "ubuntu2404-standard" in text
    assert "no SecurityType feature" in text and "Trusted-Launch-only base image" in text
    assert "use a new image_definition.name" in text
