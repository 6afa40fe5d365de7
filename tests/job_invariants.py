"""The roll's job invariant, checked after every roll in the e2e and reliability tests (issue 19): no job that can
still run a task and no job schedule names a pool that no longer exists in its Batch account.

A job left on a deleted pool never runs a task again (Batch queues them for a pool that will not come back); a
schedule left there makes such jobs. Read through the unmodified azure-batch SDK against the stand-in.
"""
from __future__ import annotations

LIVE_JOB_STATES = ("active", "disabling", "disabled", "enabling")
LIVE_SCHEDULE_STATES = ("active", "disabled")


def _state(value) -> str:
    return str(getattr(value, "value", value)).lower()


def jobs_on_missing_pools(standin) -> list[str]:
    """``"<account>: job <id> -> <pool>"`` / ``"<account>: job schedule <id> -> <pool>"`` for every live job
    (active, disabling, disabled, enabling) and job schedule (active, disabled) whose ``poolInfo.poolId`` names a
    pool that does not exist in that account (or is being deleted). Empty when the invariant holds. Jobs on an auto
    pool (no ``poolId``) are not counted."""
    out = []
    for account in standin.endpoints["batch_accounts"]:
        batch = standin.batch(account)
        pools = {p.id.lower() for p in batch.list_pools() if _state(p.state) != "deleting"}
        for job in batch.list_jobs():
            pool_id = getattr(job.pool_info, "pool_id", None)
            if _state(job.state) in LIVE_JOB_STATES and pool_id and pool_id.lower() not in pools:
                out.append(f"{account}: job {job.id} ({_state(job.state)}) -> {pool_id}")
        for sched in batch.list_job_schedules():
            spec = sched.job_specification
            pool_id = getattr(getattr(spec, "pool_info", None), "pool_id", None)
            if _state(sched.state) in LIVE_SCHEDULE_STATES and pool_id and pool_id.lower() not in pools:
                out.append(f"{account}: job schedule {sched.id} ({_state(sched.state)}) -> {pool_id}")
    return out
