"""The base-image watcher: an Asset watcher's trigger that fires when a marketplace base image gets a newer
version (issue 11, "An Asset that fires when the base moves").

How Airflow 3.3.2 runs it (``airflow/jobs/triggerer_job_runner.py``, ``airflow/models/trigger.py``): the DAG
processor stores the trigger's :meth:`~BaseImageVersionTrigger.serialize` kwargs; a trigger is identified by
``BaseEventTrigger.hash(classpath, kwargs)``, so DAGs declaring the same base image with the same kwargs share
one trigger (one poll), and changing a kwarg (the interval) replaces it. The triggerer builds the trigger from
those kwargs and iterates :meth:`run` for as long as an Asset needs it: it is *not* re-created after an event
(every ``TriggerEvent`` becomes an Asset event ``extra = {"from_trigger": True, "payload": <payload>}``), but it
*is* re-created from its kwargs, with no memory, whenever a triggerer starts or takes it over. A ``run`` that
returns or raises ends the watch (logged as a failed trigger), so one bad poll must never escape the loop.

What a poll compares against (so that a triggerer restart neither misses a version nor rebuilds one again):
the newest version the watcher has already acted on, kept in the watched Asset's **state store**
(``asset_state_store``, Airflow 3.3: a row per Asset in the metadata DB, injected into event triggers by the
triggerer, shared by every triggerer and kept across restarts and deploys) under
:data:`~batch_images.rules.base_watch.STATE_KEY`, plus the same value in memory. A poll that finds a version
numerically newer than it fires once and records it; an unchanged newest, or an older version published
later (Azure re-publishing a fix of an old build), fires nothing. The first poll ever (no state yet) records
the newest version without firing: the pipeline's cron run builds from the base's ``latest``, and an event
for a version that existed before the watcher did would only rebuild it. A version published while no
triggerer ran is newer than the stored one: the first poll after the restart fires it.

Why not the lineage tag of the newest gallery image version: the Asset is the base image (one per
publisher/offer/sku and region, shared by every pipeline that builds from it), not one gallery's image, and a
run that failed leaves no version to record that its base was acted on - so the gallery would ask for the
same rebuild after every restart. The state store is the Asset's own memory.

Polls: one ARM read each (``VirtualMachineImages_List`` without ``$top``: ARM sorts names as strings, the
newest is picked numerically by :mod:`batch_images.rules.base_watch`). Retries belong to this loop, not to
azure-core (``retry_total=0``, as for the waiters, :data:`batch_images.triggers.base.WAITER_CLIENT_OPTIONS`): a
throttled answer (429, or a 5xx with Retry-After) waits what Retry-After says - read by the project's
never-raising parser, any shape (``81,120``, ``-5``, an HTTP date) - and never less than the interval; any other
error (5xx, a network error, 401/403, a 404 for an unknown image, a bug) is logged and the next poll comes one
interval later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from batch_images.rules import base_watch
from batch_images.triggers.base import (
    WAITER_CLIENT_OPTIONS,
    _describe,
    is_throttled,
    retry_after_seconds,
    throttle_delay,
)


def _import_sdk() -> None:
    import batch_images.hooks.arm  # noqa: F401
    import azure.mgmt.compute.aio  # noqa: F401


class BaseImageVersionTrigger(BaseEventTrigger):
    """Fire once per new newest version of a marketplace image in a region.

    :param location: Azure region whose marketplace is read (the build VM's region), e.g. ``westeurope``.
    :param publisher: / :param offer: / :param sku: the marketplace image (``Canonical``,
        ``0001-com-ubuntu-server-jammy``, ``22_04-lts-gen2``).
    :param poll_interval: seconds between polls (the pipeline's ``base_image.watch_interval_seconds``); a
        throttled poll waits longer when Retry-After says so, never shorter.
    :param conn_id: the Airflow ARM connection (``azure_default``; extras ``subscriptionId``, and for the stand-in
        ``authority``, ``arm_endpoint``, ``ca_bundle``).

    Event payload (:func:`~batch_images.rules.base_watch.event_payload`): ``{"version": "<exact version>",
    "publisher", "offer", "sku", "location", "previous": <the version known before, or None>}``. The Asset event
    keeps it under ``extra["payload"]``; :func:`~batch_images.rules.base_watch.event_base_version` reads it.
    """

    def __init__(self, *, location: str, publisher: str, offer: str, sku: str, poll_interval: float = 3600.0,
                 conn_id: str = "azure_default") -> None:
        super().__init__()
        self.location = location
        self.publisher = publisher
        self.offer = offer
        self.sku = sku
        self.poll_interval = float(poll_interval)
        self.conn_id = conn_id
        self.known: str | None = None  # the newest version acted on (fired, or recorded at first sight)
        self._loaded = False
        self.polls = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Only configuration: the kwargs are the trigger's identity (BaseEventTrigger.hash), so nothing that
        # changes while it runs may be in them.
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"location": self.location, "publisher": self.publisher, "offer": self.offer, "sku": self.sku,
                 "poll_interval": self.poll_interval, "conn_id": self.conn_id})

    @property
    def image(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku} in {self.location}"

    # -- state ----------------------------------------------------------------------------------------------------

    async def _load_known(self) -> None:
        """Read the version acted on from the Asset's state store, once. A failed read is tried again at the next
        poll (never treated as "first sight", which would drop a version published while no triggerer ran)."""
        store = self.asset_state_store
        if store is None:
            self.log.warning("Base image watcher %s: no asset state store (not run by a triggerer for an Asset); "
                             "the newest version is remembered in memory only", self.image)
        else:
            value = await store.aget(base_watch.STATE_KEY)
            self.known = value if isinstance(value, str) else None
        self._loaded = True
        self.log.info("Base image watcher %s: polling every %g s (%.0f ARM reads/hour); newest version acted on: "
                      "%s", self.image, self.poll_interval, base_watch.reads_per_hour(self.poll_interval),
                      self.known or "none yet")

    async def _save_known(self, version: str) -> None:
        self.known = version
        store = self.asset_state_store
        if store is None:
            return
        try:
            await store.aset(base_watch.STATE_KEY, version)
        except Exception as err:
            self.log.warning("Base image watcher %s: could not record %s in the Asset's state store (%s); a "
                             "triggerer restart may fire it again", self.image, version, _describe(err))

    # -- the loop -------------------------------------------------------------------------------------------------

    async def poll(self, hook: Any) -> TriggerEvent | None:
        """One poll: the event to fire, or None. Raises what the read raised (the loop decides the delay).
        An event's version is recorded by :meth:`run` once the event is handed to the triggerer, not before: a
        triggerer that dies in between fires it again after its restart rather than never."""
        if not self._loaded:
            await self._load_known()
        names = await hook.async_list_base_image_versions(self.location, self.publisher, self.offer, self.sku)
        self.polls += 1
        newest = base_watch.newest_version(names)
        if newest is None:
            self.log.warning("Base image watcher %s: Azure lists no version (%d names)", self.image, len(names))
            return None
        if self.known is None:
            self.log.info("Base image watcher %s: first sight, newest version %s recorded without firing (the "
                          "pipeline's own schedule builds from latest)", self.image, newest)
            await self._save_known(newest)
            return None
        if not base_watch.is_newer(newest, self.known):
            self.log.debug("Base image watcher %s: newest still %s", self.image, self.known)
            return None
        previous = self.known
        payload = base_watch.event_payload(self.location, self.publisher, self.offer, self.sku, newest, previous)
        self.log.info("Base image watcher %s: new version %s (was %s); firing the Asset event", self.image, newest,
                      previous)
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The Azure SDK loads in the triggerer, not at DAG parse; in a thread, as importing the async compute client
        # takes most of a second, which would block every other trigger of the triggerer's event loop.
        await asyncio.to_thread(_import_sdk)
        from batch_images.hooks.arm import ArmComputeHook

        hook = ArmComputeHook(azure_conn_id=self.conn_id, client_options=WAITER_CLIENT_OPTIONS)
        throttled = 0
        try:
            while True:
                delay = self.poll_interval
                event = None
                try:
                    event = await self.poll(hook)
                    throttled = 0
                except Exception as err:  # noqa: BLE001 - one failed poll must not end the watch
                    if is_throttled(err):
                        throttled += 1
                        wait = retry_after_seconds(err)
                        delay = throttle_delay(wait, self.poll_interval, throttled)
                        self.log.warning("Base image watcher %s: throttled (%s); Retry-After %s, next poll in %.1f s",
                                         self.image, _describe(err),
                                         "unusable/absent" if wait is None else f"{wait:g} s", delay)
                    else:
                        self.log.warning("Base image watcher %s: poll failed (%s); next poll in %.1f s", self.image,
                                         _describe(err), delay)
                if event is not None:
                    yield event
                    await self._save_known(event.payload["version"])
                await asyncio.sleep(delay)
        finally:
            await hook.close()
