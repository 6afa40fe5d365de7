"""Preflight's checks: what Azure says (facts the operator read) + the pipeline config -> problems.

Each check adds :class:`InvalidInput` problems (field, value, reason, fix) to a :class:`Findings`, which also keeps
the lines worth logging; nothing here reads Azure or raises for a problem, so preflight can report every problem
at once. :class:`~batch_images.operators.preflight.PreflightOperator` does the reads (ARM and Batch GETs) and calls
these in order; :func:`batch_images.rules.plan.build_plan` writes the plan when no problem was found.

:func:`existing_definition_problems` is the one rule "an existing image definition can hold this image"; the
gallery operator applies it again right before it writes.

Pure: no Airflow, no Azure SDK.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from . import base_watch, ids, naming
from . import security as security_rules
from .errors import InvalidInput, shared_key_refused
from .plan import BaseImage, BuildVm, DataDisk, Source

# Marketplace publishers whose images are first-party (Microsoft's own, and the distributions Azure
# endorses and Batch lists). Third-party images - anything sold with a purchase plan - cannot be a base.
FIRST_PARTY_PUBLISHERS = frozenset({
    "microsoftwindowsserver", "microsoftwindowsdesktop", "microsoft-azure-batch", "microsoft-dsvm",
    "microsoftcblmariner", "microsoft-hpc", "microsofthpc", "canonical", "debian", "redhat", "suse",
    "openlogic", "almalinux", "oracle", "kinvolk", "credativ",
})
_MARKETPLACE_VERSION = re.compile(r"[0-9]+(\.[0-9]+){2,3}")
NO_BATCH_CONN = "no such Airflow connection"
NO_BATCH_CONN_FIX = ("create an azure_batch connection with extras account_url and credential_conn_id (no login or "
                     "password), or correct the id")


class Findings:
    """Problems found so far (one line per distinct problem) and ``(level, text)`` lines to log."""

    def __init__(self) -> None:
        self.items: list[InvalidInput] = []
        self.notes: list[tuple[str, str]] = []

    def add(self, field_: str, value: Any, reason: str, fix: str) -> None:
        self.add_error(InvalidInput(field_, value, reason, fix))

    def add_error(self, err: InvalidInput) -> None:
        if all(str(e) != str(err) for e in self.items):  # one problem, one line
            self.items.append(err)

    def extend(self, errors: Iterable[InvalidInput]) -> None:
        for err in errors:
            self.add_error(err)

    def info(self, text: str) -> None:
        self.notes.append(("info", text))

    def warning(self, text: str) -> None:
        self.notes.append(("warning", text))

    def __bool__(self) -> bool:
        return bool(self.items)


def _norm_url(url: str | None) -> str:
    text = (url or "").strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.rstrip("/")


# -- the run's version ------------------------------------------------------------------------------------------


def check_version(rebuild: Any, logical: date | datetime | None, findings: Findings) -> str | None:
    """The version name ``YYYY.MMDD.N`` from the logical date and ``params.rebuild`` (an int or digits), or None."""
    value = rebuild
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        findings.add("params.rebuild", rebuild, "the rebuild number is a whole number >= 0",
                     "trigger the DAG with rebuild 0 for the first build of a date, 1 for the next, ...")
        return None
    try:
        return naming.version_name(logical, value)  # type: ignore[arg-type]
    except InvalidInput as err:
        findings.add_error(err)
        return None


def check_pool_ids(cfg: Any, version: str | None, findings: Findings,
                   per_pool: Mapping[int, str] | None = None) -> list[str | None]:
    """``{prefix}-{version dashed}`` per configured pool (None where the id is not valid); ``per_pool``: pool index
    -> a roll-only run's target version, instead of ``version`` for that pool."""
    out: list[str | None] = []
    if version is None:
        return out
    for i, pool in enumerate(cfg.pools):
        try:
            out.append(naming.pool_id(pool.pool_id_prefix, (per_pool or {}).get(i) or version,
                                      f"pools[{i}].pool_id_prefix"))
        except InvalidInput as err:
            findings.add_error(err)
            out.append(None)
    return out


# -- the source VM ----------------------------------------------------------------------------------------------


def vm_extension_names(vm: Mapping[str, Any]) -> list[str]:
    """Extensions the VM body lists in ``resources`` (a GET may leave them out: then list them separately)."""
    return [r.get("name") for r in (vm.get("resources") or [])
            if "extensions" in str(r.get("type") or r.get("id") or "").lower()]


