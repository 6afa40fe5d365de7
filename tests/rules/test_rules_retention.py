"""The retention rule (rules/retention.py): versions as ARM returns them + what Batch references -> deletes,
keeps with reasons, end-of-life dates. No stand-in, no Airflow."""

from __future__ import annotations

from datetime import date

import pytest

from batch_images.rules import naming
from batch_images.rules.errors import InvalidInput
from batch_images.rules.retention import Reference, select

DEF = ("/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/resourceGroups/rg/providers/Microsoft.Compute/galleries/"
       "gal/images/ubuntu")
TODAY = date(2026, 12, 1)
OURS = {naming.TAG_MANAGED_BY: naming.MANAGED_BY}


def vid(name: str) -> str:
    return f"{DEF}/versions/{name}"


def version(name: str, published: str = "2026-11-01T00:00:00Z", ours: bool = True, excluded: bool = False,
            eol: str | None = None, block: bool = False) -> dict:
    publishing = {"publishedDate": published, "excludeFromLatest": excluded}
    if eol:
        publishing["endOfLifeDate"] = eol
    props = {"publishingProfile": publishing}
    if block:
        props["safetyProfile"] = {"blockDeletionBeforeEndOfLife": True}
    return {"id": vid(name), "name": name, "tags": OURS if ours else {}, "properties": props}


def names(ids) -> list[str]:
    return sorted(i.rsplit("/", 1)[-1] for i in ids)


def test_the_issue_reproduction_a_pool_on_the_oldest_version_keeps_it():
    """Versions 1.0.0-1.0.3, keep_versions 3, a pool on 1.0.0: the old operator deleted 1.0.0."""
    versions = [version(f"1.0.{i}") for i in range(4)]
    plan = select(versions, keep_versions=3, references=[Reference(vid("1.0.0"), "pool p1 (acct)")], today=TODAY)
    assert plan.delete == []
    assert plan.keep[vid("1.0.0")] == "used by pool p1 (acct)"


def test_five_versions_one_used_by_a_foreign_pool_exactly_the_unreferenced_old_ones_go():
    versions = [version(f"1.0.{i}", published=f"2026-11-0{i + 1}T00:00:00Z") for i in range(5)]
    refs = [Reference(vid("1.0.1").upper(), "pool users-pool (acct)")]  # ARM ids compare case-insensitively
    plan = select(versions, keep_versions=2, references=refs, today=TODAY, end_of_life_days=90)
    assert names(plan.delete) == ["1.0.0", "1.0.2"]
    assert names(plan.keep) == ["1.0.1", "1.0.3", "1.0.4"]
    # 1.0.3 stopped serving when 1.0.4 was published (2026-11-05): 90 days later; the used one gets none
    assert plan.end_of_life == {vid("1.0.3"): date(2027, 2, 3)}


def test_versions_order_by_their_integers_not_as_text():
    versions = [version(n) for n in ("2026.1125.0", "2026.999.0", "2026.1001.0", "2026.1125.10", "2026.1125.9")]
    plan = select(versions, keep_versions=2, references=[], today=TODAY)
    assert names(plan.keep) == ["2026.1125.10", "2026.1125.9"]  # as text, 2026.1125.9 would sort after .10
    assert names(plan.delete) == ["2026.1001.0", "2026.1125.0", "2026.999.0"]


def test_newest_this_run_latest_foreign_and_blocked_versions_are_kept():
    versions = [
        version("1.0.0", ours=False),
        version("1.0.1", block=True, eol="2027-01-01T00:00:00Z"),   # blocked until its end of life
        version("1.0.2", block=True, eol="2026-11-15T00:00:00Z"),   # block expired: deletable
        version("1.0.3", block=True),                               # blocked, no end of life: assume blocked
        version("1.0.4"),                                           # this run's (a backfill's, older)
        version("1.0.5"),                                           # the latest: 1.0.6 is excluded
        version("1.0.6", excluded=True),                            # the newest (a canary not promoted)
    ]
    plan = select(versions, keep_versions=1, references=[], today=TODAY, this_run_version_id=vid("1.0.4"))
    assert names(plan.delete) == ["1.0.2"]
    assert plan.keep[vid("1.0.6")] == "the newest version"
    assert plan.keep[vid("1.0.4")] == "built by this run"
    assert plan.keep[vid("1.0.5")].startswith("floats as latest")
    assert "not made by this project" in plan.keep[vid("1.0.0")]
    assert "2027-01-01" in plan.keep[vid("1.0.1")]
    assert "blockDeletionBeforeEndOfLife" in plan.keep[vid("1.0.3")]


