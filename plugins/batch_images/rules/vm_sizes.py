"""VM sizes against Azure's Resource SKUs: what a size can run, and whether a run's pools fit the Batch account.

Facts come from ``GET /subscriptions/{sub}/providers/Microsoft.Compute/skus?$filter=location eq '<region>'``
(ResourceSkus_List, azure-rest-api-specs ``Microsoft.Compute/ComputeRP/stable/2021-07-01/skus.json``), one
``virtualMachines`` entry per size, in the REST shape (camelCase): ``name``, ``family``, ``locationInfo[].zones``,
``capabilities: [{name, value}]`` (values are strings, named as ``az vm list-skus`` prints them) and
``restrictions: [{type: Location | Zone, values, restrictionInfo: {locations, zones}, reasonCode}]``.
:func:`parse_sku` turns one into :class:`SkuFacts`; :func:`region_skus` a region's list into :class:`RegionSkus`.

The checks return :class:`~batch_images.rules.errors.InvalidInput` problems (field, value, reason, fix); every
reason names the SKU capability (or account quota) that decided it, so the task log says why.

Pure: no Airflow, no Azure SDK.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import security as security_rules
from .errors import InvalidInput
from .ids import region_key as _region

GIB = 1024 ** 3
MIB = 1024 ** 2
RESTRICTED = "NotAvailableForSubscription"  # the reasonCode of a size the subscription cannot use
# Batch's task slots: at most 4 x the size's vCPUs and 256 (BatchPoolCreateOptions.taskSlotsPerNode in the Batch REST
# spec; learn.microsoft.com/azure/batch/batch-parallel-node-tasks: "the maximum is 4x cores or 256"). The stand-in's
# batch_pools._check_task_slots enforces the same rule.
MAX_TASK_SLOTS = 256
TASK_SLOTS_PER_VCPU = 4
DEFAULT_POOL_QUOTA = 100  # pools per Batch account: learn.microsoft.com/azure/batch/batch-quota-limit
DEFAULT_JOB_QUOTA = 300  # active jobs and job schedules per Batch account: the same page
QUOTA_PAGE = "learn.microsoft.com/azure/batch/batch-quota-limit"
EPHEMERAL_PAGE = "learn.microsoft.com/azure/virtual-machines/ephemeral-os-disks (Size requirements)"
LIST_SKUS = "az vm list-skus -l {region} --resource-type virtualMachines -o table"


@dataclass(frozen=True)
class SkuFacts:
    """One VM size in one region, as ResourceSkus_List describes it.

    ``vcpus``: the ``vCPUs`` capability; ``generations``: ``HyperVGenerations`` ("V1", "V2"; V1 when absent, as
    Azure treats a size that lists none); ``trusted_launch_disabled``: ``TrustedLaunchDisabled`` = True;
    ``confidential_type``: ``ConfidentialComputingType`` ("SNP", "TDX") or None; ``cached_disk_bytes``:
    ``CachedDiskBytes`` (0 when absent); ``resource_disk_bytes``: ``MaxResourceVolumeMB`` x MiB;
    ``ephemeral_placements``: ``SupportedEphemeralOSDiskPlacements`` (empty when ``EphemeralOSDiskSupported`` is
    not True); ``zones``: the region's ``locationInfo.zones``; ``restriction``: why the subscription cannot use it
    here (None: it can).
    """

    name: str
    family: str
    location: str
    vcpus: int
    generations: tuple[str, ...]
    trusted_launch_disabled: bool = False
    confidential_type: str | None = None
    cached_disk_bytes: int = 0
    resource_disk_bytes: int = 0
    ephemeral_placements: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    restriction: str | None = None


def _caps(sku: Mapping[str, Any]) -> dict[str, str]:
    return {str(c.get("name")): str(c.get("value")) for c in sku.get("capabilities") or [] if isinstance(c, Mapping)}


def _int(text: str | None) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0


def _restriction(sku: Mapping[str, Any], location: str, zones: Sequence[str]) -> str | None:
    """The subscription's restriction of the size in ``location``: by Location, or by Zone when every zone of the
    size there is restricted (a regional pool or VM can still use the others)."""
    for r in sku.get("restrictions") or []:
        if not isinstance(r, Mapping):
            continue
        info = r.get("restrictionInfo") or {}
        where = {_region(v) for v in list(r.get("values") or []) + list(info.get("locations") or [])}
        if where and location not in where:
            continue
        code = r.get("reasonCode") or RESTRICTED
        if r.get("type") == "Location":
            return f"restrictions: {code} (type Location, {location})"
        if r.get("type") == "Zone" and zones and set(zones) <= {str(z) for z in info.get("zones") or []}:
            return f"restrictions: {code} (type Zone, every zone of {location}: {', '.join(zones)})"
    return None


def parse_sku(sku: Mapping[str, Any], location: str) -> SkuFacts:
    """A ResourceSkus_List entry (REST shape) -> :class:`SkuFacts` for ``location``."""
    loc = _region(location)
    caps = _caps(sku)
    zones = tuple(sorted({str(z) for info in sku.get("locationInfo") or [] if _region(info.get("location")) == loc
                          for z in info.get("zones") or []}))
    ephemeral = caps.get("EphemeralOSDiskSupported", "").lower() == "true"
    placements = tuple(p.strip() for p in caps.get("SupportedEphemeralOSDiskPlacements", "").split(",") if p.strip())
    return SkuFacts(
        name=str(sku.get("name")), family=str(sku.get("family") or ""), location=loc, vcpus=_int(caps.get("vCPUs")),
        generations=tuple(g.strip().upper() for g in caps.get("HyperVGenerations", "V1").split(",") if g.strip()),
        trusted_launch_disabled=caps.get("TrustedLaunchDisabled", "").lower() == "true",
        confidential_type=caps.get("ConfidentialComputingType") or None,
        cached_disk_bytes=_int(caps.get("CachedDiskBytes")),
        resource_disk_bytes=_int(caps.get("MaxResourceVolumeMB")) * MIB,
        ephemeral_placements=placements if ephemeral else (), zones=zones,
        restriction=_restriction(sku, loc, zones))


@dataclass
class RegionSkus:
    """A region's VM sizes (lower-cased name -> facts) and its availability zones (the union of the sizes'
    ``locationInfo.zones``: a region without zones, such as westus, lists none on any size)."""

    location: str
    sizes: dict[str, SkuFacts] = field(default_factory=dict)

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(sorted({z for s in self.sizes.values() for z in s.zones}))

    def get(self, name: str | None) -> SkuFacts | None:
        return self.sizes.get(str(name or "").lower())


def region_skus(location: str, skus: Iterable[Mapping[str, Any]]) -> RegionSkus:
    """A region's ResourceSkus_List answer (virtualMachines entries, REST shape) -> :class:`RegionSkus`."""
    loc = _region(location)
    out = RegionSkus(loc)
    for sku in skus:
        if sku.get("resourceType", "virtualMachines") != "virtualMachines":
            continue
        locations = {_region(x) for x in sku.get("locations") or []}
        if locations and loc not in locations:
            continue
        facts = parse_sku(sku, loc)
        out.sizes[facts.name.lower()] = facts
    return out


