"""The declarative pipeline config (``include/pipelines/*.yaml``): schema, validation, derived values.

Everything is checked when the YAML is loaded - at DAG parse time - so a typo fails with a field path
(``pipelines[0].pools[1].pool_id_prefix``), the value and a fix, instead of an Azure error an hour into
a run. Unknown keys are errors too: a misspelt optional key would otherwise be silently ignored.

The schema is a set of frozen pydantic v2 dataclasses (types, ``extra="forbid"``, constraints; the domain
rules of ``ids``, ``naming`` and ``sizing`` as field validators; cross-field checks as model validators).
Every pydantic error is translated into the project's one :class:`InvalidInput` (field path, value, reason,
fix) by :func:`_invalid_input`. The same models give the JSON Schema for editors
(``python -m batch_images.rules.config --schema > include/pipelines/schema.json``).

``to_dict()`` gives plain JSON (for XCom and DAG params); ``parse_pipeline(cfg.to_dict())`` gives the same
config back. Building a config class directly (``PipelineConfig(...)``, ``dataclasses.replace``) validates
too, but raises pydantic's ``ValidationError`` (a ``ValueError``); the parse functions raise InvalidInput.

Schema additions beyond the first draft (all optional):
``pools[].batch_account_location`` - the Batch account's region, so replicas can be sized per region at
parse time (null: look it up at run time and pass it to :meth:`PipelineConfig.replica_plan`).
The gallery's own location must be one of ``target_regions``: the image version is created there.
``pools[].roll`` (:class:`RollConfig`), ``pools[].smoke_test`` (:class:`SmokeTestConfig`, null: none) and
``pools[].require_approval`` - how the logical pool (named by its ``pool_id_prefix``, unique per Batch
account) moves to each new version.
``base_image`` (:class:`BaseImageConfig`) + ``build`` (:class:`BuildConfig`) - the second kind of source: a build VM
made from a marketplace image and a custom-data script (docs/base-image.md); exactly
one of ``source_vm_id`` and ``base_image``.
``notifications`` (:class:`NotificationsConfig`) - e-mail / webhook targets for failures, rolls and approvals
(docs/operations.md, "Notifications"; sent by ``batch_images/notifications.py``).
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass as std_dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from annotated_types import Ge, Le, MinLen
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, StringConstraints, TypeAdapter
from pydantic import ValidationError, model_validator
from pydantic.dataclasses import dataclass

from . import ids, naming, pool_template, sizing
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

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CRON_FIELD_RE = re.compile(r"[0-9A-Za-z*/,\-?LW#]+")
_MAX_ID_LEN = 250  # Airflow's ID_LEN


# --- field types ---------------------------------------------------------------------------------------------------


@std_dataclass(frozen=True)
class Hint:
    """How an error on a field reads (pydantic ignores this metadata; :func:`_invalid_input` reads it).

    ``what`` the field expects ("a DAG id"; integers derive it from their bounds), or a fixed ``reason``
    for every type or range error; ``fix`` tells the user what to write instead.
    """

    what: str | None = None
    reason: str | None = None
    fix: str | None = None


def _text(what: str, pattern: str = r"\S", max_len: int | None = None, fix: str | None = None) -> Any:
    """A non-blank string (JSON Schema patterns are searches: anchor them)."""
    return Annotated[str, StringConstraints(min_length=1, max_length=max_len, pattern=pattern), Hint(what, fix=fix)]


def _int(low: int | None = None, high: int | None = None, fix: str | None = None) -> Any:
    """A real integer (no bool, float or numeric string) within ``low..high``."""
    bounds = [b for b in (Ge(low) if low is not None else None, Le(high) if high is not None else None) if b]
    return Annotated[(int, Strict(), *bounds, Hint(fix=fix))]


def _rule(check: Callable[..., Any], *args: Any) -> BeforeValidator:
    """Run a rules function ``check(value, field, *args)``; its InvalidInput gets the field path from pydantic."""
    return BeforeValidator(lambda value: check(value, "", *args))


def _canonical_choice(choices: tuple[str, ...], value: Any) -> Any:
    if isinstance(value, str):
        return next((c for c in choices if c.lower() == value.strip().lower()), value)
    return value


def _choice(choices: tuple[str, ...]) -> Any:
    """One of ``choices``, matched case-insensitively, kept in canonical spelling."""
    return Annotated[Literal[choices], BeforeValidator(partial(_canonical_choice, choices))]


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


def _batch_account_id(value: Any, field: str) -> str:
    account = ids.parse_arm_id(value, field, ids.BATCH_ACCOUNT)
    ids.validate_resource_name(account.name, field, "batch_account")
    return account.id


def _pool_id_prefix(value: Any, field: str) -> str:
    prefix = naming.validate_pool_id(value, field)
    naming.pool_id(prefix, LONGEST_REALISTIC_VERSION, field)  # the full id must fit 64 characters
    return prefix


def _unique_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    for i, tag in enumerate(tags):
        if tag in tags[:i]:
            raise InvalidInput(f"[{i}]", tag, "duplicate tag", "list each tag once")
    return tags


_ID = r"^[A-Za-z0-9_.\-]+$"  # dag_id, Airflow conn ids
DagId = _text("a DAG id", _ID, _MAX_ID_LEN, "use letters, digits, '_', '.' and '-'")
ConnId = _text("an Airflow connection id", _ID, _MAX_ID_LEN,
               "use letters, digits, '_', '.' and '-', e.g. azure_default")
Region = Annotated[str, _rule(ids.validate_resource_name, "region")]
ResourceGroup = Annotated[str, _rule(ids.validate_resource_name, "resource_group")]
Bool = Annotated[bool, Strict()]


def _image_identifier(part: str) -> Any:  # gallery image publisher/offer/sku
    return _text(f"an image {part}", r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$",
                 fix="use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit")


def _marketplace_version(value: Any, field: str) -> str:
    """``latest`` or an exact marketplace version: dotted integers (``22.04.202411010``)."""
    if isinstance(value, str) and (value.strip().lower() == "latest" or MARKETPLACE_VERSION_RE.fullmatch(value.strip())):
        return "latest" if value.strip().lower() == "latest" else value.strip()
    raise InvalidInput(field, value, "expected 'latest' or an exact marketplace version (3 or 4 dot-separated "
                       "integers)", "write latest, or a version listed by az vm image list --all -p <publisher> "
                       "-f <offer> -s <sku>, e.g. 22.04.202411010")


def _relative_file(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, value, "expected a file path (a non-empty string)",
                           "give a path relative to the project root, e.g. include/build/ubuntu2204-batch.sh")
    path = Path(value.strip())
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(field, value, "the path must stay inside the project (relative, no '..')",
                           "give a path relative to the project root, e.g. include/build/ubuntu2204-batch.sh")
    return path.as_posix()


MARKETPLACE_VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+){2,3}")
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # plugins/batch_images/rules/config.py


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def _read_template_file(path: str) -> dict:
    """A ``template_file`` (relative to the project root) as a dict; InvalidInput naming ``template_file``."""
    fix = "give a path relative to the project root of a JSON file with the pool's properties"
    try:
        data = json.loads((PROJECT_ROOT / path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInput("template_file", path, f"cannot read the file ({err.strerror or err})", fix) from None
    except ValueError as err:
        raise InvalidInput("template_file", path, f"not valid JSON ({err})", "fix the JSON syntax") from None
    if not isinstance(data, dict):
        raise InvalidInput("template_file", path, f"expected a JSON object, got {type(data).__name__}", fix)
    return data


# --- the config ----------------------------------------------------------------------------------------------------

_FROZEN = {"frozen": True, "kw_only": True, "config": ConfigDict(extra="forbid", defer_build=True)}


class _Plain:
    def to_dict(self) -> dict:
        """JSON-ready dict in field order: tuples -> lists, dates -> ISO strings, enums -> values."""
        return type(self).__pydantic_serializer__.to_python(self, mode="json")


@dataclass(**_FROZEN)
class GalleryConfig(_Plain):
    subscription_id: Annotated[str, _rule(ids.validate_subscription_id)]
    resource_group: ResourceGroup
    name: Annotated[str, _rule(ids.validate_resource_name, "gallery")]
    location: Region = Field(description="The gallery's region; the image version is created there.")

    @property
    def id(self) -> str:
        return ids.gallery_id(self.subscription_id, self.resource_group, self.name).id


@dataclass(**_FROZEN)
class ImageDefinitionConfig(_Plain):
    name: Annotated[str, _rule(ids.validate_resource_name, "image_definition")]
    os_type: _choice(OS_TYPES)
    hyper_v_generation: _choice(HYPER_V_GENERATIONS)
    publisher: _image_identifier("publisher")
    offer: _image_identifier("offer")
    sku: _image_identifier("sku")


@dataclass(**_FROZEN)
class TargetRegionConfig(_Plain):
    name: Region
    regional_replica_count: _int(sizing.MIN_REPLICAS, sizing.MAX_REPLICAS) | None = Field(
        None, description="null: sized from the pools in that region (replica_rule)")
    storage_account_type: _choice(STORAGE_ACCOUNT_TYPES) | None = Field(
        None, description="null: the pipeline's storage_account_type")


@dataclass(**_FROZEN)
class StartTaskConfig(_Plain):
    command_line: _text("a command line")
    wait_for_success: Bool = True
    max_task_retry_count: _int(-1, fix="give the number of retries, or -1 for no limit") = Field(
        1, description="-1: retry without limit (Batch's convention)")
    elevated: Bool = Field(True, description="run as the pool's admin auto-user")


ROLL_STRATEGIES = ("blue_green", "in_place")
ACTIVE_JOBS = ("drain", "move")
ON_DRAIN_TIMEOUT = ("keep", "requeue")


@dataclass(**_FROZEN)
class RollConfig(_Plain):
    """How a logical pool moves to a new image version (docs/concepts.md, "Rolling pools to a new version")."""

    strategy: _choice(ROLL_STRATEGIES) = Field("blue_green", description=(
        "blue_green: a new pool per version, work moved, the old pool drained and deleted; in_place: the same pool "
        "id, emptied, re-imaged and grown again (downtime)"))
    active_jobs: _choice(ACTIVE_JOBS) = Field("drain", description=(
        "drain: active jobs on the old pool finish there; move: disable (wait), repoint poolInfo, enable"))
    drain_timeout_minutes: _int(1, fix="give a number of minutes >= 1 (e.g. 120)") = Field(
        120, description="How long the old pool may keep running tasks after the roll")
    on_drain_timeout: _choice(ON_DRAIN_TIMEOUT) = Field("keep", description=(
        "keep: leave the old pool draining and fail with the counts; requeue: delete it, its running tasks requeue"))


@dataclass(**_FROZEN)
class SmokeTestConfig(_Plain):
    """A Batch job run on a new pool before it serves; every task must exit 0 within the timeout."""

    command_line: _text("a command line", fix="give the command each smoke-test task runs, e.g. "
                        "\"/bin/bash -c 'test -f /etc/os-release'\"")
    tasks: _int(1, fix="give a task count >= 1, or null for one task per node") | None = Field(
        None, description="null: one task per node")
    timeout_minutes: _int(1, fix="give a number of minutes >= 1") = Field(
        10, description="Every task must have exited 0 within this time")


@dataclass(**_FROZEN)
class PoolConfig(_Plain):
    batch_conn_id: ConnId = "azure_batch_default"
    batch_account_id: Annotated[str, _rule(_batch_account_id)]
    batch_account_location: Region | None = Field(
        None, description="The Batch account's region (null: looked up at run time)")
    pool_id_prefix: Annotated[str, _rule(_pool_id_prefix)] = Field(
        description="Pool id: <prefix>-<version dashed>, at most 64 characters")
    vm_size: _text("a VM size", r"^[A-Za-z][A-Za-z0-9_]{0,63}$", fix="use a VM size name such as Standard_D2s_v3"
                   ) | None = Field(None, description="Required without template / template_file / adopt_pool_id")
    template: dict[str, Any] | None = Field(None, description=(
        "The pool in Batch's REST shape (camelCase, what az batch pool create --json-file takes) without the owned "
        "fields (id, virtualMachineConfiguration.imageReference / nodeAgentSKUId / securityProfile); shape: "
        "plugins/batch_images/rules/batch_pool_schema.json. Replaces vm_size, target_*_nodes, "
        "resize_timeout_minutes and start_task"))
    template_file: Annotated[str, _rule(_relative_file)] | None = Field(
        None, description="A JSON file (relative to the project root) holding such a template")
    adopt_pool_id: _text("a Batch pool id", r"^[A-Za-z0-9_\-]{1,64}$", 64,
                         "give the id of an existing pool in the Batch account") | None = Field(
        None, description="An existing pool to adopt: it becomes the first serving pool; each roll copies its spec")
    canary_nodes: _int(1, fix="give a node count >= 1, or null") | None = Field(None, description=(
        "Fixed size of an autoscaled pool's canary (null: the smoke test's task count, or 1)"))
    target_dedicated_nodes: _int(0) = 0
    target_low_priority_nodes: _int(0) = 0
    resize_timeout_minutes: _int(5, fix="give at least 5 (Batch's minimum), or null to size it from the node count "
                                 "(15 min per 1000 VMs)") | None = Field(None, description="null: sized from the node count")
    start_task: StartTaskConfig | None = None
    max_unhealthy_node_share: Annotated[float, Strict(), Ge(0), Le(1), Hint(
        reason="expected a share between 0 and 1", fix="give e.g. 0.1 to tolerate 10% of nodes")] = Field(
        0.0, description="Share of nodes that may stay unusable after repair")
    roll: RollConfig = Field(RollConfig(), description="How the pool moves to each new version")
    smoke_test: SmokeTestConfig | None = Field(None, description="null: no smoke test")
    require_approval: Bool = Field(False, description="Wait for a human approval before production pools move")

    @model_validator(mode="after")
    def _one_pool_source(self) -> PoolConfig:
        """Exactly one of template / template_file / adopt_pool_id / the short fields; the template checked."""
        given = [k for k in ("template", "template_file", "adopt_pool_id") if getattr(self, k) is not None]
        if len(given) > 1:
            raise InvalidInput(given[1], getattr(self, given[1]), f"{given[0]} is set too: a pool has one source",
                               "keep one of template, template_file and adopt_pool_id")
        if given:
            short = {"vm_size": None, "target_dedicated_nodes": 0, "target_low_priority_nodes": 0,
                     "resize_timeout_minutes": None, "start_task": None}
            for key, unset in short.items():
                if getattr(self, key) != unset:
                    raise InvalidInput(key, _plain(getattr(self, key)), f"{given[0]} describes the whole pool, so "
                                       "this short field would be ignored",
                                       f"remove {key} (write it in the template as Batch's camelCase property)"
                                       if given[0] != "adopt_pool_id" else f"remove {key}: the adopted pool's own "
                                       "settings are used")
        elif self.vm_size is None:
            raise InvalidInput("vm_size", None, "required without template, template_file or adopt_pool_id: the pool has no VM size", "add vm_size (e.g. Standard_D2s_v3), or "
                               "describe the pool with template / template_file / adopt_pool_id")
        if self.template is not None:
            pool_template.check_template(self.template, "template")
        if self.template_file is not None:
            pool_template.check_template(_read_template_file(self.template_file), "template_file")
        return self

    @property
    def pool_template(self) -> dict | None:
        """The pool's template (rules/pool_template.py): the config's, its file's, or built from the short fields;
        None for an adopted pool (its template is read from the pool by preflight)."""
        if self.template is not None:
            return dict(self.template)
        if self.template_file is not None:
            return _read_template_file(self.template_file)
        if self.adopt_pool_id is not None:
            return None
        return pool_template.template_from_short_fields(self)

    @property
    def effective_canary_nodes(self) -> int:
        """``canary_nodes``, else the smoke test's task count, else 1."""
        return self.canary_nodes or (self.smoke_test.tasks if self.smoke_test and self.smoke_test.tasks else 1)

    @property
    def batch_account(self) -> ids.ArmId:
        return ids.parse_arm_id(self.batch_account_id, "batch_account_id", ids.BATCH_ACCOUNT)

    @property
    def account_name(self) -> str:
        return self.batch_account.name

    @property
    def vm_count(self) -> int:
        """Nodes of a new pool: the short fields' or the template's targets (an autoscaled template: its canary's);
        an adopted pool's count is known only at run time (canary_nodes, or 0 here)."""
        if self.template is None and self.template_file is None:
            return self.target_dedicated_nodes + self.target_low_priority_nodes + (
                (self.canary_nodes or 0) if self.adopt_pool_id else 0)
        return sum(pool_template.fixed_targets(self.pool_template, self.effective_canary_nodes))

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

    def pool_id(self, version: str) -> str:
        return naming.pool_id(self.pool_id_prefix, version)


