"""`make demo STATE_DIR=<dir> PORT=<port>` (issue 12): the connections loaded from airflow_settings.yaml point
at that stand-in - its address and its CA file - so the pipeline's hooks reach it over verified TLS.

The session stand-in runs on a temporary state dir and a free port, i.e. neither of the settings file's defaults.
"""
from __future__ import annotations

import json
from pathlib import Path

from _batch_common import reset_secret_cache
from include.airflow_settings import DEFAULT_CA_BUNDLE, as_env, read_connections

ROOT = Path(__file__).resolve().parents[2]


def test_settings_loaded_for_another_state_dir_reach_that_standin(standin, monkeypatch):
    from batch_images.hooks.arm import ArmComputeHook
    from batch_images.hooks.batch import BatchPoolHook

    ep = standin.endpoints
    assert Path(ep["ca_bundle"]).parent != (ROOT / ".standin")  # the case of the bug: another STATE_DIR
    conns = {c["conn_id"]: c for c in read_connections(ROOT / "airflow_settings.yaml", ep)}
    arm_extra = json.loads(conns["azure_default"]["extra"])
    batch_extra = json.loads(conns["azure_batch_default"]["extra"])
    assert arm_extra["ca_bundle"] == batch_extra["ca_bundle"] == ep["ca_bundle"] != DEFAULT_CA_BUNDLE
    assert arm_extra["arm_endpoint"] == arm_extra["authority"] == ep["arm"]
    assert batch_extra["account_url"] == ep["batch_accounts"]["batchimages"]["endpoint"]

    for name, value in as_env(list(conns.values())).items():
        monkeypatch.setenv(name, value)
    reset_secret_cache()
    vm = ArmComputeHook("azure_default").get_vm(ep["demo"]["source_vm_id"], instance_view=False)
    assert vm["name"] == "vm-prepared-ubuntu2204"
    images = BatchPoolHook("azure_batch_default").list_supported_images()
    assert any(i["node_agent_sku_id"] == "batch.node.ubuntu 22.04" for i in images)


def test_settings_without_a_standin_are_loaded_as_written():
    conns = {c["conn_id"]: c for c in read_connections(ROOT / "airflow_settings.yaml")}
    assert json.loads(conns["azure_default"]["extra"])["ca_bundle"] == DEFAULT_CA_BUNDLE
