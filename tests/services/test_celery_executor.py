"""The demo pipeline under the real services in a production shape: PostgreSQL as the metadata DB,
CeleryExecutor with a Redis broker and two Celery workers, triggered through the REST API v2. The tasks of
the one run are executed by both workers (checked from the workers' logs), so nothing in the pipeline may
depend on a task's local disk or process. The checks of the run and of Azure are those of
test_local_executor.py (tests/services/_services.py).
"""
from __future__ import annotations

import re
from contextlib import ExitStack

import pytest

from _services import REBUILD, assert_run_and_azure_state, demo_pipelines_dir, leftovers, require, trigger_and_wait
from include.services.stack import AirflowStack, PostgresServer, RedisServer

pytestmark = pytest.mark.services


@pytest.fixture
def celery_stack(services_standin, tmp_path):
    """PostgreSQL metadata DB, Redis broker, CeleryExecutor with two workers (2 slots each). Whatever started is
    stopped on every path (a later start failing included); each server stops itself if its own start fails."""
    require("postgresql", "redis-server")
    with ExitStack() as started:
        pg = PostgresServer().start()
        started.callback(pg.stop)
        redis = RedisServer(tmp_path / "redis").start()
        started.callback(redis.stop)
        stack = AirflowStack(home=tmp_path / "home", standin=services_standin.endpoints, sql_alchemy_conn=pg.url,
                             executor="CeleryExecutor", broker_url=redis.url, celery_workers=2,
                             extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(demo_pipelines_dir(tmp_path / "pipelines"))})
        started.callback(stack.stop)
        stack.start()
        yield stack


def test_postgres_celery_two_workers_run_from_the_rest_api(celery_stack, services_standin, record_property):
    before = leftovers(services_standin)
    result = trigger_and_wait(celery_stack.client(), {"rebuild": REBUILD})
    record_property("wall_seconds", round(result.wall_seconds, 1))
    print(f"\nreal services, PostgreSQL + CeleryExecutor (2 workers): run {result.run['state']} in "
          f"{result.wall_seconds:.1f} s")
    assert_run_and_azure_state(result, services_standin, before)

    # the tasks of this one run were executed by both workers (each worker logs the workloads it runs)
    run_id = result.run["dag_run_id"]
    ran_on = {}
    for worker in ("worker1", "worker2"):
        log = celery_stack.log(worker)
        ran_on[worker] = {m for m in re.findall(r"task_id='([^']+)'", "\n".join(
            line for line in log.splitlines() if "Executing workload" in line and run_id in line))}
    assert ran_on["worker1"] and ran_on["worker2"], f"tasks per worker: {ran_on}"
    assert ran_on["worker1"] | ran_on["worker2"] >= {ti["task_id"] for ti in result.tis}, ran_on
