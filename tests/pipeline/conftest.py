"""Fixtures shared by this folder's test files: the stand-in (tests/conftest.py's ``standin``, reset per test) with
the Airflow connections pointing at it. Plain helpers are in _arm_common.py, _batch_common.py and _demo_run.py."""
from __future__ import annotations

import json

import pytest

from _batch_common import azure_conn, build_image_version, reset_secret_cache, set_connections


@pytest.fixture
def arm(standin, monkeypatch):
    """The stand-in with AIRFLOW_CONN_AZURE_DEFAULT pointing at it."""
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_DEFAULT", json.dumps(azure_conn(standin.endpoints)))
    reset_secret_cache()  # connections are cached per process by URI; the stand-in's port changes per session
    return standin


@pytest.fixture
def conns(standin, monkeypatch):
    """The stand-in with azure_default and azure_batch_default pointing at it."""
    set_connections(monkeypatch, standin.endpoints)
    return standin


@pytest.fixture
def env(conns):
    """The Batch-half tests' name for ``conns``."""
    return conns


@pytest.fixture
def version_id(env):
    """A replicated gallery image version (built with azure-mgmt-compute directly); its id."""
    return build_image_version(env)
