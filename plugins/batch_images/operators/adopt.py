"""Adopting an existing pool (``adopt_pool_id``): it becomes its logical pool's first serving pool.

Only the pool's metadata changes (``PATCH /pools/{id}`` of the whole metadata list, the pool's own entries kept,
conditional on its ETag): ``managed-by``, ``dag_id``, ``run_id``, ``logical-pool``, ``role: serving`` and
``serving-since`` - the entries :mod:`batch_images.rules.roll` recognises a serving pool by. It has no
``image-version`` (it runs no version of this pipeline), which sorts before every version, so plan_roll rolls it to
the run's version: the new pool is the adopted pool's spec (preflight's template) with the owned fields changed, and
the adopted pool is drained and deleted like any old serving pool.

Runs in ``pool_specs``, after the dry-run gate (a dry run writes nothing) and before ``plan_roll``. A logical pool that
already has a serving pool (a later run, or a retry) is left alone.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from batch_images.rules import naming
from batch_images.rules import roll as roll_rules
from batch_images.rules.plan import PoolSpec


def adoption_metadata(current: dict[str, str], logical_pool: str, dag_id: str | None, run_id: str | None,
                      now: datetime) -> dict[str, str]:
    """The adopted pool's metadata: its own entries plus the pipeline's serving-pool entries."""
    return roll_rules.metadata_update(current, {
        naming.TAG_MANAGED_BY: naming.MANAGED_BY, naming.TAG_DAG_ID: dag_id, naming.TAG_RUN_ID: run_id,
        naming.TAG_LOGICAL_POOL: logical_pool, naming.TAG_ROLE: naming.ROLE_SERVING,
        naming.TAG_SERVING_SINCE: roll_rules.iso(now)})


def adopt_pools(specs: list[dict], dag_id: str | None, run_id: str | None, log: Any) -> list[str]:
    """Make each spec's ``adopt_pool_id`` pool serving when its logical pool has no serving pool; the ids adopted."""
    from batch_images.hooks.batch import BatchPoolHook

    adopted = []
    for data in specs:
        spec = PoolSpec.from_dict(data)
        if spec.adopt_pool_id is None or not spec.logical_pool:
            continue
        hook = BatchPoolHook(spec.batch_conn_id)
        try:
            listing = hook.list_pool_listing()
            if roll_rules.serving_pool(roll_rules.physical_pools(listing, spec.logical_pool)) is not None:
                continue
            pool = hook.pool_listing(spec.adopt_pool_id)
            if pool is None:
                continue  # preflight refused a missing one; gone since: plan_roll makes the first pool
            metadata = adoption_metadata(pool.get("metadata") or {}, spec.logical_pool, dag_id, run_id,
                                         datetime.now(timezone.utc))
            hook.update_pool_metadata(spec.adopt_pool_id, metadata, pool.get("etag"))
            log.info("Adopted pool %s as the serving pool of logical pool %s (metadata only)", spec.adopt_pool_id,
                     spec.logical_pool)
            adopted.append(spec.adopt_pool_id)
        finally:
            hook.close_sync()
    return adopted
