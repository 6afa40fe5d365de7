"""Gallery, image definition and image version, replicated to the target regions (step 3 of the recipe)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from batch_images import links
from batch_images.operators._arm import ResourceConflict, is_ours, iso_end_of_life
from batch_images.operators.image import split_snapshots
from batch_images.operators.region_retry import (
    RegionRetryingOperator,
    version_target_regions,
    wire_target_regions,
)
from batch_images.rules import ids, naming, security, states
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan, RollDecision, pulled_list
from batch_images.rules.preflight import existing_definition_problems
from batch_images.rules.ids import region_key, same_id
from batch_images.waiting import AzureWaitFailed


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_definition(definition: Mapping[str, Any], plan: Plan) -> None:
    """Refuse an existing image definition that cannot hold this image (the first problem of
    :func:`~batch_images.rules.preflight.existing_definition_problems`, naming the definition's value)."""
    d = plan.image_definition
    problems = existing_definition_problems(
        definition, name=d.name, definition_id=definition.get("id") or d.id, os_type=d.os_type,
        hyper_v_generation=d.hyper_v_generation,
        # plans made before security types were read carry no decision: nothing to check then
        security=plan.security.to_dict() if plan.security else None, blame="definition")
    if problems:
        raise problems[0]


def definition_body(plan: Plan) -> dict:
    d = plan.image_definition
    body = {
        "location": plan.gallery.location,
        "tags": plan.shared_tags(),
        "properties": {
            "osType": d.os_type,
            "osState": "Generalized",
            "hyperVGeneration": d.hyper_v_generation,
            "identifier": {"publisher": d.publisher, "offer": d.offer, "sku": d.sku},
            "description": f"Batch pool images built by Airflow DAG {plan.dag_id}",
        },
    }
    # SecurityType=TrustedLaunch for a Trusted Launch source (no features for a standard one).
    features = security.definition_features(plan.security.to_dict() if plan.security else {})
    if features:
        body["properties"]["features"] = features
    return body


def version_storage_profile(plan: Plan, image_id: Any, snapshots: Any = None) -> dict:
    """The version's ``storageProfile`` for the plan's ``image_path``.

    ``managed_image``: ``{"source": {"id": image_id}}``. ``snapshots`` (a Trusted Launch source, which no managed
    image can capture): ``{"osDiskImage": {"source": {"id"}}, "dataDiskImages": [{"lun", "source": {"id"}}]}`` from
    the SnapshotDisksOperator's output. Raises InvalidInput for an id of the wrong type.
    """
    if plan.uses_snapshots:
        os_snapshot, data = split_snapshots(snapshots)
        return {"osDiskImage": {"source": {"id": os_snapshot}},
                "dataDiskImages": [{"lun": lun, "source": {"id": sid}} for lun, sid in sorted(data.items())]}
    return {"source": {"id": ids.parse_arm_id(image_id, "image_id", ids.IMAGE).id}}


def storage_source_id(storage: Mapping[str, Any]) -> str | None:
    """The id a storageProfile is made from: ``source.id`` (or ``source.virtualMachineId``), else the OS disk's."""
    source = storage.get("source") or {}
    return source.get("id") or source.get("virtualMachineId") or \
        (((storage.get("osDiskImage") or {}).get("source") or {}).get("id"))


def version_body(plan: Plan, image_id: str | None, snapshots: Any = None) -> dict:
    publishing: dict[str, Any] = {
        "targetRegions": wire_target_regions(plan),
        # Published excluded: nothing that floats to "latest" picks it up before promote_image_version (after the
        # canary pools passed their smoke tests) sets it to false.
        "excludeFromLatest": True,
    }
    if plan.storage_account_type:
        publishing["storageAccountType"] = plan.storage_account_type
    eol = iso_end_of_life(plan.end_of_life_date)
    if eol:
        publishing["endOfLifeDate"] = eol
    return {
        "location": plan.gallery.location,
        "tags": plan.run_tags(),
        "properties": {"storageProfile": version_storage_profile(plan, image_id, snapshots),
                       "publishingProfile": publishing,
                       # a replicated region is never dropped by accident (a failed one may still be retried)
                       "safetyProfile": {"allowDeletionOfReplicatedLocations": False}},
    }


def unrepairable_failure(version: Mapping[str, Any], home_region: str) -> bool:
    """A Failed version that removing and re-adding regions cannot fix: its create operation failed (no
    failed region reported, or every region failed with it) or the gallery's own region failed."""
    props = version.get("properties") or {}
    if not states.is_failed(props.get("provisioningState")):
        return False
    summary = (props.get("replicationStatus") or {}).get("summary") or []
    failed = [s for s in summary if states.is_failed(s.get("state"))]
    return not failed or any(region_key(s.get("region")) == region_key(home_region) for s in failed)


def version_source(version: Mapping[str, Any]) -> str | None:
    return storage_source_id(((version.get("properties") or {}).get("storageProfile") or {}))


def unchangeable_differences(version: Mapping[str, Any], plan: Plan) -> list[str]:
    """What the plan asks that an existing version cannot be changed to, one sentence each (empty: none).

    Azure lets a PUT on an existing version change its publishing profile's target regions and replica
    counts (and excludeFromLatest, endOfLifeDate), not its source (409 PropertyChangeNotAllowed) nor a
    storage account type: ``publishingProfile.storageAccountType`` and ``targetRegions[].storageAccountType``
    are "not updatable" in the Compute API reference (GalleryArtifactPublishingProfileBase, TargetRegion),
    and an update that changes a region's type is refused ("Global storage account type does not match the
    storage account type in the existing TargetRegion", azure-powershell issue 9911). A region the version
    does not have yet may be added with any type.
    """
    out = []
    publishing = (version.get("properties") or {}).get("publishingProfile") or {}
    want_default = plan.storage_account_type
    have_default = publishing.get("storageAccountType")
    if want_default and have_default and want_default.lower() != have_default.lower():
        out.append(f"publishingProfile.storageAccountType is {have_default}, the plan asks {want_default}")
    have = {region_key(t.get("name")): t for t in version_target_regions(version)}
    for want in wire_target_regions(plan):
        prev = have.get(region_key(want["name"]))
        sat = want.get("storageAccountType")
        if prev is not None and sat and prev.get("storageAccountType") and \
                prev["storageAccountType"].lower() != sat.lower():
            out.append(f"{want['name']} is stored as {prev['storageAccountType']}, the plan asks {sat}")
    return out


def converged_target_regions(have_regions: Sequence[Mapping[str, Any]],
                             plan: Plan) -> list[dict] | None:
    """The targetRegions to PUT so that a version with ``have_regions`` matches the plan's regions and replica
    counts, or None when it already does. Regions the plan leaves without a storage type keep the version's."""
    have = {region_key(t.get("name")): t for t in have_regions}
    want = wire_target_regions(plan)
    same = set(have) == {region_key(t["name"]) for t in want} and all(
        int(have[region_key(t["name"])].get("regionalReplicaCount") or 1) == t["regionalReplicaCount"] for t in want)
    if same:
        return None
    out = []
    for t in want:
        prev = have.get(region_key(t["name"]))
        entry = dict(t)
        if "storageAccountType" not in entry and prev is not None and prev.get("storageAccountType"):
            entry["storageAccountType"] = prev["storageAccountType"]
        out.append(entry)
    return out


def describe_regions(regions: Sequence[Mapping[str, Any]]) -> str:
    """``West Europe x2, northeurope x3`` (for log lines and messages)."""
    return ", ".join(f"{t.get('name')} x{t.get('regionalReplicaCount', '?')}" for t in regions) or "none"


class GalleryImageVersionOperator(RegionRetryingOperator):
    """Publish the managed image as gallery image version ``plan["version"]``, replicated to the target regions.

    For a Trusted Launch source (``plan["image_path"] == "snapshots"``) the version is made from the disk snapshots
    (``snapshots=``: the SnapshotDisksOperator's output) in a definition with a Trusted Launch ``SecurityType``
    feature; ``image_id`` is then None (the managed image step was skipped).

    1. Checks an existing image definition first (Generalized, same osType and hyperVGeneration) and an
       existing version (same source image) - before creating anything.
    2. Creates the gallery and the definition when missing (tagged managed-by).
    3. Creates the version: targetRegions from ``plan["target_regions"]`` (the replica counts and the rule
       that produced them are logged from ``plan["replica_sizing"]``), excludeFromLatest True (promoted later),
       endOfLifeDate from the plan. An existing version from the same image is adopted and converged to the
       plan: differing target regions or replica counts are updated on it (and replication is waited for
       again); what Azure cannot change on an existing version (its source, a storage account type) fails
       before anything is written, naming both values and the fix. One from another source is an error.
    4. Waits for the version's create operation, which covers replication to every target region
       (:meth:`replication_regions`; ``gallery_replication`` waiter: every region Completed and provisioningState
       Succeeded). Azure's operation ends only then (Azure/azure-rest-api-specs#3080's review, azure-cli#7363 and
       #16632, Packer's ``shared_image_gallery_timeout``), and nothing public says Batch or Compute accept a VM from a
       version whose operation is still running, so the pools (``create_pool``, after this task) wait for it too. A
       region that ends Failed is removed from targetRegions, the update is waited for, and the region is added back
       (Microsoft's workaround, :mod:`batch_images.operators.region_retry`, shared with ``create_pool`` and
       ``promote_image_version``), up to ``max_region_retries`` times; then the task fails naming the region and
       Azure's details. A failure in the gallery's own region cannot be retried by removing the region: this task
       deletes its own Failed version and fails.

    :return: the image version id.
    """

    operator_extra_links = links.VERSION_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("plan", "image_id", "snapshots", "arm_conn_id")
    template_fields_renderers = {"plan": "json", "snapshots": "json"}

    def __init__(self, *, plan: Any, image_id: str | None, snapshots: Any = None, max_region_retries: int = 2,
                 create_timeout: float = 900.0, **kwargs: Any) -> None:
        super().__init__(max_region_retries=max_region_retries, **kwargs)
        self.plan = plan
        self.image_id = image_id
        self.snapshots = snapshots
        self.create_timeout = create_timeout

    # -- steps ----------------------------------------------------------------------------------------------------

    @property
    def typed_plan(self) -> Plan:
        return Plan.from_dict(self.plan)

    def execute(self, context: Any) -> str:
        plan = self.typed_plan
        # The managed image, or for a Trusted Launch source (plan.image_path "snapshots") the OS disk snapshot.
        image_id = storage_source_id(version_storage_profile(plan, self.image_id, self.snapshots))
        gallery = plan.gallery
        gallery_id = gallery.id
        definition_id = plan.image_definition.id
        version_id = plan.version_id
        ids.parse_arm_id(version_id, "plan.version_id", ids.GALLERY_IMAGE_VERSION)

        # 1. checks before creating anything
        definition = self.hook.find_resource(definition_id)
        if definition is not None:
            check_definition(definition, plan)
        version = self.hook.find_resource(version_id, expand="ReplicationStatus") if definition else None
        if version is not None:
            source = version_source(version)
            if not same_id(source, image_id):
                raise ResourceConflict(
                    f"image version {version_id} already exists from source {source}, not {image_id}; Azure does "
                    "not allow changing a version's source (PropertyChangeNotAllowed). Fix: build the next "
                    "version number (rebuild N+1 of the date), or delete that version if it is not in use")
            if unrepairable_failure(version, gallery.location) and self.made_by_this_run(version):
                self.log.warning("Replacing image version %s: an earlier attempt of this run left it %s", version_id,
                                 (version.get("properties") or {}).get("provisioningState"))
                self.delete_and_wait([version_id])
                version = None
        unchangeable = unchangeable_differences(version, plan) if version is not None else []
        if unchangeable:  # no retry can fix it: fail at once, before any write
            raise AirflowFailException(
                f"image version {version_id} already exists and differs from the plan in what Azure cannot change "
                f"on an existing version: {'; '.join(unchangeable)}. Fix: build the next version number (rebuild "
                "N+1 of the date) to publish with the new settings, or set storage_account_type back to the "
                "version's value")

        # 2. gallery and definition
        _, created = self.hook.get_or_create_gallery(
            gallery_id, gallery.location, plan.shared_tags(),
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
        created_at = None
        converged = False
        if version is not None:
            state = (version.get("properties") or {}).get("provisioningState")
            self.log.info("Adopting image version %s (from the same image %s, provisioningState %s)", version_id,
                          image_id, state)
            if not states.is_in_progress(state):
                # An operation in flight is waited for first; replication success converges then.
                converged = self.converge_regions(version_id, version_target_regions(version))
        else:
            body = version_body(plan, self.image_id, self.snapshots)
            self.hook.begin_create_version(version_id, body)
            created_at = time.time()
        return self.wait_replication(context, version_id, attempt=0, created_at=created_at, converged=converged)

    def made_by_this_run(self, version: Mapping[str, Any]) -> bool:
        return is_ours(version) and (version.get("tags") or {}).get(naming.TAG_RUN_ID) == \
            self.typed_plan.run_tags()[naming.TAG_RUN_ID]

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

    def home_region_failed(self, version_id: str) -> str:
        return self.discard_failed_version(version_id)

    def log_replica_sizing(self, plan: Plan) -> None:
        sizing = plan.replica_sizing
        per_region = {region_key(k): v for k, v in (sizing.per_region if sizing else {}).items()}
        rule = sizing.rule if sizing else "unknown"
        for region in wire_target_regions(plan):
            info = per_region.get(region_key(region["name"]))
            self.log.info("Target region %s: %d replica(s), %s storage; rule %s: %s", region["name"],
                          region["regionalReplicaCount"], region.get("storageAccountType", "default"), rule,
                          (info.explanation or f"{info.vm_count} VMs -> {info.count}") if info else "? VMs -> ?")

    def converge_regions(self, version_id: str, have_regions: Sequence[Mapping[str, Any]]) -> bool:
        """Update the version's targetRegions to the plan's when they differ; True when an update was sent."""
        update = converged_target_regions(have_regions, self.typed_plan)
        if update is None:
            return False
        self.log.warning("Image version %s has target regions %s, the plan asks %s: updating the version and "
                         "waiting for replication again", version_id, describe_regions(have_regions),
                         describe_regions(update))
        self.hook.update_version_target_regions(version_id, update)
        return True

    def replication_regions(self) -> list[str] | None:
        """The regions this task waits for (None: every target region, i.e. the version's whole operation)."""
        return None

    def replicated(self, context: Any, version_id: str) -> Any:
        """Called once the version is Completed in :meth:`replication_regions`; returns the task's result."""
        return version_id

    def wait_replication(self, context: Any, version_id: str, attempt: int, created_at: float | None = None,
                         converged: bool = False) -> Any:
        if not self.wait_for_completion:
            return version_id
        args: dict[str, Any] = {"version_id": version_id}
        regions = self.replication_regions()
        if regions:
            args["regions"] = regions
        if created_at is not None:
            args["created_at"] = created_at
        return self.wait(context, waiter_name="gallery_replication", waiter_args=args,
                         timeout=self.timeout_seconds(self.typed_plan), phase="replication", return_value=version_id,
                         extra={"attempt": attempt, "version_id": version_id, "converged": converged})

    def wait_replication_again(self, context: Any, version_id: str, attempt: int) -> Any:
        return self.wait_replication(context, version_id, attempt, converged=True)

    # -- after each wait ------------------------------------------------------------------------------------------

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        version_id = extra.get("version_id") or event.get("value")
        attempt = int(extra.get("attempt", 0))
        if phase == "replication":
            state = event.get("state") or {}
            if event.get("status") == "success":
                self.log.info("%s", event.get("message"))
                # An adopted version that was still busy when the task started converges now (once per try).
                if not extra.get("converged") and self.converge_regions(version_id, state.get("target_regions") or []):
                    return self.wait_replication(context, version_id, attempt, converged=True)
                return self.replicated(context, version_id)
            failed = self.failed_in(event, self.replication_regions())
            if not failed:
                if event.get("status") == "failure" and states.is_failed(state.get("provisioningState")):
                    done = self.discard_failed_version(version_id)
                    raise AzureWaitFailed(f"image version {version_id}: {event.get('message')}; {done}")
                self.check_event(event, f"image version {version_id}")  # raises: not a success
            return self.retry_failed_regions(context, version_id, failed, attempt)
        return super().after_wait(context, event, phase, extra)


class ExistingVersionsOperator(GalleryImageVersionOperator):
    """``ready_existing_versions``: the version step of a roll-only run (``params.mode`` rollback /
    roll_to_existing / revoke; docs/operations.md, "Roll back"), which builds nothing. A build run skips it.

    A ``revoke`` run revokes ``params.version`` first (tag ``revoked``, excludeFromLatest true, waited for). Every
    target version that lacks a replica in a rolled pool's Batch account region (``plan.add_regions``, decided by
    preflight) gets that region added to its targetRegions, the regions it has kept as they are: a replication
    update, no rebuild; each pool's create_pool waits for its version's operation before it makes the pool.

    :param plan: the preflight plan. :return: the plan's version id (plan_roll reads each pool's own target).
    """

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(plan=plan, image_id=None, **kwargs)

    def execute(self, context: Any) -> Any:
        plan = self.typed_plan
        if not plan.options.roll_only:
            raise AirflowSkipException("Mode build: publish_image_version makes this run's version")
        return self.existing_versions(context, plan)

    def existing_versions(self, context: Any, plan: Plan) -> str:
        """Revoke, then add the missing regions (see the class docstring); the plan's version id."""
        from batch_images.rules import roll

        started = []
        if plan.options.mode == "revoke" and plan.options.version:
            version_id = plan.gallery_version_id(plan.options.version)
            version = self.hook.get_version(version_id, replication_status=False)
            if (version.get("tags") or {}).get(naming.TAG_REVOKED):
                self.log.info("Image version %s is already revoked (%s)", plan.options.version,
                              version["tags"][naming.TAG_REVOKED])
            else:
                self.hook.revoke_version(version_id, f"{roll.iso(_utcnow())} by {plan.dag_id}/{plan.run_id}")
                started.append(version_id)
        wanted = {region_key(t.name): t for t in plan.target_regions}
        for name, regions in plan.add_regions.items():
            version_id = plan.gallery_version_id(name)
            have = version_target_regions(self.hook.get_version(version_id, replication_status=False))
            missing = [r for r in regions if region_key(r) not in {region_key(t.get("name")) for t in have}]
            if not missing:
                continue
            added = [{"name": wanted[r].name if r in wanted else r,
                      "regionalReplicaCount": wanted[r].regional_replica_count if r in wanted else 1} for r in missing]
            self.log.info("Image version %s: adding %s for the pools rolled to it (no rebuild)", name,
                          describe_regions(added))
            self.hook.update_version_target_regions(version_id, [dict(t) for t in have] + added)
        if not started:
            return plan.version_id
        return self.wait(context, waiter_name="arm_provisioning", waiter_args={"resource_ids": started},
                         timeout=self.timeout_seconds(plan), phase="revoked", return_value=plan.version_id,
                         extra={"version_id": started[0]})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        if phase == "revoked":
            version_id = extra.get("version_id")
            self.check_event(event, f"revoking image version {version_id}")
            self.log.info("Image version %s revoked: excludeFromLatest true, tag %s", version_id, naming.TAG_REVOKED)
            return event.get("value")
        return super().after_wait(context, event, phase, extra)


class PromoteImageVersionOperator(GalleryImageVersionOperator):
    """Promote the run's image version: wait until it is replicated in *every* target region, then set
    ``publishingProfile.excludeFromLatest`` to false (step 5 of the roll), so "latest" may float to it.

    Runs after every logical pool's canary passed (smoke test, approval). The wait is the publish operator's
    (:class:`GalleryImageVersionOperator`) over every region, with its failed-region retry: a region that ends Failed
    is removed and added back up to ``max_region_retries`` times, then the task fails naming the region (and the
    ``discard_canaries`` teardown deletes this run's canary pools); a region an earlier try left out of targetRegions
    (it stopped between the remove and the re-add) is added back before the wait. The version is never deleted here: this run's
    pools run on it. When every pool skipped the roll because a newer version serves it (``rolls``: plan_roll's
    outputs, each with ``roll_action``), the version is waited for but stays excluded: a backfill publishes, it does
    not promote. Idempotent: an already promoted version is left as it is.

    :param plan: the preflight plan (``version_id``). :param rolls: plan_roll's outputs (a list of dicts, one dict for one lane, or None).
    :return: the version id, or None when it was left excluded.
    """

    template_fields: Sequence[str] = ("plan", "rolls", "arm_conn_id")

    def __init__(self, *, plan: Any, rolls: Any = None, **kwargs: Any) -> None:
        super().__init__(plan=plan, image_id=None, **kwargs)
        self.rolls = rolls

    def execute(self, context: Any) -> Any:
        plan = self.typed_plan
        if plan.options.roll_only and plan.options.mode != "roll_to_existing":
            # Not skipped: roll_pool follows this task (all_success), and a skip here must keep meaning "rejected".
            self.log.info("Mode %s: the pools go to versions that served before; nothing to promote",
                          plan.options.mode)
            return None
        if plan.options.roll_only:  # the existing version: its own regions (and any publish_image_version added)
            self.log.info("Waiting for existing image version %s, then promoting it if it is excluded from latest",
                          plan.version)
            return self.wait_replication(context, plan.version_id, attempt=0, converged=True)
        regions = wire_target_regions(plan)
        self.log.info("Waiting for image version %s in every target region: %s", plan.version,
                      describe_regions(regions))
        if self.wait_for_completion:
            self.finish_interrupted_retry(plan.version_id, [t["name"] for t in regions])
        return self.wait_replication(context, plan.version_id, attempt=0, converged=True)

    def discard_failed_version(self, version_id: str) -> str:
        return "the version was left in place: this run's pools use it"

    def replicated(self, context: Any, version_id: str) -> Any:
        from batch_images.rules import roll

        if self.typed_plan.options.canary_only:  # skipped (the grid shows it), once the source may go
            raise AirflowSkipException(f"Canary only: image version {self.typed_plan.version} is replicated "
                                       "everywhere and stays excluded from latest (not promoted)")
        try:
            actions = [RollDecision.from_dict(r, f"rolls[{i}]").roll_action for i, r in enumerate(pulled_list(self.rolls))]
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None
        if actions and all(a == roll.SKIP_DOWNGRADE for a in actions):
            self.log.info("Every logical pool runs a newer version than %s: the version stays excluded from latest",
                          self.typed_plan.version)
            return None
        version = self.hook.get_version(version_id, replication_status=False)
        publishing = (version.get("properties") or {}).get("publishingProfile") or {}
        if publishing.get("excludeFromLatest") is False:
            self.log.info("Image version %s is already promoted (excludeFromLatest false)", version_id)
            return version_id
        self.hook.update_version_exclude_from_latest(version_id, exclude=False)
        return self.wait(context, waiter_name="arm_provisioning", waiter_args={"resource_ids": [version_id]},
                         timeout=self.timeout_seconds(self.typed_plan), phase="promoted",
                         return_value=version_id, extra={"version_id": version_id})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        if phase == "promoted":
            version_id = extra.get("version_id") or event.get("value")
            self.check_event(event, f"promoting image version {version_id}")
            self.log.info("Image version %s promoted: excludeFromLatest false", version_id)
            return version_id
        return super().after_wait(context, event, phase, extra)
