"""The failed-region retry's pure decisions (rules/replica_retry.py), shared by publish, promote and create_pool."""
from __future__ import annotations

from batch_images.rules import replica_retry as rr

SUMMARY = [{"region": "West Europe", "state": "Completed"},
           {"region": "North Europe", "state": "FAILED", "details": "throttled"},
           {"region": "UK South", "state": "Failed"}]
CONFIGURED = [{"name": "westeurope", "regionalReplicaCount": 1}, {"name": "northeurope", "regionalReplicaCount": 2},
              {"name": "uksouth", "regionalReplicaCount": 1}]


def test_failed_regions_among_the_waited_ones_in_any_spelling():
    assert [r["region"] for r in rr.failed_among(SUMMARY)] == ["North Europe", "UK South"]
    assert [r["region"] for r in rr.failed_among(SUMMARY, ["northeurope"])] == ["North Europe"]
    assert rr.failed_among(SUMMARY, ["westeurope"]) == []


def test_a_retry_writes_the_configured_list_minus_the_retried_regions():
    assert [t["name"] for t in rr.retry_target_regions(CONFIGURED, ["North Europe", "UK South"])] == ["westeurope"]
    assert [t["name"] for t in rr.retry_target_regions(CONFIGURED, "uksouth")] == ["westeurope", "northeurope"]
    assert rr.retry_target_regions(CONFIGURED) == CONFIGURED


def test_a_fresh_read_decides_what_is_removed_and_what_is_added_back():
    targets = [{"name": "West Europe"}, {"name": "North Europe"}]  # UK South already out (another writer)
    assert rr.still_to_remove(SUMMARY, targets, ["North Europe", "UK South"]) == ["North Europe"]
    replicating = [dict(r, state="Replicating") for r in SUMMARY]  # added back by another writer's full list
    assert rr.still_to_remove(replicating, targets, ["North Europe"]) == []
    assert rr.missing_regions(targets, ["North Europe", "uksouth"]) == ["uksouth"]


def test_the_gallery_region_and_the_messages():
    failed = rr.failed_among(SUMMARY)
    assert rr.home_region_entry(failed, "ukSouth")["region"] == "UK South"
    assert rr.home_region_entry(failed, "westeurope") is None
    assert rr.describe_failed(failed[:1]) == ("North Europe", "throttled")
    assert rr.describe_failed(failed) == ("North Europe, UK South", "North Europe: throttled; UK South: no details")
    assert (rr.retries_text(1), rr.retries_text(2)) == ("1 remove/re-add retry", "2 remove/re-add retries")
