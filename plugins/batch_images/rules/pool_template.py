"""The pool template: a logical pool's Batch pool body (REST camelCase) without the fields the pipeline owns.

Every pool the pipeline makes for a logical pool is ``pool_body(template, ...)``: the template unchanged plus the
owned fields (:data:`OWNED_FIELDS`) and the pipeline's metadata entries. Where the template comes from: the config's
``template`` / ``template_file``, an adopted pool's GET (:func:`template_from_pool`), or the short fields
(:func:`template_from_short_fields`). Nothing here drops a property it does not know: only the read-only ones
(:data:`READ_ONLY_POOL_PROPERTIES`) and the owned ones are removed.

Pure: stdlib and ``jsonschema`` (validation of the shape against ``batch_pool_schema.json``, derived from the Batch
REST spec by ``tools/derive_batch_pool_schema.py``); no Airflow, no Azure SDK.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from . import arm_pool_body, naming
from .errors import InvalidInput

SCHEMA_FILE = Path(__file__).with_name("batch_pool_schema.json")

# Set only by the pipeline (issue 19, "Owned fields"): the id per version, the image pinned to the version, the node
# agent derived from Batch's supported images and the security profile the image requires (rules/security.py).
OWNED_FIELDS = ("id", "virtualMachineConfiguration.imageReference", "virtualMachineConfiguration.nodeAgentSKUId",
                "virtualMachineConfiguration.securityProfile")

# What GET /pools/{id} returns that a create does not accept: the BatchPool model's properties (all read-only in a
# response) that BatchPoolCreateOptions lacks, Batch REST api-version 2025-06-01 (azure-rest-api-specs
# specification/batch/Azure.Batch models.tsp; BatchService.json "BatchPool" vs "BatchPoolCreateOptions"; the same
# sets in azure-batch 15.1.0's models). ``identity`` is settable through ARM only (Microsoft.Batch pools), never on
# a data-plane create. ``odata.metadata`` is the JSON answer's own annotation.
READ_ONLY_POOL_PROPERTIES = ("url", "eTag", "lastModified", "creationTime", "state", "stateTransitionTime",
                             "allocationState", "allocationStateTransitionTime", "resizeErrors",
                             "currentDedicatedNodes", "currentLowPriorityNodes", "autoScaleRun", "stats", "identity",
                             "currentNodeCommunicationMode", "odata.metadata")

# Metadata entries the pipeline writes (rules/naming.py); a template may not set them.
PIPELINE_METADATA = (naming.TAG_MANAGED_BY, naming.TAG_DAG_ID, naming.TAG_RUN_ID, naming.TAG_IMAGE_VERSION,
                     naming.TAG_BASE_PUBLISHER, naming.TAG_BASE_OFFER, naming.TAG_BASE_SKU, naming.TAG_BASE_VERSION,
                     naming.TAG_LOGICAL_POOL, naming.TAG_ROLE, naming.TAG_SERVING_SINCE, naming.TAG_DRAINING_SINCE,
                     naming.TAG_LEASE, naming.TAG_PREVIOUS_VERSIONS)

# Batch's values for properties a template may leave out (REST docs of Pool - Add), by dotted path; drift ignores a
# pool that has them. The start task's two (BatchStartTask, azure-batch 15.1 models: maxTaskRetryCount "The default
# value is 0", waitForSuccess "The default is true") come back filled in on a GET.
BATCH_DEFAULTS = {"enableAutoScale": False, "enableInterNodeCommunication": False, "taskSlotsPerNode": 1,
                  "targetDedicatedNodes": 0, "targetLowPriorityNodes": 0, "resizeTimeout": "PT15M",
                  "taskSchedulingPolicy": {"nodeFillType": "spread"},
                  "startTask.maxTaskRetryCount": 0, "startTask.waitForSuccess": True}
AUTOSCALE_KEYS = ("enableAutoScale", "autoScaleFormula", "autoScaleEvaluationInterval")
# Batch's bounds (REST docs, Pool - Add): autoScaleEvaluationInterval 5 min..168 h; taskSlotsPerNode at most 256.
MIN_EVALUATION_INTERVAL, MAX_EVALUATION_INTERVAL = timedelta(minutes=5), timedelta(hours=168)
MAX_TASK_SLOTS = 256
SCHEMA_FIX = "see plugins/batch_images/rules/batch_pool_schema.json (Batch's pool create body) for what it takes"

_DURATION_RE = re.compile(r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?")


# -- paths and values --------------------------------------------------------------------------------------------


# -- secrets ---------------------------------------------------------------------------------------------------
# Properties of a pool body that hold a secret (Batch REST 2025-06-01, models.tsp: UserAccount.password,
# AzureFileShareConfiguration.accountKey, AzureBlobFileSystemConfiguration.accountKey/sasKey,
# CifsMountConfiguration.password, ContainerRegistryReference.password), as paths with list indexes left out. A
# template holds no secret value: the template travels in the plan (XCom), the rendered template field and the
# preflight log. It names an Airflow Variable instead, ``secret:variable/<name>``, which create_pool alone reads and
# masks (:func:`resolve_secrets`).
SECRET_PATHS = frozenset({
    "userAccounts.password",
    "mountConfiguration.azureFileShareConfiguration.accountKey",
    "mountConfiguration.azureBlobFileSystemConfiguration.accountKey",
    "mountConfiguration.azureBlobFileSystemConfiguration.sasKey",
    "mountConfiguration.cifsMountConfiguration.password",
    "virtualMachineConfiguration.containerConfiguration.containerRegistries.password",
    "startTask.containerSettings.registry.password",
})
SECRET_REFERENCE = re.compile(r"^secret:variable/([A-Za-z0-9_.\-]{1,250})$")


def _secret_leaves(node: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path with list indexes, dotted path without them) of every secret property present in ``node``."""
    out = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = path + (key,)
            if ".".join(p for p in here if isinstance(p, str)) in SECRET_PATHS:
                out.append((here, ".".join(p for p in here if isinstance(p, str))))
            else:
                out += _secret_leaves(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _secret_leaves(value, path + (i,))
    return out


def _path_text(field: str, path: tuple) -> str:
    return _json_path(field, list(path))


def secret_problems(template: Mapping[str, Any], field: str) -> list[InvalidInput]:
    """A secret property whose value is not a ``secret:variable/<name>`` reference: one InvalidInput each, the value
    hidden."""
    out = []
    for path, _ in _secret_leaves(template):
        value = template
        for p in path:
            value = value[p]
        if not (isinstance(value, str) and SECRET_REFERENCE.match(value)):
            out.append(InvalidInput(_path_text(field, path), "(hidden)", "a secret written into the template would be "
                                    "kept in the run's plan (XCom), the rendered template and the task log",
                                    "store it in an Airflow Variable (or a secrets backend) and write "
                                    "'secret:variable/<variable name>' here; or use a managed identity "
                                    "(identityReference) where Batch takes one"))
    return out


def without_secrets(body: Mapping[str, Any]) -> dict:
    """``body`` without its secret properties (for comparing and cloning: Batch does not return secrets, and none
    may reach XCom)."""
    out = copy.deepcopy(dict(body))
    for path, _ in sorted(_secret_leaves(out), key=lambda item: len(item[0]), reverse=True):
        node: Any = out
        for p in path[:-1]:
            node = node[p]
        node.pop(path[-1], None)
    return out


def secret_variables(body: Mapping[str, Any]) -> list[str]:
    """The Airflow Variable names a body's secret references name, in order."""
    names = []
    for path, _ in _secret_leaves(body):
        value: Any = body
        for p in path:
            value = value[p]
        match = SECRET_REFERENCE.match(value) if isinstance(value, str) else None
        if match:
            names.append(match.group(1))
    return names


def resolve_secrets(body: Mapping[str, Any], lookup: Any) -> dict:
    """A copy of ``body`` with each ``secret:variable/<name>`` reference replaced by ``lookup(name)`` (create_pool
    passes Airflow's Variable.get, after masking). Values that are not references stay as they are."""
    out = copy.deepcopy(dict(body))
    for path, _ in _secret_leaves(out):
        node: Any = out
        for p in path[:-1]:
            node = node[p]
        match = SECRET_REFERENCE.match(node[path[-1]]) if isinstance(node[path[-1]], str) else None
        if match:
            node[path[-1]] = lookup(match.group(1))
    return out


def _get(body: Mapping[str, Any], dotted: str) -> Any:
    node: Any = body
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _pop(body: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = body
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def metadata_dict(items: Any) -> dict[str, str]:
    """Batch's ``metadata`` list (``[{name, value}]``) as a dict (None / bad entries: left out)."""
    return {str(i["name"]): str(i.get("value", "")) for i in items or [] if isinstance(i, Mapping) and "name" in i}


def metadata_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def parse_iso_duration(text: Any) -> timedelta | None:
    """``P1DT2H3M4S`` and its parts as a timedelta; None when it is not that form."""
    match = _DURATION_RE.fullmatch(text) if isinstance(text, str) and text not in ("P", "PT") else None
    if match is None:
        return None
    d, h, m, s = (float(match.group(k) or 0) for k in "dhms")
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


def iso_duration(value: timedelta) -> str:
    """A timedelta as ISO 8601 (``PT15M``, ``PT1H30M``, ``P1DT2H``)."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock or not days else "")


# -- checks at parse -----------------------------------------------------------------------------------------------


@cache
def schema() -> dict:
    """The JSON Schema of a template (plugins/batch_images/rules/batch_pool_schema.json)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _json_path(field: str, path: Any) -> str:
    out = field
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def owned_field_problems(template: Mapping[str, Any], field: str) -> list[InvalidInput]:
    """An owned field or a pipeline metadata entry set in ``template``: one InvalidInput each."""
    out = []
    for dotted in OWNED_FIELDS:
        value = _get(template, dotted)
        if value is not None:
            out.append(InvalidInput(f"{field}.{dotted}", value, "the pipeline owns this field: it sets it for each "
                                    "image version (id per version, image pinned, node agent derived, security "
                                    "profile as the image requires)", "remove it from the template"))
    items = template.get("metadata")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, Mapping) and item.get("name") in PIPELINE_METADATA:
            out.append(InvalidInput(f"{field}.metadata[{i}].name", item.get("name"), "the pipeline writes this "
                                    "metadata entry on every pool it makes", "rename or remove the entry"))
    return out


def shape_problems(template: Any, field: str) -> list[InvalidInput]:
    """``template`` checked against Batch's pool create body (batch_pool_schema.json): one InvalidInput per error,
    naming the template path, the value, JSON Schema's reason and a fix."""
    import jsonschema  # Airflow's own dependency; loaded only when a template is checked

    if not isinstance(template, Mapping):
        return [InvalidInput(field, template, f"expected a mapping (Batch's pool body), got {type(template).__name__}",
                             "write the pool's properties as in az batch pool create --json-file")]
    validator = jsonschema.Draft202012Validator(schema())
    data_plane = data_plane_part(template)
    out = []
    if arm_pool_body.body_needs_arm(template):  # identity / tags: the pool goes through ARM (rules/arm_pool_body.py)
        try:
            arm_pool_body.arm_pool_body(data_plane, template.get("identity"), template.get("tags"), field=field)
        except InvalidInput as err:
            out.append(err)
    for err in sorted(validator.iter_errors(data_plane), key=lambda e: [str(p) for p in e.absolute_path]):
        path = _json_path(field, err.absolute_path)
        if err.validator == "additionalProperties":
            known = ", ".join((err.schema.get("properties") or {}).keys())
            extra = sorted(set(err.instance) - set(err.schema.get("properties") or {}))
            out.append(InvalidInput(_json_path(path, [extra[0]]) if len(extra) == 1 else path,
                                    extra[0] if len(extra) == 1 else extra,
                                    "not a property of Batch's pool create body (api-version 2025-06-01)",
                                    f"remove or correct it; properties here: {known}"))
            continue
        fix = {"required": "add the missing property", "enum": f"use one of {', '.join(map(str, err.validator_value))}"
               if isinstance(err.validator_value, list) else SCHEMA_FIX}.get(err.validator, SCHEMA_FIX)
        out.append(InvalidInput(path, err.instance, err.message, fix))
    return out


def data_plane_part(template: Mapping[str, Any]) -> dict:
    """``template`` without the ARM-only keys (``identity``, ``tags``: :data:`~batch_images.rules.arm_pool_body.
    ARM_ONLY_KEYS`), i.e. what the data plane's ``POST /pools`` takes."""
    return {k: v for k, v in template.items() if k not in arm_pool_body.ARM_ONLY_KEYS}


def template_problems(template: Mapping[str, Any], field: str) -> list[InvalidInput]:
    """Batch's cross-field rules a template breaks, checked without Azure: autoscale with fixed counts, autoscale
    without a formula, ``autoScaleEvaluationInterval`` outside 5 min..168 h, ``taskSlotsPerNode`` outside 1..256."""
    out = []
    auto = template.get("enableAutoScale") is True
    if auto:
        for key in ("targetDedicatedNodes", "targetLowPriorityNodes"):
            if template.get(key) is not None:
                out.append(InvalidInput(f"{field}.{key}", template[key], "Batch refuses fixed node counts on a pool "
                                        "with enableAutoScale true (the formula sets the targets)",
                                        f"remove {key}, or set enableAutoScale false"))
        if not template.get("autoScaleFormula"):
            out.append(InvalidInput(f"{field}.autoScaleFormula", template.get("autoScaleFormula"), "enableAutoScale "
                                    "is true, and Batch needs a formula then", "add autoScaleFormula, e.g. "
                                    "'$TargetDedicatedNodes = 2;', or set enableAutoScale false"))
    else:
        for key in ("autoScaleFormula", "autoScaleEvaluationInterval"):
            if template.get(key) is not None:
                out.append(InvalidInput(f"{field}.{key}", template[key], "set without enableAutoScale true: Batch "
                                        "refuses it on a fixed-size pool", f"set enableAutoScale true, or remove {key}"))
    interval = template.get("autoScaleEvaluationInterval")
    if interval is not None:
        td = parse_iso_duration(interval)
        if td is None or not MIN_EVALUATION_INTERVAL <= td <= MAX_EVALUATION_INTERVAL:
            out.append(InvalidInput(f"{field}.autoScaleEvaluationInterval", interval, "Batch takes an ISO 8601 "
                                    "duration between 5 minutes and 168 hours", "use e.g. PT5M or PT15M"))
    slots = template.get("taskSlotsPerNode")
    if isinstance(slots, int) and not 1 <= slots <= MAX_TASK_SLOTS:
        out.append(InvalidInput(f"{field}.taskSlotsPerNode", slots, f"Batch takes 1..{MAX_TASK_SLOTS} task slots per "
                                "node (and at most 4x the VM size's cores)", "give a number of slots in that range"))
    return out


def check_template(template: Any, field: str) -> dict:
    """Parse-time checks of a configured template (owned fields, shape, cross-field rules); the first problem is
    raised as InvalidInput naming ``<field>.<path>``. Returns the template as a plain dict."""
    problems = shape_problems(template, field)
    if isinstance(template, Mapping):
        problems = owned_field_problems(template, field) + secret_problems(template, field) + problems
        if not problems:
            problems = template_problems(template, field)
    if problems:
        raise problems[0]
    return copy.deepcopy(dict(template))


# -- making templates ------------------------------------------------------------------------------------------


def template_from_short_fields(cfg: Any, resize_timeout: timedelta | None = None) -> dict:
    """The template of a pool written with the short fields (``PoolConfig``: vm_size, target_*_nodes,
    resize_timeout_minutes, start_task); ``resize_timeout`` overrides the config's (the plan floors it at 15 min)."""
    body: dict[str, Any] = {
        "vmSize": cfg.vm_size,
        "resizeTimeout": iso_duration(resize_timeout if resize_timeout is not None else cfg.resize_timeout),
        "targetDedicatedNodes": cfg.target_dedicated_nodes,
        "targetLowPriorityNodes": cfg.target_low_priority_nodes,
        "enableAutoScale": False,
    }
    task = cfg.start_task
    if task is not None:
        body["startTask"] = start_task_body(task.command_line, task.wait_for_success, task.max_task_retry_count,
                                            task.elevated)
    return body


def start_task_body(command_line: str, wait_for_success: bool, max_task_retry_count: int, elevated: bool) -> dict:
    """The short fields' ``start_task`` as Batch's ``startTask`` (run as the pool's auto-user, admin when elevated)."""
    return {"commandLine": command_line, "waitForSuccess": wait_for_success, "maxTaskRetryCount": max_task_retry_count,
            "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin" if elevated else "nonadmin"}}}


