"""Smoke test of a new pool before it serves: a Batch job, one task per node (or ``smoke_test.tasks``), the
configured command line; every task must exit 0 within ``smoke_test.timeout_minutes``.

Success deletes the job and returns what ran. Failure (a task exited non-zero, Batch ended it at the timeout,
or the wait ran out) deletes the job too and fails the task at once (``AirflowFailException``: a retry would
test the same image on the same pool) naming each failed node, its exit code or Batch's failure, and the last
lines of its task's ``stderr.txt`` / ``stdout.txt`` when Batch still serves them. Deleting the pool on failure
is the DAG's (the roll's) business, not this operator's.

Idempotent: the job id is derived from the pool id (``smoke-<pool id>``), so a retry or a resumed run finds the
job it made and waits for it instead of starting another; an unfinished job from an earlier series is
replaced only if it is not active.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from batch_images.pool_facts import batch_error_text, enum_text
from batch_images.rules import naming
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import PoolSpec, RollDecision, read_pool_spec
from batch_images.triggers.base import default_deferrable
from batch_images.waiting import WaitingMixin

if TYPE_CHECKING:
    from batch_images.hooks.batch import BatchPoolHook

WAITER = "batch_smoke_test"  # triggers/waiters/smoke.py
OUTPUT_FILES = ("stderr.txt", "stdout.txt")
OUTPUT_TAIL_BYTES = 4096
OUTPUT_TAIL_LINES = 5
MAX_NODES_IN_MESSAGE = 20
_BUDGET_KEY = "smoke_test_budget"
ROLE_SMOKE_TEST = "smoke-test"  # the job's metadata role; the sweep (operators/sweep.py) looks for it


def smoke_job_id(pool_id: str) -> str:
    """``smoke-<pool id>``: Batch job ids are at most 64 characters; a longer one keeps its end (the version)."""
    job_id = f"smoke-{pool_id}"
    return job_id if len(job_id) <= 64 else "smoke-" + pool_id[-58:]


class PoolSmokeTestOperator(WaitingMixin, BaseOperator):
    """Run the pool's smoke test and wait (deferred) until every task exited 0.

    :param pool_spec: an entry of the preflight plan's ``pools`` (its ``smoke_test``, ``batch_conn_id``, ``pool_id``).
        Without ``smoke_test`` nothing runs and the result says so.
    :param pool_id: the pool to test (default ``pool_spec["pool_id"]``, the new physical pool).
    :param job_id: default ``smoke-<pool id>``.
    :param dag_id, run_id: written into the job's metadata (default: the running DAG run's).
    :return: ``{"pool_id", "job_id", "tasks", "succeeded", "nodes": [node ids]}`` or
        ``{"pool_id", "skipped": reason}`` (no smoke_test, or plan_roll's output says this run makes no new pool).
    :raises AirflowFailException: bad input, or the smoke test failed (nodes, exit codes, output tails named).
    """

    template_fields: Sequence[str] = ("pool_spec", "pool_id", "job_id", "dag_run_id")
    template_fields_renderers = {"pool_spec": "json"}
    ui_color = "#fdf3e1"

    def __init__(self, *, pool_spec: Any, pool_id: str | None = None, job_id: str | None = None,
                 dag_run_id: str | None = None, deferrable: bool | None = None, poll_interval: float = 15.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_spec = pool_spec
        self.pool_id = pool_id
        self.job_id = job_id
        self.dag_run_id = dag_run_id
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = poll_interval

    def _spec(self) -> PoolSpec:
        try:
            return read_pool_spec(self.pool_spec)  # plan_roll's output (a RollDecision) or a plan pool spec
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None

    def _hook(self, spec: PoolSpec) -> BatchPoolHook:
        from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker, not at DAG parse

        return BatchPoolHook(azure_batch_conn_id=spec.batch_conn_id)

    # -- start ----------------------------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict:
        spec = self._spec()
        if isinstance(spec, RollDecision) and not spec.makes_new_pool:
            # plan_roll's output: in_place, already current or a skipped downgrade make no new pool to test
            pool_id = self.pool_id or spec.pool_id
            self.log.info("Pool %s: this run makes no new pool (roll %s, strategy %s); no smoke test", pool_id,
                          spec.roll_action, spec.strategy)
            return {"pool_id": pool_id, "skipped": "this run makes no new pool"}
        pool_id = self.pool_id or spec.pool_id
        if spec.smoke_test is None:
            self.log.info("Pool %s: no smoke test configured", pool_id)
            return {"pool_id": pool_id, "skipped": "no smoke_test in the config"}
        test = spec.smoke_test
        job_id = self.job_id or smoke_job_id(pool_id)
        hook = self._hook(spec)
        tasks = self._start(hook, context, pool_id, job_id, test.command_line, test.tasks, test.timeout_minutes)
        # A little more than the tasks' own maxWallClockTime, so Batch ends an overrunning task and says so.
        timeout = test.timeout_minutes * 60.0 + 60 + 2 * self.poll_interval
        return self.wait_for(context, waiter_name=WAITER, waiter_args={"job_id": job_id, "tasks": tasks},
                             conn_id=spec.batch_conn_id, timeout=timeout, budget_key=_BUDGET_KEY, phase="tasks",
                             extra={"pool_id": pool_id, "job_id": job_id, "tasks": tasks})

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> dict:
        return self._finish(self._hook(self._spec()), event, extra)

    def _start(self, hook: BatchPoolHook, context: Any, pool_id: str, job_id: str, command_line: str,
               tasks: int | None, timeout_minutes: int) -> int:
        """Create the job and its tasks (or find them from an earlier try); return the number of tasks."""
        from azure.batch import models as bm
        from azure.core.exceptions import HttpResponseError

        run_id = self.dag_run_id or context.get("run_id") or ""
        job = hook.get_job(job_id)
        if job is not None and not self._ours_active(job, run_id):
            state = (enum_text(job.state) or "").lower()
            existing = [t.id for t in hook.list_tasks(job_id, select=["id"])]
            if state == "active" and existing:
                self.log.info("Smoke-test job %s exists from an earlier try with %d task(s): waiting for it", job_id,
                              len(existing))
                return len(existing)
            raise AirflowFailException(
                f"Smoke-test job {job_id} already exists in state {state} (an earlier run's, not finished or being "
                "deleted). Fix: delete it (az batch job delete --job-id ...) or wait until it is gone, then clear "
                "this task")
        if job is not None:
            # This run's job from an earlier try (or a create whose answer was lost): add the tasks it may lack, with
            # the same ids (Batch answers TaskExists for those it has, which azure-batch's create_tasks counts as added).
            self.log.info("Smoke-test job %s exists from an earlier try of this run: adding any task it lacks", job_id)
        pool = hook.get_pool(pool_id)
        if pool is None:
            raise AirflowFailException(f"Pool {pool_id} does not exist: nothing to smoke-test")
        nodes = hook.list_nodes(pool_id, states=("idle", "running"), select=["id", "state", "affinityId"])
        count = tasks if tasks is not None else len(nodes)
        if count < 1:
            raise AirflowFailException(f"Pool {pool_id} has no idle or running node to run the smoke test on "
                                       f"(dedicated {pool.current_dedicated_nodes}, low-priority "
                                       f"{pool.current_low_priority_nodes})")
        metadata = {naming.TAG_MANAGED_BY: naming.MANAGED_BY, naming.TAG_DAG_ID: self.dag_id or "",
                    naming.TAG_RUN_ID: run_id, naming.TAG_ROLE: ROLE_SMOKE_TEST}
        try:
            if job is None:
                self._create_job(hook, bm.BatchJobCreateOptions(
                    id=job_id, display_name=f"smoke test of {pool_id}", pool_info=bm.BatchPoolInfo(pool_id=pool_id),
                    metadata=[bm.BatchMetadataItem(name=k, value=v[:512]) for k, v in metadata.items()]), run_id)
            constraints = bm.BatchTaskConstraints(max_wall_clock_time=timedelta(minutes=timeout_minutes),
                                                  max_task_retry_count=0)
            # One task per node: the affinity asks Batch to place each on its own node (a preference, not a rule).
            specs = [bm.BatchTaskCreateOptions(
                id=f"smoke-{i}", command_line=command_line, constraints=constraints,
                affinity_info=bm.BatchAffinityInfo(affinity_id=nodes[i].affinity_id)
                if i < len(nodes) and getattr(nodes[i], "affinity_id", None) else None) for i in range(count)]
            hook.add_tasks(job_id, specs)
        except (HttpResponseError, bm.CreateTasksError) as err:
            if _transient(err):  # Batch may have done it: a retry of the task adopts the job and re-adds the tasks
                raise AirflowException(f"Could not start the smoke test on pool {pool_id} this try (a transient "
                                       f"error: {_error_text(err)}); the task's retry goes on with job "
                                       f"{job_id}") from None
            self._delete_job(hook, job_id)
            raise AirflowFailException(f"Could not start the smoke test on pool {pool_id}: "
                                       f"{_error_text(err)}") from None
        self.log.info("Smoke test on pool %s: job %s, %d task(s) running %r (timeout %d min)", pool_id, job_id, count,
                      command_line, timeout_minutes)
        return count

    @staticmethod
    def _ours_active(job: Any, run_id: str) -> bool:
        """The job is this run's smoke-test job and still active (a retry may go on with it)."""
        meta = {m.name: m.value for m in getattr(job, "metadata", None) or []}
        return (enum_text(job.state) or "").lower() == "active" and bool(run_id) and \
            meta.get(naming.TAG_RUN_ID) == run_id[:512] and meta.get(naming.TAG_ROLE) == ROLE_SMOKE_TEST

    def _create_job(self, hook: BatchPoolHook, options: Any, run_id: str) -> None:
        """Add the job; a 409 JobExists for this run's own job (a retried add whose first answer was lost after
        Batch made it) is success."""
        from azure.core.exceptions import HttpResponseError

        try:
            hook.create_job(options)
        except HttpResponseError as err:
            if err.status_code != 409:
                raise
            job = hook.get_job(options.id)
            if not self._ours_active(job, run_id):
                raise
            self.log.info("Smoke-test job %s was already made by this run (a retried add): going on with it",
                          options.id)

    # -- outcome --------------------------------------------------------------------------------------------------

    def _finish(self, hook: BatchPoolHook, event: dict, carried: Mapping[str, Any]) -> dict:
        pool_id, job_id, tasks = carried["pool_id"], carried["job_id"], int(carried["tasks"])
        status = event.get("status")
        if status == "success":
            nodes = sorted({t.node_info.node_id for t in hook.list_tasks(job_id, select=["id", "nodeInfo"])
                            if getattr(t.node_info, "node_id", None)})
            self._delete_job(hook, job_id)
            self.log.info("Smoke test of pool %s passed: %s", pool_id, event.get("message"))
            return {"pool_id": pool_id, "job_id": job_id, "tasks": tasks, "succeeded": tasks, "nodes": nodes}
        report = self.failure_report(hook, job_id, status, event)
        self._delete_job(hook, job_id)
        raise AirflowFailException(f"Smoke test of pool {pool_id} failed ({event.get('message')}); job {job_id} "
                                   f"was deleted.\n{report}")

    def failure_report(self, hook: BatchPoolHook, job_id: str, status: str | None, event: dict) -> str:
        """One block per failed (or, on timeout, unfinished) task: node, exit code / failure, output tail."""
        from batch_images.triggers.waiters.smoke import task_report

        try:
            listed = [task_report(t) for t in hook.list_tasks(job_id, select=["id", "state", "executionInfo",
                                                                             "nodeInfo"])]
        except Exception as err:  # noqa: BLE001 - the report must not hide the failure itself
            return f"(could not list the job's tasks: {err})"
        bad = [t for t in listed if t["state"] != "completed" or t["result"] != "success"]
        lines = []
        for t in bad[:MAX_NODES_IN_MESSAGE]:
            node = t["node_id"] or "no node (never scheduled)"
            what = (f"exit code {t['exit_code']}" if t["exit_code"] is not None else f"state {t['state']}")
            lines.append(f"  node {node} (task {t['id']}): {what}" + (f" - {t['failure']}" if t["failure"] else ""))
            if t["node_id"]:
                lines += [f"    {line}" for line in self.output_tail(hook, job_id, t["id"])]
        if len(bad) > MAX_NODES_IN_MESSAGE:
            lines.append(f"  ... and {len(bad) - MAX_NODES_IN_MESSAGE} more")
        if status == "timeout":
            lines.insert(0, "Timed out; tasks not finished or failed:")
        return "\n".join(lines) or "(no failed task found)"

    def output_tail(self, hook: BatchPoolHook, job_id: str, task_id: str) -> list[str]:
        """The last lines of the task's stderr.txt and stdout.txt (``file: line``), or why they are not available."""
        from azure.core.exceptions import HttpResponseError

        out = []
        for name in OUTPUT_FILES:
            try:
                data = hook.task_file_tail(job_id, task_id, name, OUTPUT_TAIL_BYTES)
            except HttpResponseError as err:
                out.append(f"{name}: not available ({batch_error_text(err)})")
                continue
            tail = data.decode("utf-8", errors="replace").splitlines()[-OUTPUT_TAIL_LINES:]
            out += [f"{name}: {line}" for line in tail]
        return out

    def _delete_job(self, hook: BatchPoolHook, job_id: str) -> None:
        problem = delete_job(hook, job_id)
        if problem:
            self.log.warning("Could not delete smoke-test job %s: %s (the sweep removes it later)", job_id, problem)
        else:
            self.log.info("Deleted smoke-test job %s", job_id)


def _transient(err: BaseException) -> bool:
    """A throttled, 5xx or connection-level answer (the write may or may not have been made); CreateTasksError: the
    SDK's task-collection retries ended with such errors only, no task refused by Batch."""
    from azure.core.exceptions import HttpResponseError

    if hasattr(err, "failure_tasks"):  # azure-batch CreateTasksError
        return not list(getattr(err, "failure_tasks", None) or []) and \
            all(_transient(e) for e in getattr(err, "errors", None) or [])
    status = getattr(err, "status_code", None)
    return not isinstance(err, HttpResponseError) or status is None or status == 429 or status >= 500


def _error_text(err: BaseException) -> str:
    if hasattr(err, "failure_tasks"):
        failed = [f"{t.task_id}: {getattr(t.error, 'code', None)}" for t in err.failure_tasks or []]
        return "; ".join(failed + [batch_error_text(e) for e in err.errors or []]) or str(err)
    return batch_error_text(err)


def delete_job(hook: BatchPoolHook, job_id: str) -> str | None:
    """Start deleting a Batch job (one ``DELETE /jobs/{id}``, not waited for: the SDK's begin_delete_job would poll in
    a thread). None when it is deleting or already gone, else Batch's error text."""
    from azure.core.exceptions import HttpResponseError

    try:
        hook.delete_job(job_id)
    except HttpResponseError as err:
        return batch_error_text(err)
    return None
