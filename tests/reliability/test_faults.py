"""Fault suite (issue #4): the pipeline DAG against the stand-in under each fault, then the invariants.

Every test runs the real DAG with `airflow dags test` in a child process against the stand-in (real
HTTPS, real SDKs), injects its fault through the stand-in's control API, and measures the invariants
with the SDKs afterwards (pipeline_harness.PipelineHarness.invariants). Each records one table row.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
import threading
import time

import pytest

from include.pipeline_runner import connection_env
from pipeline_harness import (
    CREATE_OPS,
    POOL_ID,
    PipelineHarness,
    dag_id_for,
    dump,
    pipeline_config,
    request_seen,
    retry_after_gaps,
    summary,
    watch_log,
)

# Operations a clean run makes (from the stand-in's request log), by family.
ARM_OPS = ["VirtualMachines_Get", "VirtualMachineExtensions_List", "Disks_Get", "Providers_Get", "BatchAccount_Get",
           "Snapshots_CreateOrUpdate", "Snapshots_Get", "Snapshots_Delete", "Images_CreateOrUpdate", "Images_Get",
           "Images_Delete", "Galleries_Get", "Galleries_CreateOrUpdate", "GalleryImages_Get",
           "GalleryImages_CreateOrUpdate", "GalleryImageVersions_CreateOrUpdate", "GalleryImageVersions_Get",
           "Operations_GetStatus"]
BATCH_OPS = ["Account_ListSupportedImages", "Pool_Add", "Pool_Get", "Account_ListPoolNodeCounts"]
# What the roll adds to a first run: plan_roll / sweep / retention list pools, job schedules and jobs and the
# versions of the definition; roll_pool marks the pool serving (PATCH) and checks each node's image.
ROLL_OPS = ["Pool_List", "Pool_Patch", "JobSchedule_List", "Job_List", "ComputeNode_List",
            "GalleryImageVersions_ListByGalleryImage"]
# The smoke test of the new pool (operators/smoke.py; demo.yaml configures one): its job and tasks, the wait's task
# counts, the tasks listed for their nodes, the job deleted. (Its output-file reads happen only when a test fails:
# tests/pipeline/test_smoke.py faults them.)
SMOKE_OPS = ["Job_Get", "Job_Add", "Task_AddCollection", "Job_GetTaskCounts", "Task_List", "Job_Delete"]
# A 5xx *after* Batch made the job / the tasks (the answer lost on the way back): the retried add must not duplicate.
AFTER_COMMIT = ("Job_Add", "Task_AddCollection")
READ_OPS = ["VirtualMachines_Get", "Snapshots_Get", "Images_Get", "GalleryImageVersions_Get", "Pool_Get",
            "Account_ListPoolNodeCounts"]
WRITE_OPS = ["Snapshots_CreateOrUpdate", "Images_CreateOrUpdate", "GalleryImageVersions_CreateOrUpdate",
             "Snapshots_Delete", "Images_Delete", "Pool_Add"]


@pytest.fixture
def harness(standin, tmp_path, request):
    """make(**overrides) -> a PipelineHarness for this test's own DAG (unique dag_id)."""

    def make(*, regions=None, pool=None, serving_pool=True, env=None, **top) -> PipelineHarness:
        dag_id = dag_id_for(request.node.name)
        cfg = pipeline_config(standin.endpoints, dag_id, regions=regions, pool=pool, **top)
        return PipelineHarness(standin, dag_id, tmp_path, cfg, serving_pool=serving_pool, env=env)

    return make


def faults_fired(standin) -> int:
    return sum(f["fired"] for f in standin.control.faults())


# --- 429 storms ---------------------------------------------------------------------------------------------------