def describe(s: SkuFacts) -> str:
    """One log line of the capabilities the checks read."""
    return (f"VM size {s.name} in {s.location}: vCPUs {s.vcpus}, HyperVGenerations {','.join(s.generations)}, "
            f"family {s.family}" + (", TrustedLaunchDisabled True" if s.trusted_launch_disabled else "")
            + (f", ConfidentialComputingType {s.confidential_type}" if s.confidential_type else "")
            + (f", ephemeral OS disk {','.join(s.ephemeral_placements)}" if s.ephemeral_placements else "")
            + (f", {s.restriction}" if s.restriction else ""))


# -- a size for an image ---------------------------------------------------------------------------------------


def image_security_type(decision: Mapping[str, Any] | None, definition: Mapping[str, Any] | None) -> str:
    """What the run's image asks of a VM size: ``TrustedLaunch`` when its pools (or build VM) run with Trusted Launch
    (the security decision, :func:`batch_images.rules.security.decide`) or the existing definition's ``SecurityType``
    is ``TrustedLaunch``; ``ConfidentialVM`` when that feature is ``ConfidentialVM``; else ``Standard``. (The
    ``...Supported`` features allow standard sizes.)"""
    feature = security_rules.definition_security_type(((definition or {}).get("properties") or {}).get("features"))
    if str(feature or "").lower() == security_rules.CONFIDENTIAL_VM.lower():
        return security_rules.CONFIDENTIAL_VM
    if (decision or {}).get("security_type") == security_rules.TRUSTED_LAUNCH or \
            str(feature or "").lower() == security_rules.TRUSTED_LAUNCH.lower():
        return security_rules.TRUSTED_LAUNCH
    return security_rules.STANDARD


