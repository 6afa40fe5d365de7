"""Compute nodes of stand-in pools through azure-batch 15 (sync and aio): paging of big pools, node
counts, reboot, remove, stop resize, and the Shared Key refusal for gallery-image pools."""
from __future__ import annotations

import asyncio
import datetime

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError

from batch_helpers import POLL, build_image_version, error_values, pool_options, set_quotas, slow, wait_pool


@pytest.fixture
def image(standin):
    return build_image_version(standin)


def _ops(standin, since: int) -> dict:
    return standin.control.requests(since=since)["counts"]


def test_node_list_pages_a_2500_node_pool_and_nodecounts_is_one_call(standin, image):
    set_quotas(standin, dedicatedCoreQuota=6000,
               dedicatedCoreQuotaPerVMFamily=[{"name": "standardDSv3Family", "coreQuota": 6000}])
    client = standin.batch()
    # 15 minutes per 1000 nodes of a custom image
    client.create_pool(pool_options("big", image.id, nodes=2500, resize_timeout=datetime.timedelta(minutes=45)))
    standin.control.advance(3600)
    pool = client.get_pool("big")
    assert pool.allocation_state == "steady" and pool.current_dedicated_nodes == 2500 and not pool.resize_errors

    since = standin.control.requests()["last_id"]
    nodes = list(client.list_nodes("big"))
    assert len(nodes) == 2500 and len({n.id for n in nodes}) == 2500
    assert {n.state for n in nodes} == {"idle"}
    assert _ops(standin, since)["batch:ComputeNode_List"] == 3          # default page: 1000

    since = standin.control.requests()["last_id"]
    paged = client.list_nodes("big", max_results=400)
    first_page = next(paged.by_page())
    assert len(list(first_page)) == 400
    assert _ops(standin, since)["batch:ComputeNode_List"] == 1

    since = standin.control.requests()["last_id"]
    [counts] = list(client.list_pool_node_counts())
    assert counts.dedicated.idle == 2500 and counts.dedicated.total == 2500
    assert _ops(standin, since) == {"batch:Account_ListPoolNodeCounts": 1}

    some = list(client.list_nodes("big", filter="state eq 'idle'", max_results=1000))
    assert len(some) == 2500
    assert list(client.list_nodes("big", filter="state eq 'starttaskfailed'")) == []


def test_nodes_walk_through_their_states_and_counts_follow(standin, image):
    client = standin.batch()
    seen: set[str] = set()
    with slow(standin):
        client.create_pool(pool_options("walk", image.id, nodes=6))
        for _ in range(300):
            nodes = list(client.list_nodes("walk"))
            seen |= {n.state for n in nodes}
            if len(nodes) == 6 and {n.state for n in nodes} == {"idle"}:
                break
            standin.control.advance(8)
    assert {"creating", "starting", "waitingforstarttask", "idle"} <= seen


def test_reboot_and_remove_nodes(standin, image):
    standin.control.add_fault("start_task_failed", match={"pool_regex": "^rr$"}, nodes=1)
    client = standin.batch()
    client.create_pool(pool_options("rr", image.id, nodes=4))
    wait_pool(client, "rr")
    nodes = list(client.list_nodes("rr"))
    failed = next(n for n in nodes if n.state == "starttaskfailed")
    idle = [n for n in nodes if n.state == "idle"]

    # a reboot re-runs the start task: here it succeeds
    # azure-batch 15.1.0 cannot send a reboot without options (it serializes a None content-type), and
    # its options model is not exported: the JSON body it documents goes as a plain mapping
    requeue = {"nodeRebootOption": "requeue"}
    with slow(standin):
        poller = client.begin_reboot_node("rr", failed.id, requeue, polling_interval=POLL)
        assert client.get_node("rr", failed.id).state == "rebooting"
        with pytest.raises(HttpResponseError) as err:
            client.begin_reboot_node("rr", failed.id, requeue)
        assert err.value.status_code == 409 and err.value.error.code == "NodeBeingRebooted"
        standin.control.advance(300)
        poller.result()
    healed = client.get_node("rr", failed.id)
    assert healed.state == "idle" and healed.start_task_info.result == "success"
    assert healed.last_boot_time > failed.last_boot_time

    client.begin_remove_nodes("rr", bm.BatchNodeRemoveOptions(node_ids=[idle[0].id, idle[1].id]),
                              polling_interval=POLL).result()
    pool = client.get_pool("rr")
    assert pool.allocation_state == "steady" and pool.current_dedicated_nodes == 2
    assert pool.target_dedicated_nodes == 2
    left = {n.id for n in client.list_nodes("rr")}
    assert idle[0].id not in left and idle[1].id not in left and failed.id in left

    with pytest.raises(HttpResponseError) as err:
        client.get_node("rr", idle[0].id)
    assert err.value.status_code == 404 and err.value.error.code == "NodeNotFound"
    with pytest.raises(HttpResponseError) as err:
        client.begin_remove_nodes("rr", bm.BatchNodeRemoveOptions(node_ids=["tvmps_" + "0" * 64 + "_d"]))
    assert err.value.status_code == 400 and error_values(err.value)["PropertyName"] == "nodeList"