def test_throttling_429_storms_with_retry_after(harness, standin, reliability_row):
    """Every read and write operation below is throttled twice in a row with Retry-After 0.3 s (real time;
    900 s simulated at 3000x): the run waits as told - never asking again sooner - and finishes."""
    h = harness()
    scale = standin.control.health()["scale"]
    ops = READ_OPS + WRITE_OPS
    for op in ops:
        standin.control.add_fault("http", count=2, match={"op": op}, status=429, retry_after=0.3 * scale)
    result = h.run()
    report = h.invariants(success=True)
    gaps = retry_after_gaps(h.requests())
    early = [g for g in gaps if g["gap"] is None or g["gap"] < g["retry_after"] - 0.02]
    fired = faults_fired(standin)
    survived = result.state == "success" and not report.problems and not early
    reliability_row(f"429 storms, Retry-After 0.3 s: {len(READ_OPS)} reads + {len(WRITE_OPS)} writes x2", runs=1,
                    survived=survived, leaked=report.leaked)
    assert fired == 2 * len(ops), f"only {fired} of {2 * len(ops)} 429s fired: {dump(standin.control.faults())}"
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert len(gaps) == 2 * len(ops), dump(gaps)
    assert not early, f"asked again sooner than Retry-After (or never): {dump(early)}"


# --- 5xx bursts ---------------------------------------------------------------------------------------------------


def test_5xx_bursts_on_every_operation_type(harness, standin, reliability_row):
    """Every operation type the pipeline uses fails twice in a row with two of 500 / 502 / 503 before it works.

    (One run: azure-core backs off 1.6 s before the third attempt, so a run per status would triple the
    suite's longest part for little more coverage; each status still hits reads and writes of both families.)
    """
    h = harness()
    pairs = [(500, 502), (502, 503), (503, 500)]
    ops = ARM_OPS + BATCH_OPS + ROLL_OPS + SMOKE_OPS
    for i, op in enumerate(ops):
        first, second = pairs[i % 3] if op != "Pool_Add" else (502, 500)  # 502 on a POST: azure-core won't retry
        if op in AFTER_COMMIT:
            first, second = 500, 503  # the first after Batch made it; azure-core re-sends POSTs on 500 / 503
        standin.control.add_fault("http", count=1, match={"op": op}, status=first, after=op in AFTER_COMMIT)
        standin.control.add_fault("http", count=1, match={"op": op}, status=second)
    result = h.run()
    report = h.invariants(success=True)
    fired = faults_fired(standin)
    made = [r for r in h.requests() if r["op"] in AFTER_COMMIT and r["status"] in (200, 201)]
    jobs_made = [r for r in made if r["op"] == "Job_Add"]
    reliability_row(f"HTTP 500/502/503 bursts (2 in a row) on every op type ({len(ops)})", runs=1,
                    survived=result.state == "success" and not report.problems, leaked=report.leaked)
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert fired == 2 * len(ops), f"{fired} of {2 * len(ops)} faults fired: {dump(standin.control.faults())}"
    # the smoke-test job was made once (by the add whose answer was the 500), never again
    assert jobs_made == [] and "already made by this run" in result.log, (dump(made), result.log_path)


# --- long-running operations that end Failed ---------------------------------------------------------------------

LRO_MESSAGE = "Disk copy failed: the source disk is being accessed by another operation."


@pytest.mark.parametrize("resource_type,count", [("snapshots", 1), ("images", 1), ("versions", 1), ("versions", -1)],
                         ids=["snapshot", "image", "version", "version-always"])
