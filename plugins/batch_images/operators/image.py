"""Managed image from the disk snapshots (step 2 of the recipe)."""

from __future__ import annotations

import time

from collections.abc import Mapping, Sequence
from typing import Any

from batch_images import links
from batch_images.operators._arm import ArmWaitingOperator, ResourceConflict, is_ours
from batch_images.rules import ids, naming, states
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan
from batch_images.rules.ids import same_id


def planned_image_id(plan: Plan) -> str:
    """``plan.image_id``, else ``img-{definition}-{version}`` in the work resource group."""
    if plan.image_id:
        return ids.parse_arm_id(plan.image_id, "plan.image_id", ids.IMAGE).id
    name = plan.image_name or naming.image_name(plan.image_definition.name, plan.version)
    return ids.image_id(plan.work_subscription_id, plan.work_resource_group, name).id


def split_snapshots(snapshots: Any) -> tuple[str, dict[int, str]]:
    """``(os snapshot id, {lun: data snapshot id})`` from the SnapshotDisksOperator's output."""
    if not isinstance(snapshots, Sequence) or isinstance(snapshots, (str, bytes)) or not snapshots:
        raise InvalidInput("snapshots", snapshots, "expected the SnapshotDisksOperator's output "
                           "([{role, lun, id}, ...])", "pass snapshots=snapshot_task.output")
    os_id = None
    data: dict[int, str] = {}
    for i, item in enumerate(snapshots):
        if not isinstance(item, Mapping) or "id" not in item:
            raise InvalidInput(f"snapshots[{i}]", item, "expected {role, lun, id}", "pass snapshot_task.output")
        ids.parse_arm_id(item["id"], f"snapshots[{i}].id", ids.SNAPSHOT)
        if item.get("role") == "os":
            if os_id is not None:
                raise InvalidInput("snapshots", snapshots, "more than one OS disk snapshot", "pass one per disk")
            os_id = item["id"]
        else:
            lun = item.get("lun")
            if isinstance(lun, bool) or not isinstance(lun, int) or lun in data:
                raise InvalidInput(f"snapshots[{i}].lun", lun, "a data disk snapshot needs a unique integer LUN",
                                   "pass snapshot_task.output unchanged")
            data[lun] = item["id"]
    if os_id is None:
        raise InvalidInput("snapshots", snapshots, "no OS disk snapshot (role 'os')", "pass snapshot_task.output")
    return os_id, data


def image_body(plan: Plan, os_snapshot: str, data_snapshots: Mapping[int, str]) -> dict:
    return {
        "location": plan.location,
        "tags": plan.run_tags(),
        "properties": {
            "storageProfile": {
                "osDisk": {"osType": plan.source.os_type, "osState": "Generalized",
                           "snapshot": {"id": os_snapshot}},
                "dataDisks": [{"lun": lun, "snapshot": {"id": sid}} for lun, sid in sorted(data_snapshots.items())],
            },
            "hyperVGeneration": plan.source.hyper_v_generation,
        },
    }


def image_matches(image: Mapping[str, Any], os_snapshot: str, data_snapshots: Mapping[int, str]) -> str | None:
    """None when ``image`` was made from exactly these snapshots, else what differs."""
    profile = ((image.get("properties") or {}).get("storageProfile") or {})
    os_disk = profile.get("osDisk") or {}
    have_os = (os_disk.get("snapshot") or {}).get("id")
    if not same_id(have_os, os_snapshot):
        return f"its OS disk comes from {have_os}, not {os_snapshot}"
    have = {d.get("lun"): (d.get("snapshot") or {}).get("id") for d in profile.get("dataDisks") or []}
    if set(have) != set(data_snapshots) or any(not same_id(have[k], v) for k, v in data_snapshots.items()):
        return f"its data disks are {have}, not {dict(data_snapshots)}"
    return None