def vm_disks(vm: Mapping[str, Any]) -> tuple[str | None, list[dict]]:
    """``(OS disk id or None, [{"lun", "disk_id", "size_gb"}])`` from the VM's storageProfile (None: unmanaged)."""
    storage = (vm.get("properties") or {}).get("storageProfile") or {}
    os_disk_id = ((storage.get("osDisk") or {}).get("managedDisk") or {}).get("id")
    data = [{"lun": d.get("lun"), "disk_id": (d.get("managedDisk") or {}).get("id"), "size_gb": d.get("diskSizeGB")}
            for d in storage.get("dataDisks") or []]
    return os_disk_id, data


@dataclass
class VmFacts:
    """What ARM says about the source VM.

    :param vm_id: the configured ``source_vm_id``; ``vm``: its GET with instanceView (None: 404).
    :param extensions: its extension names; ``os_disk``: the OS disk's GET (None: unmanaged, or 404 when
        ``os_disk_missing``); ``data_disk_sizes``: disk id -> diskSizeGB read from the disk, for data disks whose
        size the VM body leaves out.
    """

    vm_id: str
    vm: Mapping[str, Any] | None
    extensions: Sequence[str] = ()
    os_disk: Mapping[str, Any] | None = None
    os_disk_missing: bool = False
    data_disk_sizes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SourceFacts:
    """The source VM as the checks see it; ``usable`` False when a problem was found, ``base_ok`` when its base
    image is a first-party marketplace image (so Batch's supported images are worth asking)."""

    vm_id: str
    vm_name: str
    location: str
    os_disk_id: str | None
    os_disk_size_gb: Any
    data_disks: list[dict]
    os_type: str
    hyper_v_generation: str
    base_image: dict
    security_profile: Mapping[str, Any] | None
    usable: bool
    base_ok: bool
    field: str = "source_vm_id"  # the config field a problem with the base names (base_image for a build VM)

    @property
    def config_value(self) -> str:
        """What the problem's field holds: the VM id, or the base image's publisher:offer:sku:version."""
        if self.field == "source_vm_id":
            return self.vm_id
        return ":".join(str(self.base_image.get(k)) for k in ("publisher", "offer", "sku", "version"))

    @property
    def lineage(self) -> str:
        return ":".join(str(self.base_image.get(k)) for k in ("publisher", "offer", "sku"))

    def to_source(self) -> Source:
        return Source(vm_id=self.vm_id, vm_name=self.vm_name, os_disk_id=self.os_disk_id or "",
                      os_disk_size_gb=self.os_disk_size_gb, data_disks=[DataDisk(**d) for d in self.data_disks],
                      os_type=self.os_type, hyper_v_generation=self.hyper_v_generation,
                      base_image=BaseImage(**self.base_image))


