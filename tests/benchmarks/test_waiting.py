"""The worker-slot benchmark's "slot seconds while waiting": log parsing and aggregation (benchmarks/waiting.py,
the dags-test and task-log readers that feed it, the rows it gives). Pure functions over sample log text in the
shapes Airflow 3.3 writes (a dags-test console log; a LocalExecutor task's JSON-lines attempt file)."""
from __future__ import annotations

import json

from benchmarks.common import Bench
from benchmarks.pipelines import _slot_rows, slot_seconds, stage_seconds
from benchmarks.services import task_log_executions
from benchmarks.waiting import Wait, execution, parse_waits, split_executions, totals, while_waiting

RUN_ID = "manual__2026-11-29T23:17:32.962547+00:00"


def _json_line(ts: str, event: str, **extra) -> str:
    """One line of an Airflow 3 task log file, as the task runner writes it (structlog JSON)."""
    return json.dumps({"timestamp": ts, "level": "info", "event": event, "ti_id": "01a2", "try_number": 1,
                       "logger": "task", **extra})


def _task_log(*executions: list[str]) -> str:
    """An attempt=<n>.log: each execution starts with the runner's Pre Execute group."""
    lines = []
    for i, events in enumerate(executions):
        lines.append(_json_line(f"2026-11-29T23:17:{10 + 10 * i:02d}.000000Z", "::group::Pre Execute"))
        lines.append(_json_line(f"2026-11-29T23:17:{11 + 10 * i:02d}.000000Z", "Worker startup parse complete",
                                dag_file_parse_ms=1031))
        lines += [_json_line(f"2026-11-29T23:17:{12 + 10 * i:02d}.000000Z", e, logger="batch_images")
                  for e in events]
    return "\n".join(lines) + "\n"


def test_parse_waits_reads_plain_and_json_lines_and_nothing_else():
    text = "\n".join([
        "2026-11-29T20:09:12.1Z [info     ] Waited 12.345 s in the worker for batch_pool_steady (3 polls): success "
        "[batch_images.triggers.base] loc=base.py:332",
        _json_line("2026-11-29T23:17:52Z", "Waited 0.412 s in the worker for arm_provisioning (1 poll): pending"),
        "[batch_pool_steady] 1/2 nodes idle",                                     # a progress line: not a wait
        "Waited about 3 s in the worker for x (2 polls): success",                # not the plugin's format
    ])
    assert parse_waits(text) == [Wait(12.345, "batch_pool_steady", 3, "success"),
                                 Wait(0.412, "arm_provisioning", 1, "pending")]


def test_split_executions_cuts_an_attempt_file_at_each_execution_start():
    log = _task_log(["Waited 0.300 s in the worker for arm_provisioning (1 poll): pending",
                     "Pausing task as DEFERRED. "],
                    ["2 resource(s) Succeeded"])
    first, resume = split_executions(log)
    assert [w.status for w in parse_waits(first)] == ["pending"] and parse_waits(resume) == []
    assert "Succeeded" in resume and "Succeeded" not in first
    assert split_executions("") == []


def test_while_waiting_counts_the_first_executions_wait_loop_and_every_later_execution_in_full():
    # synchronous: one execution of 20 s, 17.5 s of it in the wait loop; its own work (2.5 s) is not waiting
    assert while_waiting([{"slot": 20.0, "waited": 17.5, "waits": 1}]) == 17.5
    # deferrable: 4 s first execution with a 0.3 s probe, then two resumes of 3 s and 2.5 s
    assert while_waiting([{"slot": 4.0, "waited": 0.3, "waits": 1}, {"slot": 3.0, "waited": 0.0, "waits": 0},
                          {"slot": 2.5, "waited": 0.0, "waits": 0}]) == 0.3 + 3.0 + 2.5
    assert while_waiting([]) == 0.0


