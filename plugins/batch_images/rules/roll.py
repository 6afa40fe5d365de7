"""Rolling a logical pool to a new image version: the pure decisions (no Airflow, no Azure SDK).

A configured pool (``pools[]`` of the pipeline YAML, named by its ``pool_id_prefix``) is a *logical pool*. Each
version it runs is a *physical pool* ``<prefix>-<version dashed>`` whose Batch metadata makes the state recoverable
from Batch alone (names in :mod:`batch_images.rules.naming`):

* ``logical-pool`` - the logical pool's name; ``image-version`` - the version it runs;
* ``role`` - ``canary`` (made by a run, not serving yet), ``serving`` (users' work goes there), ``draining``
  (replaced; finishing its tasks before it is deleted);
* ``run_id`` - the run that made it; ``serving-since`` / ``draining-since`` - ISO 8601 UTC;
* ``previous-versions`` - the versions the logical pool served before this one, oldest first (:func:`next_history`):
  what a ``rollback`` run goes back to (:func:`rollback_target`) and what retention keeps;
* ``roll-lease`` - ``<run_id>|<expiry ISO 8601>``, written on the serving pool with an ETag-conditional update
  (If-Match) by the run that rolls it, so two runs (of one pipeline or of two pipelines sharing an account) never
  roll the same logical pool at once. An Airflow pool would not do: a deferred task holds no pool slot.

The functions here take plain dicts (``{"id", "state", "metadata": {...}, "etag"}``) as the hook lists them.
plan_roll's decision itself is typed: :class:`batch_images.rules.plan.RollDecision`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from . import ids, naming
from .config import ROLL_STRATEGIES as STRATEGIES

# What a run does with one logical pool (plan_roll's decision, RollDecision.roll_action).
FIRST = "first"  # no serving pool yet: the new pool becomes the first one
ROLL = "roll"  # the serving pool runs an older version: roll it
CURRENT = "current"  # the serving pool already runs this version (a rerun after a finished roll)
SKIP_DOWNGRADE = "skip_downgrade"  # the serving pool runs a newer version and allow_downgrade is off
ACTIONS = (FIRST, ROLL, CURRENT, SKIP_DOWNGRADE)


@dataclass(frozen=True)
class PhysicalPool:
    """A Batch pool as the roll sees it (from its id, state and metadata alone)."""

    pool_id: str
    logical_pool: str | None
    version: str | None
    role: str | None
    run_id: str | None = None
    serving_since: str | None = None
    lease: str | None = None
    state: str | None = None
    etag: str | None = None
    history: tuple[str, ...] = ()  # previous-versions, oldest first

    @classmethod
    def from_listing(cls, entry: Mapping[str, Any]) -> PhysicalPool:
        md = dict(entry.get("metadata") or {})
        return cls(pool_id=str(entry.get("id")), logical_pool=md.get(naming.TAG_LOGICAL_POOL),
                   version=md.get(naming.TAG_IMAGE_VERSION), role=md.get(naming.TAG_ROLE),
                   run_id=md.get(naming.TAG_RUN_ID), serving_since=md.get(naming.TAG_SERVING_SINCE),
                   lease=md.get(naming.TAG_LEASE), state=entry.get("state"), etag=entry.get("etag"),
                   history=tuple(parse_history(md.get(naming.TAG_PREVIOUS_VERSIONS))))

    @property
    def deleting(self) -> bool:
        return (self.state or "").lower() == "deleting"


def physical_pools(listing: Iterable[Mapping[str, Any]], logical_pool: str) -> list[PhysicalPool]:
    """The physical pools of ``logical_pool`` (by metadata), oldest version first; pools being deleted left out."""
    out = [PhysicalPool.from_listing(e) for e in listing]
    out = [p for p in out if p.logical_pool == logical_pool and not p.deleting]
    return sorted(out, key=lambda p: naming.version_sort_key(p.version))


def serving_pool(pools: Iterable[PhysicalPool]) -> PhysicalPool | None:
    """The pool with role ``serving`` (the newest version if a crash left two), else None (first run)."""
    serving = [p for p in pools if p.role == naming.ROLE_SERVING]
    return max(serving, key=lambda p: naming.version_sort_key(p.version)) if serving else None


def decide(new_version: str, serving: PhysicalPool | None, allow_downgrade: bool = False,
           revoked: Iterable[str] = ()) -> str:
    """What to do with a logical pool: :data:`FIRST`, :data:`ROLL`, :data:`CURRENT` or :data:`SKIP_DOWNGRADE`.

    Versions order by their three integers (:func:`naming.version_sort_key`): a run never rolls a pool back to an
    older version unless ``allow_downgrade`` (a backfill of past dates publishes, but does not roll), or unless the
    serving version is in ``revoked`` (every run moves pools off a revoked version).
    """
    if serving is None:
        return FIRST
    new_key, have_key = naming.version_sort_key(new_version), naming.version_sort_key(serving.version)
    if new_key == have_key:
        return CURRENT
    if new_key < have_key and not allow_downgrade and serving.version not in set(revoked):
        return SKIP_DOWNGRADE
    return ROLL


# -- history: what a rollback goes back to -------------------------------------------------------------------------

MAX_HISTORY = 8  # versions kept in previous-versions (a Batch metadata value; 8 names of <= 32 characters)


def parse_history(value: str | None) -> list[str]:
    """``previous-versions`` metadata as a list, oldest first (empty or missing: [])."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def history_value(history: Iterable[str]) -> str:
    """The metadata value of a history list (at most the newest :data:`MAX_HISTORY` entries)."""
    return ",".join(list(history)[-MAX_HISTORY:])


