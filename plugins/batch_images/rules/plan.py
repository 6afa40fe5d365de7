"""The plan: everything a run decided before it creates anything, typed.

:class:`PreflightOperator` builds it (:func:`build_plan`) and returns ``Plan.to_dict()``, so XCom carries plain
JSON; every other task takes that dict and reads it with ``Plan.from_dict(...)``. ``docs/architecture.md``
("The plan") lists the fields, their types, what they mean and who reads them.

A missing or ill-typed field is an :class:`~batch_images.rules.errors.InvalidInput` naming ``plan.<field>``
(e.g. ``plan.source.os_disk_id``), the value and the fix. Unknown keys are ignored, so a plan written by a newer
preflight still reads. Plans written before Trusted Launch was read (no ``image_path`` / ``security``) take the
managed image path.

Pure: pydantic v2 and the stdlib, no Airflow, no Azure SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from . import ids, naming, pool_template, sizing
from . import roll as roll_rules
from . import security as security_rules
from .config import RollConfig, SmokeTestConfig
from .errors import InvalidInput
from .ids import region_key
from .run_options import RunOptions

PLAN_FIX = "run the PreflightOperator of the same pipeline and pass its output as plan"


def _path(field: str, loc: Sequence[str | int]) -> str:
    out = field
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def invalid_from(err: ValidationError, field: str, fix: str) -> InvalidInput:
    """The first error of a pydantic validation as an InvalidInput naming ``<field>.<loc>``."""
    first = err.errors(include_url=False)[0]
    value = first.get("input") if first["type"] != "missing" else None
    reason = "missing from the plan" if first["type"] == "missing" or value is None else first["msg"]
    return InvalidInput(_path(field, first["loc"]), value, reason, fix)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_dict(self) -> dict:
        """Plain JSON-able data (what XCom carries)."""
        return self.model_dump(mode="json")


class DataDisk(_Model):
    lun: int
    disk_id: str | None
    size_gb: float | None = None


class BaseImage(_Model):
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None


class Source(_Model):
    """The prepared VM as preflight read it."""

    vm_id: str
    vm_name: str
    os_disk_id: str
    os_disk_size_gb: float | None = None
    data_disks: list[DataDisk] = []
    os_type: Literal["Linux", "Windows"]
    hyper_v_generation: Literal["V1", "V2"]
    base_image: BaseImage | None = None
    security_type: str | None = None


class BuildVm(_Model):
    """A base_image pipeline's build VM, decided by preflight (docs/base-image.md).

    ``base`` is the exact marketplace version it starts from; ``base_version_source`` why that version
    (``param`` base_image_version, ``asset event``, ``config``, or ``latest`` resolved at run time) and
    ``base_version_detail`` the words for the summary. ``custom_data_sha256`` / ``custom_data_bytes`` pin the script
    preflight checked (prepare_build_vm refuses a file that changed since). ``timeout_seconds``: how long the guest
    may take to power off. ``security_type``: the VM's ``securityProfile.securityType``, ``TrustedLaunch`` for a
    Trusted-Launch-only base (:func:`batch_images.rules.security.base_image_build_security`); plans written before
    it was read have none and build a standard VM.
    """

    vm_id: str
    vm_name: str
    subscription_id: str
    resource_group: str
    location: str
    vm_size: str
    subnet_id: str
    os_disk_name: str
    nic_name: str
    data_disks: list[DataDisk] = []
    base: BaseImage
    base_version_source: Literal["param", "asset event", "config", "latest"]
    base_version_detail: str = ""
    custom_data_file: str
    custom_data_sha256: str
    custom_data_bytes: int
    timeout_seconds: float
    security_type: Literal["Standard", "TrustedLaunch"] = "Standard"


class Gallery(_Model):
    subscription_id: str
    resource_group: str
    name: str
    location: str
    id: str


class ImageDefinition(_Model):
    name: str
    os_type: str
    hyper_v_generation: str
    publisher: str
    offer: str
    sku: str
    id: str


class TargetRegion(_Model):
    name: str
    regional_replica_count: int = 1
    storage_account_type: str | None = None


class RegionSizing(_Model):
    count: int
    vm_count: int
    explanation: str = ""


class ReplicaSizingPlan(_Model):
    rule: str = "unknown"
    per_region: dict[str, RegionSizing] = {}


class SecurityDecision(_Model):
    """:func:`batch_images.rules.security.decide`'s result."""

    security_type: str
    image_path: Literal["managed_image", "snapshots"]
    definition_feature: str | None = None
    pool_security_profile: dict | None = None