def check_source_vm(facts: VmFacts, findings: Findings) -> SourceFacts | None:
    """Managed disks, no extensions, a first-party marketplace base image without a purchase plan; None: no VM."""
    vm_id = facts.vm_id
    vm = facts.vm
    if vm is None:
        findings.add("source_vm_id", vm_id, "no such virtual machine (or its resource group does not exist)",
                     "give the resource id of the prepared VM (az vm show -g <rg> -n <name> --query id)")
        return None
    props = vm.get("properties") or {}
    storage = props.get("storageProfile") or {}
    os_disk = storage.get("osDisk") or {}
    ok = True
    os_disk_id, data_disks = vm_disks(vm)
    unmanaged = ([] if os_disk_id else ["OS disk"]) + [f"data disk LUN {d['lun']}" for d in data_disks
                                                       if not d["disk_id"]]
    if unmanaged:
        ok = False
        findings.add("source_vm_id", vm_id,
                     f"the VM uses unmanaged disks ({', '.join(unmanaged)} stored as VHD blobs); snapshots and "
                     "images for Batch need managed disks",
                     "rebuild the prepared VM with managed disks (the default when creating a VM), or convert it "
                     "with az vm convert, then point source_vm_id at it")
    if facts.extensions:
        ok = False
        findings.add("source_vm_id", vm_id,
                     f"the VM has VM extensions installed ({', '.join(sorted(filter(None, facts.extensions)))}); "
                     "images with preinstalled extensions can break Batch pool deployment",
                     "remove the extensions (az vm extension delete), or prepare a new VM without extensions, "
                     "and point source_vm_id at it")

    ref = storage.get("imageReference") or {}
    purchase = vm.get("plan")
    publisher = (ref.get("publisher") or "").lower()
    base = {"publisher": ref.get("publisher"), "offer": ref.get("offer"), "sku": ref.get("sku"),
            "version": ref.get("exactVersion") or ref.get("version")}
    lineage = ":".join(str(base[k]) for k in ("publisher", "offer", "sku"))
    base_ok = False
    if purchase:
        ok = False
        findings.add("source_vm_id", vm_id,
                     f"the VM's base image {lineage} is a third-party marketplace image with a purchase plan "
                     f"({purchase.get('publisher')}/{purchase.get('product')}/{purchase.get('name')}); Batch only "
                     "accepts first-party base images",
                     "prepare the VM from a first-party image that Batch supports, e.g. "
                     "canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2")
    elif not publisher:
        ok = False
        findings.add("source_vm_id", vm_id,
                     f"the VM was not created from a marketplace image (imageReference {ref.get('id') or ref}); "
                     "Batch needs a first-party marketplace image at the root of the image",
                     "prepare the VM from a first-party marketplace image that Batch supports")
    elif publisher not in FIRST_PARTY_PUBLISHERS:
        ok = False
        findings.add("source_vm_id", vm_id,
                     f"the VM's base image publisher {base['publisher']!r} ({lineage}) is not a first-party publisher",
                     f"prepare the VM from a first-party image (publishers: {', '.join(sorted(FIRST_PARTY_PUBLISHERS))})")
    else:
        base_ok = True

    os_type = os_disk.get("osType") or ("Windows" if "windowsConfiguration" in (props.get("osProfile") or {})
                                        else "Linux")
    os_disk_size = os_disk.get("diskSizeGB")
    generation = None
    if facts.os_disk_missing:
        ok = False
        findings.add("source_vm_id", vm_id, f"the VM's OS disk {os_disk_id} does not exist",
                     "repair the VM (its OS disk is missing) or prepare a new one")
    elif facts.os_disk is not None:
        dprops = facts.os_disk.get("properties") or {}
        generation = dprops.get("hyperVGeneration")
        os_disk_size = dprops.get("diskSizeGB") or os_disk_size
    for d in data_disks:
        if d["disk_id"] and d["size_gb"] is None:
            d["size_gb"] = facts.data_disk_sizes.get(d["disk_id"])
    generation = generation or (props.get("instanceView") or {}).get("hyperVGeneration") or "V1"
    source = SourceFacts(
        vm_id=vm.get("id") or vm_id,
        vm_name=vm.get("name") or ids.parse_arm_id(vm_id, "source_vm_id", ids.VIRTUAL_MACHINE).name,
        location=ids.region_key(vm.get("location")), os_disk_id=os_disk_id, os_disk_size_gb=os_disk_size,
        data_disks=data_disks, os_type="Windows" if str(os_type).lower() == "windows" else "Linux",
        hyper_v_generation="V2" if str(generation).upper() == "V2" else "V1", base_image=base,
        security_profile=props.get("securityProfile"), usable=ok, base_ok=base_ok)
    findings.info(f"Source VM {source.vm_name}: {source.os_type}, {source.hyper_v_generation}, base image {lineage} "
                  f"({base['version']}), OS disk {os_disk_size} GB, {len(data_disks)} data disk(s)"
                  + ("" if ok else " - NOT usable, see the problems below"))
    return source


# -- Batch's supported images and the node agent ----------------------------------------------------------------


def image_key(image: Mapping[str, Any]) -> tuple[str, str, str]:
    """(publisher, offer, sku) lower-cased: how Batch's supported images and a base image are matched."""
    return (str(image["publisher"]).lower(), str(image["offer"]).lower(), str(image["sku"]).lower())


def check_supported_image(source: SourceFacts, images: Sequence[Mapping[str, Any]], conn_id: str,
                          override: str | None, findings: Findings) -> str | None:
    """The node agent SKU for the VM's base image from Batch's ``GET /supportedimages`` (``images``: dicts with
    publisher, offer, sku, node_agent_sku_id, os_type, verification_type); an ``override`` must be one Batch pairs
    with the image. None after adding the problem."""
    base = source.base_image
    key = tuple(str(base.get(k) or "").lower() for k in ("publisher", "offer", "sku"))
    lineage = source.lineage
    match = next((i for i in images if image_key(i) == key), None)
    if match is None:
        same = sorted({f"{i['publisher']}:{i['offer']}:{i['sku']}" for i in images
                       if str(i["publisher"]).lower() == key[0]})
        findings.add(source.field, source.config_value,
                     f"the VM's base image {lineage} is not in Batch's supported images (GET /supportedimages "
                     f"through connection {conn_id})",
                     "prepare the VM from an image Batch supports" + (f", e.g. {', '.join(same[:4])}" if same else ""))
        return None
    derived = match["node_agent_sku_id"]
    os_of_image = str(match.get("os_type") or "").lower()
    if os_of_image and os_of_image != source.os_type.lower():
        findings.add(source.field, source.config_value,
                     f"Batch lists {lineage} as a {os_of_image} image, the VM's OS disk says {source.os_type}",
                     "check the VM; its OS type and base image disagree")
    if match.get("verification_type") and str(match["verification_type"]).lower() != "verified":
        findings.warning(f"Batch lists {lineage} as {match['verification_type']} (not verified) for {derived}")
    if not override:
        findings.info(f"Node agent SKU derived from Batch's supported images: {derived} (base image {lineage})")
        return derived
    agent_images = [i for i in images if str(i["node_agent_sku_id"]).lower() == override.strip().lower()]
    fix = f"use {derived!r} (what Batch pairs with {lineage}), or remove the override to derive it"
    if not agent_images:
        findings.add("node_agent_sku_id", override, "Batch does not list this node agent SKU", fix)
        return None
    agent_os = {str(i.get("os_type") or "").lower() for i in agent_images}
    if source.os_type.lower() not in agent_os:
        findings.add("node_agent_sku_id", override,
                     f"it is a node agent for {'/'.join(sorted(agent_os))} images, but the image is "
                     f"{source.os_type} ({lineage})", fix)
        return None
    if not any(image_key(i) == key for i in agent_images):
        findings.add("node_agent_sku_id", override,
                     f"Batch does not pair this node agent with the base image {lineage} (it pairs it with "
                     f"{', '.join(sorted({i['offer'] + ':' + i['sku'] for i in agent_images})[:4])})", fix)
        return None
    findings.info(f"Node agent SKU override {override} accepted for {lineage}")
    return agent_images[0]["node_agent_sku_id"]


