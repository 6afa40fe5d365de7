"""Who retries a failed replica region, and what each retry writes (pure rules for ``operators/replica.py``).

Every pool waits for the image version's replica in its own Batch account's region, and several pools may share a
region. A region that ends Failed is retried (removed from ``targetRegions``, added back) by one task only: the pool
with the lowest index in the plan among the pools in that region (:func:`retrier_index`), so two tasks never retry
the same region at once. Several regions may be retried at once by different tasks, all writing the same property
(``publishingProfile.targetRegions``); each write is the full configured list minus at most the one region its
writer retries (:func:`retry_target_regions`), so concurrent writers converge on the full list: a write can re-add
a region another writer removed (which is that writer's re-add, done early) but never drops a region that
replicated, and ``safetyProfile.allowDeletionOfReplicatedLocations: false`` would refuse that anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .ids import region_key


def pool_region(pool: Mapping[str, Any]) -> str | None:
    """The Batch account's region of a plan pool (its ``batch_account_location``; None when unknown)."""
    return pool.get("batch_account_location") or None


def retrier_index(pool_regions: Sequence[str | None], region: str) -> int | None:
    """Index (in the plan's ``pools``, = the map index of the mapped pool tasks) of the pool that retries ``region``:
    the first pool whose account is in that region; None when no pool is."""
    want = region_key(region)
    return next((i for i, r in enumerate(pool_regions) if r and region_key(r) == want), None)


def retry_target_regions(configured: Sequence[Mapping[str, Any]], retrying: str | None = None) -> list[dict]:
    """``targetRegions`` to write: the configured list (wire format), without ``retrying`` when given."""
    drop = region_key(retrying) if retrying else None
    return [dict(t) for t in configured if region_key(t.get("name")) != drop]


def targets_region(target_regions: Sequence[Mapping[str, Any]], region: str) -> bool:
    """Is ``region`` among a version's ``targetRegions`` (names compared as Azure does: case and spaces ignored)?"""
    return any(region_key(t.get("name")) == region_key(region) for t in target_regions)
