"""Batch jobs, job schedules and tasks: enough to run a smoke-test command on a pool's idle node.

Kinds (keys lower-cased): ``batch_job`` "{account}/{job}", ``batch_job_schedule`` "{account}/{schedule}",
``batch_task`` "{account}/{job}/{task}".

A task waits (``active``) until its job's pool has an idle node, then claims the node that has been free
the longest and runs (``running``) for as long as its command line says - the sum of its ``sleep N``
(seconds; ``timeout /t N`` on Windows) - or ``timings.task_run()`` simulated seconds without one, and ends
``completed``. The exit code comes from the command line: the last ``exit N`` (or ``exit /b N``) in it,
else 0. One task per node at a time (taskSlotsPerNode is not modelled beyond 1).

A running task whose node goes away under it (pool deleted, node removed or rebooted, Spot node
preempted: ``batch_nodes.interrupted_at``) is requeued the way Batch does it: back to ``active``,
``executionInfo.requeueCount`` + 1 (TaskExecutionInformation.requeueCount in the Batch REST spec: "the
number of times the Task has been requeued by the Batch service as the result of a user request"), and it
runs again from the start on the next free node; a node removed with nodeDeallocationOption ``terminate``
ends its task ``completed`` with failureInfo instead, and ``taskcompletion``/``retaineddata`` let it finish
(batch_pools._leave).

A job can be disabled (``disableTasks`` requeue / terminate / wait: ``disabling`` until no task of it runs,
then ``disabled``; no task starts while it is not active), moved to another pool (PATCH/PUT ``poolInfo``,
refused unless the job is disabled) and enabled again (``enabling`` -> ``active``): its active tasks then run
on the new pool.

Job schedules create a job "{schedule}:job-{n}" at ``doNotRunUntil`` (or at once) and then every
``recurrenceInterval``, never while the previous job is still active; updating ``jobSpecification``
(for example ``poolInfo``) affects the jobs created afterwards.
"""
from __future__ import annotations

import re
from typing import Any

from ..core import timings
from ..core.errors import (
    ActiveJobAndScheduleQuotaReached, BatchError, InvalidPropertyValue, JobBeingDeleted, JobBeingTerminated,
    JobCompleted, JobExists, JobNotActive, JobNotFound, OperationInvalidForCurrentState, JobScheduleBeingDeleted, JobScheduleBeingTerminated, JobScheduleCompleted,
    JobScheduleExists, JobScheduleNotFound, JobScheduleWithSameIdExists, JobWithSameIdExists,
    MissingRequiredProperty, RequestBodyTooLarge, TaskExists, TaskNotFound,
)
from . import batch_nodes, batch_pools
from .batch_common import (
    apply_select, check_id, check_if_match, compile_filter, endpoint, etag, get_account, iso, max_results,
    parse_duration, quotas, refuse_shared_key, require_body,
)

JOB = "batch_job"
SCHEDULE = "batch_job_schedule"
TASK = "batch_task"
SCHEDULING_DELAY = 5.0
TERMINATE = 10.0
DELETE = 20.0
MAX_WALL = "P10675199DT2H48M5.4775807S"
_EXIT_RE = re.compile(r"\bexit\s+(?:/b\s+)?(-?\d+)", re.IGNORECASE)
_SLEEP_RE = re.compile(r"\b(?:sleep|timeout\s+/t)\s+(\d+(?:\.\d+)?)", re.IGNORECASE)


def register(ctx) -> None:
    ctx.store.register_advancer(JOB, advance_job)
    ctx.store.register_advancer(SCHEDULE, advance_schedule)
    ctx.store.register_advancer(TASK, advance_task)


def _k(*parts: str) -> str:
    return "/".join(parts).lower()


def _stamp(ctx, doc: dict, t: float) -> None:
    doc["eTag"] = etag(t)
    doc["lastModified"] = iso(ctx, t)


def _set_state(ctx, doc: dict, state: str, t: float) -> None:
    if doc.get("state") == state:
        return
    if doc.get("state") is not None:
        doc["previousState"] = doc["state"]
        doc["previousStateTransitionTime"] = doc.get("stateTransitionTime")
    doc["state"] = state
    doc["stateTransitionTime"] = iso(ctx, t)


def _pool_guard(ctx, account: str, pool_info: Any, auth_scheme: str | None) -> None:
    if isinstance(pool_info, dict) and pool_info.get("poolId"):
        pool = batch_pools.find_pool_raw(ctx, account, pool_info["poolId"])
        if batch_pools.is_gallery_pool(pool):
            refuse_shared_key(auth_scheme)


def _page(items: list[dict], select: str | None, maxresults: str | None, skip: str | None,
          default: int = 1000) -> tuple[list[dict], str | None]:
    limit = max_results(maxresults, default=default)
    start = int(skip) if skip and skip.isdigit() else 0
    page = items[start:start + limit]
    nxt = str(start + limit) if start + limit < len(items) else None
    return [apply_select(i, select) for i in page], nxt


def _active_quota(ctx, account: str, acct: dict) -> None:
    active = sum(1 for j in ctx.store.list(JOB, prefix=f"{account.lower()}/") if j.get("state") == "active"
                 and not (j.get("_sim") or {}).get("schedule"))
    active += sum(1 for s in ctx.store.list(SCHEDULE, prefix=f"{account.lower()}/") if s.get("state") == "active")
    if active >= quotas(acct)["active_jobs"]:
        raise ActiveJobAndScheduleQuotaReached(
            "The specified account has reached its quota of active jobs and job schedules.")


# -- jobs ----------------------------------------------------------------------------------------------

