"""Batch pools on the stand-in, driven only through the unmodified azure-batch 15 SDK (plus
azure-mgmt-compute to build the gallery image version a pool names)."""
from __future__ import annotations

import datetime

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batch_helpers import (
    POLL, account, build_image_version, error_values, pool_options, set_quotas, slow, wait_pool,
)


@pytest.fixture
def image(standin):
    return build_image_version(standin)


def test_gallery_pool_allocates_to_steady_with_idle_nodes(standin, image):
    client = standin.batch()
    with slow(standin):
        client.create_pool(pool_options("pool-2025-0101-1", image.id, nodes=4,
                                        resize_timeout=datetime.timedelta(minutes=20)))
        first = client.get_pool("pool-2025-0101-1")
        assert first.state == "active" and first.allocation_state == "resizing"
        assert first.target_dedicated_nodes == 4 and first.current_dedicated_nodes == 0

    pool = wait_pool(client, "pool-2025-0101-1")
    assert pool.allocation_state == "steady" and not pool.resize_errors
    assert pool.current_dedicated_nodes == 4 and pool.target_dedicated_nodes == 4
    assert pool.vm_size == "Standard_D2s_v3"
    assert pool.resize_timeout == datetime.timedelta(minutes=20)
    vmc = pool.virtual_machine_configuration
    assert vmc.image_reference.virtual_machine_image_id == image.id
    assert vmc.node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert pool.start_task.command_line == "/bin/bash -c 'echo ready'" and pool.start_task.wait_for_success
    assert [(m.name, m.value) for m in pool.metadata] == [("built-by", "tests")]
    assert pool.url.endswith(f"/batch/{account(standin)}/pools/pool-2025-0101-1")
    assert pool.etag.startswith("0x") and pool.last_modified and pool.creation_time
    assert pool.state_transition_time == pool.creation_time
    assert pool.allocation_state_transition_time > pool.creation_time

    nodes = list(client.list_nodes("pool-2025-0101-1"))
    assert len(nodes) == 4 and {n.state for n in nodes} == {"idle"}
    node = client.get_node("pool-2025-0101-1", nodes[0].id)
    assert node.is_dedicated and node.vm_size == "Standard_D2s_v3"
    assert node.start_task_info.state == "completed" and node.start_task_info.exit_code == 0
    assert node.virtual_machine_info.image_reference.exact_version == "1.0.0"
    assert node.id.startswith("tvmps_") and node.id.endswith("_d")

    [counts] = [c for c in client.list_pool_node_counts() if c.pool_id == "pool-2025-0101-1"]
    assert counts.dedicated.idle == 4 and counts.dedicated.total == 4 and counts.low_priority.total == 0

    assert client.pool_exists("pool-2025-0101-1")
    # azure-batch 15.1.0's exception policy raises on the 404 before pool_exists can return False
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists("nope")
    assert [p.id for p in client.list_pools(filter="startswith(id,'pool-2025')")] == ["pool-2025-0101-1"]
    assert list(client.list_pools(filter="startswith(id,'other')")) == []


def test_resize_and_delete_through_the_sdk_pollers(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("p-resize", image.id, nodes=2))
    wait_pool(client, "p-resize", settled=False)
    client.begin_resize_pool("p-resize", bm.BatchPoolResizeOptions(target_dedicated_nodes=5),
                             polling_interval=POLL).result()
    pool = client.get_pool("p-resize")
    assert pool.allocation_state == "steady" and pool.current_dedicated_nodes == 5
    client.begin_resize_pool("p-resize", bm.BatchPoolResizeOptions(target_dedicated_nodes=1),
                             polling_interval=POLL).result()
    pool = client.get_pool("p-resize")
    assert pool.current_dedicated_nodes == 1 and len(list(client.list_nodes("p-resize"))) == 1

    with slow(standin):
        poller = client.begin_delete_pool("p-resize", polling_interval=POLL)
        assert client.get_pool("p-resize").state == "deleting"
        with pytest.raises(HttpResponseError) as err:
            client.begin_resize_pool("p-resize", bm.BatchPoolResizeOptions(target_dedicated_nodes=3))
        assert err.value.status_code == 409 and err.value.error.code == "PoolBeingDeleted"
        standin.control.advance(600)
        poller.result()
    with pytest.raises(ResourceNotFoundError) as err:
        client.get_pool("p-resize")
    assert err.value.error.code == "PoolNotFound"