def test_lro_ends_failed(harness, standin, reliability_row, resource_type, count):
    """A create ends Failed: the retry creates it again cleanly, or the run fails with Azure's message and
    leaves nothing behind (no snapshot, image, version or pool of the run)."""
    h = harness()
    standin.control.add_fault("lro_failed", count=count, match={"resource_type": resource_type},
                              code="InternalOperationError", message=LRO_MESSAGE)
    result = h.run()
    ok = result.state == "success"
    report = h.invariants(success=ok, versions="one" if ok else "none")
    created = h.creations()
    what = "always" if count < 0 else "once"
    reliability_row(f"LRO ends Failed ({what}): {resource_type[:-1]}", runs=1, survived=not report.problems,
                    leaked=report.leaked, writes_before_refusal=h.writes_before_refusal(result))
    assert not report.problems, summary(report, result)
    if resource_type == "snapshots" or count < 0:
        # The sensor cannot make a snapshot again (snapshot_disks ran already), and a version that always fails
        # cannot succeed: the run fails with Azure's error, after the teardown removed what it made.
        assert result.state == "failed", summary(report, result)
        failure = [line for line in result.log.splitlines() if "ended with provisioningState Failed" in line
                   or "replication failed in" in line]
        assert any(LRO_MESSAGE in line for line in failure), f"Azure's error is not in the failure; {result.log_path}"
        if resource_type == "snapshots":
            assert any("InternalOperationError" in line for line in failure), result.log_path
    else:
        # The task's retry replaced the Failed resource with a new one of the same name: made twice, left once.
        assert ok, summary(report, result)
        op = {"images": "Images_CreateOrUpdate", "versions": "GalleryImageVersions_CreateOrUpdate"}[resource_type]
        assert len(created[op]) == 2 and len(set(created[op])) == 1, dump(created)


# --- replication Failed in one region of several ------------------------------------------------------------------

REGIONS = ["westeurope", "northeurope", "uksouth"]


@pytest.mark.parametrize("count", [1, -1], ids=["once", "always"])
def test_replication_fails_in_one_region(harness, standin, reliability_row, count):
    """North Europe fails: remove and re-add it (retry that region) up to the limit, then fail naming it."""
    h = harness(regions=REGIONS)
    standin.control.add_fault("replication_failed", count=count, match={"region": "northeurope"},
                              message="The replication job failed: storage account throttled")
    result = h.run()
    ok = result.state == "success"
    report = h.invariants(success=ok)
    retries = result.log.count("removing it from targetRegions and adding it back")
    reliability_row(f"replication Failed in 1 of 3 regions ({'once' if count > 0 else 'always'})", runs=1,
                    survived=not report.problems, leaked=report.leaked,
                    writes_before_refusal=h.writes_before_refusal(result))
    assert not report.problems, summary(report, result)
    if count > 0:
        assert ok and retries == 1, (retries, summary(report, result))
    else:
        assert result.state == "failed", summary(report, result)
        assert "replication in North Europe still failed after 2 remove/re-add retries" in result.log, result.log_path
        assert retries == 2 * 3, f"{retries} region retries (2 per try, 3 tries expected)"


# --- Batch pool: resize errors and unhealthy nodes ----------------------------------------------------------------


def test_pool_core_quota_reached(harness, standin, reliability_row):
    """20 x D2s_v3 = 40 cores fit the account's DSv3 family quota of 50 beside the serving pool's 4 when preflight
    checks it (a pool over the quota is refused there: tests/reliability/test_bad_input.py); then the quota drops to
    20 (another tenant's pools, a quota change) before the pool allocates: fatal at once, with Batch's numbers in the
    message, and the half-allocated pool is deleted."""
    h = harness(pool={"target_dedicated_nodes": 20})
    watch_log(h.next_log_path(), r"Preflight passed", lambda: standin.control.call("PUT", "/batch/quotas", {
        "account": standin.endpoints["demo"]["batch_account"],
        "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": 20}]}))
    result = h.run()
    report = h.invariants(success=False, versions="one")
    pool_try = next((t for t in result.tasks if t["task"] == "wait_for_pool_steady[0]"), {})
    reliability_row("pool resize error: core quota reached", runs=1, survived=not report.problems,
                    leaked=report.leaked, writes_before_refusal=h.writes_before_refusal(result))
    assert not report.problems, summary(report, result)
    assert result.state == "failed" and pool_try.get("try") == 1, (pool_try, summary(report, result))
    assert re.search(r"QuotaReached: .*\d+ more cores needed .*\d+ of \d+ in use", result.log), result.log_path
    assert "was deleted, so no half-made pool is left behind" in result.log, result.log_path