class PoolSpec(_Model):
    """One pool of the run (an entry of ``plan["pools"]``; what ``plan_roll`` maps over).

    ``pool_id`` is the physical pool this run creates (``<logical_pool>-<version dashed>``); ``logical_pool`` the
    configured ``pool_id_prefix``, unique per Batch account. ``batch_account_location``: the account's region (the
    config's, or looked up by preflight). ``roll`` and ``smoke_test`` are the config's own models
    (:class:`~batch_images.rules.config.RollConfig`, :class:`~batch_images.rules.config.SmokeTestConfig`: their
    defaults are declared there only).
    """

    from_dict_reason: ClassVar[str] = "expected one entry of the preflight plan's pools list (a dict)"
    from_dict_fix: ClassVar[str] = "pass an entry of the preflight plan's pools list unchanged"

    batch_conn_id: str
    batch_account_id: str
    batch_account_location: str | None = None
    logical_pool: str | None = None
    pool_id: str
    vm_size: str
    target_dedicated_nodes: int
    target_low_priority_nodes: int
    resize_timeout: str
    start_task: dict | None = None
    max_unhealthy_node_share: float = 0.0
    node_agent_sku_id: str
    metadata: dict[str, str] = {}
    allocation_timeout: float | None = None
    security_profile: dict | None = None
    roll: RollConfig = RollConfig()
    smoke_test: SmokeTestConfig | None = None
    require_approval: bool = False
    canary_only: bool = False  # the run's canary_only option (set by pool_specs from plan.options)
    # The logical pool's Batch pool body without the owned fields (rules/pool_template.py): the config's template,
    # its template_file, the adopted pool's spec or the short fields. vm_size / target_* above are derived from it.
    template: dict = {}
    adopt_pool_id: str | None = None
    canary_nodes: int | None = None  # an autoscaled template's canary size (None: not autoscaled)
    # A roll-only run's target for this logical pool (rules/roll_targets.py); None: the version the run builds.
    target_version: str | None = None
    target_version_id: str | None = None
    run_mode: str = "build"  # the run's params.mode (set by Plan.rolled_pools)
    revoked_versions: list[str] = []  # the definition's revoked versions (set by Plan.rolled_pools)

    @classmethod
    def from_dict(cls, data: Any, field: str = "pool_spec") -> Self:
        """Read one pool spec; InvalidInput naming ``<field>.<key>`` when a key is missing or ill-typed."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput(field, data, cls.from_dict_reason, cls.from_dict_fix)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise invalid_from(err, field, cls.from_dict_fix) from None

    def new_pool_template(self) -> dict:
        """The template a new pool of this logical pool is made from (the short fields' for a plan written before
        templates existed)."""
        if self.template:
            return dict(self.template)
        body: dict[str, Any] = {"vmSize": self.vm_size, "resizeTimeout": self.resize_timeout,
                                "targetDedicatedNodes": self.target_dedicated_nodes,
                                "targetLowPriorityNodes": self.target_low_priority_nodes, "enableAutoScale": False}
        task = self.start_task
        if task:
            body["startTask"] = pool_template.start_task_body(
                task["command_line"], task.get("wait_for_success", True), task.get("max_task_retry_count", 1),
                task.get("elevated", True))
        return body

    @property
    def makes_new_pool(self) -> bool:
        """Does this run create (and canary) ``pool_id``? Always for a plan pool spec (no plan_roll decision);
        :class:`RollDecision` says when not."""
        return True


class RollDecision(PoolSpec):
    """plan_roll's output for one logical pool: the pool spec plus what this run does with it (what create_pool,
    wait_for_pool_steady, smoke_test, approve_roll and roll_pool map over, as ``pool_spec``).

    ``pool_id`` is the pool this run acts on: the new pool (first, blue_green roll, canary), or the serving pool
    (``current``, and an ``in_place`` roll, which re-images it). ``roll_action``: :data:`~batch_images.rules.roll.FIRST`
    / ``ROLL`` / ``CURRENT`` / ``SKIP_DOWNGRADE``; ``strategy`` the effective one (the run's param, else the config's;
    ``blue_green`` for a canary-only run); ``serving_pool_id`` / ``serving_version`` the pool serving before the run
    (None: none); ``version`` / ``image_version_id`` what this run published; ``account`` the Batch account's name.
    """

    from_dict_reason: ClassVar[str] = "expected plan_roll's output for one logical pool (a dict)"
    from_dict_fix: ClassVar[str] = "pass plan_roll's output (mapped per pool) unchanged"

    logical_pool: str
    roll_action: Literal[roll_rules.ACTIONS]
    strategy: Literal[roll_rules.STRATEGIES]
    serving_pool_id: str | None = None
    serving_version: str | None = None
    version: str
    image_version_id: str
    account: str

    @classmethod
    def read(cls, data: Any, field: str = "pool_spec") -> RollDecision | None:
        """plan_roll's output as a RollDecision; None when ``data`` carries no decision (a plan pool spec, a pool
        id, explicit values). InvalidInput when it carries one that does not read."""
        if isinstance(data, RollDecision):
            return data
        if isinstance(data, Mapping) and "roll_action" in data:
            return cls.from_dict(data, field)
        return None

    @property
    def makes_new_pool(self) -> bool:
        """Yes for a first pool and a blue/green roll (a canary-only run is one); no for in_place (the serving pool
        is re-imaged), a pool already on this version and a skipped downgrade."""
        return self.roll_action == roll_rules.FIRST or (self.roll_action == roll_rules.ROLL
                                                         and self.strategy == "blue_green")

    @property
    def re_images(self) -> bool:
        """An in_place roll: the serving pool (``pool_id``) is emptied, re-imaged and grown back."""
        return self.roll_action == roll_rules.ROLL and self.strategy == "in_place"

    @property
    def needs_approval(self) -> bool:
        """approve_roll asks a human: ``require_approval`` and a real roll (not a canary-only run)."""
        return self.require_approval and self.roll_action == roll_rules.ROLL and not self.canary_only


def read_pool_spec(data: Any, field: str = "pool_spec") -> PoolSpec:
    """A mapped pool task's ``pool_spec``: plan_roll's output (a :class:`RollDecision`) or a plan entry (a
    :class:`PoolSpec`, which acts as "this run makes a new pool"). InvalidInput naming ``<field>.<key>``."""
    return RollDecision.read(data, field) or PoolSpec.from_dict(data, field)


def pulled_list(value: Any) -> list:
    """The XComs of a task pulled across its map indexes or lanes (a mapped task group's task pulled from outside the
    group gives a list, or the one value itself when there is one lane) as a list without Nones."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        return [value]
    return [v for v in value if v is not None]