def _new_job(ctx, account: str, spec: dict, job_id: str, t: float, schedule: str | None = None) -> dict:
    pool_info = spec.get("poolInfo") or {}
    job: dict[str, Any] = {
        "id": job_id,
        "url": f"{endpoint(ctx, account)}/jobs/{job_id}",
        "creationTime": iso(ctx, t),
        "priority": spec.get("priority", 0),
        "maxParallelTasks": spec.get("maxParallelTasks", -1),
        "allowTaskPreemption": spec.get("allowTaskPreemption", False),
        "usesTaskDependencies": spec.get("usesTaskDependencies", False),
        "constraints": spec.get("constraints") or {"maxWallClockTime": MAX_WALL, "maxTaskRetryCount": 0},
        "poolInfo": pool_info,
        "onAllTasksComplete": spec.get("onAllTasksComplete") or "noaction",
        "onTaskFailure": spec.get("onTaskFailure") or "noaction",
        "executionInfo": {"startTime": iso(ctx, t)},
    }
    if pool_info.get("poolId"):
        job["executionInfo"]["poolId"] = pool_info["poolId"]
    for f in ("displayName", "jobManagerTask", "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings",
              "networkConfiguration", "metadata"):
        if spec.get(f) is not None:
            job[f] = spec[f]
    _set_state(ctx, job, "active", t)
    _stamp(ctx, job, t)
    job["_sim"] = {"account": account, "created": t, "schedule": schedule}
    ctx.store.put(JOB, _k(account, job_id), job)
    jm = spec.get("jobManagerTask")
    if isinstance(jm, dict) and jm.get("id") and jm.get("commandLine"):
        _new_task(ctx, account, job, {"id": jm["id"], "commandLine": jm["commandLine"],
                                      "displayName": jm.get("displayName")}, t, manager=True)
    return job


def add_job(ctx, account: str, body: Any, auth_scheme: str | None = None) -> dict:
    body = require_body(body)
    acct = get_account(ctx, account)
    job_id = check_id("job", body.get("id"))
    if not isinstance(body.get("poolInfo"), dict):
        raise MissingRequiredProperty("poolInfo")
    _pool_guard(ctx, account, body["poolInfo"], auth_scheme)
    if ctx.store.get(JOB, _k(account, job_id)) is not None:
        raise JobExists("The specified job already exists.")
    if ctx.store.get(SCHEDULE, _k(account, job_id)) is not None:
        raise JobScheduleWithSameIdExists(
            "A job schedule with the specified job id exists. Job and job schedule cannot have the same id.")
    _active_quota(ctx, account, acct)
    # A deleted job's tasks go with it: a new job of the same id starts empty. Listing collects the task documents
    # whose deletion time passed (the store deletes lazily), which would otherwise answer TaskExists to the new job.
    ctx.store.list(TASK, prefix=_k(account, job_id) + "/")
    return _new_job(ctx, account, body, job_id, ctx.clock.now())


def _job(ctx, account: str, job_id: str) -> dict:
    get_account(ctx, account)
    job = ctx.store.get(JOB, _k(account, job_id))
    if job is None:
        raise JobNotFound("The specified job does not exist.")
    return job


def get_job(ctx, account: str, job_id: str, auth_scheme: str | None = None) -> dict:
    job = _job(ctx, account, job_id)
    _pool_guard(ctx, account, job.get("poolInfo"), auth_scheme)
    return job


def list_jobs(ctx, account: str, flt=None, select=None, maxresults=None, skip=None, schedule: str | None = None):
    get_account(ctx, account)
    pred = compile_filter(flt)
    jobs = [j for j in ctx.store.list(JOB, prefix=f"{account.lower()}/") if pred(j)]
    if schedule is not None:
        get_schedule(ctx, account, schedule)
        jobs = [j for j in jobs if str((j["_sim"] or {}).get("schedule") or "").lower() == schedule.lower()]
    return _page(jobs, select, maxresults, skip)


def _job_writable(job: dict) -> None:
    if job["state"] == "deleting":
        raise JobBeingDeleted("The specified job has been marked for deletion and is being "
                              "garbage collected.")


def _job_open(job: dict) -> None:
    """The job still takes changes and tasks: not completed, terminating or being deleted."""
    if job["state"] == "completed":
        raise JobCompleted("The specified job is already in a completed state.")
    if job["state"] == "terminating":
        raise JobBeingTerminated("The specified job is being terminated.")
    _job_writable(job)


def delete_job(ctx, account: str, job_id: str, auth_scheme: str | None = None) -> None:
    job = get_job(ctx, account, job_id, auth_scheme)
    if job["state"] == "deleting":
        return
    t = ctx.clock.now()
    _set_state(ctx, job, "deleting", t)
    job["_sim"]["delete_at"] = t + DELETE
    ctx.store.put(JOB, _k(account, job_id), job)
    for task in ctx.store.list(TASK, prefix=_k(account, job_id) + "/"):
        task["_sim"]["delete_at"] = t + DELETE
        ctx.store.put(TASK, _k(account, job_id, task["id"]), task)


def terminate_job(ctx, account: str, job_id: str, body: Any = None, auth_scheme: str | None = None) -> None:
    job = get_job(ctx, account, job_id, auth_scheme)
    _job_writable(job)
    if job["state"] == "completed":
        raise JobCompleted("The specified job is already in a completed state.")
    if job["state"] == "terminating":
        return
    t = ctx.clock.now()
    reason = (body or {}).get("terminateReason") if isinstance(body, dict) else None
    _set_state(ctx, job, "terminating", t)
    job["_sim"]["terminate_at"] = t
    job["_sim"]["terminate_reason"] = reason or "UserTerminate"
    _stamp(ctx, job, t)
    ctx.store.put(JOB, _k(account, job_id), job)


# -- disable / enable / update (the moves of a roll: disable, PATCH poolInfo, enable) --------------------