def test_a_pool_on_the_definition_itself_keeps_latest():
    versions = [version("1.0.0"), version("1.0.1"), version("1.0.2", excluded=True)]
    plan = select(versions, keep_versions=1, references=[Reference(DEF, "pool floating (acct)")], today=TODAY)
    assert plan.keep[vid("1.0.1")] == "used by pool floating (acct) (latest)"
    assert names(plan.delete) == ["1.0.0"]


def test_end_of_life_is_stable_and_never_in_the_past():
    versions = [version("1.0.0", published="2026-11-01T00:00:00Z"),
                version("1.0.1", published="2026-11-20T00:00:00Z", excluded=True),  # a failed canary
                version("1.0.2", published="2026-11-25T00:00:00Z")]
    plan = select(versions, keep_versions=3, references=[], today=TODAY, end_of_life_days=30)
    # superseded when the next version that floats as latest was published, not the failed canary
    assert plan.end_of_life == {vid("1.0.0"): date(2026, 12, 25), vid("1.0.1"): date(2026, 12, 25)}
    versions[0]["properties"]["publishingProfile"]["endOfLifeDate"] = "2026-12-25T00:00:00Z"
    again = select(versions, keep_versions=3, references=[], today=TODAY, end_of_life_days=30)
    assert vid("1.0.0") not in again.end_of_life  # already set: nothing to change
    late = select(versions, keep_versions=3, references=[], today=date(2027, 1, 1), end_of_life_days=30)
    assert late.end_of_life == {}  # Azure refuses a past endOfLifeDate
    assert select(versions, keep_versions=3, references=[], today=TODAY).end_of_life == {}  # no days: none


@pytest.mark.parametrize("keep", [0, -1, True, 2.0, None])
def test_keep_versions_below_one_is_refused(keep):
    with pytest.raises(InvalidInput) as err:
        select([version("1.0.0")], keep_versions=keep, references=[], today=TODAY)
    assert err.value.field == "keep_versions" and "at least one" in err.value.reason


# -- the sweep's verdict -------------------------------------------------------------------------------------------

def _leftover(hours_old: float | None, run_id: str = "run-a", ours: bool = True, needs_run_state: bool = False):
    from datetime import datetime, timedelta, timezone

    from batch_images.rules.retention import Leftover

    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    created = None if hours_old is None else now - timedelta(hours=hours_old)
    return Leftover("canary pool", "p1", "dag", run_id, created, ours, needs_run_state), now


@pytest.mark.parametrize("hours_old, run_id, ours, needs, state, kept_because", [
    (7, "run-a", True, False, "failed", None),
    (7, "run-a", True, False, None, None),                       # snapshots/images: age alone when Airflow is mute
    (7, "run-a", True, True, None, "could not learn whether its run run-a is over"),
    (7, "run-a", True, True, "success", None),
    (7, "run-a", True, True, "running", "its run run-a is still running"),
    (7, "run-a", True, False, "queued", "its run run-a is still queued"),
    (5, "run-a", True, False, "failed", "younger than 6:00:00 (age 5h00m)"),
    (7, "current", True, False, "running", "made by the current run"),
    (7, "run-a", False, False, "failed", "not tagged managed-by=airflow-batch-images"),
    (None, "run-a", True, False, "failed", "its creation time is unknown"),
])
def test_sweep_verdict(hours_old, run_id, ours, needs, state, kept_because):
    from datetime import timedelta

    from batch_images.rules.retention import sweep_verdict

    item, now = _leftover(hours_old, run_id, ours, needs)
    assert sweep_verdict(item, current_run_id="current", now=now, min_age=timedelta(hours=6),
                         run_state=state) == kept_because
