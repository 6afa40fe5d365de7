"""The pipelines' cron timetable: unpausing a DAG starts no build; the first scheduled run is the next cron time.

Airflow 3.3's ``CronTriggerTimetable`` with ``catchup=False`` schedules the most recent past cron time whenever it
is asked (``airflow/timetables/trigger.py``, ``_TriggerTimetable.next_dagrun_info``: the candidate
``_align_to_prev(utcnow())``), and the dag-processor asks on every parse, also while the DAG is paused. So unpausing
an ``@daily`` pipeline in the afternoon made ``scheduled__<today>T00:00`` at once: a real build nobody asked for.
Its ``run_immediately`` does not help here: it is only read for a DAG without ``start_date`` that never ran (the
same function; the pipelines have a start_date).

:class:`UpcomingCronTimetable` replaces that candidate: with ``catchup=False`` a cron time is scheduled only if it
is at most ``grace`` (default :data:`GRACE`) in the past, else the next one. The grace keeps the nightly run when
the dag-processor re-parses between the cron time and the scheduler's creation of the run (the scheduler loops
every second or so; the dag-processor recomputes the next run on every parse). So:

* unpaused (first time, or after a pause of any length): the next run is the next cron time (or one less than
  ``grace`` ago);
* a run that cannot start within ``grace`` of its cron time (the scheduler down, or ``max_active_runs=1`` and the
  previous run still going, e.g. waiting for approval) is skipped, not made up later: the next is the next cron time;
* with ``catchup=True`` (and for backfills, which ask with ``catchup=True``) it is ``CronTriggerTimetable``.

Registered by the plugin ``plugins/batch_images_plugin.py`` (the scheduler deserializes only registered custom
timetables). Serialized as ``CronTriggerTimetable`` is (``run_immediately`` holds the grace).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from airflow._shared.timezones.timezone import coerce_datetime, utcnow
from airflow.timetables.base import DagRunInfo
from airflow.timetables.trigger import CronTriggerTimetable

if TYPE_CHECKING:
    from pendulum import DateTime

    from airflow.timetables.base import DataInterval, TimeRestriction

GRACE = datetime.timedelta(minutes=5)


class UpcomingCronTimetable(CronTriggerTimetable):
    """``CronTriggerTimetable`` whose ``catchup=False`` start is the next cron time, never one long past.

    :param cron: a cron expression or an Airflow preset (``@daily``, ...).
    :param timezone: the cron's timezone (the pipelines use UTC).
    :param run_immediately: the grace: how long after a cron time its run may still be created (a
        ``timedelta``; ``True``: any past cron time, as ``CronTriggerTimetable``; ``False``: none). Default
        :data:`GRACE`, 5 minutes.
    """

    def __init__(self, cron: str, *, timezone, interval: datetime.timedelta = datetime.timedelta(),
                 run_immediately: bool | datetime.timedelta = GRACE) -> None:
        super().__init__(cron, timezone=timezone, interval=interval, run_immediately=run_immediately)

    @property
    def grace(self) -> datetime.timedelta | None:
        """The grace as a timedelta (None: no limit, ``run_immediately=True``)."""
        if self._run_immediately is True:
            return None
        if isinstance(self._run_immediately, datetime.timedelta):
            return self._run_immediately
        return datetime.timedelta(0)

    def earliest_due(self, now: DateTime) -> DateTime:
        """The earliest cron time a run may still be made for at ``now``: the last one if it is at most the grace
        ago, else the next one."""
        last = self._align_to_prev(now)
        grace = self.grace
        return last if grace is None or now - last <= grace else self._align_to_next(now)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction) -> DagRunInfo | None:
        if restriction.catchup:
            return super().next_dagrun_info(last_automated_data_interval=last_automated_data_interval,
                                            restriction=restriction)
        candidates = [self.earliest_due(coerce_datetime(utcnow()))]
        if last_automated_data_interval is not None:
            candidates.append(self._get_next(last_automated_data_interval.end))
        if restriction.earliest is not None:
            candidates.append(self._align_to_next(restriction.earliest))
        start = max(candidates)
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(coerce_datetime(start - self._interval), start)
