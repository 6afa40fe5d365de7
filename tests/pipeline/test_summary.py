"""The run summary in the UI (issue 12): the DAG's last task, run_summary, holds what `make demo` printed.

Real `airflow dags test` runs of the demo pipeline against the stand-in; the summary is read from the task's XCom
return value (the text, what the UI's XCom tab shows), its log, and its XCom ``summary`` (the same as a dict), and
checked against the SDKs' view of Azure. The text of hand-made summaries (format_summary, pure) is checked line by
line too: a roll with an approval, retries, retired versions, leftovers, a roll-only run.
"""
from __future__ import annotations

import uuid

import pytest

from batch_images.operators.summary import approval_entry, format_summary
from tests.pipeline._demo_run import run_demo
from tests.summary_text import read_summary


@pytest.fixture(scope="module")
def good(standin_session, tmp_path_factory):
    def approval(cfg):  # approve_roll exists; a first pool needs no approval, so it answers itself
        cfg["pools"][0]["require_approval"] = True

    dag_id = f"summary_{uuid.uuid4().hex[:8]}"
    return run_demo(standin_session, tmp_path_factory.mktemp("summary"), dag_id, mutate=approval), standin_session


def test_summary_of_a_successful_run(good):
    r, s = good
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    assert r.task_state("run_summary") == "success"
    lines, summary = read_summary(r)
    # every other task of the run, with its state, a duration and its tries as the metadata DB has them
    stages = {st["task"]: st for st in summary["stages"]}
    others = {t["task"] for t in r.tasks if t["task"] != "run_summary"}
    assert set(stages) == others
    # a build skips ready_existing_versions (roll-only runs' step); everything else succeeded, with a duration
    assert {t: st["state"] for t, st in stages.items() if st["state"] != "success"} == \
        {"ready_existing_versions": "skipped"}, stages
    assert all(st["seconds"] is not None for st in stages.values()), stages
    assert summary["retried"] == {t["task"]: t["try"] for t in r.tasks if t["try"] > 1}
    # resources are this run's
    version = r.xcoms["publish_image_version:return_value"]
    assert summary["resources"]["image version"] == version
    assert summary["resources"]["managed image"] == r.xcoms["create_managed_image:return_value"]
    # replication per region as Azure reports it
    name = version.rsplit("/", 1)[-1]
    gallery = version.split("/galleries/")[1].split("/")[0]
    definition = version.split("/images/")[1].split("/")[0]
    rg = version.split("/resourceGroups/")[1].split("/")[0]
    v = s.compute().gallery_image_versions.get(rg, gallery, definition, name, expand="ReplicationStatus")
    assert {x.region: x.state for x in v.replication_status.summary} == \
        {region: rep["state"] for region, rep in summary["replication"].items()}
    assert all(rep["state"] == "Completed" and rep["replicas"] for rep in summary["replication"].values())
    # the serving pool: steady at its target (the formula's 4 once it serves), node counts from Batch
    pool_id = r.xcoms["roll_pool[0]:return_value"]["pool_id"]
    assert [p["id"] for p in summary["pools"]] == [pool_id]
    p, live = summary["pools"][0], s.batch().get_pool(pool_id)
    assert p["allocation_state"] == "steady" and p["current_dedicated_nodes"] == live.current_dedicated_nodes == 4
    assert sum(p["node_counts"].get(k, 0) for k in ("idle", "running")) == 4, p
    assert summary["leftovers"] == [] and summary["errors"] == []
    # the template's settings as Batch has them on the serving pool: subnet, task slots, autoscale (enabled at
    # promotion, evaluated without error) and no drift from the template
    network = live.network_configuration
    assert p["subnet_id"] == network.subnet_id and p["subnet_id"].endswith("/virtualNetworks/vnet-batch/subnets/pools")
    assert (p["task_slots_per_node"], p["node_fill_type"]) == (live.task_slots_per_node, "pack") == (2, "pack")
    auto = p["auto_scale"]
    assert auto["enabled"] is live.enable_auto_scale is True and auto["formula"] == live.auto_scale_formula
    assert auto["last_run"]["error"] is None and "$TargetDedicatedNodes=4" in auto["last_run"]["results"], auto
    assert p["drift"] == []
    # the text, line by line: the roll, the approval step, retention, the temporary resources' fate
    version_name = name
    assert lines[0] == f"DAG {r.xcoms['preflight:return_value']['dag_id']} run {r.run['run_id']}"
    roll = lines.index("Rolls (per logical pool):")
    assert lines[roll + 1:roll + 3] == [f"  ubuntu2204: first pool {pool_id} ({version_name})",
                                        "    approval: no approval needed"]
    assert lines[lines.index("Versions:") + 1] == "  retired (deleted): none"
    snapshots = r.xcoms["snapshot_disks:return_value"]
    for sid in [x["id"] if isinstance(x, dict) else x for x in snapshots]:
        assert f"  snapshot       {sid} - deleted by delete_temporary_resources" in lines
    assert f"  managed image  {summary['resources']['managed image']} - deleted by delete_temporary_resources" in lines
    assert f"  image version  {version}" in lines and f"  pool           {pool_id}" in lines
    assert lines[-1] == "Leftover temporary snapshots/images: 0"
    text = "\n".join(lines)
    assert f"{pool_id}: steady, 4/4 dedicated" in r.log
    assert "    matches the template" in text and "    2 task slot(s) per node, pack fill" in text
    assert "    autoscale enabled, evaluated every PT5M: $TargetDedicatedNodes = max(4, " in text


