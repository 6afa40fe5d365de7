"""No pool starts before the image version's operation (which covers replication to every region) has ended, and
each pool still waits for the replica in its own Batch account's region (operators/replica.py, operators/gallery.py).

Two pools in two Batch accounts of the stand-in's seed (`batchimages` in West Europe, `batchimagesne` in North
Europe). ``create_pool`` of each runs in its own thread, the way a real deployment runs mapped task instances side by
side, and each deferral's trigger is re-instantiated from its serialised form and run like the triggerer does (one
event loop per thread). Nothing is mocked: the stand-in replicates per region on its simulated clock, and its
request log dates every Pool_Add.
"""
from __future__ import annotations

import threading
import time

import pytest

from _batch_common import batch_conn, context_for, in_dag, pipeline_dict, run_operator, set_connections
from batch_images.operators.gallery import GalleryImageVersionOperator
from batch_images.operators.image import ManagedImageOperator
from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import PreflightOperator
from batch_images.operators.snapshot import SnapshotDisksOperator
from include.pipeline_fixtures import short_field_pool

POLL = 0.05
SLOW_EXTRA = 3600.0  # simulated seconds North Europe replicates longer (a `replication_slow` fault)


class IndexedTI:
    """The task instance of a mapped task as the operators see it in the context (map index only)."""

    def __init__(self, map_index: int) -> None:
        self.map_index = map_index

    def xcom_push(self, key, value) -> None:  # noqa: D401 - nothing reads it here
        pass


@pytest.fixture
def two_regions(standin, monkeypatch):
    """A plan whose pools are in West Europe (`batchimages`) and North Europe (`batchimagesne`), the version's
    source built, the version not yet published. Returns (plan, image id, snapshots)."""
    ep = standin.endpoints
    demo = ep["demo"]
    set_connections(monkeypatch, ep, azure_batch_ne=batch_conn(ep, demo["batch_account_ne"]))

    def make(*regions: str) -> tuple[dict, str, list]:
        cfg = pipeline_dict(ep, poll_interval_seconds=1,
                            target_regions=[{"name": "westeurope"}, {"name": "northeurope"}])
        # short fields: one node each, and no subnet (a westeurope subnet cannot hold a northeurope account's pool)
        base = short_field_pool(cfg["pools"][0], target_dedicated_nodes=1, smoke_test=None)
        accounts = {"westeurope": ("azure_batch_default", demo["batch_account_id"]),
                    "northeurope": ("azure_batch_ne", demo["batch_account_ne_id"])}
        cfg["pools"] = [dict(base, pool_id_prefix=f"pool{i}-{r[:5]}", batch_conn_id=accounts[r][0],
                             batch_account_id=accounts[r][1], batch_account_location=r)
                        for i, r in enumerate(regions)]
        plan = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=cfg)).execute(context_for())
        snaps, _ = run_operator(in_dag(lambda: SnapshotDisksOperator(task_id="s", plan=plan, poll_interval=POLL)),
                                context_for())
        image_id, _ = run_operator(in_dag(lambda: ManagedImageOperator(task_id="i", plan=plan, snapshots=snaps,
                                                                       poll_interval=POLL)), context_for())
        return plan, image_id, snaps

    return make


def publish(plan: dict, image_id: str, wait: bool = True) -> str:
    """publish_image_version; ``wait=False`` only creates the version (as an earlier run, or one that stopped, left
    it), so the pools' own waits decide."""
    op = in_dag(lambda: GalleryImageVersionOperator(task_id="publish_image_version", plan=plan, image_id=image_id,
                                                    poll_interval=POLL, wait_for_completion=wait))
    version_id, _ = run_operator(op, context_for())
    return version_id


