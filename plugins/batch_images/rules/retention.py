"""Which image versions a run may delete after a successful roll, and which get an end-of-life date.

The rule (issue 10, "Retention"), per image definition, versions ordered by their three integers
(:func:`~batch_images.rules.naming.version_sort_key`), newest first:

* keep the newest ``keep_versions``;
* never delete the newest version, the version this run built, or the one that floats as "latest"
  (the newest not excluded from latest: pools that reference the definition without a version use it);
* never delete a version that any pool in the configured Batch accounts references - pinned
  (``virtualMachineImageId`` = the version's id) or through a job schedule's ``autoPoolSpecification`` -
  whoever made the pool; a pool that references the definition itself keeps "latest";
* never delete a version whose ``safetyProfile.blockDeletionBeforeEndOfLife`` is set while its
  ``endOfLifeDate`` has not passed (Azure would refuse the delete; with no end-of-life date we assume
  it stays blocked - a guess, the API docs do not say);
* never delete a version this project did not make (no ``managed-by`` tag);
* never delete a logical pool's *rollback target* (the version a ``rollback`` run would take its serving pool back
  to: the newest of the pool's ``previous-versions`` that exists and is not revoked), whatever ``keep_versions``
  says;
* a *revoked* version (tag ``revoked``) gets none of the protections above but "used": it is deleted as soon as
  nothing uses it, even when it is the newest;
* delete the rest.

A version that no pool references any more and that is not the newest has *stopped serving*: if it is ours
and kept, its ``endOfLifeDate`` becomes ``end_of_life_days`` after it was superseded - the ``publishedDate``
of the next newer version that floats as latest (or the next newer one), which Azure keeps, so the date does
not move from run to run. Azure refuses an end-of-life date that is not in the future, so a date already
past is left alone.

Pure: the stdlib only. Inputs are the ARM JSON of the versions (``properties.publishingProfile``,
``properties.safetyProfile``, ``tags``) and :class:`Reference` s the operator read from Batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from . import ids, naming
from .errors import InvalidInput

KEEP_NEWEST = "the newest version"
KEEP_THIS_RUN = "built by this run"
KEEP_LATEST = "floats as latest (the newest not excluded from latest)"
KEEP_ROLLBACK = "the rollback target of "


@dataclass(frozen=True)
class Reference:
    """Something in a Batch account that uses an image: ``image_id`` is its ``virtualMachineImageId`` (a version
    id, or a definition id = its latest version); ``user`` says who for a person ("pool p1 in account a")."""

    image_id: str
    user: str


@dataclass(frozen=True)
class VersionFacts:
    """What retention reads of one version (:func:`version_facts`)."""

    id: str
    name: str
    ours: bool
    exclude_from_latest: bool
    published: datetime | None
    end_of_life: date | None
    block_deletion_before_end_of_life: bool
    revoked: bool = False


@dataclass
class RetentionPlan:
    """The decision: ``delete`` ids; ``keep`` id -> why; ``end_of_life`` id -> the new ``endOfLifeDate``."""

    delete: list[str] = field(default_factory=list)
    keep: dict[str, str] = field(default_factory=dict)
    end_of_life: dict[str, date] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON (XCom): ``{"deleted": [ids], "kept": {id: reason}, "end_of_life": {id: "YYYY-MM-DD"}}``."""
        return {"deleted": list(self.delete), "kept": dict(self.keep),
                "end_of_life": {k: v.isoformat() for k, v in self.end_of_life.items()}}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string (Azure's `Z` too), a date or a datetime as a datetime; None when it is none of those."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def version_facts(version: Mapping[str, Any]) -> VersionFacts:
    """Read one version's ARM JSON (``GET .../versions/{name}`` or an item of the list); InvalidInput when it has
    no id or name."""
    vid, name = version.get("id"), version.get("name")
    if not vid or not name:
        raise InvalidInput("version", version, "an image version without id or name",
                           "pass the versions as ARM returns them (list_versions)")
    props = version.get("properties") or {}
    publishing = props.get("publishingProfile") or {}
    safety = props.get("safetyProfile") or {}
    eol = parse_time(publishing.get("endOfLifeDate"))
    return VersionFacts(
        id=vid, name=name,
        ours=(version.get("tags") or {}).get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY,
        exclude_from_latest=bool(publishing.get("excludeFromLatest")),
        published=parse_time(publishing.get("publishedDate")),
        end_of_life=eol.date() if eol else None,
        block_deletion_before_end_of_life=bool(safety.get("blockDeletionBeforeEndOfLife")),
        revoked=bool((version.get("tags") or {}).get(naming.TAG_REVOKED)),
    )


def _definition_of(version_id: str) -> str:
    return ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION).parent.id


