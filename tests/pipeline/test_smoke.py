"""PoolSmokeTestOperator against the stand-in, through azure-batch: a passing test leaves the pool and no job; a
failing one names the nodes and exit codes, deletes its job and leaves the pool to the roll."""

from __future__ import annotations

import re
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException
from azure.batch import models as bm

from batch_images.operators.smoke import PoolSmokeTestOperator, smoke_job_id
from batch_images.pool_facts import enum_text
from tests.pipeline._batch_common import build_image_version, context_for, in_dag, run_operator, set_connections

POOL = "ubuntu2204-2026-1125-0"


@pytest.fixture
def pool(standin, monkeypatch):
    """A steady 3-node pool on a gallery version, as create_pool leaves it."""
    set_connections(monkeypatch, standin.endpoints)
    version_id = build_image_version(standin)
    batch = standin.batch()
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=POOL, vm_size="Standard_D2s_v3", target_dedicated_nodes=3,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version_id),
            node_agent_sku_id="batch.node.ubuntu 22.04")))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        nodes = list(batch.list_nodes(POOL))
        if len(nodes) == 3 and all(enum_text(n.state) == "idle" for n in nodes):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("pool did not become idle")
    yield batch
    batch.close()


def spec(command: str | None, tasks: int | None = None, timeout_minutes: int = 10) -> dict:
    return {"batch_conn_id": "azure_batch_default", "batch_account_id": "unused", "pool_id": POOL,
            "logical_pool": "ubuntu2204", "vm_size": "Standard_D2s_v3", "target_dedicated_nodes": 3,
            "target_low_priority_nodes": 0, "resize_timeout": "PT15M", "node_agent_sku_id": "batch.node.ubuntu 22.04",
            "smoke_test": None if command is None else {"command_line": command, "tasks": tasks,
                                                         "timeout_minutes": timeout_minutes}}


def smoke(pool_spec: dict, deferrable: bool = True):
    op = in_dag(lambda: PoolSmokeTestOperator(task_id="smoke_test", pool_spec=pool_spec, poll_interval=0.05,
                                              deferrable=deferrable))
    return run_operator(op, context_for())


def job_gone_or_deleting(batch, job_id: str) -> bool:
    try:
        return enum_text(batch.get_job(job_id).state) == "deleting"
    except Exception as err:  # noqa: BLE001
        return getattr(err, "status_code", None) == 404


def test_passing_smoke_test_one_task_per_node_then_the_job_is_gone(pool):
    result, answers = smoke(spec("/bin/bash -c 'test -f /etc/os-release'"))
    assert [a["status"] for a in answers] == ["success"]  # one wait, answered by its probe or its trigger
    assert result["pool_id"] == POOL and result["tasks"] == 3 and result["succeeded"] == 3
    assert result["nodes"] and set(result["nodes"]) <= {n.id for n in pool.list_nodes(POOL)}
    assert job_gone_or_deleting(pool, smoke_job_id(POOL))
    assert enum_text(pool.get_pool(POOL).state) == "active"  # the pool is untouched


def test_configured_task_count_in_the_worker(pool):
    result, deferrals = smoke(spec("/bin/bash -c 'echo ok'", tasks=5), deferrable=False)
    assert deferrals == [] and result["tasks"] == 5 and result["succeeded"] == 5


def test_failing_smoke_test_names_nodes_and_exit_codes_and_deletes_its_job(pool):
    with pytest.raises(AirflowFailException) as err:
        smoke(spec("/bin/bash -c 'echo broken >&2; exit 3'"))
    text = str(err.value)
    assert f"Smoke test of pool {POOL} failed" in text, text
    assert re.search(r"[123] of 3 smoke-test task\(s\) failed", text), text
    nodes = {n.id for n in pool.list_nodes(POOL)}
    named = [n for n in nodes if f"node {n} " in text]
    assert named and "exit code 3" in text, text
    assert job_gone_or_deleting(pool, smoke_job_id(POOL))
    assert enum_text(pool.get_pool(POOL).state) == "active" and len(nodes) == 3  # the pool is the roll's to delete