def test_resize_of_a_resizing_pool_is_refused(standin, image):
    client = standin.batch()
    with slow(standin):
        client.create_pool(pool_options("p-busy", image.id, nodes=3))
        with pytest.raises(HttpResponseError) as err:
            client.begin_resize_pool("p-busy", bm.BatchPoolResizeOptions(target_dedicated_nodes=4))
    assert err.value.status_code == 409 and err.value.error.code == "PoolBeingResized"


def test_pool_id_rules_and_case_insensitive_uniqueness(standin, image):
    client = standin.batch()
    for bad in ("x" * 65, "bad.id", "has space"):
        with pytest.raises(HttpResponseError) as err:
            client.create_pool(pool_options(bad, image.id))
        assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
        assert error_values(err.value)["PropertyName"] == "id"
    client.create_pool(pool_options("Pool_Blue-1", image.id, nodes=0))
    with pytest.raises(ResourceExistsError) as err:
        client.create_pool(pool_options("pool_blue-1", image.id, nodes=0))
    assert err.value.status_code == 409 and err.value.error.code == "PoolExists"
    assert client.get_pool("POOL_BLUE-1").id == "Pool_Blue-1"


# --- the gallery-image rules: one violation each -----------------------------------------------------------

def test_missing_image_version_is_an_invalid_property(standin, image):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-missing", image.definition_id + "/versions/9.9.9"))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    values = error_values(err.value)
    assert values["PropertyName"] == "virtualMachineImageId" and "does not exist" in values["Reason"]
    with pytest.raises(ResourceNotFoundError):
        client.get_pool("p-missing")


def test_specialized_image_is_refused(standin):
    img = build_image_version(standin, tag="spec", gallery="galspec", definition="ubuntu-specialized",
                              os_state="Specialized")
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-spec", img.id))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    values = error_values(err.value)
    assert values["PropertyName"] == "virtualMachineImageId" and "Generalized" in values["Reason"]


def test_image_without_replica_in_the_account_region_is_refused(standin):
    img = build_image_version(standin, tag="ne", location="northeurope", gallery="galnorth")
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-region", img.id))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    reason = error_values(err.value)["Reason"]
    assert "westeurope" in reason and "northeurope" in reason


def test_replica_not_completed_is_accepted_but_allocation_fails(standin):
    standin.control.add_fault("replication_failed", match={"region": "westeurope"})
    img = build_image_version(standin, tag="fail")
    client = standin.batch()
    client.create_pool(pool_options("p-replica", img.id, nodes=3))
    pool = wait_pool(client, "p-replica", settled=False)
    assert pool.current_dedicated_nodes == 0
    [err] = pool.resize_errors
    assert err.code == "AllocationFailed" and "westeurope" in err.message and "Failed" in err.message


def test_unknown_node_agent_sku_is_refused(standin, image):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-agent", image.id, agent="batch.node.ubuntu 99.04"))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    assert error_values(err.value)["PropertyName"] == "nodeAgentSKUId"


def test_agent_os_must_match_the_image_os(standin, image):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-win", image.id, agent="batch.node.windows amd64"))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    values = error_values(err.value)
    assert values["PropertyName"] == "nodeAgentSKUId" and "windows" in values["Reason"] and "linux" in values["Reason"]