def size_problems(field_: str, size: str, region: RegionSkus, *, generation: str,
                  security_type: str = "Standard", what: str = "the pool") -> list[InvalidInput]:
    """Why ``size`` cannot run this run's image in ``region`` (empty: it can).

    :param field_: the config path naming the size (``pools[0].vm_size``, ``pools[0].template.vmSize``,
        ``build.vm_size``); :param generation: the image's Hyper-V generation (``V1`` / ``V2``);
    :param security_type: ``Standard``, ``TrustedLaunch`` (the VM or pool runs with Trusted Launch) or
        ``ConfidentialVM`` (a ConfidentialVM image definition). Rules: the size is listed for the region and not
        restricted for the subscription (``NotAvailableForSubscription``); ``HyperVGenerations`` holds the image's
        generation (Azure: "The selected VM size ... cannot boot Hypervisor Generation ..."); Trusted Launch needs a
        size without ``TrustedLaunchDisabled`` (learn.microsoft.com/azure/virtual-machines/trusted-launch,
        "Virtual machines sizes"); a ConfidentialVM image needs a size with ``ConfidentialComputingType``
        (learn.microsoft.com/azure/confidential-computing/confidential-vm-overview, "Sizes").
    """
    loc = region.location
    sku = region.get(size)
    pick = f"choose a size {LIST_SKUS.format(region=loc)} lists for {loc}"
    if sku is None:
        return [InvalidInput(field_, size, f"{loc} offers no VM size {size} to this subscription (ResourceSkus_List "
                             f"for {loc} does not list it)", f"check the spelling, or {pick}")]
    if sku.restriction:
        return [InvalidInput(field_, size, f"the VM size {sku.name} is not available to this subscription in {loc} "
                             f"({sku.restriction})", f"{pick} without restrictions, or ask Azure support to enable "
                             f"{sku.name} in {loc} for the subscription")]
    out = []
    gen = str(generation or "V1").upper()
    if gen not in sku.generations:
        out.append(InvalidInput(field_, size, f"the VM size {sku.name} cannot boot a Hyper-V generation {gen} image "
                                f"(capability HyperVGenerations = {','.join(sku.generations)}), so {what} would get "
                                "no nodes", f"use a size whose HyperVGenerations lists {gen} (e.g. Standard_D2s_v5)"))
    if security_type == "TrustedLaunch" and sku.trusted_launch_disabled:
        out.append(InvalidInput(field_, size, f"the image runs with Trusted Launch, which the VM size {sku.name} does "
                                "not support (capability TrustedLaunchDisabled = True)",
                                "use a size without TrustedLaunchDisabled (e.g. Standard_D2s_v5)"))
    if security_type == "ConfidentialVM" and not sku.confidential_type:
        out.append(InvalidInput(field_, size, f"the image definition is ConfidentialVM, and the VM size {sku.name} is "
                                "not a confidential size (no capability ConfidentialComputingType)",
                                "use a confidential size (DCasv5 / ECasv5, e.g. Standard_DC2as_v5)"))
    return out


