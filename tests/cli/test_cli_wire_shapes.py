"""What azure-cli 2.91 puts on the wire that the SDKs do not, served as Azure serves it (fast, no CLI)."""
from __future__ import annotations

import pytest
import requests

BATCH_SCOPE = "https://batch.core.windows.net//.default"


def _add_pool(standin, pool_id: str, target):
    ep = standin.endpoints
    acct = ep["batch_accounts"][ep["demo"]["batch_account"]]
    token = standin.credential().get_token(BATCH_SCOPE).token
    body = {"id": pool_id, "vmSize": "Standard_D2s_v5", "targetDedicatedNodes": target,
            "virtualMachineConfiguration": {
                "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                                   "sku": "22_04-lts-gen2", "version": "latest"},
                "nodeAgentSKUId": "batch.node.ubuntu 22.04"}}
    resp = requests.post(f"{acct['endpoint']}/pools", params={"api-version": "2024-07-01.20.0"}, json=body,
                         headers={"Authorization": f"Bearer {token}"}, verify=ep["ca_bundle"], timeout=30)
    return resp.status_code, (resp.json() if resp.content else None)


def test_node_count_sent_as_a_json_string_is_read_as_the_integer(standin):
    # `az batch pool create --target-dedicated-nodes 2` sends "targetDedicatedNodes": "2".
    status, _ = _add_pool(standin, "cli-string-count", "2")
    assert status == 201
    pool = standin.batch().get_pool("cli-string-count")
    assert pool.target_dedicated_nodes == 2


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_node_count_string_that_is_not_a_count_is_refused_naming_the_property(standin, value):
    status, body = _add_pool(standin, "cli-bad-count", value)
    assert status == 400
    assert body["code"] == "InvalidPropertyValue"
    assert {"key": "PropertyName", "value": "targetDedicatedNodes"} in body["values"]
    assert all(p.id != "cli-bad-count" for p in standin.batch().list_pools())
