"""ARM (Microsoft.Compute and friends) hook: snapshots, managed images, galleries, image versions.

The provider's :class:`~airflow.providers.microsoft.azure.hooks.compute.AzureComputeHook` covers VM
start/stop only. :class:`ArmComputeHook` subclasses it (same connection type and default conn id) and
adds what this project needs. Every read returns plain JSON dicts in ARM's wire format (camelCase, as
in the REST docs), so results go straight into XCom, trigger events and log lines.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.mgmt.core.exceptions import ARMErrorFormat

from airflow.providers.microsoft.azure.hooks.compute import AzureComputeHook
from airflow.sdk.exceptions import AirflowFailException
from batch_images.hooks.credentials import (
    client_kwargs,
    credential_from_connection,
    describe_connection,
    extra_value,
)
from batch_images.hooks.connection_cache import ConnectionCacheMixin
from batch_images.rules import ids, naming, resource_kinds, states
from batch_images.rules.errors import InvalidInput

# azure-core logs every request and response with headers at INFO: far too loud for task logs.
_HTTP_LOG = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
if _HTTP_LOG.level == logging.NOTSET:
    _HTTP_LOG.setLevel(logging.WARNING)

_SUB_PATH_RE = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})(/[A-Za-z0-9_.()\-/]*)?")
_ERROR_MAP = {404: ResourceNotFoundError, 409: ResourceExistsError}

# Answers to a create/update that no retry can change (issue 7 item 2). Every 400 (InvalidParameter,
# BadRequest, InvalidRequestContent, LocationNotAvailableForResourceType, ...) and 413/414/422 is a
# validation of the request itself. Not here, so they keep retrying: 408/429/5xx (azure-core retries them
# first), 401/403 (token refresh; a new role assignment takes minutes to reach ARM), 404 (a parent
# created a moment ago may not be visible yet in every ARM front end), and 409 unless listed below.
PERMANENT_STATUSES = frozenset({400, 413, 414, 422})
# 409 codes that describe the request, not a passing state of the resource:
# - PropertyChangeNotAllowed: "Changing property '...' is not allowed." (a definition's osType/osState/
#   hyperVGeneration/identifier, a version's source; message on Azure's gallery troubleshooting page, status
#   and code in a public report: github.com/holgerjs/acg-scripts README, "RESPONSE 409 ... PropertyChangeNotAllowed");
# - InvalidResourceLocation: a same-named resource exists in another region (ARM's wording, troubleshooting
#   page): only a new name or resource group fixes it.
PERMANENT_409_CODES = frozenset({"PropertyChangeNotAllowed", "InvalidResourceLocation"})
# 409 with the generic code "Conflict" (or OperationNotAllowed) is usually transient - another operation
# on the resource is in flight, a source is still being created - so only these messages are permanent:
# a version source whose Hyper-V generation / OS type / plan differs from its definition (code Conflict in
# public reports 2019-2024: hashicorp/packer-plugin-azure#42, Azure/az-hop#1044,
# confidential-containers/cloud-api-adaptor#928, MicrosoftDocs/azure-docs#118774), and a definition whose
# publisher/offer/sku triplet another definition of the gallery holds (OperationNotAllowed, "... already
# exists. Choose a different publisher, offer, sku combination.", troubleshooting page).
_PERMANENT_409_MESSAGES = re.compile(
    r"has a different (Hypervisor generation|OS type|plan)|Choose a different publisher, offer, sku", re.I)


class ArmRequestRefused(AirflowFailException):
    """Azure refused a create or update with an answer no retry can change (a 4xx validation error).

    Raised by :class:`ArmComputeHook` where it sends creates and updates, so every operator using the hook
    fails its task at once (an :class:`~airflow.sdk.exceptions.AirflowFailException`: no retry) with Azure's
    HTTP status, error code and message. Attributes: ``resource_id``, ``status`` (int), ``code``, ``azure_message``.
    Throttling, 5xx, 401/403/404 and the transient 409s still raise the SDK's ``HttpResponseError``.
    """

    def __init__(self, resource_id: str, status: int, code: str | None, azure_message: str) -> None:
        self.resource_id = resource_id
        self.status = status
        self.code = code
        self.azure_message = azure_message
        super().__init__(
            f"Azure refused to create or update {resource_id}: {status} {code or 'error'}: {azure_message} "
            "No retry can change this answer, so the task fails now: fix the input it names, then clear the "
            "task or trigger a new run.")

    def __reduce__(self):  # picklable with its arguments (exceptions cross process boundaries in Airflow)
        return (type(self), (self.resource_id, self.status, self.code, self.azure_message))


def permanent_refusal(err: HttpResponseError) -> tuple[int, str | None, str] | None:
    """``(status, code, message)`` when an error answer to a create/update is one no retry can change, else None.

    Only the first response's status counts: a long-running operation that ends Failed comes back from the
    poller with the status of the poll (200) and is judged by the operators, not here.
    """
    status = getattr(err, "status_code", None)
    error = getattr(err, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or str(getattr(err, "message", "") or err)
    if status in PERMANENT_STATUSES:
        return status, code, message
    if status == 409 and (code in PERMANENT_409_CODES or _PERMANENT_409_MESSAGES.search(message or "")):
        return status, code, message
    return None


def _plain(obj: Any) -> Any:
    """SDK model (a MutableMapping in azure-mgmt-compute 39) -> its wire-format dict; dicts pass through."""
    if obj is None:
        return None
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    return obj


def _check_path(path: str) -> str:
    """A subscription-scoped ARM path that cannot rewrite the URL (no query, fragment, escapes, '..')."""
    if not isinstance(path, str) or not _SUB_PATH_RE.fullmatch(path) or ".." in path or "//" in path:
        raise InvalidInput("resource_id", path, "not a subscription-scoped ARM path made of safe characters",
                           "give an ARM id like /subscriptions/<guid>/resourceGroups/<rg>/providers/<ns>/<type>/<name>")
    return path.rstrip("/")


def subscription_of(path: str) -> str:
    match = _SUB_PATH_RE.fullmatch(_check_path(path))
    assert match
    return match.group(1)


@dataclass(frozen=True)
class LroStart:
    """What a ``begin_*`` call that does not wait gives back.

    ``resource``: the body of the first response (provisioningState Creating/Updating), None for a delete.
    ``operation_url``: Azure-AsyncOperation (or Location) to ask for the operation's status and error.
    """

    resource_id: str
    resource: dict | None
    operation_url: str | None
    status_code: int

    def to_dict(self) -> dict:
        return {"resource_id": self.resource_id, "operation_url": self.operation_url, "status_code": self.status_code}


def _capture(pipeline_response, deserialized, _headers):
    http = pipeline_response.http_response
    url = http.headers.get("Azure-AsyncOperation") or http.headers.get("Location")
    return _plain(deserialized), url, http.status_code


def _operation(client: Any, arm_id: ids.ArmId) -> tuple[Any, tuple[str, ...]]:
    """The typed SDK operations group and positional names for a resource id (works for sync and aio clients)."""
    rg = arm_id.resource_group
    names = tuple(n for _, n in arm_id.types)
    kind = resource_kinds.kind_of(arm_id.resource_type)
    if kind is None or kind.sdk_operations is None:
        raise InvalidInput("resource_id", arm_id.id, f"{arm_id.resource_type} is not a Microsoft.Compute type this hook "
                           "manages", "use arm_get() with an api_version for other resource types")
    return getattr(client, kind.sdk_operations), (rg, *names)


class ArmComputeHook(ConnectionCacheMixin, AzureComputeHook):
    """Azure Compute hook for the gallery-image pipeline.

    Same connection as the provider's hook (conn type ``azure_compute`` / ``azure``, default
    ``azure_default``, extras ``tenantId`` and ``subscriptionId``). Added here:

    * extras ``authority`` (Entra ID authority host; instance discovery disabled), ``arm_endpoint`` (ARM
      base URL) and ``ca_bundle`` (CA file, relative to the project root) - for sovereign clouds and the
      local stand-in (:mod:`batch_images.hooks.credentials`);
    * a connection read once (:class:`~batch_images.hooks.connection_cache.ConnectionCacheMixin`), a cached
      sync :meth:`get_conn` and async :meth:`get_async_conn`
      (:class:`azure.mgmt.compute.aio.ComputeManagementClient`), one client per subscription: an id in
      another subscription than the connection's (a gallery elsewhere) gets its own client, same credential;
    * :attr:`subscription_id`;
    * generic :meth:`arm_get` through the client's public ``send_request`` for what
      azure-mgmt-compute does not cover (``Microsoft.Batch/batchAccounts``,
      ``/subscriptions/{sub}/providers/Microsoft.Batch``);
    * small methods for the pipeline: VM (with instance view) and its extensions, disks, snapshots, managed
      images, gallery / image definition get-or-create, image versions (create, target regions,
      ``$expand=ReplicationStatus``, list), deletes. ``begin_*`` methods send the request and return an
      :class:`LroStart` without waiting; waiting is the waiter trigger's job.

    ``client_options`` are passed to every client (e.g. ``retry_total``). ``lro_poll_interval``: the poll
    delay of the few short operations this hook waits for itself (gallery, definition) when Azure sends
    no Retry-After (the SDK's default would be 30 s).
    The async clients and credential are closed by :meth:`close` (``async with hook:`` does it).
    """

    hook_name = "Azure Compute (batch images)"

    def __init__(self, azure_conn_id: str = AzureComputeHook.default_conn_name,
                 client_options: Mapping[str, Any] | None = None, lro_poll_interval: float = 5.0) -> None:
        super().__init__(azure_conn_id=azure_conn_id)
        self.client_options = dict(client_options or {})
        # Blocking waits (gallery/definition get-or-create only): poll delay when Azure sends no Retry-After.
        self.lro_poll_interval = lro_poll_interval
        self._init_connection_cache()
        self._resource_skus: dict[str, list[dict]] = {}  # region -> its virtualMachines SKUs (one read per run)

    # -- connection -----------------------------------------------------------------------------------------------

    def _connection_loaded(self) -> None:
        self.log.info("Azure ARM connection: %s", describe_connection(self._conn_obj, self._extras))

    @property
    def subscription_id(self) -> str:
        """The connection's subscription (extra ``subscriptionId``)."""
        self.load_connection()
        return self._default_subscription()

    def _default_subscription(self) -> str:
        sub = extra_value(self._extras, "subscriptionId")
        if not sub:
            raise InvalidInput(f"connection {self.conn_id}.extra.subscriptionId", None,
                               "the Azure connection names no subscription",
                               "add the extra subscriptionId (the subscription's GUID)")
        return ids.validate_subscription_id(sub, f"connection {self.conn_id}.extra.subscriptionId")

    def _client_kwargs(self, aio: bool) -> dict[str, Any]:
        from batch_images.hooks.retry import retry_policy

        return {**client_kwargs(self._conn_obj, self._extras), **self.client_options,
                "retry_policy": retry_policy(aio, self.client_options)}

    # -- clients --------------------------------------------------------------------------------------------------

    def get_conn(self, subscription_id: str | None = None):  # type: ignore[override]
        """A cached sync ComputeManagementClient for ``subscription_id`` (default: the connection's)."""
        from azure.mgmt.compute import ComputeManagementClient

        self.load_connection()
        sub = subscription_id or self._default_subscription()
        key = sub.lower()
        if key not in self._clients:
            if self._credential is None:
                self._credential = credential_from_connection(self._conn_obj, aio=False, extras=self._extras)
            self._clients[key] = ComputeManagementClient(self._credential, sub, **self._client_kwargs(aio=False))
        return self._clients[key]

    async def get_async_conn(self, subscription_id: str | None = None):  # type: ignore[override]
        """A cached async ComputeManagementClient (azure.mgmt.compute.aio) for ``subscription_id``."""
        from azure.mgmt.compute.aio import ComputeManagementClient as AsyncComputeManagementClient

        await self.aload_connection()
        sub = subscription_id or self._default_subscription()
        key = sub.lower()
        if key not in self._async_clients:
            if self._async_credential is None:
                self._async_credential = credential_from_connection(self._conn_obj, aio=True, extras=self._extras)
            self._async_clients[key] = AsyncComputeManagementClient(
                self._async_credential, sub, **self._client_kwargs(aio=True))
        return self._async_clients[key]

    def client_for(self, resource_id: str):
        """The sync client for the subscription a resource id lives in."""
        return self.get_conn(subscription_of(resource_id))

    async def async_client_for(self, resource_id: str):
        return await self.get_async_conn(subscription_of(resource_id))

    # -- generic ARM reads ----------------------------------------------------------------------------------------

    @staticmethod
    def _raise_for(response) -> None:
        if response.status_code >= 400:
            map_error(status_code=response.status_code, response=response, error_map=_ERROR_MAP)
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)

    def arm_get(self, resource_id: str, api_version: str | None = None) -> dict:
        """GET any subscription-scoped ARM path; 404 raises ResourceNotFoundError, other errors HttpResponseError."""
        path = _check_path(resource_id)
        version = api_version or resource_kinds.api_version_for(path)
        if not version:
            raise InvalidInput("api_version", None, f"no known API version for {path}", "pass api_version")
        client = self.get_conn(subscription_of(path))
        response = client.send_request(HttpRequest("GET", path, params={"api-version": version}))
        self._raise_for(response)
        return response.json()

    def _operation_url_ok(self, url: str | None, client: Any) -> bool:
        # Only ever send the bearer token to the ARM endpoint the client was built for.
        if not url:
            return False
        base = str(client._config.base_url).rstrip("/")  # noqa: SLF001 - the client's own configured base
        return url.startswith(base + "/")

    async def async_get_operation_status(self, operation_url: str, resource_id: str) -> dict | None:
        client = await self.async_client_for(resource_id)
        if not self._operation_url_ok(operation_url, client):
            return None
        response = await client.send_request(HttpRequest("GET", operation_url))
        await response.read()
        if response.status_code >= 400:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    # -- typed reads (sync and async) -----------------------------------------------------------------------------

    def get_resource(self, resource_id: str, expand: str | None = None) -> dict:
        """GET a Microsoft.Compute resource by id (snapshot, disk, image, VM, gallery, definition, version)."""
        arm_id = ids.parse_arm_id(resource_id, "resource_id")
        group, args = _operation(self.get_conn(arm_id.subscription_id), arm_id)
        kwargs = {"expand": expand} if expand else {}
        return _plain(group.get(*args, **kwargs))

    async def async_get_resource(self, resource_id: str, expand: str | None = None) -> dict:
        arm_id = ids.parse_arm_id(resource_id, "resource_id")
        group, args = _operation(await self.get_async_conn(arm_id.subscription_id), arm_id)
        kwargs = {"expand": expand} if expand else {}
        return _plain(await group.get(*args, **kwargs))

    def find_resource(self, resource_id: str, expand: str | None = None) -> dict | None:
        """Like :meth:`get_resource`, None when it does not exist."""
        try:
            return self.get_resource(resource_id, expand)
        except ResourceNotFoundError:
            return None

    # Microsoft.Network api-version of the subnet and virtual network reads (any recent one serves addressPrefix,
    # ipConfigurations and location).
    NETWORK_API_VERSION = "2024-05-01"

    def get_virtual_network(self, vnet_id: str) -> dict | None:
        """The virtual network (VirtualNetworks_Get: ``location``, ``properties.addressSpace``, ...); None when it
        does not exist."""
        try:
            return self.arm_get(vnet_id, api_version=self.NETWORK_API_VERSION)
        except ResourceNotFoundError:
            return None

    def get_subnet(self, subnet_id: str) -> dict | None:
        """The subnet `subnet_id` (a full .../virtualNetworks/<vnet>/subnets/<name> id) as Subnets_Get returns it:
        {"id", "name", "properties": {"addressPrefix" (or "addressPrefixes"), "ipConfigurations": [{"id"}] (absent
        when none), "provisioningState", ...}}; None when it does not exist. Other errors raise HttpResponseError."""
        try:
            return self.arm_get(subnet_id, api_version=self.NETWORK_API_VERSION)
        except ResourceNotFoundError:
            return None

    def get_vm(self, vm_id: str, instance_view: bool = True) -> dict:
        """The VM, with its instance view (power state, statuses) unless ``instance_view`` is False."""
        ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        return self.get_resource(vm_id, "instanceView" if instance_view else None)

    def list_vm_extensions(self, vm_id: str) -> list[dict]:
        arm_id = ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        result = self.get_conn(arm_id.subscription_id).virtual_machine_extensions.list(arm_id.resource_group, arm_id.name)
        return list((_plain(result) or {}).get("value") or [])

    def list_resource_skus(self, location: str) -> list[dict]:
        """The VM sizes of ``location`` as ResourceSkus_List returns them (``resource_skus.list(filter="location eq
        '<region>'")``, api-version 2021-07-01, the connection's subscription): ``virtualMachines`` entries only, each
        in the REST shape (camelCase: ``name``, ``family``, ``locationInfo``, ``capabilities: [{name, value}]``,
        ``restrictions``). Read once per region and hook instance (preflight reads a region once per run).
        InvalidInput for a region name that is not one (it goes into the ``$filter``)."""
        region = ids.region_key(location)
        if not re.fullmatch(r"[a-z0-9]{2,40}", region):
            raise InvalidInput("location", location, "not an Azure region name", "use a region such as westeurope")
        if region not in self._resource_skus:
            skus = self.get_conn().resource_skus.list(filter=f"location eq '{region}'")
            self._resource_skus[region] = [d for d in (_plain(s) for s in skus)
                                           if d and d.get("resourceType") == "virtualMachines"]
        return self._resource_skus[region]

    # -- marketplace images and build VMs ------------------------------------------------------------------------

    def list_base_image_versions(self, location: str, publisher: str, offer: str, sku: str,
                                 subscription_id: str | None = None) -> list[str]:
        """Names of every version of a marketplace image publisher/offer/sku in ``location``
        (``virtual_machine_images.list``, one ARM read). No ``$top``/``$orderby``: ARM orders names as text
        (Azure/azure-rest-api-specs#30142), so the caller picks the newest numerically
        (:func:`batch_images.rules.base_watch.newest_version`). 404 (unknown image or region) raises
        ResourceNotFoundError."""
        client = self.get_conn(subscription_id)
        return [r.name for r in client.virtual_machine_images.list(location, publisher, offer, sku)]

    async def async_list_base_image_versions(self, location: str, publisher: str, offer: str, sku: str) -> list[str]:
        """:meth:`list_base_image_versions` from the async client, in the connection's subscription (the base-image
        watcher, in the triggerer)."""
        client = await self.get_async_conn()
        images = await client.virtual_machine_images.list(location, publisher, offer, sku)
        return [image.name for image in images or []]

    def find_base_image_version(self, location: str, publisher: str, offer: str, sku: str, version: str,
                                subscription_id: str | None = None) -> dict | None:
        """``virtual_machine_images.get`` as a dict (``properties``: osDiskImage, hyperVGeneration, plan, ...);
        None when the marketplace has no such version."""
        try:
            return _plain(self.get_conn(subscription_id).virtual_machine_images.get(location, publisher, offer, sku,
                                                                                    version))
        except ResourceNotFoundError:
            return None

    def begin_create_vm(self, vm_id: str, body: dict) -> LroStart:
        """PUT a VM (a build VM from a marketplace image); does not wait. The body holds customData: never log it."""
        arm_id = ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        self.log.info("Creating VM %s", arm_id.id)
        return self._begin(arm_id, "begin_create_or_update", body)

    def begin_deallocate_vm(self, vm_id: str) -> LroStart:
        """POST deallocate; does not wait (the operation URL tells when the VM is deallocated)."""
        arm_id = ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        self.log.info("Deallocating VM %s", arm_id.id)
        poller = self.get_conn(arm_id.subscription_id).virtual_machines.begin_deallocate(
            arm_id.resource_group, arm_id.name, polling=False, cls=_capture)
        resource, url, status = poller.result()
        return LroStart(arm_id.id, resource, url, status)

    def generalize_vm(self, vm_id: str) -> None:
        """POST generalize (synchronous); Azure refuses it (409 OperationNotAllowed) unless the VM is stopped."""
        arm_id = ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        self.log.info("Generalizing VM %s", arm_id.id)
        try:
            self.get_conn(arm_id.subscription_id).virtual_machines.generalize(arm_id.resource_group, arm_id.name)
        except HttpResponseError as err:
            self._refused(arm_id, err)
            raise

    def serial_console_tail(self, vm_id: str, lines: int = 20) -> str | None:
        """The last ``lines`` of the VM's serial console log (retrieveBootDiagnosticsData, then the SAS URL); None
        when boot diagnostics give none."""
        import urllib.request

        arm_id = ids.parse_arm_id(vm_id, "vm_id", ids.VIRTUAL_MACHINE)
        data = self.get_conn(arm_id.subscription_id).virtual_machines.retrieve_boot_diagnostics_data(
            arm_id.resource_group, arm_id.name, sas_uri_expiration_time_in_minutes=10)
        url = getattr(data, "serial_console_log_blob_uri", None)
        if not url:
            return None
        verify = self._client_kwargs(False).get("connection_verify")
        context = None
        if isinstance(verify, str):
            import ssl

            context = ssl.create_default_context(cafile=verify)
        with urllib.request.urlopen(url, context=context, timeout=30) as resp:  # noqa: S310 - Azure's SAS URL
            text = resp.read().decode("utf-8", "replace")
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    def get_disk(self, disk_id: str) -> dict:
        ids.parse_arm_id(disk_id, "disk_id", ids.DISK)
        return self.get_resource(disk_id)

    def get_snapshot(self, snapshot_id: str) -> dict:
        ids.parse_arm_id(snapshot_id, "snapshot_id", ids.SNAPSHOT)
        return self.get_resource(snapshot_id)

    def get_version(self, version_id: str, replication_status: bool = True) -> dict:
        """An image version; with ``$expand=ReplicationStatus`` (per-region state) unless told otherwise."""
        ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        return self.get_resource(version_id, "ReplicationStatus" if replication_status else None)

    async def async_get_version(self, version_id: str, replication_status: bool = True) -> dict:
        ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        return await self.async_get_resource(version_id, "ReplicationStatus" if replication_status else None)

    def list_versions(self, definition_id: str) -> list[dict]:
        """All versions of an image definition (with their publishing profiles and tags)."""
        arm_id = ids.parse_arm_id(definition_id, "definition_id", ids.GALLERY_IMAGE)
        client = self.get_conn(arm_id.subscription_id)
        gallery, definition = (n for _, n in arm_id.types)
        return [_plain(v) for v in client.gallery_image_versions.list_by_gallery_image(
            arm_id.resource_group, gallery, definition)]

    def list_in_resource_group(self, subscription_id: str, resource_group: str,
                               resource_type: str) -> tuple[list[dict], datetime | None]:
        """Every resource of a typed kind (``ids.SNAPSHOT``, ``ids.IMAGE``, ...) in a resource group, as ARM JSON
        (tags included), and the time ARM answered (its ``Date`` header; None without one), which ages measured
        against its own timestamps should use. Raises ``InvalidInput`` for a kind without typed SDK operations."""
        kind = resource_kinds.kind_of(resource_type)
        if kind is None or kind.sdk_operations is None or resource_type.count("/") != 1:
            raise InvalidInput("resource_type", resource_type, "not a top-level Microsoft.Compute type this hook lists",
                               "use ids.SNAPSHOT, ids.IMAGE or ids.VIRTUAL_MACHINE")
        ops = getattr(self.get_conn(subscription_id), kind.sdk_operations)
        dates: list[str] = []

        def keep_date(pipeline_response: Any) -> None:
            dates.append(pipeline_response.http_response.headers.get("Date") or "")

        # virtual_machines names its per-group list plain "list"
        lister = getattr(ops, "list_by_resource_group", None) or ops.list
        items = [_plain(r) for r in lister(resource_group, raw_response_hook=keep_date)]
        try:
            answered = email.utils.parsedate_to_datetime(dates[0]) if dates and dates[0] else None
        except (TypeError, ValueError):
            answered = None
        return items, answered

    # -- creates and updates that do not wait --------------------------------------------------------------------

    @staticmethod
    def _refused(arm_id: ids.ArmId, err: HttpResponseError) -> None:
        """Raise :class:`ArmRequestRefused` for an answer no retry can change; return for the others."""
        refusal = permanent_refusal(err)
        if refusal is not None:
            raise ArmRequestRefused(arm_id.id, *refusal) from err

    def _begin(self, arm_id: ids.ArmId, method: str, body: Any | None) -> LroStart:
        group, args = _operation(self.get_conn(arm_id.subscription_id), arm_id)
        call = getattr(group, method)
        try:
            poller = call(*args, body, polling=False, cls=_capture) if body is not None else \
                call(*args, polling=False, cls=_capture)
        except HttpResponseError as err:
            if body is not None:  # creates and updates; a delete's answers are the caller's to judge
                self._refused(arm_id, err)
            raise
        resource, url, status = poller.result()
        return LroStart(arm_id.id, resource, url, status)

    def begin_create_snapshot(self, snapshot_id: str, body: dict) -> LroStart:
        """PUT a snapshot (e.g. ``creationData {createOption: Copy, sourceResourceId}``); does not wait."""
        arm_id = ids.parse_arm_id(snapshot_id, "snapshot_id", ids.SNAPSHOT)
        self.log.info("Creating snapshot %s", arm_id.id)
        return self._begin(arm_id, "begin_create_or_update", body)

    def begin_create_image(self, image_id: str, body: dict) -> LroStart:
        """PUT a managed image (``storageProfile`` from snapshots); does not wait."""
        arm_id = ids.parse_arm_id(image_id, "image_id", ids.IMAGE)
        self.log.info("Creating managed image %s", arm_id.id)
        return self._begin(arm_id, "begin_create_or_update", body)

    def begin_create_version(self, version_id: str, body: dict) -> LroStart:
        """PUT an image version (source image, publishingProfile); does not wait for replication."""
        arm_id = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Creating image version %s", arm_id.id)
        return self._begin(arm_id, "begin_create_or_update", body)

    def _put_version_publishing(self, arm_id: ids.ArmId, changes: Mapping[str, Any],
                                tags: Mapping[str, str] | None = None) -> LroStart:
        """PUT the version back with ``publishingProfile`` changed and ``tags`` merged into its tags (a PUT on an
        existing version may change only the publishing profile and tags: the documented way, and the one every API
        version serves)."""
        current = self.get_resource(arm_id.id)
        props = current.get("properties") or {}
        publishing = {k: v for k, v in (props.get("publishingProfile") or {}).items() if k != "publishedDate"}
        publishing.update(changes)
        body = {
            "location": current.get("location"),
            "tags": {**(current.get("tags") or {}), **(tags or {})},
            "properties": {"storageProfile": {"source": (props.get("storageProfile") or {}).get("source") or {}},
                           "publishingProfile": publishing},
        }
        return self._begin(arm_id, "begin_create_or_update", body)

    def update_version_target_regions(self, version_id: str, target_regions: list[dict]) -> LroStart:
        """Set ``publishingProfile.targetRegions`` (wire format: name, regionalReplicaCount, ...); no wait."""
        arm_id = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Updating target regions of %s to %s", arm_id.id,
                      ", ".join(f"{r['name']} x{r.get('regionalReplicaCount', '?')}" for r in target_regions))
        return self._put_version_publishing(arm_id, {"targetRegions": list(target_regions)})

    def update_version_exclude_from_latest(self, version_id: str, exclude: bool = True) -> LroStart:
        arm_id = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Setting excludeFromLatest=%s on %s", exclude, arm_id.id)
        return self._put_version_publishing(arm_id, {"excludeFromLatest": exclude})

    def revoke_version(self, version_id: str, revoked: str) -> LroStart:
        """Revoke a version: tag ``revoked`` = ``revoked`` (when and by which run) and ``excludeFromLatest`` true, so
        nothing floats to it and the state is readable in Azure without Airflow; no wait."""
        arm_id = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Revoking %s (tag %s=%s, excludeFromLatest=true)", arm_id.id, naming.TAG_REVOKED, revoked)
        return self._put_version_publishing(arm_id, {"excludeFromLatest": True}, tags={naming.TAG_REVOKED: revoked})

    def update_version_end_of_life(self, version_id: str, end_of_life: str) -> LroStart:
        """Set ``publishingProfile.endOfLifeDate`` (ISO 8601, in the future: Azure refuses a past date); no wait."""
        arm_id = ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        self.log.info("Setting endOfLifeDate=%s on %s", end_of_life, arm_id.id)
        return self._put_version_publishing(arm_id, {"endOfLifeDate": end_of_life})

    def begin_delete(self, resource_id: str) -> LroStart:
        """DELETE a Microsoft.Compute resource; does not wait. An already missing one gives status 204."""
        arm_id = ids.parse_arm_id(resource_id, "resource_id")
        self.log.info("Deleting %s", arm_id.id)
        try:
            return self._begin(arm_id, "begin_delete", None)
        except ResourceNotFoundError:
            return LroStart(arm_id.id, None, None, 404)

    def delete_version(self, version_id: str) -> LroStart:
        ids.parse_arm_id(version_id, "version_id", ids.GALLERY_IMAGE_VERSION)
        return self.begin_delete(version_id)

    # -- get-or-create (short operations, waited for here) --------------------------------------------------------

    def _create_and_wait(self, arm_id: ids.ArmId, body: dict, timeout: float) -> dict:
        group, args = _operation(self.get_conn(arm_id.subscription_id), arm_id)
        try:
            poller = group.begin_create_or_update(*args, body, polling_interval=self.lro_poll_interval)
        except HttpResponseError as err:
            self._refused(arm_id, err)
            raise
        result = poller.result(timeout=timeout)
        if not poller.done():
            raise TimeoutError(f"{arm_id.resource_type} {arm_id.id} was not created within {timeout:.0f}s")
        return _plain(result)

    def get_or_create_gallery(self, gallery_id: str, location: str, tags: Mapping[str, str] | None = None,
                              description: str | None = None, timeout: float = 600) -> tuple[dict, bool]:
        """The gallery, created (and waited for) when missing. Returns ``(gallery, created)``."""
        arm_id = ids.parse_arm_id(gallery_id, "gallery_id", ids.GALLERY)
        existing = self.find_resource(arm_id.id)
        if existing is not None:
            return existing, False
        self.log.info("Creating gallery %s in %s", arm_id.id, location)
        body: dict[str, Any] = {"location": location, "tags": dict(tags or {}), "properties": {}}
        if description:
            body["properties"]["description"] = description
        try:
            created = self._create_and_wait(arm_id, body, timeout)
        except ResourceExistsError:  # created concurrently
            return self.get_resource(arm_id.id), False
        return self._settled(arm_id, created, timeout), True

    def get_or_create_image_definition(self, definition_id: str, body: dict,
                                       timeout: float = 600) -> tuple[dict, bool]:
        """The image definition, created (and waited for) from ``body`` when missing. ``(definition, created)``."""
        arm_id = ids.parse_arm_id(definition_id, "definition_id", ids.GALLERY_IMAGE)
        existing = self.find_resource(arm_id.id)
        if existing is not None:
            return existing, False
        self.log.info("Creating image definition %s", arm_id.id)
        try:
            created = self._create_and_wait(arm_id, body, timeout)
        except ResourceExistsError:
            return self.get_resource(arm_id.id), False
        return self._settled(arm_id, created, timeout), True

    def _settled(self, arm_id: ids.ArmId, body: dict | None, timeout: float) -> dict:
        state = ((body or {}).get("properties") or {}).get("provisioningState")
        if states.is_failed(state):
            raise HttpResponseError(message=f"{arm_id.resource_type} {arm_id.name} ended with provisioningState {state}")
        return body or self.get_resource(arm_id.id)