def test_totals_include_a_wait_done_at_its_first_probe_and_need_waited_lines_in_both_runs():
    probe_done = execution(3.0, "Waited 0.250 s in the worker for batch_pool_steady (1 poll): success")
    deferred = [execution(3.5, "Waited 0.200 s in the worker for gallery_replication (1 poll): pending"),
                execution(2.0)]
    dfr = {"wait_for_pool_steady[0]": {"slot": 3.0, "execs": [probe_done]},
           "publish_image_version": {"slot": 5.5, "execs": deferred},
           "preflight": {"slot": 6.0, "execs": [execution(6.0)]}}           # never waits: not counted
    syn = {"wait_for_pool_steady[0]": {"slot": 9.0, "execs": [execution(
               9.0, "Waited 6.000 s in the worker for batch_pool_steady (6 polls): success")]},
           "publish_image_version": {"slot": 20.0, "execs": [execution(
               20.0, "Waited 16.500 s in the worker for gallery_replication (17 polls): success")]},
           "preflight": {"slot": 6.1, "execs": [execution(6.1)]}}
    got = totals(dfr, syn)
    assert got["tasks"] == ["publish_image_version", "wait_for_pool_steady[0]"]
    assert abs(got["deferrable"] - (0.25 + 0.2 + 2.0)) < 1e-9 and abs(got["sync"] - 22.5) < 1e-9
    assert abs(got["share"] - 2.45 / 22.5) < 1e-9 and got["measured"]

    # before the plugin logs the line: deferrals still select the task, but the figure is not measured
    bare = {k: {"slot": v["slot"], "execs": [execution(e["slot"]) for e in v["execs"]]} for k, v in dfr.items()}
    assert totals(bare, {k: {"slot": 1.0, "execs": [execution(1.0)]} for k in syn})["measured"] is False
    assert totals(bare, syn)["tasks"] == ["publish_image_version", "wait_for_pool_steady[0]"]


def _slot_bench(dfr: dict, syn: dict) -> dict:
    bench = Bench("worker_slots", "Worker-slot seconds", "", "", "", "")
    _slot_rows(bench, "real services (1x, Azure's durations)", dfr, syn, per_task=False, missed_why="why")
    return {r.metric.split(": ", 1)[1]: r for r in bench.rows}


def test_slot_rows_give_the_target_verdict_and_say_not_measured_without_waited_lines():
    syn = {"w": {"slot": 1000.0, "execs": [execution(1000.0, "Waited 990.000 s in the worker for x (990 polls): "
                                                              "success")]}}
    met = {"w": {"slot": 8.0, "execs": [execution(4.0, "Waited 0.500 s in the worker for x (1 poll): pending"),
                                        execution(4.0)]}}
    rows = _slot_bench(met, syn)
    assert rows["slot s while waiting"].status == "met" and abs(rows["slot s while waiting"].ratio - 4.5 / 990) < 1e-9
    assert rows["waiting tasks, total"].status == "info" and rows["waiting tasks, total"].ours == 8.0

    missed = {"w": {"slot": 40.0, "execs": [execution(4.0, "Waited 0.500 s in the worker for x (1 poll): pending"),
                                            execution(36.0)]}}
    row = _slot_bench(missed, syn)["slot s while waiting"]
    assert row.status == "MISSED" and row.note == "why"

    unlogged = {"w": {"slot": 8.0, "execs": [execution(4.0), execution(4.0)]}}
    row = _slot_bench(unlogged, syn)["slot s while waiting"]
    assert row.status == "not measured" and row.ours is None and "Waited" in row.note


DAGS_TEST_LOG = """\
2026-11-29T20:09:12.000000Z [info     ] [DAG TEST] starting task_id=publish_image_version map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-29T20:09:12.500000Z [info     ] Waited 0.200 s in the worker for gallery_replication (1 poll): pending [batch_images.triggers.base]
2026-11-29T20:09:13.000000Z [info     ] [DAG TEST] running trigger in line [airflow.sdk.definitions.dag] loc=dag.py:1534
2026-11-29T20:09:20.000000Z [info     ] [gallery_replication] 3/3 regions Completed [batch_images.triggers.base]
2026-11-29T20:09:29.000000Z [info     ] [DAG TEST] Trigger completed   [airflow.sdk.definitions.dag] loc=dag.py:1546
2026-11-29T20:09:29.250000Z [info     ] [DAG TEST] end task task_id=publish_image_version map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-11-29T20:09:29.300000Z [info     ] [DAG TEST] starting task_id=wait_for_pool_steady map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-29T20:09:29.900000Z [info     ] Waited 0.400 s in the worker for batch_pool_steady (1 poll): success [batch_images.triggers.base]
2026-11-29T20:09:30.000000Z [info     ] [DAG TEST] end task task_id=wait_for_pool_steady map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1563
"""


def test_dags_test_log_gives_each_execution_its_slot_and_waited_seconds():
    got = slot_seconds(DAGS_TEST_LOG)
    pub = got["publish_image_version"]
    assert pub["deferrals"] == 1 and abs(pub["slot"] - (1.0 + 0.25)) < 1e-6   # the in-line trigger's 16 s excluded
    assert [round(e["slot"], 3) for e in pub["execs"]] == [1.0, 0.25]
    assert [e["waited"] for e in pub["execs"]] == [0.2, 0.0]
    pool = got["wait_for_pool_steady[0]"]
    assert pool["deferrals"] == 0 and pool["execs"][0]["waited"] == 0.4
    assert abs(while_waiting(pool["execs"]) - 0.4) < 1e-9


