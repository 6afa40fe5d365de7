"""The base-image watcher's trigger (triggers/base_image_watch.py) against the stand-in's marketplace, its async
generator run directly as the triggerer runs it: no event while the newest version is unchanged, exactly one after
a newer version is published, none for an older version published later, and the watch survives a 503 and a 429
with an odd Retry-After (the next poll waits what Retry-After says). Nothing is mocked: the SDK reads
VirtualMachineImages_List from the stand-in, whose control API publishes versions and injects the faults."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from batch_images.rules import base_watch
from batch_images.triggers.base_image_watch import BaseImageVersionTrigger
from _arm_common import last_request_id, requests_since

ROOT = Path(__file__).resolve().parents[2]
JAMMY = ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2")
SEEDED_NEWEST = "22.04.202411010"
POLL = 0.3  # seconds between polls


class Watch:
    """The trigger's generator consumed by a task, as the triggerer does; events collected as they come."""

    def __init__(self, trigger: BaseImageVersionTrigger):
        self.trigger = trigger
        self.events: list[dict] = []
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None

    async def _consume(self):
        try:
            async for event in self.trigger.run():
                self.events.append(event.payload)
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # the watch ended: the test fails on it
            self.error = err

    def start(self):
        self.task = asyncio.create_task(self._consume())

    async def until(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.error is None, f"the watch ended: {self.error!r}"
            assert not self.task.done(), "the trigger's run() returned: the watch ended"
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what} within {timeout} s; events {self.events}, polls {self.trigger.polls}")

    async def polls(self, n: int, timeout: float = 15):
        target = self.trigger.polls + n
        await self.until(lambda: self.trigger.polls >= target, timeout, f"{n} more polls")

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def list_requests(standin, since: int) -> list[dict]:
    return [r for r in requests_since(standin, since) if r["op"] == "VirtualMachineImages_List"]


def test_watcher_fires_once_per_newer_base_version_and_survives_throttling(arm):
    control = arm.control
    since = last_request_id(arm)

    async def scenario():
        watch = Watch(BaseImageVersionTrigger(location="westeurope", publisher=JAMMY[0], offer=JAMMY[1], sku=JAMMY[2],
                                              poll_interval=POLL))
        watch.start()
        try:
            # first sight: the seeded newest is recorded, nothing fires; unchanged for three more polls
            await watch.polls(4)
            assert watch.events == [] and watch.trigger.known == SEEDED_NEWEST

            # a newer version: one event, naming it and the one before
            await asyncio.to_thread(control.publish_base_image_version, *JAMMY, "22.04.202412050")
            await watch.until(lambda: watch.events, 10, "an event after the publish")
            await watch.polls(3)
            assert watch.events == [base_watch.event_payload("westeurope", *JAMMY, "22.04.202412050", SEEDED_NEWEST)]

            # an older version published later (a re-release of an old build) is not news
            await asyncio.to_thread(control.publish_base_image_version, *JAMMY, "22.04.202411200")
            await watch.polls(3)
            assert len(watch.events) == 1 and watch.trigger.known == "22.04.202412050"

            # a 503 (no Retry-After), then a 429 whose Retry-After is a gateway's list: the watch goes on, and
            # the poll after the 429 comes no sooner than the larger value (2 s), not at the 0.3 s interval
            mark = last_request_id(arm)
            await asyncio.to_thread(control.add_fault, "http", 1, {"op": "VirtualMachineImages_List"}, status=503)
            await asyncio.to_thread(control.add_fault, "http", 1, {"op": "VirtualMachineImages_List"}, status=429,
                                    retry_after_header="2,1")
            await asyncio.to_thread(control.publish_base_image_version, *JAMMY, "22.04.202501140")
            await watch.until(lambda: len(watch.events) == 2, 15, "an event after the faults")
            assert watch.events[1]["version"] == "22.04.202501140"
            assert watch.events[1]["previous"] == "22.04.202412050"
            return mark
        finally:
            await watch.stop()

    mark = asyncio.run(scenario())
    rows = list_requests(arm, mark)
    statuses = [r["status"] for r in rows]
    assert sorted(statuses[:2]) == [429, 503] and statuses[2] == 200, statuses

    def gap_after(status: int) -> float:
        i = statuses.index(status)
        return rows[i + 1]["real_ts"] - rows[i]["real_ts"]

    gap_after_429, gap_after_503 = gap_after(429), gap_after(503)
    assert gap_after_429 >= 1.9, f"polled {gap_after_429:.2f} s after a 429 with Retry-After '2,1'"
    assert gap_after_503 < 1.5, f"a 503 without Retry-After waited {gap_after_503:.2f} s, more than an interval"
    # every poll is one read, nothing else: no write, no other operation
    everything = requests_since(arm, since)
    assert {r["op"] for r in everything if r["family"] == "arm"} == {"VirtualMachineImages_List"}