DISABLE_OPTIONS = ("requeue", "terminate", "wait")   # DisableBatchJobOption (azure-batch 15.1 models/_enums.py)
DISABLE = 2.0    # disabling -> disabled once no task runs any more, at the earliest after this (a guess)
ENABLE = 2.0     # enabling -> active (a guess)


def _schedulable(job: dict, t: float) -> bool:
    """Whether the job starts new tasks at t: active, or enabling long enough ago (read from the stored job, which
    a task's advancer sees unadvanced)."""
    if job.get("state") == "active":
        return True
    enabled = (job.get("_sim") or {}).get("enabled_at")
    return job.get("state") == "enabling" and enabled is not None and t >= enabled


def disable_job(ctx, account: str, job_id: str, body: Any, auth_scheme: str | None = None,
                headers: dict | None = None) -> dict:
    """Job_Disable: the job goes `disabling`, then `disabled` once its running tasks are dealt with by
    `disableTasks` - requeue (stopped now, back to active, requeueCount + 1, run again after enable), terminate
    (stopped now, completed with failureInfo, never run again) or wait (left to finish). No task starts until the
    job is enabled again. Rules from the SDK docstrings (azure-batch 15.1 `_disable_job_internal`,
    DisableBatchJobOption): disabling a job that is disabling or disabled is allowed, any other state than active
    answers 409 (code JobNotActive, BatchErrorCodeStrings; which code Batch picks per state is a guess).
    """
    body = require_body(body)
    job = get_job(ctx, account, job_id, auth_scheme)
    check_if_match(headers or {}, job["eTag"])
    option = body.get("disableTasks")
    if option is None or option == "":
        raise MissingRequiredProperty("disableTasks")
    if str(option).lower() not in DISABLE_OPTIONS:
        raise InvalidPropertyValue("disableTasks", option, f"disableTasks must be one of {', '.join(DISABLE_OPTIONS)}.")
    if job["state"] in ("disabling", "disabled"):
        return job
    _job_writable(job)
    if job["state"] != "active" and not (job["state"] == "enabling" and _schedulable(job, ctx.clock.now())):
        raise JobNotActive(f"The specified job is not active (it is {job['state']}); only an active job can be "
                           "disabled.", [("JobState", job["state"])])
    t = ctx.clock.now()
    option = str(option).lower()
    if option in ("requeue", "terminate"):
        for key in job["_sim"].get("tasks", []):
            task = ctx.store.get(TASK, key)   # advanced to now: started/finished as of t
            if task is not None and task["state"] == "running":
                _stop_running(ctx, task, t, option)
                ctx.store.put(TASK, key, task)
    _set_state(ctx, job, "disabling", t)
    job["_sim"]["disable"] = {"at": t, "option": option}
    job["_sim"].pop("enabled_at", None)
    _stamp(ctx, job, t)
    ctx.store.put(JOB, _k(account, job_id), job)
    return job


def enable_job(ctx, account: str, job_id: str, auth_scheme: str | None = None, headers: dict | None = None) -> dict:
    """Job_Enable: a disabled (or disabling) job goes `enabling`, then `active`, and its active tasks are scheduled
    again. Enabling an active job changes nothing (a guess); a completed, terminating or deleting job answers 409
    with that state's code (a guess; the SDK docstring only says "sets a disabled Job to the enabling state")."""
    job = get_job(ctx, account, job_id, auth_scheme)
    check_if_match(headers or {}, job["eTag"])
    _job_open(job)
    if job["state"] in ("active", "enabling"):
        return job
    t = ctx.clock.now()
    _set_state(ctx, job, "enabling", t)
    job["_sim"]["enabled_at"] = t + ENABLE
    job["_sim"].pop("disable", None)
    _stamp(ctx, job, t)
    ctx.store.put(JOB, _k(account, job_id), job)
    return job


_JOB_UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo",
                  "onAllTasksComplete", "metadata", "networkConfiguration")


def update_job(ctx, account: str, job_id: str, body: Any, auth_scheme: str | None = None,
               headers: dict | None = None, replace: bool = False) -> dict:
    """Job_Update (PATCH: only the given properties change) and Job_Replace (PUT: poolInfo required, the others
    reset to their defaults when left out).

    Rules (BatchJobUpdateOptions / BatchJob docstrings in azure-batch 15.1 models/_models.py):
    - poolInfo may change only while the job is disabled ("The Patch Job call will fail if you include the
      poolInfo element and the Job is not disabled"): a PATCH that includes it, or a PUT that changes it, on a job
      in any other state answers 409 OperationInvalidForCurrentState (the code is a guess);
    - onAllTasksComplete cannot go from terminatejob back to noaction: 400 InvalidPropertyValue (documented);
    - priority is -1000..1000 (documented), maxParallelTasks -1 or > 0 (documented): 400 InvalidPropertyValue.
    The new pool takes the job's active tasks once the job is enabled again; tasks that ran on the old pool stay
    where they ran.
    """
    body = require_body(body)
    job = get_job(ctx, account, job_id, auth_scheme)
    check_if_match(headers or {}, job["eTag"])
    _job_open(job)
    pool_info = body.get("poolInfo")
    if replace and not isinstance(pool_info, dict):
        raise MissingRequiredProperty("poolInfo")
    if pool_info is not None:
        if not isinstance(pool_info, dict) or not (pool_info.get("poolId") or pool_info.get("autoPoolSpecification")):
            raise InvalidPropertyValue("poolInfo", None, "poolInfo must specify poolId or autoPoolSpecification.")
        changes = not replace or pool_info != job.get("poolInfo")
        if changes and job["state"] != "disabled":
            raise OperationInvalidForCurrentState(
                "The specified operation is not valid for the current state of the resource.",
                [("PropertyName", "poolInfo"), ("JobState", job["state"]),
                 ("Reason", "The pool of a job can be changed only while the job is disabled: disable the job "
                  "(disableTasks requeue or wait), update poolInfo, then enable it.")])
        _pool_guard(ctx, account, pool_info, auth_scheme)
    prio = body.get("priority")
    if prio is not None and (not isinstance(prio, int) or not -1000 <= prio <= 1000):
        raise InvalidPropertyValue("priority", prio, "The priority must be between -1000 and 1000.")
    mpt = body.get("maxParallelTasks")
    if mpt is not None and (not isinstance(mpt, int) or (mpt != -1 and mpt <= 0)):
        raise InvalidPropertyValue("maxParallelTasks", mpt, "maxParallelTasks must be -1 or greater than 0.")
    if job.get("onAllTasksComplete") == "terminatejob" and body.get("onAllTasksComplete") == "noaction":
        raise InvalidPropertyValue("onAllTasksComplete", "noaction",
                                   "Once automatic job termination (terminatejob) is engaged it cannot be turned off.")
    defaults = {"priority": 0, "maxParallelTasks": -1, "allowTaskPreemption": False,
                "constraints": {"maxWallClockTime": MAX_WALL, "maxTaskRetryCount": 0},
                "onAllTasksComplete": "noaction"}
    for f in _JOB_UPDATABLE:
        if body.get(f) is not None:
            job[f] = body[f]
        elif replace and f in defaults:
            job[f] = defaults[f]
        elif replace and f == "metadata":
            job.pop("metadata", None)
    if pool_info is not None and pool_info.get("poolId"):
        job["executionInfo"]["poolId"] = pool_info["poolId"]
    _stamp(ctx, job, ctx.clock.now())
    ctx.store.put(JOB, _k(account, job_id), job)
    return job