def users_by_version(versions: Sequence[VersionFacts], references: Iterable[Reference]) -> dict[str, list[str]]:
    """Version id (lower case) -> who uses it. A reference to the definition itself counts for its latest version
    (the newest not excluded from latest); references to other definitions or galleries are ignored."""
    by_id = {v.id.lower(): v for v in versions}
    latest = next((v for v in versions if not v.exclude_from_latest), None)
    definitions = {_definition_of(v.id).lower() for v in versions}
    found: dict[str, list[str]] = {}
    for ref in references:
        key = (ref.image_id or "").lower().rstrip("/")
        if key in by_id:
            found.setdefault(key, []).append(ref.user)
        elif key in definitions and latest is not None and ids.same_id(_definition_of(latest.id), key):
            found.setdefault(latest.id.lower(), []).append(f"{ref.user} (latest)")
    return found


def _superseded_on(older: VersionFacts, newer: Sequence[VersionFacts]) -> date | None:
    """When ``older`` stopped being the newest: the publishedDate of the next newer version that floats as latest,
    else of the next newer one (``newer`` is newest first)."""
    for candidates in ([v for v in newer if not v.exclude_from_latest], list(newer)):
        dated = [v for v in reversed(candidates) if v.published is not None]
        if dated:
            return dated[0].published.date()
    return None


