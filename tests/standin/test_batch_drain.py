"""What a roll does to a serving pool, through azure-batch 15: a lease in pool metadata taken with an
ETag-conditional update, node removal and resize-to-zero with each nodeDeallocationOption while users' tasks
run, and an in-place image change (empty the pool, PATCH the image, grow it back) seen per node."""
from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError

from batch_helpers import POLL, build_image_version, error_values, pool_options, slow, wait_pool


@pytest.fixture
def image(standin):
    return build_image_version(standin)


@pytest.fixture
def pool(standin, image):
    client = standin.batch()
    client.create_pool(pool_options("serving", image.id, nodes=2))
    wait_pool(client, "serving")
    return "serving"


def _run(standin, client, pool: str, job: str, seconds: int) -> tuple[str, str]:
    """One `sleep seconds` task on the pool, running; returns (task id, node id)."""
    client.create_job(bm.BatchJobCreateOptions(id=job, pool_info=bm.BatchPoolInfo(pool_id=pool)))
    client.create_task(job, bm.BatchTaskCreateOptions(id="work", command_line=f"/bin/bash -c 'sleep {seconds}'"))
    standin.control.advance(10)
    task = client.get_task(job, "work")
    assert task.state == "running"
    return "work", task.node_info.node_id


def test_metadata_lease_with_if_match_lets_only_one_writer_win(standin, pool):
    client = standin.batch()
    seen = client.get_pool(pool).etag
    lease = [bm.BatchMetadataItem(name="batch-images-lease", value="run-a|2026-12-01T00:00:00Z")]
    client.update_pool(pool, bm.BatchPoolUpdateOptions(metadata=lease), etag=seen,
                       match_condition=MatchConditions.IfNotModified)
    # a second run read the same ETag before the first wrote: its conditional write is refused
    with pytest.raises(ResourceModifiedError) as err:
        client.update_pool(pool, bm.BatchPoolUpdateOptions(metadata=[
            bm.BatchMetadataItem(name="batch-images-lease", value="run-b|2026-12-01T00:00:00Z")]),
            etag=seen, match_condition=MatchConditions.IfNotModified)
    assert err.value.status_code == 412 and err.value.error.code == "ConditionNotMet"
    current = client.get_pool(pool)
    assert [(m.name, m.value) for m in current.metadata] == [(lease[0].name, lease[0].value)]
    assert current.etag != seen
    # metadata changes while nodes run (no zero-node rule for it)
    assert current.current_dedicated_nodes == 2


def test_resize_to_zero_with_taskcompletion_waits_for_the_running_task(standin, pool):
    client = standin.batch()
    with slow(standin):
        tid, node = _run(standin, client, pool, "drain", 600)
        client.begin_resize_pool(pool, bm.BatchPoolResizeOptions(
            target_dedicated_nodes=0, node_deallocation_option="taskcompletion"))
        standin.control.advance(300)
        p = client.get_pool(pool)
        assert p.allocation_state == "resizing"                     # the task still runs
        assert {n.id: n.state for n in client.list_nodes(pool)} == {node: "running"}   # the idle one is gone
        client.create_task("drain", bm.BatchTaskCreateOptions(id="late", command_line="echo late"))
        standin.control.advance(400)
        task, late = client.get_task("drain", tid), client.get_task("drain", "late")
    assert task.state == "completed" and task.execution_info.exit_code == 0
    assert task.execution_info.requeue_count == 0                   # finished where it ran, never killed
    assert late.state == "active"                                   # no new task went to a leaving node
    p = wait_pool(client, pool)
    assert (p.allocation_state, p.current_dedicated_nodes, p.target_dedicated_nodes) == ("steady", 0, 0)
    client.begin_delete_pool(pool, polling_interval=POLL).result()
    assert pool not in [p.id for p in client.list_pools()]


def test_remove_nodes_with_terminate_ends_the_task_and_requeue_reruns_it(standin, pool):
    client = standin.batch()
    with slow(standin):
        tid, node = _run(standin, client, pool, "rm", 600)
        client.begin_remove_nodes(pool, bm.BatchNodeRemoveOptions(
            node_ids=[node], node_deallocation_option="terminate"))
        standin.control.advance(2)
        task = client.get_task("rm", tid)
    assert task.state == "completed" and task.execution_info.failure_info.code == "TaskEnded"
    assert task.execution_info.requeue_count == 0
    p = wait_pool(client, pool)
    assert p.current_dedicated_nodes == 1 and p.target_dedicated_nodes == 1


def test_remove_nodes_rules(standin, pool):
    client = standin.batch()
    nodes = [n.id for n in client.list_nodes(pool)]
    with pytest.raises(HttpResponseError) as err:
        client.begin_remove_nodes(pool, bm.BatchNodeRemoveOptions(node_ids=nodes, node_deallocation_option="later"))
    assert err.value.status_code == 400 and error_values(err.value)["PropertyName"] == "nodeDeallocationOption"
    with pytest.raises(HttpResponseError) as err:
        client.begin_remove_nodes(pool, bm.BatchNodeRemoveOptions(node_ids=nodes * 51))   # 102 ids
    assert err.value.status_code == 400 and error_values(err.value)["PropertyName"] == "nodeList"
    with slow(standin):
        client.begin_resize_pool(pool, bm.BatchPoolResizeOptions(target_dedicated_nodes=3))
        with pytest.raises(HttpResponseError) as err:   # only a steady pool
            client.begin_remove_nodes(pool, bm.BatchNodeRemoveOptions(node_ids=nodes[:1]))
    assert err.value.status_code == 409 and err.value.error.code == "PoolBeingResized"
    assert len(list(client.list_nodes(pool))) >= 2                   # nothing was removed


def test_in_place_image_change_empties_patches_and_regrows_the_same_pool(standin, pool, image):
    client = standin.batch()
    v2 = build_image_version(standin, tag="v2", version="2.0.0")
    to_v2 = bm.VirtualMachineConfiguration(
        image_reference=bm.BatchVmImageReference(virtual_machine_image_id=v2.id), node_agent_sku_id="batch.node.ubuntu 22.04")
    with pytest.raises(HttpResponseError) as err:      # not while it has nodes
        client.update_pool(pool, bm.BatchPoolUpdateOptions(virtual_machine_configuration=to_v2))
    assert err.value.status_code == 409 and err.value.error.code == "OperationInvalidForCurrentState"
    client.begin_resize_pool(pool, bm.BatchPoolResizeOptions(target_dedicated_nodes=0,
                                                            node_deallocation_option="taskcompletion"),
                             polling_interval=POLL).result()
    wait_pool(client, pool)
    client.update_pool(pool, bm.BatchPoolUpdateOptions(virtual_machine_configuration=to_v2))
    client.begin_resize_pool(pool, bm.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=POLL).result()
    wait_pool(client, pool)
    nodes = list(client.list_nodes(pool))
    assert len(nodes) == 2
    assert {n.virtual_machine_info.image_reference.exact_version for n in nodes} == {"2.0.0"}
    assert {n.virtual_machine_info.image_reference.virtual_machine_image_id for n in nodes} == {v2.id}
    assert client.get_pool(pool).virtual_machine_configuration.image_reference.virtual_machine_image_id == v2.id