class ManagedImageOperator(ArmWaitingOperator):
    """Create the managed image (osState Generalized) from the OS snapshot and the data-disk snapshots by LUN.

    osType and hyperVGeneration come from ``plan["source"]``. Does nothing and returns None (the reason in the log)
    when ``plan["image_path"]`` is ``snapshots``: a Trusted Launch source cannot be captured in a managed image. Idempotent like the snapshots: the image of
    this run from the same snapshots is adopted, a leftover of this project is replaced, anything else of
    the same name is an error. Defers until provisioningState Succeeded.

    :param plan: the PreflightOperator's plan (templated).
    :param snapshots: the SnapshotDisksOperator's output (templated).
    :return: the managed image id (None on the snapshots path).
    """

    operator_extra_links = links.IMAGE_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("plan", "snapshots", "arm_conn_id")
    template_fields_renderers = {"plan": "json", "snapshots": "json"}
    timeout_key = "image"

    def __init__(self, *, plan: Any, snapshots: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.snapshots = snapshots

    def execute(self, context: Any) -> str | None:
        plan = Plan.from_dict(self.plan)
        if plan.uses_snapshots:
            # A managed image cannot capture a Trusted Launch VM's disks (Azure: OperationNotAllowed); the
            # version is made from the snapshots instead (plan["image_path"], decided by preflight).
            why = (f"the source VM is {plan.source.security_type or '?'}: Azure cannot capture it in a "
                   "managed image, so publish_image_version makes the version from the disk snapshots")
            # Short-circuit, not AirflowSkipException: publish_image_version follows the setup task preflight, and
            # Airflow requires ALL_SUCCESS there, so a skipped upstream would skip the whole publish.
            self.log.info("No managed image: %s", why)
            return None
        os_snapshot, data_snapshots = split_snapshots(self.snapshots)
        image_id = planned_image_id(plan)
        tags = plan.run_tags()
        existing = self.hook.find_resource(image_id)
        if existing is not None:
            if not is_ours(existing):
                raise ResourceConflict(
                    f"managed image {image_id} already exists and was not made by this project (no tag "
                    f"{naming.TAG_MANAGED_BY}={naming.MANAGED_BY}); refusing to adopt or replace it. Fix: delete "
                    "or rename it")
            state = (existing.get("properties") or {}).get("provisioningState")
            same_run = (existing.get("tags") or {}).get(naming.TAG_RUN_ID) == tags[naming.TAG_RUN_ID]
            mismatch = image_matches(existing, os_snapshot, data_snapshots)
            if same_run and mismatch:
                raise ResourceConflict(f"managed image {image_id} of this run already exists but {mismatch}. "
                                         "Fix: delete the image and retry")
            if same_run and not states.is_failed(state):
                self.log.info("Adopting managed image %s (%s) made by an earlier attempt of this run", image_id, state)
                return self._wait(context, image_id, None)
            self.log.warning("Replacing managed image %s: %s", image_id,
                             f"provisioningState {state}" if same_run else "it is a leftover of another run")
            self.delete_and_wait([image_id])
        body = image_body(plan, os_snapshot, data_snapshots)
        self.log.info("Creating managed image %s (%s, %s, Generalized) from OS snapshot %s and %d data disk "
                      "snapshot(s) %s", image_id, body["properties"]["storageProfile"]["osDisk"]["osType"],
                      body["properties"]["hyperVGeneration"], os_snapshot, len(data_snapshots),
                      {lun: sid.rsplit("/", 1)[-1] for lun, sid in sorted(data_snapshots.items())})
        started = self.hook.begin_create_image(image_id, body)
        return self._wait(context, image_id, started.operation_url)

    def _wait(self, context: Any, image_id: str, operation_url: str | None) -> str:
        if not self.wait_for_completion:
            return image_id
        return self.wait(context, waiter_name="arm_provisioning",
                         waiter_args={"resource_ids": [image_id],
                                      "operations": {image_id: operation_url} if operation_url else {},
                                      # just created by us: a 404 within the grace period is ARM's lag
                                      "created_at": {image_id: time.time()} if operation_url else {}},
                         timeout=self.timeout_seconds(Plan.from_dict(self.plan)), phase="image",
                         return_value=image_id)