@pytest.mark.parametrize("count", [1, -1], ids=["once", "always"])
def test_pool_allocation_timed_out(harness, standin, reliability_row, count):
    """AllocationTimedout: one more resize to the target; a second timeout fails the run (pool removed)."""
    h = harness()
    standin.control.add_fault("resize_error", count=count, match={"pool_regex": POOL_ID}, code="AllocationTimedout")
    result = h.run()
    ok = result.state == "success"
    report = h.invariants(success=ok, versions="one")
    reliability_row(f"pool resize error: AllocationTimedout ({'once' if count > 0 else 'always'})", runs=1,
                    survived=not report.problems, leaked=report.leaked,
                    writes_before_refusal=h.writes_before_refusal(result))
    assert not report.problems, summary(report, result)
    assert "resize retry 1/1 to the target" in result.log, result.log_path
    if count > 0:
        assert ok, summary(report, result)
    else:
        assert result.state == "failed" and "gave up after 1 resize retry" in result.log, summary(report, result)


def test_pool_nodes_unhealthy_then_repaired(harness, standin, reliability_row):
    """Half the nodes fail their start task and one is unusable: a reboot repairs them."""
    h = harness()
    standin.control.add_fault("start_task_failed", count=1, match={"pool_regex": POOL_ID}, share=0.5, exit_code=3)
    standin.control.add_fault("node_unusable", count=1, match={"pool_regex": POOL_ID}, nodes=1)
    result = h.run()
    report = h.invariants(success=True)
    reliability_row("nodes starttaskfailed 50% + unusable 1 (reboot heals)", runs=1,
                    survived=result.state == "success" and not report.problems, leaked=report.leaked)
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
    assert re.search(r"rebooted \d+ unhealthy node", result.log), result.log_path


def test_pool_start_task_keeps_failing(harness, standin, reliability_row):
    """A start task that fails after every reboot and on every new node: reboot, remove and re-add, give up
    listing the nodes and their errors, and delete the half-made pool."""
    h = harness()
    standin.control.add_fault("start_task_failed", count=-1, match={"pool_regex": POOL_ID}, share=0.5,
                              exit_code=3, sticky=True)
    result = h.run()
    report = h.invariants(success=False, versions="one")
    reliability_row("nodes starttaskfailed after reboot and re-add (always)", runs=1,
                    survived=not report.problems, leaked=report.leaked,
                    writes_before_refusal=h.writes_before_refusal(result))
    assert not report.problems, summary(report, result)
    assert result.state == "failed", summary(report, result)
    log = result.log
    assert re.search(r"rebooted \d+ unhealthy node", log) and re.search(r"removed \d+ unhealthy node", log), \
        result.log_path
    assert "Gave up after 2 repair round(s)" in log, result.log_path
    assert re.search(r"tvmps_\w+: starttaskfailed - start task \w+: .*exit code 3", log), result.log_path


# --- worker killed (SIGKILL) at each step, the task retried -------------------------------------------------------

# step -> the request the worker is inside when it dies (operation, which one of the run, path), and what the
# retry must say it adopted. The stand-in serves that request and holds its answer back; the worker is killed
# as soon as the request is logged, so the kill lands inside the step whatever the machine's load.
KILL_POINTS = {
    # the OS disk's snapshot is accepted, the data disk's not asked for yet
    "snapshot_disks": ("Snapshots_CreateOrUpdate", 1, None, "Adopting snapshot"),
    # the sensor's first poll (after snapshot_disks looked both snapshots up)
    "wait_for_snapshots": ("Snapshots_Get", 3, None, None),
    "create_managed_image": ("Images_CreateOrUpdate", 1, None, "Adopting managed image"),
    "publish_image_version": ("GalleryImageVersions_CreateOrUpdate", 1, None, "Adopting image version"),
    "create_pool[0]": ("Pool_Add", 1, None, "already exists on image"),
    # the waiter's first poll (after create_pool looked the pool up)
    "wait_for_pool_steady[0]": ("Pool_Get", 2, f"/pools/{POOL_ID}$", None),
    # the image's delete and the first snapshot's delete are accepted, the second snapshot's not asked for
    "delete_temporary_resources": ("Snapshots_Delete", 1, None, None),
}


