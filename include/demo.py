"""`make demo`: the whole image-to-pool pipeline against the bundled Azure stand-in, then a summary.

1. start the stand-in (state in --state-dir; a running one on that dir is reused), reset it to the
   seeded fixture and clear its request log;
2. load airflow_settings.yaml's connections into the Airflow DB (pointed at the stand-in's address);
3. run the demo DAG with `airflow dags test`;
4. print a summary (resources created, stage durations, replication per region, pool node counts,
   ARM and Batch request counts, leftovers) and write it as JSON beside the stand-in's state.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from include.azure_standin import client as standin_client
from include.pipeline_runner import run_dag_test

ROOT = Path(__file__).resolve().parents[1]
DEMO_DAG_ID = "batch_image_ubuntu2204"


def ensure_standin(state_dir: Path, port: int, scale: float) -> tuple[standin_client.StandInProcess | None, dict]:
    """A running stand-in on state_dir: reuse one that answers, else start one (returned to stop later)."""
    try:
        ep = standin_client.load_endpoints(state_dir)
        standin_client.Control(ep).health()
        return None, ep
    except Exception:  # noqa: BLE001 - no stand-in answering on that dir: start one
        proc = standin_client.StandInProcess(state_dir, time_scale=scale)
        return proc, proc.start(port=port)


def _text(value) -> str:
    """An SDK enum's wire value ("Completed"), or the value itself."""
    return getattr(value, "value", value)


def azure_state(ep: dict, plan: dict | None, pool_ids: list[str]) -> dict:
    """What the SDK sees now: replication per region, pools, and leftover temporary resources."""
    out: dict = {"replication": {}, "pools": [], "leftovers": []}
    compute = standin_client.compute_client(ep)
    if plan:
        from azure.core.exceptions import ResourceNotFoundError

        g, d = plan["gallery"], plan["image_definition"]
        try:
            v = compute.gallery_image_versions.get(g["resource_group"], g["name"], d["name"], plan["version"],
                                                    expand="ReplicationStatus")
        except ResourceNotFoundError:
            v = None
        for s in v.replication_status.summary if v else []:
            out["replication"][s.region] = {"state": _text(s.state), "progress": s.progress}
        for t in v.publishing_profile.target_regions if v else []:
            out["replication"].setdefault(t.name, {})["replicas"] = t.regional_replica_count
        rg = plan["work_resource_group"]
        out["leftovers"] = [s.id for s in compute.snapshots.list_by_resource_group(rg)] + \
                           [i.id for i in compute.images.list_by_resource_group(rg)]
    batch = standin_client.batch_client(ep)
    counts = {c.pool_id: c for c in batch.list_pool_node_counts()}
    for pool_id in pool_ids:
        try:
            pool = batch.get_pool(pool_id)
        except Exception as err:  # noqa: BLE001 - report, don't crash the summary
            out["pools"].append({"id": pool_id, "error": str(err).splitlines()[0]})
            continue
        c = counts.get(pool_id)
        dedicated = c.dedicated.as_dict() if c and c.dedicated else {}
        out["pools"].append({
            "id": pool.id, "allocation_state": _text(pool.allocation_state), "vm_size": pool.vm_size,
            "image": pool.virtual_machine_configuration.image_reference.virtual_machine_image_id,
            "node_agent_sku_id": pool.virtual_machine_configuration.node_agent_sku_id,
            "current_dedicated_nodes": pool.current_dedicated_nodes,
            "target_dedicated_nodes": pool.target_dedicated_nodes,
            "node_counts": {k: v for k, v in dedicated.items() if v},
            "current_low_priority_nodes": pool.current_low_priority_nodes,
            "target_low_priority_nodes": pool.target_low_priority_nodes,
            # Spot/low-priority nodes Azure took back (Batch brings them back when capacity returns)
            "preempted": (c.low_priority.preempted or 0) if c and c.low_priority else 0,
        })
    return out


def add_user_schedule(ep: dict, rolls: list[dict]) -> None:
    """What a user does between the nights: a job schedule on each serving pool (it never runs: far start)."""
    import logging

    from azure.batch import models as bm

    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO

    from include.azure_standin import client as c

    batch = c.batch_client(ep)
    for r in rolls:
        batch.create_job_schedule(bm.BatchJobScheduleCreateOptions(
            id=f"nightly-{r['logical_pool']}", schedule=bm.BatchJobScheduleConfiguration(
                do_not_run_until=datetime(2099, 1, 1, tzinfo=timezone.utc)),
            job_specification=bm.BatchJobSpecification(pool_info=bm.BatchPoolInfo(pool_id=r["pool_id"]))))
        print(f"  user: job schedule nightly-{r['logical_pool']} -> {r['pool_id']}", flush=True)


