"""Deterministic names derived from a run: image version, snapshots, managed image, pool id, tags.

Determinism is what makes retries safe: a retried task computes the same names, finds the resources
its first attempt created, and continues instead of creating duplicates.

Image version ``YYYY.MMDD.N``: Azure stores each of the three parts as a 32-bit integer and drops
leading zeros (``2026.0105.0`` comes back as ``2026.105.0``). So the middle part is the integer
``month * 100 + day`` written without leading zeros: 2026-11-25 -> ``2026.1125.0``, 2026-01-05 ->
``2026.105.0``. It is still unambiguous, because the day always takes the last two digits.
``N`` counts rebuilds of the same logical date, starting at 0.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import NamedTuple

from .errors import InvalidInput
from .ids import validate_resource_name

INT32_MAX = 2147483647
MAX_ARM_NAME = 80  # snapshots, images
MAX_POOL_ID = 64
MAX_TAG_VALUE = 256

TAG_MANAGED_BY = "managed-by"
MANAGED_BY = "airflow-batch-images"
TAG_DAG_ID = "dag_id"
TAG_RUN_ID = "run_id"
TAG_IMAGE_VERSION = "image-version"
# A revoked image version (never rolled to; every run moves pools off it; retention deletes it once unused) carries
# this tag, ``<ISO 8601 UTC> by <dag_id>/<run_id>``, besides excludeFromLatest true: readable without Airflow.
TAG_REVOKED = "revoked"
# A version built from a marketplace base records its lineage (the exact base) in these tags.
TAG_BASE_PUBLISHER = "base-publisher"
TAG_BASE_OFFER = "base-offer"
TAG_BASE_SKU = "base-sku"
TAG_BASE_VERSION = "base-version"
# Roll metadata on physical pools (rules/roll.py): which logical pool a pool serves, its role, since when, and the
# lease a rolling run holds on the serving pool (``<run_id>|<expiry ISO 8601>``).
TAG_LOGICAL_POOL = "logical-pool"
TAG_ROLE = "role"
TAG_SERVING_SINCE = "serving-since"
TAG_DRAINING_SINCE = "draining-since"
TAG_LEASE = "roll-lease"
# The versions a logical pool served before its current one, oldest first, comma-separated (rules/roll.py
# next_history): what a rollback run goes back to, and what retention keeps.
TAG_PREVIOUS_VERSIONS = "previous-versions"
ROLE_CANARY = "canary"
ROLE_SERVING = "serving"
ROLE_DRAINING = "draining"

_VERSION_PART_RE = re.compile(r"[0-9]+")  # ASCII digits only (\d would accept other scripts' digits)
_POOL_ID_CHAR_RE = re.compile(r"[A-Za-z0-9_\-]")
_ROLE_RE = re.compile(r"os|data-lun(0|[1-9][0-9]?)")
_MAX_LUN = 63  # Azure's data disk LUN range is 0..63


class VersionParts(NamedTuple):
    logical_date: date
    rebuild: int


# --- image version -------------------------------------------------------------------------------------------------


def version_name(logical_date: date | datetime, rebuild: int = 0) -> str:
    """``YYYY.MMDD.N`` for a run's logical date (aware datetimes are taken in UTC), e.g. ``2026.1125.0``."""
    if isinstance(logical_date, datetime):
        if logical_date.tzinfo is not None:
            logical_date = logical_date.astimezone(timezone.utc)
        logical_date = logical_date.date()
    elif not isinstance(logical_date, date):
        raise InvalidInput("logical_date", logical_date, "the image version is derived from the run's logical date, "
                           "and this is not a date", "pass the run's logical date; a manually triggered run "
                           "without a logical date needs one (trigger it with a logical date)")
    if isinstance(rebuild, bool) or not isinstance(rebuild, int) or not 0 <= rebuild <= INT32_MAX:
        raise InvalidInput("rebuild", rebuild, f"the rebuild counter is an integer in 0..{INT32_MAX}",
                           "pass 0 for the first build of a date, 1 for the next, ...")
    return f"{logical_date.year}.{logical_date.month * 100 + logical_date.day}.{rebuild}"


def version_for_base(version: str, existing: Mapping[str, str | None], base_version: str) -> str:
    """The version name a build from marketplace base ``base_version`` takes, starting at ``version``
    (``YYYY.MMDD.N``): that name when it is free or its version was built from the same base (its
    ``base-version`` tag: a retry, a clear or a second trigger adopts it), else the first ``N + k`` that is.

    A version's name identifies its content: without this, a base-image Asset event (or a manual run with
    another ``base_image_version``) on a date that already has a version would adopt that older build instead
    of building from the new base. ``existing``: version name -> its ``base-version`` tag (None: no tag).
    """
    major, minor, n = (int(p) for p in version.split("."))
    while True:
        name = f"{major}.{minor}.{n}"
        if name not in existing or existing[name] == base_version:
            return name
        if n >= INT32_MAX:
            raise InvalidInput("version", version, f"every version {major}.{minor}.N from this one on was built from "
                               "another base", "trigger the run with an explicit version")
        n += 1


