"""VM sizes against Resource SKUs (REST-shaped dicts, as ResourceSkus_List returns them) and Batch account quotas."""
from __future__ import annotations

import pytest

from batch_images.rules import vm_sizes
from batch_images.rules.vm_sizes import PoolDemand

GIB = 1024 ** 3


def sku(name: str, vcpus: int = 2, *, location: str = "westeurope", gens: str = "V1,V2", family: str = "standardDSv5Family",
        zones: tuple = ("1", "2", "3"), restrictions: list | None = None, **caps: str) -> dict:
    """One virtualMachines entry in the REST shape (capability values are strings, as Azure sends them)."""
    capabilities = {"vCPUs": str(vcpus), "HyperVGenerations": gens, "MaxResourceVolumeMB": "0",
                    "EphemeralOSDiskSupported": "False", **caps}
    return {"resourceType": "virtualMachines", "name": name, "tier": "Standard", "size": name.split("_", 1)[1],
            "family": family, "locations": [location],
            "locationInfo": [{"location": location, "zones": list(zones), "zoneDetails": []}],
            "capabilities": [{"name": k, "value": v} for k, v in capabilities.items()],
            "restrictions": restrictions or []}


WESTEUROPE = [
    sku("Standard_D2s_v5"), sku("Standard_D4s_v5", 4),
    sku("Standard_A2_v2", gens="V1", family="standardAv2Family"),
    sku("Standard_M8ms", 8, family="standardMSFamily", TrustedLaunchDisabled="True"),
    sku("Standard_DC2as_v5", family="standardDCASv5Family", gens="V2", ConfidentialComputingType="SNP"),
    sku("Standard_D2s_v3", family="standardDSv3Family", MaxResourceVolumeMB=str(16 * 1024),
        CachedDiskBytes=str(50 * GIB), EphemeralOSDiskSupported="True",
        SupportedEphemeralOSDiskPlacements="ResourceDisk,CacheDisk"),
    {"resourceType": "disks", "name": "Premium_LRS", "locations": ["westeurope"]},  # not a VM size: ignored
]


def region(skus=WESTEUROPE, location="westeurope") -> vm_sizes.RegionSkus:
    return vm_sizes.region_skus(location, skus)


def test_parse_sku_reads_azures_capabilities():
    facts = region().get("standard_d2s_v3")
    assert (facts.name, facts.vcpus, facts.generations, facts.family) == ("Standard_D2s_v3", 2, ("V1", "V2"),
                                                                           "standardDSv3Family")
    assert facts.cached_disk_bytes == 50 * GIB and facts.resource_disk_bytes == 16 * GIB
    assert facts.ephemeral_placements == ("ResourceDisk", "CacheDisk") and facts.zones == ("1", "2", "3")
    assert region().get("Standard_M8ms").trusted_launch_disabled
    assert region().get("Standard_DC2as_v5").confidential_type == "SNP"
    assert region().get("Premium_LRS") is None
    assert "HyperVGenerations V1" in vm_sizes.describe(region().get("Standard_A2_v2"))


def test_zones_of_a_region_are_the_union_of_its_sizes_zones():
    assert region().zones == ("1", "2", "3")
    westus = region([sku("Standard_D2s_v5", location="westus", zones=())], "westus")
    assert westus.zones == ()


def test_size_fits_an_image():
    assert vm_sizes.size_problems("pools[0].vm_size", "Standard_D2s_v5", region(), generation="V2") == []
    assert vm_sizes.size_problems("pools[0].vm_size", "standard_d2s_v5", region(), generation="V1",
                                  security_type="TrustedLaunch") == []


@pytest.mark.parametrize("size, generation, security, words", [
    ("Standard_A2_v2", "V2", "Standard", "capability HyperVGenerations = V1"),
    ("Standard_M8ms", "V2", "TrustedLaunch", "capability TrustedLaunchDisabled = True"),
    ("Standard_D2s_v5", "V2", "ConfidentialVM", "no capability ConfidentialComputingType"),
    ("Standard_Nope", "V2", "Standard", "westeurope offers no VM size Standard_Nope"),
], ids=["gen1-only-size-for-gen2-image", "trusted-launch-disabled", "confidential-image-on-standard-size",
        "unknown-size"])
