"""Autoscale pools on the stand-in through the unmodified azure-batch 15 SDK: create with a formula, enable /
disable / evaluate, the formula's target allocating like a resize, and Batch's refusals."""
from __future__ import annotations

import datetime

import pytest
from azure.batch import models as bm
from azure.core.exceptions import HttpResponseError, ResourceExistsError

from batch_helpers import error_values, pool_options, slow, wait_pool

PENDING = "$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(1));\n$NodeDeallocationOption = taskcompletion"


def autoscale_options(pool_id: str, formula: str, interval=datetime.timedelta(minutes=5)) -> bm.BatchPoolCreateOptions:
    opts = pool_options(pool_id, nodes=0, marketplace=True, start_task=False)
    opts.target_dedicated_nodes = None
    opts.enable_auto_scale = True
    opts.auto_scale_formula = formula
    opts.auto_scale_evaluation_interval = interval
    return opts


def add_sleeping_tasks(client, job_id: str, pool_id: str, n: int) -> None:
    client.create_job(bm.BatchJobCreateOptions(id=job_id, pool_info=bm.BatchPoolInfo(pool_id=pool_id)))
    for i in range(n):
        client.create_task(job_id, bm.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/bash -c 'sleep 3600'"))


def test_a_pool_created_with_a_formula_allocates_to_the_formula_result(standin):
    client = standin.batch()
    client.create_pool(autoscale_options("p-auto", "$TargetDedicatedNodes = 1 + 2;\n$x = 7"))
    pool = wait_pool(client, "p-auto")
    assert pool.enable_auto_scale and pool.auto_scale_formula.startswith("$TargetDedicatedNodes")
    assert pool.auto_scale_evaluation_interval == datetime.timedelta(minutes=5)
    assert pool.target_dedicated_nodes == 3 and pool.current_dedicated_nodes == 3
    run = pool.auto_scale_run
    assert run.error is None and run.timestamp
    assert run.results == "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;$x=7"

    # Pool_Resize docs: a pool configured for automatic scaling cannot be resized (409)
    with pytest.raises(ResourceExistsError) as err:
        client.begin_resize_pool("p-auto", bm.BatchPoolResizeOptions(target_dedicated_nodes=1)).result()
    assert err.value.error.code == "OperationInvalidForCurrentState"


def test_the_formula_follows_pending_tasks_every_interval_and_disable_keeps_the_target(standin):
    client = standin.batch()
    client.create_pool(pool_options("p-fixed", nodes=1, marketplace=True, start_task=False))
    wait_pool(client, "p-fixed")
    # at a slow clock, so that no 5-minute evaluation falls between these reads
    with slow(standin, scale=1.0):
        client.enable_pool_auto_scale("p-fixed", bm.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula=PENDING, auto_scale_evaluation_interval=datetime.timedelta(minutes=5)))
        pool = client.get_pool("p-fixed")
        # no task yet: the first evaluation (at enable) asks for 0 nodes
        assert pool.enable_auto_scale and pool.target_dedicated_nodes == 0
        assert pool.auto_scale_run.results.startswith(
            "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion")
        standin.control.advance(120)      # the idle node leaves; the next evaluation is due at 5 min
        pool = client.get_pool("p-fixed")
        assert pool.allocation_state == "steady" and pool.current_dedicated_nodes == 0

        add_sleeping_tasks(client, "job-auto", "p-fixed", 3)
        evaluated = client.evaluate_pool_auto_scale("p-fixed", bm.BatchPoolEvaluateAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = avg($ActiveTasks.GetSample(TimeInterval_Minute * 5, 70)) * 2"))
        assert evaluated.error is None and evaluated.results.startswith("$TargetDedicatedNodes=6;")
        assert client.get_pool("p-fixed").target_dedicated_nodes == 0      # evaluate does not apply

        standin.control.advance(3 * 60 + 1)
    pool = client.get_pool("p-fixed")
    assert pool.target_dedicated_nodes == 3
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=3;")
    pool = wait_pool(client, "p-fixed", settled=False)
    assert pool.current_dedicated_nodes == 3

    client.disable_pool_auto_scale("p-fixed")
    pool = client.get_pool("p-fixed")
    assert not pool.enable_auto_scale and pool.auto_scale_formula is None and pool.auto_scale_run is None
    assert pool.target_dedicated_nodes == 3
    standin.control.advance(10 * 60)
    assert client.get_pool("p-fixed").target_dedicated_nodes == 3     # no evaluation any more
    client.begin_resize_pool("p-fixed", bm.BatchPoolResizeOptions(target_dedicated_nodes=4),
                             polling_interval=0.05).result()
    assert client.get_pool("p-fixed").current_dedicated_nodes == 4


def test_formula_errors(standin):
    client = standin.batch()
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(autoscale_options("p-bad", "$TargetDedicatedNodes = bogus + ;"))
    assert err.value.status_code == 400 and err.value.error.code == "AutoScalingFormulaSyntaxError"
    assert error_values(err.value)["PropertyName"] == "autoScaleFormula"
    assert [p.id for p in client.list_pools()] == []
    client.create_pool(autoscale_options("p-ok", "$TargetDedicatedNodes = 0"))

    run = client.evaluate_pool_auto_scale("p-ok", bm.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes = ($"))
    assert run.results is None and run.error.code == "AutoScalingFormulaSyntaxError"
    run = client.evaluate_pool_auto_scale("p-ok", bm.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes = $notSet + 1"))
    assert run.error.code == "AutoScalingFormulaEvaluationError" and "$notSet" in run.error.error_values[0].value

    # a formula that fails at run time: the pool keeps its target and shows the error
    standin.control.advance(60)
    with slow(standin, scale=1.0):    # both enables within 30 simulated seconds
        client.enable_pool_auto_scale("p-ok", bm.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 4 / ($CurrentDedicatedNodes * 0)"))
        pool = client.get_pool("p-ok")
        assert pool.auto_scale_run.error.code == "AutoScalingFormulaEvaluationError"
        assert pool.target_dedicated_nodes == 0
        # enableautoscale twice within 30 s: 503 (azure-core retries a 503: retry_total=0 shows the answer)
        with pytest.raises(HttpResponseError) as err:
            client.enable_pool_auto_scale("p-ok", bm.BatchPoolEnableAutoScaleOptions(
                auto_scale_formula="$TargetDedicatedNodes = 1"), retry_total=0)
        assert err.value.status_code == 503 and err.value.error.code == "TooManyEnableAutoScaleRequests"
    standin.control.advance(60)
    with pytest.raises(HttpResponseError) as err:
        client.enable_pool_auto_scale("p-ok", bm.BatchPoolEnableAutoScaleOptions(auto_scale_formula="$x ="))
    assert err.value.status_code == 400 and err.value.error.code == "AutoScalingFormulaSyntaxError"

    client.create_pool(pool_options("p-plain", nodes=0, marketplace=True, start_task=False))
    with pytest.raises(ResourceExistsError) as err:
        client.evaluate_pool_auto_scale("p-plain", bm.BatchPoolEvaluateAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 1"))
    assert err.value.error.code == "OperationInvalidForCurrentState"
    with pytest.raises(HttpResponseError) as err:
        client.enable_pool_auto_scale("p-plain", bm.BatchPoolEnableAutoScaleOptions())
    assert err.value.error.code == "MissingRequiredProperty"
    assert error_values(err.value)["PropertyName"] == "autoScaleFormula"


@pytest.mark.parametrize("change, code, prop", [
    ({"target_dedicated_nodes": 2}, "InvalidPropertyValue", "targetDedicatedNodes"),
    ({"target_low_priority_nodes": 0}, "InvalidPropertyValue", "targetLowPriorityNodes"),
    ({"auto_scale_formula": None}, "MissingRequiredProperty", "autoScaleFormula"),
    ({"auto_scale_evaluation_interval": datetime.timedelta(minutes=4)}, "InvalidPropertyValue",
     "autoScaleEvaluationInterval"),
    ({"auto_scale_evaluation_interval": datetime.timedelta(hours=169)}, "InvalidPropertyValue",
     "autoScaleEvaluationInterval"),
    ({"enable_auto_scale": False, "target_dedicated_nodes": 1}, "InvalidPropertyValue", "autoScaleFormula"),
])
def test_autoscale_cross_field_rules_on_create(standin, change, code, prop):
    client = standin.batch()
    opts = autoscale_options("p-rule", "$TargetDedicatedNodes = 1")
    for k, v in change.items():
        setattr(opts, k, v)
    with pytest.raises(HttpResponseError) as err:
        client.create_pool(opts)
    assert err.value.status_code == 400 and err.value.error.code == code
    assert error_values(err.value)["PropertyName"] == prop
    assert [p.id for p in client.list_pools()] == []