def template_from_pool(get_json: Mapping[str, Any], arm_tags: Mapping[str, str] | None = None) -> dict:
    """An existing pool's spec (``GET /pools/{id}`` JSON) as a template: read-only properties, owned fields and the
    pipeline's metadata entries removed; every other property kept as Batch returned it, and its user-assigned
    identities (read-only on the data plane) as the template's ARM ``identity``. The pool resource's ARM tags are
    not in that JSON: pass them as ``arm_tags`` (ARM's Pool_Get ``tags``) to carry them over (the next pool is then
    made through ARM). Secrets (user account passwords, mount keys) are not carried over: they must not reach the
    plan; describe such a pool with ``template`` and secret references."""
    body = without_secrets({k: v for k, v in get_json.items() if k not in READ_ONLY_POOL_PROPERTIES})
    if arm_tags:
        body["tags"] = dict(arm_tags)
    identity = arm_pool_body.arm_identity((get_json.get("identity") or {}).get("userAssignedIdentities") or None,
                                          "identity")
    if identity:  # the data plane reads it back as a list; the next pool gets it through ARM
        body["identity"] = identity
    for dotted in OWNED_FIELDS:
        _pop(body, dotted)
    if not body.get("virtualMachineConfiguration"):
        body.pop("virtualMachineConfiguration", None)
    if body.get("enableAutoScale"):  # Batch returns the formula's current targets; a create with them is refused
        body.pop("targetDedicatedNodes", None)
        body.pop("targetLowPriorityNodes", None)
        body.pop("resizeTimeout", None)
    user = {k: v for k, v in metadata_dict(body.get("metadata")).items() if k not in PIPELINE_METADATA}
    if user:
        body["metadata"] = metadata_list(user)
    else:
        body.pop("metadata", None)
    return body


