"""Create a Batch pool pinned to one gallery image version.

:class:`BatchPoolOperator` takes one entry of the preflight plan's ``pools`` as ``pool_spec`` (map it over
``PoolSpecsOperator(plan=preflight.output).output``: Airflow 3 maps only over return values, and ``pool`` is
BaseOperator's Airflow-pool argument, hence the name) and the image version id, and creates the pool with
``virtualMachineImageId`` pinned to that exact version, ``nodeAgentSKUId`` from the plan,
``resizeTimeout`` from the plan (never under 15 minutes), the start task, and metadata naming the image
version and the run. It does not wait: :class:`batch_images.sensors.pool.BatchPoolSteadySensor` does.

With the plan (``plan=``, as the DAG passes it), the pool first waits for the image version's replica in its own
Batch account's region, with no operation in flight on the version, and retries that region when it ends Failed
(:mod:`batch_images.operators.replica`: why the wait lives here, and how pools sharing a region and regions failing
together are kept from undoing each other's retries). ``publish_image_version`` already waited for the version's
whole operation (every region), so no pool starts before the last region replicated.

Idempotent: a retry (or a re-run of the same logical date) finds the pool by its deterministic id and
adopts it when it runs the same image version; a pool with that id on another image fails the task
with the two image ids. Shared Key connections are refused before any request (Batch rejects them for
gallery-image pools).

The repair the steady-state sensor applies lives next to it: :mod:`batch_images.sensors.pool_repair`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from batch_images import links
from batch_images.pool_facts import (
    batch_error_code,
    batch_error_text,
    created_by_run,
    enum_text,
    parse_duration,
    pool_image_id,
    pool_metadata,
)
from batch_images.operators.replica import ReplicaWaitingOperator
from batch_images.rules import ids, naming, pool_template, sizing
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import PoolSpec, RollDecision, read_pool_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

# Batch errors that no retry can fix: fail the task at once.
_FATAL_CREATE_STATUS = (400, 401, 403, 404, 409)


def fail(err: InvalidInput | str) -> AirflowFailException:
    return AirflowFailException(str(err))


def resize_timeout_at_least_15(value: Any, field: str, log=None) -> timedelta:
    """Parse an ISO 8601 duration; raise values under 15 minutes to 15 (with a warning)."""
    td = parse_duration(value, field)
    floored = sizing.at_least_resize_floor(td)
    if floored != td and log is not None:
        log.warning("%s %s is under 15 minutes; using 15 minutes (Batch's default, and the floor the image "
                    "recipe asks for)", field, value)
    return floored


def version_of(image_version_id: str) -> str:
    """The version name (last segment) of a gallery image version id."""
    return ids.parse_arm_id(image_version_id, "image_version_id", ids.GALLERY_IMAGE_VERSION).name


class BatchPoolOperator(ReplicaWaitingOperator):
    """Create a Batch pool on an exact gallery image version (or adopt the one a previous try made), once the version
    is replicated in the pool's Batch account region (when ``plan`` is given).

    :param pool_spec: plan_roll's output (a :class:`~batch_images.rules.plan.RollDecision`: no pool is made when it
        says the run makes no new one), or one entry of the preflight plan's ``pools`` list (a
        :class:`~batch_images.rules.plan.PoolSpec`: the pool is made): ``batch_conn_id``, ``batch_account_id``,
        ``pool_id``, ``vm_size``, ``target_dedicated_nodes``, ``target_low_priority_nodes``,
        ``resize_timeout`` (ISO 8601), ``start_task``, ``max_unhealthy_node_share``,
        ``node_agent_sku_id``, ``metadata``. (templated)
    :param image_version_id: the gallery image version id (``.../images/{def}/versions/{x.y.z}``); ignored when
        ``pool_spec`` is plan_roll's decision, which names its own (a roll-only run's target per pool). (templated)
    :param batch_conn_id: overrides ``pool["batch_conn_id"]``. (templated)
    :param plan: the preflight plan: wait for the replica in the pool spec's ``batch_account_location`` first, retrying
        that region when it ends Failed (:class:`~batch_images.operators.replica.ReplicaWaitingOperator`: ``arm_conn_id``,
        ``poll_interval``, ``deferrable``, ``max_region_retries``; budget ``timeouts.replication``). None: no wait.
        (templated)
    :return: the pool id (None when plan_roll's output says this run makes no new pool).
    """

    operator_extra_links = links.POOL_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("pool_spec", "image_version_id", "batch_conn_id", "plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json", "pool_spec": "json"}
    ui_color = "#0078d4"

    def __init__(self, *, pool_spec: dict, image_version_id: str | None = None, batch_conn_id: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool_spec = pool_spec
        self.image_version_id = image_version_id
        self.batch_conn_id = batch_conn_id

    # -- validation -------------------------------------------------------------------------------------------

    @cached_property
    def spec(self) -> PoolSpec:
        """``pool_spec`` read once per execution (a :class:`RollDecision` or a plan :class:`PoolSpec`), with
        ``batch_conn_id`` overridden when given. Raises AirflowFailException naming the bad field."""
        pool = self.pool_spec
        if isinstance(pool, Mapping) and self.batch_conn_id:
            pool = {**pool, "batch_conn_id": self.batch_conn_id}
        try:
            return read_pool_spec(pool, "pool_spec")
        except InvalidInput as err:
            raise fail(err) from None

    @property
    def version_id(self) -> str:
        """The version the pool is made on: plan_roll's decision's (a roll-only run's target for this pool), else
        ``image_version_id``."""
        spec = self.spec
        return spec.image_version_id if isinstance(spec, RollDecision) else self.image_version_id

    def _spec(self) -> tuple[PoolSpec, timedelta]:
        """The typed pool spec (metadata naming the image version) and its resize timeout, floored at 15 minutes.
        Raises AirflowFailException naming the bad field."""
        spec = self.spec
        try:
            naming.validate_pool_id(spec.pool_id, "pool_spec.pool_id")
            ids.parse_arm_id(self.version_id, "image_version_id", ids.GALLERY_IMAGE_VERSION)
            resize_timeout = resize_timeout_at_least_15(spec.resize_timeout, "pool_spec.resize_timeout", self.log)
        except InvalidInput as err:
            raise fail(err) from None
        if not spec.node_agent_sku_id:
            raise fail(InvalidInput("pool_spec.node_agent_sku_id", spec.node_agent_sku_id, "no node agent SKU",
                                    "run preflight, which derives it from Batch's supported images"))
        version = version_of(self.version_id)
        metadata = {str(k): str(v) for k, v in spec.metadata.items()}
        planned = metadata.get(naming.TAG_IMAGE_VERSION)
        if planned and planned != version:
            raise fail(InvalidInput("image_version_id", self.version_id,
                                    f"the plan's pool is for image version {planned}, this id is version {version}",
                                    "pass the image version the same run published"))
        metadata[naming.TAG_IMAGE_VERSION] = version
        return spec.model_copy(update={"metadata": metadata}), resize_timeout

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> str | None:
        # Every pool waits, also one that gets no new pool this run: it may be its region's retrier (replica.py).
        return self.wait_for_replica(context)

    def replica_region(self) -> str | None:
        return self.spec.batch_account_location

    def replica_version_id(self) -> str:
        return self.version_id

    def replica_ready(self, context: Context) -> str | None:
        from azure.core.exceptions import HttpResponseError  # the Azure SDK loads in the worker, not at DAG parse

        from batch_images.hooks.batch import BatchPoolHook

        d = self.spec
        if isinstance(d, RollDecision) and not d.makes_new_pool:
            self.log.info("Logical pool %s: no new pool this run (roll %s, strategy %s, serving pool %s on %s)",
                          d.logical_pool, d.roll_action, d.strategy, d.serving_pool_id, d.serving_version)
            return None
        spec, resize_timeout = self._spec()
        pool_id = spec.pool_id
        hook = BatchPoolHook(spec.batch_conn_id)
        try:
            hook.require_entra_id("pool_spec.batch_conn_id")
        except InvalidInput as err:
            raise fail(err) from None
        metadata = dict(spec.metadata)
        dag_id = self.dag_id
        run_id = context.get("run_id")
        metadata.setdefault(naming.TAG_MANAGED_BY, naming.MANAGED_BY)
        metadata.setdefault(naming.TAG_DAG_ID, dag_id)
        if run_id:
            metadata.setdefault(naming.TAG_RUN_ID, run_id)
        if spec.logical_pool:  # a new physical pool of a logical pool starts as the canary (rules/roll.py)
            metadata.setdefault(naming.TAG_LOGICAL_POOL, spec.logical_pool)
            metadata.setdefault(naming.TAG_ROLE, naming.ROLE_CANARY)

        existing = hook.get_pool(pool_id)
        if existing is not None:
            return self._adopt(existing, spec, dag_id, run_id)

        # The logical pool's template plus the owned fields (rules/pool_template.py); an autoscaled one starts as a
        # fixed-size canary. Sent as raw JSON so every template property reaches Batch.
        body = pool_template.pool_body(
            spec.new_pool_template(), pool_id=pool_id, image_version_id=self.version_id,
            node_agent_sku_id=spec.node_agent_sku_id, security_profile=spec.security_profile, metadata=metadata,
            canary_nodes=spec.canary_nodes, display_name=f"{pool_id} (image {metadata[naming.TAG_IMAGE_VERSION]})")
        if spec.template and not spec.template.get("resizeTimeout") and not pool_template.is_autoscaled(body):
            body["resizeTimeout"] = pool_template.iso_duration(resize_timeout)
        body = pool_template.resolve_secrets(body, self._secret)  # only here: never in XCom, logs or the plan
        try:
            created = self._create(hook, spec, pool_id, body)
        except HttpResponseError as err:
            code = batch_error_code(err)
            text = batch_error_text(err)
            if code == "PoolBeingDeleted":
                raise AirflowException(f"Batch pool {pool_id} is still being deleted ({text}); a retry creates it "
                                       "again once the deletion has finished.") from None
            if err.status_code in _FATAL_CREATE_STATUS:
                raise fail(f"Batch refused to create pool {pool_id} in account {spec.batch_account_id}: {text}. "
                           + _create_fix(code)) from None
            raise
        if not created:  # lost a race with another try: adopt what is there if it is ours
            existing = hook.get_pool(pool_id)
            if existing is None:
                raise AirflowException(f"Batch said pool {pool_id} exists but it cannot be read; retrying.")
            return self._adopt(existing, spec, dag_id, run_id)
        self.log.info("Created Batch pool %s: image %s, node agent %s, %s dedicated + %s low-priority nodes, "
                      "resizeTimeout %s", pool_id, self.version_id, spec.node_agent_sku_id,
                      spec.target_dedicated_nodes, spec.target_low_priority_nodes, resize_timeout)
        return pool_id

    @staticmethod
    def _secret(name: str) -> str:
        """The Airflow Variable a template's ``secret:variable/<name>`` names, masked in every log from now on."""
        from airflow.sdk import Variable
        from airflow.sdk.log import mask_secret

        value = Variable.get(name, default=None)
        if value is None:
            raise fail(InvalidInput("pool_spec.template", f"secret:variable/{name}", f"no Airflow Variable {name!r}",
                                    f"create it (airflow variables set {name} ...; or AIRFLOW_VAR_{name.upper()}, or "
                                    "a secrets backend)")) from None
        mask_secret(value)
        return value

    def _create(self, hook: Any, spec: PoolSpec, pool_id: str, body: dict) -> bool:
        """Create the pool: through the data plane (``POST /pools``), or through ARM (``Microsoft.Batch/batchAccounts/
        pools``, on ``arm_conn_id``) when the template carries a user-assigned ``identity`` or ARM ``tags``, which only
        the management plane accepts (Microsoft Learn, "Configure managed identities in Batch pools": such pools are
        created with the management plane only). Either way the same pool; everything after the create (waits,
        metadata, drain, delete) stays on the data plane. True when created, False when it already existed."""
        from batch_images.rules import arm_pool_body

        if not arm_pool_body.body_needs_arm(spec.template):
            return hook.create_pool_from_body(body)
        from batch_images.hooks.batch_mgmt import BatchManagementHook  # the Azure SDK loads in the worker

        try:
            arm_body = arm_pool_body.arm_pool_body(body, spec.template.get("identity"), spec.template.get("tags"),
                                                   field="pool_spec.template")
        except InvalidInput as err:
            raise fail(err) from None
        self.log.info("Pool %s has %s: creating it through ARM (Microsoft.Batch/batchAccounts/pools)", pool_id,
                      " and ".join(k for k in arm_pool_body.ARM_ONLY_KEYS if spec.template.get(k)))
        return BatchManagementHook(azure_conn_id=self.arm_conn_id).create_pool(spec.batch_account_id, pool_id, arm_body)

    def _adopt(self, pool: Any, spec: PoolSpec, dag_id: str | None, run_id: str | None) -> str:
        pool_id = spec.pool_id
        image = pool_image_id(pool)
        if (enum_text(pool.state) or "").lower() == "deleting":
            raise AirflowException(f"Batch pool {pool_id} is being deleted; a retry creates it again once the "
                                   "deletion has finished.")
        if not ids.same_id(image, self.version_id):
            raise fail(InvalidInput(
                "pool_spec.pool_id", pool_id,
                f"a pool with this id already exists in {spec.batch_account_id} and runs image {image!r}, not "
                f"{self.version_id!r}",
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
