"""The demo pipeline's pool (include/pipelines/demo.yaml, a Batch REST template) written with the short fields.

Tests and benchmarks that size a pool themselves (``target_dedicated_nodes``: 1, 2, 3000) or read the short fields
back use this pool: the demo's template is autoscaled (its formula holds at least 4 nodes) and sits in a /24 subnet,
so it cannot take a fixed node count. Stdlib only.
"""
from __future__ import annotations

import copy

# What the demo's pool was before it became a template: the same VM size, node count and start task.
SHORT_FIELDS = {"vm_size": "Standard_D2s_v3", "target_dedicated_nodes": 4, "target_low_priority_nodes": 0,
                "resize_timeout_minutes": None,
                "start_task": {"command_line": "/bin/bash -c 'echo ready'", "wait_for_success": True,
                               "max_task_retry_count": 1, "elevated": True}}
POOL_SOURCES = ("template", "template_file", "adopt_pool_id", "canary_nodes")


def short_field_pool(pool: dict, **fields) -> dict:
    """``pool`` (a ``pools`` entry as a dict) with its template / template_file / adopt_pool_id / canary_nodes
    replaced by :data:`SHORT_FIELDS`, then ``fields`` applied (e.g. ``target_dedicated_nodes=2``). A new dict."""
    out = {k: copy.deepcopy(v) for k, v in pool.items() if k not in POOL_SOURCES}
    out.update(copy.deepcopy(SHORT_FIELDS))
    out.update(fields)
    return out