def test_agent_that_does_not_support_the_base_image_leaves_nodes_unusable(standin, image):
    # the image's base is Ubuntu 22.04 (jammy); the 24.04 agent does not list it
    client = standin.batch()
    client.create_pool(pool_options("p-lineage", image.id, nodes=2, agent="batch.node.ubuntu 24.04"))
    pool = wait_pool(client, "p-lineage")
    assert pool.current_dedicated_nodes == 2 and not pool.resize_errors
    nodes = list(client.list_nodes("p-lineage"))
    assert {n.state for n in nodes} == {"unusable"}
    [error] = nodes[0].errors
    assert error.code == "NodeAgentUnusable" and "0001-com-ubuntu-server-jammy" in error.message
    [counts] = list(client.list_pool_node_counts())
    assert counts.dedicated.unusable == 2


def test_marketplace_image_and_agent_pairing(standin):
    client = standin.batch()
    client.create_pool(pool_options("p-mkt", nodes=1, marketplace=True, start_task=False))
    assert wait_pool(client, "p-mkt").current_dedicated_nodes == 1
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-mkt2", nodes=1, marketplace=True, agent="batch.node.ubuntu 24.04"))
    assert err.value.error.code == "InvalidPropertyValue" and error_values(err.value)["PropertyName"] == "nodeAgentSKUId"


def test_supported_images_list_the_agents_and_lineages(standin):
    images = list(standin.batch().list_supported_images())
    by = {(i.image_reference.publisher, i.image_reference.offer, i.image_reference.sku): i for i in images}
    jammy = by[("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2")]
    assert jammy.node_agent_sku_id == "batch.node.ubuntu 22.04" and jammy.os_type == "linux"
    assert jammy.verification_type == "verified" and jammy.batch_support_end_of_life
    assert by[("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts")].node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert by[("canonical", "ubuntu-24_04-lts", "server")].node_agent_sku_id == "batch.node.ubuntu 24.04"
    ws = by[("microsoftwindowsserver", "windowsserver", "2022-datacenter-g2")]
    assert ws.node_agent_sku_id == "batch.node.windows amd64" and ws.os_type == "windows"
    assert ("microsoftwindowsserver", "windowsserver", "2022-datacenter-core") in by
    verified = list(standin.batch().list_supported_images(filter="verificationType eq 'verified'"))
    assert verified and all(i.verification_type == "verified" for i in verified)


# --- resize timeout, quotas, faults --------------------------------------------------------------------

def test_resize_timeout_below_five_minutes_is_refused(standin, image):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-to", image.id, resize_timeout=datetime.timedelta(minutes=4)))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    assert error_values(err.value)["PropertyName"] == "resizeTimeout"


def test_allocation_longer_than_resize_timeout_times_out(standin, image):
    set_quotas(standin, dedicatedCoreQuota=2000,
               dedicatedCoreQuotaPerVMFamily=[{"name": "standardDSv3Family", "coreQuota": 2000}])
    client = standin.batch()
    client.create_pool(pool_options("p-slow", image.id, nodes=300, resize_timeout=datetime.timedelta(minutes=5)))
    pool = wait_pool(client, "p-slow", settled=False)
    assert 0 < pool.current_dedicated_nodes < 300 and pool.target_dedicated_nodes == 300
    [err] = pool.resize_errors
    assert err.code == "AllocationTimedout" and "PT5M" in err.message
    assert len(list(client.list_nodes("p-slow"))) == pool.current_dedicated_nodes


def test_vm_series_core_quota_limits_the_pool(standin, image):
    # seeded account: standardDSv5Family 100 cores -> 25 x Standard_D4s_v5
    client = standin.batch()
    client.create_pool(pool_options("p-quota", image.id, nodes=30, vm_size="Standard_D4s_v5"))
    pool = wait_pool(client, "p-quota", settled=False)
    assert pool.current_dedicated_nodes == 25
    [err] = pool.resize_errors
    assert err.code == "AccountVMSeriesCoreQuotaReached"
    assert "standardDSv5Family" in err.message and "100" in err.message and "25 of 30" in err.message
    values = {v.name: v.value for v in err.error_values}
    assert values["CoreQuota"] == "100" and values["CoresRequested"] == "120"


