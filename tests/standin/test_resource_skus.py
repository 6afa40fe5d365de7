"""Resource SKUs on the stand-in through the unmodified SDKs: azure-mgmt-compute's resource_skus.list (sizes, their
capabilities, zones per region, subscription restrictions), and the rules that read the same table: a Batch pool on a
size that cannot boot its image's generation, or not offered in the account's region, gets no nodes; an ARM VM of a
size not available in its region is refused with SkuNotAvailable."""
from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError

from batch_helpers import build_image_version, pool_options, set_quotas, wait_pool
from test_build_vm import _body as vm_body


def _caps(sku) -> dict[str, str]:
    return {c.name: c.value for c in sku.capabilities}


def _skus(standin, location: str) -> dict:
    return {s.name: s for s in standin.compute().resource_skus.list(filter=f"location eq '{location}'")}


def _restrict(standin, location: str, name: str, **extra) -> dict:
    return standin.control.call("PUT", "/arm/sku_restrictions", {"location": location, "name": name, **extra})


def _av2_quota(standin) -> None:
    """Cores for the Av2 family (the seeded account lists per-family quotas without it): the quota is not what
    these tests look at."""
    set_quotas(standin, dedicatedCoreQuotaPerVMFamily=[{"name": "standardAv2Family", "coreQuota": 20},
                                                      {"name": "standardDSv3Family", "coreQuota": 20}])


def _provider_error(err) -> dict:
    values = {v.name: v.value for v in err.error_values or []}
    assert values["Provider Error Json Truncated"] == "False"
    return json.loads(values["Provider Error Json"])["error"]


def test_skus_of_a_zonal_region_carry_capabilities_and_three_zones(standin):
    skus = _skus(standin, "westeurope")
    d2 = skus["Standard_D2s_v3"]
    assert (d2.resource_type, d2.tier, d2.size, d2.family, d2.locations) == (
        "virtualMachines", "Standard", "D2s_v3", "standardDSv3Family", ["westeurope"])
    assert [(i.location, i.zones) for i in d2.location_info] == [("westeurope", ["1", "2", "3"])]
    caps = _caps(d2)
    assert caps["vCPUs"] == "2" and caps["MemoryGB"] == "8" and caps["HyperVGenerations"] == "V1,V2"
    assert caps["MaxResourceVolumeMB"] == "16384" and caps["CachedDiskBytes"] == str(50 * 1024 ** 3)
    assert caps["EphemeralOSDiskSupported"] == "True"
    assert caps["SupportedEphemeralOSDiskPlacements"] == "ResourceDisk,CacheDisk"
    assert d2.restrictions == []
    # a size without a temp disk, a Gen1-only size, a confidential one, one without Trusted Launch
    d4v5 = _caps(skus["Standard_D4s_v5"])
    assert d4v5["MaxResourceVolumeMB"] == "0" and d4v5["EphemeralOSDiskSupported"] == "False"
    assert "CachedDiskBytes" not in d4v5 and "SupportedEphemeralOSDiskPlacements" not in d4v5
    assert _caps(skus["Standard_A2_v2"])["HyperVGenerations"] == "V1"
    dc = _caps(skus["Standard_DC2as_v5"])
    assert dc["ConfidentialComputingType"] == "SNP" and dc["HyperVGenerations"] == "V2"
    assert _caps(skus["Standard_M8ms"])["TrustedLaunchDisabled"] == "True"
    assert "TrustedLaunchDisabled" not in caps and "ConfidentialComputingType" not in caps
    for name in ("Standard_D2s_v3", "Standard_D4s_v3", "Standard_D2s_v5", "Standard_D4s_v5", "Standard_D96s_v5",
                 "Standard_DS2_v2"):
        assert name in skus


def test_regions_without_zones_and_sizes_a_region_does_not_offer(standin):
    westus = _skus(standin, "westus")
    assert westus and all(i.zones == [] for s in westus.values() for i in s.location_info)
    assert all(i.zones == [] for s in _skus(standin, "northcentralus").values() for i in s.location_info)
    assert "Standard_DC2as_v5" not in _skus(standin, "westus2")
    everywhere = list(standin.compute().resource_skus.list())
    assert {"westeurope", "westus", "northcentralus"} <= {s.locations[0] for s in everywhere}


