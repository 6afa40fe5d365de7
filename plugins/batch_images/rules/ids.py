"""ARM resource ids: parse, validate, build; and Azure's naming rules per resource kind.

Ids reach us from YAML, DAG params and XCom, and end up inside request URLs. So parsing is strict:
anything that could change the URL's meaning (``..``, ``?``, ``#``, ``%``-escapes, backslashes,
whitespace) is refused here, before a hook ever formats a path with it.

ARM treats the fixed keywords and type names case-insensitively, so matching does too; names keep
the caller's casing. Compare ids with :attr:`ArmId.key`, not with ``==`` on strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InvalidInput

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAMESPACE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+")
_TYPE_SEGMENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# Characters that would change how a URL is read if they sat inside a path segment.
_URL_UNSAFE = frozenset('?#%\\&<>*"')

_ID_FIX_EXAMPLE = (
    "/subscriptions/<subscription-guid>/resourceGroups/<rg>/providers/<Namespace>/<type>/<name>"
)

VIRTUAL_MACHINE = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
SNAPSHOT = "Microsoft.Compute/snapshots"
IMAGE = "Microsoft.Compute/images"
GALLERY = "Microsoft.Compute/galleries"
GALLERY_IMAGE = "Microsoft.Compute/galleries/images"
GALLERY_IMAGE_VERSION = "Microsoft.Compute/galleries/images/versions"
BATCH_NAMESPACE = "Microsoft.Batch"
BATCH_ACCOUNT = "Microsoft.Batch/batchAccounts"
BATCH_POOL = "Microsoft.Batch/batchAccounts/pools"
SUBNET = "Microsoft.Network/virtualNetworks/subnets"
NETWORK_INTERFACE = "Microsoft.Network/networkInterfaces"


@dataclass(frozen=True)
class ArmId:
    """A parsed ARM resource id below a resource group.

    ``types`` holds the (type, name) pairs after the namespace, outermost first, e.g.
    ``(("galleries", "g"), ("images", "def"), ("versions", "2026.1125.0"))``.
    """

    subscription_id: str
    resource_group: str
    namespace: str
    types: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        """The id string: fixed keywords in ARM's canonical spelling, everything else as given."""
        tail = "/".join(f"{t}/{n}" for t, n in self.types)
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{tail}"
        )

    @property
    def key(self) -> str:
        """Lower-cased id, for case-insensitive comparison and dict keys (ARM ids are case-insensitive)."""
        return self.id.lower()

    @property
    def name(self) -> str:
        return self.types[-1][1]

    @property
    def resource_type(self) -> str:
        """E.g. ``Microsoft.Compute/galleries/images/versions`` (casing as given)."""
        return "/".join([self.namespace, *(t for t, _ in self.types)])

    @property
    def parent(self) -> ArmId | None:
        """The enclosing resource (a version's image definition, ...), or None for a top-level one."""
        if len(self.types) == 1:
            return None
        return ArmId(self.subscription_id, self.resource_group, self.namespace, self.types[:-1])

    def is_type(self, resource_type: str) -> bool:
        return self.resource_type.lower() == resource_type.lower()

    def __str__(self) -> str:
        return self.id


def id_key(value: str) -> str:
    """The comparison key of an ARM id string: trimmed, no trailing ``/``, lower-cased (ARM ids are
    case-insensitive). For dict keys and sets of ids that were not parsed (XCom, SDK answers)."""
    return value.strip().rstrip("/").lower()


def same_id(a: str | None, b: str | None) -> bool:
    """True when two ARM id strings name the same resource (:func:`id_key` equal); None or ``""`` never match."""
    return bool(a) and bool(b) and id_key(a) == id_key(b)  # type: ignore[arg-type]


def region_key(name: str | None) -> str:
    """A region's canonical name: ``"West Europe"`` and ``"westeurope"`` -> ``"westeurope"`` (how ARM ids,
    ``location`` fields and the pipeline config spell it); None -> ``""``."""
    return (name or "").replace(" ", "").lower()


