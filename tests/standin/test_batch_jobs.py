"""Jobs, tasks and job schedules on stand-in pools through azure-batch 15: a smoke-test command runs to
completion on an idle node; schedules follow a poolInfo change."""
from __future__ import annotations

import datetime
import time

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceExistsError

from batch_helpers import POLL, build_image_version, error_values, pool_options, slow, wait_pool


@pytest.fixture
def pool(standin):
    image = build_image_version(standin)
    client = standin.batch()
    client.create_pool(pool_options("jobs-pool", image.id, nodes=2))
    wait_pool(client, "jobs-pool")
    return "jobs-pool"


def _wait_task(client, job_id: str, task_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        task = client.get_task(job_id, task_id)
        if task.state == "completed":
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} is {task.state}")
        time.sleep(0.03)


def test_smoke_task_runs_to_completion_on_an_idle_node(standin, pool):
    client = standin.batch()
    client.create_job(bm.BatchJobCreateOptions(id="smoke", pool_info=bm.BatchPoolInfo(pool_id=pool)))
    with pytest.raises(ResourceExistsError) as err:
        client.create_job(bm.BatchJobCreateOptions(id="SMOKE", pool_info=bm.BatchPoolInfo(pool_id=pool)))
    assert err.value.error.code == "JobExists"
    with slow(standin):
        client.create_task("smoke", bm.BatchTaskCreateOptions(id="hello", command_line="/bin/bash -c 'echo hello'"))
        client.create_task("smoke", bm.BatchTaskCreateOptions(id="broken", command_line="/bin/bash -c 'exit 1'"))
        assert client.get_task("smoke", "hello").state == "active"     # scheduling takes a few seconds
        standin.control.advance(10)
        assert client.get_task("smoke", "hello").state == "running"

    ok = _wait_task(client, "smoke", "hello")
    assert ok.execution_info.exit_code == 0 and ok.execution_info.result == "success"
    assert ok.node_info.pool_id == pool and ok.node_info.node_id
    assert ok.execution_info.start_time < ok.execution_info.end_time
    assert ok.previous_state == "running"
    node = client.get_node(pool, ok.node_info.node_id)
    assert node.total_tasks_run >= 1 and node.state == "idle"

    bad = _wait_task(client, "smoke", "broken")
    assert bad.execution_info.exit_code == 1 and bad.execution_info.result == "failure"
    assert bad.execution_info.failure_info.code == "FailureExitCode"

    counts = client.get_job_task_counts("smoke")
    assert (counts.task_counts.completed, counts.task_counts.succeeded, counts.task_counts.failed) == (2, 1, 1)
    assert {t.id for t in client.list_tasks("smoke")} == {"hello", "broken"}
    assert [j.id for j in client.list_jobs()] == ["smoke"]

    # as with reboot: 15.1.0 needs options here and does not export their model, so a mapping goes
    client.begin_terminate_job("smoke", {"terminateReason": "smoke test done"}, polling_interval=POLL).result()
    job = client.get_job("smoke")
    assert job.state == "completed" and job.execution_info.termination_reason == "smoke test done"
    client.begin_delete_job("smoke", polling_interval=POLL).result()
    with pytest.raises(HttpResponseError) as err:
        client.get_job("smoke")
    assert err.value.status_code == 404 and err.value.error.code == "JobNotFound"



def test_a_job_made_again_with_a_deleted_jobs_id_runs_its_own_tasks(standin, pool):
    """A smoke test retried after its earlier try deleted the job: the new job's tasks exist and run (the deleted
    job's tasks of the same ids are gone with it, they do not shadow the new ones)."""
    client = standin.batch()
    for attempt in range(2):
        client.create_job(bm.BatchJobCreateOptions(id="again", pool_info=bm.BatchPoolInfo(pool_id=pool)))
        client.create_tasks("again", [bm.BatchTaskCreateOptions(id=f"smoke-{i}", command_line="/bin/true")
                                      for i in range(2)])
        for i in range(2):
            assert _wait_task(client, "again", f"smoke-{i}").execution_info.exit_code == 0, attempt
        counts = client.get_job_task_counts("again").task_counts
        assert (counts.completed, counts.succeeded) == (2, 2), attempt
        client.begin_delete_job("again", polling_interval=POLL).result()