class Plan(_Model):
    """The run's plan (see docs/architecture.md, "The plan")."""

    dag_id: str
    run_id: str
    version: str
    arm_conn_id: str | None = None
    location: str
    work_resource_group: str
    work_subscription_id: str
    source: Source
    gallery: Gallery
    image_definition: ImageDefinition
    version_id: str
    image_name: str | None = None
    image_id: str | None = None
    snapshot_names: dict[str, str] = {}
    target_regions: list[TargetRegion]
    replica_sizing: ReplicaSizingPlan | None = None
    storage_account_type: str | None = None
    end_of_life_date: str | None = None
    end_of_life_days: int | None = None
    keep_versions: int = 3
    node_agent_sku_id: str | None = None
    pools: list[PoolSpec] = []
    tags: dict[str, str] = {}
    timeouts: dict[str, float] = {}
    image_path: Literal["managed_image", "snapshots"] = "managed_image"
    security: SecurityDecision | None = None
    build: BuildVm | None = None
    options: RunOptions = RunOptions()  # the run's validated params (rules/run_options.py)
    roll_decisions: dict[str, str] = {}  # dry run: logical pool -> what the roll would do (read by preflight)
    revoked_versions: list[str] = []  # the definition's revoked versions (a revoke run's own included)
    not_rolled: dict[str, str] = {}  # a revoke run: logical pool -> why it is left alone (not on the revoked version)
    add_regions: dict[str, list[str]] = {}  # a roll-only run: target version -> regions publish_image_version adds

    @classmethod
    def from_dict(cls, data: Any, field: str = "plan") -> Plan:
        """Read a plan dict (XCom); InvalidInput naming ``plan.<field>`` when it is not one."""
        if isinstance(data, Plan):
            return data
        if not isinstance(data, Mapping):
            raise InvalidInput(field, data, "expected the PreflightOperator's plan (a dict)",
                               "pass plan=preflight.output (or the plan dict)")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise invalid_from(err, field, PLAN_FIX) from None

    # -- derived ------------------------------------------------------------------------------------------------

    @property
    def uses_snapshots(self) -> bool:
        """True when the version is made from the snapshots (a Trusted Launch source), not a managed image."""
        return self.image_path == security_rules.PATH_SNAPSHOTS

    def gallery_version_id(self, name: str) -> str:
        """The id of version ``name`` of the plan's image definition."""
        g = self.gallery
        return ids.gallery_image_version_id(g.subscription_id, g.resource_group, g.name, self.image_definition.name,
                                            name).id

    def run_tags(self) -> dict[str, str]:
        """Tags of the resources a run creates: the plan's extra tags + managed-by, dag_id, run_id, image-version."""
        return {**self.tags, **self.lineage_tags(), **naming.resource_tags(self.dag_id, self.run_id, self.version)}

    def lineage_tags(self) -> dict[str, str]:
        """The exact marketplace base of a base_image pipeline's run (empty for a prepared VM's)."""
        if self.build is None:
            return {}
        b = self.build.base
        return naming.lineage_tags(b.publisher or "", b.offer or "", b.sku or "", b.version or "")

    def shared_tags(self) -> dict[str, str]:
        """Tags of long-lived shared resources (gallery, definition): no run or version."""
        return {**self.tags, naming.TAG_MANAGED_BY: naming.MANAGED_BY, naming.TAG_DAG_ID: self.dag_id}

    def timeout(self, key: str, default: float) -> float:
        """``timeouts[key]`` in seconds, or ``default`` when the plan has none (or 0)."""
        return float(self.timeouts.get(key) or default)

    def rolled_pools(self) -> list[PoolSpec]:
        """The pools this run rolls (``options.pools``; all when empty), with the run's ``canary_only``."""
        return [p.model_copy(update={"canary_only": self.options.canary_only, "run_mode": self.options.mode,
                                     "revoked_versions": list(self.revoked_versions)}) for p in self.pools
                if self.options.rolls(p.logical_pool) and (p.logical_pool or "") not in self.not_rolled]

    def target_version_ids(self) -> list[str]:
        """The versions this run's pools go to: the built one, or a roll-only run's targets (each once)."""
        found = [p.target_version_id for p in self.rolled_pools() if p.target_version_id]
        return list(dict.fromkeys(found)) or [self.version_id]


