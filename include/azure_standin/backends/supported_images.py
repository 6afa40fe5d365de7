"""The Batch account's supported images (``GET /supportedimages``, operation Account_ListSupportedImages).

Entries follow what the real service lists (publisher/offer/sku lower-cased the way Batch returns
them, ``version`` "latest"). Only the images this project plausibly meets are listed: Ubuntu 20.04,
22.04, 24.04, AlmaLinux 8/9, Debian 11/12, Windows Server 2016/2019/2022/2025.

``nodeAgentSKUId`` -> the image lineages it supports is what pool creation checks against.
"""
from __future__ import annotations

from typing import Any

_UBUNTU_2004_EOL = "2025-04-23T00:00:00Z"
_DEBIAN_11_EOL = "2026-08-14T00:00:00Z"
_UBUNTU_2204_EOL = "2027-06-30T00:00:00Z"
_UBUNTU_2404_EOL = "2029-06-30T00:00:00Z"
_EL8_EOL = "2029-03-01T00:00:00Z"
_EL9_EOL = "2032-05-31T00:00:00Z"
_DEBIAN_12_EOL = "2028-06-10T00:00:00Z"
_WS2016_EOL = "2027-01-12T00:00:00Z"
_WS2019_EOL = "2029-01-09T00:00:00Z"
_WS2022_EOL = "2031-10-14T00:00:00Z"
_WS2025_EOL = "2034-10-10T00:00:00Z"