def test_size_refused_names_the_capability(size, generation, security, words):
    [err] = vm_sizes.size_problems("pools[0].template.vmSize", size, region(), generation=generation,
                                   security_type=security)
    assert err.field == "pools[0].template.vmSize" and err.value == size
    assert words in err.reason and err.fix


def test_confidential_size_takes_a_confidential_image():
    assert vm_sizes.size_problems("f", "Standard_DC2as_v5", region(), generation="V2",
                                  security_type="ConfidentialVM") == []


def _restricted(kind: str, zones=None) -> dict:
    info = {"locations": ["westeurope"], **({"zones": zones} if zones else {})}
    return sku("Standard_D2s_v5", restrictions=[{"type": kind, "values": ["westeurope"], "restrictionInfo": info,
                                                 "reasonCode": "NotAvailableForSubscription"}])


@pytest.mark.parametrize("restriction, refused", [
    (_restricted("Location"), True),
    (_restricted("Zone", ["1", "2", "3"]), True),   # every zone of the region: nowhere to put a node
    (_restricted("Zone", ["1"]), False),            # zones 2 and 3 remain for a regional pool
], ids=["by-location", "every-zone", "one-zone"])
def test_restricted_size(restriction, refused):
    problems = vm_sizes.size_problems("build.vm_size", "Standard_D2s_v5", region([restriction]), generation="V2")
    assert bool(problems) == refused
    if refused:
        assert "NotAvailableForSubscription" in problems[0].reason and "Azure support" in problems[0].fix


def test_restriction_in_another_region_does_not_count():
    other = sku("Standard_D2s_v5", restrictions=[{"type": "Location", "values": ["northeurope"],
                                                  "restrictionInfo": {"locations": ["northeurope"]},
                                                  "reasonCode": "NotAvailableForSubscription"}])
    assert vm_sizes.size_problems("f", "Standard_D2s_v5", region([other]), generation="V2") == []


def test_image_security_type():
    tl = {"security_type": "TrustedLaunch"}
    cvm = {"properties": {"features": [{"name": "SecurityType", "value": "ConfidentialVM"}]}}
    supported = {"properties": {"features": [{"name": "SecurityType", "value": "TrustedLaunchSupported"}]}}
    assert vm_sizes.image_security_type(tl, None) == "TrustedLaunch"
    assert vm_sizes.image_security_type({"security_type": "Standard"}, cvm) == "ConfidentialVM"
    assert vm_sizes.image_security_type({"security_type": "Standard"}, supported) == "Standard"


def _ephemeral(placement: str, disk_gb: int | None = None) -> dict:
    os_disk = {"ephemeralOSDiskSettings": {"placement": placement}, **({"diskSizeGB": disk_gb} if disk_gb else {})}
    return {"vmSize": "x", "virtualMachineConfiguration": {"osDisk": os_disk}}


def test_ephemeral_os_disk_fits_the_cache():
    d2s_v3 = region().get("Standard_D2s_v3")  # 50 GiB cache, 16 GiB resource disk
    assert vm_sizes.ephemeral_os_disk_problems("pools[0].template", {"vmSize": "x"}, d2s_v3, 30) == []
    assert vm_sizes.ephemeral_os_disk_problems("pools[0].template", _ephemeral("CacheDisk"), d2s_v3, 30) == []
    assert vm_sizes.ephemeral_os_disk_problems("pools[0].template", _ephemeral("cachedisk"), d2s_v3, 50) == []


