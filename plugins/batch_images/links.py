"""Azure portal links on the tasks that create or wait for a resource (the task's "Azure portal: ..." button).

Airflow 3 computes an operator's extra links in the worker when the task ends (task_runner.finalize calls
``get_link(operator, ti_key=ti)`` with the rendered operator and stores the URL as XCom ``link.xcom_key``); the UI
reads that XCom back, so no plugin registration is needed and the link class never runs in the api-server.

One class, :class:`AzurePortalLink`, parametrised by a *picker*: ``pick(operator, value) -> ARM id or None``,
where ``value`` is the task's XCom return value (None when the task failed before returning) and ``operator`` the
rendered task (its ``plan`` / ``pool_spec`` / ``resource_ids``, so a failed wait still links to what it waited
for). No Azure import: the DAG file imports this module.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs
from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom  # the XCom class the worker configures (backend-aware)
from batch_images.rules import ids
from batch_images.rules.errors import InvalidInput

PORTAL = "https://portal.azure.com"
# The Azure connection of this project (hooks/arm.py): extra tenantId; a Batch connection names it in
# credential_conn_id (hooks/batch.py).
DEFAULT_ARM_CONN_ID = "azure_default"


def portal_url(resource_id: str | None, tenant: str | None = None) -> str:
    """``https://portal.azure.com/#@<tenant>/resource<ARM id>`` (``#@/resource...`` without a tenant).

    The tenant pins the portal's directory (a user in several tenants lands in the right one). '' when there is no
    id (the UI then shows the link disabled).
    """
    if not resource_id:
        return ""
    rid = "/" + resource_id.strip().strip("/")
    return f"{PORTAL}/#@{quote(tenant or '', safe='.-')}/resource{quote(rid, safe='/.-_()')}"


def batch_pool_arm_id(batch_account_id: str | None, pool_id: str | None) -> str | None:
    """The ARM id of a Batch pool: ``<batch account id>/pools/<pool id>`` (what the portal's pool page shows); None
    without both, or when they do not make a valid id."""
    if not batch_account_id or not pool_id:
        return None
    try:
        account = ids.parse_arm_id(batch_account_id.rstrip("/"), "batch_account_id", ids.BATCH_ACCOUNT)
        return ids.batch_pool_id(account.subscription_id, account.resource_group, account.name, pool_id).id
    except InvalidInput:
        return None


def _conn_extra(conn_id: str) -> dict:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).extra_dejson or {}


def tenant_of(conn_id: str | None) -> str | None:
    """The Entra ID tenant of an Azure connection (extra ``tenantId``), following a Batch connection's
    ``credential_conn_id``; None when unknown (the link then has no tenant)."""
    seen: set[str] = set()
    while conn_id and conn_id not in seen:
        seen.add(conn_id)
        try:
            extra = _conn_extra(conn_id)
        except Exception:  # noqa: BLE001 - no such connection: a link without tenant still works
            return None
        tenant = extra.get("tenantId") or extra.get("tenant_id")
        if tenant:
            return str(tenant)
        conn_id = extra.get("credential_conn_id") or (DEFAULT_ARM_CONN_ID if "account_url" in extra else None)
    return None


# --- pickers: (operator, return value) -> ARM id -------------------------------------------------------------

def returned_id(operator: Any, value: Any) -> str | None:
    """The return value when it is an ARM id (the managed image; None on the Trusted Launch path)."""
    return value if isinstance(value, str) and value.startswith("/subscriptions/") else None


def image_version(operator: Any, value: Any) -> str | None:
    """The returned version id, else the plan's ``version_id`` (a failed or excluded promotion returns none)."""
    plan = getattr(operator, "plan", None)
    return returned_id(operator, value) or (plan.get("version_id") if isinstance(plan, Mapping) else None)


def os_snapshot(operator: Any, value: Any) -> str | None:
    """The OS disk snapshot of SnapshotDisksOperator's ``[{role, lun, id}]``."""
    return next((s.get("id") for s in value or [] if isinstance(s, Mapping) and s.get("role") == "os"), None)


def first_resource(operator: Any, value: Any) -> str | None:
    """The first id a sensor waited for: its return value, else its rendered ``resource_ids``."""
    for ids_ in (value, getattr(operator, "resource_ids", None)):
        if isinstance(ids_, Sequence) and not isinstance(ids_, str):
            for item in ids_:
                rid = item.get("id") if isinstance(item, Mapping) else item
                if isinstance(rid, str) and rid:
                    return rid
    return None


def build_vm(operator: Any, value: Any) -> str | None:
    """The build VM: prepare_build_vm's ``{"vm_id"}`` or generalize_build_vm's id, else the rendered plan's
    ``build.vm_id`` (a failed build still links to the VM whose serial log explains it)."""
    if isinstance(value, Mapping):
        value = value.get("vm_id")
    plan = getattr(operator, "plan", None)
    build = plan.get("build") if isinstance(plan, Mapping) else None
    return returned_id(operator, value) or (build.get("vm_id") if isinstance(build, Mapping) else None)


def pool(operator: Any, value: Any) -> str | None:
    """The Batch pool's ARM id: the account from the rendered ``pool_spec`` / ``roll``, the pool id from the return
    value (a str, or roll_pool's ``{"pool_id"}``), else from the spec."""
    spec = getattr(operator, "pool_spec", None) or getattr(operator, "roll", None)
    spec = spec if isinstance(spec, Mapping) else {}
    pool_id = value.get("pool_id") if isinstance(value, Mapping) else value
    return batch_pool_arm_id(spec.get("batch_account_id"), pool_id if isinstance(pool_id, str) else spec.get("pool_id"))


def _conn_id(operator: Any) -> str | None:
    spec = getattr(operator, "pool_spec", None) or getattr(operator, "roll", None)
    if isinstance(spec, Mapping) and spec.get("batch_conn_id"):
        return spec["batch_conn_id"]
    plan = getattr(operator, "plan", None)
    return getattr(operator, "arm_conn_id", None) or (plan.get("arm_conn_id") if isinstance(plan, Mapping) else None) \
        or DEFAULT_ARM_CONN_ID


@attrs.define(eq=True, frozen=True)
class AzurePortalLink(BaseOperatorLink):
    """A task's "Azure portal: <label>" link to the resource ``pick(operator, return value)`` names.

    :param label: what the link opens ("managed image", "Batch pool", ...): the button reads "Azure portal: label".
    :param pick: ``(rendered operator, XCom return value or None) -> ARM id or None``.
    :param kind: a short tag of the resource kind (also part of the XCom key, unique per task).
    """

    label: str
    pick: Callable[[Any, Any], str | None] = attrs.field(eq=False)
    kind: str = ""

    @property
    def name(self) -> str:
        return f"Azure portal: {self.label}"

    @property
    def xcom_key(self) -> str:
        # The default (_link_<class name>) would collide for two links of this class on one task.
        return "_link_azure_portal_" + re.sub(r"[^a-z0-9]+", "_", (self.kind or self.label).lower()).strip("_")

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(ti_key=ti_key, key="return_value")
        return portal_url(self.pick(operator, value), tenant_of(_conn_id(operator)))


SNAPSHOT_LINKS = (AzurePortalLink("OS disk snapshot", os_snapshot, "snapshot"),)
WAITED_LINKS = (AzurePortalLink("resource", first_resource, "resource"),)
IMAGE_LINKS = (AzurePortalLink("managed image", returned_id, "managed_image"),)
VERSION_LINKS = (AzurePortalLink("image version", image_version, "image_version"),)
POOL_LINKS = (AzurePortalLink("Batch pool", pool, "batch_pool"),)
BUILD_VM_LINKS = (AzurePortalLink("build VM", build_vm, "build_vm"),)


def task_portal_url(operator: Any, value: Any = None) -> str | None:
    """The URL of the first Azure portal link of ``operator`` (its rendered form) for return value ``value`` (None
    for a task that failed before returning); None when the task has no such link or it names nothing. What
    notifications put in a message (notifications.py)."""
    for link in getattr(operator, "operator_extra_links", None) or ():
        if isinstance(link, AzurePortalLink):
            url = portal_url(link.pick(operator, value), tenant_of(_conn_id(operator)))
            if url:
                return url
    return None