def test_task_log_executions_reads_every_try_of_a_mapped_task_from_the_log_folder(tmp_path):
    folder = tmp_path / "dag_id=bench" / f"run_id={RUN_ID}" / "task_id=wait_for_pool_steady" / "map_index=0"
    folder.mkdir(parents=True)
    (folder / "attempt=1.log").write_text(_task_log(
        ["Waited 0.300 s in the worker for batch_pool_steady (1 poll): pending"], ["resumed, then failed"]))
    (folder / "attempt=1.log.trigger.1.log").write_text(_task_log(["Waited 9.000 s in the worker for x (9 polls): "
                                                                   "success"]))   # the triggerer's file: not read
    (folder / "attempt=2.log").write_text(_task_log(["Waited 0.100 s in the worker for batch_pool_steady (1 poll): "
                                                     "success"]))
    execs = task_log_executions(tmp_path, "bench", RUN_ID, "wait_for_pool_steady", 0, tries=2)
    assert [[w.seconds for w in parse_waits(e)] for e in execs] == [[0.3], [], [0.1]]
    assert task_log_executions(tmp_path, "bench", RUN_ID, "wait_for_pool_steady", 1, tries=1) == []


def test_version_stage_runs_from_its_create_to_the_last_region_not_from_a_later_update():
    create = {"start": 1000.0, "done_at": 1120.0}
    promote = {"start": 2500.0, "done_at": 2620.0}       # the promotion's PATCH, after the pool: not on the chain
    regions = [{"start": 1000.0, "duration": 864.0}, {"start": 1000.0, "duration": 984.0}]
    assert stage_seconds([create, promote], regions) == 984.0
    assert stage_seconds([promote], regions) == 984.0    # the create's LRO ended between two reads
    assert stage_seconds([{"start": 10.0, "done_at": 196.0}], []) == 186.0


def test_the_pools_chain_ends_with_its_own_regions_replica_not_the_last_regions():
    """create_pool waits for the replica in its Batch account's region (864 s here), not for the last of the
    version's regions (984 s): the critical path's version stage is the pool region's."""
    create = {"start": 1000.0, "done_at": 1120.0}
    regions = [{"key": "westeurope", "start": 1000.0, "duration": 864.0},
               {"key": "northeurope", "start": 1000.0, "duration": 924.0},
               {"key": "eastus", "start": 1000.0, "duration": 984.0}]
    assert stage_seconds([create], regions, "westeurope") == 864.0
    assert stage_seconds([create], regions, "eastus") == 984.0
    assert stage_seconds([create], regions) == 984.0
    assert stage_seconds([create], regions, "brazilsouth") == 984.0  # not a target region: every region counts


def test_pool_stage_ends_when_the_last_node_first_turns_idle_not_after_the_smoke_test():
    from benchmarks.pipelines import pool_ready_sim
    from include.azure_standin.core import timings

    created = 1000.0
    seg = {"first": 0, "n": 2, "granted": 2, "start": created, "dur": 138.45, "dedicated": True,
           "start_task": True, "wait": True}
    sim = {"created": created, "segments": [seg, dict(seg, first=2, start=created + 5000.0)],  # + a later resize
           "busy": {"0": [[created + 2055.0, created + 2075.0, 0, "smoke-1"]]}}               # the smoke test's task
    # node 1 appears at the end of the allocation window, then boots (creating, starting, start task)
    assert abs(pool_ready_sim(sim) - (138.45 + sum(timings.node_boot(1)))) < 1e-6
    assert pool_ready_sim(dict(sim, segments=[dict(seg, start_task=False)])) < pool_ready_sim(sim)


def test_promotion_is_the_versions_update_after_its_create_and_the_smoke_test_its_tasks_on_the_pool():
    from benchmarks.pipelines import tasks_sim, update_seconds

    create, promote = {"start": 1000.0, "done_at": 1120.0}, {"start": 2500.0, "done_at": 2620.0}
    regions = [{"start": 1000.0, "duration": 984.0}]
    assert update_seconds([create, promote], regions) == 120.0
    assert update_seconds([promote], regions) == 120.0       # the create's LRO ended between two reads
    assert update_seconds([create], regions) == 0.0
    canary = {"start": 1130.0, "done_at": 1250.0}              # excludeFromLatest set while it still replicates
    retire = {"start": 2700.0, "done_at": 2820.0}              # an end-of-life date later: nothing waits for it
    assert update_seconds([create, canary, promote, retire], regions) == 120.0
    busy = {"0": [[3000.0, 3020.0, 0, "smoke-1"]], "1": [[3001.0, 3021.0, 0, "smoke-0"]]}
    assert tasks_sim({"busy": busy}) == 21.0 and tasks_sim({"busy": {}}) == 0.0