def _img(agent: str, os_type: str, publisher: str, offer: str, sku: str, eol: str | None,
         verification: str = "verified", capabilities: list[str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "imageReference": {"publisher": publisher, "offer": offer, "sku": sku, "version": "latest"},
        "nodeAgentSKUId": agent,
        "osType": os_type,
        "verificationType": verification,
    }
    if capabilities:
        d["capabilities"] = list(capabilities)
    if eol:
        d["batchSupportEndOfLife"] = eol
    return d


_WIN = "batch.node.windows amd64"

SUPPORTED_IMAGES: list[dict[str, Any]] = [
    # Ubuntu
    _img("batch.node.ubuntu 20.04", "linux", "canonical", "0001-com-ubuntu-server-focal", "20_04-lts", _UBUNTU_2004_EOL),
    _img("batch.node.ubuntu 20.04", "linux", "canonical", "0001-com-ubuntu-server-focal", "20_04-lts-gen2", _UBUNTU_2004_EOL),
    _img("batch.node.ubuntu 22.04", "linux", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts", _UBUNTU_2204_EOL),
    _img("batch.node.ubuntu 22.04", "linux", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", _UBUNTU_2204_EOL),
    _img("batch.node.ubuntu 22.04", "linux", "microsoft-dsvm", "ubuntu-hpc", "2204", _UBUNTU_2204_EOL,
         capabilities=["DockerCompatible", "NvidiaTeslaDriverInstalled", "NvidiaGridDriverInstalled", "InfiniBandDriverInstalled"]),
    _img("batch.node.ubuntu 22.04", "linux", "microsoft-azure-batch", "ubuntu-server-container", "22-04-lts", _UBUNTU_2204_EOL,
         capabilities=["DockerCompatible", "NvidiaTeslaDriverInstalled"]),
    _img("batch.node.ubuntu 24.04", "linux", "canonical", "ubuntu-24_04-lts", "server", _UBUNTU_2404_EOL),
    _img("batch.node.ubuntu 24.04", "linux", "canonical", "ubuntu-24_04-lts", "server-gen1", _UBUNTU_2404_EOL),
    # Enterprise Linux (AlmaLinux)
    _img("batch.node.el 8", "linux", "almalinux", "almalinux-x86_64", "8-gen1", _EL8_EOL),
    _img("batch.node.el 8", "linux", "almalinux", "almalinux-x86_64", "8-gen2", _EL8_EOL),
    _img("batch.node.el 9", "linux", "almalinux", "almalinux-x86_64", "9-gen1", _EL9_EOL),
    _img("batch.node.el 9", "linux", "almalinux", "almalinux-x86_64", "9-gen2", _EL9_EOL),
    # Debian
    _img("batch.node.debian 11", "linux", "debian", "debian-11", "11", _DEBIAN_11_EOL),
    _img("batch.node.debian 11", "linux", "debian", "debian-11", "11-gen2", _DEBIAN_11_EOL),
    _img("batch.node.debian 12", "linux", "debian", "debian-12", "12", _DEBIAN_12_EOL),
    _img("batch.node.debian 12", "linux", "debian", "debian-12", "12-gen2", _DEBIAN_12_EOL),
    # Windows Server
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2016-datacenter", _WS2016_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2016-datacenter-gen2", _WS2016_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2016-datacenter-smalldisk", _WS2016_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2019-datacenter", _WS2019_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2019-datacenter-core", _WS2019_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2019-datacenter-gensecond", _WS2019_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2019-datacenter-smalldisk", _WS2019_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter-g2", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter-core", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter-core-g2", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter-smalldisk", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2022-datacenter-azure-edition", _WS2022_EOL),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2025-datacenter", _WS2025_EOL, verification="unverified"),
    _img(_WIN, "windows", "microsoftwindowsserver", "windowsserver", "2025-datacenter-g2", _WS2025_EOL, verification="unverified"),
]


def list_supported_images() -> list[dict[str, Any]]:
    return [dict(i, imageReference=dict(i["imageReference"])) for i in SUPPORTED_IMAGES]


def agent_skus() -> dict[str, str]:
    """nodeAgentSKUId (lower-cased) -> osType."""
    return {i["nodeAgentSKUId"].lower(): i["osType"] for i in SUPPORTED_IMAGES}


def agent_sku_os(agent_sku_id: str | None) -> str | None:
    """osType of a node agent SKU, None when Batch does not know the SKU."""
    if not agent_sku_id:
        return None
    return agent_skus().get(agent_sku_id.strip().lower())


def images_for_agent(agent_sku_id: str) -> list[dict[str, str]]:
    a = agent_sku_id.strip().lower()
    return [i["imageReference"] for i in SUPPORTED_IMAGES if i["nodeAgentSKUId"].lower() == a]


def agent_supports(agent_sku_id: str, publisher: str, offer: str, sku: str) -> bool:
    """Does the agent SKU list the marketplace lineage publisher/offer/sku (case-insensitive)?"""
    key = (publisher.lower(), offer.lower(), sku.lower())
    return any((r["publisher"], r["offer"], r["sku"]) == key for r in images_for_agent(agent_sku_id))


def agent_for(publisher: str, offer: str, sku: str) -> str | None:
    """The nodeAgentSKUId Batch pairs with a marketplace image, None when unsupported."""
    key = (publisher.lower(), offer.lower(), sku.lower())
    for i in SUPPORTED_IMAGES:
        r = i["imageReference"]
        if (r["publisher"], r["offer"], r["sku"]) == key:
            return i["nodeAgentSKUId"]
    return None


def _match_filter(item: dict[str, Any], flt: str | None) -> bool:
    """A tiny subset of OData: ``field eq 'value'`` clauses joined by ``and`` (verificationType, osType,
    nodeAgentSKUId). Unknown fields do not filter."""
    if not flt:
        return True
    for clause in flt.split(" and "):
        parts = clause.strip().split(None, 2)
        if len(parts) != 3 or parts[1].lower() != "eq":
            continue
        field, value = parts[0], parts[2].strip().strip("'")
        if field in ("verificationType", "osType", "nodeAgentSKUId"):
            if str(item.get(field, "")).lower() != value.lower():
                return False
    return True


def list_filtered(flt: str | None = None, ctx=None) -> list[dict[str, Any]]:
    """The entries ``$filter`` keeps, with the end-of-life dates the control API set (``ctx`` given)."""
    overrides = end_of_life_overrides(ctx) if ctx is not None else {}
    out = []
    for item in list_supported_images():
        agent = item["nodeAgentSKUId"].lower()
        if agent in overrides:
            if overrides[agent] is None:
                item.pop("batchSupportEndOfLife", None)
            else:
                item["batchSupportEndOfLife"] = overrides[agent]
        if _match_filter(item, flt):
            out.append(item)
    return out


_EOL_META = "supported_images_eol"


def end_of_life_overrides(ctx) -> dict[str, str | None]:
    """nodeAgentSKUId (lower-cased) -> the batchSupportEndOfLife the control API set (None: no date)."""
    return dict(ctx.store.meta_get(_EOL_META) or {})


def set_end_of_life(ctx, agent_sku_id: str, end_of_life: str | None) -> dict[str, str | None]:
    """Control: set (ISO 8601 ``2027-06-30T00:00:00Z``) or clear (None) a node agent SKU's batchSupportEndOfLife for
    every image it lists, so tests can bring Batch's retirement of an agent close (or past)."""
    if agent_sku_os(agent_sku_id) is None:
        raise ValueError(f"unknown nodeAgentSKUId {agent_sku_id!r}")
    overrides = end_of_life_overrides(ctx)
    overrides[agent_sku_id.strip().lower()] = end_of_life
    ctx.store.meta_set(_EOL_META, overrides)
    return overrides
