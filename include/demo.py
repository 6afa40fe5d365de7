"""`make demo`: the whole image-to-pool pipeline against the bundled Azure stand-in, then a summary.

1. start the stand-in (state in --state-dir; a running one on that dir is reused), reset it to the
   seeded fixture and clear its request log;
2. load airflow_settings.yaml's connections into the Airflow DB (pointed at the stand-in's address);
3. run the demo DAG with `airflow dags test` for two nights, then a rollback (``--conf '{"mode": "rollback"}'``: every
   pool back on night 1's version, nothing built), then one run of the base-image DAG (a build VM from the
   marketplace base, include/pipelines/base-ubuntu2204.yaml);
4. print the summary the DAG's run_summary task returned (stage durations, resources, replication per region,
   pool node counts, leftovers: what the UI shows), plus the nights and the stand-in-only ARM and Batch request
   counts, and write it as JSON beside the stand-in's state.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from include.azure_standin import client as standin_client
from include.demo_roles import least_privilege
from include.pipeline_runner import RunResult, run_dag_test

ROOT = Path(__file__).resolve().parents[1]
DEMO_DAG_ID = "batch_image_ubuntu2204"
BASE_DAG_ID = "batch_image_ubuntu2204_base"


def ensure_standin(state_dir: Path, port: int, scale: float) -> tuple[standin_client.StandInProcess | None, dict]:
    """A running stand-in on state_dir: reuse one that answers, else start one (returned to stop later)."""
    try:
        ep = standin_client.load_endpoints(state_dir)
        standin_client.Control(ep).health()
        return None, ep
    except Exception:  # noqa: BLE001 - no stand-in answering on that dir: start one
        proc = standin_client.StandInProcess(state_dir, time_scale=scale)
        return proc, proc.start(port=port)


def add_user_schedule(ep: dict, rolls: list[dict]) -> None:
    """What a user does between the nights: a job schedule on each serving pool (it never runs: far start)."""
    from azure.batch import models as bm

    from include.azure_standin import client as c

    batch = c.batch_client(ep)
    for r in rolls:
        batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
            id=f"nightly-{r['logical_pool']}", schedule=bm.BatchJobScheduleConfiguration(
                do_not_run_until=datetime(2099, 1, 1, tzinfo=timezone.utc)),
            job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=r["pool_id"]))))
        print(f"  user: job schedule nightly-{r['logical_pool']} -> {r['pool_id']}", flush=True)


def act_name(n: int) -> str:
    """``night 1``, ``night 2``, then ``rollback`` (the demo's third act)."""
    return f"night {n}" if n <= 2 else "rollback"


def build_summary(dag_id: str, result: RunResult, nights: list[dict], requests: dict, time_scale: float,
                  summary_path: Path) -> dict:
    """The demo's summary: the last night's run_summary task's summary (its XCom ``summary``; the text it returned, what
    the UI shows, under ``run_summary_text``), the nights, and
    the stand-in's request counts (stand-in only: real Azure has no such log). Written to ``summary_path``."""
    fam = requests["by_family"]
    summary = {
        "dag_id": dag_id, "exit_code": result.exit_code, "wall_seconds": round(sum(n["wall_seconds"] for n in nights), 1),
        "time_scale": time_scale, "nights": nights, "run": result.run,
        "run_summary": result.xcoms.get("run_summary:summary") or {},
        "run_summary_text": result.xcoms.get("run_summary:return_value") or "",
        "requests": {"arm": fam.get("arm", 0), "batch": fam.get("batch", 0), "identity": fam.get("identity", 0),
                     "writes": requests["writes"], "faults": requests["faults"], "per_operation": requests["counts"]},
        "summary_path": str(summary_path),
    }
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def print_summary(s: dict) -> None:
    """The run_summary task's text (format_summary), then the nights and the stand-in's request counts."""
    from batch_images.operators.summary import format_summary

    w = sys.stdout.write
    w("\n=== Batch image pipeline demo: summary ===\n")
    w(f"Run {s['run'].get('run_id')}: {s['run'].get('state')}; {len(s['nights'])} run(s) of {s['dag_id']} (two nights, then a "
      "rollback) in "
      f"{s['wall_seconds']:.1f} s wall (stand-in time scale {s['time_scale']:g}x). From the last run's run_summary "
      "task:\n\n")
    w(s.get("run_summary_text") or (format_summary(s["run_summary"]) if s["run_summary"]
                                    else "(no run_summary: the run did not get that far)"))
    w("\n\nNights:\n")
    for night in s.get("nights") or []:
        w(f"  {night.get('act') or act_name(night['night'])} ({night['logical_date'][:16]}): exit {night['exit_code']}, "
          f"{night['wall_seconds']:.1f} s, {night['batch_requests']} Batch + {night['arm_requests']} ARM requests\n")
        for r in night["rolls"]:
            w(f"    {r['logical_pool']}: serving {r['pool_id']} on {r['version']}; job schedules moved: "
              f"{', '.join(r['moved_schedules']) or 'none'}; old pools drained and deleted: "
              f"{', '.join(r['deleted_pools']) or 'none'}\n")
    req = s["requests"]
    w(f"\nRequests (stand-in's log, last run): {req['arm']} ARM, {req['batch']} Batch, {req['identity']} token; "
      f"{req['writes']} writes, {req['faults']} faulted\n")
    base = s.get("base_image_run")
    if base:
        w(f"\nBase-image run ({base['dag_id']}, {base['logical_date'][:10]}): {base['state']}, exit {base['exit_code']}, "
          f"{base['wall_seconds']:.1f} s wall\n")
        lineage = base.get("lineage") or {}
        if lineage:
            w(f"  built from {lineage.get('urn')} ({lineage.get('why')}); build VM {lineage.get('build_vm')} "
              f"created, generalized and deleted\n")
        w(f"  version {(base.get('version') or '-').rsplit('/', 1)[-1]}; stages: " + ", ".join(
            f"{r['task']} {r['seconds']:.0f} s" for r in base.get("stages") or []
            if r["task"] in ("prepare_build_vm", "generalize_build_vm", "delete_build_vm") and r.get("seconds") is not None)
          + "\n")
        for p in base.get("pools") or []:
            w(f"  pool {p.get('id')}: {p.get('allocation_state')}, {p.get('current_dedicated_nodes')}/"
              f"{p.get('target_dedicated_nodes')} dedicated\n")
        w(f"  leftover temporary resources: {base.get('leftovers')}\n")
    w(f"Summary JSON: {s['summary_path']}\n")


def run_base_image(ep: dict, conns: Any, state_dir: Path, logical_date: str) -> dict:
    """One run of the base-image pipeline: a build VM from the newest marketplace Ubuntu 22.04, customised by
    include/build/ubuntu2204-batch.sh, imaged into its own definition, a pool on it."""
    from include.airflow_settings import as_env

    log_path = state_dir / "demo-airflow-base-image.log"
    print(f"base image: `airflow dags test {BASE_DAG_ID} {logical_date}` (log: {log_path}) ...", flush=True)
    result = run_dag_test(BASE_DAG_ID, logical_date, log_path, env=as_env(conns))
    rs = result.xcoms.get("run_summary:summary") or {}
    return {"dag_id": BASE_DAG_ID, "logical_date": logical_date, "exit_code": result.exit_code,
            "state": result.run.get("state"), "wall_seconds": round(result.wall_seconds, 1),
            "lineage": rs.get("lineage"), "version": (rs.get("resources") or {}).get("image version"),
            "stages": rs.get("stages"), "pools": rs.get("pools"), "leftovers": len(rs.get("leftovers") or [])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".standin")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--dag-id", default=DEMO_DAG_ID)
    parser.add_argument("--keep-running", action="store_true", help="leave the stand-in running afterwards")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    # The SDK logs every request at INFO: the demo's own calls (the user's job schedule, the summary) stay quiet.
    logging.getLogger("azure").setLevel(logging.WARNING)

    proc, ep = ensure_standin(state_dir, args.port, args.time_scale)
    control = standin_client.Control(ep)
    try:
        ep = control.reset()
        control.set_scale(args.time_scale)
        least_privilege(control)  # issue 23: the pipeline's roles table, enforced
        control.clear_requests()
        print(f"stand-in: {ep['arm']} (state {state_dir}, time scale {args.time_scale:g}x)")

        from include.airflow_settings import as_env, read_connections, upsert_connections

        conns = read_connections(ROOT / "airflow_settings.yaml", ep)  # this stand-in's address and CA
        upsert_connections(conns)
        # Two nights in a row: night 1 makes each logical pool's first serving pool; a user then points a job
        # schedule at it; night 2 rolls it to the new version (schedule moved, old pool drained and deleted). Then a
        # third act, the morning after: a rollback (params.mode rollback) puts every pool back on night 1's version
        # without building anything (docs/operations.md, "Roll back").
        today = datetime.now(timezone.utc).replace(microsecond=0)
        nights = []
        # Logical dates in order, a day apart (each night's version name is its date), none in the future.
        acts = [(today - timedelta(days=2), None), (today - timedelta(days=1), None), (today, {"mode": "rollback"})]
        for n, (logical, conf) in enumerate(acts, start=1):
            logical_date = logical.isoformat()
            log_path = state_dir / {1: "demo-airflow-night1.log", 2: "demo-airflow.log"}.get(n, "demo-airflow-rollback.log")
            how = f" --conf '{json.dumps(conf)}'" if conf else ""
            print(f"{act_name(n)}: `airflow dags test {args.dag_id} {logical_date}{how}` (log: {log_path}) ...",
                  flush=True)
            control.clear_requests()
            result = run_dag_test(args.dag_id, logical_date, log_path, env=as_env(conns), conf=conf)
            fam = control.requests()["by_family"]
            rolls = [v for k, v in sorted(result.xcoms.items())
                     if k.startswith("roll_pool[") and k.endswith(":return_value") and v]
            nights.append({"night": n, "act": act_name(n), "logical_date": logical_date, "exit_code": result.exit_code,
                           "wall_seconds": round(result.wall_seconds, 1), "batch_requests": fam.get("batch", 0),
                           "arm_requests": fam.get("arm", 0), "rolls": rolls})
            if result.exit_code != 0:
                break
            if n == 1:
                add_user_schedule(ep, rolls)
        requests = control.requests()
        base = run_base_image(ep, conns, state_dir, today.isoformat()) if result.exit_code == 0 else None
        summary = build_summary(args.dag_id, result, nights, requests, args.time_scale,
                                state_dir / "demo-summary.json")
        if base is not None:
            summary["base_image_run"] = base
            Path(summary["summary_path"]).write_text(json.dumps(summary, indent=2, default=str))
        print_summary(summary)
        rc, run, pools = result.exit_code, result.run, summary["run_summary"].get("pools") or []
        ok = rc == 0 and run.get("state") == "success" and pools and all(
            p.get("allocation_state") == "steady" for p in pools)
        if base is not None and not (base["exit_code"] == 0 and base["state"] == "success"):
            ok, log_path = False, state_dir / "demo-airflow-base-image.log"
        if not ok:
            print(f"\nDEMO FAILED (exit {rc}); last lines of {log_path}:", file=sys.stderr)
            print("".join(log_path.read_text().splitlines(keepends=True)[-60:]), file=sys.stderr)
            return 1
        return 0
    finally:
        if proc is not None and not args.keep_running:
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
