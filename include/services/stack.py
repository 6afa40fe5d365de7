"""The real Airflow services over this project, as users run them, plus the servers they need.

* :class:`AirflowStack` - `airflow db migrate`, the connections of airflow_settings.yaml (pointed at a
  running stand-in, see include/airflow_settings.py), then scheduler, triggerer, dag-processor,
  api-server and, for CeleryExecutor, N `airflow celery worker` processes, each in its own process group
  with its log in ``<home>/services/<name>.log``. :meth:`AirflowStack.stop` ends them all.
* :class:`ApiClient` - the REST API v2 with a JWT from the simple auth manager's ``POST /auth/token``.
* :class:`PostgresServer`, :class:`RedisServer` - Debian's postgresql and redis-server on a free
  loopback port in a temp dir (PostgreSQL refuses to run as root: as root its files belong to, and it
  runs as, the ``postgres`` user the Debian package creates).
* ``python -m include.services.stack`` (`make airflow`) - the stand-in and the stack in the foreground;
  prints the UI URL and the login; Ctrl-C stops everything it started.

Nothing here is needed in a deployment: there the platform (Astro, the Helm chart, ...) runs the services.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "airflow_settings.yaml"
USERNAME = "admin"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group (the service and the task processes it forked), SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent too
    except ProcessLookupError:
        pass
    proc.wait()


class RedisServer:
    """redis-server on a free loopback port, no persistence; the Celery broker."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start it; on any failure after the process started, stop it before raising."""
        binary = redis_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no", "--dir", str(self.workdir)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_port(self.port, 20, "redis-server", self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc:
            _stop_group(self.proc, 10)
            self.proc = None


def redis_binary() -> str | None:
    """redis-server (Debian package ``redis-server``): on PATH or in /usr/bin; None when not installed."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return found if os.access(found, os.X_OK) else None


def postgres_bindir(required: bool = True) -> Path | None:
    """Debian's PostgreSQL binaries (/usr/lib/postgresql/<newest>/bin), else the ones on PATH.

    Raises FileNotFoundError when PostgreSQL is not installed (package ``postgresql``), or returns None when not
    ``required``."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    if required:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    return None


class PostgresServer:
    """A throw-away PostgreSQL cluster (initdb in a temp dir, trust auth on loopback, fsync off)."""

    def __init__(self):
        self.dir: Path | None = None
        self.port = 0
        self.bindir = postgres_bindir()
        self.run_as = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}")

    def start(self) -> "PostgresServer":
        """initdb, start, createdb; on any failure, stop the server (if it started) and remove its files before
        raising."""
        self.dir = Path(tempfile.mkdtemp(prefix="airflow-pg-"))
        try:
            if self.run_as:
                shutil.chown(self.dir, self.run_as, self.run_as)
            data = self.dir / "data"
            self._run("initdb", "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync")
            self.port = free_port()
            opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                    f"-c fsync=off -c synchronous_commit=off -c max_connections=200")
            self._run("pg_ctl", "-D", str(data), "-l", str(self.dir / "postgres.log"), "-o", opts, "-w", "start")
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None


