"""Gallery, image definition and image version, replicated to the target regions (step 3 of the recipe)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batch_images.operators._arm import (
    ArmOperationFailed,
    ArmWaitingOperator,
    is_ours,
    iso_end_of_life,
    plan_get,
    run_tags,
    same_id,
    shared_tags,
)
from batch_images.rules import ids, naming
from batch_images.rules.errors import InvalidInput
from batch_images.triggers.waiters.arm import failed_regions, region_key


def wire_target_regions(plan: Mapping[str, Any]) -> list[dict]:
    """``plan["target_regions"]`` (snake_case) -> ``publishingProfile.targetRegions`` (ARM wire format)."""
    default_sat = plan_get(plan, "storage_account_type", None)
    out = []
    for i, region in enumerate(plan_get(plan, "target_regions")):
        if not isinstance(region, Mapping) or not region.get("name"):
            raise InvalidInput(f"plan.target_regions[{i}]", region, "a target region needs a name",
                               "run the PreflightOperator and pass its plan")
        entry = {"name": region["name"],
                 "regionalReplicaCount": int(region.get("regional_replica_count") or 1)}
        sat = region.get("storage_account_type") or default_sat
        if sat:
            entry["storageAccountType"] = sat
        out.append(entry)
    return out


def check_definition(definition: Mapping[str, Any], plan: Mapping[str, Any]) -> None:
    """Refuse an existing image definition that cannot hold this image (InvalidInput: field, value, fix)."""
    props = definition.get("properties") or {}
    def_id = definition.get("id") or plan_get(plan, "image_definition.id", "")
    want_os = plan_get(plan, "image_definition.os_type", None) or plan_get(plan, "source.os_type")
    want_gen = plan_get(plan, "image_definition.hyper_v_generation", None) or plan_get(plan, "source.hyper_v_generation")
    os_state = props.get("osState")
    if os_state != "Generalized":
        raise InvalidInput(
            "image_definition.os_state", os_state,
            f"the existing image definition {def_id} is {os_state}; Batch pools only take Generalized images",
            "use another image_definition.name (a new definition is created Generalized), or delete that definition")
    have_os = props.get("osType")
    if (have_os or "").lower() != (want_os or "").lower():
        raise InvalidInput(
            "image_definition.os_type", have_os,
            f"the existing image definition {def_id} is for {have_os}, the source VM is {want_os}",
            "use another image_definition.name for this OS, or fix source_vm_id")
    have_gen = props.get("hyperVGeneration") or "V1"  # Azure's default when absent
    if have_gen.upper() != (want_gen or "").upper():
        raise InvalidInput(
            "image_definition.hyper_v_generation", have_gen,
            f"the existing image definition {def_id} is Hyper-V generation {have_gen}, the source VM is {want_gen}",
            f"use another image_definition.name for {want_gen} images, or a source VM of generation {have_gen}")


def definition_body(plan: Mapping[str, Any]) -> dict:
    d = plan_get(plan, "image_definition")
    return {
        "location": plan_get(plan, "gallery.location"),
        "tags": shared_tags(plan),
        "properties": {
            "osType": d.get("os_type") or plan_get(plan, "source.os_type"),
            "osState": "Generalized",
            "hyperVGeneration": d.get("hyper_v_generation") or plan_get(plan, "source.hyper_v_generation"),
            "identifier": {"publisher": d["publisher"], "offer": d["offer"], "sku": d["sku"]},
            "description": f"Batch pool images built by Airflow DAG {plan_get(plan, 'dag_id')}",
        },
    }


def version_body(plan: Mapping[str, Any], image_id: str) -> dict:
    publishing: dict[str, Any] = {
        "targetRegions": wire_target_regions(plan),
        "excludeFromLatest": False,
    }
    sat = plan_get(plan, "storage_account_type", None)
    if sat:
        publishing["storageAccountType"] = sat
    eol = iso_end_of_life(plan_get(plan, "end_of_life_date", None))
    if eol:
        publishing["endOfLifeDate"] = eol
    return {
        "location": plan_get(plan, "gallery.location"),
        "tags": run_tags(plan),
        "properties": {"storageProfile": {"source": {"id": image_id}}, "publishingProfile": publishing},
    }


def unrepairable_failure(version: Mapping[str, Any], home_region: str) -> bool:
    """A Failed version that removing and re-adding regions cannot fix: its create operation failed (no
    failed region reported, or every region failed with it) or the gallery's own region failed."""
    props = version.get("properties") or {}
    if props.get("provisioningState") not in ("Failed", "Canceled"):
        return False
    summary = (props.get("replicationStatus") or {}).get("summary") or []
    failed = [s for s in summary if (s.get("state") or "").lower() == "failed"]
    return not failed or any(region_key(s.get("region")) == region_key(home_region) for s in failed)


