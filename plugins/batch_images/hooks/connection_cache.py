"""The connection cache and close plumbing both hooks share (:class:`ArmComputeHook`, :class:`BatchPoolHook`).

A hook reads its Airflow connection once - in a worker with :meth:`ConnectionCacheMixin.load_connection`,
in the triggerer without blocking the event loop with :meth:`~ConnectionCacheMixin.aload_connection` - and
keeps the SDK clients and credentials it builds, so one task or one trigger makes one TLS session and one
token per client. :meth:`~ConnectionCacheMixin.close` (what ``async with hook:`` and the waiters call)
closes the async clients and credential, then the sync ones.
"""

from __future__ import annotations

from typing import Any


class ConnectionCacheMixin:
    """Read the hook's connection once; close what the hook built.

    Mix in before the provider's hook class and call :meth:`_init_connection_cache` from ``__init__``.
    State: ``_conn_obj`` (the Airflow connection, None until loaded), ``_extras`` (its extras as a dict),
    ``_clients`` / ``_async_clients`` (SDK clients by any key, e.g. the subscription), ``_credential`` /
    ``_async_credential``. A hook that needs more once its connection is read (a second connection, a log
    line) overrides :meth:`_connection_loaded`. Closing is best effort: a failure is logged at debug level.
    """

    conn_id: str
    log: Any

    def _init_connection_cache(self) -> None:
        self._conn_obj: Any = None
        self._extras: dict = {}
        self._credential: Any = None
        self._async_credential: Any = None
        self._clients: dict[str, Any] = {}
        self._async_clients: dict[str, Any] = {}

    # -- reading connections -------------------------------------------------------------------------------------

    def _fetch_connection(self, conn_id: str) -> tuple[Any, dict]:
        """``(connection, extras)`` of ``conn_id`` (sync); AirflowNotFoundException when it does not exist."""
        conn = self.get_connection(conn_id)  # type: ignore[attr-defined]
        return conn, dict(conn.extra_dejson or {})

    async def _afetch_connection(self, conn_id: str) -> tuple[Any, dict]:
        """Like :meth:`_fetch_connection`, without blocking the event loop."""
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

        conn = await get_async_connection(conn_id, hook=self)
        return conn, dict(await get_async_extra_dejson(conn) or {})

    def _connection_loaded(self) -> None:
        """Called once, right after the hook's own connection is read (sync or async)."""

    def load_connection(self) -> Any:
        """Read the hook's Airflow connection once (sync); later sync and async calls reuse it."""
        if self._conn_obj is None:
            self._conn_obj, self._extras = self._fetch_connection(self.conn_id)
            self._connection_loaded()
        return self._conn_obj

    async def aload_connection(self) -> Any:
        """Read the hook's Airflow connection once without blocking the event loop (triggerer)."""
        if self._conn_obj is None:
            self._conn_obj, self._extras = await self._afetch_connection(self.conn_id)
            self._connection_loaded()
        return self._conn_obj

    # -- closing -------------------------------------------------------------------------------------------------

    def _close_quietly(self, obj: Any, what: str) -> None:
        if obj is None or not hasattr(obj, "close"):
            return
        try:
            obj.close()
        except Exception:  # pragma: no cover - closing is best effort
            self.log.debug("closing %s failed", what, exc_info=True)

    async def _aclose_quietly(self, obj: Any, what: str) -> None:
        if obj is None or not hasattr(obj, "close"):
            return
        try:
            await obj.close()
        except Exception:  # pragma: no cover - closing is best effort
            self.log.debug("closing %s failed", what, exc_info=True)

    async def close(self) -> None:
        """Close the async clients and credential, then the sync ones (``async with hook:`` does it)."""
        clients, self._async_clients = list(self._async_clients.values()), {}
        for client in clients:
            await self._aclose_quietly(client, "an async Azure client")
        credential, self._async_credential = self._async_credential, None
        await self._aclose_quietly(credential, "the async credential")
        self.close_sync()

    def close_sync(self) -> None:
        """Close the sync clients and credential."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            self._close_quietly(client, "an Azure client")
        credential, self._credential = self._credential, None
        self._close_quietly(credential, "the credential")

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
