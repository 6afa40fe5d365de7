"""Azure RBAC in the stand-in (backends/authorization.py, responses/actions.py): role assignments at any scope,
inheritance downward, wildcards and NotActions, custom roles, the Permissions API, and the 403s ARM and Batch answer
to a principal without the right, through the real SDKs where one exists (azure-mgmt-authorization is not in the
lock: Microsoft.Authorization is called over HTTPS with httpx)."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest
from azure.batch import models as bm
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient

from include.azure_standin.backends.authorization import BUILTIN_ROLES, ROLE_IDS_BY_NAME
from include.azure_standin.core.tokens import object_id

from batch_helpers import pool_options

API = "2022-04-01"
OTHER = "9d3c1b7a-0000-4000-8000-00000000b0b0"        # another application: no role anywhere until a test gives one
ARM_AUD, BATCH_AUD = "https://management.azure.com", "https://batch.core.windows.net/"


class _Principal:
    """A token the stand-in minted for ``client_id``'s service principal (what its ClientSecretCredential gets)."""

    def __init__(self, standin, client_id: str, audience: str = ARM_AUD):
        self.token = standin.control.token(client_id=client_id, audience=audience)

    def get_token(self, *scopes, **kw):
        return AccessToken(self.token, int(time.time()) + 3600)


def _arm(standin, method: str, path: str, body=None, client_id: str = OTHER, api: str = API) -> httpx.Response:
    ep = standin.endpoints
    token = _Principal(standin, client_id).token
    return httpx.request(method, ep["arm"] + path, params={"api-version": api}, json=body, verify=ep["ca_bundle"],
                         headers={"Authorization": f"Bearer {token}"})


def _ids(standin):
    demo = standin.endpoints["demo"]
    sub = f"/subscriptions/{demo['subscription_id']}"
    return sub, f"{sub}/resourceGroups/{demo['resource_group']}", demo


def _refused(resp: httpx.Response, action: str, scope: str, code: str = "AuthorizationFailed") -> None:
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert f"'{action}'" in error["message"] and f"'{scope}'" in error["message"], error["message"]


@pytest.fixture
def enforced(standin):
    standin.control.rbac(True)
    return standin


def test_an_assignment_at_a_resource_group_reaches_its_resources_and_no_other_group(enforced):
    standin = enforced
    sub, rg, demo = _ids(standin)
    assert _arm(standin, "PUT", f"{sub}/resourcegroups/rg-other", {"location": "westeurope"},
                client_id=standin.endpoints["client_id"], api="2021-04-01").status_code == 201
    standin.control.assign_role("Reader", rg, client_id=OTHER)

    assert _arm(standin, "GET", demo["source_vm_id"], api="2024-07-01").status_code == 200
    assert _arm(standin, "GET", demo["subnet_id"], api="2024-05-01").status_code == 200     # a child resource
    other = f"{sub}/resourcegroups/rg-other"
    _refused(_arm(standin, "GET", other, api="2021-04-01"), "Microsoft.Resources/subscriptions/resourceGroups/read",
             other)
    # a reader writes nothing
    snap = f"{rg}/providers/Microsoft.Compute/snapshots/snap-x"
    _refused(_arm(standin, "PUT", snap, {"location": "westeurope"}, api="2024-03-02"),
             "Microsoft.Compute/snapshots/write", snap)


def test_an_unassigned_principal_is_refused_a_snapshot_create_through_azure_mgmt_compute(enforced):
    standin = enforced
    sub, rg, demo = _ids(standin)
    ep = standin.endpoints
    client = ComputeManagementClient(_Principal(standin, OTHER), ep["subscription_id"], base_url=ep["arm"],
                                     connection_verify=ep["ca_bundle"])
    disk_id = standin.compute().virtual_machines.get(demo["resource_group"], demo["source_vm_name"]) \
        .storage_profile.os_disk.managed_disk.id
    with pytest.raises(HttpResponseError) as err:
        client.snapshots.begin_create_or_update(demo["resource_group"], "snap-denied", {
            "location": "westeurope", "creation_data": {"create_option": "Copy", "source_resource_id": disk_id}})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    scope = f"{rg}/providers/Microsoft.Compute/snapshots/snap-denied"
    assert err.value.error.message == (
        f"The client '{OTHER}' with object id '{object_id(OTHER)}' does not have authorization to perform action "
        f"'Microsoft.Compute/snapshots/write' over scope '{scope}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.")
    assert not [s for s in standin.compute().snapshots.list_by_resource_group(demo["resource_group"])]