def _check_name(name: str, field: str, value: str, what: str) -> None:
    """Refuse names that are empty or that could escape or rewrite the URL path."""
    if not name:
        raise InvalidInput(field, value, f"it has an empty {what} (a '//' or a trailing '/')",
                           f"remove the empty segment; the id looks like {_ID_FIX_EXAMPLE}")
    for ch in name:
        if ch in _URL_UNSAFE or ch.isspace() or not ch.isprintable():
            raise InvalidInput(
                field,
                value,
                f"the {what} {name!r} contains the character {ch!r}, which is not allowed in an Azure resource id "
                "(URL-unsafe, whitespace or control character)",
                f"use the resource's real {what}, unencoded, without ?, #, %, \\, &, whitespace or control characters",
            )
    if name == "." or ".." in name:
        raise InvalidInput(
            field, value, f"the {what} {name!r} contains '..' or is '.' (path traversal)",
            f"use the plain {what}, without '..'"
        )


def parse_arm_id(value: object, field: str, expected_type: str | None = None) -> ArmId:
    """Parse ``value`` as an ARM resource id; if ``expected_type`` is given the id must be of that type.

    ``expected_type`` is ``Namespace/type[/childtype...]``, e.g. ``Microsoft.Compute/galleries/images/versions``.
    """
    expect = f" of type {expected_type}" if expected_type else ""
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"expected a string (an ARM resource id{expect}), got {type(value).__name__}",
                           f"give the id as a string like {_ID_FIX_EXAMPLE}")
    if not value.startswith("/") or value[1:].split("/", 1)[0].lower() != "subscriptions":
        raise InvalidInput(field, value, "an ARM resource id starts with /subscriptions/",
                           f"give the full resource id{expect}, like {_ID_FIX_EXAMPLE}")
    segments = value[1:].split("/")
    # Unsafe names first: they explain a traversal or injection better than a segment count would.
    for i, segment in enumerate(segments):
        _check_name(segment, field, value, "subscription id" if i == 1 else "path segment")
    # Fixed frame: subscriptions/<sub>/resourceGroups/<rg>/providers/<ns>/<type>/<name>[/<type>/<name>...]
    if len(segments) < 8 or len(segments) % 2 != 0:
        raise InvalidInput(field, value,
                           f"it has {len(segments)} path segments; a resource id has an even number, at least 8 "
                           "(missing or extra segments, or a '/' inside a name)",
                           f"give the full resource id{expect}, like {_ID_FIX_EXAMPLE}")
    sub, rg_kw, rg, prov_kw, namespace = segments[1], segments[2], segments[3], segments[4], segments[5]
    if rg_kw.lower() != "resourcegroups" or prov_kw.lower() != "providers":
        raise InvalidInput(field, value, f"expected '/resourceGroups/<rg>/providers/' after the subscription, found "
                                         f"'/{rg_kw}/{rg}/{prov_kw}/'",
                           f"give the full resource id{expect}, like {_ID_FIX_EXAMPLE}")
    if not _GUID_RE.fullmatch(sub):
        raise InvalidInput(field, value, f"the subscription id {sub!r} is not a GUID",
                           "use the subscription's GUID (8-4-4-4-12 hex digits), not its display name")
    try:
        validate_resource_name(rg, field, "resource_group")
    except InvalidInput as err:
        raise InvalidInput(field, value, f"its resource group: {err.reason}", err.fix) from None
    if not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidInput(field, value, f"{namespace!r} is not a resource provider namespace",
                           "use a namespace such as Microsoft.Compute or Microsoft.Batch")
    pairs = tuple((segments[i], segments[i + 1]) for i in range(6, len(segments), 2))
    for type_name, _ in pairs:
        if not _TYPE_SEGMENT_RE.fullmatch(type_name):
            raise InvalidInput(field, value, f"{type_name!r} is not a resource type segment",
                               f"give the full resource id{expect}, like {_ID_FIX_EXAMPLE}")
    arm_id = ArmId(sub, rg, namespace, pairs)
    if expected_type and not arm_id.is_type(expected_type):
        raise InvalidInput(field, value, f"expected a resource of type {expected_type}, found {arm_id.resource_type}",
                           f"give the id of a {expected_type} resource")
    return arm_id