def ephemeral_os_disk_problems(field_: str, template: Mapping[str, Any], sku: SkuFacts,
                               os_disk_size_gb: Any) -> list[InvalidInput]:
    """A template's ephemeral OS disk (``virtualMachineConfiguration.osDisk.ephemeralOSDiskSettings.placement``;
    Batch's DiffDiskPlacement enum has ``CacheDisk`` only, azure-batch 15.1 / Batch REST 2025-06-01; ``ResourceDisk``
    is read too, as Compute's enum has it) on ``sku``: the size supports that placement
    (``SupportedEphemeralOSDiskPlacements``) and the cache (``CachedDiskBytes``) or resource disk
    (``MaxResourceVolumeMB``) holds the image's OS disk of ``os_disk_size_gb`` GiB (:data:`EPHEMERAL_PAGE`: the OS
    disk must fit in the chosen placement). ``field_`` names the template (``pools[0].template``)."""
    vmc = template.get("virtualMachineConfiguration") or {}
    os_disk = vmc.get("osDisk") or {}
    placement = (os_disk.get("ephemeralOSDiskSettings") or {}).get("placement")
    if not placement:
        return []
    path = f"{field_}.virtualMachineConfiguration.osDisk.ephemeralOSDiskSettings.placement"
    want = {"cachedisk": "CacheDisk", "resourcedisk": "ResourceDisk"}.get(str(placement).lower(), str(placement))
    fix_other = "use a managed OS disk (remove ephemeralOSDiskSettings), or a size whose cache holds the OS disk"
    if want not in sku.ephemeral_placements:
        have = ",".join(sku.ephemeral_placements) or "none (EphemeralOSDiskSupported = False)"
        return [InvalidInput(path, placement, f"the VM size {sku.name} has no ephemeral OS disk placement {want} "
                             f"(capability SupportedEphemeralOSDiskPlacements = {have}; {EPHEMERAL_PAGE})", fix_other)]
    size_gb = max(int(os_disk_size_gb or 0), int(os_disk.get("diskSizeGB") or 0))
    capacity, capability = ((sku.cached_disk_bytes, "CachedDiskBytes") if want == "CacheDisk"
                            else (sku.resource_disk_bytes, "MaxResourceVolumeMB"))
    if size_gb * GIB <= capacity:
        return []
    return [InvalidInput(path, placement, f"the image's OS disk ({size_gb} GiB) does not fit the {want} of the VM size "
                         f"{sku.name} (capability {capability}: {capacity / GIB:.0f} GiB; {EPHEMERAL_PAGE})", fix_other)]


def task_slots_problem(field_: str, template: Mapping[str, Any], sku: SkuFacts) -> InvalidInput | None:
    """``taskSlotsPerNode`` at most min(4 x the size's ``vCPUs``, 256) (source: :data:`MAX_TASK_SLOTS`)."""
    slots = template.get("taskSlotsPerNode")
    limit = min(TASK_SLOTS_PER_VCPU * sku.vcpus, MAX_TASK_SLOTS)
    if not isinstance(slots, int) or isinstance(slots, bool) or slots <= limit or sku.vcpus <= 0:
        return None
    return InvalidInput(f"{field_}.taskSlotsPerNode", slots, f"Batch allows at most {limit} task slots per node on "
                        f"{sku.name} (capability vCPUs = {sku.vcpus}: the limit is the smaller of 4 x vCPUs and "
                        f"{MAX_TASK_SLOTS}; learn.microsoft.com/azure/batch/batch-parallel-node-tasks)",
                        f"give at most {limit}, or a larger VM size")


# -- zone-redundant replicas -----------------------------------------------------------------------------------


def zrs_problem(field_: str, region: str, zones: Sequence[str], sizes_listed: bool) -> InvalidInput | None:
    """A ``Standard_ZRS`` replica in ``region`` needs availability zones there (Azure Compute Gallery: zone-redundant
    storage exists only in regions with availability zones, learn.microsoft.com/azure/virtual-machines/
    azure-compute-gallery; the replication fails otherwise). ``zones``: the union of the region's SKUs'
    ``locationInfo.zones``; ``sizes_listed`` False (the region answered no SKU) is not judged."""
    if zones or not sizes_listed:
        return None
    return InvalidInput(field_, "Standard_ZRS", f"{region} has no availability zones (no VM size there lists a zone in "
                        "ResourceSkus_List locationInfo.zones), so a zone-redundant (Standard_ZRS) replica cannot be "
                        "made there", f"use Standard_LRS for {region} (target_regions[...].storage_account_type), or "
                        "a region with availability zones")