def test_summary_runs_when_preflight_refuses_and_the_run_still_fails(standin_session, tmp_path):
    def windows(cfg):
        cfg["image_definition"]["os_type"] = "Windows"  # the source VM is Linux: preflight refuses, no retry

    dag_id = f"summary_bad_{uuid.uuid4().hex[:8]}"
    r = run_demo(standin_session, tmp_path, dag_id, mutate=windows)
    assert r.task_state("preflight") == "failed", r.log[-4000:]
    assert r.state == "failed"  # the summary (a teardown) does not turn a failed run into a success
    assert r.task_state("run_summary") == "success"
    lines, summary = read_summary(r)
    assert {"task": "preflight", "state": "failed"}.items() <= next(
        st for st in summary["stages"] if st["task"] == "preflight").items()
    assert summary["pools"] == [] and summary["leftovers"] is None
    assert "Pools:" not in lines and lines[-1] == "Leftover temporary snapshots/images: unknown"


# --- format_summary of hand-made summaries (pure, fast) ---------------------------------------------------------------

V = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal/images/def/versions/"
SNAP = "/subscriptions/s/resourceGroups/w/providers/Microsoft.Compute/snapshots/snap-os-2026-1126-0"
IMAGE = "/subscriptions/s/resourceGroups/w/providers/Microsoft.Compute/images/img-2026-1126-0"


def stage(task: str, tries: int | None = 1, state: str = "success") -> dict:
    return {"task": task, "state": state, "seconds": None if state == "skipped" else 1.5, "tries": tries}


def test_text_of_a_roll_with_approval_retries_retention_and_a_leftover():
    from datetime import datetime, timezone

    # approve_roll's XCom as the standard provider's ApprovalOperator returns it (HITLTriggerEventSuccessPayload)
    answer = {"chosen_options": ["Approve"], "params_input": {"comment": "change CHG-42"},
              "responded_by_user": {"id": "7", "name": "alice"},
              "responded_at": datetime(2026, 11, 26, 1, 2, 3, tzinfo=timezone.utc)}
    s = {"dag_id": "d", "run_id": "scheduled__2026-11-26", "mode": "full",
         "rolls": [{"logical_pool": "alpha", "action": "roll", "from_pool_id": "alpha-2026-1125-0",
                    "from_version": "2026.1125.0", "pool_id": "alpha-2026-1126-0", "version": "2026.1126.0",
                    "done": True, "moved_schedules": ["nightly"], "moved_jobs": ["job-1", "job-2"],
                    "deleted_pools": ["alpha-2026-1125-0"], "approval": approval_entry(answer)},
                   {"logical_pool": "beta", "action": "current", "pool_id": "beta-2026-1126-0",
                    "version": "2026.1126.0", "approval": approval_entry({"chosen_options": ["Approve"],
                                                                          "auto": True})},
                   {"logical_pool": "gamma", "action": "roll", "from_pool_id": "g-1", "from_version": "1",
                    "pool_id": "g-2", "version": "2", "done": False,
                    "approval": {"needed": True, "missing": "approve_roll[2] skipped: rejected, or its upstream "
                                                            "did not succeed"}}],
         "retired": {"deleted": [V + "2026.1120.0"], "end_of_life": {V + "2026.1125.0": "2027-02-24"}},
         "stages": [stage("preflight"), stage("wait_for_snapshots", 2), stage("roll_pool[0]", 3),
                    stage("retire_old_versions", 0, "skipped")],
         "resources": {"snapshots": [SNAP], "managed image": IMAGE, "image version": V + "2026.1126.0",
                       "pools": ["alpha-2026-1126-0"]},
         "deleted_temporary": [SNAP.upper()], "leftovers": [IMAGE]}
    lines = format_summary(s).splitlines()
    roll = lines.index("Rolls (per logical pool):")
    assert lines[roll + 1:roll + 6] == [
        "  alpha: rolled from alpha-2026-1125-0 (2026.1125.0) to alpha-2026-1126-0 (2026.1126.0); job schedules "
        "moved: nightly; jobs moved: job-1, job-2; old pools drained and deleted: alpha-2026-1125-0",
        '    approval: approved by alice at 2026-11-26T01:02:03+00:00, comment "change CHG-42"',
        "  beta: already served by beta-2026-1126-0 (2026.1126.0)",
        "    approval: no approval needed",
        "  gamma: rolled from g-1 (1) to g-2 (2) - NOT finished (see roll_pool's log)"]
    assert lines[roll + 6] == ("    approval: not approved (approve_roll[2] skipped: rejected, or its upstream did "
                               "not succeed)")
    versions = lines.index("Versions:")
    assert lines[versions + 1:versions + 3] == ["  retired (deleted): 2026.1120.0",
                                                "  end of life set: 2026.1125.0 on 2027-02-24"]
    assert "retried: wait_for_snapshots (2 tries), roll_pool[0] (3 tries)" in lines
    assert "  wait_for_snapshots                 success        1.5 s  try 2" in lines
    assert "  preflight                          success        1.5 s" in lines  # one try: no "try 1"
    assert f"  snapshot       {SNAP} - deleted by delete_temporary_resources" in lines
    assert f"  managed image  {IMAGE} - left (see the leftovers below)" in lines
    assert lines[-2:] == ["Leftover temporary snapshots/images: 1", f"  {IMAGE}"]