def test_a_running_task_shows_on_its_node(standin, pool):
    client = standin.batch()
    with slow(standin):
        client.create_job(bm.BatchJobCreateOptions(id="busy", pool_info=bm.BatchPoolInfo(pool_id=pool)))
        client.create_task("busy", bm.BatchTaskCreateOptions(id="t1", command_line="sleep 10"))
        standin.control.advance(8)
        task = client.get_task("busy", "t1")
        assert task.state == "running"
        node = client.get_node(pool, task.node_info.node_id)
        assert node.state == "running" and node.running_tasks_count == 1
        [counts] = list(client.list_pool_node_counts())
        assert counts.dedicated.running == 1 and counts.dedicated.idle == 1


def test_task_waits_for_a_pool_that_is_still_allocating(standin):
    image = build_image_version(standin)
    client = standin.batch()
    with slow(standin):
        client.create_pool(pool_options("late", image.id, nodes=1))
        client.create_job(bm.BatchJobCreateOptions(id="early", pool_info=bm.BatchPoolInfo(pool_id="late")))
        client.create_task("early", bm.BatchTaskCreateOptions(id="t", command_line="echo hi"))
        assert client.get_task("early", "t").state == "active"
        standin.control.advance(1200)
        task = client.get_task("early", "t")
    assert task.state == "completed" and task.execution_info.exit_code == 0


def test_job_schedule_follows_a_pool_info_update(standin, pool):
    image = build_image_version(standin, tag="b", gallery="galb")
    client = standin.batch()
    client.create_pool(pool_options("jobs-pool-2", image.id, nodes=1))
    wait_pool(client, "jobs-pool-2")

    spec = bm.BatchJobSpecification(
        pool_info=bm.BatchPoolInfo(pool_id=pool), all_tasks_complete_mode="terminatejob",
        job_manager_task=bm.BatchJobManagerTask(id="jm", command_line="/bin/bash -c 'echo managed'"))
    client.create_job_schedule(bm.BatchJobScheduleCreateOptions(
        id="nightly", schedule=bm.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(days=1)),
        job_specification=spec))
    sched = client.get_job_schedule("nightly")
    assert sched.state == "active" and sched.execution_info.recent_job.id == "nightly:job-1"
    first = client.get_job("nightly:job-1")
    assert first.pool_info.pool_id == pool

    spec.pool_info = bm.BatchPoolInfo(pool_id="jobs-pool-2")
    client.update_job_schedule("nightly", bm.BatchJobScheduleUpdateOptions(job_specification=spec))
    assert client.get_job_schedule("nightly").job_specification.pool_info.pool_id == "jobs-pool-2"
    assert client.get_job("nightly:job-1").pool_info.pool_id == pool   # jobs already made keep theirs

    standin.control.advance(86400)
    sched = client.get_job_schedule("nightly")
    assert sched.execution_info.recent_job.id == "nightly:job-2"
    second = client.get_job("nightly:job-2")
    assert second.pool_info.pool_id == "jobs-pool-2"
    jm = _wait_task(client, "nightly:job-2", "jm")
    assert jm.node_info.pool_id == "jobs-pool-2" and jm.execution_info.exit_code == 0
    assert client.get_job("nightly:job-2").state == "completed"
    assert {j.id for j in client.list_jobs_from_schedule("nightly")} == {"nightly:job-1", "nightly:job-2"}
    assert [s.id for s in client.list_job_schedules()] == ["nightly"]
    assert client.job_schedule_exists("nightly")

    client.begin_delete_job_schedule("nightly", polling_interval=POLL).result()
    assert [s.id for s in client.list_job_schedules()] == []


def _start_long_tasks(standin, client, pool: str, job: str, n: int, seconds: int = 36000) -> list[str]:
    """n tasks of `sleep seconds` on the pool, and time advanced until every one runs."""
    client.create_job(bm.BatchJobCreateOptions(id=job, pool_info=bm.BatchPoolInfo(pool_id=pool)))
    ids = [f"long-{i}" for i in range(n)]
    for tid in ids:
        client.create_task(job, bm.BatchTaskCreateOptions(id=tid, command_line=f"/bin/bash -c 'sleep {seconds}'"))
    standin.control.advance(10)
    assert [client.get_task(job, t).state for t in ids] == ["running"] * n
    return ids