def _marketplace_identifier(part: str) -> Any:  # marketplace publisher/offer/sku (az vm image list -p/-f/-s)
    return _text(f"a marketplace image {part}", r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$",
                 fix=f"use the {part} as az vm image list shows it, e.g. "
                     + {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2"}[part])


@dataclass(**_FROZEN)
class BaseImageConfig(_Plain):
    """The marketplace image a build VM starts from (``az vm image list`` names: publisher, offer, sku)."""

    publisher: _marketplace_identifier("publisher")
    offer: _marketplace_identifier("offer")
    sku: _marketplace_identifier("sku")
    version: Annotated[str, _rule(_marketplace_version)] = Field("latest", description=(
        "latest (resolved at run time to an exact version) or an exact version; the trigger form's "
        "base_image_version and a base-image Asset event override it"))
    watch_interval_seconds: _int(60, 86400, "give seconds between 60 and 86400 (3600 suits Azure), or null") | None = \
        Field(3600, description="How often the base-image Asset watcher lists the versions; null: no watcher")

    @property
    def urn(self) -> str:
        """``publisher:offer:sku:version`` (the Azure CLI's --image form)."""
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


@dataclass(**_FROZEN)
class DataDiskConfig(_Plain):
    lun: _int(0, 63, "give a LUN between 0 and 63")
    size_gb: _int(1, 32767, "give a size in GiB between 1 and 32767")


@dataclass(**_FROZEN)
class BuildConfig(_Plain):
    """How the build VM is made from ``base_image``: the customisation script, size, network, disks."""

    custom_data_file: Annotated[str, _rule(_relative_file)] = Field(description=(
        "cloud-init / custom-data script, relative to the project root; at most 65,535 bytes (Azure's customData limit: 87,380 base64 characters). "
        "Its last act must power the VM off (deprovision + poweroff)"))
    vm_size: _text("a VM size", r"^[A-Za-z][A-Za-z0-9_]{0,63}$", fix="use a VM size name such as Standard_D2s_v3")
    subnet_id: Annotated[str, _rule(lambda v, f: ids.parse_arm_id(v, f, ids.SUBNET).id)] = Field(
        description="The subnet the build VM's NIC joins (no public IP)")
    data_disks: Annotated[tuple[DataDiskConfig, ...], Hint(
        "a list of {lun, size_gb}", fix="write e.g. [{lun: 0, size_gb: 32}]")] = ()
    location: Region | None = Field(None, description="null: the gallery's location")
    resource_group: ResourceGroup | None = Field(
        None, description="null: work_resource_group, else the gallery's resource group")
    timeout_minutes: _int(1, 1440, "give minutes between 1 and 1440") = Field(
        60, description="The guest must power off within this; else the run fails with its boot diagnostics")

    @model_validator(mode="after")
    def _unique_luns(self) -> BuildConfig:
        seen: set[int] = set()
        for i, disk in enumerate(self.data_disks):
            if disk.lun in seen:
                raise InvalidInput(f"data_disks[{i}].lun", disk.lun, "duplicate LUN", "give each data disk its own LUN")
            seen.add(disk.lun)
        return self


# What a pipeline can tell about (notifications.py sends them): a task that failed for good, a logical pool moved to
# a new version, a roll waiting for approval. The nightly cut-off (deadline_minutes) is not an event: it is sent
# whenever it is set.
NOTIFY_EVENTS = ("failure", "roll", "approval")
# text: {"text": ...} (Slack incoming webhooks, Teams' legacy Office 365 connectors); teams_workflow: an Adaptive Card
# (Teams Workflows webhooks accept Adaptive Cards only: learn.microsoft.com, microsoftteams/platform/
# webhooks-and-connectors/how-to/connectors-using, "Known issues").
WEBHOOK_FORMATS = ("text", "teams_workflow")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


@dataclass(**_FROZEN)
class EmailTargetConfig(_Plain):
    """E-mail through an Airflow SMTP connection (host, port, login, password; extra ``from_email``)."""

    to: Annotated[tuple[_text("an e-mail address", _EMAIL, fix="write an address such as ops@contoso.com"), ...],
                  MinLen(1), Hint("a non-empty list of e-mail addresses", fix="write a YAML list of addresses")]
    smtp_conn_id: ConnId = "smtp_default"
    from_email: _text("an e-mail address", _EMAIL, fix="write an address such as airflow@contoso.com") | None = \
        Field(None, description="null: the SMTP connection's extra from_email")


@dataclass(**_FROZEN)
class WebhookTargetConfig(_Plain):
    """A JSON POST to the URL held in an Airflow connection (its password, or its host when that is a full URL): the
    URL of an incoming webhook is a secret, so it never appears in the YAML."""

    conn_id: _text("an Airflow connection id", _ID, _MAX_ID_LEN, "keep the webhook URL (a secret) in an Airflow "
                   "connection's password and give that connection's id here") = Field(
        description="An Airflow connection whose password (or host) is the webhook URL")
    format: _choice(WEBHOOK_FORMATS) = Field("text", description=(
        "text: {\"text\": ...} for Slack and Teams' Office 365 connectors; teams_workflow: an Adaptive Card for "
        "Teams Workflows webhooks"))


@dataclass(**_FROZEN)
class NotificationsConfig(_Plain):
    """Where to tell about this pipeline's runs (docs/operations.md, "Notifications")."""

    email: EmailTargetConfig | None = None
    webhook: WebhookTargetConfig | None = None
    events: Annotated[tuple[_choice(NOTIFY_EVENTS), ...], AfterValidator(_unique_tags), Hint(
        f"a list of events among {', '.join(NOTIFY_EVENTS)}", fix="write a YAML list, e.g. [failure, roll]")] = \
        Field(NOTIFY_EVENTS, description="failure: a task failed for good; roll: a logical pool moved to a new "
                                         "version; approval: a roll waits for approval")
    # The nightly cut-off (Airflow's Deadline Alerts, from when the run was queued): a day at most, as runs are daily.
    deadline_minutes: _int(1, 1440, "give minutes between 1 and 1440 after the run was queued, or null for no "
                                    "cut-off") | None = Field(None, description=(
        "A cut-off in minutes after the run was queued: if the run is still running then, the targets are told "
        "once; null: no cut-off"))

    @model_validator(mode="after")
    def _has_target(self) -> NotificationsConfig:
        if self.email is None and self.webhook is None:
            raise InvalidInput("email", None, "notifications names no target", "add email: {to: [...]} or "
                               "webhook: {conn_id: ...}, or remove notifications")
        return self


@dataclass(**_FROZEN)
class PipelineConfig(_Plain):
    dag_id: DagId
    description: Annotated[str, Hint("a string", fix="quote the description")] = ""
    schedule: Annotated[str, _rule(_schedule)] | None = Field(DEFAULT_SCHEDULE, description=(
        "A preset or a cron expression that fires at most once a day (versions are named per day); null: manual"))
    start_date: Annotated[date, _rule(_start_date)]
    tags: Annotated[tuple[_text("a tag", max_len=100), ...], AfterValidator(_unique_tags), Hint(
        reason="expected a list of strings", fix="write e.g. [azure, batch]")] = ()
    owner: _text("an owner name") = "airflow"
    arm_conn_id: ConnId = "azure_default"
    source_vm_id: Annotated[str, _rule(lambda v, f: ids.parse_arm_id(v, f, ids.VIRTUAL_MACHINE).id)] | None = Field(
        None, description="A prepared VM to image (one of source_vm_id and base_image)")
    base_image: BaseImageConfig | None = Field(
        None, description="A marketplace image to build from with build (one of source_vm_id and base_image)")
    build: BuildConfig | None = Field(None, description="The build VM of a base_image pipeline")
    work_resource_group: ResourceGroup | None = Field(None, description="null: the gallery's resource group")
    gallery: GalleryConfig
    image_definition: ImageDefinitionConfig
    target_regions: Annotated[tuple[TargetRegionConfig, ...], MinLen(1), Hint(
        "a non-empty list of regions", fix="write a YAML list of regions")]
    replica_rule: Annotated[ReplicaRule, _rule(sizing.parse_replica_rule)] = ReplicaRule.PER300
    storage_account_type: _choice(STORAGE_ACCOUNT_TYPES) = "Standard_LRS"
    # The pattern is batch.node.<os> with 'batch.node.' in any case (JSON Schema regexes have no (?i)).
    node_agent_sku_id: _text("a Batch node agent SKU id", r"^[Bb][Aa][Tt][Cc][Hh]\.[Nn][Oo][Dd][Ee]\.[A-Za-z0-9 ._\-]+$",
                             64, "use an id from Batch's supported images, e.g. 'batch.node.ubuntu 22.04', or null"
                             ) | None = Field(None, description="null: derived from Batch's supported images")
    keep_versions: _int(1, fix="keep at least 1 version (the one the pools use)") = 3
    end_of_life_days: _int(1, fix="give a number of days >= 1, or null for no end-of-life date") | None = 90
    # How often waits look at Azure. Azure's own Retry-After for compute LROs is 15-30 s; a faster
    # stand-in (see include/pipelines/demo.yaml) can use less. Throttled reads still wait as told.
    poll_interval_seconds: _int(1, 3600, "give seconds between 1 and 3600 (30 suits Azure)") = 30
    pools: Annotated[tuple[PoolConfig, ...], MinLen(1), Hint("a non-empty list of pools",
                                                             fix="write a YAML list of pools")]
    notifications: NotificationsConfig | None = Field(None, description="null: no notifications")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> PipelineConfig:
        """Rules across fields; each InvalidInput names its field relative to this pipeline."""
        self._check_source()
        seen: dict[str, int] = {}
        for i, region in enumerate(self.target_regions):
            if region.name in seen:
                raise InvalidInput(f"target_regions[{i}].name", region.name,
                                   f"duplicate target region (also at target_regions[{seen[region.name]}])",
                                   "list each region once")
            seen[region.name] = i
        if self.gallery.location not in seen:
            raise InvalidInput("gallery.location", self.gallery.location,
                               "the gallery's region is not among target_regions, but the image version is created "
                               "there", f"add {{name: {self.gallery.location}}} to target_regions")
        for i, pool in enumerate(self.pools):
            # A single pool that alone needs more than 100 replicas can never be served; say so with its path.
            sizing.replicas_for(pool.vm_count, self.replica_rule, field=f"pools[{i}]")
        taken: dict[tuple[str, str], int] = {}
        for i, pool in enumerate(self.pools):
            # Batch pool ids are unique per account, case-insensitively.
            key = (pool.batch_account_id.lower(), pool.pool_id_prefix.lower())
            if key in taken:
                raise InvalidInput(f"pools[{i}].pool_id_prefix", pool.pool_id_prefix,
                                   f"pools[{taken[key]}] uses the same prefix on the same Batch account, so their "
                                   "pool ids would collide", "give each pool on an account its own prefix")
            taken[key] = i
            if pool.smoke_test is not None and pool.vm_count == 0 and pool.adopt_pool_id is None:  # no node would ever run a smoke-test task
                raise InvalidInput(f"pools[{i}].smoke_test", pool.smoke_test.command_line,
                                   "the pool has no nodes (target_dedicated_nodes and target_low_priority_nodes are 0), "
                                   "so no smoke-test task could run", "give the pool nodes, or set smoke_test: null")
            if pool.batch_account_location is not None and pool.batch_account_location not in seen:
                raise InvalidInput(f"pools[{i}].batch_account_location", pool.batch_account_location,
                                   "Batch needs an image replica in the account's region, and it is not a target "
                                   "region", f"add {{name: {pool.batch_account_location}}} to target_regions")
        if all(p.batch_account_location for p in self.pools):
            self.replica_plan()  # everything is known: overrides below the minimum fail at parse time
        return self

    def _check_source(self) -> None:
        fix = ("give either source_vm_id (a prepared VM) or base_image + build (a marketplace image and a "
               "customisation script), not both")
        if self.source_vm_id is not None and self.base_image is not None:
            raise InvalidInput("base_image", self.base_image.urn, "source_vm_id is set too: a pipeline has one source",
                               fix)
        if self.source_vm_id is None and self.base_image is None:
            raise InvalidInput("source_vm_id", None, "no source: neither source_vm_id nor base_image is set", fix)
        if self.base_image is not None and self.build is None:
            raise InvalidInput("build", None, "base_image needs build (how to make the build VM)",
                               "add build: {custom_data_file, vm_size, subnet_id} (see docs/base-image.md, "
                               "\"Building from a marketplace base image\")")
        if self.base_image is None and self.build is not None:
            raise InvalidInput("build", self.build.custom_data_file, "build is only used with base_image; this "
                               "pipeline images source_vm_id", "remove build, or replace source_vm_id by base_image")

    # -- ids and names ----------------------------------------------------------------------------------------

    @property
    def source_vm(self) -> ids.ArmId | None:
        """The prepared VM (None for a base_image pipeline: its build VM is named per run, see build_vm_id)."""
        if self.source_vm_id is None:
            return None
        return ids.parse_arm_id(self.source_vm_id, "source_vm_id", ids.VIRTUAL_MACHINE)

    @property
    def base_location(self) -> str | None:
        """Where a base_image pipeline builds (and so which region's marketplace it reads): build.location, else the
        gallery's location. None for a source_vm_id pipeline."""
        if self.base_image is None:
            return None
        return (self.build.location if self.build else None) or self.gallery.location

    @property
    def build_rg(self) -> str | None:
        """The build VM's resource group: build.resource_group, else work_resource_group, else the gallery's."""
        if self.build is None:
            return None
        return self.build.resource_group or self.work_rg

    def build_vm_id(self, version: str) -> str:
        """The build VM of image version ``version`` (deterministic: a retry adopts it)."""
        name = naming.build_vm_name(self.image_definition.name, version)
        return ids.vm_id(self.gallery.subscription_id, self.build_rg, name).id

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], field: str = "pipeline") -> PipelineConfig:
        return parse_pipeline(data, field)


