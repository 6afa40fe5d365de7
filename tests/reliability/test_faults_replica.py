"""A pool's own region failing to replicate (issue 10; issue 20: the version's operation covers every region).

The real DAG (`airflow dags test`, a child process) against the stand-in; the run's one pool is in the seeded North
Europe account (`batchimagesne`), the gallery in West Europe, so North Europe is the replica that pool needs and the
one a ``replication_failed`` fault breaks. ``publish_image_version`` waits for the version's whole operation (every
region) and retries a failed region before any pool starts (``create_pool``'s own region wait is a guard then). A
serving pool in the West Europe account must come out untouched. Invariants measured with the SDKs
(pipeline_harness.PipelineHarness).
"""
from __future__ import annotations

import json

import pytest

from include.pipeline_fixtures import short_field_pool
from pipeline_harness import PipelineHarness, dag_id_for, pipeline_config, summary

REGIONS = ["westeurope", "northeurope"]
MESSAGE = "The replication job failed: storage account throttled"


def _ne_harness(standin, tmp_path, request, pools: int = 1) -> PipelineHarness:
    ep = standin.endpoints
    demo = ep["demo"]
    ne = ep["batch_accounts"][demo["batch_account_ne"]]
    conn = {"conn_type": "azure_batch", "extra": {"account_url": ne["endpoint"], "credential_conn_id": "azure_default",
                                                  "ca_bundle": ep["ca_bundle"]}}
    dag_id = dag_id_for(request.node.name)
    cfg = pipeline_config(ep, dag_id, regions=REGIONS, pool={
        "batch_conn_id": "azure_batch_ne", "batch_account_id": demo["batch_account_ne_id"],
        "batch_account_location": demo["batch_account_ne_location"]})
    base = short_field_pool(cfg["pools"][0])  # fixed sizes, no subnet: the demo's subnet is in westeurope
    cfg["pools"] = [base] + [dict(base, pool_id_prefix=f"{base['pool_id_prefix']}-{i}", target_dedicated_nodes=1)
                             for i in range(1, pools)]
    return PipelineHarness(standin, dag_id, tmp_path, cfg, env={"AIRFLOW_CONN_AZURE_BATCH_NE": json.dumps(conn)})


@pytest.fixture
def ne_harness(standin, tmp_path, request):
    """A harness whose pipeline's pool is in the North Europe Batch account (connection azure_batch_ne)."""
    return _ne_harness(standin, tmp_path, request)


def test_pool_region_failed_once_is_retried_and_the_pool_created(ne_harness, standin, reliability_row):
    """North Europe ends Failed once: publish_image_version removes it from targetRegions, adds it back and waits;
    create_pool then creates the pool there; promotion finds every region Completed."""
    h = ne_harness
    standin.control.add_fault("replication_failed", count=1, match={"region": "northeurope"}, message=MESSAGE)
    result = h.run()
    report = h.invariants(success=True)
    log = result.log
    retries = log.count("removing it from targetRegions and adding it back")
    reliability_row("pool's own region replication Failed once (publish retries)", runs=1,
                    survived=result.state == "success" and not report.problems, leaked=report.leaked)
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert retries == 1, f"{retries} region retries; log {result.log_path}"
    pool_id = h.plan["pools"][0]["pool_id"]
    assert report.facts["pools"][pool_id]["account"] == standin.endpoints["demo"]["batch_account_ne"]
    # the pool was created after the retry, on the version; the remove and the re-add each one PUT
    reqs = h.requests()
    puts = [r for r in reqs if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["status"] < 300]
    add = next(r for r in reqs if r["op"] == "Pool_Add" and r["status"] == 201)
    assert len([r for r in puts if r["id"] < add["id"]]) == 3, puts  # create, remove North Europe, add it back


def test_pool_region_always_failing_fails_the_pool_naming_the_region(ne_harness, standin, reliability_row):
    """North Europe fails every time: after two remove/re-add retries (in each of the task's 3 tries)
    publish_image_version, which waits for the version's whole operation (every region), fails naming the region and
    Azure's message; no pool of the run is made, the serving pool is untouched, the temporary snapshots and image are
    deleted."""
    h = ne_harness
    standin.control.add_fault("replication_failed", count=-1, match={"region": "northeurope"}, message=MESSAGE)
    result = h.run()
    report = h.invariants(success=False)
    reliability_row("pool's own region replication Failed always", runs=1, survived=not report.problems,
                    leaked=report.leaked, writes_before_refusal=h.writes_before_refusal(result))
    assert result.state == "failed", summary(report, result)
    assert not report.problems, summary(report, result)
    failed = {t["task"]: t for t in result.tasks if t["state"] == "failed"}
    assert "publish_image_version" in failed, failed
    assert "replication in North Europe still failed after 2 remove/re-add retries" in result.log, result.log_path
    assert MESSAGE in result.log, result.log_path
    assert not [r for r in h.requests() if r["op"] == "Pool_Add" and r["status"] == 201], "a pool was created"
    assert result.log.count("removing it from targetRegions and adding it back") == 2 * 3, result.log_path


def test_two_pools_sharing_a_failed_region_retry_it_once(standin, tmp_path, request, reliability_row):
    """Two logical pools in the North Europe account, North Europe Failed once: publish_image_version removes and
    re-adds it once, before either pool starts; both pools are created, no other pool touched."""
    h = _ne_harness(standin, tmp_path, request, pools=2)
    standin.control.add_fault("replication_failed", count=1, match={"region": "northeurope"}, message=MESSAGE)
    result = h.run()
    report = h.invariants(success=True)
    reliability_row("replication Failed in a region 2 pools share (one retry)", runs=1,
                    survived=result.state == "success" and not report.problems, leaked=report.leaked,
                    note="retried by publish_image_version")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert result.log.count("removing it from targetRegions and adding it back") == 1, result.log_path
    puts = [r for r in h.requests() if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["status"] < 300]
    adds = [r for r in h.requests() if r["op"] == "Pool_Add" and r["status"] == 201]
    assert len(adds) == 2, adds
    assert len([r for r in puts if r["id"] < min(a["id"] for a in adds)]) == 3, puts  # create, remove, re-add