END_OF_LIFE_WARNING_DAYS = 90


def check_node_agent_end_of_life(agent: str, images: Sequence[Mapping[str, Any]], today: date, field_: str,
                                 value: Any, findings: Findings, warn_days: int = END_OF_LIFE_WARNING_DAYS) -> None:
    """Batch's ``batchSupportEndOfLife`` of the node agent SKU (the earliest its images list): a warning when it is
    less than ``warn_days`` days away, a problem (on ``field_`` / ``value``, what chose the agent) once it has passed.

    Batch retires node agents on fixed dates (``batch.node.ubuntu 20.04`` on 2025-04-23, 22.04 on 2027-06-30;
    github.com/Azure/Batch issues 174, 200): a pool on a retired agent is no longer supported.
    """
    dates = sorted(str(i["batch_support_end_of_life"])[:10] for i in images
                   if str(i.get("node_agent_sku_id") or "").lower() == agent.lower() and i.get("batch_support_end_of_life"))
    if not dates:
        return
    end = date.fromisoformat(dates[0])
    left = (end - today).days
    if left <= 0:
        findings.add(field_, value, f"Batch ended support for the node agent {agent!r} on {end} "
                     "(batchSupportEndOfLife in GET /supportedimages)",
                     "move to a base image whose node agent Batch still supports (e.g. Ubuntu 24.04: canonical:"
                     "ubuntu-24_04-lts:server, agent 'batch.node.ubuntu 24.04')")
    elif left < warn_days:
        findings.warning(f"WARNING: Batch ends support for the node agent {agent!r} on {end}, in {left} day(s) "
                         f"(batchSupportEndOfLife); move {field_} to a base with a newer node agent before then")
    else:
        findings.info(f"Node agent {agent} is supported by Batch until {end} ({left} days)")


# -- a marketplace base image (base_image pipelines) ------------------------------------------------------------

# Azure's limit on custom data: 87,380 characters once base64-encoded (learn.microsoft.com "Custom data and cloud-init
# on Azure Virtual Machines"; CRP refuses more with 400 InvalidParameter, see include/azure_standin/backends/vms.py).
# base64 of n bytes is 4 * ceil(n / 3) characters: 65,535 bytes give 87,380, 65,536 bytes give 87,384 (refused).
MAX_CUSTOM_DATA_BYTES = 65535


def check_base_version_param(value: Any, findings: Findings) -> str | None:
    """The trigger form's ``base_image_version``: empty -> None; else an exact version (dotted integers)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if not _MARKETPLACE_VERSION.fullmatch(text):
        findings.add("params.base_image_version", value, "not an exact marketplace version (3 or 4 dot-separated "
                     "integers)", "leave it empty for the configured version, or give one az vm image list --all "
                     "shows, e.g. 22.04.202411010")
        return None
    return text


def event_base_versions(events: Mapping[Any, Any] | None, asset_uri: str) -> list[str]:
    """Versions of the run's triggering Asset events for ``asset_uri``, newest event last: the watcher's
    ``extra["payload"]["version"]`` or a hand-posted ``extra["version"]`` (:func:`base_watch.event_base_version`).

    ``events`` is Airflow's ``triggering_asset_events``: Asset (or its URI) -> [AssetEvent with ``extra``]."""
    out = []
    for asset, items in (events or {}).items():
        uri = getattr(asset, "uri", asset)
        if str(uri).lower() != asset_uri.lower():
            continue
        for event in items or []:
            extra = getattr(event, "extra", None)
            if extra is None and isinstance(event, Mapping):
                extra = event.get("extra")
            version = base_watch.event_base_version(extra)
            if version:
                out.append(version)
    return out