def test_a_sticky_start_task_failure_survives_a_reboot(standin, image):
    """`sticky: true`: the start task fails again after a reboot (a broken script, not a flaky node)."""
    standin.control.add_fault("start_task_failed", match={"pool_regex": "^sticky$"}, nodes=1, sticky=True)
    client = standin.batch()
    client.create_pool(pool_options("sticky", image.id, nodes=2))
    wait_pool(client, "sticky")
    failed = next(n for n in client.list_nodes("sticky") if n.state == "starttaskfailed")
    with slow(standin):
        poller = client.begin_reboot_node("sticky", failed.id, {"nodeRebootOption": "requeue"},
                                          polling_interval=POLL)
        standin.control.advance(300)
        poller.result()
    again = client.get_node("sticky", failed.id)
    assert again.state == "starttaskfailed" and again.last_boot_time > failed.last_boot_time


def test_stop_resize_keeps_the_nodes_allocated_so_far(standin, image):
    set_quotas(standin, dedicatedCoreQuota=2000,
               dedicatedCoreQuotaPerVMFamily=[{"name": "standardDSv3Family", "coreQuota": 2000}])
    client = standin.batch()
    with slow(standin):
        client.create_pool(pool_options("stopme", image.id, nodes=200,
                                        resize_timeout=datetime.timedelta(minutes=30)))
        standin.control.advance(200)
        poller = client.begin_stop_pool_resize("stopme", polling_interval=POLL)
        assert client.get_pool("stopme").allocation_state == "stopping"
        standin.control.advance(60)
        poller.result()
    pool = client.get_pool("stopme")
    assert pool.allocation_state == "steady" and 0 < pool.current_dedicated_nodes < 200
    assert pool.target_dedicated_nodes == 200
    with pytest.raises(HttpResponseError) as err:
        client.begin_stop_pool_resize("stopme")
    assert err.value.status_code == 409 and err.value.error.code == "OperationInvalidForCurrentState"


def test_low_priority_nodes_are_counted_apart(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("lp", image.id, nodes=1, target_low_priority_nodes=2))
    pool = wait_pool(client, "lp")
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 2)
    [counts] = list(client.list_pool_node_counts())
    assert (counts.dedicated.total, counts.low_priority.total) == (1, 2)
    assert sorted(n.is_dedicated for n in client.list_nodes("lp")) == [False, False, True]


def test_async_client_creates_and_watches_a_pool(standin, image):
    async def run():
        async with standin.batch(aio=True) as client:
            await client.create_pool(pool_options("aio-pool", image.id, nodes=3))
            for _ in range(400):
                pool = await client.get_pool("aio-pool")
                nodes = [n async for n in client.list_nodes("aio-pool")]
                if pool.allocation_state == "steady" and len(nodes) == 3 and {n.state for n in nodes} == {"idle"}:
                    break
                await asyncio.sleep(0.05)
            counts = [c async for c in client.list_pool_node_counts()]
            poller = await client.begin_resize_pool("aio-pool", bm.BatchPoolResizeOptions(target_dedicated_nodes=1),
                                                    polling_interval=POLL)
            await poller.result()
            resized = await client.get_pool("aio-pool")
            return pool, nodes, counts, resized

    pool, nodes, counts, resized = asyncio.run(run())
    assert pool.current_dedicated_nodes == 3 and {n.state for n in nodes} == {"idle"}
    assert counts[0].dedicated.idle == 3
    assert resized.current_dedicated_nodes == 1 and resized.allocation_state == "steady"


