"""Create a Batch pool pinned to one gallery image version; and the repair the steady-state sensor applies.

:class:`BatchPoolOperator` takes one entry of the preflight plan's ``pools`` as ``pool_spec`` (map it over
``PoolSpecsOperator(plan=preflight.output).output``: Airflow 3 maps only over return values, and ``pool`` is
BaseOperator's Airflow-pool argument, hence the name) and the image version id, and creates the pool with
``virtualMachineImageId`` pinned to that exact version, ``nodeAgentSKUId`` from the plan,
``resizeTimeout`` from the plan (never under 15 minutes), the start task, and metadata naming the image
version and the run. It does not wait: :class:`batch_images.sensors.pool.BatchPoolSteadySensor` does.

Idempotent: a retry (or a re-run of the same logical date) finds the pool by its deterministic id and
adopts it when it runs the same image version; a pool with that id on another image fails the task
with the two image ids. Shared Key connections are refused before any request (Batch rejects them for
gallery-image pools).

:class:`PoolRepair` is what the sensor does when the ``batch_pool_steady`` waiter reports a failure:

* ``AllocationTimedout`` -> one more resize to the target (``max_allocation_retries``);
* starttaskfailed / unusable nodes beyond the tolerated share -> reboot them, then remove them and
  resize back to the target ("re-add"), up to ``max_node_repairs`` rounds; then fail listing the nodes
  and their errors;
* steady below/above target without a resize error -> resize to the target (also the "re-add" step);
* quota -> fatal at once, Batch's message with its numbers.

When the sensor gives up it deletes the pool if - and only if - this DAG run created it (pool metadata
``dag_id`` / ``run_id``) *and* nobody uses it: no node runs a task and no job or job schedule points at
it (:meth:`PoolRepair.users`). So a failed run leaves no half-made pool behind, never touches a pool it did
not make, and never kills users' tasks (a clear-and-rerun of a run whose pool already serves jobs). The same
check guards the one repair that could shrink a pool (a resize down to the target); node repairs touch only
starttaskfailed/unusable nodes, and reboot/remove them with ``taskcompletion``, so even a node that started
a task meanwhile finishes it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from batch_images.pool_facts import (
    UNHEALTHY_NODE_STATES,
    batch_error_code,
    batch_error_text,
    enum_text,
    node_report,
    parse_duration,
    pool_image_id,
    pool_metadata,
    same_image,
)
from batch_images.rules import ids, naming, sizing
from batch_images.rules.errors import InvalidInput

if TYPE_CHECKING:
    from airflow.sdk import Context

    from batch_images.hooks.batch import BatchPoolHook

MIN_RESIZE_TIMEOUT = sizing.DEFAULT_RESIZE_TIMEOUT  # 15 minutes: never create a pool with less
POOL_SPEC_KEYS = ("batch_conn_id", "batch_account_id", "pool_id", "vm_size", "target_dedicated_nodes",
                  "target_low_priority_nodes", "resize_timeout", "node_agent_sku_id", "metadata")
# Batch errors that no retry can fix: fail the task at once.
_FATAL_CREATE_STATUS = (400, 401, 403, 404, 409)
_MAX_NODES_IN_MESSAGE = 20


def fail(err: InvalidInput | str) -> AirflowFailException:
    return AirflowFailException(str(err))


def resize_timeout_at_least_15(value: Any, field: str, log=None) -> timedelta:
    """Parse an ISO 8601 duration; raise values under 15 minutes to 15 (with a warning)."""
    td = parse_duration(value, field)
    if td < MIN_RESIZE_TIMEOUT:
        if log is not None:
            log.warning("%s %s is under 15 minutes; using 15 minutes (Batch's default, and the floor the image "
                        "recipe asks for)", field, value)
        td = MIN_RESIZE_TIMEOUT
    return td


def version_of(image_version_id: str) -> str:
    """The version name (last segment) of a gallery image version id."""
    return ids.parse_arm_id(image_version_id, "image_version_id", ids.GALLERY_IMAGE_VERSION).name


def created_by_run(metadata: dict[str, str], dag_id: str | None, run_id: str | None) -> bool:
    """Did this DAG run create the pool? (metadata written by :class:`BatchPoolOperator`)."""
    return bool(run_id) and metadata.get(naming.TAG_RUN_ID) == run_id and metadata.get(naming.TAG_DAG_ID) == dag_id


class BatchPoolOperator(BaseOperator):
    """Create a Batch pool on an exact gallery image version (or adopt the one a previous try made).

    :param pool_spec: one entry of the preflight plan's ``pools`` list: ``batch_conn_id``, ``batch_account_id``,
        ``pool_id``, ``vm_size``, ``target_dedicated_nodes``, ``target_low_priority_nodes``,
        ``resize_timeout`` (ISO 8601), ``start_task``, ``max_unhealthy_node_share``,
        ``node_agent_sku_id``, ``metadata``. (templated)
    :param image_version_id: the gallery image version id (``.../images/{def}/versions/{x.y.z}``). (templated)
    :param batch_conn_id: overrides ``pool["batch_conn_id"]``. (templated)
    :return: the pool id.
    """

    template_fields: Sequence[str] = ("pool_spec", "image_version_id", "batch_conn_id")
    ui_color = "#0078d4"

    def __init__(self, *, pool_spec: dict, image_version_id: str, batch_conn_id: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool_spec = pool_spec
        self.image_version_id = image_version_id
        self.batch_conn_id = batch_conn_id

    # -- validation -------------------------------------------------------------------------------------------

    def _spec(self) -> dict:
        pool = self.pool_spec
        if not isinstance(pool, dict):
            raise fail(InvalidInput("pool_spec", pool, "expected one entry of the preflight plan's pools list (a dict)",
                                    "map over XComArg(preflight, key='pools')"))
        missing = [k for k in POOL_SPEC_KEYS if k not in pool and not (k == "batch_conn_id" and self.batch_conn_id)]
        if missing:
            raise fail(InvalidInput("pool_spec", sorted(pool), f"missing keys: {', '.join(missing)}",
                                    "pass an entry of the preflight plan's pools list unchanged"))
        spec = dict(pool)
        if self.batch_conn_id:
            spec["batch_conn_id"] = self.batch_conn_id
        try:
            naming.validate_pool_id(spec["pool_id"], "pool_spec.pool_id")
            ids.parse_arm_id(self.image_version_id, "image_version_id", ids.GALLERY_IMAGE_VERSION)
            spec["resize_timeout"] = resize_timeout_at_least_15(spec["resize_timeout"], "pool_spec.resize_timeout", self.log)
        except InvalidInput as err:
            raise fail(err) from None
        if not spec.get("node_agent_sku_id"):
            raise fail(InvalidInput("pool_spec.node_agent_sku_id", spec.get("node_agent_sku_id"), "no node agent SKU",
                                    "run preflight, which derives it from Batch's supported images"))
        version = version_of(self.image_version_id)
        metadata = {str(k): str(v) for k, v in (spec.get("metadata") or {}).items()}
        planned = metadata.get(naming.TAG_IMAGE_VERSION)
        if planned and planned != version:
            raise fail(InvalidInput("image_version_id", self.image_version_id,
                                    f"the plan's pool is for image version {planned}, this id is version {version}",
                                    "pass the image version the same run published"))
        metadata[naming.TAG_IMAGE_VERSION] = version
        spec["metadata"] = metadata
        return spec

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from azure.core.exceptions import HttpResponseError  # the Azure SDK loads in the worker, not at DAG parse

        from batch_images.hooks.batch import BatchPoolHook

        spec = self._spec()
        pool_id = spec["pool_id"]
        hook = BatchPoolHook(spec["batch_conn_id"])
        if hook.uses_shared_key:
            raise fail(InvalidInput(
                f"connection {spec['batch_conn_id']}", "login/password (Shared Key)",
                "Batch refuses Shared Key for pools on gallery images (SharedKey is not allowed when external "
                "resources of type Compute are linked)",
                "remove login and password from the azure_batch connection and set extra credential_conn_id to an "
                "Entra ID (azure) connection"))
        metadata = dict(spec["metadata"])
        dag_id = self.dag_id
        run_id = context.get("run_id")
        metadata.setdefault(naming.TAG_MANAGED_BY, naming.MANAGED_BY)
        metadata.setdefault(naming.TAG_DAG_ID, dag_id)
        if run_id:
            metadata.setdefault(naming.TAG_RUN_ID, run_id)

        existing = hook.get_pool(pool_id)
        if existing is not None:
            return self._adopt(existing, spec, dag_id, run_id)

        options = hook.build_pool_options(
            pool_id=pool_id,
            vm_size=spec["vm_size"],
            image_version_id=self.image_version_id,
            node_agent_sku_id=spec["node_agent_sku_id"],
            target_dedicated_nodes=int(spec["target_dedicated_nodes"]),
            target_low_priority_nodes=int(spec["target_low_priority_nodes"]),
            resize_timeout=spec["resize_timeout"],
            start_task=spec.get("start_task"),
            metadata=metadata,
            display_name=f"{pool_id} (image {metadata[naming.TAG_IMAGE_VERSION]})",
            security_profile=spec.get("security_profile"),  # Trusted Launch images (h5: preflight's plan)
        )
        try:
            created = hook.create_gallery_pool(options)
        except HttpResponseError as err:
            code = batch_error_code(err)
            text = batch_error_text(err)
            if code == "PoolBeingDeleted":
                raise AirflowException(f"Batch pool {pool_id} is still being deleted ({text}); a retry creates it "
                                       "again once the deletion has finished.") from None
            if err.status_code in _FATAL_CREATE_STATUS:
                raise fail(f"Batch refused to create pool {pool_id} in account {spec['batch_account_id']}: {text}. "
                           + _create_fix(code)) from None
            raise
        if not created:  # lost a race with another try: adopt what is there if it is ours
            existing = hook.get_pool(pool_id)
            if existing is None:
                raise AirflowException(f"Batch said pool {pool_id} exists but it cannot be read; retrying.")
            return self._adopt(existing, spec, dag_id, run_id)
        self.log.info("Created Batch pool %s: image %s, node agent %s, %s dedicated + %s low-priority nodes, "
                      "resizeTimeout %s", pool_id, self.image_version_id, spec["node_agent_sku_id"],
                      spec["target_dedicated_nodes"], spec["target_low_priority_nodes"], spec["resize_timeout"])
        return pool_id

    def _adopt(self, pool: Any, spec: dict, dag_id: str | None, run_id: str | None) -> str:
        pool_id = spec["pool_id"]
        image = pool_image_id(pool)
        if (enum_text(pool.state) or "").lower() == "deleting":
            raise AirflowException(f"Batch pool {pool_id} is being deleted; a retry creates it again once the "
                                   "deletion has finished.")
        if not same_image(image, self.image_version_id):
            raise fail(InvalidInput(
                "pool_spec.pool_id", pool_id,
                f"a pool with this id already exists in {spec['batch_account_id']} and runs image {image!r}, not "
                f"{self.image_version_id!r}",
                "delete that pool if it is no longer used, or build a new version (raise the rebuild param) so the "
                "pool id changes"))
        mine = created_by_run(pool_metadata(pool), dag_id, run_id)
        self.log.info("Batch pool %s already exists on image %s (%s): adopting it", pool_id, image,
                      "created by an earlier try of this run" if mine else "created by another run")
        return pool_id


def _create_fix(code: str | None) -> str:
    if code == "PoolQuotaReached":
        return "Fix: delete unused pools in the account or ask for a higher pool quota."
    if code in ("AuthenticationFailed", "AuthorizationFailure", "InsufficientPermissions"):
        return ("Fix: use Entra ID (not Shared Key) and give the identity a role on the gallery image that includes "
                "Microsoft.Compute/disks/beginGetAccess/action (Reader is not enough).")
    return "Fix: correct the pool settings in the pipeline config named in the message and run again."


# --- repair (used by the steady-state sensor) ----------------------------------------------------------------------


class PoolRepairFailed(Exception):
    """The pool cannot reach steady state; the message says why (and lists unhealthy nodes)."""


class PoolRepair:
    """One repair step per waiter failure, with limits kept in ``attempts`` (a JSON dict the sensor carries).

    :meth:`attempt` either performs an action and returns a description of it (the sensor then waits
    again), or raises :class:`PoolRepairFailed`.
    """

    def __init__(self, hook: BatchPoolHook, *, pool_id: str, target_dedicated: int, target_low_priority: int,
                 resize_timeout: timedelta | str | None = None, max_allocation_retries: int = 1,
                 max_node_repairs: int = 2, max_resizes: int = 3, log=None) -> None:
        self.hook = hook
        self.pool_id = pool_id
        self.target_dedicated = int(target_dedicated)
        self.target_low_priority = int(target_low_priority)
        self.resize_timeout = resize_timeout
        self.max_allocation_retries = max_allocation_retries
        self.max_node_repairs = max_node_repairs
        self.max_resizes = max_resizes
        self.log = log or hook.log

    def attempt(self, reason: str, message: str, state: dict, attempts: dict) -> str:
        from batch_images.triggers.waiters import batch as waiter

        if reason == waiter.ALLOCATION_TIMED_OUT:
            used = attempts.get("allocation_retries", 0)
            if used >= self.max_allocation_retries:
                raise PoolRepairFailed(f"{message} (gave up after {used} resize retr{'y' if used == 1 else 'ies'})")
            attempts["allocation_retries"] = used + 1
            self._resize()
            return f"allocation timed out; resize retry {used + 1}/{self.max_allocation_retries} to the target"
        if reason == waiter.SIZE_MISMATCH:
            used = attempts.get("resizes", 0)
            if used >= self.max_resizes:
                raise PoolRepairFailed(f"{message} (gave up after {used} resizes)")
            attempts["resizes"] = used + 1
            self._resize()
            return f"pool steady off target; resize {used + 1}/{self.max_resizes} to the target"
        if reason == waiter.UNHEALTHY_NODES:
            return self._repair_nodes(message, state, attempts)
        raise PoolRepairFailed(message)

    def _resize(self) -> None:
        from azure.core.exceptions import HttpResponseError

        pool = self.hook.get_pool(self.pool_id)
        shrinks = pool is not None and (
            (pool.current_dedicated_nodes or 0) > self.target_dedicated
            or (pool.current_low_priority_nodes or 0) > self.target_low_priority)
        if shrinks:
            users = self.users()
            if users:  # a resize down requeues the tasks of the nodes it removes
                raise PoolRepairFailed(
                    f"Batch pool {self.pool_id} has {pool.current_dedicated_nodes} dedicated + "
                    f"{pool.current_low_priority_nodes} low-priority nodes, more than the target "
                    f"{self.target_dedicated} + {self.target_low_priority}, and is in use ({'; '.join(users)}): not "
                    "shrinking it, which would requeue users' tasks. Fix: resize it yourself when its work allows, "
                    "or raise the pipeline's node counts to the pool's size.")
        try:
            self.hook.resize_pool(self.pool_id, self.target_dedicated, self.target_low_priority, self.resize_timeout)
        except HttpResponseError as err:
            raise PoolRepairFailed(f"Batch pool {self.pool_id}: the resize to the target failed: "
                                   f"{batch_error_text(err)}") from None

    def unhealthy_nodes(self) -> list[dict]:
        return [node_report(n) for n in self.hook.list_nodes(self.pool_id, UNHEALTHY_NODE_STATES)]

    def describe_nodes(self, nodes: list[dict]) -> str:
        lines = [f"  {n['id']}: {n['state']}" + (f" - {'; '.join(n['errors'])}" if n["errors"] else "")
                 for n in nodes[:_MAX_NODES_IN_MESSAGE]]
        if len(nodes) > _MAX_NODES_IN_MESSAGE:
            lines.append(f"  ... and {len(nodes) - _MAX_NODES_IN_MESSAGE} more")
        return "\n".join(lines)

    def _repair_nodes(self, message: str, state: dict, attempts: dict) -> str:
        from azure.core.exceptions import HttpResponseError

        used = attempts.get("node_repairs", 0)
        nodes = self.unhealthy_nodes()
        if used >= self.max_node_repairs:
            raise PoolRepairFailed(f"{message}\nGave up after {used} repair round(s) (reboot, then remove and "
                                   f"re-add). Unhealthy nodes:\n{self.describe_nodes(nodes)}")
        if not nodes:  # recovered between the poll and now
            return "no unhealthy nodes any more"
        attempts["node_repairs"] = used + 1
        steady = (state.get("allocation_state") or "").lower() == "steady"
        node_ids = [n["id"] for n in nodes]
        if used == 0 or not steady:
            rebooted, refused = [], []
            for nid in node_ids:
                try:  # taskcompletion: a node that took a task since the listing finishes it first
                    self.hook.reboot_node(self.pool_id, nid, "taskcompletion")
                    rebooted.append(nid)
                except HttpResponseError as err:
                    refused.append(f"{nid} ({batch_error_text(err)})")
            if rebooted:
                return (f"repair {used + 1}/{self.max_node_repairs}: rebooted {len(rebooted)} unhealthy node(s)"
                        + (f"; reboot refused for {', '.join(refused)}" if refused else ""))
            if not steady:
                raise PoolRepairFailed(f"{message}\nReboot was refused for every unhealthy node: "
                                       f"{', '.join(refused)}")
        try:
            self.hook.remove_nodes(self.pool_id, node_ids, self.resize_timeout,
                                   node_deallocation_option="taskcompletion")
        except HttpResponseError as err:
            raise PoolRepairFailed(f"{message}\nRemoving the unhealthy nodes failed: {batch_error_text(err)}. "
                                   f"Unhealthy nodes:\n{self.describe_nodes(nodes)}") from None
        return (f"repair {used + 1}/{self.max_node_repairs}: removed {len(node_ids)} unhealthy node(s); the pool is "
                "resized back to its target once steady")

    def users(self) -> list[str]:
        """What uses the pool, for a person to read; empty when nothing does.

        Three requests whatever the account's size: ``/nodecounts`` for the pool (nodes running tasks),
        ``GET /jobs`` filtered on ``executionInfo/poolId`` (a filterable property of List Jobs, see
        learn.microsoft.com/rest/api/batchservice/odata-filters-in-batch), and ``GET /jobschedules`` of the
        active and disabled schedules (poolInfo is not filterable there, so it is compared here). Jobs and
        schedules that are completed or being deleted or terminated no longer point anywhere. A read that
        fails counts as "in use": when unsure, leave the pool.
        """
        from azure.core.exceptions import HttpResponseError

        found: list[str] = []
        pool_id = self.pool_id.lower()
        try:
            running = (self.hook.pool_node_counts(self.pool_id).get("total") or {}).get("running", 0)
            if running:
                found.append(f"{running} node(s) running tasks")
            client = self.hook.connection
            flt = "executionInfo/poolId eq '{}'".format(self.pool_id.replace("'", "''"))
            jobs = [j for j in client.list_jobs(filter=flt, select=["id", "state", "poolInfo", "executionInfo"])
                    if (enum_text(j.state) or "").lower() in _LIVE_JOB_STATES
                    and _points_at(j.pool_info, j.execution_info, pool_id)]
            found += [f"job {j.id} ({enum_text(j.state)})" for j in jobs[:_MAX_NODES_IN_MESSAGE]]
            if len(jobs) > _MAX_NODES_IN_MESSAGE:
                found.append(f"{len(jobs) - _MAX_NODES_IN_MESSAGE} more job(s)")
            schedules = [s for s in client.list_job_schedules(filter="state eq 'active' or state eq 'disabled'",
                                                              select=["id", "state", "jobSpecification"])
                         if _points_at(getattr(s.job_specification, "pool_info", None), None, pool_id)]
            found += [f"job schedule {s.id} ({enum_text(s.state)})" for s in schedules[:_MAX_NODES_IN_MESSAGE]]
        except HttpResponseError as err:
            found.append(f"could not check who uses it: {batch_error_text(err)}")
        return found

    def cleanup(self, dag_id: str | None, run_id: str | None) -> str:
        """Delete the pool if this run created it and nobody uses it; say what was done (for the failure message)."""
        from azure.core.exceptions import HttpResponseError

        try:
            pool = self.hook.get_pool(self.pool_id)
        except HttpResponseError as err:
            return f"Could not read pool {self.pool_id} to clean it up: {batch_error_text(err)}."
        if pool is None:
            return f"Pool {self.pool_id} no longer exists."
        if not created_by_run(pool_metadata(pool), dag_id, run_id):
            return f"Pool {self.pool_id} was left in place: this run did not create it."
        if (enum_text(pool.state) or "").lower() == "deleting":
            return f"Pool {self.pool_id} is already being deleted."
        users = self.users()
        if users:
            return (f"Pool {self.pool_id} (created by this run) was left in place because it is in use: "
                    f"{'; '.join(users)}. Deleting it would kill and requeue those tasks. Delete it yourself once "
                    "its work is done, if it should go.")
        try:
            self.hook.delete_pool(self.pool_id)
        except HttpResponseError as err:
            return f"Deleting pool {self.pool_id} (created by this run) failed: {batch_error_text(err)}."
        return f"Pool {self.pool_id} (created by this run) was deleted, so no half-made pool is left behind."


# Job states in which a job can still run tasks on its pool (BatchJobState: completed, deleting and terminating
# jobs schedule nothing more).
_LIVE_JOB_STATES = ("active", "disabling", "disabled", "enabling")


def _points_at(pool_info: Any, execution_info: Any, pool_id: str) -> bool:
    """A job's / job specification's poolInfo.poolId (or the job's executionInfo.poolId) is this pool."""
    ids_ = (getattr(pool_info, "pool_id", None), getattr(execution_info, "pool_id", None))
    return any((i or "").lower() == pool_id for i in ids_)
