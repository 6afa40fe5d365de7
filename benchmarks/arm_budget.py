"""A run's ARM requests against ARM's token buckets (the fleet benchmark's burst rows).

ARM throttles per region, subscription, principal and operation kind with token buckets (Microsoft Learn,
"Understand how Azure Resource Manager throttles requests": reads 250 refilled 25/s, writes and deletes 200
refilled 10/s; include/azure_standin/core/throttle.py holds the table and the bucket both sides use). What
threatens a run is a burst, not the hour: the figures are the most requests of each kind within any 1-second
window of the stand-in's request log (wall clock, ``real_ts``), as a share of the bucket, and the lowest level a
bucket of Azure's size reaches when the run's requests are replayed through it. Every request of a run comes
from the one service principal of the Airflow connection, so one bucket per kind is the right model.
"""
from __future__ import annotations

from include.azure_standin.core.throttle import BUCKETS, TokenBucket, operation_kind

KINDS = ("read", "write", "delete")


def arm_rows(items: list[dict]) -> list[dict]:
    """The request log's ARM rows (every ARM operation, LRO polls included: ARM counts them as reads)."""
    return [r for r in items if r["family"] == "arm"]


def largest_burst(items: list[dict], kind: str, window: float = 1.0) -> int:
    """Most ARM requests of ``kind`` (read | write | delete) whose ``real_ts`` fall within any ``window``
    seconds."""
    times = sorted(r["real_ts"] for r in arm_rows(items) if operation_kind(r["method"]) == kind)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def lowest_level(items: list[dict], kind: str) -> float:
    """The lowest level a full bucket of Azure's size for ``kind`` reaches when the run's requests are replayed
    through it at their wall-clock times (below 1: the run would have met a 429 there)."""
    size, rate = BUCKETS[kind]
    # a request the stand-in's own bucket refused spent no token (its retry is in the log too)
    rows = sorted(r["real_ts"] for r in arm_rows(items)
                  if operation_kind(r["method"]) == kind and r.get("fault") != "throttled")
    if not rows:
        return float(size)
    bucket, low = TokenBucket(size, rate, rows[0]), float(size)
    for t in rows:
        bucket.refill(t)
        bucket.level = max(0.0, bucket.level - 1)
        low = min(low, bucket.level)
    return low


def burst_figures(items: list[dict]) -> dict:
    """``{"burst": {kind: n}, "share": {kind: n / bucket}, "lowest": {kind: level}, "throttled": n}``: the
    largest 1-second burst per kind, its share of Azure's bucket, the replayed lowest level, and the 429s the
    stand-in's own buckets answered during the run."""
    burst = {k: largest_burst(items, k) for k in KINDS}
    return {"burst": burst, "share": {k: burst[k] / BUCKETS[k][0] for k in KINDS},
            "lowest": {k: round(lowest_level(items, k), 1) for k in KINDS},
            "throttled": sum(1 for r in arm_rows(items) if r["status"] == 429 and r.get("fault") == "throttled")}