def validate_subscription_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not _GUID_RE.fullmatch(value):
        raise InvalidInput(field, value, "a subscription id is a GUID",
                           "use the subscription's GUID (8-4-4-4-12 hex digits), not its display name")
    return value


# --- builders ---------------------------------------------------------------------------------------------------
# Each builder validates its parts, so a built id is always one parse_arm_id accepts.


def _build(subscription_id: str, resource_group: str, resource_type: str, *names: str) -> ArmId:
    namespace, *types = resource_type.split("/")
    if len(types) != len(names):
        raise ValueError(f"{resource_type} needs {len(types)} names, got {len(names)}")  # programming error
    parts = (("subscription_id", subscription_id), ("resource_group", resource_group),
             *((f"{t} name", n) for t, n in zip(types, names)))
    for label, part in parts:
        if not isinstance(part, str):
            raise InvalidInput(label, part, f"expected a string, got {type(part).__name__}", f"give the {label} as a string")
        if "/" in part:  # would silently shift the segments of the id
            raise InvalidInput(label, part, "a name cannot contain '/'", f"give only the {label}, not a path")
    id_text = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{namespace}/" + "/".join(
        f"{t}/{n}" for t, n in zip(types, names)
    )
    return parse_arm_id(id_text, f"{types[-1]} id", resource_type)


def vm_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, VIRTUAL_MACHINE, name)


def disk_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, DISK, name)


def snapshot_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, SNAPSHOT, name)


def image_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, IMAGE, name)


def gallery_id(subscription_id: str, resource_group: str, gallery: str) -> ArmId:
    return _build(subscription_id, resource_group, GALLERY, gallery)


def gallery_image_id(subscription_id: str, resource_group: str, gallery: str, image: str) -> ArmId:
    return _build(subscription_id, resource_group, GALLERY_IMAGE, gallery, image)


def gallery_image_version_id(
    subscription_id: str, resource_group: str, gallery: str, image: str, version: str
) -> ArmId:
    return _build(subscription_id, resource_group, GALLERY_IMAGE_VERSION, gallery, image, version)


def batch_account_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, BATCH_ACCOUNT, name)


def batch_pool_id(subscription_id: str, resource_group: str, account: str, pool: str) -> ArmId:
    """A Batch pool as an ARM resource (``.../batchAccounts/{account}/pools/{pool}``: its portal page)."""
    return _build(subscription_id, resource_group, BATCH_POOL, account, pool)


def network_interface_id(subscription_id: str, resource_group: str, name: str) -> ArmId:
    return _build(subscription_id, resource_group, NETWORK_INTERFACE, name)


def provider_path(subscription_id: str, namespace: str) -> str:
    """``/subscriptions/{sub}/providers/{namespace}``: a resource provider's registration in a subscription (not a
    resource id). InvalidInput for a subscription that is not a GUID or a namespace that is not ``A.B[.C...]``."""
    validate_subscription_id(subscription_id, "subscription_id")
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidInput("namespace", namespace, "not a resource provider namespace",
                           "use a namespace such as Microsoft.Compute or Microsoft.Batch")
    return f"/subscriptions/{subscription_id}/providers/{namespace}"


# --- naming rules per resource kind ------------------------------------------------------------------------------
# From Microsoft's "Naming rules and restrictions for Azure resources". Checked before a PUT so that a bad
# name fails at DAG parse / task start with a fix, not minutes later as an ARM 400.


@dataclass(frozen=True)
class _NameRule:
    min_len: int
    max_len: int
    allowed: re.Pattern[str]  # one character
    allowed_text: str
    first: re.Pattern[str] | None = None
    first_text: str = ""
    last: re.Pattern[str] | None = None
    last_text: str = ""


