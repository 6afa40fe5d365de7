"""A pipeline's Airflow schedule: its cron, or its cron OR its base image's Asset (issue 11).

A pipeline whose source is ``base_image`` with ``watch_interval_seconds`` set is scheduled on
``AssetOrTimeSchedule``: the cron (``schedule``) as before, plus the Asset
``azure-vmimage://<location>/<publisher>/<offer>/<sku>`` whose :class:`AssetWatcher` runs
:class:`~batch_images.triggers.base_image_watch.BaseImageVersionTrigger` in the triggerer. A new base version
starts a run within one poll interval (plus the scheduler's loop); the run's triggering Asset event names the
version (``extra["payload"]["version"]``, :func:`batch_images.rules.base_watch.event_base_version`). Every other
pipeline's cron is an :class:`~batch_images.timetables.UpcomingCronTimetable` (unpausing starts no build: the first
scheduled run is the next cron time). No Azure SDK is imported here (the DAG file parses without it).
"""

from __future__ import annotations

from typing import Any

from batch_images.rules import base_watch, naming

# Presets Airflow's CronTriggerTimetable does not resolve itself (airflow.sdk.definitions.timetables._cron.
# CRON_PRESETS has @daily ... @yearly, not @annually); "@once" is not a cron at all (OnceTimetable).
_CRON_ALIASES = {"@annually": "@yearly"}


def watched_base(cfg: Any) -> Any | None:
    """The pipeline's ``base_image`` config when it asks for a watcher (``watch_interval_seconds`` set), else None."""
    base = getattr(cfg, "base_image", None)
    if base is None or getattr(base, "watch_interval_seconds", None) is None:
        return None
    return base


def base_image_asset(cfg: Any, base: Any) -> Any:
    """The Asset of the pipeline's base image with its version watcher."""
    from airflow.sdk import Asset, AssetWatcher
    from batch_images.triggers.base_image_watch import BaseImageVersionTrigger

    location = cfg.base_location  # the build VM's region: its marketplace is the one the run reads
    uri = naming.base_image_asset_uri(location, base.publisher, base.offer, base.sku)
    trigger = BaseImageVersionTrigger(location=location, publisher=base.publisher, offer=base.offer, sku=base.sku,
                                      poll_interval=float(base.watch_interval_seconds), conn_id=cfg.arm_conn_id)
    return Asset(uri=uri, name=uri, group="azure-vmimage",
                 watchers=[AssetWatcher(name=base_watch.watcher_name(location, base.publisher, base.offer, base.sku),
                                        trigger=trigger)])


def time_timetable(schedule: str) -> Any:
    """The timetable a plain ``schedule`` string gives (UTC, as the DAGs' start dates): ``@once`` Airflow's
    OnceTimetable, any cron or preset an :class:`~batch_images.timetables.UpcomingCronTimetable`."""
    from airflow.sdk.definitions.timetables.simple import OnceTimetable

    from batch_images.timetables import UpcomingCronTimetable

    if schedule == "@once":
        return OnceTimetable()
    return UpcomingCronTimetable(_CRON_ALIASES.get(schedule, schedule), timezone="UTC")


def pipeline_schedule(cfg: Any) -> Any:
    """``DAG(schedule=...)`` of a pipeline: the timetable of its ``schedule`` string (:func:`time_timetable`; None
    for ``schedule: null``), or - with a watched base image - ``AssetOrTimeSchedule(timetable=<the cron>,
    assets=<the base's Asset>)``, or the Asset alone when the pipeline has no cron (``schedule: null``)."""
    base = watched_base(cfg)
    if base is None:
        return None if cfg.schedule is None else time_timetable(cfg.schedule)
    asset = base_image_asset(cfg, base)
    if cfg.schedule is None:
        return [asset]
    from airflow.sdk import AssetOrTimeSchedule

    return AssetOrTimeSchedule(timetable=time_timetable(cfg.schedule), assets=asset)