def validate_version_name(value: object, field: str) -> str:
    """Exactly three dot-separated decimal integers, each 0..2147483647, no sign, spaces or leading zeros."""
    fix = "write the version as Major.Minor.Patch, e.g. 2026.1125.0"
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"a version name is a string, got {type(value).__name__}", fix)
    parts = value.split(".")
    if len(parts) != 3:
        raise InvalidInput(field, value, f"a gallery image version has exactly 3 dot-separated parts, this has {len(parts)}", fix)
    for i, part in enumerate(parts):
        if not _VERSION_PART_RE.fullmatch(part):
            raise InvalidInput(field, value, f"part {i + 1} ({part!r}) is not a non-negative decimal integer "
                               "(no sign, spaces or other characters)", fix)
        if int(part) > INT32_MAX:
            raise InvalidInput(field, value, f"part {i + 1} ({part}) exceeds {INT32_MAX}, the 32-bit limit Azure "
                               "stores each part in", f"keep each part at most {INT32_MAX}")
        if len(part) > 1 and part[0] == "0":
            # Azure would normalise it, and our name would no longer match the resource's.
            normal = ".".join(str(int(p)) for p in parts)
            raise InvalidInput(field, value, f"part {i + 1} ({part!r}) has a leading zero, which Azure drops",
                               f"write it as Azure stores it: {normal}")
    return value


def parse_version_name(value: object, field: str = "version") -> VersionParts:
    """Inverse of :func:`version_name`: ``"2026.105.3"`` -> ``(date(2026, 1, 5), 3)``."""
    validate_version_name(value, field)
    major, minor, patch = (int(p) for p in value.split("."))  # type: ignore[union-attr]
    try:
        day = date(major, minor // 100, minor % 100)
    except ValueError:
        raise InvalidInput(field, value, f"{major}.{minor} is not a date in the YYYY.MMDD scheme",
                           "use a version made by version_name(), e.g. 2026.1125.0 for 2026-11-25") from None
    return VersionParts(day, patch)


def version_sort_key(name: object) -> tuple[int, ...]:
    """Sort key of a gallery image version name, in Azure's order (numeric per part: ``2026.1125.0`` after
    ``2026.205.3``). A name that is not dot-separated decimal integers sorts before every version: ``(-1,)``."""
    parts = name.split(".") if isinstance(name, str) else []
    if not parts or not all(_VERSION_PART_RE.fullmatch(p) for p in parts):
        return (-1,)
    return tuple(int(p) for p in parts)


def next_version_name(logical_date: date | datetime, existing: Iterable[str]) -> str:
    """The first ``YYYY.MMDD.N`` for the date that is not in ``existing`` (a rebuild gets the next N)."""
    taken = {v.strip() for v in existing}
    rebuild = 0
    while version_name(logical_date, rebuild) in taken:
        rebuild += 1
    return version_name(logical_date, rebuild)


def version_dashed(version: str, field: str = "version") -> str:
    """``2026.1125.0`` -> ``2026-1125-0`` (dots are awkward in pool ids and resource names)."""
    return validate_version_name(version, field).replace(".", "-")


# --- resource names ------------------------------------------------------------------------------------------------


def _fit(prefix: str, variable: str, tail: str, limit: int) -> str:
    """``prefix + variable + tail``, or if too long the variable part cut and a hash of the full name added.

    The hash keeps two long names that share a prefix distinct; the tail (role, version) stays readable.
    """
    full = f"{prefix}{variable}{tail}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    room = limit - len(prefix) - len(tail) - len(digest) - 1
    cut = variable[: max(room, 0)].rstrip("-._")
    return f"{prefix}{cut}-{digest}{tail}" if cut else f"{prefix}{digest}{tail}"


def disk_role(lun: int | None) -> str:
    """``None`` (the OS disk) -> ``"os"``; a data disk's LUN -> ``"data-lun{N}"``."""
    if lun is None:
        return "os"
    if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= _MAX_LUN:
        raise InvalidInput("lun", lun, f"a data disk LUN is an integer in 0..{_MAX_LUN}", "pass the data disk's LUN")
    return f"data-lun{lun}"


def snapshot_name(vm_name: str, role: str, version: str) -> str:
    """``snap-{vm}-{role}-{version dashed}``, fitted into 80 characters (long VM names are cut and hashed)."""
    if not isinstance(vm_name, str) or not vm_name or not all(_POOL_ID_CHAR_RE.fullmatch(c) or c == "." for c in vm_name):
        raise InvalidInput("vm_name", vm_name, "a VM name here has letters, digits, '_', '.' and '-' only",
                           "pass the source VM's name (the last segment of its resource id)")
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role) or (role != "os" and int(role[8:]) > _MAX_LUN):
        raise InvalidInput("role", role, f"a disk role is 'os' or 'data-lun<N>' with N in 0..{_MAX_LUN}",
                           "use disk_role(None) for the OS disk and disk_role(lun) for a data disk")
    name = _fit("snap-", vm_name, f"-{role}-{version_dashed(version)}", MAX_ARM_NAME)
    return validate_resource_name(name, "snapshot_name", "snapshot")