def rollback_target(history: Iterable[str], available: Iterable[str]) -> tuple[str | None, list[str]]:
    """Where a ``rollback`` takes a pool whose ``previous-versions`` is ``history``: the newest entry that is in
    ``available`` (versions that exist and are not revoked), and the history the new pool keeps (the entries older
    than that one). ``(None, [])`` when no entry is available."""
    entries = list(history)
    ok = set(available)
    for i in range(len(entries) - 1, -1, -1):
        if entries[i] in ok:
            return entries[i], entries[:i]
    return None, []


def next_history(serving: PhysicalPool | None, target: str, *, rollback: bool = False,
                 revoked: Iterable[str] = ()) -> list[str]:
    """``previous-versions`` of the pool that serves ``target`` after this run, oldest first.

    A roll forward (or to any existing version) pushes the serving version and drops ``target`` from the list; a
    ``rollback`` pops back to the entry it returns to (rolling back twice goes two versions back, it does not
    toggle). Revoked versions are left out: nothing ever goes back to them. No serving pool: empty.
    """
    if serving is None:
        return []
    gone = set(revoked)
    history = [v for v in serving.history if v not in gone]
    if rollback and target in history:
        return history[:len(history) - 1 - history[::-1].index(target)][-MAX_HISTORY:]
    history = [v for v in history if v != target]  # never "back" to the version it serves
    if serving.version and serving.version != target and serving.version not in gone:
        history.append(serving.version)
    return history[-MAX_HISTORY:]


def run_canaries(listing: Iterable[Mapping[str, Any]], dag_id: str | None, run_id: str | None) -> list[str]:
    """Ids of the pools that this DAG run made (metadata ``dag_id`` and ``run_id``) and that are still ``canary``:
    the new pools of a roll that stopped before it moved work (smoke test failed, approval rejected, promotion
    failed). A pool that became serving or draining, another run's pool and a pool being deleted are not listed."""
    if not run_id:
        return []
    out = []
    for entry in listing:
        md = dict(entry.get("metadata") or {})
        if (md.get(naming.TAG_ROLE) == naming.ROLE_CANARY and md.get(naming.TAG_RUN_ID) == run_id
                and md.get(naming.TAG_DAG_ID) == dag_id and (entry.get("state") or "").lower() != "deleting"):
            out.append(str(entry.get("id")))
    return out


def effective_strategy(config_strategy: str, override: str | None) -> str:
    """The trigger form's ``strategy`` param when set (``blue_green`` / ``in_place``), else the config's."""
    value = override or config_strategy
    if value not in STRATEGIES:
        from .errors import InvalidInput

        raise InvalidInput("params.strategy", override, f"unknown roll strategy (known: {', '.join(STRATEGIES)})",
                           "leave it empty to use the config's, or pick blue_green or in_place")
    return value