@dataclass(**_FROZEN)
class PipelinesFile:
    """A pipelines YAML file: ``{pipelines: [<pipeline>, ...]}``; dag_ids are unique."""

    pipelines: Annotated[tuple[PipelineConfig, ...], MinLen(1), Hint(
        "a non-empty list of pipelines", fix="write a YAML list of pipelines")]

    @model_validator(mode="after")
    def _unique_dag_ids(self) -> PipelinesFile:
        dag_ids: dict[str, int] = {}
        for i, p in enumerate(self.pipelines):
            if p.dag_id in dag_ids:
                raise InvalidInput(f"pipelines[{i}].dag_id", p.dag_id, f"pipelines[{dag_ids[p.dag_id]}] has the same "
                                   "dag_id", "give each pipeline its own dag_id")
            dag_ids[p.dag_id] = i
        return self


# --- pydantic errors -> InvalidInput -------------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key:
        return path
    if not path or key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}"


def _strip(annotation: Any) -> tuple[Any, list]:
    """(the type under Annotated and ``X | None``, the Annotated metadata found on the way)."""
    metadata: list = []
    while True:
        if get_origin(annotation) is Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = annotation.__origin__
        elif get_origin(annotation) in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation, metadata


def _walk(root: type, loc: tuple) -> tuple[Any, list, type | None]:
    """The stripped type and metadata at ``loc`` (None when loc leaves the schema), and the dataclass holding it."""
    annotation, metadata, owner = root, [], None
    for key in loc:
        annotation, _ = _strip(annotation)
        if isinstance(key, int):
            args = get_args(annotation)
            if not args:
                return None, [], owner
            annotation, metadata = _strip(args[0])
            continue
        fields = getattr(annotation, "__pydantic_fields__", {})
        if key not in fields:
            return None, [], annotation if fields else None
        owner, info = annotation, fields[key]
        annotation, metadata = _strip(info.annotation)
        metadata = [*info.metadata, *metadata]
    return annotation, metadata, owner