@pytest.mark.parametrize("step", list(KILL_POINTS))
def test_worker_killed_mid_task(harness, standin, reliability_row, step):
    """SIGKILL the worker in the middle of `step`; the scheduler's retry (same run, next try) adopts what the
    killed try made: one snapshot per disk, one image, one version, one pool."""
    h = harness()
    op, nth, path, adopted = KILL_POINTS[step]
    standin.control.add_fault("http", count=1, skip=nth - 1, delay=30,
                              match={"op": op, **({"path_regex": path} if path else {})})
    killed = h.run(kill_when=request_seen(standin, op, nth, path, since=h.request_mark))
    if killed.exit_code is not None:
        reliability_row(f"SIGKILL mid-task, retried: {step}", runs=1, survived=False, leaked=0)
        pytest.fail(f"the run ended ({killed.state}) before request {nth} of {op}; log {killed.log_path}")
    resumed = h.resume()
    report = h.invariants(success=True)
    created = h.creations()
    twice = {op: paths for op, paths in created.items() if len(paths) != len(set(paths))}
    report.add(sum(len(p) - len(set(p)) for p in twice.values()), f"created more than once: {twice}")
    reliability_row(f"SIGKILL mid-task, retried: {step}", runs=2,
                    survived=resumed.state == "success" and not report.problems, leaked=report.leaked)
    assert step in h.killed_tasks, f"killed in {h.killed_tasks}, not in {step}; log {killed.log_path}"
    assert resumed.state == "success", summary(report, resumed)
    assert not report.problems, summary(report, resumed)
    assert [len(created[op]) for op in CREATE_OPS] == [2, 1, 1, 1], dump(created)
    retried = next(t for t in resumed.tasks if t["task"] == step)
    assert retried["try"] == 2, retried
    if adopted:
        assert adopted in resumed.log, f"the retry of {step} did not adopt ({adopted!r}); log {resumed.log_path}"


# --- the triggerer stopped and started during each wait -----------------------------------------------------------


def _rebuilt(trigger):
    """What a triggerer does on start: the trigger class built again from its serialized kwargs (JSON)."""
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    return None


def _wait_across_triggerer_restart(trigger, in_flight, polls, resume, stop_after: float = 0.8, down: float = 0.3,
                                   first_poll_within: float = 60.0, timeout: float = 60.0) -> dict:
    """Run the trigger, stop the triggerer mid-wait (cancel), start it again (rebuild from serialize()), finish.

    `polls()`: requests the stand-in logged since the trigger started; `in_flight()`: the resource is still
    being worked on (both checked when the triggerer stops, so the stop is really mid-wait). The resource is
    made on a real-time stand-in clock (scale 1), so however slowly a loaded machine starts the trigger, its
    first poll finds it in flight; the triggerer stops after that poll (and at least `stop_after` seconds);
    `resume()` then sets the wait's own time scale before the triggerer starts again.
    """

    async def main() -> dict:
        first = asyncio.ensure_future(_first_event(trigger))
        await asyncio.sleep(stop_after)
        started = time.monotonic()
        while not first.done() and await asyncio.to_thread(polls) < 1:
            assert time.monotonic() - started < first_poll_within, \
                f"the trigger had not polled {first_poll_within:.0f} s after it started"
            await asyncio.sleep(0.1)
        assert not first.done(), f"the wait ended before the triggerer stopped: {first.result()}"
        assert await asyncio.to_thread(in_flight), "the resource was no longer in flight when the triggerer stopped"
        first.cancel()  # the triggerer stops: its trigger coroutines are cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await asyncio.to_thread(resume)
        await asyncio.sleep(down)
        again = _rebuilt(trigger)
        assert again.deadline == trigger.deadline, "the restarted trigger got a fresh timeout"
        event = await asyncio.wait_for(_first_event(again), timeout)
        return event

    return asyncio.run(main())