def advance_job(ctx, job: dict) -> dict:
    t = ctx.clock.now()
    sim = job["_sim"]
    if job["state"] == "disabling":
        # disabled once no task of the job runs any more (wait: when the last running one ends)
        tasks = [x for x in (ctx.store.get(TASK, k) for k in sim.get("tasks", [])) if x is not None]
        if not any(x["state"] == "running" for x in tasks):
            since = sim["disable"]["at"]
            ended = [x["_sim"]["end"] for x in tasks if x["_sim"].get("end") is not None
                     and since <= x["_sim"]["end"] <= t]
            at = max([since + DISABLE] + ended)
            if t >= at:
                _set_state(ctx, job, "disabled", at)
        return job
    if job["state"] == "enabling" and t >= sim.get("enabled_at", t):
        _set_state(ctx, job, "active", sim.get("enabled_at", t))
    if job["state"] == "terminating" and t >= sim["terminate_at"] + TERMINATE:
        _complete_job(ctx, job, sim["terminate_at"] + TERMINATE, sim.get("terminate_reason") or "UserTerminate")
    elif job["state"] == "active":
        tasks = [ctx.store.get(TASK, k) for k in sim.get("tasks", [])]
        tasks = [x for x in tasks if x is not None]
        jm_id = str((job.get("jobManagerTask") or {}).get("id") or "").lower()
        kill = (job.get("jobManagerTask") or {}).get("killJobOnCompletion", True)
        ends = {x["id"].lower(): x["_sim"].get("end") for x in tasks}
        if jm_id and kill and ends.get(jm_id) is not None and ends[jm_id] <= t:
            _complete_job(ctx, job, ends[jm_id], "JMComplete")
        elif job.get("onAllTasksComplete") == "terminatejob" and tasks and \
                all(e is not None and e <= t for e in ends.values()):
            _complete_job(ctx, job, max(ends.values()), "AllTasksComplete")
    return job


def _complete_job(ctx, job: dict, at: float, reason: str) -> None:
    _set_state(ctx, job, "completed", at)
    job["executionInfo"]["endTime"] = iso(ctx, at)
    job["executionInfo"]["terminateReason"] = reason


def task_counts(ctx, account: str, job_id: str, auth_scheme: str | None = None) -> dict:
    get_job(ctx, account, job_id, auth_scheme)
    c = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
    for task in ctx.store.list(TASK, prefix=_k(account, job_id) + "/"):
        st = "active" if task["state"] == "preparing" else task["state"]
        c[st] += 1
        if st == "completed":
            c["succeeded" if (task.get("executionInfo") or {}).get("result") == "success" else "failed"] += 1
    return {"taskCounts": dict(c), "taskSlotCounts": dict(c)}


# -- tasks ---------------------------------------------------------------------------------------------

def _exit_code(command: str) -> int:
    found = _EXIT_RE.findall(command or "")
    return int(found[-1]) if found else 0


def _run_seconds(command: str) -> float:
    """How long the command runs: the sum of its sleeps, else the default task length."""
    sleeps = [float(x) for x in _SLEEP_RE.findall(command or "")]
    return sum(sleeps) if sleeps else timings.task_run()


def _new_task(ctx, account: str, job: dict, body: dict, t: float, manager: bool = False) -> dict:
    task_id = body["id"]
    task: dict[str, Any] = {
        "id": task_id,
        "url": f"{endpoint(ctx, account)}/jobs/{job['id']}/tasks/{task_id}",
        "creationTime": iso(ctx, t),
        "commandLine": body["commandLine"],
        "constraints": body.get("constraints") or {"maxWallClockTime": MAX_WALL, "retentionTime": "P7D",
                                                    "maxTaskRetryCount": 0},
        "requiredSlots": body.get("requiredSlots", 1),
        "executionInfo": {"retryCount": 0, "requeueCount": 0},
    }
    for f in ("displayName", "exitConditions", "containerSettings", "resourceFiles", "outputFiles",
              "environmentSettings", "affinityInfo", "userIdentity", "multiInstanceSettings", "dependsOn",
              "applicationPackageReferences"):
        if body.get(f) is not None:
            task[f] = body[f]
    _set_state(ctx, task, "active", t)
    _stamp(ctx, task, t)
    task["_sim"] = {"account": account, "job": job["id"], "created": t, "start": None, "end": None,
                    "exit": _exit_code(body["commandLine"]), "run": _run_seconds(body["commandLine"]),
                    "manager": manager}
    ctx.store.put(TASK, _k(account, job["id"], task_id), task)
    job["_sim"].setdefault("tasks", []).append(_k(account, job["id"], task_id))
    ctx.store.put(JOB, _k(account, job["id"]), job)
    return task


