"""Teardown: delete the run's temporary snapshots and managed image; retire old image versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batch_images.operators._arm import ArmOperationFailed, ArmWaitingOperator, ids_of, is_ours
from batch_images.operators.image import planned_image_id
from batch_images.operators.snapshot import planned_snapshots
from batch_images.rules import ids, naming
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan
from batch_images.rules.ids import same_id

TEMPORARY_TYPES = (ids.SNAPSHOT, ids.IMAGE)


class DeleteTemporaryResourcesOperator(ArmWaitingOperator):
    """Delete the temporary snapshots and managed image of a run, and wait until they are gone.

    Meant as the DAG's teardown task (``.as_teardown(setups=...)``): it must work when upstream tasks
    failed, so besides explicit ids (``resource_ids``, ``snapshots``, ``image_id`` - None is fine, that is
    what an upstream that never ran gives) it takes ``plan`` and derives the run's deterministic snapshot
    and image ids from it, so a snapshot task that failed half-way is cleaned up too.

    Only snapshots and managed images tagged ``managed-by=airflow-batch-images`` are deleted; any other
    type, or an untagged resource, is refused before anything is deleted. Resources already gone are fine.

    :return: ``{"deleted": [ids], "already_gone": [ids]}``
    """

    template_fields: Sequence[str] = ("resource_ids", "snapshots", "image_id", "plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json", "snapshots": "json", "resource_ids": "json"}
    timeout_key = "delete"

    def __init__(self, *, resource_ids: Any = None, snapshots: Any = None, image_id: Any = None,
                 plan: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resource_ids = resource_ids
        self.snapshots = snapshots
        self.image_id = image_id
        self.plan = plan

    def _plan(self) -> Plan | None:
        """The plan, or None when none was given (preflight itself failed: nothing was created)."""
        return Plan.from_dict(self.plan) if isinstance(self.plan, Mapping) else None

    def targets(self) -> list[str]:
        found: list[str] = []
        found += ids_of(self.resource_ids, "resource_ids")
        found += ids_of(self.snapshots, "snapshots")
        found += ids_of(self.image_id, "image_id")
        plan = self._plan()
        if plan is not None:
            found += [s["id"] for s in planned_snapshots(plan)]
            found.append(planned_image_id(plan))
        unique: dict[str, str] = {}
        for rid in found:
            unique.setdefault(rid.lower(), rid)
        # Images first: they were made from the snapshots.
        return sorted(unique.values(), key=lambda r: (0 if "/images/" in r.lower() else 1, r.lower()))

    def execute(self, context: Any) -> dict:
        targets = self.targets()
        for rid in targets:
            arm_id = ids.parse_arm_id(rid, "resource_ids")
            if not any(arm_id.is_type(t) for t in TEMPORARY_TYPES):
                raise InvalidInput("resource_ids", rid, f"{arm_id.resource_type} is not a temporary resource of this "
                                   "pipeline; only snapshots and managed images are deleted here",
                                   "pass only the snapshot and image ids of the run")
        present: list[str] = []
        gone: list[str] = []
        refused: list[str] = []
        for rid in targets:
            resource = self.hook.find_resource(rid)
            if resource is None:
                gone.append(rid)
            elif not is_ours(resource):
                refused.append(rid)
            else:
                present.append(rid)
        if refused:
            raise ArmOperationFailed(
                f"refusing to delete {', '.join(refused)}: not tagged {naming.TAG_MANAGED_BY}={naming.MANAGED_BY} "
                "(not made by this project). Nothing was deleted. Fix: remove them from the task's inputs")
        for rid in gone:
            self.log.info("Already gone: %s", rid)
        for rid in present:
            started = self.hook.begin_delete(rid)
            if started.status_code == 404:
                gone.append(rid)
        present = [r for r in present if r not in gone]
        result = {"deleted": present, "already_gone": gone}
        if not present or not self.wait_for_completion:
            return result
        return self.wait(context, waiter_name="arm_deleted", waiter_args={"resource_ids": present},
                         timeout=self.timeout_seconds(self._plan()), phase="delete", return_value=result)


class RetireOldVersionsOperator(ArmWaitingOperator):
    """Keep the newest ``keep_versions`` image versions of the definition; retire the older ones.

    Never touches the version this run built (``plan["version_id"]``), any id in ``protect_version_ids``
    (the versions pools use - pass them from the pool tasks), or a version not made by this project.
    ``action="delete"`` deletes retired versions (and waits); ``action="exclude"`` only sets
    ``excludeFromLatest`` so nothing floats to them.

    :return: ``{"kept": [ids], "retired": [ids], "skipped": [ids]}``
    """

    template_fields: Sequence[str] = ("plan", "protect_version_ids", "keep_versions", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    timeout_key = "delete"

    def __init__(self, *, plan: Any, keep_versions: int | None = None, protect_version_ids: Any = None,
                 action: str = "delete", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if action not in ("delete", "exclude"):
            raise InvalidInput("action", action, "unknown action", "use 'delete' or 'exclude'")
        self.plan = plan
        self.keep_versions = keep_versions
        self.protect_version_ids = protect_version_ids
        self.action = action

    def execute(self, context: Any) -> dict:
        plan = Plan.from_dict(self.plan)
        keep = int(self.keep_versions if self.keep_versions is not None else plan.keep_versions)
        if keep < 1:
            raise InvalidInput("keep_versions", keep, "must keep at least one version", "use 1 or more")
        definition_id = plan.image_definition.id
        protected = ids_of(self.protect_version_ids, "protect_version_ids") + [plan.version_id]
        versions = sorted(self.hook.list_versions(definition_id),
                          key=lambda v: naming.version_sort_key(v.get("name", "")), reverse=True)
        kept, retired, skipped = [], [], []
        for i, version in enumerate(versions):
            vid = version["id"]
            if i < keep or any(same_id(vid, p) for p in protected):
                kept.append(vid)
            elif not is_ours(version):
                skipped.append(vid)
            else:
                retired.append(vid)
        self.log.info("Keeping %d newest version(s) (+ protected): %s", keep, [v.rsplit("/", 1)[-1] for v in kept])
        if skipped:
            self.log.info("Not made by this project, left alone: %s", skipped)
        if not retired:
            return {"kept": kept, "retired": [], "skipped": skipped}
        result = {"kept": kept, "retired": retired, "skipped": skipped}
        if self.action == "exclude":
            for vid in retired:
                self.hook.update_version_exclude_from_latest(vid, True)
            waiter, args = "arm_provisioning", {"resource_ids": retired}
        else:
            for vid in retired:
                self.hook.delete_version(vid)
            waiter, args = "arm_deleted", {"resource_ids": retired}
        if not self.wait_for_completion:
            return result
        return self.wait(context, waiter_name=waiter, waiter_args=args, timeout=self.timeout_seconds(plan),
                         phase="retire", return_value=result)
