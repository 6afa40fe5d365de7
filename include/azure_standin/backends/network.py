"""Microsoft.Network virtual networks and subnets, as far as Batch pools in a VNet and the pipeline's subnet capacity
check need them: VirtualNetworks_Get / CreateOrUpdate / Delete / List / ListAll and Subnets_Get / CreateOrUpdate /
Delete / List (shapes of the Network RP spec, api-version 2024-10-01 as azure-mgmt-network 30.0.0 sends; nothing
here depends on the version).

Documents: virtual_network and subnet (keys: the lower-cased ARM ids). A VNet's `properties.subnets` is rendered from
the subnet documents on every read. A subnet document keeps its VNet's region in `_sim.location` (ARM subnets have no
location of their own; the LRO answer and the Batch backend need it).

`properties.ipConfigurations` of a subnet is derived on read, never stored: one `{id}` per NIC ip configuration in the
subscription that names the subnet (backends/vms.py) and one per node of a Batch pool whose
`networkConfiguration.subnetId` is the subnet (Batch gives each node one private IP from the pool's subnet: "Create
an Azure Batch pool in a virtual network", learn.microsoft.com/azure/batch/batch-virtual-network).

Rules and codes (Network RP): a subnet's range must lie inside one of the VNet's address prefixes
(NetcfgSubnetRangeOutsideVnet), subnets of a VNet must not overlap (NetcfgSubnetRangesOverlap), a subnet or VNet with
IP configurations in use cannot be deleted (InUseSubnetCannotBeDeleted); those codes are as Azure reports them in public
issues, the messages follow Azure's wording loosely. The smallest IPv4 subnet is /29 (virtual network FAQ,
learn.microsoft.com/azure/virtual-network/virtual-networks-faq "How small and how large can virtual networks and
subnets be?"); its refusal code and an unparsable prefix's code (NetcfgInvalidSubnet / InvalidAddressPrefix) are guesses.
"""
from __future__ import annotations

import copy
import ipaddress
from typing import Any

from ..core.errors import ArmError, RequiredParameterMissing
from .arm_common import (
    arm_id, canonical_region, check_location, get_in_rg, id_is, list_in, new_uuid, require_rg,
)

T_VNET = "Microsoft.Network/virtualNetworks"
T_SUBNET = "Microsoft.Network/virtualNetworks/subnets"
VNET_KIND = "virtual_network"
SUBNET_KIND = "subnet"
BATCH_POOL_KIND = "batch_pool"   # the data plane's pool documents (backends/batch_pools.py): read only here
SMALLEST_PREFIX = 29             # virtual network FAQ: the smallest supported IPv4 subnet is /29


def vnet_id(sub: str, rg: str, name: str) -> str:
    return arm_id(sub, rg, T_VNET, name)


def subnet_id(sub: str, rg: str, vnet: str, name: str) -> str:
    return arm_id(sub, rg, T_SUBNET, vnet, name)