# -- Batch account quotas for a roll ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolDemand:
    """Nodes this run adds to a Batch account: one new pool; ``dedicated_field`` / ``low_priority_field`` name its
    node counts in the config (``pools[0].target_dedicated_nodes``, ``pools[0].template.targetDedicatedNodes``,
    ``pools[0].canary_nodes`` ...)."""

    dedicated_field: str
    low_priority_field: str
    logical_pool: str
    vm_size: str
    dedicated: int
    low_priority: int


def pool_cores(listing_entry: Mapping[str, Any], vcpus: int) -> tuple[int, int]:
    """(dedicated, low-priority) cores an existing pool holds or is growing to: max(current, target) nodes each
    (``list_pool_listing`` keys) x ``vcpus``."""
    e = listing_entry
    dedicated = max(int(e.get("current_dedicated_nodes") or 0), int(e.get("target_dedicated_nodes") or 0))
    low = max(int(e.get("current_low_priority_nodes") or 0), int(e.get("target_low_priority_nodes") or 0))
    return dedicated * vcpus, low * vcpus


def _quota_fix(fewer: str) -> str:
    return (f"request a higher quota for the Batch account (Azure portal: the account's Quotas, Request quota "
            f"increase; {QUOTA_PAGE}), or {fewer}")


def core_quota_problems(account_name: str, account: Mapping[str, Any], existing: Sequence[Mapping[str, Any]],
                        demands: Sequence[PoolDemand], region: RegionSkus) -> tuple[list[InvalidInput], list[str]]:
    """Whether the new pools fit the account's core quotas beside every pool it already has (blue/green keeps the
    serving pool until the new one serves, so both count).

    :param account: the account's ARM body (BatchAccount_Get, api 2024-07-01): ``properties.dedicatedCoreQuota``,
        ``lowPriorityCoreQuota``, ``dedicatedCoreQuotaPerVMFamilyEnforced``, ``dedicatedCoreQuotaPerVMFamily``
        ([{name, coreQuota}]: with enforcement, a family not listed has no dedicated cores). An account whose pools
        come from the user's subscription (no ``dedicatedCoreQuota``) is not judged: its quota is the
        subscription's.
    :param existing: the account's pools (``list_pool_listing`` entries with ``vm_size``); a pool being replaced in
        place is left out by the caller. :param demands: the new pools, in config order.
    :param region: the account region's sizes (vCPUs and family of each pool's size).
    :return: (problems, log lines).
    """
    props = account.get("properties") or {}
    if props.get("dedicatedCoreQuota") is None:
        return [], [f"Batch account {account_name}: no Batch core quota (pool allocation mode "
                    f"{props.get('poolAllocationMode')}): the subscription's vCPU quota applies, not checked"]
    dedicated_quota = int(props.get("dedicatedCoreQuota") or 0)
    low_quota = int(props.get("lowPriorityCoreQuota") or 0)
    enforced = bool(props.get("dedicatedCoreQuotaPerVMFamilyEnforced"))
    families = {str(f.get("name", "")).lower(): int(f.get("coreQuota") or 0)
                for f in props.get("dedicatedCoreQuotaPerVMFamily") or [] if isinstance(f, Mapping)}
    used_dedicated = used_low = 0
    used_family: dict[str, int] = {}
    notes = []
    for pool in existing:
        sku = region.get(pool.get("vm_size"))
        if sku is None:
            notes.append(f"Batch account {account_name}: pool {pool.get('id')} is on {pool.get('vm_size')}, which "
                         f"{region.location} does not list: its cores are not counted")
            continue
        d, lp = pool_cores(pool, sku.vcpus)
        used_dedicated += d
        used_low += lp
        used_family[sku.family.lower()] = used_family.get(sku.family.lower(), 0) + d
    problems = []
    for demand in demands:
        sku = region.get(demand.vm_size)
        if sku is None:
            continue  # refused by size_problems
        need_d, need_lp = demand.dedicated * sku.vcpus, demand.low_priority * sku.vcpus
        what = f"{demand.logical_pool}'s new pool: {{n}} x {sku.name}, {sku.vcpus} vCPUs each"
        family = sku.family.lower()
        checks = [("dedicated core quota (dedicatedCoreQuota)", dedicated_quota, used_dedicated, "", need_d,
                   demand.dedicated_field, demand.dedicated),
                  ("Spot/low-priority core quota (lowPriorityCoreQuota)", low_quota, used_low, "", need_lp,
                   demand.low_priority_field, demand.low_priority)]
        if enforced:
            checks.insert(1, (f"{sku.family} core quota (dedicatedCoreQuotaPerVMFamily)", families.get(family, 0),
                              used_family.get(family, 0), " on that family", need_d, demand.dedicated_field,
                              demand.dedicated))
        for kind, quota, held, on, need, field_, nodes in checks:
            if need and held + need > quota:
                problems.append(InvalidInput(
                    field_, nodes, f"the Batch account {account_name} has a {kind} of {quota}; {held} are held by "
                    f"its pools{on} (the serving pool stays until the new one serves) and {what.format(n=nodes)} needs "
                    f"{need} more", _quota_fix("fewer nodes, or roll fewer pools at once (the trigger form's pools)")))
        used_dedicated += need_d
        used_low += need_lp
        used_family[family] = used_family.get(family, 0) + need_d
        notes.append(f"Batch account {account_name}: {what.format(n=demand.dedicated + demand.low_priority)}; "
                     f"dedicated cores {used_dedicated} of {dedicated_quota}"
                     + (f", {sku.family} {used_family[family]} of {families.get(family, 0)}" if enforced else "")
                     + f", low-priority {used_low} of {low_quota}")
    return problems, notes