def test_account_core_quota_limits_the_pool(standin, image):
    set_quotas(standin, dedicatedCoreQuota=40)
    client = standin.batch()
    client.create_pool(pool_options("p-total", image.id, nodes=24, vm_size="Standard_D2s_v3"))
    pool = wait_pool(client, "p-total", settled=False)
    assert pool.current_dedicated_nodes == 20
    [err] = pool.resize_errors
    assert err.code == "AccountCoreQuotaReached" and "40" in err.message


def test_pool_quota(standin, image):
    set_quotas(standin, poolQuota=2)
    client = standin.batch()
    client.create_pool(pool_options("q1", image.id, nodes=0))
    client.create_pool(pool_options("q2", image.id, nodes=0))
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("q3", image.id, nodes=0))
    assert err.value.status_code == 409 and err.value.error.code == "PoolQuotaReached"


def test_resize_error_fault_leaves_fewer_nodes(standin, image):
    standin.control.add_fault("resize_error", match={"pool_regex": "^p-fault$"}, code="AllocationFailed",
                              share=0.5, message="Injected: allocation failed for lack of capacity.")
    client = standin.batch()
    client.create_pool(pool_options("p-fault", image.id, nodes=6))
    pool = wait_pool(client, "p-fault", settled=False)
    assert pool.current_dedicated_nodes == 3
    [err] = pool.resize_errors
    assert err.code == "AllocationFailed" and err.message == "Injected: allocation failed for lack of capacity."


def test_start_task_failures_and_unusable_nodes_by_fault(standin, image):
    standin.control.add_fault("start_task_failed", match={"pool_regex": "p-flaky"}, share=0.25)
    standin.control.add_fault("node_unusable", match={"pool_regex": "p-flaky"}, nodes=1)
    client = standin.batch()
    client.create_pool(pool_options("p-flaky", image.id, nodes=8))
    wait_pool(client, "p-flaky")
    nodes = list(client.list_nodes("p-flaky"))
    states = sorted(n.state for n in nodes)
    assert states.count("starttaskfailed") == 2 and states.count("unusable") == 1 and states.count("idle") == 5
    failed = next(n for n in nodes if n.state == "starttaskfailed")
    info = failed.start_task_info
    assert info.result == "failure" and info.exit_code == 1 and info.failure_info.category == "usererror"
    unusable = next(n for n in nodes if n.state == "unusable")
    assert unusable.errors
    [counts] = list(client.list_pool_node_counts())
    assert (counts.dedicated.start_task_failed, counts.dedicated.unusable, counts.dedicated.idle) == (2, 1, 5)


def test_update_and_replace_pool_properties(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("p-upd", image.id, nodes=1))
    wait_pool(client, "p-upd", settled=False)
    etag = client.get_pool("p-upd").etag
    client.update_pool("p-upd", bm.BatchPoolUpdateOptions(metadata=[bm.BatchMetadataItem(name="k", value="v")]))
    pool = client.get_pool("p-upd")
    assert [(m.name, m.value) for m in pool.metadata] == [("k", "v")] and pool.etag != etag
    assert pool.start_task is not None  # PATCH keeps what it does not name
    # the image can change only while the pool is empty
    other = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(virtual_machine_image_id=image.id),
        node_agent_sku_id="batch.node.ubuntu 24.04")
    with pytest.raises(HttpResponseError) as err:
        client.update_pool("p-upd", bm.BatchPoolUpdateOptions(virtual_machine_configuration=other))
    assert err.value.status_code == 409 and error_values(err.value)["PropertyName"] == "virtualMachineConfiguration"
    client.replace_pool_properties("p-upd", bm.BatchPoolReplaceOptions(application_package_references=[],
                                                                       metadata=[]))
    pool = client.get_pool("p-upd")
    assert pool.start_task is None and not pool.metadata