def choose_base_version(param: str | None, event_versions: Sequence[str], configured: str) -> tuple[str, str, str]:
    """``(version or 'latest', source, detail)``: the trigger form's param wins over an Asset event, which wins over
    the config; ``latest`` is resolved by the caller (source then ``latest``)."""
    if param:
        return param, "param", f"base_image_version {param} from the trigger form"
    if event_versions:
        return event_versions[-1], "asset event", f"{event_versions[-1]} from the base-image Asset event"
    if configured.lower() != "latest":
        return configured, "config", f"{configured} pinned in base_image.version"
    return "latest", "latest", "latest"


def check_custom_data(path: str, data: bytes | None, findings: Findings) -> tuple[str, int] | None:
    """The custom-data file exists and fits Azure's limit (:data:`MAX_CUSTOM_DATA_BYTES`); ``(sha256 hex, bytes)`` or
    None after a problem."""
    if data is None:
        findings.add("build.custom_data_file", path, "no such file (relative to the project root)",
                     "create the script, or correct the path (e.g. include/build/ubuntu2204-batch.sh)")
        return None
    if len(data) > MAX_CUSTOM_DATA_BYTES:
        findings.add("build.custom_data_file", path, f"the file has {len(data)} bytes; Azure takes at most "
                     f"{MAX_CUSTOM_DATA_BYTES} bytes of custom data (87,380 characters once base64-encoded)",
                     "shorten the script: download large payloads from storage in the script instead of embedding them")
        return None
    if not data.strip():
        findings.add("build.custom_data_file", path, "the file is empty", "write the customisation script")
        return None
    return hashlib.sha256(data).hexdigest(), len(data)


@dataclass
class BaseImageFacts:
    """What the marketplace says about the chosen base: ``image`` the VirtualMachineImages_Get body of ``version``
    (None: not found); ``field`` / ``requested`` the input that named it (base_image or params.base_image_version)."""

    field: str
    requested: str
    source: str
    detail: str
    version: str | None
    image: Mapping[str, Any] | None


def check_base_image(cfg: Any, image_version: str | None, facts: BaseImageFacts, findings: Findings
                     ) -> SourceFacts | None:
    """The base exists, is first-party and has no purchase plan; the build VM (as it will be) as the source. A
    Trusted-Launch-only base (image feature ``SecurityType`` = ``TrustedLaunch``) gets a Trusted Launch build VM
    (:func:`security.base_image_build_security`), so :func:`check_security_and_definition` plans the snapshot path
    and a ``SecurityType=TrustedLaunch`` definition for it, as for a Trusted Launch source VM."""
    b = cfg.base_image
    lineage = f"{b.publisher}:{b.offer}:{b.sku}"
    if facts.image is None or facts.version is None:
        findings.add(facts.field, facts.requested if facts.field != "base_image" else f"{lineage}:{facts.requested}",
                     f"the marketplace has no image {lineage} version {facts.requested} in {cfg.base_location} "
                     "(VirtualMachineImages: 404 NotFound)",
                     f"check publisher, offer, sku and version with az vm image list --all -p {b.publisher} -f "
                     f"{b.offer} -s {b.sku} -l {cfg.base_location}")
        return None
    props = facts.image.get("properties") or {}
    ok = True
    plan = props.get("plan")
    if plan:
        ok = False
        findings.add("base_image", f"{lineage}:{facts.version}",
                     f"the base image is a third-party marketplace image with a purchase plan ({plan.get('publisher')}/"
                     f"{plan.get('product')}/{plan.get('name')}); Batch only accepts first-party base images",
                     "use a first-party image that Batch supports, e.g. canonical:0001-com-ubuntu-server-jammy:"
                     "22_04-lts-gen2")
    elif b.publisher.lower() not in FIRST_PARTY_PUBLISHERS:
        ok = False
        findings.add("base_image.publisher", b.publisher, f"{b.publisher!r} is not a first-party publisher",
                     f"use a first-party image (publishers: {', '.join(sorted(FIRST_PARTY_PUBLISHERS))})")
    build_security = security_rules.STANDARD
    try:
        build_security = security_rules.base_image_build_security(props.get("features"),
                                                                  value=f"{lineage}:{facts.version}")
    except InvalidInput as err:
        ok = False
        findings.add_error(err)
    if image_version is None:
        return None
    os_type = str((props.get("osDiskImage") or {}).get("operatingSystem") or "Linux")
    generation = "V2" if str(props.get("hyperVGeneration") or "V1").upper() == "V2" else "V1"
    vm_id = cfg.build_vm_id(image_version)
    vm = ids.parse_arm_id(vm_id, "build", ids.VIRTUAL_MACHINE)
    disk = lambda name: ids.disk_id(vm.subscription_id, vm.resource_group, name).id  # noqa: E731
    source = SourceFacts(
        vm_id=vm_id, vm_name=vm.name, location=cfg.base_location,
        os_disk_id=disk(naming.build_vm_os_disk_name(vm.name)),
        os_disk_size_gb=(props.get("osDiskImage") or {}).get("sizeInGb") or 30,
        data_disks=[{"lun": d.lun, "disk_id": disk(naming.build_vm_data_disk_name(vm.name, d.lun)), "size_gb": d.size_gb}
                    for d in cfg.build.data_disks],
        os_type="Windows" if os_type.lower() == "windows" else "Linux", hyper_v_generation=generation,
        base_image={"publisher": b.publisher, "offer": b.offer, "sku": b.sku, "version": facts.version},
        security_profile=security_rules.build_vm_security_profile(build_security),  # as build_vm sends it
        usable=ok, base_ok=ok, field="base_image")
    findings.info(f"Base image {lineage}:{facts.version} ({facts.detail}): {source.os_type}, {generation}; build VM "
                  f"{vm.name} ({cfg.build.vm_size}) in {cfg.base_location}"
                  + (", Trusted Launch: the base image's SecurityType feature is TrustedLaunch (Azure makes only "
                     "Trusted Launch VMs from it)" if build_security == security_rules.TRUSTED_LAUNCH else ""))
    return source