def test_a_task_runs_as_long_as_its_sleep_then_completes(standin, pool):
    client = standin.batch()
    with slow(standin):
        [tid] = _start_long_tasks(standin, client, pool, "long", 1, seconds=3600)
        standin.control.advance(1800)
        task = client.get_task("long", tid)
        assert task.state == "running"       # 20 s was the fixed length before sleeps were read
        standin.control.advance(1800)
        task = client.get_task("long", tid)
    assert task.state == "completed" and task.execution_info.requeue_count == 0
    end, start = task.execution_info.end_time, task.execution_info.start_time
    assert abs((end - start).total_seconds() - 3600) < 1


def test_running_tasks_are_requeued_when_their_pool_is_deleted(standin, pool):
    client = standin.batch()
    with slow(standin):
        ids = _start_long_tasks(standin, client, pool, "doomed", 2)
        client.begin_delete_pool(pool)
        standin.control.advance(5)
        tasks = [client.get_task("doomed", t) for t in ids]
    assert [(t.state, t.execution_info.requeue_count) for t in tasks] == [("active", 1)] * 2
    assert all(t.node_info is None for t in tasks)


def test_a_rebooted_node_requeues_its_task_which_runs_again(standin, pool):
    client = standin.batch()
    with slow(standin):
        ids = _start_long_tasks(standin, client, pool, "reboot", 1, seconds=600)
        task = client.get_task("reboot", ids[0])
        node = task.node_info.node_id
        client.begin_reboot_node(pool, node, {"nodeRebootOption": "requeue"})
        standin.control.advance(2)
        again = client.get_task("reboot", ids[0])
        assert again.execution_info.requeue_count == 1
        standin.control.advance(60)  # the other node is idle: the task runs there from the start
        again = client.get_task("reboot", ids[0])
    assert again.state == "running" and again.execution_info.requeue_count == 1
    assert again.node_info.node_id != node


# --- disable / PATCH poolInfo / enable: moving active jobs in a roll ----------------------------------

@pytest.fixture
def second_pool(standin, pool):
    image = build_image_version(standin, tag="b", gallery="galb")
    client = standin.batch()
    client.create_pool(pool_options("jobs-pool-2", image.id, nodes=1))
    wait_pool(client, "jobs-pool-2")
    return "jobs-pool-2"


def test_a_job_moves_to_another_pool_only_while_disabled(standin, pool, second_pool):
    client = standin.batch()
    to_new = bm.BatchPoolInfo(pool_id=second_pool)
    with slow(standin):
        [tid] = _start_long_tasks(standin, client, pool, "mv", 1, seconds=600)
        with pytest.raises(HttpResponseError) as err:
            client.update_job("mv", bm.BatchJobUpdateOptions(pool_info=to_new))
        assert err.value.status_code == 409 and err.value.error.code == "OperationInvalidForCurrentState"
        assert error_values(err.value)["PropertyName"] == "poolInfo"
        with pytest.raises(HttpResponseError) as err:   # PUT (replace_job) changing the pool: the same rule
            client.replace_job("mv", bm.BatchJob(pool_info=to_new))
        assert err.value.status_code == 409
        assert client.get_task("mv", tid).state == "running"     # the refusals touched nothing

        client.begin_disable_job("mv", bm.BatchJobDisableOptions(disable_tasks="requeue"),
                                 polling_interval=POLL).result()
        assert client.get_job("mv").state == "disabled"
        task = client.get_task("mv", tid)
        assert (task.state, task.execution_info.requeue_count) == ("active", 1)
        client.update_job("mv", bm.BatchJobUpdateOptions(pool_info=to_new))
        standin.control.advance(60)
        assert client.get_task("mv", tid).state == "active"      # nothing starts while the job is disabled

        client.begin_enable_job("mv", polling_interval=POLL).result()
        assert client.get_job("mv").state == "active"
        standin.control.advance(10)
        task = client.get_task("mv", tid)
    assert task.state == "running" and task.node_info.pool_id == second_pool
    assert task.execution_info.requeue_count == 1
    job = client.get_job("mv")
    assert job.pool_info.pool_id == second_pool and job.execution_info.pool_id == second_pool