def test_pools_survive_a_restart_and_keep_allocating(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("p-restart", image.id, nodes=3))
    before = client.get_pool("p-restart")
    standin.restart(kill=True)  # no graceful shutdown: what was committed must be enough
    client = standin.batch()
    pool = wait_pool(client, "p-restart")
    assert pool.creation_time == before.creation_time and pool.etag == before.etag
    assert pool.current_dedicated_nodes == 3
    ids = [n.id for n in client.list_nodes("p-restart")]
    standin.restart(kill=True)
    assert [n.id for n in standin.batch().list_nodes("p-restart")] == ids


def test_unpinned_image_floats_so_a_later_scale_out_mixes_versions(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("p-float", image.definition_id, nodes=2))   # no /versions/...
    wait_pool(client, "p-float")
    assert {n.virtual_machine_info.image_reference.exact_version for n in client.list_nodes("p-float")} == {"1.0.0"}
    build_image_version(standin, tag="next", version="1.1.0")
    client.begin_resize_pool("p-float", bm.BatchPoolResizeOptions(target_dedicated_nodes=4),
                             polling_interval=POLL).result()
    versions = sorted(n.virtual_machine_info.image_reference.exact_version for n in client.list_nodes("p-float"))
    assert versions == ["1.0.0", "1.0.0", "1.1.0", "1.1.0"]


# -- the whole pool body ---------------------------------------------------------------------------------------

def _raw(client, method: str, path: str, body: dict | None = None):
    """A request through the SDK's own pipeline (auth, endpoint) with a raw JSON body."""
    from azure.core.rest import HttpRequest

    return client.send_request(HttpRequest(method, path, json=body, params={"api-version": "2025-06-01"},
                                           headers={"content-type": "application/json; odata=minimalmetadata"}))


def _subnet(standin, vnet: str = "vnet-batch", name: str = "pools") -> str:
    sub = standin.endpoints["demo"]["subscription_id"]
    return (f"/subscriptions/{sub}/resourceGroups/rg-batch-images/providers/Microsoft.Network/virtualNetworks/"
            f"{vnet}/subnets/{name}")