@pytest.mark.parametrize("size, template, os_gb, words", [
    ("Standard_D2s_v3", _ephemeral("CacheDisk"), 64, "capability CachedDiskBytes: 50 GiB"),
    ("Standard_D2s_v3", _ephemeral("CacheDisk", 128), 30, "(128 GiB)"),
    ("Standard_D2s_v3", _ephemeral("ResourceDisk"), 30, "capability MaxResourceVolumeMB: 16 GiB"),
    ("Standard_D2s_v5", _ephemeral("CacheDisk"), 30, "SupportedEphemeralOSDiskPlacements = none"),
], ids=["cache-too-small", "disk-size-over-cache", "resource-disk-too-small", "no-ephemeral-support"])
def test_ephemeral_os_disk_refused(size, template, os_gb, words):
    [err] = vm_sizes.ephemeral_os_disk_problems("pools[1].template", template, region().get(size), os_gb)
    assert err.field == "pools[1].template.virtualMachineConfiguration.osDisk.ephemeralOSDiskSettings.placement"
    assert words in err.reason and "ephemeral-os-disks" in err.reason and "managed OS disk" in err.fix


@pytest.mark.parametrize("size, slots, refused", [
    ("Standard_D2s_v5", 8, False), ("Standard_D2s_v5", 9, True), ("Standard_D4s_v5", 16, False),
    ("Standard_D4s_v5", 17, True), ("Standard_D2s_v5", None, False)])
def test_task_slots_per_node_limit(size, slots, refused):
    template = {"vmSize": size, **({"taskSlotsPerNode": slots} if slots else {})}
    err = vm_sizes.task_slots_problem("pools[0].template", template, region().get(size))
    assert (err is not None) == refused
    if refused:
        assert err.field == "pools[0].template.taskSlotsPerNode" and err.value == slots
        assert "capability vCPUs" in err.reason and f"at most {4 * region().get(size).vcpus}" in err.fix


def test_task_slots_never_over_256():
    big = vm_sizes.parse_sku(sku("Standard_D96s_v5", 96), "westeurope")
    assert vm_sizes.task_slots_problem("t", {"taskSlotsPerNode": 256}, big) is None
    assert "at most 256" in vm_sizes.task_slots_problem("t", {"taskSlotsPerNode": 257}, big).reason


def test_zrs_needs_zones():
    assert vm_sizes.zrs_problem("storage_account_type", "westeurope", ("1", "2", "3"), True) is None
    assert vm_sizes.zrs_problem("storage_account_type", "nowhere", (), False) is None  # no answer: not judged
    err = vm_sizes.zrs_problem("target_regions[2].storage_account_type", "westus", (), True)
    assert err.field == "target_regions[2].storage_account_type" and err.value == "Standard_ZRS"
    assert "westus has no availability zones" in err.reason and "Standard_LRS" in err.fix


# --- quotas ---------------------------------------------------------------------------------------------------------


def account(dedicated=500, low=100, families=None, enforced=True, pools=100) -> dict:
    return {"properties": {"poolAllocationMode": "BatchService", "dedicatedCoreQuota": dedicated,
                           "lowPriorityCoreQuota": low, "dedicatedCoreQuotaPerVMFamilyEnforced": enforced,
                           "dedicatedCoreQuotaPerVMFamily": families if families is not None else [
                               {"name": "standardDSv5Family", "coreQuota": 100},
                               {"name": "standardDSv3Family", "coreQuota": 50}],
                           "poolQuota": pools, "activeJobAndJobScheduleQuota": 300}}


def listing(pool_id: str, size: str, target: int, current: int | None = None, low: int = 0) -> dict:
    return {"id": pool_id, "vm_size": size, "target_dedicated_nodes": target,
            "current_dedicated_nodes": target if current is None else current, "target_low_priority_nodes": low,
            "current_low_priority_nodes": 0}


def demand(size="Standard_D2s_v3", dedicated=4, low=0, name="ubuntu") -> PoolDemand:
    return PoolDemand("pools[0].target_dedicated_nodes", "pools[0].target_low_priority_nodes", name, size, dedicated,
                      low)


def test_two_pools_fit_the_family_quota():
    # the serving pool's 12 x 2 cores and the canary's 12 x 2 cores: 48 of the DSv3 family's 50
    problems, notes = vm_sizes.core_quota_problems("batchimages", account(), [listing("ubuntu-1", "Standard_D2s_v3", 12)],
                                                   [demand(dedicated=12)], region())
    assert problems == [] and "standardDSv3Family 48 of 50" in notes[0]


