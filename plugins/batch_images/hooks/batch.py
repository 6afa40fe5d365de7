"""Batch data-plane hook for pools on a pinned gallery image version.

:class:`BatchPoolHook` subclasses the provider's :class:`AzureBatchHook` (same conn type ``azure_batch``,
same default conn id ``azure_batch_default``, same extra ``account_url``), so connections made for the
provider keep working. What it adds, and why:

* **Entra ID auth from another connection.** Batch refuses Shared Key for pools backed by a gallery
  image ("SharedKey is not allowed when external resources of type Compute are linked"). The
  credential is built from the ``azure`` connection named in extra ``credential_conn_id`` (default
  ``azure_default``) by :func:`batch_images.hooks.credentials.credential_from_connection` - the same
  service principal the ARM half uses. If that connection does not exist, DefaultAzureCredential (with
  the provider's managed / workload identity extras) is used.
* :attr:`BatchPoolHook.uses_shared_key`: login + password on the Batch connection mean an account
  name + key. The provider then signs with Shared Key; preflight and the pool operator refuse it
  through :meth:`BatchPoolHook.require_entra_id`.
* Extra ``ca_bundle``: a CA file to trust (non-public clouds, the local stand-in), passed to the
  transports as ``connection_verify``.
* An async client (``azure.batch.aio``) for triggers: :meth:`get_async_conn`, and async reads.
* Pool creation with ``virtualMachineImageId`` pinned to one exact gallery image *version* (the
  provider's ``configure_pool`` only builds marketplace references, and an id without a version
  floats to the latest version, so a pool that scales out later could mix images).
* Cheap waiting: :meth:`pool_node_counts` reads ``GET /nodecounts`` filtered to one pool - one call
  per poll whatever the pool size (the provider's ``wait_for_all_node_state`` lists every node on every
  poll with ``time.sleep`` in a worker). Nodes are listed only for repair and reporting, filtered by
  state (:meth:`list_nodes`).
* Supported images (``GET /supportedimages``), resize, reboot / remove nodes, delete - each a single
  request: long-running Batch operations are *started* here; waiting is the waiter's job
  (``triggers/waiters/batch.py``).

The pure helpers that read pools, nodes and errors (``pool_summary``, ``batch_error_text``, ...) live in
:mod:`batch_images.pool_facts`, which loads no Azure SDK, so operators import them at DAG parse time and
this hook only when a task runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook

from batch_images.hooks.connection_cache import ConnectionCacheMixin
from batch_images.pool_facts import batch_error_code, enum_text, node_counts_dict, parse_duration
from batch_images.rules import ids
from batch_images.rules.errors import InvalidInput, shared_key_refused

if TYPE_CHECKING:
    from azure.batch.aio import BatchClient as AsyncBatchClient

    from airflow.sdk import Connection

DEFAULT_CREDENTIAL_CONN_ID = "azure_default"
BATCH_API_VERSION = "2025-06-01"  # what azure-batch 15.1.0 sends


class BatchPoolHook(ConnectionCacheMixin, AzureBatchHook):
    """Azure Batch hook for gallery-image pools: Entra ID auth, pinned image versions, cheap polling.

    :param azure_batch_conn_id: an ``azure_batch`` connection: extra ``account_url`` (required),
        ``credential_conn_id`` (the ``azure`` connection to authenticate with, default
        ``azure_default``), ``ca_bundle`` (optional CA file). No login/password: a shared key cannot
        manage gallery-image pools.
    """

    hook_name = "Azure Batch (gallery-image pools)"

    def __init__(self, azure_batch_conn_id: str = AzureBatchHook.default_conn_name,
                 client_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(azure_batch_conn_id=azure_batch_conn_id)
        self.client_options = dict(client_options or {})
        self._init_connection_cache()
        self._cred_loaded = False
        self._cred_conn: Any = None  # the azure connection named by credential_conn_id, None if absent
        self._cred_extras: dict = {}

    # -- connections ----------------------------------------------------------------------------------------

    def _needs_credential_connection(self) -> bool:
        return not self._cred_loaded and not self._shared_key(self._conn_obj)

    def load_connection(self) -> Connection:
        """Read the Batch connection and the credential connection once (sync); later calls reuse them."""
        conn = super().load_connection()
        if self._needs_credential_connection():
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                self._cred_conn, self._cred_extras = self._fetch_connection(self.credential_conn_id)
            except AirflowNotFoundException:
                self._cred_conn = None
            self._cred_loaded = True
        return conn

    async def aload_connection(self) -> Connection:
        """Like :meth:`load_connection`, without blocking the event loop (triggerer)."""
        conn = await super().aload_connection()
        if self._needs_credential_connection():
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                self._cred_conn, self._cred_extras = await self._afetch_connection(self.credential_conn_id)
            except AirflowNotFoundException:
                self._cred_conn = None
            self._cred_loaded = True
        return conn

    @staticmethod
    def _shared_key(conn: Any) -> bool:
        return bool(getattr(conn, "login", None) and getattr(conn, "password", None))

    @property
    def uses_shared_key(self) -> bool:
        """True when the connection carries an account name + key (Shared Key auth)."""
        return self._shared_key(self.load_connection())

    def require_entra_id(self, field: str = "batch_conn_id") -> None:
        """Refuse a Shared Key connection before any request: Batch rejects Shared Key for pools on gallery
        images. ``field`` is the input that named this connection (``pools[0].batch_conn_id``).

        :raises InvalidInput: the connection carries login/password (an account name and key).
        """
        if self.uses_shared_key:
            raise shared_key_refused(field, self.conn_id)

    def _extra(self, name: str) -> Any:
        from batch_images.hooks.credentials import extra_value

        return extra_value(self._extras, name)

    @property
    def account_url(self) -> str:
        if self._conn_obj is None:
            self.load_connection()
        url = self._extra("account_url")
        if not url:
            raise InvalidInput(f"connection {self.conn_id}.extra.account_url", None,
                               "the Batch connection names no account URL",
                               "set extra account_url to the Batch account's URL, e.g. "
                               "https://<account>.<region>.batch.azure.com")
        return str(url).rstrip("/")

    @property
    def credential_conn_id(self) -> str:
        if self._conn_obj is None:
            self.load_connection()
        return self._extra("credential_conn_id") or DEFAULT_CREDENTIAL_CONN_ID

    def _client_kwargs(self, aio: bool) -> dict:
        from batch_images.hooks.credentials import transport_kwargs
        from batch_images.hooks.retry import retry_policy

        return {**transport_kwargs(self._conn_obj, self._extras), **self.client_options,
                "retry_policy": retry_policy(aio, self.client_options)}

    def _make_credential(self, aio: bool):
        conn = self._conn_obj
        if self._shared_key(conn):
            from azure.core.credentials import AzureNamedKeyCredential

            return AzureNamedKeyCredential(conn.login, conn.password)
        if self._cred_conn is not None:
            from batch_images.hooks.credentials import credential_from_connection

            return credential_from_connection(self._cred_conn, aio=aio, extras=self._cred_extras)
        from airflow.providers.microsoft.azure.utils import (
            get_async_default_azure_credential,
            get_sync_default_azure_credential,
        )

        self.log.info("Connection %r not found: using DefaultAzureCredential for Batch", self.credential_conn_id)
        factory = get_async_default_azure_credential if aio else get_sync_default_azure_credential
        return factory(
            managed_identity_client_id=self._extra("managed_identity_client_id"),
            workload_identity_tenant_id=self._extra("workload_identity_tenant_id"),
        )

    def describe(self) -> str:
        """A log-safe summary: account URL, auth kind (never a secret)."""
        self.load_connection()
        if self.uses_shared_key:
            auth = "Shared Key (account key)"
        elif self._cred_conn is not None:
            auth = f"Entra ID from connection {self.credential_conn_id}"
        else:
            auth = "Entra ID (DefaultAzureCredential)"
        return f"conn_id={self.conn_id}, account_url={self._extra('account_url')}, auth={auth}"

    # -- clients --------------------------------------------------------------------------------------------

    def get_conn(self) -> BatchClient:
        """A sync :class:`azure.batch.BatchClient` for the account (cached as :attr:`connection`)."""
        self.load_connection()
        return BatchClient(self.account_url, self._make_credential(aio=False), **self._client_kwargs(aio=False))

    async def get_async_conn(self) -> AsyncBatchClient:
        """A cached ``azure.batch.aio.BatchClient``; :meth:`close` closes it."""
        if "batch" not in self._async_clients:
            from azure.batch.aio import BatchClient as AioBatchClient

            await self.aload_connection()
            credential = self._make_credential(aio=True)
            self._async_credential = credential  # closed by close() (a Shared Key credential has no close)
            self._async_clients["batch"] = AioBatchClient(self.account_url, credential,
                                                          **self._client_kwargs(aio=True))
        return self._async_clients["batch"]

    def close_sync(self) -> None:
        """Close the sync client (the provider's cached :attr:`connection`)."""
        self._close_quietly(self.__dict__.pop("connection", None), "the Batch client")
        super().close_sync()

    # -- pools: create, read --------------------------------------------------------------------------------

    def create_pool_from_body(self, body: Mapping[str, Any]) -> bool:
        """``POST /pools`` with ``body`` as it is (Batch's camelCase JSON, rules/pool_template.pool_body), so
        properties the SDK's model lacks pass through. True when created; False when a pool with that id exists
        (``PoolExists``).

        Any other error (``PoolBeingDeleted``, ``PoolQuotaReached``, a 400) is raised as azure-core's exception; use
        :func:`~batch_images.pool_facts.batch_error_code` / :func:`~batch_images.pool_facts.batch_error_text` to read it.
        """
        image = ((body.get("virtualMachineConfiguration") or {}).get("imageReference") or {})
        ids.parse_arm_id(image.get("virtualMachineImageId"), "image_version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Creating pool %s on image %s", body.get("id"), image.get("virtualMachineImageId"))
        try:
            self._send("POST", "/pools", body)
        except ResourceExistsError as err:
            if batch_error_code(err) == "PoolExists":
                return False
            raise
        return True

    def get_pool_json(self, pool_id: str) -> dict | None:
        """``GET /pools/{id}`` as Batch's JSON (every property, camelCase), or None when there is none."""
        try:
            return self._send("GET", self._path("pools", pool_id))
        except ResourceNotFoundError:
            return None

    def get_pool(self, pool_id: str) -> batch_models.BatchPool | None:
        """The pool, or None if there is none with that id."""
        try:
            return self.connection.get_pool(pool_id)
        except ResourceNotFoundError:
            return None

    async def async_get_pool(self, pool_id: str) -> batch_models.BatchPool | None:
        client = await self.get_async_conn()
        try:
            return await client.get_pool(pool_id)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _node_counts_filter(pool_id: str) -> str:
        return "poolId eq '{}'".format(pool_id.replace("'", "''"))

    @staticmethod
    def _pick_counts(items: Iterable[Any], pool_id: str) -> dict:
        for item in items:
            if (item.pool_id or "").lower() == pool_id.lower():
                dedicated = node_counts_dict(item.dedicated)
                low = node_counts_dict(item.low_priority)
                total = {s: dedicated.get(s, 0) + low.get(s, 0) for s in {*dedicated, *low}}
                return {"dedicated": dedicated, "low_priority": low, "total": total}
        return {"dedicated": {}, "low_priority": {}, "total": {}}

    def pool_node_counts(self, pool_id: str) -> dict:
        """Node counts by state for one pool, one ``GET /nodecounts`` call whatever the pool size.

        Returns ``{"dedicated": {state: n}, "low_priority": {state: n}, "total": {state: n}}`` (states as
        Batch spells them, zero counts left out).
        """
        items = self.connection.list_pool_node_counts(filter=self._node_counts_filter(pool_id))
        return self._pick_counts(items, pool_id)

    async def async_pool_node_counts(self, pool_id: str) -> dict:
        client = await self.get_async_conn()
        items = [i async for i in client.list_pool_node_counts(filter=self._node_counts_filter(pool_id))]
        return self._pick_counts(items, pool_id)

    def list_supported_images(self, filter: str | None = None) -> list[dict]:
        """``GET /supportedimages`` as plain dicts: ``{node_agent_sku_id, os_type, verification_type,
        batch_support_end_of_life, publisher, offer, sku, version, capabilities}`` (``capabilities``: Batch's list,
        e.g. ``["DockerCompatible"]``, empty when it lists none)."""
        out = []
        for img in self.connection.list_supported_images(filter=filter):
            ref = img.image_reference
            out.append({
                "node_agent_sku_id": img.node_agent_sku_id,
                "os_type": enum_text(img.os_type),
                "verification_type": enum_text(img.verification_type),
                "batch_support_end_of_life": img.batch_support_end_of_life.isoformat()
                if img.batch_support_end_of_life else None,
                "publisher": getattr(ref, "publisher", None),
                "offer": getattr(ref, "offer", None),
                "sku": getattr(ref, "sku", None),
                "version": getattr(ref, "version", None),
                "capabilities": list(img.capabilities or []),
            })
        return out

    # -- pools: change (each call starts the operation; waiting is the waiter's job) ----------------------------
    #
    # The SDK's begin_* methods start a poller thread per call (LROPoller) that polls until the operation is
    # done; here waiting belongs to the waiter, so these send the one request through the client's public
    # send_request (same pipeline: auth, retries, BatchExceptionPolicy raising the SDK's errors).

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
              if_match: str | None = None, params: Mapping[str, str] | None = None) -> Any:
        """One request through the client's pipeline; returns the JSON answer (None when it has no body).
        ``if_match``: an ETag; Batch answers 412 ConditionNotMet (``ResourceModifiedError``) when it changed."""
        from azure.core.rest import HttpRequest

        client = self.connection
        api_version = getattr(getattr(client, "_config", None), "api_version", None) or BATCH_API_VERSION
        headers = {"Accept": "application/json"}
        kwargs: dict[str, Any] = {}
        if body is not None:
            headers["Content-Type"] = "application/json; odata=minimalmetadata"
            kwargs["json"] = dict(body)
        if if_match:
            headers["If-Match"] = if_match
        response = client.send_request(HttpRequest(method, path, params={"api-version": api_version, **(params or {})},
                                                   headers=headers, **kwargs))
        try:
            return response.json() if response.content else None
        except ValueError:
            return None

    @staticmethod
    def _path(*segments: str) -> str:
        return "/" + "/".join(quote(s, safe="") for s in segments)

    def resize_pool(self, pool_id: str, target_dedicated_nodes: int, target_low_priority_nodes: int,
                    resize_timeout: timedelta | str | None = None, node_deallocation_option: str | None = None) -> None:
        """Start a resize (``POST /pools/{id}/resize``; the pool must be steady). ``node_deallocation_option`` for a
        shrink: requeue (Batch's default) | terminate | taskcompletion (running tasks finish first)."""
        options = batch_models.BatchPoolResizeOptions(
            target_dedicated_nodes=target_dedicated_nodes,
            target_low_priority_nodes=target_low_priority_nodes,
            resize_timeout=parse_duration(resize_timeout) if resize_timeout is not None else None,
            node_deallocation_option=node_deallocation_option,
        )
        self.log.info("Resizing pool %s to %s dedicated + %s low-priority nodes%s", pool_id,
                      target_dedicated_nodes, target_low_priority_nodes,
                      f" ({node_deallocation_option})" if node_deallocation_option else "")
        self._send("POST", self._path("pools", pool_id, "resize"), options.as_dict())

    def list_nodes(self, pool_id: str, states: Iterable[str] | None = None,
                   select: Iterable[str] | None = None) -> list[batch_models.BatchNode]:
        """Nodes of a pool, filtered server-side by state (``state eq 'x' or ...``), with only the ``select``-ed
        properties when given. For repair and reports only: this pages through nodes, so never call it on every
        poll."""
        wanted = [s.lower() for s in (states or [])]
        flt = " or ".join(f"state eq '{s}'" for s in wanted) or None
        nodes = list(self.connection.list_nodes(pool_id, filter=flt, select=list(select) if select else None))
        return [n for n in nodes if not wanted or (enum_text(n.state) or "").lower() in wanted]

    def reboot_node(self, pool_id: str, node_id: str, reboot_kind: str = "requeue") -> None:
        """Start a reboot of one node (idle, running, starttaskfailed or unusable)."""
        self.log.info("Rebooting node %s of pool %s", node_id, pool_id)
        self._send("POST", self._path("pools", pool_id, "nodes", node_id, "reboot"), {"nodeRebootOption": reboot_kind})

    def remove_nodes(self, pool_id: str, node_ids: list[str], resize_timeout: timedelta | str | None = None,
                     node_deallocation_option: str | None = None) -> None:
        """Start removing nodes (the pool must be steady; its target shrinks by their number).
        ``node_deallocation_option``: Batch's requeue (its default) | terminate | taskcompletion | retaineddata."""
        self.log.info("Removing nodes %s from pool %s", ", ".join(node_ids), pool_id)
        for start in range(0, len(node_ids), 100):  # at most 100 per request
            options = batch_models.BatchNodeRemoveOptions(
                node_ids=node_ids[start:start + 100],
                resize_timeout=parse_duration(resize_timeout) if resize_timeout is not None else None,
                node_deallocation_option=node_deallocation_option,
            )
            self._send("POST", self._path("pools", pool_id, "removenodes"), options.as_dict())

    def _start_delete(self, collection: str, item_id: str) -> bool:
        """One ``DELETE /{collection}/{id}``, not waited for (the SDK's ``begin_delete_*`` would poll in a thread);
        False when it did not exist."""
        self.log.info("Deleting %s %s", collection.rstrip("s"), item_id)
        try:
            self._send("DELETE", self._path(collection, item_id))
        except ResourceNotFoundError:
            return False
        return True

    def delete_pool(self, pool_id: str) -> bool:
        """Start deleting a pool (``DELETE /pools/{id}``). False if it did not exist."""
        return self._start_delete("pools", pool_id)

    # -- reads and writes the smoke test, the sweep, retention and repair need (typed SDK models) -------------------

    def list_pools(self, select: Iterable[str] | None = None) -> list[batch_models.BatchPool]:
        """Every pool of the account (all pages), with only the ``select``-ed properties (Batch's camelCase names)."""
        return list(self.connection.list_pools(select=list(select) if select else None))

    def list_jobs(self, filter: str | None = None, select: Iterable[str] | None = None) -> list[batch_models.BatchJob]:
        """Jobs of the account (all pages), filtered server-side by OData ``filter`` (Batch's filterable properties:
        learn.microsoft.com/rest/api/batchservice/odata-filters-in-batch)."""
        return list(self.connection.list_jobs(filter=filter, select=list(select) if select else None))

    def list_job_schedules(self, filter: str | None = None,
                           select: Iterable[str] | None = None) -> list[batch_models.BatchJobSchedule]:
        """Job schedules of the account (all pages), filtered server-side by OData ``filter``."""
        return list(self.connection.list_job_schedules(filter=filter, select=list(select) if select else None))

    def get_job(self, job_id: str) -> batch_models.BatchJob | None:
        """The job, or None when there is none."""
        try:
            return self.connection.get_job(job_id)
        except ResourceNotFoundError:
            return None

    def create_job(self, options: batch_models.BatchJobCreateOptions) -> None:
        """``POST /jobs``; a 409 JobExists raises azure-core's ``ResourceExistsError``."""
        self.connection.create_job(options)

    def add_tasks(self, job_id: str, tasks: list[batch_models.BatchTaskCreateOptions]) -> None:
        """Add tasks through the SDK's task collection (chunks of 100, its own retries; a TaskExists answer counts as
        added). Raises the SDK's ``CreateTasksError`` naming the tasks Batch refused."""
        self.connection.create_tasks(job_id, tasks)

    def list_tasks(self, job_id: str, select: Iterable[str] | None = None) -> list[batch_models.BatchTask]:
        """Tasks of a job (all pages), with only the ``select``-ed properties."""
        return list(self.connection.list_tasks(job_id, select=list(select) if select else None))

    def task_file_tail(self, job_id: str, task_id: str, file_path: str, max_bytes: int) -> bytes:
        """The last ``max_bytes`` of a task's file (``stdout.txt``, ``stderr.txt``): one HEAD for its size, one
        ranged GET; empty when the file is empty. Raises the SDK's HttpResponseError when the node no longer
        serves it."""
        client = self.connection
        size = int(client.get_task_file_properties(job_id, task_id, file_path).content_length or 0)
        if not size:
            return b""
        start = max(size - max_bytes, 0)
        return b"".join(client.download_task_file(job_id, task_id, file_path, ocp_range=f"bytes={start}-{size - 1}"))

    def delete_job(self, job_id: str) -> bool:
        """Start deleting a job (``DELETE /jobs/{id}``). False if it did not exist."""
        return self._start_delete("jobs", job_id)

    # -- the roll: pool metadata, jobs, job schedules (rules/roll.py decides; these only send) ---------------------

    def list_pool_listing(self) -> list[dict]:
        """Every pool of the account as ``{"id", "state", "allocation_state", "etag", "metadata": {name: value},
        "image_id", "current_dedicated_nodes", "current_low_priority_nodes", "target_dedicated_nodes",
        "target_low_priority_nodes", "enable_auto_scale", "vm_size"}``
        (one paged ``GET /pools`` with ``$select``; what :mod:`batch_images.rules.roll` and preflight's quota check
        read)."""
        select = ["id", "state", "allocationState", "eTag", "metadata", "virtualMachineConfiguration", "vmSize",
                  "currentDedicatedNodes", "currentLowPriorityNodes", "targetDedicatedNodes", "targetLowPriorityNodes"]
        return [pool_listing(p) for p in self.connection.list_pools(select=select)]

    def pool_listing(self, pool_id: str) -> dict | None:
        """One pool as :meth:`list_pool_listing` shows it, or None when there is none."""
        pool = self.get_pool(pool_id)
        return pool_listing(pool) if pool is not None else None

    def update_pool_metadata(self, pool_id: str, metadata: Mapping[str, str], etag: str | None) -> None:
        """``PATCH /pools/{id}`` with the whole ``metadata`` list (PATCH replaces it), conditional on ``etag``
        (If-Match). Raises azure-core's ``ResourceModifiedError`` (412 ConditionNotMet) when the pool changed."""
        body = {"metadata": [{"name": k, "value": str(v)} for k, v in metadata.items()]}
        self._send("PATCH", self._path("pools", pool_id), body, if_match=etag)

    def patch_pool_image(self, pool_id: str, image_version_id: str, node_agent_sku_id: str,
                         security_profile: Mapping[str, Any] | None = None) -> None:
        """``PATCH /pools/{id}`` of ``virtualMachineConfiguration`` to another gallery image version. Batch allows it
        only while the pool has zero nodes (409 OperationInvalidForCurrentState otherwise)."""
        ids.parse_arm_id(image_version_id, "image_version_id", ids.GALLERY_IMAGE_VERSION)
        vmc: dict[str, Any] = {"imageReference": {"virtualMachineImageId": image_version_id},
                               "nodeAgentSKUId": node_agent_sku_id}
        if security_profile:
            vmc["securityProfile"] = dict(security_profile)
        self.log.info("Pool %s: image -> %s", pool_id, image_version_id)
        self._send("PATCH", self._path("pools", pool_id), {"virtualMachineConfiguration": vmc})

    def _send_list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict]:
        """A Batch list, every page (follows ``odata.nextLink``)."""
        from urllib.parse import parse_qsl, urlsplit

        out: list[dict] = []
        query = dict(params or {})
        while True:
            page = self._send("GET", path, params=query) or {}
            out.extend(page.get("value") or [])
            link = page.get("odata.nextLink")
            if not link:
                return out
            parts = urlsplit(link)
            path = parts.path.split("/", 3)[-1] if parts.path.startswith("/batch/") else parts.path
            path = "/" + path.lstrip("/")
            query = {k: v for k, v in parse_qsl(parts.query) if k != "api-version"}

    def list_active_jobs(self) -> list[dict]:
        """Jobs not completed (active, disabling, disabled, enabling) as ``{"id", "state", "pool_id", "etag",
        "schedule_id"}``; ``pool_id`` is ``poolInfo.poolId`` (None for an auto pool)."""
        out = []
        for job in self._send_list("/jobs", {"$filter": "state ne 'completed' and state ne 'terminating' "
                                                        "and state ne 'deleting'"}):
            out.append({"id": job.get("id"), "state": job.get("state"),
                        "pool_id": (job.get("poolInfo") or {}).get("poolId"), "etag": job.get("eTag"),
                        "schedule_id": (job.get("executionInfo") or {}).get("jobScheduleId")})
        return out

    def get_job_json(self, job_id: str) -> dict | None:
        try:
            return self._send("GET", self._path("jobs", job_id))
        except ResourceNotFoundError:
            return None

    def disable_job(self, job_id: str, disable_tasks: str = "wait") -> None:
        """``POST /jobs/{id}/disable`` (``disableTasks``: requeue | terminate | wait - running tasks finish)."""
        self.log.info("Disabling job %s (disableTasks=%s)", job_id, disable_tasks)
        self._send("POST", self._path("jobs", job_id, "disable"), {"disableTasks": disable_tasks})

    def enable_job(self, job_id: str) -> None:
        self.log.info("Enabling job %s", job_id)
        self._send("POST", self._path("jobs", job_id, "enable"))

    def set_job_pool(self, job_id: str, pool_id: str) -> None:
        """``PATCH /jobs/{id}`` of ``poolInfo`` (Batch allows it only while the job is disabled)."""
        self.log.info("Job %s: poolInfo.poolId -> %s", job_id, pool_id)
        self._send("PATCH", self._path("jobs", job_id), {"poolInfo": {"poolId": pool_id}})

    def job_task_counts(self, job_id: str) -> dict:
        """``{"active", "running", "completed"}`` of a job (``GET /jobs/{id}/taskcounts``)."""
        counts = (self._send("GET", self._path("jobs", job_id, "taskcounts")) or {}).get("taskCounts") or {}
        return {k: int(counts.get(k) or 0) for k in ("active", "running", "completed")}

    def list_job_schedules_json(self) -> list[dict]:
        """Job schedules not completed, as Batch's JSON (``id``, ``state``, ``eTag``, ``jobSpecification``)."""
        return [s for s in self._send_list("/jobschedules")
                if (s.get("state") or "").lower() in ("active", "disabled")]

    def set_schedule_job_specification(self, schedule_id: str, job_specification: Mapping[str, Any],
                                       etag: str | None = None) -> None:
        """``PATCH /jobschedules/{id}`` of the whole ``jobSpecification`` (it replaces the old one; only jobs made
        after it are affected), conditional on ``etag`` when given."""
        self._send("PATCH", self._path("jobschedules", schedule_id), {"jobSpecification": dict(job_specification)},
                   if_match=etag)

    # -- autoscale (the roll: enabled on the promoted pool, disabled before a pool is emptied) ----------------------
    #
    # Batch data plane 2025-06-01 (azure-rest-api-specs specification/batch/Azure.Batch/routes.tsp: enableAutoScale,
    # disableAutoScale, evaluateAutoScale): a resize is refused while autoscale is enabled, and enableautoscale may
    # not be called for the same pool more than once every 30 seconds.

    def auto_scale_enabled(self, pool_id: str) -> bool | None:
        """The pool's ``enableAutoScale`` (None when there is no such pool)."""
        pool = self.get_pool(pool_id)
        return None if pool is None else bool(pool.enable_auto_scale)

    def enable_auto_scale(self, pool_id: str, formula: str, evaluation_interval: str | None = None) -> None:
        """``POST /pools/{id}/enableautoscale``: Batch evaluates ``formula`` at once, then every
        ``evaluation_interval`` (ISO 8601 duration, 5 minutes to 168 hours; None: Batch's 15 minutes). Refused (409)
        while the pool resizes; a bad formula answers 400 with Batch's error."""
        body: dict[str, Any] = {"autoScaleFormula": formula}
        if evaluation_interval:
            body["autoScaleEvaluationInterval"] = evaluation_interval
        self.log.info("Pool %s: enabling autoscale (every %s)", pool_id, evaluation_interval or "PT15M")
        self._send("POST", self._path("pools", pool_id, "enableautoscale"), body)

    def disable_auto_scale(self, pool_id: str) -> None:
        """``POST /pools/{id}/disableautoscale``: the pool keeps its current size and can be resized again."""
        self.log.info("Pool %s: disabling autoscale", pool_id)
        self._send("POST", self._path("pools", pool_id, "disableautoscale"))

    def evaluate_auto_scale(self, pool_id: str, formula: str) -> dict:
        """``POST /pools/{id}/evaluateautoscale`` (the pool must have autoscale enabled): Batch's ``AutoScaleRun``
        JSON, ``{"timestamp", "results": "$TargetDedicatedNodes=2;...", "error": {"code", "message", "values"}}``
        (``error`` only when the formula failed). Nothing is changed on the pool."""
        return self._send("POST", self._path("pools", pool_id, "evaluateautoscale"),
                          {"autoScaleFormula": formula}) or {}


def pool_listing(pool: Any) -> dict:
    """An SDK pool model -> the plain dict :mod:`batch_images.rules.roll` reads."""
    from batch_images.pool_facts import pool_image_id, pool_metadata

    return {"id": pool.id, "state": enum_text(pool.state), "allocation_state": enum_text(pool.allocation_state),
            "etag": pool.etag, "metadata": pool_metadata(pool), "image_id": pool_image_id(pool),
            "current_dedicated_nodes": pool.current_dedicated_nodes or 0,
            "current_low_priority_nodes": pool.current_low_priority_nodes or 0,
            "target_dedicated_nodes": pool.target_dedicated_nodes or 0,
            "target_low_priority_nodes": pool.target_low_priority_nodes or 0,
            "enable_auto_scale": bool(pool.enable_auto_scale), "vm_size": pool.vm_size}
