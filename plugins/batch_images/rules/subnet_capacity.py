"""Subnet capacity for a blue/green roll: the old and the new pool run side by side in one subnet, so its free
addresses must hold both at their target sizes. Pure: no Azure or Airflow import.

Sources:
- Azure reserves five addresses in every subnet (network, gateway, two for DNS, broadcast): virtual network FAQ,
  learn.microsoft.com/azure/virtual-network/virtual-networks-faq ("Are there any restrictions on using IP addresses
  within these subnets?").
- Batch takes one private IP from the pool's subnet per compute node, and the subnet must have enough unassigned IP
  addresses for the pool's target nodes; public IPs (BatchManaged, the default, or UserManaged) come from outside the
  subnet and take no subnet address: "Create an Azure Batch pool in a virtual network",
  learn.microsoft.com/azure/batch/batch-virtual-network.
"""
from __future__ import annotations

import ipaddress

from .errors import InvalidInput

AZURE_RESERVED_PER_SUBNET = 5   # virtual network FAQ
SUBNET_IPS_PER_NODE = 1         # batch-virtual-network: one private IP per node, public IPs outside the subnet


def subnet_size(address_prefix: str) -> int:
    """Usable addresses of an IPv4 subnet "10.0.0.0/24" (256 - 5 = 251). ValueError for an invalid prefix."""
    net = ipaddress.ip_network(address_prefix, strict=False)
    return max(0, net.num_addresses - AZURE_RESERVED_PER_SUBNET)


def check_subnet_capacity(pool_index: int, subnet_id: str, address_prefix: str, ips_in_use: int,
                          old_pool_nodes: int, new_pool_nodes: int,
                          old_pool_current_nodes: int | None = None) -> InvalidInput | None:
    """None when the subnet has room for the new pool beside the old one; else the refusal to raise.

    address_prefix: the subnet's CIDR; ips_in_use: its IP configurations now (the old pool's nodes among them);
    old_pool_nodes: the serving pool's target dedicated + Spot nodes (0 without one); new_pool_nodes: the new pool's
    target (for autoscale: the evaluated target or the template's maximum); old_pool_current_nodes: how many of the
    serving pool's nodes hold an address now (counted in ips_in_use; default: all of old_pool_nodes). The serving
    pool's nodes still to come are needed too: both pools must fit at their targets.
    """
    field = f"pools[{pool_index}].template.networkConfiguration.subnetId"
    usable = subnet_size(address_prefix)
    free = max(0, usable - int(ips_in_use))
    current = int(old_pool_nodes if old_pool_current_nodes is None else old_pool_current_nodes)
    old_missing = max(0, int(old_pool_nodes) - current)
    need = (int(new_pool_nodes) + old_missing) * SUBNET_IPS_PER_NODE
    if need <= free:
        return None
    return InvalidInput(
        field, subnet_id,
        f"the subnet {address_prefix} has {free} free addresses ({usable} usable after Azure's "
        f"{AZURE_RESERVED_PER_SUBNET} reserved, {ips_in_use} in use) but the roll needs {need}: the new pool's "
        f"{new_pool_nodes} nodes beside the serving pool's {old_pool_nodes} (one private IP per Batch node)",
        f"use a larger subnet (at least /{_prefix_for(int(ips_in_use) + need)}), or lower the node targets of the "
        "template so both pools fit while they overlap")


def _prefix_for(addresses: int) -> int:
    """The longest IPv4 prefix whose subnet holds `addresses` usable addresses (never longer than /29)."""
    prefix = 29
    while prefix > 0 and (2 ** (32 - prefix)) - AZURE_RESERVED_PER_SUBNET < addresses:
        prefix -= 1
    return prefix


def subnet_problems(pool_index: int, subnet_id: str, subnet: dict | None, vnet_location: str | None,
                    account_region: str | None, old_pool: dict | None, new_pool_nodes: int) -> list[InvalidInput]:
    """Every reason a template's ``networkConfiguration.subnetId`` cannot take this roll, before anything is created.

    :param subnet: the subnet as ARM's Subnets_Get returns it (None: it does not exist).
    :param vnet_location: its virtual network's region; :param account_region: the Batch account's region (Batch
        needs them equal: "Create an Azure Batch pool in a virtual network", "The VNet must be in the same
        subscription and region as the Batch account").
    :param old_pool: the serving pool's Batch JSON (``targetDedicatedNodes`` ..., ``currentDedicatedNodes`` ...) or
        None; :param new_pool_nodes: the new pool's node count (for autoscale: the larger of its canary and what
        the serving pool runs now, the formula's current answer).
    """
    field = f"pools[{pool_index}].template.networkConfiguration.subnetId"
    if subnet is None:
        return [InvalidInput(field, subnet_id, "no such subnet (ARM answered 404)",
                             "create the subnet, or give the id of an existing one (az network vnet subnet list)")]
    problems = []
    if vnet_location and account_region and _region(vnet_location) != _region(account_region):
        problems.append(InvalidInput(field, subnet_id, f"the subnet's virtual network is in {vnet_location} but the "
                                     f"Batch account is in {account_region}; Batch needs them in one region",
                                     "use a subnet of a virtual network in the Batch account's region"))
    props = subnet.get("properties") or {}
    prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
    if prefix:
        old = old_pool or {}
        capacity = check_subnet_capacity(
            pool_index, subnet_id, prefix, len(props.get("ipConfigurations") or []),
            int(old.get("targetDedicatedNodes") or 0) + int(old.get("targetLowPriorityNodes") or 0), new_pool_nodes,
            int(old.get("currentDedicatedNodes") or 0) + int(old.get("currentLowPriorityNodes") or 0))
        if capacity is not None:
            problems.append(capacity)
    return problems


def _region(name: str) -> str:
    return name.replace(" ", "").lower()