def test_triggerer_restarted_during_each_wait(standin, monkeypatch, reliability_row):
    """Each wait of the DAG (snapshot copy, managed image, replication, pool allocation, deletion) is driven by
    AzureBaseWaiterTrigger against a real in-flight resource; the triggerer is stopped midway and started again
    from the serialized trigger (same absolute deadline): the wait resumes and completes."""
    from azure.batch import models as bm

    from batch_images.triggers.base import AzureBaseWaiterTrigger

    for name, value in connection_env(standin.endpoints).items():
        monkeypatch.setenv(name, value)
    from airflow.sdk.execution_time.cache import SecretCache

    SecretCache.reset()
    ep, control = standin.endpoints, standin.control
    demo = ep["demo"]
    rg, sub, loc = demo["resource_group"], demo["subscription_id"], demo["location"]
    compute, batch = standin.compute(), standin.batch()
    before = {"snapshots": len(list(compute.snapshots.list_by_resource_group(rg))),
              "images": len(list(compute.images.list_by_resource_group(rg)))}
    os_disk = compute.virtual_machines.get(rg, demo["source_vm_name"]).storage_profile.os_disk.managed_disk.id
    arm = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute"
    snap_id, image_id = f"{arm}/snapshots/snap-triggerer", f"{arm}/images/img-triggerer"
    version_id = f"{arm}/galleries/galtriggerer/images/def-triggerer/versions/1.0.0"
    pool_id = "pool-triggerer"
    events: dict[str, dict] = {}

    def wait(label: str, waiter: str, args: dict, in_flight, scale: float, conn_id: str = "azure_default") -> None:
        trigger = AzureBaseWaiterTrigger(waiter_name=waiter, waiter_args=args, conn_id=conn_id, poll_interval=0.5,
                                         timeout_seconds=120, return_value=label)
        mark = control.requests()["last_id"]
        try:
            events[label] = _wait_across_triggerer_restart(
                trigger, in_flight, lambda: control.requests(since=mark)["total"], lambda: control.set_scale(scale))
        except (AssertionError, TimeoutError) as err:  # recorded in the row, asserted at the end
            events[label] = {"status": "broken", "message": f"{type(err).__name__}: {err}"}

    # Each resource is made on a real-time clock (scale 1: minutes of Azure time stay minutes) so the
    # triggerer's stop lands mid-wait on a loaded machine too; each wait's own scale, set at the restart,
    # makes the rest of it last ~2 s of wall time.
    control.set_scale(1)
    compute.snapshots.begin_create_or_update(rg, "snap-triggerer", {"location": loc, "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": os_disk}}}, polling=False)
    wait("snapshot copy", "arm_provisioning", {"resource_ids": [snap_id]},
         lambda: compute.snapshots.get(rg, "snap-triggerer").provisioning_state == "Creating", scale=70)

    control.set_scale(1)
    compute.images.begin_create_or_update(rg, "img-triggerer", {
        "location": loc, "properties": {"hyperVGeneration": "V2", "storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "snapshot": {"id": snap_id}}}}}, polling=False)
    wait("managed image", "arm_provisioning", {"resource_ids": [image_id]},
         lambda: compute.images.get(rg, "img-triggerer").provisioning_state == "Creating", scale=35)

    control.set_scale(3000)
    compute.galleries.begin_create_or_update(rg, "galtriggerer", {"location": loc}).result()
    compute.gallery_images.begin_create_or_update(rg, "galtriggerer", "def-triggerer", {"location": loc, "properties": {
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "contoso", "offer": "triggerer", "sku": "gen2"}}}).result()
    control.set_scale(1)
    compute.gallery_image_versions.begin_create_or_update(rg, "galtriggerer", "def-triggerer", "1.0.0", {
        "location": loc, "properties": {"storageProfile": {"source": {"id": image_id}}, "publishingProfile": {
            "targetRegions": [{"name": "westeurope"}, {"name": "northeurope"}]}}}, polling=False)

    def replicating() -> bool:
        v = compute.gallery_image_versions.get(rg, "galtriggerer", "def-triggerer", "1.0.0",
                                               expand="ReplicationStatus")
        return any(s.state != "Completed" for s in v.replication_status.summary)

    wait("replication", "gallery_replication", {"version_id": version_id}, replicating, scale=250)

    control.set_scale(1)
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=2,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version_id),
            node_agent_sku_id="batch.node.ubuntu 22.04"),
        start_task=bm.BatchStartTask(command_line="/bin/bash -c 'echo ready'", wait_for_success=True)))

    def allocating() -> bool:
        counts = next((c for c in batch.list_pool_node_counts() if c.pool_id == pool_id), None)
        return not counts or (counts.dedicated.idle or 0) < 2

    wait("pool allocation", "batch_pool_steady", {"pool_id": pool_id, "target_dedicated_nodes": 2}, allocating,
         scale=170, conn_id="azure_batch_default")

    control.set_scale(1)
    compute.images.begin_delete(rg, "img-triggerer", polling=False)
    compute.snapshots.begin_delete(rg, "snap-triggerer", polling=False)

    def deleting() -> bool:
        return any(s.name == "snap-triggerer" for s in compute.snapshots.list_by_resource_group(rg))

    wait("teardown deletion", "arm_deleted", {"resource_ids": [image_id, snap_id]}, deleting, scale=15)
    control.set_scale(3000)

    left = (len(list(compute.snapshots.list_by_resource_group(rg))) - before["snapshots"]
            + len(list(compute.images.list_by_resource_group(rg))) - before["images"])
    done = [label for label, event in events.items() if (event or {}).get("status") == "success"]
    reliability_row(f"triggerer stopped + started in each wait ({len(events)} waits)", runs=len(events),
                    survived=len(done) == len(events) == 5 and left == 0, leaked=left)
    assert len(done) == 5, dump(events)
    assert left == 0, f"{left} snapshot(s)/image(s) left after the deletion wait"


