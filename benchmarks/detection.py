"""Benchmark 3, detection lag: from the moment a pool became ready in the stand-in to our waiter's success.

The event time is the stand-in's own: the pool's ``allocationStateTransitionTime`` (steady) and the last
node's ``stateTransitionTime`` (idle), both simulated time, mapped to wall time with the stand-in's clock
(``GET /_control/clock``: simulated now and scale, read at a known wall time). The waiter is the pipeline's:
``run_waiter_sync("batch_pool_steady", ...)`` - the trigger's loop, run in this process - with a short poll
interval; its success is the moment it returns. Target: lag <= one poll interval.

Then the same wait under throttling: every ``GET /pools/{id}`` answers 429 with a Retry-After longer than
the poll interval for the first few polls (stand-in ``http`` faults). From the stand-in's request log, each
429 and the next Batch request after it give the gap the client left; a gap shorter than the Retry-After
is a violation. Target: 0 violations.
"""
from __future__ import annotations

from datetime import datetime
import time

from benchmarks.common import Bench, StandIn, median, verdict

KEY = "detection"
SCALE = 60.0          # simulated seconds per real second: a few-node pool allocates in a few real seconds
POLL_INTERVAL = 1.0   # real seconds


def _epoch(value) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def ready_wall_time(standin: StandIn, pool_id: str) -> float:
    """Wall-clock epoch seconds at which the stand-in made the pool steady with every node idle."""
    batch = standin.batch()
    pool = batch.get_pool(pool_id)
    marks = [_epoch(pool.allocation_state_transition_time)]
    marks += [_epoch(n.state_transition_time) for n in batch.list_nodes(pool_id)]
    sim_now, scale, real_now = standin.clock()
    return real_now - (sim_now - max(marks)) / scale


def _wait(pool_id: str, nodes: int, poll_interval: float) -> dict:
    from batch_images.triggers.base import run_waiter_sync

    return run_waiter_sync("batch_pool_steady", {"pool_id": pool_id, "target_dedicated_nodes": nodes},
                           "azure_batch_default", poll_interval=poll_interval, timeout=300)


def run(standin: StandIn, trials: int = 3) -> Bench:
    bench = Bench(
        KEY, "Detection lag",
        measures="wall seconds from the stand-in's ready event to the batch_pool_steady waiter's success; "
                 "polls sooner than a Retry-After",
        unit="seconds / violations",
        ratio_reads="lag / poll interval: at most 1 means the change was seen on the next poll",
        reference=f"the poll interval, {POLL_INTERVAL:g} s",
    )
    standin.reset(scale=SCALE)
    standin.use_connections()
    lags = []
    for i in range(trials):
        pool_id, nodes = f"bench-detect-{i}", 2 + i
        standin.create_marketplace_pool(pool_id, nodes)
        event = _wait(pool_id, nodes, POLL_INTERVAL)
        done = time.time()
        if event["status"] != "success":
            raise RuntimeError(f"waiter on {pool_id} ended {event['status']}: {event['message']}")
        lags.append(done - ready_wall_time(standin, pool_id))
    worst = max(lags)
    bench.add(f"lag, median of {trials}", "s", median(lags), POLL_INTERVAL, median(lags) / POLL_INTERVAL)
    bench.add(f"lag, worst of {trials}", "s", worst, POLL_INTERVAL, worst / POLL_INTERVAL,
              "<= 1 poll interval", verdict(worst <= POLL_INTERVAL))

    # Throttled: Retry-After (real) = 3 poll intervals, on the first 3 pool reads.
    retry_after_sim = 3 * POLL_INTERVAL * SCALE
    pool_id = "bench-detect-throttled"
    standin.create_marketplace_pool(pool_id, 2)
    since = standin.last_request_id()
    standin.control.add_fault("http", count=3, match={"op": "Pool_Get", "method": "GET"}, status=429,
                              retry_after=retry_after_sim)
    event = _wait(pool_id, 2, POLL_INTERVAL)
    standin.control.clear_faults()
    rows = [r for r in standin.requests_since(since, items=True)["items"] if r["family"] == "batch"]
    throttled = [i for i, r in enumerate(rows) if r["status"] == 429]
    gaps, violations = [], 0
    for i in throttled:
        if i + 1 < len(rows):
            gap = rows[i + 1]["real_ts"] - rows[i]["real_ts"]
            gaps.append(gap)
            violations += gap < float(rows[i]["retry_after"] or 0)
    if event["status"] != "success":
        bench.notes.append(f"the throttled wait ended {event['status']}: {event['message']}")
    retry_after_real = retry_after_sim / SCALE
    bench.add("429s answered with Retry-After", "responses", len(throttled), None, None, "3 (injected)",
              verdict(len(throttled) == 3))
    bench.add("shortest gap after a 429", "s", min(gaps) if gaps else None, retry_after_real,
              (min(gaps) / retry_after_real) if gaps else None, ">= Retry-After", verdict(bool(gaps) and violations == 0))
    bench.add("polls sooner than Retry-After", "violations", violations, None, None, "0", verdict(violations == 0))
    bench.notes.append(f"stand-in time scale {SCALE:g}x; Retry-After {retry_after_real:g} s real (3 poll intervals) "
                       "on the first 3 GET /pools/{id}; gaps are between the stand-in's log stamps of the 429 "
                       "and of the next Batch request")
    bench.detail = {"lags": lags, "gaps_after_429": gaps, "retry_after_s": retry_after_real,
                    "throttled_event": {k: event.get(k) for k in ("status", "polls")}}
    return bench
