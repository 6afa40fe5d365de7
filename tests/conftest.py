"""Shared fixtures: the real stand-in as a process, and the unmodified SDKs pointed at it."""
from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
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


def _own_airflow_home(worker: str) -> None:
    """Under pytest-xdist: this worker's own AIRFLOW_HOME, a copy of the migrated SQLite DB, and log folder.

    SQLite takes one writer at a time and runs of different tests must not see each other, so each worker
    (and the `airflow dags test` children it starts, which inherit os.environ) gets its own DB. Overrides
    the Makefile's exports; must run before anything imports airflow. Raises RuntimeError when the
    migrated DB (`make db`) is missing."""
    conn = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if not conn.startswith("sqlite:///"):
        return  # a server DB (PostgreSQL, MySQL) takes many writers
    source = Path(conn.removeprefix("sqlite:///"))
    if not source.is_file():
        raise RuntimeError(f"no migrated Airflow DB at {source}: run `make db` first")
    home = Path(tempfile.mkdtemp(prefix=f"airflow-{worker}-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            closing(sqlite3.connect(home / "airflow.db")) as dst:
        src.backup(dst)   # a consistent copy even if someone writes the source meanwhile
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(home / "logs")
    # One Fernet key for the worker and every `airflow dags test` child: a fresh AIRFLOW_HOME has no airflow.cfg
    # holding one, and Airflow encrypts the kwargs of an AssetWatcher's trigger (the base-image watcher) in the DB,
    # which the next child must decrypt (cryptography.fernet.InvalidToken otherwise).
    if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):
        from cryptography.fernet import Fernet

        os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()


if os.environ.get("PYTEST_XDIST_WORKER"):
    _own_airflow_home(os.environ["PYTEST_XDIST_WORKER"])


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


# Under pytest-xdist (`make test` runs `--dist loadfile`): a file's tests stay on one worker, so its module
# fixtures are built once. Files sharing a session fixture too costly to build twice are one scope: the
# controller sees only node ids, so they are named here (tests/services/conftest.py's sqlite_stack, the
# four Airflow services on SQLite). xdist_group marks + loadgroup would say the same, but xdist 3.8 writes
# the group into item._nodeid, which pytest 9.2 no longer reads (nodeid comes from item._id).
_SHARED_SCOPES = {
    "tests/services/test_local_executor.py": "sqlite_stack",
    "tests/services/test_trigger_form.py": "sqlite_stack",
}
# Long files with no module fixture, whose tests each make their own resources (function-scoped harness or
# `arm` fixture, the stand-in reset, a unique dag_id): one scope per test, so they spread over the workers.
_PER_TEST_SCOPES = ("tests/reliability/test_faults", "tests/reliability/test_bad_input.py",
                    "tests/pipeline/test_waits.py")
# The longest scopes first, so that none of them starts last while the other workers sit idle; within a
# rank, collection order (`--no-loadscope-reorder` keeps it). Seconds from a -n 3 run on a loaded 2-core
# machine (--durations=0, setup + call + teardown): test_faults.py 1473 (15 tests, none over 115),
# test_faults_roll.py 887 (backfill 279, two nights killed 234), test_waits.py 459 (one test 241: two
# wall-clock Retry-After waits), e2e/test_pipeline_end_to_end.py 407 (module fixture), bench smoke 335,
# services 454 (celery 235, the sqlite stack's two files 218), e2e/test_roll_two_nights.py 153.
_LONG_FIRST = (
    "tests/e2e/test_pipeline_end_to_end.py",
    "tests/benchmarks/",
    "tests/reliability/test_faults_roll.py",
    "tests/pipeline/test_waits.py::test_an_exception_from_azure_cores_retry_machinery_is_not_a_crash",
    "tests/services/",
    "tests/e2e/",
    "tests/reliability/test_faults.py",
    "tests/pipeline/test_waits.py",
    "tests/reliability/",
    "tests/pipeline/test_summary.py",
)


@pytest.hookimpl(optionalhook=True)   # an xdist hook: absent under -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            if path.startswith(_PER_TEST_SCOPES):
                return nodeid
            return _SHARED_SCOPES.get(path, path)

    return SharedFixtureFileScheduling(config, log)


# The `slow` tier (pytest.ini; `make test-fast` leaves it out): these folders whole. A single slow test elsewhere
# carries @pytest.mark.slow in its module.
_SLOW_PATHS = ("tests/services/", "tests/reliability/", "tests/e2e/", "tests/cli/", "tests/benchmarks/")


@pytest.hookimpl(tryfirst=True)   # before pytest's own -m deselection
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(_SLOW_PATHS):
            item.add_marker(pytest.mark.slow)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return   # serial run: collection order as it always was

    def rank(item) -> int:
        return next((i for i, prefix in enumerate(_LONG_FIRST) if item.nodeid.startswith(prefix)), len(_LONG_FIRST))

    items.sort(key=rank)   # stable: within a rank, collection order; the workers' order is the controller's


# The fault suite's table (tests/reliability): rows ride on each test's teardown report, so the xdist
# controller gets them from every worker; printed in a serial run's order.
_ROWS: list[dict] = []


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _ROWS.extend(v for k, v in report.user_properties if k == "reliability_row")


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    rows = sorted(_ROWS, key=lambda r: (r["file"], r["order"]))   # stable: a test's rows as recorded
    w = terminalreporter.write_line
    w("")
    w("Reliability table (what each fault did to a pipeline run against the stand-in)")
    header = f"{'fault':<58} {'runs':>4} {'survived':>8} {'leaked':>6} {'writes before refusal':>21}"
    w(header)
    w("-" * len(header))
    for r in rows:
        wbr = "-" if r["writes_before_refusal"] is None else str(r["writes_before_refusal"])
        w(f"{r['fault'][:58]:<58} {r['runs']:>4} {('yes' if r['survived'] else 'NO'):>8} {r['leaked']:>6} {wbr:>21}")
    refusals = [r for r in rows if r["fault"].startswith(("bad input", "secrets", "permissions: without"))]
    failures = [r for r in rows if r not in refusals]
    w(f"{len(rows)} rows; leaks total {sum(r['leaked'] for r in rows)}; "
      f"writes before bad-input refusals total {sum(r['writes_before_refusal'] or 0 for r in refusals)}; "
      f"writes made before a run failed on an injected fault (then cleaned up) "
      f"{sum(r['writes_before_refusal'] or 0 for r in failures)}")
