"""Preflight: check every rule of the recipe against Azure before anything is created, and write the plan.

:class:`PreflightOperator` makes **no writes** (only ARM and Batch GETs). It checks what Microsoft's
recipe ("create a Batch pool from a Shared Image Gallery image") demands, collects *all* problems and
fails once with every one of them - each naming the input (config field), its value and the fix - as an
:class:`~airflow.sdk.exceptions.AirflowFailException` (bad input: retrying cannot help).

Checks:

* the source VM exists, its OS and data disks are managed, it has no VM extensions;
* its base image is a first-party marketplace image (no purchase plan, publisher in
  :data:`FIRST_PARTY_PUBLISHERS`) that Batch lists in ``GET /supportedimages`` (asked through the first
  pool's Batch connection); ``nodeAgentSKUId`` comes from that list - an override (operator argument, or
  the config's ``node_agent_sku_id``) must be a known agent for the image's OS and lineage;
* the image definition's ``os_type`` / ``hyper_v_generation`` match the VM; an existing definition must
  be Generalized with the same OS type and generation; an existing gallery must be in the configured
  region;
* ``Microsoft.Batch`` is registered in the gallery's subscription (Batch reads the image from there);
* each pool's Batch account exists; its region is a target region (added, with a WARNING, when the
  config leaves it out); each Batch connection uses Entra ID, not a Shared Key, and points at that
  account;
* version name (from the run's logical date and ``rebuild``), pool ids (prefix + version <= 64
  characters) and replica counts, through :mod:`batch_images.rules`.

Output: the plan dict (returned, so XCom ``return_value``) and XCom ``pools``: the per-pool specs for
``BatchPoolOperator`` / ``BatchPoolSteadySensor`` (``pool_spec=``). Airflow 3 maps only over return values,
so a DAG maps over :class:`PoolSpecsOperator`'s output (the same list) rather than over the ``pools`` key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from batch_images.pool_facts import iso_duration
from batch_images.rules import ids, naming, sizing
from batch_images.rules import security as security_rules
from batch_images.rules.config import PipelineConfig, TargetRegionConfig
from batch_images.rules.errors import InvalidInput

if TYPE_CHECKING:
    from airflow.sdk import Context

# Marketplace publishers whose images are first-party (Microsoft's own, and the distributions Azure
# endorses and Batch lists). Third-party images - anything sold with a purchase plan - cannot be a base.
FIRST_PARTY_PUBLISHERS = frozenset({
    "microsoftwindowsserver", "microsoftwindowsdesktop", "microsoft-azure-batch", "microsoft-dsvm",
    "microsoftcblmariner", "microsoft-hpc", "microsofthpc", "canonical", "debian", "redhat", "suse",
    "openlogic", "almalinux", "oracle", "kinvolk", "credativ",
})
NO_BATCH_CONN = "no such Airflow connection"
NO_BATCH_CONN_FIX = ("create an azure_batch connection with extras account_url and credential_conn_id (no login or "
                     "password), or correct the id")
MIN_POOL_RESIZE_TIMEOUT = sizing.DEFAULT_RESIZE_TIMEOUT  # never create a pool with less than 15 minutes


def canonical_region(name: str | None) -> str:
    """'West Europe' / 'westeurope' -> 'westeurope' (how ARM ids and configs spell regions)."""
    return (name or "").replace(" ", "").lower()


def _norm_url(url: str | None) -> str:
    text = (url or "").strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.rstrip("/")


class _Problems:
    def __init__(self) -> None:
        self.items: list[InvalidInput] = []

    def add(self, field: str, value: Any, reason: str, fix: str) -> None:
        self.add_error(InvalidInput(field, value, reason, fix))

    def add_error(self, err: InvalidInput) -> None:
        if all(str(e) != str(err) for e in self.items):  # one problem, one line
            self.items.append(err)

    def __bool__(self) -> bool:
        return bool(self.items)


class PreflightOperator(BaseOperator):
    """Check the recipe's rules against Azure (read-only) and return the run's plan.

    :param pipeline: the pipeline config as plain data (``PipelineConfig.to_dict()``). (templated)
    :param rebuild: the ``N`` of version ``YYYY.MMDD.N`` (usually ``"{{ params.rebuild }}"``). (templated)
    :param arm_conn_id: Azure (ARM) connection; default: the config's ``arm_conn_id``. (templated)
    :param node_agent_sku_id: override of the node agent SKU; default: the config's, else derived from
        Batch's supported images. (templated)
    :return: the plan (see docs/architecture.md); XCom ``pools`` holds the per-pool specs.
    """

    template_fields: Sequence[str] = ("pipeline", "rebuild", "arm_conn_id", "node_agent_sku_id")
    ui_color = "#c8e6c9"

    def __init__(self, *, pipeline: dict, rebuild: int | str = 0, arm_conn_id: str | None = None,
                 node_agent_sku_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.rebuild = rebuild
        self.arm_conn_id = arm_conn_id
        self.node_agent_sku_id = node_agent_sku_id

    # -- inputs -----------------------------------------------------------------------------------------------

    def _config(self) -> PipelineConfig:
        try:
            return PipelineConfig.from_dict(self.pipeline, "pipeline")
        except InvalidInput as err:
            raise AirflowFailException(f"Preflight: the pipeline config is not valid; nothing was changed in Azure.\n"
                                       f"  1. {err}") from None
        except (TypeError, ValueError) as err:
            raise AirflowFailException(f"Preflight: the pipeline config is not valid: {err}") from None

    def _rebuild(self, problems: _Problems) -> int | None:
        value = self.rebuild
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.add("params.rebuild", self.rebuild, "the rebuild number is a whole number >= 0",
                         "trigger the DAG with rebuild 0 for the first build of a date, 1 for the next, ...")
            return None
        return value

    @staticmethod
    def _logical_date(context: Context) -> date | datetime | None:
        logical = context.get("logical_date")
        if logical is not None:
            return logical
        dag_run = context.get("dag_run")
        return getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict:
        """Run the checks; bad input of any kind fails the task at once (no retry can fix it).

        Besides the problems the checks collect, a connection that is missing or whose extras are not valid
        (e.g. a ``ca_bundle`` that names no file, no ``subscriptionId``) surfaces as InvalidInput /
        AirflowNotFoundException from the hooks: it becomes the same AirflowFailException. Azure's transient
        answers (throttling, 5xx, network errors) still raise as they are, so Airflow retries the task.
        """
        try:
            return self._execute(context)
        except (InvalidInput, AirflowNotFoundException) as err:
            self.log.error("Preflight: %s", err)
            raise AirflowFailException(
                f"Preflight: a connection or config value is not valid; nothing was changed in Azure.\n  1. {err}"
            ) from None

    def _execute(self, context: Context) -> dict:
        from batch_images.hooks.arm import ArmComputeHook

        cfg = self._config()
        problems = _Problems()
        dag_run = context.get("dag_run")
        dag_id = self.dag_id
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or "manual"
        logical = self._logical_date(context)

        version: str | None = None
        rebuild = self._rebuild(problems)
        if rebuild is not None:
            try:
                version = naming.version_name(logical, rebuild)  # type: ignore[arg-type]
            except InvalidInput as err:
                problems.add_error(err)
        arm_conn_id = self.arm_conn_id or cfg.arm_conn_id
        arm = ArmComputeHook(azure_conn_id=arm_conn_id)
        self.log.info("Preflight of pipeline %s: run %s, logical date %s, version %s", cfg.dag_id, run_id,
                      logical, version)

        source = self._check_vm(arm, cfg, problems)
        agent = self._check_supported_image(cfg, source, problems)
        self._check_definition(arm, cfg, source, problems)
        security = self._check_security_type(arm, cfg, source, problems)
        self._check_batch_provider(arm, cfg, problems)
        account_regions, extra_regions = self._check_pools(arm, cfg, problems)

        cfg2 = cfg
        if extra_regions:
            cfg2 = dataclasses.replace(cfg, target_regions=cfg.target_regions + tuple(
                TargetRegionConfig(name=r) for r in extra_regions))
        replica_plan = None
        try:
            replica_plan = cfg2.replica_plan(account_regions)
        except InvalidInput as err:
            problems.add_error(err)

        pool_ids: list[str | None] = []
        if version is not None:
            for i, pool in enumerate(cfg.pools):
                try:
                    pool_ids.append(naming.pool_id(pool.pool_id_prefix, version, f"pools[{i}].pool_id_prefix"))
                except InvalidInput as err:
                    problems.add_error(err)
                    pool_ids.append(None)

        if problems or source is None or version is None or replica_plan is None or agent is None:
            self._fail(cfg, problems)

        assert version is not None and source is not None and replica_plan is not None and agent is not None
        plan = self._plan(cfg, cfg2, context, dag_id, run_id, logical, version, arm_conn_id, source, agent,
                          account_regions, replica_plan, pool_ids)
        if security is not None:
            security_rules.apply_to_plan(plan, security)
        context["ti"].xcom_push(key="pools", value=plan["pools"])
        self.log.info("Preflight passed: version %s, %d pool(s): %s", version, len(plan["pools"]),
                      ", ".join(p["pool_id"] for p in plan["pools"]))
        return plan

    def _fail(self, cfg: PipelineConfig, problems: _Problems) -> None:
        if not problems:  # a check could not run for a reason already reported as an exception
            problems.add("pipeline", cfg.dag_id, "preflight could not complete its checks", "see the task log")
        lines = [f"  {i}. {err}" for i, err in enumerate(problems.items, 1)]
        for err in problems.items:
            self.log.error("Preflight: %s", err)
        raise AirflowFailException(
            f"Preflight found {len(problems.items)} problem(s) in pipeline {cfg.dag_id}; nothing was changed in "
            "Azure:\n" + "\n".join(lines))

    # -- the source VM ----------------------------------------------------------------------------------------

    def _check_vm(self, arm, cfg: PipelineConfig, problems: _Problems) -> dict | None:
        from azure.core.exceptions import ResourceNotFoundError  # the Azure SDK loads in the worker, not at DAG parse

        vm_id = cfg.source_vm_id
        try:
            vm = arm.get_vm(vm_id, instance_view=True)
        except ResourceNotFoundError:
            problems.add("source_vm_id", vm_id, "no such virtual machine (or its resource group does not exist)",
                         "give the resource id of the prepared VM (az vm show -g <rg> -n <name> --query id)")
            return None
        props = vm.get("properties") or {}
        storage = props.get("storageProfile") or {}
        os_disk = storage.get("osDisk") or {}
        ok = True

        os_disk_id = (os_disk.get("managedDisk") or {}).get("id")
        unmanaged = [] if os_disk_id else ["OS disk"]
        data_disks = []
        for d in storage.get("dataDisks") or []:
            did = (d.get("managedDisk") or {}).get("id")
            if not did:
                unmanaged.append(f"data disk LUN {d.get('lun')}")
            data_disks.append({"lun": d.get("lun"), "disk_id": did, "size_gb": d.get("diskSizeGB")})
        if unmanaged:
            ok = False
            problems.add("source_vm_id", vm_id,
                         f"the VM uses unmanaged disks ({', '.join(unmanaged)} stored as VHD blobs); snapshots and "
                         "images for Batch need managed disks",
                         "rebuild the prepared VM with managed disks (the default when creating a VM), or convert it "
                         "with az vm convert, then point source_vm_id at it")

        extensions = [r.get("name") for r in (vm.get("resources") or [])
                      if "extensions" in str(r.get("type") or r.get("id") or "").lower()]
        if not extensions:
            try:
                extensions = [e.get("name") for e in arm.list_vm_extensions(vm_id)]
            except ResourceNotFoundError:
                extensions = []
        if extensions:
            ok = False
            problems.add("source_vm_id", vm_id,
                         f"the VM has VM extensions installed ({', '.join(sorted(filter(None, extensions)))}); images "
                         "with preinstalled extensions can break Batch pool deployment",
                         "remove the extensions (az vm extension delete), or prepare a new VM without extensions, "
                         "and point source_vm_id at it")

        ref = storage.get("imageReference") or {}
        plan = vm.get("plan")
        publisher = (ref.get("publisher") or "").lower()
        base = {"publisher": ref.get("publisher"), "offer": ref.get("offer"), "sku": ref.get("sku"),
                "version": ref.get("exactVersion") or ref.get("version")}
        lineage = ":".join(str(base[k]) for k in ("publisher", "offer", "sku"))
        base_ok = False
        if plan:
            ok = False
            problems.add("source_vm_id", vm_id,
                         f"the VM's base image {lineage} is a third-party marketplace image with a purchase plan "
                         f"({plan.get('publisher')}/{plan.get('product')}/{plan.get('name')}); Batch only accepts "
                         "first-party base images",
                         "prepare the VM from a first-party image that Batch supports, e.g. "
                         "canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2")
        elif not publisher:
            ok = False
            problems.add("source_vm_id", vm_id,
                         f"the VM was not created from a marketplace image (imageReference {ref.get('id') or ref}); "
                         "Batch needs a first-party marketplace image at the root of the image",
                         "prepare the VM from a first-party marketplace image that Batch supports")
        elif publisher not in FIRST_PARTY_PUBLISHERS:
            ok = False
            problems.add("source_vm_id", vm_id,
                         f"the VM's base image publisher {base['publisher']!r} ({lineage}) is not a first-party "
                         "publisher",
                         f"prepare the VM from a first-party image (publishers: {', '.join(sorted(FIRST_PARTY_PUBLISHERS))})")
        else:
            base_ok = True

        os_type = os_disk.get("osType") or ("Windows" if "windowsConfiguration" in (props.get("osProfile") or {})
                                            else "Linux")
        os_disk_size = os_disk.get("diskSizeGB")
        generation = None
        if os_disk_id:
            try:
                disk = arm.get_disk(os_disk_id)
                dprops = disk.get("properties") or {}
                generation = dprops.get("hyperVGeneration")
                os_disk_size = dprops.get("diskSizeGB") or os_disk_size
            except ResourceNotFoundError:
                ok = False
                problems.add("source_vm_id", vm_id, f"the VM's OS disk {os_disk_id} does not exist",
                             "repair the VM (its OS disk is missing) or prepare a new one")
        for d in data_disks:
            if d["disk_id"] and d["size_gb"] is None:
                try:
                    d["size_gb"] = ((arm.get_disk(d["disk_id"]).get("properties") or {}).get("diskSizeGB"))
                except ResourceNotFoundError:
                    pass
        generation = generation or (props.get("instanceView") or {}).get("hyperVGeneration") or "V1"
        arm_id = ids.parse_arm_id(vm_id, "source_vm_id", ids.VIRTUAL_MACHINE)
        source = {
            "vm_id": vm.get("id") or vm_id,
            "vm_name": vm.get("name") or arm_id.name,
            "location": canonical_region(vm.get("location")),
            "os_disk_id": os_disk_id,
            "os_disk_size_gb": os_disk_size,
            "data_disks": data_disks,
            "os_type": "Windows" if str(os_type).lower() == "windows" else "Linux",
            "hyper_v_generation": "V2" if str(generation).upper() == "V2" else "V1",
            "base_image": base,
            "_ok": ok,
            "_base_ok": base_ok,
        }
        self.log.info("Source VM %s: %s, %s, base image %s (%s), OS disk %s GB, %d data disk(s)%s",
                      source["vm_name"], source["os_type"], source["hyper_v_generation"], lineage, base["version"],
                      os_disk_size, len(data_disks), "" if ok else " - NOT usable, see the problems below")
        return source

    # -- Batch's supported images and the node agent ----------------------------------------------------------

    def _check_supported_image(self, cfg: PipelineConfig, source: dict | None, problems: _Problems) -> str | None:
        from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker, not at DAG parse

        override = self.node_agent_sku_id or cfg.node_agent_sku_id
        if source is None:
            return None
        base = source["base_image"]
        if not source["_base_ok"]:
            return None  # already reported: not a first-party marketplace image
        conn_id = cfg.pools[0].batch_conn_id
        try:
            images = BatchPoolHook(conn_id).list_supported_images()
        except AirflowNotFoundException:
            problems.add("pools[0].batch_conn_id", conn_id, NO_BATCH_CONN, NO_BATCH_CONN_FIX)
            return None
        key = tuple(str(base.get(k) or "").lower() for k in ("publisher", "offer", "sku"))
        lineage = ":".join(str(base.get(k)) for k in ("publisher", "offer", "sku"))
        match = next((i for i in images if (str(i["publisher"]).lower(), str(i["offer"]).lower(),
                                            str(i["sku"]).lower()) == key), None)
        if match is None:
            same = sorted({f"{i['publisher']}:{i['offer']}:{i['sku']}" for i in images
                           if str(i["publisher"]).lower() == key[0]})
            problems.add("source_vm_id", source["vm_id"],
                         f"the VM's base image {lineage} is not in Batch's supported images (GET /supportedimages "
                         f"through connection {conn_id})",
                         "prepare the VM from an image Batch supports"
                         + (f", e.g. {', '.join(same[:4])}" if same else ""))
            return None
        derived = match["node_agent_sku_id"]
        os_of_image = str(match.get("os_type") or "").lower()
        if os_of_image and os_of_image != source["os_type"].lower():
            problems.add("source_vm_id", source["vm_id"],
                         f"Batch lists {lineage} as a {os_of_image} image, the VM's OS disk says {source['os_type']}",
                         "check the VM; its OS type and base image disagree")
        if match.get("verification_type") and str(match["verification_type"]).lower() != "verified":
            self.log.warning("Batch lists %s as %s (not verified) for %s", lineage, match["verification_type"], derived)
        if not override:
            self.log.info("Node agent SKU derived from Batch's supported images: %s (base image %s)", derived, lineage)
            return derived
        agent_images = [i for i in images if str(i["node_agent_sku_id"]).lower() == override.strip().lower()]
        fix = f"use {derived!r} (what Batch pairs with {lineage}), or remove the override to derive it"
        if not agent_images:
            problems.add("node_agent_sku_id", override, "Batch does not list this node agent SKU", fix)
            return None
        agent_os = {str(i.get("os_type") or "").lower() for i in agent_images}
        if source["os_type"].lower() not in agent_os:
            problems.add("node_agent_sku_id", override,
                         f"it is a node agent for {'/'.join(sorted(agent_os))} images, but the image is "
                         f"{source['os_type']} ({lineage})", fix)
            return None
        if not any((str(i["publisher"]).lower(), str(i["offer"]).lower(), str(i["sku"]).lower()) == key
                   for i in agent_images):
            problems.add("node_agent_sku_id", override,
                         f"Batch does not pair this node agent with the base image {lineage} (it pairs it with "
                         f"{', '.join(sorted({i['offer'] + ':' + i['sku'] for i in agent_images})[:4])})", fix)
            return None
        self.log.info("Node agent SKU override %s accepted for %s", override, lineage)
        return agent_images[0]["node_agent_sku_id"]

    # -- gallery and image definition -------------------------------------------------------------------------

    def _check_definition(self, arm, cfg: PipelineConfig, source: dict | None, problems: _Problems) -> None:
        d = cfg.image_definition
        if source is not None:
            if d.os_type.lower() != source["os_type"].lower():
                problems.add("image_definition.os_type", d.os_type,
                             f"the source VM is {source['os_type']}", f"set os_type: {source['os_type']}")
            if d.hyper_v_generation.upper() != source["hyper_v_generation"]:
                problems.add("image_definition.hyper_v_generation", d.hyper_v_generation,
                             f"the source VM is Hyper-V generation {source['hyper_v_generation']}",
                             f"set hyper_v_generation: {source['hyper_v_generation']} (a definition's generation must "
                             "match the image)")
        gallery = arm.find_resource(cfg.gallery_id)
        if gallery is not None and canonical_region(gallery.get("location")) != cfg.gallery.location:
            problems.add("gallery.location", cfg.gallery.location,
                         f"the existing gallery {cfg.gallery.name} is in {canonical_region(gallery.get('location'))}",
                         f"set gallery.location: {canonical_region(gallery.get('location'))}")
        if gallery is None:
            self.log.info("Gallery %s does not exist yet: it will be created in %s", cfg.gallery_id,
                          cfg.gallery.location)
            return
        existing = arm.find_resource(cfg.image_definition_id)
        if existing is None:
            self.log.info("Image definition %s does not exist yet: it will be created", cfg.image_definition_id)
            return
        props = existing.get("properties") or {}
        field = "image_definition.name"
        state = props.get("osState")
        if str(state).lower() != "generalized":
            problems.add(field, d.name,
                         f"the existing image definition {cfg.image_definition_id} is {state}; Batch pools only take "
                         "Generalized images (and a definition's osState cannot change)",
                         "use a new image definition name (it will be created Generalized), or delete the specialized "
                         "definition")
        if str(props.get("osType")).lower() != d.os_type.lower():
            problems.add("image_definition.os_type", d.os_type,
                         f"the existing image definition {d.name} has osType {props.get('osType')}",
                         f"set os_type: {props.get('osType')} if the VM is that, or use a new definition name")
        generation = props.get("hyperVGeneration") or "V1"
        if str(generation).upper() != d.hyper_v_generation.upper():
            problems.add("image_definition.hyper_v_generation", d.hyper_v_generation,
                         f"the existing image definition {d.name} has hyperVGeneration {generation}",
                         f"set hyper_v_generation: {generation} if the VM is that, or use a new definition name")
        ident = props.get("identifier") or {}
        wanted = {"publisher": d.publisher, "offer": d.offer, "sku": d.sku}
        if any(str(ident.get(k, "")).lower() != str(v).lower() for k, v in wanted.items()):
            self.log.warning("The existing image definition %s has identifier %s, the config says %s; the existing "
                             "one is kept", d.name, ident, wanted)

    def _check_security_type(self, arm, cfg: PipelineConfig, source: dict | None,
                             problems: _Problems) -> dict | None:
        """Read the source VM's ``securityProfile`` and decide the image path (:func:`security_rules.decide`).

        A Trusted Launch VM goes snapshots -> version (no managed image can capture it) into a definition with a
        Trusted Launch ``SecurityType`` feature, and its pools get the matching ``securityProfile``. An existing
        definition must have that feature. Returns the decision, or None after adding the problem.
        """
        if source is None:
            return None
        vm = arm.get_vm(cfg.source_vm_id)
        profile = (vm.get("properties") or {}).get("securityProfile")
        try:
            decision = security_rules.decide(profile, source["hyper_v_generation"], vm_id=cfg.source_vm_id)
        except InvalidInput as err:
            problems.add_error(err)
            return None
        if arm.find_resource(cfg.gallery_id) is not None:
            existing = arm.find_resource(cfg.image_definition_id)
            if existing is not None:
                err = security_rules.check_definition_feature(
                    (existing.get("properties") or {}).get("features"), decision, definition_id=cfg.image_definition_id)
                if err is not None:
                    problems.add_error(err)
                    return None
        if decision["image_path"] != security_rules.PATH_MANAGED_IMAGE:
            self.log.info("Source VM %s is %s: no managed image can capture it, so the version is made from the disk "
                          "snapshots, in a definition with SecurityType %s, and pools set securityProfile %s",
                          source["vm_name"], decision["security_type"], decision["definition_feature"],
                          decision["pool_security_profile"])
        return decision

    def _check_batch_provider(self, arm, cfg: PipelineConfig, problems: _Problems) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        sub = cfg.gallery.subscription_id
        try:
            provider = arm.arm_get(f"/subscriptions/{sub}/providers/Microsoft.Batch")
        except ResourceNotFoundError:
            provider = {}
        state = provider.get("registrationState") or "NotRegistered"
        if str(state).lower() != "registered":
            problems.add("gallery.subscription_id", sub,
                         f"the resource provider Microsoft.Batch is {state} in the gallery's subscription, so Batch "
                         "cannot use images from this gallery",
                         f"register it once (az provider register --namespace Microsoft.Batch --subscription {sub}); "
                         "preflight never registers anything itself")
        else:
            self.log.info("Microsoft.Batch is registered in subscription %s", sub)

    # -- pools ------------------------------------------------------------------------------------------------

    def _check_pools(self, arm, cfg: PipelineConfig, problems: _Problems) -> tuple[dict[str, str], list[str]]:
        from azure.core.exceptions import ResourceNotFoundError

        from batch_images.hooks.batch import BatchPoolHook

        account_regions: dict[str, str] = {}
        extra_regions: list[str] = []
        targets = {r.name for r in cfg.target_regions}
        for i, pool in enumerate(cfg.pools):
            path = f"pools[{i}]"
            try:
                account = arm.arm_get(pool.batch_account_id)
            except ResourceNotFoundError:
                problems.add(f"{path}.batch_account_id", pool.batch_account_id, "no such Batch account",
                             "give the id of an existing Batch account (az batch account show --query id)")
                account = None
            endpoint = None
            if account is not None:
                region = canonical_region(account.get("location"))
                endpoint = (account.get("properties") or {}).get("accountEndpoint")
                account_regions[pool.batch_account_id] = region
                if pool.batch_account_location and pool.batch_account_location != region:
                    problems.add(f"{path}.batch_account_location", pool.batch_account_location,
                                 f"the Batch account {pool.account_name} is in {region}",
                                 f"set batch_account_location: {region} (or null to look it up)")
                elif region not in targets and region not in extra_regions:
                    extra_regions.append(region)
                    self.log.warning(
                        "WARNING: the Batch account %s of %s is in %s, which is not among target_regions (%s). Batch "
                        "needs an image replica in the account's region, so %s is added to the target regions for "
                        "this run. Add {name: %s} to target_regions in the pipeline config to make this explicit.",
                        pool.account_name, path, region, ", ".join(sorted(targets)), region, region)
            try:
                hook = BatchPoolHook(pool.batch_conn_id)
                hook.load_connection()
            except AirflowNotFoundException:
                problems.add(f"{path}.batch_conn_id", pool.batch_conn_id, NO_BATCH_CONN, NO_BATCH_CONN_FIX)
                continue
            if hook.uses_shared_key:
                problems.add(f"{path}.batch_conn_id", pool.batch_conn_id,
                             "the connection authenticates with a Shared Key (login/password = account name/key); "
                             "Batch refuses Shared Key for pools on gallery images",
                             "remove login and password from the connection and set extra credential_conn_id to an "
                             "Entra ID (azure) connection whose identity has a role on the Batch account and the "
                             "gallery image")
            try:
                url = hook.account_url
            except InvalidInput as err:
                problems.add_error(err)
                continue
            if endpoint and _norm_url(url) != _norm_url(endpoint):
                problems.add(f"{path}.batch_conn_id", pool.batch_conn_id,
                             f"the connection's account_url {url} is not the endpoint of Batch account "
                             f"{pool.account_name} ({endpoint})",
                             f"set extra account_url to https://{_norm_url(endpoint)}, or use the connection of that "
                             "account")
            self.log.info("Pool %s: Batch account %s (%s), connection %s", path, pool.account_name,
                          account_regions.get(pool.batch_account_id), hook.describe())
        return account_regions, extra_regions

    # -- the plan ---------------------------------------------------------------------------------------------

    def _plan(self, cfg: PipelineConfig, cfg2: PipelineConfig, context: Context, dag_id: str, run_id: str,
              logical: Any, version: str, arm_conn_id: str, source: dict, agent: str,
              account_regions: dict[str, str], replica_plan: dict, pool_ids: list[str | None]) -> dict:
        g = cfg.gallery
        d = cfg.image_definition
        location = source.get("location") or g.location
        source = {k: v for k, v in source.items() if k not in ("_ok", "_base_ok", "location")}
        tags = naming.resource_tags(dag_id, run_id, version)
        target_regions = cfg2.publishing_target_regions(account_regions)
        rule = sizing.parse_replica_rule(cfg.replica_rule)
        self.log.info("Replica sizing rule %s (%s):", rule.value, rule.source)
        for region, s in replica_plan.items():
            self.log.info("  %s: %d replica(s) for %d VM(s) - %s", region, s.count, s.vm_count, s.explanation)

        snapshot_names = {"os": naming.snapshot_name(source["vm_name"], naming.disk_role(None), version)}
        for disk in source["data_disks"]:
            role = naming.disk_role(disk["lun"])
            snapshot_names[role] = naming.snapshot_name(source["vm_name"], role, version)
        image_name = naming.image_name(d.name, version)

        pools = []
        allocation = timedelta(0)
        for i, pool in enumerate(cfg.pools):
            resize = pool.resize_timeout
            if resize < MIN_POOL_RESIZE_TIMEOUT:
                self.log.warning("pools[%d].resize_timeout_minutes %s is under 15 minutes; the pool gets 15 minutes",
                                 i, pool.resize_timeout_minutes)
                resize = MIN_POOL_RESIZE_TIMEOUT
            alloc = sizing.timeout_for_allocation(pool.vm_count, resize)
            allocation = max(allocation, alloc)
            pools.append({
                "batch_conn_id": pool.batch_conn_id,
                "batch_account_id": pool.batch_account_id,
                "account_location": account_regions.get(pool.batch_account_id) or pool.batch_account_location,
                "pool_id": pool_ids[i],
                "vm_size": pool.vm_size,
                "target_dedicated_nodes": pool.target_dedicated_nodes,
                "target_low_priority_nodes": pool.target_low_priority_nodes,
                "resize_timeout": iso_duration(resize),
                "start_task": pool.start_task.to_dict() if pool.start_task else None,
                "max_unhealthy_node_share": pool.max_unhealthy_node_share,
                "node_agent_sku_id": agent,
                "metadata": dict(tags),
                "allocation_timeout": alloc.total_seconds(),
            })

        size_gb = float((source["os_disk_size_gb"] or 0) + sum(dd["size_gb"] or 0 for dd in source["data_disks"])) or 1.0
        replication = sizing.timeout_for_replication(size_gb, len(target_regions),
                                                     sum(r["regional_replica_count"] for r in target_regions))
        snapshot = sizing.timeout_for_snapshot(size_gb)
        image = sizing.timeout_for_image(size_gb)
        # Azure checks endOfLifeDate against its clock: count from the build day for a backfill (rules/config.py).
        logical_day = logical.date() if isinstance(logical, datetime) else logical
        eol = cfg.end_of_life_date(logical_day, today=datetime.now(timezone.utc).date())
        if eol is not None and eol != cfg.end_of_life_date(logical_day):
            self.log.info("End-of-life date %s: %d days after today, which is later than the logical date %s "
                          "(Azure refuses an end-of-life date that is not in the future)",
                          eol, cfg.end_of_life_days, logical_day)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "version": version,
            "arm_conn_id": arm_conn_id,
            "location": location,
            "work_resource_group": cfg.work_rg,
            "work_subscription_id": g.subscription_id,
            "source": source,
            "gallery": {"subscription_id": g.subscription_id, "resource_group": g.resource_group, "name": g.name,
                        "location": g.location, "id": cfg.gallery_id},
            "image_definition": {"name": d.name, "os_type": d.os_type, "hyper_v_generation": d.hyper_v_generation,
                                 "publisher": d.publisher, "offer": d.offer, "sku": d.sku,
                                 "id": cfg.image_definition_id},
            "version_id": cfg.image_version_id(version),
            "image_name": image_name,
            "image_id": cfg.image_id(version),
            "snapshot_names": snapshot_names,
            "target_regions": target_regions,
            "replica_sizing": {"rule": rule.value,
                               "per_region": {r: {"count": s.count, "vm_count": s.vm_count,
                                                  "explanation": s.explanation} for r, s in replica_plan.items()}},
            "storage_account_type": cfg.storage_account_type,
            "end_of_life_date": eol.isoformat() if eol else None,
            "keep_versions": cfg.keep_versions,
            "node_agent_sku_id": agent,
            "pools": pools,
            "tags": tags,
            "timeouts": {"snapshot": snapshot.total_seconds(), "image": image.total_seconds(),
                         "replication": replication.total_seconds(), "allocation": allocation.total_seconds()},
        }


def pool_specs(plan: dict) -> list[dict]:
    """The per-pool specs of a plan (what XCom ``pools`` holds)."""
    pools = (plan or {}).get("pools")
    if not isinstance(pools, list):
        raise AirflowFailException(str(InvalidInput("plan", type(plan).__name__, "not a preflight plan (no pools list)",
                                                    "pass PreflightOperator's output")))
    return pools


class PoolSpecsOperator(BaseOperator):
    """Return the plan's ``pools`` list as this task's return value, so later tasks can map over it.

    Airflow 3 maps only over ``return_value`` XComs ("cannot map over XCom with custom key 'pools'"), and the
    plan is preflight's return value. Usage::

        specs = PoolSpecsOperator(task_id="pool_specs", plan=preflight.output).output
        pools = BatchPoolOperator.partial(task_id="create_pool", image_version_id=...).expand(pool_spec=specs)
        waits = BatchPoolSteadySensor.partial(task_id="wait_for_pool_steady").expand(pool_spec=specs)
        pools >> waits

    :param plan: the preflight plan. (templated)
    """

    template_fields: Sequence[str] = ("plan",)
    ui_color = "#c8e6c9"

    def __init__(self, *, plan: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Context) -> list[dict]:
        return pool_specs(self.plan)
