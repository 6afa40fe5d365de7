"""Persisted resource state: JSON documents in SQLite, keyed by (kind, lower-cased key).

State is a function of simulated time: each kind may register an *advancer* that moves a document
forward (provisioningState, node states, replication progress) from the timestamps it recorded, so
everything survives a restart and no background thread is needed.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Callable

Advancer = Callable[[Any, dict], "dict | None"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
                                 PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, real_ts REAL, sim_ts REAL,
    family TEXT, method TEXT, path TEXT, op TEXT, status INTEGER, write INTEGER, fault TEXT,
    retry_after REAL);
"""


class Store:
    def __init__(self, path: str):
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.lock = threading.RLock()
        self._advancers: dict[str, Advancer] = {}
        self.ctx: Any = None

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    def register_advancer(self, kind: str, fn: Advancer) -> None:
        self._advancers[kind] = fn

    # -- documents -------------------------------------------------------------------------------
    def _advance(self, kind: str, key: str, body: dict) -> dict | None:
        sim = body.get("_sim") or {}
        delete_at = sim.get("delete_at")
        if delete_at is not None and self.ctx is not None and self.ctx.clock.now() >= delete_at:
            self.delete(kind, key)
            return None
        fn = self._advancers.get(kind)
        if fn is None or self.ctx is None:
            return body
        before = json.dumps(body, sort_keys=True)
        after = fn(self.ctx, body)
        if after is None:
            self.delete(kind, key)
            return None
        if json.dumps(after, sort_keys=True) != before:
            self.put(kind, key, after)
        return after

    def get(self, kind: str, key: str) -> dict | None:
        key = key.lower()
        with self.lock:
            row = self._db.execute("SELECT body FROM docs WHERE kind=? AND key=?", (kind, key)).fetchone()
            if row is None:
                return None
            return self._advance(kind, key, json.loads(row[0]))

    def get_raw(self, kind: str, key: str) -> dict | None:
        """Without advancing: for advancers that look at a related document."""
        with self.lock:
            row = self._db.execute("SELECT body FROM docs WHERE kind=? AND key=?", (kind, key.lower())).fetchone()
            return None if row is None else json.loads(row[0])

    def _rows(self, kind: str, prefix: str) -> list[tuple[str, str]]:
        """(key, body JSON) of the kind's documents whose key starts with ``prefix``, sorted by key."""
        prefix = prefix.lower()
        with self.lock:
            return self._db.execute(
                "SELECT key, body FROM docs WHERE kind=? AND substr(key, 1, ?)=? ORDER BY key",
                (kind, len(prefix), prefix),
            ).fetchall()

    def list_raw(self, kind: str, prefix: str = "") -> list[dict]:
        """Without advancing (as get_raw): for advancers that count related documents."""
        return [json.loads(raw) for _, raw in self._rows(kind, prefix)]

    def put(self, kind: str, key: str, body: dict) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO docs(kind, key, body) VALUES(?,?,?) "
                "ON CONFLICT(kind, key) DO UPDATE SET body=excluded.body",
                (kind, key.lower(), json.dumps(body)),
            )

    def delete(self, kind: str, key: str) -> None:
        with self.lock:
            self._db.execute("DELETE FROM docs WHERE kind=? AND key=?", (kind, key.lower()))

    def list(self, kind: str, prefix: str = "") -> list[dict]:
        with self.lock:  # advancing under the same lock as the read, as before
            out = []
            for key, raw in self._rows(kind, prefix):
                body = self._advance(kind, key, json.loads(raw))
                if body is not None:
                    out.append(body)
            return out

    def count(self, kind: str, prefix: str = "") -> int:
        return len(self.list(kind, prefix))

    # -- meta ------------------------------------------------------------------------------------
    def meta_get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return default if row is None else json.loads(row[0])

    def meta_set(self, key: str, value: Any) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )

    # -- request log -----------------------------------------------------------------------------
    def log_request(self, **row: Any) -> None:
        with self.lock:
            self._db.execute(
                "INSERT INTO requests(real_ts, sim_ts, family, method, path, op, status, write, fault, retry_after)"
                " VALUES(:real_ts, :sim_ts, :family, :method, :path, :op, :status, :write, :fault, :retry_after)",
                row,
            )

    def requests(self, since_id: int = 0) -> list[dict]:
        with self.lock:
            cur = self._db.execute("SELECT * FROM requests WHERE id > ? ORDER BY id", (since_id,))
            names = [c[0] for c in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def clear_requests(self) -> None:
        with self.lock:
            self._db.execute("DELETE FROM requests")

    def wipe(self) -> None:
        """Drop every document (not the clock): the control API's reset."""
        with self.lock:
            self._db.execute("DELETE FROM docs")
            self._db.execute("DELETE FROM requests")
            self._db.execute("DELETE FROM meta WHERE key != 'clock'")

    def close(self) -> None:
        with self.lock:
            self._db.close()
