"""Wait faults (issue 8, items 1-3): answers real Azure or a proxy gives that used to end a wait wrongly.

* Throttling with Retry-After values azure-core cannot parse (a list, garbage, negative, empty) during the
  waits: each is waited out (the waiter clients leave retries to our loop) and the run succeeds.
* Every ARM state spelled in lower case (``succeeded``, ``completed``): the waits finish at once, not at
  their timeouts.
* ARM's read-after-write 404: the first two reads of each snapshot, the managed image and the version right
  after their create answer 404 ResourceNotFound; the waits poll again and the run succeeds.

Each test runs the whole DAG with ``airflow dags test`` (pipeline_harness), checks the invariants with the
SDKs (nothing leaked, one version, the pool) and records a table row.
"""
from __future__ import annotations

import pytest

from pipeline_harness import PipelineHarness, dag_id_for, pipeline_config, retry_after_gaps, summary

# Reads the waits make. Snapshots_Get is polled by wait_for_snapshots after snapshot_disks' two existence
# checks (skipped by the faults below, so that the odd answers land in the waits).
WAIT_READS = {"Snapshots_Get": 2, "Images_Get": 1, "GalleryImageVersions_Get": 1}


@pytest.fixture
def harness(standin, tmp_path, request):
    def make(**top) -> PipelineHarness:
        dag_id = dag_id_for(request.node.name)
        return PipelineHarness(standin, dag_id, tmp_path, pipeline_config(standin.endpoints, dag_id, **top))

    return make


def fired(standin, kind: str) -> int:
    return sum(f["fired"] for f in standin.control.faults() if f["kind"] == kind)


def test_odd_retry_after_values_in_the_waits(harness, standin, reliability_row):
    """A 429 with Retry-After `2,1` (a list: 2 s honoured), `soon`, `-5` and `` (each: the 10 s fallback) on the
    reads of the snapshot, image and version waits: no wait crashes, the run succeeds, nothing is left over."""
    h = harness()
    odd = {"Snapshots_Get": ["2,1", "soon"], "Images_Get": ["-5"], "GalleryImageVersions_Get": [""]}
    for op, headers in odd.items():
        for header in headers:
            standin.control.add_fault("http", count=1, skip=WAIT_READS[op], match={"op": op, "method": "GET"},
                                      status=429, retry_after_header=header)
    result = h.run()
    report = h.invariants(success=True)
    throttled = [r for r in h.requests() if r["status"] == 429]
    n = sum(len(v) for v in odd.values())
    crashed = "crashed" in result.log_path.read_text(errors="replace")
    retried = [t["task"] for t in result.tasks if (t.get("try") or 1) > 1]  # a wait that failed was retried
    survived = result.state == "success" and not report.problems and len(throttled) == n and not crashed \
        and not retried
    reliability_row("429 with Retry-After '2,1', 'soon', '-5', '' in the waits", runs=1, survived=survived,
                    leaked=report.leaked, note=f"{len(throttled)} throttled reads")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert len(throttled) == n, [(r["op"], r["status"]) for r in throttled]
    assert not crashed and not retried, retried


def test_lower_case_state_spellings(harness, standin, reliability_row):
    """Every ARM answer spells Succeeded and Completed in lower case for the whole run: the waits read them as
    done at once, the run succeeds, nothing is left over."""
    h = harness()
    standin.control.add_fault("state_spelling", count=-1, match={"state": "Succeeded"}, spelling="succeeded")
    standin.control.add_fault("state_spelling", count=-1, match={"state": "Completed"}, spelling="completed")
    result = h.run()
    report = h.invariants(success=True)
    respelled = fired(standin, "state_spelling")
    survived = result.state == "success" and not report.problems and respelled > 0
    reliability_row("states spelled 'succeeded' / 'completed' (all ARM reads)", runs=1, survived=survived,
                    leaked=report.leaked, note=f"{respelled} answers respelled")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert respelled > 0


def test_read_after_write_404(harness, standin, reliability_row):
    """The first two reads after the create of each snapshot, the managed image and the version answer 404
    ResourceNotFound: the waits treat them as not visible yet; the run succeeds, nothing is left over."""
    h = harness()
    for rtype in ("snapshots", "images", "versions"):
        standin.control.add_fault("not_found_after_create", count=-1, match={"resource_type": rtype}, reads=2)
    result = h.run()
    report = h.invariants(success=True)
    not_found = {r["op"] for r in h.requests() if r["status"] == 404 and r["method"] == "GET"}
    served = {"Snapshots_Get", "Images_Get", "GalleryImageVersions_Get"} <= not_found
    survived = result.state == "success" and not report.problems and served
    reliability_row("404 on the first 2 reads after each create", runs=1, survived=survived, leaked=report.leaked,
                    note=f"{fired(standin, 'not_found_after_create')} creates answered stale")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert served, not_found


def test_arms_token_buckets_at_small_sizes_are_waited_out(harness, standin, reliability_row):
    """ARM's token buckets on (core/throttle.py), shrunk so that a one-pool run empties them: reads 8 refilled 2 a
    second, writes and deletes 3 refilled 1 a second. Every empty bucket answers 429 SubscriptionRequestsThrottled
    with a whole-second Retry-After; azure-core (operators) and the waits (triggers) wait it out, no request is
    asked again sooner, no task fails or is retried, and the run succeeds with nothing left over."""
    h = harness()
    standin.control.throttle(enforce=True, buckets={"read": {"size": 8, "refill_per_second": 2},
                                                    "write": {"size": 3, "refill_per_second": 1},
                                                    "delete": {"size": 3, "refill_per_second": 1}})
    result = h.run(timeout=600.0)
    standin.control.throttle(enforce=False)   # the invariants' own SDK reads are not part of the run
    report = h.invariants(success=True)
    items = h.requests()
    throttled = [r for r in items if r["status"] == 429 and r["fault"] == "throttled"]
    early = [g for g in retry_after_gaps(items) if g["gap"] is not None and g["gap"] < g["retry_after"] - 0.02]
    retried = [t["task"] for t in result.tasks if (t.get("try") or 1) > 1]
    kinds = sorted({r["method"] for r in throttled})
    survived = result.state == "success" and not report.problems and bool(throttled) and not retried and not early
    reliability_row("ARM token buckets on, reads 8 @2/s, writes/deletes 3 @1/s", runs=1, survived=survived,
                    leaked=report.leaked, note=f"{len(throttled)} 429s ({', '.join(kinds)}) waited out")
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert throttled, "the small buckets never emptied: the row shows nothing"
    assert not retried, f"tasks retried: {retried}"
    assert not early, f"asked again sooner than Retry-After: {early}"