def build_vm_plan(cfg: Any, source: SourceFacts, facts: BaseImageFacts, custom_data: tuple[str, int]) -> BuildVm:
    """The plan's ``build`` of a base_image pipeline whose checks passed."""
    vm = ids.parse_arm_id(source.vm_id, "build", ids.VIRTUAL_MACHINE)
    return BuildVm(
        vm_id=source.vm_id, vm_name=vm.name, subscription_id=vm.subscription_id, resource_group=vm.resource_group,
        location=source.location, vm_size=cfg.build.vm_size, subnet_id=cfg.build.subnet_id,
        os_disk_name=naming.build_vm_os_disk_name(vm.name), nic_name=naming.build_vm_nic_name(vm.name),
        data_disks=[DataDisk(**d) for d in source.data_disks], base=BaseImage(**source.base_image),
        base_version_source=facts.source, base_version_detail=facts.detail,
        custom_data_file=cfg.build.custom_data_file, custom_data_sha256=custom_data[0],
        custom_data_bytes=custom_data[1], timeout_seconds=cfg.build.timeout_minutes * 60.0,
        security_type=security_rules.security_type(source.security_profile))


# -- gallery and image definition -------------------------------------------------------------------------------


def existing_definition_problems(definition: Mapping[str, Any], *, name: str, definition_id: str, os_type: str,
                                 hyper_v_generation: str, security: Mapping[str, Any] | None,
                                 blame: Literal["config", "definition"]) -> list[InvalidInput]:
    """Why an existing image definition cannot hold this run's image (empty: it can).

    Batch pools take only Generalized images; osType and hyperVGeneration must be the image's; and its
    ``SecurityType`` feature must fit the source's security type (:func:`security.check_definition_feature`;
    skipped when ``security`` - the decision - is None, as for plans made before security types were read).
    None of these can change on an existing definition, so each fix is a new definition name.

    :param definition: the definition's ARM body; ``name`` / ``definition_id`` name it in the messages.
    :param os_type: / :param hyper_v_generation: what the image is (the plan's / config's image_definition).
    :param blame: which value a problem names: ``"config"`` (preflight: the config field to change, with the
        config's value) or ``"definition"`` (an operator holding a fixed plan: the definition's property and the
        value Azure has).
    """
    props = definition.get("properties") or {}
    by_config = blame == "config"
    out: list[InvalidInput] = []
    state = props.get("osState")
    if str(state).lower() != "generalized":
        out.append(InvalidInput(
            "image_definition.name" if by_config else "image_definition.os_state", name if by_config else state,
            f"the existing image definition {definition_id} is {state}; Batch pools only take Generalized images "
            "(and a definition's osState cannot change)",
            "use a new image definition name (it will be created Generalized), or delete the specialized definition"))
    have_os = props.get("osType")
    if str(have_os).lower() != str(os_type).lower():
        out.append(InvalidInput(
            "image_definition.os_type", os_type if by_config else have_os,
            f"the existing image definition {name} has osType {have_os}, the image is {os_type}",
            f"use a new definition name, or set os_type: {have_os} if the VM is that"))
    have_gen = props.get("hyperVGeneration") or "V1"  # Azure's default when absent
    if str(have_gen).upper() != str(hyper_v_generation).upper():
        out.append(InvalidInput(
            "image_definition.hyper_v_generation", hyper_v_generation if by_config else have_gen,
            f"the existing image definition {name} has hyperVGeneration {have_gen}, the image is {hyper_v_generation}",
            f"use a new definition name, or set hyper_v_generation: {have_gen} if the VM is that"))
    if security:
        err = security_rules.check_definition_feature(props.get("features"), security, definition_id=definition_id)
        if err is not None:
            out.append(err)
    return out


