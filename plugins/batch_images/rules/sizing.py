"""How many image replicas a pool needs, and how long to let Batch and the waits take.

Replicas: Batch nodes all pull the image at once; each gallery replica serves a limited number of
VMs. Two published rules disagree, so the rule is a setting and every number says which rule made it:

* ``per300`` (default): Microsoft's current page, one replica per 300 VMs (3000 VMs -> 10).
* ``per600``: the 2020 seed document, one replica per 600 VMs (3000 VMs -> 5).

Both are minimums; Microsoft recommends more than the minimum.

Resize timeout (fixed-size pools): at least 15 minutes per 1000 VMs (2000 -> 30 min), never below
Batch's 15-minute default; Batch refuses anything under 5 minutes.

Wait timeouts (``timeout_for_snapshot``, ``_image``, ``_replication``, ``_allocation``) are generous
ceilings for a stuck operation, each a documented formula of the sizes involved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from .errors import InvalidInput
from .ids import region_key

MIN_REPLICAS = 1
MAX_REPLICAS = 100  # Azure's allowed range of regionalReplicaCount is 1..100
DEFAULT_RESIZE_TIMEOUT = timedelta(minutes=15)  # Batch's API default
MIN_RESIZE_TIMEOUT = timedelta(minutes=5)  # Batch refuses less
RESIZE_MINUTES_PER_1000_VMS = 15


class ReplicaRule(StrEnum):
    PER300 = "per300"
    PER600 = "per600"

    @property
    def vms_per_replica(self) -> int:
        return 300 if self is ReplicaRule.PER300 else 600

    @property
    def source(self) -> str:
        if self is ReplicaRule.PER300:
            return "Microsoft's current guidance, one replica per 300 VMs"
        return "the 2020 seed document, one replica per 600 VMs"


def parse_replica_rule(value: object, field: str = "replica_rule") -> ReplicaRule:
    if isinstance(value, ReplicaRule):
        return value
    if isinstance(value, str):
        try:
            return ReplicaRule(value.strip().lower())
        except ValueError:
            pass
    raise InvalidInput(field, value, "unknown replica rule",
                       f"use one of {', '.join(r.value for r in ReplicaRule)} (per300 is Microsoft's current rule)")


def _vm_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(field, value, "a VM count is an integer >= 0", "pass the pool's target node count")
    return value


@dataclass(frozen=True)
class ReplicaSizing:
    count: int
    rule: ReplicaRule
    vm_count: int
    explanation: str

    def to_dict(self) -> dict:
        return {"count": self.count, "rule": self.rule.value, "vm_count": self.vm_count,
                "explanation": self.explanation}


def replicas_for(vm_count: int, rule: ReplicaRule | str = ReplicaRule.PER300, field: str = "vm_count") -> ReplicaSizing:
    """``max(1, ceil(vm_count / per))`` replicas; more than 100 (Azure's limit) is an error."""
    rule = parse_replica_rule(rule)
    vm_count = _vm_count(vm_count, field)
    per = rule.vms_per_replica
    count = max(MIN_REPLICAS, -(-vm_count // per))
    if count > MAX_REPLICAS:
        raise InvalidInput(
            field, vm_count,
            f"{vm_count} VMs need {count} image replicas in one region under rule {rule.value} ({rule.source}); "
            f"Azure allows at most {MAX_REPLICAS} replicas per region",
            f"split the VMs across pools in Batch accounts in other regions (at most {MAX_REPLICAS * per} VMs "
            f"per region under {rule.value})",
        )
    explanation = (f"{vm_count} VMs / {per} VMs per replica, rounded up, at least {MIN_REPLICAS} = {count} "
                   f"(rule {rule.value}: {rule.source})")
    return ReplicaSizing(count, rule, vm_count, explanation)


def region_replicas(
    pools: Iterable[tuple[str, int] | Any],
    target_regions: Iterable[str],
    rule: ReplicaRule | str = ReplicaRule.PER300,
) -> dict[str, ReplicaSizing]:
    """Replica count per target region, sized for the sum of VMs of the pools whose Batch account is there.

    ``pools`` are ``(batch account region, target VM count)`` pairs, or objects with ``.region`` and
    ``.vm_count`` (like ``PoolConfig``). Every target region gets at least 1.
    A pool in a region that is not a target region is an error: Batch needs a replica in its own region.
    """
    rule = parse_replica_rule(rule)
    regions = [region_key(r) for r in target_regions]
    totals: dict[str, int] = {r: 0 for r in regions}
    for i, pool in enumerate(pools):
        region, vm_count = (pool.region, pool.vm_count) if hasattr(pool, "vm_count") else pool
        key = region_key(region) if isinstance(region, str) else region
        if key not in totals:
            raise InvalidInput(f"pools[{i}].region", region,
                               "the pool's Batch account is in a region the image is not replicated to",
                               f"add {region!r} to target_regions (now: {', '.join(regions) or 'none'})")
        totals[key] += _vm_count(vm_count, f"pools[{i}].vm_count")
    out: dict[str, ReplicaSizing] = {}
    for region, total in totals.items():
        sizing = replicas_for(total, rule, field=f"region {region} (VMs of all pools there)")
        out[region] = ReplicaSizing(sizing.count, rule, total, f"{region}: {sizing.explanation}")
    return out


# --- timeouts ------------------------------------------------------------------------------------------------------


def resize_timeout_for(vm_count: int, fixed_size: bool = True) -> timedelta:
    """Pool resizeTimeout: 15 min per 1000 VMs rounded up to whole minutes, never under 15 min.

    0..1000 -> 15 min, 1500 -> 23 min, 2000 -> 30 min, 10000 -> 150 min. Autoscale pools: 15 min
    (Batch ignores resizeTimeout when autoscale drives the size).
    """
    vm_count = _vm_count(vm_count, "vm_count")
    if not fixed_size:
        return DEFAULT_RESIZE_TIMEOUT
    minutes = -(-vm_count * RESIZE_MINUTES_PER_1000_VMS // 1000)
    return at_least_resize_floor(timedelta(minutes=minutes))


def at_least_resize_floor(value: timedelta) -> timedelta:
    """A pool's resizeTimeout raised to :data:`DEFAULT_RESIZE_TIMEOUT` (15 min) when shorter: Batch's
    default and the floor the image recipe asks for. The one floor the preflight plan, the pool operator and
    the steady-state sensor's repairs apply (callers that log compare the result with what they passed)."""
    return max(value, DEFAULT_RESIZE_TIMEOUT)


def validate_resize_timeout(value: object, field: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise InvalidInput(field, value, f"expected a timedelta, got {type(value).__name__}",
                           "pass a datetime.timedelta, e.g. timedelta(minutes=15)")
    if value < MIN_RESIZE_TIMEOUT:
        raise InvalidInput(field, value, f"Batch's minimum resize timeout is {MIN_RESIZE_TIMEOUT}",
                           "use at least 5 minutes (15 per 1000 VMs is recommended for fixed-size pools)")
    return value


def _size_gb(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInput(field, value, "an image size is a number of GB > 0",
                           "pass the source disks' total size in GB")
    return value


def timeout_for_snapshot(size_gb: float) -> timedelta:
    """How long to wait for the source VM's disk snapshots, generously.

    ``30 min + 1 min per whole 10 GB`` of ``size_gb``, the disks' total size (OS + data disks: one wait
    covers all the snapshots). 30 GB: 33 min; 128 GB: 42 min; 1 TB: 132 min. Like the other wait
    timeouts, a ceiling for a stuck operation, not an estimate.
    """
    return timedelta(minutes=30 + int(_size_gb(size_gb, "size_gb") // 10))


def timeout_for_image(total_size_gb: float) -> timedelta:
    """How long to wait for the managed image made from the snapshots, generously.

    ``30 min + 1 min per whole 20 GB`` of ``total_size_gb`` (OS + data disks). 30 GB: 31 min;
    128 GB: 36 min; 1 TB: 81 min. Like the other wait timeouts, a ceiling for a stuck operation, not
    an estimate.
    """
    return timedelta(minutes=30 + int(_size_gb(total_size_gb, "total_size_gb") // 20))


def timeout_for_replication(image_size_gb: float, regions: int, replicas: int) -> timedelta:
    """How long to wait for an image version to replicate, generously.

    ``30 min + 1 min per GB per region + 5 min per replica`` (``replicas`` = total over all regions).
    A 30 GB image to 2 regions with 3 replicas: 30 + 60 + 15 = 105 min. Replication copies the image
    to each region and then fans it out to each replica; real copies run at roughly a GB per minute or
    better, so this is a ceiling for a stuck operation, not an estimate.
    """
    _size_gb(image_size_gb, "image_size_gb")
    if isinstance(regions, bool) or not isinstance(regions, int) or regions < 1:
        raise InvalidInput("regions", regions, "the number of target regions is an integer >= 1",
                           "pass len(target_regions)")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < regions:
        raise InvalidInput("replicas", replicas, "the total replica count is an integer >= the number of regions",
                           "pass the sum of regional replica counts")
    return timedelta(minutes=30 + math.ceil(image_size_gb * regions) + 5 * replicas)


def timeout_for_allocation(vm_count: int, resize_timeout: timedelta | None = None) -> timedelta:
    """How long to wait for a pool to reach steady state with its nodes idle, generously.

    ``resize timeout + 30 min``: Batch itself stops allocating after the resize timeout (and reports a
    resize error), then nodes still boot and run their start task; 30 min covers that.
    """
    resize = resize_timeout if resize_timeout is not None else resize_timeout_for(vm_count)
    validate_resize_timeout(resize, "resize_timeout")
    _vm_count(vm_count, "vm_count")
    return resize + timedelta(minutes=30)


def total_replicas(plan: Mapping[str, ReplicaSizing | int]) -> int:
    """Sum of replica counts of a region -> sizing (or count) map."""
    return sum(v.count if isinstance(v, ReplicaSizing) else v for v in plan.values())