def test_two_pools_over_the_family_quota_is_refused():
    # 13 + 13 nodes x 2 cores = 52 > 50: each pool alone would fit
    problems, _ = vm_sizes.core_quota_problems("batchimages", account(), [listing("ubuntu-1", "Standard_D2s_v3", 13)],
                                               [demand(dedicated=13)], region())
    [err] = problems
    assert err.field == "pools[0].target_dedicated_nodes" and err.value == 13
    assert "standardDSv3Family core quota (dedicatedCoreQuotaPerVMFamily) of 50" in err.reason
    assert "26 are held" in err.reason and "needs 26 more" in err.reason
    assert "request a higher quota" in err.fix and "batch-quota-limit" in err.fix and "pools" in err.fix


def test_total_dedicated_quota_and_unlisted_family():
    problems, _ = vm_sizes.core_quota_problems("a", account(dedicated=10, enforced=False),
                                               [listing("other", "Standard_D4s_v5", 1, current=2)],
                                               [demand("Standard_D2s_v5", dedicated=2)], region())
    assert [e.reason.split(";")[0] for e in problems] == [
        "the Batch account a has a dedicated core quota (dedicatedCoreQuota) of 10"]  # 8 held (current 2 x 4) + 4
    problems, _ = vm_sizes.core_quota_problems("a", account(), [], [demand("Standard_M8ms", dedicated=1)], region())
    assert "standardMSFamily core quota (dedicatedCoreQuotaPerVMFamily) of 0" in problems[0].reason


def test_low_priority_quota_and_pools_on_sizes_the_region_does_not_list():
    problems, notes = vm_sizes.core_quota_problems(
        "a", account(low=10), [listing("old", "Standard_Gone", 4), listing("spot", "Standard_D2s_v5", 0, low=3)],
        [PoolDemand("d", "pools[0].template.targetLowPriorityNodes", "ubuntu", "Standard_D2s_v5", 0, 3)], region())
    [err] = problems
    assert err.field == "pools[0].template.targetLowPriorityNodes" and "lowPriorityCoreQuota) of 10" in err.reason
    assert any("Standard_Gone" in n and "not counted" in n for n in notes)


def test_user_subscription_account_is_not_judged():
    problems, notes = vm_sizes.core_quota_problems(
        "a", {"properties": {"poolAllocationMode": "UserSubscription"}}, [], [demand(dedicated=1000)], region())
    assert problems == [] and "subscription's vCPU quota" in notes[0]


def test_pool_quota_counts_both_pools():
    assert vm_sizes.pool_quota_problem("a", account(pools=100), 50, ["p"] * 50) is None
    err = vm_sizes.pool_quota_problem("a", account(pools=100), 51, [f"p{i}" for i in range(50)])
    assert err.field == "params.pools" and "poolQuota) of 100" in err.reason and "101 at once" in err.reason
    assert "roll at most 49 pool(s)" in err.fix and "batch-quota-limit" in err.fix
    assert vm_sizes.pool_quota_problem("a", {"properties": {}}, 100, ["p"]) is not None  # default 100


def test_job_quota_counts_one_smoke_test_job_per_new_pool():
    acct = {"properties": {"activeJobAndJobScheduleQuota": 10}}
    assert vm_sizes.job_quota_problem("a", acct, 8, ["p1", "p2"]) is None
    err = vm_sizes.job_quota_problem("a", acct, 9, ["p1", "p2"])
    assert err.field == "params.pools" and err.value == ["p1", "p2"]
    assert "activeJobAndJobScheduleQuota) of 10; 9 are in use" in err.reason and "roll at most 1 smoke-tested" in err.fix
    assert vm_sizes.job_quota_problem("a", {"properties": {}}, 299, ["p"]) is None  # default 300
    assert vm_sizes.job_quota_problem("a", {"properties": {}}, 300, ["p"]) is not None