def image_name(definition: str, version: str) -> str:
    """``img-{definition}-{version dashed}``, fitted into 80 characters."""
    validate_resource_name(definition, "definition", "image_definition")
    name = _fit("img-", definition, f"-{version_dashed(version)}", MAX_ARM_NAME)
    return validate_resource_name(name, "image_name", "image")


MAX_VM_NAME = 64  # a Linux VM's name (Windows: 15 for the computer name, not built here)


def build_vm_name(definition: str, version: str) -> str:
    """``bvm-{definition}-{version dashed}``, fitted into 64 characters: the build VM of a base_image pipeline's
    image version (deterministic, so a retry of the run adopts the VM its first try made)."""
    validate_resource_name(definition, "definition", "image_definition")
    return _fit("bvm-", definition, f"-{version_dashed(version)}", MAX_VM_NAME)


def build_vm_os_disk_name(vm_name: str) -> str:
    """The build VM's OS disk (named in the VM PUT, so preflight knows its id before the VM exists)."""
    return f"{vm_name}-osdisk"


def build_vm_data_disk_name(vm_name: str, lun: int) -> str:
    return f"{vm_name}-{disk_role(lun)}"


def build_vm_nic_name(vm_name: str) -> str:
    """The NIC the VM makes from its networkInterfaceConfigurations (deleted with the VM: deleteOption Delete)."""
    return f"{vm_name}-nic"


def base_image_asset_uri(location: str, publisher: str, offer: str, sku: str) -> str:
    """``azure-vmimage://{location}/{publisher}/{offer}/{sku}``: the Asset a base image's new versions update
    (lower-cased: Azure's marketplace names are case-insensitive, an Asset URI is not)."""
    return f"azure-vmimage://{location}/{publisher}/{offer}/{sku}".lower()


def validate_pool_id(value: object, field: str) -> str:
    """Batch pool id: 1-64 characters, ASCII letters, digits, '-' and '_' (unique case-insensitively)."""
    fix = f"use 1-{MAX_POOL_ID} characters from letters, digits, '-' and '_'"
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"a pool id is a string, got {type(value).__name__}", fix)
    if not 1 <= len(value) <= MAX_POOL_ID:
        raise InvalidInput(field, value, f"a pool id has 1-{MAX_POOL_ID} characters, this has {len(value)}", fix)
    for pos, ch in enumerate(value):
        if not _POOL_ID_CHAR_RE.fullmatch(ch):
            raise InvalidInput(field, value, f"character {ch!r} at position {pos} is not allowed in a pool id", fix)
    return value


def pool_id(prefix: str, version: str, field: str = "pool_id_prefix") -> str:
    """``{prefix}-{version dashed}``; the error names the prefix when the result would not fit 64 characters."""
    validate_pool_id(prefix, field)
    dashed = version_dashed(version)
    full = f"{prefix}-{dashed}"
    if len(full) > MAX_POOL_ID:
        raise InvalidInput(field, prefix, f"with version {version} the pool id {full!r} has {len(full)} characters, "
                           f"Batch allows {MAX_POOL_ID}",
                           f"shorten the prefix to at most {MAX_POOL_ID - 1 - len(dashed)} characters")
    return full


# --- tags ----------------------------------------------------------------------------------------------------------


def _tag_value(value: str) -> str:
    # Azure caps tag values at 256 characters. Cut with a hash suffix, so distinct long values stay distinct.
    if len(value) <= MAX_TAG_VALUE:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: MAX_TAG_VALUE - len(digest) - 1]}~{digest}"


def lineage_tags(publisher: str, offer: str, sku: str, version: str) -> dict[str, str]:
    """Tags of an image version built from a marketplace base: the exact base it was built from."""
    return {TAG_BASE_PUBLISHER: publisher, TAG_BASE_OFFER: offer, TAG_BASE_SKU: sku, TAG_BASE_VERSION: version}


def resource_tags(dag_id: str, run_id: str, version: str) -> dict[str, str]:
    """Tags put on every resource a run creates: who manages it, which DAG/run made it, which version."""
    for field, value in (("dag_id", dag_id), ("run_id", run_id)):
        if not isinstance(value, str) or not value:
            raise InvalidInput(field, value, "a tag value must be a non-empty string", f"pass the run's {field}")
    validate_version_name(version, "version")
    return {
        TAG_MANAGED_BY: MANAGED_BY,
        TAG_DAG_ID: _tag_value(dag_id),
        TAG_RUN_ID: _tag_value(run_id),
        TAG_IMAGE_VERSION: version,
    }