def test_disable_with_wait_lets_running_tasks_finish_and_starts_no_new_one(standin, pool):
    client = standin.batch()
    with slow(standin):
        [tid] = _start_long_tasks(standin, client, pool, "w", 1, seconds=300)
        client.begin_disable_job("w", bm.BatchJobDisableOptions(disable_tasks="wait"), polling_interval=POLL)
        client.create_task("w", bm.BatchTaskCreateOptions(id="queued", command_line="echo later"))
        standin.control.advance(100)
        assert client.get_job("w").state == "disabling"          # until its running task ends
        assert client.get_task("w", tid).state == "running"
        standin.control.advance(250)
        job, task, queued = client.get_job("w"), client.get_task("w", tid), client.get_task("w", "queued")
    assert job.state == "disabled" and job.previous_state == "disabling"
    assert task.state == "completed" and task.execution_info.exit_code == 0
    assert task.execution_info.requeue_count == 0                 # the user's task was not killed
    assert queued.state == "active"                               # an idle node was there, the job was not


def test_disable_with_terminate_ends_running_tasks_for_good(standin, pool):
    client = standin.batch()
    with slow(standin):
        [tid] = _start_long_tasks(standin, client, pool, "t", 1)
        client.begin_disable_job("t", bm.BatchJobDisableOptions(disable_tasks="terminate"),
                                 polling_interval=POLL).result()
        client.begin_enable_job("t", polling_interval=POLL).result()
        standin.control.advance(60)
        task = client.get_task("t", tid)
    assert task.state == "completed" and task.execution_info.result == "failure"
    assert task.execution_info.failure_info.code == "TaskEnded" and task.execution_info.requeue_count == 0
    assert not [n.id for n in client.list_nodes(pool) if n.state == "running"]   # its node was freed


def test_job_state_rules_for_disable_and_update(standin, pool):
    client = standin.batch()
    client.create_job(bm.BatchJobCreateOptions(id="done", pool_info=bm.BatchPoolInfo(pool_id=pool)))
    with pytest.raises(HttpResponseError) as err:
        client.update_job("done", bm.BatchJobUpdateOptions(priority=5000))
    assert err.value.status_code == 400 and error_values(err.value)["PropertyName"] == "priority"
    client.update_job("done", bm.BatchJobUpdateOptions(priority=100, all_tasks_complete_mode="terminatejob"))
    job = client.get_job("done")
    assert job.priority == 100 and job.pool_info.pool_id == pool   # PATCH keeps what it does not name
    with pytest.raises(HttpResponseError) as err:
        client.update_job("done", bm.BatchJobUpdateOptions(all_tasks_complete_mode="noaction"))
    assert err.value.status_code == 400 and err.value.error.code == "InvalidPropertyValue"
    client.begin_terminate_job("done", {"terminateReason": "finished"}, polling_interval=POLL).result()
    with pytest.raises(HttpResponseError) as err:
        client.begin_disable_job("done", bm.BatchJobDisableOptions(disable_tasks="requeue"))
    assert err.value.status_code == 409 and err.value.error.code == "JobNotActive"


def test_job_schedule_replace_moves_its_auto_pool_to_a_new_image_version(standin):
    """PUT (replace_job_schedule) of an auto-pool jobSpecification: what a roll does to a schedule whose pool is
    built per job; the stored spec is what retention reads to know which versions are still referenced."""
    v1 = build_image_version(standin, version="1.0.0")
    v2 = build_image_version(standin, tag="v2", version="2.0.0")
    client = standin.batch()

    def auto_pool(image_id: str) -> bm.BatchPoolInfo:
        return bm.BatchPoolInfo(auto_pool_specification=bm.BatchAutoPoolSpecification(
            auto_pool_id_prefix="nightly", pool_lifetime_option="job", pool=bm.BatchPoolSpecification(
                vm_size="Standard_D2s_v3", target_dedicated_nodes=1,
                virtual_machine_configuration=bm.VirtualMachineConfiguration(
                    image_reference=bm.BatchVmImageReference(virtual_machine_image_id=image_id),
                    node_agent_sku_id="batch.node.ubuntu 22.04"))))

    every_day = bm.BatchJobScheduleConfiguration(recurrence_interval=datetime.timedelta(days=1),
                                                 do_not_run_until=datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc))
    client.create_job_schedule(bm.BatchJobScheduleCreateOptions(
        id="auto", schedule=every_day, job_specification=bm.BatchJobSpecification(pool_info=auto_pool(v1.id))))
    client.replace_job_schedule("auto", bm.BatchJobSchedule(
        schedule=every_day, job_specification=bm.BatchJobSpecification(pool_info=auto_pool(v2.id))))
    [sched] = list(client.list_job_schedules())
    spec = sched.job_specification.pool_info.auto_pool_specification
    assert spec.pool.virtual_machine_configuration.image_reference.virtual_machine_image_id == v2.id
    assert spec.pool_lifetime_option == "job" and sched.metadata is None
    with pytest.raises(HttpResponseError) as err:   # PUT replaces: the jobSpecification is required
        client.replace_job_schedule("auto", bm.BatchJobSchedule(schedule=every_day))
    assert err.value.status_code == 400 and err.value.error.code == "MissingRequiredProperty"


