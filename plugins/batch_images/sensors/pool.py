"""Wait until a Batch pool is steady at its target size with its nodes ready - and repair what Batch lets us.

:class:`BatchPoolSteadySensor` runs the ``batch_pool_steady`` waiter (``triggers/waiters/batch.py``):
deferred to :class:`~batch_images.triggers.base.AzureBaseWaiterTrigger` (default) or in the worker with
:func:`~batch_images.triggers.base.run_waiter_sync` (``deferrable=False``). One poll costs two Batch
requests (pool + ``/nodecounts``) whatever the pool size.

When the waiter reports a failure the sensor reads the pool once more and applies
:class:`~batch_images.sensors.pool_repair.PoolRepair` (AllocationTimedout -> one resize retry; unhealthy nodes
-> reboot, then remove and re-add, up to a limit; steady off target -> resize), then waits again with the
same overall deadline. Quota errors, other resize errors, a vanished pool and exhausted repairs fail the
task (AirflowFailException: retrying the sensor cannot help); running out of time raises
AirflowSensorTimeout (not retried either). Before failing, the pool is deleted if this DAG run created it
and nobody uses it (no task running, no job or job schedule pointing at it): a pool that serves users'
work is left, and the failure message says so.

The timeout is the budget of the whole wait, task retries included
(:func:`~batch_images.triggers.base.budget_deadline`: the first try records when the budget started in the
task state store, a retry continues it, a clear starts a new one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from batch_images import links
from batch_images.pool_facts import iso_duration, parse_duration
from batch_images.rules import naming, sizing
from batch_images.rules.errors import InvalidInput
from batch_images.sensors.pool_repair import PoolRepair, PoolRepairFailed
from batch_images.triggers.base import budget_deadline, default_deferrable
from batch_images.triggers.waiters import batch as waiter
from batch_images.waiting import WaitingMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

_UNSET: Any = object()
_DEADLINE_KEY = "batch_pool_steady_deadline"


class _TimedOut(PoolRepairFailed):
    """The wait's budget ran out (raised as AirflowSensorTimeout after the cleanup)."""