def create_pools_side_by_side(plan: dict, version_id: str, after=None) -> dict[int, dict]:
    """create_pool[i] for every pool of the plan, each in its own thread; {i: {"result"|"error", "done"}}."""
    out: dict[int, dict] = {}

    def run(i: int, spec: dict) -> None:
        op = in_dag(lambda: BatchPoolOperator(task_id="create_pool", pool_spec=spec, image_version_id=version_id,
                                              plan=plan, poll_interval=POLL))
        try:
            result, _ = run_operator(op, {**context_for(), "ti": IndexedTI(i)}, max_deferrals=40)
            out[i] = {"result": result, "done": time.time()}
            if after:
                out[i]["after"] = after(i)
        except Exception as err:  # noqa: BLE001 - reported by the test
            out[i] = {"error": err, "done": time.time()}

    threads = [threading.Thread(target=run, args=(i, spec)) for i, spec in enumerate(plan["pools"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return out


def region_states(standin, plan: dict) -> dict[str, str]:
    g, d = plan["gallery"], plan["image_definition"]
    v = standin.compute().gallery_image_versions.get(g["resource_group"], g["name"], d["name"], plan["version"],
                                                     expand="ReplicationStatus")
    return {s.region: s.state for s in v.replication_status.summary}


def pool_adds(standin, since: int) -> list[dict]:
    return [r for r in standin.control.requests(since=since, items=True)["items"]
            if r["op"] == "Pool_Add" and r["status"] == 201]


def version_operation(standin, plan: dict) -> tuple[str, dict[str, str]]:
    """(provisioningState, {region: replication state}) of the plan's version."""
    g, d = plan["gallery"], plan["image_definition"]
    v = standin.compute().gallery_image_versions.get(g["resource_group"], g["name"], d["name"], plan["version"],
                                                     expand="ReplicationStatus")
    return v.provisioning_state, {s.region: s.state for s in v.replication_status.summary}


def version_puts(standin, since: int) -> list[dict]:
    return [r for r in standin.control.requests(since=since, items=True)["items"]
            if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["status"] < 300]


def test_publish_waits_for_the_versions_operation_through_a_slow_region(standin, two_regions):
    """North Europe made slow (+1 h simulated): publish_image_version returns only once the version's create operation
    ended (Succeeded, both regions Completed), about an hour after its create, not when West Europe completed."""
    plan, image_id, _ = two_regions("northeurope", "westeurope")
    standin.control.add_fault("replication_slow", count=-1, match={"region": "northeurope"}, extra_seconds=SLOW_EXTRA)
    standin.control.set_scale(600)
    mark = standin.control.requests()["last_id"]
    publish(plan, image_id)
    assert version_operation(standin, plan) == ("Succeeded", {"West Europe": "Completed", "North Europe": "Completed"})
    created = version_puts(standin, mark)[0]["sim_ts"]
    assert standin.control.call("GET", "/clock")["now"] - created > SLOW_EXTRA


def test_no_pool_starts_while_the_versions_operation_runs(standin, two_regions):
    """The version only created (its publish did not wait), North Europe slow (+1 h simulated): the West Europe pool,
    whose own replica completes about an hour earlier, is created (Pool_Add) only after North Europe replicated and
    the operation ended, like the North Europe pool: create_pool's own wait also waits for no operation in flight."""
    plan, image_id, _ = two_regions("northeurope", "westeurope")
    standin.control.add_fault("replication_slow", count=-1, match={"region": "northeurope"}, extra_seconds=SLOW_EXTRA)
    standin.control.set_scale(600)
    mark = standin.control.requests()["last_id"]
    version_id = publish(plan, image_id, wait=False)
    created = version_puts(standin, mark)[0]["sim_ts"]
    results = create_pools_side_by_side(plan, version_id, after=lambda i: version_operation(standin, plan))
    assert all("result" in r for r in results.values()), results
    assert [results[i]["result"] for i in range(2)] == [p["pool_id"] for p in plan["pools"]]
    adds = pool_adds(standin, mark)
    assert len(adds) == 2
    # North Europe needs 300 s + 6 s/GB + 60 s + the extra hour: no Pool_Add before that, West Europe's neither
    assert all(a["sim_ts"] - created > SLOW_EXTRA for a in adds), [(a["path"], a["sim_ts"] - created) for a in adds]
    assert all(r["after"][0] == "Succeeded" for r in results.values())
    ne = standin.batch(standin.endpoints["demo"]["batch_account_ne"]).get_pool(plan["pools"][0]["pool_id"])
    assert ne.virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() == version_id.lower()


def test_publish_retries_a_failed_region_then_the_pools_start(standin, two_regions):
    """North Europe fails once: publish_image_version removes and re-adds it (3 PUTs), returns with the operation
    Succeeded, and the pools then create at once, writing nothing to the version."""
    plan, image_id, _ = two_regions("northeurope", "westeurope")
    standin.control.add_fault("replication_failed", count=1, match={"region": "northeurope"},
                              message="Simulated replication failure")
    mark = standin.control.requests()["last_id"]
    version_id = publish(plan, image_id)
    assert len(version_puts(standin, mark)) == 3  # create, remove North Europe, add it back
    assert version_operation(standin, plan) == ("Succeeded", {"West Europe": "Completed", "North Europe": "Completed"})
    results = create_pools_side_by_side(plan, version_id)
    assert all("result" in r for r in results.values()), results
    assert len(version_puts(standin, mark)) == 3 and len(pool_adds(standin, mark)) == 2


def test_pools_sharing_a_failed_region_retry_it_once(standin, two_regions):
    """The version only created (publish did not wait), both pools in North Europe, which fails once: only pool 0
    (the first of the region) removes and re-adds it; pool 1 waits for that retry; both pools are created on the
    version, which ends with both regions Completed."""
    plan, image_id, _ = two_regions("northeurope", "northeurope")
    standin.control.add_fault("replication_failed", count=1, match={"region": "northeurope"},
                              message="Simulated replication failure")
    mark = standin.control.requests()["last_id"]
    version_id = publish(plan, image_id, wait=False)
    results = create_pools_side_by_side(plan, version_id)
    assert all("result" in r for r in results.values()), results
    puts = [r for r in standin.control.requests(since=mark, items=True)["items"]
            if r["op"] == "GalleryImageVersions_CreateOrUpdate" and r["status"] < 300]
    assert len(puts) == 3, [(r["method"], r["status"]) for r in puts]  # create, remove North Europe, add it back
    assert set(region_states(standin, plan).values()) == {"Completed"}
    assert len(pool_adds(standin, mark)) == 2


def test_retry_writes_converge_on_the_configured_regions_and_the_settled_waiter():
    """Pure rules: the first pool of a region retries it; each write is the configured list minus at most that region;
    the settled waiter lets the retrier go on once the region is out (or back) and no update is in flight."""
    from batch_images.rules.replica_retry import retrier_index, retry_target_regions
    from batch_images.triggers.waiters.arm import evaluate_region_settled

    assert retrier_index(["westeurope", "North Europe", "northeurope"], "northeurope") == 1
    assert retrier_index(["westeurope"], "uksouth") is None
    configured = [{"name": "westeurope", "regionalReplicaCount": 1}, {"name": "northeurope", "regionalReplicaCount": 2},
                  {"name": "uksouth", "regionalReplicaCount": 1}]
    assert [t["name"] for t in retry_target_regions(configured, "North Europe")] == ["westeurope", "uksouth"]
    assert retry_target_regions(configured) == configured
    state = {"name": "1.0.0", "id": "v", "provisioningState": "Failed", "only_regions": ["northeurope"],
             "target_regions": [{"name": "West Europe"}, {"name": "North Europe"}],
             "regions": [{"region": "West Europe", "state": "Completed"}, {"region": "North Europe", "state": "Failed"}]}
    assert evaluate_region_settled(state)[0] == "retry"  # still targeted and Failed
    removed = {**state, "provisioningState": "Updating", "target_regions": [{"name": "West Europe"}]}
    assert evaluate_region_settled(removed)[0] == "retry"  # the removal is still in flight
    assert evaluate_region_settled({**removed, "provisioningState": "Succeeded"})[0] == "success"
    readded = {**state, "provisioningState": "Succeeded",
               "regions": [{"region": "West Europe", "state": "Completed"}, {"region": "North Europe",
                                                                             "state": "Replicating"}]}
    assert evaluate_region_settled(readded)[0] == "success"  # another writer's full list added it back


class _SecondPool(BatchPoolOperator):
    """create_pool[1] with the state of create_pool[0] given (outside a DAG run the task SDK cannot read it)."""

    retrier_state = "scheduled"

    def task_state(self, context, map_index):
        return self.retrier_state


@pytest.mark.parametrize("retrier_state", ["scheduled", "failed"])
def test_second_pool_of_a_failed_region_reschedules_or_fails_with_the_retrier(standin, two_regions, retrier_state):
    """North Europe Failed, create_pool[1] sees it: while create_pool[0] (its retrier) has not run, it reschedules
    itself (no try spent) without writing; once create_pool[0] failed, it fails naming the region and Azure's message."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    from batch_images.waiting import AzureWaitFailed

    plan, image_id, _ = two_regions("northeurope", "northeurope")
    standin.control.add_fault("replication_failed", count=1, match={"region": "northeurope"},
                              message="Simulated replication failure")
    version_id = publish(plan, image_id, wait=False)  # publish would retry the region itself
    mark = standin.control.requests()["last_id"]
    op = in_dag(lambda: _SecondPool(task_id="create_pool", pool_spec=plan["pools"][1], image_version_id=version_id,
                                    plan=plan, poll_interval=POLL))
    op.retrier_state = retrier_state
    expected = AirflowRescheduleException if retrier_state == "scheduled" else AzureWaitFailed
    with pytest.raises(expected) as err:
        run_operator(op, {**context_for(), "ti": IndexedTI(1)})
    if retrier_state == "failed":
        assert "North Europe" in str(err.value) and "Simulated replication failure" in str(err.value)
        assert "create_pool[0]" in str(err.value) and "gave up" in str(err.value)
    writes = [r for r in standin.control.requests(since=mark, items=True)["items"] if r["write"]]
    assert writes == [], writes  # neither removed the region nor made a pool