_ALNUM = re.compile(r"[A-Za-z0-9]")
_DISKLIKE = _NameRule(
    1, 80, re.compile(r"[A-Za-z0-9_.\-]"), "letters, digits, '_', '.', '-'",
    _ALNUM, "a letter or digit", re.compile(r"[A-Za-z0-9_]"), "a letter, digit or '_' (not '.' or '-')",
)
NAME_RULES: dict[str, _NameRule] = {
    "snapshot": _DISKLIKE,
    "disk": _DISKLIKE,
    "image": _DISKLIKE,
    # No hyphen in gallery names (Azure refuses it).
    "gallery": _NameRule(1, 80, re.compile(r"[A-Za-z0-9_.]"), "letters, digits, '_', '.' (no '-')",
                         _ALNUM, "a letter or digit", _ALNUM, "a letter or digit"),
    "image_definition": _NameRule(1, 80, re.compile(r"[A-Za-z0-9_.\-]"), "letters, digits, '_', '.', '-'",
                                  _ALNUM, "a letter or digit", _ALNUM, "a letter or digit"),
    # \w is Unicode-aware: resource groups accept Unicode letters.
    "resource_group": _NameRule(1, 90, re.compile(r"[-\w.()]"), "letters, digits, '_', '-', '.', '(' and ')'",
                                None, "", re.compile(r"[^.]"), "anything but '.'"),
    "region": _NameRule(1, 50, re.compile(r"[a-z0-9]"), "lowercase letters and digits (e.g. westeurope)"),
    "batch_account": _NameRule(3, 24, re.compile(r"[a-z0-9]"), "lowercase letters and digits"),
}


def validate_resource_name(value: object, field: str, kind: str) -> str:
    """Check ``value`` against Azure's naming rule for ``kind`` (a key of NAME_RULES); return it unchanged."""
    rule = NAME_RULES.get(kind)
    if rule is None:
        raise ValueError(f"unknown resource kind {kind!r}; known: {', '.join(NAME_RULES)}")  # programming error
    label = kind.replace("_", " ")
    if not isinstance(value, str):
        raise InvalidInput(field, value, f"a {label} name must be a string, got {type(value).__name__}",
                           f"give the {label} name as a string")
    if not rule.min_len <= len(value) <= rule.max_len:
        raise InvalidInput(field, value, f"a {label} name has {rule.min_len}-{rule.max_len} characters, this has {len(value)}",
                           f"use a {label} name of {rule.min_len} to {rule.max_len} characters")
    for pos, ch in enumerate(value):
        if not rule.allowed.fullmatch(ch):
            hint = " (region names are the lowercase form without spaces, e.g. 'westeurope')" if kind == "region" else ""
            raise InvalidInput(field, value, f"character {ch!r} at position {pos} is not allowed in a {label} name{hint}",
                               f"use only {rule.allowed_text}")
    if rule.first and not rule.first.fullmatch(value[0]):
        raise InvalidInput(field, value, f"a {label} name must start with {rule.first_text}",
                           f"start the name with {rule.first_text}")
    if rule.last and not rule.last.fullmatch(value[-1]):
        raise InvalidInput(field, value, f"a {label} name must end with {rule.last_text}",
                           f"end the name with {rule.last_text}")
    return value


def ids_of(values: object, field: str) -> list[str]:
    """ARM ids from None, a str, a dict with ``"id"``, or a list of those (the shapes XCom carries); each is
    checked with :func:`parse_arm_id`. Raises InvalidInput naming ``field`` (``field[i]`` for an element)."""
    if values is None:
        return []
    if isinstance(values, (str, Mapping)):
        values = [values]
    if not isinstance(values, Sequence):
        raise InvalidInput(field, values, "expected ARM ids: a string, a dict with 'id', or a list of those",
                           "pass the upstream operator's output")
    out: list[str] = []
    for i, value in enumerate(values):
        if isinstance(value, Mapping):
            value = value.get("id")
        if value is None:
            continue
        parse_arm_id(value, f"{field}[{i}]")
        out.append(value)
    return out