def _validate_task(ctx, account: str, job: dict, body: Any) -> dict:
    body = require_body(body)
    task_id = check_id("task", body.get("id"))
    if not body.get("commandLine"):
        raise MissingRequiredProperty("commandLine")
    _job_open(job)
    # get, not get_raw: a task of an earlier, deleted job of the same id is dropped here (the store removes a
    # document past its delete_at when it is read), as Azure deletes a job's tasks with the job
    if ctx.store.get(TASK, _k(account, job["id"], task_id)) is not None:
        raise TaskExists("The specified task already exists.")
    return body


def add_task(ctx, account: str, job_id: str, body: Any, auth_scheme: str | None = None) -> dict:
    job = get_job(ctx, account, job_id, auth_scheme)
    body = _validate_task(ctx, account, job, body)
    return _new_task(ctx, account, job, body, ctx.clock.now())


def add_task_collection(ctx, account: str, job_id: str, body: Any, auth_scheme: str | None = None) -> list[dict]:
    job = get_job(ctx, account, job_id, auth_scheme)
    body = require_body(body)
    tasks = body.get("value")
    if not isinstance(tasks, list) or not tasks:
        raise MissingRequiredProperty("value")
    if len(tasks) > 100:
        raise RequestBodyTooLarge("The request body is too large and exceeds the maximum "
                                  "permissible limit.", [("MaxTasksPerRequest", "100")])
    out = []
    t = ctx.clock.now()
    for item in tasks:
        try:
            b = _validate_task(ctx, account, job, item)
            task = _new_task(ctx, account, job, b, t)
            out.append({"status": "success", "taskId": task["id"], "eTag": task["eTag"],
                        "lastModified": task["lastModified"], "location": task["url"]})
        except BatchError as e:
            out.append({"status": "clienterror" if e.status < 500 else "servererror",
                        "taskId": (item or {}).get("id") if isinstance(item, dict) else None,
                        "error": {"code": e.code, "message": {"lang": "en-US", "value": e.message},
                                  "values": [{"key": k, "value": v} for k, v in e.values]}})
    return out


def get_task(ctx, account: str, job_id: str, task_id: str, auth_scheme: str | None = None) -> dict:
    get_job(ctx, account, job_id, auth_scheme)
    task = ctx.store.get(TASK, _k(account, job_id, task_id))
    if task is None:
        raise TaskNotFound("The specified task does not exist.")
    return task


def list_tasks(ctx, account: str, job_id: str, flt=None, select=None, maxresults=None, skip=None,
               auth_scheme: str | None = None):
    get_job(ctx, account, job_id, auth_scheme)
    pred = compile_filter(flt)
    tasks = [x for x in ctx.store.list(TASK, prefix=_k(account, job_id) + "/") if pred(x)]
    return _page(tasks, select, maxresults, skip)


def _requeue_if_interrupted(ctx, task: dict, t: float) -> None:
    """A running task whose node went away is active again, requeueCount + 1, or - nodeDeallocationOption
    terminate - completed with a failure (see the module docstring)."""
    sim = task["_sim"]
    if sim.get("start") is None or sim.get("end") is None:
        return
    pool = batch_pools.find_pool_raw(ctx, sim["account"], sim["pool"])
    index = batch_nodes.parse_node_id(sim["pool"], sim["node"])
    hit = batch_nodes.interrupted_at(pool, index, task["url"], sim["start"], sim["end"]) if index is not None else None
    if hit is None or hit[0] > t:
        return
    if hit[1] == "terminate":
        _end_task(ctx, task, hit[0], "TaskEnded", "The task was terminated because its node was removed from the "
                  "pool with nodeDeallocationOption terminate.")
    else:
        _requeue(ctx, task, hit[0])


def _requeue(ctx, task: dict, at: float) -> None:
    """Back to active, requeueCount + 1; it runs again from the start on the next free node."""
    _set_state(ctx, task, "active", at)
    task["executionInfo"]["requeueCount"] = int(task["executionInfo"].get("requeueCount") or 0) + 1
    task["executionInfo"].pop("startTime", None)
    task.pop("nodeInfo", None)
    task["_sim"].update(start=None, end=None, node=None, node_url=None, requeued_at=at)


def _end_task(ctx, task: dict, at: float, code: str, message: str) -> None:
    """Completed with failureInfo: the task was ended by the service and will not run again (the failureInfo
    code TaskEnded is a guess for every such end; Batch documents only that failureInfo says it was terminated)."""
    _set_state(ctx, task, "completed", at)
    task["executionInfo"].update({"endTime": iso(ctx, at), "result": "failure", "failureInfo": {
        "category": "usererror", "code": code, "message": message}})
    task["_sim"]["end"] = at


