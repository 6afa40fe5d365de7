"""Which physical pool serves a logical pool, read from Batch pool metadata alone (no Airflow database).

Users who submit jobs by pool id ask this before each submission (or schedule their DAGs on the roll's Asset
``batch-pool://<account>/<logical pool>``, whose event extra carries the same answer)::

    from azure.batch import BatchClient
    from batch_images.pool_registry import serving_pool

    pool = serving_pool(BatchClient(account_url, credential), "ubuntu2204")
    if pool:
        print(pool.pool_id, pool.version)        # ubuntu2204-2026-1126-0 2026.1126.0

The same with the Azure CLI (after ``az batch account login``)::

    az batch pool list --query "[?metadata[?name=='logical-pool' && value=='ubuntu2204']] | [?metadata[?name=='role' && value=='serving']].id" -o tsv

Metadata names: :mod:`batch_images.rules.naming` (``logical-pool``, ``image-version``, ``role``, ``serving-since``);
the rules: :mod:`batch_images.rules.roll`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from batch_images.rules import roll


class ServingPool(NamedTuple):
    logical_pool: str
    pool_id: str
    version: str | None
    serving_since: str | None
    image_version_id: str | None


def _listing(client: Any) -> list[dict]:
    from batch_images.hooks.batch import pool_listing

    select = ["id", "state", "allocationState", "eTag", "metadata", "virtualMachineConfiguration",
              "currentDedicatedNodes", "currentLowPriorityNodes", "targetDedicatedNodes", "targetLowPriorityNodes"]
    return [pool_listing(p) for p in client.list_pools(select=select)]


def _answer(listing: list[dict], logical_pool: str) -> ServingPool | None:
    serving = roll.serving_pool(roll.physical_pools(listing, logical_pool))
    if serving is None:
        return None
    image = next((e.get("image_id") for e in listing if e.get("id") == serving.pool_id), None)
    return ServingPool(logical_pool, serving.pool_id, serving.version, serving.serving_since, image)


def serving_pool(client: Any, logical_pool: str) -> ServingPool | None:
    """The pool serving ``logical_pool`` in the account of ``client`` (an ``azure.batch.BatchClient``), or None
    when it has none yet (its first run has not finished). One paged ``GET /pools`` with ``$select``."""
    return _answer(_listing(client), logical_pool)


def serving_pool_from_connection(logical_pool: str, batch_conn_id: str = "azure_batch_default") -> ServingPool | None:
    """The same through an Airflow ``azure_batch`` connection (what a task in a user's DAG would call)."""
    from batch_images.hooks.batch import BatchPoolHook

    hook = BatchPoolHook(batch_conn_id)
    try:
        return _answer(hook.list_pool_listing(), logical_pool)
    finally:
        hook.close_sync()