def test_not_actions_subtract_and_wildcards_match(enforced):
    """Contributor is ``*`` minus ``Microsoft.Authorization/*/Write``: it writes a snapshot's group but cannot
    assign a role there; Virtual Machine Contributor's ``Microsoft.Compute/virtualMachines/*`` covers generalize."""
    standin = enforced
    sub, rg, demo = _ids(standin)
    standin.control.assign_role("Contributor", rg, client_id=OTHER)
    assignment = f"{rg}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    _refused(_arm(standin, "PUT", assignment, {"properties": {
        "roleDefinitionId": f"{sub}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_IDS_BY_NAME['reader']}",
        "principalId": object_id(OTHER)}}), "Microsoft.Authorization/roleAssignments/write", assignment)
    assert _arm(standin, "GET", f"{rg}/providers/Microsoft.Compute/snapshots", api="2024-03-02").status_code == 200

    standin.control.set_roles([("Virtual Machine Contributor", demo["source_vm_id"])], client_id=OTHER)
    generalize = demo["source_vm_id"] + "/generalize"
    resp = _arm(standin, "POST", generalize, api="2024-07-01")
    assert resp.status_code != 403, resp.text
    _refused(_arm(standin, "GET", demo["vnet_id"], api="2024-05-01"), "Microsoft.Network/virtualNetworks/read",
             demo["vnet_id"])


def test_a_custom_role_made_and_assigned_through_arm(enforced):
    """PUT roleDefinitions (assignable at one group) and roleAssignments by the Owner principal; the role's
    ``Microsoft.Compute/*/read`` reads any Compute type there, writes nothing, and cannot be assigned outside its
    assignable scopes."""
    standin = enforced
    sub, rg, demo = _ids(standin)
    owner = standin.endpoints["client_id"]
    guid = str(uuid.uuid4())
    body = {"properties": {"roleName": "Compute reader", "description": "reads Compute", "assignableScopes": [rg],
                           "permissions": [{"actions": ["Microsoft.Compute/*/read"], "notActions": []}]}}
    created = _arm(standin, "PUT", f"{rg}/providers/Microsoft.Authorization/roleDefinitions/{guid}", body,
                   client_id=owner)
    assert created.status_code == 201 and created.json()["properties"]["type"] == "CustomRole"
    role_id = created.json()["id"]
    listed = _arm(standin, "GET", f"{rg}/providers/Microsoft.Authorization/roleDefinitions",
                  client_id=owner).json()["value"]
    assert {r["properties"]["roleName"] for r in listed} >= {"Compute reader", "Owner", "Azure Batch Data Contributor"}

    at_sub = f"{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    ra = {"properties": {"roleDefinitionId": role_id, "principalId": object_id(OTHER),
                         "principalType": "ServicePrincipal"}}
    assert _arm(standin, "PUT", at_sub, ra, client_id=owner).status_code == 400
    name = str(uuid.uuid4())
    made = _arm(standin, "PUT", f"{rg}/providers/Microsoft.Authorization/roleAssignments/{name}", ra, client_id=owner)
    assert made.status_code == 201, made.text
    assert made.json()["properties"]["scope"] == rg and made.json()["name"] == name
    again = _arm(standin, "PUT", f"{rg}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", ra,
                 client_id=owner)
    assert again.status_code == 409 and again.json()["error"]["code"] == "RoleAssignmentExists"

    assert _arm(standin, "GET", demo["source_vm_id"], api="2024-07-01").status_code == 200
    assert _arm(standin, "GET", f"{rg}/providers/Microsoft.Compute/disks", api="2024-03-02").status_code == 200
    _refused(_arm(standin, "GET", demo["vnet_id"], api="2024-05-01"), "Microsoft.Network/virtualNetworks/read",
             demo["vnet_id"])
    assert _arm(standin, "DELETE", f"{rg}/providers/Microsoft.Authorization/roleAssignments/{name}",
                client_id=owner).status_code == 200
    _refused(_arm(standin, "GET", demo["source_vm_id"], api="2024-07-01"), "Microsoft.Compute/virtualMachines/read",
             demo["source_vm_id"])


