"""Shared fixtures: the real stand-in as a process, and the unmodified SDKs pointed at it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "plugins", ROOT / "dags"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

# Airflow settings for tests; the Makefile sets the same and migrates the DB first.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{ROOT / '.airflow' / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")  # as the Makefile and Dockerfile
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from include.azure_standin import client as standin_client  # noqa: E402

TEST_TIME_SCALE = float(os.environ.get("STANDIN_TEST_TIME_SCALE", "3000"))


class StandInFixture(standin_client.StandInProcess):
    """A running stand-in plus SDK client factories bound to its endpoints."""

    def credential(self, aio: bool = False):
        return standin_client.credential(self.endpoints, aio)

    def compute(self, aio: bool = False, **kwargs):
        return standin_client.compute_client(self.endpoints, aio, **kwargs)

    def batch(self, account: str | None = None, aio: bool = False, **kwargs):
        return standin_client.batch_client(self.endpoints, account, aio, **kwargs)

    def reset(self, scale: float = TEST_TIME_SCALE) -> dict:
        """Fresh seeded state, no faults, empty request log."""
        self.endpoints = self.control.reset()
        self.control.set_scale(scale)
        self.endpoints = self.control.call("GET", "/endpoints")
        return self.endpoints


@pytest.fixture(scope="session")
def standin_session(tmp_path_factory):
    proc = StandInFixture(tmp_path_factory.mktemp("standin"), time_scale=TEST_TIME_SCALE)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def standin(standin_session):
    """The session's stand-in, reset to the seeded fixture for this test."""
    if standin_session.proc is None or standin_session.proc.poll() is not None:
        standin_session.start()
    standin_session.reset()
    return standin_session
