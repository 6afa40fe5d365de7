"""Microsoft.Batch accounts on the management plane (read-only: the seed creates them): BatchAccount_Get / List /
ListByResourceGroup / GetKeys. The data plane (pools, jobs, tasks) is in the batch_*.py modules.

Documents: batch_account (key: the lower-cased ARM id; `_sim.keys` holds the two account keys).
"""
from __future__ import annotations

import base64
import os

from .arm_common import T_BATCH, arm_id, canonical_region, get_in_rg, list_in


def batch_account_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_BATCH, name)


def put_batch_account_doc(ctx, sub: str, rg: str, name: str, *, location: str,
                          dedicated_core_quota: int = 500, low_priority_core_quota: int = 100,
                          pool_quota: int = 100) -> dict:
    """Store a Batch account (seed helper) with two random base64 account keys in _sim.keys."""
    bid = batch_account_id(sub, rg, name)
    keys = [base64.b64encode(os.urandom(64)).decode() for _ in range(2)]
    body = {
        "id": bid, "name": name, "type": T_BATCH, "location": canonical_region(location), "tags": {},
        "identity": {"type": "None"},
        "properties": {
            "accountEndpoint": "",
            "provisioningState": "Succeeded",
            "poolAllocationMode": "BatchService",
            "publicNetworkAccess": "Enabled",
            "dedicatedCoreQuota": dedicated_core_quota,
            "lowPriorityCoreQuota": low_priority_core_quota,
            "dedicatedCoreQuotaPerVMFamilyEnforced": True,
            "dedicatedCoreQuotaPerVMFamily": [
                {"name": "standardDv5Family", "coreQuota": 100},
                {"name": "standardDSv5Family", "coreQuota": 100},
                {"name": "standardDDSv5Family", "coreQuota": 50},
                {"name": "standardEv5Family", "coreQuota": 50},
                {"name": "standardDSv3Family", "coreQuota": 50},
                {"name": "standardFSv2Family", "coreQuota": 50},
            ],
            "poolQuota": pool_quota,
            "activeJobAndJobScheduleQuota": 300,
            "allowedAuthenticationModes": ["SharedKey", "AAD", "TaskAuthenticationToken"],
        },
        "_sim": {"keys": keys},
    }
    ctx.store.put("batch_account", bid, body)
    return body


def _with_endpoint(ctx, body: dict) -> dict:
    body["properties"]["accountEndpoint"] = f"{ctx.config.netloc}/batch/{body['name']}"
    return body


def get_batch_account(ctx, sub: str, rg: str, name: str) -> dict:
    return _with_endpoint(ctx, get_in_rg(ctx, "batch_account", T_BATCH, sub, rg, name))


def list_batch_accounts(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return [_with_endpoint(ctx, b) for b in list_in(ctx, "batch_account", T_BATCH, sub, rg)]


def batch_account_keys(ctx, sub: str, rg: str, name: str) -> dict:
    """BatchAccount_GetKeys."""
    body = get_batch_account(ctx, sub, rg, name)
    keys = body["_sim"]["keys"]
    return {"accountName": body["name"], "primary": keys[0], "secondary": keys[1]}
