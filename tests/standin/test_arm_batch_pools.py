"""Microsoft.Batch/batchAccounts/pools on ARM, through the unmodified azure-mgmt-batch SDK, over the same pools as the
data plane (azure-batch): a pool made through ARM is the pool the data plane lists and reads, and back; the
ARM-only identity reaches the data plane's read-only BatchPool.identity."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.batch import models as mm

from include.azure_standin import client as standin_client

from batch_helpers import JAMMY_AGENT, account, demo, pool_options, wait_pool

FAST = 0.05
IDENTITY = ("/subscriptions/{sub}/resourceGroups/rg-batch-images/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/id-pools")


def _mgmt(standin):
    return standin_client.batch_management_client(standin.endpoints)


def _arm_pool(standin, **props) -> mm.Pool:
    d = demo(standin)
    ident = IDENTITY.format(sub=standin.endpoints["subscription_id"])
    base = dict(
        vm_size="Standard_D2s_v3",
        deployment_configuration=mm.DeploymentConfiguration(virtual_machine_configuration=mm.VirtualMachineConfiguration(
            image_reference=mm.ImageReference(publisher="canonical", offer="0001-com-ubuntu-server-jammy",
                                              sku="22_04-lts-gen2", version="latest"),
            node_agent_sku_id=JAMMY_AGENT,
            os_disk=mm.OSDisk(caching="ReadOnly"),
            container_configuration=mm.ContainerConfiguration(type="DockerCompatible",
                                                              container_image_names=["busybox"]))),
        scale_settings=mm.ScaleSettings(fixed_scale=mm.FixedScaleSettings(target_dedicated_nodes=2)),
        network_configuration=mm.NetworkConfiguration(
            subnet_id=d["subnet_id"],
            public_ip_address_configuration=mm.PublicIPAddressConfiguration(provision="NoPublicIPAddresses")),
        start_task=mm.StartTask(command_line="/bin/true", user_identity=mm.UserIdentity(
            auto_user=mm.AutoUserSpecification(scope="Pool", elevation_level="Admin"))),
        task_slots_per_node=4,
        task_scheduling_policy=mm.TaskSchedulingPolicy(node_fill_type="Pack"),
        metadata=[mm.MetadataItem(name="owner", value="tests")],
        identity=mm.BatchPoolIdentity(type="UserAssigned", user_assigned_identities={ident: mm.UserAssignedIdentities()}),
        tags={"team": "hpc"},
    )
    base.update(props)
    return mm.Pool(**base)


def test_arm_pool_is_the_data_plane_pool(standin):
    d, mgmt, batch = demo(standin), _mgmt(standin), standin.batch()
    rg, acct = d["resource_group"], account(standin)
    created = mgmt.pool.create(rg, acct, "p-arm", _arm_pool(standin))
    assert created.provisioning_state == "Succeeded" and created.etag
    assert created.scale_settings.fixed_scale.target_dedicated_nodes == 2
    # the data plane sees the same pool, in its own spelling
    dp = batch.get_pool("p-arm")
    assert dp.vm_size.lower() == "standard_d2s_v3" and dp.target_dedicated_nodes == 2 and dp.task_slots_per_node == 4
    vmc = dp.virtual_machine_configuration
    assert vmc.node_agent_sku_id == JAMMY_AGENT and vmc.os_disk.caching == "readonly"
    assert vmc.container_configuration.type == "dockerCompatible"
    assert dp.network_configuration.subnet_id == d["subnet_id"]
    assert dp.network_configuration.public_ip_address_configuration.ip_address_provisioning_type == "nopublicipaddresses"
    assert dp.start_task.user_identity.auto_user.scope == "pool"
    assert dp.task_scheduling_policy.node_fill_type == "pack"
    [ua] = dp.identity.user_assigned_identities
    assert ua.resource_id.endswith("/userAssignedIdentities/id-pools") and ua.client_id and ua.principal_id
    assert "p-arm" in {p.id for p in batch.list_pools()}
    # and ARM reads it back with its identity and tags
    got = mgmt.pool.get(rg, acct, "p-arm")
    assert got.tags == {"team": "hpc"} and got.identity.type == "UserAssigned"
    [(rid, ids)] = got.identity.user_assigned_identities.items()
    assert rid == ua.resource_id and ids.client_id == ua.client_id
    assert got.deployment_configuration.virtual_machine_configuration.os_disk.caching == "ReadOnly"
    assert got.start_task.user_identity.auto_user.elevation_level == "Admin"
    assert got.network_configuration.public_ip_address_configuration.provision == "NoPublicIPAddresses"


def test_data_plane_pool_is_readable_through_arm_and_deleted_through_it(standin):
    d, mgmt, batch = demo(standin), _mgmt(standin), standin.batch()
    rg, acct = d["resource_group"], account(standin)
    batch.create_pool(pool_options("p-dp", marketplace=True, nodes=1, start_task=False))
    wait_pool(batch, "p-dp", timeout=60)
    got = mgmt.pool.get(rg, acct, "p-dp")
    assert got.allocation_state == "Steady" and got.current_dedicated_nodes == 1
    assert got.scale_settings.fixed_scale.target_dedicated_nodes == 1
    assert got.deployment_configuration.virtual_machine_configuration.node_agent_sku_id == JAMMY_AGENT
    assert got.identity is None and got.inter_node_communication == "Disabled"
    assert {p.name for p in mgmt.pool.list_by_batch_account(rg, acct)} == {"p-dp"}
    mgmt.pool.begin_delete(rg, acct, "p-dp", polling_interval=FAST).result()
    assert "p-dp" not in {p.id for p in batch.list_pools()}


def test_arm_autoscale_pool(standin):
    mgmt, batch = _mgmt(standin), standin.batch()
    rg, acct = demo(standin)["resource_group"], account(standin)
    mgmt.pool.create(rg, acct, "p-auto", _arm_pool(standin, scale_settings=mm.ScaleSettings(
        auto_scale=mm.AutoScaleSettings(formula="$TargetDedicatedNodes = 1;", evaluation_interval="PT5M")),
        identity=None, network_configuration=None))
    dp = batch.get_pool("p-auto")
    assert dp.enable_auto_scale and dp.auto_scale_formula == "$TargetDedicatedNodes = 1;"
    assert mgmt.pool.get(rg, acct, "p-auto").scale_settings.auto_scale.evaluation_interval.total_seconds() == 300


@pytest.mark.parametrize("change, code", [
    (dict(vm_size="Standard_Nope"), "InvalidPropertyValue"),
    (dict(identity=mm.BatchPoolIdentity(type="UserAssigned", user_assigned_identities={"/not/an/identity": {}})),
     "InvalidPropertyValue"),
])
def test_arm_pool_refusals_make_nothing(standin, change, code):
    mgmt, batch = _mgmt(standin), standin.batch()
    rg, acct = demo(standin)["resource_group"], account(standin)
    with pytest.raises(HttpResponseError) as e:
        mgmt.pool.create(rg, acct, "p-bad", _arm_pool(standin, **change))
    assert e.value.status_code == 400 and e.value.error.code == code
    assert "p-bad" not in {p.id for p in batch.list_pools()}