def test_the_permissions_api_lists_every_role_that_applies_at_the_scope(enforced):
    standin = enforced
    sub, rg, demo = _ids(standin)
    standin.control.assign_role("Reader", rg, client_id=OTHER)
    standin.control.assign_role("Network Contributor", demo["vnet_id"], client_id=OTHER)
    reader = {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}
    network = BUILTIN_ROLES[ROLE_IDS_BY_NAME["network contributor"]]["permissions"][0]

    at_rg = _arm(standin, "GET", f"{rg}/providers/Microsoft.Authorization/permissions")
    assert at_rg.status_code == 200 and at_rg.json()["value"] == [reader]
    at_subnet = _arm(standin, "GET", demo["subnet_id"] + "/providers/Microsoft.Authorization/permissions")
    assert sorted(at_subnet.json()["value"], key=str) == sorted([reader, network], key=str)
    assert _arm(standin, "GET", f"{sub}/providers/Microsoft.Authorization/permissions").json()["value"] == []
    # the seeded principal's own rights at the subscription: Owner and the Batch account role it is given
    own = _arm(standin, "GET", f"{sub}/providers/Microsoft.Authorization/permissions",
               client_id=standin.endpoints["client_id"]).json()["value"]
    assert {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []} in own


def _batch(standin, client_id: str | None = None, shared_key: bool = False):
    from azure.batch import BatchClient

    if client_id is None:
        return standin.batch(shared_key=shared_key)
    ep = standin.endpoints
    acct = ep["batch_accounts"][ep["demo"]["batch_account"]]
    return BatchClient(acct["endpoint"], _Principal(standin, client_id, BATCH_AUD), connection_verify=ep["ca_bundle"])


def _values(err: HttpResponseError) -> dict:
    """Batch's error ``values`` [{key, value}] of an azure-batch HttpResponseError."""
    return {v["key"]: v["value"] for v in err.response.json().get("values") or []}


def test_batch_data_plane_checks_entra_callers_and_not_shared_key(enforced):
    standin = enforced
    sub, rg, demo = _ids(standin)
    account_id = demo["batch_account_id"]
    with pytest.raises(HttpResponseError) as err:
        _batch(standin, OTHER).create_pool(pool_options("p-denied", marketplace=True))
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailure"
    assert _values(err.value) == {"Action": "Microsoft.Batch/batchAccounts/pools/write", "Scope": account_id}
    assert "p-denied" not in {p.id for p in _batch(standin, shared_key=True).list_pools()}

    _batch(standin, shared_key=True).create_pool(pool_options("p-shared-key", marketplace=True))
    assert "p-shared-key" in {p.id for p in standin.batch().list_pools()}    # the seeded principal reads it

    # pools are actions, jobs data actions: Batch Data Contributor on the account may add a pool, but a pool in a
    # subnet also needs join on the subnet
    standin.control.assign_role("Azure Batch Data Contributor", account_id, client_id=OTHER)
    with pytest.raises(HttpResponseError) as err:
        _batch(standin, OTHER).create_pool(pool_options(
            "p-subnet", marketplace=True, network_configuration=bm.NetworkConfiguration(subnet_id=demo["subnet_id"])))
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailure"
    assert _values(err.value) == {"Action": "Microsoft.Network/virtualNetworks/subnets/join/action",
                                  "Scope": demo["subnet_id"]}
    _batch(standin, OTHER).create_pool(pool_options("p-other", marketplace=True))
    assert _batch(standin, OTHER).get_pool("p-other").id == "p-other"


def test_the_switch_off_restores_todays_behaviour(standin):
    sub, rg, demo = _ids(standin)
    assert standin.control.rbac() == {"enforce": False}          # off after every reset unless --rbac
    assert _arm(standin, "GET", demo["source_vm_id"], api="2024-07-01").status_code == 200
    standin.control.rbac(True)
    _refused(_arm(standin, "GET", demo["source_vm_id"], api="2024-07-01"), "Microsoft.Compute/virtualMachines/read",
             demo["source_vm_id"])
    # the seeded principal keeps every flow: Owner + Azure Batch Account Contributor at the subscription
    assert standin.compute().virtual_machines.get(demo["resource_group"], demo["source_vm_name"]).name
    standin.batch().create_pool(pool_options("p-seeded", marketplace=True))
    standin.control.rbac(False)
    assert _arm(standin, "GET", demo["source_vm_id"], api="2024-07-01").status_code == 200
