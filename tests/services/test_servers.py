"""The servers the real-services tests start (include/services/stack.py) are stopped when their start fails after
the process started: no redis-server or PostgreSQL is left running by a failed fixture (issue 22)."""
from __future__ import annotations

import socket
import subprocess

import pytest

from _services import require
from include.services import stack
from include.services.stack import PostgresServer, RedisServer

pytestmark = pytest.mark.services


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_redis_server_whose_start_fails_is_stopped(tmp_path, monkeypatch):
    require("redis-server")
    started: list[subprocess.Popen] = []

    def port_never_ready(port, timeout, what, proc=None):
        started.append(proc)
        raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} (this test)")

    monkeypatch.setattr(stack, "_wait_port", port_never_ready)
    server = RedisServer(tmp_path / "redis")
    with pytest.raises(TimeoutError, match="this test"):
        server.start()
    [proc] = started
    assert proc.poll() is not None, f"redis-server {proc.pid} still running after its start failed"
    assert server.proc is None


def test_a_postgres_server_whose_start_fails_after_it_listens_is_stopped():
    require("postgresql")

    class CreatedbFails(PostgresServer):
        def _run(self, *argv, timeout=120):
            if argv[0] == "createdb":
                self.listened = _listening(self.port)
                self.files = self.dir
                raise RuntimeError("createdb failed (this test)")
            return super()._run(*argv, timeout=timeout)

    server = CreatedbFails()
    with pytest.raises(RuntimeError, match="this test"):
        server.start()
    assert server.listened, "the server never ran: the test proves nothing"
    assert not _listening(server.port), f"PostgreSQL still listens on {server.port} after its start failed"
    assert not server.files.exists() and server.dir is None