def select(versions: Iterable[Mapping[str, Any] | VersionFacts], *, keep_versions: int, references: Iterable[Reference],
           today: date, this_run_version_id: str | None = None, end_of_life_days: int | None = None,
           rollback_targets: Iterable[Reference] = ()) -> RetentionPlan:
    """Decide, for every version of one image definition, keep (and why), delete, or set its end-of-life date.

    :param versions: the definition's versions (ARM JSON or :class:`VersionFacts`), any order.
    :param keep_versions: how many of the newest to keep (>= 1; InvalidInput otherwise).
    :param references: what the configured Batch accounts' pools and job schedules reference.
    :param today: UTC date (an end-of-life date must be after it).
    :param this_run_version_id: the version the run built (never deleted).
    :param end_of_life_days: days from supersession to ``endOfLifeDate``; None: no end-of-life dates are set.
    :param rollback_targets: each serving pool's rollback target (``image_id`` a version id, ``user`` the logical
        pool); kept unless revoked.
    """
    if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1:
        raise InvalidInput("keep_versions", keep_versions, "must keep at least one version",
                           "give an integer >= 1 (the config's keep_versions)")
    facts = [v if isinstance(v, VersionFacts) else version_facts(v) for v in versions]
    facts.sort(key=lambda v: naming.version_sort_key(v.name), reverse=True)
    users = users_by_version(facts, references)
    targets: dict[str, list[str]] = {}
    for ref in rollback_targets:
        targets.setdefault((ref.image_id or "").lower().rstrip("/"), []).append(ref.user)
    latest = next((v for v in facts if not v.exclude_from_latest), None)
    plan = RetentionPlan()
    for i, v in enumerate(facts):
        used_by = users.get(v.id.lower())
        if v.revoked and not used_by:  # revoked and unused: none of the other protections
            if not v.ours:
                plan.keep[v.id] = "revoked, but not made by this project (no managed-by tag)"
            elif v.block_deletion_before_end_of_life and (v.end_of_life is None or v.end_of_life > today):
                plan.keep[v.id] = "revoked, but safetyProfile.blockDeletionBeforeEndOfLife"
            else:
                plan.delete.append(v.id)
            continue
        if i == 0:
            plan.keep[v.id] = KEEP_NEWEST
            continue
        if this_run_version_id and ids.same_id(v.id, this_run_version_id):
            plan.keep[v.id] = KEEP_THIS_RUN
            continue
        if used_by:
            plan.keep[v.id] = "used by " + "; ".join(used_by)
            continue
        if v.id.lower() in targets:
            plan.keep[v.id] = KEEP_ROLLBACK + "; ".join(targets[v.id.lower()])
            continue
        # Not the newest and nothing uses it: it has stopped serving.
        if v.ours and end_of_life_days is not None:
            since = _superseded_on(v, facts[:i])
            target = since + timedelta(days=end_of_life_days) if since else None
            if target is not None and target > today and target != v.end_of_life:
                plan.end_of_life[v.id] = target
        if latest is not None and v is latest:
            plan.keep[v.id] = KEEP_LATEST
        elif i < keep_versions:
            plan.keep[v.id] = f"among the newest {keep_versions}"
        elif not v.ours:
            plan.keep[v.id] = "not made by this project (no managed-by tag)"
        elif v.block_deletion_before_end_of_life and (v.end_of_life is None or v.end_of_life > today):
            plan.keep[v.id] = ("safetyProfile.blockDeletionBeforeEndOfLife until "
                               f"{v.end_of_life.isoformat() if v.end_of_life else 'an end-of-life date is set'}")
        else:
            plan.delete.append(v.id)
            plan.end_of_life.pop(v.id, None)
    return plan


# -- the sweep: this project's own leftovers of runs that are over ----------------------------------------------------

LIVE_RUN_STATES = frozenset({"queued", "running"})


@dataclass(frozen=True)
class Leftover:
    """One candidate of the sweep (:func:`sweep_verdict`): ``kind`` for a person ("snapshot", "managed image",
    "canary pool", "smoke-test job"), ``id`` (ARM id or Batch id), the run that made it (its ``dag_id`` / ``run_id``
    tags or metadata), ``created`` (aware datetime; None when Azure does not say) and ``ours`` (tagged
    ``managed-by`` this project). ``needs_run_state``: delete only when Airflow says the run is over (pools and
    jobs, which a run in flight may still need after hours); snapshots and images go by age alone."""

    kind: str
    id: str
    dag_id: str | None
    run_id: str | None
    created: datetime | None
    ours: bool
    needs_run_state: bool = False


def sweep_verdict(item: Leftover, *, current_run_id: str | None, now: datetime, min_age: timedelta,
                  run_state: str | None) -> str | None:
    """None when the sweep may remove ``item``; else why it stays (one phrase).

    ``run_state``: the Airflow state of the item's run (``running``, ``failed``, ...; None: unknown - Airflow could
    not be asked, or the run is not in its database). Whether something still uses a pool is the operator's last
    check (it costs requests), after this verdict.
    """
    if not item.ours:
        return f"not tagged {naming.TAG_MANAGED_BY}={naming.MANAGED_BY}"
    if item.run_id and current_run_id and item.run_id == current_run_id:
        return "made by the current run"
    if item.created is None:
        return "its creation time is unknown"
    age = now - item.created
    if age < min_age:
        return f"younger than {min_age} (age {_short(age)})"
    if run_state is not None and run_state.lower() in LIVE_RUN_STATES:
        return f"its run {item.run_id} is still {run_state.lower()}"
    if item.needs_run_state and run_state is None:
        return f"could not learn whether its run {item.run_id} is over"
    return None


def _short(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