def is_autoscaled(template: Mapping[str, Any]) -> bool:
    return template.get("enableAutoScale") is True


def fixed_targets(template: Mapping[str, Any], canary_nodes: int | None) -> tuple[int, int]:
    """(dedicated, low-priority) nodes a pool made from ``template`` is sized to: the template's counts, or for an
    autoscaled template its canary's ``canary_nodes`` dedicated nodes."""
    if is_autoscaled(template):
        return int(canary_nodes or 1), 0
    return int(template.get("targetDedicatedNodes") or 0), int(template.get("targetLowPriorityNodes") or 0)


def pool_body(template: Mapping[str, Any], *, pool_id: str, image_version_id: str, node_agent_sku_id: str,
              security_profile: Mapping[str, Any] | None, metadata: Mapping[str, str],
              canary_nodes: int | None = None, display_name: str | None = None) -> dict:
    """The ``POST /pools`` body: ``template`` (without its ARM-only ``identity``/``tags``, which
    :func:`~batch_images.rules.arm_pool_body.arm_pool_body` adds for the ARM route) plus the owned fields and
    ``metadata`` (the template's own entries kept,
    the pipeline's added). With ``canary_nodes``, an autoscaled template makes a fixed-size canary (enableAutoScale
    false, no formula or interval, ``targetDedicatedNodes`` = canary_nodes). ``display_name`` is used when the
    template has none."""
    body = copy.deepcopy(data_plane_part(template))
    body["id"] = pool_id
    if display_name and not body.get("displayName"):
        body["displayName"] = display_name
    vmc = dict(body.get("virtualMachineConfiguration") or {})
    vmc["imageReference"] = {"virtualMachineImageId": image_version_id}
    vmc["nodeAgentSKUId"] = node_agent_sku_id
    if security_profile:
        vmc["securityProfile"] = copy.deepcopy(dict(security_profile))
    else:
        vmc.pop("securityProfile", None)
    body["virtualMachineConfiguration"] = vmc
    body["metadata"] = metadata_list({**metadata_dict(body.get("metadata")),
                                      **{str(k): str(v) for k, v in metadata.items()}})
    if canary_nodes is not None and is_autoscaled(body):
        body["enableAutoScale"] = False
        body.pop("autoScaleFormula", None)
        body.pop("autoScaleEvaluationInterval", None)
        body["targetDedicatedNodes"] = int(canary_nodes)
        body["targetLowPriorityNodes"] = 0
    return body