class ApiClient:
    """Airflow's REST API v2 as the UI's user: a JWT from ``POST /auth/token`` (simple auth manager)."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, token: bool = True):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: HTTP {err.code}: {err.read().decode(errors='replace')[:2000]}") from None
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(text) if text and "json" in ctype else text

    def token(self) -> str:
        if self._token is None:
            self._token = self._request("POST", "/auth/token",
                                        {"username": self.username, "password": self.password},
                                        token=False)["access_token"]
        return self._token

    def get(self, path: str, **params):
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return self._request("GET", path + query)

    def post(self, path: str, body: dict):
        return self._request("POST", path, body)

    def patch(self, path: str, body: dict):
        return self._request("PATCH", path, body)


@dataclass
class AirflowStack:
    """Scheduler, triggerer, dag-processor, api-server (and Celery workers) on one AIRFLOW_HOME.

    :param home: AIRFLOW_HOME (airflow.cfg, logs, the simple auth manager's passwords file).
    :param standin: the running stand-in's endpoints.json document; the connections of
        airflow_settings.yaml are pointed at it (loaded into the metadata DB for the UI and passed as
        AIRFLOW_CONN_* to every service).
    :param sql_alchemy_conn: metadata DB URL (default: SQLite in ``home``).
    :param executor: ``LocalExecutor`` or ``CeleryExecutor`` (then ``broker_url`` and ``celery_workers``).
    :param api_port: the api-server's port (0: a free one).
    :param extra_env: more variables for every service (e.g. BATCH_IMAGES_PIPELINES_DIR).
    """

    home: Path
    standin: dict
    sql_alchemy_conn: str | None = None
    executor: str = "LocalExecutor"
    broker_url: str | None = None
    celery_workers: int = 0
    worker_concurrency: int = 2
    api_port: int = 0
    host: str = "127.0.0.1"
    password: str | None = None
    extra_env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict, init=False)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "services"

    def _password(self) -> str:
        """The admin's password: kept in the simple auth manager's passwords file (made once per home)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        if self.password:
            known[USERNAME] = self.password
        known.setdefault(USERNAME, secrets.token_urlsafe(12))
        path.write_text(json.dumps(known) + "\n")
        path.chmod(0o600)
        return known[USERNAME]

    def env(self) -> dict[str, str]:
        """The services' environment: ours, without the caller's AIRFLOW__* / AIRFLOW_CONN_* settings.

        The secrets every service must share (``[api_auth] jwt_secret``, ``[core] fernet_key``) come from
        ``<home>/airflow.cfg``, which the first `airflow db migrate` of a home writes.
        """
        from include.airflow_settings import as_env, read_connections

        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_HOME", "_AIRFLOW"))}
        db = self.sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"
        env = {
            **base,
            "AIRFLOW_HOME": str(self.home),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__API__HOST": self.host,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            # the pool and ARM waits defer to the triggerer, as in the Makefile and the Dockerfile
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # The task SDK's supervisor notices its task process's exit only after its next wait of up to
            # [workers] min_heartbeat_interval (5 s) when the process closed its sockets before it was reaped (half
            # the executions here). A deferring execution's late "success" then reaches the scheduler after the
            # trigger fired and the task was requeued, and Airflow 3.3.2 fails and retries it (apache/airflow#72716,
            # #67287; #68741 covers queued on main, not in 3.3.2). 1 s keeps that report ahead of the trigger's
            # first poll (triggers/base.py first_poll_delay). benchmarks/retry_free.py checks it.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # every service that serves logs gets its own free port (two stacks, or two workers, on one host)
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            **as_env(read_connections(SETTINGS, self.standin)),
            **self.extra_env,
        }
        if self.executor == "CeleryExecutor":
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url or ""
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + db  # the driver named: SQLAlchemy 2.1 defaults to psycopg 3
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.worker_concurrency)
        return env

    def _airflow(self, env: dict, *argv: str, timeout: float = 600) -> None:
        log = self.log_dir / f"{argv[0]}.log"
        with open(log, "ab") as out:
            rc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
        if rc:
            raise RuntimeError(f"`{' '.join(argv)}` failed ({rc}):\n{log.read_text(errors='replace')[-3000:]}")

    def services(self) -> list[tuple[str, list[str], dict]]:
        """(name, argv after `python -m airflow`, extra env) of each long-running service."""
        out = [("api-server", ["api-server", "--host", self.host, "--port", str(self.api_port)], {}),
               ("scheduler", ["scheduler"], {}),
               ("dag-processor", ["dag-processor"], {}),
               ("triggerer", ["triggerer"], {})]
        for i in range(1, self.celery_workers + 1 if self.executor == "CeleryExecutor" else 1):
            # two workers on one host: each its own Celery node name, no log server (the api-server reads
            # the shared log folder)
            out.append((f"worker{i}", ["celery", "worker", "--celery-hostname", f"worker{i}@%h",
                                       "--concurrency", str(self.worker_concurrency), "--skip-serve-logs"], {}))
        return out

    def start(self, timeout: float = 240) -> "AirflowStack":
        self.home = Path(self.home).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = self.api_port or free_port()
        self.password = self._password()
        env = self.env()
        self._airflow(env, "airflow", "db", "migrate")
        self._airflow(env, "include.airflow_settings", "--settings", str(SETTINGS),
                      "--endpoints", str(self._endpoints_file()))
        try:
            for name, argv, extra in self.services():
                log = open(self.log_dir / f"{name}.log", "ab")
                self.procs[name] = subprocess.Popen([sys.executable, "-m", "airflow", *argv], cwd=ROOT,
                                                    env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str, while_down=None) -> None:
        """Stop one service (SIGTERM to its process group, SIGKILL after 20 s) and start it again as :meth:`start`
        did; ``while_down()`` runs in between - e.g. for the triggerer, to show what its triggers remember across a
        restart."""
        argv, extra = next((a, e) for n, a, e in self.services() if n == name)
        _stop_group(self.procs.pop(name))
        if while_down is not None:
            while_down()
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "airflow", *argv], cwd=ROOT,
                                            env={**self.env(), **extra}, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def _endpoints_file(self) -> Path:
        path = self.home / "standin-endpoints.json"
        path.write_text(json.dumps(self.standin))
        return path

    def check_alive(self) -> None:
        """Raise, naming the service and the end of its log, if one of them has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}; end of its log:\n{tail}")

    def wait_healthy(self, timeout: float) -> None:
        """Until /api/v2/monitor/health reports the metadata DB, scheduler, triggerer and dag-processor healthy."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as resp:
                    last = json.loads(resp.read())
                if all((last.get(k) or {}).get("status") == "healthy"
                       for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow services not healthy within {timeout:.0f} s (last health: {last}); "
                           f"logs in {self.log_dir}")

    def client(self) -> ApiClient:
        return ApiClient(self.api_url, USERNAME, self.password)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every service's process group at once, then SIGKILL what is left after ``timeout`` s."""
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            _stop_group(proc, max(0.1, deadline - time.monotonic()))
        self.procs.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """`make airflow`: the stand-in and the four Airflow services in the foreground until Ctrl-C."""
    from include.demo import ensure_standin

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".standin", help="the stand-in's state dir")
    parser.add_argument("--port", type=int, default=8443, help="the stand-in's port (0: any free port)")
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--api-port", type=int, default=8080, help="the UI / REST API port (0: any free port)")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")))
    parser.add_argument("--sql-alchemy-conn", default=os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"))
    args = parser.parse_args(argv)

    standin_proc, ep = ensure_standin(args.state_dir.resolve(), args.port, args.time_scale)
    stack = AirflowStack(home=args.home, standin=ep, sql_alchemy_conn=args.sql_alchemy_conn,
                         api_port=args.api_port or free_port(), host="127.0.0.1")
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C and `kill` (also when started with SIGINT ignored)
        signal.signal(sig, _interrupt)
    try:
        print(f"stand-in: {ep['arm']} (state {args.state_dir}); starting Airflow in {stack.home} "
              f"(logs: {stack.log_dir}) ...", flush=True)
        stack.start()
        print(f"\nAirflow UI: {stack.api_url}\nLog in as: {USERNAME} / {stack.password}\n"
              f"(simple auth manager; the password is kept in "
              f"{stack.home / 'simple_auth_manager_passwords.json.generated'})\n"
              "Connections azure_default and azure_batch_default point at the stand-in. Unpause a DAG, "
              "then Trigger (the form shows its params).\nCtrl-C stops the Airflow services and the "
              "stand-in this command started.", flush=True)
        while True:
            stack.check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if standin_proc is not None:
            standin_proc.stop()


if __name__ == "__main__":
    sys.exit(main())