def check_image_definition_config(cfg: Any, source: SourceFacts | None, findings: Findings) -> None:
    """The config's image_definition os_type / hyper_v_generation are the VM's."""
    if source is None:
        return
    d = cfg.image_definition
    if d.os_type.lower() != source.os_type.lower():
        findings.add("image_definition.os_type", d.os_type, f"the source VM is {source.os_type}",
                     f"set os_type: {source.os_type}")
    if d.hyper_v_generation.upper() != source.hyper_v_generation:
        findings.add("image_definition.hyper_v_generation", d.hyper_v_generation,
                     f"the source VM is Hyper-V generation {source.hyper_v_generation}",
                     f"set hyper_v_generation: {source.hyper_v_generation} (a definition's generation must match the "
                     "image)")


def check_gallery(cfg: Any, gallery: Mapping[str, Any] | None, definition: Mapping[str, Any] | None,
                  findings: Findings) -> None:
    """An existing gallery is in the configured region; notes what will be created."""
    if gallery is None:
        findings.info(f"Gallery {cfg.gallery_id} does not exist yet: it will be created in {cfg.gallery.location}")
        return
    region = ids.region_key(gallery.get("location"))
    if region != cfg.gallery.location:
        findings.add("gallery.location", cfg.gallery.location, f"the existing gallery {cfg.gallery.name} is in {region}",
                     f"set gallery.location: {region}")
    if definition is None:
        findings.info(f"Image definition {cfg.image_definition_id} does not exist yet: it will be created")


def check_security_and_definition(cfg: Any, source: SourceFacts | None, definition: Mapping[str, Any] | None,
                                  findings: Findings) -> dict | None:
    """Decide the image path from the VM's security type (:func:`security.decide`) and check an existing
    definition against the config and that decision (:func:`existing_definition_problems`). Returns the
    decision, or None when a problem was found."""
    decision = None
    decide_error = None
    if source is not None:
        try:
            decision = security_rules.decide(source.security_profile, source.hyper_v_generation,
                                             vm_id=cfg.source_vm_id or source.vm_id)
        except InvalidInput as err:
            decide_error = err
    problems: list[InvalidInput] = []
    if definition is not None:
        d = cfg.image_definition
        problems = existing_definition_problems(
            definition, name=d.name, definition_id=cfg.image_definition_id, os_type=d.os_type,
            hyper_v_generation=d.hyper_v_generation, security=decision, blame="config")
        findings.extend(problems)
        ident = (definition.get("properties") or {}).get("identifier") or {}
        wanted = {"publisher": d.publisher, "offer": d.offer, "sku": d.sku}
        if any(str(ident.get(k, "")).lower() != str(v).lower() for k, v in wanted.items()):
            findings.warning(f"The existing image definition {d.name} has identifier {ident}, the config says "
                             f"{wanted}; the existing one is kept")
    if decide_error is not None:
        findings.add_error(decide_error)
    if decision is None or problems:
        return None
    if decision["image_path"] != security_rules.PATH_MANAGED_IMAGE:
        findings.info(f"Source VM {source.vm_name} is {decision['security_type']}: no managed image can capture it, so "
                      "the version is made from the disk snapshots, in a definition with SecurityType "
                      f"{decision['definition_feature']}, and pools set securityProfile "
                      f"{decision['pool_security_profile']}")
    return decision


def check_batch_provider(subscription_id: str, registration_state: str | None, findings: Findings) -> None:
    """``Microsoft.Batch`` is registered in the gallery's subscription (Batch reads the image from there)."""
    state = registration_state or "NotRegistered"
    if str(state).lower() != "registered":
        findings.add("gallery.subscription_id", subscription_id,
                     f"the resource provider Microsoft.Batch is {state} in the gallery's subscription, so Batch "
                     "cannot use images from this gallery",
                     f"register it once (az provider register --namespace Microsoft.Batch --subscription "
                     f"{subscription_id}); preflight never registers anything itself")
    else:
        findings.info(f"Microsoft.Batch is registered in subscription {subscription_id}")