def test_no_smoke_test_configured_runs_nothing(pool):
    result, _ = smoke(spec(None))
    assert result == {"pool_id": POOL, "skipped": "no smoke_test in the config"}
    assert [j.id for j in pool.list_jobs()] == []


def test_smoke_test_failing_on_one_node_names_it_with_exit_code_and_stderr_tail(pool, standin):
    """The stand-in's task_failed fault breaks the test on exactly one node of three (as a bad GPU driver or a
    full disk on one VM would): the failure names that node, its exit code and its stderr's last lines, and no
    other node; the job is deleted and the pool (the roll's to delete) is untouched."""
    nodes = sorted(n.id for n in pool.list_nodes(POOL))
    broken = nodes[1]
    standin.control.add_fault("task_failed", match={"pool_regex": f"^{POOL}$", "node_regex": f"^{broken}$",
                                                    "job_regex": f"^{smoke_job_id(POOL)}$"},
                              exit_code=7, stderr="\n".join(f"probe line {i}" for i in range(1, 9))
                              + "\nnvidia-smi: no devices found")
    # the output reads survive a 5xx each (azure-core retries GET / HEAD)
    for op, status in (("File_GetPropertiesFromTask", 500), ("File_GetFromTask", 503)):
        standin.control.add_fault("http", count=1, match={"op": op}, status=status)
    with pytest.raises(AirflowFailException) as err:
        smoke(spec("/bin/bash -c 'echo checking; nvidia-smi'"))
    assert [f["fired"] for f in standin.control.faults() if f["kind"] == "http"] == [1, 1]
    text = str(err.value)
    assert "1 of 3 smoke-test task(s) failed" in text, text
    assert f"node {broken} " in text and "exit code 7" in text, text
    assert [n for n in nodes if n != broken and n in text] == [], text   # the healthy nodes are not blamed
    assert "stderr.txt: nvidia-smi: no devices found" in text, text      # the tail, last line included
    assert "probe line 8" in text and "probe line 1\n" not in text, text  # only the last lines
    assert "stdout.txt: checking" in text, text
    assert job_gone_or_deleting(pool, smoke_job_id(POOL))
    after = pool.get_pool(POOL)
    assert (enum_text(after.state), enum_text(after.allocation_state), after.current_dedicated_nodes) == (
        "active", "steady", 3)
    assert sorted(n.id for n in pool.list_nodes(POOL)) == nodes


def test_5xx_after_batch_made_the_job_and_the_tasks_is_survived_without_duplicates(pool, standin):
    """Job_Add and Task_AddCollection are answered 500 / 503 *after* Batch made the job and the tasks (a gateway
    timing out on the answer): azure-core sends each again, Batch says JobExists / TaskExists, and the smoke test goes
    on with the job it made: one job, one task per node, all passed."""
    standin.control.add_fault("http", count=1, match={"op": "Job_Add"}, status=500, after=True)
    standin.control.add_fault("http", count=1, match={"op": "Task_AddCollection"}, status=503, after=True)
    mark = standin.control.requests()["last_id"]
    result, _ = smoke(spec("/bin/bash -c 'echo ok'"))
    assert (result["tasks"], result["succeeded"]) == (3, 3), result
    log = standin.control.requests(since=mark, items=True)["items"]
    assert [r["status"] for r in log if r["op"] == "Job_Add"] == [500, 409]  # made once, the retry told it exists
    adds = [r["status"] for r in log if r["op"] == "Task_AddCollection"]
    assert adds == [503, 200], adds  # the second add answered TaskExists per task: still 3 tasks
    assert [f["fired"] for f in standin.control.faults()] == [1, 1]
    assert job_gone_or_deleting(pool, smoke_job_id(POOL))
