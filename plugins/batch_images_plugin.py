"""The project's Airflow plugin: registers the pipelines' timetable (batch_images/timetables.py).

Airflow stores a DAG's timetable serialized and the scheduler, dag-processor and api-server rebuild it only from
Airflow's own classes or classes a plugin registers ("Customizing DAG Scheduling with Timetables", Airflow docs);
without this file the pipelines' DAGs fail to serialize (TimetableNotRegistered).
"""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from batch_images.timetables import UpcomingCronTimetable


class BatchImagesPlugin(AirflowPlugin):
    name = "batch_images"
    timetables = [UpcomingCronTimetable]
