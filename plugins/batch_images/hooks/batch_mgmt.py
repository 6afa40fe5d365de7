"""Batch pools on the management plane (ARM ``Microsoft.Batch/batchAccounts/pools``, azure-mgmt-batch 18.0.0,
api-version 2024-07-01): the route for pools the data plane cannot make.

A pool with user-assigned managed identities, or with ARM ``tags`` on the pool resource, can only be created through
ARM ("Creating pools with managed identities can only be performed with the Batch Management Plane APIs or SDKs using
Entra authentication", learn.microsoft.com/azure/batch/managed-identity-pools). The body comes from
:func:`batch_images.rules.arm_pool_body.arm_pool_body`; the pool is then the same pool the data plane lists, reads,
resizes and deletes (:class:`~batch_images.hooks.batch.BatchPoolHook`).

Imported only inside operator methods: DAG parsing imports no ``azure.*``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batch_images.hooks.arm import ArmComputeHook
from batch_images.hooks.credentials import credential_from_connection
from batch_images.rules import ids

# Pool_Create with If-None-Match: * on an existing pool: 412 (BatchManagement.json: "Set to '*' to allow a new pool
# to be created, but to prevent updating an existing pool"; the status is HTTP's Precondition Failed, RFC 9110 13.1.2).
_EXISTS = 412


def _raw_json(pipeline_response, _deserialized, _headers) -> dict:
    """The response body as sent: no SDK model in between, so no property the model does not know is lost."""
    return pipeline_response.http_response.json()


class BatchManagementHook(ArmComputeHook):
    """ARM Batch pool hook: the ``azure_default`` connection's Entra credential, subscription and extras
    (``authority``, ``arm_endpoint``, ``ca_bundle``, ``subscriptionId``) exactly as :class:`ArmComputeHook` reads
    them, with one cached :class:`azure.mgmt.batch.BatchManagementClient` per subscription (closed with the hook's
    other clients by ``close_sync`` / ``close``).

    Pools are named by the Batch account's ARM id (``/subscriptions/<guid>/resourceGroups/<rg>/providers/
    Microsoft.Batch/batchAccounts/<account>``, ``PoolSpec.batch_account_id``) and the pool id.
    """

    hook_name = "Azure Batch management (batch images)"

    def batch_mgmt_client(self, subscription_id: str | None = None):
        """A cached sync BatchManagementClient for ``subscription_id`` (default: the connection's)."""
        from azure.mgmt.batch import BatchManagementClient

        self.load_connection()
        sub = subscription_id or self._default_subscription()
        key = f"batch-mgmt:{sub.lower()}"
        if key not in self._clients:
            if self._credential is None:
                self._credential = credential_from_connection(self._conn_obj, aio=False, extras=self._extras)
            self._clients[key] = BatchManagementClient(self._credential, sub, **self._client_kwargs(aio=False))
        return self._clients[key]

    @staticmethod
    def _pool_id(batch_account_id: str, pool_id: str) -> ids.ArmId:
        account = ids.parse_arm_id(batch_account_id, "batch_account_id", ids.BATCH_ACCOUNT)
        return ids.batch_pool_id(account.subscription_id, account.resource_group, account.name, pool_id)

    def create_pool(self, batch_account_id: str, pool_id: str, arm_body: Mapping[str, Any]) -> bool:
        """Pool_Create (PUT) ``arm_body`` (the ARM Pool body, wire format: ``{"properties", "identity"?, "tags"?}``)
        as pool ``pool_id`` of the account, with If-None-Match: * so an existing pool is never updated.

        Returns True when created, False when a pool of that id already exists (unchanged). The 2024-07-01 create
        is synchronous (200, no long-running operation in the spec): the pool exists when this returns; its nodes
        are allocated afterwards, as for a data-plane create (wait with the Batch waiter).
        Raises :class:`~batch_images.hooks.arm.ArmRequestRefused` (no retry) for a 400-class refusal, InvalidInput
        for a malformed account id or pool id, HttpResponseError otherwise.
        """
        arm_id = self._pool_id(batch_account_id, pool_id)
        account = arm_id.parent
        assert account is not None
        client = self.batch_mgmt_client(arm_id.subscription_id)
        self.log.info("Creating Batch pool %s through ARM (identity: %s, tags: %s)", arm_id.id,
                      sorted(((arm_body.get("identity") or {}).get("userAssignedIdentities") or {})),
                      sorted(arm_body.get("tags") or {}))
        # Sent as JSON bytes: the SDK would otherwise pass a dict through its Pool model, dropping unknown keys.
        content = BytesIO(json.dumps(dict(arm_body)).encode())
        try:
            client.pool.create(account.resource_group, account.name, pool_id, content, if_none_match="*",
                               content_type="application/json", cls=_raw_json)
        except HttpResponseError as err:
            if err.status_code == _EXISTS:
                self.log.info("Batch pool %s already exists: left unchanged", arm_id.id)
                return False
            self._refused(arm_id, err)
            raise
        return True

    def get_pool(self, batch_account_id: str, pool_id: str) -> dict | None:
        """Pool_Get: the pool's ARM body as sent (``{"id", "name", "type", "etag", "identity"?, "tags"?,
        "properties": {...}}``, camelCase), None when the account has no such pool."""
        arm_id = self._pool_id(batch_account_id, pool_id)
        account = arm_id.parent
        assert account is not None
        try:
            return self.batch_mgmt_client(arm_id.subscription_id).pool.get(
                account.resource_group, account.name, pool_id, cls=_raw_json)
        except ResourceNotFoundError:
            return None