def full_body(standin, pool_id: str) -> dict:
    """A pool body that sets every property of the 2025-06-01 BatchPoolCreateOptions (and every one of the 12
    under virtualMachineConfiguration, the 7 of the start task)."""
    mi = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
          "Microsoft.ManagedIdentity/userAssignedIdentities/pool-id")
    return {
        "id": pool_id, "displayName": "Every property", "vmSize": "Standard_D4s_v3",
        "virtualMachineConfiguration": {
            "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                               "sku": "22_04-lts-gen2", "version": "latest"},
            "nodeAgentSKUId": "batch.node.ubuntu 22.04",
            "windowsConfiguration": {"enableAutomaticUpdates": False},
            "dataDisks": [{"lun": 0, "caching": "readwrite", "diskSizeGB": 128, "storageAccountType": "premium_lrs"}],
            "licenseType": "Windows_Server",
            "containerConfiguration": {"type": "dockerCompatible", "containerImageNames": ["busybox:1.36"],
                                       "containerRegistries": [{"registryServer": "contoso.azurecr.io",
                                                                "identityReference": {"resourceId": mi}}]},
            "diskEncryptionConfiguration": {"targets": ["osdisk", "temporarydisk"]},
            "nodePlacementConfiguration": {"policy": "zonal"},
            "extensions": [{"name": "mon", "publisher": "Microsoft.Azure.Monitor", "type": "AzureMonitorLinuxAgent",
                            "typeHandlerVersion": "1.0", "autoUpgradeMinorVersion": True,
                            "enableAutomaticUpgrade": True, "settings": {"a": "b"}}],
            "osDisk": {"ephemeralOSDiskSettings": {"placement": "CacheDisk"}, "caching": "readonly",
                       "managedDisk": {"storageAccountType": "standard_lrs"}, "diskSizeGB": 64,
                       "writeAcceleratorEnabled": False},
            "securityProfile": {"securityType": "trustedLaunch", "encryptionAtHost": True,
                                "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}},
            "serviceArtifactReference": {"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                                               "providers/Microsoft.Compute/galleries/g/serviceArtifacts/sa/"
                                               "vmArtifactsProfiles/p"},
        },
        "resizeTimeout": "PT20M", "targetDedicatedNodes": 1, "targetLowPriorityNodes": 1,
        "enableAutoScale": False, "enableInterNodeCommunication": True,
        "networkConfiguration": {"subnetId": _subnet(standin), "dynamicVNetAssignmentScope": "none",
                                 "publicIPAddressConfiguration": {"provision": "nopublicipaddresses"},
                                 "enableAcceleratedNetworking": True},
        "startTask": {"commandLine": "/bin/bash -c 'echo ready'",
                      "containerSettings": {"imageName": "busybox:1.36", "containerRunOptions": "--rm",
                                            "workingDirectory": "taskWorkingDirectory"},
                      "resourceFiles": [{"httpUrl": "https://example.blob.core.windows.net/c/setup.sh",
                                         "filePath": "setup.sh", "fileMode": "0755"}],
                      "environmentSettings": [{"name": "STAGE", "value": "prod"}],
                      "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
                      "maxTaskRetryCount": 2, "waitForSuccess": True},
        "applicationPackageReferences": [{"applicationId": "tool", "version": "1.0"}],
        "taskSlotsPerNode": 16, "taskSchedulingPolicy": {"nodeFillType": "pack"},
        "userAccounts": [{"name": "runner", "password": "not-a-secret-1!", "elevationLevel": "nonadmin",
                          "linuxUserConfiguration": {"uid": 1001, "gid": 1001}}],
        "metadata": [{"name": "owner", "value": "team-a"}],
        "mountConfiguration": [{"azureFileShareConfiguration": {
            "accountName": "acct", "azureFileUrl": "https://acct.file.core.windows.net/share",
            "accountKey": "a2V5", "relativeMountPath": "share", "mountOptions": "-o vers=3.0"}}],
        "upgradePolicy": {"mode": "automatic", "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
    }


def _subset(sent, got, path="") -> list[str]:
    """Where `got` differs from `sent` (every key sent must come back with the same value)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [path]
        return [d for k, v in sent.items() for d in _subset(v, got.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [path]
        return [d for i, (a, b) in enumerate(zip(sent, got)) for d in _subset(a, b, f"{path}[{i}]")]
    return [] if sent == got else [f"{path}: {sent!r} != {got!r}"]


def test_every_pool_property_round_trips_through_a_get(standin):
    client = standin.batch()
    body = full_body(standin, "p-every")
    assert _raw(client, "POST", "/pools", body).status_code == 201
    got = _raw(client, "GET", "/pools/p-every").json()
    assert _subset(body, got) == []
    # and the typed SDK reads it back unchanged
    pool = client.get_pool("p-every")
    vmc = pool.virtual_machine_configuration
    assert vmc.os_disk.ephemeral_os_disk_settings.placement == "CacheDisk"
    assert vmc.container_configuration.container_image_names == ["busybox:1.36"]
    assert pool.network_configuration.subnet_id == body["networkConfiguration"]["subnetId"]
    assert pool.start_task.environment_settings[0].name == "STAGE" and pool.task_slots_per_node == 16
    assert pool.resize_timeout == datetime.timedelta(minutes=20)
    # and the SDK's own create of the same body round-trips too
    opts = bm.BatchPoolCreateOptions({**body, "id": "p-every-sdk"})
    client.create_pool(opts)
    again = _raw(client, "GET", "/pools/p-every-sdk").json()
    assert _subset({**body, "id": "p-every-sdk"}, again) == []


def test_an_unknown_pool_property_is_refused(standin):
    client = standin.batch()
    body = full_body(standin, "p-unknown")
    body["identity"] = {"type": "UserAssigned"}      # an ARM-only property: the data plane's model has no identity
    with pytest.raises(HttpResponseError) as err:
        _raw(client, "POST", "/pools", body)
    assert err.value.status_code == 400 and err.value.error.code == "InvalidRequestBody"
    values = error_values(err.value)
    assert values["PropertyName"] == "identity" and "does not exist on type" in values["Reason"]
    assert list(client.list_pools()) == []


@pytest.mark.parametrize("vm_size, slots, ok", [
    ("Standard_D2s_v3", 8, True), ("Standard_D2s_v3", 9, False), ("Standard_D96s_v5", 256, True),
    ("Standard_D96s_v5", 257, False), ("Standard_D2s_v3", 0, False)])
def test_task_slots_per_node_limit_is_four_per_vcpu_up_to_256(standin, vm_size, slots, ok):
    client = standin.batch()
    opts = pool_options("p-slots", nodes=0, marketplace=True, vm_size=vm_size, task_slots_per_node=slots)
    if ok:
        client.create_pool(opts)
        assert client.get_pool("p-slots").task_slots_per_node == slots
        return
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(opts)
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    assert error_values(err.value)["PropertyName"] == "taskSlotsPerNode"


def _net(subnet_id: str) -> bm.NetworkConfiguration:
    return bm.NetworkConfiguration(subnet_id=subnet_id)


def test_a_malformed_subnet_id_is_refused(standin):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(pool_options("p-net", nodes=0, marketplace=True, network_configuration=_net("pools")))
    assert err.value.status_code == 400
    assert error_values(err.value)["PropertyName"] == "networkConfiguration.subnetId"


def test_the_subnet_must_exist_in_the_account_region(standin):
    client = standin.batch()
    client.create_pool(pool_options("p-net", nodes=0, marketplace=True, network_configuration=_net(_subnet(standin))))
    for sid in (_subnet(standin, "vnet-northeurope"), _subnet(standin, name="missing")):
        with pytest.raises(HttpResponseError) as err:
            client.create_pool(pool_options("p-net2", nodes=0, marketplace=True, network_configuration=_net(sid)))
        assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
        assert error_values(err.value)["PropertyName"] == "networkConfiguration.subnetId"


def test_patch_changes_start_task_and_metadata_any_time_but_empty_only_fields_need_an_empty_pool(standin):
    client = standin.batch()
    client.create_pool(pool_options("p-patch", nodes=1, marketplace=True))
    wait_pool(client, "p-patch")
    client.update_pool("p-patch", bm.BatchPoolUpdateOptions(
        start_task=bm.BatchStartTask(command_line="/bin/bash -c 'echo v2'"),
        metadata=[bm.BatchMetadataItem(name="owner", value="team-b")],
        application_package_references=[bm.BatchApplicationPackageReference(application_id="tool")]))
    pool = client.get_pool("p-patch")
    assert pool.start_task.command_line == "/bin/bash -c 'echo v2'" and pool.metadata[0].value == "team-b"
    assert pool.application_package_references[0].application_id == "tool"
    for change in ({"display_name": "renamed"}, {"task_slots_per_node": 2}, {"enable_inter_node_communication": True}):
        with pytest.raises(ResourceExistsError) as err:
            client.update_pool("p-patch", bm.BatchPoolUpdateOptions(**change))
        assert err.value.error.code == "OperationInvalidForCurrentState"
    with pytest.raises(HttpResponseError) as err:
        _raw(client, "PATCH", "/pools/p-patch", {"enableAutoScale": True})
    assert err.value.status_code == 400 and err.value.error.code == "InvalidRequestBody"