# -- pools ------------------------------------------------------------------------------------------------------


@dataclass
class PoolFacts:
    """What ARM and Airflow say about one configured pool.

    :param account: the Batch account's ARM body (None: 404). :param conn_found: the Batch connection exists.
    :param uses_shared_key: it has login/password. :param account_url: its account_url (None with
        ``account_url_error``, the InvalidInput reading it raised). :param describe: how to name the connection in logs.
    """

    account: Mapping[str, Any] | None
    conn_found: bool = True
    uses_shared_key: bool = False
    account_url: str | None = None
    account_url_error: InvalidInput | None = None
    describe: str = ""


def check_pools(cfg: Any, facts: Sequence[PoolFacts], findings: Findings) -> tuple[dict[str, str], list[str]]:
    """Each pool's Batch account exists, its region matches the config (or is added to the target regions, with
    a warning), and its connection uses Entra ID and points at that account.

    :return: ``(account id -> region, regions to add to target_regions)``.
    """
    account_regions: dict[str, str] = {}
    extra_regions: list[str] = []
    targets = {r.name for r in cfg.target_regions}
    for i, (pool, fact) in enumerate(zip(cfg.pools, facts)):
        path = f"pools[{i}]"
        endpoint = None
        if fact.account is None:
            findings.add(f"{path}.batch_account_id", pool.batch_account_id, "no such Batch account",
                         "give the id of an existing Batch account (az batch account show --query id)")
        else:
            region = ids.region_key(fact.account.get("location"))
            endpoint = (fact.account.get("properties") or {}).get("accountEndpoint")
            account_regions[pool.batch_account_id] = region
            if pool.batch_account_location and pool.batch_account_location != region:
                findings.add(f"{path}.batch_account_location", pool.batch_account_location,
                             f"the Batch account {pool.account_name} is in {region}",
                             f"set batch_account_location: {region} (or null to look it up)")
            elif region not in targets and region not in extra_regions:
                extra_regions.append(region)
                findings.warning(
                    f"WARNING: the Batch account {pool.account_name} of {path} is in {region}, which is not among "
                    f"target_regions ({', '.join(sorted(targets))}). Batch needs an image replica in the account's "
                    f"region, so {region} is added to the target regions for this run. Add {{name: {region}}} to "
                    "target_regions in the pipeline config to make this explicit.")
        if not fact.conn_found:
            findings.add(f"{path}.batch_conn_id", pool.batch_conn_id, NO_BATCH_CONN, NO_BATCH_CONN_FIX)
            continue
        if fact.uses_shared_key:  # the same refusal as BatchPoolHook.require_entra_id
            findings.add_error(shared_key_refused(f"{path}.batch_conn_id", pool.batch_conn_id))
        if fact.account_url_error is not None:
            findings.add_error(fact.account_url_error)
            continue
        if endpoint and _norm_url(fact.account_url) != _norm_url(endpoint):
            findings.add(f"{path}.batch_conn_id", pool.batch_conn_id,
                         f"the connection's account_url {fact.account_url} is not the endpoint of Batch account "
                         f"{pool.account_name} ({endpoint})",
                         f"set extra account_url to https://{_norm_url(endpoint)}, or use the connection of that "
                         "account")
        findings.info(f"Pool {path}: Batch account {pool.account_name} ({account_regions.get(pool.batch_account_id)}), "
                      f"connection {fact.describe}")
    return account_regions, extra_regions


def autoscale_formula_problem(pool_index: int, formula: str, serving_pool_id: str,
                              run: Mapping[str, Any] | None) -> InvalidInput | None:
    """The refusal of a template's ``autoScaleFormula`` that Batch rejected when evaluated on the serving pool
    (``POST /pools/{id}/evaluateautoscale``; ``run`` is Batch's AutoScaleRun JSON, ``{"timestamp", "results"}`` or
    ``{"timestamp", "error": {"code", "message", "values": [{"name", "value"}]}}``), or None when it evaluated."""
    error = (run or {}).get("error")
    if not error:
        return None
    details = "; ".join(f"{v.get('name')}: {v.get('value')}" for v in error.get("values") or [] if isinstance(v, dict))
    return InvalidInput(
        f"pools[{pool_index}].template.autoScaleFormula", formula,
        f"Batch rejects this formula when evaluating it on the serving pool {serving_pool_id}: "
        f"{error.get('code') or 'error'}: {error.get('message') or ''}" + (f" ({details})" if details else ""),
        "correct the formula (Batch's autoscale language: learn.microsoft.com/azure/batch/batch-automatic-scaling); "
        f"try it with az batch pool autoscale evaluate --pool-id {serving_pool_id} --auto-scale-formula '...'")