# -- building the plan (preflight) ------------------------------------------------------------------------------


def build_plan(cfg: Any, *, publish_cfg: Any, dag_id: str, run_id: str, logical: date | datetime, version: str,
               arm_conn_id: str, source: Source, location: str, agent: str, account_regions: Mapping[str, str],
               replica_plan: Mapping[str, sizing.ReplicaSizing], pool_ids: Sequence[str],
               security: Mapping[str, Any] | None, today: date, duration: Callable[[timedelta], str],
               notes: list[tuple[str, str]] | None = None, build: BuildVm | None = None,
               options: RunOptions | None = None, adopted: Mapping[int, Mapping[str, Any]] | None = None,
               targets: Mapping[int, str] | None = None) -> Plan:
    """The plan of a run whose checks passed.

    :param cfg: the ``PipelineConfig``; ``publish_cfg`` the same with the Batch accounts' regions that the config
        left out added to ``target_regions`` (preflight adds them, with a warning).
    :param source: the source VM (:class:`Source`); ``location`` its region (the snapshots' and image's region).
    :param agent: the node agent SKU; ``account_regions`` Batch account id -> region; ``replica_plan`` replicas
        per region (``PipelineConfig.replica_plan``); ``pool_ids`` one per configured pool.
    :param security: :func:`batch_images.rules.security.decide`'s result (None: managed image path, no profile).
    :param today: UTC date the run builds (the end-of-life date counts from the later of it and the logical date).
    :param duration: timedelta -> ISO 8601 duration text (the pools' ``resize_timeout`` wire format).
    :param notes: when given, ``("info" | "warning", text)`` lines worth logging are appended.
    :param build: the build VM of a base_image pipeline (``source`` is then that VM as it will be).
    :param options: the run's validated params; its ``target_regions`` subset keeps only those configured regions
        (a region preflight added for a Batch account the config left out always stays).
    :param adopted: pool index -> the template read from that pool's ``adopt_pool_id``
        (:func:`~batch_images.rules.pool_template.template_from_pool` of its GET).
    :param targets: a roll-only run (``options.roll_only``): pool index -> the existing version it goes to
        (:func:`~batch_images.rules.roll_targets.choose_targets`); ``pool_ids`` are then per target. Nothing is built:
        the plan names no snapshots, managed image or build VM.
    """
    notes = notes if notes is not None else []
    options = options or RunOptions()
    g, d = cfg.gallery, cfg.image_definition
    tags = naming.resource_tags(dag_id, run_id, version)
    configured = {region_key(r) for r in cfg.all_regions()}
    target_regions = [r for r in publish_cfg.publishing_target_regions(account_regions)
                      if options.keeps_region(r["name"]) or region_key(r["name"]) not in configured]
    replica_plan = {r: s for r, s in replica_plan.items() if options.keeps_region(r) or region_key(r) not in configured}
    rule = sizing.parse_replica_rule(cfg.replica_rule)
    notes.append(("info", f"Replica sizing rule {rule.value} ({rule.source}):"))
    for region, s in replica_plan.items():
        notes.append(("info", f"  {region}: {s.count} replica(s) for {s.vm_count} VM(s) - {s.explanation}"))

    roll_only = options.roll_only
    snapshot_names = {}
    if not roll_only:
        snapshot_names["os"] = naming.snapshot_name(source.vm_name, naming.disk_role(None), version)
        for disk in source.data_disks:
            role = naming.disk_role(disk.lun)
            snapshot_names[role] = naming.snapshot_name(source.vm_name, role, version)

    profile = (security or {}).get("pool_security_profile")
    pools = []
    allocation = timedelta(0)
    for i, pool in enumerate(cfg.pools):
        template, dedicated, low, canary, resize = _pool_template(pool, (adopted or {}).get(i), i, notes)
        alloc = sizing.timeout_for_allocation(dedicated + low, resize)
        allocation = max(allocation, alloc)
        pools.append(PoolSpec(
            batch_conn_id=pool.batch_conn_id, batch_account_id=pool.batch_account_id,
            # not `location`: that is the source VM's region (the snapshots' and the image's), used below
            batch_account_location=account_regions.get(pool.batch_account_id) or pool.batch_account_location,
            logical_pool=pool.pool_id_prefix,
            pool_id=pool_ids[i], vm_size=str(template.get("vmSize") or ""), target_dedicated_nodes=dedicated,
            target_low_priority_nodes=low, resize_timeout=duration(resize), template=template,
            adopt_pool_id=pool.adopt_pool_id, canary_nodes=canary,
            start_task=pool.start_task.to_dict() if pool.start_task else None,
            max_unhealthy_node_share=pool.max_unhealthy_node_share, node_agent_sku_id=agent,
            metadata=naming.resource_tags(dag_id, run_id, (targets or {}).get(i) or version),
            target_version=(targets or {}).get(i), target_version_id=cfg.image_version_id(targets[i])
            if targets and targets.get(i) else None,
            allocation_timeout=alloc.total_seconds(), security_profile=dict(profile) if profile else None,
            roll=pool.roll, smoke_test=pool.smoke_test,
            require_approval=pool.require_approval))

    size_gb = float((source.os_disk_size_gb or 0) + sum(dd.size_gb or 0 for dd in source.data_disks)) or 1.0
    replication = sizing.timeout_for_replication(size_gb, len(target_regions),
                                                 sum(r["regional_replica_count"] for r in target_regions))
    # Azure checks endOfLifeDate against its clock: count from the build day for a backfill (rules/config.py).
    logical_day = logical.date() if isinstance(logical, datetime) else logical
    eol = cfg.end_of_life_date(logical_day, today=today)
    if eol is not None and eol != cfg.end_of_life_date(logical_day):
        notes.append(("info", f"End-of-life date {eol}: {cfg.end_of_life_days} days after today, which is later than "
                              f"the logical date {logical_day} (Azure refuses an end-of-life date that is not in the "
                              "future)"))
    if security is not None:
        source = source.model_copy(update={"security_type": security["security_type"]})
    return Plan(
        dag_id=dag_id, run_id=run_id, version=version, arm_conn_id=arm_conn_id, location=location,
        work_resource_group=cfg.work_rg, work_subscription_id=g.subscription_id, source=source,
        gallery=Gallery(subscription_id=g.subscription_id, resource_group=g.resource_group, name=g.name,
                        location=g.location, id=cfg.gallery_id),
        image_definition=ImageDefinition(name=d.name, os_type=d.os_type, hyper_v_generation=d.hyper_v_generation,
                                         publisher=d.publisher, offer=d.offer, sku=d.sku, id=cfg.image_definition_id),
        version_id=cfg.image_version_id(version), image_name=None if roll_only else naming.image_name(d.name, version),
        image_id=None if roll_only else cfg.image_id(version), snapshot_names=snapshot_names, target_regions=target_regions,
        replica_sizing=ReplicaSizingPlan(rule=rule.value, per_region={
            r: RegionSizing(count=s.count, vm_count=s.vm_count, explanation=s.explanation)
            for r, s in replica_plan.items()}),
        storage_account_type=cfg.storage_account_type, end_of_life_date=eol.isoformat() if eol else None,
        end_of_life_days=cfg.end_of_life_days,
        keep_versions=cfg.keep_versions, node_agent_sku_id=agent, pools=pools, tags=tags,
        timeouts={"snapshot": sizing.timeout_for_snapshot(size_gb).total_seconds(),
                  "image": sizing.timeout_for_image(size_gb).total_seconds(),
                  "replication": replication.total_seconds(), "allocation": allocation.total_seconds(),
                  **({"build": build.timeout_seconds} if build is not None else {})},
        image_path=(security or {}).get("image_path") or security_rules.PATH_MANAGED_IMAGE,
        security=SecurityDecision(**security) if security is not None else None, options=options,
        build=None if roll_only else build,
    )