# -- the lease -----------------------------------------------------------------------------------------------------


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def lease_value(run_id: str, now: datetime, duration: timedelta) -> str:
    """``<run_id>|<expiry>``: what a rolling run writes into the serving pool's ``roll-lease`` metadata."""
    return f"{run_id}|{iso(now + duration)}"


def lease_holder(value: str | None, now: datetime) -> str | None:
    """The run id holding an unexpired lease, else None (no lease, expired, or unreadable)."""
    if not value or "|" not in value:
        return None
    run_id, _, expiry = value.rpartition("|")
    until = parse_iso(expiry)
    return run_id if until is not None and until > now and run_id else None


def lease_duration(drain_timeout_minutes: int) -> timedelta:
    """How long a roll holds its lease: the drain bound plus two hours for the other steps. A run that dies
    keeps others out at most this long; its own retries and resumes renew it."""
    return timedelta(minutes=drain_timeout_minutes) + timedelta(hours=2)


# -- drain ---------------------------------------------------------------------------------------------------------

WAIT, DONE, TIMED_OUT = "wait", "done", "timed_out"


def drained(running_tasks: int, active_tasks: int) -> bool:
    """The old pool runs nothing and the jobs left to finish on it have nothing queued."""
    return running_tasks <= 0 and active_tasks <= 0


def drain_verdict(running_tasks: int, active_tasks: int, started: datetime, now: datetime,
                  timeout: timedelta) -> str:
    """:data:`DONE` when the old pool runs nothing and its drained jobs have nothing queued, :data:`TIMED_OUT`
    when ``timeout`` passed since ``started`` with work left, else :data:`WAIT`."""
    if drained(running_tasks, active_tasks):
        return DONE
    return TIMED_OUT if now - started >= timeout else WAIT


# -- verify --------------------------------------------------------------------------------------------------------


def nodes_off_version(nodes: Iterable[Mapping[str, Any]], version_id: str) -> list[str]:
    """Node ids whose ``virtualMachineInfo.imageReference`` is not ``version_id`` (ARM ids compare
    case-insensitively; ``exactVersion`` counts when the reference names the definition only).

    :param nodes: ``{"id", "image_id", "exact_version"}`` per node.
    """
    version = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
    want, want_version, definition = version.key, version.name.lower(), version.parent.key
    bad = []
    for node in nodes:
        image = (node.get("image_id") or "").rstrip("/").lower()
        exact = (node.get("exact_version") or "").lower()
        if image == want or (exact == want_version and image == definition):
            continue
        bad.append(str(node.get("id")))
    return bad


def metadata_update(current: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """``current`` with ``changes`` applied: a value of None removes that key."""
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


# -- autoscale -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoScale:
    """A logical pool's autoscale settings, as its template states them (Batch's pool body keys)."""

    formula: str
    evaluation_interval: str | None = None  # ISO 8601 duration ("PT5M"); None: Batch's default (15 minutes)


def autoscale_of(template: Mapping[str, Any] | None) -> AutoScale | None:
    """The template's ``autoScaleFormula`` / ``autoScaleEvaluationInterval`` when it sets ``enableAutoScale`` true,
    else None (a fixed-size pool). The formula is not checked here: preflight evaluates it with Batch."""
    template = template or {}
    if template.get("enableAutoScale") is not True:
        return None
    return AutoScale(formula=str(template.get("autoScaleFormula") or ""),
                     evaluation_interval=template.get("autoScaleEvaluationInterval") or None)


def autoscale_run_verdict(run: Mapping[str, Any] | None) -> tuple[str, str]:
    """Has a pool's first autoscale evaluation happened, and did it work?

    :param run: the pool's ``autoScaleRun`` as Batch returns it (``{"timestamp", "results", "error": {"code",
        "message", "values": [{"name", "value"}]}}``), or None before the first evaluation.
    :return: (:data:`WAIT` | :data:`DONE` | ``"failed"``, a sentence for the log).
    """
    if not run:
        return WAIT, "no autoscale evaluation yet"
    error = run.get("error")
    if error:
        values = "; ".join(f"{v.get('name')}={v.get('value')}" for v in error.get("values") or [])
        return "failed", (f"autoscale evaluation at {run.get('timestamp')} failed: {error.get('code')}: "
                          f"{error.get('message')}" + (f" ({values})" if values else ""))
    return DONE, f"autoscale evaluated at {run.get('timestamp')}: {run.get('results') or '(no results)'}"