def _stop_running(ctx, task: dict, t: float, how: str) -> None:
    """Stop a running task now (job disable requeue/terminate): free its node, then requeue or end it."""
    sim = task["_sim"]
    pool = batch_pools.find_pool_raw(ctx, sim["account"], sim["pool"])
    index = batch_nodes.parse_node_id(sim["pool"], sim["node"]) if pool is not None else None
    if index is not None:
        for iv in (pool["_sim"].get("busy") or {}).get(str(index), []):
            if len(iv) > 3 and iv[3] == task["url"] and iv[0] <= t < iv[1]:
                iv[1] = t
        ctx.store.put(batch_pools.KIND, batch_pools.pool_key(sim["account"], sim["pool"]), pool)
    if how == "terminate":
        _end_task(ctx, task, t, "TaskEnded", "The task was terminated because its job was disabled with "
                  "disableTasks terminate.")
    else:
        _requeue(ctx, task, t)


def _exit_on(ctx, task: dict, account: str, pool_id: str, nid: str) -> int:
    """The exit code of this run of the task on node `nid`: the command line's, unless a ``task_failed`` fault
    (match: account, pool_regex, node_regex, job_regex) picks this run; its ``exit_code`` (default 1) and
    ``stderr`` (text appended to stderr.txt) then apply. Decided when the task gets its node, so a requeued task
    runs again with the command line's own code unless the fault fires again."""
    sim = task["_sim"]
    sim["exit"] = _exit_code(task["commandLine"])
    sim.pop("fault_stderr", None)
    fault = ctx.faults.take("task_failed", account=account, pool=pool_id, node=nid, job=sim["job"])
    if fault is not None:
        sim["exit"] = int(fault.get("exit_code", 1))
        sim["fault_stderr"] = str(fault.get("stderr") or "")
    return sim["exit"]


def advance_task(ctx, task: dict) -> dict:
    t = ctx.clock.now()
    sim = task["_sim"]
    account = sim["account"]
    if task["state"] in ("active", "preparing", "running"):
        _requeue_if_interrupted(ctx, task, t)
    if sim.get("start") is None and task["state"] == "active":
        job = ctx.store.get_raw(JOB, _k(account, sim["job"]))
        if job is None:
            return task
        jsim = job.get("_sim") or {}
        if jsim.get("terminate_at") is not None and t >= jsim["terminate_at"]:
            _end_task(ctx, task, jsim["terminate_at"], "TaskEnded", "Task was ended because its job was terminated.")
            return task
        pool_id = (job.get("executionInfo") or {}).get("poolId") or (job.get("poolInfo") or {}).get("poolId")
        if not pool_id or not _schedulable(job, t):
            return task
        run = float(sim.get("run") or timings.task_run())
        earliest = max(sim["created"], sim.get("requeued_at") or 0.0, jsim.get("enabled_at") or 0.0) + SCHEDULING_DELAY
        claim = batch_pools.claim_node(ctx, account, pool_id, earliest, run,
                                       lambda nid: _exit_on(ctx, task, account, pool_id, nid), task["url"])
        if claim is None:
            return task
        nid, start, node_url = claim
        sim.update(start=start, end=start + run, node=nid, pool=pool_id, node_url=node_url)
    if sim.get("start") is not None and task["state"] in ("active", "preparing") and t >= sim["start"]:
        _set_state(ctx, task, "running", sim["start"])
        task["executionInfo"].update({"startTime": iso(ctx, sim["start"])})
        task["nodeInfo"] = {
            "affinityId": f"TVM:{sim['node']}", "nodeUrl": sim["node_url"], "poolId": sim["pool"],
            "nodeId": sim["node"], "taskRootDirectory": f"workitems/{sim['job']}/job-1/{task['id']}",
            "taskRootDirectoryUrl": f"{sim['node_url']}/files/workitems/{sim['job']}/job-1/{task['id']}",
        }
    if sim.get("end") is not None and task["state"] == "running" and t >= sim["end"]:
        _set_state(ctx, task, "completed", sim["end"])
        code = int(sim["exit"])
        task["executionInfo"].update({"endTime": iso(ctx, sim["end"]), "exitCode": code,
                                      "result": "success" if code == 0 else "failure"})
        if code != 0:
            task["executionInfo"]["failureInfo"] = {
                "category": "usererror", "code": "FailureExitCode",
                "message": "The task exited with an exit code representing a failure",
                "details": [{"name": "Message", "value": "The task exited with an exit code representing a failure"}],
            }
    return task


# -- task files (stdout.txt / stderr.txt) ---------------------------------------------------------------

OUTPUT_FILES = ("stdout.txt", "stderr.txt")
# `echo TEXT` (TEXT plain, or in double quotes, the usual form inside bash -c '...'), optionally `>&2`
_ECHO_RE = re.compile(r"""\becho\s+(?:-[neE]+\s+)?(?:"([^"]*)"|([^;&|>'"\n]*))\s*(1?>&2)?""")


def _task_output(task: dict) -> dict[str, bytes]:
    """What the task wrote, by file name. The stand-in runs no command: stdout.txt holds the text of the command
    line's ``echo`` commands, stderr.txt those redirected with ``>&2`` plus a ``task_failed`` fault's ``stderr``.
    A task that ran is enough to have both files (Batch creates them when the task starts)."""
    out: dict[str, list[str]] = {"stdout.txt": [], "stderr.txt": []}
    for quoted, plain, to_err in _ECHO_RE.findall(task.get("commandLine") or ""):
        out["stderr.txt" if to_err else "stdout.txt"].append(quoted if quoted else plain.strip())
    fault = (task.get("_sim") or {}).get("fault_stderr")
    if fault:
        out["stderr.txt"] += fault.splitlines()
    return {name: "".join(f"{line}\n" for line in lines).encode() for name, lines in out.items()}