def _pool_template(pool: Any, adopted: Mapping[str, Any] | None, i: int, notes: list[tuple[str, str]]
                   ) -> tuple[dict, int, int, int | None, timedelta]:
    """(template, dedicated, low-priority, canary_nodes, resize timeout) of configured pool ``i``: the short fields'
    template gets the resize timeout floored at 15 minutes (a warning in ``notes``); an autoscaled template's new
    pools start as canaries of ``canary_nodes`` nodes."""
    template = dict(adopted) if pool.adopt_pool_id is not None else pool.pool_template
    auto = pool_template.is_autoscaled(template)
    canary = pool.effective_canary_nodes if auto else pool.canary_nodes
    dedicated, low = pool_template.fixed_targets(template, canary)
    if pool.adopt_pool_id is None and pool.template is None and pool.template_file is None:
        resize = sizing.at_least_resize_floor(pool.resize_timeout)
        if resize != pool.resize_timeout:
            notes.append(("warning", f"pools[{i}].resize_timeout_minutes {pool.resize_timeout_minutes} is under 15 "
                                     "minutes; the pool gets 15 minutes"))
        return pool_template.template_from_short_fields(pool, resize), dedicated, low, canary, resize
    stated = pool_template.parse_iso_duration(template.get("resizeTimeout"))
    resize = sizing.at_least_resize_floor(stated if stated is not None else sizing.resize_timeout_for(dedicated + low))
    return template, dedicated, low, canary, resize


