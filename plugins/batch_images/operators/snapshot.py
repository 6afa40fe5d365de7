"""Snapshot every disk of the prepared VM (step 1 of the recipe)."""

from __future__ import annotations

import time

from collections.abc import Mapping, Sequence
from typing import Any

from batch_images import links
from batch_images.operators._arm import ArmWaitingOperator, ResourceConflict, is_ours
from batch_images.rules import ids, naming, states
from batch_images.rules.plan import Plan
from batch_images.rules.ids import same_id


def planned_snapshots(plan: Plan) -> list[dict]:
    """``[{"role", "lun", "name", "id", "disk_id"}]`` for the OS disk and every data disk, from the plan.

    Names come from ``plan["snapshot_names"]`` (what the preflight computed) and fall back to
    :func:`batch_images.rules.naming.snapshot_name`; both are deterministic, so a retry finds its snapshots.
    """
    source = plan.source
    disks: list[tuple[str, int | None, str | None]] = [("os", None, source.os_disk_id)]
    disks += [("data", disk.lun, disk.disk_id) for disk in source.data_disks]
    out = []
    for role, lun, disk_id in disks:
        key = naming.disk_role(lun)
        name = plan.snapshot_names.get(key) or naming.snapshot_name(source.vm_name, key, plan.version)
        out.append({"role": role, "lun": lun, "name": name, "disk_id": disk_id,
                    "id": ids.snapshot_id(plan.work_subscription_id, plan.work_resource_group, name).id})
    return out


class SnapshotDisksOperator(ArmWaitingOperator):
    """Snapshot the source VM's OS disk and every data disk (full copies, ``createOption: Copy``).

    Snapshots go to ``plan["work_resource_group"]`` at the VM's location, named by
    :func:`~batch_images.rules.naming.snapshot_name`, tagged with
    :func:`~batch_images.rules.naming.resource_tags`. Idempotent: a snapshot of the same name made by this
    project from the same disk in the same run is adopted; one of this project from an earlier run (a
    leftover) or one that Failed is replaced; a same-named snapshot of anything else is an error.

    :param plan: the PreflightOperator's plan (templated).
    :param wait_for_completion: wait until every snapshot is Succeeded (else a downstream
        :class:`~batch_images.sensors.arm.ArmResourcesSensor` may wait).
    :return: ``[{"role": "os"|"data", "lun": int|None, "id": snapshot id}]``; XCom ``operations``: the
        Azure-AsyncOperation URL of each create this try started (for ArmResourcesSensor's ``operations``).
    """

    operator_extra_links = links.SNAPSHOT_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    timeout_key = "snapshot"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> list[dict]:
        plan = Plan.from_dict(self.plan)
        tags = plan.run_tags()
        location = plan.location
        wanted = planned_snapshots(plan)
        operations: dict[str, str] = {}
        created_at: dict[str, float] = {}  # epoch seconds of our creates: a 404 soon after is ARM's lag (waiters/arm.py)
        stale: list[str] = []
        adopted: set[str] = set()
        for snap in wanted:
            existing = self.hook.find_resource(snap["id"])
            if existing is None:
                continue
            source = ((existing.get("properties") or {}).get("creationData") or {}).get("sourceResourceId")
            state = (existing.get("properties") or {}).get("provisioningState")
            if not is_ours(existing):
                raise ResourceConflict(
                    f"snapshot {snap['id']} already exists and was not made by this project (no tag "
                    f"{naming.TAG_MANAGED_BY}={naming.MANAGED_BY}); refusing to adopt or replace it. Fix: delete or "
                    "rename it, or point work_resource_group elsewhere")
            if not same_id(source, snap["disk_id"]):
                raise ResourceConflict(
                    f"snapshot {snap['id']} already exists but copies {source}, not {snap['disk_id']}. Fix: delete "
                    "it (it is a leftover of another pipeline or VM) and retry")
            same_run = (existing.get("tags") or {}).get(naming.TAG_RUN_ID) == tags[naming.TAG_RUN_ID]
            if same_run and not states.is_failed(state):
                self.log.info("Adopting snapshot %s (%s) made by an earlier attempt of this run", snap["id"], state)
                adopted.add(snap["id"])
            else:
                why = f"provisioningState {state}" if same_run else \
                    f"it is a leftover of run {(existing.get('tags') or {}).get(naming.TAG_RUN_ID)!r}"
                self.log.warning("Replacing snapshot %s: %s", snap["id"], why)
                stale.append(snap["id"])
        if stale:
            self.delete_and_wait(stale)
        for snap in wanted:
            if snap["id"] in adopted:
                continue
            body = {
                "location": location,
                "tags": tags,
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": snap["disk_id"]},
                    "incremental": False,
                },
            }
            started = self.hook.begin_create_snapshot(snap["id"], body)
            created_at[snap["id"]] = time.time()
            if started.operation_url:
                operations[snap["id"]] = started.operation_url
            self.log.info("Snapshot %s of %s disk %s started", snap["name"], snap["role"],
                          snap["disk_id"] if snap["lun"] is None else f"LUN {snap['lun']} ({snap['disk_id']})")
        result = [{"role": s["role"], "lun": s["lun"], "id": s["id"]} for s in wanted]
        ti = context.get("ti") if isinstance(context, Mapping) else None
        if ti is not None:
            # XCom "operations": {snapshot id: Azure-AsyncOperation URL} of the creates this try started, so that
            # a separate waiter (wait_for_snapshots) can report Azure's error when a snapshot ends Failed (a Failed
            # snapshot's own body does not say why).
            ti.xcom_push(key="operations", value=operations)
            ti.xcom_push(key="created_at", value=created_at)
        if not self.wait_for_completion:
            return result
        return self.wait(context, waiter_name="arm_provisioning",
                         waiter_args={"resource_ids": [s["id"] for s in wanted], "operations": operations,
                                      "created_at": created_at},
                         timeout=self.timeout_seconds(plan), phase="snapshots", return_value=result)