def print_summary(s: dict) -> None:
    w = sys.stdout.write
    w("\n=== Batch image pipeline demo: summary ===\n")
    w(f"DAG {s['dag_id']} run {s['run'].get('run_id')}: {s['run'].get('state')} in {s['wall_seconds']:.1f} s wall "
      f"(stand-in time scale {s['time_scale']:g}x)\n\nStages:\n")
    for r in s["stages"]:
        secs = "" if r["seconds"] is None else f"{r['seconds']:7.1f} s"
        w(f"  {r['task']:<34} {r['state']:<10} {secs}\n")
    w("\nNights:\n")
    for night in s.get("nights") or []:
        w(f"  night {night['night']} ({night['logical_date'][:10]}): exit {night['exit_code']}, "
          f"{night['wall_seconds']:.1f} s, {night['batch_requests']} Batch + {night['arm_requests']} ARM requests\n")
        for r in night["rolls"]:
            w(f"    {r['logical_pool']}: serving {r['pool_id']} on {r['version']}; job schedules moved "
              f"{r['moved_schedules'] or 'none'}; old pools drained and deleted {r['deleted_pools'] or 'none'}\n")
    w("\nResources:\n")
    for kind, ids in s["resources"].items():
        for rid in ids if isinstance(ids, list) else [ids]:
            w(f"  {kind:<16} {rid}\n")
    w("\nReplication per region:\n")
    for region, r in s["azure"]["replication"].items():
        w(f"  {region:<14} {r.get('state', '?'):<10} {r.get('progress', '?')}%  replicas {r.get('replicas', '?')}\n")
    w("\nPools:\n")
    for p in s["azure"]["pools"]:
        if "error" in p:
            w(f"  {p['id']}: {p['error']}\n")
            continue
        low = (f", {p['current_low_priority_nodes']}/{p['target_low_priority_nodes']} low-priority"
               if p.get("target_low_priority_nodes") or p.get("current_low_priority_nodes") else "")
        low += f" ({p['preempted']} preempted)" if p.get("preempted") else ""
        w(f"  {p['id']}: {p['allocation_state']}, {p['current_dedicated_nodes']}/{p['target_dedicated_nodes']} "
          f"dedicated{low}, nodes {p['node_counts']}, agent '{p['node_agent_sku_id']}'\n    image {p['image']}\n")
    req = s["requests"]
    w(f"\nRequests: {req['arm']} ARM, {req['batch']} Batch, {req['identity']} token; {req['writes']} writes, "
      f"{req['faults']} faulted\n")
    w(f"Leftover temporary snapshots/images: {len(s['azure']['leftovers'])}\n")
    w(f"Summary JSON: {s['summary_path']}\n")


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
        control.clear_requests()
        print(f"stand-in: {ep['arm']} (state {state_dir}, time scale {args.time_scale:g}x)")

        from include.airflow_settings import as_env, read_connections, upsert_connections

        conns = read_connections(ROOT / "airflow_settings.yaml", ep)  # this stand-in's address and CA
        upsert_connections(conns)
        # Two nights in a row: night 1 makes each logical pool's first serving pool; a user then points a job
        # schedule at it; night 2 rolls it to the new version (schedule moved, old pool drained and deleted).
        today = datetime.now(timezone.utc).replace(microsecond=0)
        nights = []
        for n, logical in enumerate((today - timedelta(days=1), today), start=1):
            logical_date = logical.isoformat()
            log_path = state_dir / ("demo-airflow.log" if n == 2 else f"demo-airflow-night{n}.log")
            print(f"night {n}: `airflow dags test {args.dag_id} {logical_date}` (log: {log_path}) ...", flush=True)
            control.clear_requests()
            result = run_dag_test(args.dag_id, logical_date, log_path, env=as_env(conns))
            fam = control.requests()["by_family"]
            rolls = [v for k, v in sorted(result.xcoms.items()) if k.startswith("roll_pool[") and v]
            nights.append({"night": n, "logical_date": logical_date, "exit_code": result.exit_code,
                           "wall_seconds": round(result.wall_seconds, 1), "batch_requests": fam.get("batch", 0),
                           "arm_requests": fam.get("arm", 0), "rolls": rolls})
            if result.exit_code != 0:
                break
            if n == 1:
                add_user_schedule(ep, rolls)
        rc, wall = result.exit_code, sum(x["wall_seconds"] for x in nights)
        run, stages, xcoms = result.run, result.tasks, result.xcoms
        plan = xcoms.get("preflight:return_value")
        pool_ids = [v if isinstance(v, str) else v.get("pool_id") for k, v in sorted(xcoms.items())
                    if k.startswith("create_pool[") and k.endswith(":return_value")]
        resources = {
            "snapshots": [s["id"] if isinstance(s, dict) else s for s in xcoms.get("snapshot_disks:return_value") or []],
            "managed image": xcoms.get("create_managed_image:return_value"),
            "image version": xcoms.get("publish_image_version:return_value"),
            "pools": pool_ids,
        }
        req = control.requests()
        fam = req["by_family"]
        summary = {
            "dag_id": args.dag_id, "logical_date": logical_date, "exit_code": rc, "wall_seconds": round(wall, 1),
            "time_scale": args.time_scale, "nights": nights, "run": run, "stages": stages, "resources": resources,
            "azure": azure_state(ep, plan, pool_ids),
            "requests": {"arm": fam.get("arm", 0), "batch": fam.get("batch", 0), "identity": fam.get("identity", 0),
                         "writes": req["writes"], "faults": req["faults"], "per_operation": req["counts"]},
        }
        summary["summary_path"] = str(state_dir / "demo-summary.json")
        Path(summary["summary_path"]).write_text(json.dumps(summary, indent=2, default=str))
        print_summary(summary)
        ok = rc == 0 and run.get("state") == "success" and all(
            p.get("allocation_state") == "steady" for p in summary["azure"]["pools"]) and summary["azure"]["pools"]
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
