"""The ARM route for pools (hooks/batch_mgmt.py + rules/arm_pool_body.py) against the stand-in, through the real
azure-mgmt-batch SDK with the azure_default connection's extras: a pool with a user-assigned identity and ARM tags,
made from a data-plane body, is the pool the data plane (azure-batch) reads back: identity there, every other
property as in the body it was converted from."""
from __future__ import annotations

import pytest

from _arm_common import last_request_id, requests_since
from batch_images.hooks.arm import ArmRequestRefused
from batch_images.hooks.batch_mgmt import BatchManagementHook
from batch_images.rules.arm_pool_body import arm_pool_body
from batch_images.rules.errors import InvalidInput

AGENT = "batch.node.ubuntu 22.04"


def _identity_id(ep: dict) -> str:
    return (f"/subscriptions/{ep['subscription_id']}/resourceGroups/{ep['demo']['resource_group']}/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/id-pools")


def _body(ep: dict, version_id: str, pool_id: str) -> dict:
    """A data-plane pool body (what the data-plane route would POST) with many of the properties real pools use."""
    return {
        "id": pool_id,
        "displayName": "ARM-made pool",
        "vmSize": "standard_d2s_v3",
        "virtualMachineConfiguration": {
            "imageReference": {"virtualMachineImageId": version_id},
            "nodeAgentSKUId": AGENT,
            "osDisk": {"caching": "readonly"},
            "nodePlacementConfiguration": {"policy": "regional"},
        },
        "resizeTimeout": "PT15M",
        "targetDedicatedNodes": 1,
        "targetLowPriorityNodes": 0,
        "enableInterNodeCommunication": False,
        "networkConfiguration": {
            "subnetId": ep["demo"]["subnet_id"],
            "publicIPAddressConfiguration": {"provision": "nopublicipaddresses"},
            "enableAcceleratedNetworking": True,
        },
        "startTask": {
            "commandLine": "/bin/sh -c true",
            "environmentSettings": [{"name": "STAGE", "value": "arm"}],
            "resourceFiles": [{"httpUrl": "https://example.com/setup.sh", "filePath": "setup.sh", "fileMode": "0755"}],
            "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
            "maxTaskRetryCount": 1,
            "waitForSuccess": True,
        },
        "taskSlotsPerNode": 4,
        "taskSchedulingPolicy": {"nodeFillType": "pack"},
        "userAccounts": [{"name": "runner", "password": "Secret-1234", "elevationLevel": "nonadmin",
                          "linuxUserConfiguration": {"uid": 1001, "gid": 1001}}],
        "metadata": [{"name": "owner", "value": "tests"}],
        "mountConfiguration": [{"nfsMountConfiguration": {"source": "10.0.0.4:/data", "relativeMountPath": "data",
                                                          "mountOptions": "-o vers=4"}}],
    }


@pytest.fixture
def hook(conns):
    h = BatchManagementHook(client_options={"retry_total": 0})
    yield h
    h.close_sync()


def test_identity_pool_made_through_arm_is_the_data_plane_pool(conns, version_id, hook):
    ep = conns.endpoints
    account_id, ident = ep["demo"]["batch_account_id"], _identity_id(ep)
    body = _body(ep, version_id, "p-arm-identity")
    arm = arm_pool_body(body, {"type": "UserAssigned", "userAssignedIdentities": {ident: {}}}, {"team": "hpc"})

    assert hook.create_pool(account_id, "p-arm-identity", arm) is True

    got = conns.batch().get_pool("p-arm-identity").as_dict()
    [ua] = got["identity"]["userAssignedIdentities"]
    assert ua["resourceId"] == ident and got["identity"]["type"] == "UserAssigned"
    for key, value in body.items():
        assert got.get(key) == value, key
    # ARM reads the same pool back with its tags and identity keyed by id
    arm_got = hook.get_pool(account_id, "p-arm-identity")
    assert arm_got["tags"] == {"team": "hpc"} and list(arm_got["identity"]["userAssignedIdentities"]) == [ident]
    assert arm_got["properties"]["scaleSettings"]["fixedScale"]["targetDedicatedNodes"] == 1


def test_existing_pool_is_left_unchanged(conns, version_id, hook):
    ep = conns.endpoints
    account_id = ep["demo"]["batch_account_id"]
    body = _body(ep, version_id, "p-arm-twice")
    assert hook.create_pool(account_id, "p-arm-twice", arm_pool_body(body, None, {"team": "a"})) is True
    changed = dict(body, taskSlotsPerNode=2)
    assert hook.create_pool(account_id, "p-arm-twice", arm_pool_body(changed, None, {"team": "b"})) is False
    pool = conns.batch().get_pool("p-arm-twice")
    assert pool.task_slots_per_node == 4
    assert hook.get_pool(account_id, "p-arm-twice")["tags"] == {"team": "a"}


def test_missing_pool_reads_none(conns, hook):
    assert hook.get_pool(conns.endpoints["demo"]["batch_account_id"], "p-none") is None


def test_refused_create_fails_at_once_and_makes_nothing(conns, version_id, hook):
    ep = conns.endpoints
    body = dict(_body(ep, version_id, "p-arm-bad"), vmSize="Standard_Nope")
    with pytest.raises(ArmRequestRefused) as e:
        hook.create_pool(ep["demo"]["batch_account_id"], "p-arm-bad", arm_pool_body(body, None, {"team": "hpc"}))
    assert e.value.status == 400 and e.value.code == "InvalidPropertyValue"
    assert "p-arm-bad" not in {p.id for p in conns.batch().list_pools()}


@pytest.mark.parametrize("account_id, pool_id, field", [
    ("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Batch/batchAccounts/a", "p", "batch_account_id"),
    (None, "a/b", "pools name"),
])
def test_bad_ids_are_refused_before_any_request(conns, hook, account_id, pool_id, field):
    since = last_request_id(conns)
    with pytest.raises(InvalidInput) as e:
        hook.create_pool(account_id or conns.endpoints["demo"]["batch_account_id"], pool_id, {"properties": {}})
    assert e.value.field == field
    assert [r["op"] for r in requests_since(conns, since) if r["write"]] == []
