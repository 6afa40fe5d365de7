"""Microsoft.Network virtual networks and subnets on the stand-in, through the unmodified azure-mgmt-network SDK:
the seeded demo VNets, create / read / list / delete, Azure's subnet rules, and the IP configurations a Batch pool's
nodes take in its subnet."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from include.azure_standin import client as standin_client

from batch_helpers import demo, pool_options, wait_pool

FAST = 0.05


def _net(standin):
    return standin_client.network_client(standin.endpoints)


def _code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None)


def test_seeded_vnets_and_subnets(standin):
    net, d = _net(standin), demo(standin)
    rg = d["resource_group"]
    vnet = net.virtual_networks.get(rg, "vnet-batch")
    assert vnet.location == "westeurope" and vnet.address_space.address_prefixes == ["10.0.0.0/16"]
    assert {s.name: s.address_prefix for s in vnet.subnets} == {"pools": "10.0.0.0/24", "tiny": "10.0.1.0/29"}
    sub = net.subnets.get(rg, "vnet-batch", "pools")
    assert sub.id.lower() == d["subnet_id"].lower() and sub.provisioning_state == "Succeeded"
    assert not sub.ip_configurations
    ne = net.subnets.get(rg, "vnet-northeurope", "pools")
    assert ne.id.lower() == d["subnet_ne_id"].lower()
    assert net.virtual_networks.get(rg, "vnet-northeurope").location == "northeurope"
    assert {v.name for v in net.virtual_networks.list_all()} >= {"vnet-batch", "vnet-northeurope"}


def test_create_list_delete_vnet_and_subnet(standin):
    net = _net(standin)
    rg = demo(standin)["resource_group"]
    vnet = net.virtual_networks.begin_create_or_update(
        rg, "vnet-test", {"location": "westeurope", "address_space": {"address_prefixes": ["10.9.0.0/16"]}},
        polling_interval=FAST).result()
    assert vnet.provisioning_state == "Succeeded" and not vnet.subnets
    sub = net.subnets.begin_create_or_update(rg, "vnet-test", "a", {"address_prefix": "10.9.1.0/24"},
                                             polling_interval=FAST).result()
    assert sub.address_prefix == "10.9.1.0/24"
    assert [s.name for s in net.subnets.list(rg, "vnet-test")] == ["a"]
    net.subnets.begin_delete(rg, "vnet-test", "a", polling_interval=FAST).result()
    assert list(net.subnets.list(rg, "vnet-test")) == []
    net.virtual_networks.begin_delete(rg, "vnet-test", polling_interval=FAST).result()
    assert "vnet-test" not in {v.name for v in net.virtual_networks.list(rg)}


@pytest.mark.parametrize("prefix, code", [
    ("10.8.0.0/24", "NetcfgSubnetRangeOutsideVnet"),
    ("10.0.0.128/25", "NetcfgSubnetRangesOverlap"),
    ("10.0.2.0/30", "NetcfgInvalidSubnet"),
    ("10.0.2.1/24", "InvalidAddressPrefix"),
])
def test_subnet_rules(standin, prefix, code):
    net = _net(standin)
    rg = demo(standin)["resource_group"]
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_create_or_update(rg, "vnet-batch", "bad", {"address_prefix": prefix},
                                           polling_interval=FAST).result()
    assert e.value.status_code == 400 and _code(e.value) == code
    assert "bad" not in {s.name for s in net.subnets.list(rg, "vnet-batch")}


def test_pool_nodes_hold_ip_configurations_and_block_subnet_delete(standin):
    net, d = _net(standin), demo(standin)
    rg = d["resource_group"]
    batch = standin.batch()
    batch.create_pool(pool_options("p-vnet", marketplace=True, nodes=3, start_task=False,
                                   network_configuration={"subnetId": d["subnet_id"]}))
    wait_pool(batch, "p-vnet", timeout=60)
    sub = net.subnets.get(rg, "vnet-batch", "pools")
    assert len(sub.ip_configurations) == 3
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_delete(rg, "vnet-batch", "pools", polling_interval=FAST).result()
    assert _code(e.value) == "InUseSubnetCannotBeDeleted"
    assert len(net.subnets.get(rg, "vnet-batch", "tiny").ip_configurations or []) == 0
