"""pool_registry: which physical pool serves a logical pool, answered from Batch pool metadata alone (no Airflow
database, no XCom) - through azure-batch's BatchClient and through an Airflow connection, against the stand-in."""
from __future__ import annotations

from azure.batch import models as bm

from _batch_common import set_connections
from batch_images import pool_registry
from batch_images.rules import naming

UBUNTU = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
          "version": "latest"}


def make_pool(batch, pool_id: str, **metadata: str) -> None:
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=0,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(**UBUNTU), node_agent_sku_id="batch.node.ubuntu 22.04"),
        metadata=[bm.BatchMetadataItem(name=k.replace("_", "-"), value=v) for k, v in metadata.items()]))


def roles(logical: str, version: str, role: str, **extra: str) -> dict:
    return {"logical_pool": logical, "image_version": version, "role": role, **extra}


def test_serving_pool_from_metadata_alone(standin, monkeypatch):
    batch = standin.batch()
    # two physical pools of "ubuntu": the new one serving, yesterday's still draining (listed first, older)
    make_pool(batch, "ubuntu-2026-1124-0", **roles("ubuntu", "2026.1124.0", naming.ROLE_DRAINING,
                                                   draining_since="2026-11-25T03:10:00Z"))
    make_pool(batch, "ubuntu-2026-1125-0", **roles("ubuntu", "2026.1125.0", naming.ROLE_SERVING,
                                                   serving_since="2026-11-25T03:05:00Z"))
    # another logical pool, a canary of a third, and a pool this project does not manage
    make_pool(batch, "centos-2026-1120-0", **roles("centos", "2026.1120.0", naming.ROLE_SERVING))
    make_pool(batch, "debian-2026-1125-0", **roles("debian", "2026.1125.0", naming.ROLE_CANARY))
    make_pool(batch, "users-own-pool", purpose="render")
    assert {naming.TAG_LOGICAL_POOL, naming.TAG_SERVING_SINCE} <= {
        m.name for m in batch.get_pool("ubuntu-2026-1125-0").metadata}

    mark = standin.control.requests()["last_id"]
    answer = pool_registry.serving_pool(batch, "ubuntu")
    asked = [r["op"] for r in standin.control.requests(since=mark, items=True)["items"] if r["family"] == "batch"]
    assert answer is not None
    assert (answer.logical_pool, answer.pool_id, answer.version, answer.serving_since) == (
        "ubuntu", "ubuntu-2026-1125-0", "2026.1125.0", "2026-11-25T03:05:00Z")
    assert asked == ["Pool_List"], asked  # one GET /pools, nothing else

    assert pool_registry.serving_pool(batch, "centos").pool_id == "centos-2026-1120-0"
    # none: a logical pool with only a canary (first run not finished), one nobody configured
    assert pool_registry.serving_pool(batch, "debian") is None
    assert pool_registry.serving_pool(batch, "render") is None

    # the same answer through an Airflow azure_batch connection (what a user's DAG task calls)
    set_connections(monkeypatch, standin.endpoints)
    via_conn = pool_registry.serving_pool_from_connection("ubuntu")
    assert via_conn == answer


def test_serving_pool_when_a_crash_left_two_serving_pools_is_the_newest(standin):
    batch = standin.batch()
    make_pool(batch, "ubuntu-2026-1125-0", **roles("ubuntu", "2026.1125.0", naming.ROLE_SERVING))
    make_pool(batch, "ubuntu-2026-1126-0", **roles("ubuntu", "2026.1126.0", naming.ROLE_SERVING))
    assert pool_registry.serving_pool(batch, "ubuntu").pool_id == "ubuntu-2026-1126-0"
    # a pool being deleted no longer serves
    batch.begin_delete_pool("ubuntu-2026-1126-0")  # not waited for: it may still be listed, state deleting
    assert pool_registry.serving_pool(batch, "ubuntu").pool_id == "ubuntu-2026-1125-0"