def _netcfg(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def _network(prefix: Any, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(prefix), strict=True)
    except ValueError:
        raise _netcfg("InvalidAddressPrefix", f"Value '{prefix}' of {field} is not a valid address prefix "
                                              "(CIDR notation with the host bits zero, e.g. 10.0.0.0/24).")


# ---------------------------------------------------------------------------------------------------
# IP use (NICs and Batch nodes)
# ---------------------------------------------------------------------------------------------------

def _pool_node_count(pool: dict) -> int:
    return int(pool.get("currentDedicatedNodes") or 0) + int(pool.get("currentLowPriorityNodes") or 0)


def _pools_in(ctx, sid: str) -> list[dict]:
    want = sid.lower()
    return [p for p in ctx.store.list(BATCH_POOL_KIND)
            if str(((p.get("networkConfiguration") or {}).get("subnetId")) or "").rstrip("/").lower() == want]


def subnet_ips_in_use(ctx, sid: str) -> int:
    """Private IPs of the subnet `sid` held by Batch nodes: the current dedicated + Spot/low-priority nodes of every
    pool (any account) whose networkConfiguration.subnetId is `sid` (one private IP per node). NICs not counted."""
    return sum(_pool_node_count(p) for p in _pools_in(ctx, sid))


def _ip_configurations(ctx, sid: str) -> list[dict]:
    want = sid.lower()
    out = []
    sub = (id_is(sid, T_SUBNET) or {}).get("subscription", "")
    for nic in ctx.store.list("network_interface", f"/subscriptions/{sub}/"):
        for ip in (nic.get("properties") or {}).get("ipConfigurations") or []:
            ref = (((ip.get("properties") or {}).get("subnet")) or {}).get("id") or ""
            if ref.rstrip("/").lower() == want:
                out.append({"id": f"{nic['id']}/ipConfigurations/{ip.get('name') or 'ipconfig1'}"})
    for pool in _pools_in(ctx, sid):
        account = (pool.get("_sim") or {}).get("account", "batch")
        # Batch (BatchService allocation mode) puts the nodes' NICs in a subscription and group it manages; the
        # shape of these ids is a guess, only their number matters to a capacity check.
        base = (f"/subscriptions/{sub}/resourceGroups/azurebatch-{account}/providers/Microsoft.Compute/"
                f"virtualMachineScaleSets/{pool['id']}/virtualMachines")
        out.extend({"id": f"{base}/{i}/networkInterfaces/nic/ipConfigurations/ipconfig"}
                   for i in range(_pool_node_count(pool)))
    return out


# ---------------------------------------------------------------------------------------------------
# subnets
# ---------------------------------------------------------------------------------------------------

def _render_subnet(ctx, doc: dict) -> dict:
    body = copy.deepcopy(doc)
    ips = _ip_configurations(ctx, doc["id"])
    if ips:
        body["properties"]["ipConfigurations"] = ips
    else:
        body["properties"].pop("ipConfigurations", None)
    return body


def _check_subnet_prefix(ctx, vnet: dict, name: str, prefix: Any) -> str:
    if not prefix:
        raise RequiredParameterMissing("addressPrefix")
    net = _network(prefix, "addressPrefix")
    if net.version == 4 and net.prefixlen > SMALLEST_PREFIX:
        raise _netcfg("NetcfgInvalidSubnet", f"Subnet '{name}' is not valid: the prefix {prefix} is smaller than /29, "
                                             "the smallest subnet Azure supports. Use a /29 or larger subnet.")
    spaces = [_network(p, "addressSpace.addressPrefixes")
              for p in (vnet["properties"].get("addressSpace") or {}).get("addressPrefixes") or []]
    if not any(net.version == s.version and net.subnet_of(s) for s in spaces):
        raise _netcfg("NetcfgSubnetRangeOutsideVnet",
                      f"Subnet '{name}' is not valid because its IP address range {prefix} is outside the IP address "
                      f"range of virtual network '{vnet['name']}' ({', '.join(map(str, spaces)) or 'none'}).")
    for other in ctx.store.list(SUBNET_KIND, vnet["id"] + "/subnets/"):
        if other["name"].lower() == name.lower():
            continue
        onet = _network(other["properties"]["addressPrefix"], "addressPrefix")
        if onet.version == net.version and onet.overlaps(net):
            raise _netcfg("NetcfgSubnetRangesOverlap",
                          f"Subnet '{name}' is not valid because its IP address range {prefix} overlaps with that of "
                          f"subnet '{other['name']}' ({onet}) in virtual network '{vnet['name']}'.")
    return str(net)


def _put_subnet_doc(ctx, vnet: dict, name: str, props: dict) -> tuple[dict, bool]:
    sid = f"{vnet['id']}/subnets/{name}"
    existing = ctx.store.get(SUBNET_KIND, sid)
    prefix = _check_subnet_prefix(ctx, vnet, name, props.get("addressPrefix"))
    kept = {k: v for k, v in props.items() if k not in ("addressPrefix", "provisioningState", "ipConfigurations")}
    body = {
        "id": sid, "name": name, "type": T_SUBNET,
        "etag": f'W/"{new_uuid()}"',
        "properties": {"addressPrefix": prefix, **kept, "provisioningState": "Succeeded"},
        "_sim": {"location": vnet["location"]},
    }
    body["properties"].setdefault("privateEndpointNetworkPolicies", "Disabled")
    body["properties"].setdefault("privateLinkServiceNetworkPolicies", "Enabled")
    ctx.store.put(SUBNET_KIND, sid, body)
    return body, existing is None


def _vnet(ctx, sub: str, rg: str, vnet: str) -> dict:
    return get_in_rg(ctx, VNET_KIND, T_VNET, sub, rg, vnet)


def get_subnet_doc(ctx, sub: str, rg: str, vnet: str, name: str) -> dict:
    """Subnets_Get: the subnet with its ipConfigurations in use; ARM's 404 NotFound when the VNet or subnet is
    missing."""
    _vnet(ctx, sub, rg, vnet)
    return _render_subnet(ctx, get_in_rg(ctx, SUBNET_KIND, T_SUBNET, sub, rg, vnet, name))


def list_subnets(ctx, sub: str, rg: str | None, vnet: str) -> list[dict]:
    v = _vnet(ctx, sub, rg, vnet)
    return [_render_subnet(ctx, s) for s in ctx.store.list(SUBNET_KIND, v["id"] + "/subnets/")]


def create_subnet(ctx, sub: str, rg: str, vnet: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """Subnets_CreateOrUpdate: returns (body, created); provisioningState Succeeded at once (subnet writes are quick)."""
    v = _vnet(ctx, sub, rg, vnet)
    body, created = _put_subnet_doc(ctx, v, name, (req or {}).get("properties") or {})
    return _render_subnet(ctx, body), created


def _refuse_in_use(ctx, doc: dict, vnet_name: str) -> None:
    ips = _ip_configurations(ctx, doc["id"])
    if ips:
        raise _netcfg("InUseSubnetCannotBeDeleted",
                      f"Subnet {doc['name']} is in use by {len(ips)} IP configuration(s) (e.g. {ips[0]['id']}) and "
                      f"cannot be deleted. In order to delete the subnet, delete all the resources within the subnet "
                      f"(virtual network {vnet_name}).")


def prepare_delete_subnet(ctx, sub: str, rg: str, vnet: str, name: str) -> tuple[str, str] | None:
    """(store key, location) of a subnet that may be deleted; None when it does not exist."""
    require_rg(ctx, sub, rg)
    doc = ctx.store.get(SUBNET_KIND, subnet_id(sub, rg, vnet, name))
    if doc is None:
        return None
    _refuse_in_use(ctx, doc, vnet)
    return doc["id"], doc["_sim"]["location"]


# ---------------------------------------------------------------------------------------------------
# virtual networks
# ---------------------------------------------------------------------------------------------------

def _render_vnet(ctx, doc: dict) -> dict:
    body = copy.deepcopy(doc)
    body["properties"]["subnets"] = [_render_subnet(ctx, s) for s in ctx.store.list(SUBNET_KIND, doc["id"] + "/subnets/")]
    return body


def get_vnet(ctx, sub: str, rg: str, name: str) -> dict:
    return _render_vnet(ctx, _vnet(ctx, sub, rg, name))


def list_vnets(ctx, sub: str, rg: str | None = None) -> list[dict]:
    return [_render_vnet(ctx, v) for v in list_in(ctx, VNET_KIND, T_VNET, sub, rg)]


def create_vnet(ctx, sub: str, rg: str, name: str, req: dict | None) -> tuple[dict, bool]:
    """VirtualNetworks_CreateOrUpdate: returns (body, created). `properties.subnets`, when sent, is the VNet's whole
    subnet list (subnets left out are deleted, as ARM's PUT of a VNet does; one in use is refused)."""
    require_rg(ctx, sub, rg)
    req = req or {}
    props = req.get("properties") or {}
    vid = vnet_id(sub, rg, name)
    existing = ctx.store.get(VNET_KIND, vid)
    loc = check_location(req.get("location") or (existing or {}).get("location"), T_VNET)
    if existing is not None and canonical_region(existing["location"]) != loc:
        raise _netcfg("InvalidResourceLocation", f"The resource '{name}' already exists in location "
                                                 f"'{existing['location']}'. A resource with the same name cannot be "
                                                 f"created in location '{loc}'.")
    prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
    if not prefixes:
        raise RequiredParameterMissing("addressSpace.addressPrefixes")
    prefixes = [str(_network(p, "addressSpace.addressPrefixes")) for p in prefixes]
    kept = {k: v for k, v in props.items() if k not in ("addressSpace", "subnets", "provisioningState", "resourceGuid")}
    body = {
        "id": vid, "name": name, "type": T_VNET, "location": loc, "tags": req.get("tags") or {},
        "etag": f'W/"{new_uuid()}"',
        "properties": {"addressSpace": {"addressPrefixes": prefixes}, **kept,
                       "resourceGuid": ((existing or {}).get("properties") or {}).get("resourceGuid") or new_uuid(),
                       "provisioningState": "Succeeded", "enableDdosProtection": bool(props.get("enableDdosProtection"))},
    }
    ctx.store.put(VNET_KIND, vid, body)
    if "subnets" in props:
        wanted = {str(s.get("name")).lower(): s for s in props.get("subnets") or []}
        for old in ctx.store.list(SUBNET_KIND, vid + "/subnets/"):
            if old["name"].lower() not in wanted:
                _refuse_in_use(ctx, old, name)
                ctx.store.delete(SUBNET_KIND, old["id"])
        for s in wanted.values():
            if not s.get("name"):
                raise RequiredParameterMissing("subnets[].name")
            _put_subnet_doc(ctx, body, str(s["name"]), s.get("properties") or {})
    return _render_vnet(ctx, body), existing is None


def prepare_delete_vnet(ctx, sub: str, rg: str, name: str) -> tuple[str, str] | None:
    """(store key, location) of a VNet that may be deleted (its subnets go at once); None when it does not exist."""
    require_rg(ctx, sub, rg)
    doc = ctx.store.get(VNET_KIND, vnet_id(sub, rg, name))
    if doc is None:
        return None
    subnets = ctx.store.list(SUBNET_KIND, doc["id"] + "/subnets/")
    for s in subnets:
        _refuse_in_use(ctx, s, name)
    for s in subnets:
        ctx.store.delete(SUBNET_KIND, s["id"])
    return doc["id"], doc["location"]


def put_vnet_doc(ctx, sub: str, rg: str, name: str, *, location: str, address_prefixes: list[str],
                 subnets: dict[str, str]) -> dict:
    """Seed helper: a VNet with `subnets` {name: addressPrefix}."""
    body, _ = create_vnet(ctx, sub, rg, name, {
        "location": location, "properties": {
            "addressSpace": {"addressPrefixes": address_prefixes},
            "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets.items()]}})
    return body


# ---------------------------------------------------------------------------------------------------
# for the Batch backend
# ---------------------------------------------------------------------------------------------------

def get_subnet(ctx, sid: str | None) -> dict | None:
    """The subnet `sid` (a full ARM subnet id, any case) as Subnets_Get returns it, plus a top-level "location": its
    VNet's region (canonical, e.g. "westeurope"); None when `sid` is not a subnet id or names no existing subnet."""
    p = id_is(sid, T_SUBNET)
    if p is None:
        return None
    doc = ctx.store.get(SUBNET_KIND, arm_id(p["subscription"], p["resource_group"], T_SUBNET, *p["names"]))
    if doc is None:
        return None
    body = _render_subnet(ctx, doc)
    body.pop("_sim", None)
    body["location"] = doc["_sim"]["location"]
    return body
