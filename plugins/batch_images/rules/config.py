"""The declarative pipeline config (``include/pipelines/*.yaml``): schema, validation, derived values.

Everything is checked when the YAML is loaded - at DAG parse time - so a typo fails with a field path
(``pipelines[0].pools[1].pool_id_prefix``), the value and a fix, instead of an Azure error an hour into
a run. Unknown keys are errors too: a misspelt optional key would otherwise be silently ignored.

The dataclasses are frozen and ``to_dict()`` gives plain JSON (for XCom and DAG params);
``parse_pipeline(cfg.to_dict())`` gives the same config back.

Schema additions beyond the first draft (both optional):
``pools[].batch_account_location`` - the Batch account's region, so replicas can be sized per region at
parse time (null: look it up at run time and pass it to :meth:`PipelineConfig.replica_plan`).
The gallery's own location must be one of ``target_regions``: the image version is created there.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from . import ids, naming, sizing
from .errors import InvalidInput
from .sizing import ReplicaRule, ReplicaSizing

DEFAULT_SCHEDULE = "@daily"
OS_TYPES = ("Linux", "Windows")
HYPER_V_GENERATIONS = ("V1", "V2")
STORAGE_ACCOUNT_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS")
# One image version per logical date (YYYY.MMDD.N), so at most one scheduled run per day.
SCHEDULE_PRESETS = ("@once", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")
# A realistic longest version for the pool-id length check: year 9999, Dec 31, rebuild 99.
LONGEST_REALISTIC_VERSION = "9999.1231.99"

_ID_RE = re.compile(r"[A-Za-z0-9_.\-]+")  # dag_id, Airflow conn ids
_MAX_ID_LEN = 250  # Airflow's ID_LEN
_VM_SIZE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # gallery image publisher/offer/sku
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CRON_FIELD_RE = re.compile(r"[0-9A-Za-z*/,\-?LW#]+")
_NODE_AGENT_RE = re.compile(r"(?i)batch\.node\.[A-Za-z0-9 ._\-]+")  # e.g. "batch.node.ubuntu 22.04"


# --- dataclasses ---------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready copy: dataclasses -> dicts (field order), tuples -> lists, dates -> ISO, enums -> values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True, kw_only=True)
class GalleryConfig:
    subscription_id: str
    resource_group: str
    name: str
    location: str

    @property
    def id(self) -> str:
        return ids.gallery_id(self.subscription_id, self.resource_group, self.name).id

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class ImageDefinitionConfig:
    name: str
    os_type: str
    hyper_v_generation: str
    publisher: str
    offer: str
    sku: str

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class TargetRegionConfig:
    name: str
    regional_replica_count: int | None = None  # None: sized from the pools in that region
    storage_account_type: str | None = None  # None: the pipeline's storage_account_type

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class StartTaskConfig:
    command_line: str
    wait_for_success: bool = True
    max_task_retry_count: int = 1  # -1: retry without limit (Batch's convention)
    elevated: bool = True  # run as the pool's admin auto-user

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    batch_conn_id: str = "azure_batch_default"
    batch_account_id: str
    batch_account_location: str | None = None
    pool_id_prefix: str
    vm_size: str
    target_dedicated_nodes: int = 0
    target_low_priority_nodes: int = 0
    resize_timeout_minutes: int | None = None  # None: sized from the node count
    start_task: StartTaskConfig | None = None
    max_unhealthy_node_share: float = 0.0

    @property
    def batch_account(self) -> ids.ArmId:
        return ids.parse_arm_id(self.batch_account_id, "batch_account_id", ids.BATCH_ACCOUNT)

    @property
    def account_name(self) -> str:
        return self.batch_account.name

    @property
    def vm_count(self) -> int:
        return self.target_dedicated_nodes + self.target_low_priority_nodes

    @property
    def region(self) -> str | None:
        return self.batch_account_location

    @property
    def resize_timeout(self) -> timedelta:
        if self.resize_timeout_minutes is not None:
            return timedelta(minutes=self.resize_timeout_minutes)
        return sizing.resize_timeout_for(self.vm_count)

    @property
    def allocation_timeout(self) -> timedelta:
        return sizing.timeout_for_allocation(self.vm_count, self.resize_timeout)

    @property
    def tolerated_unhealthy_nodes(self) -> int:
        """How many nodes may stay starttaskfailed/unusable after repair: floor(share * nodes)."""
        return math.floor(self.max_unhealthy_node_share * self.vm_count)

    def pool_id(self, version: str) -> str:
        return naming.pool_id(self.pool_id_prefix, version)

    def to_dict(self) -> dict:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    dag_id: str
    description: str = ""
    schedule: str | None = DEFAULT_SCHEDULE  # None: manual runs only
    start_date: date
    tags: tuple[str, ...] = ()
    owner: str = "airflow"
    arm_conn_id: str = "azure_default"
    source_vm_id: str
    work_resource_group: str | None = None  # None: the gallery's resource group
    gallery: GalleryConfig
    image_definition: ImageDefinitionConfig
    target_regions: tuple[TargetRegionConfig, ...]
    replica_rule: ReplicaRule = ReplicaRule.PER300
    storage_account_type: str = "Standard_LRS"
    node_agent_sku_id: str | None = None  # None: derived from Batch's supported images
    keep_versions: int = 3
    end_of_life_days: int | None = 90
    # How often waits look at Azure. Azure's own Retry-After for compute LROs is 15-30 s; a faster
    # stand-in (see include/pipelines/demo.yaml) can use less. Throttled reads still wait as told.
    poll_interval_seconds: int = 30
    pools: tuple[PoolConfig, ...]

    # -- ids and names ----------------------------------------------------------------------------------------

    @property
    def source_vm(self) -> ids.ArmId:
        return ids.parse_arm_id(self.source_vm_id, "source_vm_id", ids.VIRTUAL_MACHINE)

    @property
    def work_rg(self) -> str:
        """Where temporary snapshots and the managed image go (in the gallery's subscription)."""
        return self.work_resource_group or self.gallery.resource_group

    @property
    def gallery_id(self) -> str:
        return self.gallery.id

    @property
    def image_definition_id(self) -> str:
        g = self.gallery
        return ids.gallery_image_id(g.subscription_id, g.resource_group, g.name, self.image_definition.name).id

    def image_version_id(self, version: str) -> str:
        g = self.gallery
        naming.validate_version_name(version, "version")
        return ids.gallery_image_version_id(
            g.subscription_id, g.resource_group, g.name, self.image_definition.name, version
        ).id

    def snapshot_id(self, role: str, version: str) -> str:
        name = naming.snapshot_name(self.source_vm.name, role, version)
        return ids.snapshot_id(self.gallery.subscription_id, self.work_rg, name).id

    def image_id(self, version: str) -> str:
        name = naming.image_name(self.image_definition.name, version)
        return ids.image_id(self.gallery.subscription_id, self.work_rg, name).id

    def pool_ids(self, version: str) -> list[str]:
        return [p.pool_id(version) for p in self.pools]

    # -- regions and replicas ---------------------------------------------------------------------------------

    def all_regions(self) -> tuple[str, ...]:
        """Target region names in config order (the gallery's region and every pool's region are among them)."""
        return tuple(r.name for r in self.target_regions)

    def replica_plan(self, account_regions: Mapping[str, str] | None = None) -> dict[str, ReplicaSizing]:
        """Replicas per target region: computed from the pools there, or the region's explicit override.

        ``account_regions`` maps a Batch account id (any casing) to its region, for pools whose
        ``batch_account_location`` is null. An override below the computed minimum is an error.
        """
        lookup = {k.lower(): v for k, v in (account_regions or {}).items()}
        targets = self.all_regions()
        demands = []
        for i, pool in enumerate(self.pools):
            field = f"pools[{i}].batch_account_location"
            region = pool.batch_account_location
            if region is None and pool.batch_account_id.lower() in lookup:
                region = lookup[pool.batch_account_id.lower()]
                field = f"account_regions[{pool.batch_account_id!r}]"
            if region is None:
                raise InvalidInput(field, None, "the Batch account's region is unknown, so replicas cannot be sized",
                                   "set batch_account_location, or pass the account's region in account_regions")
            if region not in targets:
                raise InvalidInput(field, region,
                                   "Batch needs an image replica in the account's region, and it is not a target region",
                                   f"add {{name: {region}}} to target_regions")
            demands.append((region, pool.vm_count))
        try:
            computed = sizing.region_replicas(demands, targets, self.replica_rule)
        except InvalidInput as err:  # too many VMs in one region for 100 replicas
            raise InvalidInput("pools", err.value, err.reason, err.fix) from None
        plan: dict[str, ReplicaSizing] = {}
        for i, region in enumerate(self.target_regions):
            need = computed[region.name]
            override = region.regional_replica_count
            if override is None:
                plan[region.name] = need
                continue
            if override < need.count:
                raise InvalidInput(
                    f"target_regions[{i}].regional_replica_count", override,
                    f"{region.name} needs at least {need.count} replicas ({need.explanation})",
                    f"raise it to {need.count} or more, remove it to use the computed count, or set "
                    "replica_rule: per600 to accept the seed document's lower rule")
            plan[region.name] = ReplicaSizing(override, need.rule, need.vm_count,
                                              f"{override} set in config (minimum {need.count}: {need.explanation})")
        return plan

    def publishing_target_regions(self, account_regions: Mapping[str, str] | None = None) -> list[dict]:
        """``publishingProfile.targetRegions`` as plain dicts (snake_case, as the SDK models take them)."""
        plan = self.replica_plan(account_regions)
        return [
            {
                "name": r.name,
                "regional_replica_count": plan[r.name].count,
                "storage_account_type": r.storage_account_type or self.storage_account_type,
            }
            for r in self.target_regions
        ]

    def end_of_life_date(self, logical_date: date, today: date | None = None) -> date | None:
        """The image version's ``endOfLifeDate``: ``end_of_life_days`` after the later of the run's logical
        date and ``today`` (UTC; the day the run builds the version), or None when ``end_of_life_days`` is None.

        Azure refuses an end-of-life date that is not in the future (400 InvalidParameter "EndOfLifeDate must be
        set to a future date."), so a backfill or a late run of an old date counts from the day it builds, not
        from its logical date: with 90 days, the run for 2026-08-01 made on 2026-11-29 gets 2027-02-27.
        ``end_of_life_days`` is at least 1, so the date is always after ``today``.
        """
        if self.end_of_life_days is None:
            return None
        start = logical_date if today is None else max(logical_date, today)
        return start + timedelta(days=self.end_of_life_days)

    # -- serialisation ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], field: str = "pipeline") -> PipelineConfig:
        return parse_pipeline(data, field)


# --- field readers -------------------------------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> Mapping[str, Any]:
    """``value`` must be a mapping with all ``required`` keys and no key outside required + optional."""
    allowed = required + optional
    if not isinstance(value, Mapping):
        raise InvalidInput(path, value, f"expected a mapping, got {type(value).__name__}",
                           f"write a mapping with the keys {', '.join(allowed)}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        field = _join(path, unknown[0]) if len(unknown) == 1 and isinstance(unknown[0], str) else path
        raise InvalidInput(field, unknown[0] if len(unknown) == 1 else unknown,
                           f"unknown key{'s' if len(unknown) > 1 else ''} {names}",
                           f"remove or correct it; allowed keys: {', '.join(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise InvalidInput(_join(path, missing[0]), None, "this key is required and missing",
                           f"add {missing[0]!r} (required keys here: {', '.join(required)})")
    return value


def _str(value: Any, field: str, what: str = "a string", pattern: re.Pattern[str] | None = None,
         max_len: int | None = None, fix: str = "") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, value, f"expected {what} (a non-empty string)", fix or f"give {what}")
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(field, value, f"at most {max_len} characters allowed, this has {len(value)}",
                           fix or f"shorten it to {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidInput(field, value, f"not {what}", fix or f"give {what}")
    return value


def _int(value: Any, field: str, low: int | None = None, high: int | None = None, fix: str = "") -> int:
    bounds = " ".join(s for s in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "") if s)
    wanted = f"an integer {bounds}".strip()
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, value, f"expected {wanted}, got {type(value).__name__}", fix or f"give {wanted}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidInput(field, value, f"out of range, expected {wanted}", fix or f"give {wanted}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field, value, f"expected true or false, got {type(value).__name__}", "write true or false")
    return value


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, matched case-insensitively, returned in canonical spelling."""
    if isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.strip().lower():
                return choice
    raise InvalidInput(field, value, "not one of the allowed values", f"use one of {', '.join(choices)}")


def _optional(data: Mapping[str, Any], key: str, default: Any, read, *args, **kwargs) -> Any:
    """Read ``data[key]`` with ``read`` if present and not null; else the default (null keeps None)."""
    if key not in data:
        return default
    if data[key] is None:
        return None
    return read(data[key], *args, **kwargs)


def _required_value(data: Mapping[str, Any], key: str, path: str, default: Any, read, *args, **kwargs) -> Any:
    """Like _optional, but null is not allowed (the key has a default and no 'none' meaning)."""
    if key not in data:
        return default
    return read(data[key], _join(path, key), *args, **kwargs)


def _region(value: Any, field: str) -> str:
    return ids.validate_resource_name(value, field, "region")


def _conn_id(value: Any, field: str) -> str:
    return _str(value, field, "an Airflow connection id", _ID_RE, _MAX_ID_LEN,
                "use letters, digits, '_', '.' and '-', e.g. azure_default")


def _start_date(value: Any, field: str) -> date:
    fix = "write the date as YYYY-MM-DD, e.g. 2026-11-01"
    if isinstance(value, datetime):  # YAML turns '2026-11-01 00:00' into a datetime; a DAG start is a day here
        raise InvalidInput(field, value, "expected a date without a time", fix)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(field, value, "not a calendar date", fix) from None
    raise InvalidInput(field, value, "expected a date", fix)


def _schedule(value: Any, field: str) -> str:
    fix = (f"use one of {', '.join(SCHEDULE_PRESETS)}, a cron expression that fires at most once a day "
           "(e.g. '30 2 * * *'), or null for manual runs only")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, value, "expected a schedule string or null", fix)
    text = value.strip()
    if text.startswith("@"):
        if text in SCHEDULE_PRESETS:
            return text
        raise InvalidInput(field, value, "unsupported preset (image versions are named per day, so more than one "
                           "scheduled run per day would collide)" if text in ("@hourly", "@continuous")
                           else "unknown preset", fix)
    parts = text.split()
    if len(parts) != 5 or not all(_CRON_FIELD_RE.fullmatch(p) for p in parts):
        raise InvalidInput(field, value, "not a 5-field cron expression or a preset", fix)
    minute, hour = parts[0], parts[1]
    if not (minute.isdigit() and int(minute) < 60 and hour.isdigit() and int(hour) < 24):
        raise InvalidInput(field, value, "the cron expression can fire more than once a day (minute and hour must be "
                           "single numbers), and image versions are named per day", fix)
    return text


# --- sections ------------------------------------------------------------------------------------------------------


def _parse_gallery(value: Any, path: str) -> GalleryConfig:
    d = _mapping(value, path, ("subscription_id", "resource_group", "name", "location"), ())
    return GalleryConfig(
        subscription_id=ids.validate_subscription_id(d["subscription_id"], _join(path, "subscription_id")),
        resource_group=ids.validate_resource_name(d["resource_group"], _join(path, "resource_group"), "resource_group"),
        name=ids.validate_resource_name(d["name"], _join(path, "name"), "gallery"),
        location=_region(d["location"], _join(path, "location")),
    )


def _parse_image_definition(value: Any, path: str) -> ImageDefinitionConfig:
    keys = ("name", "os_type", "hyper_v_generation", "publisher", "offer", "sku")
    d = _mapping(value, path, keys, ())
    ident = {
        k: _str(d[k], _join(path, k), f"an image {k}", _IDENTIFIER_RE,
                fix="use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit")
        for k in ("publisher", "offer", "sku")
    }
    return ImageDefinitionConfig(
        name=ids.validate_resource_name(d["name"], _join(path, "name"), "image_definition"),
        os_type=_choice(d["os_type"], _join(path, "os_type"), OS_TYPES),
        hyper_v_generation=_choice(d["hyper_v_generation"], _join(path, "hyper_v_generation"), HYPER_V_GENERATIONS),
        **ident,
    )


def _parse_target_region(value: Any, path: str) -> TargetRegionConfig:
    d = _mapping(value, path, ("name",), ("regional_replica_count", "storage_account_type"))
    return TargetRegionConfig(
        name=_region(d["name"], _join(path, "name")),
        regional_replica_count=_optional(d, "regional_replica_count", None, _int, _join(path, "regional_replica_count"),
                                         sizing.MIN_REPLICAS, sizing.MAX_REPLICAS),
        storage_account_type=_optional(d, "storage_account_type", None, _choice, _join(path, "storage_account_type"),
                                       STORAGE_ACCOUNT_TYPES),
    )


def _parse_start_task(value: Any, path: str) -> StartTaskConfig:
    d = _mapping(value, path, ("command_line",), ("wait_for_success", "max_task_retry_count", "elevated"))
    return StartTaskConfig(
        command_line=_str(d["command_line"], _join(path, "command_line"), "a command line"),
        wait_for_success=_required_value(d, "wait_for_success", path, True, _bool),
        max_task_retry_count=_required_value(d, "max_task_retry_count", path, 1, _int, -1, None,
                                             "give the number of retries, or -1 for no limit"),
        elevated=_required_value(d, "elevated", path, True, _bool),
    )


def _share(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInput(field, value, "expected a share between 0 and 1", "give e.g. 0.1 to tolerate 10% of nodes")
    return float(value)


def _parse_pool(value: Any, path: str, rule: ReplicaRule) -> PoolConfig:
    d = _mapping(value, path, ("batch_account_id", "pool_id_prefix", "vm_size"),
                 ("batch_conn_id", "batch_account_location", "target_dedicated_nodes", "target_low_priority_nodes",
                  "resize_timeout_minutes", "start_task", "max_unhealthy_node_share"))
    account = ids.parse_arm_id(d["batch_account_id"], _join(path, "batch_account_id"), ids.BATCH_ACCOUNT)
    ids.validate_resource_name(account.name, _join(path, "batch_account_id"), "batch_account")
    prefix_field = _join(path, "pool_id_prefix")
    prefix = naming.validate_pool_id(d["pool_id_prefix"], prefix_field)
    naming.pool_id(prefix, LONGEST_REALISTIC_VERSION, prefix_field)  # the full id must fit 64 characters
    pool = PoolConfig(
        batch_conn_id=_required_value(d, "batch_conn_id", path, "azure_batch_default", _conn_id),
        batch_account_id=account.id,
        batch_account_location=_optional(d, "batch_account_location", None, _region,
                                         _join(path, "batch_account_location")),
        pool_id_prefix=prefix,
        vm_size=_str(d["vm_size"], _join(path, "vm_size"), "a VM size", _VM_SIZE_RE,
                     fix="use a VM size name such as Standard_D2s_v3"),
        target_dedicated_nodes=_required_value(d, "target_dedicated_nodes", path, 0, _int, 0),
        target_low_priority_nodes=_required_value(d, "target_low_priority_nodes", path, 0, _int, 0),
        resize_timeout_minutes=_optional(d, "resize_timeout_minutes", None, _int, _join(path, "resize_timeout_minutes"),
                                         5, None, "give at least 5 (Batch's minimum), or null to size it "
                                         "from the node count (15 min per 1000 VMs)"),
        start_task=_optional(d, "start_task", None, _parse_start_task, _join(path, "start_task")),
        max_unhealthy_node_share=_required_value(d, "max_unhealthy_node_share", path, 0.0, _share),
    )
    # A single pool that alone needs more than 100 replicas can never be served; say so with its path.
    sizing.replicas_for(pool.vm_count, rule, field=path)
    return pool


def _list(value: Any, field: str, what: str) -> list:
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, value, f"expected a non-empty list of {what}", f"write a YAML list of {what}")
    return value


def _tags(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidInput(field, value, "expected a list of strings", "write e.g. [azure, batch]")
    out: list[str] = []
    for i, tag in enumerate(value):
        out.append(_str(tag, _join(field, i), "a tag", max_len=100))
        if tag in out[:-1]:
            raise InvalidInput(_join(field, i), tag, "duplicate tag", "list each tag once")
    return tuple(out)


_PIPELINE_REQUIRED = ("dag_id", "start_date", "source_vm_id", "gallery", "image_definition", "target_regions", "pools")
_PIPELINE_OPTIONAL = ("description", "schedule", "tags", "owner", "arm_conn_id", "work_resource_group", "replica_rule",
                      "storage_account_type", "node_agent_sku_id", "keep_versions", "end_of_life_days",
                      "poll_interval_seconds")


def parse_pipeline(data: Mapping[str, Any], field: str = "pipeline") -> PipelineConfig:
    """Validate one pipeline mapping (as in the YAML) and build its config; errors carry ``field``-based paths."""
    path = field
    d = _mapping(data, path, _PIPELINE_REQUIRED, _PIPELINE_OPTIONAL)
    rule = sizing.parse_replica_rule(d.get("replica_rule", ReplicaRule.PER300), _join(path, "replica_rule"))

    gallery = _parse_gallery(d["gallery"], _join(path, "gallery"))
    regions_path = _join(path, "target_regions")
    regions = tuple(_parse_target_region(r, _join(regions_path, i))
                    for i, r in enumerate(_list(d["target_regions"], regions_path, "regions")))
    seen: dict[str, int] = {}
    for i, region in enumerate(regions):
        if region.name in seen:
            raise InvalidInput(_join(_join(regions_path, i), "name"), region.name,
                               f"duplicate target region (also at target_regions[{seen[region.name]}])",
                               "list each region once")
        seen[region.name] = i
    if gallery.location not in seen:
        raise InvalidInput(_join(path, "gallery.location"), gallery.location,
                           "the gallery's region is not among target_regions, but the image version is created there",
                           f"add {{name: {gallery.location}}} to target_regions")

    pools_path = _join(path, "pools")
    pools = tuple(_parse_pool(p, _join(pools_path, i), rule)
                  for i, p in enumerate(_list(d["pools"], pools_path, "pools")))
    taken: dict[tuple[str, str], int] = {}
    for i, pool in enumerate(pools):
        # Batch pool ids are unique per account, case-insensitively.
        key = (pool.batch_account_id.lower(), pool.pool_id_prefix.lower())
        if key in taken:
            raise InvalidInput(_join(_join(pools_path, i), "pool_id_prefix"), pool.pool_id_prefix,
                               f"pools[{taken[key]}] uses the same prefix on the same Batch account, so their pool "
                               "ids would collide", "give each pool on an account its own prefix")
        taken[key] = i
        if pool.batch_account_location is not None and pool.batch_account_location not in seen:
            raise InvalidInput(_join(_join(pools_path, i), "batch_account_location"), pool.batch_account_location,
                               "Batch needs an image replica in the account's region, and it is not a target region",
                               f"add {{name: {pool.batch_account_location}}} to target_regions")

    source_vm = ids.parse_arm_id(d["source_vm_id"], _join(path, "source_vm_id"), ids.VIRTUAL_MACHINE)
    node_agent = _optional(d, "node_agent_sku_id", None, _str, _join(path, "node_agent_sku_id"),
                           "a Batch node agent SKU id", _NODE_AGENT_RE, 64,
                           "use an id from Batch's supported images, e.g. 'batch.node.ubuntu 22.04', or null")
    config = PipelineConfig(
        dag_id=_str(d["dag_id"], _join(path, "dag_id"), "a DAG id", _ID_RE, _MAX_ID_LEN,
                    "use letters, digits, '_', '.' and '-'"),
        description=_required_value(d, "description", path, "", _description),
        schedule=_optional(d, "schedule", DEFAULT_SCHEDULE, _schedule, _join(path, "schedule")),
        start_date=_start_date(d["start_date"], _join(path, "start_date")),
        tags=_required_value(d, "tags", path, (), _tags),
        owner=_required_value(d, "owner", path, "airflow", _str, "an owner name"),
        arm_conn_id=_required_value(d, "arm_conn_id", path, "azure_default", _conn_id),
        source_vm_id=source_vm.id,
        work_resource_group=_optional(d, "work_resource_group", None, ids.validate_resource_name,
                                      _join(path, "work_resource_group"), "resource_group"),
        gallery=gallery,
        image_definition=_parse_image_definition(d["image_definition"], _join(path, "image_definition")),
        target_regions=regions,
        replica_rule=rule,
        storage_account_type=_required_value(d, "storage_account_type", path, "Standard_LRS", _choice,
                                             STORAGE_ACCOUNT_TYPES),
        node_agent_sku_id=node_agent,
        keep_versions=_required_value(d, "keep_versions", path, 3, _int, 1, None,
                                      "keep at least 1 version (the one the pools use)"),
        end_of_life_days=_optional(d, "end_of_life_days", 90, _int, _join(path, "end_of_life_days"), 1, None,
                                   "give a number of days >= 1, or null for no end-of-life date"),
        poll_interval_seconds=_required_value(d, "poll_interval_seconds", path, 30, _int, 1, 3600,
                                              "give seconds between 1 and 3600 (30 suits Azure)"),
        pools=pools,
    )
    if all(p.batch_account_location for p in pools):
        # Everything is known: size replicas now, so overrides below the minimum fail at parse time.
        try:
            config.replica_plan()
        except InvalidInput as err:
            raise InvalidInput(_join(path, err.field), err.value, err.reason, err.fix) from None
    return config


def _description(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"expected a string, got {type(value).__name__}", "quote the description")
    return value


# --- files ---------------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise InvalidInput(f"line {mark.line + 1}", key, "duplicate key in the YAML mapping",
                               "keep only one of the duplicate keys")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_pipelines(path: str | Path) -> list[PipelineConfig]:
    """Load and validate a pipelines file: ``{pipelines: [<pipeline>, ...]}``; dag_ids must be unique."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidInput("path", str(path), f"cannot read the file ({err.strerror or err})",
                           "point at an existing pipelines YAML file") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise InvalidInput(str(path), path.name, f"not valid YAML ({err})".replace("\n", " "),
                           "fix the YAML syntax at the position shown") from None
    if not isinstance(data, Mapping):
        raise InvalidInput("(top level)", data, f"expected a mapping with the key 'pipelines', got "
                           f"{type(data).__name__}", "start the file with 'pipelines:' and a list of pipelines")
    top = _mapping(data, "", ("pipelines",), ())
    items = _list(top["pipelines"], "pipelines", "pipelines")
    pipelines = [parse_pipeline(item, _join("pipelines", i)) for i, item in enumerate(items)]
    dag_ids: dict[str, int] = {}
    for i, p in enumerate(pipelines):
        if p.dag_id in dag_ids:
            raise InvalidInput(f"pipelines[{i}].dag_id", p.dag_id,
                               f"pipelines[{dag_ids[p.dag_id]}] has the same dag_id", "give each pipeline its own dag_id")
        dag_ids[p.dag_id] = i
    return pipelines