def test_text_of_a_run_without_retries_and_of_one_whose_tries_were_not_read():
    assert "no task was retried" in format_summary({"stages": [stage("a"), stage("b", 0, "skipped")]}).splitlines()
    assert "tries not read" in format_summary({"stages": [stage("a", None)]}).splitlines()


def test_text_of_a_dry_run_has_no_none_and_no_empty_sections():
    plan_text = ("Plan of d run r (mode dry_run):\n  snapshot os       snap-os  /x/snap-os\n"
                 "  snapshot data-lun0 snap-data  /x/snap-data")
    s = {"dag_id": "d", "run_id": "r", "mode": "dry_run", "plan_text": plan_text,
         "stages": [stage("preflight"), stage("snapshot_disks", 0, "skipped")],
         "resources": {"snapshots": [], "managed image": None, "image version": None, "pools": []},
         "replication": {}, "pools": [], "leftovers": [], "retired": None}
    lines = format_summary(s).splitlines()
    assert lines[2:6] == ["DRY RUN: preflight and the plan only; nothing was written to Azure, every other task "
                          "skipped.", *plan_text.splitlines()]
    assert lines[lines.index("Resources:") + 1] == "  none (a dry run creates nothing)"
    assert "None" not in "\n".join(lines)
    assert not {"Versions:", "Replication per region:", "Pools:"} & set(lines)
    assert "  snapshot_disks                     skipped" in lines  # no trailing blanks


def test_text_of_a_rollback_and_a_revoke():
    rolled = {"logical_pool": "alpha", "action": "roll", "from_pool_id": "alpha-2026-1126-0",
              "from_version": "2026.1126.0", "pool_id": "alpha-2026-1125-0", "version": "2026.1125.0", "done": True,
              "moved_jobs": ["user-job"], "deleted_pools": ["alpha-2026-1126-0"]}
    s = {"dag_id": "d", "run_id": "r", "mode": "rollback", "options": {"mode": "rollback"},
         "rolls": [rolled, {"logical_pool": "beta", "action": "not_rolled", "why": "not in params.pools"}],
         "stages": [stage("preflight"), stage("snapshot_disks", 0, "skipped")],
         "resources": {"snapshots": [], "managed image": None, "image version": None, "pools": ["alpha-2026-1125-0"]},
         "retired": {"deleted": [], "end_of_life": {}}, "leftovers": []}
    lines = format_summary(s).splitlines()
    assert lines[2] == ("ROLLBACK: nothing was built; each logical pool below went back to the version it served "
                        "before.")
    roll = lines.index("Rolls (per logical pool):")
    assert lines[roll + 1:roll + 3] == [
        "  alpha: rolled from alpha-2026-1126-0 (2026.1126.0) to alpha-2026-1125-0 (2026.1125.0); jobs moved: "
        "user-job; old pools drained and deleted: alpha-2026-1126-0", "  beta: not in params.pools"]
    resources = lines.index("Resources:")
    assert lines[resources + 1:resources + 3] == ["  pool           alpha-2026-1125-0", ""]  # no snapshot/image lines
    revoke = format_summary({**s, "mode": "revoke", "options": {"mode": "revoke", "version": "2026.1126.0"},
                             "revoked": ["2026.1126.0"], "retired": {"deleted": [V + "2026.1126.0"]}}).splitlines()
    assert revoke[2].startswith("REVOKE 2026.1126.0: tagged revoked and excluded from latest")
    versions = revoke.index("Versions:")
    assert revoke[versions + 1:versions + 3] == ["  revoked: 2026.1126.0", "  retired (deleted): 2026.1126.0"]