# -- drift ---------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if value is not None else "(unset)"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        da, db = parse_iso_duration(a), parse_iso_duration(b)
        if da is not None and db is not None:
            return da == db
        return a.lower() == b.lower()  # Batch answers enums in its own casing
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = set(a) | set(b)
        return all(_same(a.get(k), b.get(k)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def drift(template: Mapping[str, Any], serving_pool_json: Mapping[str, Any]) -> list[str]:
    """Where the serving pool differs from ``template`` beyond the owned fields and read-only properties, as
    ``"path: template X, pool Y"`` lines (the pipeline's metadata entries, Batch's defaults for properties the
    template leaves out and the display name the pipeline sets are not drift). The pool resource's ARM ``tags`` are
    not in the data plane's JSON: they are not compared."""
    pool = template_from_pool(serving_pool_json)
    want = without_secrets({k: v for k, v in template.items() if k != "tags"})  # Batch returns no secret
    if is_autoscaled(want):  # as template_from_pool: an autoscaled pool's resize timeout is not its own setting
        want.pop("resizeTimeout", None)
    out: list[str] = []

    def walk(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str) -> None:
        for key in sorted(set(a) | set(b)):
            path = f"{prefix}{key}"
            x, y = a.get(key), b.get(key)
            if key not in a and (path == "displayName" or _same(BATCH_DEFAULTS.get(path), y)):
                continue
            if key == "metadata" and not prefix:
                x, y = metadata_dict(x), metadata_dict(y)
            if isinstance(x, Mapping) and isinstance(y, Mapping):
                walk(x, y, f"{path}.")
            elif not _same(x, y):
                out.append(f"{path}: template {_text(x)}, pool {_text(y)}")

    walk(want, pool, "")
    return out