def pool_quota_problem(account_name: str, account: Mapping[str, Any], existing_pools: int, new_pools: Sequence[str],
                       field_: str = "params.pools") -> InvalidInput | None:
    """The account's ``poolQuota`` (default 100, :data:`QUOTA_PAGE`) holds its pools plus the ``new_pools`` (logical
    pool names) this run creates: blue/green keeps each serving pool beside its canary until the roll ends."""
    quota = int((account.get("properties") or {}).get("poolQuota") or DEFAULT_POOL_QUOTA)
    if existing_pools + len(new_pools) <= quota:
        return None
    return InvalidInput(
        field_, list(new_pools), f"the Batch account {account_name} has a pool quota (poolQuota) of {quota}; it has "
        f"{existing_pools} pools and this run would create {len(new_pools)} more ({existing_pools + len(new_pools)} "
        "at once: blue/green keeps each serving pool beside its new one)",
        _quota_fix(f"roll at most {max(0, quota - existing_pools)} pool(s) in this run (the trigger form's pools)"))


def job_quota_problem(account_name: str, account: Mapping[str, Any], in_use: int, smoke_tested: Sequence[str],
                      field_: str = "params.pools") -> InvalidInput | None:
    """The account's ``activeJobAndJobScheduleQuota`` (default 300, :data:`QUOTA_PAGE`; jobs not completed and job
    schedules count) holds ``in_use`` plus one smoke-test job per new pool of ``smoke_tested`` (logical pool names)."""
    quota = int((account.get("properties") or {}).get("activeJobAndJobScheduleQuota") or DEFAULT_JOB_QUOTA)
    if in_use + len(smoke_tested) <= quota:
        return None
    return InvalidInput(
        field_, list(smoke_tested), f"the Batch account {account_name} has an active job and job schedule quota "
        f"(activeJobAndJobScheduleQuota) of {quota}; {in_use} are in use and the smoke tests of this run add "
        f"{len(smoke_tested)} job(s)",
        _quota_fix(f"roll at most {max(0, quota - in_use)} smoke-tested pool(s) in this run (the trigger form's "
                   "pools), or complete or delete finished jobs (az batch job list)"))
