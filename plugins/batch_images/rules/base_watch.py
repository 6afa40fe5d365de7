"""The base-image watcher's pure rules: which marketplace version is newest, when that is news, the Asset's
identity, and where a triggered run finds the version (no Airflow, no Azure SDK).

Azure marketplace image versions are ``Major.Minor.Build`` (e.g. Canonical's ``22.04.202411190``). ARM's
``$orderby=name desc`` on ``VirtualMachineImages_List`` sorts them as strings (``8.9.2024022012`` before
``8.10.2024070513``: Azure/azure-rest-api-specs#30142, ansible-collections/azure#1667), so the watcher lists
every version and compares them numerically, part by part (:func:`~batch_images.rules.naming.version_sort_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .naming import version_sort_key

# Azure Resource Manager's read budget since 2024 (Microsoft Learn, "Understand how Azure Resource Manager throttles
# requests"): a token bucket per region, subscription and principal of 250 reads, refilled 25 a second. A poll is
# one read (0.4% of the bucket); sustained, the refill allows 25 x 3,600 = 90,000 reads an hour ("Read requests
# increase by 7.5 times" over the 12,000 an hour of the per-instance limits before).
ARM_READ_BUCKET = 250
ARM_READ_REFILL_PER_SECOND = 25
ARM_READS_PER_HOUR = ARM_READ_REFILL_PER_SECOND * 3600
# The key under which the watcher keeps the newest base version it has acted on, in the Asset's state store.
STATE_KEY = "newest_base_version"


def _key(version: object) -> tuple[int, ...] | None:
    key = version_sort_key(version)
    return None if key == (-1,) else key


def newest_version(names: Iterable[object]) -> str | None:
    """The numerically newest of marketplace version names (``22.04.202411190``); names that are not
    dot-separated decimal integers (``latest``, empty) are ignored. None when there is none."""
    best: tuple[tuple[int, ...], str] | None = None
    for name in names:
        key = _key(name)
        if key is not None and (best is None or key > best[0]):
            best = (key, str(name))
    return None if best is None else best[1]


def is_newer(candidate: str | None, than: str | None) -> bool:
    """Is ``candidate`` a version strictly newer than ``than``? Anything readable is newer than nothing (None);
    nothing is newer than anything. ``1.10.0`` is newer than ``1.9.0`` (numeric, not string, order)."""
    cand = _key(candidate)
    if cand is None:
        return False
    base = _key(than)
    return base is None or cand > base


def watcher_name(location: str, publisher: str, offer: str, sku: str) -> str:
    """The AssetWatcher's name (unique per base image and region, like the Asset's uri,
    :func:`~batch_images.rules.naming.base_image_asset_uri`)."""
    return f"base-image-version-{location}-{publisher}-{offer}-{sku}".lower()


def event_payload(location: str, publisher: str, offer: str, sku: str, version: str,
                  previous: str | None) -> dict[str, Any]:
    """What the watcher's TriggerEvent carries (and so the Asset event's ``extra["payload"]``): the exact new
    ``version``, the base image it belongs to, and the ``previous`` newest version the watcher knew (None at
    first sight)."""
    return {"version": version, "publisher": publisher, "offer": offer, "sku": sku, "location": location,
            "previous": previous}


def event_base_version(extra: Mapping[str, Any] | None) -> str | None:
    """The exact base version an Asset event names, or None.

    Airflow 3.3 stores a watcher's event as ``extra = {"from_trigger": True, "payload": <the TriggerEvent's
    payload>}`` (``Trigger.submit_event``), so the version is ``extra["payload"]["version"]``; an event posted
    by hand (REST API ``POST /api/v2/assets/events`` or a task's outlet) may carry ``extra["version"]`` directly.
    """
    if not isinstance(extra, Mapping):
        return None
    payload = extra.get("payload")
    for source in (payload if isinstance(payload, Mapping) else {}, extra):
        version = source.get("version")
        if isinstance(version, str) and _key(version) is not None:
            return version
    return None


def reads_per_hour(interval_seconds: float) -> float:
    """ARM reads per hour one watcher makes: one ``VirtualMachineImages_List`` per poll (a throttled or failed
    poll is retried no sooner than the next interval, so never more)."""
    return 3600.0 / float(interval_seconds)


def budget_share(interval_seconds: float, watchers: int = 1) -> float:
    """Share (0..1) of ARM's sustained read rate per principal (:data:`ARM_READS_PER_HOUR`, 90,000 an hour: the
    bucket's refill) that ``watchers`` watchers polling every ``interval_seconds`` use."""
    return watchers * reads_per_hour(interval_seconds) / ARM_READS_PER_HOUR
