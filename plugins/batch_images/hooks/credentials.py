"""Credentials and client options from an Airflow Azure connection, shared by every hook of the project.

Connection ``azure`` / ``azure_compute`` (see docs/architecture.md):

* login = client id, password = client secret, extra ``tenantId`` -> a service principal
  (:class:`azure.identity.ClientSecretCredential`);
* otherwise the provider's default credential (managed identity / workload identity, extras
  ``managed_identity_client_id`` and ``workload_identity_tenant_id``, exactly as the provider does);
* extra ``authority``: the Entra ID authority host for a sovereign cloud or the local stand-in
  (instance discovery is then disabled: a non-Microsoft authority cannot be discovered);
* extra ``arm_endpoint``: the ARM base URL (default: public Azure);
* extra ``ca_bundle``: a CA file to trust for TLS, relative paths resolved against the project root.

Nothing here logs or returns a secret: :func:`client_kwargs` gives only URLs and a file path, and
:func:`describe_connection` is the one safe summary for log lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batch_images.rules.errors import InvalidInput

# azure-core logs every request and response (headers included) at INFO: in task logs that buries
# what the pipeline itself says. Errors still surface as exceptions with Azure's message.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.identity").setLevel(logging.WARNING)

# plugins/batch_images/hooks/credentials.py -> parents[2] is plugins/, its parent is the project root.
PLUGINS_DIR = Path(__file__).resolve().parents[2]
PROJECT_ROOT = PLUGINS_DIR.parent

ARM_SCOPE = "https://management.azure.com/.default"
_CONN_TYPES = ("azure", "azure_compute", "azure_batch")


def extra_value(extras: Mapping[str, Any] | None, name: str) -> Any:
    """``extras[name]``, or the legacy ``extra__<conn_type>__<name>`` spelling the provider still reads."""
    extras = extras or {}
    value = extras.get(name)
    if value in (None, ""):
        for conn_type in _CONN_TYPES:
            value = extras.get(f"extra__{conn_type}__{name}")
            if value not in (None, ""):
                break
    return None if value == "" else value


def resolve_ca_bundle(value: str | os.PathLike | None, field: str = "ca_bundle") -> str | None:
    """The absolute path of a CA bundle file (``~`` expanded, relative to the project root), or None.

    A path that does not name a file is refused here, with the resolved path in the message: a wrong
    path would otherwise surface as an opaque TLS verification error on the first request.
    """
    if value in (None, ""):
        return None
    path = Path(os.path.expanduser(os.fspath(value)))
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    path = path.resolve()
    if not path.is_file():
        raise InvalidInput(f"connection extra {field}", os.fspath(value), f"no CA bundle file at {path}",
                           "give the path of a PEM file (absolute, or relative to the project root "
                           f"{PROJECT_ROOT}), or remove the extra to use the system trust store")
    return str(path)


def _extras_of(conn: Any, extras: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if extras is not None:
        return extras
    return getattr(conn, "extra_dejson", None) or {}


def client_kwargs(conn: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for azure-mgmt / azure-batch client constructors: ``base_url``, ``connection_verify``.

    ``base_url`` only when the connection names an ``arm_endpoint`` (so the SDK default, public Azure,
    stays the default); ``connection_verify`` only when it names a ``ca_bundle``.
    """
    extras = _extras_of(conn, extras)
    out: dict[str, Any] = {}
    arm = extra_value(extras, "arm_endpoint")
    if arm:
        out["base_url"] = str(arm).rstrip("/")
    ca = resolve_ca_bundle(extra_value(extras, "ca_bundle"))
    if ca:
        out["connection_verify"] = ca
    return out


def transport_kwargs(conn: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Only the transport options (``connection_verify``), for clients whose endpoint comes from elsewhere."""
    return {k: v for k, v in client_kwargs(conn, extras).items() if k == "connection_verify"}


def uses_service_principal(conn: Any, extras: Mapping[str, Any] | None = None) -> bool:
    extras = _extras_of(conn, extras)
    return bool(getattr(conn, "login", None) and getattr(conn, "password", None) and extra_value(extras, "tenantId"))


def credential_from_connection(conn: Any, aio: bool = False, extras: Mapping[str, Any] | None = None):
    """An azure-identity credential (sync, or async when ``aio``) for the connection.

    ``extras`` lets async callers pass the extra dict they read with the provider's async helper (reading
    ``conn.extra_dejson`` on an event loop masks secrets with a blocking call).
    """
    extras = _extras_of(conn, extras)
    tenant = extra_value(extras, "tenantId")
    if uses_service_principal(conn, extras):
        kwargs: dict[str, Any] = {}
        authority = extra_value(extras, "authority")
        if authority:
            kwargs["authority"] = str(authority).rstrip("/")
            kwargs["disable_instance_discovery"] = True
        ca = resolve_ca_bundle(extra_value(extras, "ca_bundle"))
        if ca:
            kwargs["connection_verify"] = ca
        if aio:
            from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

            return AsyncClientSecretCredential(tenant, conn.login, conn.password, **kwargs)
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(tenant, conn.login, conn.password, **kwargs)

    from airflow.providers.microsoft.azure.utils import (
        get_async_default_azure_credential,
        get_sync_default_azure_credential,
    )

    factory = get_async_default_azure_credential if aio else get_sync_default_azure_credential
    return factory(
        managed_identity_client_id=extra_value(extras, "managed_identity_client_id"),
        workload_identity_tenant_id=extra_value(extras, "workload_identity_tenant_id"),
    )


def describe_connection(conn: Any, extras: Mapping[str, Any] | None = None) -> str:
    """A log-safe one-liner: auth kind, tenant, endpoints. Never the secret."""
    extras = _extras_of(conn, extras)
    kind = "service principal" if uses_service_principal(conn, extras) else "default credential (managed/workload identity)"
    parts = [f"conn_id={getattr(conn, 'conn_id', None)}", f"auth={kind}"]
    if uses_service_principal(conn, extras):
        parts.append(f"client_id={conn.login}")
    for key in ("tenantId", "subscriptionId", "authority", "arm_endpoint"):
        value = extra_value(extras, key)
        if value:
            parts.append(f"{key}={value}")
    return ", ".join(parts)
