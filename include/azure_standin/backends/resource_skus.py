"""Microsoft.Compute resource SKUs: the VM sizes the stand-in knows, their hardware facts, the regions that offer
them and each region's availability zones. One table (`SIZES`, `ZONAL_REGIONS`) feeds the ResourceSkus_List wire
answer (`skus_for`), the Batch pool and ARM VM rules (`offered`, `size_facts`), and the Batch quota arithmetic
(batch_common.vm_size_info reads vCPUs and quota family here).

Wire shape (azure-rest-api-specs, Compute ``ComputeRP/stable/2021-07-01/skus.json``, ResourceSku; what
azure-mgmt-compute 39's ``resource_skus.list(filter="location eq 'westeurope'")`` deserialises):
``{resourceType: "virtualMachines", name, tier: "Standard", size, family, locations: [loc],
locationInfo: [{location, zones, zoneDetails: []}], capabilities: [{name, value}] (values are strings),
restrictions: [{type: Location|Zone, values: [loc], restrictionInfo: {locations, zones?},
reasonCode: NotAvailableForSubscription}]}``. One entry per size and region (ARM answers the same for a
``$filter=location eq``; unfiltered, one entry per size and region too). Only virtualMachines are listed (disks,
availabilitySets... are not modelled).

Capability names and value spellings are Azure's (the ones ``az vm list-skus`` prints, and that clients read:
openshift/installer, microsoft/lisa, the Az PowerShell Trusted Launch scripts): ``vCPUs``, ``MemoryGB``,
``HyperVGenerations`` ("V1", "V2", "V1,V2"), ``MaxResourceVolumeMB`` (the temp/resource disk, MiB),
``CachedDiskBytes`` (the host cache, bytes; absent on sizes with none), ``EphemeralOSDiskSupported``,
``SupportedEphemeralOSDiskPlacements`` ("ResourceDisk,CacheDisk"; only where the size has one),
``TrustedLaunchDisabled`` ("True"; only on sizes where Azure lists it), ``ConfidentialComputingType`` ("SNP";
AMD SEV-SNP confidential sizes only), ``LowPriorityCapable``, ``PremiumIO``, ``CpuArchitectureType``.

Subscription restrictions (Azure's ``NotAvailableForSubscription``, by location or by zone) are not in the table:
tests and the demo set them through the control API (responses/arm.py ``/_control/arm/sku_restrictions``), stored
as documents of kind ``sku_restriction``.

The table covers the sizes the project uses (and a few for the rules: Gen1-only, confidential, no Trusted Launch,
resource / cache disks), not Azure's whole catalogue: Batch refuses a size it does not list on add, as a size it does
not know (batch_common.vm_size_info); the ARM VM create does not judge it (`offered` answers None).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import SkuNotAvailable
from .arm_common import REGIONS, canonical_region

KIND_RESTRICTION = "sku_restriction"
GIB = 1024 ** 3

# Regions with availability zones ("1", "2", "3"): Microsoft Learn, "Azure regions with availability zone support"
# (reliability/availability-zones-region-support; the older articles/availability-zones/includes/az-regions-include.md
# lists the same core set). Regions opened since (italynorth, polandcentral, spaincentral, mexicocentral,
# israelcentral, qatarcentral, newzealandnorth, indonesiacentral, malaysiawest, chilecentral, austriaeast,
# belgiumcentral, denmarkeast) opened with three zones per Microsoft's region announcements: not re-checked
# one by one, a guess where the page did not list them. Every other region in arm_common.REGIONS has none
# (westus, northcentralus, westcentralus, japanwest, ukwest, canadaeast, ...).
ZONAL_REGIONS = frozenset({
    "brazilsouth", "canadacentral", "centralus", "chilecentral", "eastus", "eastus2", "mexicocentral",
    "southcentralus", "westus2", "westus3",
    "austriaeast", "belgiumcentral", "denmarkeast", "francecentral", "germanywestcentral", "italynorth",
    "northeurope", "norwayeast", "polandcentral", "spaincentral", "swedencentral", "switzerlandnorth", "uksouth",
    "westeurope",
    "israelcentral", "qatarcentral", "uaenorth", "southafricanorth",
    "australiaeast", "centralindia", "eastasia", "indonesiacentral", "japaneast", "koreacentral", "malaysiawest",
    "newzealandnorth", "southeastasia",
})
ZONES = ("1", "2", "3")


@dataclass(frozen=True)
class Size:
    """One VM size. Units: memory in GB as Azure's MemoryGB prints it, resource disk in MiB, cache in bytes.
    ``regions`` None: offered in every region of arm_common.REGIONS."""

    name: str
    family: str
    vcpus: int
    memory_gb: float
    generations: tuple[str, ...]
    resource_disk_mb: int
    cached_disk_bytes: int | None
    ephemeral_placements: tuple[str, ...]
    premium_io: bool
    max_data_disks: int
    low_priority: bool = True
    trusted_launch_disabled: bool = False
    confidential: str | None = None
    accelerated_networking: bool = True
    regions: frozenset[str] | None = None

    @property
    def tier_size(self) -> str:
        return self.name.split("_", 1)[1]


def _dsv3(n: int) -> Size:
    # Dsv3-series: articles/virtual-machines/dv3-dsv3-series.md (vCPU, memory, temp storage, cache size in GiB:
    # D2s_v3 16 GiB temp, 50 GiB cache; D4s_v3 32 / 100), VM Generation Support "Generation 1 and 2", Ephemeral OS
    # Disks supported (generation-2.md lists Dsv3). The newer sizes/general-purpose/dsv3-series.md says
    # "Generation 1" and "Premium Storage: Not Supported": a copy of the Dv3 page (a DS size is premium by
    # definition); the older page and generation-2.md are followed here.
    return Size(f"Standard_D{n}s_v3", "standardDSv3Family", n, 4.0 * n, ("V1", "V2"), 8 * n * 1024,
                50 * (n // 2) * GIB, ("ResourceDisk", "CacheDisk"), True, 2 * n)


def _dsv5(n: int) -> Size:
    # Dsv5-series: sizes/general-purpose/dsv5-series.md: "Generation 1 and 2", no local (temp) storage, "Ephemeral
    # OS Disks: Not Supported", 4 GiB per vCPU; max data disks 4/8/16/32 (D2s/D4s/D8s/D16s and up).
    return Size(f"Standard_D{n}s_v5", "standardDSv5Family", n, 4.0 * n, ("V1", "V2"), 0, None, (), True,
                min(32, 2 * n))


SIZES_LIST: list[Size] = [
    _dsv3(2), _dsv3(4),
    _dsv5(2), _dsv5(4), _dsv5(96),
    # DSv2-series: articles/virtual-machines/dv2-dsv2-series.md: DS2_v2 2 vCPU, 7 GiB, 14 GiB temp, 86 GiB cache,
    # 8 data disks, "Generation 1 and 2", Ephemeral OS Disks supported. (sizes/general-purpose/dsv2-series.md shows
    # the same copy error as Dsv3's; not followed.)
    Size("Standard_DS2_v2", "standardDSv2Family", 2, 7.0, ("V1", "V2"), 14 * 1024, 86 * GIB,
         ("ResourceDisk", "CacheDisk"), True, 8),
    # Ddsv5-series: sizes/general-purpose/ddsv5-series.md: D2ds_v5 2 vCPU, 8 GiB, 75 GiB temp disk, "Generation 1
    # and 2", Ephemeral OS Disks supported. The page gives no cache size: CachedDiskBytes is left out and the
    # placement is the resource disk only (a guess about how list-skus prints it).
    Size("Standard_D2ds_v5", "standardDDSv5Family", 2, 8.0, ("V1", "V2"), 75 * 1024, None, ("ResourceDisk",),
         True, 4),
    # Av2-series: sizes/general-purpose/av2-series.md: A2_v2 2 vCPU / 4 GiB / 20 GiB temp, A4_v2 4 / 8 / 40;
    # "VM Generation Support: Generation 1" (Gen1 only), Premium Storage, Accelerated Networking and Ephemeral OS
    # Disks not supported; max data disks 4 / 8.
    Size("Standard_A2_v2", "standardAv2Family", 2, 4.0, ("V1",), 20 * 1024, None, (), False, 4,
         accelerated_networking=False),
    Size("Standard_A4_v2", "standardAv2Family", 4, 8.0, ("V1",), 40 * 1024, None, (), False, 8,
         accelerated_networking=False),
    # DCasv5-series (AMD SEV-SNP confidential): sizes/general-purpose/dcasv5-series.md: DC2as_v5 2 vCPU, 8 GiB, no
    # local storage, Generation 2 only, Ephemeral OS Disk and Accelerated Networking not supported, 4 data disks.
    # ConfidentialComputingType "SNP" as openshift/installer reads it. Regions: a guess (the confidential VM
    # region list is shorter than the D-series'; here not in westus2 or northcentralus). LowPriorityCapable False:
    # a guess.
    Size("Standard_DC2as_v5", "standardDCASv5Family", 2, 8.0, ("V2",), 0, None, (), True, 4, low_priority=False,
         confidential="SNP", accelerated_networking=False,
         regions=frozenset(REGIONS) - {"westus2", "northcentralus"}),
    # M-series (Standard_M8ms: 8 vCPU, 218.75 GiB, 256 GiB temp, 793 GiB cache, Generation 1 and 2):
    # articles/virtual-machines/m-series.md. Trusted Launch is not supported on the M-series (trusted-launch.md
    # limitations, as microsoft/lisa's Azure features.py encodes for standardMSFamily): TrustedLaunchDisabled
    # "True" here; that list-skus prints exactly that capability for M8ms is a guess.
    Size("Standard_M8ms", "standardMSFamily", 8, 218.75, ("V1", "V2"), 256 * 1024, 793 * GIB,
         ("ResourceDisk", "CacheDisk"), True, 8, trusted_launch_disabled=True),
]
SIZES: dict[str, Size] = {s.name.lower(): s for s in SIZES_LIST}


# -- lookups other backends use ----------------------------------------------------------------------

def region_zones(location: str | None) -> list[str]:
    """The availability zones of a region (["1", "2", "3"]), [] for a region without zones or one the stand-in
    does not know. Source: ZONAL_REGIONS (above)."""
    return list(ZONES) if canonical_region(location) in ZONAL_REGIONS else []


def size_facts(name: str | None) -> dict | None:
    """The hardware facts of a VM size (case-insensitive name), None when the table does not list it.

    {"name", "family", "vcpus": int, "memory_gb": float, "hyper_v_generations": ["V1", "V2"],
     "max_resource_volume_mb": int, "cached_disk_bytes": int | None, "ephemeral_os_disk_supported": bool,
     "ephemeral_os_disk_placements": [...], "premium_io": bool, "low_priority_capable": bool,
     "trusted_launch_disabled": bool, "confidential_computing_type": "SNP" | None}
    """
    s = SIZES.get((name or "").strip().lower())
    if s is None:
        return None
    return {"name": s.name, "family": s.family, "vcpus": s.vcpus, "memory_gb": s.memory_gb,
            "hyper_v_generations": list(s.generations), "max_resource_volume_mb": s.resource_disk_mb,
            "cached_disk_bytes": s.cached_disk_bytes, "ephemeral_os_disk_supported": bool(s.ephemeral_placements),
            "ephemeral_os_disk_placements": list(s.ephemeral_placements), "premium_io": s.premium_io,
            "low_priority_capable": s.low_priority, "trusted_launch_disabled": s.trusted_launch_disabled,
            "confidential_computing_type": s.confidential}


def _offered_by_table(s: Size, location: str) -> bool:
    return location in REGIONS and (s.regions is None or location in s.regions)


def _restriction_key(sub: str, location: str, name: str) -> str:
    return f"{sub}/{canonical_region(location)}/{name}".lower()


def restriction(ctx, sub: str, location: str, name: str) -> dict | None:
    """The subscription's restriction of a size in a region: {"type": "Location" | "Zone", "zones": [...],
    "reasonCode"} or None."""
    return ctx.store.get(KIND_RESTRICTION, _restriction_key(sub, location, name))


def set_restriction(ctx, sub: str, location: str, name: str, *, zones: list[str] | None = None,
                    reason_code: str = "NotAvailableForSubscription") -> dict:
    """Restrict a size for a subscription: in the whole region (no zones) or in some of its zones. Raises
    ValueError for a size the table does not list or a zone the region does not have."""
    loc = canonical_region(location)
    if name.lower() not in SIZES:
        raise ValueError(f"unknown VM size {name!r} (the stand-in's table: {', '.join(s.name for s in SIZES_LIST)})")
    zones = [str(z) for z in zones or []]
    bad = [z for z in zones if z not in region_zones(loc)]
    if bad:
        raise ValueError(f"region {loc!r} has no zone {bad[0]!r} (zones: {region_zones(loc) or 'none'})")
    doc = {"type": "Zone" if zones else "Location", "zones": zones, "reasonCode": reason_code}
    ctx.store.put(KIND_RESTRICTION, _restriction_key(sub, loc, name), doc)
    return doc


def clear_restriction(ctx, sub: str, location: str, name: str) -> None:
    ctx.store.delete(KIND_RESTRICTION, _restriction_key(sub, location, name))


def offered(ctx, sub: str, name: str | None, location: str | None) -> bool | None:
    """Whether a VM of this size can be created in the region for the subscription: False when the table does not
    offer it there or the subscription has a Location restriction (a Zone restriction leaves the other zones);
    None when the table does not list the size (not judged)."""
    s = SIZES.get((name or "").strip().lower())
    if s is None:
        return None
    loc = canonical_region(location)
    if not _offered_by_table(s, loc):
        return False
    r = restriction(ctx, sub, loc, s.name) if ctx is not None else None
    return not (r and r.get("type") == "Location")


def require_offered(ctx, sub: str, resource_id: str, name: str | None, location: str | None,
                    zones: list[str] | None = None) -> None:
    """A VM create's size check: raises SkuNotAvailable (409) when the size is not offered in the region, the
    subscription has a Location restriction there, or a Zone restriction covers a zone the VM asks for. Sizes the
    table does not list pass (not judged)."""
    loc = canonical_region(location)
    zones = [str(z) for z in zones or []]
    ok = offered(ctx, sub, name, loc)
    if ok is None:
        return
    r = restriction(ctx, sub, loc, str(name))
    if not ok or (r and r.get("type") == "Zone" and set(zones) & set(r.get("zones") or [])):
        raise SkuNotAvailable(resource_id, loc, zones, sub)


# -- the wire answer -----------------------------------------------------------------------------------

def _bool(v: bool) -> str:
    return "True" if v else "False"


def _memory(gb: float) -> str:
    return str(int(gb)) if float(gb).is_integer() else str(gb)


def _capabilities(s: Size) -> list[dict]:
    caps = [
        ("MaxResourceVolumeMB", str(s.resource_disk_mb)),
        ("OSVhdSizeMB", "1047552"),
        ("vCPUs", str(s.vcpus)),
        ("HyperVGenerations", ",".join(s.generations)),
        ("MemoryGB", _memory(s.memory_gb)),
        ("MaxDataDiskCount", str(s.max_data_disks)),
        ("CpuArchitectureType", "x64"),
        ("LowPriorityCapable", _bool(s.low_priority)),
        ("PremiumIO", _bool(s.premium_io)),
        ("VMDeploymentTypes", "IaaS"),
        ("vCPUsAvailable", str(s.vcpus)),
        ("EphemeralOSDiskSupported", _bool(bool(s.ephemeral_placements))),
    ]
    if s.ephemeral_placements:
        caps.append(("SupportedEphemeralOSDiskPlacements", ",".join(s.ephemeral_placements)))
    if s.cached_disk_bytes:
        caps.append(("CachedDiskBytes", str(s.cached_disk_bytes)))
    if s.trusted_launch_disabled:
        caps.append(("TrustedLaunchDisabled", "True"))
    if s.confidential:
        caps.append(("ConfidentialComputingType", s.confidential))
    caps += [("AcceleratedNetworkingEnabled", _bool(s.accelerated_networking)), ("MaxNetworkInterfaces", "2")]
    return [{"name": n, "value": v} for n, v in caps]


def _restrictions(ctx, sub: str | None, s: Size, loc: str) -> list[dict]:
    r = restriction(ctx, sub, loc, s.name) if ctx is not None and sub else None
    if not r:
        return []
    info: dict = {"locations": [loc]}
    if r["type"] == "Zone":
        info["zones"] = list(r["zones"])
    return [{"type": r["type"], "values": [loc], "restrictionInfo": info, "reasonCode": r["reasonCode"]}]


def _entry(ctx, sub: str | None, s: Size, loc: str) -> dict:
    return {"resourceType": "virtualMachines", "name": s.name, "tier": "Standard", "size": s.tier_size,
            "family": s.family, "locations": [loc],
            "locationInfo": [{"location": loc, "zones": region_zones(loc), "zoneDetails": []}],
            "capabilities": _capabilities(s), "restrictions": _restrictions(ctx, sub, s, loc)}


def skus_for(location: str | None = None, ctx=None, sub: str | None = None) -> list[dict]:
    """ResourceSkus_List's ``value``: one virtualMachines entry per size offered in ``location`` (every region when
    None), in the REST shape above; with ``ctx`` and ``sub``, the subscription's restrictions filled in. An unknown
    region answers [] (a guess: ARM's answer to a filter on a region it does not know is not documented)."""
    locs = [canonical_region(location)] if location else sorted(REGIONS)
    return [_entry(ctx, sub, s, loc) for loc in locs for s in SIZES_LIST if _offered_by_table(s, loc)]