def test_watcher_keeps_polling_an_unknown_base_and_fires_once_it_exists(arm):
    """A 404 (an offer not published in the region yet, a typo) is logged and polled again, never the end of the
    watch; the first version to appear is only recorded (first sight), the next one fires."""
    async def scenario():
        watch = Watch(BaseImageVersionTrigger(location="westeurope", publisher="contoso", offer="hardened",
                                              sku="jammy", poll_interval=POLL))
        watch.start()
        try:
            await watch.until(lambda: len(list_requests(arm, 0)) >= 3, 10, "three polls of a 404")
            assert watch.trigger.polls == 0 and watch.events == []
            await asyncio.to_thread(arm.control.publish_base_image_version, "contoso", "hardened", "jammy", "1.9.0")
            await watch.until(lambda: watch.trigger.known == "1.9.0", 10, "the first version recorded")
            await asyncio.to_thread(arm.control.publish_base_image_version, "contoso", "hardened", "jammy", "1.10.0")
            await watch.until(lambda: watch.events, 10, "an event for 1.10.0")
            assert [e["version"] for e in watch.events] == ["1.10.0"]
        finally:
            await watch.stop()

    asyncio.run(scenario())
    assert 404 in {r["status"] for r in list_requests(arm, 0)}


# --- the schedule a base_image pipeline gets (schedules.py) -------------------------------------------------------


def _base_cfg(**changes):
    from batch_images.rules.config import PipelineConfig, load_pipelines

    raw = load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")[0].to_dict()
    base = {**raw["base_image"], **changes.pop("base_image", {})}
    return PipelineConfig.from_dict({**raw, "base_image": base, **changes}, "pipeline")


def test_watched_base_is_scheduled_on_cron_or_its_asset():
    from airflow.sdk import Asset, AssetOrTimeSchedule
    from airflow.sdk.definitions.timetables.simple import OnceTimetable
    from batch_images.schedules import pipeline_schedule
    from batch_images.timetables import UpcomingCronTimetable

    cfg = _base_cfg()
    schedule = pipeline_schedule(cfg)
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.timetable, UpcomingCronTimetable) and schedule.timetable.summary == "0 0 * * *"
    asset = schedule.asset_condition
    assert asset.uri == "azure-vmimage://westeurope/canonical/0001-com-ubuntu-server-jammy/22_04-lts-gen2"
    [watcher] = asset.watchers
    kind, kwargs = watcher.trigger.serialize()
    assert kind == "batch_images.triggers.base_image_watch.BaseImageVersionTrigger"
    assert kwargs == {"location": "westeurope", "publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                      "sku": "22_04-lts-gen2", "poll_interval": 3600.0, "conn_id": "azure_default"}
    # presets CronTriggerTimetable does not know itself, and no cron at all
    assert pipeline_schedule(_base_cfg(schedule="@annually")).timetable.summary == "0 0 1 1 *"
    assert isinstance(pipeline_schedule(_base_cfg(schedule="@once")).timetable, OnceTimetable)
    [only] = pipeline_schedule(_base_cfg(schedule=None))
    assert isinstance(only, Asset) and only.uri == asset.uri
    # no watcher: the cron alone (unpausing starts no build: batch_images/timetables.py)
    plain = pipeline_schedule(_base_cfg(base_image={"watch_interval_seconds": None}))
    assert isinstance(plain, UpcomingCronTimetable) and plain.summary == "0 0 * * *"


def test_the_dag_with_a_watched_base_serializes_with_its_watcher():
    """What the dag-processor stores and the scheduler registers the watcher from."""
    import importlib.util

    from airflow.serialization.serialized_objects import DagSerialization

    spec = importlib.util.spec_from_file_location("dagfile_watch", ROOT / "dags" / "batch_image_pipelines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.batch_image_ubuntu2204_base
    encoded = DagSerialization.to_dict(dag)["dag"]["timetable"]
    assert encoded["__type"] == "airflow.timetables.assets.AssetOrTimeSchedule"
    [watcher] = encoded["__var"]["asset_condition"]["watchers"]
    assert watcher["trigger"]["classpath"].endswith("BaseImageVersionTrigger")