# --- Shared Key --------------------------------------------------------------------------------------

def test_shared_key_is_refused_for_gallery_image_pools(standin, image):
    entra = standin.batch()
    entra.create_pool(pool_options("sig-pool", image.id, nodes=1))
    entra.create_pool(pool_options("mkt-pool", nodes=3, marketplace=True))
    wait_pool(entra, "mkt-pool", settled=False)
    shared = standin.batch(shared_key=True)

    # a correctly signed Shared Key request works where no gallery image is involved ...
    assert {p.id for p in shared.list_pools()} == {"sig-pool", "mkt-pool"}
    assert shared.get_pool("mkt-pool").id == "mkt-pool"
    since = standin.control.requests()["last_id"]
    assert len(list(shared.list_nodes("mkt-pool", max_results=1))) == 3    # signed nextLink requests too
    assert _ops(standin, since)["batch:ComputeNode_List"] == 3
    assert list(shared.list_supported_images())

    # ... and is refused for anything that creates or touches a gallery-image pool
    with pytest.raises(HttpResponseError) as err:
        shared.create_pool(pool_options("sig-pool-2", image.id))
    assert err.value.status_code == 403 and err.value.error.code == "AuthenticationFailed"
    detail = error_values(err.value)["AuthenticationErrorDetail"]
    assert detail == ("The specified type of authentication SharedKey is not allowed when external resources of "
                      "type Compute are linked.")
    assert "SharedKey" in str(err.value)
    for call in (lambda: shared.get_pool("sig-pool"), lambda: list(shared.list_nodes("sig-pool")),
                 lambda: shared.begin_delete_pool("sig-pool"),
                 lambda: shared.begin_resize_pool("sig-pool", bm.BatchPoolResizeOptions(target_dedicated_nodes=2))):
        with pytest.raises(HttpResponseError) as err:
            call()
        assert err.value.status_code == 403 and "SharedKey" in str(err.value)
    with pytest.raises(HttpResponseError):
        shared.get_pool("sig-pool-2")
    assert entra.get_pool("sig-pool").state == "active"


def test_shared_key_with_a_wrong_key_fails_authentication(standin):
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    import base64

    ep = standin.endpoints
    name = ep["demo"]["batch_account"]
    acct = ep["batch_accounts"][name]
    bad = BatchClient(acct["endpoint"], AzureNamedKeyCredential(name, base64.b64encode(b"k" * 64).decode()),
                      connection_verify=ep["ca_bundle"])
    with pytest.raises(HttpResponseError) as err:
        list(bad.list_pools())
    assert err.value.status_code == 403 and err.value.error.code == "AuthenticationFailed"


def test_spot_nodes_preempted_by_a_fault_count_as_low_priority(standin, image):
    client = standin.batch()
    standin.control.add_fault("node_preempted", match={"pool_regex": "^spot$"}, nodes=1)
    client.create_pool(pool_options("spot", image.id, nodes=2, target_low_priority_nodes=3))
    wait_pool(client, "spot")
    standin.control.advance(600)
    pool = client.get_pool("spot")
    # Batch counts a preempted Spot node in currentLowPriorityNodes and under lowPriority in /nodecounts
    assert (pool.allocation_state, pool.current_dedicated_nodes, pool.current_low_priority_nodes) == ("steady", 2, 3)
    [counts] = list(client.list_pool_node_counts())
    assert (counts.dedicated.idle, counts.dedicated.preempted) == (2, 0)
    assert (counts.low_priority.idle, counts.low_priority.preempted, counts.low_priority.total) == (2, 1, 3)
    [node] = client.list_nodes("spot", filter="state eq 'preempted'")
    assert node.is_dedicated is False
    assert [f["fired"] for f in standin.control.faults()] == [1]
