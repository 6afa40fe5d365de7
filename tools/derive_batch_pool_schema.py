"""Derive plugins/batch_images/rules/batch_pool_schema.json: the JSON Schema of a Batch pool template.

Source: the Batch data plane's pool create body, ``BatchPoolCreateOptions`` and the models it references, as the
installed ``azure-batch`` SDK declares them. That SDK is generated from the REST spec's TypeSpec,
``Azure/azure-rest-api-specs`` ``specification/batch/Azure.Batch`` (commit in the SDK's ``tsp-location.yaml``,
recorded below), the same source as ``data-plane/Batch/stable/2025-06-01/BatchService.json``. Each model field
carries its wire name (camelCase) and its TypeSpec visibility; only fields visible on ``create`` are kept, so
read-only properties (``state``, ``currentDedicatedNodes``, ...) are not part of a template.

Differences from the create body, because a template has no owned fields (rules/pool_template.py OWNED_FIELDS):
``id`` is not required at the top, and ``imageReference`` / ``nodeAgentSKUId`` are not required in
``virtualMachineConfiguration`` (the pipeline sets them; setting them is refused by the owned-field check, which
names the path).

Usage (a dev tool; it imports azure.batch, so it never runs at DAG parse)::

    .venv/bin/python tools/derive_batch_pool_schema.py > plugins/batch_images/rules/batch_pool_schema.json
"""

from __future__ import annotations

import datetime
import enum
import json
import sys
import types
import typing

import azure.batch.models as models
import azure.batch.models._models as model_module
from azure.batch._version import VERSION as SDK_VERSION

ROOT = "BatchPoolCreateOptions"
API_VERSION = "2025-06-01"
SPEC = ("Azure/azure-rest-api-specs specification/batch/Azure.Batch (TypeSpec; emitted as "
        "specification/batch/data-plane/Batch/stable/2025-06-01/BatchService.json)")
# sdk/batch/azure-batch/tsp-location.yaml of azure-sdk-for-python for azure-batch 15.1.0
SPEC_COMMIT = "ff4c7c1aaff6fc0bd09164669bbffac45e5f6622"
NOT_REQUIRED_IN_TEMPLATE = {ROOT: {"id"}, "VirtualMachineConfiguration": {"imageReference", "nodeAgentSKUId"}}
DURATION = {"type": "string", "pattern": r"^-?P(?!$)([0-9.]+Y)?([0-9.]+M)?([0-9.]+W)?([0-9.]+D)?"
                                         r"(T(?=[0-9])([0-9.]+H)?([0-9.]+M)?([0-9.]+S)?)?$",
            "description": "an ISO 8601 duration, e.g. PT15M"}


def _hints(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls, globalns={**vars(model_module), "_models": models})


def _schema(hint: typing.Any, defs: dict) -> dict:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums:  # Union[str, SomeEnum]: Batch's known values
            return {"type": "string", "enum": [e.value for e in enums[0]]}
        return _schema(args[0], defs) if len(args) == 1 else {"anyOf": [_schema(a, defs) for a in args]}
    if origin is list:
        return {"type": "array", "items": _schema(typing.get_args(hint)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(typing.get_args(hint)[1], defs)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [e.value for e in hint]}
    simple = {str: {"type": "string"}, bool: {"type": "boolean"}, int: {"type": "integer"},
              float: {"type": "number"}, datetime.timedelta: DURATION,
              datetime.datetime: {"type": "string", "format": "date-time"}}
    if hint in simple:
        return dict(simple[hint])
    if isinstance(hint, type) and issubclass(hint, models._models._Model):  # noqa: SLF001
        _model(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    raise TypeError(f"no JSON Schema for {hint!r}")


def _model(cls: type, defs: dict) -> None:
    name = cls.__name__
    if name in defs:
        return
    defs[name] = {}  # placeholder: recursive models
    props, required = {}, []
    hints = _hints(cls)
    for attr, field in vars(cls).items():
        if type(field).__name__ != "_RestField" or "create" not in (field._visibility or []):  # noqa: SLF001
            continue
        wire = field._rest_name_input or attr  # noqa: SLF001
        hint = hints[attr]
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
        props[wire] = _schema(hint, defs)
        if not optional and wire not in NOT_REQUIRED_IN_TEMPLATE.get(name, ()):
            required.append(wire)
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    defs[name] = {"type": "object", "description": doc, "properties": props, "additionalProperties": False,
                  **({"required": required} if required else {})}


def derive() -> dict:
    defs: dict = {}
    _model(getattr(models, ROOT), defs)
    root = defs.pop(ROOT)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": (f"Derived by tools/derive_batch_pool_schema.py from {ROOT} and the models it references, as "
                     f"azure-batch {SDK_VERSION} declares them (generated from {SPEC} at commit {SPEC_COMMIT}); "
                     f"Batch data plane api-version {API_VERSION}. Only create-visible fields. Owned fields (id, "
                     "imageReference, nodeAgentSKUId) are not required here: the pipeline sets them."),
        "title": "Batch pool template (the pool create body without the pipeline's owned fields)",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


if __name__ == "__main__":
    json.dump(derive(), sys.stdout, indent=1)
    sys.stdout.write("\n")