# --- the stand-in restarted during a run --------------------------------------------------------------------------

RESTART_POINTS = [r"Deferring: waiting for gallery_replication", r"Waiting up to \d+ s for Batch pool"]


def test_standin_restarted_during_run(harness, standin, reliability_row):
    """The stand-in (Azure) goes away and comes back on the same port twice - while replication runs and while
    the pool allocates; its state is persisted, so the run completes with what it made."""
    standin.control.set_scale(600)  # slower, so that the restarts land while operations are in flight
    h = harness()
    restarts: list[float] = []
    lock = threading.Lock()

    def restart() -> None:
        with lock:
            standin.restart()  # same state dir and port; the scale (600) is kept from the state
            restarts.append(time.monotonic())

    log = h.next_log_path()
    scale, standin.time_scale = standin.time_scale, None
    try:
        watchers = [watch_log(log, pattern, restart) for pattern in RESTART_POINTS]
        result = h.run()
        for w in watchers:
            w.join(timeout=30)
    finally:
        standin.time_scale = scale
    report = h.invariants(success=True)
    reliability_row(f"stand-in restarted {len(restarts)}x during the run", runs=1,
                    survived=result.state == "success" and not report.problems, leaked=report.leaked)
    assert len(restarts) == len(RESTART_POINTS), f"only {len(restarts)} restart(s) happened; log {result.log_path}"
    assert result.state == "success", summary(report, result)
    assert not report.problems, summary(report, result)
