"""The demo pipeline under the real Airflow services, triggered through the REST API v2.

Unlike `airflow dags test` (which runs triggers in-line in one process), here a scheduler queues the
tasks, an executor runs them in worker processes, the waits defer to a separate triggerer, and the DAG is
parsed by the dag-processor. This file: SQLite + LocalExecutor (what `make airflow` runs);
test_celery_executor.py: PostgreSQL + CeleryExecutor with two workers.

Each test unpauses the pipeline, triggers a run with ``logical_date`` and ``conf`` ({"rebuild": 1}),
waits for it, and checks: the run and every task succeeded; no waiting task (a sensor, or a task named
``wait_*``) waited in its worker slot - its log, read through the API, shows one probe in the worker, then
either the answer ("The first probe found ...") or the worker's "Pausing task as DEFERRED" and the
triggerer's "Trigger fired event", and at least one wait deferred; and, through the SDKs against the stand-in, the version
YYYY.MMDD.1 is published and replicated, the run's pools are steady at their target, and no temporary
snapshot or managed image is left.
"""
from __future__ import annotations

import pytest

from _services import REBUILD, assert_run_and_azure_state, leftovers, trigger_and_wait

pytestmark = pytest.mark.services


def test_sqlite_local_executor_run_from_the_rest_api(sqlite_stack, services_standin, record_property):
    before = leftovers(services_standin)
    result = trigger_and_wait(sqlite_stack.client(), {"rebuild": REBUILD})
    record_property("wall_seconds", round(result.wall_seconds, 1))
    print(f"\nreal services, SQLite + LocalExecutor: run {result.run['state']} in {result.wall_seconds:.1f} s")
    assert_run_and_azure_state(result, services_standin, before)
