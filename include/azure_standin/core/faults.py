"""Injected faults: specs set through the control API, consumed by middleware and backends."""
from __future__ import annotations

import re
import uuid

KINDS = {"http", "lro_failed", "replication_failed", "resize_error", "start_task_failed", "node_unusable"}
KINDS |= {"node_preempted"}  # Spot/low-priority preemption (backends/batch_nodes.py)
KINDS |= {"state_spelling", "not_found_after_create"}  # ARM GETs (responses/arm.py)
KINDS |= {"build_vm_never_stops"}  # a build VM's custom-data script hangs: the guest never powers off (vms.py)
KINDS |= {"task_failed"}  # a Batch task run on a matching node exits non-zero (backends/batch_jobs.py)


def _matches(match: dict, attrs: dict) -> bool:
    for key, want in (match or {}).items():
        if want in (None, ""):
            continue
        have = attrs.get(key.removesuffix("_regex"))
        if key.endswith("_regex"):
            if have is None or not re.search(want, str(have), re.IGNORECASE):
                return False
        elif have is None or str(have).lower() != str(want).lower():
            return False
    return True


class Faults:
    def __init__(self, store):
        self.store = store

    def add(self, spec: dict) -> dict:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {sorted(KINDS)}, got {kind!r}")
        spec = dict(spec)
        spec.setdefault("count", 1)
        spec.setdefault("match", {})
        spec["id"] = spec.get("id") or uuid.uuid4().hex[:12]
        spec["fired"] = 0
        with self.store.lock:
            self.store.put("fault", spec["id"], spec)
        return spec

    def list(self) -> list[dict]:
        return self.store.list("fault")

    def clear(self) -> None:
        with self.store.lock:
            for spec in self.store.list("fault"):
                self.store.delete("fault", spec["id"])

    def take(self, kind: str, **attrs) -> dict | None:
        """The first active fault of `kind` matching attrs, with one of its counts consumed.

        count -1 means "every time until cleared"; a spec with "skip": N lets the first N matches through.
        """
        with self.store.lock:
            for spec in self.store.list("fault"):
                if spec["kind"] != kind or spec["count"] == 0 or not _matches(spec.get("match"), attrs):
                    continue
                if spec.get("skip", 0) > 0:
                    spec["skip"] -= 1
                    self.store.put("fault", spec["id"], spec)
                    continue
                if spec["count"] > 0:
                    spec["count"] -= 1
                spec["fired"] += 1
                self.store.put("fault", spec["id"], spec)
                return spec
        return None