def _keys(cls: type) -> tuple[list[str], list[str]]:
    fields = cls.__pydantic_fields__
    return [k for k, f in fields.items() if f.is_required()], [k for k, f in fields.items() if not f.is_required()]


def _rank(root: type, error: dict) -> tuple:
    """Report order: depth first in field order; at one mapping, unknown keys first, then missing ones."""
    loc, ranks = error["loc"], []
    for depth, key in enumerate(loc):
        if isinstance(key, int):
            ranks.append((2, key))
            continue
        names = list(getattr(_walk(root, loc[:depth + 1])[2], "__pydantic_fields__", {}))
        last = depth == len(loc) - 1
        kind = {"unexpected_keyword_argument": 0, "missing": 1}.get(error["type"], 2) if last else 2
        ranks.append((kind, names.index(key) if key in names else -1))
    return tuple(ranks)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _invalid_input(root: type, errors: list[dict], prefix: str) -> InvalidInput:
    """The first of pydantic's errors as the project's InvalidInput: field path, value, reason, fix."""
    locs = [e["loc"] for e in errors]
    # A list with bad items is also reported as too short; the item's own error is the useful one.
    errors = [e for e in errors if not (e["type"] == "too_short" and any(l[:len(e["loc"])] == e["loc"] != l for l in locs))]
    error = min(errors, key=lambda e: _rank(root, e))
    loc, kind, value = error["loc"], error["type"], error["input"]
    paths = [prefix]
    for key in loc:
        paths.append(_join(paths[-1], key))
    path = paths[-1]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidInput):  # a rules function or a cross-field check: its field is relative to loc
        return InvalidInput(_join(path, cause.field), cause.value, cause.reason, cause.fix)
    if cause is not None:  # a plain ValueError (no rule here raises one): keep its words
        return InvalidInput(path, value, str(cause), "see include/pipelines/schema.json for what this field takes")
    if kind == "unexpected_keyword_argument":
        parent = loc[:-1]
        unknown = [e["loc"][-1] for e in errors if e["type"] == kind and e["loc"][:-1] == parent]
        required, optional = _keys(_walk(root, loc)[2])
        names = ", ".join(repr(k) for k in unknown)
        field = path if len(unknown) == 1 else paths[-2]
        return InvalidInput(field, unknown[0] if len(unknown) == 1 else unknown,
                            f"unknown key{'s' if len(unknown) > 1 else ''} {names}",
                            f"remove or correct it; allowed keys: {', '.join(required + optional)}")
    if kind == "missing":
        required, _ = _keys(_walk(root, loc[:-1])[0])
        return InvalidInput(path, None, "this key is required and missing",
                            f"add {loc[-1]!r} (required keys here: {', '.join(required)})")
    annotation, metadata, _ = _walk(root, loc)
    if kind in ("dataclass_type", "dataclass_args_type"):
        required, optional = _keys(annotation)
        return InvalidInput(path, value, f"expected a mapping, got {_type_name(value)}",
                            f"write a mapping with the keys {', '.join(required + optional)}")
    if kind == "literal_error":
        return InvalidInput(path, value, "not one of the allowed values", f"use one of {', '.join(get_args(annotation))}")
    if kind == "bool_type":
        return InvalidInput(path, value, f"expected true or false, got {_type_name(value)}", "write true or false")
    hint = next((m for m in metadata if isinstance(m, Hint)), Hint())
    what = hint.what or "a string"
    reason = f"expected {what}"  # lists, and fields whose Hint gives the reason
    if annotation is int:
        bounds = [f"{sign} {bound}" for m in metadata
                  for sign, bound in ((">=", getattr(m, "ge", None)), ("<=", getattr(m, "le", None))) if bound is not None]
        what = " ".join(["an integer", *bounds])
        out_of_range = kind in ("greater_than_equal", "less_than_equal")
        reason = f"out of range, expected {what}" if out_of_range else f"expected {what}, got {_type_name(value)}"
    elif annotation is str:
        non_empty = any(getattr(m, "min_length", None) for m in metadata)
        if non_empty and (kind in ("string_type", "string_too_short") or (isinstance(value, str) and not value.strip())):
            reason = f"expected {what} (a non-empty string)"
        elif kind == "string_too_long":
            max_len = error["ctx"]["max_length"]
            return InvalidInput(path, value, f"at most {max_len} characters allowed, this has {len(value)}",
                                hint.fix or f"shorten it to {max_len} characters")
        elif kind == "string_pattern_mismatch":
            reason = f"not {what}"
        else:
            reason = f"expected {what}, got {_type_name(value)}"
    return InvalidInput(path, value, hint.reason or reason, hint.fix or f"give {what}")


