"""Fixtures of the real-services tests: the demo pipeline under the real Airflow services (include/services).

The pipeline is include/pipelines/demo.yaml's as it is at HEAD with one change, ``schedule: null``:
these tests want only the runs they trigger (an ``@daily`` DAG's scheduler run at midnight would join them;
unpausing itself starts none, test_backfill.py shows it). Every stack has its own temp AIRFLOW_HOME and free ports.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from _services import SERVICES_TIME_SCALE, demo_pipelines_dir
from include.services.stack import AirflowStack


def pytest_configure(config):
    config.addinivalue_line("markers", "services: the real Airflow services (scheduler, triggerer, dag-processor, "
                                       "api-server, workers) over the stand-in; part of make test")


@pytest.fixture
def services_standin(standin_session):
    """The session's stand-in, reset to the seeded fixture, at the real-services time scale."""
    if standin_session.proc is None or standin_session.proc.poll() is not None:
        standin_session.start()
    standin_session.reset(scale=SERVICES_TIME_SCALE)
    return standin_session


@pytest.fixture(scope="session")
def sqlite_stack(standin_session, tmp_path_factory):
    """SQLite + LocalExecutor: the four services, as `make airflow` runs them (shared by the REST API test
    and the browser test of the trigger form)."""
    tmp = tmp_path_factory.mktemp("sqlite-stack")
    stack = AirflowStack(home=tmp / "home", standin=standin_session.endpoints,
                         extra_env={"BATCH_IMAGES_PIPELINES_DIR": str(demo_pipelines_dir(tmp / "pipelines"))})
    _running.append(stack)
    stack.start()
    yield stack
    stack.stop()


_running: list[AirflowStack] = []


def pytest_runtest_teardown(item, nextitem):
    """Stop the shared stack once the last test of this folder ran, not at the end of `make test`: its idle
    services would slow the tests that follow."""
    here = Path(__file__).parent
    if nextitem is None or here not in Path(nextitem.path).parents:
        while _running:
            _running.pop().stop()
