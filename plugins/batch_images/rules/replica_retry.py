"""The failed-region retry's decisions (pure rules for ``operators/region_retry.py``): which regions failed, who
retries a region, and what each retry writes.

Microsoft's workaround for a replica region that ends Failed: remove it from ``publishingProfile.targetRegions``,
wait for the update, add it back (up to ``max_region_retries`` times). ``publish_image_version`` and
``promote_image_version`` retry every failed region they wait for themselves; every pool (``create_pool``) waits
for the image version's replica in its own Batch account's region, and several pools may share a region. A region
that ends Failed there is retried by one task only: the pool with the lowest index in the plan among the pools in
that region (:func:`retrier_index`), so two tasks never retry the same region at once. Several regions may be
retried at once by different tasks, all writing the same property; each write is the full configured list minus
at most the regions its writer retries (:func:`retry_target_regions`), so concurrent writers converge on the full
list: a write can re-add a region another writer removed (which is that writer's re-add, done early) but never
drops a region that replicated, and ``safetyProfile.allowDeletionOfReplicatedLocations: false`` would refuse that
anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import states
from .ids import region_key


def retrier_index(pool_regions: Sequence[str | None], region: str) -> int | None:
    """Index (in the plan's ``pools``, = the map index of the mapped pool tasks) of the pool that retries ``region``:
    the first pool whose account is in that region; None when no pool is."""
    want = region_key(region)
    return next((i for i, r in enumerate(pool_regions) if r and region_key(r) == want), None)


def _keys(regions: str | Iterable[str] | None) -> set[str]:
    if not regions:
        return set()
    return {region_key(regions)} if isinstance(regions, str) else {region_key(r) for r in regions}


def retry_target_regions(configured: Sequence[Mapping[str, Any]],
                         retrying: str | Iterable[str] | None = None) -> list[dict]:
    """``targetRegions`` to write: the configured list (wire format), without the region(s) ``retrying`` when given."""
    drop = _keys(retrying)
    return [dict(t) for t in configured if region_key(t.get("name")) not in drop]


def targets_region(target_regions: Sequence[Mapping[str, Any]], region: str) -> bool:
    """Is ``region`` among a version's ``targetRegions`` (names compared as Azure does: case and spaces ignored)?"""
    return any(region_key(t.get("name")) == region_key(region) for t in target_regions)


def failed_among(summary: Sequence[Mapping[str, Any]] | None, only: Iterable[str] | None = None) -> list[dict]:
    """The ``replicationStatus.summary`` entries (``region``, ``state``, ``details``) whose state is Failed, among
    the regions ``only`` (None or empty: every region), in the summary's order."""
    keep = _keys(only)
    return [dict(r) for r in summary or []
            if states.is_failed(r.get("state")) and (not keep or region_key(r.get("region")) in keep)]


def still_to_remove(summary: Sequence[Mapping[str, Any]] | None, target_regions: Sequence[Mapping[str, Any]],
                    regions: Iterable[str]) -> list[str]:
    """The ``regions`` a fresh read still shows Failed and in targetRegions: the ones a retry removes (a region
    another writer already removed, or added back and now replicating, is left as it is)."""
    failed = {region_key(r["region"]) for r in failed_among(summary, regions)}
    return [r for r in regions if region_key(r) in failed and targets_region(target_regions, r)]


def missing_regions(target_regions: Sequence[Mapping[str, Any]], regions: Iterable[str]) -> list[str]:
    """The ``regions`` that are not in ``target_regions`` (to add back after a removal)."""
    return [r for r in regions if not targets_region(target_regions, r)]


def home_region_entry(failed: Sequence[Mapping[str, Any]], home: str) -> Mapping[str, Any] | None:
    """The failed entry of the gallery's own region ``home``, which cannot be removed from targetRegions."""
    return next((r for r in failed if region_key(r.get("region")) == region_key(home)), None)


def retries_text(n: int) -> str:
    """``1 remove/re-add retry``, ``2 remove/re-add retries``."""
    return f"{n} remove/re-add retr{'y' if n == 1 else 'ies'}"


def describe_failed(failed: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(names, details) of failed summary entries for messages: ``("North Europe", "Azure's details")`` for one
    region, ``("North Europe, UK South", "North Europe: ...; UK South: ...")`` for several."""
    names = ", ".join(str(r.get("region")) for r in failed)
    if len(failed) == 1:
        return names, failed[0].get("details") or "no details"
    return names, "; ".join(f"{r.get('region')}: {r.get('details') or 'no details'}" for r in failed)