def _validate(cls: type, data: Any, prefix: str) -> Any:
    try:
        return cls.__pydantic_validator__.validate_python(data)
    except ValidationError as err:
        raise _invalid_input(cls, err.errors(include_url=False), prefix) from None


def parse_pipeline(data: Mapping[str, Any], field: str = "pipeline") -> PipelineConfig:
    """Validate one pipeline mapping (as in the YAML) and build its config; errors carry ``field``-based paths.

    Raises InvalidInput (the first problem found) for anything the schema or its rules refuse.
    """
    return _validate(PipelineConfig, data, field)


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
    """Load and validate a pipelines file: ``{pipelines: [<pipeline>, ...]}``; dag_ids must be unique.

    Raises InvalidInput for an unreadable file, bad YAML (duplicate keys included) or an invalid config.
    """
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
    return list(_validate(PipelinesFile, data, "").pipelines)


def load_pipelines_dir(directory: str | Path) -> list[PipelineConfig]:
    """Every pipeline of the ``*.yaml`` files in ``directory``, files in name order (what the DAG file builds).

    Raises InvalidInput as :func:`load_pipelines` does, and when two files declare the same ``dag_id``: Airflow
    would keep one of the two DAGs without a word (a copy of demo.yaml whose dag_id was not changed).
    """
    seen: dict[str, Path] = {}
    out: list[PipelineConfig] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        for pipeline in load_pipelines(path):
            first = seen.setdefault(pipeline.dag_id, path)
            if first != path:
                raise InvalidInput(
                    "dag_id", pipeline.dag_id, f"declared in both {first} and {path}; Airflow would keep only one "
                    "of the two DAGs",
                    f"give the pipeline in one of the two files its own dag_id (a copy of demo.yaml needs its own), "
                    f"or keep only one of them in {directory} (BATCH_IMAGES_PIPELINES_DIR names the folder the DAG "
                    "file reads)")
            out.append(pipeline)
    return out


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a pipelines file, for editors (include/pipelines/schema.json)."""
    schema = TypeAdapter(PipelinesFile).json_schema()
    for cls in (GalleryConfig, ImageDefinitionConfig, TargetRegionConfig, StartTaskConfig, RollConfig, SmokeTestConfig,
                PoolConfig, BaseImageConfig, DataDiskConfig, BuildConfig, EmailTargetConfig, WebhookTargetConfig,
                NotificationsConfig, PipelineConfig):
        props = schema["$defs"][cls.__name__]["properties"]  # in field order, as in the YAML, for humans
        schema["$defs"][cls.__name__]["properties"] = {k: props[k] for k in cls.__pydantic_fields__}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Batch image pipelines", **schema}


if __name__ == "__main__":
    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m batch_images.rules.config --schema > include/pipelines/schema.json")
    print(json.dumps(json_schema(), indent=2))