def _task_files_available(ctx, task: dict) -> None:
    """Files exist on the node the task runs or ran on, from its start until that node (or its pool) goes away.
    TaskFilesUnavailable is Batch's code for "the node files for the task are not available"
    (BatchErrorCode.TaskFilesUnavailable in the .NET SDK docs); its 409 status, and using it for a task that has
    not started, are guesses."""
    sim = task["_sim"]
    if sim.get("start") is None or task["state"] not in ("running", "completed") or not sim.get("node"):
        raise BatchError(409, "TaskFilesUnavailable", "The task has not started on a node yet: it has no files.")
    pool = batch_pools.find_pool_raw(ctx, sim["account"], sim["pool"])
    index = batch_nodes.parse_node_id(sim["pool"], sim["node"]) if pool is not None else None
    if index is None or not any(v.index == index for v in batch_nodes.iter_nodes(ctx, pool)):
        raise BatchError(409, "TaskFilesUnavailable",
                         f"The node {sim['node']} the task ran on is no longer in pool {sim['pool']}.")


def _file_entry(ctx, account: str, task: dict, name: str, size: int) -> dict:
    t = task["_sim"]["start"]
    return {"name": name, "url": f"{task['url']}/files/{name}", "isDirectory": False,
            "properties": {"creationTime": iso(ctx, t), "lastModified": iso(ctx, task["_sim"].get("end") or t),
                           "contentLength": size, "contentType": "text/plain", "fileMode": "0100644"}}


def get_task_file(ctx, account: str, job_id: str, task_id: str, path: str,
                  auth_scheme: str | None = None) -> tuple[bytes, dict]:
    """File_GetFromTask / File_GetPropertiesFromTask: (content, list entry) of ``stdout.txt`` or ``stderr.txt``.
    Another path is 404 FileNotFound (Batch's code for a missing node file); see _task_files_available."""
    task = get_task(ctx, account, job_id, task_id, auth_scheme)
    _task_files_available(ctx, task)
    files = _task_output(task)
    if path not in files:
        raise BatchError(404, "FileNotFound", f"The specified file {path} does not exist.")
    return files[path], _file_entry(ctx, account, task, path, len(files[path]))


def list_task_files(ctx, account: str, job_id: str, task_id: str, auth_scheme: str | None = None) -> list[dict]:
    """File_ListFromTask: the entries of stdout.txt and stderr.txt (the task's working directory is not modelled)."""
    task = get_task(ctx, account, job_id, task_id, auth_scheme)
    _task_files_available(ctx, task)
    return [_file_entry(ctx, account, task, name, len(data)) for name, data in _task_output(task).items()]


# -- job schedules ----------------------------------------------------------------------------------

def _check_schedule_body(body: dict, require: bool) -> None:
    if require and not isinstance(body.get("schedule"), dict):
        raise MissingRequiredProperty("schedule")
    if require and not isinstance(body.get("jobSpecification"), dict):
        raise MissingRequiredProperty("jobSpecification")
    spec = body.get("jobSpecification")
    if spec is not None and not isinstance((spec or {}).get("poolInfo"), dict):
        raise MissingRequiredProperty("jobSpecification.poolInfo")
    sched = body.get("schedule") or {}
    if sched.get("recurrenceInterval") is not None:
        secs = parse_duration(sched["recurrenceInterval"])
        if secs is None or secs < 60:
            raise InvalidPropertyValue("recurrenceInterval", sched["recurrenceInterval"],
                                       "The recurrence interval must be at least 1 minute.")


def add_schedule(ctx, account: str, body: Any, auth_scheme: str | None = None) -> dict:
    body = require_body(body)
    acct = get_account(ctx, account)
    sid = check_id("job schedule", body.get("id"))
    _check_schedule_body(body, True)
    _pool_guard(ctx, account, body["jobSpecification"].get("poolInfo"), auth_scheme)
    if ctx.store.get(SCHEDULE, _k(account, sid)) is not None:
        raise JobScheduleExists("The specified job schedule already exists.")
    if ctx.store.get(JOB, _k(account, sid)) is not None:
        raise JobWithSameIdExists(
            "A job with the specified job schedule id exists. Job and job schedule cannot have the same id.")
    _active_quota(ctx, account, acct)
    t = ctx.clock.now()
    doc: dict[str, Any] = {
        "id": sid,
        "url": f"{endpoint(ctx, account)}/jobschedules/{sid}",
        "creationTime": iso(ctx, t),
        "schedule": body["schedule"],
        "jobSpecification": body["jobSpecification"],
        "executionInfo": {},
    }
    for f in ("displayName", "metadata"):
        if body.get(f) is not None:
            doc[f] = body[f]
    _set_state(ctx, doc, "active", t)
    _stamp(ctx, doc, t)
    doc["_sim"] = {"account": account, "created": t, "runs": 0, "last_run": None}
    ctx.store.put(SCHEDULE, _k(account, sid), doc)
    return ctx.store.get(SCHEDULE, _k(account, sid))


def _schedule(ctx, account: str, sid: str) -> dict:
    get_account(ctx, account)
    doc = ctx.store.get(SCHEDULE, _k(account, sid))
    if doc is None:
        raise JobScheduleNotFound("The specified job schedule does not exist.")
    return doc


def get_schedule(ctx, account: str, sid: str, auth_scheme: str | None = None) -> dict:
    doc = _schedule(ctx, account, sid)
    _pool_guard(ctx, account, (doc.get("jobSpecification") or {}).get("poolInfo"), auth_scheme)
    return doc


def schedule_exists(ctx, account: str, sid: str) -> bool:
    get_account(ctx, account)
    return ctx.store.get(SCHEDULE, _k(account, sid)) is not None


def list_schedules(ctx, account: str, flt=None, select=None, maxresults=None, skip=None):
    get_account(ctx, account)
    pred = compile_filter(flt)
    docs = [d for d in ctx.store.list(SCHEDULE, prefix=f"{account.lower()}/") if pred(d)]
    return _page(docs, select, maxresults, skip)