# --- task output files and the task_failed fault: what a smoke test reports ---------------------------

def test_task_output_files_hold_the_echoed_text_and_the_fault_stderr(standin, pool):
    client = standin.batch()
    nodes = sorted(n.id for n in client.list_nodes(pool))
    standin.control.add_fault("task_failed", count=-1, match={"account": "batchimages", "pool_regex": pool,
                                                              "node_regex": nodes[1] + "$", "job_regex": "^out$"},
                              exit_code=42, stderr="fatal: /dev/nvidia0 missing\ncheck the driver")
    with slow(standin):
        client.create_job(bm.BatchJobCreateOptions(id="out", pool_info=bm.BatchPoolInfo(pool_id=pool)))
        cmd = "/bin/bash -c 'echo \"checking gpu\"; echo step 2; echo oops >&2; sleep 20'"
        for i in range(2):
            client.create_task("out", bm.BatchTaskCreateOptions(id=f"t{i}", command_line=cmd))
        with pytest.raises(HttpResponseError) as err:   # not started: no files yet
            list(client.list_task_files("out", "t0"))
        assert err.value.status_code == 409 and err.value.error.code == "TaskFilesUnavailable"
        # the same status on HEAD and on the streamed GET (azure-batch 15.1 reads no error body from either)
        for call in (client.get_task_file_properties, client.download_task_file):
            with pytest.raises(HttpResponseError) as err:
                call("out", "t0", "stdout.txt")
            assert err.value.status_code == 409
        standin.control.advance(10)
        assert {client.get_task("out", f"t{i}").node_info.node_id for i in range(2)} == set(nodes)
    tasks = {t.node_info.node_id: _wait_task(client, "out", t.id) for t in client.list_tasks("out")}
    good, bad = tasks[nodes[0]], tasks[nodes[1]]
    assert (good.execution_info.exit_code, bad.execution_info.exit_code) == (0, 42)
    assert bad.execution_info.failure_info.code == "FailureExitCode"

    def read(task, name, **kw):
        return b"".join(client.download_task_file("out", task.id, name, **kw)).decode()

    assert read(good, "stdout.txt") == "checking gpu\nstep 2\n" and read(good, "stderr.txt") == "oops\n"
    assert read(bad, "stderr.txt") == "oops\nfatal: /dev/nvidia0 missing\ncheck the driver\n"
    props = client.get_task_file_properties("out", bad.id, "stderr.txt")
    size = int(props.content_length)
    assert size == len(read(bad, "stderr.txt")) and props.url.endswith(f"/jobs/out/tasks/{bad.id}/files/stderr.txt")
    assert read(bad, "stderr.txt", ocp_range=f"bytes={size - 17}-{size - 1}") == "check the driver\n"
    assert {f.name for f in client.list_task_files("out", bad.id)} == {"stdout.txt", "stderr.txt"}
    with pytest.raises(HttpResponseError) as err:   # FileNotFound on the wire
        read(bad, "wd/result.json")
    assert err.value.status_code == 404
    # the node's counts follow the fault
    assert client.get_node(pool, nodes[1]).total_tasks_succeeded == 0
    assert client.get_node(pool, nodes[0]).total_tasks_succeeded == 1
    # a job elsewhere is not matched by the fault
    client.create_job(bm.BatchJobCreateOptions(id="other", pool_info=bm.BatchPoolInfo(pool_id=pool)))
    for i in range(2):
        client.create_task("other", bm.BatchTaskCreateOptions(id=f"o{i}", command_line="/bin/bash -c 'exit 0'"))
    assert {_wait_task(client, "other", f"o{i}").execution_info.exit_code for i in range(2)} == {0}