class BatchPoolSteadySensor(WaitingMixin, BaseSensorOperator):
    """Wait for a Batch pool to be steady at its target with its nodes ready; repair, or clean up and fail.

    Give either ``pool_spec`` (one entry of the preflight plan's ``pools``, e.g. mapped over
    ``PoolSpecsOperator(plan=preflight.output).output``) or the individual values; explicit values win.
    (``pool`` is BaseOperator's Airflow-pool argument, hence ``pool_spec``.) A bare pool id works too: the
    targets are then read from the pool.

    :param pool_spec: the plan's pool spec, or a pool id. (templated)
    :param pool_id: the pool to watch. (templated)
    :param batch_conn_id: ``azure_batch`` connection. (templated)
    :param target_dedicated_nodes: / :param target_low_priority_nodes: the size to reach. (templated)
    :param max_unhealthy_node_share: share of nodes that may stay starttaskfailed/unusable. (templated)
    :param resize_timeout: ISO 8601 duration used for repair resizes (default from the pool spec, or 15 min).
    :param max_allocation_retries: resize retries after AllocationTimedout (default 1).
    :param max_node_repairs: node repair rounds: reboot, then remove and re-add (default 2).
    :param delete_on_failure: delete the pool when giving up - only if this DAG run created it and nothing uses
        it (default True).
    :param deferrable: wait in the triggerer (default: Airflow's ``[operators] default_deferrable``, else True).
    :param poll_interval: seconds between polls (default 30).
    :param timeout: overall seconds to wait, repairs and task retries included (default: the pool's allocation
        timeout, i.e. resize timeout + 30 min). Running out raises ``AirflowSensorTimeout``.
    :return: the pool id.
    :raises AirflowFailException: bad input, or a pool that cannot become ready (quota, resize error, repairs
        exhausted, pool gone).
    :raises AirflowSensorTimeout: the pool was not ready within ``timeout``.
    """

    operator_extra_links = links.POOL_LINKS  # Azure portal link (batch_images/links.py)
    template_fields: Sequence[str] = ("pool_spec", "pool_id", "batch_conn_id", "target_dedicated_nodes",
                                      "target_low_priority_nodes", "max_unhealthy_node_share", "resize_timeout")
    ui_color = "#50e6ff"

    def __init__(
        self,
        *,
        pool_spec: dict | str | None = None,
        pool_id: str | None = None,
        batch_conn_id: str | None = None,
        target_dedicated_nodes: int | None = None,
        target_low_priority_nodes: int | None = None,
        max_unhealthy_node_share: float | None = None,
        resize_timeout: str | None = None,
        max_allocation_retries: int = 1,
        max_node_repairs: int = 2,
        delete_on_failure: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30,
        timeout: float | timedelta | None = None,
        **kwargs,
    ) -> None:
        self._timeout_given = timeout is not None
        super().__init__(poke_interval=poll_interval, timeout=timeout if timeout is not None else 7 * 24 * 3600,
                         mode="poke", **kwargs)
        self.pool_spec = pool_spec
        self.pool_id = pool_id
        self.batch_conn_id = batch_conn_id
        self.target_dedicated_nodes = target_dedicated_nodes
        self.target_low_priority_nodes = target_low_priority_nodes
        self.max_unhealthy_node_share = max_unhealthy_node_share
        self.resize_timeout = resize_timeout
        self.max_allocation_retries = max_allocation_retries
        self.max_node_repairs = max_node_repairs
        self.delete_on_failure = delete_on_failure
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = float(poll_interval)

    # -- inputs -----------------------------------------------------------------------------------------------

    def _spec(self) -> dict:
        """The JSON-able settings of this wait (computed once in execute, carried through deferrals)."""
        pool = self.pool_spec or {}
        if isinstance(pool, str):  # mapped over BatchPoolOperator's output (pool ids)
            pool = {"pool_id": pool}
        if not isinstance(pool, dict):
            raise AirflowFailException(str(InvalidInput("pool_spec", pool, "expected a pool spec dict (or a pool id)",
                                                        "map over PoolSpecsOperator(plan=preflight.output).output")))

        def pick(explicit: Any, key: str, default: Any = _UNSET) -> Any:
            if explicit is not None:
                return explicit
            if key in pool and pool[key] is not None:
                return pool[key]
            if default is _UNSET:
                raise AirflowFailException(str(InvalidInput(key, None, "no value given (neither the argument nor "
                                                            "the pool spec has it)", f"pass {key}=... or pool_spec=")))
            return default

        try:
            spec = {
                "pool_id": naming.validate_pool_id(pick(self.pool_id, "pool_id"), "pool_id"),
                "batch_conn_id": pick(self.batch_conn_id, "batch_conn_id", "azure_batch_default"),
                "target_dedicated_nodes": pick(self.target_dedicated_nodes, "target_dedicated_nodes", None),
                "target_low_priority_nodes": pick(self.target_low_priority_nodes, "target_low_priority_nodes", None),
                "max_unhealthy_node_share": float(pick(self.max_unhealthy_node_share, "max_unhealthy_node_share", 0.0)),
            }
            if spec["target_dedicated_nodes"] is None and spec["target_low_priority_nodes"] is None:
                # Only a pool id: the targets are what the pool was created with.
                from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker

                existing = BatchPoolHook(spec["batch_conn_id"]).get_pool(spec["pool_id"])
                if existing is None:
                    raise AirflowFailException(f"Batch pool {spec['pool_id']} does not exist (connection "
                                               f"{spec['batch_conn_id']}), so there is nothing to wait for.")
                self.log.warning("No target size given for pool %s: using the pool's own targets (%s dedicated, %s "
                                 "low-priority). Pass pool_spec=<the plan's pool spec> to wait for the planned size.",
                                 spec["pool_id"], existing.target_dedicated_nodes, existing.target_low_priority_nodes)
                spec["target_dedicated_nodes"] = existing.target_dedicated_nodes or 0
                spec["target_low_priority_nodes"] = existing.target_low_priority_nodes or 0
            spec["target_dedicated_nodes"] = int(spec["target_dedicated_nodes"] or 0)
            spec["target_low_priority_nodes"] = int(spec["target_low_priority_nodes"] or 0)
            resize = pick(self.resize_timeout, "resize_timeout", None)
            resize_td = parse_duration(resize) if resize is not None else sizing.resize_timeout_for(
                spec["target_dedicated_nodes"] + spec["target_low_priority_nodes"])
            resize_td = sizing.at_least_resize_floor(resize_td)
            spec["resize_timeout"] = iso_duration(resize_td)
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None
        if self._timeout_given:
            spec["timeout"] = float(self.timeout)
        elif pool.get("allocation_timeout"):
            spec["timeout"] = float(pool["allocation_timeout"])
        else:
            spec["timeout"] = sizing.timeout_for_allocation(
                spec["target_dedicated_nodes"] + spec["target_low_priority_nodes"], resize_td).total_seconds()
        return spec

    def _waiter_args(self, spec: dict) -> dict:
        return {"pool_id": spec["pool_id"], "target_dedicated_nodes": spec["target_dedicated_nodes"],
                "target_low_priority_nodes": spec["target_low_priority_nodes"], "max_unhealthy_node_share": spec["max_unhealthy_node_share"]}

    def poke(self, context: Context) -> bool:
        """One probe (two Batch requests): True when the pool is ready. ``execute`` is the real wait (it
        defers, repairs and keeps the deadline); this serves callers that poke a sensor directly.

        :raises AzureWaitFailed: the pool reads as failed (a resize error, too many unhealthy nodes, gone)."""
        spec = self._spec()
        return self.poke_waiter(waiter.WAITER_NAME, self._waiter_args(spec), spec["batch_conn_id"])

    # -- execute ----------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from batch_images.rules.plan import RollDecision

        try:  # plan_roll's output; None for a plan pool spec, a pool id or explicit values (a new pool)
            decision = RollDecision.read(self.pool_spec)
        except InvalidInput as err:
            raise AirflowFailException(str(err)) from None
        if decision is not None and not decision.makes_new_pool:
            self.log.info("Pool %s: this run makes no new pool (roll %s, strategy %s); nothing to wait for",
                          decision.pool_id, decision.roll_action, decision.strategy)
            return decision.pool_id
        spec = self._spec()
        deadline = budget_deadline(context, spec["timeout"], key=_DEADLINE_KEY, logger=self.log)
        self.log.info("Waiting up to %.0f s for Batch pool %s to be steady with %s dedicated + %s low-priority "
                      "idle nodes", spec["timeout"], spec["pool_id"], spec["target_dedicated_nodes"],
                      spec["target_low_priority_nodes"])
        return self._wait_steady(context, spec, deadline, {})

    def _wait_steady(self, context: Context, spec: dict, deadline: float, attempts: dict) -> str:
        """One wait for the pool (deferred or in the worker); :meth:`after_wait` repairs and waits again."""
        return self.wait_for(context, waiter_name=waiter.WAITER_NAME, waiter_args=self._waiter_args(spec),
                             conn_id=spec["batch_conn_id"], deadline=deadline, return_value=spec["pool_id"],
                             phase="steady", extra={"spec": spec, "deadline": deadline, "attempts": attempts})

    def after_wait(self, context: Context, event: dict, phase: str, extra: dict) -> str:
        spec, deadline = extra["spec"], float(extra["deadline"])
        attempts = dict(extra.get("attempts") or {})
        if self._handle(context, spec, event, attempts, deadline):
            return spec["pool_id"]
        return self._wait_steady(context, spec, deadline, attempts)

    # -- outcome and repair -----------------------------------------------------------------------------------

    def _handle(self, context: Context, spec: dict, event: dict, attempts: dict, deadline: float) -> bool:
        """True: done. False: a repair was made, wait again. Raises AirflowFailException when giving up."""
        status = event.get("status")
        message = event.get("message") or "no message"
        if status == "success":
            self.log.info("%s", message)
            return True
        from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker, not at DAG parse

        hook = BatchPoolHook(spec["batch_conn_id"])
        repair = PoolRepair(hook, pool_id=spec["pool_id"], target_dedicated_nodes=spec["target_dedicated_nodes"],
                            target_low_priority_nodes=spec["target_low_priority_nodes"], resize_timeout=spec["resize_timeout"],
                            max_allocation_retries=self.max_allocation_retries,
                            max_node_repairs=self.max_node_repairs, log=self.log)
        try:
            if status == "timeout" or time.time() >= deadline:
                raise _TimedOut(f"Batch pool {spec['pool_id']} did not reach steady state with ready nodes "
                                f"within the timeout ({spec['timeout']:.0f} s, task retries included): {message}")
            # Decide on a fresh reading, not on the event alone (the event may be from a crashed waiter).
            state = waiter.read_pool_state(hook, **self._waiter_args(spec))
            verdict, reason, fresh = waiter.classify(state)
            if verdict == "success":
                self.log.info("%s", fresh)
                return True
            if verdict == "retry":
                self.log.warning("The waiter reported %r (%s) but the pool now reads: %s; waiting again",
                                 status, message, fresh)
                return False
            self.log.warning("%s", fresh)
            action = repair.attempt(reason, fresh, state, attempts)
            self.log.warning("Repair: %s", action)
            return False
        except PoolRepairFailed as err:
            text = str(err)
            if self.delete_on_failure:
                dag_run = context.get("dag_run")
                text += "\n" + repair.cleanup(self.dag_id, context.get("run_id") or getattr(dag_run, "run_id", None))
            raise (AirflowSensorTimeout if isinstance(err, _TimedOut) else AirflowFailException)(text) from None
        finally:
            hook.close_sync()