def _schedule_writable(doc: dict) -> None:
    if doc["state"] == "deleting":
        raise JobScheduleBeingDeleted("The specified job schedule has been marked for deletion "
                                      "and is being reclaimed.")
    if doc["state"] == "terminating":
        raise JobScheduleBeingTerminated("The specified job schedule is being terminated.")
    if doc["state"] == "completed":
        raise JobScheduleCompleted("The specified job schedule is already in completed state.")


def update_schedule(ctx, account: str, sid: str, body: Any, auth_scheme: str | None = None,
                    replace: bool = False) -> dict:
    body = require_body(body)
    doc = get_schedule(ctx, account, sid, auth_scheme)
    _schedule_writable(doc)
    _check_schedule_body(body, replace)
    if body.get("jobSpecification") is not None:
        _pool_guard(ctx, account, body["jobSpecification"].get("poolInfo"), auth_scheme)
    for f in ("schedule", "jobSpecification", "metadata"):
        if body.get(f) is not None:
            doc[f] = body[f]
        elif replace and f == "metadata":
            doc.pop("metadata", None)
    _stamp(ctx, doc, ctx.clock.now())
    ctx.store.put(SCHEDULE, _k(account, sid), doc)
    return ctx.store.get(SCHEDULE, _k(account, sid))


def delete_schedule(ctx, account: str, sid: str, auth_scheme: str | None = None) -> None:
    doc = get_schedule(ctx, account, sid, auth_scheme)
    if doc["state"] == "deleting":
        return
    t = ctx.clock.now()
    _set_state(ctx, doc, "deleting", t)
    doc["_sim"]["delete_at"] = t + DELETE
    ctx.store.put(SCHEDULE, _k(account, sid), doc)
    for job in ctx.store.list(JOB, prefix=f"{account.lower()}/"):
        if str(job["_sim"].get("schedule") or "").lower() == sid.lower():
            delete_job(ctx, account, job["id"])


def terminate_schedule(ctx, account: str, sid: str, auth_scheme: str | None = None) -> None:
    doc = get_schedule(ctx, account, sid, auth_scheme)
    if doc["state"] in ("terminating", "completed"):
        return
    _schedule_writable(doc)
    t = ctx.clock.now()
    _set_state(ctx, doc, "terminating", t)
    doc["_sim"]["terminate_at"] = t
    ctx.store.put(SCHEDULE, _k(account, sid), doc)
    for job in ctx.store.list(JOB, prefix=f"{account.lower()}/"):
        if str(job["_sim"].get("schedule") or "").lower() == sid.lower() and job["state"] == "active":
            terminate_job(ctx, account, job["id"], {"terminateReason": "UserTerminate"})


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def advance_schedule(ctx, doc: dict) -> dict:
    t = ctx.clock.now()
    sim = doc["_sim"]
    account = sim["account"]
    if doc["state"] == "terminating":
        if t >= sim["terminate_at"] + TERMINATE:
            _set_state(ctx, doc, "completed", sim["terminate_at"] + TERMINATE)
            doc["executionInfo"]["endTime"] = iso(ctx, sim["terminate_at"] + TERMINATE)
            doc["executionInfo"].pop("nextRunTime", None)
        return doc
    if doc["state"] != "active":
        return doc
    sched = doc.get("schedule") or {}
    first = _parse_time(sched.get("doNotRunUntil")) or sim["created"]
    interval = parse_duration(sched.get("recurrenceInterval"))
    not_after = _parse_time(sched.get("doNotRunAfter"))
    for _ in range(1000):
        if sim["runs"] == 0:
            due = first
        else:
            if not interval:
                due = None
            else:
                due = sim["last_run"] + interval
                recent = ctx.store.get(JOB, _k(account, doc["executionInfo"]["recentJob"]["id"])) \
                    if doc["executionInfo"].get("recentJob") else None
                if recent is not None and recent.get("state") != "completed":
                    # one active job per schedule: wait for it, skipping the recurrences it overlaps
                    if due <= t:
                        skips = int((t - due) // interval) + 1
                        sim["last_run"] += skips * interval
                        due = sim["last_run"] + interval
                    doc["executionInfo"]["nextRunTime"] = iso(ctx, due)
                    return doc
                if recent is not None:
                    ended = _parse_time((recent.get("executionInfo") or {}).get("endTime")) or due
                    if ended > due:
                        due = due + ((ended - due) // interval + 1) * interval
        if due is None:
            # single run: the schedule completes with its job
            recent = ctx.store.get(JOB, _k(account, doc["executionInfo"]["recentJob"]["id"])) \
                if doc["executionInfo"].get("recentJob") else None
            if recent is None or recent.get("state") == "completed":
                end = _parse_time((recent or {}).get("executionInfo", {}).get("endTime")) or t
                _set_state(ctx, doc, "completed", end)
                doc["executionInfo"]["endTime"] = iso(ctx, end)
            doc["executionInfo"].pop("nextRunTime", None)
            return doc
        if not_after is not None and due > not_after:
            _set_state(ctx, doc, "completed", not_after)
            doc["executionInfo"]["endTime"] = iso(ctx, not_after)
            doc["executionInfo"].pop("nextRunTime", None)
            return doc
        if due > t:
            doc["executionInfo"]["nextRunTime"] = iso(ctx, due)
            return doc
        sim["runs"] += 1
        sim["last_run"] = due
        job_id = f"{doc['id']}:job-{sim['runs']}"
        spec = dict(doc.get("jobSpecification") or {})
        _new_job(ctx, account, spec, job_id, due, schedule=doc["id"])
        doc["executionInfo"]["recentJob"] = {"id": job_id, "url": f"{endpoint(ctx, account)}/jobs/{job_id}"}
    return doc
