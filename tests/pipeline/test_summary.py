"""The run summary in the UI (issue 12): the DAG's last task, run_summary, holds what `make demo` printed.

Real `airflow dags test` runs of the demo pipeline against the stand-in; the summary is read from the task's XCom
return value (what the UI's XCom tab shows) and its log text, and checked against the SDKs' view of Azure.
"""
from __future__ import annotations

import uuid

import pytest

from batch_images.operators.summary import format_summary
from tests.pipeline._demo_run import run_demo


@pytest.fixture(scope="module")
def good(standin_session, tmp_path_factory):
    dag_id = f"summary_{uuid.uuid4().hex[:8]}"
    return run_demo(standin_session, tmp_path_factory.mktemp("summary"), dag_id), standin_session


def test_summary_of_a_successful_run(good):
    r, s = good
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    assert r.task_state("run_summary") == "success"
    summary = r.xcoms["run_summary:return_value"]
    # every other task of the run, with its state and a duration
    stages = {st["task"]: st for st in summary["stages"]}
    others = {t["task"] for t in r.tasks if t["task"] != "run_summary"}
    assert set(stages) == others
    assert all(st["state"] == "success" and st["seconds"] is not None for st in stages.values()), stages
    # resources are this run's
    version = r.xcoms["publish_image_version:return_value"]
    assert summary["resources"]["image version"] == version
    assert summary["resources"]["managed image"] == r.xcoms["create_managed_image:return_value"]
    # replication per region as Azure reports it
    name = version.rsplit("/", 1)[-1]
    gallery = version.split("/galleries/")[1].split("/")[0]
    definition = version.split("/images/")[1].split("/")[0]
    rg = version.split("/resourceGroups/")[1].split("/")[0]
    v = s.compute().gallery_image_versions.get(rg, gallery, definition, name, expand="ReplicationStatus")
    assert {x.region: x.state for x in v.replication_status.summary} == \
        {region: rep["state"] for region, rep in summary["replication"].items()}
    assert all(rep["state"] == "Completed" and rep["replicas"] for rep in summary["replication"].values())
    # the serving pool: steady at its target (the formula's 4 once it serves), node counts from Batch
    pool_id = r.xcoms["roll_pool[0]:return_value"]["pool_id"]
    assert [p["id"] for p in summary["pools"]] == [pool_id]
    p, live = summary["pools"][0], s.batch().get_pool(pool_id)
    assert p["allocation_state"] == "steady" and p["current_dedicated_nodes"] == live.current_dedicated_nodes == 4
    assert sum(p["node_counts"].get(k, 0) for k in ("idle", "running")) == 4, p
    assert summary["leftovers"] == [] and summary["errors"] == []
    # the template's settings as Batch has them on the serving pool: subnet, task slots, autoscale (enabled at
    # promotion, evaluated without error) and no drift from the template
    network = live.network_configuration
    assert p["subnet_id"] == network.subnet_id and p["subnet_id"].endswith("/virtualNetworks/vnet-batch/subnets/pools")
    assert (p["task_slots_per_node"], p["node_fill_type"]) == (live.task_slots_per_node, "pack") == (2, "pack")
    auto = p["auto_scale"]
    assert auto["enabled"] is live.enable_auto_scale is True and auto["formula"] == live.auto_scale_formula
    assert auto["last_run"]["error"] is None and "$TargetDedicatedNodes=4" in auto["last_run"]["results"], auto
    assert p["drift"] == []
    # the log holds the same summary as text
    text = format_summary(summary)
    assert text.splitlines()[-1] in r.log and f"{pool_id}: steady, 4/4 dedicated" in r.log
    assert "    matches the template" in text and "    2 task slot(s) per node, pack fill" in text
    assert "    autoscale enabled, evaluated every PT5M: $TargetDedicatedNodes = max(4, " in text


def test_summary_runs_when_preflight_refuses_and_the_run_still_fails(standin_session, tmp_path):
    def windows(cfg):
        cfg["image_definition"]["os_type"] = "Windows"  # the source VM is Linux: preflight refuses, no retry

    dag_id = f"summary_bad_{uuid.uuid4().hex[:8]}"
    r = run_demo(standin_session, tmp_path, dag_id, mutate=windows)
    assert r.task_state("preflight") == "failed", r.log[-4000:]
    assert r.state == "failed"  # the summary (a teardown) does not turn a failed run into a success
    assert r.task_state("run_summary") == "success"
    summary = r.xcoms["run_summary:return_value"]
    assert {"task": "preflight", "state": "failed"}.items() <= next(
        st for st in summary["stages"] if st["task"] == "preflight").items()
    assert summary["pools"] == [] and summary["leftovers"] is None
