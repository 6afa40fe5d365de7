"""Benchmark 1, steady-state poll cost: what one poll of an all-idle pool costs, ours against the provider.

Ours: the ``batch_pool_steady`` waiter's probe (:func:`batch_images.triggers.waiters.batch.read_pool_state`,
the sync twin of the trigger's probe: ``GET /pools/{id}`` + ``GET /nodecounts``) and its verdict.
The provider: ``AzureBatchHook.wait_for_all_node_state`` of apache-airflow-providers-microsoft-azure, its own
code unchanged. On an all-idle pool its loop returns on the first pass (``get_pool`` + every page of
``list_nodes``) - one poll. The subclass below changes only where its client comes from: the provider builds
a ``BatchClient`` from the connection's shared key or DefaultAzureCredential and no CA bundle, so it is given
the client our :class:`~batch_images.hooks.batch.BatchPoolHook` builds (same account, Entra ID credential,
the stand-in's CA) - the same transport for both sides.

Requests are counted by the stand-in's request log (``/_control/requests``), response bytes (bodies) by an
azure-core ``raw_response_hook`` on the client, client CPU as this process's CPU time around the call.
"""
from __future__ import annotations

import time

from benchmarks.common import Bench, StandIn, WireMeter, median, ratio, verdict

KEY = "poll_cost"
POOL_PREFIX = "bench-poll"


def provider_hook_class():
    from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook

    class StandInAzureBatchHook(AzureBatchHook):
        """The provider's hook with its client swapped for one built by BatchPoolHook (nothing else changed)."""

        def __init__(self, azure_batch_conn_id: str = "azure_batch_default", client_options: dict | None = None):
            super().__init__(azure_batch_conn_id=azure_batch_conn_id)
            self._client_options = client_options

        def get_conn(self):
            from batch_images.hooks.batch import BatchPoolHook

            return BatchPoolHook(self.conn_id, client_options=self._client_options).get_conn()

    return StandInAzureBatchHook


def measure(call, standin: StandIn, meter: WireMeter, polls: int) -> dict:
    """Run ``call()`` ``polls`` times; per poll: Batch requests (stand-in log), body bytes, CPU s, wall s."""
    reqs, sizes, cpus, walls = [], [], [], []
    for _ in range(polls):
        since = standin.last_request_id()
        n0, b0 = meter.snapshot()
        c0, w0 = time.process_time(), time.perf_counter()
        call()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
        n1, b1 = meter.snapshot()
        log = standin.requests_since(since)
        reqs.append(log["by_family"].get("batch", 0))
        sizes.append(b1 - b0)
        assert n1 - n0 == reqs[-1], f"client saw {n1 - n0} responses, stand-in logged {reqs[-1]} Batch requests"
    return {"requests": median(reqs), "bytes": median(sizes), "cpu_s": median(cpus), "wall_s": median(walls),
            "polls": polls}


def run(standin: StandIn, sizes: tuple[int, ...] = (100, 1000, 10_000), polls: int = 5,
        provider_polls: int = 3) -> Bench:
    from azure.batch.models import BatchNodeState

    from batch_images.hooks.batch import BatchPoolHook
    from batch_images.triggers.waiters.batch import classify, read_pool_state

    bench = Bench(
        KEY, "Steady-state poll cost",
        measures="one poll of an all-idle pool of N nodes: Batch requests, response body bytes, client CPU",
        unit="requests / bytes / CPU seconds per poll (median of polls)",
        ratio_reads="provider / ours: how many times more the provider's poll costs (higher is better for ours)",
        reference="provider AzureBatchHook.wait_for_all_node_state (apache-airflow-providers-microsoft-azure)",
    )
    standin.reset(scale=3000)
    standin.raise_quota(cores=2 * sum(sizes) + 100)  # every size's pool at once (they are kept)
    standin.use_connections()
    provider_cls = provider_hook_class()
    detail = {}
    for n in sizes:
        pool_id = f"{POOL_PREFIX}-{n}"
        standin.create_marketplace_pool(pool_id, n)
        standin.settle(pool_id, n)

        ours_meter, theirs_meter = WireMeter(), WireMeter()
        hook = BatchPoolHook("azure_batch_default", client_options=ours_meter.client_options)
        state = read_pool_state(hook, pool_id, target_dedicated_nodes=n)  # warm-up: token, TLS session
        status, _reason, message = classify(state)
        if status != "success":
            raise RuntimeError(f"pool {pool_id} is not steady for our waiter: {message}")
        ours = measure(lambda: read_pool_state(hook, pool_id, target_dedicated_nodes=n), standin, ours_meter, polls)

        provider = provider_cls("azure_batch_default", client_options=theirs_meter.client_options)
        provider.connection.get_pool(pool_id)  # warm-up: token, TLS session (not counted below)
        result = {}

        def provider_poll():
            result["nodes"] = provider.wait_for_all_node_state(pool_id, {BatchNodeState.IDLE})

        theirs = measure(provider_poll, standin, theirs_meter, provider_polls if n >= 10_000 else polls)
        if len(result["nodes"]) != n:
            raise RuntimeError(f"the provider returned {len(result['nodes'])} nodes, expected {n}")
        if theirs["wall_s"] >= 10:
            bench.notes.append(f"the provider's call took {theirs['wall_s']:.1f} s at {n} nodes: it slept "
                               "(the pool was not all idle), so its figure holds more than one poll")
        hook.close_sync()
        detail[n] = {"ours": ours, "provider": theirs}

        bench.add(f"requests/poll @ {n:,} nodes", "requests", ours["requests"], theirs["requests"],
                  ratio(theirs["requests"], ours["requests"]), "ours <= 2", verdict(ours["requests"] <= 2))
        byte_target = n >= 10_000
        bench.add(f"response bytes/poll @ {n:,} nodes", "bytes", ours["bytes"], theirs["bytes"],
                  ratio(theirs["bytes"], ours["bytes"]), ">= 20x fewer than provider" if byte_target else "",
                  verdict(ratio(theirs["bytes"], ours["bytes"]) >= 20) if byte_target else "info")
        bench.add(f"client CPU s/poll @ {n:,} nodes", "CPU s", ours["cpu_s"], theirs["cpu_s"],
                  ratio(theirs["cpu_s"], ours["cpu_s"]))
    bench.notes.append("the provider's loop lists every node on every pass and then sleeps 10 s in the worker, "
                       "with no timeout; on an all-idle pool it returns after one pass, which is what is timed")
    bench.detail = {str(k): v for k, v in detail.items()}
    return bench