# -- the plan as text (dry run) ---------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> str:
    return "?" if not seconds else f"{seconds:.0f} s ({seconds / 60:.0f} min)"


def describe(plan: Plan) -> str:
    """Every name, id, replica count and timeout a real run of ``plan`` would use, as text (what a dry run prints),
    with ``plan.roll_decisions``: per logical pool what the roll would do, as far as preflight could read it
    (``rules/roll.py``: first / roll / current / skip_downgrade; "not read" when missing)."""
    decisions = plan.roll_decisions
    o = plan.options
    out = [f"Plan of {plan.dag_id} run {plan.run_id} (mode {o.run_kind}):"]
    if o.roll_only:
        out.append(f"  roll only        builds nothing; pools go to existing version(s): "
                   f"{', '.join(dict.fromkeys(p.target_version or '?' for p in plan.rolled_pools())) or 'none'}")
        if o.mode == "revoke":
            out.append(f"  revokes          {o.version}: tag {naming.TAG_REVOKED} and excludeFromLatest true")
        for name, regions in plan.add_regions.items():
            out.append(f"  adds regions     {name}: {', '.join(regions)} (a replication update, no rebuild)")
    else:
        out += [f"  image version    {plan.version}  {plan.version_id}",
                f"                   excludeFromLatest true until promoted; endOfLifeDate "
                f"{plan.end_of_life_date or 'none'}"]
    out += [f"  source VM        {plan.source.vm_id}" + ("  (read for the node agent only)" if o.roll_only else ""),
           f"  work group       {plan.work_resource_group} (subscription {plan.work_subscription_id}), "
           f"region {plan.location}"]
    for role, name in plan.snapshot_names.items():
        out.append(f"  {'snapshot ' + role:<16} {name}  "
                   f"{ids.snapshot_id(plan.work_subscription_id, plan.work_resource_group, name).id}")
    if o.roll_only:
        pass  # no snapshots, no managed image
    elif plan.uses_snapshots:
        out.append("  managed image    none: the version is made from the snapshots (Trusted Launch source)")
    else:
        out.append(f"  managed image    {plan.image_name}  {plan.image_id}")
    if plan.build is not None:
        b = plan.build
        out.append(f"  build VM         {b.vm_name}  {b.vm_id} ({b.vm_size}, {b.location}), from "
                   f"{b.base.publisher}:{b.base.offer}:{b.base.sku}:{b.base.version} ({b.base_version_detail}); "
                   f"deleted once its disks are snapshotted")
    out.append(f"  gallery          {plan.gallery.id} ({plan.gallery.location})")
    out.append(f"  image definition {plan.image_definition.id}")
    sizing_plan = plan.replica_sizing.per_region if plan.replica_sizing else {}
    out.append("  target regions:")
    for r in plan.target_regions:
        why = sizing_plan.get(r.name)
        out.append(f"    {r.name:<16} {r.regional_replica_count} replica(s), "
                   f"{r.storage_account_type or plan.storage_account_type or 'default storage'}"
                   + (f" - {why.explanation}" if why and why.explanation else ""))
    build_only = ("snapshot", "image", "build") if o.roll_only else ()  # a roll-only run waits for none of them
    out.append("  timeouts:        " + ", ".join(f"{k} {_minutes(v)}" for k, v in plan.timeouts.items()
                                                 if k not in build_only))
    out.append(f"  node agent       {plan.node_agent_sku_id}; keep {plan.keep_versions} version(s)")
    out.append("  pools:")
    for p in plan.pools:
        rolled = o.rolls(p.logical_pool)
        r = p.roll
        strategy = "blue_green (canary only)" if o.canary_only else (o.strategy or r.strategy)
        out.append(f"    {p.logical_pool} -> {p.pool_id}  account {p.batch_account_id.rsplit('/', 1)[-1]} "
                   f"({p.batch_account_location})")
        out.append(f"      vm size {p.vm_size}, {p.target_dedicated_nodes} dedicated + {p.target_low_priority_nodes} "
                   f"low-priority node(s), resizeTimeout {p.resize_timeout}, allocation wait "
                   f"{_minutes(p.allocation_timeout)}")
        out.append(f"      roll {strategy}, active jobs {r.active_jobs}, drain timeout {r.drain_timeout_minutes} min "
                   f"(then {r.on_drain_timeout}); approval {'required' if p.require_approval else 'no'}")
        if p.smoke_test:
            out.append(f"      smoke test {p.smoke_test.command_line!r}, {p.smoke_test.tasks or 'one per node'} "
                       f"task(s), timeout {p.smoke_test.timeout_minutes} min")
        if p.target_version:
            out.append(f"      goes to existing version {p.target_version}")
        decision = decisions.get(p.logical_pool or "", "not read") if rolled else "not rolled (not in params.pools)"
        if (p.logical_pool or "") in plan.not_rolled:
            decision = f"not rolled: {plan.not_rolled[p.logical_pool or '']}"
        out.append(f"      decision: {decision}")
    flags = [k for k in ("canary_only", "allow_downgrade", "dry_run") if getattr(o, k)]
    version = o.version or ("each pool's own (above)" if o.roll_only else "from the logical date")
    out.append(f"  options          mode {o.mode}, rebuild {o.rebuild}, version {version}, regions "
               f"{', '.join(o.target_regions) or 'all'}, pools {', '.join(o.pools) or 'all'}, strategy "
               f"{o.strategy or 'configured'}" + (f", {', '.join(flags)}" if flags else ""))
    return "\n".join(out)