def test_a_subscription_restriction_shows_in_the_list(standin):
    _restrict(standin, "westeurope", "Standard_D4s_v3")
    _restrict(standin, "westeurope", "Standard_D2s_v5", zones=["1"])
    skus = _skus(standin, "westeurope")
    [loc] = skus["Standard_D4s_v3"].restrictions
    # "values" is read as a mapping key: the model's .values is the mapping method
    assert (loc.type, loc["values"], loc.reason_code) == ("Location", ["westeurope"], "NotAvailableForSubscription")
    assert loc.restriction_info.locations == ["westeurope"]
    [zone] = skus["Standard_D2s_v5"].restrictions
    assert (zone.type, zone.restriction_info.zones) == ("Zone", ["1"])
    assert _skus(standin, "northeurope")["Standard_D4s_v3"].restrictions == []


def test_a_gen1_only_size_gets_no_nodes_for_a_gen2_gallery_image(standin):
    img = build_image_version(standin, tag="gen2")
    _av2_quota(standin)
    client = standin.batch()
    client.create_pool(pool_options("p-gen1-size", img.id, nodes=2, vm_size="Standard_A2_v2"))
    pool = wait_pool(client, "p-gen1-size", settled=False)
    assert (pool.allocation_state, pool.current_dedicated_nodes) == ("steady", 0)
    [err] = pool.resize_errors
    assert err.code == "AllocationFailed"
    assert err.message == "Desired number of dedicated nodes could not be allocated"
    provider = _provider_error(err)
    assert provider["code"] == "BadRequest"
    assert "The selected VM size 'Standard_A2_v2' cannot boot Hypervisor Generation '2'" in provider["message"]
    assert not list(client.list_nodes("p-gen1-size"))
    # the same image on a size that boots Gen2 allocates
    client.create_pool(pool_options("p-gen2-size", img.id, nodes=1, vm_size="Standard_D2s_v3"))
    pool = wait_pool(client, "p-gen2-size")
    assert pool.current_dedicated_nodes == 1 and not pool.resize_errors


def test_a_gen1_only_size_gets_no_nodes_for_a_gen2_marketplace_image(standin):
    _av2_quota(standin)
    client = standin.batch()
    client.create_pool(pool_options("p-gen1-mkt", nodes=1, vm_size="Standard_A4_v2", marketplace=True,
                                    start_task=False))
    pool = wait_pool(client, "p-gen1-mkt", settled=False)
    assert pool.current_dedicated_nodes == 0
    assert "cannot boot Hypervisor Generation '2'" in _provider_error(pool.resize_errors[0])["message"]


def test_a_pool_size_not_offered_in_the_account_region_gets_no_nodes(standin):
    _restrict(standin, "westeurope", "Standard_D4s_v3")
    img = build_image_version(standin, tag="restricted")
    client = standin.batch()
    client.create_pool(pool_options("p-restricted", img.id, nodes=1, vm_size="Standard_D4s_v3"))
    pool = wait_pool(client, "p-restricted", settled=False)
    assert pool.current_dedicated_nodes == 0
    [err] = pool.resize_errors
    provider = _provider_error(err)
    assert err.code == "AllocationFailed" and provider["code"] == "SkuNotAvailable"
    assert "is currently not available in location 'westeurope'" in provider["message"]


def test_a_vm_of_a_size_not_available_in_its_region_is_refused(standin):
    client = standin.compute()
    rg = standin.endpoints["demo"]["resource_group"]
    sub = standin.endpoints["subscription_id"]
    _restrict(standin, "westeurope", "Standard_D2s_v3")
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, "bvm-sku", vm_body(standin, "bvm-sku"))
    assert err.value.status_code == 409 and err.value.error.code == "SkuNotAvailable"
    assert (f"The requested size for resource '/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachines/bvm-sku' is currently not available in location 'westeurope' zones '' for "
            f"subscription '{sub}'") in err.value.error.message
    # a zone restriction refuses the VM that asks for that zone only
    standin.control.call("PUT", "/arm/sku_restrictions", {"location": "westeurope", "name": "Standard_D2s_v3",
                                                          "clear": True})
    _restrict(standin, "westeurope", "Standard_D2s_v3", zones=["2"])
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, "bvm-z2", vm_body(standin, "bvm-z2", zones=["2"]))
    assert err.value.error.code == "SkuNotAvailable" and "zones '2'" in err.value.error.message
    vm = client.virtual_machines.begin_create_or_update(rg, "bvm-z1", vm_body(standin, "bvm-z1", zones=["1"]),
                                                        polling_interval=0.05).result()
    assert vm.name == "bvm-z1"