def version_source(version: Mapping[str, Any]) -> str | None:
    source = (((version.get("properties") or {}).get("storageProfile") or {}).get("source") or {})
    return source.get("id") or source.get("virtualMachineId")


class GalleryImageVersionOperator(ArmWaitingOperator):
    """Publish the managed image as gallery image version ``plan["version"]``, replicated to the target regions.

    1. Checks an existing image definition first (Generalized, same osType and hyperVGeneration) and an
       existing version (same source image) - before creating anything.
    2. Creates the gallery and the definition when missing (tagged managed-by).
    3. Creates the version: targetRegions from ``plan["target_regions"]`` (the replica counts and the rule
       that produced them are logged from ``plan["replica_sizing"]``), excludeFromLatest False,
       endOfLifeDate from the plan. An existing version from the same image is adopted; one from another
       source is an error.
    4. Waits for replication, gating on the per-region state (``gallery_replication`` waiter). A region
       that ends Failed is removed from targetRegions, the update is waited for, and the region is added
       back (Microsoft's workaround), up to ``max_region_retries`` times; then the task fails naming the
       region and Azure's details.

    :return: the image version id.
    """

    template_fields: Sequence[str] = ("plan", "image_id", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    timeout_key = "replication"

    def __init__(self, *, plan: Any, image_id: str, max_region_retries: int = 2,
                 create_timeout: float = 900.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.image_id = image_id
        self.max_region_retries = max_region_retries
        self.create_timeout = create_timeout

    # -- steps ----------------------------------------------------------------------------------------------------

    def execute(self, context: Any) -> str:
        plan = self.plan
        image_id = ids.parse_arm_id(self.image_id, "image_id", ids.IMAGE).id
        gallery = plan_get(plan, "gallery")
        gallery_id = gallery.get("id") or ids.gallery_id(gallery["subscription_id"], gallery["resource_group"],
                                                         gallery["name"]).id
        definition_id = plan_get(plan, "image_definition.id", None) or ids.gallery_image_id(
            gallery["subscription_id"], gallery["resource_group"], gallery["name"],
            plan_get(plan, "image_definition.name")).id
        version_id = plan_get(plan, "version_id")
        ids.parse_arm_id(version_id, "plan.version_id", ids.GALLERY_IMAGE_VERSION)

        # 1. checks before creating anything
        definition = self.hook.find_resource(definition_id)
        if definition is not None:
            check_definition(definition, plan)
        version = self.hook.find_resource(version_id, expand="ReplicationStatus") if definition else None
        if version is not None:
            source = version_source(version)
            if not same_id(source, image_id):
                raise ArmOperationFailed(
                    f"image version {version_id} already exists from source {source}, not {image_id}; Azure does "
                    "not allow changing a version's source (PropertyChangeNotAllowed). Fix: build the next "
                    "version number (rebuild N+1 of the date), or delete that version if it is not in use")
            if unrepairable_failure(version, gallery["location"]) and self.made_by_this_run(version):
                self.log.warning("Replacing image version %s: an earlier attempt of this run left it %s", version_id,
                                 (version.get("properties") or {}).get("provisioningState"))
                self.delete_and_wait([version_id])
                version = None

        # 2. gallery and definition
        _, created = self.hook.get_or_create_gallery(
            gallery_id, gallery["location"], shared_tags(plan),
            description="Images for Azure Batch pools (managed by Airflow)", timeout=self.create_timeout)
        self.log.info("Gallery %s %s", gallery_id, "created" if created else "exists")
        if definition is None:
            definition, created = self.hook.get_or_create_image_definition(
                definition_id, definition_body(plan), timeout=self.create_timeout)
            if not created:  # appeared concurrently: check it as above
                check_definition(definition, plan)
            self.log.info("Image definition %s %s", definition_id, "created" if created else "exists")

        # 3. version
        self.log_replica_sizing(plan)
        if version is not None:
            self.log.info("Adopting image version %s (from the same image %s, provisioningState %s)", version_id,
                          image_id, (version.get("properties") or {}).get("provisioningState"))
            self.warn_region_drift(version, plan)
        else:
            body = version_body(plan, image_id)
            self.hook.begin_create_version(version_id, body)
        return self.wait_replication(context, version_id, attempt=0)

    def made_by_this_run(self, version: Mapping[str, Any]) -> bool:
        return is_ours(version) and (version.get("tags") or {}).get(naming.TAG_RUN_ID) == \
            run_tags(self.plan)[naming.TAG_RUN_ID]

    def discard_failed_version(self, version_id: str) -> str:
        """Delete this run's Failed version (and wait), so nothing Failed is left and a retry creates it again.

        Returns what was done, for the failure message. A version another run made is left alone.
        """
        version = self.hook.find_resource(version_id)
        if version is None:
            return "the version no longer exists"
        if not self.made_by_this_run(version):
            return "the version was left in place: this run did not create it"
        self.log.warning("Deleting image version %s: it ended %s and was created by this run", version_id,
                         (version.get("properties") or {}).get("provisioningState"))
        self.delete_and_wait([version_id])
        return "the failed version (created by this run) was deleted; a retry of the task creates it again"

    def log_replica_sizing(self, plan: Mapping[str, Any]) -> None:
        sizing = plan_get(plan, "replica_sizing", {}) or {}
        per_region = {region_key(k): v for k, v in (sizing.get("per_region") or {}).items()}
        rule = sizing.get("rule", "unknown")
        for region in wire_target_regions(plan):
            info = per_region.get(region_key(region["name"])) or {}
            self.log.info("Target region %s: %d replica(s), %s storage; rule %s: %s", region["name"],
                          region["regionalReplicaCount"], region.get("storageAccountType", "default"), rule,
                          info.get("explanation") or f"{info.get('vm_count', '?')} VMs -> {info.get('count', '?')}")

    def warn_region_drift(self, version: Mapping[str, Any], plan: Mapping[str, Any]) -> None:
        have = {region_key(t.get("name")): t.get("regionalReplicaCount") for t in
                ((version.get("properties") or {}).get("publishingProfile") or {}).get("targetRegions") or []}
        want = {region_key(t["name"]): t["regionalReplicaCount"] for t in wire_target_regions(plan)}
        if have != want:
            self.log.warning("The adopted version's target regions %s differ from the plan's %s", have, want)

    def wait_replication(self, context: Any, version_id: str, attempt: int) -> Any:
        if not self.wait_for_completion:
            return version_id
        return self.wait(context, waiter_name="gallery_replication", waiter_args={"version_id": version_id},
                         timeout=self.timeout_seconds(self.plan), phase="replication", return_value=version_id,
                         extra={"attempt": attempt, "version_id": version_id})

    # -- after each wait ------------------------------------------------------------------------------------------

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        version_id = extra.get("version_id") or event.get("value")
        attempt = int(extra.get("attempt", 0))
        if phase == "replication":
            if event.get("status") == "success":
                self.log.info("%s", event.get("message"))
                return version_id
            state = event.get("state") or {}
            failed = failed_regions(state) if event.get("status") == "failure" else []
            if not failed:
                if event.get("status") == "failure" and state.get("provisioningState") in ("Failed", "Canceled"):
                    done = self.discard_failed_version(version_id)
                    raise ArmOperationFailed(f"image version {version_id}: {event.get('message')}; {done}")
                self.check_event(event, f"image version {version_id}")
            details = "; ".join(f"{r['region']}: {r.get('details') or 'no details'}" for r in failed)
            home = region_key(plan_get(self.plan, "gallery.location"))
            if any(region_key(r["region"]) == home for r in failed):
                done = self.discard_failed_version(version_id)
                raise ArmOperationFailed(
                    f"image version {version_id}: replication failed in the gallery's own region ({details}); that "
                    f"region cannot be removed and re-added: {done}")
            if attempt >= self.max_region_retries:
                raise ArmOperationFailed(
                    f"image version {version_id}: replication still failed after {attempt} remove/re-add "
                    f"retr{'y' if attempt == 1 else 'ies'} in {details}")
            names = [r["region"] for r in failed]
            keep = [t for t in wire_target_regions(self.plan)
                    if region_key(t["name"]) not in {region_key(n) for n in names}]
            self.log.warning("Replication failed in %s (%s); removing the region(s) from targetRegions and adding "
                             "them back (retry %d of %d)", ", ".join(names), details, attempt + 1,
                             self.max_region_retries)
            self.hook.update_version_target_regions(version_id, keep)
            return self.wait(context, waiter_name="arm_provisioning", waiter_args={"resource_ids": [version_id]},
                             timeout=self.timeout_seconds(self.plan), phase="region_removed",
                             return_value=version_id,
                             extra={"attempt": attempt, "version_id": version_id, "removed": names})
        if phase == "region_removed":
            self.check_event(event, f"removing failed region(s) {extra.get('removed')} from {version_id}")
            self.log.info("Adding region(s) %s back to %s", ", ".join(extra.get("removed") or []), version_id)
            self.hook.update_version_target_regions(version_id, wire_target_regions(self.plan))
            return self.wait_replication(context, version_id, attempt + 1)
        return super().after_wait(context, event, phase, extra)
